//! The wiring behind the `l2s` binary: which experiment a config file names and how it is
//! run, and the process-wide allocator settings of CPU training. Everything substantial
//! lives in the crates under `crates/`.

pub mod allocator;
pub mod experiment;
