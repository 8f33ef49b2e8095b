//! netassay's core: the plain data and pure functions every other part builds on.
//!
//! - [`model`]: the topology (namespaces, pods, labels, addresses, served ports, protocols);
//! - [`policy`]: NetworkPolicy v1 as the API server validates it, and the oracle that says what
//!   a set of policies allows, with its reasons as data;
//! - [`probe`]: probe specifications, outcomes and the harness ↔ agent wire format;
//! - [`objects`]: the marks netassay leaves on what it creates, which the sandbox reads too.
//!
//! What it may use: serde, k8s-openapi's types, ipnet, thiserror. No I/O: no tokio, kube, axum,
//! reqwest, hyper or filesystem access, so the oracle runs anywhere (fuzz targets, `plan`,
//! `explain`) and every other crate can depend on it.

pub mod model;
pub mod objects;
pub mod policy;
pub mod probe;
