//! The traffic simulator's parameters ψ and the sampler (ψ, seed) → [`SceneDescription`].
//!
//! Pure Rust: no Bevy, no GPU. The render crate turns a description into pixels; the
//! meta-learner sees ψ only through [`TrafficParams::space`] and its flat values.

pub mod params;
pub mod sampler;

pub use params::{CarType, TrafficParams, Weather};
pub use sampler::{Camera, Car, House, Light, Road, RoofKind, SceneDescription, WeatherState, sample_scene};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SceneError {
    #[error("invalid scene parameters: {0}")]
    Invalid(#[from] l2s_core::InvalidField),
    #[error("parameter vector does not fit the traffic space: {0}")]
    Space(#[from] l2s_core::SpaceError),
}
