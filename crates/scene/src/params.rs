//! ψ of the traffic simulator: typed, bounded, with a flat view for the policy.

use l2s_core::config::{InvalidField, Validate, check_range};
use l2s_core::{Dim, ParamSpace, ParamValue, ParamValues};
use serde::{Deserialize, Serialize};

use crate::SceneError;

/// Weather kinds; each changes the image in its own way (see the render crate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Weather {
    Clear,
    Overcast,
    Rain,
    Fog,
}

impl Weather {
    pub const ALL: [Weather; 4] = [Weather::Clear, Weather::Overcast, Weather::Rain, Weather::Fog];

    pub fn name(self) -> &'static str {
        match self {
            Weather::Clear => "clear",
            Weather::Overcast => "overcast",
            Weather::Rain => "rain",
            Weather::Fog => "fog",
        }
    }
}

/// The five car types of the paper's simulator; their silhouettes differ clearly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CarType {
    Sedan,
    Suv,
    Van,
    Pickup,
    Bus,
}

impl CarType {
    pub const ALL: [CarType; 5] = [CarType::Sedan, CarType::Suv, CarType::Van, CarType::Pickup, CarType::Bus];

    /// Position in [`CarType::ALL`]: the order of counts and car-type weights.
    pub fn index(self) -> usize {
        match self {
            CarType::Sedan => 0,
            CarType::Suv => 1,
            CarType::Van => 2,
            CarType::Pickup => 3,
            CarType::Bus => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CarType::Sedan => "sedan",
            CarType::Suv => "suv",
            CarType::Van => "van",
            CarType::Pickup => "pickup",
            CarType::Bus => "bus",
        }
    }

    /// Body length, width and height in metres.
    pub fn size(self) -> [f64; 3] {
        match self {
            CarType::Sedan => [4.6, 1.8, 1.45],
            CarType::Suv => [4.8, 1.95, 1.8],
            CarType::Van => [5.2, 2.0, 2.3],
            CarType::Pickup => [5.5, 2.0, 1.85],
            CarType::Bus => [11.0, 2.55, 3.2],
        }
    }
}

/// ψ: every parameter the policy may tune, with its bounds in [`TrafficParams::space`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficParams {
    /// Length of the straight road in front of the camera, metres: [40, 200].
    pub road_length: f64,
    /// Kind of weather.
    pub weather: Weather,
    /// Strength of the weather: fog density, rain rate, cloud cover; [0, 1].
    pub weather_intensity: f64,
    /// Relative weight of each car type (sedan, SUV, van, pickup, bus), each in [0.01, 1];
    /// normalised to probabilities when cars are drawn.
    pub car_type_weights: [f64; 5],
    /// Expected cars per lane and 100 m of road: [0, 6].
    pub cars_per_lane_100m: f64,
    /// Expected houses per side and 100 m of road: [0, 12].
    pub houses_per_side_100m: f64,
    /// Spread of house sizes, roofs and colours: 0 all alike, 1 all different; [0, 1].
    pub house_variety: f64,
    /// Sun elevation above the horizon, degrees: [5, 85].
    pub sun_elevation_deg: f64,
    /// Camera height above the road, metres: [1.2, 4].
    pub camera_height: f64,
    /// Standard deviation of the per-scene camera pitch jitter, degrees: [0, 5].
    pub camera_pitch_jitter_deg: f64,
}

/// (name, low, high) of every continuous parameter, in the order of the flat view.
const CONTINUOUS: [(&str, f64, f64); 13] = [
    ("road_length", 40.0, 200.0),
    ("weather_intensity", 0.0, 1.0),
    ("car_weight.sedan", 0.01, 1.0),
    ("car_weight.suv", 0.01, 1.0),
    ("car_weight.van", 0.01, 1.0),
    ("car_weight.pickup", 0.01, 1.0),
    ("car_weight.bus", 0.01, 1.0),
    ("cars_per_lane_100m", 0.0, 6.0),
    ("houses_per_side_100m", 0.0, 12.0),
    ("house_variety", 0.0, 1.0),
    ("sun_elevation_deg", 5.0, 85.0),
    ("camera_height", 1.2, 4.0),
    ("camera_pitch_jitter_deg", 0.0, 5.0),
];

impl Default for TrafficParams {
    /// A plain mid-range scene: clear, some traffic, some houses.
    fn default() -> Self {
        Self {
            road_length: 100.0,
            weather: Weather::Clear,
            weather_intensity: 0.5,
            car_type_weights: [0.5; 5],
            cars_per_lane_100m: 2.0,
            houses_per_side_100m: 5.0,
            house_variety: 0.5,
            sun_elevation_deg: 45.0,
            camera_height: 1.8,
            camera_pitch_jitter_deg: 1.0,
        }
    }
}

