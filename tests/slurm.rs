//! The Slurm executor on a real cluster (`cargo xtask slurm-up` starts a one-node one; CI
//! always has it): the same results as the local executor, bit for bit; an array task
//! cancelled while queued or while running submitted again; a killed driver resumed; a task that keeps failing reported with
//! its log. Where no cluster is set up the tests print why and pass, unless
//! `L2S_REQUIRE_SLURM=1` (as in CI) makes that a failure.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{experiment_args, l2s, small_config, stderr, summary_without_times, tiny_traffic_config};

/// Whether a cluster answers; otherwise prints why (or fails where Slurm is required).
fn cluster_available() -> bool {
    let reason = if std::env::var_os("SLURM_CONF").is_none() {
        Some("SLURM_CONF is not set; start the local test cluster with `cargo xtask slurm-up`".to_string())
    } else {
        match Command::new("sinfo").args(["-h", "-o", "%t"]).output() {
            Ok(o) if o.status.success() => {
                let states = String::from_utf8_lossy(&o.stdout).into_owned();
                (!states.lines().any(|s| matches!(s.trim(), "idle" | "mix" | "alloc")))
                    .then(|| format!("no node is up (sinfo: {})", states.trim()))
            }
            Ok(o) => Some(format!("sinfo failed: {}", String::from_utf8_lossy(&o.stderr).trim())),
            Err(e) => Some(format!("sinfo cannot start ({e}): Slurm's client commands are not installed")),
        }
    };
    match reason {
        None => true,
        Some(reason) if std::env::var("L2S_REQUIRE_SLURM").is_ok_and(|v| v == "1") => {
            panic!("L2S_REQUIRE_SLURM=1 but {reason}")
        }
        Some(reason) => {
            eprintln!("skipped: {reason}");
            false
        }
    }
}

/// The config with `executor: Slurm(settings)` added.
fn with_slurm(config: &Path, settings: &str) -> PathBuf {
    let text = std::fs::read_to_string(config).expect("config");
    let end = text.trim_end().rfind(')').expect("the config's closing parenthesis");
    let text = format!("{}    executor: Slurm({settings}),\n)\n", &text[..end]);
    let path =
        config.with_file_name(format!("slurm-{}", config.file_name().expect("file name").to_string_lossy()));
    std::fs::write(&path, text).expect("write config");
    path
}

fn run_ok(dir: &Path, config: &Path, out: &Path, extra: &[&str]) {
    let o = l2s(&experiment_args(config, out, extra), dir);
    assert!(o.status.success(), "l2s experiment {extra:?} failed:\n{}", stderr(&o));
}

fn spawn(dir: &Path, config: &Path, out: &Path, log: &str) -> Child {
    let log = std::fs::File::create(dir.join(log)).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_l2s"))
        .args(experiment_args(config, out, &["--seeds", "1"]))
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("l2s starts")
}

fn metrics_csv(out: &Path) -> String {
    std::fs::read_to_string(out.join("seed-0").join("metrics.csv")).expect("metrics.csv")
}

/// The two runs' `summary.json` (without wall times) and records are identical.
fn assert_same_results(local: &Path, other: &Path) {
    assert_eq!(summary_without_times(local), summary_without_times(other));
    assert_eq!(metrics_csv(local), metrics_csv(other));
}

/// A small toy study run locally for reference, and its config with a Slurm executor that
/// runs one task at a time (so that an array's last tasks wait in the queue long enough to
/// be cancelled, or outlive a killed driver).
struct OneAtATime {
    dir: tempfile::TempDir,
    local: PathBuf,
    config: PathBuf,
    out: PathBuf,
}

impl OneAtATime {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let toy = small_config(dir.path(), 2);
        let local = dir.path().join("local");
        run_ok(dir.path(), &toy, &local, &["--seeds", "1"]);
        let config = with_slurm(&toy, "max_running: 1, poll_interval_s: 0.2");
        let out = dir.path().join("slurm");
        Self { dir, local, config, out }
    }

    fn spawn(&self, log: &str) -> Child {
        spawn(self.dir.path(), &self.config, &self.out, log)
    }
}

