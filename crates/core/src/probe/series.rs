//! Probe series (DESIGN §7b): the same cell probed again and again, a new probe started at a
//! fixed spacing (each keeping the full timeout), until it has agreed with its expectation for a
//! window. The wire settings of a series, and the one rule that reads one: where agreement starts.
//!
//! Pure: the agent uses [`SeriesCell`] to decide when a cell needs another probe and when it is
//! settled; the runner uses [`onset`] to turn the recorded probes into a time-to-enforce. Both
//! read the same samples the same way.

use super::limits::MAX_TIMEOUT_MS;
use super::outcome::{DenyRule, Outcome};
use crate::model::Verdict;
use serde::{Deserialize, Serialize};

/// Schema of batches that may carry a [`Series`]; plain `netassay.probe/v1` batches stay valid.
pub const SERIES_SCHEMA: &str = "netassay.probe/v2";

/// Shortest spacing a series may ask for: probes closer than this measure the agent, not the path.
pub const MIN_SPACING_MS: u64 = 5;

/// How long an answer may take: a probe of an expected allow still in flight after this is
/// taken for a coming drop when deciding whether to wait.
pub const ANSWER_GRACE_MS: u64 = 100;

/// Completed probes in a row that neither agree nor disagree (errors, wrong peers) after which a
/// cell is given up in the series; the runner's rounds retry it.
pub const ERROR_STREAK: usize = 3;

/// How a batch runs as a series: every probe is one cell, started again every `spacing_ms` until
/// it settles or `deadline_ms` passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Series {
    /// A new probe of each unsettled cell starts this often.
    pub spacing_ms: u64,
    /// A cell is settled when the probes that agreed after its last disagreement span this long
    /// (by [`Sample::evidence_ms`]) and none of its probes is still in flight.
    pub window_ms: u64,
    /// From the agent's start: no probe starts after this; cells not settled by then are
    /// reported as they are.
    pub deadline_ms: u64,
    /// How a denial must look to agree with an expected deny.
    #[serde(default)]
    pub deny_rule: DenyRule,
}

/// Why a series is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeriesError {
    #[error("series.spacing_ms {0} is out of range: expected {MIN_SPACING_MS} to {max}", max = MAX_TIMEOUT_MS)]
    Spacing(u64),
    #[error("series.window_ms {0} is out of range: expected 0 to {max}", max = MAX_TIMEOUT_MS)]
    Window(u64),
    #[error("series.deadline_ms {0} is out of range: expected 1 to {max}", max = MAX_TIMEOUT_MS)]
    Deadline(u64),
}

impl Series {
    pub fn validate(&self) -> Result<(), SeriesError> {
        let max = MAX_TIMEOUT_MS;
        if !(MIN_SPACING_MS..=max).contains(&self.spacing_ms) {
            return Err(SeriesError::Spacing(self.spacing_ms));
        }
        if self.window_ms > max {
            return Err(SeriesError::Window(self.window_ms));
        }
        if !(1..=max).contains(&self.deadline_ms) {
            return Err(SeriesError::Deadline(self.deadline_ms));
        }
        Ok(())
    }
}

/// What one probe of a series says about its cell's expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    Agrees,
    Disagrees,
    /// Error, wrong peer, failed lookup: no verdict either way.
    Neither,
    /// The protocol is not available: waiting will not change that.
    Unsupported,
}

/// The one rule for reading an outcome against an expectation.
pub fn read(outcome: Outcome, expected: Verdict, rule: DenyRule) -> Reading {
    if outcome == Outcome::Unsupported {
        Reading::Unsupported
    } else if outcome.satisfies(expected, rule) {
        Reading::Agrees
    } else if outcome.is_verdict() {
        Reading::Disagrees
    } else {
        Reading::Neither
    }
}

/// One completed probe of a cell, on one clock (the agent's, or the step's, where probes of a
/// series may start before t0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub start_ms: i64,
    pub elapsed_ms: u64,
    pub outcome: Outcome,
}

impl Sample {
    /// When the probe saw the state it reports. A drop shows the state from the probe's start
    /// (nothing got through from then to its timeout); anything that answered shows the state
    /// when the answer came, since a handshake that only got through on a retransmission says
    /// nothing about the moment it started. This is what keeps a series independent of the
    /// probe timeout.
    pub fn evidence_ms(&self) -> i64 {
        match self.outcome {
            Outcome::Dropped => self.start_ms,
            _ => self
                .start_ms
                .saturating_add(i64::try_from(self.elapsed_ms).unwrap_or(i64::MAX)),
        }
    }
}

