//! The study's table: one row per method over seeds, the test score at each tested budget,
//! the trainings each search needed to come near the target, and the search curves.

use l2s_core::{ParamSpace, ParamValues};
use serde::{Deserialize, Serialize};

use super::StudyConfig;
use super::seed::{RANDOM_SEARCH, Score, SeedResult};
use crate::config::{MetaConfig, Method};

/// One row of the final table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodSummary {
    /// Stable key: `learned` (the config's method), `random`, `random_search`, `target`, and
    /// each compared method's key (`reinforce`, `cma_es`, `tpe`).
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
    /// For searches: the test score of ψ* after each tested budget, the full one last.
    #[serde(default)]
    pub at_budgets: Vec<BudgetScore>,
    /// For searches, per seed: the fewest tested trainings after which ψ* scored at least
    /// 95 % of the way from random ψ's score to the target's (that seed's); `None` where no
    /// tested budget did.
    #[serde(default)]
    pub trainings_to_95: Vec<Option<usize>>,
    /// For searches: the fewest tested trainings whose mean test score reached random
    /// search's mean at the full budget.
    #[serde(default)]
    pub reaches_random_search_at: Option<usize>,
}

/// A search's test score after `trainings` main-task trainings, over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetScore {
    pub trainings: usize,
    pub mean: f64,
    pub std: f64,
}

/// A search's best validation reward after each training (index 0: after the first), mean
/// and sample standard deviation over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurveSummary {
    pub method: String,
    pub label: String,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
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
    /// Every search's best-so-far validation reward against trainings.
    #[serde(default)]
    pub curves: Vec<CurveSummary>,
}

impl StudySummary {
    pub fn method(&self, key: &str) -> Option<&MethodSummary> {
        self.methods.iter().find(|m| m.method == key)
    }
}

/// Names the summary needs besides the results.
pub(super) struct Labels {
    pub(super) target: String,
    pub(super) main: Method,
    pub(super) compared: Vec<Method>,
}

/// How each method's ψ* is chosen, for its row's label.
fn learned_label(method: &Method) -> String {
    match method {
        Method::Reinforce => "learned ψ* (REINFORCE, policy mode)".into(),
        Method::CmaEs(_) => "learned ψ* (CMA-ES, mean)".into(),
        Method::Tpe(_) => "learned ψ* (TPE, best by validation)".into(),
    }
}

pub(super) fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = if values.len() > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (mean, std)
}