/// The recorded submissions of one batch: (job id, array indices).
fn submissions(batch: &Path) -> Vec<(String, Vec<usize>)> {
    let Ok(text) = std::fs::read_to_string(batch.join("arrays.json")) else { return Vec::new() };
    let records: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    records
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    let tasks = s["tasks"].as_array().map_or_else(Vec::new, |t| {
                        t.iter().filter_map(|k| k.as_u64().map(|k| k as usize)).collect()
                    });
                    (s["job_id"].as_str().unwrap_or_default().to_string(), tasks)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A toy and a traffic study through Slurm give the local executor's `summary.json` and
/// records exactly (only wall times differ).
#[test]
fn slurm_runs_give_the_local_executors_results_bit_for_bit() {
    if !cluster_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let toy = small_config(dir.path(), 2);
    let (local, slurm) = (dir.path().join("toy-local"), dir.path().join("toy-slurm"));
    run_ok(dir.path(), &toy, &local, &["--seeds", "1"]);
    run_ok(dir.path(), &toy, &slurm, &["--seeds", "1", "--executor", "slurm"]);
    assert_same_results(&local, &slurm);
    // The evaluations really ran on Slurm: a result file per task, written by a node.
    let result =
        std::fs::read_to_string(slurm.join("seed-0/slurm/iteration-1/result-0.json")).expect("result");
    assert!(result.contains("\"host\""), "{result}");

    let traffic = tiny_traffic_config(dir.path(), "car_counting.ron");
    let (local, slurm) = (dir.path().join("traffic-local"), dir.path().join("traffic-slurm"));
    run_ok(dir.path(), &traffic, &local, &[]);
    run_ok(dir.path(), &traffic, &slurm, &["--executor", "slurm"]);
    assert_same_results(&local, &slurm);
}

/// `scancel` of one array task while its array runs: the task is submitted again and the
/// study ends with the uninterrupted result.
#[test]
fn a_cancelled_array_task_is_submitted_again() {
    if !cluster_available() {
        return;
    }
    let run = OneAtATime::new();
    let out = &run.out;
    let mut driver = run.spawn("cancel.log");
    let mut cancelled: Option<(PathBuf, usize)> = None;
    let start = Instant::now();
    while cancelled.is_none() && driver.try_wait().expect("driver status").is_none() {
        assert!(start.elapsed() < Duration::from_secs(300), "no task could be cancelled");
        for batch in ["iteration-0", "iteration-1", "final-learned", "final-random", "search-0", "search-1"] {
            let batch = out.join("seed-0/slurm").join(batch);
            let Some((job_id, _)) = submissions(&batch).into_iter().next() else { continue };
            let queue = Command::new("squeue")
                .args(["-h", "-r", "-j", &job_id, "-t", "PENDING", "-o", "%K"])
                .output()
                .expect("squeue");
            let pending: Vec<usize> = String::from_utf8_lossy(&queue.stdout)
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            if let Some(&k) = pending.iter().max() {
                let status = Command::new("scancel").arg(format!("{job_id}_{k}")).status().expect("scancel");
                assert!(status.success(), "scancel {job_id}_{k}");
                cancelled = Some((batch, k));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = driver.wait().expect("driver ends");
    let log = std::fs::read_to_string(run.dir.path().join("cancel.log")).unwrap_or_default();
    assert!(status.success(), "the driver failed:\n{log}");
    let (batch, k) = cancelled.expect("a pending task was cancelled");
    // The cancelled task went into a second submission, and the run's log says why.
    let records = submissions(&batch);
    assert!(records.len() >= 2 && records[1].1.contains(&k), "{records:?}");
    let job_id = &records[0].0;
    let warning =
        format!("Slurm task {job_id}_{k} ended without a result (removed from the queue before it started");
    assert!(log.contains(&warning), "no `{warning}` in:\n{log}");
    assert_same_results(&run.local, out);
}

/// `scancel` of a running traffic task (its worker killed mid-evaluation): the task is
/// submitted again and the study ends with the local executor's result. Segmentation, so
/// that the workers also load a U-Net start model the driver saved.
#[test]
fn a_task_cancelled_while_running_is_submitted_again() {
    if !cluster_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let traffic = tiny_traffic_config(dir.path(), "segmentation.ron");
    let local = dir.path().join("local");
    run_ok(dir.path(), &traffic, &local, &[]);
    let config = with_slurm(&traffic, "max_running: 1, poll_interval_s: 0.2");
    let out = dir.path().join("slurm");
    let mut driver = spawn(dir.path(), &config, &out, "running.log");
    // (batch, task, job id) of the cancel that took: the task had no result and was
    // submitted again. A task that finished between `squeue` and `scancel` does not count.
    let mut cancelled: Option<(PathBuf, usize, String)> = None;
    let start = Instant::now();
    while cancelled.is_none() && driver.try_wait().expect("driver status").is_none() {
        assert!(start.elapsed() < Duration::from_secs(300), "no running task could be cancelled");
        for batch in ["iteration-0", "iteration-1", "iteration-2"] {
            let batch = out.join("seed-0/slurm").join(batch);
            let Some((job_id, _)) = submissions(&batch).into_iter().next() else { continue };
            let queue = Command::new("squeue")
                .args(["-h", "-r", "-j", &job_id, "-t", "RUNNING", "-o", "%K"])
                .output()
                .expect("squeue");
            let Some(k) = String::from_utf8_lossy(&queue.stdout).lines().find_map(|l| l.trim().parse().ok())
            else {
                continue;
            };
            let status = Command::new("scancel").arg(format!("{job_id}_{k}")).status().expect("scancel");
            if !status.success() {
                continue;
            }
            wait_for(
                "the cancelled task's result or its second submission",
                Duration::from_secs(120),
                || {
                    batch.join(format!("result-{k}.json")).exists() && submissions(&batch).len() < 2
                        || submissions(&batch).get(1).is_some_and(|s| s.1.contains(&k))
                },
            );
            if submissions(&batch).get(1).is_some_and(|s| s.1.contains(&k)) {
                cancelled = Some((batch, k, job_id));
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = driver.wait().expect("driver ends");
    let log = std::fs::read_to_string(dir.path().join("running.log")).unwrap_or_default();
    assert!(status.success(), "the driver failed:\n{log}");
    let (_, k, job_id) = cancelled.expect("a running task was cancelled before it wrote its result");
    let warning = format!("Slurm task {job_id}_{k} ended without a result (CANCELLED");
    assert!(log.contains(&warning), "no `{warning}` in:\n{log}");
    assert_same_results(&local, &out);
}

/// The driver killed while an array runs, then `--resume`: it waits for the tasks it had
/// queued instead of submitting them again, and ends with the uninterrupted result.
#[test]
fn a_killed_driver_resumes_without_resubmitting() {
    if !cluster_available() {
        return;
    }
    let run = OneAtATime::new();
    let out = &run.out;
    let mut driver = run.spawn("killed.log");
    let batch = out.join("seed-0/slurm/iteration-1");
    wait_for("the second iteration's array", Duration::from_secs(300), || !submissions(&batch).is_empty());
    driver.kill().expect("kill the driver");
    let status = driver.wait().expect("driver ends");
    assert_eq!(status.signal(), Some(9), "the driver was not killed: {status}");
    assert!(!out.join("summary.json").exists(), "the driver had finished before the kill");

    run_ok(run.dir.path(), &run.config, out, &["--seeds", "1", "--resume"]);
    assert_eq!(submissions(&batch).len(), 1, "the resumed driver submitted the array's tasks again");
    assert_same_results(&run.local, out);
}

/// A task that fails on every attempt stops the run after `retries` with an error naming
/// the evaluation, the array task, its exit code and its log, whose end it quotes.
#[test]
fn a_task_that_keeps_failing_is_reported_with_its_log() {
    if !cluster_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config(dir.path(), 2);
    let worker = dir.path().join("broken-worker.sh");
    std::fs::write(&worker, "#!/bin/sh\necho 'error: no Vulkan driver found (simulated node)' >&2\nexit 3\n")
        .expect("write worker");
    let mut perms = std::fs::metadata(&worker).expect("worker").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&worker, perms).expect("chmod");
    let settings = format!("retries: 1, poll_interval_s: 0.2, program: \"{}\"", worker.display());
    let slurm_config = with_slurm(&config, &settings);
    let out = dir.path().join("slurm");
    let o = l2s(&experiment_args(&slurm_config, &out, &["--seeds", "1"]), dir.path());
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for part in [
        "iteration 0, sample 0 failed on Slurm 2 times",
        "exit code 3:0",
        "log-0.s1.log",
        "no Vulkan driver found (simulated node)",
    ] {
        assert!(err.contains(part), "missing `{part}` in:\n{err}");
    }
}
