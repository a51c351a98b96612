//! What the end-to-end tests share: running the `l2s` binary and reading what it says.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn l2s(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_l2s")).args(args).current_dir(cwd).output().expect("l2s starts")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
