//! What a run found, as plain data: every attempt of every cell of every step. Reports read this.

use crate::scenario::ExpectedCell;
use netassay_core::probe::Outcome;
use serde::Serialize;
use std::time::Duration;

/// One probe of one cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// 1 for the full round (or the series of a changed cell), then re-probes, then
    /// confirmation rounds.
    pub round: u32,
    /// Milliseconds from the step's t0 (its last change accepted by the API server) to this
    /// probe's start, at the latest; negative for probes of a series that started before t0
    /// (they show the state before the step).
    pub at_ms: i64,
    pub outcome: Outcome,
    pub detail: String,
    pub elapsed_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_identity: Option<String>,
    /// Probes of a series (the cells a step changes): the probe's number in its cell's series.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u32>,
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
    /// The cluster kept interrupting the probe past the step's deadline (restarting pods,
    /// broken exec streams, an API server that would not answer): neither pass nor fail, and
    /// the environment's fault, not the CNI's (exit 3).
    Interrupted,
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

    /// No evidence because a probe failed: an error, or an interruption by the cluster.
    pub fn is_unanswered(self) -> bool {
        matches!(self, CellStatus::Error | CellStatus::Interrupted)
    }

    /// Evidence about the CNI: the cell was probed and compared with its expectation.
    /// Unsupported, not-judged and erring cells say nothing either way.
    pub fn is_judged(self) -> bool {
        matches!(
            self,
            CellStatus::Pass | CellStatus::Fail | CellStatus::Flapping
        )
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
    /// The CNI's own account of the cell's flows (Cilium's Hubble), for cells that went wrong:
    /// evidence beside the oracle's reasons, never a verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cni_account: Option<String>,
    /// The step changes this cell's verdict (it was probed as a series).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub changed: bool,
    /// Changed cells: the start of the first probe after which every probe agreed (ms since t0).
    #[serde(serialize_with = "ms", skip_serializing_if = "Option::is_none")]
    pub time_to_enforce: Option<Duration>,
    /// How precisely that places the change: it happened in `(tte - resolution, tte]`.
    #[serde(serialize_with = "ms", skip_serializing_if = "Option::is_none")]
    pub time_to_enforce_resolution: Option<Duration>,
}

impl CellResult {
    pub fn observed(&self) -> Option<Outcome> {
        self.attempts.last().map(|a| a.outcome)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub cells: Vec<CellResult>,
    /// From t0 (the step's last change accepted by the API server) to the start of the first
    /// probe after which every probe of every changed cell agreed (of every judged cell, when the
    /// step changes none); `None` if they never agreed or nothing was judged.
    #[serde(serialize_with = "ms")]
    pub time_to_enforce: Option<Duration>,
    /// The change happened in `(time_to_enforce - resolution, time_to_enforce]`.
    #[serde(serialize_with = "ms")]
    pub time_to_enforce_resolution: Option<Duration>,
    /// Judged cells whose verdict this step changes (probed as a series).
    pub changed_cells: usize,
    /// Changed cells whose series the cluster interrupted (a pod they involve restarted, their
    /// agent could not run): what they saw then times the cluster, not the enforcer, so neither
    /// they nor the step get a time-to-enforce.
    pub time_to_enforce_disturbed: usize,
    /// The step's last change was accepted after its series had ended (applying the step took
    /// longer than a series runs): the series saw only the time before the change, so the step
    /// gets no time-to-enforce, and is not "never enforced" either.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub series_ended_before_changes: bool,
    pub rounds: u32,
    /// What the control plane made netassay do again during this step.
    pub resilience: Resilience,
    /// What the step cost: requests, exec calls, wall time (the figures of `bench scale`).
    pub load: StepLoad,
}

/// What one step cost the cluster and the clock: the fixture client's API requests (exec
/// upgrades included, retries not counted again), its exec calls, and the step's wall time
/// from before its changes were applied to its last probe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StepLoad {
    pub api_requests: u64,
    pub exec_calls: u64,
    pub elapsed_ms: u64,
}

impl StepLoad {
    /// What happened between `before` and `self` (counters only grow), over `elapsed`.
    pub fn since(&self, before: &StepLoad, elapsed: Duration) -> StepLoad {
        StepLoad {
            api_requests: self.api_requests.saturating_sub(before.api_requests),
            exec_calls: self.exec_calls.saturating_sub(before.exec_calls),
            elapsed_ms: elapsed.as_millis() as u64,
        }
    }
}

/// What a hostile control plane cost a step (DESIGN §6): nothing of it ever becomes a verdict,
/// but a report shows how much was retried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Resilience {
    /// API requests retried (429, 5xx, timeouts).
    pub api_retries: u64,
    /// Probe batches run again because their exec stream broke.
    pub exec_replays: u64,
    /// Probe pods seen restarted; the cells that involved them in that round were probed again.
    pub pod_restarts: u64,
}

impl Resilience {
    /// What happened between `before` and `self` (counters only grow).
    pub fn since(&self, before: &Resilience) -> Resilience {
        Resilience {
            api_retries: self.api_retries.saturating_sub(before.api_retries),
            exec_replays: self.exec_replays.saturating_sub(before.exec_replays),
            pod_restarts: self.pod_restarts.saturating_sub(before.pod_restarts),
        }
    }

    pub fn add(&mut self, other: &Resilience) {
        self.api_retries += other.api_retries;
        self.exec_replays += other.exec_replays;
        self.pod_restarts += other.pod_restarts;
    }

    pub fn is_quiet(&self) -> bool {
        *self == Resilience::default()
    }

    /// The sum over `steps`.
    pub fn total<'a>(steps: impl IntoIterator<Item = &'a StepResult>) -> Resilience {
        let mut t = Resilience::default();
        for s in steps {
            t.add(&s.resilience);
        }
        t
    }

    /// `3 API retries, 1 exec replay`; empty when nothing happened.
    pub fn summary(&self) -> String {
        [
            (self.api_retries, "API retry", "API retries"),
            (self.exec_replays, "exec replay", "exec replays"),
            (self.pod_restarts, "pod restart seen", "pod restarts seen"),
        ]
        .into_iter()
        .filter(|(n, _, _)| *n > 0)
        .map(|(n, one, many)| format!("{n} {}", if n == 1 { one } else { many }))
        .collect::<Vec<_>>()
        .join(", ")
    }
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

    /// Cells that were judged: passed, failed or flapped (DESIGN §7b: the only evidence).
    pub fn judged(&self) -> usize {
        self.cells.iter().filter(|c| c.status.is_judged()).count()
    }

    pub fn has_judged_cells(&self) -> bool {
        self.judged() > 0
    }

    /// Whether a path this step changes was judged. Only then can a missing time-to-enforce
    /// mean that the enforcer never got there: a step whose changed paths are all unsupported
    /// (SCTP where the kernel lacks it) passes on its other cells but times nothing.
    pub fn has_judged_changed_cells(&self) -> bool {
        self.cells.iter().any(|c| c.changed && c.status.is_judged())
    }
}
