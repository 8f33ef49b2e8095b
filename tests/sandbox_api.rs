//! The sandbox's API emulator driven by kube-rs (and kubectl where installed) over a fake dataplane.

mod kubectl_common;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{
    AttachParams, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchParams,
};
use kube::{Api, Client};
use netassay_core::model::{Protocol, ServedPort};
use netassay_sandbox::api::{self, ApiOptions, ApiServer};
use netassay_sandbox::dataplane::fake::FakeDataplane;
use netassay_sandbox::state::TargetPort;
use netassay_sandbox::ClusterState;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Sandbox {
    server: ApiServer,
    dataplane: Arc<FakeDataplane>,
    client: Client,
}

async fn sandbox_with(options: ApiOptions) -> Sandbox {
    // Another test may have installed it already; either way ring is the provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dataplane = Arc::new(FakeDataplane::new());
    let server = api::start_with(dataplane.clone(), options)
        .await
        .expect("the emulator starts");
    let config = kube::Config::new(server.url().parse().expect("a valid URL"));
    let client = Client::try_from(config).expect("a kube client");
    Sandbox {
        server,
        dataplane,
        client,
    }
}

async fn sandbox() -> Sandbox {
    sandbox_with(ApiOptions::default()).await
}

impl Sandbox {
    fn namespaces(&self) -> Api<Namespace> {
        Api::all(self.client.clone())
    }
    fn pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }
    fn last_sync(&self) -> ClusterState {
        self.dataplane.last_sync().expect("at least one sync")
    }
    async fn namespace(&self, name: &str, labels: serde_json::Value) -> Namespace {
        self.namespaces()
            .create(
                &PostParams::default(),
                &obj(json!({"metadata": {"name": name, "labels": labels}})),
            )
            .await
            .expect("namespace created")
    }
    async fn pod(&self, ns: &str, name: &str, labels: serde_json::Value) -> Pod {
        self.pods(ns)
            .create(&PostParams::default(), &pod_manifest(name, labels))
            .await
            .expect("pod created")
    }
    /// Waits until the pod is Running with a `Ready=True` condition.
    async fn ready_pod(&self, ns: &str, name: &str) -> Pod {
        let pods = self.pods(ns);
        eventually(|| async {
            let pod = pods.get(name).await.ok()?;
            is_ready(&pod).then_some(pod)
        })
        .await
    }
}

fn obj<T: DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("a valid object")
}

fn pod_manifest(name: &str, labels: serde_json::Value) -> Pod {
    obj(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{
            "name": "agent",
            "image": "netassay:test",
            "command": ["netassay", "agent"],
            "args": ["serve"],
            "ports": [
                {"containerPort": 80, "name": "serve-80-tcp"},
                {"containerPort": 81, "protocol": "UDP", "name": "serve-81-udp"}
            ]
        }]}
    }))
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Polls `probe` until it yields a value (10 s at most).
async fn eventually<T, F, Fut>(mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within 10s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The API error a call failed with.
fn api_error<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Asserts that listing through `api` finds nothing, naming what it found otherwise.
async fn assert_none_listed<K>(api: &Api<K>)
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    let items = api.list(&ListParams::default()).await.unwrap().items;
    assert!(items.is_empty(), "expected no objects, found {items:?}");
}

fn names(list: &[Namespace]) -> Vec<String> {
    list.iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect()
}

