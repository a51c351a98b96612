//! The meta-training loop for one seed: sample K ψ from the policy, evaluate them in
//! parallel, update the policy; records and a checkpoint after every iteration, so that
//! `resume` continues a run killed at any point and ends exactly where an uninterrupted
//! run with the same seed would.

use std::path::Path;
use std::time::Instant;

use l2s_core::{ParamValues, SeedTree};

use crate::config::MetaConfig;
use crate::env::{Environment, Split};
use crate::executor::{Batch, Executor, Job};
use crate::policy::Policy;
use crate::progress::Progress;
use crate::search::{Searcher, record_names};

use crate::error::MetaError;
use crate::records::{
    CHECKPOINT_FILE, CHECKPOINT_FORMAT, Checkpoint, IterationRecord, SampleRecord, create_dir,
    load_checkpoint, write_atomic, write_records,
};

/// The search's result and the whole history of the run.
#[derive(Debug, Clone)]
pub struct MetaOutcome {
    /// The method's ψ* at the end (REINFORCE: the policy's mode).
    pub psi_star: ParamValues,
    /// REINFORCE's trained policy; `None` for the other methods.
    pub policy: Option<Policy>,
    pub history: Vec<IterationRecord>,
}

impl MetaOutcome {
    /// The method's ψ* after `iterations` iterations (each history record holds the ψ* its
    /// iteration started from).
    pub fn psi_after(&self, iterations: usize) -> &ParamValues {
        self.history.get(iterations).map_or(&self.psi_star, |h| &h.mode)
    }
}

