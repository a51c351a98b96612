//! The search methods over ψ behind one ask/tell interface: each iteration asks for K ψ,
//! the executor evaluates them, and `tell` folds their validation rewards in. The loop in
//! [`crate::run`] and the budget accounting are the same for every method.

mod cma_es;
mod eigen;
mod mixed;
pub mod reinforce;
mod tpe;

use l2s_core::{Dim, ParamSpace, ParamValues, SeedTree};
use rand::Rng;
use serde::{Deserialize, Serialize};

pub use cma_es::{Cma, CmaEs, CmaEsState, CmaState};
use mixed::MixedSpace;
pub use reinforce::{LearnerState, Reinforce, UpdateStats};
pub use tpe::{Observation, Tpe};

use crate::config::{MetaConfig, Method};
use crate::policy::{Policy, PolicySample};

/// What a checkpoint keeps of a search, by method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SearchState {
    Reinforce(LearnerState),
    CmaEs(CmaEsState),
    Tpe(Vec<Observation>),
}

/// One search method's state between iterations.
#[derive(Debug, Clone)]
pub enum Searcher {
    /// With the samples of the last `ask`, whose latents the update needs.
    Reinforce(Reinforce, Vec<PolicySample>),
    CmaEs(CmaEs),
    Tpe(Tpe),
}

impl Searcher {
    /// The method of `config` at its start; `seeds` draws any random start.
    pub fn new(space: &ParamSpace, config: &MetaConfig, seeds: SeedTree) -> Self {
        let mixed = MixedSpace::new(space);
        match &config.method {
            Method::Reinforce => {
                let policy = Policy::new(space.clone(), &config.policy, &mut seeds.rng());
                Searcher::Reinforce(Reinforce::new(policy, config), Vec::new())
            }
            Method::CmaEs(c) => {
                Searcher::CmaEs(CmaEs::new(mixed, c, &config.policy, config.samples_per_iteration, seeds))
            }
            Method::Tpe(t) => Searcher::Tpe(Tpe::new(mixed, t)),
        }
    }

    /// `k` ψ to evaluate next.
    pub fn ask(&mut self, k: usize, rng: &mut impl Rng) -> Vec<ParamValues> {
        match self {
            Searcher::Reinforce(learner, pending) => {
                *pending = (0..k).map(|_| learner.policy.sample(rng)).collect();
                pending.iter().map(|s| s.values.clone()).collect()
            }
            Searcher::CmaEs(search) => search.ask(rng),
            Searcher::Tpe(search) => search.ask(k, rng),
        }
    }

    /// Folds in the rewards of the last `ask`'s ψ, in their order. Only REINFORCE has a
    /// baseline, advantages and a gradient; the other methods report zeros for them.
    pub fn tell(&mut self, rewards: &[f64]) -> UpdateStats {
        let quiet = || UpdateStats { baseline: 0.0, advantages: vec![0.0; rewards.len()], grad_norm: 0.0 };
        match self {
            Searcher::Reinforce(learner, pending) => {
                let samples = std::mem::take(pending);
                learner.update(&samples, rewards)
            }
            Searcher::CmaEs(search) => {
                search.tell(rewards);
                quiet()
            }
            Searcher::Tpe(search) => {
                search.tell(rewards);
                quiet()
            }
        }
    }

    /// The method's current ψ*: REINFORCE's policy mode, CMA-ES's mean, TPE's best evaluation.
    pub fn recommendation(&self) -> ParamValues {
        match self {
            Searcher::Reinforce(learner, _) => learner.policy.mode(),
            Searcher::CmaEs(search) => search.recommendation(),
            Searcher::Tpe(search) => search.recommendation(),
        }
    }

    pub fn state(&self) -> SearchState {
        match self {
            Searcher::Reinforce(learner, _) => SearchState::Reinforce(learner.state()),
            Searcher::CmaEs(search) => SearchState::CmaEs(search.state()),
            Searcher::Tpe(search) => SearchState::Tpe(search.state()),
        }
    }

    pub fn restore(&mut self, state: SearchState) -> Result<(), String> {
        match (self, state) {
            (Searcher::Reinforce(learner, _), SearchState::Reinforce(s)) => learner.restore(s),
            (Searcher::CmaEs(search), SearchState::CmaEs(s)) => search.restore(s),
            (Searcher::Tpe(search), SearchState::Tpe(s)) => search.restore(s),
            _ => Err("it was written by another search method".into()),
        }
    }

    /// The method's state as numbers for `iterations.csv` (REINFORCE: ω).
    pub fn record(&self) -> Vec<f64> {
        match self {
            Searcher::Reinforce(learner, _) => learner.policy.omega().to_vec(),
            Searcher::CmaEs(search) => search.record(),
            Searcher::Tpe(_) => Vec::new(),
        }
    }

    /// The policy, for REINFORCE only (its choice probabilities go into the reports).
    pub fn policy(&self) -> Option<&Policy> {
        match self {
            Searcher::Reinforce(learner, _) => Some(&learner.policy),
            _ => None,
        }
    }
}

/// Names of [`Searcher::record`]'s entries for `method` on `space`.
pub fn record_names(space: &ParamSpace, config: &MetaConfig) -> Vec<String> {
    match &config.method {
        Method::Reinforce => Searcher::new(space, config, SeedTree::new(0))
            .policy()
            .map(Policy::omega_names)
            .unwrap_or_default(),
        Method::CmaEs(_) => {
            let mut names: Vec<String> = space
                .dims()
                .iter()
                .filter_map(|d| match d {
                    Dim::Continuous { name, .. } => Some(format!("mean[{name}]")),
                    Dim::Categorical { .. } => None,
                })
                .collect();
            names.push("sigma".into());
            for d in space.dims() {
                if let Dim::Categorical { name, choices } = d {
                    names.extend(choices.iter().map(|c| format!("p[{name}={c}]")));
                }
            }
            names
        }
        Method::Tpe(_) => Vec::new(),
    }
}
