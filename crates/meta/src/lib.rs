//! The meta-learner of "Learning to Simulate" (Ruiz et al., ICLR 2019), Algorithm 1:
//! a factorised policy π_ω over simulator parameters ψ, K samples per iteration, a main
//! task model trained on each sample's data, its validation score as reward, and a
//! REINFORCE update with a moving-average baseline; CMA-ES and TPE search the same space
//! with the same budget, for comparison (module `search`).
//!
//! Everything here is generic over an [`Environment`]: the toy Gaussian-mixture task and
//! the traffic simulator plug in the same way.

pub mod config;
pub mod env;
pub mod error;
pub mod executor;
pub mod optim;
pub mod policy;
pub mod pool;
pub mod progress;
pub mod records;
pub mod report;
pub mod run;
pub mod search;
mod slurm;
pub mod study;
pub mod worker;

pub use config::{CmaEsConfig, MetaConfig, Method, PolicyConfig, TpeConfig};
pub use env::{BoxError, Environment, Evaluation, Split};
pub use error::{MetaError, SlurmTaskFailure};
pub use executor::{Executor, ExecutorConfig, ExecutorKind, Job, SlurmConfig};
pub use policy::{Policy, PolicySample};
pub use run::{MetaOutcome, train_policy};
pub use search::{Reinforce, Searcher};
pub use study::{MethodSummary, MetricSummary, StudyConfig, StudyRunOptions, StudySummary, run_study};
