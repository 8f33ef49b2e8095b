//! What enforcement depends on, at one instant: the snapshot the API (emulator or node agent)
//! hands the dataplane after every change. Real namespace names throughout.

use netassay_core::model::{Labels, Protocol, ServedPort};
use std::net::IpAddr;

/// A pod as the dataplane needs it (real namespace names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    /// `None` until the dataplane has given it an address.
    pub ip: Option<IpAddr>,
    /// Container ports (with names, for named-port policies and named targetPorts).
    pub ports: Vec<ServedPort>,
}

impl PodState {
    /// The ports of the containers' port entries called `name` for `protocol`, in spec order
    /// (names may repeat across containers).
    pub fn named_ports<'a>(
        &'a self,
        name: &'a str,
        protocol: Protocol,
    ) -> impl Iterator<Item = u16> + 'a {
        self.ports
            .iter()
            .filter(move |c| c.protocol == protocol && c.name.as_deref() == Some(name))
            .map(|c| c.port)
    }
}

/// One port of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortState {
    pub port: u16,
    pub protocol: Protocol,
    /// A number, or a container port name resolved on each endpoint pod.
    pub target_port: TargetPort,
    /// NodePort and LoadBalancer Services: the port served at the node's address.
    pub node_port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceState {
    pub namespace: String,
    pub name: String,
    pub cluster_ip: IpAddr,
    /// Pods of the same namespace whose labels contain all of these.
    pub selector: Labels,
    pub ports: Vec<ServicePortState>,
    /// LoadBalancer Services: the addresses in `status.loadBalancer.ingress`, where each port is
    /// served too (the sandbox's load balancer is the node itself, as k3s' servicelb).
    pub load_balancer_ips: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceState {
    pub name: String,
    /// Including `kubernetes.io/metadata.name`.
    pub labels: Labels,
}

/// One line of the gateway's routes file: requests for `host` go to `backend`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GatewayRoute {
    /// Lower case, without a trailing dot.
    pub host: String,
    /// A Service's ClusterIP and port.
    pub backend: std::net::SocketAddr,
    /// Where it comes from: `HTTPRoute ns/name` or `Ingress ns/name`.
    pub origin: String,
}

/// Everything enforcement depends on, at one instant. Policies have real namespace names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterState {
    pub namespaces: Vec<NamespaceState>,
    pub pods: Vec<PodState>,
    pub services: Vec<ServiceState>,
    pub policies: Vec<k8s_openapi::api::networking::v1::NetworkPolicy>,
    /// Where NodePorts are served; `None` serves none.
    pub node_address: Option<IpAddr>,
    /// What the sandbox gateway routes, from HTTPRoutes and Ingresses (sorted, distinct).
    pub gateway_routes: Vec<GatewayRoute>,
}

/// The Cilium side of enforcement: what the node's CNI enforces besides [`ClusterState`] when it
/// plays Cilium (the emulator then serves `cilium.io/v2`, see
/// [`Dataplane::cilium`](crate::dataplane::Dataplane::cilium)). Its presence switches the
/// compiler to Cilium's semantics for every policy, NetworkPolicies included, as a cluster
/// running Cilium enforces them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CiliumState {
    /// CiliumNetworkPolicies and CiliumClusterwideNetworkPolicies, as stored.
    pub policies: Vec<netassay_core::policy::cilium::CiliumPolicy>,
}
