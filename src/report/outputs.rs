//! Writing every report a run asked for: the single files, the report dir and Sonobuoy's.

use super::files::{render, write_dir, write_file, Kind, Outputs, ReportError};
use super::run_report::RunReport;
use super::sonobuoy;
use std::path::PathBuf;

/// Writes every requested report and returns the files written, in the order written.
pub fn write_all(report: &RunReport, outputs: &Outputs) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = Vec::new();
    for (kind, path) in [
        (Kind::Junit, &outputs.junit),
        (Kind::Json, &outputs.json),
        (Kind::Html, &outputs.html),
        (Kind::Conformance, &outputs.conformance),
    ] {
        if let Some(path) = path {
            write_file(path, &render(report, kind, outputs)?)?;
            written.push(path.clone());
        }
    }
    if let Some(dir) = &outputs.report_dir {
        written.extend(write_dir(report, dir, outputs)?);
    }
    if let Some(dir) = &outputs.sonobuoy_dir {
        written.extend(sonobuoy::write(report, dir, outputs)?);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::facts::Environment;
    use crate::report::summary::summary_tables;
    use crate::report::table::fixtures::{cell, pass, step};
    use crate::runner::result::CellStatus;
    use crate::suite::{RejectSummary, ScenarioOutcome, StepOutcome};
    use netassay_core::model::Verdict;
    use netassay_core::probe::Outcome;

    fn report() -> RunReport {
        let mut wrong = cell(
            "x/a",
            "x/b",
            Verdict::Deny,
            CellStatus::Fail,
            &[Outcome::Connected],
        );
        wrong.explanation = Some("ingress isolated by x/deny".into());
        let scenario = |name: &str, cells, rejects| ScenarioOutcome {
            name: name.to_string(),
            file: "f.yaml".into(),
            tags: vec!["core".into()],
            intent: false,
            baseline: None,
            steps: vec![StepOutcome {
                name: "apply".into(),
                result: step(cells),
                rejects,
                inventory: None,
            }],
            environment: None,
        };
        RunReport {
            run_id: "r".into(),
            netassay_version: "0.1.0".into(),
            started: "2025-01-01T00:00:00Z".into(),
            elapsed_ms: 1,
            sandbox: true,
            sandbox_faults: vec![],
            profiles: vec![],
            environment: Environment::default(),
            scenarios: vec![
                scenario("good", vec![pass("x/a", "x/c", Verdict::Allow)], vec![]),
                scenario(
                    "bad",
                    vec![wrong, pass("x/a", "x/c", Verdict::Allow)],
                    vec![RejectSummary {
                        policy: "x/invalid".into(),
                        refused: false,
                        detail: "created".into(),
                    }],
                ),
            ],
        }
    }

    #[test]
    fn the_summary_names_only_failing_scenarios_and_their_wrong_cells() {
        assert_eq!(
            summary_tables(&report(), false),
            "bad [failed]: 1 wrong path; 1 accepted reject\n  step \"apply\":\n    \
             x/a -> x/b 80/TCP via pod-ip: expected deny, observed connected [fail, 1 attempt]\n        \
             because: ingress isolated by x/deny\n    \
             reject check x/invalid: accepted, should have been refused (created)\n"
        );
    }

    // DESIGN §7b: the JSON says which scenarios and steps passed, and why the others did not.
    #[test]
    fn the_json_carries_verdicts_and_reasons() {
        let mut r = report();
        let mut sctp = cell(
            "x/a",
            "x/b",
            Verdict::Allow,
            CellStatus::Unsupported,
            &[Outcome::Unsupported],
        );
        sctp.expected.cell.protocol = netassay_core::model::Protocol::Sctp;
        r.scenarios.push(ScenarioOutcome {
            name: "sctp".into(),
            file: "f.yaml".into(),
            tags: vec!["core".into()],
            intent: false,
            baseline: None,
            steps: vec![StepOutcome {
                name: "s".into(),
                result: step(vec![sctp]),
                rejects: vec![],
                inventory: None,
            }],
            environment: None,
        });
        let doc: serde_json::Value =
            serde_json::from_str(&crate::report::json::render(&r).unwrap()).unwrap();
        let verdicts: Vec<&str> = doc["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["verdict"].as_str().unwrap())
            .collect();
        assert_eq!(verdicts, ["passed", "failed", "incomplete"]);
        let sctp = &doc["scenarios"][2];
        assert_eq!(sctp["shortfall"], "no-evidence");
        assert_eq!(sctp["steps"][0]["verdict"], "incomplete");
        assert_eq!(
            sctp["steps"][0]["reason"],
            "unsupported: SCTP not available on this cluster"
        );
        assert_eq!(doc["summary"]["incomplete"], 1);
        assert_eq!(doc["summary"]["verdict"], "NOT CONFORMANT");
    }

    #[test]
    fn write_all_writes_each_requested_file_and_the_report_dir() {
        let dir = tempfile::tempdir().unwrap();
        let outputs = Outputs {
            json: Some(dir.path().join("r.json")),
            report_dir: Some(dir.path().join("all")),
            ..Outputs::default()
        };
        let written = write_all(&report(), &outputs).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "r.json",
                "all/junit.xml",
                "all/results.json",
                "all/report.html",
                "all/conformance.yaml"
            ]
        );
        assert!(written.iter().all(|p| p.metadata().unwrap().len() > 0));
    }

    #[test]
    fn a_file_that_cannot_be_written_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("missing").join("junit.xml");
        let err = write_all(
            &report(),
            &Outputs {
                junit: Some(target.clone()),
                ..Outputs::default()
            },
        )
        .unwrap_err();
        assert!(
            err.to_string().contains(&target.display().to_string()),
            "{err}"
        );
    }
}
