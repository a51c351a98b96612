//! The toy environment: ψ are the component means of a two-class Gaussian mixture; the
//! main task model is an RBF SVM; the reward is its accuracy on data from the target.

use l2s_core::config::{InvalidField, Validate, check_count, check_range};
use l2s_core::{Dim, ParamSpace, ParamValues, SeedTree};
use l2s_meta::{BoxError, Environment, Evaluation, Split};
use serde::{Deserialize, Serialize};

use crate::mixture::{Component, Dataset, Mixture};
use crate::svm::{Svm, SvmConfig};

/// The simulator's fixed structure; only the component means are searched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorConfig {
    /// Gaussian components per class.
    pub components_per_class: usize,
    /// Standard deviation of every component.
    pub std: f64,
    /// Bounds of each mean coordinate.
    pub mean_bounds: (f64, f64),
}

impl Validate for SimulatorConfig {
    fn validate(&self) -> Result<(), InvalidField> {
        check_count("components_per_class", self.components_per_class, 1, 16)?;
        check_range("std", self.std, 1e-3, 100.0)?;
        check_range("mean_bounds.0", self.mean_bounds.0, -1e3, 1e3)?;
        check_range("mean_bounds.1", self.mean_bounds.1, self.mean_bounds.0 + 1e-6, 1e3)
    }
}

impl SimulatorConfig {
    /// `class{c}.mean{j}.{x|y}` for every component, all within `mean_bounds`.
    pub fn space(&self) -> ParamSpace {
        let (lo, hi) = self.mean_bounds;
        let mut dims = Vec::new();
        for c in 0..2 {
            for j in 0..self.components_per_class {
                for axis in ["x", "y"] {
                    dims.push(Dim::continuous(format!("class{c}.mean{j}.{axis}"), lo, hi));
                }
            }
        }
        // Validated above: at least one component, increasing bounds, unique names.
        ParamSpace::new(dims).unwrap_or_else(|e| unreachable!("toy space is valid by construction: {e}"))
    }

    /// The mixture the simulator generates for ψ (equal weights, balanced classes).
    pub fn mixture(&self, psi: &ParamValues) -> Result<Mixture, BoxError> {
        let n = self.components_per_class;
        let mut classes = vec![Vec::with_capacity(n), Vec::with_capacity(n)];
        for (c, class) in classes.iter_mut().enumerate() {
            for j in 0..n {
                let at = 2 * (c * n + j);
                let x = psi.continuous(at).ok_or("ψ does not match the toy space")?;
                let y = psi.continuous(at + 1).ok_or("ψ does not match the toy space")?;
                class.push(Component { mean: (x, y), std: self.std, weight: 1.0 });
            }
        }
        Ok(Mixture { classes, class_balance: 0.5 })
    }
}

/// Sizes of the generated and held-out sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// M: points the simulator generates per main-task training.
    pub train_samples: usize,
    pub validation_samples: usize,
    pub test_samples: usize,
}

impl Validate for DataConfig {
    fn validate(&self) -> Result<(), InvalidField> {
        check_count("train_samples", self.train_samples, 2, 5000)?;
        check_count("validation_samples", self.validation_samples, 2, 1_000_000)?;
        check_count("test_samples", self.test_samples, 2, 1_000_000)
    }
}

#[derive(Debug, Clone)]
pub struct ToyEnv {
    space: ParamSpace,
    simulator: SimulatorConfig,
    target: Mixture,
    train_samples: usize,
    svm: SvmConfig,
    validation: Dataset,
    test: Dataset,
}

impl ToyEnv {
    /// Draws the validation and test sets from `target` with seeds below `seeds`.
    pub fn new(
        simulator: SimulatorConfig,
        target: Mixture,
        data: &DataConfig,
        svm: SvmConfig,
        seeds: SeedTree,
    ) -> Self {
        let validation = target.sample(data.validation_samples, &mut seeds.child("validation").rng());
        let test = target.sample(data.test_samples, &mut seeds.child("test").rng());
        Self {
            space: simulator.space(),
            simulator,
            target,
            train_samples: data.train_samples,
            svm,
            validation,
            test,
        }
    }

    pub fn simulator(&self) -> &SimulatorConfig {
        &self.simulator
    }

    pub fn target(&self) -> &Mixture {
        &self.target
    }

    pub fn test_set(&self) -> &Dataset {
        &self.test
    }

    /// The SVM trained on M points drawn from `mixture` with `seed`.
    pub fn train_on(&self, mixture: &Mixture, seed: u64) -> Svm {
        Svm::train(&mixture.sample(self.train_samples, &mut SeedTree::new(seed).rng()), &self.svm)
    }

    fn score(&self, svm: &Svm, split: Split) -> Evaluation {
        let set = match split {
            Split::Validation => &self.validation,
            Split::Test => &self.test,
        };
        Evaluation {
            reward: svm.accuracy(set),
            metrics: vec![("support_vectors".into(), svm.support_vectors() as f64)],
        }
    }
}

impl Environment for ToyEnv {
    fn space(&self) -> &ParamSpace {
        &self.space
    }

    fn metric_name(&self) -> &str {
        "accuracy"
    }

    fn evaluate(&self, psi: &ParamValues, seed: u64, split: Split) -> Result<Evaluation, BoxError> {
        self.space.check(psi)?;
        let mixture = self.simulator.mixture(psi)?;
        Ok(self.score(&self.train_on(&mixture, seed), split))
    }

    fn evaluate_target(&self, seed: u64) -> Result<Evaluation, BoxError> {
        Ok(self.score(&self.train_on(&self.target, seed), Split::Test))
    }
}