/// Where agreement starts in a cell's samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Onset {
    /// Evidence time of the first agreeing sample after which every sample agreed.
    pub at_ms: i64,
    /// Evidence time of the last sample before it that did not agree, if any: the cell's state
    /// changed somewhere in `(after_ms, at_ms]`.
    pub after_ms: Option<i64>,
    /// From `at_ms` to the latest agreeing evidence.
    pub span_ms: u64,
    /// Samples in the agreeing run.
    pub agreeing: usize,
}

impl Onset {
    /// The figure on a clock whose origin is t0: never before it.
    pub fn at_or_after_origin_ms(&self) -> u64 {
        u64::try_from(self.at_ms).unwrap_or(0)
    }

    /// How precisely that places the change: the gap back to the last sample that did not agree,
    /// or back to the origin when there was none (or it came before the origin).
    pub fn resolution_ms(&self) -> u64 {
        let at = self.at_or_after_origin_ms();
        let after = self
            .after_ms
            .and_then(|a| u64::try_from(a).ok())
            .unwrap_or(0);
        at - after.min(at)
    }
}

/// The agreeing run at the end of `samples` (any order), read by evidence time; `None` when the
/// latest verdict does not agree (or there is none, or the cell is unsupported). Samples that
/// show no verdict (errors, wrong peers: e.g. a handshake that got through on a retransmission
/// just before the timeout, with no time left for the greeting) are no evidence either way and
/// are left out; persistent ones make the cell an error elsewhere.
pub fn onset(samples: &[Sample], expected: Verdict, rule: DenyRule) -> Option<Onset> {
    let mut by_time: Vec<(i64, Reading)> = samples
        .iter()
        .map(|s| (s.evidence_ms(), read(s.outcome, expected, rule)))
        .filter(|(_, r)| *r != Reading::Neither)
        .collect();
    // At equal times a disagreement sorts last: agreement is never claimed on a tie.
    by_time.sort_by_key(|(t, r)| (*t, *r == Reading::Agrees));
    let first_of_run = by_time
        .iter()
        .rposition(|(_, r)| *r != Reading::Agrees)
        .map_or(0, |i| i + 1);
    let run = by_time.get(first_of_run..)?;
    let (first, _) = run.first()?;
    let (last, _) = run.last()?;
    Some(Onset {
        at_ms: *first,
        after_ms: first_of_run.checked_sub(1).map(|i| by_time[i].0),
        span_ms: u64::try_from(last - first).unwrap_or(0),
        agreeing: run.len(),
    })
}

/// What a series should do next with one cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Start another probe now.
    Probe,
    /// Enough probes are in flight to settle it if they agree: wait for them.
    Wait,
    /// Nothing more to learn: agreed for the window, unsupported, or given up after errors.
    Done,
}

/// The agent's book of one cell of a series.
#[derive(Debug, Clone)]
pub struct SeriesCell {
    expected: Verdict,
    /// Start offset of every probe, by sequence number (the agent's clock: never negative).
    starts: Vec<u64>,
    /// The completed ones, by sequence number.
    done: Vec<Option<Sample>>,
}

impl SeriesCell {
    pub fn new(expected: Verdict) -> Self {
        SeriesCell {
            expected,
            starts: Vec::new(),
            done: Vec::new(),
        }
    }

    /// Records a probe started at `start_ms`; returns its sequence number.
    pub fn started(&mut self, start_ms: u64) -> u32 {
        self.starts.push(start_ms);
        self.done.push(None);
        u32::try_from(self.starts.len() - 1).unwrap_or(u32::MAX)
    }

    /// Records the completion of probe `seq`.
    pub fn finished(&mut self, seq: u32, elapsed_ms: u64, outcome: Outcome) {
        let i = seq as usize;
        if let (Some(slot), Some(start)) = (self.done.get_mut(i), self.starts.get(i)) {
            *slot = Some(Sample {
                start_ms: i64::try_from(*start).unwrap_or(i64::MAX),
                elapsed_ms,
                outcome,
            });
        }
    }

    pub fn in_flight(&self) -> usize {
        self.done.iter().filter(|d| d.is_none()).count()
    }

    fn samples(&self) -> Vec<Sample> {
        self.done.iter().flatten().copied().collect()
    }

