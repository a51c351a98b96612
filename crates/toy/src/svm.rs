//! A C-support-vector classifier with an RBF kernel, trained by SMO with the second-order
//! working-set selection of Fan, Chen and Lin (JMLR 2005), as in LIBSVM. The training sets
//! here are small (hundreds of points), so the whole kernel matrix is kept in memory.

use l2s_core::config::{InvalidField, Validate, check_range};
use serde::{Deserialize, Serialize};

use crate::mixture::Dataset;

const TAU: f64 = 1e-12;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SvmConfig {
    /// Penalty on margin violations.
    pub c: f64,
    /// RBF width: K(a, b) = exp(−gamma·|a − b|²).
    pub gamma: f64,
    /// Stopping tolerance on the maximal KKT violation.
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
}

fn default_tolerance() -> f64 {
    1e-3
}

impl Validate for SvmConfig {
    fn validate(&self) -> Result<(), InvalidField> {
        check_range("c", self.c, 1e-6, 1e6)?;
        check_range("gamma", self.gamma, 1e-6, 1e6)?;
        check_range("tolerance", self.tolerance, 1e-9, 1.0)
    }
}

/// A trained classifier: f(x) = Σ coef_i·K(sv_i, x) − rho, class 1 where f(x) > 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Svm {
    support: Vec<[f64; 2]>,
    coef: Vec<f64>,
    rho: f64,
    gamma: f64,
}

fn rbf(gamma: f64, a: [f64; 2], b: [f64; 2]) -> f64 {
    let (dx, dy) = (a[0] - b[0], a[1] - b[1]);
    (-gamma * (dx * dx + dy * dy)).exp()
}

