//! The final comparison, repeated over several seeds: the learned ψ* of the configured
//! search method (and of any further methods the study compares) against random ψ, random
//! search with the same budget of main-task trainings, and the target's own parameters (the
//! upper bound), each scored on the test split only, at the full budget and at smaller ones.

mod seed;
mod summary;

use std::path::{Path, PathBuf};
use std::time::Instant;

use l2s_core::SeedTree;
use l2s_core::config::{InvalidField, Validate, check_count};
use serde::{Deserialize, Serialize};

use crate::config::{MetaConfig, Method};
use crate::env::{BoxError, Environment};
use crate::error::MetaError;
use crate::executor::{Executor, ExecutorKind, absolute};
use crate::progress::Progress;
use crate::records::{create_dir, write_atomic};
use crate::run::{MetaOutcome, train_policy};
use seed::{Search, SeedAt, SeedResult, evaluate_seed, smaller_budgets};
pub use summary::{BudgetScore, CurveSummary, MethodSummary, MetricSummary, StudySummary};
use summary::{Labels, summarise};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    /// Independent repetitions of the whole study; the table gives mean ± std over them.
    pub seeds: usize,
    /// Main-task trainings per method in the final test, each on a fresh dataset draw
    /// (for random ψ, each on a fresh ψ as well); their mean is the seed's score.
    pub final_trainings: usize,
    /// Further search methods, each run with the same budget and scored like the main one.
    #[serde(default)]
    pub compare: Vec<Method>,
    /// Smaller budgets (main-task trainings, multiples of `samples_per_iteration`) at which
    /// every search's ψ* so far is tested too: the test score against trainings.
    #[serde(default)]
    pub test_budgets: Vec<usize>,
    /// Trainings per test at a smaller budget (default: `final_trainings`).
    #[serde(default)]
    pub budget_trainings: Option<usize>,
}

impl StudyConfig {
    pub fn budget_trainings(&self) -> usize {
        self.budget_trainings.unwrap_or(self.final_trainings)
    }

    /// These settings without the seed count, for a run's fingerprint: every seed's results
    /// depend on the master seed and its index only, so `--resume --seeds N` may extend a
    /// finished study with more seeds (or summarise fewer) and keep the ones already run.
    pub fn without_seed_count(&self) -> Self {
        Self { seeds: 0, ..self.clone() }
    }

    /// The checks that need the meta settings too: every compared method differs from the
    /// main one and from each other, and every budget fits the iterations.
    pub fn validate_with(&self, meta: &MetaConfig) -> Result<(), InvalidField> {
        let mut keys = vec![meta.method.key()];
        for (i, m) in self.compare.iter().enumerate() {
            if keys.contains(&m.key()) {
                return Err(InvalidField::new(
                    format!("compare[{i}]"),
                    format!(
                        "{} is already searched (the main method is `meta.method`); list each method once",
                        m.label()
                    ),
                ));
            }
            keys.push(m.key());
            m.validate().map_err(|e| e.within(&format!("compare[{i}]")))?;
        }
        let k = meta.samples_per_iteration;
        let full = meta.iterations * k;
        for (i, &b) in self.test_budgets.iter().enumerate() {
            if b == 0 || b % k != 0 || b > full {
                return Err(InvalidField::new(
                    format!("test_budgets[{i}]"),
                    format!(
                        "{b} must be a multiple of samples_per_iteration ({k}) from {k} to the full budget {full}"
                    ),
                ));
            }
        }
        if let Some(n) = self.budget_trainings {
            check_count("budget_trainings", n, 1, 1000)?;
        }
        let cma = std::iter::once(&meta.method).chain(&self.compare).any(|m| matches!(m, Method::CmaEs(_)));
        if cma && k < 2 {
            return Err(InvalidField::new(
                "compare",
                "CMA-ES needs at least 2 samples per iteration (its population); raise meta.samples_per_iteration",
            ));
        }
        Ok(())
    }
}

