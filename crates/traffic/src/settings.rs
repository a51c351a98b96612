//! The traffic experiment's settings: the task, the target (ψ_real with its domain shift,
//! or a dataset on disk), the sizes of the data sets and the main-task training.

use std::sync::Arc;

use l2s_core::SeedTree;
use l2s_core::config::{InvalidField, Validate, check_count, check_range};
use l2s_scene::TrafficParams;
use l2s_train::TrainConfig;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::target_data::DataTarget;

/// Which main task model is trained and how it is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Task {
    /// Per-type car counts; reward −MAE (mean over types and images).
    Counting,
    /// Semantic segmentation over the renderer's classes; reward car IoU.
    Segmentation,
}

impl Task {
    pub fn metric_name(self) -> &'static str {
        match self {
            Task::Counting => "-MAE",
            Task::Segmentation => "car IoU",
        }
    }
}

/// How the target's images differ from the simulator's beyond ψ: a stand-in for the gap
/// between real and rendered data. Applied to the target's validation and test images only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DomainShift {
    /// Standard deviation of Gaussian pixel noise, in [0, 1] intensity units.
    pub noise_std: f64,
    /// Per-channel gain on RGB.
    pub colour_gain: [f64; 3],
    /// Added to every channel, in [0, 1] intensity units.
    pub brightness: f64,
}

impl Default for DomainShift {
    fn default() -> Self {
        Self { noise_std: 0.0, colour_gain: [1.0; 3], brightness: 0.0 }
    }
}

impl Validate for DomainShift {
    fn validate(&self) -> Result<(), InvalidField> {
        check_range("noise_std", self.noise_std, 0.0, 0.5)?;
        for (i, g) in self.colour_gain.iter().enumerate() {
            check_range(&format!("colour_gain[{i}]"), *g, 0.2, 5.0)?;
        }
        check_range("brightness", self.brightness, -0.5, 0.5)
    }
}

impl DomainShift {
    pub(crate) fn apply(&self, image: &mut [f32], seed: u64) {
        let identity = self.noise_std == 0.0 && self.colour_gain == [1.0; 3] && self.brightness == 0.0;
        if identity {
            return;
        }
        let plane = image.len() / 3;
        let mut rng = SeedTree::new(seed).child("domain").rng();
        for (i, v) in image.iter_mut().enumerate() {
            let gain = self.colour_gain[(i / plane.max(1)).min(2)] as f32;
            let noise = if self.noise_std > 0.0 {
                // Sum of uniforms: near-Gaussian, cheap, deterministic.
                let u: f32 = (0..4).map(|_| rng.random::<f32>() - 0.5).sum();
                u * (self.noise_std as f32) * 1.732
            } else {
                0.0
            };
            *v = (*v * gain + self.brightness as f32 + noise).clamp(0.0, 1.0);
        }
    }
}

/// The target domain ψ_real, read from its own file (`configs/targets/*.ron`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub scene: TrafficParams,
    #[serde(default)]
    pub domain: DomainShift,
}

impl Validate for Target {
    fn validate(&self) -> Result<(), InvalidField> {
        self.scene.validate().map_err(|e| e.within("scene"))?;
        self.domain.validate().map_err(|e| e.within("domain"))
    }
}

/// What a study's models are scored against.
#[derive(Debug, Clone)]
pub enum TargetDomain {
    /// ψ_real of the simulator itself, plus a domain shift.
    Simulated(Target),
    /// A labelled dataset on disk.
    Data(Arc<DataTarget>),
}

/// Sizes of the generated and held-out sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// M: images rendered per main-task training.
    pub train_samples: usize,
    pub validation_samples: usize,
    pub test_samples: usize,
}

impl Validate for DataConfig {
    fn validate(&self) -> Result<(), InvalidField> {
        check_count("train_samples", self.train_samples, 1, 100_000)?;
        check_count("validation_samples", self.validation_samples, 1, 100_000)?;
        check_count("test_samples", self.test_samples, 1, 100_000)
    }
}

/// ξ and the optimiser of every main-task training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Fine-tune every main task model from one shared start instead of training it from
    /// scratch (the paper does both); absent: from scratch.
    #[serde(default)]
    pub warm_start: Option<WarmStart>,
}

/// The shared start of fine-tuned trainings: a model trained once per study seed on
/// images of the config's `base` ψ (never the target's). Short trainings from scratch
/// scatter widely (car IoU 0.02 to 0.37 for one ψ); fine-tuned ones differ mostly by
/// their data, which is what the rewards should measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmStart {
    /// Images rendered from `base` for it.
    pub samples: usize,
    /// Its epochs (batch size and learning rate as every training's).
    pub epochs: usize,
}

impl TrainSettings {
    pub(crate) fn config(&self, epochs: usize, seed: u64) -> TrainConfig {
        TrainConfig { epochs, batch_size: self.batch_size, learning_rate: self.learning_rate, seed }
    }
}

impl Validate for TrainSettings {
    fn validate(&self) -> Result<(), InvalidField> {
        self.config(self.epochs, 0).validate()?;
        if let Some(warm) = &self.warm_start {
            check_count("samples", warm.samples, 1, 100_000).map_err(|e| e.within("warm_start"))?;
            check_count("epochs", warm.epochs, 1, 100_000).map_err(|e| e.within("warm_start"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domain_shift_is_deterministic_bounded_and_the_identity_changes_nothing() {
        let image: Vec<f32> = (0..48).map(|i| i as f32 / 47.0).collect();
        let mut same = image.clone();
        DomainShift::default().apply(&mut same, 3);
        assert_eq!(same, image);
        let shift = DomainShift { noise_std: 0.05, colour_gain: [1.5, 1.0, 0.5], brightness: 0.1 };
        let (mut a, mut b, mut c) = (image.clone(), image.clone(), image.clone());
        shift.apply(&mut a, 3);
        shift.apply(&mut b, 3);
        shift.apply(&mut c, 4);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
        // The blue plane (gain 0.5) darkens on average, the red (1.5) brightens.
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        assert!(mean(&a[32..]) < mean(&image[32..]) && mean(&a[..16]) > mean(&image[..16]));
    }
}
