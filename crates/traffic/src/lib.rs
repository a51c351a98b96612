//! The paper's traffic experiments: the meta-learner tunes the traffic simulator's ψ so
//! that a main task model (car counting or semantic segmentation) trained only on rendered
//! data does best on a validation set rendered from a target ψ_real it never sees.
//!
//! - [`env`]: [`TrafficEnv`], the [`l2s_meta::Environment`]: ψ → render M samples in
//!   memory → train the model for ξ epochs → reward on the target's validation set.
//! - [`target_data`]: a labelled dataset on disk as the target (KITTI, Cityscapes, l2s's
//!   export): read, split, framed, labels mapped to the model's classes.
//! - [`shared`]: the data every study seed shares, saved for Slurm workers and resumed runs.
//! - [`experiment`]: configs, the multi-seed study and its report.
//! - [`cityscapes_export`]: test predictions as Cityscapes label-id PNGs for
//!   cityscapesscripts.

pub mod cityscapes_export;
pub mod env;
pub mod experiment;
pub mod shared;
pub mod target_data;

pub use env::{ClassScheme, DomainShift, EnvSetup, SampleFormat, Target, TargetDomain, Task, TrafficEnv};
pub use experiment::{TrafficConfig, TrafficError, evaluate_traffic_job, run_traffic_experiment};
pub use target_data::TargetDataConfig;
