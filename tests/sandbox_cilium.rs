//! cilium.io/v2 on the sandbox's API emulator, driven by kube-rs over a fake dataplane: served
//! only when the node's CNI plays Cilium; admitted like kube-apiserver with Cilium's CRDs (422
//! naming the field for what the schema refuses, 400 for unknown fields under Strict, stored
//! when only the agent would refuse); and every change handed to the dataplane as Cilium state.

use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::discovery::Discovery;
use kube::{Api, Client};
use netassay_sandbox::api::{self, ApiOptions, ApiServer};
use netassay_sandbox::dataplane::fake::FakeDataplane;
use serde_json::{json, Value};
use std::sync::Arc;

struct Emulator {
    _server: ApiServer,
    dataplane: Arc<FakeDataplane>,
    client: Client,
}

async fn emulator(cilium: bool) -> Emulator {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dataplane = Arc::new(FakeDataplane::new());
    if cilium {
        dataplane.play_cilium();
    }
    let server = api::start_with(dataplane.clone(), ApiOptions::default())
        .await
        .expect("the emulator starts");
    let config = kube::Config::new(server.url().parse().expect("a valid URL"));
    let client = Client::try_from(config).expect("a kube client");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for ns in ["x", "y"] {
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns"),
            )
            .await
            .expect("namespace");
    }
    Emulator {
        _server: server,
        dataplane,
        client,
    }
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("cilium.io", "v2", kind), plural)
}

impl Emulator {
    fn cnps(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            ns,
            &resource("CiliumNetworkPolicy", "ciliumnetworkpolicies"),
        )
    }
    fn ccnps(&self) -> Api<DynamicObject> {
        Api::all_with(
            self.client.clone(),
            &resource(
                "CiliumClusterwideNetworkPolicy",
                "ciliumclusterwidenetworkpolicies",
            ),
        )
    }
    /// The Cilium policies of the last sync, as `CNP ns/name` / `CCNP name`.
    fn synced(&self) -> Vec<String> {
        self.dataplane
            .last_cilium_sync()
            .expect("a Cilium sync")
            .policies
            .iter()
            .map(|p| p.policy_ref().to_string())
            .collect()
    }
}

fn object(kind: &str, name: &str, namespace: Option<&str>, spec: Value) -> DynamicObject {
    let mut metadata = json!({"name": name});
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    serde_json::from_value(json!({
        "apiVersion": "cilium.io/v2", "kind": kind, "metadata": metadata, "spec": spec,
    }))
    .expect("a dynamic object")
}

fn cnp(name: &str, spec: Value) -> DynamicObject {
    object("CiliumNetworkPolicy", name, Some("x"), spec)
}

