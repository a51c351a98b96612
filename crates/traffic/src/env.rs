//! The traffic environment: ψ → rendered samples → trained main task model → reward.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use l2s_core::config::{InvalidField, Validate, check_count, check_range};
use l2s_core::{ParamSpace, ParamValues, SeedTree};
use l2s_data::ClassMap;
use l2s_meta::progress::Progress;
use l2s_meta::{BoxError, Environment, Evaluation, Split};
use l2s_render::{Frame, Renderer, SemanticClass};
use l2s_scene::{SceneDescription, TrafficParams, sample_scene};
use l2s_train::{
    CountingCnn, Dataset, IGNORE, Sample, SegmentationNet, TrainConfig, count_density, evaluate_counting,
    evaluate_segmentation, train_counting, train_segmentation,
};

use crate::shared::SharedData;
use crate::target_data::DataTarget;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Which main task model is trained and how it is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Task {
    /// Per-type car counts; reward −MAE (mean over types and images).
    Counting,
    /// Semantic segmentation over the renderer's classes; reward car IoU.
    Segmentation,
}

impl Task {
    pub fn metric_name(self) -> &'static str {
        match self {
            Task::Counting => "-MAE",
            Task::Segmentation => "car IoU",
        }
    }
}

/// How the target's images differ from the simulator's beyond ψ: a stand-in for the gap
/// between real and rendered data. Applied to the target's validation and test images only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DomainShift {
    /// Standard deviation of Gaussian pixel noise, in [0, 1] intensity units.
    pub noise_std: f64,
    /// Per-channel gain on RGB.
    pub colour_gain: [f64; 3],
    /// Added to every channel, in [0, 1] intensity units.
    pub brightness: f64,
}

impl Default for DomainShift {
    fn default() -> Self {
        Self { noise_std: 0.0, colour_gain: [1.0; 3], brightness: 0.0 }
    }
}

impl Validate for DomainShift {
    fn validate(&self) -> Result<(), InvalidField> {
        check_range("noise_std", self.noise_std, 0.0, 0.5)?;
        for (i, g) in self.colour_gain.iter().enumerate() {
            check_range(&format!("colour_gain[{i}]"), *g, 0.2, 5.0)?;
        }
        check_range("brightness", self.brightness, -0.5, 0.5)
    }
}

impl DomainShift {
    fn apply(&self, image: &mut [f32], seed: u64) {
        let identity = self.noise_std == 0.0 && self.colour_gain == [1.0; 3] && self.brightness == 0.0;
        if identity {
            return;
        }
        let plane = image.len() / 3;
        let mut rng = SeedTree::new(seed).child("domain").rng();
        for (i, v) in image.iter_mut().enumerate() {
            let gain = self.colour_gain[(i / plane.max(1)).min(2)] as f32;
            let noise = if self.noise_std > 0.0 {
                // Sum of uniforms: near-Gaussian, cheap, deterministic.
                let u: f32 = (0..4).map(|_| rng.random::<f32>() - 0.5).sum();
                u * (self.noise_std as f32) * 1.732
            } else {
                0.0
            };
            *v = (*v * gain + self.brightness as f32 + noise).clamp(0.0, 1.0);
        }
    }
}

/// The target domain ψ_real, read from its own file (`configs/targets/*.ron`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub scene: TrafficParams,
    #[serde(default)]
    pub domain: DomainShift,
}

impl Validate for Target {
    fn validate(&self) -> Result<(), InvalidField> {
        self.scene.validate().map_err(|e| e.within("scene"))?;
        self.domain.validate().map_err(|e| e.within("domain"))
    }
}

/// What a study's models are scored against.
#[derive(Debug, Clone)]
pub enum TargetDomain {
    /// ψ_real of the simulator itself, plus a domain shift.
    Simulated(Target),
    /// A labelled dataset on disk.
    Data(Arc<DataTarget>),
}

/// Sizes of the generated and held-out sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// M: images rendered per main-task training.
    pub train_samples: usize,
    pub validation_samples: usize,
    pub test_samples: usize,
}

impl Validate for DataConfig {
    fn validate(&self) -> Result<(), InvalidField> {
        check_count("train_samples", self.train_samples, 1, 100_000)?;
        check_count("validation_samples", self.validation_samples, 1, 100_000)?;
        check_count("test_samples", self.test_samples, 1, 100_000)
    }
}

/// ξ and the optimiser of every main-task training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Fine-tune every main task model from one shared start instead of training it from
    /// scratch (the paper does both); absent: from scratch.
    #[serde(default)]
    pub warm_start: Option<WarmStart>,
}

/// The shared start of fine-tuned trainings: a model trained once per study seed on
/// images of the config's `base` ψ (never the target's). Short trainings from scratch
/// scatter widely (car IoU 0.02 to 0.37 for one ψ); fine-tuned ones differ mostly by
/// their data, which is what the rewards should measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmStart {
    /// Images rendered from `base` for it.
    pub samples: usize,
    /// Its epochs (batch size and learning rate as every training's).
    pub epochs: usize,
}

