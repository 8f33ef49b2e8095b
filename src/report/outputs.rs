//! Writing the report files a run asked for, and the terminal summary of what went wrong.

use super::conformance::{scenario_reason, scenario_verdict, ScenarioVerdict};
use super::junit::Granularity;
use super::table::{self, is_wrong};
use super::{conformance, html, json, junit, sonobuoy, RunReport};
use crate::runner::suite::ScenarioOutcome;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Which reports to write where (from the command line).
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub junit: Option<PathBuf>,
    pub junit_granularity: Granularity,
    pub json: Option<PathBuf>,
    pub html: Option<PathBuf>,
    pub conformance: Option<PathBuf>,
    /// Every report, under its standard name (see [`Kind::file_name`]).
    pub report_dir: Option<PathBuf>,
    /// Every report plus the tarball and `done` file Sonobuoy's worker waits for.
    pub sonobuoy_dir: Option<PathBuf>,
    /// `NAME[:VERSION]` for the conformance report; the detected CNI when absent.
    pub implementation: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rendering the JUnit report: {0}")]
    Junit(#[from] quick_junit::SerializeError),
    #[error("rendering the JSON results: {0}")]
    Json(#[from] serde_json::Error),
    #[error("rendering the conformance report: {0}")]
    Yaml(#[from] serde_saphyr::ser::Error),
}

/// The report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Junit,
    Json,
    Html,
    Conformance,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Junit, Kind::Json, Kind::Html, Kind::Conformance];

    /// The standard name in `--report-dir` and the Sonobuoy results dir.
    pub fn file_name(self) -> &'static str {
        match self {
            Kind::Junit => "junit.xml",
            Kind::Json => "results.json",
            Kind::Html => "report.html",
            Kind::Conformance => "conformance.yaml",
        }
    }
}

/// One report's text.
pub fn render(report: &RunReport, kind: Kind, outputs: &Outputs) -> Result<String, ReportError> {
    Ok(match kind {
        Kind::Junit => junit::render(report, outputs.junit_granularity)?,
        Kind::Json => json::render(report)?,
        Kind::Html => html::render(report),
        Kind::Conformance => conformance::render(report, outputs.implementation.as_deref())?,
    })
}

pub fn write_file(path: &Path, contents: &str) -> Result<(), ReportError> {
    std::fs::write(path, contents).map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })
}

pub fn create_dir(dir: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

/// Every report into `dir` under its standard name; returns the files in [`Kind::ALL`] order.
pub fn write_dir(
    report: &RunReport,
    dir: &Path,
    outputs: &Outputs,
) -> Result<Vec<PathBuf>, ReportError> {
    create_dir(dir)?;
    let mut written = Vec::new();
    for kind in Kind::ALL {
        let path = dir.join(kind.file_name());
        write_file(&path, &render(report, kind, outputs)?)?;
        written.push(path);
    }
    Ok(written)
}

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
        for line in table::compact_diff(&s.result, color).lines() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::facts::Environment;
    use crate::model::Verdict;
    use crate::probe::Outcome;
    use crate::report::table::fixtures::{cell, pass, step};
    use crate::runner::result::CellStatus;
    use crate::runner::suite::{RejectSummary, ScenarioOutcome, StepOutcome};

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
        sctp.expected.cell.protocol = crate::model::Protocol::Sctp;
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
