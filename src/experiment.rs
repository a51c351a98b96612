//! Experiments `l2s` can run, picked by the top-level name of their config file.

use std::path::{Path, PathBuf};

use l2s_core::config::{InvalidField, Validate};
use l2s_meta::StudySummary;
use l2s_meta::worker::JobFile;
use l2s_toy::{ToyConfig, evaluate_toy_job, run_toy_experiment};
use l2s_traffic::{Task, TrafficConfig, evaluate_traffic_job, run_traffic_experiment};
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
pub use l2s_meta::StudyRunOptions as RunOptions;

/// `runs/<config file name>`.
pub fn default_out(config: &Path) -> PathBuf {
    let name = config.file_stem().map_or_else(|| "experiment".into(), |s| s.to_string_lossy().into_owned());
    PathBuf::from("runs").join(name)
}

/// Loads the config at `options.config_path` and runs its experiment.
pub fn run(options: &RunOptions) -> anyhow::Result<StudySummary> {
    let config: ExperimentConfig = l2s_core::load_ron(&options.config_path)?;
    match config {
        ExperimentConfig::ToyGmm(toy) => Ok(run_toy_experiment(toy, options)?),
        ExperimentConfig::CarCounting(c) => Ok(run_traffic_experiment(Task::Counting, c, options)?),
        ExperimentConfig::Segmentation(c) => Ok(run_traffic_experiment(Task::Segmentation, c, options)?),
    }
}

/// Runs one job file of a study (`l2s evaluate --job FILE`): reads the experiment's config
/// as the driver did, rebuilds the job's environment and writes the result next to the job.
pub fn evaluate_job(path: &Path) -> anyhow::Result<()> {
    let (job, spec) = JobFile::load(path)?;
    let config: ExperimentConfig = l2s_core::load_ron(&spec.options.config_path)?;
    tracing::info!("{}: {}", path.display(), job.what);
    match config {
        ExperimentConfig::ToyGmm(toy) => evaluate_toy_job(toy, &spec, &job)?,
        ExperimentConfig::CarCounting(c) => evaluate_traffic_job(Task::Counting, c, &spec, &job)?,
        ExperimentConfig::Segmentation(c) => evaluate_traffic_job(Task::Segmentation, c, &spec, &job)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shipped config loads and validates, so a renamed field or a moved bound never
    /// reaches a user as an error on their first run.
    #[test]
    fn shipped_configs_load_and_validate() {
        let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let ron_files = |dir: &Path| -> Vec<PathBuf> {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .expect("configs folder")
                .map(|entry| entry.expect("directory entry").path())
                .filter(|path| path.extension().is_some_and(|e| e == "ron"))
                .collect();
            files.sort();
            files
        };
        let experiments = ron_files(&configs);
        for path in &experiments {
            let loaded = if path.ends_with("render.ron") {
                l2s_core::load_ron::<l2s_render::DatasetConfig>(path).map(drop)
            } else {
                l2s_core::load_ron::<ExperimentConfig>(path).map(drop)
            };
            loaded.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        let targets = ron_files(&configs.join("targets"));
        for path in &targets {
            let loaded = if path.ends_with("toy_gmm.ron") {
                l2s_core::load_ron::<l2s_toy::Mixture>(path).map(drop)
            } else {
                l2s_core::load_ron::<l2s_traffic::Target>(path).map(drop)
            };
            loaded.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        assert!(experiments.len() >= 6 && targets.len() >= 2, "{experiments:?} {targets:?}");
    }
}
