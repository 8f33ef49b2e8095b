//! A hostile control plane on the sandbox (root): exec streams reset mid-batch and probe pods
//! restarted in place must never change a verdict. `netassay bench chaos` runs the scenarios
//! clean and under the faults and compares every cell; in a test binary of its own, as its runs
//! are long and load the machine.
//!
//! On the reference cluster the real API server relays the node's exec cuts and reports its
//! restarts, so the same rule is checked there with the faults the node carries.

mod run_common;

use netassay_sandbox::reference;
use run_common::{root_or_skip, run, text};

/// A few scenarios that together cover TCP and UDP, named ports, updated policies and pods, and
/// cross-namespace egress: each probe batch meets the faults several times.
const SCENARIOS: &str = "default-deny-ingress,allow-all,updated-policy,allow-ingress-on-one-named-port,allow-ingress-from-updated-pod,egress-to-pod-in-other-namespace,default-deny-ingress-udp";

/// Runs `bench chaos` with exec-resets + pod-restarts on [`SCENARIOS`] and checks its row: exit
/// 0, no cell differing from the clean run, and the faults struck (replays or restarts were
/// counted), so the comparison is not vacuous.
fn exec_resets_and_pod_restarts_leave_every_cell(extra: &[&str]) {
    let mut args = vec![
        "bench",
        "chaos",
        "--profile",
        "core",
        "--scenarios",
        SCENARIOS,
        "--faults",
        "exec-resets+pod-restarts",
        "--cni-fault",
        "none",
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
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

// DESIGN §6: with the compliant dataplane, exec-resets + pod-restarts end in exit 0 with the
// same per-cell statuses as the clean run (or exit 3), never exit 1.
#[test]
fn exec_resets_and_pod_restarts_change_no_verdict() {
    if !root_or_skip("exec_resets_and_pod_restarts_change_no_verdict") {
        return;
    }
    exec_resets_and_pod_restarts_leave_every_cell(&[]);
}

// The same on the reference cluster: the node's kubelet endpoint cuts exec streams that the
// real kube-apiserver relays, and the node kills and restarts probe pods in place, reporting
// restartCount through the real API.
#[test]
fn on_the_reference_cluster_exec_resets_and_pod_restarts_change_no_verdict() {
    let test = "on_the_reference_cluster_exec_resets_and_pod_restarts_change_no_verdict";
    if !root_or_skip(test) {
        return;
    }
    if let Err(e) = reference::check_binaries(&reference::bin_dir(None), &[]) {
        assert!(std::env::var_os("CI").is_none(), "in CI: {e}");
        eprintln!("{test}: skipped: {e}");
        return;
    }
    exec_resets_and_pod_restarts_leave_every_cell(&["--sandbox-control-plane", "kubernetes"]);
}
