//! The exposure inventory (`cluster::inventory::take`) over HTTP, through kube-rs: against a
//! minimal stub API server (paging, a missing Gateway API, a refused list) and against the
//! sandbox's API emulator (every kind of exposure it stores).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{ApiResource, DynamicObject, PostParams};
use kube::{Api, Client};
use netassay::cluster::inventory::{self, Exposure, ExposureKind, ExposureRule};
use netassay::cluster::ClusterError;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

// ---------------------------------------------------------------------------------------------
// A stub API server: fixed answers per path, and a log of the query strings it was asked.

/// A query string, as key -> value.
type QueryMap = BTreeMap<String, String>;
/// (path, continue token) -> (HTTP status, body).
type Answer = ((&'static str, &'static str), (u16, Value));

#[derive(Clone, Default)]
struct Stub {
    /// path -> (status, body) per `continue` token ("" for the first page).
    answers: Arc<BTreeMap<(String, String), (u16, Value)>>,
    asked: Arc<Mutex<Vec<(String, QueryMap)>>>,
}

fn list(kind: &str, items: Vec<Value>, next: Option<&str>) -> Value {
    let mut meta = json!({"resourceVersion": "1"});
    if let Some(n) = next {
        meta["continue"] = json!(n);
    }
    json!({"apiVersion": "v1", "kind": format!("{kind}List"), "metadata": meta, "items": items})
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("stub: {reason}"), "reason": reason, "code": code})
}

async fn answer(
    State(stub): State<Stub>,
    uri: axum::http::Uri,
    Query(q): Query<QueryMap>,
) -> (StatusCode, Json<Value>) {
    let path = uri.path().to_string();
    stub.asked
        .lock()
        .expect("not poisoned")
        .push((path.clone(), q.clone()));
    let token = q.get("continue").cloned().unwrap_or_default();
    match stub.answers.get(&(path, token)) {
        Some((code, body)) => (
            StatusCode::from_u16(*code).expect("a status code"),
            Json(body.clone()),
        ),
        None => (StatusCode::NOT_FOUND, Json(status(404, "NotFound"))),
    }
}

async fn serve(answers: Vec<Answer>) -> (Client, Stub) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stub = Stub {
        answers: Arc::new(
            answers
                .into_iter()
                .map(|((p, t), a)| ((p.to_string(), t.to_string()), a))
                .collect(),
        ),
        asked: Arc::default(),
    };
    let app = Router::new().fallback(get(answer)).with_state(stub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = kube::Config::new(format!("http://{addr}").parse().expect("a URL"));
    (Client::try_from(config).expect("a client"), stub)
}

const SERVICES: &str = "/api/v1/services";
const PODS: &str = "/api/v1/pods";
const INGRESSES: &str = "/apis/networking.k8s.io/v1/ingresses";
const GATEWAYS: &str = "/apis/gateway.networking.k8s.io/v1/gateways";

fn node_port(ns: &str, name: &str, port: i32) -> Value {
    json!({"metadata": {"namespace": ns, "name": name}, "spec": {"type": "NodePort",
        "selector": {"app": name}, "ports": [{"port": 80, "protocol": "TCP", "nodePort": port}]}})
}

