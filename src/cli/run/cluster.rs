//! Phase 2: the cluster to run on. The sandbox (started here, and stopped when the run ends or
//! is interrupted) or a kubeconfig; either way a connected, reachable client.

use super::args::RunArgs;
use super::progress::log_line;
use super::unusable::environment_failure;
use crate::cli::sandbox::{CiliumApi, CiliumApiServer};
use crate::cluster::{client_with_retries, load_config, ApiTally, ClusterError};
use crate::scenario::Scenario;
use anyhow::Context;
use netassay_sandbox::{Sandbox, SandboxOptions};
use std::sync::{Arc, Mutex};

/// A reachable cluster, and the sandbox behind it when there is one.
pub(super) struct Cluster {
    /// Shared with the interrupt handler, which stops it on Ctrl-C.
    pub sandbox: Arc<Mutex<Option<Sandbox>>>,
    /// Each fixture builds a client of its own from it, to count its own retries.
    pub config: kube::Config,
    pub client: kube::Client,
}

impl Cluster {
    /// Starts the sandbox when asked, then connects and checks that the API answers. On
    /// failure, whatever was started is stopped and the exit code is returned.
    pub(super) fn start(
        args: &RunArgs,
        rt: &tokio::runtime::Runtime,
        sandbox_options: Option<SandboxOptions>,
        cilium: bool,
        not_cilium: usize,
    ) -> Result<Cluster, u8> {
        let sandbox: Arc<Mutex<Option<Sandbox>>> = Arc::new(Mutex::new(None));
        let kubeconfig = match sandbox_options {
            Some(options) => {
                log_line("starting the sandbox cluster".into());
                match rt.block_on(Sandbox::start_with(options)) {
                    Ok(s) => {
                        let path = s.kubeconfig().to_path_buf();
                        log_line(format!(
                            "sandbox instance {} with its API at {} ({})",
                            s.instance(),
                            s.url(),
                            match s.kubernetes_version() {
                                Some(v) => format!("reference cluster, Kubernetes {v}"),
                                None => "emulator".to_string(),
                            }
                        ));
                        if cilium {
                            match crate::cli::sandbox::play_cilium(&s) {
                                Ok(server) => {
                                    log_line(server.describe().into());
                                    if server == CiliumApiServer::Emulator && not_cilium > 0 {
                                        log_line(format!(
                                            "note: {not_cilium} selected scenario(s) use only NetworkPolicy and are enforced here as Cilium enforces them (an ipBlock matches no pod): judge them on a conformant CNI in a run without Cilium scenarios"
                                        ));
                                    }
                                }
                                Err(e) if args.sandbox_backend.cilium_api == CiliumApi::On => {
                                    rt.block_on(s.stop());
                                    eprintln!("netassay: {e}");
                                    return Err(crate::cli::exit::BAD_INPUT);
                                }
                                Err(e) => log_line(format!(
                                    "the sandbox has no Cilium API ({e}): Cilium scenarios cannot apply their policies"
                                )),
                            }
                        }
                        if let Ok(mut slot) = sandbox.lock() {
                            *slot = Some(s);
                        }
                        Some(path)
                    }
                    Err(e) => return Err(environment_failure(args, &e.to_string())),
                }
            }
            None => args.cluster.kubeconfig.clone(),
        };
        let connected = rt.block_on(async {
            let config =
                load_config(kubeconfig.as_deref(), args.cluster.context.as_deref()).await?;
            let client = client_with_retries(config.clone(), &ApiTally::default())
                .map_err(|e| ClusterError::api("building the client", e))?;
            if let Err(e) = client.apiserver_version().await {
                return Err(ClusterError::NotReady(format!(
                    "the cluster is not reachable: {e}"
                )));
            }
            Ok::<_, ClusterError>((config, client))
        });
        match connected {
            Ok((config, client)) => Ok(Cluster {
                sandbox,
                config,
                client,
            }),
            Err(e) => {
                stop_sandbox(rt, &sandbox);
                Err(environment_failure(args, &e.to_string()))
            }
        }
    }

    /// Stops the sandbox, if there is one and it still runs.
    pub(super) fn stop(&self, rt: &tokio::runtime::Runtime) {
        stop_sandbox(rt, &self.sandbox);
    }

    /// How this run reaches "outside the cluster": the sandbox's outside host, or this machine
    /// when the profile says netassay runs outside the cluster.
    pub(super) fn outside_vantage(
        &self,
        args: &RunArgs,
        scenarios: &[Scenario],
    ) -> anyhow::Result<Option<Vec<String>>> {
        let exe = std::env::current_exe()
            .context("finding the netassay executable for probes from outside the cluster")?
            .display()
            .to_string();
        if args.sandbox {
            let prefix = self
                .sandbox
                .lock()
                .ok()
                .and_then(|s| s.as_ref().map(Sandbox::outside_command));
            return Ok(prefix.map(|mut p| {
                p.push(exe);
                p
            }));
        }
        let local = scenarios
            .iter()
            .filter_map(|s| s.profile.as_ref())
            .any(|p| p.outside == crate::scenario::profile::OutsideVantage::Local);
        // Inside a pod, "this machine" is not outside the cluster.
        if local && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
            log_line(
                "running inside a pod: there is no vantage point outside the cluster, so paths from \
                 outside are reported as not judged (profile config outside.vantage: local needs a run \
                 from outside the cluster)"
                    .into(),
            );
            return Ok(None);
        }
        Ok(local.then(|| vec![exe]))
    }
}

fn stop_sandbox(rt: &tokio::runtime::Runtime, sandbox: &Arc<Mutex<Option<Sandbox>>>) {
    let s = sandbox.lock().ok().and_then(|mut s| s.take());
    if let Some(s) = s {
        rt.block_on(s.stop());
    }
}
