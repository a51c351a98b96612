//! (ψ, seed) → a concrete scene: road, lanes, markings, sidewalks, every house and car
//! with its type, pose and colour, weather, light and camera. Deterministic: the same ψ
//! and seed give the same description on every machine.
//!
//! Frame: the road runs along +z from the camera (z = 0) to `road.length`; x points to the
//! right of the road's centre line, y up; the road surface is y = 0.

use l2s_core::SeedTree;
use l2s_core::config::Validate;
use rand::Rng;
use rand_distr::{Distribution, Normal, Poisson};
use serde::{Deserialize, Serialize};

use crate::SceneError;
use crate::params::{CarType, TrafficParams, Weather};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Road {
    pub length: f64,
    pub lanes_per_direction: u32,
    pub lane_width: f64,
    pub sidewalk_width: f64,
    /// Dashed markings between lanes of one direction, solid ones at the centre line.
    pub markings: Vec<Marking>,
}

impl Road {
    /// Half the width of the carriageway (without sidewalks).
    pub fn half_width(&self) -> f64 {
        f64::from(self.lanes_per_direction) * self.lane_width
    }

    /// x of the centre of lane `lane`: negative lanes run towards the camera, positive away.
    pub fn lane_centre(&self, lane: i32) -> f64 {
        let index = f64::from(lane.unsigned_abs()) - 0.5;
        f64::from(lane.signum()) * index * self.lane_width
    }
}

