//! NetworkPolicy v1: validation as the API server does it, and the oracle with its explanations;
//! CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy: validation and an oracle that follows
//! Cilium's semantics ([`cilium`]).

pub mod cilium;
pub mod oracle;
pub mod selector;
pub mod validate;

pub use oracle::{CellVerdict, Direction, Explanation, Oracle, OracleError};