impl TrainSettings {
    fn config(&self, epochs: usize, seed: u64) -> TrainConfig {
        TrainConfig { epochs, batch_size: self.batch_size, learning_rate: self.learning_rate, seed }
    }
}

impl Validate for TrainSettings {
    fn validate(&self) -> Result<(), InvalidField> {
        self.config(self.epochs, 0).validate()?;
        if let Some(warm) = &self.warm_start {
            check_count("samples", warm.samples, 1, 100_000).map_err(|e| e.within("warm_start"))?;
            check_count("epochs", warm.epochs, 1, 100_000).map_err(|e| e.within("warm_start"))?;
        }
        Ok(())
    }
}

/// The dimensions of ψ the policy learns; the others stay at `base`.
#[derive(Debug, Clone)]
pub struct LearnedSpace {
    space: ParamSpace,
    /// Index in the full traffic space of each learned dimension.
    full_index: Vec<usize>,
    base: ParamValues,
}

impl LearnedSpace {
    /// Learns the dimensions named in `learn` (names of [`TrafficParams::space`]).
    pub fn new(learn: &[String], base: &TrafficParams) -> Result<Self, InvalidField> {
        let full = TrafficParams::space();
        let mut dims = Vec::new();
        let mut full_index = Vec::new();
        for name in learn {
            let Some(i) = full.position(name) else {
                let names: Vec<&str> = full.dims().iter().map(|d| d.name()).collect();
                return Err(InvalidField::new(
                    "learn",
                    format!("has `{name}`, which is not a dimension of ψ; choose from {}", names.join(", ")),
                ));
            };
            if full_index.contains(&i) {
                return Err(InvalidField::new("learn", format!("names `{name}` twice")));
            }
            full_index.push(i);
            dims.push(full.dims()[i].clone());
        }
        let space = ParamSpace::new(dims).map_err(|e| InvalidField::new("learn", e.to_string()))?;
        Ok(Self { space, full_index, base: base.to_values() })
    }

    pub fn space(&self) -> &ParamSpace {
        &self.space
    }

    /// The full ψ for learned values `psi`.
    pub fn params(&self, psi: &ParamValues) -> Result<TrafficParams, BoxError> {
        self.space.check(psi)?;
        let mut full = self.base.clone();
        for (j, &i) in self.full_index.iter().enumerate() {
            full.0[i] = psi.0[j];
        }
        Ok(TrafficParams::from_values(&full)?)
    }

    /// The full ψ with every dimension at `base`.
    pub fn base(&self) -> Result<TrafficParams, BoxError> {
        Ok(TrafficParams::from_values(&self.base)?)
    }
}

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

/// The segmentation model's classes.
#[derive(Debug, Clone, PartialEq)]
pub enum ClassScheme {
    /// The renderer's own classes ([`SemanticClass::ALL`], lane markings apart): targets
    /// rendered by the simulator itself.
    Renderer,
    /// A table over Cityscapes ids ([`Frame::cityscapes_ids`] for rendered frames; the
    /// files' ids for a dataset on disk); other ids are ignored.
    Table(ClassMap),
}