#[tokio::test]
async fn take_pages_through_every_list_and_notes_a_missing_gateway_api() {
    let (client, stub) = serve(vec![
        (
            (SERVICES, ""),
            (
                200,
                list(
                    "Service",
                    vec![node_port("b", "second", 30002)],
                    Some("page-2"),
                ),
            ),
        ),
        (
            (SERVICES, "page-2"),
            (
                200,
                list("Service", vec![node_port("a", "first", 30001)], None),
            ),
        ),
        (
            (PODS, ""),
            (
                200,
                list(
                    "Pod",
                    vec![
                        json!({"metadata": {"namespace": "a", "name": "web"}, "spec": {
                            "containers": [{"name": "nginx",
                                "ports": [{"containerPort": 8080, "hostPort": 8080}]}]}}),
                        json!({"metadata": {"namespace": "netassay-x-y", "name": "probe",
                            "labels": {"app.kubernetes.io/managed-by": "netassay"}},
                            "spec": {"hostNetwork": true, "containers": [{"name": "c"}]}}),
                    ],
                    None,
                ),
            ),
        ),
        (
            (INGRESSES, ""),
            (
                200,
                list(
                    "Ingress",
                    vec![json!({"metadata": {"namespace": "a", "name": "web"},
                        "spec": {"ingressClassName": "nginx", "rules": [{"host": "a.example"}]}})],
                    None,
                ),
            ),
        ),
        // GATEWAYS: not answered, so 404 like an API server without the Gateway API.
    ])
    .await;
    let inv = inventory::take(&client).await.expect("an inventory");
    let got: Vec<(ExposureKind, &str, &str, &str)> = inv
        .exposures
        .iter()
        .map(|e| {
            (
                e.kind,
                e.namespace.as_str(),
                e.name.as_str(),
                e.detail.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                ExposureKind::NodePort,
                "a",
                "first",
                "NodePort 30001/TCP -> port 80, selector app=first"
            ),
            (
                ExposureKind::NodePort,
                "b",
                "second",
                "NodePort 30002/TCP -> port 80, selector app=second"
            ),
            (
                ExposureKind::HostPort,
                "a",
                "web",
                "hostPort 8080/TCP on container nginx"
            ),
            (
                ExposureKind::Ingress,
                "a",
                "web",
                "Ingress hosts: a.example (class nginx)"
            ),
        ],
        "sorted by kind, namespace, name; netassay's own probe pod left out"
    );
    assert_eq!(inv.notes.len(), 1, "{:?}", inv.notes);
    assert!(
        inv.notes[0].contains("Gateway API (gateway.networking.k8s.io/v1) is not installed"),
        "{:?}",
        inv.notes
    );
    let asked = stub.asked.lock().expect("not poisoned").clone();
    let paths: Vec<&str> = asked.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, [SERVICES, SERVICES, PODS, INGRESSES, GATEWAYS]);
    for (path, q) in &asked {
        assert_eq!(
            q.get("limit").map(String::as_str),
            Some("500"),
            "{path} is paged"
        );
    }
    assert_eq!(
        asked[1].1.get("continue").map(String::as_str),
        Some("page-2")
    );

    // The judgement: one rule approves the ingress, the rest is reported.
    let rules = vec![ExposureRule {
        kind: Some(ExposureKind::Ingress),
        namespace: "a".into(),
        name: "*".into(),
        reason: Some("the TRE's ingress".into()),
    }];
    let left: Vec<String> = inventory::unapproved(&inv, &rules)
        .into_iter()
        .map(Exposure::summary)
        .collect();
    assert_eq!(
        left,
        [
            "NodePort service a/first: NodePort 30001/TCP -> port 80, selector app=first is not \
             on the allow-list of exposures",
            "NodePort service b/second: NodePort 30002/TCP -> port 80, selector app=second is \
             not on the allow-list of exposures",
            "hostPort on pod a/web: hostPort 8080/TCP on container nginx is not on the \
             allow-list of exposures",
        ]
    );
}

