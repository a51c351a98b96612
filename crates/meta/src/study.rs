//! The final comparison, repeated over several seeds: the learned ψ* (the policy's mode)
//! against random ψ, random search with the same budget of main-task trainings, and the
//! target's own parameters (the upper bound), each scored on the test split only.

use std::path::{Path, PathBuf};
use std::time::Instant;

use l2s_core::config::{InvalidField, Validate, check_count};
use l2s_core::{ParamValues, SeedTree};
use serde::{Deserialize, Serialize};

use crate::config::MetaConfig;
use crate::env::{BoxError, Environment, Evaluation, Split};
use crate::error::MetaError;
use crate::executor::{Batch, Executor, ExecutorKind, Job, absolute};
use crate::policy::uniform_sample;
use crate::progress::Progress;
use crate::records::{create_dir, write_atomic};
use crate::run::{MetaOutcome, train_policy};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    /// Independent repetitions of the whole study; the table gives mean ± std over them.
    pub seeds: usize,
    /// Main-task trainings per method in the final test, each on a fresh dataset draw
    /// (for random ψ, each on a fresh ψ as well); their mean is the seed's score.
    pub final_trainings: usize,
}

impl Validate for StudyConfig {
    fn validate(&self) -> Result<(), InvalidField> {
        check_count("seeds", self.seeds, 1, 1000)?;
        check_count("final_trainings", self.final_trainings, 1, 1000)
    }
}

/// What the command line adds to an experiment's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyRunOptions {
    /// The config file (target paths resolve beside it).
    pub config_path: PathBuf,
    /// Replaces the config's target file.
    pub target: Option<PathBuf>,
    /// A target dataset directory replacing the config's target (`--target-data`).
    pub target_data: Option<PathBuf>,
    /// Output directory.
    pub out: PathBuf,
    /// Replaces the config's number of seeds.
    pub seeds: Option<usize>,
    /// Continue the run in `out` where it stopped.
    pub resume: bool,
    /// Replaces the config's executor (`--executor`).
    #[serde(default)]
    pub executor: Option<ExecutorKind>,
}

impl StudyRunOptions {
    /// The target file: `--target` if given, else the config's, taken relative to the config.
    pub fn target_path(&self, configured: &Path) -> PathBuf {
        self.target.clone().unwrap_or_else(|| l2s_core::config::resolve_beside(&self.config_path, configured))
    }

    /// The same options with every path absolute, for workers started in other directories.
    pub fn absolute(&self) -> Self {
        Self {
            config_path: absolute(&self.config_path),
            target: self.target.as_deref().map(absolute),
            target_data: self.target_data.as_deref().map(absolute),
            out: absolute(&self.out),
            ..self.clone()
        }
    }

