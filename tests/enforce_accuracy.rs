//! Time-to-enforce accuracy on the sandbox (root): `netassay bench enforce` with injected
//! enforcement delays. In a test binary of its own, because cargo runs the tests of one binary
//! in parallel and other sandbox runs beside it would disturb the timing it checks.

mod run_common;

use run_common::{root_or_skip, run, text};

// DESIGN §7b: time-to-enforce measures the enforcer, not the probe timeout. With enforcement
// delays of 300 ms and 1.5 s injected, the measured figure (median of three runs) stays within
// max(100 ms, 10 %) of the delay plus the late=0 baseline of the same step.
#[test]
fn time_to_enforce_follows_injected_enforcement_delays() {
    if !root_or_skip("time_to_enforce_follows_injected_enforcement_delays") {
        return;
    }
    let out = run(&[
        "bench",
        "enforce",
        "--delays",
        "0,300ms,1500ms",
        "--scenarios",
        "default-deny-ingress",
        "--repeat",
        "3",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    for delay in ["late=300ms", "late=1500ms"] {
        let row = stdout
            .lines()
            .find(|l| {
                l.contains("default-deny-ingress › deny all ingress in x") && l.contains(delay)
            })
            .unwrap_or_else(|| panic!("no row for {delay}:\n{stdout}"));
        assert!(row.trim_end().ends_with("ok"), "{row}");
    }
}
