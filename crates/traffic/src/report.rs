//! The traffic experiment's `report.md` and its figure of samples.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Mutex;

use image::{Rgb, RgbImage};
use l2s_core::{ParamValues, SeedTree};
use l2s_meta::report::{search_section, summary_table};
use l2s_meta::{MetaError, StudySummary};
use l2s_render::Renderer;

use crate::experiment::{TrafficConfig, TrafficError};
use crate::learned::LearnedSpace;
use crate::samples::{ClassScheme, SampleFormat, render_dataset};
use crate::settings::{TargetDomain, Task};

/// RGB next to its class map in the classes' colours (black: ignored or unlabelled).
fn side_by_side(rgb: &[u8], (w, h): (u32, u32), classes: &[u8], scheme: &ClassScheme) -> RgbImage {
    RgbImage::from_fn(2 * w, h, |x, y| {
        let i = (y * w + x % w) as usize;
        if x < w {
            Rgb([rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]])
        } else {
            Rgb(classes.get(i).map_or([0, 0, 0], |&c| scheme.colour(c)))
        }
    })
}

/// Rows: random ψ, learned ψ*, the target (renders of ψ_real, or the dataset's own images);
/// four samples each, RGB next to labels.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_grid(
    path: &Path,
    renderer: &Mutex<Renderer>,
    format: &SampleFormat,
    learned: &LearnedSpace,
    target: &TargetDomain,
    random: &ParamValues,
    psi_star: &ParamValues,
    seeds: &SeedTree,
) -> Result<(), TrafficError> {
    let figure = |source| MetaError::Environment { what: "figure".into(), source };
    let mut rows = vec![learned.params(random).map_err(figure)?, learned.params(psi_star).map_err(figure)?];
    if let TargetDomain::Simulated(target) = target {
        rows.push(target.scene.clone());
    }
    let mut tiles = Vec::new();
    for (r, params) in rows.iter().enumerate() {
        let tree = seeds.child("grid").index(r as u64);
        let (_, frames) = render_dataset(renderer, format, params, &tree, 4, None).map_err(figure)?;
        tiles.push(
            frames
                .iter()
                .map(|f| {
                    side_by_side(&f.rgb, (f.width, f.height), &format.classes.indices(f), &format.classes)
                })
                .collect::<Vec<_>>(),
        );
    }
    if let TargetDomain::Data(target) = target {
        let classes = |image: &l2s_data::LabelledImage| match (&format.classes, &image.label_ids) {
            (ClassScheme::Table(map), Some(ids)) => map.map(ids),
            _ => Vec::new(),
        };
        tiles.push(
            target
                .preview
                .iter()
                .map(|image| {
                    side_by_side(&image.rgb, (image.width, image.height), &classes(image), &format.classes)
                })
                .collect(),
        );
    }
    let (tw, th) = tiles.first().and_then(|r| r.first()).map_or((1, 1), |t| (t.width(), t.height()));
    let gap = 4;
    let mut grid =
        RgbImage::from_pixel(4 * (tw + gap), tiles.len() as u32 * (th + gap), Rgb([255, 255, 255]));
    for (r, row) in tiles.iter().enumerate() {
        for (c, t) in row.iter().enumerate() {
            image::imageops::replace(
                &mut grid,
                t,
                i64::from(c as u32 * (tw + gap)),
                i64::from(r as u32 * (th + gap)),
            );
        }
    }
    grid.save(path)
        .map_err(|e| TrafficError::Write { path: path.to_path_buf(), source: std::io::Error::other(e) })
}