fn status<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> kube::core::Status {
    match r {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_cilium_has_no_cilium_api() {
    let e = emulator(false).await;
    let discovery = Discovery::new(e.client.clone())
        .run()
        .await
        .expect("discovery");
    assert!(!discovery.groups().any(|g| g.name() == "cilium.io"));
    let err = status(e.cnps("x").list(&ListParams::default()).await);
    assert_eq!(err.code, 404);
    let err = status(
        e.cnps("x")
            .create(
                &PostParams::default(),
                &cnp("p", json!({"endpointSelector": {}, "ingress": [{}]})),
            )
            .await,
    );
    assert_eq!(err.code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_cilium_both_kinds_are_discovered_with_their_scope() {
    let e = emulator(true).await;
    let discovery = Discovery::new(e.client.clone())
        .run()
        .await
        .expect("discovery");
    let group = discovery
        .groups()
        .find(|g| g.name() == "cilium.io")
        .expect("cilium.io is served");
    let kinds: Vec<(String, bool)> = group
        .recommended_resources()
        .into_iter()
        .map(|(r, caps)| (r.kind, caps.scope == kube::discovery::Scope::Namespaced))
        .collect();
    assert!(
        kinds.contains(&("CiliumNetworkPolicy".into(), true)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("CiliumClusterwideNetworkPolicy".into(), false)),
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_are_created_read_patched_deleted_and_synced_as_cilium_state() {
    let e = emulator(true).await;
    let created = e
        .cnps("x")
        .create(
            &PostParams::default(),
            &cnp("deny-y", json!({"endpointSelector": {},
                "ingressDeny": [{"fromEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "y"}}]}]})),
        )
        .await
        .expect("created");
    assert!(created.metadata.uid.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    e.ccnps()
        .create(
            &PostParams::default(),
            &object(
                "CiliumClusterwideNetworkPolicy",
                "all",
                None,
                json!({"endpointSelector": {}, "egress": [{"toEntities": ["all"]}]}),
            ),
        )
        .await
        .expect("a CCNP");
    assert_eq!(e.synced(), ["CNP x/deny-y", "CCNP all"]);
    let got = e.cnps("x").get("deny-y").await.expect("get");
    assert_eq!(
        got.data["spec"]["ingressDeny"][0]["fromEndpoints"][0]["matchLabels"]
            ["k8s:io.kubernetes.pod.namespace"],
        "y"
    );
    let listed = e
        .cnps("x")
        .list(&ListParams::default())
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 1);
    assert!(e
        .cnps("y")
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .is_empty());
    let patched = e
        .cnps("x")
        .patch(
            "deny-y",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"enableDefaultDeny": {"ingress": false}}})),
        )
        .await
        .expect("patched");
    assert_eq!(patched.metadata.generation, Some(2));
    let synced = e.dataplane.last_cilium_sync().expect("synced");
    assert_eq!(
        synced.policies[0]
            .spec
            .as_ref()
            .and_then(|s| s.enable_default_deny)
            .and_then(|d| d.ingress),
        Some(false)
    );
    // A status written by a client is dropped: it is the operator's.
    let with_status = e
        .cnps("x")
        .patch(
            "deny-y",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": []}})),
        )
        .await
        .expect("patched");
    assert!(with_status.data.get("status").is_none());
    e.cnps("x")
        .delete("deny-y", &DeleteParams::default())
        .await
        .expect("deleted");
    e.ccnps()
        .delete("all", &DeleteParams::default())
        .await
        .expect("deleted");
    assert!(e.synced().is_empty());
    assert_eq!(status(e.cnps("x").get("deny-y").await).code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_crd_schema_refuses_is_422_naming_the_field() {
    let e = emulator(true).await;
    for (spec, field) in [
        (
            json!({"endpointSelector": {}, "egress": [{"toEntities": ["internet"]}]}),
            "spec.egress[0].toEntities[0]",
        ),
        (
            json!({"endpointSelector": {}, "egress": [{"toCIDR": ["10.0.0.1"]}]}),
            "spec.egress[0].toCIDR[0]",
        ),
        (
            json!({"endpointSelector": {}, "ingress": [{"toPorts": [{"ports": [{"port": "80", "endPort": "x"}]}]}]}),
            "spec.ingress[0].toPorts[0].ports[0].endPort",
        ),
    ] {
        let err = status(
            e.cnps("x")
                .create(&PostParams::default(), &cnp("bad", spec))
                .await,
        );
        assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"), "{err:?}");
        let causes = err.details.expect("details").causes;
        assert!(
            causes.iter().any(|c| c.field == field),
            "{field} in {causes:?}"
        );
    }
    // Only the agent refuses this one (two L3 kinds in one rule): stored, and the compiler
    // ignores it as the agent would.
    e.cnps("x")
        .create(
            &PostParams::default(),
            &cnp(
                "agent-refuses",
                json!({"endpointSelector": {},
                "ingress": [{"fromEndpoints": [{}], "fromCIDR": ["203.0.113.0/24"]}]}),
            ),
        )
        .await
        .expect("the API server accepts what only the agent refuses");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_are_pruned_or_refused_under_strict() {
    let e = emulator(true).await;
    let typo = cnp(
        "typo",
        json!({"endpointSelector": {}, "ingress": [{"fromEndpointz": [{}]}]}),
    );
    let request = http::Request::post(
        "/apis/cilium.io/v2/namespaces/x/ciliumnetworkpolicies?fieldValidation=Strict",
    )
    .header("content-type", "application/json")
    .body(serde_json::to_vec(&typo).expect("json"))
    .expect("a request");
    let err = status(e.client.request::<DynamicObject>(request).await);
    assert_eq!(err.code, 400);
    assert!(
        err.message
            .contains("unknown field \"spec.ingress[0].fromEndpointz\""),
        "{}",
        err.message
    );
    let stored = e
        .cnps("x")
        .create(&PostParams::default(), &typo)
        .await
        .expect("pruned");
    assert_eq!(stored.data["spec"]["ingress"][0], json!({}));
}
