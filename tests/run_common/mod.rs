//! Shared by the end-to-end tests that run the netassay binary on the sandbox.
#![allow(dead_code)] // each test file uses its own subset

use std::process::{Command, Output};

/// True as root; otherwise says the test is skipped, and fails under CI (which runs as root).
pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: CI must run these tests as root"
        );
        eprintln!("{test}: skipped (needs root for network namespaces)");
    }
    root
}

/// The built binary, run from the repository root.
pub fn netassay() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_netassay"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

pub fn run(args: &[&str]) -> Output {
    netassay().args(args).output().expect("run netassay")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
