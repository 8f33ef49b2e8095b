//! The sandbox's cluster add-ons and the files they read: cluster DNS (always on: the `coredns`
//! pod running `netassay agent dns` behind Service `kube-system/kube-dns` at 10.96.0.10), the
//! gateway's routes (with the K8TRE preset, see [`super::preset`]), and each pod's resolv.conf.
//!
//! Pure: objects and file texts from a [`ClusterState`]; the dataplane writes the files on every
//! sync.
//!
//! Formats (shared with `agent dns` and `agent gateway`):
//! - zone: one record per line, `<fqdn> <address>`; `#` comments;
//! - routes: one route per line, `<host> <ip>:<port>`; `#` comments.

use super::preset::{GATEWAY_NAME, GATEWAY_NAMESPACE};
use crate::addresses::{EXTERNAL_ADDRESS, MIRROR_ADDRESS};
use crate::gateway_api::HttpRoute;
use crate::object::Object;
use crate::state::ClusterState;
use crate::state::GatewayRoute;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use netassay_core::policy::cilium::fqdn::{selector_field, DNS_RULES_DIRECTIVE};
use netassay_core::policy::cilium::model::FqdnSelector;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

pub const CLUSTER_DOMAIN: &str = "cluster.local";
pub const DNS_NAMESPACE: &str = "kube-system";
pub const DNS_POD: &str = "coredns";
pub const DNS_SERVICE: &str = "kube-dns";
/// Cluster DNS's ClusterIP, what every pod's resolv.conf names.
pub const DNS_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// The `kubernetes` Service's ClusterIP (no Service object; the name resolves to it).
pub const KUBERNETES_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);
/// Names of the external host's addresses that cluster DNS answers.
pub const INTERNET_NAME: &str = "internet.example.org";
pub const MIRROR_NAME: &str = "mirror.example.org";

/// Cluster DNS: the `coredns` pod (labelled `k8s-app: kube-dns`) serving `zone_file` on port 53
/// over UDP and TCP, and Service `kube-dns` pinned at [`DNS_SERVICE_IP`].
pub fn dns_objects(zone_file: &Path) -> Vec<Object> {
    fn object<T: serde::de::DeserializeOwned>(value: Value) -> T {
        serde_json::from_value(value).expect("a system object is well-formed")
    }
    let labels = json!({"k8s-app": "kube-dns"});
    vec![
        Object::Pod(object(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": DNS_POD, "namespace": DNS_NAMESPACE, "labels": labels},
            "spec": {"containers": [{
                "name": "coredns",
                "image": "netassay:sandbox",
                "command": [
                    "netassay", "agent", "dns",
                    "--listen", "0.0.0.0:53",
                    "--zone", zone_file.display().to_string(),
                ],
                "ports": [
                    {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                ],
            }]},
        }))),
        Object::Service(object(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": DNS_SERVICE, "namespace": DNS_NAMESPACE, "labels": labels},
            "spec": {
                "clusterIP": DNS_SERVICE_IP.to_string(),
                "selector": labels,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                ],
            },
        }))),
    ]
}

