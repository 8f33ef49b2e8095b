//! Cilium policies applied to a real Cilium (the reference cluster with `--sandbox-cni cilium`:
//! cilium-agent v1.20.2 and its CRDs): a run as netassay's least-privilege ServiceAccount
//! applies CNPs and CCNPs, the oracle's verdicts hold, and no CCNP outlives the run, whether it
//! ends or is interrupted (SIGINT: the interrupt path's cleanup).
//!
//! Needs root, `ip`, `nft` and the binaries of scripts/reference-cluster/build.sh with Cilium's
//! (CI builds them before `cargo test`). Without them the test says so and passes, unless `CI`
//! is set.

mod run_common;

use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::{Api, Client};
use netassay_sandbox::reference;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NETASSAY: &str = env!("CARGO_BIN_EXE_netassay");

fn usable() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let bins =
        reference::check_binaries(&reference::bin_dir(None), &["cilium-agent", "cilium-cni"]);
    let why = match (root, bins) {
        (true, Ok(())) => return true,
        (false, _) => "the Cilium tests need root".to_string(),
        (true, Err(e)) => e.to_string(),
    };
    assert!(std::env::var_os("CI").is_none(), "in CI: {why}");
    eprintln!("skipped: {why}");
    false
}

fn ccnps() -> ApiResource {
    ApiResource {
        group: "cilium.io".into(),
        version: "v2".into(),
        api_version: "cilium.io/v2".into(),
        kind: "CiliumClusterwideNetworkPolicy".into(),
        plural: "ciliumclusterwidenetworkpolicies".into(),
    }
}

/// The names of netassay's CCNPs in the cluster.
async fn netassay_ccnps(admin: &Client) -> Vec<String> {
    let api: Api<DynamicObject> = Api::all_with(admin.clone(), &ccnps());
    api.list(&ListParams::default().labels("app.kubernetes.io/managed-by=netassay"))
        .await
        .expect("CCNPs list (Cilium's CRDs are installed)")
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect()
}

/// `netassay sandbox up` with Cilium (and `extra` flags); its admin kubeconfig, which it prints
/// once the sandbox is up (an empty path when it exited instead).
fn sandbox_up(extra: &[&str]) -> (Child, PathBuf) {
    run_common::sandbox_up_reference(&[&["--sandbox-cni", "cilium"], extra].concat())
}

/// Interrupts a child still running (the sandbox: SIGINT removes everything; a run: its
/// interrupt path cleans up) however the test ends, panics included.
struct Stop(Child);

impl Drop for Stop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            interrupt(&self.0);
            let _ = self.0.wait();
        }
    }
}

fn interrupt(child: &Child) {
    // SAFETY: kill has no memory preconditions; the pid is our own child's.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
}

fn run_args<'a>(kubeconfig: &'a str, json: &'a str, scenarios: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "--kubeconfig",
        kubeconfig,
        "--profile",
        "cilium",
        "--converge-timeout",
        "45s",
        "--json",
        json,
        "--exact",
    ];
    args.extend_from_slice(scenarios);
    args
}

