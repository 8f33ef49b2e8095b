//! The rule model: what a batch does, with every selector, named port and Service endpoint
//! already resolved to addresses and numbers. Tests walk it to check it against the oracle.

use ipnet::IpNet;
use netassay_core::model::Protocol;
use std::net::IpAddr;

/// A resolved ruleset: what the batch does, before it is printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub table: String,
    /// One entry per Service port and address it is exposed at (ClusterIP, node port, load
    /// balancer) that has endpoints; an address:port two Services claim goes to the first.
    pub dnat: Vec<Dnat>,
    /// One entry per Service address with endpoints of its address family.
    pub hairpin: Vec<Hairpin>,
    /// Every ClusterIP: forwarded packets still addressed to one are rejected.
    pub cluster_ips: Vec<IpAddr>,
    /// `None`: no filtering at all (the `none` fault).
    pub filter: Option<Filter>,
    /// Inputs that could not be compiled (they match nothing), printed as `#` comments.
    pub notes: Vec<String>,
    /// Pods whose queries to the cluster DNS are answered only for some names (Cilium's DNS
    /// rules; the cluster DNS plays its DNS proxy: `system::zone_with_rules`).
    pub dns_rules: Vec<DnsRule>,
}

/// The names cluster DNS answers to one pod (Cilium's DNS proxy); others are REFUSED.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRule {
    pub source: IpAddr,
    pub names: Vec<netassay_core::policy::cilium::model::FqdnSelector>,
}

/// address:port/protocol to one of the endpoints, chosen at random per connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dnat {
    /// `namespace/name` of the Service.
    pub service: String,
    pub exposure: Exposure,
    /// The ClusterIP, the node's address, or the load balancer's.
    pub address: IpAddr,
    pub protocol: Protocol,
    /// The Service port (the node port for [`Exposure::NodePort`]).
    pub port: u16,
    /// Sorted by pod; never empty.
    pub endpoints: Vec<Endpoint>,
}

/// Where a Service port is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exposure {
    ClusterIp,
    /// The node's address, at the node port.
    NodePort,
    /// A `status.loadBalancer.ingress` address, at the Service port.
    LoadBalancer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `namespace/name` of the pod.
    pub pod: String,
    pub ip: IpAddr,
    /// The resolved targetPort.
    pub port: u16,
}

/// Connections from an endpoint to itself through a Service address are SNATed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hairpin {
    pub service: String,
    /// The ClusterIP, the node's address or the load balancer's.
    pub address: IpAddr,
    /// Sorted, distinct.
    pub endpoints: Vec<IpAddr>,
}

/// The `forward` chain and the per-pod chains it jumps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// `flaky` fault: 2% of new connections are dropped before any policy is consulted.
    pub flaky: bool,
    /// `tcp-only` fault: these protocols are accepted before any policy is consulted.
    pub unfiltered: Vec<Protocol>,
    /// Egress-isolated pods, sorted by pod; a source pod's new connections must match one allow.
    pub egress: Vec<PodChain>,
    /// Ingress-isolated pods, sorted by pod; judged on the (post-DNAT) destination.
    pub ingress: Vec<PodChain>,
}

/// The chain of one isolated pod in one direction: its denies, then the union of its isolating
/// policies' allows, then [`Otherwise`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodChain {
    /// `namespace/name`.
    pub pod: String,
    pub ip: IpAddr,
    /// The nft chain name, e.g. `egress_x_a`.
    pub name: String,
    /// Matched first: a packet one of them matches is dropped, whatever admits it (Cilium's
    /// `ingressDeny`/`egressDeny`; always empty for NetworkPolicy semantics).
    pub denies: Vec<Allow>,
    /// In policy order (policies sorted by namespace/name); exact duplicates removed.
    pub allows: Vec<Allow>,
    /// What happens to a packet no rule matched: dropped (NetworkPolicy isolation, Cilium's
    /// default deny), or accepted (Cilium, when every selecting rule turns default deny off).
    pub otherwise: Otherwise,
}

/// The last rule of a pod chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Otherwise {
    Drop,
    Accept,
}

/// One accepting rule: the peer address (destination for egress, source for ingress) and L4.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Allow {
    pub peer: Peer,
    pub l4: L4,
    /// Where it comes from: `ns/policy ingress[0].from[1].ports[0]`.
    pub origin: String,
}

/// The other end of a connection, as addresses.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Peer {
    /// Any address (`from`/`to` absent or empty).
    Any,
    /// Pod addresses, sorted and distinct, never empty.
    Pods(Vec<IpAddr>),
    /// An ipBlock: `cidr` minus `except` (aggregated, same family as `cidr`).
    Block { cidr: IpNet, except: Vec<IpNet> },
    /// The node's own address (Cilium's `host` entity).
    Node(IpAddr),
}

/// Which transport traffic an allow admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum L4 {
    /// Any protocol and port (`ports` absent or empty).
    Any,
    /// Every port of one protocol (a port entry without `port`).
    Protocol(Protocol),
    /// `first..=last` of one protocol.
    Ports {
        protocol: Protocol,
        first: u16,
        last: u16,
    },
}

impl Peer {
    /// Whether `ip` is this peer, as the rendered nft match decides it.
    pub fn matches(&self, ip: IpAddr) -> bool {
        match self {
            Peer::Any => true,
            Peer::Pods(ips) => ips.contains(&ip),
            Peer::Block { cidr, except } => {
                cidr.contains(&ip) && !except.iter().any(|e| e.contains(&ip))
            }
            Peer::Node(node) => *node == ip,
        }
    }
}

impl L4 {
    /// Whether a packet of `protocol` to `port` is admitted, as the rendered nft match decides it.
    pub fn matches(&self, protocol: Protocol, port: u16) -> bool {
        match *self {
            L4::Any => true,
            L4::Protocol(p) => p == protocol,
            L4::Ports {
                protocol: p,
                first,
                last,
            } => p == protocol && first <= port && port <= last,
        }
    }
}