#[tokio::test]
async fn take_reads_gateways_and_fails_on_a_refused_list() {
    let empty = |kind: &str| (200, list(kind, vec![], None));
    let gateway = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"namespace": "tre-gateway", "name": "tre-gateway"},
        "spec": {"gatewayClassName": "cilium",
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}});
    let (client, _) = serve(vec![
        ((SERVICES, ""), empty("Service")),
        ((PODS, ""), empty("Pod")),
        ((INGRESSES, ""), empty("Ingress")),
        (
            (GATEWAYS, ""),
            (
                200,
                json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayList",
                "metadata": {}, "items": [gateway]}),
            ),
        ),
    ])
    .await;
    let inv = inventory::take(&client).await.expect("an inventory");
    assert!(inv.notes.is_empty(), "{:?}", inv.notes);
    assert_eq!(
        inv.exposures,
        [Exposure {
            kind: ExposureKind::Gateway,
            namespace: "tre-gateway".into(),
            name: "tre-gateway".into(),
            detail: "Gateway class cilium, listeners: http/80".into(),
        }]
    );

    // Missing permissions are an error that names the call, never an empty inventory.
    let (client, _) = serve(vec![
        ((SERVICES, ""), empty("Service")),
        ((PODS, ""), (403, status(403, "Forbidden"))),
    ])
    .await;
    match inventory::take(&client).await {
        Err(e @ ClusterError::Api { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("listing pods in all namespaces"), "{msg}");
        }
        other => panic!("expected a refused list, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The sandbox's API emulator: objects created through kube-rs, listed back by `take`.

fn obj<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("a valid object")
}

fn container(ports: Value) -> Value {
    json!({"name": "app", "image": "netassay:test", "command": ["netassay", "agent"],
        "args": ["serve"], "ports": ports})
}

#[tokio::test]
async fn take_lists_what_the_sandbox_emulator_exposes() {
    use netassay_sandbox::api;
    use netassay_sandbox::dataplane::fake::FakeDataplane;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = api::start_with(Arc::new(FakeDataplane::new()), api::ApiOptions::default())
        .await
        .expect("the emulator starts");
    let client = Client::try_from(kube::Config::new(server.url().parse().expect("a URL")))
        .expect("a client");
    let pp = PostParams::default();
    let before = inventory::take(&client).await.expect("an inventory");

    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(&pp, &obj(json!({"metadata": {"name": "project-a"}})))
        .await
        .expect("namespace");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "project-a");
    for pod in [
        json!({"metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"containers": [container(json!([{"containerPort": 80}]))]}}),
        json!({"metadata": {"name": "hostport"}, "spec": {"containers": [
            container(json!([{"containerPort": 80, "hostPort": 8080}]))]}}),
        json!({"metadata": {"name": "hostnet"}, "spec": {"hostNetwork": true,
            "containers": [container(json!([]))]}}),
        json!({"metadata": {"name": "ours", "labels": {"app.kubernetes.io/managed-by": "netassay"}},
            "spec": {"containers": [container(json!([{"containerPort": 80, "hostPort": 8081}]))]}}),
    ] {
        pods.create(&pp, &obj(pod)).await.expect("pod created");
    }
    let services: Api<Service> = Api::namespaced(client.clone(), "project-a");
    for svc in [
        json!({"metadata": {"name": "internal"}, "spec": {"selector": {"app": "web"},
            "ports": [{"port": 80}]}}),
        json!({"metadata": {"name": "exposed-web"}, "spec": {"type": "NodePort",
            "selector": {"app": "web"}, "ports": [{"port": 80, "nodePort": 31234}]}}),
    ] {
        services
            .create(&pp, &obj(svc))
            .await
            .expect("service created");
    }
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), "project-a");
    ingresses
        .create(
            &pp,
            &obj(
                json!({"metadata": {"name": "web"}, "spec": {"rules": [{"host": "web.tre.example",
                "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service":
                    {"name": "internal", "port": {"number": 80}}}}]}}]}}),
            ),
        )
        .await
        .expect("ingress created");
    let gw = ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "Gateway".into(),
        plural: "gateways".into(),
    };
    let gateways: Api<DynamicObject> = Api::namespaced_with(client.clone(), "project-a", &gw);
    gateways
        .create(
            &pp,
            &obj(
                json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": {"name": "side-door"}, "spec": {"gatewayClassName": "other",
                "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}),
            ),
        )
        .await
        .expect("gateway created");

    let after = inventory::take(&client).await.expect("an inventory");
    assert!(after.notes.is_empty(), "{:?}", after.notes);
    let new: Vec<(ExposureKind, String, String)> = after
        .exposures
        .iter()
        .filter(|e| !before.exposures.contains(e))
        .map(|e| (e.kind, e.namespace.clone(), e.name.clone()))
        .collect();
    let p = |k, n: &str| (k, "project-a".to_string(), n.to_string());
    assert_eq!(
        new,
        [
            p(ExposureKind::NodePort, "exposed-web"),
            p(ExposureKind::HostPort, "hostport"),
            p(ExposureKind::HostNetwork, "hostnet"),
            p(ExposureKind::Ingress, "web"),
            p(ExposureKind::Gateway, "side-door"),
        ],
        "the ClusterIP service, the plain pod and netassay's own pod expose nothing"
    );
    let np = after
        .exposures
        .iter()
        .find(|e| e.name == "exposed-web")
        .expect("listed");
    assert_eq!(np.detail, "NodePort 31234/TCP -> port 80, selector app=web");
    server.shutdown().await;
}