/// A painted stripe on the road: centre x, z from–to, width.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Marking {
    pub x: f64,
    pub z_start: f64,
    pub z_end: f64,
    pub width: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoofKind {
    Flat,
    Gabled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct House {
    /// Centre of the footprint on the ground.
    pub x: f64,
    pub z: f64,
    /// Along the road, away from it, and wall height, metres.
    pub width: f64,
    pub depth: f64,
    pub height: f64,
    pub roof: RoofKind,
    /// Linear RGB in [0, 1].
    pub wall_colour: [f32; 3],
    pub roof_colour: [f32; 3],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Car {
    /// Instance id, unique within the scene, starting at 1 (0 means "no car" in masks).
    pub id: u32,
    pub kind: CarType,
    pub lane: i32,
    /// Centre of the footprint on the road.
    pub x: f64,
    pub z: f64,
    /// Yaw in radians: 0 drives along +z, π towards the camera.
    pub yaw: f64,
    pub colour: [f32; 3],
}

impl Car {
    /// Length, width, height in metres.
    pub fn size(&self) -> [f64; 3] {
        self.kind.size()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeatherState {
    pub kind: Weather,
    pub intensity: f64,
    /// Distance at which fog hides 95 % of an object's colour, metres (infinite when clear).
    pub visibility: f64,
    /// How wet (dark and glossy) the road is, [0, 1].
    pub wetness: f64,
    /// Rain streaks per square metre of the view plane, 0 when dry.
    pub rain_density: f64,
    /// Share of the sun's light blocked by clouds, [0, 1].
    pub cloud_cover: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Light {
    pub sun_elevation_deg: f64,
    pub sun_azimuth_deg: f64,
    /// Direct sunlight, lux.
    pub sun_illuminance: f64,
    /// Diffuse sky light, [0, 1] of full.
    pub ambient: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Camera {
    pub x: f64,
    pub height: f64,
    /// Downward pitch in degrees (positive looks down).
    pub pitch_deg: f64,
    pub yaw_deg: f64,
    pub vertical_fov_deg: f64,
}

/// Everything the renderer needs to draw one scene; nothing else is random downstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneDescription {
    pub seed: u64,
    pub road: Road,
    pub houses: Vec<House>,
    pub cars: Vec<Car>,
    pub weather: WeatherState,
    pub light: Light,
    pub camera: Camera,
}

const CAR_PALETTE: [[f32; 3]; 8] = [
    [0.8, 0.8, 0.82],
    [0.05, 0.05, 0.06],
    [0.55, 0.05, 0.05],
    [0.08, 0.15, 0.45],
    [0.35, 0.36, 0.38],
    [0.9, 0.9, 0.88],
    [0.1, 0.3, 0.15],
    [0.7, 0.55, 0.2],
];
const WALL_PALETTE: [[f32; 3]; 6] = [
    [0.85, 0.8, 0.7],
    [0.7, 0.45, 0.35],
    [0.9, 0.88, 0.85],
    [0.55, 0.6, 0.65],
    [0.8, 0.7, 0.5],
    [0.6, 0.35, 0.3],
];
/// Gap kept between consecutive cars in a lane, metres.
const CAR_GAP: f64 = 1.5;

fn jitter(rng: &mut impl Rng, colour: [f32; 3], amount: f32) -> [f32; 3] {
    colour.map(|c| (c + rng.random_range(-amount..=amount)).clamp(0.0, 1.0))
}

fn poisson(rng: &mut impl Rng, mean: f64) -> usize {
    if mean <= 0.0 {
        return 0;
    }
    Poisson::new(mean).map_or(0, |p| p.sample(rng) as usize)
}

/// Draws a scene from ψ with `seed`. Fails only if ψ is out of its bounds.
pub fn sample_scene(params: &TrafficParams, seed: u64) -> Result<SceneDescription, SceneError> {
    params.validate()?;
    let tree = SeedTree::new(seed);
    let road = Road {
        length: params.road_length,
        lanes_per_direction: 2,
        lane_width: 3.5,
        sidewalk_width: 2.5,
        markings: markings(params.road_length, 2, 3.5),
    };
    let cars = place_cars(params, &road, &mut tree.child("cars").rng());
    let houses = place_houses(params, &road, &mut tree.child("houses").rng());
    let weather = weather(params);
    let mut rng = tree.child("light").rng();
    let light = Light {
        sun_elevation_deg: params.sun_elevation_deg,
        sun_azimuth_deg: rng.random_range(0.0..360.0),
        sun_illuminance: 100_000.0 * (1.0 - 0.85 * weather.cloud_cover),
        ambient: 0.25 + 0.5 * weather.cloud_cover,
    };
    let mut rng = tree.child("camera").rng();
    let pitch =
        Normal::new(8.0, params.camera_pitch_jitter_deg.max(1e-9)).map_or(8.0, |n| n.sample(&mut rng));
    let camera = Camera {
        x: road.lane_centre(1) + rng.random_range(-0.3..=0.3),
        height: params.camera_height,
        pitch_deg: pitch.clamp(-5.0, 25.0),
        yaw_deg: rng.random_range(-2.0..=2.0),
        vertical_fov_deg: 50.0,
    };
    Ok(SceneDescription { seed, road, houses, cars, weather, light, camera })
}

fn markings(length: f64, lanes: u32, lane_width: f64) -> Vec<Marking> {
    let mut out = vec![Marking { x: 0.0, z_start: 0.0, z_end: length, width: 0.15 }];
    for lane in 1..lanes {
        for side in [-1.0, 1.0] {
            let x = side * f64::from(lane) * lane_width;
            let mut z = 0.0;
            while z < length {
                out.push(Marking { x, z_start: z, z_end: (z + 3.0).min(length), width: 0.12 });
                z += 9.0;
            }
        }
    }
    out
}

fn place_cars(params: &TrafficParams, road: &Road, rng: &mut impl Rng) -> Vec<Car> {
    let probabilities = params.car_type_probabilities();
    let lanes = i32::try_from(road.lanes_per_direction).unwrap_or(2);
    let mut cars = Vec::new();
    for lane in (-lanes..=lanes).filter(|l| *l != 0) {
        let wanted = poisson(rng, params.cars_per_lane_100m * road.length / 100.0);
        // Draw positions, then keep those that leave a gap to the previous car.
        let mut candidates: Vec<(f64, CarType)> = (0..wanted)
            .map(|_| {
                let u: f64 = rng.random();
                let mut acc = 0.0;
                let kind = CarType::ALL
                    .into_iter()
                    .zip(probabilities)
                    .find(|(_, p)| {
                        acc += p;
                        u < acc
                    })
                    .map_or(CarType::Bus, |(k, _)| k);
                (rng.random_range(4.0..road.length.max(4.5)), kind)
            })
            .collect();
        candidates.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut last_end = f64::NEG_INFINITY;
        for (z, kind) in candidates {
            let half = kind.size()[0] / 2.0;
            if z - half < 0.0 || z - half < last_end + CAR_GAP || z + half > road.length {
                continue;
            }
            last_end = z + half;
            let yaw = if lane > 0 { 0.0 } else { std::f64::consts::PI } + rng.random_range(-0.03..=0.03);
            let base = CAR_PALETTE[rng.random_range(0..CAR_PALETTE.len())];
            let colour = jitter(rng, base, 0.05);
            let x = road.lane_centre(lane) + rng.random_range(-0.3..=0.3);
            cars.push(Car { id: 0, kind, lane, x, z, yaw, colour });
        }
    }
    for (i, car) in cars.iter_mut().enumerate() {
        car.id = u32::try_from(i + 1).unwrap_or(u32::MAX);
    }
    cars
}

fn place_houses(params: &TrafficParams, road: &Road, rng: &mut impl Rng) -> Vec<House> {
    let v = params.house_variety;
    let edge = road.half_width() + road.sidewalk_width;
    let mut houses = Vec::new();
    for side in [-1.0, 1.0] {
        let wanted = poisson(rng, params.houses_per_side_100m * road.length / 100.0);
        let mut z = rng.random_range(0.0..6.0);
        for _ in 0..wanted {
            let width = 9.0 + v * rng.random_range(-4.0..=6.0);
            let gap = rng.random_range(1.0..=4.0 + 6.0 * (1.0 - v));
            if z + width > road.length + 20.0 {
                break;
            }
            let depth = 8.0 + v * rng.random_range(-2.0..=4.0);
            let height = 6.0 + v * rng.random_range(-2.5..=6.0);
            let setback = 2.0 + rng.random_range(0.0..=4.0 * v + 0.5);
            let roof = if rng.random_bool(0.3 + 0.4 * v) { RoofKind::Gabled } else { RoofKind::Flat };
            let base = WALL_PALETTE[if v < 0.2 { 0 } else { rng.random_range(0..WALL_PALETTE.len()) }];
            houses.push(House {
                x: side * (edge + setback + depth / 2.0),
                z: z + width / 2.0,
                width,
                depth,
                height,
                roof,
                wall_colour: jitter(rng, base, 0.08 * v as f32),
                roof_colour: jitter(rng, [0.35, 0.2, 0.15], 0.1 * v as f32),
            });
            z += width + gap;
        }
    }
    houses
}

fn weather(params: &TrafficParams) -> WeatherState {
    let i = params.weather_intensity;
    let (visibility, wetness, rain_density, cloud_cover) = match params.weather {
        Weather::Clear => (f64::INFINITY, 0.0, 0.0, 0.1 * i),
        Weather::Overcast => (2000.0 - 1500.0 * i, 0.0, 0.0, 0.5 + 0.5 * i),
        Weather::Rain => (600.0 - 450.0 * i, 0.4 + 0.6 * i, 20.0 + 180.0 * i, 0.7 + 0.3 * i),
        Weather::Fog => (200.0 - 170.0 * i, 0.1 * i, 0.0, 0.6 + 0.3 * i),
    };
    WeatherState { kind: params.weather, intensity: i, visibility, wetness, rain_density, cloud_cover }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_psi_and_seed_give_the_same_scene() {
        let p = TrafficParams { cars_per_lane_100m: 4.0, ..TrafficParams::default() };
        assert_eq!(sample_scene(&p, 17), sample_scene(&p, 17));
        assert_ne!(sample_scene(&p, 17), sample_scene(&p, 18));
    }

    #[test]
    fn cars_in_a_lane_never_overlap_and_stay_on_the_road() {
        let p = TrafficParams { cars_per_lane_100m: 6.0, road_length: 200.0, ..TrafficParams::default() };
        for seed in 0..50 {
            let scene = sample_scene(&p, seed).expect("valid");
            for a in &scene.cars {
                let [len, ..] = a.size();
                assert!(a.z - len / 2.0 >= 0.0 && a.z + len / 2.0 <= scene.road.length);
                for b in scene.cars.iter().filter(|b| b.id != a.id && b.lane == a.lane) {
                    let gap = (a.z - b.z).abs() - (len + b.size()[0]) / 2.0;
                    assert!(gap >= CAR_GAP - 1e-9, "seed {seed}: cars {} and {} overlap", a.id, b.id);
                }
            }
            let ids: std::collections::BTreeSet<u32> = scene.cars.iter().map(|c| c.id).collect();
            assert_eq!(ids.len(), scene.cars.len());
            assert!(!ids.contains(&0));
        }
    }

    #[test]
    fn psi_controls_what_is_drawn() {
        let few =
            TrafficParams { cars_per_lane_100m: 0.5, houses_per_side_100m: 1.0, ..TrafficParams::default() };
        let many =
            TrafficParams { cars_per_lane_100m: 5.0, houses_per_side_100m: 10.0, ..TrafficParams::default() };
        let count = |p: &TrafficParams| -> (usize, usize) {
            (0..40)
                .map(|s| sample_scene(p, s).expect("valid"))
                .fold((0, 0), |(c, h), s| (c + s.cars.len(), h + s.houses.len()))
        };
        let (few_cars, few_houses) = count(&few);
        let (many_cars, many_houses) = count(&many);
        assert!(many_cars > 3 * few_cars && many_houses > 3 * few_houses);
        let only_buses = TrafficParams { car_type_weights: [0.01, 0.01, 0.01, 0.01, 1.0], ..many };
        let buses: usize = (0..20)
            .flat_map(|s| sample_scene(&only_buses, s).expect("valid").cars)
            .filter(|c| c.kind == CarType::Bus)
            .count();
        let all: usize = (0..20).map(|s| sample_scene(&only_buses, s).expect("valid").cars.len()).sum();
        assert!(buses as f64 > 0.9 * all as f64, "{buses} of {all}");
        let fog = TrafficParams { weather: Weather::Fog, weather_intensity: 1.0, ..TrafficParams::default() };
        assert!(sample_scene(&fog, 1).expect("valid").weather.visibility < 50.0);
    }

    #[test]
    fn invalid_psi_is_refused() {
        let p = TrafficParams { camera_height: 10.0, ..TrafficParams::default() };
        assert!(matches!(sample_scene(&p, 0), Err(SceneError::Invalid(f)) if f.field == "camera_height"));
    }
}
