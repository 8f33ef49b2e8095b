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
    let step = if time_to_enforce_disturbed > 0 {
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
            let enforced = (in_series(i) && !disturbed[i])
                .then(|| onsets[i].map(|o| cell_enforced(&o)))
                .flatten();
            CellResult {
                expected: c.clone(),
                status,
                attempts: tries,
                explanation: None,
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
        rounds: round,
        // The prober's counters are read around the step by whoever knows the prober.
        resilience: Default::default(),
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
mod tests {
    use super::*;
    use crate::scenario::plan::{Cell, Source};
    use netassay_core::model::{PodRef, Protocol, Via};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    fn cell(from: &str, to: &str, verdict: Verdict) -> ExpectedCell {
        let from: PodRef = from.parse().expect("pod");
        let to: PodRef = to.parse().expect("pod");
        ExpectedCell {
            cell: Cell {
                loopback: from == to,
                from,
                to,
                port: 80,
                port_name: None,
                protocol: Protocol::Tcp,
                via: Via::PodIp,
            },
            verdict,
            ip_dependent: false,
            source: Source::Oracle,
        }
    }

    /// A series script: `(cell index, start ms since t0) -> (outcome, elapsed ms)`.
    type SeriesScript = Box<dyn Fn(usize, i64) -> (Outcome, u64) + Send + Sync>;

    /// A fake cluster: `script(cell index, call number) -> outcome` for rounds, and for series a
    /// script over virtual time (no sleeping: probes start at exact multiples of the spacing).
    struct Inner<F> {
        script: F,
        series_script: Option<SeriesScript>,
        t0: Instant,
        /// How long before t0 a series starts (the step's changes take that long).
        lead_ms: u64,
        calls: AtomicU32,
        probed: Mutex<Vec<usize>>,
        streamed: Mutex<Vec<usize>>,
    }

    struct Fake<F>(Arc<Inner<F>>);

    impl<F> std::ops::Deref for Fake<F> {
        type Target = Inner<F>;
        fn deref(&self) -> &Inner<F> {
            &self.0
        }
    }

    impl<F: Fn(usize, u32) -> Outcome + Sync> Fake<F> {
        fn new(script: F) -> Self {
            Fake(Arc::new(Inner {
                script,
                series_script: None,
                t0: Instant::now(),
                lead_ms: 0,
                calls: AtomicU32::new(0),
                probed: Mutex::new(Vec::new()),
                streamed: Mutex::new(Vec::new()),
            }))
        }

        fn inner_mut(&mut self) -> &mut Inner<F> {
            Arc::get_mut(&mut self.0).expect("not shared yet")
        }

        fn with_series(
            mut self,
            s: impl Fn(usize, i64) -> (Outcome, u64) + Send + Sync + 'static,
        ) -> Self {
            self.inner_mut().series_script = Some(Box::new(s));
            self
        }

        fn with_lead(mut self, lead_ms: u64) -> Self {
            self.inner_mut().lead_ms = lead_ms;
            self
        }
    }

    fn result(i: usize, outcome: Outcome, elapsed_ms: u64, seq: Option<u32>) -> ProbeResult {
        ProbeResult {
            id: i.to_string(),
            outcome,
            detail: String::new(),
            elapsed_ms,
            peer_identity: None,
            addresses: Vec::new(),
            start_ms: None,
            seq,
        }
    }

    impl<F: Fn(usize, u32) -> Outcome + Sync> Inner<F> {
        fn round(&self, cells: &[usize]) -> Vec<(usize, Probed)> {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut p) = self.probed.lock() {
                p.extend(cells.iter().copied());
            }
            cells
                .iter()
                .map(|i| {
                    (
                        *i,
                        Probed::now(result(*i, (self.script)(*i, call), 1, None)),
                    )
                })
                .collect()
        }
    }

    struct FakeSeries(Vec<(usize, Probed)>);

    impl RunningSeries for FakeSeries {
        async fn finish(self) -> Vec<(usize, Probed)> {
            self.0
        }
    }

    struct FakeRound<F>(Arc<Inner<F>>, Vec<usize>);

    impl<F: Fn(usize, u32) -> Outcome + Sync + Send> ReadyRound for FakeRound<F> {
        async fn run(self) -> Vec<(usize, Probed)> {
            self.0.round(&self.1)
        }
    }

    async fn run<F: Fn(usize, u32) -> Outcome + Sync + Send + 'static>(
        fake: &Fake<F>,
        cells: &[ExpectedCell],
        changed: &[bool],
        judging: &Judging,
        t0: Instant,
    ) -> StepResult {
        let begun = begin_step(fake, cells, changed, judging).await;
        run_step(fake, cells, judging, begun, t0).await
    }

    impl<F: Fn(usize, u32) -> Outcome + Sync + Send + 'static> Prober for Fake<F> {
        type Series = FakeSeries;
        type Round = FakeRound<F>;

        async fn probe(&self, cells: &[(usize, &ExpectedCell)]) -> Vec<(usize, Probed)> {
            self.round(&cells.iter().map(|(i, _)| *i).collect::<Vec<_>>())
        }

        async fn ready_round(&self, cells: &[(usize, &ExpectedCell)]) -> FakeRound<F> {
            FakeRound(self.0.clone(), cells.iter().map(|(i, _)| *i).collect())
        }

        async fn start_series(
            &self,
            cells: &[(usize, &ExpectedCell)],
            plan: &SeriesPlan,
        ) -> FakeSeries {
            use netassay_core::probe::series::{Next, Series, SeriesCell};
            let script = self.series_script.as_ref().expect("a series script");
            if let Ok(mut p) = self.streamed.lock() {
                p.extend(cells.iter().map(|(i, _)| *i));
            }
            // The agent's clock starts `lead_ms` before t0.
            let origin = self.t0 - Duration::from_millis(self.lead_ms);
            let series = Series {
                spacing_ms: plan.spacing.as_millis() as u64,
                window_ms: plan.window.as_millis() as u64,
                deadline_ms: plan.deadline.saturating_duration_since(origin).as_millis() as u64,
                deny_rule: plan.deny_rule,
            };
            let mut books: Vec<SeriesCell> = cells
                .iter()
                .map(|(_, c)| SeriesCell::new(c.verdict))
                .collect();
            // (end ms, cell position, seq, outcome, elapsed, start)
            let mut flying: Vec<(u64, usize, u32, Outcome, u64, u64)> = Vec::new();
            let mut out = Vec::new();
            let mut t = 0;
            loop {
                flying.sort_by_key(|f| f.0);
                while flying.first().is_some_and(|f| f.0 <= t) {
                    let (_, k, seq, outcome, elapsed, start) = flying.remove(0);
                    books[k].finished(seq, elapsed, outcome);
                    out.push((
                        cells[k].0,
                        Probed {
                            result: result(cells[k].0, outcome, elapsed, Some(seq)),
                            started: origin + Duration::from_millis(start),
                        },
                    ));
                }
                let open = t < series.deadline_ms;
                if flying.is_empty()
                    && (!open || books.iter().all(|b| b.next(&series, t) == Next::Done))
                {
                    break;
                }
                if open {
                    for (k, b) in books.iter_mut().enumerate() {
                        if b.next(&series, t) == Next::Probe {
                            let since_t0 = t as i64 - self.lead_ms as i64;
                            let (outcome, elapsed) = script(cells[k].0, since_t0);
                            let seq = b.started(t);
                            flying.push((t + elapsed, k, seq, outcome, elapsed, t));
                        }
                    }
                }
                t += series.spacing_ms;
            }
            FakeSeries(out)
        }
    }

    fn fast() -> Judging {
        Judging {
            converge_timeout: Duration::from_millis(300),
            backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            ..Judging::default()
        }
    }

    fn statuses(r: &StepResult) -> Vec<CellStatus> {
        r.cells.iter().map(|c| c.status).collect()
    }

    #[tokio::test]
    async fn agreeing_cells_pass_after_one_round_plus_confirmation() {
        let cells = [
            cell("x/a", "y/a", Verdict::Allow),
            cell("x/a", "y/b", Verdict::Deny),
        ];
        let fake = Fake::new(|i, _| {
            if i == 0 {
                Outcome::Connected
            } else {
                Outcome::Dropped
            }
        });
        let r = run(&fake, &cells, &[], &fast(), Instant::now()).await;
        assert_eq!(statuses(&r), [CellStatus::Pass, CellStatus::Pass]);
        assert_eq!(
            fake.calls.load(Ordering::SeqCst),
            2,
            "one round and one confirmation"
        );
        assert!(r.time_to_enforce.is_some());
    }

    #[tokio::test]
    async fn late_enforcement_converges_and_only_disagreeing_cells_are_reprobed() {
        // Cell 1 keeps connecting for the first two calls (policy not yet enforced), then drops.
        let cells = [
            cell("x/a", "y/a", Verdict::Allow),
            cell("x/a", "y/b", Verdict::Deny),
        ];
        let fake = Fake::new(|i, call| match (i, call) {
            (0, _) => Outcome::Connected,
            (_, c) if c < 2 => Outcome::Connected,
            _ => Outcome::Dropped,
        });
        let r = run(&fake, &cells, &[], &fast(), Instant::now()).await;
        assert_eq!(statuses(&r), [CellStatus::Pass, CellStatus::Pass]);
        let probed = fake.probed.lock().expect("lock").clone();
        // round 1: both; round 2: only cell 1; round 3: only cell 1 (now agrees); confirm: both.
        assert_eq!(probed, [0, 1, 1, 1, 0, 1]);
        assert_eq!(r.cells[1].attempts.len(), 4);
    }

    #[tokio::test]
    async fn a_cell_that_never_agrees_fails_at_the_deadline() {
        let cells = [cell("x/a", "y/b", Verdict::Deny)];
        let fake = Fake::new(|_, _| Outcome::Connected);
        let t = Instant::now();
        let r = run(&fake, &cells, &[], &fast(), t).await;
        assert_eq!(statuses(&r), [CellStatus::Fail]);
        assert!(r.time_to_enforce.is_none());
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "waited for the deadline"
        );
        assert!(r.cells[0].attempts.len() > 2, "re-probed with backoff");
    }

    // Found on the reference cluster with ignore-named-ports: an unchanged cell's one round ran
    // before the node programmed the step and saw the old, correct path; the step never
    // converged (the fault), so no confirmation came, and the cell passed on evidence from
    // before enforcement. Confirmation runs whether or not the step converged.
    #[tokio::test]
    async fn a_cell_seen_before_enforcement_is_confirmed_when_the_step_does_not_converge() {
        let cells = [
            cell("x/a", "y/a", Verdict::Allow),
            cell("x/a", "y/b", Verdict::Deny),
        ];
        // Cell 0 connects in round 1 only (the buggy enforcer then drops it); cell 1 never agrees.
        let fake = Fake::new(|i, call| match (i, call) {
            (0, 0) => Outcome::Connected,
            (0, _) => Outcome::Dropped,
            _ => Outcome::Connected,
        });
        let r = run(&fake, &cells, &[], &fast(), Instant::now()).await;
        assert_eq!(statuses(&r), [CellStatus::Flapping, CellStatus::Fail]);
        assert_eq!(
            r.cells[0].attempts.last().map(|a| a.outcome),
            Some(Outcome::Dropped),
            "confirmed after the deadline"
        );
    }

    #[tokio::test]
    async fn errors_are_never_counted_as_denials() {
        // The bug netassay exists to avoid (kubernetes#124424): a broken probe passing a deny.
        let cells = [
            cell("x/a", "y/b", Verdict::Deny),
            cell("x/a", "y/c", Verdict::Allow),
        ];
        let fake = Fake::new(|i, _| {
            if i == 0 {
                Outcome::Error
            } else {
                Outcome::WrongPeer
            }
        });
        let r = run(&fake, &cells, &[], &fast(), Instant::now()).await;
        assert_eq!(statuses(&r), [CellStatus::Error, CellStatus::Error]);
    }

    // Issue 15: what the cluster interrupts (a restarted pod, a broken exec) is no evidence. Past
    // the deadline such a cell still gets a few rounds, and only such a cell: a cell that
    // disagreed at the deadline stays a failure.
    #[tokio::test]
    async fn a_cell_the_cluster_interrupted_is_probed_past_the_deadline_and_judged() {
        let cells = [
            cell("x/a", "y/b", Verdict::Deny),
            cell("x/a", "y/c", Verdict::Deny),
        ];
        let t = Instant::now();
        // Cell 0 is interrupted until 350 ms (past the 300 ms deadline); cell 1 never agrees.
        let fake = Fake::new(move |i, _| match i {
            0 if t.elapsed() < Duration::from_millis(350) => Outcome::Interrupted,
            0 => Outcome::Dropped,
            _ => Outcome::Connected,
        });
        let r = run(&fake, &cells, &[], &fast(), t).await;
        assert_eq!(statuses(&r), [CellStatus::Pass, CellStatus::Fail]);
        let last = r.cells[0].attempts.last().expect("attempts");
        assert!(last.at_ms >= 300, "probed past the deadline: {last:?}");
        let probed = fake.probed.lock().expect("lock").clone();
        let after_last_1 = probed.iter().rposition(|i| *i == 1).map_or(0, |p| p + 1);
        assert!(
            !probed[after_last_1..].is_empty() && probed[after_last_1..].iter().all(|i| *i == 0),
            "past the deadline only the interrupted cell is probed again: {probed:?}"
        );
    }

    #[tokio::test]
    async fn a_cell_the_cluster_keeps_interrupting_ends_interrupted_not_as_an_error() {
        let cells = [cell("x/a", "y/b", Verdict::Deny)];
        let fake = Fake::new(|_, _| Outcome::Interrupted);
        let t = Instant::now();
        let r = run(&fake, &cells, &[], &fast(), t).await;
        assert_eq!(statuses(&r), [CellStatus::Interrupted]);
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "waited the deadline"
        );
        // Every round before the deadline, then exactly INTERRUPTED_RETRIES more: bounded.
        let past: Vec<_> = r.cells[0]
            .attempts
            .iter()
            .filter(|a| a.at_ms >= 300)
            .collect();
        assert!(
            !past.is_empty() && past.len() <= INTERRUPTED_RETRIES as usize + 1,
            "{past:?}"
        );
    }

    #[tokio::test]
    async fn a_flip_during_confirmation_is_flapping_not_a_retry() {
        let cells = [cell("x/a", "y/b", Verdict::Deny)];
        // Agrees in round 1, then connects in the confirmation round.
        let fake = Fake::new(|_, call| {
            if call == 0 {
                Outcome::Dropped
            } else {
                Outcome::Connected
            }
        });
        let r = run(&fake, &cells, &[], &fast(), Instant::now()).await;
        assert_eq!(statuses(&r), [CellStatus::Flapping]);
    }

    #[tokio::test]
    async fn a_probe_error_during_confirmation_is_retried_not_called_flapping() {
        let cells = [cell("x/a", "y/b", Verdict::Deny)];
        // Agrees in round 1; the confirmation probe errs once (a lost exec), then agrees again.
        let fake = Fake::new(|_, call| {
            if call == 1 {
                Outcome::Error
            } else {
                Outcome::Dropped
            }
        });
        let r = run(&fake, &cells, &[], &fast(), Instant::now()).await;
        assert_eq!(statuses(&r), [CellStatus::Pass]);
        assert_eq!(r.cells[0].attempts.len(), 3);
    }

    #[tokio::test]
    async fn a_probe_that_keeps_erring_during_confirmation_is_an_error() {
        let cells = [cell("x/a", "y/b", Verdict::Deny)];
        let fake = Fake::new(|_, call| {
            if call == 0 {
                Outcome::Dropped
            } else {
                Outcome::Error
            }
        });
        let r = run(&fake, &cells, &[], &fast(), Instant::now()).await;
        assert_eq!(statuses(&r), [CellStatus::Error]);
    }

    #[tokio::test]
    async fn rejected_counts_as_deny_unless_the_profile_demands_drops() {
        let cells = [cell("x/a", "y/b", Verdict::Deny)];
        let fake = Fake::new(|_, _| Outcome::Rejected);
        let r = run(&fake, &cells, &[], &fast(), Instant::now()).await;
        assert_eq!(statuses(&r), [CellStatus::Pass]);
        let strict = Judging {
            deny_rule: DenyRule::DroppedOnly,
            ..fast()
        };
        let r = run(&fake, &cells, &[], &strict, Instant::now()).await;
        assert_eq!(statuses(&r), [CellStatus::Fail]);
    }

    #[tokio::test]
    async fn loopback_is_reported_but_not_judged_by_default() {
        let cells = [cell("x/a", "x/a", Verdict::Deny)];
        let fake = Fake::new(|_, _| Outcome::Connected);
        let r = run(&fake, &cells, &[], &fast(), Instant::now()).await;
        assert_eq!(statuses(&r), [CellStatus::NotJudged]);
        assert_eq!(r.cells[0].attempts[0].outcome, Outcome::Connected);
        let judge = Judging {
            judge_loopback: true,
            ..fast()
        };
        let r = run(&fake, &cells, &[], &judge, Instant::now()).await;
        assert_eq!(statuses(&r), [CellStatus::Fail]);
    }

    #[tokio::test]
    async fn unsupported_cells_are_neither_passed_nor_failed_nor_retried() {
        let cells = [cell("x/a", "y/b", Verdict::Deny)];
        let fake = Fake::new(|_, _| Outcome::Unsupported);
        let r = run(&fake, &cells, &[], &fast(), Instant::now()).await;
        assert_eq!(statuses(&r), [CellStatus::Unsupported]);
        assert_eq!(fake.calls.load(Ordering::SeqCst), 2, "no re-probes");
    }

    fn series_judging() -> Judging {
        Judging {
            converge_timeout: Duration::from_secs(20),
            series_spacing: Duration::from_millis(50),
            series_window: Duration::from_millis(200),
            ..fast()
        }
    }

    /// Allow -> deny enforced at 300 ms: probes started before connect in 2 ms, after it drop.
    fn deny_from_300(timeout_ms: u64) -> impl Fn(usize, i64) -> (Outcome, u64) + Send + Sync {
        move |_, start| {
            if start < 300 {
                (Outcome::Connected, 2)
            } else {
                (Outcome::Dropped, timeout_ms)
            }
        }
    }

    // DESIGN §7b: changed cells are probed as a series; the step's figure is the start of the
    // first probe after which every probe agreed, with the gap to the last one that did not.
    #[tokio::test]
    async fn changed_cells_run_as_a_series_and_give_the_time_to_enforce() {
        let cells = [
            cell("x/a", "y/a", Verdict::Allow),
            cell("x/a", "y/b", Verdict::Deny),
        ];
        let fake = Fake::new(|i, _| {
            if i == 0 {
                Outcome::Connected
            } else {
                Outcome::Dropped
            }
        })
        .with_series(deny_from_300(1000));
        let t0 = fake.t0;
        let r = run(&fake, &cells, &[false, true], &series_judging(), t0).await;
        assert_eq!(statuses(&r), [CellStatus::Pass, CellStatus::Pass]);
        assert_eq!(
            *fake.streamed.lock().unwrap(),
            [1],
            "only the changed cell streams"
        );
        assert_eq!(
            *fake.probed.lock().unwrap(),
            [0, 0, 1],
            "the unchanged cell's round, then the confirmation of both"
        );
        assert_eq!(r.changed_cells, 1);
        assert_eq!(r.time_to_enforce, Some(Duration::from_millis(300)));
        assert_eq!(
            r.time_to_enforce_resolution,
            Some(Duration::from_millis(48))
        );
        assert_eq!(r.cells[1].time_to_enforce, Some(Duration::from_millis(300)));
        assert!(r.cells[1].changed && !r.cells[0].changed);
        assert!(r.cells[1]
            .attempts
            .iter()
            .all(|a| a.round == 1 || a.seq.is_none()));
    }

    // The figure must not depend on the probe timeout (the issue: it used to read ~1,030 ms).
    #[tokio::test]
    async fn the_time_to_enforce_does_not_depend_on_the_probe_timeout() {
        let cells = [cell("x/a", "y/b", Verdict::Deny)];
        let mut seen = Vec::new();
        for timeout in [500, 1000, 5000] {
            let fake = Fake::new(|_, _| Outcome::Dropped).with_series(deny_from_300(timeout));
            let t0 = fake.t0;
            let r = run(&fake, &cells, &[true], &series_judging(), t0).await;
            seen.push((r.time_to_enforce, r.time_to_enforce_resolution));
        }
        // Enforced at 300 ms: the probe started at 300 is the first to drop, the one started at
        // 250 connected at 252; the same figure whatever the timeout (not merely equal ones: a
        // step with no figure at all would be equal too).
        let at_300 = (
            Some(Duration::from_millis(300)),
            Some(Duration::from_millis(48)),
        );
        assert_eq!(seen, [at_300; 3]);
    }

    // Deny -> allow: a probe that started before the change and connected on a retransmitted
    // handshake is evidence of when it got through, not of its start.
    #[tokio::test]
    async fn a_retransmitted_handshake_does_not_move_the_figure_earlier() {
        let cells = [cell("x/a", "y/b", Verdict::Allow)];
        let fake = Fake::new(|_, _| Outcome::Connected).with_series(|_, start| match start {
            ..=200 => (Outcome::Dropped, 1000),
            201..=299 => (Outcome::Connected, 1000),
            _ => (Outcome::Connected, 1),
        });
        let t0 = fake.t0;
        let r = run(&fake, &cells, &[true], &series_judging(), t0).await;
        assert_eq!(statuses(&r), [CellStatus::Pass]);
        assert_eq!(r.time_to_enforce, Some(Duration::from_millis(301)));
    }

    // The series starts while the step's changes are being made: its probes before t0 show the
    // old state and count as "not yet"; they must not shift the figure.
    #[tokio::test]
    async fn a_series_started_before_t0_measures_from_t0() {
        let cells = [cell("x/a", "y/b", Verdict::Deny)];
        let fake = Fake::new(|_, _| Outcome::Dropped)
            .with_series(deny_from_300(1000))
            .with_lead(120);
        let t0 = fake.t0;
        let r = run(&fake, &cells, &[true], &series_judging(), t0).await;
        assert_eq!(statuses(&r), [CellStatus::Pass]);
        let first = r.cells[0].attempts.first().map(|a| a.at_ms);
        assert_eq!(first, Some(-120));
        // Probes start at -120, -70, ..., 280, 330: the first after the change at 300 is 330.
        assert_eq!(r.time_to_enforce, Some(Duration::from_millis(330)));
        assert_eq!(
            r.time_to_enforce_resolution,
            Some(Duration::from_millis(48))
        );
    }

    // Issue 15: a series the cluster interrupted (a pod restarted under it) may have timed the
    // restart, not the enforcer: that cell and its step get no figure, and say why; the
    // verdicts still stand on the probes.
    #[tokio::test]
    async fn a_series_the_cluster_interrupted_gives_no_time_to_enforce() {
        let cells = [
            cell("x/a", "y/b", Verdict::Deny),
            cell("x/a", "y/c", Verdict::Deny),
        ];
        let deny = deny_from_300(1000);
        let fake = Fake::new(|_, _| Outcome::Dropped).with_series(move |i, start| {
            if i == 1 && (500..600).contains(&start) {
                (Outcome::Interrupted, 0)
            } else {
                deny(i, start)
            }
        });
        let t0 = fake.t0;
        let r = run(&fake, &cells, &[true, true], &series_judging(), t0).await;
        assert_eq!(statuses(&r), [CellStatus::Pass, CellStatus::Pass]);
        assert!(r.cells[0].time_to_enforce.is_some());
        assert_eq!(r.cells[1].time_to_enforce, None);
        assert_eq!(r.time_to_enforce, None);
        assert_eq!(r.time_to_enforce_disturbed, 1);
    }

    #[tokio::test]
    async fn a_changed_cell_that_never_agrees_fails_with_no_time_to_enforce() {
        let cells = [cell("x/a", "y/b", Verdict::Deny)];
        let judging = Judging {
            converge_timeout: Duration::from_millis(400),
            ..series_judging()
        };
        let fake = Fake::new(|_, _| Outcome::Connected).with_series(|_, _| (Outcome::Connected, 1));
        let t0 = fake.t0;
        let r = run(&fake, &cells, &[true], &judging, t0).await;
        assert_eq!(statuses(&r), [CellStatus::Fail]);
        assert_eq!(r.time_to_enforce, None);
        assert_eq!(r.cells[0].time_to_enforce, None);
    }

    // A step that changes no path has no series: it is timed on the rounds of its judged cells,
    // at the evidence of the first agreeing probe (a connection: when its answer came).
    #[tokio::test]
    async fn a_step_that_changes_nothing_is_timed_on_its_first_round() {
        let cells = [cell("x/a", "y/a", Verdict::Allow)];
        // t0 well before the probes, so the figure is a real offset from it, not zero.
        let t0 = Instant::now() - Duration::from_millis(400);
        let fake = Fake::new(|_, _| Outcome::Connected);
        let r = run(&fake, &cells, &[false], &series_judging(), t0).await;
        assert_eq!(r.changed_cells, 0);
        let first = &r.cells[0].attempts[0];
        assert_eq!((first.round, first.outcome), (1, Outcome::Connected));
        // The fake's probes take 1 ms: the figure is the first round's answer, and with no
        // earlier disagreement the change lies anywhere since t0 (resolution = the figure).
        let answered = Duration::from_millis(first.at_ms as u64 + 1);
        assert!(answered >= Duration::from_millis(401), "{answered:?}");
        assert_eq!(r.time_to_enforce, Some(answered));
        assert_eq!(r.time_to_enforce_resolution, Some(answered));

        // A first round that disagrees narrows it: the change lies between that round's probe
        // (a drop is evidence at its start) and the answer of the first agreeing one.
        let fake = Fake::new(|_, call| {
            if call == 0 {
                Outcome::Dropped
            } else {
                Outcome::Connected
            }
        });
        let r = run(&fake, &cells, &[false], &series_judging(), t0).await;
        let attempts = &r.cells[0].attempts;
        assert_eq!(
            (attempts[0].round, attempts[0].outcome),
            (1, Outcome::Dropped)
        );
        assert_eq!(
            (attempts[1].round, attempts[1].outcome),
            (2, Outcome::Connected)
        );
        let dropped_at = attempts[0].at_ms as u64;
        let answered = attempts[1].at_ms as u64 + 1;
        assert!(
            answered >= dropped_at + 5,
            "the retry waits the backoff (5 ms): {attempts:?}"
        );
        assert_eq!(r.time_to_enforce, Some(Duration::from_millis(answered)));
        assert_eq!(
            r.time_to_enforce_resolution,
            Some(Duration::from_millis(answered - dropped_at))
        );
    }

    #[tokio::test]
    async fn unsupported_changed_cells_are_not_measured() {
        let cells = [cell("x/a", "y/b", Verdict::Deny)];
        let fake =
            Fake::new(|_, _| Outcome::Unsupported).with_series(|_, _| (Outcome::Unsupported, 0));
        let t0 = fake.t0;
        let r = run(&fake, &cells, &[true], &series_judging(), t0).await;
        assert_eq!(statuses(&r), [CellStatus::Unsupported]);
        assert_eq!(r.time_to_enforce, None);
        assert_eq!(
            r.cells[0].attempts.len(),
            2,
            "one series probe, one confirmation"
        );
    }
}
