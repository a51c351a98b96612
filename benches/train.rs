//! Training throughput of the main task models on burn's CPU backend (`flex`): one epoch
//! of Adam over 4 batches of 32 synthetic images, counting at 64x64 and 128x128 and
//! segmentation at 128x128. Criterion reports images/s. Then the meta-loop's K trainings
//! with one and with two worker threads (trainings/s).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use l2s_train::{
    BackendChoice, CountingCnnConfig, Dataset, SegmentationNetConfig, TrainConfig, train_counting,
    train_segmentation, training_device,
};

const BATCH: usize = 32;
const BATCHES: usize = 4;

fn config() -> TrainConfig {
    TrainConfig { epochs: 1, batch_size: BATCH, learning_rate: 1e-3, seed: 1 }
}

fn training(c: &mut Criterion) {
    let device = training_device(BackendChoice::Cpu);
    let mut group = c.benchmark_group("train_cpu");
    group.sample_size(10).throughput(Throughput::Elements((BATCH * BATCHES) as u64));
    for size in [64, 128] {
        let data = Dataset::squares(BATCH * BATCHES, size, 1);
        let model = CountingCnnConfig::new().init(&device);
        group.bench_function(format!("counting_{size}x{size}"), |b| {
            b.iter(|| train_counting(&device, &config(), &data, Some(model.clone())).expect("trains"))
        });
    }
    let classes = 6;
    let data = Dataset::squares(BATCH * BATCHES, 128, 1);
    let model = SegmentationNetConfig::new(classes).init(&device);
    group.bench_function("segmentation_128x128", |b| {
        b.iter(|| {
            train_segmentation(&device, &config(), classes, &data, Some(model.clone())).expect("trains")
        })
    });
    group.finish();
}

/// The meta-loop's unit of work: K = 4 independent counting trainings (M = 96 images of
/// 64x64, 2 epochs), run one after the other or on two worker threads at once, as
/// `meta.threads` does. Criterion reports trainings/s.
fn meta_loop(c: &mut Criterion) {
    const K: usize = 4;
    let device = training_device(BackendChoice::Cpu);
    let data = Dataset::squares(96, 64, 1);
    let mut group = c.benchmark_group("meta_loop_cpu");
    group.sample_size(10).throughput(Throughput::Elements(K as u64));
    for threads in [1, 2] {
        group.bench_function(format!("{K}_trainings_{threads}_threads"), |b| {
            b.iter(|| {
                std::thread::scope(|scope| {
                    for worker in 0..threads {
                        let (device, data) = (&device, &data);
                        scope.spawn(move || {
                            for k in (worker..K).step_by(threads) {
                                let config = TrainConfig { epochs: 2, seed: k as u64, ..config() };
                                train_counting(device, &config, data, None).expect("trains");
                            }
                        });
                    }
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, training, meta_loop);
criterion_main!(benches);