    /// What to do with this cell at `now_ms` (on the clock of its start offsets).
    pub fn next(&self, series: &Series, now_ms: u64) -> Next {
        let rule = series.deny_rule;
        let samples = self.samples();
        if samples.iter().any(|s| s.outcome == Outcome::Unsupported) {
            return Next::Done;
        }
        // Completed probes in start order: a tail of errors means the path cannot be probed
        // right now; the runner's rounds retry it with backoff.
        let mut in_order: Vec<&Sample> = samples.iter().collect();
        in_order.sort_by_key(|s| s.start_ms);
        let streak = in_order
            .iter()
            .rev()
            .take_while(|s| read(s.outcome, self.expected, rule) == Reading::Neither)
            .count();
        if streak >= ERROR_STREAK && self.in_flight() == 0 {
            return Next::Done;
        }
        let agreed = onset(&samples, self.expected, rule);
        if self.in_flight() == 0 && agreed.is_some_and(|o| o.span_ms >= series.window_ms) {
            return Next::Done;
        }
        // Probes started after the last completed one that did not agree might settle the
        // cell; once they cover the window, more would only add load. A probe still in flight
        // is hopeful when it can still agree: for a deny, a drop is the slow outcome and the
        // agreeing one; for an allow, answers come fast, so one in flight past the grace is
        // most likely a drop.
        let last_bad = samples
            .iter()
            .filter(|s| read(s.outcome, self.expected, rule) != Reading::Agrees)
            .map(|s| u64::try_from(s.start_ms).unwrap_or(0))
            .max();
        let hopeful: Vec<u64> = self
            .starts
            .iter()
            .zip(&self.done)
            .filter(|(start, done)| match done {
                Some(_) => true,
                None => self.expected == Verdict::Deny || now_ms <= **start + ANSWER_GRACE_MS,
            })
            .map(|(start, _)| *start)
            .filter(|s| last_bad.is_none_or(|b| *s > b))
            .collect();
        match (hopeful.iter().min(), hopeful.iter().max()) {
            (Some(first), Some(last))
                if last - first >= series.window_ms && self.in_flight() > 0 =>
            {
                Next::Wait
            }
            _ => Next::Probe,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(start_ms: i64, elapsed_ms: u64, outcome: Outcome) -> Sample {
        Sample {
            start_ms,
            elapsed_ms,
            outcome,
        }
    }

    const RULE: DenyRule = DenyRule::DroppedOrRejected;

    fn series() -> Series {
        Series {
            spacing_ms: 50,
            window_ms: 100,
            deadline_ms: 10_000,
            deny_rule: RULE,
        }
    }

    // DESIGN §7b: the figure is the first probe after which every probe of the cell agreed.
    #[test]
    fn onset_is_the_first_agreeing_probe_after_the_last_disagreement() {
        use Outcome::*;
        let samples = [
            s(0, 2, Connected),
            s(50, 2, Connected),
            s(100, 1000, Dropped),
            s(150, 1000, Dropped),
        ];
        let o = onset(&samples, Verdict::Deny, RULE).unwrap();
        assert_eq!(
            (o.at_ms, o.after_ms, o.span_ms, o.agreeing),
            (100, Some(52), 50, 2)
        );
        assert_eq!(o.resolution_ms(), 48);
    }

    // A handshake that gets through on a retransmission is evidence of when it got through,
    // not of its start: the onset cannot move earlier with a longer probe timeout.
    #[test]
    fn an_answer_counts_when_it_came_and_a_drop_from_its_start() {
        use Outcome::*;
        // Deny -> allow at ~300 ms; the probe started at 100 ms connected on its SYN retransmit.
        let samples = [
            s(100, 1003, Connected),
            s(250, 3000, Dropped),
            s(300, 2, Connected),
            s(350, 2, Connected),
        ];
        let o = onset(&samples, Verdict::Allow, RULE).unwrap();
        assert_eq!((o.at_ms, o.after_ms), (302, Some(250)));
    }

    #[test]
    fn errors_are_no_evidence_and_a_disagreeing_tail_has_no_onset() {
        use Outcome::*;
        let samples = [s(0, 1000, Dropped), s(50, 0, Error), s(100, 1000, Dropped)];
        let o = onset(&samples, Verdict::Deny, RULE).unwrap();
        assert_eq!((o.at_ms, o.after_ms, o.agreeing), (0, None, 2));
        // Deny -> allow: a probe from before the change whose handshake got through on its
        // retransmission just before the timeout, too late for the greeting, says nothing.
        let samples = [
            s(-100, 1011, WrongPeer),
            s(-50, 3, Connected),
            s(0, 2, Connected),
        ];
        let o = onset(&samples, Verdict::Allow, RULE).unwrap();
        assert_eq!((o.at_ms, o.after_ms), (-47, None));
        assert_eq!(onset(&[s(0, 5, Error)], Verdict::Allow, RULE), None);
        assert_eq!(
            onset(
                &[s(0, 1000, Dropped), s(50, 1, Connected)],
                Verdict::Deny,
                RULE
            ),
            None
        );
        assert_eq!(onset(&[], Verdict::Deny, RULE), None);
    }

    #[test]
    fn the_first_probe_agreeing_places_the_change_anywhere_before_it() {
        let o = onset(&[s(40, 1, Outcome::Connected)], Verdict::Allow, RULE).unwrap();
        assert_eq!((o.at_ms, o.after_ms, o.resolution_ms()), (41, None, 41));
    }

    // Series start before t0 (their probes show the old state): the figure is never negative,
    // and a "not yet" before t0 places the change after t0 at the earliest.
    #[test]
    fn probes_before_the_origin_bound_the_figure_at_the_origin() {
        use Outcome::*;
        let o = onset(
            &[s(-60, 1, Connected), s(-10, 1000, Dropped)],
            Verdict::Deny,
            RULE,
        )
        .unwrap();
        assert_eq!(
            (o.at_ms, o.at_or_after_origin_ms(), o.resolution_ms()),
            (-10, 0, 0)
        );
        let o = onset(
            &[s(-60, 1, Connected), s(30, 1000, Dropped)],
            Verdict::Deny,
            RULE,
        )
        .unwrap();
        assert_eq!((o.at_or_after_origin_ms(), o.resolution_ms()), (30, 30));
    }

    #[test]
    fn a_rejection_does_not_agree_when_drops_are_required() {
        let samples = [s(0, 1, Outcome::Rejected)];
        assert!(onset(&samples, Verdict::Deny, DenyRule::DroppedOnly).is_none());
        assert!(onset(&samples, Verdict::Deny, RULE).is_some());
    }

    #[test]
    fn a_cell_waits_once_hopeful_probes_cover_the_window_and_is_done_when_they_agree() {
        let mut c = SeriesCell::new(Verdict::Deny);
        let sr = series();
        assert_eq!(c.next(&sr, 0), Next::Probe);
        for t in [0, 50] {
            c.started(t);
            assert_eq!(c.next(&sr, t), Next::Probe, "at {t}");
        }
        c.started(100);
        assert_eq!(
            c.next(&sr, 100),
            Next::Wait,
            "0..100 in flight covers the window"
        );
        for seq in 0..3 {
            c.finished(seq, 1000, Outcome::Dropped);
        }
        assert_eq!(c.next(&sr, 1100), Next::Done);
    }

    #[test]
    fn a_late_disagreement_reopens_the_cell() {
        let mut c = SeriesCell::new(Verdict::Allow);
        let sr = series();
        for t in [0, 50, 100] {
            c.started(t);
        }
        assert_eq!(c.next(&sr, 100), Next::Wait);
        c.finished(1, 1, Outcome::Connected);
        c.finished(2, 1, Outcome::Connected);
        // The first probe was dropped: only 50..100 is hopeful now, short of the window.
        c.finished(0, 1000, Outcome::Dropped);
        assert_eq!(c.next(&sr, 1000), Next::Probe);
    }

    // Deny -> allow: probes from before the change hang until their timeout; they must not
    // stop the series from starting the probes that will show the allow.
    #[test]
    fn an_allow_still_in_flight_past_the_grace_is_not_waited_for() {
        let mut c = SeriesCell::new(Verdict::Allow);
        let sr = series();
        for t in [0, 50, 100] {
            c.started(t);
        }
        assert_eq!(c.next(&sr, 100), Next::Wait);
        assert_eq!(c.next(&sr, 100 + ANSWER_GRACE_MS + 1), Next::Probe);
    }

    #[test]
    fn unsupported_is_done_at_once_and_errors_after_a_streak() {
        let sr = series();
        let mut c = SeriesCell::new(Verdict::Allow);
        c.started(0);
        c.finished(0, 0, Outcome::Unsupported);
        assert_eq!(c.next(&sr, 0), Next::Done);
        let mut e = SeriesCell::new(Verdict::Allow);
        for t in 0..ERROR_STREAK as u64 {
            let seq = e.started(t * 50);
            assert_ne!(e.next(&sr, t * 50), Next::Done);
            e.finished(seq, 0, Outcome::Error);
        }
        assert_eq!(e.next(&sr, 200), Next::Done);
    }

    #[test]
    fn series_settings_are_range_checked() {
        let ok = series();
        assert_eq!(ok.validate(), Ok(()));
        for (bad, want) in [
            (
                Series {
                    spacing_ms: 1,
                    ..ok
                },
                SeriesError::Spacing(1),
            ),
            (
                Series {
                    deadline_ms: 0,
                    ..ok
                },
                SeriesError::Deadline(0),
            ),
        ] {
            assert_eq!(bad.validate(), Err(want));
        }
    }
}
