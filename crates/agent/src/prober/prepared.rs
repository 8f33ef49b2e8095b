//! A batch checked and parsed before anything runs: every target already in its probe's form.

use super::http::HttpTarget;
use super::stream::Stream;
use netassay_core::probe::{
    BatchError, HostPort, ProbeBatch, ProbeKind, ProbeSpec, Series, SpecError,
};
use std::net::SocketAddr;

/// A batch that passed every check: running it cannot fail on bad input.
#[derive(Debug, Clone)]
pub struct PreparedBatch {
    pub(super) schema: String,
    pub(super) timeout_ms: u64,
    pub(super) concurrency: usize,
    pub(super) series: Option<Series>,
    pub(super) probes: Vec<Prepared>,
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
pub(super) struct Prepared {
    pub(super) spec: ProbeSpec,
    pub(super) target: Target,
}

/// A probe's target, parsed for its kind.
#[derive(Debug, Clone)]
pub(super) enum Target {
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
