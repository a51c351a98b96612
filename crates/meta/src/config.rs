//! Settings of the meta-learner, read from the `meta` section of an experiment config.

use l2s_core::config::{InvalidField, Validate, check_count, check_range};
use serde::{Deserialize, Serialize};

/// Where the policy's Gaussian means start, in normalised units (the bounds map to [0, 1]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum InitMean {
    /// Every mean at the centre of its bounds.
    Centre,
    /// Each mean drawn uniformly from `[low, high]` with the run's seed.
    Uniform { low: f64, high: f64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Initial standard deviation of each Gaussian, normalised units.
    pub init_std: f64,
    /// Learn the log standard deviations along with the means.
    pub learn_std: bool,
    /// Floor under every standard deviation, so exploration never collapses.
    pub min_std: f64,
    pub init_mean: InitMean,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaConfig {
    /// Policy iterations.
    pub iterations: usize,
    /// K: parameter vectors sampled (and main task models trained) per iteration.
    pub samples_per_iteration: usize,
    /// Adam step size on ω.
    pub learning_rate: f64,
    /// Weight kept of the old baseline when the mean reward of an iteration is folded in:
    /// b ← decay·b + (1 − decay)·mean(R).
    pub baseline_decay: f64,
    /// Largest L2 norm of the policy gradient; larger gradients are scaled down.
    pub grad_clip: f64,
    /// Weight of the policy entropy added to the objective (0 disables it).
    #[serde(default)]
    pub entropy_bonus: f64,
    /// Divide advantages by their standard deviation within the iteration.
    #[serde(default)]
    pub normalise_advantages: bool,
    /// Worker threads for the K evaluations of an iteration (0: one per core).
    #[serde(default)]
    pub threads: usize,
    pub policy: PolicyConfig,
}

impl Validate for PolicyConfig {
    fn validate(&self) -> Result<(), InvalidField> {
        check_range("min_std", self.min_std, 1e-4, 1.0)?;
        check_range("init_std", self.init_std, self.min_std, 1.0)?;
        if let InitMean::Uniform { low, high } = self.init_mean {
            check_range("init_mean.low", low, 0.0, 1.0)?;
            check_range("init_mean.high", high, low, 1.0)?;
        }
        Ok(())
    }
}

impl Validate for MetaConfig {
    fn validate(&self) -> Result<(), InvalidField> {
        check_count("iterations", self.iterations, 1, 100_000)?;
        check_count("samples_per_iteration", self.samples_per_iteration, 1, 100_000)?;
        check_range("learning_rate", self.learning_rate, 1e-8, 10.0)?;
        check_range("baseline_decay", self.baseline_decay, 0.0, 1.0)?;
        check_range("grad_clip", self.grad_clip, 1e-8, 1e8)?;
        check_range("entropy_bonus", self.entropy_bonus, 0.0, 10.0)?;
        check_count("threads", self.threads, 0, 1024)?;
        self.policy.validate().map_err(|e| e.within("policy"))
    }
}
