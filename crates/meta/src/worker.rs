//! The files between a study's driver and the processes that run its evaluations elsewhere
//! (`l2s evaluate --job FILE`): the experiment's description, one job file per evaluation
//! and one result file next to it, written atomically.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::env::{BoxError, Environment, Evaluation};
use crate::error::MetaError;
use crate::executor::Job;
use crate::records::write_atomic;
use crate::study::StudyRunOptions;

const JOB_FORMAT: u32 = 1;

/// What a worker needs to rebuild a study's environments: the driver's command line (paths
/// absolute) and the fingerprint of its config and target, so that a worker that reads
/// another config (edited since the run started) refuses instead of computing other results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSpec {
    pub options: StudyRunOptions,
    pub fingerprint: String,
}

/// One evaluation for a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobFile {
    pub format: u32,
    /// The [`ExperimentSpec`] file.
    pub experiment: PathBuf,
    /// Which study seed's environment evaluates the job.
    pub study_seed: usize,
    /// How messages name the evaluation ("iteration 3, sample 5").
    pub what: String,
    pub job: Job,
    /// Where the worker writes its [`JobResult`].
    pub result: PathBuf,
}

/// What a worker wrote: the job it ran (so a stale file is never taken for another job's
/// result) and its evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    pub job: Job,
    pub evaluation: Evaluation,
    pub wall_s: f64,
    /// The node that ran it (`SLURMD_NODENAME`), for the records.
    pub host: String,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot read job file `{}`: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("`{}` is not a job file l2s can run: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error(
        "`{}`: the experiment's config or target changed since the run started, so this worker would compute other results\n  hint: restore the config and target the run started with, or start a new run with another --out",
        path.display()
    )]
    Changed { path: PathBuf },
    #[error("{what}: the environment failed")]
    Environment { what: String, source: BoxError },
    #[error(transparent)]
    Write(#[from] MetaError),
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, WorkerError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| WorkerError::Read { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text)
        .map_err(|e| WorkerError::Parse { path: path.to_path_buf(), message: e.to_string() })
}

pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), MetaError> {
    let json = serde_json::to_vec_pretty(value)
        .map_err(|e| MetaError::Write { path: path.to_path_buf(), source: std::io::Error::other(e) })?;
    write_atomic(path, &json)
}

impl JobFile {
    pub(crate) fn new(
        experiment: PathBuf,
        study_seed: usize,
        what: String,
        job: Job,
        result: PathBuf,
    ) -> Self {
        Self { format: JOB_FORMAT, experiment, study_seed, what, job, result }
    }

    /// Reads a job file and the experiment it belongs to.
    pub fn load(path: &Path) -> Result<(JobFile, ExperimentSpec), WorkerError> {
        let job: JobFile = read_json(path)?;
        if job.format != JOB_FORMAT {
            return Err(WorkerError::Parse {
                path: path.to_path_buf(),
                message: format!(
                    "format {} is not the supported {JOB_FORMAT} (written by another l2s version)",
                    job.format
                ),
            });
        }
        let spec = read_json(&job.experiment)?;
        Ok((job, spec))
    }

    /// Refuses to run when the worker's own fingerprint of the experiment differs from the driver's.
    pub fn check_fingerprint(&self, spec: &ExperimentSpec, fingerprint: &str) -> Result<(), WorkerError> {
        if spec.fingerprint == fingerprint {
            Ok(())
        } else {
            Err(WorkerError::Changed { path: self.experiment.clone() })
        }
    }

    /// Runs the job on `env` and writes its result file.
    pub fn run<E: Environment>(&self, env: &E) -> Result<Evaluation, WorkerError> {
        let start = Instant::now();
        let evaluation = self
            .job
            .run(env)
            .map_err(|source| WorkerError::Environment { what: self.what.clone(), source })?;
        let result = JobResult {
            job: self.job.clone(),
            evaluation: evaluation.clone(),
            wall_s: start.elapsed().as_secs_f64(),
            host: std::env::var("SLURMD_NODENAME").unwrap_or_default(),
        };
        write_json(&self.result, &result)?;
        Ok(evaluation)
    }
}

/// The evaluation in `path` if it is a whole result of `job`; anything else (missing,
/// half-written by a killed writer, another job's) counts as not done.
pub(crate) fn read_result(path: &Path, job: &Job) -> Option<Evaluation> {
    let result: JobResult = read_json(path).ok()?;
    (result.job == *job).then_some(result.evaluation)
}
