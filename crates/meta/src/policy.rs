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

/// Where one dimension's parameters sit in ω.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Factor {
    /// ω[at] is the mean, ω[at + 1] the log standard deviation (normalised units).
    Gaussian { at: usize, low: f64, high: f64 },
    /// ω[at..at + n] are the logits of the n choices.
    Softmax { at: usize, n: usize },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    space: ParamSpace,
    /// One factor per dimension of `space`, in order.
    factors: Vec<Factor>,
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

fn entropy_of(probs: &[f64]) -> f64 {
    -probs.iter().filter(|p| **p > 0.0).map(|p| p * p.ln()).sum::<f64>()
}

impl Policy {
    /// A policy at its initial ω: means per `config.init_mean` (drawn with `rng` when
    /// random), standard deviations `config.init_std`, uniform categorical choices.
    pub fn new(space: ParamSpace, config: &PolicyConfig, rng: &mut impl Rng) -> Self {
        let mut omega = Vec::new();
        let mut factors = Vec::with_capacity(space.len());
        for d in space.dims() {
            match d {
                Dim::Continuous { low, high, .. } => {
                    factors.push(Factor::Gaussian { at: omega.len(), low: *low, high: *high });
                    let mean = match config.init_mean {
                        InitMean::Centre => 0.5,
                        InitMean::Uniform { low, high } => rng.random_range(low..=high),
                    };
                    omega.extend([mean, config.init_std.ln()]);
                }
                Dim::Categorical { choices, .. } => {
                    factors.push(Factor::Softmax { at: omega.len(), n: choices.len() });
                    omega.extend(std::iter::repeat_n(0.0, choices.len()));
                }
            }
        }
        Self { space, factors, omega, learn_std: config.learn_std, min_log_std: config.min_std.ln() }
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

    fn probs(&self, at: usize, n: usize) -> Vec<f64> {
        softmax(&self.omega[at..at + n])
    }

    /// Draws ψ ~ π_ω.
    pub fn sample(&self, rng: &mut impl Rng) -> PolicySample {
        let mut values = Vec::with_capacity(self.factors.len());
        let mut latent = Vec::new();
        for factor in &self.factors {
            match *factor {
                Factor::Gaussian { at, low, high } => {
                    let normal: f64 = StandardNormal.sample(rng);
                    let z = self.omega[at] + self.omega[at + 1].exp() * normal;
                    latent.push(z);
                    values.push(ParamValue::Continuous(low + z.clamp(0.0, 1.0) * (high - low)));
                }
                Factor::Softmax { at, n } => {
                    let u: f64 = rng.random();
                    let mut acc = 0.0;
                    let pick = self
                        .probs(at, n)
                        .iter()
                        .position(|p| {
                            acc += p;
                            u < acc
                        })
                        .unwrap_or(n - 1);
                    values.push(ParamValue::Categorical(pick));
                }
            }
        }
        PolicySample { values: ParamValues(values), latent }
    }

    /// The most likely ψ: each mean clamped into its bounds, each most probable choice.
    pub fn mode(&self) -> ParamValues {
        let values = self.factors.iter().map(|factor| match *factor {
            Factor::Gaussian { at, low, high } => {
                ParamValue::Continuous(low + self.omega[at].clamp(0.0, 1.0) * (high - low))
            }
            Factor::Softmax { at, n } => {
                let logits = &self.omega[at..at + n];
                ParamValue::Categorical((0..n).fold(0, |b, i| if logits[i] > logits[b] { i } else { b }))
            }
        });
        ParamValues(values.collect())
    }

    /// The probabilities of each categorical dimension's choices, in the order of the space.
    pub fn choice_probabilities(&self) -> Vec<(String, Vec<f64>)> {
        self.space
            .dims()
            .iter()
            .zip(&self.factors)
            .filter_map(|(d, factor)| match *factor {
                Factor::Softmax { at, n } => Some((d.name().to_string(), self.probs(at, n))),
                Factor::Gaussian { .. } => None,
            })
            .collect()
    }

    /// Each factor with its draw in `sample`: the unclamped latent for a Gaussian, the
    /// choice for a softmax. None if the sample does not belong to this policy's space.
    fn draws(&self, sample: &PolicySample) -> Option<Vec<(Factor, f64, usize)>> {
        let mut latent = sample.latent.iter();
        self.factors
            .iter()
            .zip(&sample.values.0)
            .map(|(factor, value)| match (factor, value) {
                (Factor::Gaussian { .. }, _) => latent.next().map(|z| (*factor, *z, 0)),
                (Factor::Softmax { .. }, ParamValue::Categorical(c)) => Some((*factor, 0.0, *c)),
                (Factor::Softmax { .. }, ParamValue::Continuous(_)) => None,
            })
            .collect()
    }

    /// log π_ω(ψ), with the Gaussian densities taken at the unclamped draws.
    pub fn log_prob(&self, sample: &PolicySample) -> f64 {
        let Some(draws) = self.draws(sample) else { return f64::NAN };
        draws
            .into_iter()
            .map(|(factor, z, choice)| match factor {
                Factor::Gaussian { at, .. } => {
                    let (mean, log_std) = (self.omega[at], self.omega[at + 1]);
                    let u = (z - mean) / log_std.exp();
                    -0.5 * u * u - log_std - 0.5 * (2.0 * std::f64::consts::PI).ln()
                }
                Factor::Softmax { at, n } => self.probs(at, n).get(choice).copied().unwrap_or(0.0).ln(),
            })
            .sum()
    }

    /// ∇_ω log π_ω(ψ), exactly. Entries of the log-stds are zero when they are not learned.
    pub fn grad_log_prob(&self, sample: &PolicySample) -> Vec<f64> {
        let mut grad = vec![0.0; self.omega.len()];
        for (factor, z, choice) in self.draws(sample).unwrap_or_default() {
            match factor {
                Factor::Gaussian { at, .. } => {
                    let (mean, log_std) = (self.omega[at], self.omega[at + 1]);
                    let var = (2.0 * log_std).exp();
                    grad[at] = (z - mean) / var;
                    if self.learn_std {
                        grad[at + 1] = (z - mean) * (z - mean) / var - 1.0;
                    }
                }
                Factor::Softmax { at, n } => {
                    for (j, p) in self.probs(at, n).into_iter().enumerate() {
                        grad[at + j] = if j == choice { 1.0 - p } else { -p };
                    }
                }
            }
        }
        grad
    }

    /// The entropy of π_ω (a sum over the factors).
    pub fn entropy(&self) -> f64 {
        self.factors
            .iter()
            .map(|factor| match *factor {
                Factor::Gaussian { at, .. } => {
                    0.5 * (2.0 * std::f64::consts::PI * std::f64::consts::E).ln() + self.omega[at + 1]
                }
                Factor::Softmax { at, n } => entropy_of(&self.probs(at, n)),
            })
            .sum()
    }

    /// ∇_ω of [`Self::entropy`].
    pub fn grad_entropy(&self) -> Vec<f64> {
        let mut grad = vec![0.0; self.omega.len()];
        for factor in &self.factors {
            match *factor {
                Factor::Gaussian { at, .. } => {
                    if self.learn_std {
                        grad[at + 1] = 1.0;
                    }
                }
                Factor::Softmax { at, n } => {
                    let probs = self.probs(at, n);
                    let entropy = entropy_of(&probs);
                    for (j, p) in probs.into_iter().enumerate() {
                        grad[at + j] = if p > 0.0 { -p * (p.ln() + entropy) } else { 0.0 };
                    }
                }
            }
        }
        grad
    }

    /// Keeps ω where the policy is well defined: log-stds above the floor, means inside
    /// the bounds, logits centred and bounded.
    pub fn project(&mut self) {
        for factor in &self.factors {
            match *factor {
                Factor::Gaussian { at, .. } => {
                    self.omega[at] = self.omega[at].clamp(MEAN_RANGE.0, MEAN_RANGE.1);
                    self.omega[at + 1] = self.omega[at + 1].clamp(self.min_log_std, 0.0);
                }
                Factor::Softmax { at, n } => {
                    let block = &mut self.omega[at..at + n];
                    let mean = block.iter().sum::<f64>() / n as f64;
                    block.iter_mut().for_each(|l| *l = (*l - mean).clamp(-LOGIT_LIMIT, LOGIT_LIMIT));
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
