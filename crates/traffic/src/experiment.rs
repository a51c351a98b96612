//! The traffic experiment end to end: config, the multi-seed study (learned ψ*, random ψ,
//! random search, ψ_real), `summary.json`, `report.md` and figures.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use l2s_core::config::{InvalidField, Validate};
use l2s_core::{ConfigError, SeedTree, load_ron};
use l2s_meta::policy::uniform_sample;
use l2s_meta::progress::Progress;
use l2s_meta::report::{PlotError, plot_psi_trajectories, plot_reward_curve, write_summary};
use l2s_meta::study::study_trainings;
use l2s_meta::worker::{ExperimentSpec, JobFile, WorkerError};
use l2s_meta::{
    BoxError, Executor, ExecutorConfig, MetaConfig, MetaError, StudyConfig, StudyRunOptions, StudySummary,
    run_study,
};
use l2s_render::{RenderError, RenderSettings, Renderer};
use l2s_scene::TrafficParams;
use l2s_train::{BackendChoice, BackendError, training_device};
use serde::{Deserialize, Serialize};

use crate::env::{EnvSetup, PhaseTimes, TrafficEnv};
use crate::learned::LearnedSpace;
use crate::report::{write_grid, write_report};
use crate::samples::{ClassScheme, SampleFormat};
use crate::settings::{DataConfig, Target, TargetDomain, Task, TrainSettings};
use crate::shared::{self, SharedData, SharedDataError};
use crate::target_data::{TargetDataConfig, load_data_target};

/// `configs/car_counting.ron` and `configs/segmentation.ron` (the task is the config's
/// top-level name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficConfig {
    /// Master seed: every other seed derives from it.
    pub seed: u64,
    /// RON file of the target ψ_real and its domain shift, relative to this config (or
    /// `target_data`).
    #[serde(default)]
    pub target: Option<PathBuf>,
    /// A labelled dataset on disk as the target (or `target`).
    #[serde(default)]
    pub target_data: Option<TargetDataConfig>,
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
    /// Where the evaluations run: `Local` (default) or `Slurm(...)`.
    #[serde(default)]
    pub executor: ExecutorConfig,
}

