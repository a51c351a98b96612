//! The summary after `cargo xtask bench train`: images/s of each training benchmark from
//! criterion's saved estimates and, given PyTorch's figures (the `RESULT` lines of
//! `../shared/peers/torch_cnn_bench.py`, from a file or a command), the reference
//! network's ratio to PyTorch at the same image size.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use anyhow::{Context, bail};

/// Where PyTorch's figures come from.
pub enum PyTorchSource {
    File(PathBuf),
    Command(String),
}

/// PyTorch's best images/s per image size, and the run it came from.
pub struct PyTorchFigures {
    by_size: BTreeMap<usize, (f64, String)>,
    origin: String,
}

impl PyTorchSource {
    /// Reads or runs the source and parses its `RESULT` lines.
    pub fn load(&self) -> anyhow::Result<PyTorchFigures> {
        let (text, origin) = match self {
            PyTorchSource::File(path) => (
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the PyTorch results {}", path.display()))?,
                path.display().to_string(),
            ),
            PyTorchSource::Command(command) => {
                eprintln!("xtask: running the PyTorch side: {command}");
                let output = Command::new("sh")
                    .args(["-c", command])
                    .stderr(Stdio::inherit())
                    .output()
                    .with_context(|| format!("cannot start `sh -c {command}`"))?;
                if !output.status.success() {
                    bail!("the PyTorch command `{command}` failed ({})", output.status);
                }
                (String::from_utf8_lossy(&output.stdout).into_owned(), format!("`{command}`"))
            }
        };
        let figures = parse_results(&text, origin);
        if figures.by_size.is_empty() {
            bail!(
                "no `RESULT ... size=N ... imgs/s=X` line in {}: give the output of ../shared/peers/torch_cnn_bench.py",
                figures.origin
            );
        }
        Ok(figures)
    }
}

fn parse_results(text: &str, origin: String) -> PyTorchFigures {
    let mut by_size: BTreeMap<usize, (f64, String)> = BTreeMap::new();
    for line in text.lines().filter_map(|l| l.trim().strip_prefix("RESULT ")) {
        let field = |key: &str| {
            line.split_whitespace().find_map(|t| t.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        };
        let (Some(size), Some(rate)) = (
            field("size").and_then(|v| v.parse::<usize>().ok()),
            field("imgs/s").and_then(|v| v.parse::<f64>().ok()),
        ) else {
            continue;
        };
        let run =
            format!("mode {}, {} threads", field("mode").unwrap_or("?"), field("threads").unwrap_or("?"));
        if by_size.get(&size).is_none_or(|(best, _)| rate > *best) {
            by_size.insert(size, (rate, run));
        }
    }
    PyTorchFigures { by_size, origin }
}

/// One benchmark's criterion result.
struct Row {
    id: String,
    per_second: f64,
}

/// Criterion's results under `criterion_dir` for the training groups, written at or after
/// `since` (so benchmarks of earlier runs and filtered-out ones are left out).
fn rows(criterion_dir: &Path, since: SystemTime) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for group in ["train_cpu", "meta_loop_cpu"] {
        let Ok(entries) = std::fs::read_dir(criterion_dir.join(group)) else {
            continue;
        };
        let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("new")).collect();
        dirs.sort();
        for dir in dirs {
            let estimates = dir.join("estimates.json");
            let fresh = std::fs::metadata(&estimates).and_then(|m| m.modified()).is_ok_and(|t| t >= since);
            if !fresh {
                continue;
            }
            let read = |path: &Path| -> anyhow::Result<serde_json::Value> {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not criterion's JSON", path.display()))
            };
            let (benchmark, estimates) = (read(&dir.join("benchmark.json"))?, read(&estimates)?);
            let elements = benchmark["throughput"]["Elements"].as_f64();
            let median_ns = estimates["median"]["point_estimate"].as_f64();
            let id = benchmark["full_id"].as_str().unwrap_or_default().to_string();
            if let (Some(elements), Some(ns)) = (elements, median_ns.filter(|ns| *ns > 0.0)) {
                rows.push(Row { id, per_second: elements / (ns * 1e-9) });
            }
        }
    }
    Ok(rows)
}

/// The image size a benchmark id names (`..._64x64...`).
fn image_size(id: &str) -> Option<usize> {
    id.split(['_', '/']).find_map(|part| {
        let (w, h) = part.split_once('x')?;
        (w == h).then(|| w.parse().ok()).flatten()
    })
}

/// Prints the summary table (Markdown, for BENCHMARKS.md).
pub fn print_summary(
    criterion_dir: &Path,
    since: SystemTime,
    pytorch: Option<&PyTorchFigures>,
) -> anyhow::Result<()> {
    let rows = rows(criterion_dir, since)?;
    if rows.is_empty() {
        eprintln!(
            "xtask: no training benchmark results written by this run under {}",
            criterion_dir.display()
        );
        return Ok(());
    }
    println!("\n| benchmark | per second (criterion median) | ratio to PyTorch |");
    println!("|---|---|---|");
    for row in &rows {
        let name = row.id.rsplit('/').next().unwrap_or(&row.id);
        let unit = if row.id.starts_with("meta_loop_cpu/") && !name.starts_with("reference") {
            "trainings"
        } else {
            "images"
        };
        let ratio = match (pytorch, name.starts_with("reference").then(|| image_size(name)).flatten()) {
            (Some(torch), Some(size)) => torch
                .by_size
                .get(&size)
                .map(|(rate, _)| format!("{:.2}x of {rate:.0}", row.per_second / rate))
                .unwrap_or_else(|| format!("no PyTorch figure at {size}x{size}")),
            _ => "—".into(),
        };
        println!("| {} | {:.1} {unit}/s | {ratio} |", row.id, row.per_second);
    }
    if let Some(torch) = pytorch {
        let runs: Vec<String> = torch
            .by_size
            .iter()
            .map(|(size, (rate, run))| format!("{size}x{size}: {rate:.0} images/s ({run})"))
            .collect();
        println!("\nPyTorch, best per size from {}: {}", torch.origin, runs.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_best_result_per_size_and_skips_other_lines() {
        let text = "warming up\n\
            RESULT framework=torch mode=eager threads=2 size=64 batch=32 steps=100 time=0.6s imgs/s=5400.5 step_ms=5.9\n\
            RESULT framework=torch mode=channels_last threads=2 size=64 batch=32 steps=100 time=0.7s imgs/s=5100 step_ms=6.2\n\
            RESULT framework=torch mode=eager threads=2 size=128 batch=32 imgs/s=1630\n\
            RESULT size=256 imgs/s=fast\n";
        let figures = parse_results(text, "test".into());
        assert_eq!(figures.by_size.len(), 2);
        assert_eq!(figures.by_size[&64], (5400.5, "mode eager, 2 threads".into()));
        assert_eq!(figures.by_size[&128].0, 1630.0);
    }

    #[test]
    fn reads_the_image_size_from_benchmark_ids() {
        assert_eq!(image_size("train_cpu/reference_gemm_128x128"), Some(128));
        assert_eq!(image_size("meta_loop_cpu/reference_gemm_64x64_4_trainings_2_threads"), Some(64));
        assert_eq!(image_size("meta_loop_cpu/4_trainings_2_threads"), None);
    }
}
