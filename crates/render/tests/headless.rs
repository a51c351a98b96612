//! The headless renderer on whatever adapter the machine has (lavapipe in CI): exact and
//! aligned labels, determinism, visible weather and road length, a complete first frame,
//! flat memory, the same frames from any number of workers and after any other scenes.
//! One renderer (two workers) is shared; tests take turns.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use l2s_render::{Frame, RenderSettings, Renderer, SemanticClass, Shading};
use l2s_scene::{SceneDescription, TrafficParams, Weather, sample_scene};

static RENDERER: Mutex<Option<Renderer>> = Mutex::new(None);

fn renderer() -> MutexGuard<'static, Option<Renderer>> {
    let mut guard = RENDERER.lock().unwrap_or_else(PoisonError::into_inner);
    if guard.is_none() {
        *guard = Some(
            Renderer::new(RenderSettings {
                width: 128,
                height: 96,
                scenes_per_frame: 4,
                workers: 2,
                ..RenderSettings::default()
            })
            .expect("renderer"),
        );
    }
    guard
}

fn render(scenes: &[SceneDescription]) -> Vec<Frame> {
    renderer().as_mut().expect("renderer").render(scenes).expect("render")
}

fn scenes(params: &TrafficParams, seeds: std::ops::Range<u64>) -> Vec<SceneDescription> {
    seeds.map(|s| sample_scene(params, s).expect("valid")).collect()
}

fn dense(weather: Weather) -> TrafficParams {
    TrafficParams {
        weather,
        weather_intensity: 0.6,
        cars_per_lane_100m: 5.0,
        road_length: 120.0,
        ..TrafficParams::default()
    }
}

/// Asserts that two frames of the same scene are the same to the byte: RGB, label maps,
/// visible cars, counts and car poses.
fn assert_same_frame(x: &Frame, y: &Frame) {
    assert_eq!(x.scene, y.scene, "frames of the same scene, in the order of the scenes");
    assert_eq!(x.rgb, y.rgb, "RGB of seed {} ({:?})", x.scene.seed, x.scene.weather.kind);
    assert_eq!((&x.classes, &x.instances, &x.depth), (&y.classes, &y.instances, &y.depth));
    assert_eq!((&x.cars, &x.counts, &x.poses), (&y.cars, &y.counts, &y.poses));
}

#[test]
fn labels_are_exact_aligned_and_counted() {
    let mut all = Vec::new();
    for (i, weather) in Weather::ALL.into_iter().enumerate() {
        all.extend(scenes(&dense(weather), 10 * i as u64..10 * i as u64 + 3));
    }
    let frames = render(&all);
    let mut total_counted = 0;
    for frame in &frames {
        // Decoding already refused any pixel that is not a class id, or a car pixel without
        // an instance (and the reverse); check what the frame derives from the maps.
        let mut pixels: BTreeMap<u16, (u32, [u32; 4])> = BTreeMap::new();
        for (i, &id) in frame.instances.iter().enumerate() {
            let (x, y) = (i as u32 % frame.width, i as u32 / frame.width);
            assert_eq!(id > 0, frame.classes[i] == SemanticClass::Car.id());
            if id > 0 {
                let e = pixels.entry(id).or_insert((0, [x, y, x, y]));
                e.0 += 1;
                e.1 = [e.1[0].min(x), e.1[1].min(y), e.1[2].max(x), e.1[3].max(y)];
            }
        }
        assert_eq!(frame.cars.len(), pixels.len());
        let mut counts = [0u32; 5];
        for car in &frame.cars {
            let (n, bbox) = pixels[&(car.id as u16)];
            assert_eq!((car.pixels, car.bbox), (n, bbox));
            let kind = frame.scene.cars.iter().find(|c| c.id == car.id).expect("car of the scene").kind;
            assert_eq!(car.kind, kind);
            if n >= 20 {
                counts[kind.index()] += 1;
            }
        }
        assert_eq!(frame.counts, counts);
        total_counted += counts.iter().sum::<u32>();
        // Every class the scene has in front of the camera shows up.
        for class in [SemanticClass::Road, SemanticClass::Sky, SemanticClass::LaneMarking] {
            assert!(
                frame.classes.contains(&class.id()),
                "seed {}: no {} pixels",
                frame.scene.seed,
                class.name()
            );
        }
        let sky = SemanticClass::Sky.id();
        for (i, &c) in frame.classes.iter().enumerate() {
            assert_eq!(c == sky, frame.depth[i].is_infinite(), "depth and class disagree at pixel {i}");
        }
    }
    assert!(total_counted >= 20, "dense traffic should show cars, counted {total_counted}");
    // Alignment: in clear weather the sky is one flat colour in RGB; exactly the pixels
    // the label map calls sky have it.
    for frame in frames.iter().filter(|f| f.scene.weather.kind == Weather::Clear) {
        let sky: Vec<usize> =
            (0..frame.classes.len()).filter(|&i| frame.classes[i] == SemanticClass::Sky.id()).collect();
        let colour = &frame.rgb[3 * sky[0]..3 * sky[0] + 3];
        for &i in &sky {
            assert_eq!(&frame.rgb[3 * i..3 * i + 3], colour, "sky pixel {i} differs");
        }
        let stray = (0..frame.classes.len())
            .filter(|&i| {
                frame.classes[i] != SemanticClass::Sky.id() && &frame.rgb[3 * i..3 * i + 3] == colour
            })
            .count();
        assert!(stray * 200 < frame.classes.len(), "{stray} non-sky pixels have the sky's colour");
    }
}

