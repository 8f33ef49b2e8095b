//! The reference cluster (`--sandbox-control-plane kubernetes`: real etcd, kube-apiserver and
//! kube-controller-manager under netassay's node agent) against the emulator:
//! - the same API calls get the same answers (status codes, reasons, field causes) from both;
//! - netassay's run identity there is exactly manifests/rbac.yaml, nothing more;
//! - the same scenarios give the same per-cell statuses on both;
//! - a killed owner's control plane dies with it, and the sweep removes the rest.
//!
//! Needs root, `ip`, `nft` and the binaries of scripts/reference-cluster/build.sh (CI builds
//! them before `cargo test`). Without them each test says so and passes, unless `CI` is set.

mod kubectl_common;
mod run_common;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use netassay_core::probe::{AgentLine, Outcome, ProbeBatch, ProbeKind, ProbeSpec};
use netassay_sandbox::dataplane::Dataplane;
use netassay_sandbox::node::components::ServiceProxy;
use netassay_sandbox::reference;
use netassay_sandbox::{ControlPlane, Sandbox, SandboxOptions};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const NETASSAY: &str = env!("CARGO_BIN_EXE_netassay");

fn usable() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let bins = reference::check_binaries(&reference::bin_dir(None), &[]);
    let why = match (root, bins) {
        (true, Ok(())) => return true,
        (false, _) => "the reference-cluster tests need root".to_string(),
        (true, Err(e)) => e.to_string(),
    };
    assert!(std::env::var_os("CI").is_none(), "in CI: {why}");
    eprintln!("skipped: {why}");
    false
}

async fn start(control_plane: ControlPlane) -> Sandbox {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = SandboxOptions {
        control_plane,
        ..SandboxOptions::default()
    };
    Sandbox::start_with_executable(options, NETASSAY.into())
        .await
        .unwrap_or_else(|e| panic!("the {control_plane} sandbox starts: {e}"))
}

/// What an API call came back with: success, or the Status' code, reason and field causes.
fn outcome<T>(result: Result<T, kube::Error>) -> String {
    match result {
        Ok(_) => "ok".to_string(),
        Err(kube::Error::Api(s)) => {
            let mut causes: Vec<String> = s
                .details
                .iter()
                .flat_map(|d| d.causes.iter())
                .map(|c| format!("{}:{}", c.field, c.reason))
                .collect();
            causes.sort();
            format!("{} {} [{}]", s.code, s.reason, causes.join(", "))
        }
        Err(e) => format!("error: {e}"),
    }
}

/// Creates NetworkPolicy `name` with `spec` in namespace `ns`.
async fn create_policy(client: &Client, ns: &str, name: &str, spec: Value) {
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    policies
        .create(&PostParams::default(), &policy(ns, name, spec))
        .await
        .expect("policy");
}

fn policy(namespace: &str, name: &str, spec: Value) -> NetworkPolicy {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }))
    .expect("policy")
}