/// The external host's names and addresses, as cluster DNS answers them.
pub fn external_records() -> [(&'static str, IpAddr); 2] {
    [
        (INTERNET_NAME, IpAddr::V4(EXTERNAL_ADDRESS)),
        (MIRROR_NAME, IpAddr::V4(MIRROR_ADDRESS)),
    ]
}

/// The zone `agent dns` serves: every Service's name at its ClusterIP, `kubernetes.default`,
/// and the external host's names.
pub fn zone(state: &ClusterState) -> String {
    let mut out =
        String::from("# netassay sandbox cluster DNS (generated on every cluster change)\n");
    let mut line = |name: &str, ip: &dyn std::fmt::Display| out.push_str(&format!("{name} {ip}\n"));
    line(
        &format!("kubernetes.default.svc.{CLUSTER_DOMAIN}"),
        &KUBERNETES_SERVICE_IP,
    );
    for (name, ip) in external_records() {
        line(name, &ip);
    }
    let services: BTreeSet<(&str, &str, IpAddr)> = state
        .services
        .iter()
        .map(|s| (s.namespace.as_str(), s.name.as_str(), s.cluster_ip))
        .collect();
    for (namespace, name, ip) in services {
        line(&format!("{name}.{namespace}.svc.{CLUSTER_DOMAIN}"), &ip);
    }
    out
}

/// [`zone`] with a `!dns-rules` line per pod (source address) whose queries the cluster DNS
/// answers only for some names (Cilium's DNS proxy, played by `agent dns`): REFUSED for the
/// others.
pub fn zone_with_rules<'a>(
    state: &ClusterState,
    rules: impl IntoIterator<Item = (IpAddr, &'a [FqdnSelector])>,
) -> String {
    let mut out = zone(state);
    for (source, names) in rules {
        out.push_str(&format!("{DNS_RULES_DIRECTIVE}{source}"));
        for field in names.iter().filter_map(selector_field) {
            out.push(' ');
            out.push_str(&field);
        }
        out.push('\n');
    }
    out
}

/// The routes file `agent gateway` serves: `<host> <ip>:<port>` per distinct route.
pub fn routes(state: &ClusterState) -> String {
    let mut out =
        String::from("# netassay sandbox gateway routes (generated on every cluster change)\n");
    let lines: BTreeSet<(&str, SocketAddr)> = state
        .gateway_routes
        .iter()
        .map(|r| (r.host.as_str(), r.backend))
        .collect();
    for (host, backend) in lines {
        out.push_str(&format!("{host} {backend}\n"));
    }
    out
}

/// A pod's resolv.conf: cluster DNS, the Kubernetes search path of its namespace, ndots 5.
pub fn resolv_conf(namespace: &str) -> String {
    format!(
        "nameserver {DNS_SERVICE_IP}\n\
         search {namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}\n\
         options ndots:5\n"
    )
}

fn host_name(text: &str) -> Option<String> {
    let host = text.trim().trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// Services by (namespace, name), those with a ClusterIP only.
struct Services<'a>(BTreeMap<(&'a str, &'a str), (IpAddr, &'a Service)>);

impl<'a> Services<'a> {
    fn new(services: impl Iterator<Item = &'a Service>) -> Self {
        Services(
            services
                .filter_map(|svc| {
                    let ip = svc.spec.as_ref()?.cluster_ip.as_deref()?.parse().ok()?;
                    let ns = svc.metadata.namespace.as_deref()?;
                    let name = svc.metadata.name.as_deref()?;
                    Some(((ns, name), (ip, svc)))
                })
                .collect(),
        )
    }

    /// The Service's ClusterIP and the port matching `by` (a number or a port name).
    fn backend(&self, namespace: &str, name: &str, by: PortRef<'_>) -> Option<SocketAddr> {
        let (ip, svc) = self.0.get(&(namespace, name))?;
        let port = svc
            .spec
            .as_ref()?
            .ports
            .iter()
            .flatten()
            .find(|p| match by {
                PortRef::Number(n) => i64::from(p.port) == n,
                PortRef::Name(name) => p.name.as_deref() == Some(name),
            })?
            .port;
        Some(SocketAddr::new(*ip, u16::try_from(port).ok()?))
    }
}

#[derive(Debug, Clone, Copy)]
enum PortRef<'a> {
    Number(i64),
    Name(&'a str),
}

/// Does this HTTPRoute name the sandbox gateway among its parents?
fn attaches_to_gateway(route: &HttpRoute) -> bool {
    let own = route.metadata.namespace.as_deref().unwrap_or("");
    let parents = route.spec()["parentRefs"].as_array().into_iter().flatten();
    parents.into_iter().any(|p| {
        let str_or = |field: &str, default: &'static str| -> String {
            p[field].as_str().unwrap_or(default).to_string()
        };
        p["name"].as_str() == Some(GATEWAY_NAME)
            && p["namespace"].as_str().unwrap_or(own) == GATEWAY_NAMESPACE
            && str_or("group", crate::gateway_api::GROUP) == crate::gateway_api::GROUP
            && str_or("kind", "Gateway") == "Gateway"
    })
}

