//! REINFORCE with an exponential-moving-average baseline (Algorithm 1's update).

use serde::{Deserialize, Serialize};

use crate::config::MetaConfig;
use crate::optim::{Adam, clip_norm};
use crate::policy::{Policy, PolicySample};

/// What one update did, for the records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateStats {
    /// The baseline b the advantages were taken against.
    pub baseline: f64,
    /// A_k = R_k − b (before any normalisation).
    pub advantages: Vec<f64>,
    /// L2 norm of the policy gradient before clipping.
    pub grad_norm: f64,
}

/// The learner's state that a checkpoint must hold besides ω.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnerState {
    pub omega: Vec<f64>,
    pub adam: Adam,
    pub baseline: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Reinforce {
    pub policy: Policy,
    adam: Adam,
    /// None until the first rewards arrive; then their mean starts the average.
    baseline: Option<f64>,
    baseline_decay: f64,
    grad_clip: f64,
    entropy_bonus: f64,
    normalise_advantages: bool,
}

impl Reinforce {
    pub fn new(policy: Policy, config: &MetaConfig) -> Self {
        let adam = Adam::new(policy.omega().len(), config.learning_rate);
        Self {
            policy,
            adam,
            baseline: None,
            baseline_decay: config.baseline_decay,
            grad_clip: config.grad_clip,
            entropy_bonus: config.entropy_bonus,
            normalise_advantages: config.normalise_advantages,
        }
    }

    pub fn state(&self) -> LearnerState {
        LearnerState { omega: self.policy.omega().to_vec(), adam: self.adam.clone(), baseline: self.baseline }
    }

    pub fn restore(&mut self, state: LearnerState) -> Result<(), String> {
        self.policy.set_omega(state.omega)?;
        self.adam = state.adam;
        self.baseline = state.baseline;
        Ok(())
    }

    /// ω ← ω + η·Adam((1/K) Σ_k ∇_ω log π_ω(ψ_k)·A_k + λ∇H), then b is updated.
    pub fn update(&mut self, samples: &[PolicySample], rewards: &[f64]) -> UpdateStats {
        assert_eq!(samples.len(), rewards.len(), "one reward per sample");
        let k = rewards.len().max(1) as f64;
        if rewards.iter().any(|r| !r.is_finite()) {
            // Never fold a non-finite reward into ω or the baseline; the run reports it.
            tracing::warn!("policy update skipped: a reward was not finite");
            let baseline = self.baseline.unwrap_or(f64::NAN);
            return UpdateStats { baseline, advantages: vec![f64::NAN; rewards.len()], grad_norm: 0.0 };
        }
        let mean_reward = rewards.iter().sum::<f64>() / k;
        let baseline = self.baseline.unwrap_or(mean_reward);
        let advantages: Vec<f64> = rewards.iter().map(|r| r - baseline).collect();
        let scale = if self.normalise_advantages {
            let var = advantages.iter().map(|a| a * a).sum::<f64>() / k;
            1.0 / (var.sqrt() + 1e-8)
        } else {
            1.0
        };
        let mut grad = vec![0.0; self.policy.omega().len()];
        for (sample, advantage) in samples.iter().zip(&advantages) {
            for (g, d) in grad.iter_mut().zip(self.policy.grad_log_prob(sample)) {
                *g += d * advantage * scale / k;
            }
        }
        if self.entropy_bonus > 0.0 {
            for (g, d) in grad.iter_mut().zip(self.policy.grad_entropy()) {
                *g += self.entropy_bonus * d;
            }
        }
        let grad_norm = clip_norm(&mut grad, self.grad_clip);
        let mut omega = self.policy.omega().to_vec();
        self.adam.ascend(&mut omega, &grad);
        if self.policy.set_omega(omega).is_err() {
            tracing::warn!("policy update skipped: the gradient was not finite");
        }
        self.baseline = Some(self.baseline_decay * baseline + (1.0 - self.baseline_decay) * mean_reward);
        UpdateStats { baseline, advantages, grad_norm }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{InitMean, PolicyConfig};
    use l2s_core::{Dim, ParamSpace, SeedTree};

    fn config(learn_std: bool) -> MetaConfig {
        MetaConfig {
            iterations: 300,
            samples_per_iteration: 16,
            learning_rate: 0.03,
            baseline_decay: 0.8,
            grad_clip: 10.0,
            entropy_bonus: 0.0,
            normalise_advantages: false,
            threads: 1,
            method: crate::config::Method::Reinforce,
            policy: PolicyConfig { init_std: 0.05, learn_std, min_std: 0.02, init_mean: InitMean::Centre },
        }
    }

    /// R(x) = −(x − 2.5)² on x ∈ [−5, 5]: the optimum is at normalised 0.75.
    #[test]
    fn policy_moves_to_the_optimum_of_a_quadratic_reward() {
        for learn_std in [false, true] {
            let cfg = config(learn_std);
            let space = ParamSpace::new(vec![Dim::continuous("x", -5.0, 5.0)]).expect("valid");
            let seeds = SeedTree::new(11);
            let policy = Policy::new(space, &cfg.policy, &mut seeds.rng());
            let mut learner = Reinforce::new(policy, &cfg);
            for it in 0..cfg.iterations {
                let mut rng = seeds.index(it as u64).rng();
                let samples: Vec<_> =
                    (0..cfg.samples_per_iteration).map(|_| learner.policy.sample(&mut rng)).collect();
                let rewards: Vec<f64> = samples
                    .iter()
                    .map(|s| {
                        let x = s.values.continuous(0).expect("continuous");
                        -(x - 2.5) * (x - 2.5)
                    })
                    .collect();
                learner.update(&samples, &rewards);
            }
            let x = learner.policy.mode().continuous(0).expect("continuous");
            // Within 2 % of the range of the optimum, from 25 % away.
            assert!((x - 2.5).abs() < 0.2, "learn_std={learn_std}: mode {x}");
        }
    }

    /// A categorical reward: choice 2 pays 1, the rest 0.
    #[test]
    fn policy_prefers_the_rewarded_choice() {
        let cfg = config(false);
        let space = ParamSpace::new(vec![Dim::categorical("w", ["a", "b", "c"])]).expect("valid");
        let seeds = SeedTree::new(5);
        let mut learner = Reinforce::new(Policy::new(space, &cfg.policy, &mut seeds.rng()), &cfg);
        for it in 0..100 {
            let mut rng = seeds.index(it).rng();
            let samples: Vec<_> = (0..16).map(|_| learner.policy.sample(&mut rng)).collect();
            let rewards: Vec<f64> =
                samples.iter().map(|s| f64::from(u8::from(s.values.categorical(0) == Some(2)))).collect();
            learner.update(&samples, &rewards);
        }
        let probs = &learner.policy.choice_probabilities()[0].1;
        assert!(probs[2] > 0.9, "{probs:?}");
    }

    #[test]
    fn non_finite_rewards_do_not_poison_the_policy() {
        let cfg = config(true);
        let space = ParamSpace::new(vec![Dim::continuous("x", 0.0, 1.0)]).expect("valid");
        let mut learner = Reinforce::new(Policy::new(space, &cfg.policy, &mut SeedTree::new(1).rng()), &cfg);
        let mut rng = SeedTree::new(2).rng();
        let samples: Vec<_> = (0..4).map(|_| learner.policy.sample(&mut rng)).collect();
        let before = learner.policy.omega().to_vec();
        learner.update(&samples, &[1.0, f64::NAN, 0.0, 1.0]);
        assert_eq!(learner.policy.omega(), before.as_slice());
    }
}
