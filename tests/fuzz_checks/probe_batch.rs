//! The `probe_batch` fuzz target's check (shared with tests/fuzz_regressions.rs; see
//! tests/fuzz_checks/mod.rs): the line `agent probe` reads from stdin is either refused as a
//! whole or prepared; a batch that parses serializes back to a line that parses to the same
//! batch (the harness writes what the agent reads), and its probe targets parse or are refused.

use netassay_agent::prepare;
use netassay_core::probe::ProbeBatch;

/// Checks one input; `true` when it parsed as a batch (round trip checked, batch prepared).
pub fn check(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    // The agent reads one line, newline included.
    let line = match text.find('\n') {
        Some(end) => &text[..=end],
        None => text,
    };
    let Ok(batch) = ProbeBatch::from_json_line(line) else {
        return false;
    };
    let written = batch.to_json_line();
    let again = ProbeBatch::from_json_line(&written)
        .unwrap_or_else(|e| panic!("a valid batch written as {written} is refused: {e}"));
    assert_eq!(
        again.to_json_line(),
        written,
        "the batch changed in a round trip"
    );
    for probe in &batch.probes {
        let _ = probe.host_port();
        let _ = probe.http_url();
        let _ = probe.dns_server();
        let _ = probe.timeout(batch.timeout_ms);
    }
    let _ = prepare(batch);
    true
}
