//! NetworkPolicies + pods + services -> one nftables ruleset. Pure; the fault profiles are deliberate deviations here.
//!
//! Two stages: [`build`] resolves a [`ClusterState`] into a small rule model ([`Ruleset`]: every
//! selector, named port and Service endpoint already resolved to addresses and numbers), and
//! [`Ruleset::render`] prints that model as one `nft -f -` batch. Tests walk the model to check
//! it against the oracle; the text is a direct transcription of it.
//!
//! Shape of the batch (one table, replaced atomically):
//! - `nat_prerouting`: ClusterIP:port/proto -> endpoint pod:targetPort (`numgen random` over
//!   several endpoints, like kube-proxy's nftables mode); likewise the node's address:nodePort
//!   of NodePort and LoadBalancer Services, and a LoadBalancer's ingress address:port. Sources
//!   are never rewritten, so a connection from outside the cluster meets the endpoint's ingress
//!   policies with its own address (as with `externalTrafficPolicy: Local`);
//! - `nat_postrouting`: hairpin (a pod reaching itself through one of its Service's addresses)
//!   is SNATed to that address so the reply comes back through the node instead of over the
//!   pod's loopback;
//! - `services`: packets still addressed to a ClusterIP after DNAT (no endpoints, unknown port)
//!   are rejected, as kube-proxy does, instead of being routed out of the node;
//! - `forward`: conntrack shortcuts, then `ip saddr vmap` into the source pod's egress chain and
//!   `ip daddr vmap` into the destination pod's ingress chain. A pod chain `return`s on the first
//!   rule that admits the packet and `drop`s otherwise, so both sides must admit it.
//!
//! The filter runs after DNAT, so Service traffic is judged on the endpoint pod and target port,
//! as Kubernetes requires. Traffic from or to addresses that are not pods only meets ipBlocks.
//!
//! When the node's CNI plays Cilium ([`build_with`] with a [`CiliumState`]), the pod chains
//! come from [`cilium`] instead: Cilium's semantics for NetworkPolicies, CiliumNetworkPolicies
//! and CiliumClusterwideNetworkPolicies together, as the core's `CiliumOracle` defines them. A
//! pod chain then starts with its deny rules (`drop`) and ends with `return` where no selecting
//! rule asks for default deny.

mod cilium;
mod model;
mod render;
mod resolve;

pub use model::{
    Allow, Dnat, DnsRule, Endpoint, Exposure, Filter, Hairpin, Otherwise, Peer, PodChain, Ruleset,
    L4,
};
pub use resolve::build;

use crate::fault::FaultSet;
use crate::state::{CiliumState, ClusterState};

/// The nft script for `state` under `faults`: text for `nft -f -`, replacing `table inet <table>`
/// atomically. `table` must be an nft identifier (letters, digits, `_`).
pub fn compile(state: &ClusterState, faults: &FaultSet, table: &str) -> String {
    build(state, faults, table).render()
}

/// [`build`], with Cilium's semantics for every policy and the Cilium policies of `cilium` when
/// given (the node's CNI plays Cilium: see [`cilium`]).
pub fn build_with(
    state: &ClusterState,
    cilium: Option<&CiliumState>,
    faults: &FaultSet,
    table: &str,
) -> Ruleset {
    match cilium {
        Some(c) => resolve::build_by(state, faults, table, |b| cilium::chains(b, state, c)),
        None => build(state, faults, table),
    }
}

#[cfg(test)]
mod tests;
