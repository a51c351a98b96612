//! A batch of evaluations as one Slurm job array.
//!
//! The driver writes a job file per evaluation into `seed-N/slurm/<batch>/`, submits
//! `sbatch --array` of a script that runs `l2s evaluate --job job-$SLURM_ARRAY_TASK_ID.json`,
//! polls the queue (`squeue`) and the result files, and submits the tasks that ended without
//! a result again, up to `retries` times. Every submission is recorded in `arrays.json`, so
//! that a driver killed at any point and started again with `--resume` first waits for the
//! tasks it had queued, then submits only what is still missing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::env::Evaluation;
use crate::error::{MetaError, SlurmTaskFailure};
use crate::executor::{Batch, Job, SlurmConfig, absolute, sample_name};
use crate::progress::Progress;
use crate::records::{create_dir, write_atomic};
use crate::worker::{ExperimentSpec, JobFile, read_result, write_json};

/// How long the queue may stay unreadable (`squeue` failing) before the run stops.
const QUEUE_PATIENCE: Duration = Duration::from_secs(120);

/// One `sbatch` of some of a batch's tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Submission {
    job_id: String,
    tasks: Vec<usize>,
    /// The tasks' log files, `%a` standing for the array index.
    log_pattern: String,
}

impl Submission {
    fn log(&self, task: usize) -> PathBuf {
        PathBuf::from(self.log_pattern.replace("%a", &task.to_string()))
    }
}

/// Why a task ended without a result, as far as Slurm still knows.
#[derive(Debug, Clone)]
struct Failure {
    task_id: String,
    state: String,
    exit_code: String,
    log: PathBuf,
}

pub(crate) struct SlurmRunner {
    config: SlurmConfig,
    program: PathBuf,
    cwd: PathBuf,
    spec: ExperimentSpec,
    spec_path: PathBuf,
    spec_written: Mutex<bool>,
}

fn unavailable(command: &str, message: impl Into<String>) -> MetaError {
    MetaError::SlurmUnavailable { command: command.into(), message: message.into() }
}

/// Runs a Slurm client command; its stdout, or its stderr as the error.
fn slurm_command(program: &str, args: &[String]) -> Result<String, String> {
    let output = Command::new(program).args(args).output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("`{program}` is not on the PATH"),
        _ => e.to_string(),
    })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

/// `0-3,5,7-9`: the indices as Slurm's array ranges.
fn array_ranges(tasks: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < tasks.len() {
        let mut j = i;
        while j + 1 < tasks.len() && tasks[j + 1] == tasks[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { tasks[i].to_string() } else { format!("{}-{}", tasks[i], tasks[j]) });
        i = j + 1;
    }
    parts.join(",")
}

/// `'text'` for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

impl SlurmRunner {
    pub(crate) fn new(config: SlurmConfig, spec: ExperimentSpec) -> Result<Self, MetaError> {
        slurm_command("sbatch", &["--version".into()])
            .map_err(|message| unavailable("sbatch --version", message))?;
        let program = match &config.program {
            Some(program) => absolute(program),
            None => std::env::current_exe()
                .map_err(|e| unavailable("current_exe", format!("cannot find the l2s binary: {e}")))?,
        };
        let cwd = std::env::current_dir()
            .map_err(|e| unavailable("current_dir", format!("cannot read the working directory: {e}")))?;
        let spec_path = absolute(&spec.options.out.join("slurm").join("experiment.json"));
        Ok(Self { config, program, cwd, spec, spec_path, spec_written: Mutex::new(false) })
    }

    /// Writes the experiment's description once, when the first batch runs (after the
    /// study has checked that the output directory may be used).
    fn write_spec(&self) -> Result<(), MetaError> {
        let mut written = self.spec_written.lock().unwrap_or_else(PoisonError::into_inner);
        if !*written {
            if let Some(dir) = self.spec_path.parent() {
                create_dir(dir)?;
            }
            write_json(&self.spec_path, &self.spec)?;
            *written = true;
        }
        Ok(())
    }

    pub(crate) fn run_batch(
        &self,
        batch: &Batch,
        jobs: &[Job],
        progress: &Progress,
    ) -> Result<Vec<Evaluation>, MetaError> {
        self.write_spec()?;
        let dir = absolute(&batch.dir.join("slurm").join(&batch.name));
        create_dir(&dir)?;
        let result_path = |k: usize| dir.join(format!("result-{k}.json"));
        for (k, job) in jobs.iter().enumerate() {
            let file = JobFile::new(
                self.spec_path.clone(),
                batch.study_seed,
                sample_name(batch, k),
                job.clone(),
                result_path(k),
            );
            let path = dir.join(format!("job-{k}.json"));
            let current =
                std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str::<JobFile>(&t).ok());
            if current.as_ref() != Some(&file) {
                write_json(&path, &file)?;
            }
        }
        let script = dir.join("run.sh");
        write_atomic(&script, self.script(&dir).as_bytes())?;

