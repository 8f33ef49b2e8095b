//! Dataplanes behind the API emulator: the trait, and its implementations (`netns`: real network
//! namespaces and nftables; `fake`: in-process, for API tests without root).

use crate::state::{CiliumState, ClusterState, NamespaceState, PodState};
use netassay_core::model::{Labels, ServedPort, NAMESPACE_NAME_LABEL};
use std::net::IpAddr;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DataplaneError {
    #[error("pod {namespace}/{name} not found in the dataplane")]
    NoSuchPod { namespace: String, name: String },
    #[error("{what}: {detail}")]
    Command { what: String, detail: String },
    /// The pod's sandbox got no network: its CNI ADD failed (the kubelet's
    /// `FailedCreatePodSandBox`). A kubelet retries those; the pod left nothing behind.
    #[error("attaching pod {namespace}/{name} to the CNI network: {detail}")]
    PodNetwork {
        namespace: String,
        name: String,
        detail: String,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What the dataplane needs to start a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSpec {
    pub namespace: String,
    pub name: String,
    /// The pod object's UID (`K8S_POD_UID` for a CNI); empty where the caller has none.
    pub uid: String,
    pub labels: Labels,
    /// The first container's command followed by its args. A leading `netassay` means the
    /// running executable; the image is ignored.
    pub command: Vec<String>,
    /// Container ports (named ones matter for policies and Service targetPorts).
    pub ports: Vec<ServedPort>,
}

/// The state of a cluster that has exactly these pods, running at these addresses, each
/// namespace labelled with its name as the API server does, and nothing else (no policy, no
/// Service): what a test or a bench syncs before it adds policies.
pub fn state_of_pods(pods: &[(&PodSpec, IpAddr)]) -> ClusterState {
    let mut namespaces: Vec<String> = pods.iter().map(|(p, _)| p.namespace.clone()).collect();
    namespaces.sort();
    namespaces.dedup();
    ClusterState {
        namespaces: namespaces
            .into_iter()
            .map(|name| NamespaceState {
                labels: Labels::from([(NAMESPACE_NAME_LABEL.to_string(), name.clone())]),
                name,
            })
            .collect(),
        pods: pods
            .iter()
            .map(|(spec, ip)| PodState {
                namespace: spec.namespace.clone(),
                name: spec.name.clone(),
                labels: spec.labels.clone(),
                ip: Some(*ip),
                ports: spec.ports.clone(),
            })
            .collect(),
        ..ClusterState::default()
    }
}

/// The single node of the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub address: IpAddr,
}

/// Makes pods real and enforces policies. Methods may block (call them from `spawn_blocking`).
pub trait Dataplane: Send + Sync + 'static {
    /// Creates the pod's network and starts its command; returns the pod IP.
    fn create_pod(&self, pod: &PodSpec) -> Result<IpAddr, DataplaneError>;
    /// Stops the pod's processes and removes its network. Unknown pods are not an error.
    fn delete_pod(&self, namespace: &str, name: &str) -> Result<(), DataplaneError>;
    /// True once the pod's process runs and its container ports accept connections.
    fn pod_ready(&self, namespace: &str, name: &str) -> bool;
    /// What the pod's command wrote to stdout and stderr so far (`kubectl logs`); `None` when
    /// the pod is unknown or its output is not kept.
    fn pod_log(&self, _namespace: &str, _name: &str) -> Option<String> {
        None
    }
    /// Kills the pod's process and starts it again in the same network namespace (same IP), as a
    /// kubelet restarts a container after an OOM kill (the `pod-restarts` fault).
    fn restart_pod(&self, namespace: &str, name: &str) -> Result<(), DataplaneError> {
        Err(DataplaneError::Command {
            what: format!("restarting pod {namespace}/{name}"),
            detail: "this dataplane cannot restart pods".into(),
        })
    }
    /// Starts `command` inside the pod's network namespace with stdin, stdout and stderr piped.
    /// A leading `netassay` means the running executable.
    fn exec(
        &self,
        namespace: &str,
        name: &str,
        command: &[String],
    ) -> Result<tokio::process::Child, DataplaneError>;
    /// Enforces a new cluster state (policies, labels, pods, services). Called after every change.
    fn sync(&self, state: &ClusterState) -> Result<(), DataplaneError>;
    /// Whether the node's CNI plays Cilium: the emulator then serves `cilium.io/v2` (as the
    /// Cilium agent registers its CRDs) and hands every change to [`Dataplane::sync_cilium`].
    /// By default it does not.
    fn cilium(&self) -> bool {
        false
    }
    /// [`Dataplane::sync`] with the cluster's Cilium policies, every policy under Cilium's
    /// semantics. Called instead of `sync` only when [`Dataplane::cilium`] says so; a dataplane
    /// that never plays Cilium need not implement it.
    fn sync_cilium(
        &self,
        state: &ClusterState,
        cilium: &CiliumState,
    ) -> Result<(), DataplaneError> {
        let _ = cilium;
        self.sync(state)
    }
    fn node(&self) -> NodeInfo;
    /// Removes everything this dataplane created. Idempotent.
    fn shutdown(&self);
}

pub mod fake;
pub mod netns;
