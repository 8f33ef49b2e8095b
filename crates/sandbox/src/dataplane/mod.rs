//! Dataplanes behind the API emulator: the trait, and its implementations (`netns`: real network
//! namespaces and nftables; `fake`: in-process, for API tests without root).

use crate::state::ClusterState;
use netassay_core::model::{Labels, ServedPort};
use std::net::IpAddr;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DataplaneError {
    #[error("pod {namespace}/{name} not found in the dataplane")]
    NoSuchPod { namespace: String, name: String },
    #[error("{what}: {detail}")]
    Command { what: String, detail: String },
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
    fn node(&self) -> NodeInfo;
    /// Removes everything this dataplane created. Idempotent.
    fn shutdown(&self);
}

pub mod fake;
pub mod netns;
