//! Read-only cluster facts: `/version`, discovery and OpenAPI documents, the node, health.

use super::extract::{AppState, PathParams};
use super::status::ApiError;
use super::table;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::Json;
use serde_json::{json, Value};

/// The Kubernetes version the emulator claims (k8s-openapi is built for v1_33).
pub(crate) const MAJOR: &str = "1";
pub(crate) const MINOR: &str = "33";

pub(crate) async fn version() -> Json<Value> {
    Json(json!({
        "major": MAJOR,
        "minor": MINOR,
        "gitVersion": format!("v{MAJOR}.{MINOR}.0-netassay-sandbox"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "none (netassay sandbox, Rust)",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    }))
}

/// Architecture names as Go (and so Kubernetes) spells them.
/// The architecture as Go (and so a kubelet) names it.
pub(crate) fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The kernel release (`uname -r`), as a kubelet reports it.
pub(crate) fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// What the sandbox node reports as its OS image and container runtime, on both control planes.
pub(crate) const OS_IMAGE: &str = "netassay sandbox node";

pub(crate) fn container_runtime_version() -> String {
    format!("netassay://{}", env!("CARGO_PKG_VERSION"))
}

pub(crate) async fn healthz() -> &'static str {
    "ok"
}

pub(crate) async fn api_versions(State(s): AppState) -> Json<Value> {
    Json(json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": s.addr.to_string()}],
    }))
}

/// One APIResource entry.
fn resource(
    name: &str,
    kind: &str,
    namespaced: bool,
    verbs: &[&str],
    short_names: &[&str],
) -> Value {
    let mut r = json!({
        "name": name,
        "singularName": if name.contains('/') { "" } else { kind_singular(kind) },
        "namespaced": namespaced,
        "kind": kind,
        "verbs": verbs,
    });
    if !short_names.is_empty() {
        r["shortNames"] = json!(short_names);
    }
    r
}

fn kind_singular(kind: &str) -> &'static str {
    match kind {
        "Namespace" => "namespace",
        "Pod" => "pod",
        "Service" => "service",
        "Node" => "node",
        "NetworkPolicy" => "networkpolicy",
        "Lease" => "lease",
        "Ingress" => "ingress",
        "Gateway" => "gateway",
        "HTTPRoute" => "httproute",
        "Event" => "event",
        "SelfSubjectAccessReview" => "selfsubjectaccessreview",
        "SelfSubjectRulesReview" => "selfsubjectrulesreview",
        "SelfSubjectReview" => "selfsubjectreview",
        _ => "",
    }
}

const RW: &[&str] = &["create", "delete", "get", "list", "patch"];
const RW_COLLECTION: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
];
const RW_UPDATE: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
];

pub(crate) async fn core_v1() -> Json<Value> {
    Json(json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            resource("namespaces", "Namespace", false, RW, &["ns"]),
            resource("nodes", "Node", false, &["get", "list"], &["no"]),
            resource("pods", "Pod", true, RW_COLLECTION, &["po"]),
            resource("pods/exec", "PodExecOptions", true, &["create", "get"], &[]),
            resource("pods/log", "Pod", true, &["get"], &[]),
            resource("events", "Event", true, RW_UPDATE, &["ev"]),
            resource("services", "Service", true, RW_COLLECTION, &["svc"]),
        ],
    }))
}

/// The API groups beyond core, each with its one version and resources.
const GROUPS: [(&str, &str); 6] = [
    ("authentication.k8s.io", "v1"),
    ("authorization.k8s.io", "v1"),
    ("coordination.k8s.io", "v1"),
    ("events.k8s.io", "v1"),
    ("gateway.networking.k8s.io", "v1"),
    ("networking.k8s.io", "v1"),
];

fn group_doc(name: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{name}/{version}"), "version": version});
    json!({"name": name, "versions": [gv], "preferredVersion": gv})
}

