//! Training and evaluation of the main task models: Adam, mini-batches in a seeded order,
//! from scratch or fine-tuned from given weights.

use std::path::Path;
use std::sync::Mutex;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use l2s_core::SeedTree;
use l2s_core::config::{InvalidField, Validate, check_count, check_range};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::data::{DataError, Dataset, IGNORE};
use crate::metrics::{CAR_TYPES, ConfusionMatrix, CountingMetrics, SegmentationMetrics, counting_metrics};
use crate::model::{CountingCnn, CountingCnnConfig, DENSITY_CELL, SegmentationNet, SegmentationNetConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// ξ: passes over the training set.
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Initial weights and batch order derive from it.
    pub seed: u64,
}

impl Validate for TrainConfig {
    fn validate(&self) -> Result<(), InvalidField> {
        check_count("epochs", self.epochs, 1, 100_000)?;
        check_count("batch_size", self.batch_size, 1, 65_536)?;
        check_range("learning_rate", self.learning_rate, 1e-9, 10.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("invalid training config: {0}")]
    Config(#[from] InvalidField),
    #[error("cannot read the model's output back from the device: {0}")]
    Readback(String),
    #[error("cannot {action} weights `{}`: {message}", path.display())]
    Weights { action: &'static str, path: std::path::PathBuf, message: String },
}

/// A trained model and its mean training loss per epoch.
#[derive(Debug, Clone)]
pub struct Trained<M> {
    pub model: M,
    pub epoch_losses: Vec<f32>,
}

/// burn draws initial weights from one process-wide generator per backend, when a
/// parameter is first used; trainings on several threads take turns seeding it and
/// materialising their weights, so each gets exactly the weights its seed gives.
static INIT_LOCK: Mutex<()> = Mutex::new(());

pub(crate) fn fresh<M: Module>(device: &Device, seed: u64, build: impl FnOnce(&Device) -> M) -> M {
    let _turn = INIT_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    device.seed(SeedTree::new(seed).child("weights").seed());
    let model = build(device);
    // Reading the parameters out and back in draws every lazy initial value now.
    let record = model.clone().into_record();
    model.load_record(record)
}

/// Runs `config.epochs` epochs of Adam on `loss(model, batch indices)`.
///
/// The model's parameters first become new autodiff leaves (`valid().train()`), tied to
/// nothing of the start model's. Trainings that fine-tune clones of one start model at the
/// same time (the meta-loop's K trainings) would otherwise share parameter nodes, so burn
/// would merge their autodiff graphs across threads: one thread's backward can then free
/// the other's steps, and burn 0.22's graph and locator locks, taken in opposite orders by
/// a backward and a merge, deadlock (seen in the `meta_loop_cpu` bench). `Module::fork`
/// is no way out: it records a device copy of every parameter in the start model's graph,
/// which lives as long as the start model, so each training left its nodes there for good
/// and every backward's graph sweep (`GraphCleaner`) walked them all: memory grew and the
/// meta-loop slowed by half over 1,200 trainings.
fn fit<M: Module>(
    model: M,
    config: &TrainConfig,
    samples: usize,
    loss: impl Fn(&M, &[usize]) -> Tensor<1>,
) -> Trained<M> {
    let mut model = model.valid().train();
    let mut optimiser = AdamConfig::new().init();
    let mut order: Vec<usize> = (0..samples).collect();
    let mut epoch_losses = Vec::with_capacity(config.epochs);
    for epoch in 0..config.epochs {
        order.shuffle(&mut SeedTree::new(config.seed).child("order").index(epoch as u64).rng());
        let mut total = 0.0;
        let mut batches = 0;
        for batch in order.chunks(config.batch_size) {
            let value = loss(&model, batch);
            total += value.clone().into_scalar::<f32>();
            batches += 1;
            let grads = GradientsParams::from_grads(value.backward(), &model);
            model = optimiser.step(config.learning_rate, model, grads);
        }
        epoch_losses.push(total / batches.max(1) as f32);
    }
    Trained { model, epoch_losses }
}

/// Weight of the density term in the counting loss (squared error summed over the cells of
/// a map, per image): about the L1 count term's size early in training.
const DENSITY_LOSS_WEIGHT: f32 = 1.0;

/// Trains the counting model; `start` fine-tunes given weights. The loss is the L1 error of
/// the counts, plus, when every sample has a count density map, the squared error of the
/// predicted map against it ([`DENSITY_LOSS_WEIGHT`]).
pub fn train_counting(
    device: &Device,
    config: &TrainConfig,
    data: &Dataset,
    start: Option<CountingCnn>,
) -> Result<Trained<CountingCnn>, TrainError> {
    config.validate()?;
    data.check(None)?;
    let model = start.unwrap_or_else(|| fresh(device, config.seed, |d| CountingCnnConfig::new().init(d)));
    let with_density = data.has_density();
    Ok(fit(model, config, data.len(), |m, batch| {
        let density = m.forward_density(data.images(batch, device));
        let count_loss = (CountingCnn::counts(density.clone()) - data.counts(batch, device)).abs().mean();
        if !with_density {
            return count_loss;
        }
        let error = density - data.densities(batch, DENSITY_CELL, device);
        count_loss
            + (error.clone() * error).sum().div_scalar(batch.len() as f32).mul_scalar(DENSITY_LOSS_WEIGHT)
    }))
}

/// Median-frequency balancing (Eigen and Fergus): weight = median class frequency / class
/// frequency, over the classes present in `data`, clamped to [0.05, 20]. Cars cover a few
/// percent of the pixels; unweighted, short trainings never predict them at all.
pub fn class_weights(data: &Dataset, classes: usize) -> Vec<f32> {
    let mut pixels = vec![0u64; classes];
    for sample in &data.samples {
        for &c in &sample.classes {
            if let Some(p) = pixels.get_mut(usize::from(c)) {
                *p += 1;
            }
        }
    }
    let total = pixels.iter().sum::<u64>().max(1) as f64;
    let mut present: Vec<f64> = pixels.iter().filter(|&&p| p > 0).map(|&p| p as f64 / total).collect();
    present.sort_by(f64::total_cmp);
    let median = present.get(present.len() / 2).copied().unwrap_or(1.0);
    pixels
        .iter()
        .map(|&p| if p == 0 { 1.0 } else { (median / (p as f64 / total)).clamp(0.05, 20.0) as f32 })
        .collect()
}

/// Trains the segmentation model with pixel-wise cross-entropy, classes weighted by
/// [`class_weights`].
pub fn train_segmentation(
    device: &Device,
    config: &TrainConfig,
    classes: usize,
    data: &Dataset,
    start: Option<SegmentationNet>,
) -> Result<Trained<SegmentationNet>, TrainError> {
    config.validate()?;
    data.check(Some(classes))?;
    check_u_net_size(data)?;
    let model =
        start.unwrap_or_else(|| fresh(device, config.seed, |d| SegmentationNetConfig::new(classes).init(d)));
    let weights = class_weights(data, classes);
    if data.has_ignored_pixels() {
        let weights = Tensor::<1>::from_data(TensorData::new(weights, [classes]), device);
        return Ok(fit(model, config, data.len(), |m, batch| {
            let logits = m.forward(data.images(batch, device));
            let [b, c, h, w] = logits.dims();
            ignoring_cross_entropy(
                logits.permute([0, 2, 3, 1]).reshape([b * h * w, c]),
                data.classes(batch, device),
                &weights,
            )
        }));
    }
    let criterion = CrossEntropyLossConfig::new().with_weights(Some(weights)).init(device);
    Ok(fit(model, config, data.len(), |m, batch| {
        let logits = m.forward(data.images(batch, device));
        let [b, c, h, w] = logits.dims();
        criterion.forward(logits.permute([0, 2, 3, 1]).reshape([b * h * w, c]), data.classes(batch, device))
    }))
}

/// The U-Net halves its input twice and concatenates skips of the same size: width and
/// height must be multiples of 4 (otherwise burn's `Tensor::cat` panics).
fn check_u_net_size(data: &Dataset) -> Result<(), DataError> {
    if data.width.is_multiple_of(4) && data.height.is_multiple_of(4) {
        Ok(())
    } else {
        Err(DataError::NotMultipleOfFour { width: data.width, height: data.height })
    }
}

/// Weighted cross-entropy over the pixels whose target is not [`IGNORE`]:
/// Σ wₜ·(−log pₜ) / Σ wₜ over those pixels, as burn's weighted loss computes it over all.
fn ignoring_cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>, weights: &Tensor<1>) -> Tensor<1> {
    let [n, classes] = logits.dims();
    let kept = targets.clone().lower_elem(i64::from(IGNORE)).float();
    let targets = targets.clamp_max(classes as i64 - 1);
    let log_p = burn::tensor::activation::log_softmax(logits, 1)
        .gather(1, targets.clone().reshape([n, 1]))
        .reshape([n]);
    let w = weights.clone().select(0, targets) * kept;
    (log_p * w.clone()).sum().neg() / w.sum().clamp_min(1e-12)
}

const EVAL_BATCH: usize = 64;

/// Counting metrics of `model` on `data`.
pub fn evaluate_counting(
    model: &CountingCnn,
    data: &Dataset,
    device: &Device,
) -> Result<CountingMetrics, TrainError> {
    data.check(None)?;
    let model = model.valid();
    let device = device.clone().without_autodiff();
    let indices: Vec<usize> = (0..data.len()).collect();
    let mut predicted = Vec::with_capacity(data.len());
    for batch in indices.chunks(EVAL_BATCH) {
        let values = model
            .forward(data.images(batch, &device))
            .into_data()
            .try_into_vec_as::<f32>()
            .map_err(|e| TrainError::Readback(format!("{e:?}")))?;
        predicted.extend(values.chunks_exact(CAR_TYPES).map(|c| [c[0], c[1], c[2], c[3], c[4]]));
    }
    let truth: Vec<[f32; CAR_TYPES]> = data.samples.iter().map(|s| s.counts).collect();
    Ok(counting_metrics(&predicted, &truth))
}

/// Segmentation metrics of `model` on `data`; `car_class` picks the headline IoU.
pub fn evaluate_segmentation(
    model: &SegmentationNet,
    data: &Dataset,
    classes: usize,
    car_class: usize,
    device: &Device,
) -> Result<SegmentationMetrics, TrainError> {
    data.check(Some(classes))?;
    let mut confusion = ConfusionMatrix::new(classes);
    for (sample, predicted) in data.samples.iter().zip(predict_segmentation(model, data, device)?) {
        confusion.add(&sample.classes, &predicted);
    }
    Ok(confusion.metrics(car_class))
}

/// The class index `model` predicts for every pixel of every image of `data` (row-major,
/// one map per sample).
pub fn predict_segmentation(
    model: &SegmentationNet,
    data: &Dataset,
    device: &Device,
) -> Result<Vec<Vec<u8>>, TrainError> {
    data.check(None)?;
    check_u_net_size(data)?;
    let model = model.valid();
    let device = device.clone().without_autodiff();
    let indices: Vec<usize> = (0..data.len()).collect();
    let plane = data.width * data.height;
    let mut maps = Vec::with_capacity(data.len());
    for batch in indices.chunks(EVAL_BATCH) {
        let predicted: Vec<u8> = model
            .forward(data.images(batch, &device))
            .argmax(1)
            .into_data()
            .try_into_vec_as::<i64>()
            .map_err(|e| TrainError::Readback(format!("{e:?}")))?
            .into_iter()
            .map(|c| u8::try_from(c).unwrap_or(u8::MAX))
            .collect();
        maps.extend(predicted.chunks_exact(plane).map(<[u8]>::to_vec));
    }
    Ok(maps)
}

/// Writes `model`'s weights (burn's burnpack format; `.bpk` is added when `path` has no extension).
pub fn save_weights<M: Module>(model: &M, path: &Path) -> Result<(), TrainError> {
    model.clone().save_file(path).map_err(|e| TrainError::Weights {
        action: "write",
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Loads weights saved by [`save_weights`] into `model` (built with the same config).
pub fn load_weights<M: Module>(model: M, path: &Path) -> Result<M, TrainError> {
    model.try_load_file(path).map_err(|e| TrainError::Weights {
        action: "read",
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: usize = 32;

    fn synthetic(n: usize, seed: u64) -> Dataset {
        Dataset::squares(n, SIZE, seed)
    }

    fn config(epochs: usize) -> TrainConfig {
        TrainConfig { epochs, batch_size: 8, learning_rate: 3e-3, seed: 7 }
    }

    fn device() -> Device {
        Device::flex().autodiff()
    }

    #[test]
    fn counting_model_overfits_a_handful_of_images() {
        let data = synthetic(8, 1);
        let config = TrainConfig { learning_rate: 1e-3, ..config(2000) };
        let trained = train_counting(&device(), &config, &data, None).expect("trains");
        let metrics = evaluate_counting(&trained.model, &data, &device()).expect("evaluates");
        assert!(metrics.mae < 0.15, "MAE {} (losses ... {:?})", metrics.mae, &trained.epoch_losses[1990..]);
        assert!(metrics.exact_accuracy >= 0.875, "{metrics:?}");
    }

    #[test]
    fn segmentation_model_overfits_a_handful_of_images() {
        let data = synthetic(4, 2);
        let trained =
            train_segmentation(&device(), &config(150), 1 + CAR_TYPES, &data, None).expect("trains");
        let metrics =
            evaluate_segmentation(&trained.model, &data, 1 + CAR_TYPES, 1, &device()).expect("evaluates");
        assert!(metrics.mean_iou > 0.9, "{metrics:?} (last loss {:?})", trained.epoch_losses.last());
    }

    #[test]
    fn one_seed_gives_the_same_weights_and_saved_weights_reload() {
        let data = synthetic(8, 3);
        let a = train_counting(&device(), &config(3), &data, None).expect("trains");
        let b = train_counting(&device(), &config(3), &data, None).expect("trains");
        let outputs = |m: &CountingCnn| -> Vec<f32> {
            let d = Device::flex();
            m.valid().forward(data.images(&[0, 1, 2], &d)).into_data().try_into_vec_as::<f32>().expect("f32")
        };
        assert_eq!(outputs(&a.model), outputs(&b.model));
        assert_eq!(a.epoch_losses, b.epoch_losses);
        let other =
            train_counting(&device(), &TrainConfig { seed: 8, ..config(3) }, &data, None).expect("trains");
        assert_ne!(outputs(&a.model), outputs(&other.model));

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("counting");
        save_weights(&a.model, &path).expect("saves");
        let loaded = load_weights(CountingCnnConfig::new().init(&device()), &path).expect("loads");
        assert_eq!(outputs(&a.model), outputs(&loaded));
        assert!(load_weights(CountingCnnConfig::new().init(&device()), &dir.path().join("missing")).is_err());
    }

    /// The meta-learner trains K models at once: trainings on parallel threads must give
    /// exactly the weights they give one after the other.
    #[test]
    fn concurrent_trainings_match_sequential_ones() {
        let data = synthetic(8, 5);
        let run = |seed: u64| -> Vec<f32> {
            let trained =
                train_counting(&device(), &TrainConfig { seed, ..config(2) }, &data, None).expect("trains");
            trained
                .model
                .valid()
                .forward(data.images(&[0, 1], &Device::flex()))
                .into_data()
                .try_into_vec_as::<f32>()
                .expect("f32")
        };
        let sequential: Vec<Vec<f32>> = (0..4).map(run).collect();
        let concurrent: Vec<Vec<f32>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4).map(|seed| scope.spawn(move || run(seed))).collect();
            handles.into_iter().map(|h| h.join().expect("training thread")).collect()
        });
        assert_eq!(sequential, concurrent);
    }

    #[test]
    fn ignored_pixels_count_in_neither_the_loss_nor_the_iou() {
        // Squares of type 0 and 1 are labelled; the others are ignored. A model trained on
        // the labelled pixels alone separates background from type 0 and 1.
        let mut data = synthetic(4, 6);
        for s in &mut data.samples {
            s.classes.iter_mut().filter(|c| **c > 2).for_each(|c| *c = IGNORE);
        }
        assert!(data.has_ignored_pixels());
        let trained = train_segmentation(&device(), &config(150), 3, &data, None).expect("trains");
        let losses = &trained.epoch_losses;
        assert!(
            losses.iter().all(|l| l.is_finite()) && losses[losses.len() - 1] < 0.5 * losses[0],
            "{losses:?}"
        );
        let metrics = evaluate_segmentation(&trained.model, &data, 3, 1, &device()).expect("evaluates");
        assert!(metrics.mean_iou > 0.8, "{metrics:?}");

        // The loss of a pixel set with ignored pixels equals that of the kept pixels alone.
        let d = Device::flex();
        let logits =
            Tensor::<2>::from_data(TensorData::new(vec![1.0f32, -1.0, 0.5, 0.2, 2.0, -0.3], [3, 2]), &d);
        let weights = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 3.0], [2]), &d);
        let targets = |v: Vec<i64>| Tensor::<1, Int>::from_data(TensorData::new(v.clone(), [v.len()]), &d);
        let with_ignored =
            ignoring_cross_entropy(logits.clone(), targets(vec![0, 255, 1]), &weights).into_scalar::<f32>();
        let kept = CrossEntropyLossConfig::new()
            .with_weights(Some(vec![1.0, 3.0]))
            .init(&d)
            .forward(logits.select(0, targets(vec![0, 2])), targets(vec![0, 1]))
            .into_scalar::<f32>();
        assert!((with_ignored - kept).abs() < 1e-6, "{with_ignored} vs {kept}");
    }

    #[test]
    fn sizes_the_u_net_cannot_take_are_refused_not_panicked_on() {
        let data = Dataset::squares(2, 8, 1);
        let odd = Dataset {
            width: 6,
            height: 8,
            samples: data
                .samples
                .iter()
                .map(|s| {
                    let mut s = s.clone();
                    s.image.truncate(3 * 48);
                    s.classes.truncate(48);
                    s.density.clear();
                    s
                })
                .collect(),
        };
        let err =
            train_segmentation(&device(), &config(1), 6, &odd, None).expect_err("6 is not a multiple of 4");
        assert!(err.to_string().contains("6x8") && err.to_string().contains("multiples of 4"), "{err}");
    }

    #[test]
    fn bad_data_is_refused() {
        let mut data = synthetic(2, 4);
        data.samples[1].image.pop();
        assert!(matches!(train_counting(&device(), &config(1), &data, None), Err(TrainError::Data(_))));
        let data = synthetic(2, 4);
        let err = train_segmentation(&device(), &config(1), 3, &data, None).expect_err("classes up to 5");
        assert!(err.to_string().contains("not below the model's 3 classes"), "{err}");
    }
}
