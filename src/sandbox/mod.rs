//! The built-in cluster: a Kubernetes-API emulator over a netns + nftables reference dataplane,
//! with fault profiles that model real CNI bugs (DESIGN §7).
//!
//! Shape: `api` serves the Kubernetes API subset netassay uses and keeps the objects; after every
//! change it hands a [`ClusterState`] snapshot to a [`Dataplane`]. `compile` turns a snapshot into
//! one nftables ruleset (a pure function, where the fault profiles live); `dataplane` makes pods
//! real (network namespaces, veths, processes) and applies rulesets atomically.

pub mod api;
pub mod compile;
pub mod dataplane;
pub mod fault;
pub mod instance;

pub use fault::{Fault, FaultMemory, FaultSet};
pub use instance::{Sandbox, SandboxError};

use crate::model::{Labels, ServedPort};
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

/// One port of a ClusterIP Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortState {
    pub port: u16,
    pub protocol: crate::model::Protocol,
    /// A number, or a container port name resolved on each endpoint pod.
    pub target_port: TargetPort,
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceState {
    pub name: String,
    /// Including `kubernetes.io/metadata.name`.
    pub labels: Labels,
}

/// Everything enforcement depends on, at one instant. Policies have real namespace names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterState {
    pub namespaces: Vec<NamespaceState>,
    pub pods: Vec<PodState>,
    pub services: Vec<ServiceState>,
    pub policies: Vec<k8s_openapi::api::networking::v1::NetworkPolicy>,
}
