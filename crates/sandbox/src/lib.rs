//! netassay-sandbox: the built-in cluster. A Kubernetes-API emulator over a netns + nftables
//! reference dataplane, with fault profiles that model real CNI bugs (DESIGN §7), and the
//! launcher of the reference cluster (real upstream control-plane binaries, DESIGN §7a) whose
//! node is this crate's node agent.
//!
//! What it may use: `netassay-core` (the model and the NetworkPolicy semantics it compiles),
//! axum and kube for the API it serves and the one it talks to, and the host's `ip` and `nft`.
//! It knows nothing of scenarios, the runner, reports or the CLI: those drive it as a cluster
//! like any other, through its kubeconfig. Pods run the netassay binary (`agent serve`); this
//! crate starts it as a process and never links the agent.
//!
//! Shape: `api` serves the Kubernetes API subset netassay uses and keeps the objects; after every
//! change it hands a [`ClusterState`] snapshot to a [`Dataplane`](dataplane::Dataplane).
//! `compile` turns a snapshot into one nftables ruleset (a pure function, where the fault
//! profiles live); `dataplane` makes pods real (network namespaces, veths, processes), applies
//! rulesets atomically and writes the files the cluster add-ons read (`system`: cluster DNS
//! always, the gateway with the K8TRE `preset`).

pub mod addresses;
pub mod api;
pub mod cgroup;
pub mod cilium_api;
pub mod cni;
pub mod compile;
pub mod control_fault;
mod custom_object;
pub mod dataplane;
pub mod fault;
pub mod gateway_api;
pub mod instance;
pub mod kubelet_node;
mod netns_socket;
pub mod node;
pub mod object;
pub mod prerequisites;
pub mod preset;
pub mod processes;
pub mod reference;
pub mod state;
pub mod system;

pub use control_fault::{ControlPlaneFault, ControlPlaneFaults};
pub use fault::{Fault, FaultMemory, FaultSet};
pub use instance::{ControlPlane, Sandbox, SandboxError, SandboxOptions};
pub use preset::{Preset, PresetFault, PresetScale};
pub use state::ClusterState;
