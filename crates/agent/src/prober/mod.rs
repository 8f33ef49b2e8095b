//! `agent probe`: runs a batch concurrently (bounded by a semaphore) and hands over each result
//! the moment its probe completes.
//!
//! Every probe's timeout runs from its own start, which is when it gets a concurrency slot; a
//! probe waiting for a slot is not yet timing out. Results arrive through one channel and are
//! passed to a single callback, so the caller has exactly one writer. A batch with a series runs
//! in `series` instead: the same probes, started again and again.

mod context;
mod dns;
mod finding;
mod http;
mod prepared;
mod reporter;
mod series;
mod stream;
mod udp;

use self::context::Context;
use self::reporter::{millis, Reporter};
use netassay_core::probe::{AgentLine, BatchSummary, ProbeResult};
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

pub use self::prepared::{prepare, PreparedBatch};

/// Runs every probe of `batch`, at most `concurrency` at a time, calling `on_line` with each
/// result as it completes; returns the summary once all have. A batch with a series runs as one
/// (its first line says that it started).
pub async fn run_batch<F: FnMut(AgentLine)>(batch: PreparedBatch, mut on_line: F) -> BatchSummary {
    let schema = batch.schema.clone();
    let summary = match batch.series {
        Some(s) => series::run(batch, s, on_line).await,
        None => run_once(batch, |r| on_line(AgentLine::Result(r))).await,
    };
    summary.with_schema(&schema)
}

async fn run_once<F: FnMut(ProbeResult)>(batch: PreparedBatch, mut on_result: F) -> BatchSummary {
    let origin = Instant::now();
    let started = std::time::Instant::now();
    let total = batch.probes.len();
    let timeout_ms = batch.timeout_ms;
    let context = Context::for_batch(&batch).await;
    let slots = Arc::new(Semaphore::new(batch.concurrency));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let launcher = tokio::spawn(async move {
        for probe in batch.probes {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break;
            };
            let reporter = Reporter {
                id: Some(probe.spec.id.clone()),
                seq: None,
                tx: tx.clone(),
                origin,
                started: Instant::now(),
            };
            let context = context.clone();
            tokio::spawn(async move {
                let timeout = probe.spec.timeout(timeout_ms);
                let finding = context.run(&probe, reporter.started, timeout).await;
                drop(slot);
                reporter.send(finding);
            });
        }
    });
    let mut outcomes = Vec::with_capacity(total);
    while let Some(result) = rx.recv().await {
        outcomes.push(result.outcome);
        on_result(result);
    }
    // The channel closes only after the launcher and every probe task have dropped their ends.
    let _ = launcher.await;
    BatchSummary::of(outcomes, millis(started.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::finding::{judge_identity, Finding};
    use super::*;
    use netassay_core::probe::{Outcome, ProbeBatch, ProbeKind, ProbeSpec};
    use std::time::Duration;

    #[test]
    fn identities_are_judged_exactly() {
        assert_eq!(
            judge_identity(Some("y/b"), Some("y/b".into()), "p").outcome,
            Outcome::Connected
        );
        assert_eq!(
            judge_identity(Some("y/b"), Some("y/c".into()), "p").outcome,
            Outcome::WrongPeer
        );
        assert_eq!(
            judge_identity(Some("y/b"), None, "p").outcome,
            Outcome::WrongPeer
        );
        assert_eq!(judge_identity(None, None, "p").outcome, Outcome::Connected);
        let f = judge_identity(None, Some("z/a".into()), "p");
        assert_eq!(
            (f.outcome, f.peer_identity.as_deref()),
            (Outcome::Connected, Some("z/a"))
        );
    }

    #[test]
    fn a_probe_that_began_late_is_reported_from_when_it_began() {
        // A UDP probe that waited 400 ms for a source port, launched 1 s ago with its batch.
        let Some(origin) = Instant::now().checked_sub(Duration::from_secs(1)) else {
            return; // a clock younger than a second: nothing to place
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let reporter = Reporter {
            id: Some("p".into()),
            seq: None,
            tx,
            origin,
            started: origin,
        };
        let mut finding = Finding::new(Outcome::Dropped, "no reply");
        finding.began_after = Duration::from_millis(400);
        reporter.send(finding);
        let result = rx.try_recv().expect("one result");
        assert_eq!(result.start_ms, Some(400));
        assert!(
            (600..1000).contains(&result.elapsed_ms),
            "elapsed {} ms counts from the launch, not from when the probe began",
            result.elapsed_ms
        );
    }

    #[test]
    fn prepare_refuses_a_batch_with_one_bad_url() {
        let batch = ProbeBatch::new(vec![
            ProbeSpec::new("ok", ProbeKind::Tcp, "10.0.0.1:80"),
            ProbeSpec::new("bad", ProbeKind::Http, "http://[::1/"),
        ]);
        let e = prepare(batch).unwrap_err();
        assert!(e.to_string().starts_with("probes[1] (id \"bad\")"), "{e}");
    }

    #[test]
    fn an_empty_batch_runs_to_an_empty_summary() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let batch = prepare(ProbeBatch::new(vec![])).unwrap();
        let mut seen = 0;
        let summary = rt.block_on(run_batch(batch, |_| seen += 1));
        assert_eq!((summary.total, seen), (0, 0));
    }
}
