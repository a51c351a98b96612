//! Predictions on a target dataset's test images written as Cityscapes label-id PNGs, with
//! the labels they were scored against and l2s's IoU of them, so that cityscapesscripts
//! (`tests/cityscapes_check.py`) can recompute the score.

use std::path::Path;

use image::GrayImage;
use l2s_core::{ParamValues, SeedTree};
use l2s_train::metrics::ConfusionMatrix;
use l2s_train::{IGNORE, predict_segmentation};

use crate::env::TrafficEnv;
use crate::experiment::TrafficError;
use crate::samples::ClassScheme;
use crate::settings::TargetDomain;

/// Trains one model on ψ* as the study does, predicts the test images and writes
/// `dir/pred/<frame>.png`, `dir/gt/<frame>.png` and `dir/l2s_scores.json`. Only for data
/// targets with a class table; anything else writes nothing.
pub fn write_predictions(
    dir: &Path,
    env: &TrafficEnv,
    psi_star: &ParamValues,
    seeds: &SeedTree,
) -> Result<(), TrafficError> {
    let (TargetDomain::Data(target), ClassScheme::Table(map)) = (env.target(), &env.format().classes) else {
        return Ok(());
    };
    let run = |what: &str| {
        let what = what.to_string();
        move |source| TrafficError::Run { what, source }
    };
    let seed = seeds.child("cityscapes").seed();
    let data = env.render_training_set(psi_star, seed).map_err(run("rendering ψ*'s training set"))?;
    let model = env
        .train_segmentation_model(&data, SeedTree::new(seed).child("train").seed())
        .map_err(run("training on ψ*"))?;
    let test = &target.test;
    let predictions = predict_segmentation(&model, test, env.device())
        .map_err(|e| TrafficError::Run { what: "predicting the test images".into(), source: e.into() })?;
    // Scored from the very maps that are written, as `evaluate_segmentation` scores them.
    let mut confusion = ConfusionMatrix::new(map.len());
    for (sample, predicted) in test.samples.iter().zip(&predictions) {
        confusion.add(&sample.classes, predicted);
    }
    let metrics = confusion.metrics(env.format().classes.car());
    let (w, h) = (test.width as u32, test.height as u32);
    for sub in ["pred", "gt"] {
        std::fs::create_dir_all(dir.join(sub))
            .map_err(|source| TrafficError::Write { path: dir.join(sub), source })?;
    }
    let save = |path: &Path, classes: &[u8]| {
        let ids: Vec<u8> =
            classes.iter().map(|&c| if c == IGNORE { 0 } else { map.label_id_of(c) }).collect();
        GrayImage::from_raw(w, h, ids)
            .ok_or_else(|| std::io::Error::other("class map of the wrong size"))
            .and_then(|img| img.save(path).map_err(std::io::Error::other))
            .map_err(|source| TrafficError::Write { path: path.to_path_buf(), source })
    };
    for ((name, sample), predicted) in target.test_names.iter().zip(&test.samples).zip(&predictions) {
        let file = format!("{}.png", name.replace('/', "_"));
        save(&dir.join("pred").join(&file), predicted)?;
        save(&dir.join("gt").join(&file), &sample.classes)?;
    }
    let classes: Vec<serde_json::Value> = map
        .classes()
        .iter()
        .zip(&metrics.iou)
        .map(|(c, iou)| serde_json::json!({ "name": c.name, "label_id": c.ids[0], "iou": iou }))
        .collect();
    let json = serde_json::json!({
        "images": predictions.len(),
        "width": w,
        "height": h,
        "car_iou": metrics.car_iou,
        "mean_iou": metrics.mean_iou,
        "classes": classes,
    });
    let path = dir.join("l2s_scores.json");
    let bytes = serde_json::to_vec_pretty(&json)
        .map_err(|e| TrafficError::Write { path: path.clone(), source: std::io::Error::other(e) })?;
    l2s_meta::records::write_atomic(&path, &bytes)?;
    Ok(())
}
