//! The JUnit XML report (`--junit`): a testsuite per scenario, a testcase per step (or path).

use super::conformance::{scenario_reason, step_has_evidence, step_unjudged_reasons};
use super::run_report::RunReport;
use super::table::{self, path, status_name};
use crate::runner::result::{CellResult, CellStatus, StepResult};
use crate::suite::{ScenarioOutcome, StepOutcome};
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Duration;

/// How finely testcases are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Granularity {
    /// One testcase per step (DESIGN §8).
    #[default]
    Step,
    /// One testcase per (step, from, to, port, protocol, via), plus one per reject check.
    Path,
}

impl FromStr for Granularity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "step" => Ok(Granularity::Step),
            "path" => Ok(Granularity::Path),
            other => Err(format!(
                "unknown JUnit granularity {other:?}: expected step or path"
            )),
        }
    }
}

/// Attempts listed per wrong path; the JSON results keep every one.
const MAX_ATTEMPTS_LISTED: usize = 10;
/// Wrong paths named in a failure's one-line message.
const MAX_PATHS_IN_MESSAGE: usize = 3;

pub fn render(
    report: &RunReport,
    granularity: Granularity,
) -> Result<String, quick_junit::SerializeError> {
    build(report, granularity).to_string()
}

/// The report as quick-junit data; counts on every level are kept by quick-junit.
pub fn build(report: &RunReport, granularity: Granularity) -> Report {
    let mut junit = Report::new("netassay");
    junit.set_time(Duration::from_millis(report.elapsed_ms));
    for o in &report.scenarios {
        junit.add_test_suite(suite(report, o, granularity));
    }
    junit
}

fn suite(report: &RunReport, o: &ScenarioOutcome, granularity: Granularity) -> TestSuite {
    let mut suite = TestSuite::new(o.name.as_str());
    suite
        .extra
        .insert("timestamp".into(), report.started.as_str().into());
    suite.add_properties(properties(report, o));
    if let Some(e) = &o.environment {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
        status
            .set_type("environment")
            .set_message(format!("environment problem: {}", e.what))
            .set_description(format!(
                "The scenario could not be judged: {}\n{}",
                e.what,
                scenario_reason(o).unwrap_or_default()
            ));
        let mut case = TestCase::new("environment", status);
        case.set_classname(o.name.as_str());
        suite.add_test_case(case);
    }
    for step in &o.steps {
        match granularity {
            Granularity::Step => suite.add_test_cases(step_cases(o, step)),
            Granularity::Path => suite.add_test_cases(path_cases(o, step)),
        };
    }
    let time: Duration = o.steps.iter().map(|s| step_time(&s.result)).sum();
    suite.set_time(time);
    suite
}

fn properties(report: &RunReport, o: &ScenarioOutcome) -> Vec<Property> {
    let env = &report.environment;
    let mut p = vec![
        Property::new("run-id", report.run_id.as_str()),
        Property::new("netassay-version", report.netassay_version.as_str()),
        Property::new("kubernetes-version", env.kubernetes_version.as_str()),
        Property::new("cni", env.cni.as_str()),
        Property::new("cni-mode", env.cni_mode.as_str()),
        Property::new("nodes", env.nodes.to_string()),
        Property::new("profiles", report.profiles.join(",")),
        Property::new("sandbox", report.sandbox.to_string()),
        Property::new("scenario-file", o.file.as_str()),
        Property::new("scenario-tags", o.tags.join(",")),
        Property::new("expectations", if o.intent { "intent" } else { "oracle" }),
    ];
    // In a K8TRE run, the statements this scenario is evidence for (the report's table).
    if super::statements::applies(report) {
        let ids: Vec<&str> = super::statements::K8TRE
            .iter()
            .filter(|st| o.tags.iter().any(|t| t == st.tag))
            .map(|st| st.id)
            .collect();
        if !ids.is_empty() {
            p.push(Property::new("k8tre-statements", ids.join(",")));
        }
    }
    for s in &o.steps {
        p.push(Property::new(
            format!("time-to-enforce-ms/{}", s.name),
            tte(&s.result),
        ));
        if let Some(res) = s.result.time_to_enforce_resolution {
            p.push(Property::new(
                format!("time-to-enforce-resolution-ms/{}", s.name),
                res.as_millis().to_string(),
            ));
        }
    }
    p
}

