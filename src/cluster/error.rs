//! What can go wrong talking to a cluster, and the API answers worth recognising.

use thiserror::Error;

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
    netassay_core::objects::is_service_account_race(status.code, &status.message)
}

/// How long pod creation waits out [`is_service_account_race`].
pub const SERVICE_ACCOUNT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
