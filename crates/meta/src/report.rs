//! Reports shared by every experiment: the results table, `summary.json`, and the plots of
//! the learning run (reward curve with baseline, ψ trajectories).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use l2s_core::Dim;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::MetaError;
use crate::policy::Policy;
use crate::records::{IterationRecord, write_atomic};
use crate::study::StudySummary;

/// Embedded so that plots need no system fonts (DejaVu Sans, see assets/fonts/LICENSE).
static FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

#[derive(Debug, thiserror::Error)]
#[error("cannot draw `{}`: {message}", path.display())]
pub struct PlotError {
    pub path: PathBuf,
    pub message: String,
}

impl From<PlotError> for MetaError {
    fn from(e: PlotError) -> Self {
        MetaError::Write { path: e.path, source: std::io::Error::other(e.message) }
    }
}

/// Registers the embedded font with plotters once per process.
pub fn register_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
                .map_err(|_| "the embedded font is not a valid TrueType font".to_string())
        })
        .clone()
}

/// Runs a drawing closure on a PNG of `size`, mapping every plotters error to a [`PlotError`].
pub fn draw_png<F>(path: &Path, size: (u32, u32), draw: F) -> Result<(), PlotError>
where
    F: FnOnce(
        &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    ) -> Result<(), Box<dyn std::error::Error>>,
{
    let fail = |message: String| PlotError { path: path.to_path_buf(), message };
    register_font().map_err(fail)?;
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    draw(&root).map_err(|e| fail(e.to_string()))?;
    root.present().map_err(|e| fail(e.to_string()))
}

fn padded_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() || !hi.is_finite() {
        return 0.0..1.0;
    }
    let pad = ((hi - lo) * 0.05).max(1e-3);
    (lo - pad)..(hi + pad)
}

/// Every sample's reward (grey), the mean per iteration (blue) and the baseline (red).
pub fn plot_reward_curve(path: &Path, metric: &str, history: &[IterationRecord]) -> Result<(), PlotError> {
    draw_png(path, (900, 500), |root| {
        let rewards = history.iter().flat_map(|h| h.samples.iter().map(|s| s.reward));
        let y = padded_range(rewards.chain(history.iter().map(|h| h.baseline)));
        let mut chart = ChartBuilder::on(root)
            .caption(format!("Validation reward ({metric}) per iteration"), ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..history.len().max(1) as f64, y)?;
        chart.configure_mesh().x_desc("policy iteration").y_desc(metric).draw()?;
        chart.draw_series(history.iter().flat_map(|h| {
            h.samples.iter().map(move |s| {
                Circle::new((h.iteration as f64, s.reward), 2, RGBColor(170, 170, 170).filled())
            })
        }))?;
        chart
            .draw_series(LineSeries::new(
                history.iter().map(|h| (h.iteration as f64, h.mean_reward)),
                BLUE.stroke_width(2),
            ))?
            .label("mean reward of the K samples")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        chart
            .draw_series(LineSeries::new(
                history.iter().map(|h| (h.iteration as f64, h.baseline)),
                RED.stroke_width(2),
            ))?
            .label("baseline b")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
        Ok(())
    })
}

/// The policy's mode of each continuous dimension (normalised to its bounds) and the
/// probability of each categorical choice, over the iterations.
pub fn plot_psi_trajectories(
    path: &Path,
    policy: &Policy,
    history: &[IterationRecord],
) -> Result<(), PlotError> {
    let space = policy.space();
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for (i, d) in space.dims().iter().enumerate() {
        if let Dim::Continuous { name, low, high } = d {
            let points = history
                .iter()
                .filter_map(|h| h.mode.continuous(i).map(|v| (h.iteration as f64, (v - low) / (high - low))));
            series.push((name.clone(), points.collect()));
        }
    }
    let mut at_iteration = policy.clone();
    let mut choice_series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for h in history {
        if at_iteration.set_omega(h.omega.clone()).is_err() {
            continue;
        }
        for (name, probs) in at_iteration.choice_probabilities() {
            let choices = space.dims().iter().find_map(|d| match d {
                Dim::Categorical { name: n, choices } if *n == name => Some(choices.clone()),
                _ => None,
            });
            for (c, p) in choices.unwrap_or_default().iter().zip(probs) {
                let label = format!("P({name}={c})");
                match choice_series.iter_mut().find(|(l, _)| *l == label) {
                    Some((_, pts)) => pts.push((h.iteration as f64, p)),
                    None => choice_series.push((label, vec![(h.iteration as f64, p)])),
                }
            }
        }
    }
    series.extend(choice_series);
    draw_png(path, (900, 520), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Policy over iterations: mode of ψ (normalised) and choice probabilities",
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..history.len().max(1) as f64, -0.02f64..1.02f64)?;
        chart.configure_mesh().x_desc("policy iteration").y_desc("normalised value / probability").draw()?;
        for (i, (name, points)) in series.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2)))?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .draw()?;
        Ok(())
    })
}

/// The results table in Markdown.
pub fn summary_table(summary: &StudySummary) -> String {
    let mut out = format!(
        "| method | test {} (mean ± std over {} seeds) | search trainings | final trainings | wall time / seed |\n|---|---|---|---|---|\n",
        summary.metric, summary.seeds
    );
    for m in &summary.methods {
        out.push_str(&format!(
            "| {} | {:.4} ± {:.4} | {} | {} | {:.1} s |\n",
            m.label, m.mean, m.std, m.search_trainings, m.final_trainings, m.wall_s
        ));
    }
    out
}

/// Writes `summary.json`.
pub fn write_summary(out: &Path, summary: &StudySummary) -> Result<(), MetaError> {
    let path = out.join("summary.json");
    let json = serde_json::to_vec_pretty(summary)
        .map_err(|e| MetaError::Write { path: path.clone(), source: std::io::Error::other(e) })?;
    write_atomic(&path, &json)
}
