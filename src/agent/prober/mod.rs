//! `agent probe`: runs a batch concurrently (bounded by a semaphore) and hands over each result
//! the moment its probe completes.
//!
//! Every probe's timeout runs from its own start, which is when it gets a concurrency slot; a
//! probe waiting for a slot is not yet timing out. Results arrive through one channel and are
//! passed to a single callback, so the caller has exactly one writer. A batch with a series runs
//! in `series` instead: the same probes, started again and again.

mod dns;
mod http;
mod series;
mod stream;
mod udp;

use self::dns::Resolvers;
use self::http::{Clients, HttpTarget};
use self::stream::Stream;
use super::source_ports::{SourcePortClient, LEASE_NAME};
use crate::probe::{
    AgentLine, BatchError, BatchSummary, HostPort, Outcome, ProbeBatch, ProbeKind, ProbeResult,
    ProbeSpec, Series, SpecError,
};
use std::fmt::Display;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

/// A batch that passed every check: running it cannot fail on bad input.
#[derive(Debug, Clone)]
pub struct PreparedBatch {
    schema: String,
    timeout_ms: u64,
    concurrency: usize,
    series: Option<Series>,
    probes: Vec<Prepared>,
}

impl PreparedBatch {
    pub fn len(&self) -> usize {
        self.probes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.probes.is_empty()
    }
}

#[derive(Debug, Clone)]
struct Prepared {
    spec: ProbeSpec,
    target: Target,
}

/// A probe's target, parsed for its kind.
#[derive(Debug, Clone)]
enum Target {
    Stream(HostPort, Stream),
    Datagram(HostPort),
    Http(HttpTarget),
    Dns(Option<SocketAddr>),
}

/// Validates `batch` and parses every target, so that nothing runs unless everything can.
pub fn prepare(batch: ProbeBatch) -> Result<PreparedBatch, BatchError> {
    batch.validate()?;
    let mut probes = Vec::with_capacity(batch.probes.len());
    for (index, spec) in batch.probes.iter().enumerate() {
        let target = parse_target(spec).map_err(|e| batch.probe_error(index, e))?;
        probes.push(Prepared {
            spec: spec.clone(),
            target,
        });
    }
    Ok(PreparedBatch {
        schema: batch.schema,
        timeout_ms: batch.timeout_ms,
        concurrency: batch.concurrency,
        series: batch.series,
        probes,
    })
}

fn parse_target(spec: &ProbeSpec) -> Result<Target, SpecError> {
    Ok(match spec.kind {
        ProbeKind::Tcp => Target::Stream(spec.host_port()?, Stream::Tcp),
        ProbeKind::Sctp => Target::Stream(spec.host_port()?, Stream::Sctp),
        ProbeKind::Udp => Target::Datagram(spec.host_port()?),
        ProbeKind::Http => Target::Http(HttpTarget::parse(spec).map_err(SpecError::BadUrl)?),
        ProbeKind::Dns => Target::Dns(spec.dns_server()?),
    })
}

/// What one probe found; becomes a [`ProbeResult`] with the id and the elapsed time.
#[derive(Debug, Clone)]
pub(crate) struct Finding {
    pub outcome: Outcome,
    pub detail: String,
    pub peer_identity: Option<String>,
    pub addresses: Vec<IpAddr>,
    /// How long after its launch the probe could begin (a UDP probe may wait for a fresh
    /// source port): its start and elapsed time count from then.
    pub began_after: Duration,
}

impl Finding {
    pub(crate) fn new(outcome: Outcome, detail: impl Into<String>) -> Self {
        Finding {
            outcome,
            detail: detail.into(),
            peer_identity: None,
            addresses: Vec::new(),
            began_after: Duration::ZERO,
        }
    }
}

/// Judges a reached peer by the identity it announced (`seen`) against the expected one.
pub(crate) fn judge_identity(
    expected: Option<&str>,
    seen: Option<String>,
    peer: impl Display,
) -> Finding {
    let (outcome, detail) = match (expected, seen.as_deref()) {
        (None, Some(id)) => (Outcome::Connected, format!("{peer} is {id}")),
        (None, None) => (Outcome::Connected, format!("reached {peer}")),
        (Some(want), Some(id)) if want == id => (Outcome::Connected, format!("{peer} is {id}")),
        (Some(want), Some(id)) => (
            Outcome::WrongPeer,
            format!("{peer} is {id}, expected {want}"),
        ),
        (Some(want), None) => (
            Outcome::WrongPeer,
            format!("reached {peer}, but it gave no netassay greeting (expected {want})"),
        ),
    };
    let mut finding = Finding::new(outcome, detail);
    finding.peer_identity = seen;
    finding
}