    /// Applies `--seeds` to `study`; outside the config's bound (1 to 1000) it is refused.
    pub fn apply_seeds(&self, study: &mut StudyConfig) -> Result<(), MetaError> {
        match self.seeds {
            Some(seeds) if !(1..=1000).contains(&seeds) => Err(MetaError::Seeds(seeds)),
            Some(seeds) => {
                study.seeds = seeds;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// One row of the final table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodSummary {
    /// Stable key: `learned`, `random`, `random_search`, `target`.
    pub method: String,
    pub label: String,
    /// Mean and sample standard deviation of the per-seed test scores.
    pub mean: f64,
    pub std: f64,
    pub per_seed: Vec<f64>,
    /// Main-task trainings spent searching for ψ, per seed.
    pub search_trainings: usize,
    /// Main-task trainings spent on the final test, per seed.
    pub final_trainings: usize,
    /// Wall time per seed, mean over seeds.
    pub wall_s: f64,
    /// The environment's further metrics (e.g. mIoU, per-class IoU): mean and sample
    /// standard deviation over seeds of each seed's mean over its final trainings.
    #[serde(default)]
    pub metrics: Vec<MetricSummary>,
}

/// One further metric of a method, over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    pub name: String,
    pub mean: f64,
    pub std: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudySummary {
    pub metric: String,
    pub master_seed: u64,
    pub seeds: usize,
    pub methods: Vec<MethodSummary>,
    /// ψ* of each seed, described by name.
    pub learned_psi: Vec<Vec<(String, String)>>,
    /// The best ψ random search found, per seed.
    pub random_search_psi: Vec<Vec<(String, String)>>,
}

impl StudySummary {
    pub fn method(&self, key: &str) -> Option<&MethodSummary> {
        self.methods.iter().find(|m| m.method == key)
    }
}

/// What one seed produced; cached in `seed-N/result.json` so a resumed study skips it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SeedResult {
    learned: Score,
    random: Score,
    random_search: Score,
    target: Score,
    psi_star: ParamValues,
    search_best: ParamValues,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Score {
    mean: f64,
    wall_s: f64,
    /// Each further metric's mean over the final trainings.
    #[serde(default)]
    metrics: Vec<(String, f64)>,
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

/// One seed's learned policy, for reports.
#[derive(Debug, Clone)]
pub struct SeedRun {
    pub seeds: SeedTree,
    pub outcome: MetaOutcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Manifest {
    master_seed: u64,
    fingerprint: String,
}

const MANIFEST_FILE: &str = "study.json";

/// The seed tree of study seed `s`: everything that seed draws derives from it.
fn seed_tree(master_seed: u64, s: usize) -> SeedTree {
    SeedTree::new(master_seed).child("seed").index(s as u64)
}

/// The seed tree the environment of study seed `s` is built from: the driver and every
/// worker derive it the same way.
pub fn env_seeds(master_seed: u64, s: usize) -> SeedTree {
    seed_tree(master_seed, s).child("env")
}

/// Runs the study into `out` (`seed-N/` per seed, `study.json`). `make_env` builds the
/// environment of one seed (its validation and test sets) from that seed's tree
/// ([`env_seeds`]); `executor` runs the evaluations; `fingerprint` identifies the full
/// experiment config so `resume` refuses another one.
#[allow(clippy::too_many_arguments)]
pub fn run_study<E, F>(
    make_env: F,
    executor: &Executor,
    meta: &MetaConfig,
    study: &StudyConfig,
    master_seed: u64,
    fingerprint: &str,
    out: &Path,
    resume: bool,
    progress: &Progress,
) -> Result<(StudySummary, Vec<SeedRun>), MetaError>
where
    E: Environment,
    F: Fn(SeedTree) -> Result<E, BoxError>,
{
    create_dir(out)?;
    let manifest_path = out.join(MANIFEST_FILE);
    let manifest = Manifest { master_seed, fingerprint: fingerprint.to_string() };
    if manifest_path.exists() {
        if !resume {
            return Err(MetaError::RunExists { path: out.to_path_buf() });
        }
        let text = std::fs::read_to_string(&manifest_path)
            .map_err(|e| MetaError::BadCheckpoint { path: manifest_path.clone(), message: e.to_string() })?;
        let found: Manifest = serde_json::from_str(&text)
            .map_err(|e| MetaError::BadCheckpoint { path: manifest_path.clone(), message: e.to_string() })?;
        if found != manifest {
            return Err(MetaError::BadCheckpoint {
                path: manifest_path,
                message: "it was started with another config, target or seed\n  hint: resume with the same command line, or choose another --out".into(),
            });
        }
    } else {
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| MetaError::Write {
            path: manifest_path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&manifest_path, &json)?;
    }

    let mut results = Vec::with_capacity(study.seeds);
    let mut runs = Vec::with_capacity(study.seeds);
    let mut space = None;
    let mut target_label = String::from(crate::env::PSI_REAL_LABEL);
    let mut metric = String::new();
    for s in 0..study.seeds {
        let seeds = seed_tree(master_seed, s);
        let env = make_env(env_seeds(master_seed, s))
            .map_err(|source| MetaError::EnvironmentSetup { seed: s, source })?;
        metric = env.metric_name().to_string();
        let dir = out.join(format!("seed-{s}"));
        progress.context(format!("seed {}/{} ·", s + 1, study.seeds));
        progress.phase("learning ψ".into());
        let start = Instant::now();
        let outcome = train_policy(&env, executor, s, meta, seeds.child("meta"), &dir, resume, progress)?;
        let learn_s = start.elapsed().as_secs_f64();
        let result_path = dir.join("result.json");
        let cached = if resume && result_path.exists() {
            std::fs::read_to_string(&result_path)
                .ok()
                .and_then(|t| serde_json::from_str::<SeedResult>(&t).ok())
        } else {
            None
        };
        let result = match cached {
            Some(r) => {
                progress.restore(trainings_after_learning(meta, study) as u64);
                r
            }
            None => {
                let at = SeedAt { executor, dir: &dir, study_seed: s, seeds };
                let r = evaluate_seed(&env, &at, &outcome, meta, study, learn_s, progress)?;
                let json = serde_json::to_vec_pretty(&r).map_err(|e| MetaError::Write {
                    path: result_path.clone(),
                    source: std::io::Error::other(e),
                })?;
                write_atomic(&result_path, &json)?;
                r
            }
        };
        progress.note(&format!(
            "seed {}/{}: {metric} on test — learned {:.4}, random {:.4}, random search {:.4}, target {:.4}",
            s + 1,
            study.seeds,
            result.learned.mean,
            result.random.mean,
            result.random_search.mean,
            result.target.mean
        ));
        space = Some(env.space().clone());
        target_label = env.target_label();
        results.push(result);
        runs.push(SeedRun { seeds, outcome });
    }

    let budget = meta.iterations * meta.samples_per_iteration;
    let row = |method: &str, label: &str, search: usize, pick: &dyn Fn(&SeedResult) -> &Score| {
        let per_seed: Vec<f64> = results.iter().map(|r| pick(r).mean).collect();
        let (mean, std) = mean_std(&per_seed);
        let wall_s = results.iter().map(|r| pick(r).wall_s).sum::<f64>() / results.len() as f64;
        let names: Vec<String> = results
            .first()
            .map_or_else(Vec::new, |r| pick(r).metrics.iter().map(|(n, _)| n.clone()).collect());
        let metrics = names
            .into_iter()
            .map(|name| {
                let values: Vec<f64> = results
                    .iter()
                    .filter_map(|r| pick(r).metrics.iter().find(|(n, _)| *n == name).map(|(_, v)| *v))
                    .collect();
                let (mean, std) = mean_std(&values);
                MetricSummary { name, mean, std }
            })
            .collect();
        MethodSummary {
            method: method.into(),
            label: label.into(),
            mean,
            std,
            per_seed,
            search_trainings: search,
            final_trainings: study.final_trainings,
            wall_s,
            metrics,
        }
    };
    let methods = vec![
        row("random", "random ψ (uniform in the bounds)", 0, &|r| &r.random),
        row("random_search", "random search (best of the budget by validation)", budget, &|r| {
            &r.random_search
        }),
        row("learned", "learned ψ* (policy mode)", budget, &|r| &r.learned),
        row("target", &target_label, 0, &|r| &r.target),
    ];
    let describe = |pick: &dyn Fn(&SeedResult) -> &ParamValues| -> Vec<Vec<(String, String)>> {
        results.iter().map(|r| space.as_ref().map(|sp| sp.describe(pick(r))).unwrap_or_default()).collect()
    };
    let summary = StudySummary {
        metric,
        master_seed,
        seeds: study.seeds,
        methods,
        learned_psi: describe(&|r| &r.psi_star),
        random_search_psi: describe(&|r| &r.search_best),
    };
    Ok((summary, runs))
}

fn trainings_after_learning(meta: &MetaConfig, study: &StudyConfig) -> usize {
    meta.iterations * meta.samples_per_iteration + 4 * study.final_trainings
}

/// Total main-task trainings a study runs, for the progress bar.
pub fn study_trainings(meta: &MetaConfig, study: &StudyConfig) -> u64 {
    (study.seeds * (meta.iterations * meta.samples_per_iteration + trainings_after_learning(meta, study)))
        as u64
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = if values.len() > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (mean, std)
}

/// Where one study seed's final evaluations run and their files go.
struct SeedAt<'a> {
    executor: &'a Executor,
    dir: &'a Path,
    study_seed: usize,
    seeds: SeedTree,
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
}

fn evaluate_seed<E: Environment>(
    env: &E,
    at: &SeedAt<'_>,
    outcome: &MetaOutcome,
    meta: &MetaConfig,
    study: &StudyConfig,
    learn_s: f64,
    progress: &Progress,
) -> Result<SeedResult, MetaError> {
    let seeds = at.seeds;
    let space = env.space();
    let finals = study.final_trainings as u64;
    let sample = |psi: ParamValues, seed: u64, split: Split| Job::Sample { psi, seed, split };
    let test_on = |psi: &ParamValues,
                   label: &str,
                   what: &str,
                   start: Instant,
                   extra_s: f64|
     -> Result<Score, MetaError> {
        let jobs: Vec<Job> = (0..finals)
            .map(|j| sample(psi.clone(), seeds.child(label).index(j).seed(), Split::Test))
            .collect();
        let evals = at.evaluate(env, label, what, &jobs, progress)?;
        Ok(Score::of(&evals, extra_s + start.elapsed().as_secs_f64()))
    };
    let phase = |what: &str| progress.phase(what.to_string());

    phase("testing ψ*");
    let start = Instant::now();
    let psi_star = outcome.policy.mode();
    let learned = test_on(&psi_star, "final-learned", "learned ψ*", start, learn_s)?;

    phase("random ψ");
    let start = Instant::now();
    let jobs: Vec<Job> = (0..finals)
        .map(|j| {
            let psi = uniform_sample(space, &mut seeds.child("random-psi").index(j).rng());
            sample(psi, seeds.child("final-random").index(j).seed(), Split::Test)
        })
        .collect();
    let evals = at.evaluate(env, "final-random", "random ψ", &jobs, progress)?;
    let random = Score::of(&evals, start.elapsed().as_secs_f64());

    phase("random search");
    let start = Instant::now();
    let budget = (meta.iterations * meta.samples_per_iteration) as u64;
    let candidates: Vec<ParamValues> =
        (0..budget).map(|n| uniform_sample(space, &mut seeds.child("search-psi").index(n).rng())).collect();
    let mut best: Option<(f64, ParamValues)> = None;
    let chunk_size = meta.samples_per_iteration.max(1);
    for (c, chunk) in candidates.chunks(chunk_size).enumerate() {
        let jobs: Vec<Job> = chunk
            .iter()
            .enumerate()
            .map(|(i, psi)| {
                let n = (c * chunk_size + i) as u64;
                sample(psi.clone(), seeds.child("search-data").index(n).seed(), Split::Validation)
            })
            .collect();
        let evals =
            at.evaluate(env, &format!("search-{c}"), &format!("random search, batch {c}"), &jobs, progress)?;
        for (psi, e) in chunk.iter().zip(evals) {
            if best.as_ref().is_none_or(|(r, _)| e.reward > *r) {
                best = Some((e.reward, psi.clone()));
            }
        }
    }
    let search_best = best.map_or_else(|| outcome.policy.mode(), |(_, psi)| psi);
    let random_search = test_on(&search_best, "final-search", "random search's best ψ", start, 0.0)?;

    let target_label = env.target_label();
    phase(&target_label);
    let start = Instant::now();
    let jobs: Vec<Job> =
        (0..finals).map(|j| Job::Target { seed: seeds.child("final-target").index(j).seed() }).collect();
    let target_evals = at.evaluate(env, "final-target", &target_label, &jobs, progress)?;
    let target = Score::of(&target_evals, start.elapsed().as_secs_f64());
    Ok(SeedResult { learned, random, random_search, target, psi_star, search_best })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(target: Option<&str>, seeds: Option<usize>) -> StudyRunOptions {
        StudyRunOptions {
            config_path: PathBuf::from("configs/exp.ron"),
            target: target.map(PathBuf::from),
            target_data: None,
            out: PathBuf::from("runs/exp"),
            seeds,
            resume: false,
            executor: None,
        }
    }

    #[test]
    fn command_line_target_and_seeds_override_the_config() {
        let study = || StudyConfig { seeds: 5, final_trainings: 3 };
        assert_eq!(
            options(None, None).target_path(Path::new("targets/t.ron")),
            Path::new("configs/targets/t.ron")
        );
        assert_eq!(
            options(Some("other.ron"), None).target_path(Path::new("targets/t.ron")),
            Path::new("other.ron")
        );
        let mut s = study();
        options(None, Some(2)).apply_seeds(&mut s).expect("2 seeds");
        assert_eq!(s.seeds, 2);
        let mut s = study();
        options(None, None).apply_seeds(&mut s).expect("unchanged");
        assert_eq!(s.seeds, 5);
        assert!(matches!(options(None, Some(0)).apply_seeds(&mut study()), Err(MetaError::Seeds(0))));
        let err = options(None, Some(1001)).apply_seeds(&mut study()).expect_err("above the bound");
        assert!(err.to_string().contains("1 to 1000"), "{err}");
    }
}
