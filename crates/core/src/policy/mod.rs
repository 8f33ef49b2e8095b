//! NetworkPolicy v1: validation as the API server does it, and the oracle with its explanations.

pub mod oracle;
pub mod selector;
pub mod validate;

pub use oracle::{CellVerdict, Direction, Explanation, Oracle, OracleError};
