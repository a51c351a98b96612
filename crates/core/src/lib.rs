//! Foundations shared by every l2s crate: RON configs with located errors ([`config`]),
//! the master-seed tree ([`seed`]) and parameter spaces ([`space`]).
//!
//! This crate has no heavy dependencies on purpose: the simulator description, the
//! meta-learner and the toy environment all build on it without pulling in Bevy or burn.

pub mod config;
pub mod seed;
pub mod space;

pub use config::{ConfigError, InvalidField, Validate, load_ron, parse_ron};
pub use seed::SeedTree;
pub use space::{Dim, ParamSpace, ParamValue, ParamValues, SpaceError};
