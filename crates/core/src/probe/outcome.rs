//! Probe outcomes, the one place they turn into verdicts, and the agent's output lines.

use super::limits::SCHEMA;
use crate::model::Verdict;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// What happened to one probe. Never collapsed: each says something different (DESIGN §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Reached the peer, and it is who the probe expected (or nothing was expected).
    Connected,
    /// Reached something, but not the expected peer (identity, nonce or HTTP status differ).
    WrongPeer,
    /// No answer before the timeout.
    Dropped,
    /// Refused: TCP RST, or ICMP port/host/network unreachable.
    Rejected,
    /// A name could not be resolved (NXDOMAIN, no records, or the lookup failed).
    DnsFailed,
    /// The probe itself failed; `detail` says how.
    Error,
    /// The protocol is not available where the probe ran (e.g. SCTP missing from the kernel).
    Unsupported,
    /// The cluster, not the path, stopped the probe: a pod it involved restarted, its exec
    /// stream broke, its agent could not be started or the API server would not answer. Never
    /// written by an agent (the harness gives it); no evidence, and when it persists past the
    /// step's deadline, an environment problem (exit 3), never a verdict.
    Interrupted,
}

impl Outcome {
    /// The outcomes an agent reports (`Interrupted` is the harness's own).
    pub const ALL: [Outcome; 7] = [
        Outcome::Connected,
        Outcome::WrongPeer,
        Outcome::Dropped,
        Outcome::Rejected,
        Outcome::DnsFailed,
        Outcome::Error,
        Outcome::Unsupported,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Connected => "connected",
            Outcome::WrongPeer => "wrong-peer",
            Outcome::Dropped => "dropped",
            Outcome::Rejected => "rejected",
            Outcome::DnsFailed => "dns-failed",
            Outcome::Error => "error",
            Outcome::Unsupported => "unsupported",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// The verdict this outcome shows, if it shows one: connected allows; dropped and rejected
    /// deny; every other outcome says nothing about policy.
    pub fn verdict(self) -> Option<Verdict> {
        match self {
            Outcome::Connected => Some(Verdict::Allow),
            Outcome::Dropped | Outcome::Rejected => Some(Verdict::Deny),
            Outcome::WrongPeer
            | Outcome::DnsFailed
            | Outcome::Error
            | Outcome::Unsupported
            | Outcome::Interrupted => None,
        }
    }

    /// Whether this outcome shows a verdict at all.
    pub fn is_verdict(self) -> bool {
        self.verdict().is_some()
    }

    /// Whether this outcome meets `expected`, under the profile's rule for denials.
    pub fn satisfies(self, expected: Verdict, deny_rule: DenyRule) -> bool {
        match (expected, self) {
            (Verdict::Allow, Outcome::Connected) => true,
            (Verdict::Deny, Outcome::Dropped) => true,
            (Verdict::Deny, Outcome::Rejected) => deny_rule == DenyRule::DroppedOrRejected,
            _ => false,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a denial must look to count (a profile may insist that denied traffic is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DenyRule {
    #[default]
    DroppedOrRejected,
    DroppedOnly,
}

/// The agent's report on one probe: one JSON line, written as soon as the probe completes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub id: String,
    pub outcome: Outcome,
    /// Human-readable evidence: the errno, the status, the addresses, the identity seen.
    pub detail: String,
    /// From the probe's own start (after it got its concurrency slot) to its outcome.
    pub elapsed_ms: u64,
    /// The identity the peer announced, when it announced one.
    pub peer_identity: Option<String>,
    /// dns: the addresses the name resolved to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<IpAddr>,
    /// From the agent's start of the batch to this probe's start (absent from older agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<u64>,
    /// Series only: which probe of the cell this is, from 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u32>,
}

/// The agent's last line after a batch: `{"summary":{...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchSummary {
    pub schema: String,
    pub total: usize,
    /// How many probes ended in each outcome; every outcome is listed, zeros included.
    pub counts: BTreeMap<Outcome, usize>,
    /// Wall time of the whole batch, from the first probe's start to the last result.
    pub elapsed_ms: u64,
}

impl BatchSummary {
    /// The same summary under another batch schema (the summary echoes its batch's).
    pub fn with_schema(mut self, schema: &str) -> Self {
        self.schema = schema.to_string();
        self
    }

    /// The summary of `outcomes`, taken `elapsed_ms` in all.
    pub fn of(outcomes: impl IntoIterator<Item = Outcome>, elapsed_ms: u64) -> Self {
        let mut counts: BTreeMap<Outcome, usize> = Outcome::ALL.iter().map(|o| (*o, 0)).collect();
        let mut total = 0;
        for o in outcomes {
            *counts.entry(o).or_default() += 1;
            total += 1;
        }
        BatchSummary {
            schema: SCHEMA.to_string(),
            total,
            counts,
            elapsed_ms,
        }
    }

    /// How many probes ended in `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.counts.get(&outcome).copied().unwrap_or(0)
    }
}

/// The first line of a series (`{"started":{...}}`), written the moment the agent's clock starts,
/// before any probe: the harness waits for it before making the step's changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesStarted {
    pub schema: String,
    /// Cells in the series.
    pub cells: usize,
}

/// One line of `agent probe` output, as the harness reads it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AgentLine {
    Summary { summary: BatchSummary },
    Started { started: SeriesStarted },
    Result(ProbeResult),
}