fn label(labels: &Option<std::collections::BTreeMap<String, String>>, key: &str) -> Option<String> {
    labels.as_ref()?.get(key).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_get_their_metadata_name_label_uid_and_resource_version() {
    let sb = sandbox().await;
    let created = sb.namespace("alpha", json!({"team": "red"})).await;
    let meta = &created.metadata;
    assert_eq!(
        label(&meta.labels, "kubernetes.io/metadata.name").as_deref(),
        Some("alpha")
    );
    assert!(
        meta.uid.is_some() && meta.resource_version.is_some() && meta.creation_timestamp.is_some()
    );
    let got = sb.namespaces().get("alpha").await.unwrap();
    assert_eq!(got.metadata.uid, meta.uid);
    assert_eq!(got.status.and_then(|s| s.phase).as_deref(), Some("Active"));
    let synced = sb.last_sync();
    let ns = synced
        .namespaces
        .iter()
        .find(|n| n.name == "alpha")
        .expect("synced");
    assert_eq!(ns.labels.get("team").map(String::as_str), Some("red"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_lists_filter_by_label_selector() {
    let sb = sandbox().await;
    sb.namespace("red", json!({"team": "red"})).await;
    sb.namespace("blue", json!({"team": "blue"})).await;
    sb.namespace("plain", json!({})).await;
    let list = |sel: &'static str| {
        let api = sb.namespaces();
        async move {
            names(
                &api.list(&ListParams::default().labels(sel))
                    .await
                    .unwrap()
                    .items,
            )
        }
    };
    assert_eq!(list("team=red").await, ["red"]);
    assert_eq!(list("team in (red,blue)").await, ["blue", "red"]);
    assert_eq!(
        list("team!=red,kubernetes.io/metadata.name in (blue,plain)").await,
        ["blue", "plain"]
    );
    assert!(list("!team").await.contains(&"plain".to_string()));
    assert!(!list("!team").await.contains(&"red".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_label_patches_agree_across_merge_strategic_and_apply() {
    let sb = sandbox().await;
    sb.namespace("p", json!({"a": "1", "b": "2"})).await;
    let api = sb.namespaces();
    let params = PatchParams::default();
    let merge = json!({"metadata": {"labels": {"a": null, "c": "3"}}});
    let after = api
        .patch("p", &params, &Patch::Merge(&merge))
        .await
        .unwrap();
    assert_eq!(label(&after.metadata.labels, "a"), None);
    assert_eq!(label(&after.metadata.labels, "c").as_deref(), Some("3"));
    let strategic = json!({"metadata": {"labels": {"d": "4"}}});
    let after = api
        .patch("p", &params, &Patch::Strategic(&strategic))
        .await
        .unwrap();
    assert_eq!(label(&after.metadata.labels, "d").as_deref(), Some("4"));
    let apply = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "p", "labels": {"e": "5"}}});
    let after = api
        .patch(
            "p",
            &PatchParams::apply("netassay-test"),
            &Patch::Apply(&apply),
        )
        .await
        .unwrap();
    assert_eq!(label(&after.metadata.labels, "e").as_deref(), Some("5"));
    // The server owns kubernetes.io/metadata.name: removing it does not stick.
    let remove = json!({"metadata": {"labels": {"kubernetes.io/metadata.name": null}}});
    let after = api
        .patch("p", &params, &Patch::Merge(&remove))
        .await
        .unwrap();
    assert_eq!(
        label(&after.metadata.labels, "kubernetes.io/metadata.name").as_deref(),
        Some("p")
    );
    let synced = sb.last_sync();
    let ns = synced
        .namespaces
        .iter()
        .find(|n| n.name == "p")
        .expect("synced");
    assert_eq!(ns.labels.get("e").map(String::as_str), Some("5"));
    assert_eq!(ns.labels.get("a"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_gets_an_ip_and_becomes_ready() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    let created = sb.pod("x", "a", json!({"pod": "a"})).await;
    assert_eq!(
        created.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some("sandbox-node")
    );
    let pod = sb.ready_pod("x", "a").await;
    let status = pod.status.expect("status");
    assert_eq!(status.phase.as_deref(), Some("Running"));
    let ip: IpAddr = status.pod_ip.as_deref().expect("podIP").parse().unwrap();
    assert!(ip.to_string().starts_with("10.244."));
    assert_eq!(status.pod_ips.unwrap()[0].ip, ip.to_string());
    assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
    let spec = &sb.dataplane.created()[0];
    assert_eq!(spec.command, ["netassay", "agent", "serve"]);
    assert_eq!(
        spec.ports,
        [
            ServedPort {
                port: 80,
                protocol: Protocol::Tcp,
                name: Some("serve-80-tcp".into())
            },
            ServedPort {
                port: 81,
                protocol: Protocol::Udp,
                name: Some("serve-81-udp".into())
            },
        ]
    );
    // The IP reached the dataplane through a sync.
    let synced = eventually(|| async {
        let state = sb.last_sync();
        let pod = state.pods.iter().find(|p| p.name == "a")?.clone();
        pod.ip.map(|_| pod)
    })
    .await;
    assert_eq!(synced.ip, Some(ip));
    assert_eq!(synced.labels.get("pod").map(String::as_str), Some("a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_list_by_label_selector_in_one_namespace_and_across_all() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    sb.namespace("y", json!({})).await;
    sb.pod("x", "a", json!({"pod": "a"})).await;
    sb.pod("x", "b", json!({"pod": "b"})).await;
    sb.pod("y", "a", json!({"pod": "a"})).await;
    let in_x = sb
        .pods("x")
        .list(&ListParams::default().labels("pod=a"))
        .await
        .unwrap();
    assert_eq!(in_x.items.len(), 1);
    let everywhere: Api<Pod> = Api::all(sb.client.clone());
    let all_a = everywhere
        .list(&ListParams::default().labels("pod=a"))
        .await
        .unwrap();
    let places: Vec<_> = all_a
        .items
        .iter()
        .map(|p| p.metadata.namespace.clone().unwrap())
        .collect();
    assert_eq!(places, ["x", "y"]);
    let by_field = everywhere
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(by_field.items.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_label_patch_is_synced_with_the_new_label() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    sb.pod("x", "b", json!({"pod": "b"})).await;
    sb.ready_pod("x", "b").await;
    let syncs_before = sb.dataplane.syncs().len();
    let patch = json!({"metadata": {"labels": {"pod": "c"}}});
    let patched = sb
        .pods("x")
        .patch("b", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(label(&patched.metadata.labels, "pod").as_deref(), Some("c"));
    assert!(sb.dataplane.syncs().len() > syncs_before);
    let state = sb.last_sync();
    let pod = state.pods.iter().find(|p| p.name == "b").unwrap();
    assert_eq!(pod.labels.get("pod").map(String::as_str), Some("c"));
    assert!(pod.ip.is_some(), "relabelling keeps the address");
    // Spec changes are refused, as upstream.
    let spec_patch = json!({"spec": {"containers": [{"name": "agent", "image": "other"}]}});
    let err = api_error(
        sb.pods("x")
            .patch("b", &PatchParams::default(), &Patch::Merge(&spec_patch))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_pod_removes_it_from_the_store_and_the_dataplane() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    sb.pod("x", "a", json!({"pod": "a"})).await;
    sb.ready_pod("x", "a").await;
    let answer = sb
        .pods("x")
        .delete("a", &DeleteParams::default())
        .await
        .unwrap();
    let deleted = answer.left().expect("the pod itself, as upstream answers");
    assert!(deleted.metadata.deletion_timestamp.is_some());
    assert_eq!(api_error(sb.pods("x").get("a").await).code, 404);
    assert_eq!(sb.dataplane.deleted(), [("x".to_string(), "a".to_string())]);
    assert!(sb.dataplane.pods().is_empty());
    assert!(sb.last_sync().pods.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_the_dataplane_cannot_start_is_failed_with_the_message() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    sb.dataplane.fail_create("x", "broken", "veth setup failed");
    sb.pod("x", "broken", json!({})).await;
    let pods = sb.pods("x");
    let status = eventually(|| async {
        let st = pods.get("broken").await.ok()?.status?;
        (st.phase.as_deref() == Some("Failed")).then_some(st)
    })
    .await;
    assert!(status.message.unwrap().contains("veth setup failed"));
    assert!(status.pod_ip.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_never_gets_ready_says_why_in_its_ready_condition() {
    let sb = sandbox_with(ApiOptions {
        ready_timeout: Duration::from_millis(300),
        ..ApiOptions::default()
    })
    .await;
    sb.namespace("x", json!({})).await;
    sb.dataplane.set_ready("x", "slow", false);
    sb.pod("x", "slow", json!({})).await;
    let pods = sb.pods("x");
    let ready = eventually(|| async {
        let conditions = pods.get("slow").await.ok()?.status?.conditions?;
        let ready = conditions.into_iter().find(|c| c.type_ == "Ready")?;
        (ready.reason.as_deref() == Some("ReadinessTimeout")).then_some(ready)
    })
    .await;
    assert_eq!(ready.status, "False");
    assert!(ready.message.is_some());
}

async fn read_all(reader: Option<impl tokio::io::AsyncRead + Unpin>) -> String {
    let mut out = String::new();
    if let Some(mut r) = reader {
        r.read_to_string(&mut out).await.expect("readable output");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_echoes_stdin_and_reports_a_nonzero_exit_code() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    sb.pod("x", "a", json!({})).await;
    sb.ready_pod("x", "a").await;
    let params = AttachParams::default()
        .stdin(true)
        .stdout(true)
        .stderr(true);
    let mut proc = sb
        .pods("x")
        .exec("a", ["sh", "-c", "cat; echo bye >&2; exit 3"], &params)
        .await
        .unwrap();
    let mut stdin = proc.stdin().expect("stdin attached");
    stdin.write_all(b"hello through stdin\n").await.unwrap();
    stdin.shutdown().await.unwrap();
    drop(stdin);
    let status = proc.take_status().expect("a status future");
    let (stdout, stderr) = tokio::join!(read_all(proc.stdout()), read_all(proc.stderr()));
    let status = status.await.expect("a status");
    assert_eq!(stdout, "hello through stdin\n");
    assert_eq!(stderr, "bye\n");
    assert_eq!(status.status.as_deref(), Some("Failure"));
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    let cause = &status.details.unwrap().causes.unwrap()[0];
    assert_eq!(
        (cause.reason.as_deref(), cause.message.as_deref()),
        (Some("ExitCode"), Some("3"))
    );
    proc.join().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_a_zero_exit_reports_success_and_all_output() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    sb.pod("x", "a", json!({})).await;
    sb.ready_pod("x", "a").await;
    // More than the client's and the pipes' buffers, to show output is pumped concurrently.
    let mut proc = sb
        .pods("x")
        .exec(
            "a",
            [
                "sh",
                "-c",
                "head -c 300000 /dev/zero | tr '\\0' x; echo; echo err >&2",
            ],
            &AttachParams::default(),
        )
        .await
        .unwrap();
    let status = proc.take_status().unwrap();
    let (stdout, stderr) = tokio::join!(read_all(proc.stdout()), read_all(proc.stderr()));
    assert_eq!(stdout.len(), 300_001);
    assert_eq!(stderr, "err\n");
    assert_eq!(status.await.unwrap().status.as_deref(), Some("Success"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_of_a_missing_program_reports_a_failure_status() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    sb.pod("x", "a", json!({})).await;
    sb.ready_pod("x", "a").await;
    let mut proc = sb
        .pods("x")
        .exec("a", ["/nonexistent/program"], &AttachParams::default())
        .await
        .unwrap();
    let status = proc.take_status().unwrap().await.expect("a status");
    assert_eq!(status.status.as_deref(), Some("Failure"));
    assert_eq!(status.reason.as_deref(), Some("InternalError"));
    // Exec into a pod that does not exist is refused before the upgrade.
    assert!(sb
        .pods("x")
        .exec("ghost", ["true"], &AttachParams::default())
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_objects_are_404_not_found_statuses() {
    let sb = sandbox().await;
    let err = api_error(sb.namespaces().get("nope").await);
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "namespaces \"nope\" not found");
    let policies: Api<NetworkPolicy> = Api::namespaced(sb.client.clone(), "default");
    let err = api_error(policies.get("nope").await);
    assert_eq!(
        err.message,
        "networkpolicies.networking.k8s.io \"nope\" not found"
    );
    // Creating in a namespace that does not exist names the namespace.
    let err = api_error(
        sb.pods("nowhere")
            .create(&PostParams::default(), &pod_manifest("a", json!({})))
            .await,
    );
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "namespaces \"nowhere\" not found")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_a_duplicate_is_409_already_exists() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    let err = api_error(
        sb.namespaces()
            .create(
                &PostParams::default(),
                &obj(json!({"metadata": {"name": "x"}})),
            )
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    sb.pod("x", "a", json!({})).await;
    let err = api_error(
        sb.pods("x")
            .create(&PostParams::default(), &pod_manifest("a", json!({})))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_lease_resource_version_is_409_conflict() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    let leases: Api<Lease> = Api::namespaced(sb.client.clone(), "x");
    let lease: Lease = obj(
        json!({"metadata": {"name": "run-lock"}, "spec": {"holderIdentity": "run-1", "leaseDurationSeconds": 60}}),
    );
    let first = leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut mine = first.clone();
    mine.spec.as_mut().unwrap().holder_identity = Some("run-2".into());
    let renewed = leases
        .replace("run-lock", &PostParams::default(), &mine)
        .await
        .unwrap();
    assert_ne!(
        renewed.metadata.resource_version,
        first.metadata.resource_version
    );
    // A writer still holding the first version loses.
    let mut stale = first.clone();
    stale.spec.as_mut().unwrap().holder_identity = Some("run-3".into());
    let err = api_error(
        leases
            .replace("run-lock", &PostParams::default(), &stale)
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(
        err.message.contains("the object has been modified"),
        "{}",
        err.message
    );
    let held = leases.get("run-lock").await.unwrap();
    assert_eq!(held.spec.unwrap().holder_identity.as_deref(), Some("run-2"));
    let listed = leases.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    let gone = leases
        .delete("run-lock", &DeleteParams::default())
        .await
        .unwrap();
    assert!(gone.right().is_some_and(|s| s.is_success()));
    assert_eq!(api_error(leases.get("run-lock").await).code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_policy_is_422_with_the_field_path_in_the_causes() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    let policies: Api<NetworkPolicy> = Api::namespaced(sb.client.clone(), "x");
    let bad: NetworkPolicy = obj(json!({
        "metadata": {"name": "bad"},
        "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 70000}]}]}
    }));
    let syncs_before = sb.dataplane.syncs().len();
    let err = api_error(policies.create(&PostParams::default(), &bad).await);
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(
        err.message.starts_with("NetworkPolicy.networking.k8s.io \"bad\" is invalid: spec.ingress[0].ports[0].port: Invalid value: 70000"),
        "{}",
        err.message
    );
    let details = err.details.expect("details");
    assert_eq!(
        (
            details.name.as_str(),
            details.group.as_str(),
            details.kind.as_str()
        ),
        ("bad", "networking.k8s.io", "NetworkPolicy")
    );
    assert_eq!(details.causes[0].field, "spec.ingress[0].ports[0].port");
    assert_eq!(details.causes[0].reason, "FieldValueInvalid");
    assert_eq!(
        sb.dataplane.syncs().len(),
        syncs_before,
        "nothing changed, nothing synced"
    );
    assert_eq!(api_error(policies.get("bad").await).code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_are_defaulted_like_the_api_server_and_synced() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    let policies: Api<NetworkPolicy> = Api::namespaced(sb.client.clone(), "x");
    let np: NetworkPolicy = obj(json!({
        "metadata": {"name": "allow-dns"},
        "spec": {"egress": [{"ports": [{"port": 53}]}]}
    }));
    let created = policies.create(&PostParams::default(), &np).await.unwrap();
    let spec = created.spec.clone().unwrap();
    assert_eq!(spec.policy_types.unwrap(), ["Ingress", "Egress"]);
    assert_eq!(spec.pod_selector, Some(Default::default()));
    assert_eq!(
        spec.egress.unwrap()[0].ports.as_ref().unwrap()[0]
            .protocol
            .as_deref(),
        Some("TCP")
    );
    assert_eq!(sb.last_sync().policies, std::slice::from_ref(&created));

    let mut updated = created.clone();
    updated.spec.as_mut().unwrap().egress = Some(vec![]);
    updated.spec.as_mut().unwrap().policy_types = None;
    let replaced = policies
        .replace("allow-dns", &PostParams::default(), &updated)
        .await
        .unwrap();
    assert_eq!(
        replaced.spec.as_ref().unwrap().policy_types.as_deref(),
        Some(&["Ingress".to_string()][..])
    );
    assert_eq!(sb.last_sync().policies, [replaced]);

    let answer = policies
        .delete("allow-dns", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        answer.right().is_some(),
        "a Status, as upstream answers for policies"
    );
    assert!(sb.last_sync().policies.is_empty());
}

// A burst of changes shares syncs (each compiles and applies the whole ruleset): 40 policies
// created at once with a sync taking 50 ms need far fewer than 40 syncs, and still every create
// is answered only once a sync that holds its policy is in place (the emulator enforces before
// it answers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_changes_shares_syncs_and_each_answer_waits_for_its_own() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    sb.dataplane.set_sync_delay(Duration::from_millis(50));
    let before = sb.dataplane.syncs().len();
    let policies: Api<NetworkPolicy> = Api::namespaced(sb.client.clone(), "x");
    let creates = (0..40).map(|i| {
        let policies = policies.clone();
        let dataplane = sb.dataplane.clone();
        async move {
            let name = format!("p-{i:02}");
            let np: NetworkPolicy = obj(json!({"metadata": {"name": name}, "spec": {}}));
            policies
                .create(&PostParams::default(), &np)
                .await
                .expect("created");
            // Answered: the last sync holds it.
            let synced = dataplane.last_sync().expect("a sync");
            assert!(
                synced
                    .policies
                    .iter()
                    .any(|p| p.metadata.name.as_deref() == Some(name.as_str())),
                "{name} answered before a sync held it"
            );
        }
    });
    futures::future::join_all(creates).await;
    let syncs = sb.dataplane.syncs().len() - before;
    assert_eq!(sb.last_sync().policies.len(), 40);
    assert!(
        (1..20).contains(&syncs),
        "40 concurrent creates took {syncs} syncs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_get_cluster_ips_from_the_service_range() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    let services: Api<Service> = Api::namespaced(sb.client.clone(), "x");
    let svc = |name: &str, target: serde_json::Value| -> Service {
        obj(
            json!({"metadata": {"name": name}, "spec": {"selector": {"pod": "a"}, "ports": [{"port": 80, "targetPort": target}]}}),
        )
    };
    let a = services
        .create(&PostParams::default(), &svc("s-a", json!(8080)))
        .await
        .unwrap();
    let b = services
        .create(&PostParams::default(), &svc("s-b", json!("serve-80-tcp")))
        .await
        .unwrap();
    let ip_a = a.spec.unwrap().cluster_ip.unwrap();
    let ip_b = b.spec.unwrap().cluster_ip.unwrap();
    assert_ne!(ip_a, ip_b);
    for ip in [&ip_a, &ip_b] {
        assert!(ip.starts_with("10.96."), "{ip}");
    }
    let err = api_error(
        services
            .create(&PostParams::default(), &svc("s-a", json!(80)))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    let mut taken = svc("s-c", json!(80));
    taken.spec.as_mut().unwrap().cluster_ip = Some(ip_a.clone());
    let err = api_error(services.create(&PostParams::default(), &taken).await);
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    let state = sb.last_sync();
    let synced_b = state.services.iter().find(|s| s.name == "s-b").unwrap();
    assert_eq!(synced_b.cluster_ip.to_string(), ip_b);
    assert_eq!(
        synced_b.ports[0].target_port,
        TargetPort::Name("serve-80-tcp".into())
    );
    assert_eq!(synced_b.ports[0].protocol, Protocol::Tcp);
    let listed = services.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 2);
    services
        .delete("s-a", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(sb.last_sync().services.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_cascades_to_everything_in_it() {
    let sb = sandbox().await;
    sb.namespace("doomed", json!({})).await;
    sb.namespace("kept", json!({})).await;
    sb.pod("doomed", "a", json!({"pod": "a"})).await;
    sb.pod("kept", "a", json!({"pod": "a"})).await;
    sb.ready_pod("doomed", "a").await;
    sb.ready_pod("kept", "a").await;
    let services: Api<Service> = Api::namespaced(sb.client.clone(), "doomed");
    services
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}})),
        )
        .await
        .unwrap();
    let policies: Api<NetworkPolicy> = Api::namespaced(sb.client.clone(), "doomed");
    policies
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "deny"}, "spec": {"podSelector": {}}})),
        )
        .await
        .unwrap();
    let leases: Api<Lease> = Api::namespaced(sb.client.clone(), "doomed");
    leases
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "l"}})),
        )
        .await
        .unwrap();

    let answer = sb
        .namespaces()
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    let ns = answer.left().expect("the namespace, as upstream answers");
    assert!(ns.metadata.deletion_timestamp.is_some());
    assert_eq!(
        ns.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );

    assert_eq!(api_error(sb.namespaces().get("doomed").await).code, 404);
    assert_none_listed(&sb.pods("doomed")).await;
    assert_none_listed(&services).await;
    assert_none_listed(&policies).await;
    assert_none_listed(&leases).await;
    assert!(sb
        .dataplane
        .deleted()
        .contains(&("doomed".to_string(), "a".to_string())));
    assert_eq!(sb.dataplane.pods().len(), 1, "only kept/a is left");
    let state = sb.last_sync();
    assert!(state.namespaces.iter().all(|n| n.name != "doomed"));
    assert!(state.pods.iter().all(|p| p.namespace == "kept"));
    assert!(state.services.is_empty() && state.policies.is_empty());
    // The system namespaces cannot be deleted.
    assert_eq!(
        api_error(
            sb.namespaces()
                .delete("default", &DeleteParams::default())
                .await
        )
        .code,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_produces_a_sync_of_the_resulting_state() {
    let sb = sandbox().await;
    let count = || sb.dataplane.syncs().len();
    let mut before = count();
    let mut step = |what: &str| {
        let now = count();
        assert!(now > before, "{what} was not synced");
        before = now;
    };
    sb.namespace("x", json!({"team": "red"})).await;
    step("namespace create");
    sb.namespaces()
        .patch(
            "x",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "blue"}}})),
        )
        .await
        .unwrap();
    step("namespace label");
    assert_eq!(
        sb.last_sync()
            .namespaces
            .iter()
            .find(|n| n.name == "x")
            .unwrap()
            .labels["team"],
        "blue"
    );
    sb.pod("x", "a", json!({"pod": "a"})).await;
    step("pod create");
    sb.pods("x")
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"pod": "z"}}})),
        )
        .await
        .unwrap();
    step("pod label");
    assert_eq!(sb.last_sync().pods[0].labels["pod"], "z");
    let policies: Api<NetworkPolicy> = Api::namespaced(sb.client.clone(), "x");
    policies
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "p"}, "spec": {"podSelector": {}}})),
        )
        .await
        .unwrap();
    step("policy create");
    policies
        .delete("p", &DeleteParams::default())
        .await
        .unwrap();
    step("policy delete");
    sb.pods("x")
        .delete("a", &DeleteParams::default())
        .await
        .unwrap();
    step("pod delete");
    assert!(sb.last_sync().pods.is_empty());
    // Leases do not matter to enforcement.
    let leases: Api<Lease> = Api::namespaced(sb.client.clone(), "x");
    leases
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "l"}})),
        )
        .await
        .unwrap();
    assert_eq!(count(), before, "a lease is not synced");
    assert_eq!(sb.server.cluster_state(), sb.last_sync());
    assert!(sb.server.dataplane_errors().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_and_unserved_methods_are_refused_with_405() {
    let sb = sandbox().await;
    let err = match sb.namespaces().watch(&WatchParams::default(), "0").await {
        Ok(stream) => match Box::pin(stream).next().await {
            Some(Err(e)) => e,
            other => panic!("expected the watch to fail, got {other:?}"),
        },
        Err(e) => e,
    };
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err:?}")
    };
    assert_eq!(status.code, 405);
    assert!(status.message.contains("poll"), "{}", status.message);
    // Pods are not replaced with PUT here (netassay patches labels).
    sb.namespace("x", json!({})).await;
    let pod = sb.pod("x", "a", json!({})).await;
    let err = api_error(
        sb.pods("x")
            .replace("a", &PostParams::default(), &pod)
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (405, "MethodNotAllowed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_nodes_and_discovery_answer_like_a_cluster() {
    let sb = sandbox().await;
    let version = sb.client.apiserver_version().await.unwrap();
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "33")
    );
    let nodes: Api<Node> = Api::all(sb.client.clone());
    let list = nodes.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].metadata.name.as_deref(), Some("sandbox-node"));
    let discovery = kube::Discovery::new(sb.client.clone()).run().await.unwrap();
    let mut kinds: Vec<String> = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .map(|(r, _)| r.kind)
        .collect();
    kinds.sort();
    for kind in ["Lease", "Namespace", "NetworkPolicy", "Pod", "Service"] {
        assert!(
            kinds.contains(&kind.to_string()),
            "{kind} missing from {kinds:?}"
        );
    }
    // The system namespaces of a fresh cluster are there.
    let all = names(
        &sb.namespaces()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items,
    );
    assert!(all.contains(&"default".to_string()) && all.contains(&"kube-system".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_can_get_pods_and_exec_through_the_kubeconfig() {
    let Some(program) =
        kubectl_common::kubectl_or_skip("kubectl_can_get_pods_and_exec_through_the_kubeconfig")
    else {
        return;
    };
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    sb.pod("x", "a", json!({"pod": "a"})).await;
    sb.ready_pod("x", "a").await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sb.server.write_kubeconfig(&kubeconfig).unwrap();
    let kubectl = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(&program);
        cmd.arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(args);
        async move { cmd.output().await.expect("kubectl runs") }
    };
    let out = kubectl(&["get", "pods", "-n", "x", "-o", "name"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pod/a");
    let out = kubectl(&["get", "pods", "-n", "x"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains('a'));
    // kubectl asks the server for strict field validation (it finds /openapi/v3 saying so).
    let typo = dir.path().join("typo.yaml");
    std::fs::write(&typo, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: x}\nspec: {podselector: {}}\n").unwrap();
    let out = kubectl(&["create", "-f", typo.to_str().unwrap()]).await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown field \"spec.podselector\""),
        "{out:?}"
    );
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: x}\nspec: {podSelector: {}}\n").unwrap();
    for verb in [
        &["create", "-f"][..],
        &["apply", "-f"],
        &["apply", "--server-side", "-f"],
    ] {
        let out = kubectl(&[verb, &[good.to_str().unwrap()]].concat()).await;
        assert!(
            out.status.success(),
            "{verb:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(sb.last_sync().policies.len(), 1);
    let out = kubectl(&["get", "networkpolicies", "-A", "-o", "name"]).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "networkpolicy.networking.k8s.io/deny"
    );
    let mut exec = tokio::process::Command::new(&program);
    exec.arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"));
    exec.args([
        "exec",
        "-i",
        "-n",
        "x",
        "a",
        "--",
        "sh",
        "-c",
        "cat; echo; echo from-kubectl; exit 4",
    ]);
    let mut child = exec
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"piped-in").await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        "piped-in\nfrom-kubectl\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(4));
    let out = kubectl(&[
        "label",
        "pod",
        "-n",
        "x",
        "a",
        "pod=relabelled",
        "--overwrite",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sb.last_sync().pods[0].labels["pod"], "relabelled");
}

/// Reads one unmasked server frame: (opcode, payload).
async fn read_frame(stream: &mut tokio::net::TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await.unwrap();
    let len = match head[1] & 0x7f {
        126 => {
            let mut ext = [0u8; 2];
            stream.read_exact(&mut ext).await.unwrap();
            u64::from(u16::from_be_bytes(ext))
        }
        127 => {
            let mut ext = [0u8; 8];
            stream.read_exact(&mut ext).await.unwrap();
            u64::from_be_bytes(ext)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; usize::try_from(len).unwrap()];
    stream.read_exact(&mut payload).await.unwrap();
    (head[0] & 0x0f, payload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_accepts_a_post_upgrade_and_the_v4_protocol() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    sb.pod("x", "a", json!({})).await;
    sb.ready_pod("x", "a").await;
    let mut stream = tokio::net::TcpStream::connect(sb.server.addr())
        .await
        .unwrap();
    let request = format!(
        "POST /api/v1/namespaces/x/pods/a/exec?command=sh&command=-c&command=echo%20v4%3B%20exit%207&stdout=true HTTP/1.1\r\n\
         Host: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n",
        sb.server.addr()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // The response head ends with an empty line.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("sec-websocket-protocol: v4.channel.k8s.io"),
        "{head}"
    );
    let mut stdout = Vec::new();
    let status = loop {
        let (opcode, payload) = read_frame(&mut stream).await;
        assert_eq!(opcode, 2, "only binary frames before the status");
        match payload.split_first() {
            Some((1, data)) => stdout.extend_from_slice(data),
            Some((3, status)) => {
                break serde_json::from_slice::<serde_json::Value>(status).unwrap()
            }
            other => panic!("unexpected frame {other:?}"),
        }
    };
    assert_eq!(stdout, b"v4\n");
    assert_eq!(status["details"]["causes"][0]["message"], "7");
    let (opcode, _) = read_frame(&mut stream).await;
    assert_eq!(opcode, 8, "the server closes after the status");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_while_its_pods_start_leaves_nothing_behind() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    sb.dataplane.set_create_delay(Duration::from_millis(50));
    for i in 0..10 {
        sb.pod("x", &format!("p{i}"), json!({})).await;
    }
    sb.namespaces()
        .delete("x", &DeleteParams::default())
        .await
        .unwrap();
    // The deletion waited for starts in flight; starts not begun yet find their pod gone.
    assert!(sb.dataplane.pods().is_empty(), "{:?}", sb.dataplane.pods());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sb.dataplane.pods().is_empty(), "{:?}", sb.dataplane.pods());
    assert!(sb.last_sync().pods.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_recreated_under_the_same_name_starts_again() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    sb.pod("x", "a", json!({"gen": "1"})).await;
    sb.pods("x")
        .delete("a", &DeleteParams::default())
        .await
        .unwrap();
    sb.pod("x", "a", json!({"gen": "2"})).await;
    let pod = sb.ready_pod("x", "a").await;
    assert_eq!(label(&pod.metadata.labels, "gen").as_deref(), Some("2"));
    let ip: IpAddr = pod.status.unwrap().pod_ip.unwrap().parse().unwrap();
    assert_eq!(
        sb.dataplane.pods().get(&("x".to_string(), "a".to_string())),
        Some(&ip)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_written_kubeconfig_works_for_kube_rs_and_shutdown_stops_serving() {
    let sb = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    sb.server.write_kubeconfig(&path).unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let options = kube::config::KubeConfigOptions {
        context: Some(api::CONTEXT.to_string()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = Client::try_from(config).unwrap();
    let namespaces: Api<Namespace> = Api::all(client);
    namespaces.get("default").await.unwrap();
    let addr = sb.server.addr();
    let started = tokio::time::Instant::now();
    sb.server.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown is prompt"
    );
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

// ---- exposure kinds: Ingress, HTTPRoute, Gateway ----------------------------------------------

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use netassay_sandbox::object::Object;
use netassay_sandbox::preset::{Preset, PresetProfile};
use netassay_sandbox::system;

fn ingress_manifest(name: &str, host: &str) -> Ingress {
    obj(json!({
        "metadata": {"name": name},
        "spec": {"rules": [{"host": host, "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "http"}}}}
        ]}}]},
    }))
}

/// The ApiResource kube-rs discovers for a Gateway API kind.
async fn gateway_api_resource(sb: &Sandbox, kind: &str) -> ApiResource {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", kind);
    let (resource, caps) = kube::discovery::pinned_kind(&sb.client, &gvk)
        .await
        .expect("discovered");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    resource
}

fn dynamic(resource: &ApiResource, name: &str, spec: serde_json::Value) -> DynamicObject {
    DynamicObject::new(name, resource).data(json!({ "spec": spec }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingresses_are_created_listed_replaced_and_deleted() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    sb.namespace("y", json!({})).await;
    let x: Api<Ingress> = Api::namespaced(sb.client.clone(), "x");
    let y: Api<Ingress> = Api::namespaced(sb.client.clone(), "y");
    let created = x
        .create(
            &PostParams::default(),
            &ingress_manifest("web", "web.example.org"),
        )
        .await
        .expect("created");
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.status.is_some(), "status is the server's");
    y.create(
        &PostParams::default(),
        &ingress_manifest("web", "web.example.org"),
    )
    .await
    .expect("same name, other namespace");
    let all: Api<Ingress> = Api::all(sb.client.clone());
    let listed: Vec<String> = all
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i.metadata.namespace.as_deref().unwrap(),
                i.metadata.name.as_deref().unwrap()
            )
        })
        .collect();
    assert_eq!(listed, ["x/web", "y/web"]);
    assert_eq!(x.list(&ListParams::default()).await.unwrap().items.len(), 1);

    let mut changed = x.get("web").await.unwrap();
    changed.spec.as_mut().unwrap().rules.as_mut().unwrap()[0].host = Some("www.example.org".into());
    let replaced = x
        .replace("web", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_eq!(replaced.metadata.generation, Some(2));
    assert_eq!(replaced.metadata.uid, created.metadata.uid);
    // A stale resourceVersion is a conflict, as for every kind.
    let err = api_error(x.replace("web", &PostParams::default(), &changed).await);
    assert_eq!(err.code, 409);

    let err = api_error(
        x.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "bad"}, "spec": {"rules": [{"host": "a.example.org", "http": {"paths": [
                {"path": "/", "backend": {"service": {"name": "web", "port": {"number": 80}}}}
            ]}}]}})),
        )
        .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(
        err.message
            .contains("spec.rules[0].http.paths[0].pathType: Required value"),
        "{}",
        err.message
    );

    x.delete("web", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_error(x.get("web").await).code, 404);
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_routes_and_gateways_work_through_dynamic_objects() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    let routes_ar = gateway_api_resource(&sb, "HTTPRoute").await;
    assert_eq!(routes_ar.plural, "httproutes");
    let gateways_ar = gateway_api_resource(&sb, "Gateway").await;
    let routes: Api<DynamicObject> = Api::namespaced_with(sb.client.clone(), "x", &routes_ar);
    let route_spec = json!({
        "parentRefs": [{"name": "tre-gateway", "namespace": "tre-gateway"}],
        "hostnames": ["web.example.org"],
        "rules": [{"backendRefs": [{"name": "web", "port": 80}]}],
    });
    let created = routes
        .create(
            &PostParams::default(),
            &dynamic(&routes_ar, "web", route_spec.clone()),
        )
        .await
        .expect("created");
    assert_eq!(created.types.as_ref().unwrap().kind, "HTTPRoute");
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(
        created.data["spec"]["rules"][0]["backendRefs"][0]["kind"], "Service",
        "defaulted like the CRD"
    );
    let got = routes.get("web").await.unwrap();
    assert_eq!(got.metadata.uid, created.metadata.uid);
    let all_routes: Api<DynamicObject> = Api::all_with(sb.client.clone(), &routes_ar);
    assert_eq!(
        all_routes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    let mut changed = got.clone();
    changed.data["spec"]["hostnames"] = json!(["www.example.org"]);
    let replaced = routes
        .replace("web", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_eq!(
        replaced.data["spec"]["hostnames"],
        json!(["www.example.org"])
    );
    assert_eq!(replaced.metadata.generation, Some(2));

    // Validated like the CRD schema: a Service backendRef needs a port.
    let err = api_error(
        routes
            .create(
                &PostParams::default(),
                &dynamic(
                    &routes_ar,
                    "bad",
                    json!({"rules": [{"backendRefs": [{"name": "web"}]}]}),
                ),
            )
            .await,
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message.contains("Must have port for Service reference"),
        "{}",
        err.message
    );
    // A body of another kind is refused.
    let mut wrong = dynamic(&routes_ar, "wrong", route_spec);
    wrong.types.as_mut().unwrap().kind = "Gateway".into();
    assert_eq!(
        api_error(routes.create(&PostParams::default(), &wrong).await).code,
        400
    );

    let gateways: Api<DynamicObject> = Api::namespaced_with(sb.client.clone(), "x", &gateways_ar);
    let listener = json!([{"name": "http", "port": 80, "protocol": "HTTP"}]);
    let ours = gateways
        .create(
            &PostParams::default(),
            &dynamic(
                &gateways_ar,
                "ours",
                json!({"gatewayClassName": "netassay-sandbox", "listeners": listener}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        ours.data["status"]["addresses"],
        json!([{"type": "IPAddress", "value": "127.0.0.1"}]),
        "the sandbox class is programmed at the node's address"
    );
    let other = gateways
        .create(
            &PostParams::default(),
            &dynamic(
                &gateways_ar,
                "other",
                json!({"gatewayClassName": "istio", "listeners": listener}),
            ),
        )
        .await
        .unwrap();
    assert!(
        other.data.get("status").is_none(),
        "no controller for other classes"
    );
    let err = api_error(
        gateways
            .create(
                &PostParams::default(),
                &dynamic(&gateways_ar, "bad", json!({"listeners": []})),
            )
            .await,
    );
    assert_eq!(err.code, 422);

    routes
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    gateways
        .delete("ours", &DeleteParams::default())
        .await
        .unwrap();
    assert_none_listed(&routes).await;
    assert_eq!(
        gateways
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_ingresses_httproutes_and_gateways() {
    let sb = sandbox().await;
    let discovery = kube::Discovery::new(sb.client.clone()).run().await.unwrap();
    let mut kinds: Vec<(String, String)> = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .map(|(r, _)| (r.group, r.kind))
        .collect();
    kinds.sort();
    for (group, kind) in [
        ("networking.k8s.io", "Ingress"),
        ("gateway.networking.k8s.io", "HTTPRoute"),
        ("gateway.networking.k8s.io", "Gateway"),
    ] {
        assert!(
            kinds.contains(&(group.to_string(), kind.to_string())),
            "{kind} missing from {kinds:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_routes_follow_http_routes_ingresses_and_services() {
    let sb = sandbox().await;
    sb.namespace("p1", json!({})).await;
    let services: Api<Service> = Api::namespaced(sb.client.clone(), "p1");
    let web = services
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}})),
        )
        .await
        .unwrap();
    let ip = web.spec.unwrap().cluster_ip.unwrap();
    let routes_ar = gateway_api_resource(&sb, "HTTPRoute").await;
    let routes: Api<DynamicObject> = Api::namespaced_with(sb.client.clone(), "p1", &routes_ar);
    routes
        .create(
            &PostParams::default(),
            &dynamic(
                &routes_ar,
                "web",
                json!({
                    "parentRefs": [{"name": "tre-gateway", "namespace": "tre-gateway"}],
                    "hostnames": ["web.example.org"],
                    "rules": [{"backendRefs": [{"name": "web", "port": 80}]}],
                }),
            ),
        )
        .await
        .unwrap();
    let ingresses: Api<Ingress> = Api::namespaced(sb.client.clone(), "p1");
    ingresses
        .create(
            &PostParams::default(),
            &ingress_manifest("web", "ing.example.org"),
        )
        .await
        .unwrap();
    let routes_of = |sb: &Sandbox| -> Vec<String> {
        sb.last_sync()
            .gateway_routes
            .iter()
            .map(|r| format!("{} {} {}", r.host, r.backend, r.origin))
            .collect()
    };
    assert_eq!(
        routes_of(&sb),
        [
            format!("ing.example.org {ip}:80 Ingress p1/web"),
            format!("web.example.org {ip}:80 HTTPRoute p1/web"),
        ]
    );
    ingresses
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        routes_of(&sb),
        [format!("web.example.org {ip}:80 HTTPRoute p1/web")]
    );
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    assert!(routes_of(&sb).is_empty(), "no Service, no route");
}

// ---- Services of type NodePort and LoadBalancer -----------------------------------------------

fn node_port_service(name: &str, type_: &str, node_port: Option<i32>) -> Service {
    let mut port = json!({"name": "http", "port": 80, "targetPort": 8080});
    if let Some(n) = node_port {
        port["nodePort"] = json!(n);
    }
    obj(
        json!({"metadata": {"name": name}, "spec": {"type": type_, "selector": {"app": "web"}, "ports": [port]}}),
    )
}

fn node_ports(svc: &Service) -> Vec<i32> {
    svc.spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .filter_map(|p| p.node_port)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ports_are_allocated_kept_and_refused_like_the_api_server() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    let services: Api<Service> = Api::namespaced(sb.client.clone(), "x");
    let create = |svc: Service| {
        let services = services.clone();
        async move { services.create(&PostParams::default(), &svc).await }
    };
    let allocated = create(node_port_service("a", "NodePort", None))
        .await
        .unwrap();
    assert_eq!(node_ports(&allocated), [30000]);
    assert_eq!(
        allocated
            .spec
            .as_ref()
            .unwrap()
            .external_traffic_policy
            .as_deref(),
        Some("Cluster")
    );
    let given = create(node_port_service("b", "NodePort", Some(31000)))
        .await
        .unwrap();
    assert_eq!(node_ports(&given), [31000]);
    let next = create(node_port_service("c", "NodePort", None))
        .await
        .unwrap();
    assert_eq!(node_ports(&next), [30001]);

    for (name, node_port, why) in [
        ("d", 31000, "provided port is already allocated"),
        (
            "e",
            80,
            "provided port is not in the valid range. The range of valid ports is 30000-32767",
        ),
        ("f", 32768, "provided port is not in the valid range"),
    ] {
        let err = api_error(create(node_port_service(name, "NodePort", Some(node_port))).await);
        assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"), "{name}");
        assert!(
            err.message.contains(&format!(
                "spec.ports[0].nodePort: Invalid value: {node_port}: {why}"
            )),
            "{}",
            err.message
        );
    }
    let err = api_error(create(node_port_service("g", "ClusterIP", Some(30500))).await);
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .contains("may not be used when `type` is 'ClusterIP'"),
        "{}",
        err.message
    );
    let err = api_error(create(node_port_service("h", "ExternalName", None)).await);
    assert_eq!(err.code, 422);

    // A replace without node ports keeps them; a change of type to ClusterIP drops them.
    let mut again = services.get("a").await.unwrap();
    again.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = None;
    let kept = services
        .replace("a", &PostParams::default(), &again)
        .await
        .unwrap();
    assert_eq!(node_ports(&kept), [30000]);
    let mut cluster_ip = kept.clone();
    cluster_ip.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    let dropped = services
        .replace("a", &PostParams::default(), &cluster_ip)
        .await
        .unwrap();
    assert!(node_ports(&dropped).is_empty());
    // ... and the port is free again.
    let reused = create(node_port_service("i", "NodePort", Some(30000)))
        .await
        .unwrap();
    assert_eq!(node_ports(&reused), [30000]);

    let state = sb.last_sync();
    let synced = state.services.iter().find(|s| s.name == "b").unwrap();
    assert_eq!(synced.ports[0].node_port, Some(31000));
    assert_eq!(state.node_address, Some("127.0.0.1".parse().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancers_are_exposed_at_the_node_address() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    let services: Api<Service> = Api::namespaced(sb.client.clone(), "x");
    let lb = services
        .create(
            &PostParams::default(),
            &node_port_service("lb", "LoadBalancer", None),
        )
        .await
        .unwrap();
    let nodes: Api<Node> = Api::all(sb.client.clone());
    let node_ip = nodes.list(&ListParams::default()).await.unwrap().items[0]
        .status
        .as_ref()
        .unwrap()
        .addresses
        .as_ref()
        .unwrap()[0]
        .address
        .clone();
    assert_eq!(
        node_ports(&lb),
        [30000],
        "allocateLoadBalancerNodePorts defaults to true"
    );
    let ingress = lb.status.unwrap().load_balancer.unwrap().ingress.unwrap();
    assert_eq!(ingress[0].ip.as_deref(), Some(node_ip.as_str()));
    let mut without = node_port_service("lb2", "LoadBalancer", None);
    without
        .spec
        .as_mut()
        .unwrap()
        .allocate_load_balancer_node_ports = Some(false);
    let lb2 = services
        .create(&PostParams::default(), &without)
        .await
        .unwrap();
    assert!(node_ports(&lb2).is_empty());
    let plain = services
        .create(
            &PostParams::default(),
            &node_port_service("plain", "ClusterIP", None),
        )
        .await
        .unwrap();
    assert!(plain
        .status
        .unwrap()
        .load_balancer
        .unwrap()
        .ingress
        .is_none());
    let state = sb.last_sync();
    let synced = state.services.iter().find(|s| s.name == "lb2").unwrap();
    assert_eq!(
        synced.load_balancer_ips,
        [node_ip.parse::<IpAddr>().unwrap()]
    );
    assert_eq!(synced.ports[0].node_port, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_keep_host_network_and_host_ports_as_given() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    let mut manifest = pod_manifest("h", json!({}));
    let spec = manifest.spec.as_mut().unwrap();
    spec.host_network = Some(true);
    spec.containers[0].ports.as_mut().unwrap()[0].host_port = Some(8080);
    let created = sb
        .pods("x")
        .create(&PostParams::default(), &manifest)
        .await
        .unwrap();
    for pod in [created, sb.pods("x").get("h").await.unwrap()] {
        let spec = pod.spec.unwrap();
        assert_eq!(spec.host_network, Some(true));
        assert_eq!(
            spec.containers[0].ports.as_ref().unwrap()[0].host_port,
            Some(8080)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_removes_its_ingresses_routes_and_gateways() {
    let sb = sandbox().await;
    sb.namespace("doomed", json!({})).await;
    let ingresses: Api<Ingress> = Api::namespaced(sb.client.clone(), "doomed");
    ingresses
        .create(
            &PostParams::default(),
            &ingress_manifest("web", "web.example.org"),
        )
        .await
        .unwrap();
    let routes_ar = gateway_api_resource(&sb, "HTTPRoute").await;
    let gateways_ar = gateway_api_resource(&sb, "Gateway").await;
    let routes: Api<DynamicObject> = Api::namespaced_with(sb.client.clone(), "doomed", &routes_ar);
    let gateways: Api<DynamicObject> =
        Api::namespaced_with(sb.client.clone(), "doomed", &gateways_ar);
    routes
        .create(
            &PostParams::default(),
            &dynamic(&routes_ar, "r", json!({"parentRefs": [{"name": "g"}]})),
        )
        .await
        .unwrap();
    gateways
        .create(
            &PostParams::default(),
            &dynamic(&gateways_ar, "g", json!({"gatewayClassName": "c", "listeners": [{"name": "l", "port": 80, "protocol": "HTTP"}]})),
        )
        .await
        .unwrap();
    sb.namespaces()
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    // Recreated empty: nothing of the old namespace's survives.
    sb.namespace("doomed", json!({})).await;
    assert_none_listed(&ingresses).await;
    assert_none_listed(&routes).await;
    assert_none_listed(&gateways).await;
}

// ---- cluster DNS and the K8TRE preset ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_dns_is_pinned_and_its_address_is_never_handed_out() {
    let sb = sandbox().await;
    let started = sb
        .server
        .bootstrap(system::dns_objects(std::path::Path::new("/tmp/zone")))
        .await
        .expect("bootstrapped");
    assert_eq!(
        started,
        [("kube-system".to_string(), "coredns".to_string())]
    );
    let dns: Api<Service> = Api::namespaced(sb.client.clone(), "kube-system");
    let kube_dns = dns.get("kube-dns").await.unwrap();
    assert_eq!(
        kube_dns.spec.unwrap().cluster_ip.as_deref(),
        Some("10.96.0.10")
    );
    sb.ready_pod("kube-system", "coredns").await;
    let coredns = sb.dataplane.created();
    assert_eq!(coredns[0].command[..3], ["netassay", "agent", "dns"]);
    // Bootstrapping again leaves what exists alone.
    assert!(sb
        .server
        .bootstrap(system::dns_objects(std::path::Path::new("/tmp/zone")))
        .await
        .is_ok());

    sb.namespace("x", json!({})).await;
    let services: Api<Service> = Api::namespaced(sb.client.clone(), "x");
    let mut allocated = Vec::new();
    for i in 0..12 {
        let svc = services
            .create(
                &PostParams::default(),
                &node_port_service(&format!("s{i}"), "ClusterIP", None),
            )
            .await
            .unwrap();
        allocated.push(svc.spec.unwrap().cluster_ip.unwrap());
    }
    assert_eq!(allocated[0], "10.96.0.2");
    assert!(
        !allocated.contains(&"10.96.0.10".to_string()),
        "{allocated:?}"
    );
    assert!(
        !allocated.contains(&"10.96.0.1".to_string()),
        "{allocated:?}"
    );
    assert_eq!(allocated[8], "10.96.0.11", "{allocated:?}");
    for taken in ["10.96.0.1", "10.96.0.10"] {
        let mut svc = node_port_service("pinned", "ClusterIP", None);
        svc.spec.as_mut().unwrap().cluster_ip = Some(taken.into());
        let err = api_error(services.create(&PostParams::default(), &svc).await);
        assert_eq!(err.code, 422, "{taken}");
        assert!(
            err.message.contains("provided IP is already allocated"),
            "{}",
            err.message
        );
    }
}

async fn preset_sandbox(faults: &str) -> Sandbox {
    sandbox_with(ApiOptions {
        preset: Some(PresetProfile::new(
            Preset::K8tre,
            <netassay_sandbox::FaultSet as std::str::FromStr>::from_str(faults)
                .expect("faults")
                .preset_faults(),
        )),
        ..ApiOptions::default()
    })
    .await
}

async fn policy_names(sb: &Sandbox, ns: &str) -> Vec<String> {
    let policies: Api<NetworkPolicy> = Api::namespaced(sb.client.clone(), ns);
    policies
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect()
}

const K8TRE_POLICIES: [&str; 5] = [
    "k8tre-allow-dns",
    "k8tre-allow-from-gateway",
    "k8tre-allow-mirror",
    "k8tre-allow-same-namespace",
    "k8tre-default-deny",
];

// Contract: a namespace created with, or relabelled to, a persona label gets the preset's
// policies (if absent), created through the store like a user's: stored, labelled, synced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preset_gives_persona_namespaces_their_policies_on_create_and_relabel() {
    let sb = preset_sandbox("").await;
    sb.namespace("p1", json!({"k8tre.io/resource-type": "project-namespace"}))
        .await;
    assert_eq!(policy_names(&sb, "p1").await, K8TRE_POLICIES);
    let synced: Vec<String> = sb
        .last_sync()
        .policies
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some("p1"))
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(synced, K8TRE_POLICIES, "in the same sync as the namespace");
    let policies: Api<NetworkPolicy> = Api::namespaced(sb.client.clone(), "p1");
    let deny = policies.get("k8tre-default-deny").await.unwrap();
    assert_eq!(
        label(&deny.metadata.labels, "app.kubernetes.io/managed-by").as_deref(),
        Some("netassay-sandbox-preset")
    );
    assert_eq!(deny.metadata.generation, Some(1), "admitted like a user's");

    sb.namespace("plain", json!({})).await;
    assert!(policy_names(&sb, "plain").await.is_empty());
    sb.namespaces()
        .patch(
            "plain",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"k8tre.io/resource-type": "infrastructure"}}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(policy_names(&sb, "plain").await, K8TRE_POLICIES);

    // A deleted preset policy comes back only with the next change of the namespace; a user's
    // policy of a preset name is left alone.
    policies
        .delete("k8tre-allow-mirror", &DeleteParams::default())
        .await
        .unwrap();
    policies
        .delete("k8tre-allow-dns", &DeleteParams::default())
        .await
        .unwrap();
    policies
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "k8tre-allow-dns"}, "spec": {"podSelector": {"matchLabels": {"mine": "yes"}}}})),
        )
        .await
        .unwrap();
    assert_eq!(policy_names(&sb, "p1").await.len(), 4);
    sb.namespaces()
        .patch(
            "p1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
        )
        .await
        .unwrap();
    assert_eq!(policy_names(&sb, "p1").await, K8TRE_POLICIES);
    let mine = policies.get("k8tre-allow-dns").await.unwrap();
    assert!(mine.metadata.labels.is_none(), "the user's policy stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_preset_persona_labels_mean_nothing() {
    let sb = sandbox().await;
    sb.namespace("p1", json!({"k8tre.io/resource-type": "project-namespace"}))
        .await;
    assert!(policy_names(&sb, "p1").await.is_empty());
}