impl ClassScheme {
    pub fn len(&self) -> usize {
        match self {
            ClassScheme::Renderer => SemanticClass::ALL.len(),
            ClassScheme::Table(map) => map.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The class whose IoU is the reward.
    pub fn car(&self) -> usize {
        match self {
            ClassScheme::Renderer => SemanticClass::Car.index(),
            ClassScheme::Table(map) => map.index_of("car").unwrap_or(0),
        }
    }

    pub fn name(&self, class: usize) -> String {
        match self {
            ClassScheme::Renderer => SemanticClass::ALL.get(class).map_or("?", |c| c.name()).to_string(),
            ClassScheme::Table(map) => {
                map.classes().get(class).map_or_else(|| "?".into(), |c| c.name.clone())
            }
        }
    }

    /// A class's colour in figures (black for ignored pixels).
    pub fn colour(&self, class: u8) -> [u8; 3] {
        match self {
            ClassScheme::Renderer => {
                SemanticClass::ALL.get(usize::from(class)).map_or([0, 0, 0], |c| c.colour())
            }
            ClassScheme::Table(map) if class != IGNORE => {
                l2s_data::cityscapes::colour(map.label_id_of(class))
            }
            ClassScheme::Table(_) => [0, 0, 0],
        }
    }

    /// Class index of every pixel of a rendered frame.
    pub fn indices(&self, frame: &Frame) -> Vec<u8> {
        match self {
            ClassScheme::Renderer => {
                let mut lut = [0u8; 256];
                for (i, class) in SemanticClass::ALL.iter().enumerate() {
                    lut[usize::from(class.id())] = i as u8;
                }
                frame.classes.iter().map(|&id| lut[usize::from(id)]).collect()
            }
            ClassScheme::Table(map) => map.map(&frame.cityscapes_ids()),
        }
    }
}

/// How rendered frames become a study's samples: their classes, and the camera's field of
/// view (a target dataset's, so rendered and target images are framed alike).
#[derive(Debug, Clone, PartialEq)]
pub struct SampleFormat {
    pub classes: ClassScheme,
    /// Replaces the sampled scene's vertical field of view; None keeps it.
    pub vertical_fov_deg: Option<f64>,
}

impl SampleFormat {
    /// The renderer's classes and camera: targets rendered by the simulator itself.
    pub fn renderer() -> Self {
        Self { classes: ClassScheme::Renderer, vertical_fov_deg: None }
    }
}

/// Renders `n` scenes of `params` (seeds from `tree`) and turns them into training samples.
pub fn render_dataset(
    renderer: &Mutex<Renderer>,
    format: &SampleFormat,
    params: &TrafficParams,
    tree: &SeedTree,
    n: usize,
    domain: Option<&DomainShift>,
) -> Result<(Dataset, Vec<Frame>), BoxError> {
    let scenes: Vec<SceneDescription> = (0..n)
        .map(|i| {
            let mut scene = sample_scene(params, tree.child("scene").index(i as u64).seed())?;
            if let Some(fov) = format.vertical_fov_deg {
                scene.camera.vertical_fov_deg = fov;
            }
            Ok::<_, BoxError>(scene)
        })
        .collect::<Result<_, _>>()?;
    let frames = renderer.lock().unwrap_or_else(PoisonError::into_inner).render(&scenes)?;
    let (w, h) = frames.first().map_or((0, 0), |f| (f.width as usize, f.height as usize));
    let samples = frames
        .iter()
        .map(|f| {
            let counts = f.counts.map(|c| c as f32);
            let counted: Vec<(u16, usize)> = f
                .cars
                .iter()
                .filter(|car| car.counted)
                .filter_map(|car| Some((u16::try_from(car.id).ok()?, car.kind.index())))
                .collect();
            let mut sample = Sample::from_rgb8(&f.rgb, w, h, counts, format.classes.indices(f))
                .with_density(count_density(w, h, &f.instances, &counted));
            if let Some(domain) = domain {
                domain.apply(&mut sample.image, f.scene.seed);
            }
            sample
        })
        .collect();
    Ok((Dataset { width: w, height: h, samples }, frames))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn car_type_names_are_the_sample_contracts() {
        let names: Vec<&str> = l2s_scene::CarType::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names, l2s_data::CAR_TYPE_NAMES);
    }

    #[test]
    fn a_class_table_colours_by_cityscapes_id_and_names_its_classes() {
        let scheme = ClassScheme::Table(ClassMap::new(ClassMap::default_classes()).expect("valid"));
        assert_eq!((scheme.len(), scheme.car(), scheme.name(3).as_str()), (6, 5, "terrain"));
        assert_eq!(scheme.colour(5), [0, 0, 142]);
        assert_eq!(scheme.colour(IGNORE), [0, 0, 0]);
        assert_eq!((ClassScheme::Renderer.len(), ClassScheme::Renderer.car()), (7, 5));
    }

    #[test]
    fn the_domain_shift_is_deterministic_bounded_and_the_identity_changes_nothing() {
        let image: Vec<f32> = (0..48).map(|i| i as f32 / 47.0).collect();
        let mut same = image.clone();
        DomainShift::default().apply(&mut same, 3);
        assert_eq!(same, image);
        let shift = DomainShift { noise_std: 0.05, colour_gain: [1.5, 1.0, 0.5], brightness: 0.1 };
        let (mut a, mut b, mut c) = (image.clone(), image.clone(), image.clone());
        shift.apply(&mut a, 3);
        shift.apply(&mut b, 3);
        shift.apply(&mut c, 4);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
        // The blue plane (gain 0.5) darkens on average, the red (1.5) brightens.
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        assert!(mean(&a[32..]) < mean(&image[32..]) && mean(&a[..16]) > mean(&image[..16]));
    }

    #[test]
    fn the_learned_space_keeps_the_other_dimensions_at_base_and_refuses_bad_names() {
        let base = TrafficParams::default();
        let learned = LearnedSpace::new(&["camera_height".to_string()], &base).expect("valid");
        assert_eq!(learned.space().dims().len(), 1);
        let params =
            learned.params(&ParamValues(vec![l2s_core::ParamValue::Continuous(2.5)])).expect("in bounds");
        assert_eq!(params.camera_height, 2.5);
        assert_eq!(params.road_length, base.road_length);
        let outside = learned.params(&ParamValues(vec![l2s_core::ParamValue::Continuous(9.0)]));
        assert!(outside.expect_err("out of bounds").to_string().contains("camera_height"));
        let err = LearnedSpace::new(&["wheels".to_string()], &base).expect_err("unknown");
        assert!(err.to_string().contains("`wheels`"), "{err}");
        let twice = LearnedSpace::new(&["camera_height".to_string(), "camera_height".to_string()], &base);
        assert!(twice.expect_err("twice").to_string().contains("twice"));
    }
}
