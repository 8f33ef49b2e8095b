//! The world the oracle reasons about: logical namespaces and pods, labels, served ports, addresses.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

/// Label key that the API server sets on every namespace to its own name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Labels of a pod or namespace.
pub type Labels = BTreeMap<String, String>;

/// Transport protocols that NetworkPolicy ports can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }

    /// Lower-case form used in standard port names (`serve-80-tcp`).
    pub fn lower(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "TCP" => Ok(Protocol::Tcp),
            "UDP" => Ok(Protocol::Udp),
            "SCTP" => Ok(Protocol::Sctp),
            other => Err(format!(
                "unsupported protocol {other:?}: expected TCP, UDP or SCTP"
            )),
        }
    }
}

/// A pod named by its (logical) namespace and name: `x/a`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
}

impl PodRef {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        PodRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl FromStr for PodRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(PodRef::new(ns, name))
            }
            _ => Err(format!("{s:?} is not of the form namespace/name")),
        }
    }
}

impl Serialize for PodRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A NetworkPolicy named by its (logical) namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyRef {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl Serialize for PolicyRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A port a pod listens on; `name` is the container port name that policies may refer to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ServedPort {
    pub port: u16,
    pub protocol: Protocol,
    pub name: Option<String>,
}

impl ServedPort {
    /// The standard model's port: `serve-<port>-<proto>`.
    pub fn standard(port: u16, protocol: Protocol) -> Self {
        ServedPort {
            port,
            protocol,
            name: Some(format!("serve-{port}-{}", protocol.lower())),
        }
    }
}

/// How a probe addresses its destination: a pod (the first five) or an external endpoint (the
/// last three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// The pod's own IP.
    PodIp,
    /// The ClusterIP of the pod's Service; judged after DNAT, on the pod and target port.
    ServiceIp,
    /// The Service's cluster DNS name; judged like `service-ip`.
    ServiceDns,
    /// Through the cluster's ingress gateway: an HTTP request to the gateway's address with the
    /// host name of a route that netassay creates for the pod's HTTP port.
    Gateway,
    /// The node address and the port of any NodePort Service that selects the pod.
    NodePort,
    /// An external endpoint by its address.
    Address,
    /// An external endpoint by its DNS name: the source resolves it, then connects.
    Name,
    /// Only the DNS lookup of an external endpoint's name: allowed means it resolved.
    Lookup,
}

impl Via {
    pub const ALL: [Via; 8] = [
        Via::PodIp,
        Via::ServiceIp,
        Via::ServiceDns,
        Via::Gateway,
        Via::NodePort,
        Via::Address,
        Via::Name,
        Via::Lookup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Via::PodIp => "pod-ip",
            Via::ServiceIp => "service-ip",
            Via::ServiceDns => "service-dns",
            Via::Gateway => "gateway",
            Via::NodePort => "node-port",
            Via::Address => "address",
            Via::Name => "name",
            Via::Lookup => "lookup",
        }
    }

    /// True for the address kinds of an external endpoint; false for those of a pod.
    pub fn is_external(self) -> bool {
        matches!(self, Via::Address | Via::Name | Via::Lookup)
    }

    /// True when the probe needs a Service in front of the destination pod.
    pub fn needs_service(self) -> bool {
        matches!(self, Via::ServiceIp | Via::ServiceDns | Via::Gateway)
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Via {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pod-ip" => Ok(Via::PodIp),
            "service-ip" => Ok(Via::ServiceIp),
            "service-dns" => Ok(Via::ServiceDns),
            "gateway" => Ok(Via::Gateway),
            "node-port" => Ok(Via::NodePort),
            "address" => Ok(Via::Address),
            "name" => Ok(Via::Name),
            "lookup" => Ok(Via::Lookup),
            other => Err(format!(
                "unknown address kind {other:?}: expected pod-ip, service-ip, service-dns, \
                 gateway, node-port, address, name or lookup"
            )),
        }
    }
}

/// What Kubernetes semantics say about a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
}

impl Verdict {
    pub fn from_allowed(allowed: bool) -> Self {
        if allowed {
            Verdict::Allow
        } else {
            Verdict::Deny
        }
    }

    pub fn is_allow(self) -> bool {
        self == Verdict::Allow
    }

    /// The upstream truth-table symbol: `.` allowed, `X` denied.
    pub fn symbol(self) -> char {
        match self {
            Verdict::Allow => '.',
            Verdict::Deny => 'X',
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        })
    }
}

/// A namespace of the topology. `labels` include the implied `kubernetes.io/metadata.name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    pub labels: Labels,
}

/// Container port name of a pod's HTTP port.
pub const HTTP_PORT_NAME: &str = "http";