#[tokio::test(flavor = "multi_thread")]
async fn cnps_and_ccnps_are_applied_judged_and_never_left_behind() {
    if !usable() {
        return;
    }
    let (up, admin_kubeconfig) = sandbox_up(&[]);
    let _up = Stop(up);
    assert!(
        admin_kubeconfig.is_file(),
        "sandbox up printed {admin_kubeconfig:?}"
    );
    // netassay runs as its ServiceAccount (manifests/rbac.yaml): a missing grant is a 403.
    let own = admin_kubeconfig.with_file_name("netassay.kubeconfig");
    let own = own.to_str().expect("UTF-8 path").to_string();
    let admin = run_common::kube_client(&admin_kubeconfig).await;
    let dir = std::env::temp_dir().join(format!("netassay-cilium-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("run.json");
    let json = json.to_str().expect("UTF-8 path").to_string();

    // A whole run: a CCNP (created, replaced, deleted) and CNPs naming other namespaces.
    let out = Command::new(NETASSAY)
        .args(run_args(
            &own,
            &json,
            &[
                "cilium-ccnp-empty-peer-is-every-pod",
                "cilium-ingress-from-other-namespaces",
            ],
        ))
        .output()
        .expect("netassay run");
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let report = json_report(&json);
    let verdicts: Vec<(String, String)> = report["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                s["verdict"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(verdicts.len(), 2, "{verdicts:?}");
    assert!(
        verdicts.iter().all(|(_, v)| v == "passed"),
        "{verdicts:?}\n{log}"
    );
    assert_eq!(
        netassay_ccnps(&admin).await,
        Vec::<String>::new(),
        "after a run"
    );

    // An interrupted run: SIGINT once its CCNP exists; the interrupt path deletes it.
    let mut run = Stop(
        Command::new(NETASSAY)
            .args(run_args(&own, &json, &["cilium-k8tre-project-isolation"]))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("netassay run starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    let seen = loop {
        let now = netassay_ccnps(&admin).await;
        if !now.is_empty() || Instant::now() > deadline {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(seen.len(), 1, "the run's CCNP appears: {seen:?}");
    assert!(
        seen[0].starts_with("netassay-") && seen[0].ends_with("-allow-pod-to-pod-via-gateway"),
        "named with the run and the fixture: {seen:?}"
    );
    interrupt(&run.0);
    let status = run.0.wait().expect("the run ends");
    assert_eq!(status.code(), Some(130), "interrupted");
    assert_eq!(
        netassay_ccnps(&admin).await,
        Vec::<String>::new(),
        "after an interrupt"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Beside the oracle's reasons, every cell that went wrong on Cilium carries Cilium's own
/// account from Hubble: an ipBlock naming a pod's address never matches that pod on Cilium (its
/// deviation list), so the pod's egress is default-deny there and Hubble saw the drop.
#[test]
fn a_failing_cell_on_cilium_carries_hubbles_account_of_the_drop() {
    if !usable() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("run.json");
    let out = Command::new(NETASSAY)
        .args([
            "run",
            "--sandbox",
            "--sandbox-control-plane",
            "kubernetes",
            "--sandbox-cni",
            "cilium",
            "--profile",
            "core",
            "--exact",
            "egress-to-cidr-block",
            "--converge-timeout",
            "10s",
            "--json",
        ])
        .arg(&json)
        .output()
        .expect("netassay run");
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "the deviation fails:\n{log}");
    let report = json_report(&json);
    let wrong: Vec<&serde_json::Value> = report["scenarios"][0]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .flat_map(|s| s["cells"].as_array().into_iter().flatten())
        .filter(|c| c["status"] == "fail" || c["status"] == "flapping")
        .collect();
    assert!(!wrong.is_empty(), "{log}");
    for c in wrong {
        // The oracle says allow (the ipBlock admits the address); Cilium dropped it for want of
        // a rule that allows it, at the source's egress.
        assert_eq!(c["verdict"], "allow", "{c}");
        let account = c["cni_account"].as_str().unwrap_or_default();
        assert!(
            account.starts_with("Hubble: ")
                && !account.starts_with("Hubble: 0 dropped")
                && account.contains("last: DROPPED at egress (policy denied: no rule allows it)"),
            "{} -> {}: {account:?}",
            c["from"],
            c["to"]
        );
    }
}

/// Asking for Cilium's API (`--sandbox-cilium-api on`) on a sandbox that runs Cilium is asking
/// for what it has: the sandbox comes up (Cilium's own API), not refused as bad input.
#[test]
fn cilium_api_on_is_cilium_own_api_under_the_cilium_cni() {
    if !usable() {
        return;
    }
    let (up, admin_kubeconfig) = sandbox_up(&["--sandbox-cilium-api", "on"]);
    let mut up = Stop(up);
    assert!(
        admin_kubeconfig.is_file(),
        "sandbox up printed {admin_kubeconfig:?} (exit {:?})",
        up.0.try_wait()
    );
    interrupt(&up.0);
    let status = up.0.wait().expect("sandbox up ends");
    assert_eq!(
        status.code(),
        Some(0),
        "SIGINT removes the sandbox and exits 0"
    );
}

/// The run's JSON report.
fn json_report(path: impl AsRef<std::path::Path>) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("the JSON report")).expect("JSON")
}