/// What the sandbox gateway routes: for each HTTPRoute attached to `tre-gateway/tre-gateway`,
/// each hostname to each Service backendRef's ClusterIP:port; for each Ingress, each rule's host
/// to each path's Service ClusterIP:port (a port name resolved on the Service). Backends that do
/// not resolve (no such Service or port, headless) are left out. Sorted, distinct.
pub fn gateway_routes<'a>(
    http_routes: impl Iterator<Item = &'a HttpRoute>,
    ingresses: impl Iterator<Item = &'a Ingress>,
    services: impl Iterator<Item = &'a Service>,
) -> Vec<GatewayRoute> {
    let services = Services::new(services);
    let mut out = BTreeSet::new();
    for route in http_routes.filter(|r| attaches_to_gateway(r)) {
        let namespace = route.metadata.namespace.as_deref().unwrap_or("");
        let origin = format!(
            "HTTPRoute {namespace}/{}",
            route.metadata.name.as_deref().unwrap_or("")
        );
        let spec = route.spec();
        let hosts: Vec<String> = spec["hostnames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| host_name(h.as_str()?))
            .collect();
        let backends = spec["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|rule| rule["backendRefs"].as_array().into_iter().flatten())
            .filter(|b| {
                b["group"].as_str().unwrap_or("").is_empty()
                    && b["kind"].as_str().unwrap_or("Service") == "Service"
            })
            .filter_map(|b| {
                let ns = b["namespace"].as_str().unwrap_or(namespace);
                services.backend(
                    ns,
                    b["name"].as_str()?,
                    PortRef::Number(b["port"].as_i64()?),
                )
            });
        for backend in backends {
            for host in &hosts {
                out.insert(GatewayRoute {
                    host: host.clone(),
                    backend,
                    origin: origin.clone(),
                });
            }
        }
    }
    for ingress in ingresses {
        let namespace = ingress.metadata.namespace.as_deref().unwrap_or("");
        let origin = format!(
            "Ingress {namespace}/{}",
            ingress.metadata.name.as_deref().unwrap_or("")
        );
        let rules = ingress.spec.iter().flat_map(|s| s.rules.iter().flatten());
        for rule in rules {
            let Some(host) = rule.host.as_deref().and_then(host_name) else {
                continue;
            };
            let paths = rule.http.iter().flat_map(|h| h.paths.iter());
            for path in paths {
                let Some(service) = &path.backend.service else {
                    continue;
                };
                let by = match service.port.as_ref() {
                    Some(p) => match (&p.name, p.number) {
                        (Some(name), _) => PortRef::Name(name),
                        (None, Some(n)) => PortRef::Number(n.into()),
                        (None, None) => continue,
                    },
                    None => continue,
                };
                if let Some(backend) = services.backend(namespace, &service.name, by) {
                    out.insert(GatewayRoute {
                        host: host.clone(),
                        backend,
                        origin: origin.clone(),
                    });
                }
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ServicePortState;
    use crate::state::ServiceState;
    use crate::state::TargetPort;
    use netassay_core::model::Protocol;

    fn service(ns: &str, name: &str, ip: &str, ports: Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": ports},
        }))
        .unwrap()
    }

    fn route(ns: &str, name: &str, spec: Value) -> HttpRoute {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}, "spec": spec}))
            .unwrap()
    }

    fn ingress(ns: &str, name: &str, spec: Value) -> Ingress {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}, "spec": spec}))
            .unwrap()
    }

    fn lines(routes: &[GatewayRoute]) -> Vec<String> {
        routes
            .iter()
            .map(|r| format!("{} {} ({})", r.host, r.backend, r.origin))
            .collect()
    }

    fn services() -> Vec<Service> {
        vec![
            service(
                "p1",
                "web",
                "10.96.0.20",
                json!([{"name": "http", "port": 80}, {"name": "alt", "port": 8080}]),
            ),
            service(
                "p2",
                "api",
                "10.96.0.21",
                json!([{"name": "http", "port": 8000}]),
            ),
            service("p1", "headless", "None", json!([{"port": 80}])),
        ]
    }

    // Contract: HTTPRoutes whose parentRefs name tre-gateway/tre-gateway (namespace defaults to
    // the route's); each hostname to each backendRef's Service ClusterIP:port (backendRef
    // namespace defaults to the route's).
    #[test]
    fn http_routes_attached_to_the_gateway_become_routes() {
        let routes = [
            route(
                "p1",
                "web",
                json!({
                    "parentRefs": [{"name": "tre-gateway", "namespace": "tre-gateway"}],
                    "hostnames": ["Web.Example.org.", "www.example.org"],
                    "rules": [{"backendRefs": [{"name": "web", "port": 80}, {"name": "api", "namespace": "p2", "port": 8000}]}],
                }),
            ),
            // In the gateway's namespace, the parent namespace defaults to it.
            route(
                "tre-gateway",
                "local",
                json!({
                    "parentRefs": [{"name": "tre-gateway"}],
                    "hostnames": ["local.example.org"],
                    "rules": [{"backendRefs": [{"name": "web", "namespace": "p1", "port": 8080}]}],
                }),
            ),
            // Another gateway, a parent namespace defaulting to p1, a missing port, a headless
            // Service, a non-Service backend: no routes.
            route(
                "p1",
                "elsewhere",
                json!({
                    "parentRefs": [{"name": "other-gateway", "namespace": "tre-gateway"}, {"name": "tre-gateway"}],
                    "hostnames": ["no.example.org"],
                    "rules": [{"backendRefs": [{"name": "web", "port": 80}]}],
                }),
            ),
            route(
                "p1",
                "unresolved",
                json!({
                    "parentRefs": [{"name": "tre-gateway", "namespace": "tre-gateway"}],
                    "hostnames": ["unresolved.example.org"],
                    "rules": [{"backendRefs": [
                        {"name": "web", "port": 81},
                        {"name": "headless", "port": 80},
                        {"name": "web", "port": 80, "kind": "Bucket", "group": "example.org"},
                    ]}],
                }),
            ),
        ];
        let svcs = services();
        let got = gateway_routes(routes.iter(), [].iter(), svcs.iter());
        assert_eq!(
            lines(&got),
            [
                "local.example.org 10.96.0.20:8080 (HTTPRoute tre-gateway/local)",
                "web.example.org 10.96.0.20:80 (HTTPRoute p1/web)",
                "web.example.org 10.96.0.21:8000 (HTTPRoute p1/web)",
                "www.example.org 10.96.0.20:80 (HTTPRoute p1/web)",
                "www.example.org 10.96.0.21:8000 (HTTPRoute p1/web)"
            ]
        );
    }

    // Contract: Ingresses: each rule host to the backend Service's ClusterIP:port (a port
    // number, or a port name resolved on the Service).
    #[test]
    fn ingress_rules_become_routes_with_port_names_resolved() {
        let ingresses = [ingress(
            "p1",
            "web",
            json!({"rules": [
                {"host": "web.example.org", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                    {"path": "/alt", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "alt"}}}},
                    {"path": "/x", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "nosuch"}}}},
                    {"path": "/y", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 8000}}}},
                ]}},
                {"http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                ]}},
            ]}),
        )];
        let svcs = services();
        let got = gateway_routes([].iter(), ingresses.iter(), svcs.iter());
        assert_eq!(
            lines(&got),
            [
                "web.example.org 10.96.0.20:80 (Ingress p1/web)",
                "web.example.org 10.96.0.20:8080 (Ingress p1/web)"
            ],
            "a port name resolves on the Service; a hostless rule, an unknown port and a Service of another namespace do not route"
        );
    }

    fn state_with_services() -> ClusterState {
        let svc = |ns: &str, name: &str, ip: &str| ServiceState {
            namespace: ns.into(),
            name: name.into(),
            cluster_ip: ip.parse().unwrap(),
            selector: Default::default(),
            ports: vec![ServicePortState {
                port: 53,
                protocol: Protocol::Udp,
                target_port: TargetPort::Number(53),
                node_port: None,
            }],
            load_balancer_ips: vec![],
        };
        ClusterState {
            services: vec![
                svc("p1", "web", "10.96.0.20"),
                svc("kube-system", "kube-dns", "10.96.0.10"),
            ],
            ..ClusterState::default()
        }
    }

    // Contract: the zone has `<svc>.<ns>.svc.cluster.local <clusterIP>` for every Service,
    // kubernetes.default at 10.96.0.1, and the external names.
    #[test]
    fn the_zone_names_every_service_and_the_external_host() {
        let text = zone(&state_with_services());
        let records: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            records,
            [
                "kubernetes.default.svc.cluster.local 10.96.0.1",
                "internet.example.org 203.0.113.10",
                "mirror.example.org 203.0.113.20",
                "kube-dns.kube-system.svc.cluster.local 10.96.0.10",
                "web.p1.svc.cluster.local 10.96.0.20"
            ]
        );
        assert!(text.starts_with('#'));
    }

    #[test]
    fn the_routes_file_has_one_line_per_distinct_route() {
        let backend: SocketAddr = "10.96.0.20:80".parse().unwrap();
        let route = |host: &str, origin: &str| GatewayRoute {
            host: host.into(),
            backend,
            origin: origin.into(),
        };
        let state = ClusterState {
            gateway_routes: vec![
                route("a.example.org", "HTTPRoute p1/a"),
                route("a.example.org", "Ingress p1/a"),
                route("b.example.org", "Ingress p1/b"),
            ],
            ..ClusterState::default()
        };
        let text = routes(&state);
        let records: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            records,
            ["a.example.org 10.96.0.20:80", "b.example.org 10.96.0.20:80"]
        );
        assert_eq!(
            routes(&ClusterState::default())
                .lines()
                .filter(|l| !l.starts_with('#'))
                .count(),
            0
        );
    }

    #[test]
    fn resolv_conf_points_at_cluster_dns_with_the_namespace_search_path() {
        assert_eq!(
            resolv_conf("p1"),
            "nameserver 10.96.0.10\nsearch p1.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
        );
    }

    #[test]
    fn cluster_dns_is_a_labelled_pod_and_a_pinned_service() {
        let objects = dns_objects(Path::new("/run/netassay/na0000/cluster.zone"));
        let names: Vec<String> = objects.iter().map(Object::describe).collect();
        assert_eq!(
            names,
            ["Pod kube-system/coredns", "Service kube-system/kube-dns"]
        );
        let Object::Pod(pod) = &objects[0] else {
            panic!("a Pod")
        };
        assert_eq!(pod.metadata.labels.as_ref().unwrap()["k8s-app"], "kube-dns");
        assert_eq!(
            pod.spec.as_ref().unwrap().containers[0]
                .command
                .as_deref()
                .unwrap(),
            [
                "netassay",
                "agent",
                "dns",
                "--listen",
                "0.0.0.0:53",
                "--zone",
                "/run/netassay/na0000/cluster.zone"
            ]
        );
        let Object::Service(svc) = &objects[1] else {
            panic!("a Service")
        };
        let spec = svc.spec.as_ref().unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
        let ports: Vec<(Option<&str>, i32, Option<&str>)> = spec
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.as_deref(), p.port, p.protocol.as_deref()))
            .collect();
        assert_eq!(
            ports,
            [
                (Some("dns"), 53, Some("UDP")),
                (Some("dns-tcp"), 53, Some("TCP"))
            ]
        );
    }
}
