use l2s_render::{RenderSettings, Renderer};
use l2s_scene::{TrafficParams, Weather, sample_scene};

#[test]
fn scratch() {
    let mut r = Renderer::new(RenderSettings::default()).expect("renderer");
    eprintln!("{:?}", r.adapter());
    let mut scenes = Vec::new();
    for (i, w) in Weather::ALL.iter().enumerate() {
        let p = TrafficParams { weather: *w, weather_intensity: 0.7, cars_per_lane_100m: 3.0, ..TrafficParams::default() };
        scenes.push(sample_scene(&p, i as u64).unwrap());
    }
    let t = std::time::Instant::now();
    let frames = r.render(&scenes).expect("render");
    eprintln!("first {:?}", t.elapsed());
    for (i, f) in frames.iter().enumerate() {
        image::save_buffer(format!("/tmp/scratch_rgb_{i}.png"), &f.rgb, f.width, f.height, image::ExtendedColorType::Rgb8).unwrap();
        let lab: Vec<u8> = f.classes.iter().flat_map(|c| l2s_render::SemanticClass::from_id(*c).unwrap().colour()).collect();
        image::save_buffer(format!("/tmp/scratch_lab_{i}.png"), &lab, f.width, f.height, image::ExtendedColorType::Rgb8).unwrap();
        eprintln!("{i}: counts {:?} cars {}", f.counts, f.cars.len());
    }
    let p = TrafficParams::default();
    let many: Vec<_> = (0..64).map(|s| sample_scene(&p, 100 + s).unwrap()).collect();
    let t = std::time::Instant::now();
    let frames = r.render(&many).expect("render");
    eprintln!("64 scenes {:?} -> {:.1} fps", t.elapsed(), 64.0 / t.elapsed().as_secs_f64());
    drop(frames);
}
