//! The `l2s` binary as a user meets it: help, config errors with their location, and a
//! small toy experiment end to end, with resume.

use std::path::Path;
use std::process::Command;

mod common;

use common::{
    experiment, experiment_args, l2s, repo, small_config, stderr, summary_without_times, tiny_config,
    tiny_traffic_config,
};

#[test]
fn help_lists_the_subcommands() {
    let o = l2s(&["--help"], &repo());
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    for sub in ["experiment", "evaluate", "train", "render", "preview"] {
        assert!(text.contains(sub), "{sub} missing from:\n{text}");
    }
}

#[test]
fn malformed_config_names_file_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = tiny_config(dir.path());
    let text = std::fs::read_to_string(&config).expect("read");
    let line = 1 + text.lines().position(|l| l.contains("std: 0.6,")).expect("std line");
    std::fs::write(&config, text.replace("std: 0.6,", "std: 0.6 ,,")).expect("write");
    let o = experiment(dir.path(), &config, &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains(&format!("{}:{line}:", config.display())), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn unknown_field_is_named_with_its_location() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = tiny_config(dir.path());
    let text = std::fs::read_to_string(&config).expect("read");
    std::fs::write(&config, text.replace("svm: (c: 1.0,", "svm: (cost: 1.0,")).expect("write");
    let o = experiment(dir.path(), &config, &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("cost") && err.contains(&format!("{}:", config.display())), "{err}");
}

#[test]
fn out_of_bounds_value_names_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = tiny_config(dir.path());
    let text = std::fs::read_to_string(&config).expect("read");
    std::fs::write(&config, text.replace("baseline_decay: 0.8", "baseline_decay: 1.8")).expect("write");
    let o = experiment(dir.path(), &config, &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("`meta.baseline_decay` is 1.8, but must lie in [0, 1]"), "{err}");
}

