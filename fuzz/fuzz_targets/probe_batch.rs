//! The agent's probe-batch parser: the line `agent probe` reads from stdin is either refused
//! as a whole or prepared; a batch that parses serializes back to a line that parses to the same
//! batch (the harness writes what the agent reads).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netassay_agent::prepare;
use netassay_core::probe::ProbeBatch;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The agent reads one line, newline included.
    let line = match text.find('\n') {
        Some(end) => &text[..=end],
        None => text,
    };
    let Ok(batch) = ProbeBatch::from_json_line(line) else {
        return;
    };
    let written = batch.to_json_line();
    let again = ProbeBatch::from_json_line(&written)
        .unwrap_or_else(|e| panic!("a valid batch written as {written} is refused: {e}"));
    assert_eq!(again.to_json_line(), written, "the batch changed in a round trip");
    for probe in &batch.probes {
        let _ = probe.host_port();
        let _ = probe.http_url();
        let _ = probe.dns_server();
        let _ = probe.timeout(batch.timeout_ms);
    }
    let _ = prepare(batch);
});
