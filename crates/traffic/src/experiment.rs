//! The traffic experiment end to end: config, the multi-seed study (learned ψ*, random ψ,
//! random search, ψ_real), `summary.json`, `report.md` and figures.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use image::{Rgb, RgbImage};
use l2s_core::config::{InvalidField, Validate};
use l2s_core::{ConfigError, ParamValues, SeedTree, load_ron};
use l2s_meta::policy::uniform_sample;
use l2s_meta::progress::Progress;
use l2s_meta::report::{PlotError, plot_psi_trajectories, plot_reward_curve, summary_table, write_summary};
use l2s_meta::study::study_trainings;
use l2s_meta::{BoxError, MetaConfig, MetaError, StudyConfig, StudyRunOptions, StudySummary, run_study};
use l2s_render::{Frame, RenderError, RenderSettings, Renderer};
use l2s_scene::TrafficParams;
use l2s_train::{BackendChoice, training_device};
use serde::{Deserialize, Serialize};

use crate::env::{
    DataConfig, LearnedSpace, PhaseTimes, Target, Task, TrafficEnv, TrainSettings, render_dataset,
};

/// `configs/car_counting.ron` and `configs/segmentation.ron` (the task is the config's
/// top-level name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficConfig {
    /// Master seed: every other seed derives from it.
    pub seed: u64,
    /// RON file of the target ψ_real and its domain shift, relative to this config.
    pub target: PathBuf,
    /// Dimensions of ψ the policy learns (names as in the traffic space); the rest stay at `base`.
    pub learn: Vec<String>,
    /// ψ for the dimensions that are not learned.
    pub base: TrafficParams,
    /// Image size and rendering; the main task model sees images of this size.
    pub render: RenderSettings,
    pub data: DataConfig,
    pub train: TrainSettings,
    /// Where the main task models train: Auto (hardware GPU if any, else CPU), Cpu or Wgpu.
    #[serde(default)]
    pub backend: BackendChoice,
    pub meta: MetaConfig,
    pub study: StudyConfig,
}

