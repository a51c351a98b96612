//! The traffic environment: ψ → rendered samples → trained main task model → reward.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use l2s_core::config::{InvalidField, Validate, check_count, check_range};
use l2s_core::{ParamSpace, ParamValues, SeedTree};
use l2s_meta::progress::Progress;
use l2s_meta::{BoxError, Environment, Evaluation, Split};
use l2s_render::{Frame, Renderer, SemanticClass};
use l2s_scene::{SceneDescription, TrafficParams, sample_scene};
use l2s_train::{
    Dataset, Sample, TrainConfig, evaluate_counting, evaluate_segmentation, train_counting,
    train_segmentation,
};
use rand::Rng;
use serde::{Deserialize, Serialize};

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
    fn apply(&self, image: &mut [f32], seed: u64) {
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
}

impl Validate for TrainSettings {
    fn validate(&self) -> Result<(), InvalidField> {
        TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            seed: 0,
        }
        .validate()
    }
}

/// The dimensions of ψ the policy learns; the others stay at `base`.
#[derive(Debug, Clone)]
pub struct LearnedSpace {
    space: ParamSpace,
    /// Index in the full traffic space of each learned dimension.
    full_index: Vec<usize>,
    base: ParamValues,
}

impl LearnedSpace {
    /// Learns the dimensions named in `learn` (names of [`TrafficParams::space`]).
    pub fn new(learn: &[String], base: &TrafficParams) -> Result<Self, InvalidField> {
        let full = TrafficParams::space();
        let mut dims = Vec::new();
        let mut full_index = Vec::new();
        for name in learn {
            let Some(i) = full.position(name) else {
                let names: Vec<&str> = full.dims().iter().map(|d| d.name()).collect();
                return Err(InvalidField::new(
                    "learn",
                    format!("has `{name}`, which is not a dimension of ψ; choose from {}", names.join(", ")),
                ));
            };
            if full_index.contains(&i) {
                return Err(InvalidField::new("learn", format!("names `{name}` twice")));
            }
            full_index.push(i);
            dims.push(full.dims()[i].clone());
        }
        let space = ParamSpace::new(dims).map_err(|e| InvalidField::new("learn", e.to_string()))?;
        Ok(Self { space, full_index, base: base.to_values() })
    }

    pub fn space(&self) -> &ParamSpace {
        &self.space
    }

    /// The full ψ for learned values `psi`.
    pub fn params(&self, psi: &ParamValues) -> Result<TrafficParams, BoxError> {
        self.space.check(psi)?;
        let mut full = self.base.clone();
        for (j, &i) in self.full_index.iter().enumerate() {
            full.0[i] = psi.0[j];
        }
        Ok(TrafficParams::from_values(&full)?)
    }
}

/// Class index (0..7) of every pixel, in [`SemanticClass::ALL`] order.
fn class_indices(frame: &Frame) -> Vec<u8> {
    let mut lut = [0u8; 256];
    for (i, class) in SemanticClass::ALL.iter().enumerate() {
        lut[usize::from(class.id())] = i as u8;
    }
    frame.classes.iter().map(|&id| lut[usize::from(id)]).collect()
}

/// Renders `n` scenes of `params` (seeds from `tree`) and turns them into training samples.
pub fn render_dataset(
    renderer: &Mutex<Renderer>,
    params: &TrafficParams,
    tree: &SeedTree,
    n: usize,
    domain: Option<&DomainShift>,
) -> Result<(Dataset, Vec<Frame>), BoxError> {
    let scenes: Vec<SceneDescription> = (0..n)
        .map(|i| sample_scene(params, tree.child("scene").index(i as u64).seed()))
        .collect::<Result<_, _>>()?;
    let frames = renderer.lock().unwrap_or_else(PoisonError::into_inner).render(&scenes)?;
    let (w, h) = frames.first().map_or((0, 0), |f| (f.width as usize, f.height as usize));
    let samples = frames
        .iter()
        .map(|f| {
            let counts = f.counts.map(|c| c as f32);
            let mut sample = Sample::from_rgb8(&f.rgb, w, h, counts, class_indices(f));
            if let Some(domain) = domain {
                domain.apply(&mut sample.image, f.scene.seed);
            }
            sample
        })
        .collect();
    Ok((Dataset { width: w, height: h, samples }, frames))
}

/// Time spent in each phase of the evaluations, summed over threads (for the report).
#[derive(Debug, Default)]
pub struct PhaseTimes {
    render_us: AtomicU64,
    train_us: AtomicU64,
    score_us: AtomicU64,
}

impl PhaseTimes {
    fn add(counter: &AtomicU64, since: Instant) {
        let us = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
        counter.fetch_add(us, Ordering::Relaxed);
    }

    /// Seconds spent rendering, training and scoring.
    pub fn seconds(&self) -> (f64, f64, f64) {
        let s = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64 / 1e6;
        (s(&self.render_us), s(&self.train_us), s(&self.score_us))
    }
}

