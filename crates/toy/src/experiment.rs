//! The whole toy experiment: configuration, the multi-seed study, and its report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use l2s_core::config::{InvalidField, Validate};
use l2s_core::{ConfigError, load_ron};
use l2s_meta::progress::Progress;
use l2s_meta::report::{
    PlotError, plot_psi_trajectories, plot_reward_curve, search_section, summary_table, write_summary,
};
use l2s_meta::study::{SeedRun, study_trainings};
use l2s_meta::worker::{ExperimentSpec, JobFile, WorkerError};
use l2s_meta::{
    Executor, ExecutorConfig, MetaConfig, MetaError, StudyConfig, StudyRunOptions, StudySummary, run_study,
};
use serde::{Deserialize, Serialize};

use crate::env::{DataConfig, SimulatorConfig, ToyEnv};
use crate::mixture::Mixture;
use crate::plots::{Panel, plot_panels};
use crate::svm::SvmConfig;

/// `configs/toy_gmm.ron`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToyConfig {
    /// Master seed: every other seed derives from it.
    pub seed: u64,
    /// RON file of the target mixture ψ_real, relative to this config file.
    pub target: PathBuf,
    pub simulator: SimulatorConfig,
    pub data: DataConfig,
    pub svm: SvmConfig,
    pub meta: MetaConfig,
    pub study: StudyConfig,
    /// Where the evaluations run: `Local` (default) or `Slurm(...)`.
    #[serde(default)]
    pub executor: ExecutorConfig,
}