impl Validate for TrafficConfig {
    fn validate(&self) -> Result<(), InvalidField> {
        LearnedSpace::new(&self.learn, &self.base)?;
        self.base.validate().map_err(|e| e.within("base"))?;
        self.render.validate().map_err(|e| e.within("render"))?;
        self.data.validate().map_err(|e| e.within("data"))?;
        self.train.validate().map_err(|e| e.within("train"))?;
        self.meta.validate().map_err(|e| e.within("meta"))?;
        self.study.validate().map_err(|e| e.within("study"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("invalid config: {0}")]
    Invalid(#[from] InvalidField),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Plot(#[from] PlotError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("cannot write `{}`: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

/// Runs the study, then writes `summary.json`, `report.md` and the figures into `options.out`.
pub fn run_traffic_experiment(
    task: Task,
    mut config: TrafficConfig,
    options: &StudyRunOptions,
) -> Result<StudySummary, TrafficError> {
    let start = Instant::now();
    let target_path = options.target_path(&config.target);
    let target: Target = load_ron(&target_path)?;
    options.apply_seeds(&mut config.study)?;
    let learned = LearnedSpace::new(&config.learn, &config.base)?;
    let fingerprint = serde_json::to_string(&(task, &config, &target)).unwrap_or_default();
    let renderer = Arc::new(Mutex::new(Renderer::new(config.render.clone())?));
    let device = training_device(config.backend);
    let progress = Progress::new(study_trainings(&config.meta, &config.study));
    let times = Arc::new(PhaseTimes::default());
    // Every study seed uses the same target sets and shared start (see `TrafficEnv`), made
    // when the first seed needs them, after the run directory has been checked.
    let shared: RefCell<Option<TrafficEnv>> = RefCell::new(None);
    let make_env = |_seeds: SeedTree| -> Result<TrafficEnv, BoxError> {
        if let Some(env) = shared.borrow().as_ref() {
            return Ok(env.clone());
        }
        progress.phase("rendering the target's validation and test sets".into());
        let env = TrafficEnv::new(
            task,
            learned.clone(),
            target.clone(),
            config.data.clone(),
            config.train.clone(),
            renderer.clone(),
            device.clone(),
            &SeedTree::new(config.seed).child("shared"),
            times.clone(),
            progress.clone(),
        )?;
        *shared.borrow_mut() = Some(env.clone());
        Ok(env)
    };
    let (summary, runs) = run_study(
        make_env,
        &config.meta,
        &config.study,
        config.seed,
        &fingerprint,
        &options.out,
        options.resume,
        &progress,
    )?;
    progress.finish();
    write_summary(&options.out, &summary)?;
    if let Some(first) = runs.first() {
        let history = &first.outcome.history;
        plot_reward_curve(&options.out.join("reward_curve.png"), task.metric_name(), history)?;
        plot_psi_trajectories(&options.out.join("psi_trajectories.png"), &first.outcome.policy, history)?;
        let psi_star = first.outcome.policy.mode();
        let mut rng = first.seeds.child("grid").rng();
        let random = uniform_sample(learned.space(), &mut rng);
        write_grid(
            &options.out.join("samples.png"),
            &renderer,
            &learned,
            &target,
            &random,
            &psi_star,
            &first.seeds,
        )?;
    }
    write_report(
        &options.out,
        task,
        &config,
        &target_path,
        &summary,
        start.elapsed().as_secs_f64(),
        times.seconds(),
    )?;
    Ok(summary)
}

/// Rows: random ψ, learned ψ*, the target; four samples each, RGB next to labels.
fn write_grid(
    path: &Path,
    renderer: &Mutex<Renderer>,
    learned: &LearnedSpace,
    target: &Target,
    random: &ParamValues,
    psi_star: &ParamValues,
    seeds: &SeedTree,
) -> Result<(), TrafficError> {
    let to_params = |psi: &ParamValues| {
        learned.params(psi).map_err(|source| MetaError::Environment { what: "figure".into(), source })
    };
    let rows = [to_params(random)?, to_params(psi_star)?, target.scene.clone()];
    let mut tiles = Vec::new();
    for (r, params) in rows.iter().enumerate() {
        let tree = seeds.child("grid").index(r as u64);
        let (_, frames) = render_dataset(renderer, params, &tree, 4, None)
            .map_err(|source| MetaError::Environment { what: "figure".into(), source })?;
        tiles.push(frames.iter().map(Frame::side_by_side).collect::<Vec<_>>());
    }
    let (tw, th) = tiles.first().and_then(|r| r.first()).map_or((1, 1), |t| (t.width(), t.height()));
    let gap = 4;
    let mut grid = RgbImage::from_pixel(4 * (tw + gap), 3 * (th + gap), Rgb([255, 255, 255]));
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

fn write_report(
    out: &Path,
    task: Task,
    config: &TrafficConfig,
    target_path: &Path,
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
        "Target: `{}`. Learned dimensions of ψ: {}. Images {}x{}; M = {} rendered images per main-task \
         training, ξ = {} epochs (batch {}, Adam {}), {}; {} validation and {} test images \
         rendered once from the target and used by every seed. Policy: {} iterations × K = {}. {} seeds from master seed {}; \
         wall time {:.1} s.\n",
        target_path.display(),
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
        config.data.validation_samples,
        config.data.test_samples,
        config.meta.iterations,
        config.meta.samples_per_iteration,
        summary.seeds,
        summary.master_seed,
        wall_s
    );
    let _ = writeln!(md, "## Test {}\n\n{}", task.metric_name(), summary_table(summary));
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
        "![samples](samples.png)\n\nRows: random ψ, learned ψ*, the target ψ_real (before its domain shift); RGB next to labels.\n"
    );
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
    l2s_meta::run::write_atomic(&path, md.as_bytes())?;
    Ok(())
}