        let mut results: Vec<Option<Evaluation>> =
            jobs.iter().enumerate().map(|(k, job)| read_result(&result_path(k), job)).collect();
        let mut reported = 0;
        let mut report = |results: &[Option<Evaluation>]| {
            let done = results.iter().filter(|r| r.is_some()).count();
            if done > reported {
                progress.advance((done - reported) as u64);
                progress.batch(done, results.len());
                reported = done;
            }
        };
        report(&results);

        let records_path = dir.join("arrays.json");
        let mut submissions: Vec<Submission> = std::fs::read_to_string(&records_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        // A driver killed while its arrays ran: wait for what they still have queued.
        for submission in &submissions {
            if results.iter().any(Option::is_none) {
                self.wait(submission, jobs, &result_path, &mut results, &mut report, progress)?;
            }
        }
        let mut attempts = vec![0usize; jobs.len()];
        for submission in &submissions {
            for &k in &submission.tasks {
                if k < jobs.len() && results[k].is_none() {
                    attempts[k] += 1;
                }
            }
        }
        loop {
            let missing: Vec<usize> = (0..jobs.len()).filter(|&k| results[k].is_none()).collect();
            if missing.is_empty() {
                break;
            }
            if let Some(&k) = missing.iter().find(|&&k| attempts[k] > self.config.retries) {
                let last = submissions.iter().rev().find(|s| s.tasks.contains(&k));
                let failure = last.map(|s| self.failure(s, k));
                return Err(task_failed(batch, k, attempts[k], failure));
            }
            let submission = self.submit(&dir, &script, &missing, submissions.len(), batch)?;
            submissions.push(submission.clone());
            write_json(&records_path, &submissions)?;
            tracing::debug!(
                "{}: submitted {} tasks as Slurm job {}",
                batch.what,
                missing.len(),
                submission.job_id
            );
            self.wait(&submission, jobs, &result_path, &mut results, &mut report, progress)?;
            for &k in &missing {
                if results[k].is_none() {
                    attempts[k] += 1;
                    let failure = self.failure(&submission, k);
                    tracing::warn!(
                        "{}: Slurm task {} ended without a result ({}, exit code {}; log {}){}",
                        sample_name(batch, k),
                        failure.task_id,
                        failure.state,
                        failure.exit_code,
                        failure.log.display(),
                        if attempts[k] <= self.config.retries { "; submitting it again" } else { "" }
                    );
                }
            }
        }
        Ok(results.into_iter().flatten().collect())
    }

    fn script(&self, dir: &Path) -> String {
        format!(
            "#!/bin/sh\n\
             # One evaluation of this batch per Slurm array task, written by l2s. To rerun task 3 by\n\
             # hand: SLURM_ARRAY_TASK_ID=3 sh run.sh\n\
             export RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-1}}\"\n\
             exec {} evaluate --job {}/job-\"${{SLURM_ARRAY_TASK_ID}}\".json\n",
            shell_quote(&self.program.to_string_lossy()),
            shell_quote(&dir.to_string_lossy())
        )
    }

