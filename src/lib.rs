//! netassay: active NetworkPolicy conformance testing for Kubernetes — the product crate.
//!
//! Its one job: run scenarios against a cluster and report what held. `scenario` loads the YAML
//! corpus and the built-in profiles; `cluster` talks to Kubernetes through kube-rs (fixtures,
//! policies, exec, retries, cleanup, the run lock); `runner` executes steps (convergence,
//! confirmation, time-to-enforce) and emits results; `report` turns results into JUnit, JSON,
//! HTML, truth tables and the conformance report; `suite` schedules a run's scenarios across
//! fixtures; `cli` is the command-line edge.
//!
//! What it may use: every crate of the workspace — `netassay-core` (model, policy, probe),
//! `netassay-agent` (what runs in probe pods, behind `netassay agent`) and `netassay-sandbox`
//! (the built-in cluster, behind `--sandbox`). None of them may use this crate.

pub mod cli;
pub mod cluster;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod suite;
