//! A factorised policy over a [`ParamSpace`]: one Gaussian per continuous dimension on the
//! normalised scale (bounds map to [0, 1]) and one softmax per categorical dimension, with
//! exact gradients of the log-probability (no autodiff needed).
//!
//! ω is one flat vector: for each continuous dimension `[mean, log_std]`, for each
//! categorical dimension its logits, in the order of the space.

use l2s_core::{Dim, ParamSpace, ParamValue, ParamValues};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::config::{InitMean, PolicyConfig};

/// Means stay inside the bounds: a mean beyond a bound would clamp most samples onto it,
/// where every reward is the same and the gradient carries no signal to come back.
const MEAN_RANGE: (f64, f64) = (0.0, 1.0);
/// Logits are kept in this range so no choice's probability underflows to exactly zero.
const LOGIT_LIMIT: f64 = 15.0;

/// One draw ψ ~ π_ω, with the unclamped normalised Gaussian draws its log-probability needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicySample {
    /// ψ itself, inside the bounds.
    pub values: ParamValues,
    /// For each continuous dimension (in order) the normalised draw before clamping.
    pub latent: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    space: ParamSpace,
    omega: Vec<f64>,
    learn_std: bool,
    min_log_std: f64,
}

fn softmax(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

impl Policy {
    /// A policy at its initial ω: means per `config.init_mean` (drawn with `rng` when
    /// random), standard deviations `config.init_std`, uniform categorical choices.
    pub fn new(space: ParamSpace, config: &PolicyConfig, rng: &mut impl Rng) -> Self {
        let mut omega = Vec::new();
        for d in space.dims() {
            match d {
                Dim::Continuous { .. } => {
                    let mean = match config.init_mean {
                        InitMean::Centre => 0.5,
                        InitMean::Uniform { low, high } => rng.random_range(low..=high),
                    };
                    omega.extend([mean, config.init_std.ln()]);
                }
                Dim::Categorical { choices, .. } => omega.extend(std::iter::repeat_n(0.0, choices.len())),
            }
        }
        Self { space, omega, learn_std: config.learn_std, min_log_std: config.min_std.ln() }
    }

    pub fn space(&self) -> &ParamSpace {
        &self.space
    }

    /// ω, the flat parameter vector.
    pub fn omega(&self) -> &[f64] {
        &self.omega
    }

    /// Replaces ω (e.g. from a checkpoint) and projects it back into its valid range.
    pub fn set_omega(&mut self, omega: Vec<f64>) -> Result<(), String> {
        if omega.len() != self.omega.len() {
            return Err(format!("ω has {} entries, this policy needs {}", omega.len(), self.omega.len()));
        }
        if omega.iter().any(|w| !w.is_finite()) {
            return Err("ω contains a non-finite value".into());
        }
        self.omega = omega;
        self.project();
        Ok(())
    }

    /// Names of ω's entries, for CSV headers: `mean[x]`, `log_std[x]`, `logit[w=fog]`.
    pub fn omega_names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.omega.len());
        for d in self.space.dims() {
            match d {
                Dim::Continuous { name, .. } => {
                    names.push(format!("mean[{name}]"));
                    names.push(format!("log_std[{name}]"));
                }
                Dim::Categorical { name, choices } => {
                    names.extend(choices.iter().map(|c| format!("logit[{name}={c}]")));
                }
            }
        }
        names
    }

    /// Draws ψ ~ π_ω.
    pub fn sample(&self, rng: &mut impl Rng) -> PolicySample {
        let mut values = Vec::with_capacity(self.space.len());
        let mut latent = Vec::new();
        let mut at = 0;
        for d in self.space.dims() {
            match d {
                Dim::Continuous { low, high, .. } => {
                    let (mean, log_std) = (self.omega[at], self.omega[at + 1]);
                    let normal: f64 = StandardNormal.sample(rng);
                    let z = mean + log_std.exp() * normal;
                    latent.push(z);
                    values.push(ParamValue::Continuous(low + z.clamp(0.0, 1.0) * (high - low)));
                    at += 2;
                }
                Dim::Categorical { choices, .. } => {
                    let probs = softmax(&self.omega[at..at + choices.len()]);
                    let u: f64 = rng.random();
                    let mut acc = 0.0;
                    let mut pick = probs.len() - 1;
                    for (i, p) in probs.iter().enumerate() {
                        acc += p;
                        if u < acc {
                            pick = i;
                            break;
                        }
                    }
                    values.push(ParamValue::Categorical(pick));
                    at += choices.len();
                }
            }
        }
        PolicySample { values: ParamValues(values), latent }
    }

    /// The most likely ψ: each mean clamped into its bounds, each most probable choice.
    pub fn mode(&self) -> ParamValues {
        let mut values = Vec::with_capacity(self.space.len());
        let mut at = 0;
        for d in self.space.dims() {
            match d {
                Dim::Continuous { low, high, .. } => {
                    values.push(ParamValue::Continuous(low + self.omega[at].clamp(0.0, 1.0) * (high - low)));
                    at += 2;
                }
                Dim::Categorical { choices, .. } => {
                    let logits = &self.omega[at..at + choices.len()];
                    let best = (0..logits.len()).fold(0, |b, i| if logits[i] > logits[b] { i } else { b });
                    values.push(ParamValue::Categorical(best));
                    at += choices.len();
                }
            }
        }
        ParamValues(values)
    }

    /// The probabilities of each categorical dimension's choices, in the order of the space.
    pub fn choice_probabilities(&self) -> Vec<(String, Vec<f64>)> {
        let mut out = Vec::new();
        let mut at = 0;
        for d in self.space.dims() {
            match d {
                Dim::Continuous { .. } => at += 2,
                Dim::Categorical { name, choices } => {
                    out.push((name.clone(), softmax(&self.omega[at..at + choices.len()])));
                    at += choices.len();
                }
            }
        }
        out
    }

    /// log π_ω(ψ), with the Gaussian densities taken at the unclamped draws.
    pub fn log_prob(&self, sample: &PolicySample) -> f64 {
        let mut total = 0.0;
        let mut at = 0;
        let mut latent = sample.latent.iter();
        for (d, v) in self.space.dims().iter().zip(&sample.values.0) {
            match (d, v) {
                (Dim::Continuous { .. }, _) => {
                    let z = latent.next().copied().unwrap_or(f64::NAN);
                    let (mean, log_std) = (self.omega[at], self.omega[at + 1]);
                    let u = (z - mean) / log_std.exp();
                    total += -0.5 * u * u - log_std - 0.5 * (2.0 * std::f64::consts::PI).ln();
                    at += 2;
                }
                (Dim::Categorical { choices, .. }, ParamValue::Categorical(c)) => {
                    let probs = softmax(&self.omega[at..at + choices.len()]);
                    total += probs.get(*c).copied().unwrap_or(0.0).ln();
                    at += choices.len();
                }
                (Dim::Categorical { .. }, ParamValue::Continuous(_)) => return f64::NAN,
            }
        }
        total
    }

    /// ∇_ω log π_ω(ψ), exactly. Entries of the log-stds are zero when they are not learned.
    pub fn grad_log_prob(&self, sample: &PolicySample) -> Vec<f64> {
        let mut grad = vec![0.0; self.omega.len()];
        let mut at = 0;
        let mut latent = sample.latent.iter();
        for (d, v) in self.space.dims().iter().zip(&sample.values.0) {
            match (d, v) {
                (Dim::Continuous { .. }, _) => {
                    let z = latent.next().copied().unwrap_or(f64::NAN);
                    let (mean, log_std) = (self.omega[at], self.omega[at + 1]);
                    let var = (2.0 * log_std).exp();
                    grad[at] = (z - mean) / var;
                    if self.learn_std {
                        grad[at + 1] = (z - mean) * (z - mean) / var - 1.0;
                    }
                    at += 2;
                }
                (Dim::Categorical { choices, .. }, ParamValue::Categorical(c)) => {
                    let probs = softmax(&self.omega[at..at + choices.len()]);
                    for (j, p) in probs.iter().enumerate() {
                        grad[at + j] = if j == *c { 1.0 - p } else { -p };
                    }
                    at += choices.len();
                }
                (Dim::Categorical { choices, .. }, ParamValue::Continuous(_)) => at += choices.len(),
            }
        }
        grad
    }

    /// The entropy of π_ω (a sum over the factors).
    pub fn entropy(&self) -> f64 {
        let mut total = 0.0;
        let mut at = 0;
        for d in self.space.dims() {
            match d {
                Dim::Continuous { .. } => {
                    total +=
                        0.5 * (2.0 * std::f64::consts::PI * std::f64::consts::E).ln() + self.omega[at + 1];
                    at += 2;
                }
                Dim::Categorical { choices, .. } => {
                    let probs = softmax(&self.omega[at..at + choices.len()]);
                    total -= probs.iter().filter(|p| **p > 0.0).map(|p| p * p.ln()).sum::<f64>();
                    at += choices.len();
                }
            }
        }
        total
    }

    /// ∇_ω of [`Self::entropy`].
    pub fn grad_entropy(&self) -> Vec<f64> {
        let mut grad = vec![0.0; self.omega.len()];
        let mut at = 0;
        for d in self.space.dims() {
            match d {
                Dim::Continuous { .. } => {
                    if self.learn_std {
                        grad[at + 1] = 1.0;
                    }
                    at += 2;
                }
                Dim::Categorical { choices, .. } => {
                    let probs = softmax(&self.omega[at..at + choices.len()]);
                    let entropy: f64 = -probs.iter().filter(|p| **p > 0.0).map(|p| p * p.ln()).sum::<f64>();
                    for (j, p) in probs.iter().enumerate() {
                        grad[at + j] = if *p > 0.0 { -p * (p.ln() + entropy) } else { 0.0 };
                    }
                    at += choices.len();
                }
            }
        }
        grad
    }

    /// Keeps ω where the policy is well defined: log-stds above the floor (and not
    /// learned ones fixed), means near the bounds, logits centred and bounded.
    pub fn project(&mut self) {
        let mut at = 0;
        for d in self.space.dims() {
            match d {
                Dim::Continuous { .. } => {
                    self.omega[at] = self.omega[at].clamp(MEAN_RANGE.0, MEAN_RANGE.1);
                    self.omega[at + 1] = self.omega[at + 1].clamp(self.min_log_std, 0.0);
                    at += 2;
                }
                Dim::Categorical { choices, .. } => {
                    let block = &mut self.omega[at..at + choices.len()];
                    let mean = block.iter().sum::<f64>() / block.len() as f64;
                    block.iter_mut().for_each(|l| *l = (*l - mean).clamp(-LOGIT_LIMIT, LOGIT_LIMIT));
                    at += choices.len();
                }
            }
        }
    }
}

