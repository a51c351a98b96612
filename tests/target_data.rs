//! A labelled dataset on disk as the target (`--target-data`, `target_data:`): a study runs
//! end to end on a KITTI-layout fixture made here from `l2s render`'s images, writes its
//! predictions as Cityscapes ids that cityscapesscripts scores as l2s does, and bad
//! directories are refused with the file named.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{l2s, repo, stderr};

fn utf8(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `frames` scenes rendered at 96x32 by `l2s render`, laid out as KITTI's semantic
/// benchmark (`training/image_2`, `training/semantic`, `training/calib`) with per-frame
/// `counts/*.json`.
fn kitti_fixture(dir: &Path, frames: usize) -> PathBuf {
    std::fs::create_dir_all(dir).expect("fixture dir");
    let config = dir.join("render.ron");
    let text = std::fs::read_to_string(repo().join("configs/render.ron")).expect("render config");
    let text = text.replace("width: 256", "width: 96").replace("height: 256", "height: 32");
    std::fs::write(&config, text).expect("write");
    let export = dir.join("export");
    let count = frames.to_string();
    let o = l2s(&["render", "--config", utf8(&config), "--count", &count, "--out", utf8(&export)], dir);
    assert!(o.status.success(), "{}", stderr(&o));
    let root = dir.join("kitti");
    let training = root.join("training");
    for sub in ["image_2", "semantic", "calib", "counts"] {
        std::fs::create_dir_all(training.join(sub)).expect("dir");
    }
    for i in 0..frames {
        let (from, to) = (format!("{i:06}"), format!("{i:06}_10"));
        for sub in ["image_2", "semantic"] {
            std::fs::copy(
                export.join(sub).join(format!("{from}.png")),
                training.join(sub).join(format!("{to}.png")),
            )
            .expect("copy");
        }
        let frame: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(export.join("frames").join(format!("{from}.json"))).expect("frame"),
        )
        .expect("json");
        std::fs::write(training.join("counts").join(format!("{to}.json")), frame["counts"].to_string())
            .expect("counts");
        // fx = 48 / tan(40°): an 80° horizontal field of view at 96 pixels.
        let fx = 48.0 / 40f64.to_radians().tan();
        std::fs::write(
            training.join("calib").join(format!("{to}.txt")),
            format!("P2: {fx} 0 48 0 0 {fx} 16 0 0 0 1 0\n"),
        )
        .expect("calib");
    }
    root
}

/// A shipped real-target config made tiny: 48x16 model input, a handful of images.
fn tiny_config(dir: &Path, name: &str, target: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("configs").join(name)).expect("config");
    let replacements = [
        ("dir: \"../../shared/targets/foreign_a\"", format!("dir: {:?}", utf8(target))),
        (
            "split: (validation: 60, test: 120, oracle: 60)",
            "split: (validation: 4, test: 4, oracle: 4)".into(),
        ),
        (
            "split: (validation: 80, test: 120, oracle: 40)",
            "split: (validation: 4, test: 4, oracle: 4)".into(),
        ),
        ("width: 144", "width: 48".into()),
        ("height: 48", "height: 16".into()),
        ("train_samples: 100", "train_samples: 6".into()),
        ("warm_start: (samples: 300, epochs: 6)", "warm_start: (samples: 8, epochs: 1)".into()),
        ("epochs: 4", "epochs: 1".into()),
        ("epochs: 6,", "epochs: 1,".into()),
        ("iterations: 8", "iterations: 2".into()),
        ("samples_per_iteration: 8", "samples_per_iteration: 2".into()),
        ("samples_per_iteration: 4", "samples_per_iteration: 2".into()),
        ("seeds: 5", "seeds: 1".into()),
        ("final_trainings: 8", "final_trainings: 1".into()),
        ("final_trainings: 6", "final_trainings: 1".into()),
        ("train_samples: 80", "train_samples: 6".into()),
    ];
    let mut text = text;
    for (from, to) in &replacements {
        text = text.replace(from, to);
    }
    for tiny in [
        "width: 48",
        "train_samples: 6",
        "iterations: 2",
        "samples_per_iteration: 2",
        "seeds: 1",
        "final_trainings: 1",
        "test: 4",
    ] {
        assert!(text.contains(tiny), "{name} no longer shrinks to `{tiny}`: update tiny_config");
    }
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

fn summary(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary.json"))
        .expect("json")
}