async fn wait_running(pods: &Api<Pod>, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    loop {
        if let Ok(p) = pods.get(name).await {
            last = p.status.clone();
            let ready = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if ready {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "pod {name} never became ready: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn exec_outcome(pods: &Api<Pod>, name: &str, command: &[&str]) -> String {
    let params = kube::api::AttachParams::default().stdout(true).stderr(true);
    let mut process = match pods.exec(name, command.to_vec(), &params).await {
        Ok(p) => p,
        Err(e) => return outcome::<()>(Err(e)),
    };
    let mut stdout = String::new();
    if let Some(mut out) = process.stdout() {
        use tokio::io::AsyncReadExt;
        let _ = out.read_to_string(&mut stdout).await;
    }
    let status = match process.take_status() {
        Some(s) => s.await,
        None => None,
    };
    let _ = process.join().await;
    let status = status
        .map(|s| {
            let code = s
                .details
                .as_ref()
                .and_then(|d| d.causes.as_ref())
                .and_then(|c| c.first())
                .and_then(|c| c.message.clone())
                .unwrap_or_default();
            format!(
                "{} {} {code}",
                s.status.unwrap_or_default(),
                s.reason.unwrap_or_default()
            )
        })
        .unwrap_or_else(|| "no status".into());
    format!("stdout={:?} status={status}", stdout.trim())
}

/// The same calls, in order, against one backend; each answer keyed by what was asked.
async fn api_calls(client: Client) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let ns = "netassay-differential";
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": ns, "labels": {"team": "red"}}}))
            .unwrap();
    out.insert(
        "01 create namespace".into(),
        outcome(namespaces.create(&PostParams::default(), &namespace).await),
    );
    out.insert(
        "02 create namespace again".into(),
        outcome(namespaces.create(&PostParams::default(), &namespace).await),
    );
    let label = json!({"metadata": {"labels": {"team": "blue", "extra": "x"}}});
    let patched = namespaces
        .patch(ns, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .map(|n| n.metadata.labels.unwrap_or_default());
    out.insert(
        "03 label namespace".into(),
        match patched {
            Ok(labels) => format!("ok {labels:?}"),
            Err(e) => outcome::<()>(Err(e)),
        },
    );
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    let good = policy(
        ns,
        "deny",
        json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
    );
    out.insert(
        "04 create policy".into(),
        outcome(policies.create(&PostParams::default(), &good).await),
    );
    let created = policies.get("deny").await;
    let spec = created
        .as_ref()
        .ok()
        .and_then(|p| serde_json::to_value(&p.spec).ok())
        .unwrap_or(Value::Null);
    out.insert("05 get policy (defaulted spec)".into(), spec.to_string());
    let bad_cases = [
        (
            "06 port name with endPort",
            json!({"podSelector": {}, "ingress": [{"ports": [{"port": "web", "endPort": 81}]}]}),
        ),
        (
            "07 endPort below port",
            json!({"podSelector": {}, "ingress": [{"ports": [{"port": 90, "endPort": 81}]}]}),
        ),
        (
            "08 bad cidr",
            json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]}),
        ),
        (
            "09 except outside cidr",
            json!({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24"]}}]}]}),
        ),
        (
            "10 bad policy type",
            json!({"podSelector": {}, "policyTypes": ["Sideways"]}),
        ),
        (
            "11 bad selector operator",
            json!({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Maybe"}]}}),
        ),
        (
            "12 bad protocol",
            json!({"podSelector": {}, "ingress": [{"ports": [{"protocol": "ICMP", "port": 1}]}]}),
        ),
    ];
    for (name, spec) in bad_cases {
        let p = policy(ns, "bad", spec);
        out.insert(
            name.into(),
            outcome(policies.create(&PostParams::default(), &p).await),
        );
    }
    let mut stale = created.expect("the policy exists");
    stale.metadata.resource_version = Some("1".into());
    out.insert(
        "13 replace with a stale resourceVersion".into(),
        outcome(
            policies
                .replace("deny", &PostParams::default(), &stale)
                .await,
        ),
    );
    out.insert(
        "14 get missing policy".into(),
        outcome(policies.get("missing").await),
    );
    out.insert(
        "15 delete policy".into(),
        outcome(policies.delete("deny", &DeleteParams::default()).await),
    );
    out.insert(
        "16 delete policy again".into(),
        outcome(policies.delete("deny", &DeleteParams::default()).await),
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"containers": [{
            "name": "agent",
            "image": "netassay:sandbox",
            "command": ["netassay", "agent", "serve", "--identity", "x/web", "--listen", "tcp:80"],
            "ports": [{"containerPort": 80, "name": "web"}],
        }]},
    }))
    .unwrap();
    // The reference cluster refuses pods until kube-controller-manager made the namespace's
    // default ServiceAccount; netassay waits that out (cluster::is_service_account_race).
    let deadline = Instant::now() + Duration::from_secs(30);
    let created = loop {
        let r = pods.create(&PostParams::default(), &pod).await;
        match &r {
            Err(kube::Error::Api(s))
                if netassay::cluster::is_service_account_race(s) && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => break r,
        }
    };
    out.insert("17 create pod".into(), outcome(created));
    wait_running(&pods, "web").await;
    let listed = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .map(|l| l.items.len());
    out.insert("18 list pods by label".into(), format!("{listed:?}"));
    out.insert(
        "19 exec".into(),
        exec_outcome(&pods, "web", &["netassay", "--version"]).await,
    );
    out.insert(
        "20 exec exiting non-zero".into(),
        exec_outcome(&pods, "web", &["netassay", "agent", "no-such-command"]).await,
    );
    out.insert(
        "21 exec in a missing pod".into(),
        exec_outcome(&pods, "nobody", &["true"]).await,
    );
    let relabel = json!({"metadata": {"labels": {"app": "db"}}});
    out.insert(
        "22 label pod".into(),
        outcome(
            pods.patch("web", &PatchParams::default(), &Patch::Merge(&relabel))
                .await,
        ),
    );
    out.insert(
        "23 delete namespace".into(),
        outcome(namespaces.delete(ns, &DeleteParams::background()).await),
    );
    out
}

/// A check of one answer, and what it wants (for the failure message).
type Kind = (&'static str, fn(&str) -> bool);

fn is_ok(a: &str) -> bool {
    a == "ok"
}

/// What each call of [`api_calls`] must come back with, on both backends: a real answer of
/// its kind (a success, the Status code, reason and field at fault the API defines, the exec's
/// output and exit code), never a placeholder such as a transport error (`error: ...`), an exec
/// without a status (`no status`) or a spec that could not be read (`null`). Equal answers
/// alone would not show that: both backends failing alike are equal too.
fn answer_kinds() -> BTreeMap<&'static str, Kind> {
    let kinds: [(&'static str, Kind); 23] = [
        ("01 create namespace", ("ok", is_ok)),
        (
            "02 create namespace again",
            ("409 AlreadyExists", |a| a.starts_with("409 AlreadyExists")),
        ),
        (
            "03 label namespace",
            ("ok with the merged labels", |a| {
                a.starts_with("ok {")
                    && a.contains(r#""team": "blue""#)
                    && a.contains(r#""extra": "x""#)
                    && a.contains(r#""kubernetes.io/metadata.name": "netassay-differential""#)
            }),
        ),
        ("04 create policy", ("ok", is_ok)),
        (
            "05 get policy (defaulted spec)",
            ("the spec, policyTypes [Ingress]", |a| {
                serde_json::from_str::<Value>(a).is_ok_and(|spec| {
                    spec["podSelector"].is_object() && spec["policyTypes"] == json!(["Ingress"])
                })
            }),
        ),
        (
            "06 port name with endPort",
            ("422 Invalid at the port", |a| {
                a.starts_with("422 Invalid [spec.ingress[0].ports[0].")
            }),
        ),
        (
            "07 endPort below port",
            ("422 Invalid at the port", |a| {
                a.starts_with("422 Invalid [spec.ingress[0].ports[0].")
            }),
        ),
        (
            "08 bad cidr",
            ("422 Invalid at the cidr", |a| {
                a.starts_with("422 Invalid [spec.ingress[0].from[0].ipBlock.cidr:")
            }),
        ),
        (
            "09 except outside cidr",
            ("422 Invalid at the except", |a| {
                a.starts_with("422 Invalid [spec.egress[0].to[0].ipBlock.except[0]:")
            }),
        ),
        (
            "10 bad policy type",
            ("422 Invalid at policyTypes", |a| {
                a.starts_with("422 Invalid [spec.policyTypes[0]:")
            }),
        ),
        (
            "11 bad selector operator",
            ("422 Invalid at the operator", |a| {
                a.starts_with("422 Invalid [spec.podSelector.matchExpressions[0].operator:")
            }),
        ),
        (
            "12 bad protocol",
            ("422 Invalid at the protocol", |a| {
                a.starts_with("422 Invalid [spec.ingress[0].ports[0].protocol:")
            }),
        ),
        (
            "13 replace with a stale resourceVersion",
            ("409 Conflict", |a| a.starts_with("409 Conflict")),
        ),
        (
            "14 get missing policy",
            ("404 NotFound", |a| a.starts_with("404 NotFound")),
        ),
        ("15 delete policy", ("ok", is_ok)),
        (
            "16 delete policy again",
            ("404 NotFound", |a| a.starts_with("404 NotFound")),
        ),
        ("17 create pod", ("ok", is_ok)),
        ("18 list pods by label", ("one pod", |a| a == "Ok(1)")),
        (
            "19 exec",
            ("the version on stdout, status Success", |a| {
                a.starts_with(r#"stdout="netassay "#) && a.contains("status=Success")
            }),
        ),
        (
            "20 exec exiting non-zero",
            ("status Failure NonZeroExitCode and its code", |a| {
                a.contains("status=Failure NonZeroExitCode")
                    && a.rsplit(' ')
                        .next()
                        .and_then(|code| code.parse::<i32>().ok())
                        .is_some_and(|code| code != 0)
            }),
        ),
        (
            "21 exec in a missing pod",
            ("404 NotFound", |a| a.starts_with("404 NotFound")),
        ),
        ("22 label pod", ("ok", is_ok)),
        ("23 delete namespace", ("ok", is_ok)),
    ];
    BTreeMap::from(kinds)
}

// Whatever the call, what a failed call leaves behind is not an answer of its kind.
#[test]
fn no_placeholder_passes_for_an_answer() {
    let placeholders = [
        "",
        "error: error trying to connect: tcp connect error: Connection refused",
        "no status",
        "null",
        r#"stdout="" status=no status"#,
        "500 InternalError []",
        "Err(...)",
    ];
    for (call, (want, ok)) in answer_kinds() {
        for placeholder in placeholders {
            assert!(!ok(placeholder), "{call} ({want}) accepts {placeholder:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn both_backends_answer_the_same_api_calls_the_same_way() {
    if !usable() {
        return;
    }
    let emulator = start(ControlPlane::Emulator).await;
    let on_emulator = api_calls(run_common::kube_client(emulator.admin_kubeconfig()).await).await;
    emulator.stop().await;
    let real = start(ControlPlane::Kubernetes).await;
    let on_real = api_calls(run_common::kube_client(real.admin_kubeconfig()).await).await;
    real.stop().await;
    for (call, answer) in &on_real {
        eprintln!("{call}: {answer}");
    }
    let kinds = answer_kinds();
    let mut wrong = Vec::new();
    for (backend, answers) in [("kube-apiserver", &on_real), ("emulator", &on_emulator)] {
        let asked: Vec<&str> = answers.keys().map(String::as_str).collect();
        let known: Vec<&str> = kinds.keys().copied().collect();
        assert_eq!(
            asked, known,
            "answer_kinds lists every call api_calls makes"
        );
        for (call, answer) in answers {
            let (want, ok) = kinds[call.as_str()];
            if !ok(answer) {
                wrong.push(format!("{backend}: {call}: got {answer:?}, want {want}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "answers not of their kind:\n{}",
        wrong.join("\n")
    );
    let mut differences = Vec::new();
    for (call, real_answer) in &on_real {
        let emulated = on_emulator.get(call).cloned().unwrap_or_default();
        if &emulated != real_answer {
            differences.push(format!(
                "{call}:\n  kube-apiserver: {real_answer}\n  emulator:       {emulated}"
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "the emulator answers differently from the real API server:\n{}",
        differences.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_run_identity_is_exactly_rbac_yaml() {
    if !usable() {
        return;
    }
    let real = start(ControlPlane::Kubernetes).await;
    let run = run_common::kube_client(real.kubeconfig()).await;
    // What rbac.yaml grants works...
    let namespaces: Api<Namespace> = Api::all(run.clone());
    let listed = namespaces.list(&ListParams::default()).await;
    // ...and nothing else: no reading a namespace, no cluster roles, no secrets.
    let get = namespaces.get("default").await;
    let roles: Api<ClusterRole> = Api::all(run.clone());
    let role: ClusterRole =
        serde_json::from_value(json!({"metadata": {"name": "escalate"}, "rules": []})).unwrap();
    let create_role = roles.create(&PostParams::default(), &role).await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::all(run.clone());
    let list_secrets = secrets.list(&ListParams::default()).await;
    real.stop().await;
    assert_eq!(outcome(listed), "ok");
    for (what, answer) in [
        ("get a namespace", outcome(get)),
        ("create a ClusterRole", outcome(create_role)),
        ("list secrets", outcome(list_secrets)),
    ] {
        assert!(answer.starts_with("403 Forbidden"), "{what}: {answer}");
    }
}

/// Every judged cell of a JSON report: (scenario, step, from, to, port, protocol, via) ->
/// status and verdict.
fn cells(report: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(report).expect("the JSON report");
    let json: Value = serde_json::from_str(&text).expect("JSON");
    let mut out = BTreeMap::new();
    for scenario in json["scenarios"].as_array().into_iter().flatten() {
        for step in scenario["steps"].as_array().into_iter().flatten() {
            for cell in step["cells"].as_array().into_iter().flatten() {
                let key = format!(
                    "{} / {} / {} -> {} {}/{} via {}",
                    scenario["name"].as_str().unwrap_or_default(),
                    step["name"].as_str().unwrap_or_default(),
                    cell["from"].as_str().unwrap_or_default(),
                    cell["to"].as_str().unwrap_or_default(),
                    cell["port"],
                    cell["protocol"].as_str().unwrap_or_default(),
                    cell["via"].as_str().unwrap_or_default(),
                );
                out.insert(
                    key,
                    format!(
                        "{} {}",
                        cell["status"].as_str().unwrap_or_default(),
                        cell["verdict"].as_str().unwrap_or_default()
                    ),
                );
            }
        }
    }
    out
}

fn run_json(control_plane: &str, dir: &Path, filter: &[&str]) -> (i32, PathBuf) {
    let json = dir.join(format!("{control_plane}.json"));
    let output = Command::new(NETASSAY)
        .args(["run", "--sandbox", "--sandbox-control-plane", control_plane])
        .args(["--profile", "core,extended", "--json"])
        .arg(&json)
        .args(["--exact"])
        .args(filter)
        .stdin(Stdio::null())
        .output()
        .expect("netassay runs");
    let code = output.status.code().unwrap_or(-1);
    assert!(
        code == 0,
        "{control_plane}: exit {code}\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (code, json)
}

#[test]
fn the_same_scenarios_give_the_same_cells_on_both_backends() {
    if !usable() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // One of each kind of thing the node does: ingress and egress isolation, named ports per
    // pod, Services with named target ports (DNAT), namespace relabels, and a step whose
    // policy the API server must refuse.
    let filter = [
        "default-deny-all",
        "named-port-per-pod-ingress",
        "service-ip-named-port",
        "namespace-relabel-revokes",
        "endport-rejected",
    ];
    let (_, emulated) = run_json("emulator", dir.path(), &filter);
    let (_, real) = run_json("kubernetes", dir.path(), &filter);
    let (emulated, real) = (cells(&emulated), cells(&real));
    assert!(!real.is_empty(), "the reference run judged no cell");
    assert_eq!(
        emulated.keys().collect::<Vec<_>>(),
        real.keys().collect::<Vec<_>>(),
        "the two runs probed different cells"
    );
    let differing: Vec<String> = real
        .iter()
        .filter(|(k, v)| emulated.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}: kubernetes {v}, emulator {}", emulated[k]))
        .collect();
    assert!(differing.is_empty(), "{}", differing.join("\n"));
}

/// The control-plane processes the sandbox recorded in its pids file.
fn recorded_pids(control_plane: &Path) -> Vec<u32> {
    std::fs::read_to_string(control_plane.join(netassay_sandbox::processes::PIDS_FILE))
        .expect("the pids file")
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// SIGKILLs `up` (no cleanup code runs in the owner), waits until every one of `pids` is gone
/// (they die with their owner), then runs `netassay sandbox down`, which must succeed.
fn kill_owner_then_sweep(mut up: std::process::Child, pids: &[u32]) {
    up.kill().expect("kill");
    let _ = up.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids
        .iter()
        .any(|p| Path::new(&format!("/proc/{p}")).exists())
    {
        assert!(
            Instant::now() < deadline,
            "a process outlived its owner: {pids:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let down = Command::new(NETASSAY)
        .args(["sandbox", "down"])
        .output()
        .expect("sandbox down");
    assert!(down.status.success());
}

#[test]
fn a_killed_owner_leaves_no_control_plane_behind() {
    if !usable() {
        return;
    }
    let (up, kubeconfig) = run_common::sandbox_up_reference(&[]);
    let control_plane = kubeconfig.parent().expect("the control plane's folder");
    let pids = recorded_pids(control_plane);
    assert_eq!(
        pids.len(),
        3,
        "etcd, kube-apiserver, kube-controller-manager"
    );
    // The sweep removes the dead instance's folder (and its network namespaces).
    kill_owner_then_sweep(up, &pids);
    assert!(
        !control_plane.exists(),
        "{} is still there",
        control_plane.display()
    );
}

/// The same with kube-router on the CNI bridge plugin: its process dies with the owner, and the
/// sweep removes the instance's CNI folders (conflist, plugin links, host-local's allocations)
/// and the node namespace with kube-router's iptables rules and ipsets in it; the host's own
/// ipsets and iptables are untouched throughout.
#[test]
fn a_killed_owner_of_a_kube_router_sandbox_leaves_nothing_behind() {
    if !usable() {
        return;
    }
    let host_state = || {
        let sets = Command::new("ipset").args(["list", "-n"]).output();
        let rules = Command::new("iptables-nft-save").output();
        (
            sets.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default(),
            rules
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .filter(|l| !l.starts_with('#'))
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        )
    };
    let before = host_state();
    let (up, kubeconfig) = run_common::sandbox_up_reference(&["--sandbox-cni", "kube-router"]);
    let control_plane = kubeconfig.parent().expect("the control plane's folder");
    // /run/netassay/naXXXX/<control plane>/kubeconfig
    let instance = control_plane
        .parent()
        .expect("the instance's folder")
        .to_path_buf();
    let prefix = instance.file_name().unwrap().to_string_lossy().into_owned();
    let conflist = instance.join("cni/net.d/10-bridge.conflist");
    assert!(conflist.is_file(), "{} is written", conflist.display());
    assert!(instance.join("cni/bin/bridge").exists());
    let mut pids = recorded_pids(control_plane);
    let node = format!("{prefix}-node");
    let in_node = Command::new("ip")
        .args(["netns", "pids", &node])
        .output()
        .expect("ip netns pids");
    let kube_router: Vec<u32> = String::from_utf8_lossy(&in_node.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim() == "kube-router")
        })
        .collect();
    assert_eq!(kube_router.len(), 1, "kube-router runs in {node}");
    pids.extend(&kube_router);
    kill_owner_then_sweep(up, &pids);
    assert!(!instance.exists(), "{} is still there", instance.display());
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let netns = String::from_utf8_lossy(&netns.stdout);
    assert!(!netns.contains(&prefix), "{netns}");
    assert_eq!(
        host_state(),
        before,
        "the host's ipsets and iptables rules are untouched"
    );
}

/// kubectl (v1.37.2, built by the reference-cluster script) against the reference sandbox:
/// the commands people use while writing scenarios behave as on a real cluster.
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_works_against_the_reference_cluster() {
    if !usable() {
        return;
    }
    let kubectl = reference::bin_dir(None).join("kubectl");
    assert!(
        kubectl.is_file(),
        "{} is built by the script",
        kubectl.display()
    );
    let real = start(ControlPlane::Kubernetes).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = real.admin_kubeconfig().to_path_buf();
    let run_identity = real.kubeconfig().to_path_buf();
    let k = |kubeconfig: &Path, args: &[&str]| {
        let out = Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .output()
            .expect("kubectl runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ok = |args: &[&str]| {
        let (code, stdout, stderr) = k(&admin, args);
        assert_eq!(code, 0, "kubectl {args:?}: {stdout}{stderr}");
        stdout
    };
    let pod = dir.path().join("pod.yaml");
    std::fs::write(
        &pod,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: demo, labels: {app: web}}\n\
         spec:\n  containers:\n  - name: agent\n    image: netassay:sandbox\n    command: [netassay, agent, serve, --identity, demo/web, --listen, 'tcp:80']\n    ports: [{containerPort: 80, name: web}]\n",
    )
    .unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad, namespace: demo}\n\
         spec: {podSelector: {}, ingress: [{ports: [{port: web, endPort: 81}]}]}\n",
    )
    .unwrap();
    ok(&["create", "namespace", "demo"]);
    // The namespace's default ServiceAccount comes a moment later; kubectl apply may be refused
    // until then, as on any cluster.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out, err) = k(&admin, &["apply", "-f", pod.to_str().unwrap()]);
        if code == 0 {
            break;
        }
        assert!(
            err.contains("error looking up service account") && Instant::now() < deadline,
            "kubectl apply: {out}{err}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    ok(&[
        "wait",
        "-n",
        "demo",
        "--for=condition=Ready",
        "pod/web",
        "--timeout=60s",
    ]);
    let table = ok(&["get", "pods", "-n", "demo", "-o", "wide"]);
    for column in [
        "READY", "STATUS", "RESTARTS", "IP", "NODE", "1/1", "Running",
    ] {
        assert!(table.contains(column), "no {column} in:\n{table}");
    }
    let yaml = ok(&["get", "pod", "web", "-n", "demo", "-o", "yaml"]);
    assert!(yaml.contains("podIP: 10.244."), "{yaml}");
    let described = ok(&["describe", "pod", "web", "-n", "demo"]);
    assert!(
        described.contains("Status:") && described.contains("Running"),
        "{described}"
    );
    assert!(described.contains("Node:"), "{described}");
    assert!(ok(&["label", "pod", "web", "-n", "demo", "tier=db"]).contains("labeled"));
    let version = ok(&["exec", "-n", "demo", "web", "--", "netassay", "--version"]);
    assert_eq!(version.trim(), "netassay 0.1.0");
    let (code, _, stderr) = k(
        &admin,
        &["exec", "-n", "demo", "web", "--", "netassay", "nope"],
    );
    assert_ne!(
        code, 0,
        "a failing command fails kubectl exec too: {stderr}"
    );
    // kubectl logs goes through kube-apiserver to the node agent's kubelet endpoint.
    ok(&["logs", "-n", "demo", "web"]);
    assert_eq!(
        ok(&["auth", "can-i", "create", "pods", "-n", "demo"]).trim(),
        "yes"
    );
    let (_, answer, _) = k(
        &run_identity,
        &["auth", "can-i", "delete", "pods", "-n", "demo"],
    );
    assert_eq!(
        answer.trim(),
        "no",
        "netassay's ServiceAccount never deletes pods"
    );
    let (code, _, stderr) = k(&admin, &["apply", "-f", bad.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("spec.ingress[0].ports[0].endPort") && stderr.contains("is invalid"),
        "{stderr}"
    );
    ok(&[
        "delete",
        "pod",
        "web",
        "-n",
        "demo",
        "--wait=true",
        "--timeout=60s",
    ]);
    ok(&[
        "delete",
        "namespace",
        "demo",
        "--wait=true",
        "--timeout=90s",
    ]);
    let (code, _, _) = k(&admin, &["get", "namespace", "demo"]);
    assert_ne!(code, 0, "the namespace is gone");
    real.stop().await;
}

/// The one kubectl script (`kubectl_common::script`) against `netassay sandbox up` on each
/// control plane: after normalising names, times, UIDs, resourceVersions, addresses, the API
/// server's port and paths, and dropping the listed known differences, both print the same.
#[test]
fn kubectl_script_prints_the_same_on_both_backends() {
    if !usable() {
        return;
    }
    let test = "kubectl_script_prints_the_same_on_both_backends";
    let Some(program) = kubectl_common::kubectl_or_skip(test) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let run_on = |backend: &str| {
        let up = kubectl_common::SandboxUp::start(&["--sandbox-control-plane", backend]);
        let work = dir.path().join(backend);
        let manifests = work.join("manifests");
        std::fs::create_dir_all(&manifests).expect("mkdir");
        let k = kubectl_common::Kubectl {
            program: program.clone(),
            kubeconfig: up.kubeconfig.clone(),
            cache: work.join("cache"),
        };
        let started = Instant::now();
        let transcript = kubectl_common::script::run_script(&k, &manifests);
        eprintln!("{backend}: the script took {:?}", started.elapsed());
        let status = up.stop();
        assert!(
            status.success(),
            "sandbox up ({backend}) exited with {status}"
        );
        transcript
    };
    let emulator = run_on("emulator");
    let kubernetes = run_on("kubernetes");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kubectl-script");
    if let Err(diff) =
        kubectl_common::script::compare(&out, ("emulator", &emulator), ("kubernetes", &kubernetes))
    {
        panic!(
            "kubectl prints differently against the emulator and the reference cluster \
             (normalised transcripts in {}):\n{diff}",
            out.display()
        );
    }
}

/// kube-network-policies needs the nftables `queue` expression. Where the kernel lacks it (this
/// project's machines: CONFIG_NFT_QUEUE is not set), the run must stop with exit 3 and say so,
/// before any verdict; where it has it, the enforcer must start and the run must judge.
#[test]
fn kube_network_policies_runs_or_says_why_not() {
    if !usable() {
        return;
    }
    let out = Command::new(NETASSAY)
        .args(["run", "--sandbox", "--sandbox-control-plane", "kubernetes"])
        .args(["--sandbox-enforcer", "kube-network-policies"])
        .args(["--exact", "default-deny-ingress"])
        .stdin(Stdio::null())
        .output()
        .expect("netassay runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let queue_missing =
        stderr.contains("nftables `queue` expression, which this kernel does not have");
    if queue_missing {
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(stderr.contains("CONFIG_NFT_QUEUE"), "{stderr}");
    } else {
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "kube-network-policies should have run and been judged: {stderr}"
        );
    }
}

/// Namespace `ns` with pods `a` and `b` (label `pod`), each serving TCP 80 with its identity,
/// Running; their API and their IPs in that order.
async fn serving_pods(client: &Client, ns: &str) -> (Api<Pod>, Vec<String>) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .expect("namespace");
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut ips = Vec::new();
    for name in ["a", "b"] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"pod": name}},
            "spec": {"containers": [{
                "name": "agent",
                "image": "netassay:sandbox",
                "command": ["netassay", "agent", "serve", "--identity", format!("{ns}/{name}"),
                            "--listen", "tcp:80"],
                "ports": [{"containerPort": 80}],
            }]},
        }))
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match pods.create(&PostParams::default(), &pod).await {
                Err(kube::Error::Api(s))
                    if netassay::cluster::is_service_account_race(&s)
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                r => {
                    r.expect("pod created");
                    break;
                }
            }
        }
        wait_running(&pods, name).await;
        let ip = pods
            .get(name)
            .await
            .unwrap()
            .status
            .unwrap()
            .pod_ip
            .unwrap();
        ips.push(ip);
    }
    (pods, ips)
}

/// What `argv` prints inside the sandbox node's network namespace.
fn in_node(sandbox: &Sandbox, argv: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &sandbox.dataplane().node_netns()])
        .args(argv)
        .output()
        .expect("ip netns exec runs");
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `--sandbox-cni kube-router`: pods get their network from the bridge plugin (their IP from
/// host-local, written into the pod status), kube-router alone programs the node (its chains
/// and ipsets, no rule of netassay's compiler), DEL releases a deleted pod's address, and
/// stopping the sandbox leaves none of it behind. That the rules enforce is the judged runs'
/// business (CI's kube-router run and its negative control).
#[tokio::test(flavor = "multi_thread")]
async fn kube_router_programs_the_node_for_pods_that_got_their_network_through_cni() {
    if !usable() {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = SandboxOptions {
        control_plane: ControlPlane::Kubernetes,
        cni: netassay_sandbox::node::components::Cni::KubeRouter,
        ..SandboxOptions::default()
    };
    let sandbox = Sandbox::start_with_executable(options, NETASSAY.into())
        .await
        .expect("the kube-router sandbox starts");
    let prefix = sandbox.instance().to_string();
    // The cluster's admin: the test plays the user, not netassay's run identity.
    let client = run_common::kube_client(sandbox.admin_kubeconfig()).await;
    let ns = "cni-x";
    let (pods, ips) = serving_pods(&client, ns).await;
    // host-local's allocations, one file per address, name the attachment: the pod sandbox's
    // ID, shaped like a container runtime's (64 hex digits), one per pod.
    let ipam = PathBuf::from(format!("/run/netassay/{prefix}/cni/ipam/netassay-bridge"));
    let mut owners = Vec::new();
    for ip in &ips {
        assert!(ip.starts_with("10.244."), "{ip}");
        let owner = std::fs::read_to_string(ipam.join(ip))
            .unwrap_or_else(|e| panic!("host-local allocated {ip}: {e}"));
        let id = owner.lines().next().unwrap_or_default().trim().to_string();
        assert!(
            id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{ip}: {owner}"
        );
        owners.push(id);
    }
    assert_ne!(owners[0], owners[1], "each pod has its own sandbox ID");
    // kube-router programs the node once a policy selects a pod: its chains and ipsets, and no
    // table of netassay's compiler.
    let spec = json!({"podSelector": {"matchLabels": {"pod": "b"}},
                       "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "a"}}}]}]});
    create_policy(&client, ns, "b-from-a", spec).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sets = in_node(&sandbox, &["ipset", "list", "-n"]);
        let rules = in_node(&sandbox, &["iptables-nft-save", "-t", "filter"]);
        let src_set_has_a = sets
            .lines()
            .filter(|s| s.starts_with("KUBE-SRC-"))
            .any(|s| in_node(&sandbox, &["ipset", "list", s]).contains(&ips[0]));
        if rules.contains(":KUBE-NWPLCY-") && rules.contains(":KUBE-POD-FW-") && src_set_has_a {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kube-router never programmed the policy:\n{sets}\n{rules}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // netassay's table keeps only Service NAT: no filter chain of its policies.
    let ours = in_node(
        &sandbox,
        &["nft", "list", "table", "inet", &format!("{prefix}_policy")],
    );
    assert!(
        !ours.contains("chain forward") && !ours.contains(" drop"),
        "netassay's compiler installs no policy rule under a third-party enforcer: {ours}"
    );
    // DEL runs when the pod is deleted: its address goes back to host-local.
    pods.delete("b", &DeleteParams::default().grace_period(0))
        .await
        .expect("delete");
    let deadline = Instant::now() + Duration::from_secs(30);
    while ipam.join(&ips[1]).exists() {
        assert!(Instant::now() < deadline, "{} was never released", ips[1]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ipam.join(&ips[0]).exists(), "a's address stays");
    sandbox.stop().await;
    assert!(!Path::new(&format!("/run/netassay/{prefix}")).exists());
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let netns = String::from_utf8_lossy(&netns.stdout);
    assert!(!netns.contains(&prefix), "{netns}");
}

/// The host's state that a Cilium sandbox must leave as it found it: its iptables rules, its
/// bpffs mounts (but sandboxes' own) and the global `kernel.*` sysctls the agent would like to
/// write.
fn host_state_for_cilium() -> (Vec<String>, Vec<String>, Vec<String>) {
    let rules = Command::new("iptables-nft-save")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let bpf_mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" - bpf "))
        .map(|l| l.split(' ').nth(4).unwrap_or_default().to_string())
        // Other sandboxes' own (tests run side by side) come and go.
        .filter(|m| !m.starts_with("/run/netassay/"))
        .collect();
    let sysctls = ["unprivileged_bpf_disabled", "timer_migration"]
        .iter()
        .map(|k| std::fs::read_to_string(format!("/proc/sys/kernel/{k}")).unwrap_or_default())
        .collect();
    (rules, bpf_mounts, sysctls)
}

/// A sandbox on the reference cluster with Cilium as its CNI and `proxy` serving Services; with
/// its instance name and folder.
async fn start_cilium(proxy: ServiceProxy) -> (Sandbox, String, PathBuf) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = SandboxOptions {
        control_plane: ControlPlane::Kubernetes,
        cni: netassay_sandbox::node::components::Cni::Cilium,
        proxy,
        ..SandboxOptions::default()
    };
    let sandbox = Sandbox::start_with_executable(options, NETASSAY.into())
        .await
        .unwrap_or_else(|e| panic!("the Cilium sandbox ({proxy} proxy) starts: {e}"));
    let prefix = sandbox.instance().to_string();
    let instance = PathBuf::from(format!("/run/netassay/{prefix}"));
    (sandbox, prefix, instance)
}

/// What `cilium-dbg args` prints, asking the agent of the sandbox instance at `instance`.
fn cilium_dbg(instance: &Path, args: &[&str]) -> String {
    let out = Command::new(reference::bin_dir(None).join("cilium-dbg"))
        .args(args)
        .env("CILIUM_SOCK", instance.join("cilium/run/cilium.sock"))
        .output()
        .expect("cilium-dbg runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cilium_built() -> bool {
    let bin = reference::bin_dir(None);
    let built = ["cilium-agent", "cilium-cni", "cilium-dbg"]
        .iter()
        .all(|b| bin.join(b).is_file());
    if !built {
        assert!(std::env::var_os("CI").is_none(), "CI builds Cilium");
        eprintln!("skipped: Cilium is not built (scripts/reference-cluster/build.sh)");
    }
    built
}

/// `--sandbox-cni cilium`: pods get their network from cilium-cni (addresses from the Node's
/// podCIDR, which kube-controller-manager allocated), the agent knows each as an endpoint with
/// its labels and turns ingress enforcement on for a pod a policy selects, DEL removes a deleted
/// pod's endpoint, and stopping the sandbox leaves the host as it was (no bpffs, no iptables
/// rule, the kernel sysctls unchanged). That the datapath enforces is the judged runs' business
/// (CI's Cilium run and its negative control).
#[tokio::test(flavor = "multi_thread")]
async fn cilium_attaches_pods_from_the_nodes_pod_cidr_and_sees_their_policies() {
    if !usable() || !cilium_built() {
        return;
    }
    let before = host_state_for_cilium();
    let (sandbox, _, instance) = start_cilium(ServiceProxy::Netassay).await;
    let client = run_common::kube_client(sandbox.admin_kubeconfig()).await;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let node = nodes.list(&ListParams::default()).await.expect("nodes");
    let pod_cidr = node.items[0]
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.clone())
        .expect("kube-controller-manager gave the Node a podCIDR");
    let cidr: ipnet::Ipv4Net = pod_cidr.parse().expect("an IPv4 podCIDR");
    let ns = "cil-x";
    let (pods, ips) = serving_pods(&client, ns).await;
    for ip in &ips {
        let ip: std::net::Ipv4Addr = ip.parse().expect("IPv4");
        assert!(cidr.contains(&ip), "{ip} is in the Node's podCIDR {cidr}");
    }
    let endpoints = || -> Vec<Value> {
        serde_json::from_str(&cilium_dbg(&instance, &["endpoint", "list", "-o", "json"]))
            .unwrap_or_default()
    };
    let endpoint_of = |eps: &[Value], ip: &str| -> Option<Value> {
        eps.iter()
            .find(|e| {
                e["status"]["networking"]["addressing"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x["ipv4"] == ip))
            })
            .cloned()
    };
    let eps = endpoints();
    for ip in &ips {
        let ep = endpoint_of(&eps, ip).unwrap_or_else(|| panic!("the agent knows {ip}: {eps:?}"));
        let labels = ep["status"]["labels"]["security-relevant"].to_string();
        assert!(
            labels.contains(&format!("k8s:io.kubernetes.pod.namespace={ns}")),
            "{labels}"
        );
    }
    // A policy selecting b turns its ingress enforcement on (and not a's).
    create_policy(
        &client,
        ns,
        "b-deny",
        json!({"podSelector": {"matchLabels": {"pod": "b"}}}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let eps = endpoints();
        let mode = |ip: &str| {
            endpoint_of(&eps, ip)
                .map(|e| e["status"]["policy"]["realized"]["policy-enabled"].clone())
                .unwrap_or_default()
        };
        if mode(&ips[1]) == "ingress" && mode(&ips[0]) == "none" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b's ingress enforcement never came on: a {:?}, b {:?}",
            mode(&ips[0]),
            mode(&ips[1])
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // DEL runs when the pod is deleted: the agent forgets b.
    pods.delete("b", &DeleteParams::default().grace_period(0))
        .await
        .expect("delete");
    let deadline = Instant::now() + Duration::from_secs(30);
    while endpoint_of(&endpoints(), &ips[1]).is_some() {
        assert!(Instant::now() < deadline, "b's endpoint was never removed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(endpoint_of(&endpoints(), &ips[0]).is_some(), "a stays");
    sandbox.stop().await;
    assert!(!instance.exists(), "{} is still there", instance.display());
    assert_eq!(host_state_for_cilium(), before, "the host is as it was");
}

/// The same when the owner dies: the agent dies with it, and the sweep unmounts the
/// instance's bpffs, removes its folders and namespaces; the host is as it was.
#[test]
fn a_killed_owner_of_a_cilium_sandbox_leaves_nothing_behind() {
    killed_owner_of_a_cilium_sandbox(&[]);
}

/// The same with Cilium's kube-proxy replacement: the sweep also removes the instance's own
/// cgroup, which the agent's socket load balancer was attached to.
#[test]
fn a_killed_owner_of_a_cilium_kpr_sandbox_leaves_no_cgroup_behind() {
    killed_owner_of_a_cilium_sandbox(&["--sandbox-proxy", "cilium"]);
}

fn killed_owner_of_a_cilium_sandbox(extra: &[&str]) {
    if !usable() || !cilium_built() {
        return;
    }
    let before = host_state_for_cilium();
    let (up, kubeconfig) =
        run_common::sandbox_up_reference(&[&["--sandbox-cni", "cilium"], extra].concat());
    let control_plane = kubeconfig.parent().expect("the control plane's folder");
    let instance = control_plane
        .parent()
        .expect("the instance's folder")
        .to_path_buf();
    let prefix = instance.file_name().unwrap().to_string_lossy().into_owned();
    assert!(instance.join("cni/net.d/05-cilium.conflist").is_file());
    let bpffs = instance.join("cilium/bpffs").display().to_string();
    let mounted = |at: &str| {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(at))
    };
    assert!(mounted(&bpffs), "the agent's bpffs is mounted at {bpffs}");
    let cgroup = netassay_sandbox::cgroup::unified_root()
        .map(|root| netassay_sandbox::cgroup::instance_cgroup(&root, &prefix));
    let kpr = extra.contains(&"cilium");
    if kpr {
        let cgroup = cgroup.as_ref().expect("a unified cgroup hierarchy");
        assert!(cgroup.is_dir(), "{} is made", cgroup.display());
    }
    let mut pids = recorded_pids(control_plane);
    let agent = cilium_agents(&prefix);
    assert_eq!(agent.len(), 1, "one cilium-agent for {prefix}: {agent:?}");
    pids.extend(&agent);
    kill_owner_then_sweep(up, &pids);
    assert!(!mounted(&bpffs), "{bpffs} is unmounted");
    assert!(!instance.exists(), "{} is still there", instance.display());
    if let Some(cgroup) = &cgroup {
        assert!(!cgroup.exists(), "{} is still there", cgroup.display());
    }
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&netns.stdout).contains(&prefix));
    assert_eq!(host_state_for_cilium(), before, "the host is as it was");
}

/// The pids of instance `prefix`'s cilium-agent.
fn cilium_agents(prefix: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|p: &u32| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline")).is_ok_and(|c| {
                c.split('\0')
                    .next()
                    .is_some_and(|p| p.ends_with("/cilium-agent"))
                    && c.contains(&format!("/run/netassay/{prefix}/cilium/lib"))
            })
        })
        .collect()
}

/// Where a test's probes start.
#[derive(Clone, Copy)]
enum Vantage<'a> {
    /// A pod of the sandbox (namespace, name).
    Pod(&'a str, &'a str),
    /// The outside vantage, which reaches the node at its address.
    Outside,
}

/// Runs TCP probes (id, target, expected identity) with the real prober from `from`; each
/// probe's outcome by id.
async fn probe_from(
    sandbox: &Sandbox,
    from: Vantage<'_>,
    probes: &[(&str, &str, &str)],
) -> BTreeMap<String, Outcome> {
    let specs = probes
        .iter()
        .map(|(id, target, identity)| {
            ProbeSpec::new(*id, ProbeKind::Tcp, *target).expecting(*identity)
        })
        .collect();
    let mut batch = ProbeBatch::new(specs);
    batch.timeout_ms = 1000;
    let command: Vec<String> = ["netassay", "agent", "probe"].map(String::from).to_vec();
    let dp = sandbox.dataplane();
    let mut child = match from {
        Vantage::Pod(namespace, name) => dp.exec(namespace, name, &command),
        Vantage::Outside => dp.exec_outside(&command),
    }
    .expect("agent probe starts");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{}\n", batch.to_json_line()).as_bytes())
        .await
        .expect("the batch is written");
    drop(stdin);
    let out = child.wait_with_output().await.expect("agent probe ends");
    assert!(
        out.status.success(),
        "agent probe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(
            |l| match AgentLine::parse(l).expect("the prober's output line") {
                AgentLine::Result(r) => Some((r.id, r.outcome)),
                _ => None,
            },
        )
        .collect()
}

/// Probes from `from` until every probe is connected (or, with `connected` false, dropped or
/// rejected); panics with the last outcomes after 30 s.
async fn probe_until(
    sandbox: &Sandbox,
    from: Vantage<'_>,
    probes: &[(&str, &str, &str)],
    connected: bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = probe_from(sandbox, from, probes).await;
        let done = probes
            .iter()
            .all(|(id, ..)| match (connected, got.get(*id)) {
                (true, Some(o)) => *o == Outcome::Connected,
                (false, Some(o)) => matches!(o, Outcome::Dropped | Outcome::Rejected),
                (_, None) => false,
            });
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "from {}, want {}: {got:?}",
            match from {
                Vantage::Pod(ns, name) => format!("{ns}/{name}"),
                Vantage::Outside => "outside".into(),
            },
            if connected { "connected" } else { "denied" }
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `--sandbox-proxy cilium`: Cilium's kube-proxy replacement serves the Services, with no
/// kube-proxy and no Service rule of netassay's: a pod reaches a backend through its ClusterIP
/// and its cluster DNS name, the outside reaches it through a NodePort, and a policy still
/// enforces on the ClusterIP path. The agent's socket load balancer is attached to the
/// instance's own cgroup (bound at its cgroup root, a cgroup2 mount point), never to the
/// unified hierarchy's root, where it would reach every process on the machine; stopping the
/// sandbox removes that cgroup and leaves the host as it was.
#[tokio::test(flavor = "multi_thread")]
async fn cilium_kube_proxy_replacement_serves_services_from_the_instances_cgroup_only() {
    if !usable() || !cilium_built() {
        return;
    }
    use netassay_sandbox::cgroup;
    let root = cgroup::unified_root().expect("a unified (cgroup v2) hierarchy is mounted");
    let at_root = || -> Vec<String> {
        let mut names: Vec<String> = cgroup::attached(&root)
            .expect("the kernel answers BPF_PROG_QUERY on the cgroup root")
            .into_iter()
            .map(|a| format!("{} {} {}", a.attach_type, a.id, a.name))
            .collect();
        names.sort();
        names
    };
    let root_before = at_root();
    let before = host_state_for_cilium();
    let (sandbox, prefix, instance) = start_cilium(ServiceProxy::Cilium).await;
    let ours = cgroup::instance_cgroup(&root, &prefix);

    // Socket LB is attached in the instance's cgroup, and nothing at the hierarchy's root.
    let root_now = at_root();
    assert!(
        !root_now.iter().any(|a| a.contains(" cil_")),
        "Cilium attached at the cgroup root {}: {root_now:?}",
        root.display()
    );
    assert_eq!(root_now, root_before, "nothing new at the cgroup root");
    let in_ours: Vec<String> = cgroup::attached(&ours)
        .expect("the instance's cgroup")
        .into_iter()
        .map(|a| a.name)
        .collect();
    // The kernel keeps 15 bytes of a program's name: cil_sock4_connect, _sendmsg, _recvmsg.
    for hook in ["cil_sock4_conne", "cil_sock4_sendm", "cil_sock4_recvm"] {
        assert!(
            in_ours.iter().any(|n| n == hook),
            "{hook} in {}: {in_ours:?}",
            ours.display()
        );
    }
    // What the agent sees at its cgroup root: a cgroup2 mount of the instance's cgroup.
    let agent = cilium_agents(&prefix);
    assert_eq!(agent.len(), 1, "one cilium-agent for {prefix}: {agent:?}");
    let mountinfo = std::fs::read_to_string(format!("/proc/{}/mountinfo", agent[0])).unwrap();
    let cgroup_root = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/run/cilium/cgroupv2"))
        .unwrap_or_else(|| panic!("the agent's cgroup root is a mount point: {mountinfo}"));
    assert!(
        cgroup_root.split(' ').nth(3) == Some(format!("/netassay/{prefix}").as_str())
            && cgroup_root.contains(" - cgroup2 "),
        "{cgroup_root}"
    );
    // The agent says so; no kube-proxy, and no Service address in the node's rules.
    let status = cilium_dbg(&instance, &["status", "--verbose"]);
    assert!(status.contains("KubeProxyReplacement:   True"), "{status}");
    assert!(
        status.contains("Socket LB Coverage:   Hostns-only"),
        "{status}"
    );
    let ruleset = sandbox
        .dataplane()
        .node_ruleset()
        .expect("the node's ruleset");
    assert!(
        !ruleset.contains("table ip kube-proxy") && !ruleset.contains("10.96."),
        "no Service rule in the node's nftables: {ruleset}"
    );

    let client = run_common::kube_client(sandbox.admin_kubeconfig()).await;
    let ns = "kpr-x";
    let (_pods, _ips) = serving_pods(&client, ns).await;
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), ns);
    let web = services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "web"},
                "spec": {"type": "NodePort", "selector": {"pod": "b"},
                         "ports": [{"port": 80, "targetPort": 80}]},
            }))
            .unwrap(),
        )
        .await
        .expect("Service web");
    let spec = web.spec.expect("spec");
    let cluster_ip = format!("{}:80", spec.cluster_ip.expect("a ClusterIP"));
    let node_port = format!(
        "{}:{}",
        netassay_sandbox::addresses::NODE_ADDRESS,
        spec.ports.expect("ports")[0].node_port.expect("a nodePort")
    );
    let by_name = format!("web.{ns}.svc.cluster.local:80");
    let b = format!("{ns}/b");
    let a = Vantage::Pod(ns, "a");
    let from_a = [
        ("cluster-ip", cluster_ip.as_str(), b.as_str()),
        ("service-dns", by_name.as_str(), b.as_str()),
    ];
    probe_until(&sandbox, a, &from_a, true).await;
    let from_outside = [("node-port", node_port.as_str(), b.as_str())];
    probe_until(&sandbox, Vantage::Outside, &from_outside, true).await;

    // A policy still enforces: b admits only a pod that does not exist.
    let spec = json!({"podSelector": {"matchLabels": {"pod": "b"}},
                       "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "nobody"}}}]}]});
    create_policy(&client, ns, "b-from-nobody", spec).await;
    probe_until(&sandbox, a, &from_a, false).await;

    sandbox.stop().await;
    assert!(!ours.exists(), "{} is still there", ours.display());
    assert!(!instance.exists(), "{} is still there", instance.display());
    assert_eq!(at_root(), root_before, "the cgroup root is as it was");
    assert_eq!(host_state_for_cilium(), before, "the host is as it was");
}

/// As a kubelet does with `FailedCreatePodSandBox`: a pod whose CNI ADD failed stays Pending,
/// gets a Warning event per failure and is created again with backoff until its network comes
/// up (Cilium answers "too many requests" while endpoint creations queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_retries_a_pod_whose_network_setup_failed_as_a_kubelet_does() {
    if !usable() {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let dataplane = std::sync::Arc::new(netassay_sandbox::dataplane::fake::FakeDataplane::new());
    let node_name = {
        use netassay_sandbox::dataplane::Dataplane;
        dataplane.node().name
    };
    let cluster = reference::ReferenceCluster::start(
        &reference::bin_dir(None),
        &dir.path().join("cluster"),
        &node_name,
        reference::ReferenceOptions::default(),
    )
    .await
    .expect("the control plane starts");
    let client = cluster.admin_client().await.expect("admin client");
    let node = netassay_sandbox::node::NodeAgent::start(netassay_sandbox::node::NodeOptions {
        role: netassay_sandbox::node::NodeRole::Kubelet,
        client: client.clone(),
        dataplane: dataplane.clone(),
        logs: std::sync::Arc::new(|_: &str, _: &str| None),
        tls: cluster.kubelet_tls().clone(),
        version: cluster.version().to_string(),
        ready_timeout: Duration::from_secs(30),
        preset: None,
        gateway_api: false,
        faults: Default::default(),
    })
    .await
    .expect("the node agent starts");
    dataplane.fail_network("retry", "a", 2, "CNI ADD: too many requests");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "retry"}})).unwrap(),
        )
        .await
        .expect("namespace");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "retry");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "a"},
        "spec": {"containers": [{"name": "agent", "image": "netassay:sandbox",
                                 "command": ["netassay", "agent", "serve"]}]},
    }))
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = pods.create(&PostParams::default(), &pod).await {
        // The namespace's default ServiceAccount comes from kube-controller-manager.
        assert!(Instant::now() < deadline, "pod create: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_running(&pods, "a").await;
    let attempts = dataplane
        .created()
        .iter()
        .filter(|p| p.namespace == "retry" && p.name == "a")
        .count();
    assert_eq!(
        attempts, 3,
        "two failed creations, then the one that worked"
    );
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "retry");
    let failed: Vec<String> = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("FailedCreatePodSandBox"))
        .map(|e| {
            assert_eq!(e.type_.as_deref(), Some("Warning"));
            e.message.unwrap_or_default()
        })
        .collect();
    assert_eq!(
        failed.len(),
        2,
        "one Warning per failed sandbox: {failed:?}"
    );
    assert!(
        failed.iter().all(|m| m.contains("too many requests")),
        "{failed:?}"
    );
    assert!(node.errors().is_empty(), "{:?}", node.errors());
    node.stop().await;
    cluster.stop().await;
}
