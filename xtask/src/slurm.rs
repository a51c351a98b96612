//! `cargo xtask slurm-up` / `slurm-down`: a one-node Slurm cluster on localhost, for the
//! Slurm executor's tests and for users who want to try `--executor slurm` before their
//! cluster. Everything it writes (munge key and socket, `slurm.conf`, state, logs) stays in
//! one directory of the user's (default `~/.cache/l2s-slurm`); the daemons listen on
//! ports of their own, so a system Slurm on the same machine is left alone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Debian's packages of a one-node cluster: controller, node daemon, client commands, munge.
pub const PACKAGES: [&str; 4] = ["slurmctld", "slurmd", "slurm-client", "munge"];

const PROGRAMS: [&str; 5] = ["munged", "slurmctld", "slurmd", "sbatch", "sinfo"];

/// The cluster's directory: `L2S_SLURM_DIR`, else `~/.cache/l2s-slurm`.
pub fn cluster_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("L2S_SLURM_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    home.join(".cache").join("l2s-slurm")
}

fn on_path(program: &str) -> bool {
    let in_dir = |dir: &Path| dir.join(program).is_file();
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| in_dir(&d)))
        || ["/usr/sbin", "/sbin"].iter().any(|d| in_dir(Path::new(d)))
}

/// Whether Slurm's daemons and client commands are installed.
pub fn installed() -> bool {
    PROGRAMS.iter().all(|p| on_path(p))
}

fn program(name: &str) -> PathBuf {
    ["/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn run(name: &str, args: &[&str], conf: Option<&Path>) -> anyhow::Result<String> {
    let mut command = Command::new(program(name));
    command.args(args);
    if let Some(conf) = conf {
        command.env("SLURM_CONF", conf);
    }
    let out = command.output().with_context(|| format!("cannot start `{name}`"))?;
    if !out.status.success() {
        bail!(
            "`{name} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The node's state as `sinfo` reports it, if the controller answers.
fn node_state(conf: &Path) -> Option<String> {
    run("sinfo", &["-h", "-o", "%t"], Some(conf)).ok().map(|s| s.trim().to_string())
}

fn ready(state: &str) -> bool {
    matches!(state, "idle" | "mix" | "alloc")
}

fn short_hostname() -> anyhow::Result<String> {
    let name = run("hostname", &["-s"], None)?.trim().to_string();
    if name.is_empty() {
        bail!("`hostname -s` printed nothing");
    }
    Ok(name)
}

fn user_name() -> anyhow::Result<String> {
    Ok(run("id", &["-un"], None)?.trim().to_string())
}

/// 90 % of the machine's memory in MiB, what the node offers to jobs.
fn node_memory_mib() -> u64 {
    let total_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| l.strip_prefix("MemTotal:").map(str::to_string)))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()))
        .unwrap_or(4 << 20);
    total_kib / 1024 * 9 / 10
}

fn slurm_conf(dir: &Path, host: &str, user: &str) -> String {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let d = dir.display();
    format!(
        "# A one-node Slurm cluster on localhost, written by `cargo xtask slurm-up`.\n\
         ClusterName=l2s-local\n\
         SlurmctldHost={host}(127.0.0.1)\n\
         SlurmUser={user}\n\
         SlurmdUser={user}\n\
         AuthType=auth/munge\n\
         CredType=cred/munge\n\
         AuthInfo=socket={d}/munge/munge.socket\n\
         SlurmctldPort=16817\n\
         SlurmdPort=16818\n\
         StateSaveLocation={d}/state\n\
         SlurmdSpoolDir={d}/spool\n\
         SlurmctldPidFile={d}/slurmctld.pid\n\
         SlurmdPidFile={d}/slurmd.pid\n\
         SlurmctldLogFile={d}/log/slurmctld.log\n\
         SlurmdLogFile={d}/log/slurmd.log\n\
         ProctrackType=proctrack/linuxproc\n\
         TaskPlugin=task/none\n\
         SelectType=select/cons_tres\n\
         SelectTypeParameters=CR_CPU\n\
         SchedulerType=sched/builtin\n\
         AccountingStorageType=accounting_storage/none\n\
         JobCompType=jobcomp/none\n\
         MpiDefault=none\n\
         ReturnToService=2\n\
         MinJobAge=600\n\
         KillWait=5\n\
         InactiveLimit=0\n\
         MailProg=/bin/true\n\
         SchedulerParameters=sched_interval=1,sched_min_interval=0,batch_sched_delay=0\n\
         NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem} State=UNKNOWN\n\
         PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
        mem = node_memory_mib()
    )
}

