//! What the user sees while a run goes on: log lines, and on a terminal a live progress line.

use std::io::IsTerminal;
use std::time::Duration;

pub(super) fn log_line(msg: String) {
    eprintln!("[netassay] {msg}");
}

/// On a terminal: a live progress line (scenarios done, and the latest fixture/pods/step news).
/// Otherwise, or with NETASSAY_VERBOSE: `None`, and news goes out as plain log lines.
pub(super) fn bar(scenarios: usize) -> Option<indicatif::ProgressBar> {
    let plain = !std::io::stderr().is_terminal() || std::env::var_os("NETASSAY_VERBOSE").is_some();
    (!plain).then(|| {
        let pb = indicatif::ProgressBar::new(scenarios as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] scenarios {pos}/{len} {wide_msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        pb.enable_steady_tick(Duration::from_millis(200));
        pb
    })
}
