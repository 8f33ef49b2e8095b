//! A batch run as a series (DESIGN §7b): every `spacing_ms`, each cell that is not settled gets a
//! new probe (each with the full timeout, many in flight at once), until every cell has agreed
//! with its expectation for the window, or the deadline passes and the last probes are in.
//! Each probe's result line carries its start offset and its number within the cell.

use super::context::Context;
use super::prepared::{Prepared, PreparedBatch};
use super::reporter::{millis, Reporter};
use netassay_core::probe::series::{Next, SeriesCell};
use netassay_core::probe::{AgentLine, BatchSummary, ProbeResult, Series, SeriesStarted};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::{Instant, MissedTickBehavior};

pub(super) async fn run<F: FnMut(AgentLine)>(
    batch: PreparedBatch,
    series: Series,
    mut on_line: F,
) -> BatchSummary {
    let context = Context::for_batch(&batch).await;
    let origin = Instant::now();
    on_line(AgentLine::Started {
        started: SeriesStarted {
            schema: batch.schema.clone(),
            cells: batch.probes.len(),
        },
    });
    let wall = std::time::Instant::now();
    let deadline = origin + Duration::from_millis(series.deadline_ms);
    let timeout_ms = batch.timeout_ms;
    let slots = Arc::new(Semaphore::new(batch.concurrency));
    let probes: Vec<Arc<Prepared>> = batch.probes.into_iter().map(Arc::new).collect();
    let mut cells: Vec<SeriesCell> = probes
        .iter()
        // `prepare` checked that every probe of a series has its expectation.
        .map(|p| {
            SeriesCell::new(
                p.spec
                    .expect
                    .unwrap_or(netassay_core::model::Verdict::Allow),
            )
        })
        .collect();
    let index: HashMap<String, usize> = probes
        .iter()
        .enumerate()
        .map(|(i, p)| (p.spec.id.clone(), i))
        .collect();
    let (tx, mut rx) = mpsc::unbounded_channel::<ProbeResult>();
    let mut ticks = tokio::time::interval_at(origin, Duration::from_millis(series.spacing_ms));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut outcomes = Vec::new();
    loop {
        let starting = Instant::now() < deadline;
        let now_ms = millis(Instant::now().saturating_duration_since(origin));
        let in_flight: usize = cells.iter().map(SeriesCell::in_flight).sum();
        let wanted = cells.iter().any(|c| c.next(&series, now_ms) != Next::Done);
        if in_flight == 0 && (!wanted || !starting) {
            break;
        }
        tokio::select! {
            _ = ticks.tick(), if starting && wanted => {
                let now = Instant::now();
                let now_ms = millis(now.saturating_duration_since(origin));
                for (i, cell) in cells.iter_mut().enumerate() {
                    if cell.next(&series, now_ms) != Next::Probe {
                        continue;
                    }
                    // A full prober skips this cell for one tick rather than delaying the rest.
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        continue;
                    };
                    let probe = probes[i].clone();
                    let reporter = Reporter {
                        id: Some(probe.spec.id.clone()),
                        seq: Some(cell.started(now_ms)),
                        tx: tx.clone(),
                        origin,
                        started: now,
                    };
                    let context = context.clone();
                    tokio::spawn(async move {
                        let timeout = probe.spec.timeout(timeout_ms);
                        let finding = context.run(&probe, reporter.started, timeout).await;
                        drop(slot);
                        reporter.send(finding);
                    });
                }
            }
            Some(result) = rx.recv() => {
                if let (Some(i), Some(seq)) = (index.get(&result.id), result.seq) {
                    if let Some(cell) = cells.get_mut(*i) {
                        cell.finished(seq, result.elapsed_ms, result.outcome);
                    }
                }
                outcomes.push(result.outcome);
                on_line(AgentLine::Result(result));
            }
        }
    }
    BatchSummary::of(outcomes, millis(wall.elapsed()))
}
