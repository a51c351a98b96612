//! `cargo xtask`: the project's tasks (matklad's cargo-xtask pattern). Every build here
//! uses the one `release` profile, so tests, benchmarks and runs share one dependency build.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

mod machine;
mod slurm;
mod train_report;

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Tasks for the l2s project",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Build `l2s` (release) and run `l2s experiment [ARGS]` (default: configs/car_counting.ron).
    Experiment {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// What CI runs: rustfmt check, clippy with warnings denied, every test (release profile).
    /// Where Slurm is installed, the local test cluster is started first (`slurm-up`) so
    /// that the Slurm executor's tests run; with L2S_REQUIRE_SLURM=1 they must.
    Ci,
    /// Start a one-node Slurm cluster on localhost (daemons, munge key, `slurm.conf` in
    /// ~/.cache/l2s-slurm or $L2S_SLURM_DIR) and print its `slurm.conf` path: then
    /// `export SLURM_CONF=<path>` and `l2s experiment --executor slurm ...`.
    SlurmUp,
    /// Stop the local Slurm cluster that `slurm-up` started.
    SlurmDown,
    /// Build `l2s` and open the interactive scene preview.
    Preview {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run a criterion benchmark: toy (the whole toy experiment), train (main-task training
    /// throughput) or render (labelled frames/s at 256x256 and 640x192, then a 1,000-scene memory run).
    Bench {
        #[arg(default_value = "toy")]
        name: String,
        /// train: PyTorch's figures to compare with, the output of
        /// ../shared/peers/torch_cnn_bench.py (its `RESULT` lines).
        #[arg(long, value_name = "FILE")]
        pytorch: Option<PathBuf>,
        /// train: a command that prints PyTorch's figures, e.g.
        /// "for s in 64 128; do V/bin/python ../shared/peers/torch_cnn_bench.py --size $s --steps 100; done".
        #[arg(long, value_name = "COMMAND", conflicts_with = "pytorch")]
        pytorch_command: Option<String>,
        /// Extra arguments for criterion (e.g. a filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// The workspace that `cargo xtask` was run in: the parent of xtask's manifest directory,
/// which `cargo run` passes at run time. The path compiled into the binary is only the
/// fallback: checkouts that share a target directory share this binary, and cargo may run
/// one built in another checkout (a CI clone, perhaps deleted since).
fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    cargo_with(args, &[])
}

/// `cargo ARGS` with further environment variables.
fn cargo_with(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("cannot start `{cargo}`"))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

const VULKAN_PACKAGES: [&str; 2] = ["mesa-vulkan-drivers", "libvulkan1"];

fn vulkan_present() -> bool {
    let loader = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/lib",
    ]
    .iter()
    .any(|dir| Path::new(dir).join("libvulkan.so.1").exists());
    let driver = std::env::var_os("VK_ICD_FILENAMES").is_some()
        || std::env::var_os("VK_DRIVER_FILES").is_some()
        || ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d"].iter().any(
            |dir| {
                std::fs::read_dir(dir).is_ok_and(|entries| {
                    entries.flatten().any(|e| e.path().extension().is_some_and(|x| x == "json"))
                })
            },
        );
    loader && driver
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Rendering needs a Vulkan loader and driver; without a GPU that is Mesa's lavapipe.
/// As root with apt it is installed (announced first); otherwise the exact command is given.
fn ensure_vulkan() -> anyhow::Result<()> {
    if vulkan_present() {
        return Ok(());
    }
    let packages = VULKAN_PACKAGES.join(" ");
    let has_apt = Command::new("apt-get").arg("--version").output().is_ok_and(|o| o.status.success());
    if has_apt && is_root() {
        eprintln!(
            "xtask: no Vulkan driver found; installing {packages} with apt-get (Mesa's software Vulkan, for rendering without a GPU)"
        );
        let run = |args: &[&str]| -> anyhow::Result<()> {
            let status =
                Command::new("apt-get").args(args).env("DEBIAN_FRONTEND", "noninteractive").status()?;
            if !status.success() {
                bail!("`apt-get {}` failed ({status})", args.join(" "));
            }
            Ok(())
        };
        run(&["update", "-qq"])?;
        let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
        install.extend(VULKAN_PACKAGES);
        run(&install)?;
        if vulkan_present() {
            return Ok(());
        }
        bail!("installed {packages}, but still no Vulkan loader and driver were found");
    }
    bail!(
        "no Vulkan driver found (rendering needs one; without a GPU, Mesa's lavapipe).\n  fix: sudo apt-get install -y {packages}"
    )
}

/// The build every task shares: the whole workspace with its tests and benchmarks, so the
/// dependency features (dev-dependencies included) and thus the artifacts are those of
/// `cargo xtask ci`; building `-p l2s` alone would rebuild Bevy and burn.
const BUILD: [&str; 5] = ["build", "--release", "--workspace", "--all-targets", "--locked"];

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

fn run_l2s(subcommand: &str, args: &[String]) -> anyhow::Result<()> {
    cargo(&BUILD)?;
    let binary = target_dir().join("release").join("l2s");
    let status = Command::new(&binary)
        .arg(subcommand)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    if !status.success() {
        bail!("`l2s {subcommand}` failed ({status})");
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse().task) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Wall time of each step of a task, printed when it ends.
#[derive(Default)]
struct StepTimes(Vec<(&'static str, std::time::Duration)>);

impl StepTimes {
    fn time(&mut self, name: &'static str, step: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
        let start = std::time::Instant::now();
        let result = step();
        self.0.push((name, start.elapsed()));
        if result.is_err() {
            self.print();
        }
        result
    }

    fn print(&self) {
        let text: Vec<String> =
            self.0.iter().map(|(name, d)| format!("{name} {:.0} s", d.as_secs_f64())).collect();
        eprintln!("xtask: step times: {}", text.join(", "));
    }
}

fn run(task: Task) -> anyhow::Result<()> {
    match task {
        Task::Experiment { args } => run_l2s("experiment", &args),
        Task::Preview { args } => {
            ensure_vulkan()?;
            run_l2s("preview", &args)
        }
        Task::Ci => {
            ensure_vulkan()?;
            // Each step's wall time is printed at the end: where a cold CI run spends its time.
            let mut steps = StepTimes::default();
            steps.time("rustfmt", || cargo(&["fmt", "--all", "--check"]))?;
            steps.time("clippy", || {
                cargo(&[
                    "clippy",
                    "--release",
                    "--workspace",
                    "--all-targets",
                    "--locked",
                    "--",
                    "-D",
                    "warnings",
                ])
            })?;
            let require_slurm = std::env::var("L2S_REQUIRE_SLURM").is_ok_and(|v| v == "1");
            let slurm_conf = if slurm::installed() || require_slurm {
                Some(slurm::up(&slurm::cluster_dir())?)
            } else {
                eprintln!(
                    "xtask: Slurm is not installed: the Slurm executor's tests will skip (install: sudo apt-get install -y --no-install-recommends {})",
                    slurm::PACKAGES.join(" ")
                );
                None
            };
            // Vulkan is there (checked above), so the wgpu tests must run, not skip.
            let mut env: Vec<(&str, &std::ffi::OsStr)> = vec![("L2S_REQUIRE_WGPU", "1".as_ref())];
            env.extend(slurm_conf.iter().map(|c| ("SLURM_CONF", c.as_os_str())));
            // `--timings`: the build's report (target/cargo-timings/) shows which crates took long.
            steps.time("test build", || {
                cargo(&["test", "--release", "--workspace", "--locked", "--no-run", "--timings"])
            })?;
            steps.time("tests", || cargo_with(&["test", "--release", "--workspace", "--locked"], &env))?;
            steps.print();
            Ok(())
        }
        Task::SlurmUp => {
            let conf = slurm::up(&slurm::cluster_dir())?;
            println!("{}", conf.display());
            Ok(())
        }
        Task::SlurmDown => {
            slurm::down(&slurm::cluster_dir());
            eprintln!("xtask: the local Slurm cluster in {} is stopped", slurm::cluster_dir().display());
            Ok(())
        }
        Task::Bench { name, pytorch, pytorch_command, args } => {
            let known = ["toy", "train", "render"];
            if !known.contains(&name.as_str()) {
                bail!("no benchmark `{name}`; available: {}", known.join(", "));
            }
            let source = match (pytorch, pytorch_command) {
                (Some(file), _) => Some(train_report::PyTorchSource::File(file)),
                (None, Some(command)) => Some(train_report::PyTorchSource::Command(command)),
                (None, None) => None,
            };
            if source.is_some() && name != "train" {
                bail!(
                    "--pytorch and --pytorch-command compare the `train` benchmark; `{name}` has no PyTorch counterpart"
                );
            }
            // Before the long benchmark, so that a bad file fails at once.
            let pytorch = source.as_ref().map(train_report::PyTorchSource::load).transpose()?;
            let started = std::time::SystemTime::now();
            let machine = machine::this_machine();
            eprintln!("xtask: benchmark `{name}` on {machine}");
            let mut cargo_args = vec!["bench", "--workspace", "--locked", "--bench", name.as_str(), "--"];
            cargo_args.extend(args.iter().map(String::as_str));
            cargo(&cargo_args)?;
            if name == "train" {
                train_report::print_summary(&target_dir().join("criterion"), started, pytorch.as_ref())?;
            }
            eprintln!("xtask: these figures are from {machine}");
            Ok(())
        }
    }
}
