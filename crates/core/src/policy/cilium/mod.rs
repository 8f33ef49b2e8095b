//! CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy (`cilium.io/v2`, Cilium v1.20.2):
//! the objects as written ([`model`]), their validation as the CRD schema and the agent's
//! `Sanitize` refuse them ([`validate`]), and the oracle that judges traffic under Cilium's
//! semantics for v1 NetworkPolicies and Cilium policies together ([`oracle`]).
//!
//! The rules each part follows are cited (path:line in the Cilium v1.20.2 source) where they are
//! implemented; `tests.rs` checks them table by table.

pub mod fqdn;
pub mod identity;
pub mod model;
pub mod oracle;
pub mod validate;
pub mod view;

pub use model::{CiliumKind, CiliumPolicy, CiliumPolicyRef, CILIUM_API_VERSION};
pub use oracle::{
    CiliumCell, CiliumExplanation, CiliumOracle, CiliumOracleError, CompiledPort, CompiledPortRule,
    Endpoint, LookupCell, NameFact, NameFacts, PortMatch, RuleOrigin, RulePeerSet, RulePeers,
    RuleView, SelectedRules, SideDecision,
};
pub use validate::validate_cilium_policy;

#[cfg(test)]
mod tests;
