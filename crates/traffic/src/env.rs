//! The traffic environment: ψ → rendered samples → trained main task model → reward.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use l2s_core::{ParamSpace, ParamValues, SeedTree};
use l2s_meta::progress::Progress;
use l2s_meta::{BoxError, Environment, Evaluation, Split};
use l2s_render::Renderer;
use l2s_train::{
    CountingCnn, Dataset, SegmentationNet, evaluate_counting, evaluate_segmentation, train_counting,
    train_segmentation,
};

use crate::learned::LearnedSpace;
use crate::samples::{SampleFormat, render_dataset};
use crate::settings::{DataConfig, TargetDomain, Task, TrainSettings, WarmStart};
use crate::shared::SharedData;

/// A trained main task model that trainings fine-tune ([`WarmStart`]).
#[derive(Debug, Clone)]
pub(crate) enum StartModel {
    Counting(Box<CountingCnn>),
    Segmentation(Box<SegmentationNet>),
}

impl StartModel {
    fn counting(self) -> Option<CountingCnn> {
        match self {
            StartModel::Counting(model) => Some(*model),
            StartModel::Segmentation(_) => None,
        }
    }

    fn segmentation(self) -> Option<SegmentationNet> {
        match self {
            StartModel::Segmentation(model) => Some(*model),
            StartModel::Counting(_) => None,
        }
    }
}

/// Time spent in each phase of the evaluations, summed over threads (for the report).
#[derive(Debug, Default)]
pub struct PhaseTimes {
    render_us: AtomicU64,
    train_us: AtomicU64,
    score_us: AtomicU64,
}

impl PhaseTimes {
    fn add(counter: &AtomicU64, since: Instant) {
        let us = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
        counter.fetch_add(us, Ordering::Relaxed);
    }

    /// Seconds spent rendering, training and scoring.
    pub fn seconds(&self) -> (f64, f64, f64) {
        let s = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64 / 1e6;
        (s(&self.render_us), s(&self.train_us), s(&self.score_us))
    }
}

/// What a traffic environment is made of besides the data its study seeds share.
#[derive(Clone)]
pub struct EnvSetup {
    pub task: Task,
    pub learned: LearnedSpace,
    pub target: TargetDomain,
    pub format: SampleFormat,
    pub data: DataConfig,
    pub train: TrainSettings,
    pub renderer: Arc<Mutex<Renderer>>,
    pub device: l2s_train::Device,
    pub times: Arc<PhaseTimes>,
    pub progress: Progress,
}

/// The traffic environment of a study. Built once from the master seed and shared by every
/// study seed (clones share the data): the target's validation and test sets stand for the
/// paper's fixed real data (KITTI's), and the shared start for a pretrained model, so the
/// seeds differ only in what the method draws (policy samples, renders, trainings).
#[derive(Clone)]
pub struct TrafficEnv {
    task: Task,
    learned: LearnedSpace,
    target: TargetDomain,
    format: SampleFormat,
    data: DataConfig,
    train: TrainSettings,
    renderer: Arc<Mutex<Renderer>>,
    device: l2s_train::Device,
    validation: Arc<Dataset>,
    test: Arc<Dataset>,
    /// Behind a lock because burn modules are `Send` but not `Sync`; each training clones it.
    start: Arc<Mutex<Option<StartModel>>>,
    times: Arc<PhaseTimes>,
    progress: Progress,
}

impl std::fmt::Debug for TrafficEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrafficEnv").field("task", &self.task).field("data", &self.data).finish()
    }
}

