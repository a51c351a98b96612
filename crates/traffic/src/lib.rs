//! The paper's traffic experiments: the meta-learner tunes the traffic simulator's ψ so
//! that a main task model (car counting or semantic segmentation) trained only on rendered
//! data does best on a validation set rendered from a target ψ_real it never sees.
//!
//! - [`env`]: [`TrafficEnv`], the [`l2s_meta::Environment`]: ψ → render M samples in
//!   memory → train the model for ξ epochs → reward on the target's validation set.
//! - [`experiment`]: configs, the multi-seed study and its report.

pub mod env;
pub mod experiment;

pub use env::{DomainShift, Target, Task, TrafficEnv};
pub use experiment::{TrafficConfig, TrafficError, run_traffic_experiment};
