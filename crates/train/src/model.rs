//! The main task models, in burn's device-agnostic style: the same code trains on the
//! `flex` CPU backend and on a GPU through wgpu.

use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{PaddingConfig2d, Relu};
use burn::prelude::*;

use crate::conv;
use crate::metrics::CAR_TYPES;

fn conv3x3(channels_in: usize, channels_out: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([channels_in, channels_out], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

/// Counts the cars of each of the five types by predicting where they are: a density map
/// with one plane per type at 1/8 of the image size, summed to give the counts. Five 3x3
/// convolutions with ReLU (16, 32, 32, 64, 64 channels; the first, second and fourth of
/// stride 2, so a cell of the map sees about 50 pixels around it) and a 1x1 convolution
/// to the five planes.
///
/// Why a density map rather than pooling features into a linear head (the benchmark
/// network): counts grow with the number of cars in view, which a sum over the image
/// expresses and an average does not; and trained on the map ([`Dataset::densities`],
/// each counted car one unit spread over its pixels) the model is told where every car is.
/// On 960 rendered 64x64 images the pooled network never got past predicting each type's
/// median count (validation MAE 0.650 against 0.646 for the constant median); see
/// BENCHMARKS.md for the density model's figures.
///
/// [`Dataset::densities`]: crate::Dataset::densities
#[derive(Config, Debug)]
pub struct CountingCnnConfig {
    /// Channels of the first convolution; the later ones have two and four times as many.
    #[config(default = 16)]
    pub width: usize,
}

#[derive(Module, Debug)]
pub struct CountingCnn {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
    conv4: Conv2d,
    conv5: Conv2d,
    density: Conv2d,
}

/// Pixels per side of one cell of the counting model's density map.
pub const DENSITY_CELL: usize = 8;

impl CountingCnnConfig {
    pub fn init(&self, device: &Device) -> CountingCnn {
        let w = self.width;
        CountingCnn {
            conv1: conv3x3(3, w, 2, device),
            conv2: conv3x3(w, 2 * w, 2, device),
            conv3: conv3x3(2 * w, 2 * w, 1, device),
            conv4: conv3x3(2 * w, 4 * w, 2, device),
            conv5: conv3x3(4 * w, 4 * w, 1, device),
            density: Conv2dConfig::new([4 * w, CAR_TYPES], [1, 1]).init(device),
        }
    }
}

impl CountingCnn {
    /// Images `[batch, 3, height, width]` in [0, 1] → count density
    /// `[batch, 5, ⌈height / 8⌉, ⌈width / 8⌉]`.
    pub fn forward_density(&self, images: Tensor<4>) -> Tensor<4> {
        let x = conv::forward_relu(&self.conv1, images);
        let x = conv::forward_relu(&self.conv2, x);
        let x = conv::forward_relu(&self.conv3, x);
        let x = conv::forward_relu(&self.conv4, x);
        let x = conv::forward_relu(&self.conv5, x);
        self.density.forward(x)
    }

    /// Images `[batch, 3, height, width]` in [0, 1] → counts `[batch, 5]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        Self::counts(self.forward_density(images))
    }

    /// The counts a density map stands for: its sum over each plane.
    pub fn counts(density: Tensor<4>) -> Tensor<2> {
        let [batch, types, rows, cols] = density.dims();
        density.reshape([batch, types, rows * cols]).sum_dim(2).reshape([batch, types])
    }
}

/// A small U-Net: two stride-2 encoder stages, transposed-convolution decoder stages with
/// skip connections, and a 1x1 head giving one logit per class and pixel.
#[derive(Config, Debug)]
pub struct SegmentationNetConfig {
    pub classes: usize,
    #[config(default = 16)]
    pub width: usize,
}

#[derive(Module, Debug)]
pub struct SegmentationNet {
    stem: Conv2d,
    down1: Conv2d,
    down2: Conv2d,
    up2: ConvTranspose2d,
    fuse2: Conv2d,
    up1: ConvTranspose2d,
    fuse1: Conv2d,
    head: Conv2d,
    activation: Relu,
}

impl SegmentationNetConfig {
    pub fn init(&self, device: &Device) -> SegmentationNet {
        let w = self.width;
        let up = |c_in: usize, c_out: usize| {
            ConvTranspose2dConfig::new([c_in, c_out], [2, 2]).with_stride([2, 2]).init(device)
        };
        SegmentationNet {
            stem: conv3x3(3, w, 1, device),
            down1: conv3x3(w, 2 * w, 2, device),
            down2: conv3x3(2 * w, 4 * w, 2, device),
            up2: up(4 * w, 2 * w),
            fuse2: conv3x3(4 * w, 2 * w, 1, device),
            up1: up(2 * w, w),
            fuse1: conv3x3(2 * w, w, 1, device),
            head: Conv2dConfig::new([w, self.classes], [1, 1]).init(device),
            activation: Relu::new(),
        }
    }
}

impl SegmentationNet {
    /// Images `[batch, 3, height, width]` (height and width divisible by 4) → logits
    /// `[batch, classes, height, width]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<4> {
        let relu = |x| self.activation.forward(x);
        let full = conv::forward_relu(&self.stem, images);
        let half = conv::forward_relu(&self.down1, full.clone());
        let quarter = conv::forward_relu(&self.down2, half.clone());
        let x = relu(self.up2.forward(quarter));
        let x = conv::forward_relu(&self.fuse2, Tensor::cat(vec![x, half], 1));
        let x = relu(self.up1.forward(x));
        let x = conv::forward_relu(&self.fuse1, Tensor::cat(vec![x, full], 1));
        self.head.forward(x)
    }
}