fn tte(r: &StepResult) -> String {
    match r.time_to_enforce {
        Some(d) => d.as_millis().to_string(),
        None if r.time_to_enforce_disturbed > 0 => "not measured (interrupted)".into(),
        None if r.series_ended_before_changes => {
            "not measured (the changes were applied after the series ended)".into()
        }
        None if r.has_judged_changed_cells() => "never".into(),
        None => "not measured".into(),
    }
}

/// From changes in place to the last probe's answer: the closest thing a step has to a duration.
fn step_time(r: &StepResult) -> Duration {
    let ms = r
        .cells
        .iter()
        .flat_map(|c| &c.attempts)
        .map(|a| {
            a.at_ms
                .saturating_add(i64::try_from(a.elapsed_ms).unwrap_or(i64::MAX))
        })
        .max()
        .unwrap_or(0);
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn counts(r: &StepResult) -> String {
    let mut parts = Vec::new();
    for s in [
        CellStatus::Pass,
        CellStatus::Fail,
        CellStatus::Flapping,
        CellStatus::Error,
        CellStatus::Interrupted,
        CellStatus::Unsupported,
        CellStatus::NotJudged,
    ] {
        let n = r.count(s);
        if n > 0 {
            parts.push(format!("{n} {}", status_name(s)));
        }
    }
    format!(
        "{} cells: {}; time-to-enforce: {}; rounds: {}",
        r.cells.len(),
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        },
        table::time_to_enforce(r),
        r.rounds
    )
}

/// Everything about one wrong path, for a failure or error body.
fn describe(cell: &CellResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", path(&cell.expected.cell));
    let _ = writeln!(out, "  expected: {}", cell.expected.verdict);
    let _ = writeln!(out, "  observed: {}", table::observed_text(cell));
    let _ = writeln!(out, "  status:   {}", status_name(cell.status));
    let _ = writeln!(out, "  attempts: {}", cell.attempts.len());
    for a in cell.attempts.iter().take(MAX_ATTEMPTS_LISTED) {
        let _ = write!(
            out,
            "    round {} at {} ms: {} in {} ms",
            a.round, a.at_ms, a.outcome, a.elapsed_ms
        );
        if !a.detail.is_empty() {
            let _ = write!(out, ", {}", a.detail);
        }
        if let Some(peer) = &a.peer_identity {
            let _ = write!(out, ", peer {peer}");
        }
        out.push('\n');
    }
    if cell.attempts.len() > MAX_ATTEMPTS_LISTED {
        let _ = writeln!(
            out,
            "    ... {} more in the JSON results",
            cell.attempts.len() - MAX_ATTEMPTS_LISTED
        );
    }
    if let Some(why) = &cell.explanation {
        let _ = writeln!(out, "  explanation: {why}");
    }
    if let Some(account) = &cell.cni_account {
        let _ = writeln!(out, "  the CNI's account: {account}");
    }
    out
}

fn short(cell: &CellResult) -> String {
    format!(
        "{} expected {} observed {} ({})",
        path(&cell.expected.cell),
        cell.expected.verdict,
        cell.observed().map(|o| o.as_str()).unwrap_or("nothing"),
        status_name(cell.status)
    )
}

fn message(what: &str, cells: &[&CellResult], rejects: usize) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !cells.is_empty() {
        parts.push(format!("{} {what}", cells.len()));
    }
    if rejects > 0 {
        parts.push(format!("{rejects} accepted reject(s)"));
    }
    let mut m = parts.join(", ");
    let named: Vec<String> = cells
        .iter()
        .take(MAX_PATHS_IN_MESSAGE)
        .map(|c| short(c))
        .collect();
    if !named.is_empty() {
        let _ = write!(m, ": {}", named.join("; "));
        if cells.len() > MAX_PATHS_IN_MESSAGE {
            m.push_str("; ...");
        }
    }
    m
}