pub(super) fn summarise(
    results: &[SeedResult],
    space: Option<&ParamSpace>,
    labels: &Labels,
    metric: String,
    master_seed: u64,
    meta: &MetaConfig,
    study: &StudyConfig,
) -> StudySummary {
    let budget = meta.iterations * meta.samples_per_iteration;
    let row = |method: &str, label: &str, search: usize, pick: &dyn Fn(&SeedResult) -> &Score| {
        let per_seed: Vec<f64> = results.iter().map(|r| pick(r).mean).collect();
        let (mean, std) = mean_std(&per_seed);
        let wall_s = results.iter().map(|r| pick(r).wall_s).sum::<f64>() / results.len().max(1) as f64;
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
            at_budgets: Vec::new(),
            trainings_to_95: Vec::new(),
            reaches_random_search_at: None,
        }
    };
    let random_search_mean = mean_std(&results.iter().map(|r| r.random_search.mean).collect::<Vec<_>>()).0;
    // Fills a search row's budget columns from the results under `key`.
    let with_budgets = |mut row: MethodSummary, key: &str| {
        let tested: Vec<usize> =
            results.first().map(|r| r.budgets(key).iter().map(|(b, _)| *b).collect()).unwrap_or_default();
        row.at_budgets = tested
            .iter()
            .enumerate()
            .map(|(i, &trainings)| {
                let scores: Vec<f64> =
                    results.iter().filter_map(|r| r.budgets(key).get(i).map(|(_, s)| *s)).collect();
                let (mean, std) = mean_std(&scores);
                BudgetScore { trainings, mean, std }
            })
            .collect();
        row.trainings_to_95 = results
            .iter()
            .map(|r| {
                let goal = r.random.mean + 0.95 * (r.target.mean - r.random.mean);
                r.budgets(key).iter().find(|(_, s)| *s >= goal).map(|(b, _)| *b)
            })
            .collect();
        row.reaches_random_search_at =
            row.at_budgets.iter().find(|b| b.mean >= random_search_mean).map(|b| b.trainings);
        row
    };
    let mut methods = vec![
        row("random", "random ψ (uniform in the bounds)", 0, &|r| &r.random),
        with_budgets(
            row(RANDOM_SEARCH, "random search (best of the budget by validation)", budget, &|r| {
                &r.random_search
            }),
            RANDOM_SEARCH,
        ),
        with_budgets(
            row("learned", &learned_label(&labels.main), budget, &|r| &r.learned),
            labels.main.key(),
        ),
    ];
    for (i, method) in labels.compared.iter().enumerate() {
        let pick: Box<dyn Fn(&SeedResult) -> &Score> = Box::new(move |r| &r.compared[i].score);
        let complete = results.iter().all(|r| r.compared.get(i).is_some_and(|c| c.key == method.key()));
        if complete {
            methods
                .push(with_budgets(row(method.key(), &learned_label(method), budget, &*pick), method.key()));
        }
    }
    methods.push(row("target", &labels.target, 0, &|r| &r.target));

    let mut curves = Vec::new();
    let searches = std::iter::once(&labels.main).chain(&labels.compared).map(|m| (m.key(), m.label()));
    for (key, label) in searches.chain([(RANDOM_SEARCH, "random search")]) {
        let per_seed: Vec<&[f64]> = results.iter().filter_map(|r| r.curve(key)).collect();
        let len = per_seed.iter().map(|c| c.len()).min().unwrap_or(0);
        if per_seed.len() != results.len() || len == 0 {
            continue;
        }
        let (mean, std) =
            (0..len).map(|t| mean_std(&per_seed.iter().map(|c| c[t]).collect::<Vec<_>>())).unzip();
        curves.push(CurveSummary { method: key.into(), label: label.into(), mean, std });
    }
    let describe = |pick: &dyn Fn(&SeedResult) -> &ParamValues| -> Vec<Vec<(String, String)>> {
        results.iter().map(|r| space.map(|sp| sp.describe(pick(r))).unwrap_or_default()).collect()
    };
    StudySummary {
        metric,
        master_seed,
        seeds: results.len(),
        methods,
        learned_psi: describe(&|r| &r.psi_star),
        random_search_psi: describe(&|r| &r.search_best),
        curves,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CmaEsConfig, InitMean, PolicyConfig};
    use crate::study::seed::Compared;
    use l2s_core::{ParamValue, ParamValues};

    fn score(mean: f64) -> Score {
        Score { mean, wall_s: 0.0, metrics: vec![] }
    }

    /// One seed: random 0.5, target 0.9 (95 % of the way: 0.88), random search 0.8 at 32.
    fn seed(learned: [f64; 3], cma: [f64; 3]) -> SeedResult {
        let psi = ParamValues(vec![ParamValue::Continuous(0.0)]);
        let budgets = |s: [f64; 3]| vec![(8, s[0]), (16, s[1]), (32, s[2])];
        SeedResult {
            learned: score(learned[2]),
            random: score(0.5),
            random_search: score(0.8),
            target: score(0.9),
            psi_star: psi.clone(),
            search_best: psi.clone(),
            compared: vec![Compared { key: "cma_es".into(), score: score(cma[2]), psi }],
            curves: vec![
                ("reinforce".into(), vec![0.1, 0.2]),
                ("cma_es".into(), vec![0.3, 0.5]),
                (RANDOM_SEARCH.into(), vec![0.2, 0.4]),
            ],
            at_budgets: vec![
                ("reinforce".into(), budgets(learned)),
                ("cma_es".into(), budgets(cma)),
                (RANDOM_SEARCH.into(), budgets([0.6, 0.7, 0.8])),
            ],
        }
    }

    #[test]
    fn trainings_to_the_target_and_to_random_search_come_from_the_tested_budgets() {
        let results = [seed([0.6, 0.85, 0.89], [0.82, 0.9, 0.9]), seed([0.6, 0.7, 0.75], [0.79, 0.85, 0.86])];
        let meta = MetaConfig {
            iterations: 4,
            samples_per_iteration: 8,
            learning_rate: 0.1,
            baseline_decay: 0.7,
            grad_clip: 1.0,
            entropy_bonus: 0.0,
            normalise_advantages: true,
            threads: 1,
            method: Method::Reinforce,
            policy: PolicyConfig {
                init_std: 0.2,
                learn_std: true,
                min_std: 0.1,
                init_mean: InitMean::Centre,
            },
        };
        let study = StudyConfig {
            seeds: 2,
            final_trainings: 4,
            compare: vec![],
            test_budgets: vec![8, 16],
            budget_trainings: None,
        };
        let labels = Labels {
            target: "target".into(),
            main: Method::Reinforce,
            compared: vec![Method::CmaEs(CmaEsConfig::default())],
        };
        let summary = summarise(&results, None, &labels, "score".into(), 1, &meta, &study);
        let row = |key: &str| summary.method(key).expect("row").clone();
        // REINFORCE: 0.89 ≥ 0.88 at 32 on seed 0 only.
        assert_eq!(row("learned").trainings_to_95, vec![Some(32), None]);
        // Its mean reaches random search's final 0.8 first at 32 (0.82), not at 16 (0.775).
        assert_eq!(row("learned").reaches_random_search_at, Some(32));
        // CMA-ES: 0.9 at 16 on seed 0; seed 1 never reaches 0.88. Its mean at 8 is 0.805.
        assert_eq!(row("cma_es").trainings_to_95, vec![Some(16), None]);
        assert_eq!(row("cma_es").reaches_random_search_at, Some(8));
        assert_eq!(row("cma_es").at_budgets.iter().map(|b| b.trainings).collect::<Vec<_>>(), vec![8, 16, 32]);
        assert!((row("cma_es").at_budgets[1].mean - 0.875).abs() < 1e-12);
        assert!(row("random").at_budgets.is_empty() && row("target").trainings_to_95.is_empty());
        let keys: Vec<&str> = summary.curves.iter().map(|c| c.method.as_str()).collect();
        assert_eq!(keys, ["reinforce", "cma_es", RANDOM_SEARCH]);
        assert_eq!(summary.curves[1].mean, vec![0.3, 0.5]);
    }
}
