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

/// `text` with every numeric `field: value` (the whole word `field`) set to `value`; the
/// number of fields set.
fn set_numbers(text: &mut String, field: &str, value: &str) -> usize {
    let key = format!("{field}: ");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    let mut count = 0;
    while let Some(at) = rest.find(&key) {
        let whole_word = rest[..at].chars().next_back().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        let after = &rest[at + key.len()..];
        let number = after.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(after.len());
        out.push_str(&rest[..at + key.len()]);
        if whole_word && number > 0 {
            out.push_str(value);
            count += 1;
            rest = &after[number..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    *text = out;
    count
}

/// A shipped traffic config (`car_counting.ron`, `segmentation.ron`, their `_gpu`
/// versions) made tiny: 32x32 images, a handful of samples, 3 iterations of K = 2, 1 seed.
pub fn tiny_traffic_config(dir: &Path, name: &str) -> PathBuf {
    let mut text = std::fs::read_to_string(repo().join("configs").join(name)).expect("traffic config");
    for (field, value) in [
        ("width", "32"),
        ("height", "32"),
        ("min_visible_pixels", "2"),
        ("train_samples", "6"),
        ("validation_samples", "6"),
        ("test_samples", "6"),
        ("epochs", "1"),
        ("samples", "8"),
        ("iterations", "3"),
        ("samples_per_iteration", "2"),
        ("seeds", "1"),
        ("final_trainings", "1"),
    ] {
        // A shipped config changed so that a field is no longer there: the test would
        // silently run at full size.
        let optional = field == "samples"; // the warm start's, where there is one
        assert!(
            set_numbers(&mut text, field, value) > 0 || optional,
            "{name} has no `{field}:` any more: update tiny_traffic_config"
        );
    }
    std::fs::create_dir_all(dir.join("targets")).expect("targets dir");
    std::fs::copy(repo().join("configs/targets/traffic.ron"), dir.join("targets/traffic.ron"))
        .expect("target");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}
