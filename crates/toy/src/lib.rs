//! The paper's toy experiment (Figure 2 of the poster): 2-D binary classification with data
//! from a Gaussian mixture whose component means are ψ, an RBF-kernel SVM as the main task
//! model, and the accuracy on a validation set drawn from a target mixture as the reward.

pub mod env;
pub mod experiment;
pub mod mixture;
pub mod plots;
pub mod svm;

pub use env::{SimulatorConfig, ToyEnv};
pub use experiment::{ToyConfig, ToyError, evaluate_toy_job, run_toy_experiment};
pub use mixture::{Component, Dataset, Mixture};
pub use svm::{Svm, SvmConfig};
