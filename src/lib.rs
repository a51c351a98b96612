//! The wiring behind the `l2s` binary: which experiment a config file names and how it is
//! run. Everything substantial lives in the crates under `crates/`.

pub mod experiment;