impl TrafficEnv {
    /// Makes the shared data from `seeds`: renders the target's validation and test sets
    /// (or takes the dataset's) and trains the shared start.
    pub fn new(setup: EnvSetup, seeds: &SeedTree) -> Result<Self, BoxError> {
        let started = Instant::now();
        let (validation, test) = match &setup.target {
            TargetDomain::Simulated(target) => {
                let render = |label: &str, n: usize| {
                    render_dataset(
                        &setup.renderer,
                        &setup.format,
                        &target.scene,
                        &seeds.child(label),
                        n,
                        Some(&target.domain),
                    )
                    .map(|(data, _)| data)
                };
                (
                    render("validation", setup.data.validation_samples)?,
                    render("test", setup.data.test_samples)?,
                )
            }
            TargetDomain::Data(target) => (target.validation.clone(), target.test.clone()),
        };
        PhaseTimes::add(&setup.times.render_us, started);
        let env = Self::with_shared(
            setup,
            SharedData { validation: Arc::new(validation), test: Arc::new(test), start: None },
        );
        if let Some(warm) = &env.train.warm_start {
            let start = env.train_shared_start(warm, &seeds.child("warm_start"))?;
            *env.start.lock().unwrap_or_else(PoisonError::into_inner) = Some(start);
        }
        Ok(env)
    }

    /// The environment with shared data made before ([`TrafficEnv::shared`]).
    pub fn with_shared(setup: EnvSetup, shared: SharedData) -> Self {
        let EnvSetup { task, learned, target, format, data, train, renderer, device, times, progress } =
            setup;
        Self {
            task,
            learned,
            target,
            format,
            data,
            train,
            renderer,
            device,
            validation: shared.validation,
            test: shared.test,
            start: Arc::new(Mutex::new(shared.start)),
            times,
            progress,
        }
    }

    /// The data every study seed shares, to save for workers ([`SharedData::save`]).
    pub fn shared(&self) -> SharedData {
        SharedData { validation: self.validation.clone(), test: self.test.clone(), start: self.start_model() }
    }

    pub fn task(&self) -> Task {
        self.task
    }

    /// The model every training fine-tunes ([`WarmStart`]): trained from scratch on
    /// images of the `base` ψ.
    fn train_shared_start(&self, warm: &WarmStart, tree: &SeedTree) -> Result<StartModel, BoxError> {
        self.progress.detail(format!("rendering {} images of the base ψ for the shared start", warm.samples));
        let started = Instant::now();
        let base = self.learned.base()?;
        let (data, _) =
            render_dataset(&self.renderer, &self.format, &base, &tree.child("render"), warm.samples, None)?;
        PhaseTimes::add(&self.times.render_us, started);
        self.progress.detail(format!(
            "training the shared start ({} epochs on {} images)",
            warm.epochs,
            data.len()
        ));
        let started = Instant::now();
        let config = self.train.config(warm.epochs, tree.child("train").seed());
        let model = match self.task {
            Task::Counting => {
                StartModel::Counting(Box::new(train_counting(&self.device, &config, &data, None)?.model))
            }
            Task::Segmentation => StartModel::Segmentation(Box::new(
                train_segmentation(&self.device, &config, self.format.classes.len(), &data, None)?.model,
            )),
        };
        PhaseTimes::add(&self.times.train_us, started);
        Ok(model)
    }

    pub fn learned(&self) -> &LearnedSpace {
        &self.learned
    }

    pub fn renderer(&self) -> &Arc<Mutex<Renderer>> {
        &self.renderer
    }

    pub fn target(&self) -> &TargetDomain {
        &self.target
    }

    pub fn format(&self) -> &SampleFormat {
        &self.format
    }

    pub fn device(&self) -> &l2s_train::Device {
        &self.device
    }

    /// Trains a segmentation model on `data` as every evaluation does (from the shared
    /// start when there is one), for predictions outside the study.
    pub fn train_segmentation_model(&self, data: &Dataset, seed: u64) -> Result<SegmentationNet, BoxError> {
        let config = self.train.config(self.train.epochs, seed);
        let start = self.start_model().and_then(StartModel::segmentation);
        Ok(train_segmentation(&self.device, &config, self.format.classes.len(), data, start)?.model)
    }

