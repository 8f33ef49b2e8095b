//! Phase 5: what the run concludes. Every report the command line asks for, the terminal
//! summary, and the exit code (DESIGN §8: the evidence rule).

use super::args::RunArgs;
use super::execute::Executed;
use super::progress::log_line;
use crate::cli::exit;
use crate::cluster::facts::Environment;
use crate::report::conformance::{scenario_verdict, shortfall, ScenarioVerdict, Shortfall};
use crate::report::RunReport;
use crate::suite::ScenarioOutcome;

/// When the run started, as the reports say it.
pub(super) struct Started {
    pub at: std::time::Instant,
    /// RFC 3339.
    pub rfc3339: String,
}

impl Started {
    pub(super) fn now() -> Started {
        Started {
            at: std::time::Instant::now(),
            rfc3339: k8s_openapi::jiff::Timestamp::now().to_string(),
        }
    }
}

/// Writes the reports, prints the summary, and returns the exit code with what to say about
/// it last.
pub(super) fn conclude(
    args: &RunArgs,
    run_id: &str,
    started: &Started,
    environment: Environment,
    executed: Executed,
) -> (u8, Option<String>) {
    let outcomes = executed.outcomes;
    let report = RunReport {
        run_id: run_id.to_string(),
        netassay_version: env!("CARGO_PKG_VERSION").to_string(),
        started: started.rfc3339.clone(),
        elapsed_ms: started.at.elapsed().as_millis() as u64,
        sandbox: args.sandbox,
        sandbox_faults: args.sandbox_faults.clone(),
        profiles: args.profile.clone(),
        environment,
        scenarios: outcomes.clone(),
    };
    if let Some(rows) = crate::report::statements::k8tre(&report) {
        print!("{}", crate::report::statements::render_text(&rows));
    }
    match crate::report::write_all(&report, &report_outputs(args)) {
        Ok(files) => {
            for f in files {
                log_line(format!("wrote {}", f.display()));
            }
        }
        Err(e) => log_line(format!("reports: {e}")),
    }
    let stats = crate::suite::run_enforce_stats(&outcomes);
    log_line(stats.summary());
    let resilience = crate::suite::run_resilience(&outcomes);
    if !resilience.is_quiet() {
        log_line(format!(
            "the control plane made netassay try again: {} (none of it is a verdict)",
            resilience.summary()
        ));
    }
    let tally = Tally::of(&outcomes);
    println!("{}", tally.line());
    log_line(format!(
        "run {run_id} took {:.1}s",
        started.at.elapsed().as_secs_f64()
    ));
    exit_code(&tally, executed.runner_failed, args.strict)
}

/// Scenarios by how they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    passed: usize,
    failed: usize,
    /// Incomplete for lack of evidence (unsupported, not judged).
    unjudged: usize,
    /// Incomplete because probes kept failing.
    errors: usize,
    environment: usize,
}

impl Tally {
    fn of(outcomes: &[ScenarioOutcome]) -> Self {
        let mut t = Tally::default();
        for o in outcomes {
            match (scenario_verdict(o), shortfall(o)) {
                (ScenarioVerdict::Passed, _) => t.passed += 1,
                (ScenarioVerdict::Failed, _) => t.failed += 1,
                (_, Some(Shortfall::Environment)) => t.environment += 1,
                (_, Some(Shortfall::ProbeErrors)) => t.errors += 1,
                (_, _) => t.unjudged += 1,
            }
        }
        t
    }

    /// Scenarios that were judged (passed or failed).
    fn judged(&self) -> usize {
        self.passed + self.failed
    }

    fn line(&self) -> String {
        format!(
            "scenarios: {} passed, {} failed, {} incomplete (nothing judged in a step: {}; probe \
             errors: {}; environment: {})",
            self.passed,
            self.failed,
            self.unjudged + self.errors + self.environment,
            self.unjudged,
            self.errors,
            self.environment
        )
    }
}

/// The exit code of a finished run (README, exit codes), and what to say about it. The
/// environment comes first (3), then anything the test runner failed (1: mismatches, probe
/// errors, and incomplete scenarios under `--strict`); a run that judged nothing at all never
/// exits 0.
fn exit_code(t: &Tally, runner_failed: bool, strict: bool) -> (u8, Option<String>) {
    if *t == Tally::default() && !runner_failed {
        (
            exit::BAD_INPUT,
            Some("no scenario was selected: check FILTER, --skip and --profile".into()),
        )
    } else if t.environment > 0 {
        (exit::ENVIRONMENT, None)
    } else if runner_failed || t.failed > 0 || t.errors > 0 {
        let why = (strict && t.unjudged > 0 && t.failed == 0 && t.errors == 0).then(|| {
            format!(
                "--strict: {} scenario(s) could not be judged, so the run is not conformant",
                t.unjudged
            )
        });
        (exit::MISMATCH, why)
    } else if t.judged() == 0 {
        (
            exit::ENVIRONMENT,
            Some(format!(
                "nothing was judged: {} scenario(s) ran and none had evidence (see the reasons above)",
                t.unjudged
            )),
        )
    } else {
        (exit::OK, None)
    }
}

fn report_outputs(args: &RunArgs) -> crate::report::Outputs {
    crate::report::Outputs {
        junit: args.junit.clone(),
        junit_granularity: args.junit_granularity,
        json: args.json.clone(),
        html: args.html.clone(),
        conformance: args.conformance.clone(),
        report_dir: args.report_dir.clone(),
        sonobuoy_dir: crate::report::sonobuoy::results_dir_from_env(args.sonobuoy),
        implementation: args.implementation.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // README, exit codes: 0 only when nothing failed and something was judged; --strict fails
    // incomplete runs; the environment comes first.
    #[test]
    fn exit_codes_follow_the_evidence_rule() {
        let t = |passed, failed, unjudged, errors, environment| Tally {
            passed,
            failed,
            unjudged,
            errors,
            environment,
        };
        let cases = [
            // (tally, runner failed, strict, code)
            (t(46, 0, 2, 0, 0), false, false, exit::OK),
            (t(46, 0, 2, 0, 0), true, true, exit::MISMATCH),
            (t(48, 0, 0, 0, 0), false, true, exit::OK),
            (t(40, 1, 2, 0, 0), true, false, exit::MISMATCH),
            (t(40, 0, 0, 1, 0), true, false, exit::MISMATCH),
            (t(0, 0, 3, 0, 0), false, false, exit::ENVIRONMENT),
            (t(0, 0, 3, 0, 0), true, true, exit::MISMATCH),
            (t(40, 1, 0, 0, 1), true, false, exit::ENVIRONMENT),
            (t(0, 0, 0, 0, 0), false, false, exit::BAD_INPUT),
        ];
        for (tally, failed, strict, want) in cases {
            let (code, _) = exit_code(&tally, failed, strict);
            assert_eq!(
                code, want,
                "{tally:?} runner failed {failed} strict {strict}"
            );
        }
        let (_, why) = exit_code(&t(46, 0, 2, 0, 0), true, true);
        assert!(why.is_some_and(|w| w.contains("--strict")));
        let (_, why) = exit_code(&t(0, 0, 3, 0, 0), false, false);
        assert!(why.is_some_and(|w| w.contains("nothing was judged")));
    }
}
