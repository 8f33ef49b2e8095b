//! What one probe found, before it becomes a result line, and the identity check every
//! connection-oriented probe ends with.

use netassay_core::probe::Outcome;
use std::fmt::Display;
use std::net::IpAddr;
use std::time::Duration;

/// What one probe found; becomes a [`ProbeResult`] with the id and the elapsed time.
#[derive(Debug, Clone)]
pub(crate) struct Finding {
    pub outcome: Outcome,
    pub detail: String,
    pub peer_identity: Option<String>,
    pub addresses: Vec<IpAddr>,
    /// How long after its launch the probe could begin (a UDP probe may wait for a fresh
    /// source port): its start and elapsed time count from then.
    pub began_after: Duration,
}

impl Finding {
    pub(crate) fn new(outcome: Outcome, detail: impl Into<String>) -> Self {
        Finding {
            outcome,
            detail: detail.into(),
            peer_identity: None,
            addresses: Vec::new(),
            began_after: Duration::ZERO,
        }
    }
}

/// Judges a reached peer by the identity it announced (`seen`) against the expected one.
pub(crate) fn judge_identity(
    expected: Option<&str>,
    seen: Option<String>,
    peer: impl Display,
) -> Finding {
    let (outcome, detail) = match (expected, seen.as_deref()) {
        (None, Some(id)) => (Outcome::Connected, format!("{peer} is {id}")),
        (None, None) => (Outcome::Connected, format!("reached {peer}")),
        (Some(want), Some(id)) if want == id => (Outcome::Connected, format!("{peer} is {id}")),
        (Some(want), Some(id)) => (
            Outcome::WrongPeer,
            format!("{peer} is {id}, expected {want}"),
        ),
        (Some(want), None) => (
            Outcome::WrongPeer,
            format!("reached {peer}, but it gave no netassay greeting (expected {want})"),
        ),
    };
    let mut finding = Finding::new(outcome, detail);
    finding.peer_identity = seen;
    finding
}