impl Validate for StudyConfig {
    fn validate(&self) -> Result<(), InvalidField> {
        check_count("seeds", self.seeds, 1, 1000)?;
        check_count("final_trainings", self.final_trainings, 1, 1000)
    }
}

/// What the command line adds to an experiment's config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// Replaces the config's `meta.method` (`--method`).
    #[serde(default)]
    pub method: Option<Method>,
    /// Replaces the config's `study.compare` where given (`--compare`).
    #[serde(default)]
    pub compare: Option<Vec<Method>>,
    /// Replaces the config's `study.test_budgets` where given (`--test-budgets`).
    #[serde(default)]
    pub test_budgets: Option<Vec<usize>>,
    /// Replaces the config's `study.budget_trainings` where given (`--budget-trainings`).
    #[serde(default)]
    pub budget_trainings: Option<usize>,
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

    /// Applies `--seeds`, `--method`, `--compare`, `--test-budgets` and `--budget-trainings` to the config's
    /// settings, then checks them together; seeds outside the config's bound (1 to 1000) are
    /// refused.
    pub fn apply(&self, meta: &mut MetaConfig, study: &mut StudyConfig) -> Result<(), MetaError> {
        match self.seeds {
            Some(seeds) if !(1..=1000).contains(&seeds) => return Err(MetaError::Seeds(seeds)),
            Some(seeds) => study.seeds = seeds,
            None => {}
        }
        if let Some(method) = &self.method {
            meta.method = method.clone();
        }
        if let Some(compare) = &self.compare {
            study.compare = compare.clone();
        }
        if let Some(budgets) = &self.test_budgets {
            study.test_budgets = budgets.clone();
        }
        if let Some(n) = self.budget_trainings {
            study.budget_trainings = Some(n);
        }
        study.validate_with(meta).map_err(|e| MetaError::Study(e.within("study")))
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
        progress.phase(format!("learning ψ ({})", meta.method.label()));
        let start = Instant::now();
        let outcome = train_policy(&env, executor, s, meta, seeds.child("meta"), &dir, resume, progress)?;
        let learn_s = start.elapsed().as_secs_f64();
        // The compared methods search with the same data seeds, so they differ only in ψ.
        let mut compared = Vec::with_capacity(study.compare.len());
        for method in &study.compare {
            progress.phase(format!("learning ψ ({})", method.label()));
            let start = Instant::now();
            let config = MetaConfig { method: method.clone(), ..meta.clone() };
            let run_dir = dir.join(method.key());
            let run =
                train_policy(&env, executor, s, &config, seeds.child("meta"), &run_dir, resume, progress)?;
            compared.push((method.key(), run, start.elapsed().as_secs_f64()));
        }
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
                let compared_searches = study.compare.len() * meta.iterations * meta.samples_per_iteration;
                progress.restore((trainings_after_learning(meta, study) - compared_searches) as u64);
                r
            }
            None => {
                let at = SeedAt {
                    executor,
                    dir: &dir,
                    study_seed: s,
                    seeds,
                    budgets: smaller_budgets(meta, study),
                    budget_trainings: study.budget_trainings(),
                };
                let main = Search { key: meta.method.key(), outcome: &outcome, wall_s: learn_s };
                let others: Vec<Search<'_>> = compared
                    .iter()
                    .map(|(key, outcome, wall_s)| Search { key, outcome, wall_s: *wall_s })
                    .collect();
                let r = evaluate_seed(&env, &at, &main, &others, meta, study, progress)?;
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

    let labels = Labels { target: target_label, main: meta.method.clone(), compared: study.compare.clone() };
    let summary = summarise(&results, space.as_ref(), &labels, metric, master_seed, meta, study);
    Ok((summary, runs))
}

/// Trainings of one seed after the main method's search: the compared searches, random
/// search, the final tests and the tests at smaller budgets.
fn trainings_after_learning(meta: &MetaConfig, study: &StudyConfig) -> usize {
    let budget = meta.iterations * meta.samples_per_iteration;
    let searches = 1 + study.compare.len();
    study.compare.len() * budget
        + budget
        + (3 + searches) * study.final_trainings
        + (searches + 1) * smaller_budgets(meta, study).len() * study.budget_trainings()
}