#[test]
fn same_psi_and_seed_give_identical_frames() {
    let a = scenes(&dense(Weather::Rain), 40..46);
    let first = render(&a);
    // Same scenes, other positions in the batch and after other scenes.
    let mut b = scenes(&dense(Weather::Fog), 90..91);
    b.extend(a.iter().rev().cloned());
    let second: Vec<Frame> = render(&b).into_iter().skip(1).rev().collect();
    assert_eq!((first.len(), second.len()), (a.len(), a.len()), "one frame per scene");
    for (x, y) in first.iter().zip(&second) {
        assert_same_frame(x, y);
    }
}

#[test]
fn frames_do_not_depend_on_the_number_of_workers() {
    let mut all = Vec::new();
    for (i, weather) in Weather::ALL.into_iter().enumerate() {
        all.extend(scenes(&dense(weather), 100 + 10 * i as u64..103 + 10 * i as u64));
    }
    let shared = render(&all);
    let mut single = Renderer::new(RenderSettings {
        width: 128,
        height: 96,
        scenes_per_frame: 4,
        workers: 1,
        ..RenderSettings::default()
    })
    .expect("renderer");
    assert_eq!(single.worker_count(), 1);
    let alone = single.render(&all).expect("render");
    assert_eq!((shared.len(), alone.len()), (all.len(), all.len()), "one frame per scene");
    for (x, y) in shared.iter().zip(&alone) {
        assert_same_frame(x, y);
    }
}

/// Scenes of every weather, each slot switching weather (fog, rain streaks, sky) from one
/// Bevy frame to the next: drawn in order, reversed and interleaved, every frame is the
/// same to the byte, so no state of an earlier scene leaks into a later one.
#[test]
fn frames_do_not_depend_on_the_scenes_drawn_before() {
    let all: Vec<SceneDescription> = (0..16u64)
        .map(|i| {
            let params = TrafficParams {
                sun_elevation_deg: 15.0 + 9.0 * (i % 7) as f64,
                cars_per_lane_100m: 1.0 + (i % 4) as f64,
                ..dense(Weather::ALL[(i * 3 % 4) as usize])
            };
            sample_scene(&params, 300 + i).expect("valid")
        })
        .collect();
    let in_order = render(&all);
    let reversed: Vec<SceneDescription> = all.iter().rev().cloned().collect();
    let mut backwards = render(&reversed);
    backwards.reverse();
    let interleaved: Vec<SceneDescription> = (0..all.len()).map(|i| all[i * 5 % all.len()].clone()).collect();
    let mut shuffled: Vec<Option<Frame>> = vec![None; all.len()];
    for (i, frame) in render(&interleaved).into_iter().enumerate() {
        shuffled[i * 5 % all.len()] = Some(frame);
    }
    for ((x, y), z) in in_order.iter().zip(&backwards).zip(&shuffled) {
        let z = z.as_ref().expect("every scene drawn");
        assert_same_frame(x, y);
        assert_same_frame(x, z);
    }
}

#[test]
fn first_frame_of_a_fresh_renderer_is_complete() {
    let _turn = renderer();
    let mut fresh = Renderer::new(RenderSettings {
        width: 64,
        height: 64,
        scenes_per_frame: 1,
        ..RenderSettings::default()
    })
    .expect("renderer");
    let frame = fresh.render(&scenes(&dense(Weather::Clear), 3..4)).expect("render").remove(0);
    for class in [SemanticClass::Road, SemanticClass::Sky] {
        assert!(frame.classes.contains(&class.id()));
    }
    let distinct: std::collections::BTreeSet<&[u8]> = frame.rgb.chunks(3).collect();
    assert!(distinct.len() > 50, "RGB looks blank: {} colours", distinct.len());
}

