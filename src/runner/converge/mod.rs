//! Running one step's matrix (DESIGN §6, §7b): the cells the step changes are probed as a series
//! (a probe every few tens of milliseconds until they agree for a window), started before the
//! step's changes are made, while the others get a full round once they are; what still disagrees
//! is re-probed with backoff until it agrees or the deadline passes; then confirmation rounds
//! where any flip is a failure. Time-to-enforce is read from the recorded attempts (`enforce`).

use super::enforce::{cell_enforced, cell_onset, step_enforced};
use super::result::{Attempt, CellResult, CellStatus, StepResult};
use crate::scenario::ExpectedCell;
use netassay_core::model::Verdict;
use netassay_core::probe::{DenyRule, Outcome, ProbeResult};
use std::time::{Duration, Instant};

/// One probe's result and when it ran, on this process's clock.
#[derive(Debug, Clone)]
pub struct Probed {
    pub result: ProbeResult,
    /// The probe's start, at the latest.
    pub started: Instant,
}

impl Probed {
    /// A result with no better timing than "it ended by now".
    pub fn now(result: ProbeResult) -> Self {
        Probed {
            result,
            started: Instant::now(),
        }
    }
}

/// How the cells a step changes are probed as a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesPlan {
    /// A new probe of each unsettled cell starts this often.
    pub spacing: Duration,
    /// Agreement must hold this long (and no probe be in flight) for a cell to settle.
    pub window: Duration,
    /// No probe starts after this.
    pub deadline: Instant,
    pub deny_rule: DenyRule,
}

/// Something that can probe cells: a fixture in a cluster, or a fake in tests.
pub trait Prober {
    /// A series under way; it owns what it needs, so the fixture is free to make the step's
    /// changes meanwhile.
    type Series: RunningSeries + Send;
    /// A round whose agents are started and wait for their batch.
    type Round: ReadyRound + Send;

    /// Probes the given cells (indices into the step's cell list) once each and returns one result
    /// per requested index, in any order. Implementations batch: one exec per source pod.
    fn probe(
        &self,
        cells: &[(usize, &ExpectedCell)],
    ) -> impl std::future::Future<Output = Vec<(usize, Probed)>> + Send;

    /// Starts probing the given cells as a series (one exec per source pod): a probe of each cell
    /// every `plan.spacing` until every cell agreed for `plan.window` or the deadline passed.
    /// Returns once the series runs (the agents' clocks started).
    fn start_series(
        &self,
        cells: &[(usize, &ExpectedCell)],
        plan: &SeriesPlan,
    ) -> impl std::future::Future<Output = Self::Series> + Send;

    /// Gets a round of the given cells ready (one agent per source pod, started and waiting).
    fn ready_round(
        &self,
        cells: &[(usize, &ExpectedCell)],
    ) -> impl std::future::Future<Output = Self::Round> + Send;
}

/// A round made ready before the step's changes: its agents' start-up (processes, execs) is
/// behind it, so its probes start the moment it runs, and that start-up does not compete with
/// the enforcer at t0.
pub trait ReadyRound {
    /// Probes every cell once; one result per cell, in any order.
    fn run(self) -> impl std::future::Future<Output = Vec<(usize, Probed)>> + Send;
}

/// A series under way.
pub trait RunningSeries {
    /// Waits for the series to end; every probe of every cell, in any order.
    fn finish(self) -> impl std::future::Future<Output = Vec<(usize, Probed)>> + Send;
}

/// How a step is judged.
#[derive(Debug, Clone)]
pub struct Judging {
    pub deny_rule: DenyRule,
    /// Judge loopback cells too (CNIs differ; off by default).
    pub judge_loopback: bool,
    /// How long disagreeing cells are re-probed before they count as wrong.
    pub converge_timeout: Duration,
    /// Full rounds after agreement; a flip in any of them is a failure (flapping).
    pub confirm_rounds: u32,
    /// First pause between re-probe rounds; doubles up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Spacing of the probes of a series (the resolution of time-to-enforce).
    pub series_spacing: Duration,
    /// How long a changed cell must agree before its series ends.
    pub series_window: Duration,
}

