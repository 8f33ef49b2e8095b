//! Time-to-enforce from recorded attempts (DESIGN §7b), pure: per cell, the start of the first
//! probe after which every probe agreed, placed within a resolution; per step, the latest of its
//! measured cells; per run, min / median / p90 / max.

use super::result::{Attempt, StepResult};
use netassay_core::model::Verdict;
use netassay_core::probe::series::{onset, Onset, Sample};
use netassay_core::probe::DenyRule;
use serde::Serialize;
use std::time::Duration;

/// When a cell or a step was seen enforced: at `at` (since the step's t0) at the latest, and
/// after `at - resolution`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enforced {
    pub at: Duration,
    pub resolution: Duration,
}

fn samples(attempts: &[Attempt]) -> Vec<Sample> {
    attempts
        .iter()
        .map(|a| Sample {
            start_ms: a.at_ms,
            elapsed_ms: a.elapsed_ms,
            outcome: a.outcome,
        })
        .collect()
}

/// Where agreement starts among one cell's attempts.
pub fn cell_onset(attempts: &[Attempt], expected: Verdict, rule: DenyRule) -> Option<Onset> {
    onset(&samples(attempts), expected, rule)
}

/// A cell's figure.
pub fn cell_enforced(onset: &Onset) -> Enforced {
    Enforced {
        at: Duration::from_millis(onset.at_or_after_origin_ms()),
        resolution: Duration::from_millis(onset.resolution_ms()),
    }
}

/// The step's figure over its measured cells: the last of them to be enforced. The change lies
/// after the latest "not yet" of any cell (and after t0) and no later than the latest onset.
/// `None` when a measured cell never agreed, or there is none.
pub fn step_enforced(onsets: &[Option<Onset>]) -> Option<Enforced> {
    if onsets.is_empty() {
        return None;
    }
    let onsets: Vec<&Onset> = onsets.iter().map(Option::as_ref).collect::<Option<_>>()?;
    let at = onsets.iter().map(|o| o.at_or_after_origin_ms()).max()?;
    let after = onsets
        .iter()
        .filter_map(|o| o.after_ms)
        .max()
        .and_then(|a| u64::try_from(a).ok())
        .unwrap_or(0)
        .min(at);
    Some(Enforced {
        at: Duration::from_millis(at),
        resolution: Duration::from_millis(at - after),
    })
}

/// Time-to-enforce over a run's steps that change paths (the enforcer's work); steps that change
/// none are only counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct EnforceStats {
    /// Steps that change paths and were seen enforced.
    pub steps: usize,
    /// Steps that change paths whose changed cells never agreed.
    pub never: usize,
    /// Steps that change paths whose series the cluster interrupted: not timed.
    pub disturbed: usize,
    /// Steps that change paths whose changes were in place only after their series ended: not
    /// timed.
    pub late: usize,
    /// Steps that change no path, or judged none of the paths they change: not in the figures.
    pub unchanged: usize,
    pub min_ms: u64,
    pub median_ms: u64,
    pub p90_ms: u64,
    pub max_ms: u64,
    /// The coarsest resolution among them.
    pub max_resolution_ms: u64,
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Min, median, p90 and max over the `steps` that change paths.
pub fn stats<'a>(steps: impl IntoIterator<Item = &'a StepResult>) -> EnforceStats {
    let mut values = Vec::new();
    let mut s = EnforceStats::default();
    for step in steps {
        if step.changed_cells == 0 {
            s.unchanged += 1;
            continue;
        }
        match step.time_to_enforce {
            Some(d) => {
                values.push(d.as_millis() as u64);
                let r = step
                    .time_to_enforce_resolution
                    .map_or(0, |r| r.as_millis() as u64);
                s.max_resolution_ms = s.max_resolution_ms.max(r);
            }
            None if step.time_to_enforce_disturbed > 0 => s.disturbed += 1,
            None if step.series_ended_before_changes => s.late += 1,
            None if step.has_judged_changed_cells() => s.never += 1,
            None => s.unchanged += 1,
        }
    }
    values.sort_unstable();
    s.steps = values.len();
    s.min_ms = values.first().copied().unwrap_or(0);
    s.median_ms = percentile(&values, 0.5);
    s.p90_ms = percentile(&values, 0.9);
    s.max_ms = values.last().copied().unwrap_or(0);
    s
}

