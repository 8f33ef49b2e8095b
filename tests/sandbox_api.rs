//! The sandbox's API emulator driven by kube-rs (and kubectl where installed) over a fake dataplane.

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{
    AttachParams, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchParams,
};
use kube::{Api, Client};
use netassay::model::{Protocol, ServedPort};
use netassay::sandbox::api::{self, ApiOptions, ApiServer};
use netassay::sandbox::dataplane::fake::FakeDataplane;
use netassay::sandbox::{ClusterState, TargetPort};
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
    assert!(sb
        .pods("doomed")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(services
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(policies
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(leases
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
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
    let Ok(found) = std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
    else {
        eprintln!("kubectl is not installed: skipping");
        return;
    };
    assert!(found.status.success());
    let sb = sandbox().await;
    sb.namespace("x", json!({})).await;
    sb.pod("x", "a", json!({"pod": "a"})).await;
    sb.ready_pod("x", "a").await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sb.server.write_kubeconfig(&kubeconfig).unwrap();
    let kubectl = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new("kubectl");
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
    let mut exec = tokio::process::Command::new("kubectl");
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