impl Validate for ToyConfig {
    fn validate(&self) -> Result<(), InvalidField> {
        self.simulator.validate().map_err(|e| e.within("simulator"))?;
        self.data.validate().map_err(|e| e.within("data"))?;
        self.svm.validate().map_err(|e| e.within("svm"))?;
        self.meta.validate().map_err(|e| e.within("meta"))?;
        self.study.validate().map_err(|e| e.within("study"))?;
        self.study.validate_with(&self.meta).map_err(|e| e.within("study"))?;
        self.executor.validate().map_err(|e| e.within("executor"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ToyError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Plot(#[from] PlotError),
    #[error(transparent)]
    Worker(#[from] WorkerError),
    #[error(
        "--target-data `{}`: the toy experiment's target is a Gaussian mixture, not a dataset\n  hint: --target-data is for the CarCounting and Segmentation configs; give the toy a mixture with --target FILE",
        .0.display()
    )]
    TargetData(std::path::PathBuf),
}

/// A toy experiment ready to run: its config with the command line applied, the target
/// and the fingerprint that `--resume` and the workers check.
struct Prepared {
    config: ToyConfig,
    target_path: PathBuf,
    target: Mixture,
    fingerprint: String,
}

impl Prepared {
    fn new(mut config: ToyConfig, options: &StudyRunOptions) -> Result<Self, ToyError> {
        if let Some(dir) = &options.target_data {
            return Err(ToyError::TargetData(dir.clone()));
        }
        let target_path = options.target_path(&config.target);
        let target: Mixture = load_ron(&target_path)?;
        options.apply(&mut config.meta, &mut config.study)?;
        config.executor = config.executor.overridden(options.executor);
        // Where the evaluations run changes no result, so a run may resume on another executor.
        let fingerprint = serde_json::to_string(&(
            &ToyConfig {
                executor: ExecutorConfig::Local,
                study: config.study.without_seed_count(),
                ..config.clone()
            },
            &target,
        ))
        .unwrap_or_default();
        Ok(Self { config, target_path, target, fingerprint })
    }

    fn make_env(&self, seeds: l2s_core::SeedTree) -> ToyEnv {
        let c = &self.config;
        ToyEnv::new(c.simulator.clone(), self.target.clone(), &c.data, c.svm.clone(), seeds)
    }
}

/// Runs the study, then writes `summary.json`, `report.md` and the figures into `options.out`.
pub fn run_toy_experiment(config: ToyConfig, options: &StudyRunOptions) -> Result<StudySummary, ToyError> {
    let start = Instant::now();
    let prepared = Prepared::new(config, options)?;
    let config = &prepared.config;
    let executor = Executor::for_study(&config.executor, config.meta.threads, || ExperimentSpec {
        options: options.absolute(),
        fingerprint: prepared.fingerprint.clone(),
    })?;
    let progress = Progress::new(study_trainings(&config.meta, &config.study));
    let make_env = |seeds| Ok(prepared.make_env(seeds));
    let (summary, runs) = run_study(
        make_env,
        &executor,
        &config.meta,
        &config.study,
        config.seed,
        &prepared.fingerprint,
        &options.out,
        options.resume,
        &progress,
    )?;
    progress.finish();
    write_summary(&options.out, &summary)?;
    if let Some(first) = runs.first() {
        write_figures(&options.out, &prepared.make_env(first.seeds.child("env")), first)?;
    }
    write_report(&options.out, config, &prepared.target_path, &summary, start.elapsed().as_secs_f64())?;
    Ok(summary)
}

/// `l2s evaluate --job FILE` for a toy study: rebuilds the job's environment and runs it.
pub fn evaluate_toy_job(config: ToyConfig, spec: &ExperimentSpec, job: &JobFile) -> Result<(), ToyError> {
    let prepared = Prepared::new(config, &spec.options)?;
    job.check_fingerprint(spec, &prepared.fingerprint)?;
    let env = prepared.make_env(l2s_meta::study::env_seeds(prepared.config.seed, job.study_seed));
    job.run(&env)?;
    Ok(())
}

fn write_figures(out: &Path, env: &ToyEnv, run: &SeedRun) -> Result<(), ToyError> {
    let history = &run.outcome.history;
    plot_reward_curve(&out.join("reward_curve.png"), "accuracy", history, run.outcome.policy.is_some())?;
    plot_psi_trajectories(
        &out.join("psi_trajectories.png"),
        l2s_meta::Environment::space(env),
        run.outcome.policy.as_ref(),
        history,
    )?;
    let seed = run.seeds.child("figure").seed();
    let sim = env.simulator();
    let psi_star = run.outcome.psi_star.clone();
    let at = |i: usize| (i, &history[i.min(history.len().saturating_sub(1))].mode);
    let mut top = Vec::new();
    for (i, psi) in [at(0), at(history.len() / 2)] {
        let mixture =
            sim.mixture(psi).map_err(|source| MetaError::Environment { what: "figure".into(), source })?;
        top.push((format!("iteration {i}: SVM on q(x,y|ψ)"), env.train_on(&mixture, seed)));
    }
    let star_mixture =
        sim.mixture(&psi_star).map_err(|source| MetaError::Environment { what: "figure".into(), source })?;
    let star_svm = env.train_on(&star_mixture, seed);
    top.push((format!("iteration {}: SVM on q(x,y|ψ)", history.len()), star_svm.clone()));
    let target_svm = env.train_on(env.target(), seed);
    let star_data = star_mixture.sample(400, &mut l2s_core::SeedTree::new(seed).rng());
    let test = env.test_set();
    let mut panels: Vec<Panel<'_>> =
        top.iter().map(|(title, svm)| Panel { title: title.clone(), svm: Some(svm), points: test }).collect();
    panels.push(Panel { title: "SVM on p(x,y|ψ_real) data".into(), svm: Some(&target_svm), points: test });
    panels.push(Panel { title: "SVM on q(x,y|ψ*) data".into(), svm: Some(&star_svm), points: test });
    panels.push(Panel { title: "data sampled from q(x,y|ψ*)".into(), svm: None, points: &star_data });
    let (lo, hi) = sim.mean_bounds;
    plot_panels(&out.join("decision_boundaries.png"), &panels, (lo - 1.0, hi + 1.0))?;
    Ok(())
}

fn write_report(
    out: &Path,
    config: &ToyConfig,
    target_path: &Path,
    summary: &StudySummary,
    wall_s: f64,
) -> Result<(), ToyError> {
    let mut md = String::new();
    let _ = writeln!(md, "# Learning to simulate: the toy Gaussian-mixture experiment\n");
    let _ = writeln!(
        md,
        "Target mixture: `{}`. Simulator: {} components per class, std {}, means in [{}, {}]. \
         M = {} training points per main-task training, {} validation and {} test points. \
         RBF SVM with C = {}, γ = {}. Policy: {} iterations × K = {} samples. \
         {} seeds from master seed {}; wall time {:.1} s.\n",
        target_path.display(),
        config.simulator.components_per_class,
        config.simulator.std,
        config.simulator.mean_bounds.0,
        config.simulator.mean_bounds.1,
        config.data.train_samples,
        config.data.validation_samples,
        config.data.test_samples,
        config.svm.c,
        config.svm.gamma,
        config.meta.iterations,
        config.meta.samples_per_iteration,
        summary.seeds,
        summary.master_seed,
        wall_s
    );
    let _ = writeln!(md, "## Test accuracy\n\n{}", summary_table(summary));
    let _ = writeln!(
        md,
        "Each seed's score is the mean over {} main-task trainings on fresh draws; the test set is \
         used for nothing else.\n",
        config.study.final_trainings
    );
    let _ = write!(md, "{}", search_section(summary));
    let _ = writeln!(md, "## Figures (seed 0)\n");
    let _ = writeln!(
        md,
        "![decision boundaries](decision_boundaries.png)\n\nTop: SVM decision regions (shaded) trained on \
         data from the search's ψ* at three iterations, test points overlaid. Bottom: trained on target \
         data, on data from ψ*, and data sampled from ψ*.\n"
    );
    let _ = writeln!(md, "![reward curve](reward_curve.png)\n\n![psi trajectories](psi_trajectories.png)\n");
    let _ = writeln!(md, "## Learned ψ* per seed\n");
    for (s, psi) in summary.learned_psi.iter().enumerate() {
        let text: Vec<String> = psi.iter().map(|(n, v)| format!("{n} = {v}")).collect();
        let _ = writeln!(md, "- seed {s}: {}", text.join(", "));
    }
    let path = out.join("report.md");
    l2s_meta::records::write_atomic(&path, md.as_bytes())?;
    Ok(())
}
