//! Metrics of the main task models, computed on plain numbers so they can be checked by
//! hand: counting errors per car type, and IoU from a confusion matrix.

use serde::{Deserialize, Serialize};

/// Number of car types the counting model regresses.
pub const CAR_TYPES: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountingMetrics {
    /// Mean absolute error of each type's count.
    pub mae_per_type: [f64; CAR_TYPES],
    /// Mean absolute error over all types and images.
    pub mae: f64,
    /// Share of images whose five rounded counts are all exactly right.
    pub exact_accuracy: f64,
}

/// Compares predicted counts (real-valued) with the true counts.
pub fn counting_metrics(predicted: &[[f32; CAR_TYPES]], truth: &[[f32; CAR_TYPES]]) -> CountingMetrics {
    let n = predicted.len().min(truth.len());
    let mut mae_per_type = [0.0; CAR_TYPES];
    let mut exact = 0usize;
    for (p, t) in predicted.iter().zip(truth) {
        let mut all_right = true;
        for k in 0..CAR_TYPES {
            mae_per_type[k] += f64::from((p[k] - t[k]).abs());
            all_right &= p[k].max(0.0).round() == t[k].round();
        }
        exact += usize::from(all_right);
    }
    let denominator = n.max(1) as f64;
    mae_per_type.iter_mut().for_each(|m| *m /= denominator);
    CountingMetrics {
        mae: mae_per_type.iter().sum::<f64>() / CAR_TYPES as f64,
        mae_per_type,
        exact_accuracy: exact as f64 / denominator,
    }
}

/// Pixel counts of (true class, predicted class) pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfusionMatrix {
    classes: usize,
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    pub fn new(classes: usize) -> Self {
        Self { classes, counts: vec![0; classes * classes] }
    }

    /// Adds one image's labels; pixels with a class outside the matrix are ignored.
    pub fn add(&mut self, truth: &[u8], predicted: &[u8]) {
        for (t, p) in truth.iter().zip(predicted) {
            let (t, p) = (usize::from(*t), usize::from(*p));
            if t < self.classes && p < self.classes {
                self.counts[t * self.classes + p] += 1;
            }
        }
    }

    /// Intersection over union of `class`; None when it appears in neither truth nor prediction.
    pub fn iou(&self, class: usize) -> Option<f64> {
        let n = self.classes;
        let tp = self.counts[class * n + class];
        let row: u64 = self.counts[class * n..(class + 1) * n].iter().sum();
        let col: u64 = (0..n).map(|t| self.counts[t * n + class]).sum();
        let union = row + col - tp;
        (union > 0).then(|| tp as f64 / union as f64)
    }

    /// Mean IoU over the classes present in truth or prediction.
    pub fn mean_iou(&self) -> f64 {
        let present: Vec<f64> = (0..self.classes).filter_map(|c| self.iou(c)).collect();
        if present.is_empty() { 0.0 } else { present.iter().sum::<f64>() / present.len() as f64 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentationMetrics {
    /// IoU per class index (None where the class occurs nowhere).
    pub iou: Vec<Option<f64>>,
    pub mean_iou: f64,
    /// IoU of the car class (0 when cars occur nowhere): the paper's headline metric.
    pub car_iou: f64,
}

impl ConfusionMatrix {
    pub fn metrics(&self, car_class: usize) -> SegmentationMetrics {
        SegmentationMetrics {
            iou: (0..self.classes).map(|c| self.iou(c)).collect(),
            mean_iou: self.mean_iou(),
            car_iou: self.iou(car_class).unwrap_or(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_metrics_match_hand_computed_values() {
        let truth = [[1.0, 0.0, 2.0, 0.0, 1.0], [0.0, 0.0, 0.0, 3.0, 0.0]];
        let predicted = [[1.2, 0.0, 1.6, 0.0, 1.0], [0.0, 1.0, 0.0, 3.0, 0.0]];
        let m = counting_metrics(&predicted, &truth);
        // Type errors: sedan (0.2 + 0)/2, suv (0 + 1)/2, van (0.4 + 0)/2, pickup 0, bus 0.
        let expected = [0.1, 0.5, 0.2, 0.0, 0.0];
        for (a, b) in m.mae_per_type.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{:?}", m.mae_per_type);
        }
        assert!((m.mae - 0.16).abs() < 1e-6);
        // Image 1 rounds to (1, 0, 2, 0, 1): right; image 2 has one SUV too many.
        assert_eq!(m.exact_accuracy, 0.5);
    }

    #[test]
    fn iou_matches_hand_computed_values() {
        // 3 classes on a 2x3 mask.
        let truth = [0, 0, 1, 1, 2, 2];
        let predicted = [0, 1, 1, 1, 2, 0];
        let mut cm = ConfusionMatrix::new(3);
        cm.add(&truth, &predicted);
        // class 0: tp 1, fn 1 (pixel 1), fp 1 (pixel 5) → 1/3; class 1: tp 2, fp 1 → 2/3;
        // class 2: tp 1, fn 1 → 1/2.
        assert!((cm.iou(0).expect("present") - 1.0 / 3.0).abs() < 1e-12);
        assert!((cm.iou(1).expect("present") - 2.0 / 3.0).abs() < 1e-12);
        assert!((cm.iou(2).expect("present") - 0.5).abs() < 1e-12);
        let m = cm.metrics(1);
        assert!((m.mean_iou - (1.0 / 3.0 + 2.0 / 3.0 + 0.5) / 3.0).abs() < 1e-12);
        assert!((m.car_iou - 2.0 / 3.0).abs() < 1e-12);
        let mut absent = ConfusionMatrix::new(4);
        absent.add(&truth, &predicted);
        assert_eq!(absent.iou(3), None);
        assert!((absent.mean_iou() - m.mean_iou).abs() < 1e-12);
    }
}