    /// A clone of the shared start, if there is one.
    fn start_model(&self) -> Option<StartModel> {
        self.start.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Renders the training set of one evaluation of `psi` with `seed`, as `evaluate` does.
    pub fn render_training_set(&self, psi: &ParamValues, seed: u64) -> Result<Dataset, BoxError> {
        let params = self.learned.params(psi)?;
        let tree = SeedTree::new(seed);
        let (data, _) = render_dataset(
            &self.renderer,
            &self.format,
            &params,
            &tree.child("render"),
            self.data.train_samples,
            None,
        )?;
        Ok(data)
    }

    /// Trains on `data` with `seed` and scores on `split`.
    fn train_and_score(&self, data: &Dataset, seed: u64, split: Split) -> Result<Evaluation, BoxError> {
        let config = self.train.config(self.train.epochs, seed);
        let start = self.start_model();
        let held_out = match split {
            Split::Validation => &self.validation,
            Split::Test => &self.test,
        };
        let verb = if start.is_some() { "fine-tuning" } else { "training" };
        self.progress.detail(format!("{verb} ({} epochs on {} images)", self.train.epochs, data.len()));
        let started = Instant::now();
        match self.task {
            Task::Counting => {
                let start = start.and_then(StartModel::counting);
                let trained = train_counting(&self.device, &config, data, start)?;
                PhaseTimes::add(&self.times.train_us, started);
                self.progress.detail("scoring".into());
                let scoring = Instant::now();
                let m = evaluate_counting(&trained.model, held_out, &self.device)?;
                PhaseTimes::add(&self.times.score_us, scoring);
                let mut metrics =
                    vec![("mae".to_string(), m.mae), ("exact_accuracy".to_string(), m.exact_accuracy)];
                for (kind, mae) in l2s_scene::CarType::ALL.iter().zip(m.mae_per_type) {
                    metrics.push((format!("mae.{}", kind.name()), mae));
                }
                Ok(Evaluation { reward: -m.mae, metrics })
            }
            Task::Segmentation => {
                let classes = self.format.classes.len();
                let start = start.and_then(StartModel::segmentation);
                let trained = train_segmentation(&self.device, &config, classes, data, start)?;
                PhaseTimes::add(&self.times.train_us, started);
                self.progress.detail("scoring".into());
                let scoring = Instant::now();
                let m = evaluate_segmentation(
                    &trained.model,
                    held_out,
                    classes,
                    self.format.classes.car(),
                    &self.device,
                )?;
                PhaseTimes::add(&self.times.score_us, scoring);
                let mut metrics =
                    vec![("car_iou".to_string(), m.car_iou), ("mean_iou".to_string(), m.mean_iou)];
                for (class, iou) in m.iou.iter().enumerate() {
                    metrics.push((format!("iou.{}", self.format.classes.name(class)), iou.unwrap_or(0.0)));
                }
                Ok(Evaluation { reward: m.car_iou, metrics })
            }
        }
    }
}

impl Environment for TrafficEnv {
    fn space(&self) -> &ParamSpace {
        self.learned.space()
    }

    fn metric_name(&self) -> &str {
        self.task.metric_name()
    }

    fn evaluate(&self, psi: &ParamValues, seed: u64, split: Split) -> Result<Evaluation, BoxError> {
        self.progress.detail(format!("rendering {} images", self.data.train_samples));
        let started = Instant::now();
        let data = self.render_training_set(psi, seed)?;
        PhaseTimes::add(&self.times.render_us, started);
        self.train_and_score(&data, SeedTree::new(seed).child("train").seed(), split)
    }

    fn evaluate_target(&self, seed: u64) -> Result<Evaluation, BoxError> {
        let tree = SeedTree::new(seed);
        match &self.target {
            TargetDomain::Simulated(target) => {
                self.progress.detail(format!("rendering {} target images", self.data.train_samples));
                let started = Instant::now();
                let (data, _) = render_dataset(
                    &self.renderer,
                    &self.format,
                    &target.scene,
                    &tree.child("render"),
                    self.data.train_samples,
                    Some(&target.domain),
                )?;
                PhaseTimes::add(&self.times.render_us, started);
                self.train_and_score(&data, tree.child("train").seed(), Split::Test)
            }
            TargetDomain::Data(target) => {
                self.train_and_score(&target.oracle, tree.child("train").seed(), Split::Test)
            }
        }
    }

    fn target_label(&self) -> String {
        match &self.target {
            TargetDomain::Simulated(_) => l2s_meta::env::PSI_REAL_LABEL.into(),
            TargetDomain::Data(target) => {
                format!("oracle: trained on {} target images (upper bound)", target.oracle.len())
            }
        }
    }
}
