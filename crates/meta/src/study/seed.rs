//! One study seed's evaluations after the searches: each method's ψ* on the test split at
//! the full budget and at the study's smaller budgets, random ψ, random search with the same
//! budget, and the target; and each search's best-so-far validation reward per training.

use std::path::Path;
use std::time::Instant;

use l2s_core::{ParamValues, SeedTree};
use serde::{Deserialize, Serialize};

use super::StudyConfig;
use crate::config::MetaConfig;
use crate::env::{Environment, Evaluation, Split};
use crate::error::MetaError;
use crate::executor::{Batch, Executor, Job};
use crate::policy::uniform_sample;
use crate::progress::Progress;
use crate::run::MetaOutcome;

/// Key of random search in curves and budget scores.
pub(super) const RANDOM_SEARCH: &str = "random_search";

/// What one seed produced; cached in `seed-N/result.json` so a resumed study skips it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct SeedResult {
    pub(super) learned: Score,
    pub(super) random: Score,
    pub(super) random_search: Score,
    pub(super) target: Score,
    pub(super) psi_star: ParamValues,
    pub(super) search_best: ParamValues,
    /// The study's further methods, in the config's order.
    #[serde(default)]
    pub(super) compared: Vec<Compared>,
    /// Per search (method key, or [`RANDOM_SEARCH`]): the best validation reward after each
    /// training.
    #[serde(default)]
    pub(super) curves: Vec<(String, Vec<f64>)>,
    /// Per search: the test score of its ψ* after each tested budget (the last is the full one).
    #[serde(default)]
    pub(super) at_budgets: Vec<(String, Vec<(usize, f64)>)>,
}

impl SeedResult {
    pub(super) fn curve(&self, key: &str) -> Option<&[f64]> {
        self.curves.iter().find(|(k, _)| k == key).map(|(_, c)| c.as_slice())
    }

    pub(super) fn budgets(&self, key: &str) -> &[(usize, f64)] {
        self.at_budgets.iter().find(|(k, _)| k == key).map_or(&[], |(_, b)| b.as_slice())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Compared {
    pub(super) key: String,
    pub(super) score: Score,
    pub(super) psi: ParamValues,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Score {
    pub(super) mean: f64,
    pub(super) wall_s: f64,
    /// Each further metric's mean over the final trainings.
    #[serde(default)]
    pub(super) metrics: Vec<(String, f64)>,
}

impl Score {
    /// The mean reward and metrics of `evals` (none empty).
    fn of(evals: &[Evaluation], wall_s: f64) -> Self {
        let n = evals.len().max(1) as f64;
        let mut metrics: Vec<(String, f64)> = Vec::new();
        for e in evals {
            for (name, value) in &e.metrics {
                match metrics.iter_mut().find(|(n, _)| n == name) {
                    Some((_, sum)) => *sum += value,
                    None => metrics.push((name.clone(), *value)),
                }
            }
        }
        metrics.iter_mut().for_each(|(_, sum)| *sum /= n);
        Self { mean: evals.iter().map(|e| e.reward).sum::<f64>() / n, wall_s, metrics }
    }
}

/// A finished search of one method on this seed.
pub(super) struct Search<'a> {
    pub(super) key: &'a str,
    pub(super) outcome: &'a MetaOutcome,
    /// Seconds its search took.
    pub(super) wall_s: f64,
}

/// Where one study seed's final evaluations run and their files go.
pub(super) struct SeedAt<'a> {
    pub(super) executor: &'a Executor,
    pub(super) dir: &'a Path,
    pub(super) study_seed: usize,
    pub(super) seeds: SeedTree,
    /// The smaller budgets tested ([`smaller_budgets`]) and the trainings of each test.
    pub(super) budgets: Vec<usize>,
    pub(super) budget_trainings: usize,
}

impl SeedAt<'_> {
    fn evaluate<E: Environment>(
        &self,
        env: &E,
        name: &str,
        what: &str,
        jobs: &[Job],
        progress: &Progress,
    ) -> Result<Vec<Evaluation>, MetaError> {
        let batch = Batch {
            dir: self.dir.to_path_buf(),
            study_seed: self.study_seed,
            name: name.to_string(),
            what: what.to_string(),
        };
        self.executor.evaluate(env, &batch, jobs, progress)
    }

    /// `count` trainings on data from `psi`, scored on the test split; seeds from `label`.
    fn test<E: Environment>(
        &self,
        env: &E,
        psi: &ParamValues,
        label: &str,
        what: &str,
        count: usize,
        progress: &Progress,
    ) -> Result<Vec<Evaluation>, MetaError> {
        let jobs: Vec<Job> = (0..count as u64)
            .map(|j| Job::Sample {
                psi: psi.clone(),
                seed: self.seeds.child(label).index(j).seed(),
                split: Split::Test,
            })
            .collect();
        self.evaluate(env, label, what, &jobs, progress)
    }

    /// The test scores of a search's ψ* (`psi_at(budget)`) at the smaller budgets, then
    /// `full` at the full budget.
    fn scores_at_budgets<E: Environment>(
        &self,
        env: &E,
        key: &str,
        psi_at: &dyn Fn(usize) -> ParamValues,
        full: (usize, f64),
        progress: &Progress,
    ) -> Result<(String, Vec<(usize, f64)>), MetaError> {
        let mut scores = Vec::with_capacity(self.budgets.len() + 1);
        for &b in &self.budgets {
            let what = format!("{key} ψ* after {b} trainings");
            let label = format!("budget-{key}-{b}");
            let evals = self.test(env, &psi_at(b), &label, &what, self.budget_trainings, progress)?;
            scores.push((b, Score::of(&evals, 0.0).mean));
        }
        scores.push(full);
        Ok((key.to_string(), scores))
    }
}