/// A pod of the topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub id: PodRef,
    pub labels: Labels,
    pub ip: IpAddr,
    pub serve: Vec<ServedPort>,
    /// A TCP port on which the pod answers HTTP with its identity (for `gateway` probes and
    /// for probes from outside the cluster to a web app).
    pub http: Option<u16>,
}

impl Pod {
    /// Resolves a container port name for one protocol, as the API server's consumers do.
    pub fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        if name == HTTP_PORT_NAME && protocol == Protocol::Tcp && self.http.is_some() {
            return self.http;
        }
        self.serve
            .iter()
            .find(|p| p.protocol == protocol && p.name.as_deref() == Some(name))
            .map(|p| p.port)
    }

    /// True when the pod listens on the port: a served port, or its HTTP port (TCP).
    pub fn serves(&self, port: u16, protocol: Protocol) -> bool {
        self.serve
            .iter()
            .any(|p| p.port == port && p.protocol == protocol)
            || self.is_http(port, protocol)
    }

    /// True for the pod's HTTP port.
    pub fn is_http(&self, port: u16, protocol: Protocol) -> bool {
        protocol == Protocol::Tcp && self.http == Some(port)
    }

    pub fn port_name(&self, port: u16, protocol: Protocol) -> Option<&str> {
        if self.is_http(port, protocol) {
            return Some(HTTP_PORT_NAME);
        }
        self.serve
            .iter()
            .find(|p| p.port == port && p.protocol == protocol)
            .and_then(|p| p.name.as_deref())
    }
}

/// Logical namespace of external endpoints in cells: `external/<name>`. Reserved.
pub const EXTERNAL_NAMESPACE: &str = "external";
/// Logical namespace of the vantage point outside the cluster: `outside/vantage`. Reserved.
pub const OUTSIDE_NAMESPACE: &str = "outside";

impl PodRef {
    /// The vantage point outside the cluster, as a probe source.
    pub fn outside() -> PodRef {
        PodRef::new(OUTSIDE_NAMESPACE, "vantage")
    }

    /// An external endpoint, as a probe destination.
    pub fn external(name: impl Into<String>) -> PodRef {
        PodRef::new(EXTERNAL_NAMESPACE, name)
    }

    pub fn is_outside(&self) -> bool {
        self.namespace == OUTSIDE_NAMESPACE
    }

    pub fn is_external(&self) -> bool {
        self.namespace == EXTERNAL_NAMESPACE
    }
}

/// An endpoint outside the cluster that pods may try to reach: the internet, a package mirror,
/// cloud metadata, a DNS name. Probed by address, by name, or by the lookup alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    pub name: String,
    pub address: Option<IpAddr>,
    /// A DNS name that should lead to it.
    pub host: Option<String>,
    /// The ports probed on it.
    pub ports: Vec<ServedPort>,
}

impl External {
    pub fn id(&self) -> PodRef {
        PodRef::external(&self.name)
    }

    pub fn serves(&self, port: u16, protocol: Protocol) -> bool {
        self.ports
            .iter()
            .any(|p| p.port == port && p.protocol == protocol)
    }
}

/// Namespaces and pods, both kept sorted by name so indices are stable, and the external
/// endpoints (sorted by name) that intent scenarios probe.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topology {
    pub namespaces: Vec<Namespace>,
    pub pods: Vec<Pod>,
    pub externals: Vec<External>,
}

/// The base of the synthetic pod network used offline (`plan`): 10.244.0.0/16.
pub const SYNTHETIC_POD_NETWORK: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 0);

impl Topology {
    /// Builds a topology; sorts namespaces and pods and adds the implied namespace-name label.
    pub fn new(mut namespaces: Vec<Namespace>, mut pods: Vec<Pod>) -> Self {
        for ns in &mut namespaces {
            ns.labels
                .insert(NAMESPACE_NAME_LABEL.to_string(), ns.name.clone());
        }
        namespaces.sort_by(|a, b| a.name.cmp(&b.name));
        pods.sort_by(|a, b| a.id.cmp(&b.id));
        Topology {
            namespaces,
            pods,
            externals: Vec::new(),
        }
    }

    /// The same topology with these external endpoints (sorted by name).
    pub fn with_externals(mut self, mut externals: Vec<External>) -> Self {
        externals.sort_by(|a, b| a.name.cmp(&b.name));
        self.externals = externals;
        self
    }

    pub fn external(&self, name: &str) -> Option<&External> {
        self.externals.iter().find(|e| e.name == name)
    }

    /// Upstream's model: namespaces x, y, z; pods a, b, c in each labelled `pod=<name>`;
    /// every pod serves TCP, UDP and SCTP on ports 80 and 81.
    pub fn standard() -> Self {
        let serve = standard_serve();
        let mut namespaces = Vec::new();
        let mut pods = Vec::new();
        for ns in ["x", "y", "z"] {
            namespaces.push(Namespace {
                name: ns.to_string(),
                labels: Labels::new(),
            });
            for pod in ["a", "b", "c"] {
                pods.push(Pod {
                    id: PodRef::new(ns, pod),
                    labels: Labels::from([("pod".to_string(), pod.to_string())]),
                    ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    serve: serve.clone(),
                    http: None,
                });
            }
        }
        let mut topo = Topology::new(namespaces, pods);
        topo.assign_synthetic_ips();
        topo
    }