#[test]
fn segmentation_on_a_kitti_directory_runs_end_to_end_and_cityscapes_scores_it_alike() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = kitti_fixture(dir.path(), 14);
    let config = tiny_config(dir.path(), "segmentation_real.ron", &target);
    let out = dir.path().join("out");
    let o = l2s(&["experiment", "--config", utf8(&config), "--out", utf8(&out)], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let s = summary(&out);
    assert_eq!(s["metric"], "car IoU");
    let oracle = &s["methods"][3];
    assert_eq!(oracle["method"], "target");
    assert_eq!(oracle["label"], "oracle: trained on 4 target images (upper bound)");
    let metrics: Vec<&str> = oracle["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| m["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        metrics,
        [
            "car_iou",
            "mean_iou",
            "iou.road",
            "iou.sidewalk",
            "iou.building",
            "iou.terrain",
            "iou.sky",
            "iou.car"
        ]
    );
    let report = std::fs::read_to_string(out.join("report.md")).expect("report");
    assert!(
        report.contains("Kitti layout, 14 images of 96x32") && report.contains("from calib/ (P2)"),
        "{report}"
    );
    assert!(report.contains("| iou.car |"), "{report}");

    // Predictions and the labels they were scored against, as Cityscapes ids.
    let cs = out.join("cityscapes");
    for sub in ["pred", "gt"] {
        let files = std::fs::read_dir(cs.join(sub)).expect(sub).count();
        assert_eq!(files, 4, "{sub}: one file per test image");
    }
    let scores: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cs.join("l2s_scores.json")).expect("scores"))
            .expect("json");
    assert_eq!(scores["images"], 4);
    // The truck and bus pixels of the rendered labels are outside the class table: 0 in gt/.
    for entry in std::fs::read_dir(cs.join("gt")).expect("gt") {
        let ids = image::open(entry.expect("entry").path()).expect("png").to_luma8();
        assert!(ids.pixels().all(|p| [0, 7, 8, 11, 22, 23, 26].contains(&p[0])));
    }

    // cityscapesscripts must compute the same IoU. CI sets L2S_CITYSCAPES_PYTHON to a Python
    // that has it; elsewhere the check runs where `python3` has it and is skipped otherwise.
    let required = std::env::var("L2S_CITYSCAPES_PYTHON").ok();
    let python = required.clone().unwrap_or_else(|| "python3".into());
    let check = Command::new(&python).arg(repo().join("tests/cityscapes_check.py")).arg(&cs).output();
    match check {
        Ok(o) if o.status.code() == Some(2) && required.is_none() => {
            eprintln!("skipped the cityscapesscripts check: {}", stderr(&o).trim());
        }
        Ok(o) => assert!(
            o.status.success(),
            "cityscapesscripts disagrees:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            stderr(&o)
        ),
        Err(e) => assert!(required.is_none(), "cannot run {python}: {e}"),
    }
}

#[test]
fn counting_reads_counts_from_the_target_directory_given_on_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = kitti_fixture(dir.path(), 12);
    let config = tiny_config(dir.path(), "car_counting_real.ron", &dir.path().join("elsewhere"));
    let out = dir.path().join("out");
    let o = l2s(
        &["experiment", "--config", utf8(&config), "--target-data", utf8(&target), "--out", utf8(&out)],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let s = summary(&out);
    assert_eq!(s["metric"], "-MAE");
    assert_eq!(s["methods"][3]["label"], "oracle: trained on 4 target images (upper bound)");
}

#[test]
fn bad_target_directories_are_refused_with_what_was_expected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = tiny_config(dir.path(), "segmentation_real.ron", &dir.path().join("missing"));
    let run = |extra: &[&str]| {
        let out = dir.path().join("out");
        let mut args = vec!["experiment", "--config", utf8(&config), "--out", utf8(&out)];
        args.extend(extra);
        l2s(&args, dir.path())
    };
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("missing` does not exist"), "{}", stderr(&o));

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("dir");
    let o = run(&["--target-data", utf8(&empty)]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("not a dataset layout") && e.contains("leftImg8bit"), "{e}");

    // Six images: too few for 4 validation + 4 test.
    let few = kitti_fixture(&dir.path().join("few"), 6);
    let o = run(&["--target-data", utf8(&few)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("has 6 labelled images, too few"), "{}", stderr(&o));
    assert!(!dir.path().join("out").join("summary.json").exists());

    // Not a multiple of 4: refused before anything runs.
    let odd = dir.path().join("odd.ron");
    std::fs::write(&odd, std::fs::read_to_string(&config).expect("config").replace("width: 48", "width: 50"))
        .expect("write");
    let o = l2s(&["experiment", "--config", utf8(&odd), "--out", utf8(&dir.path().join("odd"))], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("multiples of 4"), "{}", stderr(&o));

    // The toy's target is a mixture.
    let o = l2s(
        &[
            "experiment",
            "--config",
            utf8(&repo().join("configs/toy_gmm.ron")),
            "--target-data",
            utf8(&few),
            "--out",
            utf8(&dir.path().join("toy")),
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("toy experiment's target is a Gaussian mixture"), "{}", stderr(&o));
}

#[test]
fn a_cityscapes_directory_is_a_segmentation_target_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kitti = kitti_fixture(dir.path(), 12).join("training");
    let root = dir.path().join("cityscapes");
    for i in 0..12 {
        let (split, city) = if i < 6 { ("train", "aachen") } else { ("val", "lindau") };
        let images = root.join("leftImg8bit").join(split).join(city);
        let labels = root.join("gtFine").join(split).join(city);
        std::fs::create_dir_all(&images).expect("dir");
        std::fs::create_dir_all(&labels).expect("dir");
        let stem = format!("{city}_000000_{i:06}");
        std::fs::copy(
            kitti.join(format!("image_2/{i:06}_10.png")),
            images.join(format!("{stem}_leftImg8bit.png")),
        )
        .expect("copy");
        std::fs::copy(
            kitti.join(format!("semantic/{i:06}_10.png")),
            labels.join(format!("{stem}_gtFine_labelIds.png")),
        )
        .expect("copy");
    }
    let config = tiny_config(dir.path(), "segmentation_real.ron", &root);
    let out = dir.path().join("out");
    let o = l2s(&["experiment", "--config", utf8(&config), "--out", utf8(&out)], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let report = std::fs::read_to_string(out.join("report.md")).expect("report");
    assert!(
        report.contains("Cityscapes layout, 12 images of 96x32") && report.contains("the renderer's own"),
        "{report}"
    );
    // Frame names keep their split and city; files flatten them.
    let preds: Vec<String> = std::fs::read_dir(out.join("cityscapes/pred"))
        .expect("pred")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(preds.len(), 4);
    assert!(
        preds.iter().all(|p| p.starts_with("train_aachen_") || p.starts_with("val_lindau_")),
        "{preds:?}"
    );
}