pub(crate) fn write_report(
    out: &Path,
    task: Task,
    config: &TrafficConfig,
    (target_text, target): (&str, &TargetDomain),
    summary: &StudySummary,
    wall_s: f64,
    (render_s, train_s, score_s): (f64, f64, f64),
) -> Result<(), TrafficError> {
    let title = match task {
        Task::Counting => "car counting",
        Task::Segmentation => "semantic segmentation",
    };
    let mut md = String::new();
    let _ = writeln!(md, "# Learning to simulate: {title} on the traffic simulator\n");
    let _ = writeln!(
        md,
        "Target: {}. Learned dimensions of ψ: {}. Images {}x{}; M = {} rendered images per main-task \
         training, ξ = {} epochs (batch {}, Adam {}), {}; {} validation and {} test images \
         from the target, the same for every seed. Policy: {} iterations × K = {}. {} seeds from master seed {}; \
         wall time {:.1} s.\n",
        target_text,
        config.learn.join(", "),
        config.render.width,
        config.render.height,
        config.data.train_samples,
        config.train.epochs,
        config.train.batch_size,
        config.train.learning_rate,
        match &config.train.warm_start {
            Some(warm) => format!(
                "fine-tuning a shared start trained once for {} epochs on {} images of the base ψ",
                warm.epochs, warm.samples
            ),
            None => "from scratch".into(),
        },
        match target {
            TargetDomain::Data(t) => t.validation.len(),
            TargetDomain::Simulated(_) => config.data.validation_samples,
        },
        match target {
            TargetDomain::Data(t) => t.test.len(),
            TargetDomain::Simulated(_) => config.data.test_samples,
        },
        config.meta.iterations,
        config.meta.samples_per_iteration,
        summary.seeds,
        summary.master_seed,
        wall_s
    );
    let _ = writeln!(md, "## Test {}\n\n{}", task.metric_name(), summary_table(summary));
    let _ = write!(md, "{}", metrics_table(summary));
    let _ = write!(md, "{}", search_section(summary));
    let _ = writeln!(
        md,
        "Each seed's score is the mean over {} main-task trainings on fresh renders; the test set is \
         used for nothing else.\n",
        config.study.final_trainings
    );
    let _ = writeln!(
        md,
        "Time by phase, summed over the worker threads: rendering {render_s:.0} s, training {train_s:.0} s, \
         scoring on validation/test {score_s:.0} s (wall time of the whole run {wall_s:.0} s; rendering the \
         targets' validation and test sets is part of rendering).\n"
    );
    let _ = writeln!(md, "## Figures (seed 0)\n");
    let _ = writeln!(
        md,
        "![samples](samples.png)\n\nRows: random ψ, learned ψ*, {}; RGB next to labels.\n",
        match target {
            TargetDomain::Simulated(_) => "the target ψ_real (before its domain shift)",
            TargetDomain::Data(_) =>
                "the target's own validation images, framed as the model sees them (labels black where ignored)",
        }
    );
    if task == Task::Segmentation && matches!(target, TargetDomain::Data(_)) {
        let _ = writeln!(
            md,
            "Predictions of one model trained on ψ* (seed 0) on the test images are in `cityscapes/pred/`, with the \
             labels they are scored against in `cityscapes/gt/` (Cityscapes label ids; ignored pixels are 0) and l2s's \
             IoU of them in `cityscapes/l2s_scores.json`: `python3 tests/cityscapes_check.py {}` recomputes it with \
             cityscapesscripts.\n",
            out.join("cityscapes").display()
        );
    }
    let _ = writeln!(
        md,
        "![reward curve](reward_curve.png)\n\n![psi trajectories](psi_trajectories.png)\n\nψ trajectories: the policy's mode per learned dimension (normalised to its bounds) and the weather probabilities.\n"
    );
    let _ = writeln!(md, "## Learned ψ* per seed\n");
    for (s, psi) in summary.learned_psi.iter().enumerate() {
        let text: Vec<String> = psi.iter().map(|(n, v)| format!("{n} = {v}")).collect();
        let _ = writeln!(md, "- seed {s}: {}", text.join(", "));
    }
    let path = out.join("report.md");
    l2s_meta::records::write_atomic(&path, md.as_bytes())?;
    Ok(())
}

/// The further metrics of every method (mIoU, per-class IoU, per-type MAE): mean ± std
/// over seeds, one row per metric.
fn metrics_table(summary: &StudySummary) -> String {
    let Some(first) = summary.methods.first() else { return String::new() };
    if first.metrics.is_empty() {
        return String::new();
    }
    let mut md = String::from("| metric |");
    for m in &summary.methods {
        let _ = write!(md, " {} |", m.method);
    }
    md.push_str("\n|---|");
    md.push_str(&"---|".repeat(summary.methods.len()));
    md.push('\n');
    for (i, metric) in first.metrics.iter().enumerate() {
        let _ = write!(md, "| {} |", metric.name);
        for m in &summary.methods {
            match m.metrics.get(i) {
                Some(v) => {
                    let _ = write!(md, " {:.4} ± {:.4} |", v.mean, v.std);
                }
                None => md.push_str(" – |"),
            }
        }
        md.push('\n');
    }
    md.push('\n');
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use l2s_train::IGNORE;

    #[test]
    fn a_grid_tile_shows_rgb_beside_class_colours_and_black_where_there_is_no_label() {
        let rgb = [10, 20, 30, 40, 50, 60, 70, 80, 90];
        let car = ClassScheme::Renderer.car() as u8;
        let tile = side_by_side(&rgb, (3, 1), &[car, IGNORE], &ClassScheme::Renderer);
        assert_eq!(tile.dimensions(), (6, 1));
        let pixels: Vec<[u8; 3]> = tile.pixels().map(|p| p.0).collect();
        assert_eq!(&pixels[..3], &[[10, 20, 30], [40, 50, 60], [70, 80, 90]]);
        // The car in its Cityscapes colour; an ignored pixel, and one past the class map, black.
        assert_eq!(&pixels[3..], &[ClassScheme::Renderer.colour(car), [0, 0, 0], [0, 0, 0]]);
        assert_eq!(pixels[3], [0, 0, 142]);
    }
}
