//! NetworkPolicy v1: validation as the API server does it, and the oracle with its explanations.

pub mod validate;
