//! Connecting: a kubeconfig (or the usual discovery) into a retrying client, and the run id.

use super::error::ClusterError;
use super::retry::{client_with_retries, ApiTally};
use std::path::Path;

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
