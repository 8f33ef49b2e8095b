//! One running sandbox: the netns dataplane plus the API emulator in front of it, its add-ons
//! (cluster DNS always; the gateway with the K8TRE preset), and a kubeconfig that points kube-rs
//! (and kubectl) at it. Stopping it removes everything it created.

use super::api::{self, ApiOptions, ApiServer};
use super::dataplane::netns::{NetnsConfig, NetnsDataplane, NODE_ADDRESS};
use super::dataplane::{Dataplane, DataplaneError};
use super::preset::{Preset, PresetFault, PresetProfile, GATEWAY_PORT};
use super::{system, FaultSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// How long the add-on pods (cluster DNS, the gateway) may take to become ready.
const ADD_ON_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum SandboxError {
    #[error("the sandbox needs root on Linux with `ip` and `nft` (apt-get install iproute2 nftables): {0}")]
    Dataplane(#[from] DataplaneError),
    #[error("starting the sandbox API server: {0}")]
    Api(#[from] std::io::Error),
    #[error("sandbox fault {fault} needs --sandbox-preset {preset}")]
    PresetFaultWithoutPreset { fault: PresetFault, preset: Preset },
    #[error("the sandbox's {what} did not come up: {detail}")]
    AddOn { what: String, detail: String },
}

/// How to start a sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxOptions {
    /// CNI faults and preset faults; empty is the compliant profile.
    pub faults: FaultSet,
    /// The preset (`--sandbox-preset`), if any.
    pub preset: Option<Preset>,
}

impl SandboxOptions {
    /// Every preset fault needs its preset.
    pub fn validate(&self) -> Result<(), SandboxError> {
        match self
            .faults
            .preset_faults()
            .iter()
            .find(|f| self.preset != Some(f.preset()))
        {
            Some(fault) => Err(SandboxError::PresetFaultWithoutPreset {
                fault: *fault,
                preset: fault.preset(),
            }),
            None => Ok(()),
        }
    }
}

pub struct Sandbox {
    api: Option<ApiServer>,
    dataplane: Arc<NetnsDataplane>,
    kubeconfig: PathBuf,
    preset: Option<Preset>,
}

impl Sandbox {
    /// [`Sandbox::start_with`] without a preset.
    pub async fn start(faults: FaultSet) -> Result<Sandbox, SandboxError> {
        Sandbox::start_with(SandboxOptions {
            faults,
            preset: None,
        })
        .await
    }

    /// Builds the dataplane (sweeping what dead sandboxes left), starts the API server on
    /// 127.0.0.1, brings up cluster DNS (and the preset's gateway) and waits until they serve,
    /// then writes a kubeconfig next to the dataplane's state. On failure everything started so
    /// far is removed.
    pub async fn start_with(options: SandboxOptions) -> Result<Sandbox, SandboxError> {
        let executable = std::env::current_exe()?;
        Sandbox::start_with_executable(options, executable).await
    }

    /// [`Sandbox::start_with`], with a leading `netassay` in pod commands meaning `executable`
    /// rather than the running one (tests point it at the built binary).
    pub async fn start_with_executable(
        options: SandboxOptions,
        executable: PathBuf,
    ) -> Result<Sandbox, SandboxError> {
        options.validate()?;
        let mut config = NetnsConfig::new(options.faults.clone())?;
        config.executable = executable;
        let dataplane = tokio::task::spawn_blocking(move || NetnsDataplane::new(config))
            .await
            .map_err(std::io::Error::other)??;
        let dataplane = Arc::new(dataplane);
        let dyn_plane: Arc<dyn Dataplane> = dataplane.clone();
        let preset = options
            .preset
            .map(|p| PresetProfile::new(p, &options.faults));
        // The add-ons are created with the API server, so their pods start while it syncs.
        let mut objects = system::dns_objects(&dataplane.zone_file());
        if let Some(preset) = &preset {
            objects.extend(preset.bootstrap_objects(&dataplane.routes_file()));
        }
        let api_options = ApiOptions {
            preset,
            bootstrap: objects,
            ..ApiOptions::default()
        };
        let api = match api::start_with(dyn_plane, api_options).await {
            Ok(a) => a,
            Err(e) => {
                let dp = dataplane.clone();
                let _ = tokio::task::spawn_blocking(move || dp.shutdown()).await;
                return Err(e.into());
            }
        };
        let mut sandbox = Sandbox {
            api: Some(api),
            dataplane,
            kubeconfig: PathBuf::new(),
            preset: options.preset,
        };
        // From here on, stopping `sandbox` cleans up whatever fails.
        if let Err(e) = sandbox.wait_for_add_ons().await {
            sandbox.stop().await;
            return Err(e);
        }
        let port = sandbox.api.as_ref().map_or(0, |a| a.addr().port());
        let dir =
            std::env::temp_dir().join(format!("netassay-sandbox-{}-{port}", std::process::id()));
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            let kubeconfig = dir.join("kubeconfig");
            if let Some(api) = &sandbox.api {
                api.write_kubeconfig(&kubeconfig)?;
            }
            Ok(kubeconfig)
        });
        match written {
            Ok(kubeconfig) => {
                sandbox.kubeconfig = kubeconfig;
                Ok(sandbox)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                sandbox.stop().await;
                Err(e.into())
            }
        }
    }

    /// Waits until all the add-on pods serve, side by side, and until the dataplane routes to
    /// them (their Services' DNAT needs their addresses).
    async fn wait_for_add_ons(&self) -> Result<(), SandboxError> {
        let Some(api) = &self.api else {
            return Ok(());
        };
        let waits = api
            .bootstrapped_pods()
            .iter()
            .map(|(namespace, name)| self.wait_until_serving(namespace, name));
        futures::future::try_join_all(waits).await?;
        api.sync().await;
        Ok(())
    }

    /// Polls the dataplane until the pod's ports listen; fails at once when its process exits
    /// or the dataplane could not start it.
    async fn wait_until_serving(&self, namespace: &str, name: &str) -> Result<(), SandboxError> {
        let what = format!("pod {namespace}/{name}");
        let fail = |detail: String| SandboxError::AddOn {
            what: what.clone(),
            detail,
        };
        let deadline = tokio::time::Instant::now() + ADD_ON_TIMEOUT;
        let api = self.api.as_ref().ok_or_else(|| fail("stopped".into()))?;
        loop {
            if let Err(message) = api.pod_ready(namespace, name) {
                return Err(fail(message));
            }
            let dp = Arc::clone(&self.dataplane);
            let (ns, n) = (namespace.to_string(), name.to_string());
            let (ready, exited, log) = tokio::task::spawn_blocking(move || {
                let ready = dp.pod_ready(&ns, &n);
                let exited = dp.pod_exited(&ns, &n);
                let log = exited.as_ref().and_then(|_| dp.pod_log(&ns, &n));
                (ready, exited, log)
            })
            .await
            .map_err(|e| fail(e.to_string()))?;
            if ready {
                return Ok(());
            }
            if let Some(status) = exited {
                let log = log.unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(fail(format!(
                    "its process exited ({status}); its output: {}",
                    tail.join(" | ")
                )));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(fail(format!(
                    "its ports did not listen within {ADD_ON_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
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

    /// The preset it runs with.
    pub fn preset(&self) -> Option<Preset> {
        self.preset
    }

    /// The argv prefix that runs a command on the outside vantage (a host outside the cluster
    /// that reaches the node's address and routes the pod and ClusterIP ranges via the node):
    /// `["ip", "netns", "exec", "naXXXX-out"]`. Needs root, as the sandbox does.
    pub fn outside_command(&self) -> Vec<String> {
        self.dataplane.outside_command()
    }

    /// Where the preset's gateway is exposed (`203.0.113.1:80`); `None` without a preset.
    pub fn gateway_address(&self) -> Option<SocketAddr> {
        self.preset
            .map(|_| SocketAddr::new(IpAddr::V4(NODE_ADDRESS), GATEWAY_PORT))
    }

    /// The dataplane, for diagnostics (rulesets, pod logs, namespaces).
    pub fn dataplane(&self) -> &NetnsDataplane {
        &self.dataplane
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
        if let Some(dir) = self
            .kubeconfig
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_faults_need_their_preset() {
        let faults: FaultSet = "k8tre-nodeport,tcp-only".parse().unwrap();
        let without = SandboxOptions {
            faults: faults.clone(),
            preset: None,
        };
        let err = without.validate().expect_err("no preset");
        assert_eq!(
            err.to_string(),
            "sandbox fault k8tre-nodeport needs --sandbox-preset k8tre"
        );
        let with = SandboxOptions {
            faults,
            preset: Some(Preset::K8tre),
        };
        assert!(with.validate().is_ok());
        assert!(SandboxOptions::default().validate().is_ok());
    }
}
