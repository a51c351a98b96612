//! `l2s`: the command line. It parses arguments, sets up logging and hands over to the
//! library crates; see ARCHITECTURE.md for the map.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use l2s::experiment::{self, DEFAULT_CONFIG, RunOptions};

#[derive(Debug, Parser)]
#[command(
    name = "l2s",
    version,
    about = "Learning to simulate: tune a simulator's parameters ψ with policy gradients so that models trained on its data score best on a target domain"
)]
struct Cli {
    /// More log output (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an experiment: learn ψ, then compare it with random ψ, random search and the target.
    Experiment {
        /// Experiment config (RON); its top-level name picks the experiment.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Target file replacing the one the config names.
        #[arg(long)]
        target: Option<PathBuf>,
        /// Output directory [default: runs/<config name>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Number of seeds, replacing the config's.
        #[arg(long)]
        seeds: Option<usize>,
        /// Continue the run in the output directory where it stopped.
        #[arg(long)]
        resume: bool,
    },
    /// Export a labelled dataset rendered by the traffic simulator.
    Render {
        /// Dataset config (RON): ψ, master seed, render settings.
        #[arg(long, default_value = "configs/render.ron")]
        config: PathBuf,
        /// Number of frames.
        #[arg(long, default_value_t = 100)]
        count: usize,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Open the interactive scene preview window (keys are listed in the window).
    Preview {
        /// Dataset config (RON) whose ψ and seed to start from [default: built-in ψ].
        #[arg(long)]
        config: Option<PathBuf>,
        /// Save a screenshot of the window to this PNG after `--frames` frames, then exit.
        #[arg(long)]
        screenshot: Option<PathBuf>,
        /// Frames to draw before the screenshot.
        #[arg(long, default_value_t = 30)]
        frames: u32,
        /// Start with the segmentation overlay shown (Tab toggles it).
        #[arg(long)]
        overlay: bool,
    },
    /// Time one part end to end and print its throughput (criterion benchmarks: `cargo xtask bench`).
    Bench {
        #[arg(value_enum)]
        target: BenchTarget,
        /// Config to measure with.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum BenchTarget {
    /// A whole experiment (default: configs/toy_gmm.ron).
    Experiment,
    /// Labelled frames per second of the traffic renderer.
    Render,
    /// Training images per second of the main task models.
    Train,
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

fn not_built_yet(what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} is not part of this build yet: the traffic renderer and the main task models are still being built \
         (see ARCHITECTURE.md); `l2s experiment` runs the toy experiment"
    )
}

fn bench_experiment(config: PathBuf) -> anyhow::Result<()> {
    let out = std::env::temp_dir().join(format!("l2s-bench-{}", std::process::id()));
    let options =
        RunOptions { config_path: config, target: None, out: out.clone(), seeds: None, resume: false };
    let start = Instant::now();
    let summary = experiment::run(&options)?;
    let wall = start.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&out).with_context(|| format!("cannot remove {}", out.display()))?;
    let per_seed: usize = summary.methods.iter().map(|m| m.search_trainings + m.final_trainings).sum();
    let trainings = per_seed * summary.seeds;
    println!(
        "{}: {wall:.2} s wall, {trainings} main-task trainings, {:.0} trainings/s",
        options.config_path.display(),
        trainings as f64 / wall
    );
    Ok(())
}

fn render_dataset(config: &std::path::Path, count: usize, out: &std::path::Path) -> anyhow::Result<()> {
    let dataset: l2s_render::DatasetConfig = l2s_core::config::load_ron(config)?;
    let progress = l2s_meta::progress::Progress::new(count as u64);
    progress.context(format!("render → {}", out.display()));
    let start = Instant::now();
    let mut done = 0;
    let summary = l2s_render::export_dataset(&dataset, count, out, |n| {
        progress.advance((n - done) as u64);
        done = n;
    })?;
    progress.finish();
    let wall = start.elapsed().as_secs_f64();
    println!(
        "{} frames ({} counted cars) in {wall:.1} s ({:.1} frames/s) on {} → {}",
        summary.frames,
        summary.cars_counted,
        summary.frames as f64 / wall,
        summary.adapter,
        out.display()
    );
    Ok(())
}

fn preview(
    config: Option<&std::path::Path>,
    screenshot: Option<PathBuf>,
    frames: u32,
    overlay: bool,
) -> anyhow::Result<()> {
    let (params, seed) = match config {
        Some(path) => {
            let dataset: l2s_render::DatasetConfig = l2s_core::config::load_ron(path)?;
            (dataset.scene, dataset.seed)
        }
        None => (l2s_scene::TrafficParams::default(), 0),
    };
    let options = l2s_render::PreviewOptions {
        params,
        seed,
        overlay,
        screenshot: screenshot.map(|path| (path, frames)),
    };
    l2s_render::run_preview(options)?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Experiment { config, target, out, seeds, resume } => {
            let out = out.unwrap_or_else(|| experiment::default_out(&config));
            let options = RunOptions { config_path: config, target, out, seeds, resume };
            experiment::run(&options).map(|summary| {
                println!("{}", l2s_meta::report::summary_table(&summary));
                println!("report: {}", options.out.join("report.md").display());
            })
        }
        Command::Bench { target: BenchTarget::Experiment, config } => bench_experiment(config),
        Command::Render { config, count, out } => render_dataset(&config, count, &out),
        Command::Bench { target: BenchTarget::Render, .. } => {
            Err(not_built_yet("the render benchmark command"))
        }
        Command::Preview { config, screenshot, frames, overlay } => {
            preview(config.as_deref(), screenshot, frames, overlay)
        }
        Command::Bench { target: BenchTarget::Train, .. } => Err(not_built_yet("main-task training")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