impl EnforceStats {
    /// One line for the terminal and the reports.
    pub fn summary(&self) -> String {
        if self.steps == 0 && self.never == 0 && self.disturbed == 0 && self.late == 0 {
            return format!(
                "time-to-enforce: no step changed a path ({} step(s) without changes)",
                self.unchanged
            );
        }
        let mut line = format!(
            "time-to-enforce over {} step(s) that change paths: min {} ms, median {} ms, p90 {} ms, \
             max {} ms (resolution at worst {} ms)",
            self.steps,
            self.min_ms,
            self.median_ms,
            self.p90_ms,
            self.max_ms,
            self.max_resolution_ms
        );
        if self.never > 0 {
            line.push_str(&format!("; {} step(s) never enforced", self.never));
        }
        if self.disturbed > 0 {
            line.push_str(&format!(
                "; {} step(s) not timed (the cluster interrupted their series: a pod restarted, or a probe agent could not run or finish)",
                self.disturbed
            ));
        }
        if self.late > 0 {
            line.push_str(&format!(
                "; {} step(s) not timed (their changes took longer to apply than a series runs: it saw only the time before them)",
                self.late
            ));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::result::CellStatus;
    use netassay_core::probe::Outcome;

    fn o(at_ms: i64, after_ms: Option<i64>) -> Option<Onset> {
        Some(Onset {
            at_ms,
            after_ms,
            span_ms: 0,
            agreeing: 1,
        })
    }

    // DESIGN §7b: the step's figure is when its last changed cell was enforced.
    #[test]
    fn a_step_is_enforced_when_its_last_cell_is() {
        let e = step_enforced(&[o(120, Some(80)), o(300, Some(260)), o(40, None)]).unwrap();
        assert_eq!(e.at, Duration::from_millis(300));
        assert_eq!(e.resolution, Duration::from_millis(40));
        assert_eq!(
            step_enforced(&[o(50, None)]).unwrap().resolution,
            Duration::from_millis(50)
        );
    }

    #[test]
    fn a_step_with_a_cell_that_never_agreed_has_no_figure() {
        assert_eq!(step_enforced(&[o(10, None), None]), None);
        assert_eq!(step_enforced(&[]), None);
    }

    #[test]
    fn run_statistics_cover_the_steps_that_change_paths() {
        let step = |tte: Option<u64>, changed: usize| StepResult {
            cells: vec![],
            time_to_enforce: tte.map(Duration::from_millis),
            time_to_enforce_resolution: tte.map(|_| Duration::from_millis(50)),
            changed_cells: changed,
            time_to_enforce_disturbed: 0,
            series_ended_before_changes: false,
            rounds: 1,
            resilience: Default::default(),
            load: Default::default(),
        };
        let steps = [
            step(Some(300), 3),
            step(Some(100), 2),
            step(Some(900), 1),
            step(Some(40), 0),
        ];
        let s = stats(&steps);
        assert_eq!(
            (s.steps, s.unchanged, s.min_ms, s.median_ms, s.max_ms),
            (3, 1, 100, 300, 900)
        );
        assert_eq!(s.max_resolution_ms, 50);
        // A step whose series the cluster interrupted is neither a figure nor "never".
        let disturbed = StepResult {
            time_to_enforce_disturbed: 1,
            series_ended_before_changes: false,
            ..step(None, 2)
        };
        let s = stats(&[step(Some(300), 3), disturbed]);
        assert_eq!((s.steps, s.never, s.disturbed), (1, 0, 1));
        assert!(
            s.summary().contains("1 step(s) not timed"),
            "{}",
            s.summary()
        );
    }

    // Found by `bench chaos` on a clean run: protocol-only-sctp's "SCTP 81 only" changes only
    // SCTP paths, which this kernel cannot probe; the step passes on its other cells and was
    // counted as "never enforced", which says the enforcer failed where nothing was seen.
    #[test]
    fn a_step_whose_changed_paths_were_not_judged_is_not_never_enforced() {
        use crate::report::table::fixtures::{cell, pass};
        let mut unsupported = cell(
            "x/a",
            "x/b",
            Verdict::Deny,
            CellStatus::Unsupported,
            &[Outcome::Unsupported],
        );
        unsupported.changed = true;
        let step = |cells| StepResult {
            cells,
            time_to_enforce: None,
            time_to_enforce_resolution: None,
            changed_cells: 1,
            time_to_enforce_disturbed: 0,
            series_ended_before_changes: false,
            rounds: 2,
            resilience: Default::default(),
            load: Default::default(),
        };
        let unmeasurable = step(vec![
            unsupported.clone(),
            pass("x/a", "x/c", Verdict::Allow),
        ]);
        let s = stats(std::slice::from_ref(&unmeasurable));
        assert_eq!((s.steps, s.never, s.unchanged), (0, 0, 1));
        assert!(!s.summary().contains("never"), "{}", s.summary());
        assert_eq!(
            crate::report::table::time_to_enforce(&unmeasurable),
            "not measured (no path the step changes was judged)"
        );

        // A changed path that was judged and never agreed is the enforcer's.
        let mut never = pass("x/a", "x/c", Verdict::Deny);
        never.changed = true;
        let s = stats(&[step(vec![unsupported, never])]);
        assert_eq!((s.steps, s.never, s.unchanged), (0, 1, 0));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=10).collect();
        assert_eq!(
            (
                percentile(&v, 0.5),
                percentile(&v, 0.9),
                percentile(&v, 1.0)
            ),
            (5, 9, 10)
        );
        assert_eq!(percentile(&[7], 0.9), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn cell_onsets_read_attempts_on_the_step_clock() {
        let at = |at_ms: i64, elapsed_ms, outcome| Attempt {
            round: 1,
            at_ms,
            outcome,
            detail: String::new(),
            elapsed_ms,
            peer_identity: None,
            seq: None,
        };
        let attempts = [
            at(10, 1, Outcome::Connected),
            at(60, 1000, Outcome::Dropped),
        ];
        let onset = cell_onset(&attempts, Verdict::Deny, DenyRule::DroppedOrRejected).unwrap();
        let e = cell_enforced(&onset);
        assert_eq!(
            (e.at, e.resolution),
            (Duration::from_millis(60), Duration::from_millis(49))
        );
    }
}
