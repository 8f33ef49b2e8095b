//! Convergence, confirmation and time-to-enforce, on a scripted prober.

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

// Found with 1,000 policies: applying the step took longer than its series ran, so the series
// saw only the old state, and the step was reported "never enforced" though it passed. It is
// not timed, says why, and its verdicts stand on the rounds after t0.
#[tokio::test]
async fn a_series_that_ended_before_the_changes_were_in_place_times_nothing() {
    let cells = [cell("x/a", "y/b", Verdict::Deny)];
    let judging = Judging {
        converge_timeout: Duration::from_millis(400),
        ..series_judging()
    };
    let fake = Fake::new(|_, _| Outcome::Dropped).with_series(|_, _| (Outcome::Connected, 5));
    let begun = begin_step(&fake, &cells, &[true], &judging).await;
    // The last change is accepted 600 ms after the series' deadline.
    let t0 = Instant::now() + Duration::from_secs(1);
    let r = run_step(&fake, &cells, &judging, begun, t0).await;
    assert_eq!(statuses(&r), [CellStatus::Pass]);
    assert!(r.series_ended_before_changes);
    assert_eq!(r.time_to_enforce, None);
    assert_eq!(r.cells[0].time_to_enforce, None);
    let stats = crate::runner::enforce::stats([&r]);
    assert_eq!((stats.never, stats.late), (0, 1));
    assert!(
        stats
            .summary()
            .contains("1 step(s) not timed (their changes took longer"),
        "{}",
        stats.summary()
    );
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
    let fake = Fake::new(|_, _| Outcome::Unsupported).with_series(|_, _| (Outcome::Unsupported, 0));
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
