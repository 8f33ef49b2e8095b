//! One running sandbox: the netns dataplane plus the API emulator in front of it, and a kubeconfig
//! that points kube-rs (and kubectl) at it. Stopping it removes everything it created.

use super::api::{self, ApiServer};
use super::dataplane::netns::{NetnsConfig, NetnsDataplane};
use super::dataplane::{Dataplane, DataplaneError};
use super::FaultSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SandboxError {
    #[error("the sandbox needs root on Linux with `ip` and `nft` (apt-get install iproute2 nftables): {0}")]
    Dataplane(#[from] DataplaneError),
    #[error("starting the sandbox API server: {0}")]
    Api(#[from] std::io::Error),
}

pub struct Sandbox {
    api: Option<ApiServer>,
    dataplane: Arc<NetnsDataplane>,
    kubeconfig: PathBuf,
}

impl Sandbox {
    /// Builds the dataplane (sweeping what dead sandboxes left), starts the API server on
    /// 127.0.0.1, and writes a kubeconfig next to the dataplane's state.
    pub async fn start(faults: FaultSet) -> Result<Sandbox, SandboxError> {
        let config = NetnsConfig::new(faults)?;
        let dataplane = tokio::task::spawn_blocking(move || NetnsDataplane::new(config))
            .await
            .map_err(std::io::Error::other)??;
        let dataplane = Arc::new(dataplane);
        let dyn_plane: Arc<dyn Dataplane> = dataplane.clone();
        let api = match api::start(dyn_plane).await {
            Ok(a) => a,
            Err(e) => {
                let dp = dataplane.clone();
                let _ = tokio::task::spawn_blocking(move || dp.shutdown()).await;
                return Err(e.into());
            }
        };
        let dir = std::env::temp_dir().join(format!(
            "netassay-sandbox-{}-{}",
            std::process::id(),
            api.addr().port()
        ));
        std::fs::create_dir_all(&dir)?;
        let kubeconfig = dir.join("kubeconfig");
        api.write_kubeconfig(&kubeconfig)?;
        Ok(Sandbox {
            api: Some(api),
            dataplane,
            kubeconfig,
        })
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The per-instance prefix of every netns, link and nft table of this sandbox.
    pub fn instance(&self) -> &str {
        self.dataplane.prefix()
    }

    pub fn url(&self) -> String {
        self.api.as_ref().map(|a| a.url()).unwrap_or_default()
    }

    /// Dataplane problems seen so far (failed syncs and the like).
    pub fn dataplane_errors(&self) -> Vec<String> {
        self.api
            .as_ref()
            .map(|a| a.dataplane_errors())
            .unwrap_or_default()
    }

    /// Stops serving and removes every netns, link, table, process and file of this sandbox.
    pub async fn stop(mut self) {
        if let Some(api) = self.api.take() {
            api.shutdown().await;
        }
        let dp = self.dataplane.clone();
        let _ = tokio::task::spawn_blocking(move || dp.shutdown()).await;
        if let Some(dir) = self.kubeconfig.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // The dataplane's own Drop removes its network state; the kubeconfig goes here.
        self.dataplane.shutdown();
        if let Some(dir) = self.kubeconfig.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