impl Svm {
    pub fn train(data: &Dataset, config: &SvmConfig) -> Self {
        let n = data.len();
        let y: Vec<f64> = data.labels.iter().map(|l| if *l { 1.0 } else { -1.0 }).collect();
        let positives = data.labels.iter().filter(|l| **l).count();
        if positives == 0 || positives == n {
            // One class only: the best classifier predicts it everywhere.
            let rho = if positives == n && n > 0 { -1.0 } else { 1.0 };
            return Self { support: Vec::new(), coef: Vec::new(), rho, gamma: config.gamma };
        }
        let gamma = config.gamma;
        let c = config.c;
        let mut k = vec![0.0; n * n];
        for i in 0..n {
            k[i * n + i] = 1.0;
            for j in 0..i {
                let v = rbf(gamma, data.points[i], data.points[j]);
                k[i * n + j] = v;
                k[j * n + i] = v;
            }
        }
        let mut alpha = vec![0.0; n];
        // G = Qα − e with Q_ij = y_i y_j K_ij.
        let mut grad = vec![-1.0; n];
        let max_iterations = 100_000 + 100 * n;
        for _ in 0..max_iterations {
            let mut g_max = f64::NEG_INFINITY;
            let mut i_sel = None;
            for t in 0..n {
                let in_up = if y[t] > 0.0 { alpha[t] < c } else { alpha[t] > 0.0 };
                if in_up && -y[t] * grad[t] >= g_max {
                    g_max = -y[t] * grad[t];
                    i_sel = Some(t);
                }
            }
            let Some(i) = i_sel else { break };
            let mut g_min = f64::INFINITY;
            let mut j_sel = None;
            let mut best = f64::INFINITY;
            for t in 0..n {
                let in_low = if y[t] > 0.0 { alpha[t] > 0.0 } else { alpha[t] < c };
                if !in_low {
                    continue;
                }
                let v = -y[t] * grad[t];
                g_min = g_min.min(v);
                let b = g_max - v;
                if b > 0.0 {
                    let a = k[i * n + i] + k[t * n + t] - 2.0 * k[i * n + t];
                    let obj = -(b * b) / if a > 0.0 { a } else { TAU };
                    if obj <= best {
                        best = obj;
                        j_sel = Some(t);
                    }
                }
            }
            let Some(j) = j_sel else { break };
            if g_max - g_min < config.tolerance {
                break;
            }
            let (old_i, old_j) = (alpha[i], alpha[j]);
            let quad = {
                let q = k[i * n + i] + k[j * n + j] - 2.0 * k[i * n + j];
                if q > 0.0 { q } else { TAU }
            };
            if y[i] != y[j] {
                let delta = (-grad[i] - grad[j]) / quad;
                let diff = alpha[i] - alpha[j];
                alpha[i] += delta;
                alpha[j] += delta;
                if diff > 0.0 {
                    if alpha[j] < 0.0 {
                        alpha[j] = 0.0;
                        alpha[i] = diff;
                    }
                } else if alpha[i] < 0.0 {
                    alpha[i] = 0.0;
                    alpha[j] = -diff;
                }
                if diff > 0.0 {
                    if alpha[i] > c {
                        alpha[i] = c;
                        alpha[j] = c - diff;
                    }
                } else if alpha[j] > c {
                    alpha[j] = c;
                    alpha[i] = c + diff;
                }
            } else {
                let delta = (grad[i] - grad[j]) / quad;
                let sum = alpha[i] + alpha[j];
                alpha[i] -= delta;
                alpha[j] += delta;
                if sum > c {
                    if alpha[i] > c {
                        alpha[i] = c;
                        alpha[j] = sum - c;
                    }
                } else if alpha[j] < 0.0 {
                    alpha[j] = 0.0;
                    alpha[i] = sum;
                }
                if sum > c {
                    if alpha[j] > c {
                        alpha[j] = c;
                        alpha[i] = sum - c;
                    }
                } else if alpha[i] < 0.0 {
                    alpha[i] = 0.0;
                    alpha[j] = sum;
                }
            }
            let (d_i, d_j) = (alpha[i] - old_i, alpha[j] - old_j);
            for t in 0..n {
                grad[t] += y[t] * (y[i] * k[t * n + i] * d_i + y[j] * k[t * n + j] * d_j);
            }
        }
        // rho: the mean of y·G over free vectors, else the middle of the feasible interval.
        let (mut upper, mut lower) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut free, mut free_sum) = (0usize, 0.0);
        for t in 0..n {
            let yg = y[t] * grad[t];
            if alpha[t] >= c {
                if y[t] < 0.0 { upper = upper.min(yg) } else { lower = lower.max(yg) }
            } else if alpha[t] <= 0.0 {
                if y[t] > 0.0 { upper = upper.min(yg) } else { lower = lower.max(yg) }
            } else {
                free += 1;
                free_sum += yg;
            }
        }
        let rho = if free > 0 { free_sum / free as f64 } else { (upper + lower) / 2.0 };
        let (support, coef) =
            (0..n).filter(|t| alpha[*t] > 0.0).map(|t| (data.points[t], alpha[t] * y[t])).unzip();
        Self { support, coef, rho, gamma }
    }

    /// The signed decision value f(x).
    pub fn decision(&self, x: [f64; 2]) -> f64 {
        self.support.iter().zip(&self.coef).map(|(s, c)| c * rbf(self.gamma, *s, x)).sum::<f64>() - self.rho
    }

    pub fn predict(&self, x: [f64; 2]) -> bool {
        self.decision(x) > 0.0
    }

    pub fn support_vectors(&self) -> usize {
        self.support.len()
    }

    /// Fraction of `data` classified correctly.
    pub fn accuracy(&self, data: &Dataset) -> f64 {
        if data.is_empty() {
            return 0.0;
        }
        let correct = data.points.iter().zip(&data.labels).filter(|(p, l)| self.predict(**p) == **l).count();
        correct as f64 / data.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mixture::{Component, Mixture};
    use l2s_core::SeedTree;

    fn config() -> SvmConfig {
        SvmConfig { c: 1.0, gamma: 1.0, tolerance: 1e-3 }
    }

    fn blob(x: f64, y: f64, std: f64) -> Component {
        Component { mean: (x, y), std, weight: 1.0 }
    }

    #[test]
    fn separates_two_blobs() {
        let m = Mixture {
            classes: vec![vec![blob(-2.0, 0.0, 0.5)], vec![blob(2.0, 0.0, 0.5)]],
            class_balance: 0.5,
        };
        let svm = Svm::train(&m.sample(200, &mut SeedTree::new(1).rng()), &config());
        assert!(svm.accuracy(&m.sample(1000, &mut SeedTree::new(2).rng())) > 0.99);
        assert!(svm.support_vectors() < 60, "{} support vectors", svm.support_vectors());
    }

    #[test]
    fn learns_a_non_linear_xor_boundary() {
        let m = Mixture {
            classes: vec![
                vec![blob(-1.5, 1.5, 0.5), blob(1.5, -1.5, 0.5)],
                vec![blob(1.5, 1.5, 0.5), blob(-1.5, -1.5, 0.5)],
            ],
            class_balance: 0.5,
        };
        let svm = Svm::train(&m.sample(300, &mut SeedTree::new(3).rng()), &config());
        let acc = svm.accuracy(&m.sample(2000, &mut SeedTree::new(4).rng()));
        assert!(acc > 0.97, "accuracy {acc}");
    }

    #[test]
    fn satisfies_the_kkt_conditions() {
        let m = Mixture {
            classes: vec![vec![blob(-0.5, 0.0, 1.0)], vec![blob(0.5, 0.0, 1.0)]],
            class_balance: 0.5,
        };
        let data = m.sample(150, &mut SeedTree::new(5).rng());
        let cfg = config();
        let svm = Svm::train(&data, &cfg);
        // Margin support vectors (0 < α < C) sit on |f| = 1; the others satisfy y·f >= 1.
        let mut on_margin = 0;
        for (p, l) in data.points.iter().zip(&data.labels) {
            let yf = if *l { 1.0 } else { -1.0 } * svm.decision(*p);
            let idx = svm.support.iter().position(|s| s == p);
            match idx.map(|i| svm.coef[i].abs()) {
                None => assert!(yf >= 1.0 - 0.01, "non-SV inside the margin: {yf}"),
                Some(a) if a < cfg.c - 1e-9 => {
                    on_margin += 1;
                    assert!((yf - 1.0).abs() < 0.01, "free SV off the margin: {yf}");
                }
                Some(_) => assert!(yf <= 1.0 + 0.01, "bounded SV outside the margin: {yf}"),
            }
        }
        assert!(on_margin > 0);
        let balance: f64 = svm.coef.iter().sum();
        assert!(balance.abs() < 1e-9, "Σ α_i y_i = {balance}");
    }

    #[test]
    fn one_class_predicts_that_class() {
        let data = Dataset { points: vec![[0.0, 0.0], [1.0, 1.0]], labels: vec![true, true] };
        let svm = Svm::train(&data, &config());
        assert!(svm.predict([5.0, 5.0]));
    }
}
