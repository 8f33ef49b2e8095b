//! The exposure inventory (K8TRE, issue 7): everything in the cluster that exposes something
//! outside the cluster — NodePort and LoadBalancer Services, Services with external IPs, hostPort
//! and hostNetwork pods, Ingresses and Gateways — judged against the allow-list in the user's
//! profile config. K8TRE: "All external access to applications/services must be via the
//! ingress/gateway", so every exposure that no rule approves is a finding.
//!
//! Listing (`take`) is separate from classification (`exposures_of_*`), which is pure and tested
//! without a cluster. netassay's own throwaway objects (labelled
//! `app.kubernetes.io/managed-by=netassay`) are never part of the inventory.

use super::error::{status_code, ClusterError};
use super::manifest::{MANAGED_BY, MANAGER};
use k8s_openapi::api::core::v1::{Container, Pod, Service, ServicePort};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ListParams;
use kube::core::{ApiResource, DynamicObject};
use kube::Api;
use serde_json::Value;
use std::collections::BTreeMap;

/// Objects per page when listing (as kubectl does).
const PAGE: u32 = 500;

pub use crate::scenario::exposure::{unapproved, Exposure, ExposureKind, ExposureRule, Inventory};

// ---------------------------------------------------------------------------------------------
// Listing.

/// The Gateway API's Gateway, listed dynamically: k8s-openapi has no Gateway API types.
fn gateway_resource() -> ApiResource {
    ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "Gateway".into(),
        plural: "gateways".into(),
    }
}

fn page(token: &Option<String>) -> ListParams {
    let params = ListParams::default().limit(PAGE);
    match token {
        Some(t) => params.continue_token(t),
        None => params,
    }
}

/// The continue token of a list answer, when there is a next page.
fn next(token: Option<String>) -> Option<String> {
    token.filter(|t| !t.is_empty())
}

/// Lists every exposure in the cluster (all namespaces). Needs list on services, pods and
/// ingresses cluster-wide and on gateways.gateway.networking.k8s.io; an API that is not served
/// (404: no Gateway API installed, say) is a note, not an error.
pub async fn take(client: &kube::Client) -> Result<Inventory, ClusterError> {
    let mut inv = Inventory::default();

    let services: Api<Service> = Api::all(client.clone());
    let mut token = None;
    loop {
        let list = services
            .list(&page(&token))
            .await
            .map_err(|e| ClusterError::api("listing services in all namespaces", e))?;
        inv.exposures
            .extend(list.items.iter().flat_map(exposures_of_service));
        token = next(list.metadata.continue_);
        if token.is_none() {
            break;
        }
    }

    let pods: Api<Pod> = Api::all(client.clone());
    let mut token = None;
    loop {
        let list = pods
            .list(&page(&token))
            .await
            .map_err(|e| ClusterError::api("listing pods in all namespaces", e))?;
        inv.exposures
            .extend(list.items.iter().flat_map(exposures_of_pod));
        token = next(list.metadata.continue_);
        if token.is_none() {
            break;
        }
    }

    let ingresses: Api<Ingress> = Api::all(client.clone());
    let mut token = None;
    loop {
        match ingresses.list(&page(&token)).await {
            Ok(list) => {
                inv.exposures
                    .extend(list.items.iter().flat_map(exposures_of_ingress));
                token = next(list.metadata.continue_);
            }
            Err(e) if status_code(&e) == Some(404) => {
                inv.notes.push(
                    "Ingresses: networking.k8s.io/v1 ingresses are not served by this cluster; \
                     none listed"
                        .into(),
                );
                token = None;
            }
            Err(e) => return Err(ClusterError::api("listing ingresses in all namespaces", e)),
        }
        if token.is_none() {
            break;
        }
    }

    let gateways: Api<DynamicObject> = Api::all_with(client.clone(), &gateway_resource());
    let mut token = None;
    loop {
        match gateways.list(&page(&token)).await {
            Ok(list) => {
                for obj in &list.items {
                    match serde_json::to_value(obj) {
                        Ok(v) => inv.exposures.extend(exposures_of_gateway(&v)),
                        Err(e) => inv.notes.push(format!(
                            "Gateway {}/{}: cannot be read ({e}); not classified",
                            obj.metadata.namespace.as_deref().unwrap_or(""),
                            obj.metadata.name.as_deref().unwrap_or("")
                        )),
                    }
                }
                token = next(list.metadata.continue_);
            }
            Err(e) if status_code(&e) == Some(404) => {
                inv.notes.push(
                    "Gateways: the Gateway API (gateway.networking.k8s.io/v1) is not installed; \
                     no Gateways to list"
                        .into(),
                );
                token = None;
            }
            Err(e) => {
                return Err(ClusterError::api(
                    "listing gateways (gateway.networking.k8s.io/v1) in all namespaces",
                    e,
                ))
            }
        }
        if token.is_none() {
            break;
        }
    }

    inv.exposures.sort();
    inv.exposures.dedup();
    Ok(inv)
}