/// The K8TRE sandbox preset: the gateway (LoadBalancer + Gateway object) is the only exposure,
/// approved by two rules; the `k8tre-nodeport` fault adds a NodePort in every project namespace,
/// which nothing approves.
#[tokio::test]
async fn the_k8tre_sandbox_exposes_only_its_gateway_unless_the_nodeport_fault_is_on() {
    use netassay_sandbox::api;
    use netassay_sandbox::dataplane::fake::FakeDataplane;
    use netassay_sandbox::preset::PresetProfile;
    use netassay_sandbox::{FaultSet, Preset};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let allowed = vec![
        ExposureRule {
            kind: Some(ExposureKind::LoadBalancer),
            namespace: "tre-gateway".into(),
            name: "tre-gateway".into(),
            reason: Some("the TRE's gateway".into()),
        },
        ExposureRule {
            kind: Some(ExposureKind::Gateway),
            namespace: "tre-gateway".into(),
            name: "tre-gateway".into(),
            reason: None,
        },
    ];
    for (faults, expect_unapproved) in [
        ("", vec![]),
        (
            "k8tre-nodeport",
            vec![(ExposureKind::NodePort, "project-a", "exposed-web")],
        ),
    ] {
        let faults: FaultSet = faults.parse().expect("faults");
        let profile = PresetProfile::new(Preset::K8tre, faults.preset_faults());
        let options = api::ApiOptions {
            preset: Some(profile.clone()),
            ..api::ApiOptions::default()
        };
        let server = api::start_with(Arc::new(FakeDataplane::new()), options)
            .await
            .expect("the emulator starts");
        let routes = std::env::temp_dir().join("netassay-inventory-test-routes");
        server
            .bootstrap(profile.bootstrap_objects(&routes))
            .await
            .expect("the gateway is created");
        let client = Client::try_from(kube::Config::new(server.url().parse().expect("a URL")))
            .expect("a client");
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &obj(json!({"metadata": {"name": "project-a",
                    "labels": {"k8tre.io/resource-type": "project-namespace"}}})),
            )
            .await
            .expect("project namespace");

        let inv = inventory::take(&client).await.expect("an inventory");
        let kinds: Vec<(ExposureKind, &str, &str)> = inv
            .exposures
            .iter()
            .filter(|e| e.namespace == "tre-gateway")
            .map(|e| (e.kind, e.namespace.as_str(), e.name.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (ExposureKind::LoadBalancer, "tre-gateway", "tre-gateway"),
                (ExposureKind::Gateway, "tre-gateway", "tre-gateway"),
            ],
            "{inv:?}"
        );
        let left: Vec<(ExposureKind, &str, &str)> = inventory::unapproved(&inv, &allowed)
            .into_iter()
            .map(|e| (e.kind, e.namespace.as_str(), e.name.as_str()))
            .collect();
        assert_eq!(left, expect_unapproved, "{inv:?}");
        server.shutdown().await;
    }
}