/// The environment of one study seed: its target validation and test sets, rendered once.
pub struct TrafficEnv {
    task: Task,
    learned: LearnedSpace,
    target: Target,
    data: DataConfig,
    train: TrainSettings,
    renderer: Arc<Mutex<Renderer>>,
    device: l2s_train::Device,
    validation: Dataset,
    test: Dataset,
    times: Arc<PhaseTimes>,
    progress: Progress,
}

impl std::fmt::Debug for TrafficEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrafficEnv").field("task", &self.task).field("data", &self.data).finish()
    }
}

impl TrafficEnv {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        task: Task,
        learned: LearnedSpace,
        target: Target,
        data: DataConfig,
        train: TrainSettings,
        renderer: Arc<Mutex<Renderer>>,
        device: l2s_train::Device,
        seeds: &SeedTree,
        times: Arc<PhaseTimes>,
        progress: Progress,
    ) -> Result<Self, BoxError> {
        let started = Instant::now();
        let (validation, _) = render_dataset(
            &renderer,
            &target.scene,
            &seeds.child("validation"),
            data.validation_samples,
            Some(&target.domain),
        )?;
        let (test, _) = render_dataset(
            &renderer,
            &target.scene,
            &seeds.child("test"),
            data.test_samples,
            Some(&target.domain),
        )?;
        PhaseTimes::add(&times.render_us, started);
        Ok(Self { task, learned, target, data, train, renderer, device, validation, test, times, progress })
    }

    pub fn learned(&self) -> &LearnedSpace {
        &self.learned
    }

    pub fn renderer(&self) -> &Arc<Mutex<Renderer>> {
        &self.renderer
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Trains on `data` with `seed` and scores on `split`.
    fn train_and_score(&self, data: &Dataset, seed: u64, split: Split) -> Result<Evaluation, BoxError> {
        let config = TrainConfig {
            epochs: self.train.epochs,
            batch_size: self.train.batch_size,
            learning_rate: self.train.learning_rate,
            seed,
        };
        let held_out = match split {
            Split::Validation => &self.validation,
            Split::Test => &self.test,
        };
        self.progress.detail(format!("training ({} epochs on {} images)", self.train.epochs, data.len()));
        let started = Instant::now();
        match self.task {
            Task::Counting => {
                let trained = train_counting(&self.device, &config, data, None)?;
                PhaseTimes::add(&self.times.train_us, started);
                self.progress.detail("scoring".into());
                let scoring = Instant::now();
                let m = evaluate_counting(&trained.model, held_out, &self.device)?;
                PhaseTimes::add(&self.times.score_us, scoring);
                let mut metrics =
                    vec![("mae".to_string(), m.mae), ("exact_accuracy".to_string(), m.exact_accuracy)];
                for (kind, mae) in l2s_scene::CarType::ALL.iter().zip(m.mae_per_type) {
                    metrics.push((format!("mae.{}", kind.name()), mae));
                }
                Ok(Evaluation { reward: -m.mae, metrics })
            }
            Task::Segmentation => {
                let classes = SemanticClass::ALL.len();
                let trained = train_segmentation(&self.device, &config, classes, data, None)?;
                PhaseTimes::add(&self.times.train_us, started);
                self.progress.detail("scoring".into());
                let scoring = Instant::now();
                let m = evaluate_segmentation(
                    &trained.model,
                    held_out,
                    classes,
                    SemanticClass::Car.index(),
                    &self.device,
                )?;
                PhaseTimes::add(&self.times.score_us, scoring);
                Ok(Evaluation {
                    reward: m.car_iou,
                    metrics: vec![("car_iou".to_string(), m.car_iou), ("mean_iou".to_string(), m.mean_iou)],
                })
            }
        }
    }
}

impl Environment for TrafficEnv {
    fn space(&self) -> &ParamSpace {
        self.learned.space()
    }

    fn metric_name(&self) -> &str {
        self.task.metric_name()
    }

    fn evaluate(&self, psi: &ParamValues, seed: u64, split: Split) -> Result<Evaluation, BoxError> {
        let params = self.learned.params(psi)?;
        let tree = SeedTree::new(seed);
        self.progress.detail(format!("rendering {} images", self.data.train_samples));
        let started = Instant::now();
        let (data, _) =
            render_dataset(&self.renderer, &params, &tree.child("render"), self.data.train_samples, None)?;
        PhaseTimes::add(&self.times.render_us, started);
        self.train_and_score(&data, tree.child("train").seed(), split)
    }

    fn evaluate_target(&self, seed: u64) -> Result<Evaluation, BoxError> {
        let tree = SeedTree::new(seed);
        self.progress.detail(format!("rendering {} target images", self.data.train_samples));
        let started = Instant::now();
        let (data, _) = render_dataset(
            &self.renderer,
            &self.target.scene,
            &tree.child("render"),
            self.data.train_samples,
            Some(&self.target.domain),
        )?;
        PhaseTimes::add(&self.times.render_us, started);
        self.train_and_score(&data, tree.child("train").seed(), Split::Test)
    }
}
