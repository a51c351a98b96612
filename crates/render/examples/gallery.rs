//! Renders the README's sample images: the four weathers and the five car types, each
//! as RGB next to its colourised class map, into `docs/images/`.
//!
//! `cargo run --release --workspace --example gallery` (from the repository root).

use image::RgbImage;
use l2s_render::{Frame, RenderSettings, Renderer};
use l2s_scene::{CarType, TrafficParams, Weather, sample_scene};

fn column(frames: &[Frame]) -> RgbImage {
    let tiles: Vec<RgbImage> = frames.iter().map(Frame::side_by_side).collect();
    let (w, h) = (tiles[0].width(), tiles[0].height());
    let mut out = RgbImage::new(w, h * tiles.len() as u32);
    for (k, t) in tiles.iter().enumerate() {
        image::imageops::replace(&mut out, t, 0, i64::from(h) * k as i64);
    }
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut renderer =
        Renderer::new(RenderSettings { width: 320, height: 192, ..RenderSettings::default() })?;
    let base = TrafficParams { cars_per_lane_100m: 3.0, house_variety: 0.8, ..TrafficParams::default() };
    let weathers: Vec<_> = Weather::ALL
        .iter()
        .map(|&weather| sample_scene(&TrafficParams { weather, weather_intensity: 0.7, ..base.clone() }, 11))
        .collect::<Result<_, _>>()?;
    std::fs::create_dir_all("docs/images")?;
    column(&renderer.render(&weathers)?).save("docs/images/render_weathers.png")?;
    let types: Vec<_> = CarType::ALL
        .iter()
        .enumerate()
        .map(|(k, _)| {
            let mut weights = [0.01; 5];
            weights[k] = 1.0;
            let p = TrafficParams {
                car_type_weights: weights,
                cars_per_lane_100m: 4.0,
                road_length: 60.0,
                ..base.clone()
            };
            sample_scene(&p, 3)
        })
        .collect::<Result<_, _>>()?;
    column(&renderer.render(&types)?).save("docs/images/render_car_types.png")?;
    println!("wrote docs/images/render_weathers.png and docs/images/render_car_types.png");
    Ok(())
}
