//! A hostile control plane on the sandbox (root): exec streams reset mid-batch and probe pods
//! restarted in place must never change a verdict. `netassay bench chaos` runs the scenarios
//! clean and under the faults and compares every cell; in a test binary of its own, as its runs
//! are long and load the machine.

mod run_common;

use run_common::{root_or_skip, run, text};

// DESIGN §6: with the compliant dataplane, exec-resets + pod-restarts end in exit 0 with the
// same per-cell statuses as the clean run (or exit 3), never exit 1; and the faults did happen
// (replays and restarts were counted), so the comparison is not vacuous.
#[test]
fn exec_resets_and_pod_restarts_change_no_verdict() {
    if !root_or_skip("exec_resets_and_pod_restarts_change_no_verdict") {
        return;
    }
    let out = run(&[
        "bench",
        "chaos",
        "--profile",
        "core",
        "--scenarios",
        "default-deny-ingress,allow-all,updated-policy,allow-ingress-on-one-named-port,allow-ingress-from-updated-pod,egress-to-pod-in-other-namespace,default-deny-ingress-udp",
        "--faults",
        "exec-resets+pod-restarts",
        "--cni-fault",
        "none",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with("exec-resets+pod-restarts"))
        .unwrap_or_else(|| panic!("no row for the faults:\n{stdout}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    // faults exit cells differing failed api exec restarts wall result
    assert_eq!(cols[1], "0", "{row}");
    assert_eq!(cols[3], "0", "no cell may differ: {row}");
    let replays: u64 = cols[6].parse().expect("exec replays");
    let restarts: u64 = cols[7].parse().expect("pod restarts");
    assert!(
        replays + restarts > 0,
        "the faults never struck, so nothing was shown: {row}"
    );
    assert!(row.trim_end().ends_with("ok"), "{row}");
}
