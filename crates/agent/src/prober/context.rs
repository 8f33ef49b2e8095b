//! What the probes of one batch share, and the dispatch of one probe to its kind.

use super::dns::{self, Resolvers};
use super::finding::Finding;
use super::http::{self, Clients};
use super::prepared::{Prepared, PreparedBatch, Target};
use super::reporter::millis;
use super::{stream, udp};
use crate::source_ports::SourcePortClient;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// What the probes of one batch share: resolvers and HTTP clients, built on first use.
pub(super) struct Context {
    resolvers: Arc<Resolvers>,
    http: Arc<Clients>,
    /// Fresh UDP source ports, from this network namespace's ledger.
    source_ports: SourcePortClient,
}

impl Context {
    /// The shared context of `batch`, with HTTP clients ready for its probes.
    pub(super) async fn for_batch(batch: &PreparedBatch) -> Arc<Self> {
        let context = Arc::new(Context::new(Duration::from_millis(batch.timeout_ms)));
        context
            .http
            .prepare(batch.probes.iter().map(|p| &p.spec))
            .await;
        context
    }

    fn new(timeout: Duration) -> Self {
        let resolvers = Arc::new(Resolvers::new(timeout));
        Context {
            http: Arc::new(Clients::new(resolvers.clone())),
            resolvers,
            source_ports: SourcePortClient::of_this_namespace(),
        }
    }

    /// Runs one probe of the batch, from `started`, within `timeout`.
    pub(super) async fn run(
        &self,
        probe: &Prepared,
        started: Instant,
        timeout: Duration,
    ) -> Finding {
        let deadline = started + timeout;
        let timeout_ms = millis(timeout);
        let spec = &probe.spec;
        match &probe.target {
            Target::Stream(target, kind) => {
                stream::probe(&self.resolvers, spec, target, *kind, deadline, timeout_ms).await
            }
            Target::Datagram(target) => {
                udp::probe(
                    &self.resolvers,
                    &self.source_ports,
                    spec,
                    target,
                    started,
                    deadline,
                    timeout_ms,
                )
                .await
            }
            Target::Http(target) => {
                http::probe(
                    &self.http,
                    &self.resolvers,
                    spec,
                    target,
                    deadline,
                    timeout_ms,
                )
                .await
            }
            Target::Dns(server) => dns::probe(&self.resolvers, spec, *server, deadline).await,
        }
    }
}
