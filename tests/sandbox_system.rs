//! The whole sandbox (`Sandbox::start_with`) with its add-ons, end to end: cluster DNS answering
//! pods through kube-dns, the K8TRE preset (its gateway as the only exposure, its policies in
//! persona namespaces) and each of its fault presets, driven through kube-rs like the harness.
//!
//! Needs root, `ip` and `nft` (CI runs as root). Without root each test says so and passes,
//! unless `CI` is set. Pods run the real agent; probes are the real prober (`netassay agent
//! probe`) run inside a pod's namespace or under `Sandbox::outside_command()`.

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::{Api, Client};
use netassay_sandbox::{
    FaultSet, Preset, PresetFault, PresetScale, Sandbox, SandboxError, SandboxOptions,
};
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const AGENT: &str = env!("CARGO_BIN_EXE_netassay");
const CONVERGE: Duration = Duration::from_secs(15);

fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "the sandbox tests need root in CI"
        );
        eprintln!("skipped: the sandbox tests need root");
    }
    root
}

/// A started sandbox whose pods' `netassay` is the built binary, and a client for it.
struct Running {
    sandbox: Sandbox,
    client: Client,
}

async fn start(preset: Option<Preset>, faults: &str) -> Running {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = SandboxOptions {
        faults: faults.parse().expect("faults"),
        preset,
        ..SandboxOptions::default()
    };
    // Pod commands' `netassay` is the built binary, not this test harness.
    let sandbox = Sandbox::start_with_executable(options, AGENT.into())
        .await
        .expect("the sandbox starts");
    let config = kube::Config::new(sandbox.url().parse().expect("a URL"));
    let client = Client::try_from(config).expect("a client");
    Running { sandbox, client }
}

impl Running {
    async fn stop(self) {
        let prefix = self.sandbox.instance().to_string();
        self.sandbox.stop().await;
        let netns = String::from_utf8_lossy(
            &std::process::Command::new("ip")
                .args(["netns", "list"])
                .output()
                .unwrap()
                .stdout,
        )
        .into_owned();
        assert!(!netns.contains(&prefix), "left behind: {netns}");
    }

