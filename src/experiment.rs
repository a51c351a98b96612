//! Experiments `l2s` can run, picked by the top-level name of their config file.

use std::path::{Path, PathBuf};

use l2s_core::config::{InvalidField, Validate};
use l2s_meta::StudySummary;
use l2s_toy::{ToyConfig, ToyRunOptions, run_toy_experiment};
use l2s_traffic::{Task, TrafficConfig, TrafficRunOptions, run_traffic_experiment};
use serde::Deserialize;

/// The built-in default experiment, relative to the repository root.
pub const DEFAULT_CONFIG: &str = "configs/car_counting.ron";

/// Every experiment, named by the top level of its config file.
#[derive(Debug, Clone, Deserialize)]
pub enum ExperimentConfig {
    /// The paper's toy experiment: `ToyGmm(seed: ..., ...)`.
    ToyGmm(ToyConfig),
    /// Car counting on the traffic simulator: `CarCounting(seed: ..., ...)`.
    CarCounting(TrafficConfig),
    /// Semantic segmentation on the traffic simulator (car IoU): `Segmentation(...)`.
    Segmentation(TrafficConfig),
}

impl Validate for ExperimentConfig {
    fn validate(&self) -> Result<(), InvalidField> {
        match self {
            ExperimentConfig::ToyGmm(c) => c.validate(),
            ExperimentConfig::CarCounting(c) | ExperimentConfig::Segmentation(c) => c.validate(),
        }
    }
}

/// What the command line adds to a config.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config_path: PathBuf,
    /// Replaces the config's target file.
    pub target: Option<PathBuf>,
    /// Output directory.
    pub out: PathBuf,
    /// Replaces the config's number of seeds.
    pub seeds: Option<usize>,
    /// Continue the run in `out` where it stopped.
    pub resume: bool,
}

/// `runs/<config file name>`.
pub fn default_out(config: &Path) -> PathBuf {
    let name = config.file_stem().map_or_else(|| "experiment".into(), |s| s.to_string_lossy().into_owned());
    PathBuf::from("runs").join(name)
}

/// Loads the config at `options.config_path` and runs its experiment.
pub fn run(options: &RunOptions) -> anyhow::Result<StudySummary> {
    let config: ExperimentConfig = l2s_core::load_ron(&options.config_path)?;
    match config {
        ExperimentConfig::ToyGmm(toy) => {
            let toy_options = ToyRunOptions {
                config_path: options.config_path.clone(),
                target: options.target.clone(),
                out: options.out.clone(),
                seeds: options.seeds,
                resume: options.resume,
            };
            Ok(run_toy_experiment(toy, &toy_options)?)
        }
        ExperimentConfig::CarCounting(config) => run_traffic(Task::Counting, config, options),
        ExperimentConfig::Segmentation(config) => run_traffic(Task::Segmentation, config, options),
    }
}

fn run_traffic(task: Task, config: TrafficConfig, options: &RunOptions) -> anyhow::Result<StudySummary> {
    let traffic_options = TrafficRunOptions {
        config_path: options.config_path.clone(),
        target: options.target.clone(),
        out: options.out.clone(),
        seeds: options.seeds,
        resume: options.resume,
    };
    Ok(run_traffic_experiment(task, config, &traffic_options)?)
}
