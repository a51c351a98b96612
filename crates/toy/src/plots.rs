//! Decision-boundary figures in the layout of the poster's Figure 2.

use std::path::Path;

use l2s_meta::report::{PlotError, draw_png};
use plotters::prelude::*;

use crate::mixture::Dataset;
use crate::svm::Svm;

const REGION: [RGBColor; 2] = [RGBColor(205, 222, 250), RGBColor(252, 222, 200)];
const POINT: [RGBColor; 2] = [RGBColor(30, 80, 200), RGBColor(220, 90, 20)];
/// Cells per axis of the shaded decision regions.
const CELLS: usize = 90;
/// At most this many points per panel, so the regions stay visible.
const MAX_POINTS: usize = 600;

/// One panel: the SVM's regions (if any) with points overlaid.
#[derive(Debug)]
pub struct Panel<'a> {
    pub title: String,
    pub svm: Option<&'a Svm>,
    pub points: &'a Dataset,
}

/// Draws up to six panels in rows of three over the square `extent`.
pub fn plot_panels(path: &Path, panels: &[Panel<'_>], extent: (f64, f64)) -> Result<(), PlotError> {
    let rows = panels.len().div_ceil(3).max(1);
    draw_png(path, (1200, 400 * rows as u32), |root| {
        let (lo, hi) = extent;
        let step = (hi - lo) / CELLS as f64;
        for (area, panel) in root.split_evenly((rows, 3)).iter().zip(panels) {
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, ("sans-serif", 17))
                .margin(8)
                .x_label_area_size(24)
                .y_label_area_size(32)
                .build_cartesian_2d(lo..hi, lo..hi)?;
            chart.configure_mesh().disable_mesh().x_labels(5).y_labels(5).draw()?;
            if let Some(svm) = panel.svm {
                chart.draw_series((0..CELLS * CELLS).map(|cell| {
                    let (i, j) = ((cell % CELLS) as f64, (cell / CELLS) as f64);
                    let centre = [lo + (i + 0.5) * step, lo + (j + 0.5) * step];
                    let colour = REGION[usize::from(svm.predict(centre))];
                    Rectangle::new(
                        [(lo + i * step, lo + j * step), (lo + (i + 1.0) * step, lo + (j + 1.0) * step)],
                        colour.filled(),
                    )
                }))?;
            }
            let shown = panel.points.len().min(MAX_POINTS);
            chart.draw_series(
                panel.points.points[..shown]
                    .iter()
                    .zip(&panel.points.labels)
                    .map(|(p, l)| Circle::new((p[0], p[1]), 2, POINT[usize::from(*l)].filled())),
            )?;
        }
        Ok(())
    })
}
