//! Inputs from the cargo-fuzz targets in fuzz/, replayed on stable: every committed corpus file
//! goes through its target's own check (tests/fuzz_checks/, which the targets call too: the same
//! entry points, the same topology and every assertion), and must not panic. Each corpus must
//! also get past the checks' refusals somewhere, so that the replay checks the invariants and not
//! only the early returns. The minimized inputs of crashes fuzzing found go here too, each with
//! its cause (none so far: see fuzz/README.md).

mod fuzz_checks;

use fuzz_checks::{emulator_request, policy_oracle, probe_batch, profile_config, scenario_loader};
use std::path::PathBuf;

/// A fuzz target's check, by the target's name.
type Replay = (&'static str, fn(&[u8]) -> bool);

const TARGETS: [Replay; 5] = [
    ("scenario_loader", scenario_loader::check),
    ("profile_config", profile_config::check),
    ("probe_batch", probe_batch::check),
    ("emulator_request", emulator_request::check),
    ("policy_oracle", policy_oracle::check),
];

/// The committed corpus of one fuzz target.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
        .into_iter()
        .map(|path| {
            let data = std::fs::read(&path).expect("corpus file");
            (path, data)
        })
        .collect()
}

#[test]
fn the_committed_fuzz_corpora_replay_cleanly() {
    let mut failures = Vec::new();
    for (target, check) in TARGETS {
        let files = corpus(target);
        let mut checked = 0;
        for (path, data) in &files {
            match std::panic::catch_unwind(|| check(data)) {
                Ok(true) => checked += 1,
                Ok(false) => {}
                Err(_) => failures.push(format!("{target}: {} panics", path.display())),
            }
        }
        eprintln!(
            "{target}: {checked} of {} corpus files got past every refusal",
            files.len()
        );
        if checked == 0 {
            failures.push(format!(
                "{target}: no corpus file got past the check's refusals, so no invariant was checked"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// What "got past every refusal" means for the oracle: a valid policy is compiled and every cell
// checked; a policy the validator refuses leaves nothing to check.
#[test]
fn the_oracle_check_counts_only_policies_the_validator_accepts() {
    let deny = br#"{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"d","namespace":"x"},"spec":{"podSelector":{},"policyTypes":["Ingress"]}}"#;
    assert!(policy_oracle::check(deny));
    let invalid = br#"{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"d","namespace":"x"},"spec":{"podSelector":{},"policyTypes":["Sideways"]}}"#;
    assert!(!policy_oracle::check(invalid));
}