// Fault k8tre-allow-all: project namespaces (only) also get `allow-all`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allow_all_fault_adds_allow_all_to_project_namespaces() {
    let sb = preset_sandbox("k8tre-allow-all").await;
    sb.namespace("p1", json!({"k8tre.io/resource-type": "project-namespace"}))
        .await;
    sb.namespace("i1", json!({"k8tre.io/resource-type": "infrastructure"}))
        .await;
    let mut want: Vec<&str> = K8TRE_POLICIES.to_vec();
    want.insert(0, "allow-all");
    assert_eq!(policy_names(&sb, "p1").await, want);
    assert_eq!(policy_names(&sb, "i1").await, K8TRE_POLICIES);
}

// Fault k8tre-ports-only-egress: the mirror rule is split, its second half opens 443 anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ports_only_fault_splits_the_mirror_rule() {
    let sb = preset_sandbox("k8tre-ports-only-egress").await;
    sb.namespace("p1", json!({"k8tre.io/resource-type": "project-namespace"}))
        .await;
    let policies: Api<NetworkPolicy> = Api::namespaced(sb.client.clone(), "p1");
    let mirror = policies.get("k8tre-allow-mirror").await.unwrap();
    let egress = serde_json::to_value(mirror.spec.unwrap().egress.unwrap()).unwrap();
    assert_eq!(
        egress,
        json!([{"to": [{"ipBlock": {"cidr": "203.0.113.20/32"}}]}, {"ports": [{"protocol": "TCP", "port": 443}]}])
    );
}