    async fn namespace(&self, name: &str, labels: Value) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        api.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": name, "labels": labels}})),
        )
        .await
        .expect("namespace created");
    }

    /// A pod running the agent as `<ns>/<name>` with `args` after `--identity`, ready.
    async fn pod(&self, ns: &str, name: &str, labels: Value, args: &[&str], port: u16) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let identity = format!("{ns}/{name}");
        let mut command = vec!["netassay", "agent", "serve", "--identity", &identity];
        command.extend_from_slice(args);
        pods.create(
            &PostParams::default(),
            &obj(json!({
                "metadata": {"name": name, "labels": labels},
                "spec": {"containers": [{
                    "name": "agent",
                    "image": "netassay:test",
                    "command": command,
                    "ports": [{"containerPort": port}],
                }]},
            })),
        )
        .await
        .expect("pod created");
        let deadline = Instant::now() + CONVERGE;
        loop {
            let pod = pods.get(name).await.expect("pod");
            let ready = pod
                .status
                .and_then(|s| s.conditions)
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "{ns}/{name} never got ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn service(&self, ns: &str, spec: Value) -> Service {
        let api: Api<Service> = Api::namespaced(self.client.clone(), ns);
        api.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "web"}, "spec": spec})),
        )
        .await
        .expect("service created")
    }

    /// Runs one probe batch from a pod (`Some((ns, name))`) or the outside vantage (`None`);
    /// the result line of each probe, by id.
    async fn probe(&self, from: Option<(&str, &str)>, probes: Value) -> Vec<Value> {
        let batch = json!({"schema": "netassay.probe/v1", "timeout_ms": 500, "probes": probes});
        let command = vec!["netassay".to_string(), "agent".into(), "probe".into()];
        let mut child = match from {
            Some((ns, name)) => netassay_sandbox::dataplane::Dataplane::exec(
                self.sandbox.dataplane(),
                ns,
                name,
                &command,
            )
            .expect("exec"),
            None => {
                let argv = self.sandbox.outside_command();
                tokio::process::Command::new(&argv[0])
                    .args(&argv[1..])
                    .arg(AGENT)
                    .args(["agent", "probe"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("outside exec")
            }
        };
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(format!("{batch}\n").as_bytes())
            .await
            .unwrap();
        drop(stdin);
        let out = child.wait_with_output().await.expect("prober ran");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut results: Vec<Value> = stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.get("id").is_some())
            .collect();
        results.sort_by_key(|v| v["id"].as_str().unwrap_or("").to_string());
        assert!(
            !results.is_empty(),
            "no results: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        results
    }

    /// Polls one probe until its outcome is `want` (or time is up); returns the last result.
    async fn expect(&self, from: Option<(&str, &str)>, probe: Value, want: &str) -> Value {
        let deadline = Instant::now() + CONVERGE;
        loop {
            let mut p = probe.clone();
            p["id"] = json!("p");
            let result = self.probe(from, json!([p])).await.remove(0);
            if result["outcome"] == want || Instant::now() > deadline {
                assert_eq!(
                    result["outcome"],
                    want,
                    "{probe} from {from:?}: {result}\nruleset:\n{}",
                    self.sandbox.dataplane().node_ruleset().unwrap_or_default()
                );
                return result;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("a valid object")
}

fn tcp(target: &str) -> Value {
    json!({"kind": "tcp", "target": target})
}

fn dns(name: &str, addresses: &[&str]) -> Value {
    json!({"kind": "dns", "target": name, "expect_addresses": addresses})
}

const PROJECT: &str = "project-namespace";

// ---- cluster DNS ------------------------------------------------------------------------------

// Contract: every sandbox runs cluster DNS; pods resolve Service names (short names through the
// search path too), kubernetes.default and the external names through kube-dns at 10.96.0.10;
// other names are NXDOMAIN; the zone follows Service changes.
#[tokio::test(flavor = "multi_thread")]
async fn pods_resolve_through_cluster_dns() {
    if !privileged() {
        return;
    }
    let sb = start(None, "").await;
    // Up when the start returns: straight away, with no change since, from outside (which
    // routes the ClusterIP range via the node), one attempt.
    let first = sb
        .probe(
            None,
            json!([{"id": "first", "kind": "dns", "target": "kube-dns.kube-system.svc.cluster.local", "server": "10.96.0.10", "expect_addresses": ["10.96.0.10"]}]),
        )
        .await;
    assert_eq!(first[0]["outcome"], "connected", "{first:?}");
    sb.namespace("x", json!({})).await;
    sb.pod("x", "a", json!({"app": "a"}), &["--listen", "tcp:80"], 80)
        .await;
    let web = sb
        .service(
            "x",
            json!({"selector": {"app": "a"}, "ports": [{"port": 80}]}),
        )
        .await;
    let ip = web.spec.unwrap().cluster_ip.unwrap();
    let a = Some(("x", "a"));
    sb.expect(a, dns("web.x.svc.cluster.local", &[&ip]), "connected")
        .await;
    sb.expect(a, dns("web", &[&ip]), "connected").await;
    sb.expect(
        a,
        dns("kube-dns.kube-system.svc.cluster.local", &["10.96.0.10"]),
        "connected",
    )
    .await;
    sb.expect(
        a,
        dns("kubernetes.default.svc.cluster.local", &["10.96.0.1"]),
        "connected",
    )
    .await;
    sb.expect(
        a,
        dns("internet.example.org", &["203.0.113.10"]),
        "connected",
    )
    .await;
    sb.expect(a, dns("mirror.example.org", &["203.0.113.20"]), "connected")
        .await;
    sb.expect(a, dns("nosuch.example.org", &[]), "dns-failed")
        .await;
    // Over TCP too (the server's other socket), straight at the Service.
    let tcp_dns = tcp("10.96.0.10:53");
    sb.expect(a, tcp_dns, "connected").await;

    let services: Api<Service> = Api::namespaced(sb.client.clone(), "x");
    services.delete("web", &Default::default()).await.unwrap();
    sb.expect(a, dns("web.x.svc.cluster.local", &[]), "dns-failed")
        .await;
    let coredns: Api<Pod> = Api::namespaced(sb.client.clone(), "kube-system");
    let pod = coredns.get("coredns").await.unwrap();
    assert_eq!(
        pod.metadata.labels.unwrap()["k8s-app"],
        "kube-dns",
        "the pod the preset's DNS policy selects"
    );
    sb.stop().await;
}

// ---- the K8TRE preset -------------------------------------------------------------------------

async fn http_route(sb: &Running, ns: &str, host: &str) {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    let (ar, _): (ApiResource, _) = kube::discovery::pinned_kind(&sb.client, &gvk)
        .await
        .unwrap();
    let routes: Api<DynamicObject> = Api::namespaced_with(sb.client.clone(), ns, &ar);
    let route = DynamicObject::new("web", &ar).data(json!({"spec": {
        "parentRefs": [{"name": "tre-gateway", "namespace": "tre-gateway"}],
        "hostnames": [host],
        "rules": [{"backendRefs": [{"name": "web", "port": 80}]}],
    }}));
    routes.create(&PostParams::default(), &route).await.unwrap();
}

/// A project namespace `p1` with `web` (HTTP on 80, `app: web`) behind Service `web`, routed by
/// the gateway as web.example.org, and `client` (TCP 80).
async fn project(sb: &Running) -> String {
    sb.namespace("p1", json!({"k8tre.io/resource-type": PROJECT}))
        .await;
    sb.pod(
        "p1",
        "web",
        json!({"app": "web"}),
        &["--listen", "tcp:81", "--http", "80"],
        80,
    )
    .await;
    sb.pod(
        "p1",
        "client",
        json!({"app": "client"}),
        &["--listen", "tcp:80"],
        80,
    )
    .await;
    let web = sb
        .service(
            "p1",
            json!({"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}),
        )
        .await;
    http_route(sb, "p1", "web.example.org").await;
    web.spec.unwrap().cluster_ip.unwrap()
}

fn through_gateway(host: &str) -> Value {
    json!({"kind": "http", "target": "203.0.113.1:80", "host": host, "expect_status": 200, "expect_identity": "p1/web"})
}

async fn pod_ip(sb: &Running, ns: &str, name: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(sb.client.clone(), ns);
    pods.get(name)
        .await
        .unwrap()
        .status
        .unwrap()
        .pod_ip
        .unwrap()
}

// Contract (K8TRE preset): the gateway is the only exposure: through it the app answers; its
// pod IP and ClusterIP do not, from outside. Project pods are isolated from the internet and the
// metadata address, reach the mirror on 443 only, resolve names through cluster DNS, and reach
// their own namespace.
#[tokio::test(flavor = "multi_thread")]
async fn the_k8tre_preset_exposes_only_the_gateway_and_isolates_projects() {
    if !privileged() {
        return;
    }
    let sb = start(Some(Preset::K8tre), "").await;
    assert_eq!(
        sb.sandbox.gateway_address(),
        Some("203.0.113.1:80".parse().unwrap())
    );
    // The gateway serves when the start returns (one attempt): no route for this host yet.
    let first = sb
        .probe(
            None,
            json!([{"id": "first", "kind": "http", "target": "203.0.113.1:80", "host": "web.example.org", "expect_status": 404}]),
        )
        .await;
    assert_eq!(first[0]["outcome"], "connected", "{first:?}");
    let policies: Api<NetworkPolicy> = Api::namespaced(sb.client.clone(), "p1");
    let cluster_ip = project(&sb).await;
    assert_eq!(
        policies
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        5
    );
    let web_ip = pod_ip(&sb, "p1", "web").await;

    // From outside: through the gateway only.
    sb.expect(None, through_gateway("web.example.org"), "connected")
        .await;
    sb.expect(None, through_gateway("WEB.example.org:80"), "connected")
        .await;
    let unknown = sb
        .expect(
            None,
            json!({"kind": "http", "target": "203.0.113.1:80", "host": "nosuch.example.org", "expect_status": 404}),
            "connected",
        )
        .await;
    assert!(
        unknown["detail"].as_str().unwrap().contains("404"),
        "{unknown}"
    );
    sb.expect(None, tcp(&format!("{web_ip}:80")), "dropped")
        .await;
    sb.expect(None, tcp(&format!("{cluster_ip}:80")), "dropped")
        .await;

    // From a project pod.
    let client = Some(("p1", "client"));
    sb.expect(
        client,
        dns("web.p1.svc.cluster.local", &[&cluster_ip]),
        "connected",
    )
    .await;
    sb.expect(
        client,
        dns("internet.example.org", &["203.0.113.10"]),
        "connected",
    )
    .await;
    sb.expect(client, tcp(&format!("{cluster_ip}:80")), "connected")
        .await;
    sb.expect(client, tcp("203.0.113.20:443"), "connected")
        .await;
    sb.expect(client, tcp("203.0.113.20:80"), "dropped").await;
    sb.expect(client, tcp("203.0.113.10:443"), "dropped").await;
    sb.expect(client, tcp("203.0.113.10:80"), "dropped").await;
    sb.expect(client, tcp("169.254.169.254:80"), "dropped")
        .await;

    // Another namespace is isolated from the project, and is open until labelled a project.
    sb.namespace("p2", json!({})).await;
    sb.pod("p2", "b", json!({"app": "b"}), &["--listen", "tcp:80"], 80)
        .await;
    let b_ip = pod_ip(&sb, "p2", "b").await;
    let b = Some(("p2", "b"));
    sb.expect(client, tcp(&format!("{b_ip}:80")), "dropped")
        .await;
    sb.expect(b, tcp(&format!("{web_ip}:80")), "dropped").await;
    sb.expect(b, tcp("203.0.113.10:80"), "connected").await;
    let namespaces: Api<Namespace> = Api::all(sb.client.clone());
    namespaces
        .patch(
            "p2",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                json!({"metadata": {"labels": {"k8tre.io/resource-type": PROJECT}}}),
            ),
        )
        .await
        .unwrap();
    sb.expect(b, tcp("203.0.113.10:80"), "dropped").await;
    sb.expect(b, tcp("203.0.113.20:443"), "connected").await;
    sb.stop().await;
}

// Fault k8tre-allow-all: the allow-all policy next to the narrow ones opens everything.
#[tokio::test(flavor = "multi_thread")]
async fn the_allow_all_fault_opens_project_namespaces() {
    if !privileged() {
        return;
    }
    let sb = start(Some(Preset::K8tre), "k8tre-allow-all").await;
    let cluster_ip = project(&sb).await;
    let client = Some(("p1", "client"));
    sb.expect(client, tcp("203.0.113.10:80"), "connected").await;
    sb.expect(client, tcp("169.254.169.254:80"), "connected")
        .await;
    sb.expect(None, tcp(&format!("{cluster_ip}:80")), "connected")
        .await;
    sb.stop().await;
}

// Fault k8tre-ports-only-egress: the ports-only half of the mirror rule opens 443 everywhere.
#[tokio::test(flavor = "multi_thread")]
async fn the_ports_only_fault_opens_443_to_every_destination() {
    if !privileged() {
        return;
    }
    let sb = start(Some(Preset::K8tre), "k8tre-ports-only-egress").await;
    project(&sb).await;
    let client = Some(("p1", "client"));
    sb.expect(client, tcp("203.0.113.10:443"), "connected")
        .await;
    sb.expect(client, tcp("203.0.113.20:443"), "connected")
        .await;
    sb.expect(client, tcp("203.0.113.10:80"), "dropped").await;
    sb.stop().await;
}

// Fault k8tre-nodeport: Service exposed-web is a NodePort on the node's address. The project's
// default-deny still drops the outside vantage there (only the inventory sees the exposure);
// next to allow-all, the app answers on the node port from outside, bypassing the gateway.
#[tokio::test(flavor = "multi_thread")]
async fn the_nodeport_fault_exposes_the_app_on_a_node_port() {
    if !privileged() {
        return;
    }
    for (faults, outcome) in [
        ("k8tre-nodeport", "dropped"),
        ("k8tre-nodeport,k8tre-allow-all", "connected"),
    ] {
        let sb = start(Some(Preset::K8tre), faults).await;
        project(&sb).await;
        let services: Api<Service> = Api::namespaced(sb.client.clone(), "p1");
        let exposed = services
            .get("exposed-web")
            .await
            .expect("the fault's Service");
        let node_port = exposed.spec.unwrap().ports.unwrap()[0]
            .node_port
            .expect("a node port");
        let ruleset = sb.sandbox.dataplane().node_ruleset().unwrap();
        assert!(
            ruleset.contains(&format!("ip daddr 203.0.113.1 tcp dport {node_port} dnat")),
            "{ruleset}"
        );
        let target = format!("203.0.113.1:{node_port}");
        let probe = json!({"kind": "http", "target": target, "expect_identity": "p1/web"});
        sb.expect(None, probe, outcome).await;
        sb.stop().await;
    }
}

// Contract (scaled K8TRE preset): `projects=N` brings N project namespaces of two workspaces
// and a shared service each, and the platform's namespace; each gets the preset's five
// policies, so a workspace reaches its own project's shared service and not another's.
#[tokio::test(flavor = "multi_thread")]
async fn the_scaled_k8tre_preset_brings_n_isolated_projects_of_its_own() {
    if !privileged() {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = SandboxOptions {
        preset: Some(Preset::K8tre),
        preset_scale: Some(PresetScale { projects: 2 }),
        ..SandboxOptions::default()
    };
    let sandbox = Sandbox::start_with_executable(options, AGENT.into())
        .await
        .expect("the sandbox starts");
    let config = kube::Config::new(sandbox.url().parse().expect("a URL"));
    let client = Client::try_from(config).expect("a client");
    let sb = Running { sandbox, client };
    let namespaces: Api<Namespace> = Api::all(sb.client.clone());
    let mut tre: Vec<String> = namespaces
        .list(&ListParams::default().labels("k8tre.io/resource-type"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    tre.sort();
    assert_eq!(tre, ["project-001", "project-002", "tre-platform"]);
    for ns in &tre {
        let policies: Api<NetworkPolicy> = Api::namespaced(sb.client.clone(), ns);
        let n = policies
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len();
        assert_eq!(n, 5, "{ns}");
    }
    let pods: Api<Pod> = Api::namespaced(sb.client.clone(), "project-001");
    let mut names: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    names.sort();
    assert_eq!(names, ["shared-storage", "workspace-1", "workspace-2"]);
    let own = pod_ip(&sb, "project-001", "shared-storage").await;
    let other = pod_ip(&sb, "project-002", "shared-storage").await;
    let from = Some(("project-001", "workspace-1"));
    sb.expect(from, tcp(&format!("{own}:8080")), "connected")
        .await;
    sb.expect(from, tcp(&format!("{other}:8080")), "dropped")
        .await;
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preset_fault_without_its_preset_is_refused_before_anything_starts() {
    let options = SandboxOptions {
        faults: FaultSet::from(PresetFault::AllowAll),
        preset: None,
        ..SandboxOptions::default()
    };
    match Sandbox::start_with(options).await {
        Err(SandboxError::PresetFaultWithoutPreset { fault, preset }) => {
            assert_eq!((fault, preset), (PresetFault::AllowAll, Preset::K8tre));
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(sb) => {
            sb.stop().await;
            panic!("started without the preset");
        }
    }
}