impl Default for Judging {
    fn default() -> Self {
        Judging {
            deny_rule: DenyRule::DroppedOrRejected,
            judge_loopback: false,
            converge_timeout: Duration::from_secs(30),
            confirm_rounds: 1,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            series_spacing: Duration::from_millis(50),
            series_window: Duration::from_millis(200),
        }
    }
}

/// How often a confirmation round retries probes that erred (not verdicts) before judging.
const CONFIRM_ERROR_RETRIES: u32 = 3;
/// How many rounds past the deadline a cell gets whose last probe the cluster interrupted.
const INTERRUPTED_RETRIES: u32 = 3;

fn agrees(outcome: Outcome, expected: Verdict, rule: DenyRule) -> bool {
    outcome.satisfies(expected, rule)
}

fn judged(cell: &ExpectedCell, j: &Judging) -> bool {
    !cell.cell.loopback || j.judge_loopback
}

/// Every attempt of every cell of a step, on the step's clock.
struct Book {
    t0: Instant,
    attempts: Vec<Vec<Attempt>>,
}

/// Milliseconds from `t0` to `t`, negative when `t` came first.
fn offset_ms(t0: Instant, t: Instant) -> i64 {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    match t.checked_duration_since(t0) {
        Some(after) => ms(after),
        None => -ms(t0.saturating_duration_since(t)),
    }
}

impl Book {
    fn record(&mut self, results: Vec<(usize, Probed)>, round: u32) {
        let mut touched = Vec::new();
        for (i, p) in results {
            let Some(a) = self.attempts.get_mut(i) else {
                continue;
            };
            a.push(Attempt {
                round,
                at_ms: offset_ms(self.t0, p.started),
                outcome: p.result.outcome,
                detail: p.result.detail,
                elapsed_ms: p.result.elapsed_ms,
                peer_identity: p.result.peer_identity,
                seq: p.result.seq,
            });
            touched.push(i);
        }
        // Within a round, the latest-started probe is the cell's current state.
        for i in touched {
            if let Some(a) = self.attempts.get_mut(i) {
                let from = a.iter().position(|x| x.round == round).unwrap_or(a.len());
                a[from..].sort_by_key(|x| (x.at_ms, x.seq));
            }
        }
    }

    fn last(&self, i: usize) -> Option<Outcome> {
        self.attempts[i].last().map(|a| a.outcome)
    }
}

/// A step whose series (if it changes any cell) is already running and whose first round of the
/// other cells is ready: the step's changes are made between [`begin_step`] and [`run_step`].
pub struct Begun<P: Prober> {
    /// Which cells are in the series: changed and judged.
    in_series: Vec<bool>,
    series: Option<P::Series>,
    round: Option<P::Round>,
    /// When the series stops starting probes (`None`: no series).
    series_deadline: Option<Instant>,
}

/// Starts the series of the cells the step changes (`changed[i]`), before its changes are made
/// (their first probes show the state before the step, so the first probe after the change is
/// at most one spacing late), and gets the round of the other cells ready.
pub async fn begin_step<P: Prober>(
    prober: &P,
    cells: &[ExpectedCell],
    changed: &[bool],
    judging: &Judging,
) -> Begun<P> {
    let in_series: Vec<bool> = (0..cells.len())
        .map(|i| changed.get(i).copied().unwrap_or(false) && judged(&cells[i], judging))
        .collect();
    let series_cells: Vec<(usize, &ExpectedCell)> = cells
        .iter()
        .enumerate()
        .filter(|(i, _)| in_series[*i])
        .collect();
    let once_cells: Vec<(usize, &ExpectedCell)> = cells
        .iter()
        .enumerate()
        .filter(|(i, _)| !in_series[*i])
        .collect();
    let plan = SeriesPlan {
        spacing: judging.series_spacing,
        window: judging.series_window,
        deadline: Instant::now() + judging.converge_timeout,
        deny_rule: judging.deny_rule,
    };
    let (series, round) = tokio::join!(
        async {
            if series_cells.is_empty() {
                None
            } else {
                Some(prober.start_series(&series_cells, &plan).await)
            }
        },
        async {
            if once_cells.is_empty() {
                None
            } else {
                Some(prober.ready_round(&once_cells).await)
            }
        }
    );
    Begun {
        in_series,
        series_deadline: series.is_some().then_some(plan.deadline),
        series,
        round,
    }
}