/// Standard deviation of luminance over pixels whose depth lies in `range`.
fn contrast(frame: &Frame, range: std::ops::Range<f32>) -> f64 {
    let values: Vec<f64> = (0..frame.depth.len())
        .filter(|&i| range.contains(&frame.depth[i]))
        .map(|i| frame.rgb[3 * i..3 * i + 3].iter().map(|&v| f64::from(v)).sum::<f64>() / 3.0)
        .collect();
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len().max(1) as f64).sqrt()
}

#[test]
fn weather_and_road_length_change_the_image() {
    let clear = TrafficParams { weather: Weather::Clear, ..dense(Weather::Clear) };
    let fog = TrafficParams { weather: Weather::Fog, weather_intensity: 0.8, ..dense(Weather::Clear) };
    let frames = render(&[scenes(&clear, 5..8), scenes(&fog, 5..8)].concat());
    let far = 40.0..1000.0;
    let clear_contrast: f64 = frames[..3].iter().map(|f| contrast(f, far.clone())).sum();
    let fog_contrast: f64 = frames[3..].iter().map(|f| contrast(f, far.clone())).sum();
    assert!(fog_contrast < 0.5 * clear_contrast, "fog {fog_contrast:.1} vs clear {clear_contrast:.1}");
    let rain = render(&scenes(&dense(Weather::Rain), 5..8));
    let mean = |f: &Frame| f.rgb.iter().map(|&v| f64::from(v)).sum::<f64>() / f.rgb.len() as f64;
    assert!(
        rain.iter().map(mean).sum::<f64>() < frames[..3].iter().map(mean).sum::<f64>(),
        "rain should darken"
    );
    let road_far = |length: f64| -> usize {
        let p = TrafficParams {
            road_length: length,
            cars_per_lane_100m: 0.0,
            houses_per_side_100m: 0.0,
            ..TrafficParams::default()
        };
        render(&scenes(&p, 1..3))
            .iter()
            .map(|f| {
                (0..f.depth.len())
                    .filter(|&i| f.classes[i] == SemanticClass::Road.id() && f.depth[i] > 45.0)
                    .count()
            })
            .sum()
    };
    let (short, long) = (road_far(40.0), road_far(200.0));
    assert!(long > short + 20, "far road pixels: 40 m road {short}, 200 m road {long}");
}

/// Also compares the two ways labels are drawn: with `Fast` the RGB camera's pass writes
/// them, with `Standard` a label camera draws label entities of their own.
#[test]
fn fast_shading_matches_standard_shading_and_leaves_labels_alone() {
    let _turn = renderer();
    let settings = |shading| RenderSettings {
        width: 96,
        height: 64,
        scenes_per_frame: 4,
        shading,
        ..RenderSettings::default()
    };
    let mut fast = Renderer::new(settings(Shading::Fast)).expect("renderer");
    let mut standard = Renderer::new(settings(Shading::Standard)).expect("renderer");
    let batch: Vec<SceneDescription> = [Weather::Clear, Weather::Overcast, Weather::Rain, Weather::Fog]
        .into_iter()
        .flat_map(|w| scenes(&dense(w), 20..21))
        .collect();
    let (a, b) = (fast.render(&batch).expect("render"), standard.render(&batch).expect("render"));
    assert_eq!((a.len(), b.len()), (batch.len(), batch.len()), "one frame per scene");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.classes, y.classes);
        assert_eq!(x.instances, y.instances);
        assert_eq!(x.depth, y.depth);
        assert_eq!(x.counts, y.counts);
        assert_ne!(x.rgb, y.rgb, "the shadings should differ in detail");
        let mean_difference = x.rgb.iter().zip(&y.rgb).map(|(p, q)| f64::from(p.abs_diff(*q))).sum::<f64>()
            / x.rgb.len() as f64;
        assert!(
            mean_difference < 12.0,
            "{:?}: fast and standard differ by {mean_difference:.1} levels on average",
            x.scene.weather.kind
        );
    }
}

#[test]
fn entities_and_assets_stay_flat_over_many_scenes() {
    let mut guard = renderer();
    let r = guard.as_mut().expect("renderer");
    let p = dense(Weather::Rain);
    r.render(&scenes(&p, 0..8)).expect("render");
    let (entities, assets) = (r.entity_count(), r.asset_count());
    for round in 1..8u64 {
        r.render(&scenes(&p, round * 8..round * 8 + 8)).expect("render");
    }
    // Scenes differ in their numbers of cars: allow the spread of one batch, never growth.
    assert!(r.entity_count() <= entities + 200, "entities {} → {}", entities, r.entity_count());
    assert!(r.asset_count() <= assets + 40, "assets {} → {}", assets, r.asset_count());
}

#[test]
fn bad_settings_are_refused() {
    let err = Renderer::new(RenderSettings { width: 0, ..RenderSettings::default() }).expect_err("width 0");
    assert!(err.to_string().contains("width"), "{err}");
}
