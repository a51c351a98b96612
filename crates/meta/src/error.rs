//! What can stop a meta-learning run, with what the user can do about it.

use std::path::PathBuf;

use crate::env::BoxError;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("{what}: the environment failed")]
    Environment { what: String, source: BoxError },
    #[error("{what}: the reward is {reward}, not a finite number (a bug in the environment)")]
    NonFiniteReward { what: String, reward: f64 },
    #[error("cannot write `{}`", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("checkpoint `{}` cannot be used: {message}", path.display())]
    BadCheckpoint { path: PathBuf, message: String },
    #[error(
        "`{}` already holds a run\n  hint: pass --resume to continue it, or choose another output directory with --out",
        path.display()
    )]
    RunExists { path: PathBuf },
    #[error("cannot start {threads} worker threads: {message}")]
    Threads { threads: usize, message: String },
    #[error("cannot build the environment for seed {seed}")]
    EnvironmentSetup { seed: usize, source: BoxError },
    #[error("`--seeds {0}`: give 1 to 1000 seeds (the bound of the config's `study.seeds`)")]
    Seeds(usize),
    #[error(
        "{0}\n  hint: fix the config's `study` section or the --method, --compare and --test-budgets options"
    )]
    Study(l2s_core::config::InvalidField),
    #[error(
        "Slurm: `{command}` failed: {message}\n  hint: run the driver where Slurm's client commands (sbatch, squeue, scontrol) are on the PATH and reach the cluster (SLURM_CONF), or use the local executor (`--executor local`)"
    )]
    SlurmUnavailable { command: String, message: String },
    #[error(
        "Slurm refused {what}: {message}\n  sbatch {args}\n  hint: check the config's `executor: Slurm(...)` settings (partition, time_limit, memory, extra_args)"
    )]
    SlurmSubmit { what: String, args: String, message: String },
    #[error(transparent)]
    SlurmTaskFailed(Box<SlurmTaskFailure>),
}

/// An evaluation that failed on Slurm more often than the config's `retries` allow.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what} failed on Slurm {attempts} times (retries exhausted); last as array task {task_id}: {state}, exit code {exit_code}\n  log: {}\n{log_tail}",
    log.display()
)]
pub struct SlurmTaskFailure {
    pub what: String,
    pub attempts: usize,
    pub task_id: String,
    pub state: String,
    pub exit_code: String,
    pub log: PathBuf,
    /// The end of the task's log, where the worker's own error is.
    pub log_tail: String,
}