    /// Gives every pod a deterministic address: namespace i gets 10.244.i.0/24, its j-th pod .(j+10).
    pub fn assign_synthetic_ips(&mut self) {
        let mut ns_index: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
        for (i, ns) in self.namespaces.iter().enumerate() {
            ns_index.insert(ns.name.as_str(), (i as u32, 0));
        }
        let base = u32::from(SYNTHETIC_POD_NETWORK);
        let mut overflow = 0u32;
        for pod in &mut self.pods {
            let slot = ns_index.get_mut(pod.id.namespace.as_str());
            let addr = match slot {
                Some((i, j)) if *i < 256 && *j < 240 => {
                    let a = base + (*i << 8) + *j + 10;
                    *j += 1;
                    a
                }
                _ => {
                    // Past 256 namespaces or 240 pods in one: fall back to the top of the /16.
                    overflow += 1;
                    base + 0xffff - overflow
                }
            };
            pod.ip = IpAddr::V4(Ipv4Addr::from(addr));
        }
    }

    pub fn pod_index(&self, id: &PodRef) -> Option<usize> {
        self.pods.binary_search_by(|p| p.id.cmp(id)).ok()
    }

    pub fn pod(&self, id: &PodRef) -> Option<&Pod> {
        self.pod_index(id).map(|i| &self.pods[i])
    }

    pub fn pod_mut(&mut self, id: &PodRef) -> Option<&mut Pod> {
        self.pod_index(id).map(move |i| &mut self.pods[i])
    }

    pub fn namespace_index(&self, name: &str) -> Option<usize> {
        self.namespaces
            .binary_search_by(|n| n.name.as_str().cmp(name))
            .ok()
    }

    pub fn namespace(&self, name: &str) -> Option<&Namespace> {
        self.namespace_index(name).map(|i| &self.namespaces[i])
    }

    pub fn namespace_mut(&mut self, name: &str) -> Option<&mut Namespace> {
        self.namespace_index(name)
            .map(move |i| &mut self.namespaces[i])
    }
}

/// Every pod of the standard model serves TCP, UDP and SCTP on 80 and 81.
pub fn standard_serve() -> Vec<ServedPort> {
    let mut serve = Vec::new();
    for port in [80, 81] {
        for proto in Protocol::ALL {
            serve.push(ServedPort::standard(port, proto));
        }
    }
    serve
}

/// Applies a label edit: `Some(v)` sets a key, `None` removes it.
pub fn edit_labels(labels: &mut Labels, edit: &BTreeMap<String, Option<String>>) {
    for (k, v) in edit {
        match v {
            Some(v) => {
                labels.insert(k.clone(), v.clone());
            }
            None => {
                labels.remove(k);
            }
        }
    }
}

/// Matches `text` against a glob with `*` (any run of characters) and `?` (one character).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_model_has_nine_pods_with_distinct_addresses() {
        let t = Topology::standard();
        assert_eq!(t.pods.len(), 9);
        let mut ips: Vec<_> = t.pods.iter().map(|p| p.ip).collect();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), 9);
        let xa = t.pod(&PodRef::new("x", "a")).expect("x/a");
        assert_eq!(xa.ip, "10.244.0.10".parse::<IpAddr>().expect("ip"));
        assert_eq!(xa.named_port("serve-81-udp", Protocol::Udp), Some(81));
        assert_eq!(xa.named_port("serve-81-udp", Protocol::Tcp), None);
        assert_eq!(
            t.namespace("y")
                .expect("y")
                .labels
                .get(NAMESPACE_NAME_LABEL),
            Some(&"y".to_string())
        );
    }

    #[test]
    fn glob_matches_like_a_shell() {
        for (p, t, m) in [
            ("*/*", "x/a", true),
            ("x/*", "x/a", true),
            ("x/*", "y/a", false),
            ("*/a", "z/a", true),
            ("x/?", "x/ab", false),
            ("x/a", "x/a", true),
            ("*", "", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
        ] {
            assert_eq!(glob_match(p, t), m, "{p} vs {t}");
        }
    }

    #[test]
    fn pod_refs_parse_strictly() {
        assert_eq!("x/a".parse::<PodRef>(), Ok(PodRef::new("x", "a")));
        assert!("x".parse::<PodRef>().is_err());
        assert!("x/a/b".parse::<PodRef>().is_err());
        assert!("/a".parse::<PodRef>().is_err());
    }
}