#[test]
fn missing_files_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = experiment(dir.path(), &dir.path().join("nope.ron"), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nope.ron"), "{}", stderr(&o));

    let config = tiny_config(dir.path());
    let o = experiment(dir.path(), &config, &["--target", "missing-target.ron"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("missing-target.ron"), "{}", stderr(&o));
}

#[test]
fn malformed_target_gives_a_located_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = tiny_config(dir.path());
    let target = dir.path().join("bad_target.ron");
    std::fs::write(&target, "(classes: [[(mean: (0.0, 0.0), std: 1.0)], [(mean: (1.0 0.0), std: 1.0)]])")
        .expect("write");
    let o = experiment(dir.path(), &config, &["--target", target.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains(&format!("{}:1:", target.display())), "{err}");
}

#[test]
fn toy_experiment_runs_end_to_end_and_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = tiny_config(dir.path());
    let o = experiment(dir.path(), &config, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.path().join("out");
    for file in
        ["summary.json", "report.md", "decision_boundaries.png", "reward_curve.png", "psi_trajectories.png"]
    {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    for file in ["checkpoint.json", "metrics.csv", "iterations.csv"] {
        assert!(out.join("seed-1").join(file).is_file(), "seed-1/{file} missing");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary"))
            .expect("json");
    let methods = summary["methods"].as_array().expect("methods");
    assert_eq!(methods.len(), 4);
    assert_eq!(summary["seeds"], 2);
    let first_summary = summary_without_times(&out);

    // Running again into the same directory is refused, and nothing there is touched.
    let again = experiment(dir.path(), &config, &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("--resume"), "{}", stderr(&again));

    // Resuming a finished run reproduces it; resuming with another method is refused.
    let resumed = experiment(dir.path(), &config, &["--resume"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert_eq!(first_summary, summary_without_times(&out));
    let other = experiment(dir.path(), &config, &["--resume", "--method", "tpe"]);
    assert_eq!(other.status.code(), Some(1));
    assert!(stderr(&other).contains("another config"), "{}", stderr(&other));

    // Resuming with more seeds keeps the two run and adds the third: the same study as
    // three seeds from the start.
    let seed_0 = std::fs::read(out.join("seed-0").join("result.json")).expect("seed-0 result");
    let extended = experiment(dir.path(), &config, &["--resume", "--seeds", "3"]);
    assert!(extended.status.success(), "{}", stderr(&extended));
    assert_eq!(std::fs::read(out.join("seed-0").join("result.json")).expect("seed-0 result"), seed_0);
    let three = dir.path().join("three");
    let o = l2s(&experiment_args(&config, &three, &["--seeds", "3"]), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary_without_times(&out), summary_without_times(&three));
}

/// Starts a run into `out`, kills it as soon as its first checkpoint exists (if it has not
/// finished by then) and resumes it to the end.
fn kill_at_first_checkpoint_then_resume(dir: &Path, config: &Path, out: &Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_l2s"))
        .args(experiment_args(config, out, &[]))
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("l2s starts");
    let checkpoint = out.join("seed-0").join("checkpoint.json");
    while !checkpoint.exists() && child.try_wait().expect("child status").is_none() {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // The kill must land: a run that finished first would test nothing.
    assert!(
        child.try_wait().expect("child status").is_none(),
        "the run finished before its first checkpoint was seen"
    );
    child.kill().expect("kill the run");
    let status = child.wait().expect("reap");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "not killed: {status}");
    assert!(!out.join("summary.json").exists(), "the run had finished before the kill");
    let o = l2s(&experiment_args(config, out, &["--resume"]), dir);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Kills a run as soon as its first checkpoint exists, resumes it, and compares with an
/// uninterrupted run. Where the kill lands varies; the result must not.
#[test]
fn a_killed_run_resumes_to_the_uninterrupted_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config(dir.path(), 30);
    let whole = dir.path().join("whole");
    let o = l2s(&experiment_args(&config, &whole, &[]), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));

    let killed = dir.path().join("killed");
    kill_at_first_checkpoint_then_resume(dir.path(), &config, &killed);
    assert_eq!(summary_without_times(&whole), summary_without_times(&killed));
    for seed in ["seed-0", "seed-1"] {
        let csv =
            |root: &Path| std::fs::read_to_string(root.join(seed).join("metrics.csv")).expect("metrics.csv");
        assert_eq!(csv(&whole), csv(&killed), "{seed}/metrics.csv differs");
    }
}

#[test]
fn render_exports_a_dataset_and_refuses_to_overwrite_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("render.ron");
    let text = std::fs::read_to_string(repo().join("configs/render.ron")).expect("render config");
    std::fs::write(&config, text.replace("width: 256", "width: 96").replace("height: 256", "height: 64"))
        .expect("write");
    let out = dir.path().join("data");
    let args = [
        "render",
        "--config",
        config.to_str().expect("utf-8"),
        "--count",
        "5",
        "--out",
        out.to_str().expect("utf-8"),
    ];
    let run = l2s(&args, dir.path());
    assert!(run.status.success(), "{}", stderr(&run));
    for (sub, ext) in [
        ("image_2", "png"),
        ("semantic", "png"),
        ("instance", "png"),
        ("depth", "png"),
        ("label_2", "txt"),
        ("frames", "json"),
    ] {
        for i in 0..5 {
            assert!(out.join(sub).join(format!("{i:06}.{ext}")).is_file(), "missing {sub}/{i:06}.{ext}");
        }
    }
    let labels: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("labels.json")).expect("labels.json"))
            .expect("json");
    // Cityscapes' own ids: lane markings are road, pickups truck 27, buses bus 28.
    assert_eq!(labels["classes"].as_array().map(Vec::len), Some(8));
    for i in 0..5 {
        let ids =
            image::open(out.join("semantic").join(format!("{i:06}.png"))).expect("semantic png").to_luma8();
        assert!(
            ids.pixels().all(|p| [7, 8, 11, 22, 23, 26, 27, 28].contains(&p[0])),
            "frame {i}: an id outside Cityscapes' set"
        );
    }
    let frame: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("frames/000000.json")).expect("frame"))
            .expect("json");
    assert!(frame["counts"]["sedan"].is_u64());
    let again = l2s(&args, dir.path());
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("already exists and is not empty"), "{}", stderr(&again));
    // An output path below a file: the cause is named once, not repeated by the error chain.
    let below_file = dir.path().join("render.ron").join("out");
    let run = l2s(
        &[
            "render",
            "--config",
            config.to_str().expect("utf-8"),
            "--out",
            below_file.to_str().expect("utf-8"),
        ],
        dir.path(),
    );
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(stderr(&run).matches("Not a directory").count(), 1, "{}", stderr(&run));
    let bad = dir.path().join("bad.ron");
    std::fs::write(&bad, text.replace("road_length: 120.0", "road_length: 900.0")).expect("write");
    let other = dir.path().join("other");
    let run = l2s(
        &["render", "--config", bad.to_str().expect("utf-8"), "--out", other.to_str().expect("utf-8")],
        dir.path(),
    );
    assert_eq!(run.status.code(), Some(1));
    assert!(stderr(&run).contains("scene.road_length"), "{}", stderr(&run));
    assert!(!other.exists(), "nothing is written for a bad config");
}

