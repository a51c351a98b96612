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
    /// How ψ is searched: the paper's REINFORCE (default), CMA-ES or TPE. Every method asks
    /// for K = `samples_per_iteration` ψ per iteration, so budgets are equal.
    #[serde(default)]
    pub method: Method,
    /// REINFORCE's policy; its `init_mean` is also where CMA-ES's mean starts.
    pub policy: PolicyConfig,
}

/// A search method over ψ (README, "Search methods").
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Method {
    /// The paper's policy gradient (Algorithm 1) with the `meta` settings above.
    #[default]
    Reinforce,
    /// CMA-ES (Hansen 2016) on the normalised continuous dimensions, categorical dimensions
    /// by a rank-weighted categorical distribution; λ = K.
    CmaEs(CmaEsConfig),
    /// A multivariate tree-structured Parzen estimator (Bergstra et al. 2011).
    Tpe(TpeConfig),
}

impl Method {
    /// Stable key for records, tables and plots.
    pub fn key(&self) -> &'static str {
        match self {
            Method::Reinforce => "reinforce",
            Method::CmaEs(_) => "cma_es",
            Method::Tpe(_) => "tpe",
        }
    }

    /// Name for tables and plots.
    pub fn label(&self) -> &'static str {
        match self {
            Method::Reinforce => "REINFORCE",
            Method::CmaEs(_) => "CMA-ES",
            Method::Tpe(_) => "TPE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CmaEsConfig {
    /// Initial step size σ, normalised units (the bounds span 1).
    pub init_sigma: f64,
    /// Step of each categorical distribution towards the rank-weighted choices of the best
    /// half of an iteration.
    pub categorical_rate: f64,
}

impl Default for CmaEsConfig {
    fn default() -> Self {
        Self { init_sigma: 0.3, categorical_rate: 0.3 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TpeConfig {
    /// Evaluations drawn uniformly before the model takes over.
    pub startup: usize,
    /// Fraction of the evaluations (by reward) that the "good" density is built from.
    pub gamma: f64,
    /// Candidates drawn from the good density per ψ asked; the one with the highest
    /// good/bad density ratio (expected improvement) is taken.
    pub candidates: usize,
}

impl Default for TpeConfig {
    fn default() -> Self {
        Self { startup: 16, gamma: 0.25, candidates: 24 }
    }
}

impl Validate for Method {
    fn validate(&self) -> Result<(), InvalidField> {
        match self {
            Method::Reinforce => Ok(()),
            Method::CmaEs(c) => {
                check_range("CmaEs.init_sigma", c.init_sigma, 1e-3, 2.0)?;
                check_range("CmaEs.categorical_rate", c.categorical_rate, 0.0, 1.0)
            }
            Method::Tpe(t) => {
                check_count("Tpe.startup", t.startup, 1, 100_000)?;
                check_range("Tpe.gamma", t.gamma, 0.01, 0.99)?;
                check_count("Tpe.candidates", t.candidates, 1, 10_000)
            }
        }
    }
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
        self.method.validate().map_err(|e| e.within("method"))?;
        self.policy.validate().map_err(|e| e.within("policy"))
    }
}