impl AgentLine {
    /// Parses one output line.
    pub fn parse(line: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(line)
    }

    /// The line as JSON (no trailing newline).
    pub fn to_json_line(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_use_the_documented_kebab_case_names() {
        for o in Outcome::ALL.into_iter().chain([Outcome::Interrupted]) {
            assert_eq!(
                serde_json::to_string(&o).unwrap(),
                format!("\"{}\"", o.as_str())
            );
        }
        assert_eq!(Outcome::WrongPeer.as_str(), "wrong-peer");
        assert_eq!(Outcome::DnsFailed.as_str(), "dns-failed");
    }

    #[test]
    fn only_connected_dropped_and_rejected_are_verdicts() {
        assert_eq!(Outcome::Connected.verdict(), Some(Verdict::Allow));
        assert_eq!(Outcome::Dropped.verdict(), Some(Verdict::Deny));
        assert_eq!(Outcome::Rejected.verdict(), Some(Verdict::Deny));
        for o in [
            Outcome::WrongPeer,
            Outcome::DnsFailed,
            Outcome::Error,
            Outcome::Unsupported,
            Outcome::Interrupted,
        ] {
            assert!(!o.is_verdict(), "{o}");
            assert!(!o.satisfies(Verdict::Allow, DenyRule::DroppedOrRejected));
            assert!(!o.satisfies(Verdict::Deny, DenyRule::DroppedOrRejected));
        }
    }

    #[test]
    fn a_dropped_only_profile_does_not_accept_rejections() {
        assert!(Outcome::Rejected.satisfies(Verdict::Deny, DenyRule::DroppedOrRejected));
        assert!(!Outcome::Rejected.satisfies(Verdict::Deny, DenyRule::DroppedOnly));
        assert!(Outcome::Dropped.satisfies(Verdict::Deny, DenyRule::DroppedOnly));
        assert!(!Outcome::Connected.satisfies(Verdict::Deny, DenyRule::DroppedOrRejected));
    }

    #[test]
    fn result_lines_carry_every_documented_field() {
        let r = ProbeResult {
            id: "p1".into(),
            outcome: Outcome::Connected,
            detail: "greeted".into(),
            elapsed_ms: 3,
            peer_identity: Some("y/b".into()),
            addresses: vec![],
            start_ms: None,
            seq: None,
        };
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        for field in ["id", "outcome", "detail", "elapsed_ms", "peer_identity"] {
            assert!(v.get(field).is_some(), "{field} missing");
        }
        assert!(v.get("addresses").is_none());
    }

    #[test]
    fn result_and_summary_lines_are_told_apart() {
        let s = BatchSummary::of(
            [Outcome::Connected, Outcome::Dropped, Outcome::Dropped],
            1001,
        );
        assert_eq!(s.count(Outcome::Dropped), 2);
        assert_eq!(s.count(Outcome::Error), 0);
        let line = AgentLine::Summary { summary: s.clone() }.to_json_line();
        assert!(line.starts_with(r#"{"summary":{"#), "{line}");
        assert_eq!(
            AgentLine::parse(&line).unwrap(),
            AgentLine::Summary { summary: s }
        );
        let r = r#"{"id":"a","outcome":"rejected","detail":"ECONNREFUSED","elapsed_ms":0,"peer_identity":null}"#;
        assert!(
            matches!(AgentLine::parse(r).unwrap(), AgentLine::Result(p) if p.outcome == Outcome::Rejected)
        );
    }
}