fn case(o: &ScenarioOutcome, name: String, status: TestCaseStatus, time: Duration) -> TestCase {
    let mut c = TestCase::new(name, status);
    c.set_classname(o.name.as_str()).set_time(time);
    c
}

/// The step's testcase: a failure for mismatches or accepted rejects, else an error for probe
/// errors, else skipped when nothing was judged. A step with both mismatches and probe errors
/// gets a second testcase for the errors, so that both counts stay right.
fn step_cases(o: &ScenarioOutcome, step: &StepOutcome) -> Vec<TestCase> {
    let r = &step.result;
    let time = step_time(r);
    let failing: Vec<&CellResult> = r.failures().collect();
    let errors: Vec<&CellResult> = r
        .cells
        .iter()
        .filter(|c| c.status.is_unanswered())
        .collect();
    let accepted: Vec<_> = step.rejects.iter().filter(|x| !x.refused).collect();
    let exposed: Vec<_> = step.inventory.iter().flat_map(|i| i.unapproved()).collect();
    let tables = table::truth_tables(r, false, true);
    let mut out = Vec::new();
    let summary = {
        let mut s = counts(r);
        for x in &step.rejects {
            let _ = write!(
                s,
                "\nreject check {}: {} ({})",
                x.policy,
                if x.refused { "refused" } else { "ACCEPTED" },
                x.detail
            );
        }
        if let Some(inv) = &step.inventory {
            for e in &inv.exposures {
                let _ = write!(
                    s,
                    "\nexposure {} {}/{}: {} ({})",
                    e.exposure.kind,
                    e.exposure.namespace,
                    e.exposure.name,
                    if e.approved { "allowed" } else { "NOT ALLOWED" },
                    e.exposure.detail
                );
            }
            for n in &inv.notes {
                let _ = write!(s, "\ninventory note: {n}");
            }
        }
        s
    };

    if !failing.is_empty() || !accepted.is_empty() || !exposed.is_empty() {
        let mut body = String::new();
        if !failing.is_empty() {
            body.push_str("wrong paths:\n");
            for c in &failing {
                body.push_str(&describe(c));
            }
        }
        if !accepted.is_empty() {
            body.push_str(
                "reject checks that were accepted (the API server should refuse them):\n",
            );
            for x in &accepted {
                let _ = writeln!(body, "  {}: {}", x.policy, x.detail);
            }
        }
        if !exposed.is_empty() {
            body.push_str("exposures that are not on the profile's allow-list:\n");
            for e in &exposed {
                let _ = writeln!(body, "  {}", e.message);
            }
        }
        if !tables.is_empty() {
            body.push('\n');
            body.push_str(&tables);
        }
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
        let mut msg = message("wrong path(s)", &failing, accepted.len());
        if !exposed.is_empty() {
            msg.push_str(&format!(
                "; {} exposure(s) not on the allow-list",
                exposed.len()
            ));
        }
        status
            .set_type("mismatch")
            .set_message(msg)
            .set_description(body);
        let mut c = case(o, step.name.clone(), status, time);
        c.set_system_out(summary.clone());
        out.push(c);
        if !errors.is_empty() {
            out.push(error_case(
                o,
                format!("{} (probe errors)", step.name),
                &errors,
                time,
            ));
        }
    } else if !errors.is_empty() {
        let mut c = error_case(o, step.name.clone(), &errors, time);
        c.set_system_out(summary);
        out.push(c);
    } else if !step_has_evidence(step) {
        // DESIGN §7b: no verdict without evidence.
        let mut status = TestCaseStatus::skipped();
        status
            .set_message(step_unjudged_reasons(step).join("; "))
            .set_description(format!("nothing could be judged: {}", counts(r)));
        let mut c = case(o, step.name.clone(), status, time);
        c.set_system_out(summary);
        out.push(c);
    } else {
        let mut c = case(o, step.name.clone(), TestCaseStatus::success(), time);
        c.set_system_out(summary);
        out.push(c);
    }
    out
}