/// Runs one step whose changes are in place: `t0` is when the API server accepted the last of
/// them. The cells in `begun`'s series give the time-to-enforce.
pub async fn run_step<P: Prober>(
    prober: &P,
    cells: &[ExpectedCell],
    judging: &Judging,
    begun: Begun<P>,
    t0: Instant,
) -> StepResult {
    let mut book = Book {
        t0,
        attempts: vec![Vec::new(); cells.len()],
    };
    let settled = |book: &Book, i: usize| -> bool {
        match book.last(i) {
            None => false,
            // Unsupported will not change by waiting; judged cells must agree.
            Some(Outcome::Unsupported) => true,
            Some(o) => {
                !judged(&cells[i], judging) || agrees(o, cells[i].verdict, judging.deny_rule)
            }
        }
    };
    let in_series = |i: usize| begun.in_series.get(i).copied().unwrap_or(false);

    // 1. The series of the changed cells runs on; the others get one full round meanwhile.
    let all: Vec<(usize, &ExpectedCell)> = cells.iter().enumerate().collect();
    let series: Vec<(usize, &ExpectedCell)> =
        all.iter().copied().filter(|(i, _)| in_series(*i)).collect();
    let deadline = t0 + judging.converge_timeout;
    let mut round = 1;
    let (streamed, probed) = tokio::join!(
        async {
            match begun.series {
                Some(s) => s.finish().await,
                None => Vec::new(),
            }
        },
        async {
            match begun.round {
                Some(r) => r.run().await,
                None => Vec::new(),
            }
        }
    );
    book.record(streamed, round);
    book.record(probed, round);

    // 2. Re-probe what disagrees, with backoff, until agreement or the deadline. Past the
    //    deadline, a cell whose last probe the cluster interrupted still has no evidence either
    //    way: it gets a few more rounds, so that a flaky cluster ends in evidence or in an
    //    interruption (an environment problem), never in a probe error or a verdict it did
    //    not earn.
    let mut pause = judging.backoff;
    let mut grace = INTERRUPTED_RETRIES;
    loop {
        let mut pending: Vec<(usize, &ExpectedCell)> = all
            .iter()
            .filter(|(i, _)| !settled(&book, *i))
            .copied()
            .collect();
        let past = Instant::now() >= deadline;
        if past {
            pending.retain(|(i, _)| book.last(*i) == Some(Outcome::Interrupted));
            if grace == 0 {
                pending.clear();
            }
            grace = grace.saturating_sub(1);
        }
        if pending.is_empty() {
            break;
        }
        let wait = if past {
            pause
        } else {
            pause.min(deadline.saturating_duration_since(Instant::now()))
        };
        tokio::time::sleep(wait).await;
        pause = (pause * 2).min(judging.max_backoff);
        round += 1;
        book.record(prober.probe(&pending).await, round);
    }
    let converged = (0..cells.len()).all(|i| settled(&book, i));

    // Time-to-enforce, from what was seen before confirmation: over the changed cells, or over
    // every judged cell when the step changes none.
    let measured: Vec<usize> = if series.is_empty() {
        (0..cells.len())
            .filter(|i| judged(&cells[*i], judging) && book.last(*i) != Some(Outcome::Unsupported))
            .collect()
    } else {
        series
            .iter()
            .map(|(i, _)| *i)
            .filter(|i| book.last(*i) != Some(Outcome::Unsupported))
            .collect()
    };
    // A changed cell the cluster interrupted during its series (restart markers, an agent that
    // could not run) may have seen a restarting server, not the enforcer: no figure from it,
    // and none for the step, which would otherwise be timed without its slowest cell maybe.
    let disturbed: Vec<bool> = (0..cells.len())
        .map(|i| {
            in_series(i)
                && book.attempts[i]
                    .iter()
                    .any(|a| a.round == 1 && a.outcome == Outcome::Interrupted)
        })
        .collect();
    let onsets: Vec<_> = (0..cells.len())
        .map(|i| cell_onset(&book.attempts[i], cells[i].verdict, judging.deny_rule))
        .collect();
    let time_to_enforce_disturbed = measured.iter().filter(|i| disturbed[**i]).count();
    // A series that stopped probing before the step's last change was accepted saw none of
    // the enforcer's work (a step of 1,000 policies can take that long to apply).
    let series_ended_before_changes = begun.series_deadline.is_some_and(|d| d <= t0);
    let step = if time_to_enforce_disturbed > 0 || series_ended_before_changes {
        None
    } else {
        step_enforced(&measured.iter().map(|i| onsets[*i]).collect::<Vec<_>>())
    };

    // 3. Confirmation: the whole matrix again; a cell whose verdict changes flaps. A probe that
    //    errs is not a verdict: it is retried a few times before the round is judged. Also when
    //    the step did not converge: a cell that agreed in the first round may have been probed
    //    before a real enforcer programmed the step (it does so after the API server accepts
    //    it), and a CNI that then breaks that path must not leave it passed on that evidence.
    //    Then only the cells that agreed are confirmed: the others' evidence is from the deadline.
    let before: Vec<Option<Outcome>> = (0..cells.len()).map(|i| book.last(i)).collect();
    let mut flapped = vec![false; cells.len()];
    let confirming: Vec<(usize, &ExpectedCell)> = if converged {
        all.clone()
    } else {
        all.iter()
            .copied()
            .filter(|(i, _)| settled(&book, *i))
            .collect()
    };
    if !confirming.is_empty() {
        for _ in 0..judging.confirm_rounds {
            round += 1;
            book.record(prober.probe(&confirming).await, round);
            let mut pause = judging.backoff;
            for _ in 0..CONFIRM_ERROR_RETRIES {
                let erring: Vec<(usize, &ExpectedCell)> = confirming
                    .iter()
                    .filter(|(i, _)| {
                        book.last(*i)
                            .is_some_and(|o| o.verdict().is_none() && o != Outcome::Unsupported)
                    })
                    .copied()
                    .collect();
                if erring.is_empty() {
                    break;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(judging.max_backoff);
                round += 1;
                book.record(prober.probe(&erring).await, round);
            }
            for (i, f) in flapped.iter_mut().enumerate() {
                let was = before[i].and_then(|o| o.verdict());
                let now = book.last(i).and_then(|o| o.verdict());
                if was.is_some() && now.is_some() && was != now {
                    *f = true;
                }
            }
        }
    }

    let results: Vec<CellResult> = cells
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let tries = std::mem::take(&mut book.attempts[i]);
            let final_outcome = tries.last().map(|a| a.outcome);
            let status = classify(c, final_outcome, flapped[i], judging);
            let enforced = (in_series(i) && !disturbed[i] && !series_ended_before_changes)
                .then(|| onsets[i].map(|o| cell_enforced(&o)))
                .flatten();
            CellResult {
                expected: c.clone(),
                status,
                attempts: tries,
                explanation: None,
                cni_account: None,
                changed: in_series(i),
                time_to_enforce: enforced.map(|e| e.at),
                time_to_enforce_resolution: enforced.map(|e| e.resolution),
            }
        })
        .collect();
    StepResult {
        cells: results,
        time_to_enforce: step.map(|e| e.at),
        time_to_enforce_resolution: step.map(|e| e.resolution),
        changed_cells: series.len(),
        time_to_enforce_disturbed,
        series_ended_before_changes,
        rounds: round,
        // The prober's counters are read around the step by whoever knows the prober.
        resilience: Default::default(),
        load: Default::default(),
    }
}

/// One place that turns outcomes into a cell status. Errors and wrong peers are never verdicts.
fn classify(cell: &ExpectedCell, last: Option<Outcome>, flapped: bool, j: &Judging) -> CellStatus {
    let Some(o) = last else {
        return CellStatus::Error;
    };
    if o == Outcome::Unsupported {
        return CellStatus::Unsupported;
    }
    if !judged(cell, j) {
        return CellStatus::NotJudged;
    }
    if flapped {
        return CellStatus::Flapping;
    }
    match o {
        Outcome::Interrupted => CellStatus::Interrupted,
        Outcome::Error | Outcome::WrongPeer | Outcome::DnsFailed => CellStatus::Error,
        _ if agrees(o, cell.verdict, j.deny_rule) => CellStatus::Pass,
        _ => CellStatus::Fail,
    }
}

#[cfg(test)]
mod tests;