    fn submit(
        &self,
        dir: &Path,
        script: &Path,
        tasks: &[usize],
        number: usize,
        batch: &Batch,
    ) -> Result<Submission, MetaError> {
        let c = &self.config;
        let log_pattern = dir.join(format!("log-%a.s{number}.log")).to_string_lossy().into_owned();
        let limit = c.max_running.map_or_else(String::new, |p| format!("%{p}"));
        let mut args = vec![
            "--parsable".to_string(),
            format!("--array={}{limit}", array_ranges(tasks)),
            format!("--job-name=l2s-{}", batch.name),
            format!("--output={log_pattern}"),
            format!("--chdir={}", self.cwd.display()),
            format!("--cpus-per-task={}", c.cpus_per_task),
        ];
        if c.gpus_per_task > 0 {
            args.push(format!("--gpus-per-task={}", c.gpus_per_task));
        }
        let optional = [("--partition", &c.partition), ("--time", &c.time_limit), ("--mem", &c.memory)];
        for (flag, value) in optional {
            if let Some(value) = value {
                args.push(format!("{flag}={value}"));
            }
        }
        args.extend(c.extra_args.iter().cloned());
        args.push(script.to_string_lossy().into_owned());
        let out = slurm_command("sbatch", &args).map_err(|message| MetaError::SlurmSubmit {
            what: batch.what.clone(),
            args: args.join(" "),
            message,
        })?;
        let job_id = out.trim().split(';').next().unwrap_or_default().trim().to_string();
        if job_id.is_empty() || !job_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MetaError::SlurmSubmit {
                what: batch.what.clone(),
                args: args.join(" "),
                message: format!("sbatch printed `{}`, not a job id", out.trim()),
            });
        }
        Ok(Submission { job_id, tasks: tasks.to_vec(), log_pattern })
    }

    /// The array indices of `job_id` still pending or running.
    fn queued(&self, job_id: &str) -> Result<BTreeSet<usize>, String> {
        let args = ["-h", "-r", "-j", job_id, "-o", "%K"].map(String::from);
        match slurm_command("squeue", &args) {
            Ok(out) => Ok(out.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            // A job that ended long ago is no longer known to the controller.
            Err(message) if message.contains("Invalid job id") => Ok(BTreeSet::new()),
            Err(message) => Err(message),
        }
    }

    /// Polls until none of `submission`'s tasks is queued or running any more, collecting
    /// the results as they appear.
    fn wait(
        &self,
        submission: &Submission,
        jobs: &[Job],
        result_path: &dyn Fn(usize) -> PathBuf,
        results: &mut [Option<Evaluation>],
        report: &mut dyn FnMut(&[Option<Evaluation>]),
        progress: &Progress,
    ) -> Result<(), MetaError> {
        let poll = Duration::from_secs_f64(self.config.poll_interval_s);
        let mut unreadable_since: Option<Instant> = None;
        loop {
            let collect = |results: &mut [Option<Evaluation>]| {
                for &k in &submission.tasks {
                    if k < jobs.len() && results[k].is_none() {
                        results[k] = read_result(&result_path(k), &jobs[k]);
                    }
                }
            };
            collect(results);
            report(results);
            if submission.tasks.iter().all(|&k| k >= jobs.len() || results[k].is_some()) {
                return Ok(());
            }
            match self.queued(&submission.job_id) {
                Ok(queued) if queued.is_empty() => {
                    // A task may have written its result just before it left the queue.
                    collect(results);
                    report(results);
                    return Ok(());
                }
                Ok(queued) => {
                    unreadable_since = None;
                    progress.detail(format!(
                        "Slurm job {}: {} tasks queued or running",
                        submission.job_id,
                        queued.len()
                    ));
                }
                Err(message) => {
                    let since = *unreadable_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > QUEUE_PATIENCE {
                        return Err(unavailable(&format!("squeue -j {}", submission.job_id), message));
                    }
                }
            }
            std::thread::sleep(poll);
        }
    }

    /// What Slurm still knows of task `k` of `submission` (`scontrol show job`).
    fn failure(&self, submission: &Submission, k: usize) -> Failure {
        let task_id = format!("{}_{k}", submission.job_id);
        let args = ["show", "job", "-o", &task_id].map(String::from);
        let record = slurm_command("scontrol", &args).unwrap_or_default();
        let field = |name: &str| {
            record
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                .map(str::to_string)
        };
        let log = submission.log(k);
        let unknown = if log.exists() {
            "state no longer known to Slurm"
        } else {
            // Without accounting, Slurm forgets an array task cancelled before it started.
            "removed from the queue before it started (cancelled, or purged)"
        };
        Failure {
            state: field("JobState").unwrap_or_else(|| unknown.into()),
            exit_code: field("ExitCode").unwrap_or_else(|| "?".into()),
            task_id,
            log,
        }
    }
}

/// The run's error for a task that failed more often than `retries` allows, with the end of
/// its log (where a worker's own error message is).
fn task_failed(batch: &Batch, k: usize, attempts: usize, failure: Option<Failure>) -> MetaError {
    let (task_id, state, exit_code, log) = match failure {
        Some(f) => (f.task_id, f.state, f.exit_code, Some(f.log)),
        None => ("?".into(), "unknown".into(), "?".into(), None),
    };
    let log_tail = log
        .as_ref()
        .and_then(|log| std::fs::read_to_string(log).ok())
        .map(|text| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(12)..].join("\n")
        })
        .unwrap_or_default();
    MetaError::SlurmTaskFailed(Box::new(SlurmTaskFailure {
        what: sample_name(batch, k),
        attempts,
        task_id,
        state,
        exit_code,
        log: log.unwrap_or_default(),
        log_tail,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_ranges_compress_runs() {
        assert_eq!(array_ranges(&[0, 1, 2, 3]), "0-3");
        assert_eq!(array_ranges(&[1, 3, 4, 5, 9]), "1,3-5,9");
        assert_eq!(array_ranges(&[7]), "7");
    }

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
