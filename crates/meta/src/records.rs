//! A run's files: the per-iteration records, the checkpoint `--resume` continues from,
//! and `metrics.csv` / `iterations.csv`, each written atomically.

use std::path::Path;

use l2s_core::{ParamSpace, ParamValues};
use serde::{Deserialize, Serialize};

use crate::config::MetaConfig;
use crate::error::MetaError;
use crate::search::SearchState;

pub const CHECKPOINT_FILE: &str = "checkpoint.json";
/// 2: the learner's state is tagged by search method.
pub(crate) const CHECKPOINT_FORMAT: u32 = 2;

/// One evaluated sample ψ_k of an iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    pub seed: u64,
    pub psi: ParamValues,
    pub reward: f64,
    pub advantage: f64,
    pub metrics: Vec<(String, f64)>,
}

/// One policy iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterationRecord {
    pub iteration: usize,
    /// Seconds this iteration took (not part of the deterministic result).
    pub wall_s: f64,
    /// The search's state that generated this iteration's samples (before its update):
    /// REINFORCE's ω, CMA-ES's mean, σ and choice probabilities, nothing for TPE.
    pub omega: Vec<f64>,
    /// The method's ψ* in that state (REINFORCE: the policy's mode).
    pub mode: ParamValues,
    pub baseline: f64,
    pub mean_reward: f64,
    pub max_reward: f64,
    pub grad_norm: f64,
    pub samples: Vec<SampleRecord>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub(crate) format: u32,
    pub(crate) seed: u64,
    pub(crate) config: MetaConfig,
    pub(crate) space: ParamSpace,
    pub(crate) learner: SearchState,
    pub(crate) history: Vec<IterationRecord>,
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new file, whole.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), MetaError> {
    let tmp = path.with_extension("tmp");
    let wrap = |source| MetaError::Write { path: path.to_path_buf(), source };
    std::fs::write(&tmp, bytes).map_err(wrap)?;
    std::fs::rename(&tmp, path).map_err(wrap)
}

pub(crate) fn create_dir(dir: &Path) -> Result<(), MetaError> {
    std::fs::create_dir_all(dir).map_err(|source| MetaError::Write { path: dir.to_path_buf(), source })
}

pub(crate) fn load_checkpoint(path: &Path) -> Result<Checkpoint, MetaError> {
    let bad = |message: String| MetaError::BadCheckpoint { path: path.to_path_buf(), message };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let checkpoint: Checkpoint = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if checkpoint.format != CHECKPOINT_FORMAT {
        return Err(bad(format!("format {} is not the supported {CHECKPOINT_FORMAT}", checkpoint.format)));
    }
    Ok(checkpoint)
}

/// `metrics.csv` (one row per sample) and `iterations.csv` (one row per iteration, with ω),
/// rewritten whole from the history so they always agree with the checkpoint.
pub(crate) fn write_records(
    dir: &Path,
    space: &ParamSpace,
    state_names: &[String],
    history: &[IterationRecord],
) -> Result<(), MetaError> {
    let dim_names: Vec<&str> = space.dims().iter().map(|d| d.name()).collect();
    let metric_names: Vec<String> = history
        .first()
        .and_then(|h| h.samples.first())
        .map(|s| s.metrics.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();
    let mut samples = csv::Writer::from_writer(Vec::new());
    let mut iterations = csv::Writer::from_writer(Vec::new());
    let to_io = |e: csv::Error| std::io::Error::other(e);
    let mut write = || -> Result<(), std::io::Error> {
        let mut header: Vec<String> =
            ["iteration", "k", "seed", "reward", "baseline", "advantage"].map(String::from).to_vec();
        header.extend(dim_names.iter().map(|n| format!("psi[{n}]")));
        header.extend(metric_names.iter().cloned());
        samples.write_record(&header).map_err(to_io)?;
        let mut header: Vec<String> =
            ["iteration", "wall_s", "mean_reward", "max_reward", "baseline", "grad_norm"]
                .map(String::from)
                .to_vec();
        header.extend(dim_names.iter().map(|n| format!("mode[{n}]")));
        header.extend(state_names.iter().cloned());
        iterations.write_record(&header).map_err(to_io)?;
        for it in history {
            for (k, s) in it.samples.iter().enumerate() {
                let mut row = vec![
                    it.iteration.to_string(),
                    k.to_string(),
                    s.seed.to_string(),
                    s.reward.to_string(),
                    it.baseline.to_string(),
                    s.advantage.to_string(),
                ];
                row.extend(space.describe(&s.psi).into_iter().map(|(_, v)| v));
                row.extend(s.metrics.iter().map(|(_, v)| v.to_string()));
                samples.write_record(&row).map_err(to_io)?;
            }
            let mut row = vec![
                it.iteration.to_string(),
                format!("{:.4}", it.wall_s),
                it.mean_reward.to_string(),
                it.max_reward.to_string(),
                it.baseline.to_string(),
                it.grad_norm.to_string(),
            ];
            row.extend(space.describe(&it.mode).into_iter().map(|(_, v)| v));
            row.extend(it.omega.iter().map(f64::to_string));
            iterations.write_record(&row).map_err(to_io)?;
        }
        Ok(())
    };
    write().map_err(|source| MetaError::Write { path: dir.to_path_buf(), source })?;
    for (name, writer) in [("metrics.csv", samples), ("iterations.csv", iterations)] {
        let path = dir.join(name);
        let bytes = writer.into_inner().map_err(|e| MetaError::Write {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        write_atomic(&path, &bytes)?;
    }
    Ok(())
}
