//! The agent's probe-batch parser: the line `agent probe` reads from stdin is either refused
//! as a whole or prepared; a batch that parses serializes back to a line that parses to the same
//! batch (the harness writes what the agent reads).
//!
//! The check is `check` in tests/fuzz_checks/probe_batch.rs, shared with
//! tests/fuzz_regressions.rs, which replays the committed corpus through it on stable.
#![no_main]

#[path = "../../tests/fuzz_checks/probe_batch.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::check(data);
});
