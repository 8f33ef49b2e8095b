//! Probe specs and outcomes: the wire format shared by the harness and the in-pod agent.
//!
//! Plain data and pure functions, no I/O. The harness writes one [`ProbeBatch`] as a single JSON
//! line to `netassay agent probe`; the agent answers with one [`ProbeResult`] line per probe, in
//! completion order, then one summary line (see [`AgentLine`]). A `netassay.probe/v2` batch may
//! run its probes as a [`Series`] (one result line per probe of the series). `agent serve` answers every
//! connection or datagram with a greeting ([`greeting`]) and reports its listeners in a
//! [`ReadyReport`].

mod batch;
mod greeting;
mod outcome;
mod ready;
pub mod series;
mod target;

pub use batch::{BatchError, ProbeBatch, ProbeKind, ProbeSpec, SpecError};
pub use greeting::{
    greeting, parse_greeting, parse_udp_reply, udp_reply, validate_identity, UdpReply,
    GREETING_PREFIX,
};
pub use outcome::{AgentLine, BatchSummary, DenyRule, Outcome, ProbeResult, SeriesStarted};
pub use ready::{ListenSpec, ListenerState, ListenerStatus, ReadyReport, READY_SCHEMA};
pub use series::{Series, SERIES_SCHEMA};
pub use target::{Host, HostPort, TargetError};

/// Schema tag of probe batches and of the agent's summary line.
pub const SCHEMA: &str = "netassay.probe/v1";

/// Default time one probe may take, from its start, when the batch does not say.
pub const DEFAULT_TIMEOUT_MS: u64 = 1000;

/// Default number of probes in flight at once, when the batch does not say.
pub const DEFAULT_CONCURRENCY: usize = 256;

/// Longest timeout a batch may ask for (ten minutes): anything longer is a typo.
pub const MAX_TIMEOUT_MS: u64 = 600_000;

/// Largest concurrency a batch may ask for; each probe in flight holds one socket.
pub const MAX_CONCURRENCY: usize = 10_000;
