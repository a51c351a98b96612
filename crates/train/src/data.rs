//! Training data in memory: images with their per-type car counts and per-pixel classes,
//! as the renderer hands them over, and their conversion into batches of tensors.

use burn::prelude::*;
use l2s_core::SeedTree;
use rand::Rng;

use crate::metrics::CAR_TYPES;

/// One labelled image.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Channel-major RGB (`[3][height][width]`) in [0, 1].
    pub image: Vec<f32>,
    /// Visible cars of each type (sedan, SUV, van, pickup, bus).
    pub counts: [f32; CAR_TYPES],
    /// Class index per pixel, row-major; empty when the sample has no segmentation labels.
    pub classes: Vec<u8>,
}

impl Sample {
    /// Builds a sample from interleaved 8-bit RGB (the renderer's and PNG's layout).
    pub fn from_rgb8(
        rgb: &[u8],
        width: usize,
        height: usize,
        counts: [f32; CAR_TYPES],
        classes: Vec<u8>,
    ) -> Self {
        let plane = width * height;
        let mut image = vec![0.0; 3 * plane];
        for (i, px) in rgb.chunks_exact(3).take(plane).enumerate() {
            for c in 0..3 {
                image[c * plane + i] = f32::from(px[c]) / 255.0;
            }
        }
        Self { image, counts, classes }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DataError {
    #[error("the dataset is empty")]
    Empty,
    #[error("sample {index}: image has {got} values, expected 3 x {width} x {height} = {expected}")]
    ImageSize { index: usize, got: usize, expected: usize, width: usize, height: usize },
    #[error("sample {index}: class map has {got} pixels, expected {expected}")]
    ClassMapSize { index: usize, got: usize, expected: usize },
    #[error("sample {index}: class {class} is not below the model's {classes} classes")]
    ClassOutOfRange { index: usize, class: u8, classes: usize },
}

/// Samples of one image size.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub width: usize,
    pub height: usize,
    pub samples: Vec<Sample>,
}

impl Dataset {
    /// Checks every image size (and, with `classes`, every class map).
    pub fn check(&self, classes: Option<usize>) -> Result<(), DataError> {
        if self.samples.is_empty() {
            return Err(DataError::Empty);
        }
        let plane = self.width * self.height;
        for (index, s) in self.samples.iter().enumerate() {
            if s.image.len() != 3 * plane {
                return Err(DataError::ImageSize {
                    index,
                    got: s.image.len(),
                    expected: 3 * plane,
                    width: self.width,
                    height: self.height,
                });
            }
            if let Some(classes) = classes {
                if s.classes.len() != plane {
                    return Err(DataError::ClassMapSize { index, got: s.classes.len(), expected: plane });
                }
                if let Some(class) = s.classes.iter().find(|c| usize::from(**c) >= classes) {
                    return Err(DataError::ClassOutOfRange { index, class: *class, classes });
                }
            }
        }
        Ok(())
    }

    /// A synthetic set for tests and benchmarks: `size`x`size` grey images (`size` a
    /// multiple of 8) with up to one 4x4 square per 8x8 cell, coloured by car type; the
    /// counts are the squares of each type, the class map 0 for background and 1 + type.
    pub fn squares(n: usize, size: usize, seed: u64) -> Self {
        const COLOURS: [[u8; 3]; CAR_TYPES] =
            [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255]];
        let mut rng = SeedTree::new(seed).rng();
        let cells = size / 8;
        let samples = (0..n)
            .map(|_| {
                let mut rgb = vec![128u8; size * size * 3];
                let mut classes = vec![0u8; size * size];
                let mut counts = [0.0; CAR_TYPES];
                for cell in 0..cells * cells {
                    let kind: usize = rng.random_range(0..CAR_TYPES + 3);
                    if kind >= CAR_TYPES {
                        continue;
                    }
                    counts[kind] += 1.0;
                    let (cx, cy) = ((cell % cells) * 8 + 2, (cell / cells) * 8 + 2);
                    for y in cy..cy + 4 {
                        for x in cx..cx + 4 {
                            let at = y * size + x;
                            rgb[at * 3..at * 3 + 3].copy_from_slice(&COLOURS[kind]);
                            classes[at] = 1 + kind as u8;
                        }
                    }
                }
                Sample::from_rgb8(&rgb, size, size, counts, classes)
            })
            .collect();
        Self { width: size, height: size, samples }
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// `[batch, 3, height, width]`.
    pub fn images(&self, indices: &[usize], device: &Device) -> Tensor<4> {
        let values: Vec<f32> = indices.iter().flat_map(|i| self.samples[*i].image.iter().copied()).collect();
        Tensor::from_data(TensorData::new(values, [indices.len(), 3, self.height, self.width]), device)
    }

    /// `[batch, 5]`.
    pub fn counts(&self, indices: &[usize], device: &Device) -> Tensor<2> {
        let values: Vec<f32> = indices.iter().flat_map(|i| self.samples[*i].counts).collect();
        Tensor::from_data(TensorData::new(values, [indices.len(), CAR_TYPES]), device)
    }

    /// `[batch * height * width]` class indices.
    pub fn classes(&self, indices: &[usize], device: &Device) -> Tensor<1, Int> {
        let values: Vec<i64> =
            indices.iter().flat_map(|i| self.samples[*i].classes.iter().map(|c| i64::from(*c))).collect();
        let n = values.len();
        Tensor::from_data(TensorData::new(values, [n]), device)
    }
}
