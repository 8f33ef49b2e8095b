//! Everything that talks to Kubernetes, through kube-rs: connecting, fixtures (namespaces, probe
//! pods, services), policies and labels, batched exec probing, the run lock, environment facts and
//! cleanup. Decisions live elsewhere; this module only does what it is told, and reports.

pub mod agent_run;
pub mod cilium;
pub mod cleanup;
mod connect;
mod error;
pub mod facts;
pub mod fixture;
pub mod inventory;
pub mod lock;
pub mod manifest;
pub mod retry;

pub use connect::{connect, load_config, new_run_id};
pub use error::{is_service_account_race, status_code, ClusterError, SERVICE_ACCOUNT_WAIT};
pub use fixture::Fixture;
pub use retry::{client_with_retries, ApiTally};
