//! Running one step's matrix (DESIGN §6): a full round, re-probes of disagreeing cells with backoff
//! until they agree or the deadline passes, then confirmation rounds where any flip is a failure.

use super::result::{Attempt, CellResult, CellStatus, StepResult};
use crate::model::Verdict;
use crate::probe::{DenyRule, Outcome, ProbeResult};
use crate::scenario::ExpectedCell;
use std::time::{Duration, Instant};

/// Something that can probe cells: a fixture in a cluster, or a fake in tests.
pub trait Prober {
    /// Probes the given cells (indices into the step's cell list) once each and returns one result
    /// per requested index, in any order. Implementations batch: one exec per source pod.
    fn probe(
        &self,
        cells: &[(usize, &ExpectedCell)],
    ) -> impl std::future::Future<Output = Vec<(usize, ProbeResult)>> + Send;
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
        }
    }
}

/// How often a confirmation round retries probes that erred (not verdicts) before judging.
const CONFIRM_ERROR_RETRIES: u32 = 3;

fn agrees(outcome: Outcome, expected: Verdict, rule: DenyRule) -> bool {
    outcome.satisfies(expected, rule)
}

fn judged(cell: &ExpectedCell, j: &Judging) -> bool {
    !cell.cell.loopback || j.judge_loopback
}

