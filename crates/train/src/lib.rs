//! Main task models in burn 0.22, written once for any device (burn's `flex` CPU backend or
//! a GPU through wgpu), in the layout of burn's own examples: [`data`] (samples in memory
//! and their batches), [`model`] (car counting CNN, segmentation U-Net), [`training`]
//! (Adam, seeded batch order, fine-tuning, evaluation, weights on disk) and [`metrics`].

pub mod backend;
pub mod conv;
pub mod data;
pub mod metrics;
pub mod model;
pub mod training;

pub use backend::{BackendChoice, BackendError, training_device};
/// The burn device the models train on (a value in burn 0.22, not a type parameter).
pub use burn::tensor::Device;
pub use data::{DataError, Dataset, IGNORE, Sample, count_density};
pub use metrics::{CountingMetrics, SegmentationMetrics};
pub use model::{CountingCnn, CountingCnnConfig, DENSITY_CELL, SegmentationNet, SegmentationNetConfig};
pub use training::{
    TrainConfig, TrainError, Trained, evaluate_counting, evaluate_segmentation, load_weights,
    predict_segmentation, save_weights, train_counting, train_segmentation,
};
