//! Reports shared by every experiment: the results table, `summary.json`, and the plots of
//! the learning run (reward curve with baseline, ψ trajectories).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use l2s_core::{Dim, ParamSpace};
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

/// Every sample's reward (grey), the mean per iteration (blue) and, for REINFORCE
/// (`baseline`), its baseline (red).
pub fn plot_reward_curve(
    path: &Path,
    metric: &str,
    history: &[IterationRecord],
    baseline: bool,
) -> Result<(), PlotError> {
    draw_png(path, (900, 500), |root| {
        let rewards = history.iter().flat_map(|h| h.samples.iter().map(|s| s.reward));
        let baselines = history.iter().filter(|_| baseline).map(|h| h.baseline);
        let y = padded_range(rewards.chain(baselines));
        let mut chart = ChartBuilder::on(root)
            .caption(format!("Validation reward ({metric}) per iteration"), ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..history.len().max(1) as f64, y)?;
        chart.configure_mesh().x_desc("iteration").y_desc(metric).draw()?;
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
        if baseline {
            chart
                .draw_series(LineSeries::new(
                    history.iter().map(|h| (h.iteration as f64, h.baseline)),
                    RED.stroke_width(2),
                ))?
                .label("baseline b")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
        Ok(())
    })
}

/// The search's ψ* of each continuous dimension (normalised to its bounds) over the
/// iterations, and with REINFORCE's `policy` the probability of each categorical choice.
pub fn plot_psi_trajectories(
    path: &Path,
    space: &ParamSpace,
    policy: Option<&Policy>,
    history: &[IterationRecord],
) -> Result<(), PlotError> {
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for (i, d) in space.dims().iter().enumerate() {
        if let Dim::Continuous { name, low, high } = d {
            let points = history
                .iter()
                .filter_map(|h| h.mode.continuous(i).map(|v| (h.iteration as f64, (v - low) / (high - low))));
            series.push((name.clone(), points.collect()));
        }
    }
    let mut at_iteration = policy.cloned();
    let mut choice_series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for h in history {
        let Some(at_iteration) = at_iteration.as_mut() else { break };
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
            .caption("Search over iterations: ψ* (normalised) and choice probabilities", ("sans-serif", 20))
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

/// The results table in Markdown. Searches also get the trainings they needed to come 95 %
/// of the way from random ψ to the target (median over the seeds that did, and how many did)
/// and to reach random search's final score, where the study tested smaller budgets.
pub fn summary_table(summary: &StudySummary) -> String {
    let mut out = format!(
        "| method | test {} (mean ± std over {} seeds) | search trainings | trainings to 95 % of target | trainings to random search's final | final trainings | wall time / seed |\n|---|---|---|---|---|---|---|\n",
        summary.metric, summary.seeds
    );
    for m in &summary.methods {
        let (to_95, to_random_search) = if m.at_budgets.is_empty() {
            ("–".to_string(), "–".to_string())
        } else {
            (
                trainings_to_95(&m.trainings_to_95),
                m.reaches_random_search_at.map_or("not reached".into(), |b| b.to_string()),
            )
        };
        out.push_str(&format!(
            "| {} | {:.4} ± {:.4} | {} | {to_95} | {to_random_search} | {} | {:.1} s |\n",
            m.label, m.mean, m.std, m.search_trainings, m.final_trainings, m.wall_s
        ));
    }
    out
}

/// "median (reached by k/n seeds)" of per-seed trainings.
fn trainings_to_95(per_seed: &[Option<usize>]) -> String {
    let mut reached: Vec<usize> = per_seed.iter().flatten().copied().collect();
    if reached.is_empty() {
        return format!("not reached (0/{})", per_seed.len());
    }
    reached.sort_unstable();
    let mid = reached.len() / 2;
    let median = if reached.len() % 2 == 1 {
        reached[mid] as f64
    } else {
        (reached[mid - 1] + reached[mid]) as f64 / 2.0
    };
    format!("{median} ({}/{})", reached.len(), per_seed.len())
}

/// Each search's test score at every tested budget, in Markdown (empty without budgets).
pub fn budget_table(summary: &StudySummary) -> String {
    let searches: Vec<_> = summary.methods.iter().filter(|m| !m.at_budgets.is_empty()).collect();
    let Some(first) = searches.first() else { return String::new() };
    let budgets: Vec<usize> = first.at_budgets.iter().map(|b| b.trainings).collect();
    let mut out = format!(
        "| method | {} |\n|---|{}\n",
        budgets.iter().map(|b| format!("{b} trainings")).collect::<Vec<_>>().join(" | "),
        "---|".repeat(budgets.len())
    );
    for m in searches {
        let cells: Vec<String> =
            m.at_budgets.iter().map(|b| format!("{:.4} ± {:.4}", b.mean, b.std)).collect();
        out.push_str(&format!("| {} | {} |\n", m.label, cells.join(" | ")));
    }
    out
}

/// Every search's best validation reward against main-task trainings: the mean over seeds
/// with a band of ± one standard deviation.
pub fn plot_search_curves(path: &Path, summary: &StudySummary) -> Result<(), PlotError> {
    draw_png(path, (900, 520), |root| {
        let values =
            summary.curves.iter().flat_map(|c| c.mean.iter().zip(&c.std).flat_map(|(m, s)| [m - s, m + s]));
        let y = padded_range(values);
        let len = summary.curves.iter().map(|c| c.mean.len()).max().unwrap_or(1);
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "Best validation {} so far (mean ± std over {} seeds)",
                    summary.metric, summary.seeds
                ),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(1f64..len.max(2) as f64, y)?;
        chart
            .configure_mesh()
            .x_desc("main-task trainings")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc(summary.metric.as_str())
            .draw()?;
        for (i, curve) in summary.curves.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            let at = |t: usize| t as f64 + 1.0;
            let upper = curve.mean.iter().zip(&curve.std).enumerate().map(|(t, (m, s))| (at(t), m + s));
            let lower = curve.mean.iter().zip(&curve.std).enumerate().rev().map(|(t, (m, s))| (at(t), m - s));
            chart.draw_series(std::iter::once(Polygon::new(
                upper.chain(lower).collect::<Vec<_>>(),
                colour.mix(0.15).filled(),
            )))?;
            chart
                .draw_series(LineSeries::new(
                    curve.mean.iter().enumerate().map(|(t, m)| (at(t), *m)),
                    colour.stroke_width(2),
                ))?
                .label(curve.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .draw()?;
        Ok(())
    })
}

/// Writes the outputs every study has: `summary.json` and `search_curves.png`.
pub fn write_summary(out: &Path, summary: &StudySummary) -> Result<(), MetaError> {
    let path = out.join("summary.json");
    let json = serde_json::to_vec_pretty(summary)
        .map_err(|e| MetaError::Write { path: path.clone(), source: std::io::Error::other(e) })?;
    write_atomic(&path, &json)?;
    plot_search_curves(&out.join(SEARCH_CURVES), summary)?;
    Ok(())
}

const SEARCH_CURVES: &str = "search_curves.png";

/// The report's section on the searches at equal budgets: the test score at every tested
/// budget and the search curves.
pub fn search_section(summary: &StudySummary) -> String {
    let mut md = String::from("## Searches at equal budgets\n\n");
    let budgets = budget_table(summary);
    if !budgets.is_empty() {
        md.push_str(&format!(
            "Test {} of each search's ψ* after that many main-task trainings (mean ± std over seeds):\n\n{budgets}\n",
            summary.metric
        ));
    }
    md.push_str(&format!("![search curves]({SEARCH_CURVES})\n\nBest validation {} found so far against main-task trainings.\n\n", summary.metric));
    md
}
