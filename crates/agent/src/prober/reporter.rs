//! Exactly one result line per probe: sent when it finishes, or an `error` when its task dies.

use super::finding::Finding;
use netassay_core::probe::{Outcome, ProbeResult};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Sends one probe's result; if the probe task dies first, its drop still reports an `error`,
/// so every probe of a batch gets exactly one line.
pub(super) struct Reporter {
    pub(super) id: Option<String>,
    /// Series only: the probe's number within its cell.
    pub(super) seq: Option<u32>,
    pub(super) tx: mpsc::UnboundedSender<ProbeResult>,
    /// The batch's start, from which `start_ms` counts.
    pub(super) origin: Instant,
    pub(super) started: Instant,
}

impl Reporter {
    pub(super) fn send(mut self, finding: Finding) {
        if let Some(id) = self.id.take() {
            let _ = self.tx.send(self.result(id, finding));
        }
    }

    fn result(&self, id: String, finding: Finding) -> ProbeResult {
        let began = self.started + finding.began_after;
        ProbeResult {
            id,
            outcome: finding.outcome,
            detail: finding.detail,
            elapsed_ms: millis(began.elapsed()),
            peer_identity: finding.peer_identity,
            addresses: finding.addresses,
            start_ms: Some(millis(began.saturating_duration_since(self.origin))),
            seq: self.seq,
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let finding = Finding::new(Outcome::Error, "the probe task failed unexpectedly");
            let _ = self.tx.send(self.result(id, finding));
        }
    }
}

pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
