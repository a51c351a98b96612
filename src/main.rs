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
        #[arg(long, conflicts_with = "target_data")]
        target: Option<PathBuf>,
        /// A labelled dataset directory as the target (KITTI semantic, Cityscapes or
        /// `l2s render` layout), replacing the config's target (traffic experiments).
        #[arg(long)]
        target_data: Option<PathBuf>,
        /// Output directory [default: runs/<config name>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Number of seeds, replacing the config's.
        #[arg(long)]
        seeds: Option<usize>,
        /// Continue the run in the output directory where it stopped.
        #[arg(long)]
        resume: bool,
        /// Where the evaluations run, replacing the config's `executor`: local (this
        /// machine's cores) or slurm (one job array per batch; the output directory must be
        /// on a file system the nodes share).
        #[arg(long, value_enum)]
        executor: Option<ExecutorChoice>,
        /// The search method, replacing the config's `meta.method` (with that method's
        /// default settings).
        #[arg(long, value_enum)]
        method: Option<MethodChoice>,
        /// Further search methods to run with the same budget and compare, replacing the
        /// config's `study.compare` (comma-separated, default settings).
        #[arg(long, value_enum, value_delimiter = ',')]
        compare: Option<Vec<MethodChoice>>,
        /// Budgets (main-task trainings, multiples of the samples per iteration) at which every
        /// search's ψ* is tested too, replacing the config's `study.test_budgets`
        /// (comma-separated).
        #[arg(long, value_delimiter = ',')]
        test_budgets: Option<Vec<usize>>,
        /// Trainings per test at each of those budgets, replacing the config's
        /// `study.budget_trainings` (default: the final trainings).
        #[arg(long)]
        budget_trainings: Option<usize>,
    },
    /// Run one evaluation of a study from its job file and write the result next to it (what
    /// each Slurm array task runs).
    Evaluate {
        /// A `job-K.json` written by `l2s experiment --executor slurm`.
        #[arg(long)]
        job: PathBuf,
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
    /// Train a main task model on a dataset exported by `l2s render` (the last fifth of its
    /// frames held out) and print the validation metrics.
    Train {
        /// Directory written by `l2s render`.
        #[arg(long)]
        data: PathBuf,
        #[arg(long, value_enum)]
        task: TrainTask,
        /// ξ: passes over the training part.
        #[arg(long, default_value_t = 10)]
        epochs: usize,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[arg(long, default_value_t = 0.003)]
        learning_rate: f64,
        /// auto (hardware GPU if any, else CPU), cpu or wgpu.
        #[arg(long, default_value = "auto")]
        backend: l2s_train::BackendChoice,
        /// Seed of the initial weights and the batch order.
        #[arg(long, default_value_t = 0)]
        seed: u64,
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
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ExecutorChoice {
    /// This machine's worker pool.
    Local,
    /// Slurm job arrays (settings from the config's `executor: Slurm(...)`, else defaults).
    Slurm,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum MethodChoice {
    /// The paper's policy gradient with the config's `meta` settings.
    Reinforce,
    /// CMA-ES with its default settings.
    CmaEs,
    /// A tree-structured Parzen estimator with its default settings.
    Tpe,
}

impl From<MethodChoice> for l2s_meta::Method {
    fn from(choice: MethodChoice) -> Self {
        match choice {
            MethodChoice::Reinforce => l2s_meta::Method::Reinforce,
            MethodChoice::CmaEs => l2s_meta::Method::CmaEs(l2s_meta::CmaEsConfig::default()),
            MethodChoice::Tpe => l2s_meta::Method::Tpe(l2s_meta::TpeConfig::default()),
        }
    }
}

impl From<ExecutorChoice> for l2s_meta::ExecutorKind {
    fn from(choice: ExecutorChoice) -> Self {
        match choice {
            ExecutorChoice::Local => l2s_meta::ExecutorKind::Local,
            ExecutorChoice::Slurm => l2s_meta::ExecutorKind::Slurm,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum TrainTask {
    /// Per-type car counts (L1); prints MAE per type and exact-count accuracy.
    Counting,
    /// Semantic segmentation (cross-entropy); prints per-class, mean and car IoU.
    Segmentation,
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only on a terminal: log files and CI logs stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .init();
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

#[allow(clippy::too_many_arguments)]
fn train(
    data: &std::path::Path,
    task: TrainTask,
    epochs: usize,
    batch_size: usize,
    learning_rate: f64,
    backend: l2s_train::BackendChoice,
    seed: u64,
) -> anyhow::Result<()> {
    // The device first: a missing adapter is reported before the data is read.
    let device = l2s_train::training_device(backend)?;
    let all = l2s_train::Dataset::load_export(data)?;
    let held_out = (all.len() / 5).max(1);
    anyhow::ensure!(
        all.len() > held_out,
        "`{}` has {} frames; at least 2 are needed",
        data.display(),
        all.len()
    );
    let mut train_set = all.clone();
    let validation =
        l2s_train::Dataset { samples: train_set.samples.split_off(all.len() - held_out), ..all.clone() };
    let config = l2s_train::TrainConfig { epochs, batch_size, learning_rate, seed };
    let start = Instant::now();
    let (name, losses, wall, result) = match task {
        TrainTask::Counting => {
            let trained = l2s_train::train_counting(&device, &config, &train_set, None)?;
            let wall = start.elapsed().as_secs_f64();
            let m = l2s_train::evaluate_counting(&trained.model, &validation, &device)?;
            let result = format!(
                "validation MAE {:.3} (per type {:?}), exact-count accuracy {:.3}",
                m.mae, m.mae_per_type, m.exact_accuracy
            );
            ("counting", trained.epoch_losses, wall, result)
        }
        TrainTask::Segmentation => {
            let table = l2s_data::ClassMap::new(l2s_data::ClassMap::default_classes())?;
            let classes = table.len();
            let car = table.index_of("car").context("the class table has a car class")?;
            let trained = l2s_train::train_segmentation(&device, &config, classes, &train_set, None)?;
            let wall = start.elapsed().as_secs_f64();
            let m = l2s_train::evaluate_segmentation(&trained.model, &validation, classes, car, &device)?;
            let result = format!(
                "validation car IoU {:.3}, mean IoU {:.3}, per class {:?}",
                m.car_iou, m.mean_iou, m.iou
            );
            ("segmentation", trained.epoch_losses, wall, result)
        }
    };
    println!(
        "{name}: {} training / {} validation images {}x{}, {epochs} epochs in {wall:.1} s ({:.0} images/s)",
        train_set.len(),
        validation.len(),
        all.width,
        all.height,
        (train_set.len() * epochs) as f64 / wall
    );
    println!("loss per epoch: {losses:?}");
    println!("{result}");
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

/// The error and its causes, each cause once: many errors already quote their cause in
/// their own message, and printing the chain as well would repeat it.
fn error_chain(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The preview draws one large image at a time: there lavapipe's own threads pay off.
    if !matches!(cli.command, Command::Preview { .. }) {
        // SAFETY: nothing has started a thread yet (argument parsing does not).
        #[allow(unsafe_code)]
        unsafe {
            l2s::lavapipe::rasterise_on_the_submitting_thread()
        };
    }
    init_logging(cli.verbose);
    l2s::allocator::keep_freed_blocks_for_reuse();
    l2s::allocator::one_heap_per_core();
    let result = match cli.command {
        Command::Experiment {
            config,
            target,
            target_data,
            out,
            seeds,
            resume,
            executor,
            method,
            compare,
            test_budgets,
            budget_trainings,
        } => {
            let out = out.unwrap_or_else(|| experiment::default_out(&config));
            let options = RunOptions {
                config_path: config,
                target,
                target_data,
                out,
                seeds,
                resume,
                executor: executor.map(Into::into),
                method: method.map(Into::into),
                compare: compare.map(|c| c.into_iter().map(Into::into).collect()),
                test_budgets,
                budget_trainings,
            };
            experiment::run(&options).map(|summary| {
                println!("{}", l2s_meta::report::summary_table(&summary));
                println!("report: {}", options.out.join("report.md").display());
            })
        }
        Command::Evaluate { job } => experiment::evaluate_job(&job),
        Command::Train { data, task, epochs, batch_size, learning_rate, backend, seed } => {
            train(&data, task, epochs, batch_size, learning_rate, backend, seed)
        }
        Command::Render { config, count, out } => render_dataset(&config, count, &out),
        Command::Preview { config, screenshot, frames, overlay } => {
            preview(config.as_deref(), screenshot, frames, overlay)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
