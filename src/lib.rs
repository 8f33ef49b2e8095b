//! netassay: active NetworkPolicy conformance testing for Kubernetes.
//!
//! The core (`model`, `policy`, `probe`) is plain data and pure functions; `scenario` loads the
//! YAML corpus; `agent` runs inside probe pods; `cli` is the command-line edge.

pub mod agent;
pub mod cli;
pub mod cluster;
pub mod model;
pub mod policy;
pub mod probe;
pub mod report;
pub mod runner;
pub mod sandbox;
pub mod scenario;