/// The groups served now: cilium.io only while the node's CNI plays Cilium.
fn groups(s: &super::shared::Shared) -> Vec<(&'static str, &'static str)> {
    let mut groups = GROUPS.to_vec();
    if s.dataplane.cilium() {
        groups.push((crate::cilium_api::GROUP, crate::cilium_api::VERSION));
        groups.sort();
    }
    groups
}

pub(crate) async fn api_groups(State(s): AppState) -> Json<Value> {
    let groups: Vec<Value> = groups(&s).iter().map(|(n, v)| group_doc(n, v)).collect();
    Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
}

pub(crate) async fn api_group(
    State(s): AppState,
    axum::extract::Path(p): PathParams,
) -> Result<Json<Value>, ApiError> {
    let group = p.get("group").map(String::as_str).unwrap_or("");
    let (name, version) = groups(&s)
        .into_iter()
        .find(|(n, _)| *n == group)
        .ok_or_else(ApiError::no_route)?;
    let mut doc = group_doc(name, version);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Ok(Json(doc))
}

pub(crate) async fn networking_v1() -> Json<Value> {
    Json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "networking.k8s.io/v1",
        "resources": [
            resource("ingresses", "Ingress", true, RW_UPDATE, &["ing"]),
            resource("networkpolicies", "NetworkPolicy", true, RW_UPDATE, &["netpol"]),
        ],
    }))
}

pub(crate) async fn gateway_v1() -> Json<Value> {
    Json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "gateway.networking.k8s.io/v1",
        "resources": [
            resource("gateways", "Gateway", true, RW_UPDATE, &["gtw"]),
            resource("httproutes", "HTTPRoute", true, RW_UPDATE, &[]),
        ],
    }))
}

pub(crate) async fn events_v1() -> Json<Value> {
    Json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "events.k8s.io/v1",
        "resources": [resource("events", "Event", true, &["get", "list"], &["ev"])],
    }))
}

pub(crate) async fn authorization_v1() -> Json<Value> {
    Json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "authorization.k8s.io/v1",
        "resources": [
            resource("selfsubjectaccessreviews", "SelfSubjectAccessReview", false, &["create"], &[]),
            resource("selfsubjectrulesreviews", "SelfSubjectRulesReview", false, &["create"], &[]),
        ],
    }))
}

pub(crate) async fn authentication_v1() -> Json<Value> {
    Json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "authentication.k8s.io/v1",
        "resources": [resource("selfsubjectreviews", "SelfSubjectReview", false, &["create"], &[])],
    }))
}

pub(crate) async fn coordination_v1() -> Json<Value> {
    Json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "coordination.k8s.io/v1",
        "resources": [resource("leases", "Lease", true, RW_UPDATE, &[])],
    }))
}

fn node_object(s: &super::shared::Shared) -> Value {
    let node = &s.node;
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "uid": "00000000-0000-4000-8000-000000000001",
            "creationTimestamp": s.started,
            "resourceVersion": "1",
            "labels": {
                "kubernetes.io/hostname": node.name,
                "kubernetes.io/os": std::env::consts::OS,
                "kubernetes.io/arch": go_arch(),
                "node-role.kubernetes.io/control-plane": "",
            },
        },
        "spec": {"podCIDR": "10.244.0.0/16", "podCIDRs": ["10.244.0.0/16"]},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": node.address.to_string()},
                {"type": "Hostname", "address": node.name},
            ],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "netassay sandbox node"}],
            "nodeInfo": {
                "kubeletVersion": format!("v{MAJOR}.{MINOR}.0-netassay-sandbox"),
                "kubeProxyVersion": format!("v{MAJOR}.{MINOR}.0-netassay-sandbox"),
                "containerRuntimeVersion": container_runtime_version(),
                "operatingSystem": std::env::consts::OS,
                "architecture": go_arch(),
                "osImage": OS_IMAGE,
                "kernelVersion": kernel_version(),
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        },
    })
}

