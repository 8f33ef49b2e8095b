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
mod ledger;
mod limits;
mod outcome;
mod ready;
pub mod series;
mod target;

pub use batch::{BatchError, ProbeBatch, ProbeKind, ProbeSpec, SpecError};
pub use greeting::{
    greeting, parse_greeting, parse_udp_reply, udp_reply, validate_identity, UdpReply,
    GREETING_PREFIX,
};
pub use ledger::{udp_ledger_path, UDP_LEDGER_DIR, UDP_LEDGER_PREFIX};
pub use limits::{
    DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT_MS, MAX_CONCURRENCY, MAX_TIMEOUT_MS, SCHEMA,
};
pub use outcome::{AgentLine, BatchSummary, DenyRule, Outcome, ProbeResult, SeriesStarted};
pub use ready::{ListenSpec, ListenerState, ListenerStatus, ReadyReport, READY_SCHEMA};
pub use series::{Series, SERIES_SCHEMA};
pub use target::{Host, HostPort, TargetError};
