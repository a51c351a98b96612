//! Labelled frames per second of the headless renderer (RGB + class, instance and depth
//! maps + visible-car counts and boxes), in memory, a new scene every frame, on whatever
//! adapter the machine has: at 256x256 and 640x192 (KITTI's aspect) with the default
//! settings, and at 64x64 and 128x128 with the car-counting experiment's settings and base
//! ψ (`configs/car_counting.ron`), the sizes the experiments render, with one render worker
//! per core (the default) and with one. After the timings, a long run
//! renders 1,000 scenes and prints resident memory and live entities/assets at the start
//! and the end: they must stay flat.

use std::cell::Cell;

use criterion::{Criterion, Throughput};
use l2s_render::{RenderSettings, Renderer};
use l2s_scene::{SceneDescription, TrafficParams, sample_scene};

const PER_ITERATION: u64 = 16;

fn scenes(params: &TrafficParams, from: u64, n: u64) -> Vec<SceneDescription> {
    (from..from + n).map(|s| sample_scene(params, s).expect("valid ψ")).collect()
}

fn frames_per_second(c: &mut Criterion) {
    let params = TrafficParams { cars_per_lane_100m: 3.0, ..TrafficParams::default() };
    let mut group = c.benchmark_group("render");
    group.sample_size(10).throughput(Throughput::Elements(PER_ITERATION));
    for (width, height) in [(256, 256), (640, 192)] {
        let mut renderer =
            Renderer::new(RenderSettings { width, height, ..RenderSettings::default() }).expect("renderer");
        let next = Cell::new(0u64);
        group.bench_function(format!("{width}x{height}"), |b| {
            b.iter(|| {
                let from = next.replace(next.get() + PER_ITERATION);
                renderer.render(&scenes(&params, from, PER_ITERATION)).expect("frames")
            })
        });
    }
    // The counting experiment's render settings and ψ, at the sizes the experiments use.
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let l2s::experiment::ExperimentConfig::CarCounting(config) =
        l2s_core::load_ron(&root.join("configs/car_counting.ron")).expect("the counting config")
    else {
        panic!("configs/car_counting.ron is not a CarCounting config")
    };
    // Each size with the config's workers (one per core) and, side by side, with one.
    for (size, workers) in [(64, 0), (64, 1), (128, 0), (128, 1)] {
        let settings = RenderSettings { width: size, height: size, workers, ..config.render.clone() };
        let mut renderer = Renderer::new(settings).expect("renderer");
        let next = Cell::new(0u64);
        let name = match workers {
            0 => format!("counting_config_{size}x{size}"),
            n => format!("counting_config_{size}x{size}_{n}_worker"),
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                let from = next.replace(next.get() + PER_ITERATION);
                renderer.render(&scenes(&config.base, from, PER_ITERATION)).expect("frames")
            })
        });
    }
    group.finish();
}

/// Resident set size in MiB, from /proc (Linux).
fn rss_mib() -> f64 {
    let pages: f64 = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

fn long_run() {
    let params = TrafficParams { cars_per_lane_100m: 3.0, ..TrafficParams::default() };
    let mut renderer = Renderer::new(RenderSettings::default()).expect("renderer");
    let batch = 50;
    let mut report = Vec::new();
    for round in 0..20u64 {
        renderer.render(&scenes(&params, 100_000 + round * batch, batch)).expect("frames");
        if round == 1 || round == 19 {
            report.push((round * batch + batch, rss_mib(), renderer.entity_count(), renderer.asset_count()));
        }
    }
    for (scenes, rss, entities, assets) in report {
        println!(
            "long run: after {scenes:>4} scenes: RSS {rss:.1} MiB, {entities} entities, {assets} meshes+materials"
        );
    }
}

fn main() {
    // SAFETY: the first statement of main; no other thread exists.
    #[allow(unsafe_code)]
    unsafe {
        l2s::lavapipe::rasterise_on_the_submitting_thread()
    };
    l2s::allocator::one_heap_per_core();
    match l2s_render::probe_adapter() {
        Ok(adapter) => {
            eprintln!("render bench on {} ({}, {})", adapter.name, adapter.backend, adapter.device_type)
        }
        Err(e) => eprintln!("render bench: {e}"),
    }
    let mut criterion = Criterion::default().configure_from_args();
    frames_per_second(&mut criterion);
    criterion.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        long_run();
    }
}