// Fault k8tre-nodeport: project namespaces also get the NodePort Service exposed-web.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodeport_fault_exposes_an_app_on_a_node_port() {
    let sb = preset_sandbox("k8tre-nodeport").await;
    sb.namespace("p1", json!({"k8tre.io/resource-type": "project-namespace"}))
        .await;
    sb.namespace("i1", json!({"k8tre.io/resource-type": "infrastructure"}))
        .await;
    let p1: Api<Service> = Api::namespaced(sb.client.clone(), "p1");
    let exposed = p1.get("exposed-web").await.expect("created");
    let spec = exposed.spec.as_ref().unwrap();
    assert_eq!(spec.type_.as_deref(), Some("NodePort"));
    assert_eq!(node_ports(&exposed), [30000]);
    let i1: Api<Service> = Api::namespaced(sb.client.clone(), "i1");
    assert_none_listed(&i1).await;
    let synced = sb.last_sync();
    assert!(synced
        .services
        .iter()
        .any(|s| s.name == "exposed-web" && s.ports[0].node_port == Some(30000)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preset_gateway_is_bootstrapped_as_objects() {
    let sb = preset_sandbox("").await;
    let profile = PresetProfile::new(Preset::K8tre, &[]);
    let objects = profile.bootstrap_objects(std::path::Path::new("/tmp/routes"));
    assert!(matches!(objects[0], Object::Namespace(_)));
    let started = sb.server.bootstrap(objects).await.expect("bootstrapped");
    assert_eq!(
        started,
        [("tre-gateway".to_string(), "gateway".to_string())]
    );
    let services: Api<Service> = Api::namespaced(sb.client.clone(), "tre-gateway");
    let lb = services.get("tre-gateway").await.unwrap();
    assert_eq!(
        lb.spec.as_ref().unwrap().type_.as_deref(),
        Some("LoadBalancer")
    );
    assert!(
        node_ports(&lb).is_empty(),
        "exposed at the load balancer only"
    );
    assert!(lb.status.unwrap().load_balancer.unwrap().ingress.is_some());
    let gateways_ar = gateway_api_resource(&sb, "Gateway").await;
    let gateways: Api<DynamicObject> =
        Api::namespaced_with(sb.client.clone(), "tre-gateway", &gateways_ar);
    let gateway = gateways.get("tre-gateway").await.unwrap();
    assert_eq!(gateway.data["spec"]["gatewayClassName"], "netassay-sandbox");
    assert!(gateway.data["status"]["addresses"].is_array());
    // tre-gateway has no persona label: no preset policies there.
    assert!(policy_names(&sb, "tre-gateway").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_ingresses_httproutes_and_gateways() {
    let Some(program) =
        kubectl_common::kubectl_or_skip("kubectl_lists_ingresses_httproutes_and_gateways")
    else {
        return;
    };
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sb.server.write_kubeconfig(&kubeconfig).unwrap();
    let manifest = dir.path().join("objects.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: web\n  namespace: x\nspec:\n  parentRefs:\n  - name: tre-gateway\n    namespace: tre-gateway\n  hostnames: [web.example.org]\n  rules:\n  - backendRefs:\n    - name: web\n      port: 80\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\n  namespace: x\nspec:\n  rules:\n  - host: web.example.org\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service:\n            name: web\n            port:\n              number: 80\n",
    )
    .unwrap();
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new(&program)
            .env("KUBECONFIG", &kubeconfig)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    kubectl(&["create", "-f", manifest.to_str().unwrap()]);
    let listed = kubectl(&["get", "httproutes,ingresses", "-A", "-o", "name"]);
    assert!(
        listed.contains("httproute.gateway.networking.k8s.io/web"),
        "{listed}"
    );
    assert!(listed.contains("ingress.networking.k8s.io/web"), "{listed}");
    kubectl(&["delete", "httproute", "web", "-n", "x"]);
    let listed = kubectl(&["get", "httproutes", "-n", "x", "-o", "name"]);
    assert!(listed.trim().is_empty(), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_objects_are_in_the_first_sync_and_their_pods_start() {
    let sb = sandbox_with(ApiOptions {
        bootstrap: system::dns_objects(std::path::Path::new("/tmp/zone")),
        ..ApiOptions::default()
    })
    .await;
    assert_eq!(
        sb.server.bootstrapped_pods(),
        [("kube-system".to_string(), "coredns".to_string())]
    );
    // The first sync comes with the pod's address (and `sync` waits for it).
    sb.server.sync().await;
    let first = &sb.dataplane.syncs()[0];
    assert!(
        first.services.iter().any(|s| s.name == "kube-dns"),
        "{first:?}"
    );
    sb.ready_pod("kube-system", "coredns").await;

    // An object the API server refuses stops the start, saying which.
    let dataplane = Arc::new(FakeDataplane::new());
    let mut bad = system::dns_objects(std::path::Path::new("/tmp/zone"));
    if let Object::Service(svc) = &mut bad[1] {
        svc.spec.as_mut().unwrap().cluster_ip = Some("192.0.2.1".into());
    }
    let err = match api::start_with(
        dataplane,
        ApiOptions {
            bootstrap: bad,
            ..ApiOptions::default()
        },
    )
    .await
    {
        Ok(_) => panic!("started with an invalid object"),
        Err(e) => e,
    };
    assert!(
        err.to_string()
            .contains("creating Service kube-system/kube-dns"),
        "{err}"
    );
}

/// A raw HTTP call to the emulator: (status, body as JSON or text).
async fn call(
    sb: &Sandbox,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let client = reqwest::Client::new();
    let mut request = client
        .request(method, format!("{}{path}", sb.server.url()))
        .body(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.expect("the emulator answers");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("a body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, body)
}

/// A length-delimited protobuf field.
fn pb_bytes(tag: u8, bytes: &[u8], out: &mut Vec<u8>) {
    out.push(tag << 3 | 2);
    assert!(bytes.len() < 128, "one-byte lengths only");
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

/// `k8s\0` + runtime.Unknown{typeMeta{apiVersion, kind}, raw}, as client-go sends it.
fn pb_envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut type_meta = Vec::new();
    pb_bytes(1, api_version.as_bytes(), &mut type_meta);
    pb_bytes(2, kind.as_bytes(), &mut type_meta);
    let mut unknown = Vec::new();
    pb_bytes(1, &type_meta, &mut unknown);
    pb_bytes(2, raw, &mut unknown);
    [b"k8s\0".as_slice(), &unknown].concat()
}

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protobuf_namespace_is_created_like_a_json_one() {
    let sb = sandbox().await;
    // Namespace{metadata: ObjectMeta{name: "demo", generateName: "", labels: {team: red}}}, with
    // the empty strings and zero time Go's encoder always writes.
    let mut label = Vec::new();
    pb_bytes(1, b"team", &mut label);
    pb_bytes(2, b"red", &mut label);
    let mut meta = Vec::new();
    pb_bytes(1, b"demo", &mut meta);
    pb_bytes(2, b"", &mut meta);
    pb_bytes(8, b"", &mut meta);
    pb_bytes(11, &label, &mut meta);
    let mut namespace = Vec::new();
    pb_bytes(1, &meta, &mut namespace);
    let body = pb_envelope("v1", "Namespace", &namespace);
    let (status, created) = call(
        &sb,
        reqwest::Method::POST,
        "/api/v1/namespaces",
        &[
            ("content-type", PROTOBUF),
            ("accept", "application/vnd.kubernetes.protobuf, */*"),
        ],
        body,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["metadata"]["name"], "demo");
    let stored = sb.namespaces().get("demo").await.expect("stored");
    let labels = stored.metadata.labels.unwrap();
    assert_eq!(labels["team"], "red");
    assert_eq!(labels["kubernetes.io/metadata.name"], "demo");
    // A body of another kind than the URL's is refused, not stored.
    let mut meta = Vec::new();
    pb_bytes(1, b"p", &mut meta);
    let mut pod = Vec::new();
    pb_bytes(1, &meta, &mut pod);
    let (status, refused) = call(
        &sb,
        reqwest::Method::POST,
        "/api/v1/namespaces",
        &[("content-type", PROTOBUF)],
        pb_envelope("v1", "Pod", &pod),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert!(sb.namespaces().get("p").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_as_table_has_upstreams_pod_columns_with_wide_ones_at_priority_1() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    sb.pod("x", "a", json!({"pod": "a"})).await;
    let pod = sb.ready_pod("x", "a").await;
    let (status, table) = call(
        &sb,
        reqwest::Method::GET,
        "/api/v1/namespaces/x/pods",
        &[("accept", TABLE)],
        Vec::new(),
    )
    .await;
    assert_eq!(status, 200, "{table}");
    assert_eq!(table["kind"], "Table");
    let columns: Vec<(String, u64)> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["priority"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = [
        ("Name", 0),
        ("Ready", 0),
        ("Status", 0),
        ("Restarts", 0),
        ("Age", 0),
        ("IP", 1),
        ("Node", 1),
        ("Nominated Node", 1),
        ("Readiness Gates", 1),
    ];
    assert_eq!(columns, want.map(|(n, p)| (n.to_string(), p)).to_vec());
    let cells = &table["rows"][0]["cells"];
    let ip = pod.status.unwrap().pod_ip.unwrap();
    assert_eq!(cells[0], "a");
    assert_eq!(
        (&cells[1], &cells[2], &cells[3]),
        (&json!("1/1"), &json!("Running"), &json!("0"))
    );
    assert_eq!(cells[5], json!(ip));
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(table["rows"][0]["object"]["metadata"]["labels"]["pod"], "a");
    // Without the Table media type, the same request is a plain list.
    let (_, list) = call(
        &sb,
        reqwest::Method::GET,
        "/api/v1/namespaces/x/pods",
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(list["kind"], "PodList");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_reviews_allow_everything_and_refuse_a_review_without_attributes() {
    let sb = sandbox().await;
    let review = json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "delete", "resource": "namespaces"}}
    });
    let (status, answer) = call(
        &sb,
        reqwest::Method::POST,
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        &[("content-type", "application/json")],
        serde_json::to_vec(&review).unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["status"]["allowed"], true);
    assert_eq!(answer["spec"], review["spec"]);
    let (status, invalid) = call(
        &sb,
        reqwest::Method::POST,
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        &[("content-type", "application/json")],
        serde_json::to_vec(&json!({"spec": {}})).unwrap(),
    )
    .await;
    assert_eq!(status, 422, "{invalid}");
    assert_eq!(
        invalid["details"]["causes"][0]["field"],
        "spec.resourceAttributes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_logs_come_from_the_dataplane_with_tail_lines() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    sb.pod("x", "a", json!({"pod": "a"})).await;
    sb.ready_pod("x", "a").await;
    sb.dataplane.write_log("x", "a", "one\ntwo\nthree\n");
    let (status, log) = call(
        &sb,
        reqwest::Method::GET,
        "/api/v1/namespaces/x/pods/a/log?tailLines=2",
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(log, json!("two\nthree\n"));
    let (status, missing) = call(
        &sb,
        reqwest::Method::GET,
        "/api/v1/namespaces/x/pods/nope/log",
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(status, 404, "{missing}");
    let (status, wrong) = call(
        &sb,
        reqwest::Method::GET,
        "/api/v1/namespaces/x/pods/a/log?container=other",
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(status, 400, "{wrong}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_of_another_image_waits_in_err_image_pull_with_an_event_saying_why() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    let pod: Pod = obj(json!({
        "metadata": {"name": "bb"},
        "spec": {"containers": [{"name": "bb", "image": "busybox:1.36", "command": ["sleep", "60"]}]}
    }));
    sb.pods("x")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    let why = "image busybox:1.36 is not available in the sandbox: only the netassay image runs";
    let waiting = eventually(|| async {
        let pod = sb.pods("x").get("bb").await.ok()?;
        let status = pod.status?;
        let state = status.container_statuses?.first()?.state.clone()?;
        Some((status.phase?, state.waiting?))
    })
    .await;
    assert_eq!(waiting.0, "Pending");
    assert_eq!(waiting.1.reason.as_deref(), Some("ErrImagePull"));
    assert_eq!(waiting.1.message.as_deref(), Some(why));
    assert!(
        sb.dataplane.created().iter().all(|p| p.name != "bb"),
        "the dataplane never runs it"
    );
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(sb.client.clone(), "x");
    let failed = eventually(|| async {
        let list = events
            .list(&ListParams::default().fields("involvedObject.name=bb,reason=Failed"))
            .await
            .ok()?;
        (list.items.len() == 2).then_some(list.items)
    })
    .await;
    let messages: Vec<String> = failed.iter().filter_map(|e| e.message.clone()).collect();
    assert!(
        messages.contains(&format!("Failed to pull image \"busybox:1.36\": {why}")),
        "{messages:?}"
    );
    assert!(failed.iter().all(|e| e.type_.as_deref() == Some("Warning")));
    let (_, v1) = call(
        &sb,
        reqwest::Method::GET,
        "/apis/events.k8s.io/v1/namespaces/x/events",
        &[],
        Vec::new(),
    )
    .await;
    let notes: Vec<&str> = v1["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["note"].as_str())
        .collect();
    assert!(notes.iter().any(|n| n.contains(why)), "{v1}");
    assert_eq!(v1["items"][0]["regarding"]["kind"], "Pod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinds_without_a_printer_get_name_and_age_tables() {
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    let (status, table) = call(
        &sb,
        reqwest::Method::GET,
        "/apis/gateway.networking.k8s.io/v1/namespaces/x/httproutes",
        &[("accept", TABLE)],
        Vec::new(),
    )
    .await;
    assert_eq!(status, 200, "{table}");
    let names: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["Name", "Age"]);
    assert_eq!(table["rows"], json!([]));
}