/// `l2s preview` in a real window: under Xvfb when there is no display (CI), on lavapipe
/// when there is no GPU. It draws a few frames, saves a screenshot and exits.
#[test]
fn preview_window_opens_renders_and_takes_a_screenshot() {
    let dir = tempfile::tempdir().expect("temp dir");
    let shot = dir.path().join("preview.png");
    let config = repo().join("configs/render.ron");
    let args = [
        "preview",
        "--config",
        config.to_str().expect("utf-8"),
        "--screenshot",
        shot.to_str().expect("utf-8"),
        "--frames",
        "8",
    ];
    let output = if std::env::var_os("DISPLAY").is_some() {
        l2s(&args, dir.path())
    } else {
        Command::new("xvfb-run")
            .args(["-a", "-s", "-screen 0 1280x800x24", env!("CARGO_BIN_EXE_l2s")])
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("no DISPLAY and no xvfb-run: install xvfb and xauth (`apt-get install -y xvfb xauth`, as .ci/run does)")
    };
    assert!(output.status.success(), "preview failed: {}", stderr(&output));
    let image = image::open(&shot).expect("screenshot is a PNG").to_rgb8();
    assert!(image.width() >= 640 && image.height() >= 400);
    let colours: std::collections::BTreeSet<[u8; 3]> = image.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 300, "screenshot looks blank: {} colours", colours.len());
    let luma: Vec<f64> =
        image.pixels().map(|p| p.0.iter().map(|&v| f64::from(v)).sum::<f64>() / 3.0).collect();
    let mean = luma.iter().sum::<f64>() / luma.len() as f64;
    let std = (luma.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / luma.len() as f64).sqrt();
    assert!(std > 15.0 && mean > 30.0, "screenshot lacks contrast: mean {mean:.1}, std {std:.1}");
}

/// The whole traffic loop on lavapipe and the CPU backend: render, train, reward, policy
/// update, final table, report; a run killed at its first checkpoint resumes to the same
/// result as an uninterrupted one.
#[test]
fn traffic_counting_runs_end_to_end_and_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = tiny_traffic_config(dir.path(), "car_counting.ron");
    let whole = dir.path().join("whole");
    let o = l2s(&experiment_args(&config, &whole, &[]), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    for file in ["summary.json", "report.md", "reward_curve.png", "psi_trajectories.png", "samples.png"] {
        assert!(whole.join(file).is_file(), "{file} missing");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(whole.join("summary.json")).expect("summary"))
            .expect("json");
    assert_eq!(summary["metric"], "-MAE");
    assert_eq!(summary["methods"].as_array().map(Vec::len), Some(4));

    let killed = dir.path().join("killed");
    kill_at_first_checkpoint_then_resume(dir.path(), &config, &killed);
    assert_eq!(summary_without_times(&whole), summary_without_times(&killed));
    let csv =
        |root: &Path| std::fs::read_to_string(root.join("seed-0").join("metrics.csv")).expect("metrics.csv");
    assert_eq!(csv(&whole), csv(&killed));
}