/// ψ drawn uniformly from the bounds (continuous) and choices (categorical).
pub fn uniform_sample(space: &ParamSpace, rng: &mut impl Rng) -> ParamValues {
    ParamValues(
        space
            .dims()
            .iter()
            .map(|d| match d {
                Dim::Continuous { low, high, .. } => ParamValue::Continuous(rng.random_range(*low..=*high)),
                Dim::Categorical { choices, .. } => {
                    ParamValue::Categorical(rng.random_range(0..choices.len()))
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use l2s_core::SeedTree;

    fn policy(learn_std: bool) -> Policy {
        let space = ParamSpace::new(vec![
            Dim::continuous("a", -2.0, 2.0),
            Dim::categorical("w", ["clear", "fog", "rain", "snow"]),
            Dim::continuous("b", 0.0, 10.0),
        ])
        .expect("valid space");
        let config = PolicyConfig {
            init_std: 0.2,
            learn_std,
            min_std: 0.01,
            init_mean: InitMean::Uniform { low: 0.2, high: 0.8 },
        };
        let mut p = Policy::new(space, &config, &mut SeedTree::new(1).rng());
        // Give the logits some structure so the softmax gradient is not symmetric.
        let mut omega = p.omega().to_vec();
        omega[2..6].copy_from_slice(&[0.3, -0.4, 1.1, -1.0]);
        p.set_omega(omega).expect("same length");
        p
    }

    /// Central differences of `f` with respect to each entry of ω.
    fn numeric_gradient(p: &Policy, f: impl Fn(&Policy) -> f64) -> Vec<f64> {
        let h = 1e-6;
        (0..p.omega().len())
            .map(|i| {
                let mut plus = p.clone();
                plus.omega[i] += h;
                let mut minus = p.clone();
                minus.omega[i] -= h;
                (f(&plus) - f(&minus)) / (2.0 * h)
            })
            .collect()
    }

    #[test]
    fn log_prob_gradient_matches_finite_differences() {
        for learn_std in [true, false] {
            let p = policy(learn_std);
            let mut rng = SeedTree::new(2).rng();
            for _ in 0..20 {
                let s = p.sample(&mut rng);
                let numeric = numeric_gradient(&p, |q| q.log_prob(&s));
                for (i, (analytic, numeric)) in p.grad_log_prob(&s).into_iter().zip(numeric).enumerate() {
                    // ω[1] and ω[7] are the log-stds: fixed when they are not learned.
                    let expected = if !learn_std && (i == 1 || i == 7) { 0.0 } else { numeric };
                    assert!(
                        (analytic - expected).abs() < 1e-5 * (1.0 + expected.abs()),
                        "ω[{i}]: analytic {analytic} vs numeric {expected}"
                    );
                }
            }
        }
    }

    #[test]
    fn entropy_gradient_matches_finite_differences() {
        let p = policy(true);
        let numeric = numeric_gradient(&p, Policy::entropy);
        for (i, (analytic, numeric)) in p.grad_entropy().into_iter().zip(numeric).enumerate() {
            assert!((analytic - numeric).abs() < 1e-6, "ω[{i}]: {analytic} vs {numeric}");
        }
    }

    #[test]
    fn samples_stay_in_bounds_and_follow_the_logits() {
        let p = policy(true);
        let mut rng = SeedTree::new(3).rng();
        let mut counts = [0usize; 4];
        for _ in 0..20_000 {
            let s = p.sample(&mut rng);
            p.space().check(&s.values).expect("sample inside the space");
            counts[s.values.categorical(1).expect("categorical")] += 1;
        }
        let probs = &p.choice_probabilities()[0].1;
        for (c, pr) in counts.iter().zip(probs) {
            assert!((*c as f64 / 20_000.0 - pr).abs() < 0.015, "{counts:?} vs {probs:?}");
        }
    }

    #[test]
    fn projection_enforces_the_std_floor() {
        let mut p = policy(true);
        let mut omega = p.omega().to_vec();
        omega[1] = -50.0;
        p.set_omega(omega).expect("same length");
        assert!((p.omega()[1] - 0.01f64.ln()).abs() < 1e-12);
        assert!(p.set_omega(vec![0.0; 3]).is_err());
    }
}
