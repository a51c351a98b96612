//! The wiring behind the `l2s` binary: which experiment a config file names and how it is
//! run, the process-wide allocator settings of CPU training and the software rasteriser's
//! threads. Everything substantial
//! lives in the crates under `crates/`.

pub mod allocator;
pub mod experiment;
pub mod lavapipe;
