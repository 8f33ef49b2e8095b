//! The wire format's schema tag and the bounds a batch must stay within.

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