/// Runs one step. `started` is when the step's changes were in place (time-to-enforce origin).
pub async fn run_step<P: Prober>(
    prober: &P,
    cells: &[ExpectedCell],
    judging: &Judging,
    started: Instant,
) -> StepResult {
    let mut attempts: Vec<Vec<Attempt>> = vec![Vec::new(); cells.len()];
    let record =
        |attempts: &mut Vec<Vec<Attempt>>, results: Vec<(usize, ProbeResult)>, round: u32| {
            for (i, r) in results {
                if let Some(a) = attempts.get_mut(i) {
                    a.push(Attempt {
                        round,
                        at_ms: started.elapsed().as_millis() as u64,
                        outcome: r.outcome,
                        detail: r.detail,
                        elapsed_ms: r.elapsed_ms,
                        peer_identity: r.peer_identity,
                    });
                }
            }
        };
    let last = |attempts: &Vec<Vec<Attempt>>, i: usize| attempts[i].last().map(|a| a.outcome);
    let settled = |attempts: &Vec<Vec<Attempt>>, i: usize| -> bool {
        match last(attempts, i) {
            None => false,
            // Unsupported will not change by waiting; judged cells must agree.
            Some(Outcome::Unsupported) => true,
            Some(o) => {
                !judged(&cells[i], judging) || agrees(o, cells[i].verdict, judging.deny_rule)
            }
        }
    };

    // 1. The full round.
    let all: Vec<(usize, &ExpectedCell)> = cells.iter().enumerate().collect();
    let mut round = 1;
    record(&mut attempts, prober.probe(&all).await, round);

    // 2. Re-probe what disagrees, with backoff, until agreement or the deadline.
    let deadline = started + judging.converge_timeout;
    let mut pause = judging.backoff;
    loop {
        let pending: Vec<(usize, &ExpectedCell)> = all
            .iter()
            .filter(|(i, _)| !settled(&attempts, *i))
            .copied()
            .collect();
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        let wait = pause.min(deadline.saturating_duration_since(Instant::now()));
        tokio::time::sleep(wait).await;
        pause = (pause * 2).min(judging.max_backoff);
        round += 1;
        record(&mut attempts, prober.probe(&pending).await, round);
    }
    let converged = (0..cells.len()).all(|i| settled(&attempts, i));
    let time_to_enforce = converged.then(|| started.elapsed());

    // 3. Confirmation: the whole matrix again; a cell whose verdict changes flaps. A probe that
    //    errs is not a verdict: it is retried a few times before the round is judged.
    let before: Vec<Option<Outcome>> = (0..cells.len()).map(|i| last(&attempts, i)).collect();
    let mut flapped = vec![false; cells.len()];
    if converged {
        for _ in 0..judging.confirm_rounds {
            round += 1;
            record(&mut attempts, prober.probe(&all).await, round);
            let mut pause = judging.backoff;
            for _ in 0..CONFIRM_ERROR_RETRIES {
                let erring: Vec<(usize, &ExpectedCell)> = all
                    .iter()
                    .filter(|(i, _)| {
                        last(&attempts, *i)
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
                record(&mut attempts, prober.probe(&erring).await, round);
            }
            for (i, f) in flapped.iter_mut().enumerate() {
                let was = before[i].and_then(|o| o.verdict());
                let now = last(&attempts, i).and_then(|o| o.verdict());
                if was.is_some() && now.is_some() && was != now {
                    *f = true;
                }
            }
        }
    }

    let results = cells
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let tries = std::mem::take(&mut attempts[i]);
            let final_outcome = tries.last().map(|a| a.outcome);
            let status = classify(c, final_outcome, flapped[i], judging);
            CellResult {
                expected: c.clone(),
                status,
                attempts: tries,
                explanation: None,
            }
        })
        .collect();
    StepResult {
        cells: results,
        time_to_enforce,
        rounds: round,
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
        Outcome::Error | Outcome::WrongPeer | Outcome::DnsFailed => CellStatus::Error,
        _ if agrees(o, cell.verdict, j.deny_rule) => CellStatus::Pass,
        _ => CellStatus::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PodRef, Protocol, Via};
    use crate::scenario::plan::{Cell, Source};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

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

    /// A fake cluster: `script(cell index, call number) -> outcome`.
    struct Fake<F: Fn(usize, u32) -> Outcome + Sync> {
        script: F,
        calls: AtomicU32,
        probed: Mutex<Vec<usize>>,
    }

    impl<F: Fn(usize, u32) -> Outcome + Sync> Fake<F> {
        fn new(script: F) -> Self {
            Fake {
                script,
                calls: AtomicU32::new(0),
                probed: Mutex::new(Vec::new()),
            }
        }
    }

    impl<F: Fn(usize, u32) -> Outcome + Sync + Send> Prober for Fake<F> {
        async fn probe(&self, cells: &[(usize, &ExpectedCell)]) -> Vec<(usize, ProbeResult)> {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut p) = self.probed.lock() {
                p.extend(cells.iter().map(|(i, _)| *i));
            }
            cells
                .iter()
                .map(|(i, _)| {
                    (
                        *i,
                        ProbeResult {
                            id: i.to_string(),
                            outcome: (self.script)(*i, call),
                            detail: String::new(),
                            elapsed_ms: 1,
                            peer_identity: None,
                            addresses: Vec::new(),
                        },
                    )
                })
                .collect()
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
        let r = run_step(&fake, &cells, &fast(), Instant::now()).await;
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
        let r = run_step(&fake, &cells, &fast(), Instant::now()).await;
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
        let r = run_step(&fake, &cells, &fast(), t).await;
        assert_eq!(statuses(&r), [CellStatus::Fail]);
        assert!(r.time_to_enforce.is_none());
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "waited for the deadline"
        );
        assert!(r.cells[0].attempts.len() > 2, "re-probed with backoff");
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
        let r = run_step(&fake, &cells, &fast(), Instant::now()).await;
        assert_eq!(statuses(&r), [CellStatus::Error, CellStatus::Error]);
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
        let r = run_step(&fake, &cells, &fast(), Instant::now()).await;
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
        let r = run_step(&fake, &cells, &fast(), Instant::now()).await;
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
        let r = run_step(&fake, &cells, &fast(), Instant::now()).await;
        assert_eq!(statuses(&r), [CellStatus::Error]);
    }

    #[tokio::test]
    async fn rejected_counts_as_deny_unless_the_profile_demands_drops() {
        let cells = [cell("x/a", "y/b", Verdict::Deny)];
        let fake = Fake::new(|_, _| Outcome::Rejected);
        let r = run_step(&fake, &cells, &fast(), Instant::now()).await;
        assert_eq!(statuses(&r), [CellStatus::Pass]);
        let strict = Judging {
            deny_rule: DenyRule::DroppedOnly,
            ..fast()
        };
        let r = run_step(&fake, &cells, &strict, Instant::now()).await;
        assert_eq!(statuses(&r), [CellStatus::Fail]);
    }

    #[tokio::test]
    async fn loopback_is_reported_but_not_judged_by_default() {
        let cells = [cell("x/a", "x/a", Verdict::Deny)];
        let fake = Fake::new(|_, _| Outcome::Connected);
        let r = run_step(&fake, &cells, &fast(), Instant::now()).await;
        assert_eq!(statuses(&r), [CellStatus::NotJudged]);
        assert_eq!(r.cells[0].attempts[0].outcome, Outcome::Connected);
        let judge = Judging {
            judge_loopback: true,
            ..fast()
        };
        let r = run_step(&fake, &cells, &judge, Instant::now()).await;
        assert_eq!(statuses(&r), [CellStatus::Fail]);
    }

    #[tokio::test]
    async fn unsupported_cells_are_neither_passed_nor_failed_nor_retried() {
        let cells = [cell("x/a", "y/b", Verdict::Deny)];
        let fake = Fake::new(|_, _| Outcome::Unsupported);
        let r = run_step(&fake, &cells, &fast(), Instant::now()).await;
        assert_eq!(statuses(&r), [CellStatus::Unsupported]);
        assert_eq!(fake.calls.load(Ordering::SeqCst), 2, "no re-probes");
    }
}
