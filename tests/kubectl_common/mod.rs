//! Which kubectl the tests drive: `NETASSAY_KUBECTL`, then the one the reference-cluster script
//! builds (`target/reference-cluster/bin/kubectl`), then `kubectl` on PATH. Without one a test
//! says it skipped, and fails when `CI` is set: a kubectl test never passes silently in CI.
#![allow(dead_code)] // each test file uses its own subset

use std::path::PathBuf;

/// The kubectl to use, or `None` (after saying so) when there is none outside CI.
pub fn kubectl_or_skip(test: &str) -> Option<PathBuf> {
    let found = find();
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: no kubectl (set NETASSAY_KUBECTL, build it with scripts/reference-cluster/build.sh, or put one on PATH)"
        );
        eprintln!(
            "{test}: skipped: no kubectl (NETASSAY_KUBECTL, target/reference-cluster/bin/kubectl or PATH)"
        );
    }
    found
}

fn find() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("NETASSAY_KUBECTL").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "NETASSAY_KUBECTL={} is not a file",
            path.display()
        );
        return Some(path);
    }
    let built =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/reference-cluster/bin/kubectl");
    if built.is_file() {
        return Some(built);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| {
            std::process::Command::new(candidate)
                .args(["version", "--client"])
                .output()
                .is_ok_and(|out| out.status.success())
        })
}