#[test]
fn traffic_segmentation_runs_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = tiny_traffic_config(dir.path(), "segmentation.ron");
    let out = dir.path().join("out");
    let o = l2s(&experiment_args(&config, &out, &[]), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary"))
            .expect("json");
    assert_eq!(summary["metric"], "car IoU");
    let methods = summary["methods"].as_array().expect("methods");
    assert_eq!(methods.len(), 4, "learned, random, random search, target");
    for method in methods {
        // The reward is the car IoU metric, and every class of the renderer is scored.
        let metric = |name: &str| {
            method["metrics"]
                .as_array()
                .and_then(|m| m.iter().find(|x| x["name"] == name))
                .map(|x| &x["mean"])
        };
        assert_eq!(metric("car_iou"), Some(&method["mean"]), "{method}");
        for class in ["road", "sidewalk", "building", "terrain", "sky", "car", "lane marking"] {
            let iou = metric(&format!("iou.{class}")).and_then(serde_json::Value::as_f64);
            assert!(iou.is_some_and(f64::is_finite), "no IoU of {class}: {method}");
        }
    }
    for file in ["report.md", "reward_curve.png", "psi_trajectories.png", "samples.png"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
}

#[test]
fn train_command_learns_from_an_exported_dataset() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("render.ron");
    let text = std::fs::read_to_string(repo().join("configs/render.ron")).expect("render config");
    std::fs::write(&config, text.replace("width: 256", "width: 32").replace("height: 256", "height: 32"))
        .expect("write");
    let data = dir.path().join("data");
    let o = l2s(
        &[
            "render",
            "--config",
            config.to_str().expect("utf-8"),
            "--count",
            "10",
            "--out",
            data.to_str().expect("utf-8"),
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for task in ["counting", "segmentation"] {
        let o = l2s(
            &[
                "train",
                "--data",
                data.to_str().expect("utf-8"),
                "--task",
                task,
                "--epochs",
                "4",
                "--backend",
                "cpu",
            ],
            dir.path(),
        );
        assert!(o.status.success(), "{task}: {}", stderr(&o));
        let stdout = String::from_utf8_lossy(&o.stdout);
        // Learning: the training loss of the last epoch below the first's.
        let losses: Vec<f64> = stdout
            .lines()
            .find_map(|l| l.strip_prefix("loss per epoch: "))
            .map(|l| l.trim_matches(['[', ']']).split(", ").filter_map(|v| v.parse().ok()).collect())
            .unwrap_or_default();
        assert_eq!(losses.len(), 4, "{task}: {stdout}");
        assert!(losses[3] < losses[0], "{task}: the loss did not fall: {losses:?}");
        let metric = if task == "counting" { "validation MAE " } else { "car IoU " };
        assert!(stdout.contains(metric), "{task}: no `{metric}` in {stdout}");
    }
}

/// Without a graphics adapter (wgpu told to look only for Metal, which Linux lacks), the
/// GPU paths stop with an error that says what to install, instead of Bevy's or burn's
/// panic: rendering, and training on `--backend wgpu`.
#[test]
fn no_graphics_adapter_is_a_clear_error_for_rendering_and_wgpu_training() {
    let dir = tempfile::tempdir().expect("tempdir");
    let no_adapter = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_l2s"))
            .args(args)
            .current_dir(repo())
            .env("WGPU_BACKEND", "metal")
            .output()
            .expect("l2s starts")
    };
    let out = dir.path().join("frames");
    let render = no_adapter(&["render", "--count", "1", "--out", out.to_str().expect("utf-8 path")]);
    let train = no_adapter(&[
        "train",
        "--data",
        out.to_str().expect("utf-8 path"),
        "--task",
        "counting",
        "--backend",
        "wgpu",
    ]);
    for (what, o) in [("render", render), ("train --backend wgpu", train)] {
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{what}: {err}");
        assert!(err.contains("mesa-vulkan-drivers") && !err.contains("panicked"), "{what}: {err}");
    }
    // Nothing written: a rerun after installing a driver finds no half-made directory.
    assert!(!out.exists(), "`l2s render` created its output directory without an adapter");
}

/// Tiny versions of the `*_gpu.ron` configs run end to end with their main task models on
/// burn's wgpu backend (lavapipe in CI). Without an adapter this prints why and passes,
/// unless `L2S_REQUIRE_WGPU=1` (CI).
#[test]
fn the_gpu_configs_run_with_their_models_on_wgpu() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["car_counting_gpu.ron", "segmentation_gpu.ron"] {
        let config = tiny_traffic_config(dir.path(), name);
        let text = std::fs::read_to_string(&config).expect("config");
        assert!(text.contains("backend: Auto"), "{name} no longer says `backend: Auto`");
        std::fs::write(&config, text.replace("backend: Auto", "backend: Wgpu")).expect("write");
        let out = dir.path().join(format!("out-{name}"));
        let o = l2s(&experiment_args(&config, &out, &[]), dir.path());
        let err = stderr(&o);
        if err.contains("wgpu sees none") && !std::env::var("L2S_REQUIRE_WGPU").is_ok_and(|v| v == "1") {
            eprintln!("skipped: no graphics adapter");
            return;
        }
        assert!(o.status.success(), "{name}: {err}");
        assert!(err.contains("backend choice: Wgpu"), "{name}: the models did not train on wgpu:\n{err}");
        assert!(out.join("summary.json").is_file(), "{name}: no summary");
    }
}
