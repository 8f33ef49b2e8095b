//! Time-to-enforce follows the enforcer, on the sandbox (root): `netassay run --sandbox` with
//! enforcement delays injected (`--sandbox-fault late=D`). In a test binary of its own, because
//! cargo runs the tests of one binary in parallel and other sandbox runs beside it would disturb
//! the timing it checks.
//!
//! What is asserted is the property, with bounds that a loaded machine cannot break: load only
//! delays the sandbox's sync and the probes, it never makes the enforcer visible earlier. How
//! close the figure comes to the delay (within max(100 ms, 10 %) of D plus the compliant
//! baseline, median of repeated runs) is a figure of merit that load moves by more than that:
//! `netassay bench enforce` measures and reports it.

mod run_common;

use run_common::{root_or_skip, run, text};
use serde_json::Value;

const SCENARIO: &str = "default-deny-ingress";
const STEP: &str = "deny all ingress in x";
/// The probe timeout of the runs: long, so that a figure tied to it (the bug this guards
/// against read the end of the first dropped probe: D + the timeout) is far out of bounds.
const PROBE_TIMEOUT_MS: u64 = 4000;
/// How much earlier than D the figure may be: the delay starts when the node syncs, which may
/// come just before the API server's answer (t0), and a drop is evidence at its probe's start.
const EARLY_MS: u64 = 250;
/// How much later than D it may be: the compliant baseline (tens of ms) plus what load adds to
/// the sync and the probes' start. A quarter of the probe timeout.
const LATE_MS: u64 = 1000;

/// The step's time-to-enforce (ms) with `late=<delay_ms>ms` injected, from the run's JSON.
fn figure(delay_ms: u64) -> u64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("run.json");
    let out = run(&[
        "run",
        "--sandbox",
        "--sandbox-fault",
        &format!("late={delay_ms}ms"),
        "--parallel",
        "1",
        "--probe-timeout",
        &format!("{PROBE_TIMEOUT_MS}ms"),
        "--exact",
        SCENARIO,
        "--json",
        json.to_str().expect("utf-8 path"),
    ]);
    let said = format!(
        "late={delay_ms}ms: exit {:?}\n{}\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    let doc: Value = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| panic!("no JSON report: {said}"));
    let step = doc["scenarios"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["name"] == SCENARIO)
        .flat_map(|s| s["steps"].as_array().into_iter().flatten())
        .find(|st| st["name"] == STEP)
        .unwrap_or_else(|| panic!("no step {SCENARIO} › {STEP}: {said}"));
    assert!(
        step["changed_cells"].as_u64().unwrap_or(0) > 0,
        "the step changes paths, so it is measured: {step}"
    );
    step["time_to_enforce"]
        .as_u64()
        .unwrap_or_else(|| panic!("no time-to-enforce (the changed paths never agreed): {step}"))
}

// DESIGN §7b: time-to-enforce measures the enforcer, not the probe timeout. With delays of
// 300 ms and 2 s, each figure lies in [D - 250 ms, D + 1 s]: those windows do not overlap, so a
// figure that ignores the delay cannot pass both, and one tied to the 4 s probe timeout is
// seconds out of both.
#[test]
fn time_to_enforce_follows_injected_enforcement_delays() {
    if !root_or_skip("time_to_enforce_follows_injected_enforcement_delays") {
        return;
    }
    let delays = [300, 2000];
    assert!(
        delays[0] + LATE_MS < delays[1] - EARLY_MS,
        "the windows must not overlap"
    );
    let mut out_of_bounds = Vec::new();
    for delay in delays {
        let measured = figure(delay);
        let (low, high) = (delay - EARLY_MS, delay + LATE_MS);
        eprintln!("late={delay}ms: time-to-enforce {measured} ms (bounds {low}..={high} ms)");
        if !(low..=high).contains(&measured) {
            out_of_bounds.push(format!(
                "late={delay}ms: {measured} ms, not within {low}..={high} ms"
            ));
        }
    }
    assert!(out_of_bounds.is_empty(), "{}", out_of_bounds.join("\n"));
}
