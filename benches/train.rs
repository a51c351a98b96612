//! Training throughput of the main task models on burn's CPU backend (`flex`): one epoch
//! of Adam over 4 batches of 32 synthetic images, counting at 64x64 and 128x128 and
//! segmentation at 128x128. Criterion reports images/s.

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

criterion_group!(benches, training);
criterion_main!(benches);