/// What the probes of one batch share: resolvers and HTTP clients, built on first use.
pub(crate) struct Context {
    resolvers: Arc<Resolvers>,
    http: Arc<Clients>,
    /// Fresh UDP source ports from the pod's `agent serve`.
    source_ports: SourcePortClient,
}

impl Context {
    /// The shared context of `batch`, with HTTP clients ready for its probes.
    async fn for_batch(batch: &PreparedBatch) -> Arc<Self> {
        let context = Arc::new(Context::new(Duration::from_millis(batch.timeout_ms)));
        context
            .http
            .prepare(batch.probes.iter().map(|p| &p.spec))
            .await;
        context
    }

    fn new(timeout: Duration) -> Self {
        let resolvers = Arc::new(Resolvers::new(timeout));
        Context {
            http: Arc::new(Clients::new(resolvers.clone())),
            resolvers,
            source_ports: SourcePortClient::new(LEASE_NAME),
        }
    }

    /// The address of a tcp/udp/sctp/http target; a name that does not resolve is `dns-failed`
    /// whatever the reason, since the path itself was never tried.
    pub(crate) async fn resolve_target(
        &self,
        target: &HostPort,
        deadline: Instant,
    ) -> Result<SocketAddr, Finding> {
        let name = match &target.host {
            crate::probe::Host::Ip(ip) => return Ok(SocketAddr::new(*ip, target.port)),
            crate::probe::Host::Name(name) => name,
        };
        // Only an answer that says "no such name / no address" is dns-failed; a resolver that
        // does not answer or cannot be used is an error of the probe, never a verdict.
        match tokio::time::timeout_at(deadline, self.resolvers.lookup(None, name)).await {
            Err(_) => Err(Finding::new(
                Outcome::Error,
                format!("{name}: no DNS answer before the timeout"),
            )),
            Ok(Err(failure)) if failure.outcome == Outcome::DnsFailed => Err(Finding::new(
                Outcome::DnsFailed,
                format!("cannot resolve {}", failure.detail),
            )),
            Ok(Err(failure)) => Err(Finding::new(
                Outcome::Error,
                format!("DNS lookup failed: {}", failure.detail),
            )),
            Ok(Ok(ips)) => match ips.first() {
                Some(ip) => Ok(SocketAddr::new(*ip, target.port)),
                None => Err(Finding::new(
                    Outcome::DnsFailed,
                    format!("{name}: no address"),
                )),
            },
        }
    }
}

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
                let finding = run_one(&context, &probe, reporter.started, timeout).await;
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

async fn run_one(
    context: &Context,
    probe: &Prepared,
    started: Instant,
    timeout: Duration,
) -> Finding {
    let deadline = started + timeout;
    let timeout_ms = millis(timeout);
    let spec = &probe.spec;
    match &probe.target {
        Target::Stream(target, kind) => {
            stream::probe(context, spec, target, *kind, deadline, timeout_ms).await
        }
        Target::Datagram(target) => {
            udp::probe(context, spec, target, started, deadline, timeout_ms).await
        }
        Target::Http(target) => http::probe(context, spec, target, deadline, timeout_ms).await,
        Target::Dns(server) => dns::probe(&context.resolvers, spec, *server, deadline).await,
    }
}

/// Sends one probe's result; if the probe task dies first, its drop still reports an `error`,
/// so every probe of a batch gets exactly one line.
struct Reporter {
    id: Option<String>,
    /// Series only: the probe's number within its cell.
    seq: Option<u32>,
    tx: mpsc::UnboundedSender<ProbeResult>,
    /// The batch's start, from which `start_ms` counts.
    origin: Instant,
    started: Instant,
}

impl Reporter {
    fn send(mut self, finding: Finding) {
        if let Some(id) = self.id.take() {
            let _ = self.tx.send(self.result(id, finding));
        }
    }

    fn result(&self, id: String, finding: Finding) -> ProbeResult {
        let began = self.started + finding.began_after;
        ProbeResult {
            id,
            outcome: finding.outcome,
            detail: finding.detail,
            elapsed_ms: millis(began.elapsed()),
            peer_identity: finding.peer_identity,
            addresses: finding.addresses,
            start_ms: Some(millis(began.saturating_duration_since(self.origin))),
            seq: self.seq,
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let finding = Finding::new(Outcome::Error, "the probe task failed unexpectedly");
            let _ = self.tx.send(self.result(id, finding));
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

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