/// Total main-task trainings a study runs, for the progress bar.
pub fn study_trainings(meta: &MetaConfig, study: &StudyConfig) -> u64 {
    (study.seeds * (meta.iterations * meta.samples_per_iteration + trainings_after_learning(meta, study)))
        as u64
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
            ..StudyRunOptions::default()
        }
    }

    #[test]
    fn command_line_target_and_seeds_override_the_config() {
        let study = || StudyConfig {
            seeds: 5,
            final_trainings: 3,
            compare: vec![],
            test_budgets: vec![],
            budget_trainings: None,
        };
        assert_eq!(
            options(None, None).target_path(Path::new("targets/t.ron")),
            Path::new("configs/targets/t.ron")
        );
        assert_eq!(
            options(Some("other.ron"), None).target_path(Path::new("targets/t.ron")),
            Path::new("other.ron")
        );
        let mut s = study();
        options(None, Some(2)).apply(&mut meta(), &mut s).expect("2 seeds");
        assert_eq!(s.seeds, 2);
        let mut s = study();
        options(None, None).apply(&mut meta(), &mut s).expect("unchanged");
        assert_eq!(s.seeds, 5);
        assert!(matches!(options(None, Some(0)).apply(&mut meta(), &mut study()), Err(MetaError::Seeds(0))));
        let err = options(None, Some(1001)).apply(&mut meta(), &mut study()).expect_err("above the bound");
        assert!(err.to_string().contains("1 to 1000"), "{err}");
    }

    fn meta() -> MetaConfig {
        MetaConfig {
            iterations: 4,
            samples_per_iteration: 8,
            learning_rate: 0.1,
            baseline_decay: 0.7,
            grad_clip: 50.0,
            entropy_bonus: 0.0,
            normalise_advantages: true,
            threads: 1,
            method: Method::Reinforce,
            policy: crate::config::PolicyConfig {
                init_std: 0.25,
                learn_std: true,
                min_std: 0.08,
                init_mean: crate::config::InitMean::Centre,
            },
        }
    }

    #[test]
    fn methods_and_budgets_from_the_command_line_are_checked_with_the_meta_settings() {
        let study = || StudyConfig {
            seeds: 5,
            final_trainings: 3,
            compare: vec![],
            test_budgets: vec![],
            budget_trainings: None,
        };
        let tpe = Method::Tpe(crate::config::TpeConfig::default());
        let cma = Method::CmaEs(crate::config::CmaEsConfig::default());
        let mut opts = options(None, None);
        opts.method = Some(tpe.clone());
        opts.compare = Some(vec![Method::Reinforce, cma.clone()]);
        opts.test_budgets = Some(vec![16, 8]);
        let (mut m, mut s) = (meta(), study());
        opts.apply(&mut m, &mut s).expect("valid");
        assert_eq!((m.method.key(), s.compare.len(), s.test_budgets.clone()), ("tpe", 2, vec![16, 8]));

        opts.compare = Some(vec![cma.clone(), tpe.clone()]);
        let err = opts.apply(&mut meta(), &mut study()).expect_err("TPE twice");
        assert!(err.to_string().contains("study.compare[1]") && err.to_string().contains("TPE"), "{err}");

        opts.compare = Some(vec![cma]);
        opts.test_budgets = Some(vec![12]);
        let err = opts.apply(&mut meta(), &mut study()).expect_err("not a multiple of K");
        assert!(
            err.to_string().contains("study.test_budgets[0]") && err.to_string().contains("multiple of"),
            "{err}"
        );
        opts.test_budgets = Some(vec![40]);
        let err = opts.apply(&mut meta(), &mut study()).expect_err("beyond the budget");
        assert!(err.to_string().contains("full budget 32"), "{err}");
    }
}