/// The smaller budgets the study tests, ascending, without the full one.
pub(super) fn smaller_budgets(meta: &MetaConfig, study: &StudyConfig) -> Vec<usize> {
    let full = meta.iterations * meta.samples_per_iteration;
    let mut budgets: Vec<usize> = study.test_budgets.iter().copied().filter(|b| *b < full).collect();
    budgets.sort_unstable();
    budgets.dedup();
    budgets
}

fn running_max(rewards: impl Iterator<Item = f64>) -> Vec<f64> {
    rewards
        .scan(f64::NEG_INFINITY, |best, r| {
            *best = best.max(r);
            Some(*best)
        })
        .collect()
}

pub(super) fn evaluate_seed<E: Environment>(
    env: &E,
    at: &SeedAt<'_>,
    main: &Search<'_>,
    compared: &[Search<'_>],
    meta: &MetaConfig,
    study: &StudyConfig,
    progress: &Progress,
) -> Result<SeedResult, MetaError> {
    let seeds = at.seeds;
    let space = env.space();
    let k = meta.samples_per_iteration.max(1);
    let full = meta.iterations * k;
    let phase = |what: &str| progress.phase(what.to_string());
    let mut curves = Vec::new();
    let mut at_budgets = Vec::new();

    // Each method: its final ψ*, its ψ* at the smaller budgets, its curve.
    let mut finals = Vec::with_capacity(1 + compared.len());
    for (i, search) in std::iter::once(main).chain(compared).enumerate() {
        phase(&format!("testing {} ψ*", search.key));
        let start = Instant::now();
        // The main method keeps the labels the study had before methods were compared.
        let label = if i == 0 { "final-learned".to_string() } else { format!("final-{}", search.key) };
        let evals = at.test(
            env,
            &search.outcome.psi_star,
            &label,
            &format!("{} ψ*", search.key),
            study.final_trainings,
            progress,
        )?;
        let score = Score::of(&evals, search.wall_s + start.elapsed().as_secs_f64());
        let psi_at = |b: usize| search.outcome.psi_after(b / k).clone();
        at_budgets.push(at.scores_at_budgets(env, search.key, &psi_at, (full, score.mean), progress)?);
        let rewards = search.outcome.history.iter().flat_map(|h| h.samples.iter().map(|s| s.reward));
        curves.push((search.key.to_string(), running_max(rewards)));
        finals.push(score);
    }
    let mut finals = finals.into_iter();
    let learned = finals
        .next()
        .ok_or_else(|| MetaError::Environment { what: "the study".into(), source: "no search ran".into() })?;
    let compared: Vec<Compared> = compared
        .iter()
        .zip(finals)
        .map(|(search, score)| Compared {
            key: search.key.to_string(),
            score,
            psi: search.outcome.psi_star.clone(),
        })
        .collect();

    phase("random ψ");
    let start = Instant::now();
    let jobs: Vec<Job> = (0..study.final_trainings as u64)
        .map(|j| {
            let psi = uniform_sample(space, &mut seeds.child("random-psi").index(j).rng());
            Job::Sample { psi, seed: seeds.child("final-random").index(j).seed(), split: Split::Test }
        })
        .collect();
    let evals = at.evaluate(env, "final-random", "random ψ", &jobs, progress)?;
    let random = Score::of(&evals, start.elapsed().as_secs_f64());

    phase("random search");
    let start = Instant::now();
    let candidates: Vec<ParamValues> = (0..full as u64)
        .map(|n| uniform_sample(space, &mut seeds.child("search-psi").index(n).rng()))
        .collect();
    let mut rewards = Vec::with_capacity(full);
    for (c, chunk) in candidates.chunks(k).enumerate() {
        let jobs: Vec<Job> = chunk
            .iter()
            .enumerate()
            .map(|(i, psi)| {
                let n = (c * k + i) as u64;
                Job::Sample {
                    psi: psi.clone(),
                    seed: seeds.child("search-data").index(n).seed(),
                    split: Split::Validation,
                }
            })
            .collect();
        let evals =
            at.evaluate(env, &format!("search-{c}"), &format!("random search, batch {c}"), &jobs, progress)?;
        rewards.extend(evals.iter().map(|e| e.reward));
    }
    // The best of the first `b` candidates by validation reward (the earliest of equals).
    let best_of = |b: usize| -> ParamValues {
        let best = (0..b.min(rewards.len())).fold(None::<usize>, |best, i| match best {
            Some(j) if rewards[j] >= rewards[i] => Some(j),
            _ => Some(i),
        });
        best.map_or_else(|| main.outcome.psi_star.clone(), |i| candidates[i].clone())
    };
    let search_best = best_of(full);
    let evals = at.test(
        env,
        &search_best,
        "final-search",
        "random search's best ψ",
        study.final_trainings,
        progress,
    )?;
    let random_search = Score::of(&evals, start.elapsed().as_secs_f64());
    at_budgets.push(at.scores_at_budgets(
        env,
        RANDOM_SEARCH,
        &best_of,
        (full, random_search.mean),
        progress,
    )?);
    curves.push((RANDOM_SEARCH.to_string(), running_max(rewards.iter().copied())));

    let target_label = env.target_label();
    phase(&target_label);
    let start = Instant::now();
    let jobs: Vec<Job> = (0..study.final_trainings as u64)
        .map(|j| Job::Target { seed: seeds.child("final-target").index(j).seed() })
        .collect();
    let target_evals = at.evaluate(env, "final-target", &target_label, &jobs, progress)?;
    let target = Score::of(&target_evals, start.elapsed().as_secs_f64());
    Ok(SeedResult {
        learned,
        random,
        random_search,
        target,
        psi_star: main.outcome.psi_star.clone(),
        search_best,
        compared,
        curves,
        at_budgets,
    })
}
