//! What the end-to-end tests share: running the `l2s` binary, reading what it says, and
//! the shipped configs made tiny.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn l2s(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_l2s")).args(args).current_dir(cwd).output().expect("l2s starts")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The default toy config, made tiny, with its target copied beside it.
pub fn tiny_config(dir: &Path) -> PathBuf {
    small_config(dir, 4)
}

/// The default toy config with `iterations` policy iterations and small everything else.
pub fn small_config(dir: &Path, iterations: usize) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("configs/toy_gmm.ron")).expect("default config");
    let text = text
        .replace("iterations: 60", &format!("iterations: {iterations}"))
        .replace("samples_per_iteration: 20", "samples_per_iteration: 6")
        .replace("seeds: 5", "seeds: 2")
        .replace("final_trainings: 10", "final_trainings: 2")
        .replace("test_samples: 2000", "test_samples: 300");
    std::fs::create_dir_all(dir.join("targets")).expect("targets dir");
    std::fs::copy(repo().join("configs/targets/toy_gmm.ron"), dir.join("targets/toy_gmm.ron"))
        .expect("copy target");
    let path = dir.join("tiny.ron");
    std::fs::write(&path, text).expect("write config");
    path
}

pub fn experiment_args<'a>(config: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "experiment",
        "--config",
        config.to_str().expect("utf-8 path"),
        "--out",
        out.to_str().expect("utf-8 path"),
    ];
    args.extend(extra);
    args
}

pub fn experiment(dir: &Path, config: &Path, extra: &[&str]) -> Output {
    l2s(&experiment_args(config, &dir.join("out"), extra), dir)
}

/// `summary.json` without the wall times, which are the only non-deterministic part.
pub fn summary_without_times(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json");
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("json");
    for m in v["methods"].as_array_mut().expect("methods") {
        m["wall_s"] = serde_json::Value::Null;
    }
    v
}

/// The shipped traffic config made tiny: 32x32 images, a handful of samples, 2 iterations.
pub fn tiny_traffic_config(dir: &Path, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("configs").join(name)).expect("traffic config");
    let text = text
        .replace("width: 64", "width: 32")
        .replace("height: 64", "height: 32")
        .replace("min_visible_pixels: 6,", "min_visible_pixels: 2,")
        .replace("min_visible_pixels: 30,", "min_visible_pixels: 2,")
        .replace("train_samples: 100", "train_samples: 6")
        .replace("warm_start: (samples: 400", "warm_start: (samples: 8")
        .replace("warm_start: (samples: 300", "warm_start: (samples: 8")
        .replace("validation_samples: 150", "validation_samples: 6")
        .replace("validation_samples: 80", "validation_samples: 6")
        .replace("test_samples: 300", "test_samples: 6")
        .replace("test_samples: 200", "test_samples: 6")
        .replace("epochs: 6", "epochs: 1")
        .replace("epochs: 4", "epochs: 1")
        .replace("iterations: 15", "iterations: 3")
        .replace("iterations: 12", "iterations: 3")
        .replace("iterations: 8", "iterations: 3")
        .replace("samples_per_iteration: 8", "samples_per_iteration: 2")
        .replace("samples_per_iteration: 6", "samples_per_iteration: 2")
        .replace("samples_per_iteration: 5", "samples_per_iteration: 2")
        .replace("samples_per_iteration: 4", "samples_per_iteration: 2")
        .replace("seeds: 5", "seeds: 1")
        .replace("final_trainings: 16", "final_trainings: 1")
        .replace("final_trainings: 3", "final_trainings: 1")
        .replace("final_trainings: 2", "final_trainings: 1");
    // A shipped config changed so that a replacement no longer applies: the test would
    // silently run at full size.
    for tiny in [
        "width: 32",
        "train_samples: 6",
        "iterations: 3",
        "samples_per_iteration: 2",
        "seeds: 1",
        "final_trainings: 1",
    ] {
        assert!(text.contains(tiny), "{name} no longer shrinks to `{tiny}`: update tiny_traffic_config");
    }
    std::fs::create_dir_all(dir.join("targets")).expect("targets dir");
    std::fs::copy(repo().join("configs/targets/traffic.ron"), dir.join("targets/traffic.ron"))
        .expect("target");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}