/// Runs (or resumes) the search of `config.method` (Algorithm 1 for REINFORCE) on `env` for
/// `config.iterations` iterations, keeping the
/// records and the checkpoint in `dir`; `executor` runs each iteration's K evaluations
/// (for study seed `study_seed`).
#[allow(clippy::too_many_arguments)]
pub fn train_policy<E: Environment>(
    env: &E,
    executor: &Executor,
    study_seed: usize,
    config: &MetaConfig,
    seeds: SeedTree,
    dir: &Path,
    resume: bool,
    progress: &Progress,
) -> Result<MetaOutcome, MetaError> {
    create_dir(dir)?;
    let checkpoint_path = dir.join(CHECKPOINT_FILE);
    let mut learner = Searcher::new(env.space(), config, seeds.child("policy-init"));
    let state_names = record_names(env.space(), config);
    let mut history = Vec::new();
    if checkpoint_path.exists() {
        if !resume {
            return Err(MetaError::RunExists { path: dir.to_path_buf() });
        }
        let checkpoint = load_checkpoint(&checkpoint_path)?;
        let mismatch = |what: &str| MetaError::BadCheckpoint {
            path: checkpoint_path.clone(),
            message: format!(
                "it was written with a different {what}\n  hint: resume with the config and seed the run started with, or choose another --out"
            ),
        };
        if checkpoint.seed != seeds.seed() {
            return Err(mismatch("seed"));
        }
        if &checkpoint.config != config {
            return Err(mismatch("meta config"));
        }
        if &checkpoint.space != env.space() {
            return Err(mismatch("parameter space"));
        }
        learner
            .restore(checkpoint.learner)
            .map_err(|message| MetaError::BadCheckpoint { path: checkpoint_path.clone(), message })?;
        history = checkpoint.history;
        progress.restore((history.len() * config.samples_per_iteration) as u64);
    }
    for iteration in history.len()..config.iterations {
        let start = Instant::now();
        let omega = learner.record();
        let mode = learner.recommendation();
        let mut rng = seeds.child("policy").index(iteration as u64).rng();
        let samples = learner.ask(config.samples_per_iteration, &mut rng);
        let jobs: Vec<(ParamValues, u64)> = samples
            .into_iter()
            .enumerate()
            .map(|(k, psi)| (psi, seeds.child("data").index(iteration as u64).index(k as u64).seed()))
            .collect();
        let batch = Batch {
            dir: dir.to_path_buf(),
            study_seed,
            name: format!("iteration-{iteration}"),
            what: format!("iteration {iteration}"),
        };
        let tasks: Vec<Job> = jobs
            .iter()
            .map(|(psi, seed)| Job::Sample { psi: psi.clone(), seed: *seed, split: Split::Validation })
            .collect();
        let evaluations = executor.evaluate(env, &batch, &tasks, progress)?;
        let rewards: Vec<f64> = evaluations.iter().map(|e| e.reward).collect();
        let stats = learner.tell(&rewards);
        let mean_reward = rewards.iter().sum::<f64>() / rewards.len() as f64;
        let max_reward = rewards.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let records = jobs
            .into_iter()
            .zip(evaluations)
            .zip(&stats.advantages)
            .map(|(((psi, seed), eval), advantage)| SampleRecord {
                seed,
                psi,
                reward: eval.reward,
                advantage: *advantage,
                metrics: eval.metrics,
            })
            .collect();
        history.push(IterationRecord {
            iteration,
            wall_s: start.elapsed().as_secs_f64(),
            omega,
            mode,
            baseline: stats.baseline,
            mean_reward,
            max_reward,
            grad_norm: stats.grad_norm,
            samples: records,
        });
        let baseline = match learner {
            Searcher::Reinforce(..) => format!(" · baseline {:.4}", stats.baseline),
            _ => String::new(),
        };
        progress.phase(format!(
            "{} iteration {}/{} · mean reward {mean_reward:.4}{baseline}",
            config.method.label(),
            iteration + 1,
            config.iterations,
        ));
        let checkpoint = Checkpoint {
            format: CHECKPOINT_FORMAT,
            seed: seeds.seed(),
            config: config.clone(),
            space: env.space().clone(),
            learner: learner.state(),
            history,
        };
        write_records(dir, env.space(), &state_names, &checkpoint.history)?;
        let json = serde_json::to_vec(&checkpoint).map_err(|e| MetaError::Write {
            path: checkpoint_path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&checkpoint_path, &json)?;
        history = checkpoint.history;
    }
    Ok(MetaOutcome { psi_star: learner.recommendation(), policy: learner.policy().cloned(), history })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CmaEsConfig, InitMean, Method, PolicyConfig, TpeConfig};
    use crate::env::{BoxError, Evaluation};
    use l2s_core::{Dim, ParamSpace};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Reward −(x − 0.3)² − (y − 0.7)² plus seeded noise; fails on call `fail_at` if set.
    struct Quadratic {
        space: ParamSpace,
        calls: AtomicUsize,
        fail_at: Option<usize>,
    }

    impl Quadratic {
        fn new(fail_at: Option<usize>) -> Self {
            let space = ParamSpace::new(vec![
                Dim::continuous("x", 0.0, 1.0),
                Dim::continuous("y", 0.0, 1.0),
                Dim::categorical("c", ["a", "b"]),
            ])
            .expect("valid");
            Self { space, calls: AtomicUsize::new(0), fail_at }
        }
    }

    impl Environment for Quadratic {
        fn space(&self) -> &ParamSpace {
            &self.space
        }
        fn metric_name(&self) -> &str {
            "score"
        }
        fn evaluate(&self, psi: &ParamValues, seed: u64, _split: Split) -> Result<Evaluation, BoxError> {
            if Some(self.calls.fetch_add(1, Ordering::SeqCst)) == self.fail_at {
                return Err("simulated crash".into());
            }
            let x = psi.continuous(0).ok_or("x")?;
            let y = psi.continuous(1).ok_or("y")?;
            let noise = (SeedTree::new(seed).seed() % 1000) as f64 / 1e5;
            let reward = -(x - 0.3).powi(2) - (y - 0.7).powi(2) + noise;
            Ok(Evaluation { reward, metrics: vec![("noise".into(), noise)] })
        }
        fn evaluate_target(&self, _seed: u64) -> Result<Evaluation, BoxError> {
            Ok(Evaluation { reward: 0.0, metrics: vec![] })
        }
    }

    /// [`train_policy`] on the local pool with two workers, as study seed 0.
    fn train(
        env: &Quadratic,
        cfg: &MetaConfig,
        seeds: SeedTree,
        dir: &Path,
        resume: bool,
    ) -> Result<MetaOutcome, MetaError> {
        train_policy(env, &Executor::local(2), 0, cfg, seeds, dir, resume, &Progress::hidden())
    }

    fn config() -> MetaConfig {
        MetaConfig {
            iterations: 12,
            samples_per_iteration: 8,
            learning_rate: 0.05,
            baseline_decay: 0.9,
            grad_clip: 100.0,
            entropy_bonus: 0.01,
            normalise_advantages: true,
            threads: 2,
            method: Method::Reinforce,
            policy: PolicyConfig {
                init_std: 0.2,
                learn_std: true,
                min_std: 0.05,
                init_mean: InitMean::Uniform { low: 0.1, high: 0.9 },
            },
        }
    }

    fn methods() -> [Method; 3] {
        [Method::Reinforce, Method::CmaEs(CmaEsConfig::default()), Method::Tpe(TpeConfig::default())]
    }

    #[test]
    fn resume_after_a_crash_equals_the_uninterrupted_run() {
        for method in methods() {
            resume_equals_uninterrupted(MetaConfig { method, ..config() });
        }
    }

    fn resume_equals_uninterrupted(cfg: MetaConfig) {
        let seeds = SeedTree::new(42);
        let whole_dir = tempfile::tempdir().expect("tempdir");
        let whole =
            train(&Quadratic::new(None), &cfg, seeds, whole_dir.path(), false).expect("uninterrupted run");

        let dir = tempfile::tempdir().expect("tempdir");
        // Crash during iteration 5 (calls 40..48).
        let crashed = train(&Quadratic::new(Some(43)), &cfg, seeds, dir.path(), false);
        assert!(matches!(crashed, Err(MetaError::Environment { .. })), "{crashed:?}");
        // Without --resume the existing run is left alone.
        let refused = train(&Quadratic::new(None), &cfg, seeds, dir.path(), false);
        assert!(matches!(refused, Err(MetaError::RunExists { .. })));
        let resumed = train(&Quadratic::new(None), &cfg, seeds, dir.path(), true).expect("resumed run");

        assert_eq!(resumed.psi_star, whole.psi_star);
        let strip = |h: &[IterationRecord]| -> Vec<IterationRecord> {
            h.iter()
                .cloned()
                .map(|mut r| {
                    r.wall_s = 0.0;
                    r
                })
                .collect()
        };
        assert_eq!(strip(&resumed.history), strip(&whole.history));
        let csv = |d: &Path| std::fs::read_to_string(d.join("metrics.csv")).expect("metrics.csv");
        assert_eq!(csv(dir.path()), csv(whole_dir.path()));
    }

    #[test]
    fn resume_refuses_a_different_config() {
        let cfg = config();
        let dir = tempfile::tempdir().expect("tempdir");
        let seeds = SeedTree::new(1);
        train(&Quadratic::new(None), &cfg, seeds, dir.path(), false).expect("run");
        let other = MetaConfig { learning_rate: 0.5, ..cfg.clone() };
        let err = train(&Quadratic::new(None), &other, seeds, dir.path(), true).expect_err("config differs");
        assert!(err.to_string().contains("different meta config"), "{err}");
        let err =
            train(&Quadratic::new(None), &cfg, SeedTree::new(2), dir.path(), true).expect_err("seed differs");
        assert!(err.to_string().contains("different seed"), "{err}");
    }

    #[test]
    fn every_method_climbs_towards_the_optimum() {
        for method in methods() {
            let key = method.key();
            let cfg = MetaConfig { iterations: 60, method, ..config() };
            let dir = tempfile::tempdir().expect("tempdir");
            let out = train(&Quadratic::new(None), &cfg, SeedTree::new(3), dir.path(), false).expect("run");
            let first = out.history.first().expect("history").mean_reward;
            let last = out.history.last().expect("history").mean_reward;
            assert!(last > first, "{key}: {first} -> {last}");
            let psi = &out.psi_star;
            let (x, y) = (psi.continuous(0).expect("x"), psi.continuous(1).expect("y"));
            assert!((x - 0.3).abs() < 0.1 && (y - 0.7).abs() < 0.1, "{key}: ψ* ({x}, {y})");
            assert_eq!(out.psi_after(60), psi);
            assert_eq!(out.psi_after(0), &out.history[0].mode);
        }
    }

    #[test]
    fn resume_refuses_a_checkpoint_of_another_method() {
        let dir = tempfile::tempdir().expect("tempdir");
        let seeds = SeedTree::new(1);
        train(&Quadratic::new(None), &config(), seeds, dir.path(), false).expect("run");
        let cma = MetaConfig { method: Method::CmaEs(CmaEsConfig::default()), ..config() };
        let err = train(&Quadratic::new(None), &cma, seeds, dir.path(), true).expect_err("method differs");
        assert!(err.to_string().contains("different meta config"), "{err}");
    }
}