pub(crate) async fn nodes(State(s): AppState, headers: HeaderMap, uri: Uri) -> Json<Value> {
    let revision = s.store().revision();
    if table::wanted(&headers) {
        return Json(node_table(&s, &revision, &uri));
    }
    Json(json!({
        "apiVersion": "v1",
        "kind": "NodeList",
        "metadata": {"resourceVersion": revision},
        "items": [node_object(&s)],
    }))
}

/// The one node as a Table (kubectl get nodes).
fn node_table(s: &super::shared::Shared, revision: &str, uri: &Uri) -> Value {
    let node = node_object(s);
    let cells = table::node_cells(&node, k8s_openapi::jiff::Timestamp::now());
    let include = uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("includeObject="));
    table::table(
        table::NODE_COLUMNS,
        vec![(node, cells)],
        revision,
        table::Include::parse(include),
    )
}

pub(crate) async fn node(
    State(s): AppState,
    axum::extract::Path(p): PathParams,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let name = p.get("name").map(String::as_str).unwrap_or("");
    if name != s.node.name {
        return Err(ApiError::not_found("", "nodes", name));
    }
    if table::wanted(&headers) {
        return Ok(Json(node_table(&s, &s.store().revision(), &uri)));
    }
    Ok(Json(node_object(&s)))
}

/// The kinds of each group-version, with the path their PATCH is served on.
const OPENAPI_KINDS: [(&str, &str, &str, &str); 8] = [
    ("", "v1", "Namespace", "/api/v1/namespaces/{name}"),
    (
        "",
        "v1",
        "Pod",
        "/api/v1/namespaces/{namespace}/pods/{name}",
    ),
    (
        "",
        "v1",
        "Service",
        "/api/v1/namespaces/{namespace}/services/{name}",
    ),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{name}",
    ),
    (
        "networking.k8s.io",
        "v1",
        "Ingress",
        "/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses/{name}",
    ),
    (
        "coordination.k8s.io",
        "v1",
        "Lease",
        "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}",
    ),
    (
        "gateway.networking.k8s.io",
        "v1",
        "Gateway",
        "/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/gateways/{name}",
    ),
    (
        "gateway.networking.k8s.io",
        "v1",
        "HTTPRoute",
        "/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes/{name}",
    ),
];

fn openapi_gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: one entry per group-version. kubectl reads it to learn that the server does
/// field validation itself (then it sends `fieldValidation=Strict` and needs no schemas).
pub(crate) async fn openapi_v3_root() -> Json<Value> {
    let mut paths = serde_json::Map::new();
    for (group, version, _, _) in OPENAPI_KINDS {
        let gv = openapi_gv_path(group, version);
        paths.insert(
            gv.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash=netassay")}),
        );
    }
    Json(json!({"paths": paths}))
}

/// A group-version's OpenAPI v3 document, reduced to what kubectl's field-validation check
/// reads: each kind's PATCH operation with its GVK and the `fieldValidation` query parameter.
fn openapi_v3_doc(group: &str, version: &str) -> Value {
    let mut paths = serde_json::Map::new();
    for (g, v, kind, path) in OPENAPI_KINDS {
        if g != group || v != version {
            continue;
        }
        paths.insert(
            path.to_string(),
            json!({"patch": {
                "x-kubernetes-group-version-kind": {"group": g, "version": v, "kind": kind},
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "OK"}},
            }}),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (netassay sandbox)", "version": format!("v{MAJOR}.{MINOR}.0")},
        "paths": paths,
    })
}

pub(crate) async fn openapi_v3_core() -> Json<Value> {
    Json(openapi_v3_doc("", "v1"))
}

pub(crate) async fn openapi_v3_group(
    axum::extract::Path(p): PathParams,
) -> Result<Json<Value>, ApiError> {
    let group = p.get("group").map(String::as_str).unwrap_or("");
    let version = p.get("version").map(String::as_str).unwrap_or("");
    if !GROUPS.contains(&(group, version)) {
        return Err(ApiError::no_route());
    }
    Ok(Json(openapi_v3_doc(group, version)))
}
