//! For the terminal after a run: per scenario that did not pass, why, and the compact diff of
//! its wrong cells.

use super::conformance::{scenario_reason, scenario_verdict, ScenarioVerdict};
use super::run_report::RunReport;
use super::table::{self, is_wrong};
use crate::suite::ScenarioOutcome;
use std::fmt::Write as _;

/// For the terminal after a run: per scenario that did not pass, why, and per failing step the
/// compact diff of its wrong cells and its accepted rejects. Empty when everything passed.
pub fn summary_tables(report: &RunReport, color: bool) -> String {
    report
        .scenarios
        .iter()
        .map(|o| scenario_summary(o, color))
        .collect()
}

/// One scenario's part of [`summary_tables`] (also the test runner's failure message): empty
/// when it passed.
pub fn scenario_summary(o: &ScenarioOutcome, color: bool) -> String {
    let mut out = String::new();
    let v = scenario_verdict(o);
    if v == ScenarioVerdict::Passed {
        return out;
    }
    let _ = writeln!(
        out,
        "{} [{}]: {}",
        o.name,
        v,
        scenario_reason(o).unwrap_or_default()
    );
    for s in &o.steps {
        let accepted: Vec<_> = s.rejects.iter().filter(|r| !r.refused).collect();
        let exposed: Vec<_> = s.inventory.iter().flat_map(|i| i.unapproved()).collect();
        if !s.result.cells.iter().any(|c| is_wrong(c.status))
            && accepted.is_empty()
            && exposed.is_empty()
        {
            continue;
        }
        let _ = writeln!(out, "  step {:?}:", s.name);
        for line in table::compact_diff(&s.result, color, table::LISTED_WRONG_PATHS).lines() {
            let _ = writeln!(out, "    {line}");
        }
        for r in accepted {
            let _ = writeln!(
                out,
                "    reject check {}: accepted, should have been refused ({})",
                r.policy, r.detail
            );
        }
        for e in exposed {
            let _ = writeln!(out, "    exposure: {}", e.message);
        }
    }
    out
}