impl Validate for TrafficConfig {
    fn validate(&self) -> Result<(), InvalidField> {
        match (&self.target, &self.target_data) {
            (Some(_), Some(_)) => {
                return Err(InvalidField::new("target", "and `target_data` are both given; keep one"));
            }
            (None, None) => {
                return Err(InvalidField::new(
                    "target",
                    "is missing: give `target: \"targets/traffic.ron\"` (ψ_real) or `target_data: (dir: ...)` (a dataset)",
                ));
            }
            (None, Some(data)) => data.validate().map_err(|e| e.within("target_data"))?,
            (Some(_), None) => {}
        }
        LearnedSpace::new(&self.learn, &self.base)?;
        self.base.validate().map_err(|e| e.within("base"))?;
        self.render.validate().map_err(|e| e.within("render"))?;
        self.data.validate().map_err(|e| e.within("data"))?;
        self.train.validate().map_err(|e| e.within("train"))?;
        self.meta.validate().map_err(|e| e.within("meta"))?;
        self.study.validate().map_err(|e| e.within("study"))?;
        self.study.validate_with(&self.meta).map_err(|e| e.within("study"))?;
        self.executor.validate().map_err(|e| e.within("executor"))
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
    #[error("target data: {0}")]
    TargetData(#[from] l2s_data::DataError),
    #[error("{what}: {source}")]
    Run { what: String, source: BoxError },
    #[error("cannot write `{}`: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Worker(#[from] WorkerError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("the shared data of the run: {0}")]
    SharedData(#[from] SharedDataError),
}

/// A traffic experiment ready to run: its config with the command line applied, the target
/// domain and the fingerprint that `--resume` and the workers check.
struct Prepared {
    task: Task,
    config: TrafficConfig,
    learned: LearnedSpace,
    target: TargetDomain,
    format: SampleFormat,
    target_text: String,
    fingerprint: String,
}

impl Prepared {
    fn new(task: Task, mut config: TrafficConfig, options: &StudyRunOptions) -> Result<Self, TrafficError> {
        if task == Task::Segmentation
            && !(config.render.width.is_multiple_of(4) && config.render.height.is_multiple_of(4))
        {
            return Err(TrafficError::Invalid(InvalidField::new(
                "render",
                format!(
                    "is {}x{}; the segmentation U-Net halves the image twice, so width and height must be multiples of 4",
                    config.render.width, config.render.height
                ),
            )));
        }
        options.apply(&mut config.meta, &mut config.study)?;
        config.executor = config.executor.overridden(options.executor);
        // Neither the executor, the seed count nor the render workers change a seed's
        // results, so a run can be resumed or extended with others.
        let config_key = TrafficConfig {
            executor: ExecutorConfig::Local,
            study: config.study.without_seed_count(),
            render: RenderSettings { workers: 0, ..config.render.clone() },
            ..config.clone()
        };
        let learned = LearnedSpace::new(&config.learn, &config.base)?;
        let resolve = |p: &Path| l2s_core::config::resolve_beside(&options.config_path, p);
        // `--target-data` beats `--target`, which beats the config's own target.
        let data_target = match (&options.target_data, &options.target, &config.target_data) {
            (Some(dir), _, configured) => Some(match configured {
                Some(c) => (TargetDataConfig { dir: dir.clone(), ..c.clone() }, dir.clone()),
                None => (TargetDataConfig::with_dir(dir.clone()), dir.clone()),
            }),
            (None, None, Some(c)) => Some((c.clone(), resolve(&c.dir))),
            _ => None,
        };
        let (target, format, target_text, fingerprint) = match data_target {
            Some((data_config, dir)) => {
                data_config.validate().map_err(|e| e.within("target_data"))?;
                let framing = l2s_data::Framing { width: config.render.width, height: config.render.height };
                let class_map = match task {
                    Task::Segmentation => Some(data_config.class_map()?),
                    Task::Counting => None,
                };
                let loaded = load_data_target(
                    &data_config,
                    &dir,
                    class_map.as_ref(),
                    framing,
                    &config.data,
                    SeedTree::new(config.seed).child("target-split"),
                    resolve,
                )?;
                let classes = class_map.map_or(ClassScheme::Renderer, ClassScheme::Table);
                let format = SampleFormat { classes, vertical_fov_deg: loaded.vertical_fov_deg };
                let text = format!(
                    "the dataset `{}` ({:?} layout, {} images of {}x{}, each centre-cropped to the model's aspect ratio and \
                 scaled to {}x{}: RGB bilinear, labels nearest-neighbour); validation {}, test {} and oracle {} images drawn \
                 by the master seed; the renderer's camera field of view: {}",
                    dir.display(),
                    loaded.layout,
                    loaded.frames,
                    loaded.source_size.0,
                    loaded.source_size.1,
                    framing.width,
                    framing.height,
                    loaded.validation.len(),
                    loaded.test.len(),
                    loaded.oracle.len(),
                    loaded.fov_source
                );
                let fingerprint = serde_json::to_string(&(
                    task,
                    &config_key,
                    &data_config,
                    dir.display().to_string(),
                    &loaded.test_names,
                ))
                .unwrap_or_default();
                (TargetDomain::Data(Arc::new(loaded)), format, text, fingerprint)
            }
            None => {
                let configured = config.target.clone().unwrap_or_default();
                let target_path = options.target_path(&configured);
                let target: Target = load_ron(&target_path)?;
                let fingerprint = serde_json::to_string(&(task, &config_key, &target)).unwrap_or_default();
                let text = format!("`{}`", target_path.display());
                (TargetDomain::Simulated(target), SampleFormat::renderer(), text, fingerprint)
            }
        };
        Ok(Self { task, config, learned, target, format, target_text, fingerprint })
    }

    /// What the environment is made of, with the shared data still to make or load.
    fn setup(
        &self,
        renderer: &Arc<Mutex<Renderer>>,
        times: &Arc<PhaseTimes>,
        progress: &Progress,
    ) -> Result<EnvSetup, BackendError> {
        let c = &self.config;
        Ok(EnvSetup {
            task: self.task,
            learned: self.learned.clone(),
            target: self.target.clone(),
            format: self.format.clone(),
            data: c.data.clone(),
            train: c.train.clone(),
            renderer: renderer.clone(),
            device: training_device(c.backend)?,
            times: times.clone(),
            progress: progress.clone(),
        })
    }

    /// The environment every study seed shares (see `TrafficEnv`). Its shared data is
    /// loaded where an earlier run of this experiment saved it, else made (the target's
    /// validation and test sets rendered, the shared start trained) and, for Slurm's
    /// workers, saved.
    fn make_env(
        &self,
        out: &Path,
        renderer: &Arc<Mutex<Renderer>>,
        times: &Arc<PhaseTimes>,
        progress: &Progress,
    ) -> Result<TrafficEnv, BoxError> {
        let setup = self.setup(renderer, times, progress)?;
        let dir = shared::dir_in_run(out);
        if let Some(data) = SharedData::load_if_present(&dir, &self.fingerprint, &setup.device)? {
            progress.phase(format!("loaded the target's sets and the shared start from `{}`", dir.display()));
            return Ok(TrafficEnv::with_shared(setup, data));
        }
        progress.phase("rendering the target's validation and test sets".into());
        let env = TrafficEnv::new(setup, &SeedTree::new(self.config.seed).child("shared"))?;
        if matches!(self.config.executor, ExecutorConfig::Slurm(_)) {
            env.shared().save(&dir, &self.fingerprint, self.task, self.format.classes.len())?;
        }
        Ok(env)
    }
}

/// Runs the study, then writes `summary.json`, `report.md` and the figures into `options.out`.
pub fn run_traffic_experiment(
    task: Task,
    config: TrafficConfig,
    options: &StudyRunOptions,
) -> Result<StudySummary, TrafficError> {
    let start = Instant::now();
    let prepared = Prepared::new(task, config, options)?;
    let Prepared { config, learned, target, format, target_text, fingerprint, .. } = &prepared;
    let executor = Executor::for_study(&config.executor, config.meta.threads, || ExperimentSpec {
        options: options.absolute(),
        fingerprint: fingerprint.clone(),
    })?;
    let renderer = Arc::new(Mutex::new(Renderer::new(config.render.clone())?));
    let progress = Progress::new(study_trainings(&config.meta, &config.study));
    let times = Arc::new(PhaseTimes::default());
    // Every study seed uses the same target sets and shared start (see `TrafficEnv`), made
    // when the first seed needs them, after the run directory has been checked.
    let shared: RefCell<Option<TrafficEnv>> = RefCell::new(None);
    let make_env = |_seeds: SeedTree| -> Result<TrafficEnv, BoxError> {
        if let Some(env) = shared.borrow().as_ref() {
            return Ok(env.clone());
        }
        let env = prepared.make_env(&options.out, &renderer, &times, &progress)?;
        *shared.borrow_mut() = Some(env.clone());
        Ok(env)
    };

    let (summary, runs) = run_study(
        make_env,
        &executor,
        &config.meta,
        &config.study,
        config.seed,
        fingerprint,
        &options.out,
        options.resume,
        &progress,
    )?;
    progress.finish();
    write_summary(&options.out, &summary)?;
    if let Some(first) = runs.first() {
        let history = &first.outcome.history;
        let baseline = first.outcome.policy.is_some();
        plot_reward_curve(&options.out.join("reward_curve.png"), task.metric_name(), history, baseline)?;
        let policy = first.outcome.policy.as_ref();
        plot_psi_trajectories(&options.out.join("psi_trajectories.png"), learned.space(), policy, history)?;
        let psi_star = first.outcome.psi_star.clone();
        let mut rng = first.seeds.child("grid").rng();
        let random = uniform_sample(learned.space(), &mut rng);
        write_grid(
            &options.out.join("samples.png"),
            &renderer,
            format,
            learned,
            target,
            &random,
            &psi_star,
            &first.seeds,
        )?;
        if let (Task::Segmentation, Some(env)) = (task, shared.borrow().as_ref()) {
            crate::cityscapes_export::write_predictions(
                &options.out.join("cityscapes"),
                env,
                &psi_star,
                &first.seeds,
            )?;
        }
    }
    write_report(
        &options.out,
        task,
        config,
        (target_text, target),
        &summary,
        start.elapsed().as_secs_f64(),
        times.seconds(),
    )?;
    Ok(summary)
}

/// `l2s evaluate --job FILE` for a traffic study: the environment with the shared data the
/// driver saved (the target's sets and the shared start), then the job.
pub fn evaluate_traffic_job(
    task: Task,
    config: TrafficConfig,
    spec: &ExperimentSpec,
    job: &JobFile,
) -> Result<(), TrafficError> {
    let prepared = Prepared::new(task, config, &spec.options)?;
    job.check_fingerprint(spec, &prepared.fingerprint)?;
    let renderer = Arc::new(Mutex::new(Renderer::new(prepared.config.render.clone())?));
    let setup = prepared.setup(&renderer, &Arc::new(PhaseTimes::default()), &Progress::hidden())?;
    let data =
        SharedData::load(&shared::dir_in_run(&spec.options.out), &prepared.fingerprint, &setup.device)?;
    job.run(&TrafficEnv::with_shared(setup, data))?;
    Ok(())
}
