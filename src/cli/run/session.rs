//! Phase 3: the run's hold on the cluster. The run lock (renewed while the run lasts), the
//! environment facts the reports carry, and the interrupt handler that deletes everything of
//! the run and stops the sandbox on Ctrl-C or SIGTERM.

use super::args::RunArgs;
use super::cluster::Cluster;
use super::progress::log_line;
use super::unusable::environment_failure;
use crate::cli::exit;
use crate::cluster::cleanup::{cleanup as cleanup_run, Selection};
use crate::cluster::facts::{self, Environment};
use crate::cluster::lock::RunLock;
use std::sync::Arc;
use std::time::Duration;

pub(super) struct Session {
    lock: Arc<RunLock>,
    renewer: tokio::task::JoinHandle<()>,
    environment: Environment,
}

impl Session {
    /// Takes the run lock (exit 3 when another run holds it), gathers the environment facts
    /// and arms the interrupt handler.
    pub(super) fn open(
        args: &RunArgs,
        rt: &tokio::runtime::Runtime,
        cluster: &Cluster,
        run_id: &str,
    ) -> Result<Session, u8> {
        let lock = match rt.block_on(RunLock::acquire(cluster.client.clone(), run_id)) {
            Ok(l) => Arc::new(l),
            Err(e) => return Err(environment_failure(args, &e.to_string())),
        };
        let renewer = {
            let lock = lock.clone();
            rt.spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(20)).await;
                    if let Err(e) = lock.renew().await {
                        log_line(format!("run lock: {e}"));
                    }
                }
            })
        };
        let mut environment: Environment = rt.block_on(facts::gather(&cluster.client));
        if environment.cni == "unknown" {
            // The sandbox's own CNIs have no DaemonSet to be found by: it names them.
            let sandbox = cluster.sandbox.lock().ok();
            if let Some((cni, mode)) = sandbox
                .as_ref()
                .and_then(|s| s.as_ref())
                .map(|s| s.cni_facts())
            {
                environment.cni = cni;
                environment.cni_mode = mode;
            }
        }
        let mode = if environment.cni_mode.is_empty() {
            String::new()
        } else {
            format!(" ({})", environment.cni_mode)
        };
        log_line(format!(
            "cluster: Kubernetes {}, {} node(s), CNI {}{mode}",
            environment.kubernetes_version, environment.nodes, environment.cni
        ));
        let session = Session {
            lock,
            renewer,
            environment,
        };
        session.on_interrupt(rt, cluster, run_id);
        Ok(session)
    }

    /// Ctrl-C / SIGTERM: stop, delete everything of the run, exit 130.
    fn on_interrupt(&self, rt: &tokio::runtime::Runtime, cluster: &Cluster, run_id: &str) {
        let client = cluster.client.clone();
        let run_id = run_id.to_string();
        let sandbox = cluster.sandbox.clone();
        // Weak: the lock's owner is the session, which releases it when the run ends.
        let lock = Arc::downgrade(&self.lock);
        rt.spawn(async move {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(_) => return,
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            log_line("interrupted: deleting everything of this run".into());
            if let Err(e) = cleanup_run(&client, &Selection::Run(run_id)).await {
                log_line(format!("cleanup: {e}"));
            }
            if let Some(lock) = lock.upgrade() {
                let _ = lock.renew().await; // keeps it ours until the cleanup above is done
            }
            let s = sandbox.lock().ok().and_then(|mut s| s.take());
            if let Some(s) = s {
                s.stop().await;
            }
            std::process::exit(i32::from(exit::INTERRUPTED));
        });
    }

    /// Stops renewing and releases the lock (deletes its Lease); returns the environment facts
    /// for the reports.
    pub(super) fn close(self, rt: &tokio::runtime::Runtime) -> Environment {
        self.renewer.abort();
        // The renewer holds the lock until its task is gone, not merely asked to go.
        let _ = rt.block_on(self.renewer);
        if let Ok(l) = Arc::try_unwrap(self.lock) {
            if let Err(e) = rt.block_on(l.release()) {
                log_line(format!("run lock: {e}"));
            }
        }
        self.environment
    }
}