impl TrafficParams {
    /// The continuous parameters in the order of [`CONTINUOUS`].
    fn continuous_values(&self) -> [f64; 13] {
        let w = self.car_type_weights;
        [
            self.road_length,
            self.weather_intensity,
            w[0],
            w[1],
            w[2],
            w[3],
            w[4],
            self.cars_per_lane_100m,
            self.houses_per_side_100m,
            self.house_variety,
            self.sun_elevation_deg,
            self.camera_height,
            self.camera_pitch_jitter_deg,
        ]
    }

    /// The space the policy searches: 13 bounded continuous dimensions and the weather.
    pub fn space() -> ParamSpace {
        let mut dims: Vec<Dim> = CONTINUOUS.iter().map(|(n, lo, hi)| Dim::continuous(*n, *lo, *hi)).collect();
        dims.push(Dim::categorical("weather", Weather::ALL.map(Weather::name)));
        ParamSpace::new(dims)
            .unwrap_or_else(|e| unreachable!("the traffic space is valid by construction: {e}"))
    }

    /// ψ as a point of [`Self::space`].
    pub fn to_values(&self) -> ParamValues {
        let mut values: Vec<ParamValue> =
            self.continuous_values().iter().map(|v| ParamValue::Continuous(*v)).collect();
        let weather = Weather::ALL.iter().position(|w| *w == self.weather).unwrap_or(0);
        values.push(ParamValue::Categorical(weather));
        ParamValues(values)
    }

    /// ψ from a point of [`Self::space`] (e.g. a policy sample); checked against the bounds.
    pub fn from_values(values: &ParamValues) -> Result<Self, SceneError> {
        Self::space().check(values)?;
        let c = |i: usize| values.continuous(i).unwrap_or_default();
        let weather = Weather::ALL[values.categorical(13).unwrap_or_default()];
        Ok(Self {
            road_length: c(0),
            weather,
            weather_intensity: c(1),
            car_type_weights: [c(2), c(3), c(4), c(5), c(6)],
            cars_per_lane_100m: c(7),
            houses_per_side_100m: c(8),
            house_variety: c(9),
            sun_elevation_deg: c(10),
            camera_height: c(11),
            camera_pitch_jitter_deg: c(12),
        })
    }

    /// Probability of each car type.
    pub fn car_type_probabilities(&self) -> [f64; 5] {
        let total: f64 = self.car_type_weights.iter().sum();
        self.car_type_weights.map(|w| w / total)
    }
}

impl Validate for TrafficParams {
    fn validate(&self) -> Result<(), InvalidField> {
        for ((name, lo, hi), value) in CONTINUOUS.iter().zip(self.continuous_values()) {
            let field = match *name {
                "car_weight.sedan" => "car_type_weights[0]",
                "car_weight.suv" => "car_type_weights[1]",
                "car_weight.van" => "car_type_weights[2]",
                "car_weight.pickup" => "car_type_weights[3]",
                "car_weight.bus" => "car_type_weights[4]",
                other => other,
            };
            check_range(field, value, *lo, *hi)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use l2s_core::{ConfigError, parse_ron};
    use std::path::Path;

    #[test]
    fn car_type_index_is_the_position_in_all() {
        for (i, kind) in CarType::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
    }

    #[test]
    fn values_round_trip_through_the_flat_view() {
        let p = TrafficParams { weather: Weather::Fog, road_length: 150.0, ..TrafficParams::default() };
        let values = p.to_values();
        let flat = TrafficParams::space().to_flat(&values).expect("in bounds");
        assert_eq!(flat.len(), 13 + 4);
        let back = TrafficParams::from_values(&TrafficParams::space().from_flat(&flat).expect("length"))
            .expect("valid");
        assert_eq!(back.weather, Weather::Fog);
        assert!((back.road_length - 150.0).abs() < 1e-9);
    }

    #[test]
    fn out_of_range_values_are_refused_with_the_field_name() {
        let text = "(road_length: 500.0, weather: Rain, weather_intensity: 0.5, car_type_weights: (0.5, 0.5, 0.5, 0.5, 0.5), \
                    cars_per_lane_100m: 2.0, houses_per_side_100m: 4.0, house_variety: 0.5, sun_elevation_deg: 40.0, \
                    camera_height: 1.8, camera_pitch_jitter_deg: 1.0)";
        let err = parse_ron::<TrafficParams>(text, Path::new("scene.ron")).expect_err("road too long");
        assert!(matches!(&err, ConfigError::Invalid { field, .. } if field.field == "road_length"), "{err}");
        let mut p = TrafficParams::default();
        p.car_type_weights[4] = 0.0;
        assert_eq!(p.validate().expect_err("zero weight").field, "car_type_weights[4]");
        let bad = TrafficParams::space().from_flat(&[0.5; 17]).expect("length");
        assert!(TrafficParams::from_values(&bad).is_ok());
        let mut too_few = bad.clone();
        too_few.0.pop();
        assert!(TrafficParams::from_values(&too_few).is_err());
    }
}
