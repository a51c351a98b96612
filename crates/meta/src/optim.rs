//! Adam on a flat parameter vector, with gradient-norm clipping.

use serde::{Deserialize, Serialize};

/// Adam (Kingma and Ba, 2015); its state is part of the checkpoint so a resumed run takes
/// exactly the steps an uninterrupted one would.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adam {
    pub learning_rate: f64,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    first_moment: Vec<f64>,
    second_moment: Vec<f64>,
    steps: u64,
}

impl Adam {
    pub fn new(len: usize, learning_rate: f64) -> Self {
        Self {
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            first_moment: vec![0.0; len],
            second_moment: vec![0.0; len],
            steps: 0,
        }
    }

    /// Moves `params` along `grad` (gradient ascent: the objective is a reward).
    pub fn ascend(&mut self, params: &mut [f64], grad: &[f64]) {
        assert_eq!(params.len(), grad.len(), "gradient and parameters differ in length");
        assert_eq!(params.len(), self.first_moment.len(), "optimiser built for another parameter count");
        self.steps += 1;
        let t = i32::try_from(self.steps).unwrap_or(i32::MAX);
        let correction1 = 1.0 - self.beta1.powi(t);
        let correction2 = 1.0 - self.beta2.powi(t);
        for (i, (p, g)) in params.iter_mut().zip(grad).enumerate() {
            let m = &mut self.first_moment[i];
            let v = &mut self.second_moment[i];
            *m = self.beta1 * *m + (1.0 - self.beta1) * g;
            *v = self.beta2 * *v + (1.0 - self.beta2) * g * g;
            *p += self.learning_rate * (*m / correction1) / ((*v / correction2).sqrt() + self.epsilon);
        }
    }
}

/// Scales `grad` down to L2 norm `max_norm` if it is longer; returns the norm before.
pub fn clip_norm(grad: &mut [f64], max_norm: f64) -> f64 {
    let norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
    if norm > max_norm {
        let scale = max_norm / norm;
        grad.iter_mut().for_each(|g| *g *= scale);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_climbs_a_concave_quadratic() {
        let mut x = vec![0.0, 5.0];
        let mut adam = Adam::new(2, 0.1);
        for _ in 0..500 {
            let grad: Vec<f64> = x.iter().zip([3.0, -2.0]).map(|(xi, t)| -2.0 * (xi - t)).collect();
            adam.ascend(&mut x, &grad);
        }
        assert!((x[0] - 3.0).abs() < 1e-2 && (x[1] + 2.0).abs() < 1e-2, "{x:?}");
    }

    #[test]
    fn clipping_keeps_direction_and_caps_length() {
        let mut g = vec![3.0, 4.0];
        assert_eq!(clip_norm(&mut g, 1.0), 5.0);
        assert!((g[0] - 0.6).abs() < 1e-12 && (g[1] - 0.8).abs() < 1e-12);
        let mut small = vec![0.1, 0.0];
        clip_norm(&mut small, 1.0);
        assert_eq!(small, vec![0.1, 0.0]);
    }
}