fn error_case(
    o: &ScenarioOutcome,
    name: String,
    errors: &[&CellResult],
    time: Duration,
) -> TestCase {
    let mut body = String::from("paths whose probes kept failing (neither pass nor fail):\n");
    for c in errors {
        body.push_str(&describe(c));
    }
    // Only interruptions: the cluster's fault, said as such (the run exits 3).
    let cluster = errors.iter().all(|c| c.status == CellStatus::Interrupted);
    let (kind, what) = if cluster {
        ("interrupted", "path(s) the cluster kept interrupting")
    } else {
        ("probe-error", "probe error(s)")
    };
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
    status
        .set_type(kind)
        .set_message(message(what, errors, 0))
        .set_description(body);
    case(o, name, status, time)
}

/// One testcase per cell, per reject check and per exposure of an inventory.
fn path_cases(o: &ScenarioOutcome, step: &StepOutcome) -> Vec<TestCase> {
    let mut out = Vec::new();
    for e in step.inventory.iter().flat_map(|i| &i.exposures) {
        let name = format!(
            "{}: exposure {} {}/{}",
            step.name, e.exposure.kind, e.exposure.namespace, e.exposure.name
        );
        let status = if e.approved {
            TestCaseStatus::success()
        } else {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_type("unapproved-exposure")
                .set_message(e.message.clone())
                .set_description(e.exposure.detail.clone());
            s
        };
        out.push(case(o, name, status, Duration::ZERO));
    }
    for cell in &step.result.cells {
        let name = format!("{}: {}", step.name, path(&cell.expected.cell));
        let time: Duration = cell
            .attempts
            .iter()
            .map(|a| Duration::from_millis(a.elapsed_ms))
            .sum();
        let status = match cell.status {
            CellStatus::Pass => TestCaseStatus::success(),
            CellStatus::Fail
            | CellStatus::Flapping
            | CellStatus::Error
            | CellStatus::Interrupted => {
                let kind = if cell.status.is_unanswered() {
                    NonSuccessKind::Error
                } else {
                    NonSuccessKind::Failure
                };
                let mut s = TestCaseStatus::non_success(kind);
                s.set_type(match cell.status {
                    CellStatus::Error => "probe-error",
                    CellStatus::Interrupted => "interrupted",
                    _ => "mismatch",
                })
                .set_message(short(cell))
                .set_description(describe(cell));
                s
            }
            CellStatus::Unsupported | CellStatus::NotJudged => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(format!(
                    "{}: {}",
                    status_name(cell.status),
                    cell.attempts
                        .last()
                        .map(|a| a.detail.as_str())
                        .unwrap_or("")
                ));
                s
            }
        };
        out.push(case(o, name, status, time));
    }
    for x in &step.rejects {
        let name = format!("{}: reject {}", step.name, x.policy);
        let status = if x.refused {
            TestCaseStatus::success()
        } else {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_type("accepted-reject")
                .set_message(format!("policy {} was accepted", x.policy))
                .set_description(x.detail.as_str());
            s
        };
        out.push(case(o, name, status, Duration::ZERO));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::facts::Environment;
    use crate::report::table::fixtures::{cell, pass, step};
    use crate::suite::{EnvironmentProblem, RejectSummary};
    use netassay_core::model::Verdict;
    use netassay_core::probe::Outcome;

    fn outcome(name: &str, steps: Vec<StepOutcome>) -> ScenarioOutcome {
        ScenarioOutcome {
            name: name.into(),
            file: "s.yaml".into(),
            tags: vec!["core".into()],
            intent: false,
            baseline: None,
            steps,
            environment: None,
        }
    }

    fn st(name: &str, cells: Vec<CellResult>) -> StepOutcome {
        StepOutcome {
            name: name.into(),
            result: step(cells),
            rejects: vec![],
            inventory: None,
        }
    }

    fn report(scenarios: Vec<ScenarioOutcome>) -> RunReport {
        RunReport {
            run_id: "run-7".into(),
            netassay_version: "0.1.0".into(),
            started: "2025-01-01T00:00:00Z".into(),
            elapsed_ms: 1500,
            sandbox: false,
            sandbox_faults: vec![],
            profiles: vec!["core".into()],
            environment: Environment {
                kubernetes_version: "v1.33.1".into(),
                nodes: 3,
                cni: "calico v3.28.0".into(),
                cni_mode: String::new(),
            },
            scenarios,
        }
    }

    fn wrong() -> CellResult {
        let mut c = cell(
            "x/a",
            "x/b",
            Verdict::Deny,
            CellStatus::Fail,
            &[Outcome::Connected],
        );
        c.explanation = Some("ingress isolated by x/deny and no rule admits it".into());
        c
    }

    #[test]
    fn a_mismatch_is_a_failure_listing_the_path_and_the_tables() {
        let r = report(vec![outcome(
            "deny",
            vec![st(
                "apply",
                vec![wrong(), pass("x/a", "x/c", Verdict::Allow)],
            )],
        )]);
        let xml = render(&r, Granularity::Step).unwrap();
        assert!(
            xml.contains(r#"<testcase name="apply" classname="deny""#),
            "{xml}"
        );
        assert!(xml.contains(r#"type="mismatch""#));
        assert!(xml.contains("x/a -&gt; x/b 80/TCP via pod-ip"));
        assert!(xml.contains("explanation: ingress isolated by x/deny"));
        assert!(xml.contains("expected (80/TCP via pod-ip):"));
        assert!(xml.contains("diff (80/TCP via pod-ip):"));
        let back = Report::deserialize_from_str(&xml).unwrap();
        assert_eq!((back.tests, back.failures, back.errors), (1, 1, 0));
    }

    #[test]
    fn suites_carry_run_environment_and_time_to_enforce_properties() {
        let r = report(vec![outcome(
            "p",
            vec![st("one", vec![pass("x/a", "x/b", Verdict::Allow)])],
        )]);
        let back = Report::deserialize_from_str(&render(&r, Granularity::Step).unwrap()).unwrap();
        let props: Vec<(String, String)> = back.test_suites[0]
            .properties
            .iter()
            .map(|p| (p.name.as_str().to_string(), p.value.as_str().to_string()))
            .collect();
        for (k, v) in [
            ("run-id", "run-7"),
            ("kubernetes-version", "v1.33.1"),
            ("cni", "calico v3.28.0"),
            ("profiles", "core"),
            ("time-to-enforce-ms/one", "250"),
        ] {
            assert!(
                props.contains(&(k.to_string(), v.to_string())),
                "{k} missing: {props:?}"
            );
        }
    }

    #[test]
    fn probe_errors_are_errors_not_failures_and_get_their_own_case_beside_a_failure() {
        let err = || {
            cell(
                "x/a",
                "x/d",
                Verdict::Allow,
                CellStatus::Error,
                &[Outcome::Error],
            )
        };
        let r = report(vec![outcome(
            "e",
            vec![
                st("only-errors", vec![err()]),
                st("both", vec![wrong(), err()]),
            ],
        )]);
        let back = Report::deserialize_from_str(&render(&r, Granularity::Step).unwrap()).unwrap();
        assert_eq!((back.tests, back.failures, back.errors), (3, 1, 2));
        let names: Vec<&str> = back.test_suites[0]
            .test_cases
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["only-errors", "both", "both (probe errors)"]);
    }

    #[test]
    fn an_environment_problem_is_an_error_testcase_named_environment() {
        let mut o = outcome("env", vec![]);
        o.environment = Some(EnvironmentProblem {
            what: "pods not ready after 60s".into(),
        });
        let back =
            Report::deserialize_from_str(&render(&report(vec![o]), Granularity::Step).unwrap())
                .unwrap();
        let c = &back.test_suites[0].test_cases[0];
        assert_eq!(c.name.as_str(), "environment");
        assert!(matches!(
            &c.status,
            TestCaseStatus::NonSuccess { kind: NonSuccessKind::Error, message: Some(m), .. }
                if m.as_str().contains("pods not ready")
        ));
    }

    #[test]
    fn an_accepted_reject_is_a_failure_even_when_every_path_passed() {
        let mut s = st("bad policy", vec![pass("x/a", "x/b", Verdict::Allow)]);
        s.rejects.push(RejectSummary {
            policy: "x/invalid".into(),
            refused: false,
            detail: "created without error".into(),
        });
        let r = report(vec![outcome("rej", vec![s])]);
        let xml = render(&r, Granularity::Step).unwrap();
        assert!(xml.contains("1 accepted reject(s)"), "{xml}");
        let back = Report::deserialize_from_str(&xml).unwrap();
        assert_eq!(back.failures, 1);
        let back = Report::deserialize_from_str(&render(&r, Granularity::Path).unwrap()).unwrap();
        assert_eq!((back.tests, back.failures), (2, 1));
    }

    #[test]
    fn path_granularity_has_one_case_per_cell_with_skips_for_unjudged_ones() {
        let r = report(vec![outcome(
            "paths",
            vec![st(
                "s",
                vec![
                    wrong(),
                    pass("x/a", "x/c", Verdict::Allow),
                    cell(
                        "x/a",
                        "x/d",
                        Verdict::Allow,
                        CellStatus::Error,
                        &[Outcome::DnsFailed],
                    ),
                    cell(
                        "x/a",
                        "x/e",
                        Verdict::Allow,
                        CellStatus::Unsupported,
                        &[Outcome::Unsupported],
                    ),
                    cell(
                        "x/a",
                        "x/a",
                        Verdict::Allow,
                        CellStatus::NotJudged,
                        &[Outcome::Connected],
                    ),
                ],
            )],
        )]);
        let back = Report::deserialize_from_str(&render(&r, Granularity::Path).unwrap()).unwrap();
        assert_eq!(
            (back.tests, back.failures, back.errors, back.skipped),
            (5, 1, 1, 2)
        );
        assert_eq!(
            back.test_suites[0].test_cases[0].name.as_str(),
            "s: x/a -> x/b 80/TCP via pod-ip"
        );
    }

    // DESIGN §7b: a step with nothing judged is skipped, with the reason as its message.
    #[test]
    fn a_step_with_nothing_judged_is_skipped_with_the_reason() {
        let mut sctp = cell(
            "x/a",
            "x/b",
            Verdict::Allow,
            CellStatus::Unsupported,
            &[Outcome::Unsupported],
        );
        sctp.expected.cell.protocol = netassay_core::model::Protocol::Sctp;
        let r = report(vec![outcome("sctp", vec![st("s", vec![sctp])])]);
        let xml = render(&r, Granularity::Step).unwrap();
        assert!(
            xml.contains(r#"<skipped message="unsupported: SCTP not available on this cluster""#),
            "{xml}"
        );
        let back = Report::deserialize_from_str(&xml).unwrap();
        assert_eq!((back.tests, back.skipped), (1, 1));
    }

    #[test]
    fn user_text_is_escaped_and_control_characters_dropped() {
        let mut c = wrong();
        c.attempts[0].detail = "<b>&\"\x07".into();
        let r = report(vec![outcome("a <b> & \"c\"", vec![st("s]]>", vec![c])])]);
        let xml = render(&r, Granularity::Step).unwrap();
        assert!(xml.contains("a &lt;b&gt; &amp;"), "{xml}");
        assert!(!xml.contains('\x07'));
        Report::deserialize_from_str(&xml).unwrap();
    }

    #[test]
    fn granularity_parses_from_its_name() {
        assert_eq!("path".parse::<Granularity>(), Ok(Granularity::Path));
        assert!("cell".parse::<Granularity>().is_err());
    }
}
