//! Where a batch of evaluations runs: on this machine's worker pool, or as one Slurm job
//! array per batch ([`crate::slurm`]). Both return the same evaluations in job order: each
//! evaluation is a pure function of its [`Job`] and the environment, which every worker
//! rebuilds from the same config and seed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use l2s_core::ParamValues;
use l2s_core::config::{InvalidField, Validate, check_count};
use serde::{Deserialize, Serialize};

use crate::env::{BoxError, Environment, Evaluation, Split};
use crate::error::MetaError;
use crate::pool::{run_jobs, worker_pool};
use crate::progress::Progress;
use crate::slurm::SlurmRunner;
use crate::worker::ExperimentSpec;

/// `executor:` in an experiment config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum ExecutorConfig {
    /// This machine's worker pool (`meta.threads` workers).
    #[default]
    Local,
    /// One Slurm job array per batch of evaluations.
    Slurm(SlurmConfig),
}

impl Validate for ExecutorConfig {
    fn validate(&self) -> Result<(), InvalidField> {
        match self {
            ExecutorConfig::Local => Ok(()),
            ExecutorConfig::Slurm(slurm) => slurm.validate().map_err(|e| e.within("Slurm")),
        }
    }
}

/// How each array task is requested from Slurm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmConfig {
    /// `--partition` (none: the cluster's default partition).
    pub partition: Option<String>,
    /// `--time` per evaluation, in Slurm's format ("30", "1:00:00", "1-0").
    pub time_limit: Option<String>,
    /// `--cpus-per-task`; the evaluation uses that many threads.
    pub cpus_per_task: usize,
    /// `--gpus-per-task` (0: none; the main task models then train on the CPU unless the
    /// config's `backend` asks for the GPU).
    pub gpus_per_task: usize,
    /// `--mem` per evaluation ("4G").
    pub memory: Option<String>,
    /// At most this many array tasks at once (`--array=...%P`; none: no limit).
    pub max_running: Option<usize>,
    /// Further `sbatch` arguments, e.g. `["--account=vision", "--qos=short"]`.
    pub extra_args: Vec<String>,
    /// A failed or cancelled evaluation is submitted again up to this many times.
    pub retries: usize,
    /// Seconds between looks at the queue and the results.
    pub poll_interval_s: f64,
    /// The `l2s` binary the tasks run, as the nodes see it (default: the driver's own).
    pub program: Option<PathBuf>,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        Self {
            partition: None,
            time_limit: None,
            cpus_per_task: 1,
            gpus_per_task: 0,
            memory: None,
            max_running: None,
            extra_args: Vec::new(),
            retries: 2,
            poll_interval_s: 0.5,
            program: None,
        }
    }
}

impl Validate for SlurmConfig {
    fn validate(&self) -> Result<(), InvalidField> {
        check_count("cpus_per_task", self.cpus_per_task, 1, 1024)?;
        check_count("gpus_per_task", self.gpus_per_task, 0, 64)?;
        if let Some(p) = self.max_running {
            check_count("max_running", p, 1, 100_000)?;
        }
        check_count("retries", self.retries, 0, 100)?;
        l2s_core::config::check_range("poll_interval_s", self.poll_interval_s, 0.05, 600.0)?;
        for (field, value) in
            [("partition", &self.partition), ("time_limit", &self.time_limit), ("memory", &self.memory)]
        {
            if value.as_ref().is_some_and(|v| v.trim().is_empty() || v.contains(char::is_whitespace)) {
                return Err(InvalidField::new(
                    field,
                    "must be one word, e.g. \"gpu\", \"1:00:00\" or \"4G\"",
                ));
            }
        }
        Ok(())
    }
}

/// `--executor` on the command line: replaces the config's choice (with Slurm's default
/// settings when the config has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecutorKind {
    Local,
    Slurm,
}

impl ExecutorConfig {
    /// The config's executor with `--executor` applied.
    pub fn overridden(&self, kind: Option<ExecutorKind>) -> ExecutorConfig {
        match (kind, self) {
            (None, configured) | (Some(ExecutorKind::Slurm), configured @ ExecutorConfig::Slurm(_)) => {
                configured.clone()
            }
            (Some(ExecutorKind::Local), _) => ExecutorConfig::Local,
            (Some(ExecutorKind::Slurm), ExecutorConfig::Local) => {
                ExecutorConfig::Slurm(SlurmConfig::default())
            }
        }
    }
}

/// One evaluation: a main-task training on data of ψ (or of the target itself) and its score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Job {
    /// [`Environment::evaluate`].
    Sample { psi: ParamValues, seed: u64, split: Split },
    /// [`Environment::evaluate_target`].
    Target { seed: u64 },
}

impl Job {
    pub fn run<E: Environment>(&self, env: &E) -> Result<Evaluation, BoxError> {
        match self {
            Job::Sample { psi, seed, split } => env.evaluate(psi, *seed, *split),
            Job::Target { seed } => env.evaluate_target(*seed),
        }
    }
}