/// Stops the daemons whose pid files are in `dir` (a cluster started earlier, perhaps on
/// another boot, whose processes may be gone).
pub fn down(dir: &Path) {
    for pid_file in ["slurmd.pid", "slurmctld.pid", "munge/munged.pid"] {
        let Some(pid) =
            std::fs::read_to_string(dir.join(pid_file)).ok().and_then(|p| p.trim().parse::<u32>().ok())
        else {
            continue;
        };
        let alive = Path::new(&format!("/proc/{pid}")).exists();
        if alive {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            let start = Instant::now();
            while Path::new(&format!("/proc/{pid}")).exists() && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = std::fs::remove_file(dir.join(pid_file));
    }
}

/// Starts the cluster in `dir` unless it is already up; returns its `slurm.conf`.
pub fn up(dir: &Path) -> anyhow::Result<PathBuf> {
    if !installed() {
        bail!(
            "Slurm is not installed (needs {}).\n  fix: sudo apt-get install -y --no-install-recommends {}",
            PROGRAMS.join(", "),
            PACKAGES.join(" ")
        );
    }
    let conf = dir.join("slurm.conf");
    if conf.is_file() && node_state(&conf).as_deref().is_some_and(ready) {
        eprintln!("xtask: the local Slurm cluster in {} is already up", dir.display());
        return Ok(conf);
    }
    down(dir);
    let munge = dir.join("munge");
    for sub in [&munge, &dir.join("state"), &dir.join("spool"), &dir.join("log")] {
        std::fs::create_dir_all(sub).with_context(|| format!("cannot create {}", sub.display()))?;
    }
    set_mode(&munge, 0o700)?;
    let key = munge.join("munge.key");
    if !key.is_file() {
        let mut bytes = vec![0u8; 1024];
        use std::io::Read;
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .context("cannot read /dev/urandom for the munge key")?;
        std::fs::write(&key, &bytes).with_context(|| format!("cannot write {}", key.display()))?;
        set_mode(&key, 0o400)?;
    }
    let path = |p: PathBuf| p.to_string_lossy().into_owned();
    let mut munged_args = vec![
        format!("--key-file={}", path(key)),
        format!("--socket={}", path(munge.join("munge.socket"))),
        format!("--pid-file={}", path(munge.join("munged.pid"))),
        format!("--log-file={}", path(munge.join("munged.log"))),
        format!("--seed-file={}", path(munge.join("munged.seed"))),
    ];
    if user_name()? == "root" {
        // munged refuses to run as root unless told that this is intended.
        munged_args.push("--force".into());
    }
    let munged_args: Vec<&str> = munged_args.iter().map(String::as_str).collect();
    run("munged", &munged_args, None)?;
    let text = slurm_conf(dir, &short_hostname()?, &user_name()?);
    std::fs::write(&conf, text).with_context(|| format!("cannot write {}", conf.display()))?;
    let conf_arg = path(conf.clone());
    run("slurmctld", &["-f", &conf_arg], Some(&conf))?;
    run("slurmd", &["-f", &conf_arg], Some(&conf))?;
    let start = Instant::now();
    loop {
        match node_state(&conf) {
            Some(state) if ready(&state) => break,
            state if start.elapsed() > Duration::from_secs(60) => bail!(
                "the local Slurm cluster did not come up within 60 s (node state {state:?}); see the logs in {}",
                dir.join("log").display()
            ),
            _ => std::thread::sleep(Duration::from_millis(300)),
        }
    }
    eprintln!("xtask: a one-node Slurm cluster is up ({} CPUs); its config: {}", cpus(), conf.display());
    Ok(conf)
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the permissions of {}", path.display()))
}
