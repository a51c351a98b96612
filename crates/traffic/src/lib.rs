//! The paper's traffic experiments: the meta-learner tunes the traffic simulator's ψ so
//! that a main task model (car counting or semantic segmentation) trained only on rendered
//! data does best on a validation set rendered from a target ψ_real it never sees.
//!
//! - [`settings`]: the task, the target (ψ_real and its domain shift, or a dataset), the
//!   sizes of the data sets, the main-task training.
//! - [`learned`]: the dimensions of ψ a study learns, the rest fixed at `base`.
//! - [`samples`]: rendered frames as samples (classes, framing) and the dataset of a ψ.
//! - [`env`]: [`TrafficEnv`], the [`l2s_meta::Environment`]: ψ → render M samples in
//!   memory → train the model for ξ epochs → reward on the target's validation set.
//! - [`shared`]: the data every study seed shares, saved for Slurm workers and resumed runs.
//! - [`target_data`]: a labelled dataset on disk as the target (KITTI, Cityscapes, l2s's
//!   export): read, split, framed, labels mapped to the model's classes.
//! - [`experiment`]: configs and the multi-seed study; `report` writes its `report.md`
//!   and figure of samples.
//! - [`cityscapes_export`]: test predictions as Cityscapes label-id PNGs for
//!   cityscapesscripts.

pub mod cityscapes_export;
pub mod env;
pub mod experiment;
pub mod learned;
mod report;
pub mod samples;
pub mod settings;
pub mod shared;
pub mod target_data;

pub use env::{EnvSetup, TrafficEnv};
pub use experiment::{TrafficConfig, TrafficError, evaluate_traffic_job, run_traffic_experiment};
pub use learned::LearnedSpace;
pub use samples::{ClassScheme, SampleFormat};
pub use settings::{DomainShift, Target, TargetDomain, Task};
pub use target_data::TargetDataConfig;