/// A batch of evaluations: where its files go and how it is named in messages.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The study seed's directory (`seed-N`).
    pub dir: PathBuf,
    /// Index of the study seed (workers rebuild that seed's environment).
    pub study_seed: usize,
    /// File-system name: `iteration-3`, `final-learned`, ...
    pub name: String,
    /// What the messages call it: "iteration 3", "random ψ", ...
    pub what: String,
}

/// Runs batches of evaluations; chosen once per study.
pub struct Executor {
    kind: Kind,
}

enum Kind {
    Local { threads: usize, pool: Mutex<Option<Arc<rayon::ThreadPool>>> },
    Slurm(Box<SlurmRunner>),
}

impl Executor {
    /// This machine's pool: `threads` workers (0: one per core), created on first use.
    pub fn local(threads: usize) -> Self {
        Self { kind: Kind::Local { threads, pool: Mutex::new(None) } }
    }

    /// Slurm job arrays, whose tasks run `l2s evaluate` on job files under the study's
    /// output directory (which must be on a file system the nodes share).
    pub fn slurm(config: SlurmConfig, spec: ExperimentSpec) -> Result<Self, MetaError> {
        Ok(Self { kind: Kind::Slurm(Box::new(SlurmRunner::new(config, spec)?)) })
    }

    /// The executor a config and `--executor` choose.
    pub fn for_study(
        config: &ExecutorConfig,
        threads: usize,
        spec: impl FnOnce() -> ExperimentSpec,
    ) -> Result<Self, MetaError> {
        match config {
            ExecutorConfig::Local => Ok(Self::local(threads)),
            ExecutorConfig::Slurm(slurm) => Self::slurm(slurm.clone(), spec()),
        }
    }

    /// Runs `jobs` and returns their evaluations in job order; the first failure (after
    /// Slurm's retries) stops the batch.
    pub fn evaluate<E: Environment>(
        &self,
        env: &E,
        batch: &Batch,
        jobs: &[Job],
        progress: &Progress,
    ) -> Result<Vec<Evaluation>, MetaError> {
        let evaluations = match &self.kind {
            Kind::Local { threads, pool } => {
                let pool = {
                    let mut slot = pool.lock().unwrap_or_else(PoisonError::into_inner);
                    match slot.as_ref() {
                        Some(pool) => Arc::clone(pool),
                        None => Arc::clone(slot.insert(Arc::new(worker_pool(*threads, env.max_parallel())?))),
                    }
                };
                evaluate_locally(env, &pool, batch, jobs, progress)?
            }
            Kind::Slurm(runner) => runner.run_batch(batch, jobs, progress)?,
        };
        for (k, eval) in evaluations.iter().enumerate() {
            if !eval.reward.is_finite() {
                return Err(MetaError::NonFiniteReward { what: sample_name(batch, k), reward: eval.reward });
            }
        }
        Ok(evaluations)
    }
}

/// "iteration 3, sample 5": how messages name one evaluation.
pub(crate) fn sample_name(batch: &Batch, k: usize) -> String {
    format!("{}, sample {k}", batch.what)
}

fn evaluate_locally<E: Environment>(
    env: &E,
    pool: &rayon::ThreadPool,
    batch: &Batch,
    jobs: &[Job],
    progress: &Progress,
) -> Result<Vec<Evaluation>, MetaError> {
    let done = std::sync::atomic::AtomicUsize::new(0);
    run_jobs(pool, jobs.len(), |k| {
        let eval = jobs[k]
            .run(env)
            .map_err(|source| MetaError::Environment { what: sample_name(batch, k), source })?;
        progress.advance(1);
        progress.batch(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1, jobs.len());
        Ok(eval)
    })
    .into_iter()
    .collect()
}

/// `path` made absolute against the current directory, for files that processes on other
/// machines (or in other directories) read.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_choice_replaces_the_configs() {
        let slurm =
            ExecutorConfig::Slurm(SlurmConfig { partition: Some("gpu".into()), ..SlurmConfig::default() });
        assert_eq!(slurm.overridden(None), slurm);
        assert_eq!(slurm.overridden(Some(ExecutorKind::Slurm)), slurm);
        assert_eq!(slurm.overridden(Some(ExecutorKind::Local)), ExecutorConfig::Local);
        assert_eq!(
            ExecutorConfig::Local.overridden(Some(ExecutorKind::Slurm)),
            ExecutorConfig::Slurm(SlurmConfig::default())
        );
    }

    #[test]
    fn slurm_settings_are_checked() {
        let bad = SlurmConfig { cpus_per_task: 0, ..SlurmConfig::default() };
        assert!(
            ExecutorConfig::Slurm(bad)
                .validate()
                .expect_err("0 cpus")
                .to_string()
                .contains("Slurm.cpus_per_task")
        );
        let bad = SlurmConfig { memory: Some("4 G".into()), ..SlurmConfig::default() };
        assert!(bad.validate().expect_err("two words").to_string().contains("memory"));
        assert!(SlurmConfig::default().validate().is_ok());
    }
}
