//! The GPU path: both main task models train on burn's wgpu backend (Mesa's lavapipe in
//! CI, a real GPU where there is one), through the same code as on the CPU, including
//! the convolution + ReLU extension's autodiff glue (burn's kernels on wgpu).
//!
//! From the same weights, one Adam step on wgpu lands where the CPU backend's does: every
//! weight within [`TOLERANCE`], a hundredth of the step itself (Adam moves a weight by
//! about its learning rate, 1e-3). The backends sum in different orders, so they agree to
//! rounding, not to the bit (lavapipe, 2026-12-03: largest difference 1.5e-7 counting,
//! 1.6e-7 segmentation). Then a few epochs on wgpu alone lower the loss.
//!
//! Without an adapter the tests print why and pass, unless `L2S_REQUIRE_WGPU=1` (CI, which
//! installs lavapipe) makes that a failure.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use l2s_train::{
    BackendChoice, CountingCnn, CountingCnnConfig, Dataset, Device, SegmentationNet, SegmentationNetConfig,
    TrainConfig, train_counting, train_segmentation, training_device,
};

const LEARNING_RATE: f64 = 1e-3;
/// Largest difference of a weight between the backends after one step.
const TOLERANCE: f32 = 1e-5;

/// The wgpu device, or `None` (with the reason printed) where there is no adapter.
fn wgpu_device() -> Option<Device> {
    match training_device(BackendChoice::Wgpu) {
        Ok(device) => Some(device),
        Err(e) if std::env::var("L2S_REQUIRE_WGPU").is_ok_and(|v| v == "1") => {
            panic!("L2S_REQUIRE_WGPU=1 but {e}")
        }
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

fn cpu_device() -> Device {
    training_device(BackendChoice::Cpu).expect("the CPU needs no adapter")
}

/// Every float parameter of a module, in visiting order.
#[derive(Default)]
struct Weights(Vec<f32>);

impl ModuleVisitor for Weights {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let values = param.val().into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 weights");
        self.0.extend(values);
    }
}

fn weights<M: Module>(model: &M) -> Vec<f32> {
    let mut visitor = Weights::default();
    model.visit(&mut visitor);
    visitor.0
}

/// After one step from the same weights, every weight within [`TOLERANCE`] of the CPU's.
fn assert_one_step_matches(what: &str, start: &[f32], cpu: &[f32], gpu: &[f32]) {
    assert_eq!((cpu.len(), gpu.len()), (start.len(), start.len()), "{what}: parameter counts");
    let moved = cpu.iter().zip(start).filter(|(a, b)| a != b).count();
    // Weights behind ReLUs that never fire on these images get no gradient; a tenth moved
    // is enough for the comparison to mean something.
    assert!(moved * 10 > cpu.len(), "{what}: the step moved only {moved} of {} weights", cpu.len());
    let differences: Vec<f32> = cpu.iter().zip(gpu).map(|(a, b)| (a - b).abs()).collect();
    let largest = differences.iter().copied().fold(0.0, f32::max);
    eprintln!(
        "{what}: one step on wgpu against the CPU: {moved} of {} weights moved; largest difference {largest:.2e}",
        cpu.len()
    );
    assert!(largest <= TOLERANCE, "{what}: a weight differs by {largest} between the backends");
}

/// `build`'s model with every lazily initialised weight drawn now from the CPU's generator
/// seeded with `seed`, so that its clones share them and every run starts from the same
/// weights. Under a lock: the tests run in parallel and burn's generator is process-wide.
fn materialised<M: Module>(seed: u64, build: impl FnOnce(&Device) -> M) -> M {
    static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = INIT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let cpu = cpu_device();
    cpu.seed(seed);
    let model = build(&cpu);
    let record = model.clone().into_record();
    model.load_record(record)
}

fn config(epochs: usize, batch_size: usize) -> TrainConfig {
    TrainConfig { epochs, batch_size, learning_rate: LEARNING_RATE, seed: 3 }
}

#[test]
fn the_counting_model_trains_on_wgpu_as_on_the_cpu() {
    let Some(gpu) = wgpu_device() else { return };
    let cpu = cpu_device();
    let data = Dataset::squares(8, 32, 1);
    let start = materialised(11, |d| CountingCnnConfig::new().init(d));
    let on_gpu =
        |model: &CountingCnn| CountingCnnConfig::new().init(&gpu).load_record(model.clone().into_record());
    let step = config(1, data.len());
    let after_cpu = train_counting(&cpu, &step, &data, Some(start.clone())).expect("trains on the CPU");
    let after_gpu = train_counting(&gpu, &step, &data, Some(on_gpu(&start))).expect("trains on wgpu");
    assert_one_step_matches(
        "counting",
        &weights(&start),
        &weights(&after_cpu.model),
        &weights(&after_gpu.model),
    );

    let losses =
        train_counting(&gpu, &config(5, 4), &data, Some(on_gpu(&start))).expect("trains").epoch_losses;
    assert!(losses[4] < losses[0], "counting on wgpu: the loss did not fall: {losses:?}");
}

#[test]
fn the_segmentation_model_trains_on_wgpu_as_on_the_cpu() {
    let Some(gpu) = wgpu_device() else { return };
    let cpu = cpu_device();
    let data = Dataset::squares(8, 32, 2);
    let classes = 6;
    let start = materialised(12, |d| SegmentationNetConfig::new(classes).init(d));
    let on_gpu = |model: &SegmentationNet| {
        SegmentationNetConfig::new(classes).init(&gpu).load_record(model.clone().into_record())
    };
    let step = config(1, data.len());
    let after_cpu =
        train_segmentation(&cpu, &step, classes, &data, Some(start.clone())).expect("trains on the CPU");
    let after_gpu =
        train_segmentation(&gpu, &step, classes, &data, Some(on_gpu(&start))).expect("trains on wgpu");
    assert_one_step_matches(
        "segmentation",
        &weights(&start),
        &weights(&after_cpu.model),
        &weights(&after_gpu.model),
    );

    let losses = train_segmentation(&gpu, &config(5, 4), classes, &data, Some(on_gpu(&start)))
        .expect("trains")
        .epoch_losses;
    assert!(losses[4] < losses[0], "segmentation on wgpu: the loss did not fall: {losses:?}");
}
