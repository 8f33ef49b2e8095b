//! Everything that talks to Kubernetes, through kube-rs: connecting, fixtures (namespaces, probe
//! pods, services), policies and labels, batched exec probing, the run lock, environment facts and
//! cleanup. Decisions live elsewhere; this module only does what it is told, and reports.

pub mod agent_run;
pub mod cleanup;
pub mod facts;
pub mod fixture;
pub mod inventory;
pub mod lock;
pub mod manifest;
pub mod retry;

use std::path::Path;
use thiserror::Error;

pub use fixture::Fixture;
pub use retry::{client_with_retries, ApiTally};

#[derive(Debug, Error)]
pub enum ClusterError {
    #[error("cannot load kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("{0}")]
    NotReady(String),
    #[error("another run holds the lock: {0}")]
    Locked(String),
    #[error("{what}: {detail}")]
    Exec { what: String, detail: String },
    #[error("policy {policy}: {detail}")]
    Policy { policy: String, detail: String },
}

impl ClusterError {
    pub fn api(what: impl Into<String>, source: kube::Error) -> Self {
        ClusterError::Api {
            what: what.into(),
            source: Box::new(source),
        }
    }
}

/// The HTTP status code of an API error, if it is one.
pub fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// The API server's refusal of a pod in a namespace whose `default` ServiceAccount
/// kube-controller-manager has not created yet (the ServiceAccount admission plugin answers 403
/// "error looking up service account NS/default"). Real clusters do this for a moment after a
/// namespace is created; retrying is what kubectl users and the e2e framework do.
pub fn is_service_account_race(status: &kube::core::Status) -> bool {
    status.code == 403 && status.message.contains("error looking up service account")
}

/// How long pod creation waits out [`is_service_account_race`].
pub const SERVICE_ACCOUNT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Connects with a kubeconfig file (or the usual discovery: $KUBECONFIG, ~/.kube/config,
/// in-cluster) and an optional context. Requests are retried (see [`retry`]).
pub async fn connect(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<kube::Client, ClusterError> {
    let config = load_config(kubeconfig, context).await?;
    client_with_retries(config, &ApiTally::default())
        .map_err(|e| ClusterError::api("building the client", e))
}

/// The client configuration from a kubeconfig file (or the usual discovery) and a context; each
/// fixture builds a client of its own from it, to count its own retries.
pub async fn load_config(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<kube::Config, ClusterError> {
    // kube is built on ring; a process may have no default crypto provider yet.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| ClusterError::Kubeconfig(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| ClusterError::Kubeconfig(e.to_string()))?
        }
        None if context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| ClusterError::Kubeconfig(e.to_string()))?,
        None => kube::Config::infer()
            .await
            .map_err(|e| ClusterError::Kubeconfig(e.to_string()))?,
    };
    Ok(config)
}

/// A short random run id: lowercase hex, valid in names and labels.
pub fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    format!("{:06x}", h.finish() & 0xff_ffff)
}
