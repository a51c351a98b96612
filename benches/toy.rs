//! The whole toy experiment on its shipped config (`configs/toy_gmm.ron`; 5 seeds:
//! learning, random ψ, random search, target), end to end. The target: under 30 s
//! on the 2-core machine. (It named the default config until 2026-11-28, which had become
//! the car-counting experiment: 20 minutes a run.)

use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use l2s::experiment::{RunOptions, run};

fn toy_experiment(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut group = c.benchmark_group("toy");
    group.sample_size(10).measurement_time(Duration::from_secs(60));
    group.bench_function("experiment_default_config", |b| {
        b.iter(|| {
            let out = tempfile::tempdir().expect("temporary directory");
            let options = RunOptions {
                config_path: root.join("configs/toy_gmm.ron"),
                out: out.path().to_path_buf(),
                ..RunOptions::default()
            };
            run(&options).expect("the toy experiment runs")
        });
    });
    group.finish();
}

criterion_group!(benches, toy_experiment);
criterion_main!(benches);
