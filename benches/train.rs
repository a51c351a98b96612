//! Training throughput on burn's CPU backend (`flex`): one epoch of Adam over 4 batches of
//! 32 synthetic images for the reference network at 64x64 and 128x128 (the network that
//! `../shared/peers/torch_cnn_bench.py` trains in PyTorch), the counting model at 64x64 and
//! 128x128 and the segmentation model at 128x128. Criterion reports images/s. Then the
//! meta-loop's K trainings with one and with two worker threads (counting model:
//! trainings/s; reference network: images/s). `cargo xtask bench train --pytorch FILE`
//! sets the reference network's figures against PyTorch's.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use l2s_meta::pool::{run_jobs, worker_pool};
use l2s_train::{
    BackendChoice, CountingCnnConfig, Dataset, SegmentationNetConfig, TrainConfig, train_counting,
    train_segmentation, training_device,
};

/// The PyTorch comparison's network: three 3x3 stride-2 convolutions 3→16→32→64 with ReLU,
/// global average pooling, linear 64→5; trained with Adam on an MSE loss, the loss read
/// back every step, as the PyTorch script does.
#[derive(Module, Debug)]
struct ReferenceCnn {
    convs: Vec<Conv2d>,
    head: Linear,
    activation: Relu,
}

impl ReferenceCnn {
    fn new(device: &Device) -> Self {
        let conv = |c_in, c_out| {
            Conv2dConfig::new([c_in, c_out], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        Self {
            convs: vec![conv(3, 16), conv(16, 32), conv(32, 64)],
            head: LinearConfig::new(64, 5).init(device),
            activation: Relu::new(),
        }
    }

    /// `gemm`: each convolution and its ReLU through `l2s_train::conv` (one operation,
    /// GEMMs on the CPU) rather than burn's `Conv2d` and `Relu`.
    fn forward(&self, mut x: Tensor<4>, gemm: bool) -> Tensor<2> {
        for conv in &self.convs {
            x = if gemm {
                l2s_train::conv::forward_relu(conv, x)
            } else {
                self.activation.forward(conv.forward(x))
            };
        }
        let [batch, channels, height, width] = x.dims();
        let pooled = if gemm {
            // `l2s_train::conv` hands out NHWC data under an NCHW view: the mean over
            // [batch, height · width, channels] reads it as it lies, where a mean over the
            // NCHW axes makes a contiguous copy first (3 % of a step at 128x128).
            x.permute([0, 2, 3, 1])
                .reshape([batch, height * width, channels])
                .mean_dim(1)
                .reshape([batch, channels])
        } else {
            x.mean_dim(3).mean_dim(2).reshape([batch, channels])
        };
        self.head.forward(pooled)
    }
}

/// One epoch of the reference network over `data` in batches of [`BATCH`].
/// The parameters first become new autodiff leaves, as in `l2s_train`'s training loop, so
/// that concurrent trainings of clones of one model share no autodiff nodes.
fn reference_epoch(model: ReferenceCnn, data: &Dataset, device: &Device, gemm: bool) -> ReferenceCnn {
    let mut model = model.valid().train();
    let mut optimiser = AdamConfig::new().init();
    let indices: Vec<usize> = (0..data.len()).collect();
    for batch in indices.chunks(BATCH) {
        let error = model.forward(data.images(batch, device), gemm) - data.counts(batch, device);
        let loss = (error.clone() * error).mean();
        std::hint::black_box(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimiser.step(1e-3, model, grads);
    }
    model
}

const BATCH: usize = 32;
const BATCHES: usize = 4;

fn config() -> TrainConfig {
    TrainConfig { epochs: 1, batch_size: BATCH, learning_rate: 1e-3, seed: 1 }
}

fn training(c: &mut Criterion) {
    // As the `l2s` binary runs.
    l2s::allocator::keep_freed_blocks_for_reuse();
    let device = training_device(BackendChoice::Cpu).expect("the CPU needs no adapter");
    let mut group = c.benchmark_group("train_cpu");
    group.sample_size(10).throughput(Throughput::Elements((BATCH * BATCHES) as u64));
    for size in [64, 128] {
        let data = Dataset::squares(BATCH * BATCHES, size, 1);
        let model = ReferenceCnn::new(&device);
        group.bench_function(format!("reference_{size}x{size}"), |b| {
            b.iter(|| reference_epoch(model.clone(), &data, &device, false))
        });
        group.bench_function(format!("reference_gemm_{size}x{size}"), |b| {
            b.iter(|| reference_epoch(model.clone(), &data, &device, true))
        });
    }
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

/// The meta-loop's unit of work: K = 4 independent trainings on a pool of one worker (one
/// core) or two, run as the meta-loop runs its K evaluations (`l2s_meta::pool::run_jobs`,
/// the pool made once, as by `meta.threads`): with K ≥ workers, a training per core.
/// First the counting model (M = 96 images of 64x64, 2 epochs; criterion reports
/// trainings/s), then the reference network (one epoch over 4 batches of 32 each; images/s,
/// to set against PyTorch training the same K networks one after the other).
fn meta_loop(c: &mut Criterion) {
    const K: usize = 4;
    l2s::allocator::keep_freed_blocks_for_reuse();
    let device = training_device(BackendChoice::Cpu).expect("the CPU needs no adapter");
    let data = Dataset::squares(96, 64, 1);
    let mut group = c.benchmark_group("meta_loop_cpu");
    group.sample_size(10).throughput(Throughput::Elements(K as u64));
    let pools = [1, 2].map(|threads| (threads, worker_pool(threads, usize::MAX).expect("a worker pool")));
    for (threads, pool) in &pools {
        group.bench_function(format!("{K}_trainings_{threads}_threads"), |b| {
            b.iter(|| {
                run_jobs(pool, K, |k| {
                    let config = TrainConfig { epochs: 2, seed: k as u64, ..config() };
                    train_counting(&device, &config, &data, None).expect("trains");
                })
            })
        });
    }
    group.throughput(Throughput::Elements((K * BATCH * BATCHES) as u64));
    for size in [64, 128] {
        let data = Dataset::squares(BATCH * BATCHES, size, 1);
        let model = ReferenceCnn::new(&device);
        for (threads, pool) in &pools {
            group.bench_function(
                format!("reference_gemm_{size}x{size}_{K}_trainings_{threads}_threads"),
                |b| {
                    b.iter(|| {
                        run_jobs(pool, K, |_| {
                            reference_epoch(model.clone(), &data, &device, true);
                        })
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, training, meta_loop);
criterion_main!(benches);