// ---------------------------------------------------------------------------------------------
// Classification: pure, one object in, its exposures out.

fn is_ours(labels: Option<&BTreeMap<String, String>>) -> bool {
    labels
        .and_then(|l| l.get(MANAGED_BY))
        .is_some_and(|v| v == MANAGER)
}

fn ns_name(meta: &ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn exposure(kind: ExposureKind, (namespace, name): (String, String), detail: String) -> Exposure {
    Exposure {
        kind,
        namespace,
        name,
        detail,
    }
}

fn protocol(p: &Option<String>) -> &str {
    p.as_deref().unwrap_or("TCP")
}

fn int_or_string(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// `port 80`, or `port 80 (target 8080)` when the target differs.
fn service_port(p: &ServicePort) -> String {
    match p.target_port.as_ref().map(int_or_string) {
        Some(t) if t != p.port.to_string() => format!("port {} (target {t})", p.port),
        _ => format!("port {}", p.port),
    }
}

fn selector(spec_selector: Option<&BTreeMap<String, String>>) -> String {
    match spec_selector {
        Some(s) if !s.is_empty() => {
            let pairs: Vec<String> = s.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("selector {}", pairs.join(","))
        }
        _ => "no selector".into(),
    }
}

/// What a Service exposes: NodePort, LoadBalancer (with its node ports) and external IPs.
/// A plain ClusterIP or ExternalName Service exposes nothing.
pub fn exposures_of_service(svc: &Service) -> Vec<Exposure> {
    let mut out = Vec::new();
    if is_ours(svc.metadata.labels.as_ref()) {
        return out;
    }
    let Some(spec) = &svc.spec else {
        return out;
    };
    let id = ns_name(&svc.metadata);
    let ports = spec.ports.as_deref().unwrap_or_default();
    let sel = selector(spec.selector.as_ref());
    match spec.type_.as_deref() {
        Some("NodePort") => {
            let each: Vec<String> = ports
                .iter()
                .map(|p| {
                    let node_port = p
                        .node_port
                        .map_or_else(|| "(unallocated)".into(), |n| n.to_string());
                    format!(
                        "{node_port}/{} -> {}",
                        protocol(&p.protocol),
                        service_port(p)
                    )
                })
                .collect();
            let ports = if each.is_empty() {
                "(no ports)".to_string()
            } else {
                each.join(", ")
            };
            out.push(exposure(
                ExposureKind::NodePort,
                id.clone(),
                format!("NodePort {ports}, {sel}"),
            ));
        }
        Some("LoadBalancer") => {
            let addresses: Vec<String> = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
                .collect();
            let addresses = if addresses.is_empty() {
                "(no address yet)".to_string()
            } else {
                addresses.join(", ")
            };
            let each: Vec<String> = ports
                .iter()
                .map(|p| {
                    let mut s = format!("{}/{}", p.port, protocol(&p.protocol));
                    if let Some(n) = p.node_port {
                        s.push_str(&format!(" (nodePort {n})"));
                    }
                    s
                })
                .collect();
            let mut detail = format!("LoadBalancer {addresses} ports {}", each.join(", "));
            if let Some(ranges) = spec
                .load_balancer_source_ranges
                .as_ref()
                .filter(|r| !r.is_empty())
            {
                detail.push_str(&format!(", source ranges {}", ranges.join(", ")));
            }
            detail.push_str(&format!(", {sel}"));
            out.push(exposure(ExposureKind::LoadBalancer, id.clone(), detail));
        }
        _ => {}
    }
    if let Some(ips) = spec.external_ips.as_ref().filter(|i| !i.is_empty()) {
        let each: Vec<String> = ports
            .iter()
            .map(|p| format!("{}/{}", p.port, protocol(&p.protocol)))
            .collect();
        out.push(exposure(
            ExposureKind::ExternalIp,
            id,
            format!(
                "externalIPs {} ports {}, {sel}",
                ips.join(", "),
                each.join(", ")
            ),
        ));
    }
    out
}

/// `, owned by DaemonSet/x` for a pod a controller made.
fn owner(meta: &ObjectMeta) -> String {
    meta.owner_references
        .as_ref()
        .and_then(|o| o.iter().find(|r| r.controller == Some(true)).or(o.first()))
        .map(|r| format!(", owned by {}/{}", r.kind, r.name))
        .unwrap_or_default()
}

/// What a pod exposes: hostNetwork (which covers all its ports), else every hostPort.
/// Pods that have finished (Succeeded, Failed) expose nothing any more.
pub fn exposures_of_pod(pod: &Pod) -> Vec<Exposure> {
    let mut out = Vec::new();
    if is_ours(pod.metadata.labels.as_ref()) {
        return out;
    }
    let finished = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    let Some(spec) = pod.spec.as_ref().filter(|_| !finished) else {
        return out;
    };
    let id = ns_name(&pod.metadata);
    let owned = owner(&pod.metadata);
    let containers: Vec<(&str, &Container)> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| ("init container", c))
        .chain(spec.containers.iter().map(|c| ("container", c)))
        .collect();
    if spec.host_network == Some(true) {
        let names: Vec<&str> = containers.iter().map(|(_, c)| c.name.as_str()).collect();
        let ports: Vec<String> = containers
            .iter()
            .flat_map(|(_, c)| c.ports.iter().flatten())
            .map(|p| format!("{}/{}", p.container_port, protocol(&p.protocol)))
            .collect();
        let ports = if ports.is_empty() {
            "no declared ports".to_string()
        } else {
            format!("ports {}", ports.join(", "))
        };
        out.push(exposure(
            ExposureKind::HostNetwork,
            id,
            format!(
                "hostNetwork: true (the node's network), containers {}; {ports}{owned}",
                names.join(", ")
            ),
        ));
        return out;
    }
    for (what, c) in containers {
        for p in c.ports.iter().flatten() {
            let Some(host_port) = p.host_port.filter(|h| *h != 0) else {
                continue;
            };
            let mut detail = format!(
                "hostPort {host_port}/{} on {what} {}",
                protocol(&p.protocol),
                c.name
            );
            if p.container_port != host_port {
                detail.push_str(&format!(" (containerPort {})", p.container_port));
            }
            if let Some(ip) = p.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
                detail.push_str(&format!(", hostIP {ip}"));
            }
            detail.push_str(&owned);
            out.push(exposure(ExposureKind::HostPort, id.clone(), detail));
        }
    }
    out
}

