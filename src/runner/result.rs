//! What a run found, as plain data: every attempt of every cell of every step. Reports read this.

use crate::probe::Outcome;
use crate::scenario::ExpectedCell;
use serde::Serialize;
use std::time::Duration;

/// One probe of one cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// 1 for the full round, then re-probes, then confirmation rounds.
    pub round: u32,
    /// Milliseconds since the step's changes were in place.
    pub at_ms: u64,
    pub outcome: Outcome,
    pub detail: String,
    pub elapsed_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_identity: Option<String>,
}

/// The judgement of one cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CellStatus {
    /// Observed what was expected.
    Pass,
    /// Observed the opposite verdict until the deadline.
    Fail,
    /// Agreed, then flipped during confirmation.
    Flapping,
    /// The probe itself failed or reached the wrong peer: neither pass nor fail.
    Error,
    /// The protocol is not available (e.g. SCTP): reported, not judged.
    Unsupported,
    /// Loopback cell, reported but not judged.
    NotJudged,
}

impl CellStatus {
    /// A mismatch that makes the run non-conformant.
    pub fn is_failure(self) -> bool {
        matches!(self, CellStatus::Fail | CellStatus::Flapping)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CellResult {
    #[serde(flatten)]
    pub expected: ExpectedCell,
    pub status: CellStatus,
    pub attempts: Vec<Attempt>,
    /// The oracle's reasons, for cells that went wrong (oracle mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

impl CellResult {
    pub fn observed(&self) -> Option<Outcome> {
        self.attempts.last().map(|a| a.outcome)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub cells: Vec<CellResult>,
    /// From changes in place to every judged cell agreeing; `None` if they never did.
    #[serde(serialize_with = "ms")]
    pub time_to_enforce: Option<Duration>,
    pub rounds: u32,
}

fn ms<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&(d.as_millis() as u64)),
        None => s.serialize_none(),
    }
}

impl StepResult {
    pub fn count(&self, status: CellStatus) -> usize {
        self.cells.iter().filter(|c| c.status == status).count()
    }

    pub fn failures(&self) -> impl Iterator<Item = &CellResult> {
        self.cells.iter().filter(|c| c.status.is_failure())
    }
}