/// An Ingress is an exposure: the hosts it routes (`*` for rules without a host and for a
/// default backend) and its class.
pub fn exposures_of_ingress(ing: &Ingress) -> Vec<Exposure> {
    if is_ours(ing.metadata.labels.as_ref()) {
        return Vec::new();
    }
    let spec = ing.spec.as_ref();
    let mut hosts: Vec<String> = Vec::new();
    let mut add = |h: String| {
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    };
    for rule in spec.and_then(|s| s.rules.as_ref()).into_iter().flatten() {
        add(rule
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "*".into()));
    }
    if spec.is_some_and(|s| s.default_backend.is_some()) {
        add("*".into());
    }
    let class = spec
        .and_then(|s| s.ingress_class_name.clone())
        .or_else(|| {
            ing.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/ingress.class").cloned())
        })
        .map_or_else(|| "default class".to_string(), |c| format!("class {c}"));
    let hosts = if hosts.is_empty() {
        "none (no rules)".to_string()
    } else if hosts == ["*"] {
        "* (any host)".to_string()
    } else {
        hosts.join(", ")
    };
    let addresses: Vec<String> = ing
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
        .collect();
    let mut detail = format!("Ingress hosts: {hosts} ({class})");
    if !addresses.is_empty() {
        detail.push_str(&format!(" at {}", addresses.join(", ")));
    }
    vec![exposure(
        ExposureKind::Ingress,
        ns_name(&ing.metadata),
        detail,
    )]
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A Gateway (gateway.networking.k8s.io/v1, the whole object as JSON) is an exposure: its class,
/// listeners (`name/port`, with the hostname when set) and addresses.
pub fn exposures_of_gateway(obj: &Value) -> Vec<Exposure> {
    let meta = &obj["metadata"];
    let ours = meta["labels"][MANAGED_BY].as_str() == Some(MANAGER);
    if ours {
        return Vec::new();
    }
    let spec = &obj["spec"];
    let class = text(&spec["gatewayClassName"]).unwrap_or_else(|| "(none)".into());
    let listeners: Vec<String> = spec["listeners"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let name = text(&l["name"]).unwrap_or_else(|| "?".into());
            let port = text(&l["port"]).unwrap_or_else(|| "?".into());
            match text(&l["hostname"]) {
                Some(h) => format!("{name}/{port} ({h})"),
                None => format!("{name}/{port}"),
            }
        })
        .collect();
    let listeners = if listeners.is_empty() {
        "none".to_string()
    } else {
        listeners.join(", ")
    };
    let addresses: Vec<String> = obj["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| text(&a["value"]))
        .collect();
    let mut detail = format!("Gateway class {class}, listeners: {listeners}");
    if !addresses.is_empty() {
        detail.push_str(&format!(" at {}", addresses.join(", ")));
    }
    vec![exposure(
        ExposureKind::Gateway,
        (
            text(&meta["namespace"]).unwrap_or_default(),
            text(&meta["name"]).unwrap_or_default(),
        ),
        detail,
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(v: Value) -> Service {
        serde_json::from_value(v).expect("a Service")
    }
    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).expect("a Pod")
    }
    fn ingress(v: Value) -> Ingress {
        serde_json::from_value(v).expect("an Ingress")
    }
    fn meta(ns: &str, name: &str) -> Value {
        json!({"namespace": ns, "name": name})
    }
    fn ours(ns: &str, name: &str) -> Value {
        json!({"namespace": ns, "name": name, "labels": {MANAGED_BY: MANAGER}})
    }
    fn e(kind: ExposureKind, ns: &str, name: &str, detail: &str) -> Exposure {
        Exposure {
            kind,
            namespace: ns.into(),
            name: name.into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn services_expose_node_ports_load_balancers_and_external_ips() {
        use ExposureKind::*;
        let cases: Vec<(&str, Value, Vec<Exposure>)> = vec![
            (
                "ClusterIP: nothing",
                json!({"metadata": meta("a", "web"), "spec": {"type": "ClusterIP",
                    "selector": {"app": "web"}, "ports": [{"port": 80}]}}),
                vec![],
            ),
            (
                "no type (ClusterIP by default): nothing",
                json!({"metadata": meta("a", "web"), "spec": {"ports": [{"port": 80}]}}),
                vec![],
            ),
            (
                "ExternalName: nothing",
                json!({"metadata": meta("a", "ext"), "spec": {"type": "ExternalName",
                    "externalName": "db.example.org"}}),
                vec![],
            ),
            (
                "NodePort",
                json!({"metadata": meta("project-a", "exposed-web"), "spec": {"type": "NodePort",
                    "selector": {"app": "web"},
                    "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP", "nodePort": 31234}]}}),
                vec![e(
                    NodePort,
                    "project-a",
                    "exposed-web",
                    "NodePort 31234/TCP -> port 80, selector app=web",
                )],
            ),
            (
                "NodePort with two ports, a named target, one not allocated yet",
                json!({"metadata": meta("a", "dns"), "spec": {"type": "NodePort",
                    "selector": {"app": "dns", "tier": "x"},
                    "ports": [{"port": 53, "protocol": "UDP", "nodePort": 30053},
                              {"port": 8080, "targetPort": "http"}]}}),
                vec![e(
                    NodePort,
                    "a",
                    "dns",
                    "NodePort 30053/UDP -> port 53, (unallocated)/TCP -> port 8080 (target http), \
                     selector app=dns,tier=x",
                )],
            ),
            (
                "LoadBalancer: its node ports are part of it, not a NodePort",
                json!({"metadata": meta("tre-gateway", "tre-gateway"), "spec": {"type": "LoadBalancer",
                    "selector": {"app": "gateway"},
                    "ports": [{"port": 80, "targetPort": 8080, "nodePort": 31000}]},
                    "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.1"}]}}}),
                vec![e(
                    LoadBalancer,
                    "tre-gateway",
                    "tre-gateway",
                    "LoadBalancer 203.0.113.1 ports 80/TCP (nodePort 31000), selector app=gateway",
                )],
            ),
            (
                "LoadBalancer pending, with source ranges, no node ports",
                json!({"metadata": meta("a", "lb"), "spec": {"type": "LoadBalancer",
                    "allocateLoadBalancerNodePorts": false,
                    "loadBalancerSourceRanges": ["10.0.0.0/8"],
                    "ports": [{"port": 443}]}}),
                vec![e(
                    LoadBalancer,
                    "a",
                    "lb",
                    "LoadBalancer (no address yet) ports 443/TCP, source ranges 10.0.0.0/8, \
                     no selector",
                )],
            ),
            (
                "ClusterIP with externalIPs",
                json!({"metadata": meta("a", "ext-ip"), "spec": {"selector": {"app": "web"},
                    "externalIPs": ["198.51.100.7"], "ports": [{"port": 80}]}}),
                vec![e(
                    ExternalIp,
                    "a",
                    "ext-ip",
                    "externalIPs 198.51.100.7 ports 80/TCP, selector app=web",
                )],
            ),
            (
                "NodePort with externalIPs: both",
                json!({"metadata": meta("a", "both"), "spec": {"type": "NodePort",
                    "externalIPs": ["198.51.100.7", "198.51.100.8"],
                    "ports": [{"port": 80, "nodePort": 30080}]}}),
                vec![
                    e(
                        NodePort,
                        "a",
                        "both",
                        "NodePort 30080/TCP -> port 80, no selector",
                    ),
                    e(
                        ExternalIp,
                        "a",
                        "both",
                        "externalIPs 198.51.100.7, 198.51.100.8 ports 80/TCP, no selector",
                    ),
                ],
            ),
            (
                "managed-by=netassay: skipped",
                json!({"metadata": ours("a", "probe"), "spec": {"type": "NodePort",
                    "ports": [{"port": 80, "nodePort": 30080}]}}),
                vec![],
            ),
            (
                "managed by someone else (the sandbox preset): kept",
                json!({"metadata": {"namespace": "a", "name": "x",
                    "labels": {MANAGED_BY: "netassay-sandbox-preset"}},
                    "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}}),
                vec![e(
                    NodePort,
                    "a",
                    "x",
                    "NodePort 30080/TCP -> port 80, no selector",
                )],
            ),
            ("no spec", json!({"metadata": meta("a", "x")}), vec![]),
        ];
        for (what, obj, want) in cases {
            assert_eq!(exposures_of_service(&service(obj)), want, "{what}");
        }
    }

    #[test]
    fn pods_expose_host_ports_and_host_network() {
        use ExposureKind::*;
        let cases: Vec<(&str, Value, Vec<Exposure>)> = vec![
            (
                "ordinary pod: nothing",
                json!({"metadata": meta("a", "web"), "spec": {"containers": [
                    {"name": "nginx", "ports": [{"containerPort": 80}]}]}}),
                vec![],
            ),
            (
                "hostPort",
                json!({"metadata": meta("a", "web"), "spec": {"containers": [
                    {"name": "nginx", "ports": [{"containerPort": 8080, "hostPort": 8080}]}]}}),
                vec![e(
                    HostPort,
                    "a",
                    "web",
                    "hostPort 8080/TCP on container nginx",
                )],
            ),
            (
                "two hostPorts, one mapped, one on an init container, with owner and hostIP",
                json!({"metadata": {"namespace": "ingress", "name": "ctl-x1",
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                        "name": "ctl", "uid": "u", "controller": true}]},
                    "spec": {
                    "initContainers": [{"name": "setup",
                        "ports": [{"containerPort": 9, "hostPort": 9, "protocol": "UDP"}]}],
                    "containers": [{"name": "ctl", "ports": [
                        {"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1"},
                        {"containerPort": 443}]}]}}),
                vec![
                    e(
                        HostPort,
                        "ingress",
                        "ctl-x1",
                        "hostPort 9/UDP on init container setup, owned by DaemonSet/ctl",
                    ),
                    e(
                        HostPort,
                        "ingress",
                        "ctl-x1",
                        "hostPort 8080/TCP on container ctl (containerPort 80), hostIP 127.0.0.1, \
                         owned by DaemonSet/ctl",
                    ),
                ],
            ),
            (
                "hostNetwork covers its (defaulted) hostPorts",
                json!({"metadata": meta("kube-system", "agent"), "spec": {"hostNetwork": true,
                    "containers": [{"name": "agent", "ports": [
                        {"containerPort": 4240, "hostPort": 4240}]}, {"name": "side"}]}}),
                vec![e(
                    HostNetwork,
                    "kube-system",
                    "agent",
                    "hostNetwork: true (the node's network), containers agent, side; \
                     ports 4240/TCP",
                )],
            ),
            (
                "hostNetwork without ports",
                json!({"metadata": meta("a", "h"), "spec": {"hostNetwork": true,
                    "containers": [{"name": "c"}]}}),
                vec![e(
                    HostNetwork,
                    "a",
                    "h",
                    "hostNetwork: true (the node's network), containers c; no declared ports",
                )],
            ),
            (
                "finished pod: nothing",
                json!({"metadata": meta("a", "job-x"), "spec": {"hostNetwork": true,
                    "containers": [{"name": "c"}]}, "status": {"phase": "Succeeded"}}),
                vec![],
            ),
            (
                "managed-by=netassay: skipped",
                json!({"metadata": ours("a", "probe"), "spec": {"hostNetwork": true,
                    "containers": [{"name": "c",
                        "ports": [{"containerPort": 80, "hostPort": 80}]}]}}),
                vec![],
            ),
        ];
        for (what, obj, want) in cases {
            assert_eq!(exposures_of_pod(&pod(obj)), want, "{what}");
        }
    }

    #[test]
    fn ingresses_are_exposures_with_their_hosts_and_class() {
        use ExposureKind::Ingress as I;
        let backend = json!({"service": {"name": "web", "port": {"number": 80}}});
        let path =
            json!({"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}});
        let rule = |host: Option<&str>| {
            let mut r = path.clone();
            if let Some(h) = host {
                r["host"] = json!(h);
            }
            r
        };
        let cases: Vec<(&str, Value, Vec<Exposure>)> = vec![
            (
                "with hosts and a class",
                json!({"metadata": meta("a", "web"), "spec": {"ingressClassName": "nginx",
                    "rules": [rule(Some("a.example")), rule(Some("b.example")),
                              rule(Some("a.example"))]}}),
                vec![e(
                    I,
                    "a",
                    "web",
                    "Ingress hosts: a.example, b.example (class nginx)",
                )],
            ),
            (
                "without hosts, class by annotation, with an address",
                json!({"metadata": {"namespace": "a", "name": "any",
                    "annotations": {"kubernetes.io/ingress.class": "traefik"}},
                    "spec": {"rules": [rule(None)]},
                    "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example"}]}}}),
                vec![e(
                    I,
                    "a",
                    "any",
                    "Ingress hosts: * (any host) (class traefik) at lb.example",
                )],
            ),
            (
                "a host and a default backend",
                json!({"metadata": meta("a", "mixed"), "spec": {"defaultBackend": backend,
                    "rules": [rule(Some("a.example"))]}}),
                vec![e(
                    I,
                    "a",
                    "mixed",
                    "Ingress hosts: a.example, * (default class)",
                )],
            ),
            (
                "no rules at all",
                json!({"metadata": meta("a", "empty"), "spec": {}}),
                vec![e(
                    I,
                    "a",
                    "empty",
                    "Ingress hosts: none (no rules) (default class)",
                )],
            ),
            (
                "managed-by=netassay: skipped",
                json!({"metadata": ours("a", "probe"), "spec": {"rules": [rule(None)]}}),
                vec![],
            ),
        ];
        for (what, obj, want) in cases {
            assert_eq!(exposures_of_ingress(&ingress(obj)), want, "{what}");
        }
    }

    #[test]
    fn gateways_are_exposures_with_their_listeners() {
        use ExposureKind::Gateway as G;
        let gw = |metadata: Value, spec: Value, status: Value| {
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": metadata, "spec": spec, "status": status})
        };
        let cases: Vec<(&str, Value, Vec<Exposure>)> = vec![
            (
                "listeners",
                gw(
                    meta("infra", "main"),
                    json!({"gatewayClassName": "cilium", "listeners": [
                        {"name": "http", "port": 80, "protocol": "HTTP"},
                        {"name": "https", "port": 443, "protocol": "HTTPS",
                         "hostname": "*.tre.example"}]}),
                    json!({"addresses": [{"type": "IPAddress", "value": "203.0.113.1"}]}),
                ),
                vec![e(
                    G,
                    "infra",
                    "main",
                    "Gateway class cilium, listeners: http/80, https/443 (*.tre.example) \
                     at 203.0.113.1",
                )],
            ),
            (
                "the sandbox's gateway, no status",
                gw(
                    meta("tre-gateway", "tre-gateway"),
                    json!({"gatewayClassName": "netassay-sandbox", "listeners": [
                        {"name": "http", "port": 80, "protocol": "HTTP"}]}),
                    Value::Null,
                ),
                vec![e(
                    G,
                    "tre-gateway",
                    "tre-gateway",
                    "Gateway class netassay-sandbox, listeners: http/80",
                )],
            ),
            (
                "malformed: still an exposure, never a panic",
                json!({"metadata": meta("a", "odd"), "spec": {"listeners": "nope"}}),
                vec![e(G, "a", "odd", "Gateway class (none), listeners: none")],
            ),
            (
                "managed-by=netassay: skipped",
                gw(
                    ours("a", "probe"),
                    json!({"gatewayClassName": "x", "listeners": []}),
                    Value::Null,
                ),
                vec![],
            ),
        ];
        for (what, obj, want) in cases {
            assert_eq!(exposures_of_gateway(&obj), want, "{what}");
        }
    }

    fn rule(kind: Option<ExposureKind>, ns: &str, name: &str) -> ExposureRule {
        ExposureRule {
            kind,
            namespace: ns.into(),
            name: name.into(),
            reason: None,
        }
    }

    #[test]
    fn rules_match_kind_namespace_and_name() {
        use ExposureKind::*;
        let lb = e(LoadBalancer, "tre-gateway", "tre-gateway", "LoadBalancer …");
        let np = e(NodePort, "project-a", "exposed-web", "NodePort …");
        let hn = e(HostNetwork, "kube-system", "cilium-x7k2p", "hostNetwork …");
        let cases: Vec<(ExposureRule, &Exposure, bool)> = vec![
            (
                rule(Some(LoadBalancer), "tre-gateway", "tre-gateway"),
                &lb,
                true,
            ),
            (
                rule(Some(Gateway), "tre-gateway", "tre-gateway"),
                &lb,
                false,
            ),
            (rule(None, "tre-gateway", "tre-gateway"), &lb, true),
            (rule(None, "tre-*", "*"), &lb, true),
            (rule(None, "*", "*"), &np, true),
            (rule(Some(NodePort), "project-?", "exposed-*"), &np, true),
            (rule(Some(NodePort), "project-b", "*"), &np, false),
            (rule(Some(NodePort), "project-a", "exposed"), &np, false),
            (
                rule(Some(HostNetwork), "kube-system", "cilium-*"),
                &hn,
                true,
            ),
            (rule(Some(HostPort), "kube-system", "cilium-*"), &hn, false),
        ];
        for (r, x, want) in cases {
            assert_eq!(r.matches(x), want, "{r:?} vs {x:?}");
        }
    }

    #[test]
    fn unapproved_keeps_what_no_rule_allows_in_order() {
        use ExposureKind::*;
        let inv = Inventory {
            exposures: vec![
                e(
                    NodePort,
                    "project-a",
                    "exposed-web",
                    "NodePort 31234/TCP -> port 80",
                ),
                e(LoadBalancer, "tre-gateway", "tre-gateway", "LoadBalancer …"),
                e(HostNetwork, "kube-system", "cilium-x", "hostNetwork …"),
                e(Gateway, "tre-gateway", "tre-gateway", "Gateway …"),
            ],
            notes: vec![],
        };
        let rules = vec![
            rule(None, "tre-gateway", "tre-gateway"),
            rule(Some(HostNetwork), "kube-system", "*"),
        ];
        let left: Vec<&str> = unapproved(&inv, &rules)
            .iter()
            .map(|x| x.name.as_str())
            .collect();
        assert_eq!(left, ["exposed-web"]);
        assert_eq!(unapproved(&inv, &[]).len(), 4);
        assert_eq!(
            inv.exposures[1].approved_by(&rules),
            Some(&rules[0]),
            "the first matching rule"
        );
        assert_eq!(
            inv.exposures[0].summary(),
            "NodePort service project-a/exposed-web: NodePort 31234/TCP -> port 80 is not on \
             the allow-list of exposures"
        );
    }

    #[test]
    fn kinds_have_kebab_case_names_everywhere() {
        for k in ExposureKind::ALL {
            let name = k.to_string();
            assert_eq!(name.parse::<ExposureKind>(), Ok(k));
            assert_eq!(
                serde_json::to_value(k).expect("serializes"),
                Value::String(name.clone())
            );
            assert_eq!(
                serde_json::from_value::<ExposureKind>(Value::String(name)).expect("parses"),
                k
            );
        }
        assert_eq!("node-port".parse(), Ok(ExposureKind::NodePort));
        assert_eq!("external-ip".parse(), Ok(ExposureKind::ExternalIp));
        let err = "NodePort"
            .parse::<ExposureKind>()
            .expect_err("not kebab-case");
        assert!(err.contains("node-port, load-balancer"), "{err}");
    }

    #[test]
    fn rules_deserialize_from_the_profile_config() {
        let rules: Vec<ExposureRule> = serde_saphyr::from_str(
            "- kind: load-balancer\n  namespace: tre-gateway\n  name: tre-gateway\n  \
             reason: the TRE's only way in\n- namespace: kube-system\n  name: '*'\n",
        )
        .expect("valid rules");
        assert_eq!(
            rules,
            vec![
                ExposureRule {
                    kind: Some(ExposureKind::LoadBalancer),
                    namespace: "tre-gateway".into(),
                    name: "tre-gateway".into(),
                    reason: Some("the TRE's only way in".into()),
                },
                rule(None, "kube-system", "*"),
            ]
        );
        for bad in [
            "- kind: nodeport\n  namespace: a\n  name: b\n",
            "- namespace: a\n  name: b\n  because: x\n",
            "- kind: ingress\n  name: b\n",
        ] {
            assert!(
                serde_saphyr::from_str::<Vec<ExposureRule>>(bad).is_err(),
                "should be refused: {bad}"
            );
        }
    }

    #[test]
    fn exposures_sort_by_kind_then_namespace_then_name() {
        use ExposureKind::*;
        let mut v = [
            e(Gateway, "a", "a", ""),
            e(NodePort, "b", "a", ""),
            e(NodePort, "a", "b", ""),
            e(NodePort, "a", "a", ""),
        ];
        v.sort();
        let keys: Vec<(ExposureKind, &str, &str)> = v
            .iter()
            .map(|x| (x.kind, x.namespace.as_str(), x.name.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                (NodePort, "a", "a"),
                (NodePort, "a", "b"),
                (NodePort, "b", "a"),
                (Gateway, "a", "a")
            ]
        );
    }
}
