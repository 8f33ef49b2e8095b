//! The sign-off view of an intent profile: each K8TRE statement, the scenarios that give
//! evidence for it, and the result. A statement passes only when every one of its scenarios ran
//! and passed; a statement with no scenario in the run is "not run", never "passed".

use super::conformance::{scenario_verdict, ScenarioVerdict};
use super::run_report::RunReport;
use serde::Serialize;
use std::fmt::Write as _;

/// One statement of a specification and the scenario tag that gives evidence for it.
#[derive(Debug, Clone, Copy)]
pub struct Statement {
    pub id: &'static str,
    /// The specification's section.
    pub area: &'static str,
    pub text: &'static str,
    /// Scenarios carrying this tag are the evidence.
    pub tag: &'static str,
}

/// The K8TRE networking and workspace statements netassay checks.
pub const K8TRE: &[Statement] = &[
    Statement {
        id: "gateway",
        area: "networking",
        text: "All external access to applications/services must be via the ingress/gateway.",
        tag: "stmt-gateway",
    },
    Statement {
        id: "cni",
        area: "networking",
        text: "The TRE must use a network plugin/CNI that fully supports Network Policy enforcement.",
        tag: "core",
    },
    Statement {
        id: "outbound",
        area: "networking",
        text: "Outbound connectivity should be blocked by default, or restricted by IP and port to pre-approved, trusted destinations.",
        tag: "stmt-outbound",
    },
    Statement {
        id: "workspace-isolation",
        area: "workspaces",
        text: "Project workspaces must be isolated from each other and the internet.",
        tag: "stmt-workspace-isolation",
    },
    Statement {
        id: "shared-services",
        area: "workspaces",
        text: "Intra-project shared services must only be accessible to users within the same project.",
        tag: "stmt-shared-services",
    },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatementVerdict {
    Passed,
    Failed,
    /// Some evidence could not be judged (environment problems, probe errors, nothing judged).
    Incomplete,
    /// No scenario for it was in the run.
    NotRun,
}

impl std::fmt::Display for StatementVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StatementVerdict::Passed => "passed",
            StatementVerdict::Failed => "FAILED",
            StatementVerdict::Incomplete => "incomplete",
            StatementVerdict::NotRun => "not run",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    pub scenario: String,
    pub verdict: ScenarioVerdict,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatementResult {
    pub id: &'static str,
    pub area: &'static str,
    pub text: &'static str,
    pub scenarios: Vec<Evidence>,
    pub verdict: StatementVerdict,
}

/// True when the run ran the k8tre profile (or any statement scenario): its reports carry the
/// statement table.
pub fn applies(report: &RunReport) -> bool {
    report.profiles.iter().any(|p| p == "k8tre")
        || report
            .scenarios
            .iter()
            .any(|s| s.tags.iter().any(|t| t.starts_with("stmt-")))
}

/// The statement table of a run, when [`applies`].
pub fn k8tre(report: &RunReport) -> Option<Vec<StatementResult>> {
    applies(report).then(|| judge(K8TRE, report))
}

/// Each statement with its scenarios and verdict.
pub fn judge(statements: &[Statement], report: &RunReport) -> Vec<StatementResult> {
    statements
        .iter()
        .map(|st| {
            let verdicts: Vec<(String, ScenarioVerdict)> = report
                .scenarios
                .iter()
                .filter(|o| o.tags.iter().any(|t| t == st.tag))
                .map(|o| (o.name.clone(), scenario_verdict(o)))
                .collect();
            let verdict = if verdicts.is_empty() {
                StatementVerdict::NotRun
            } else if verdicts.iter().any(|(_, v)| *v == ScenarioVerdict::Failed) {
                StatementVerdict::Failed
            } else if verdicts.iter().all(|(_, v)| *v == ScenarioVerdict::Passed) {
                StatementVerdict::Passed
            } else {
                StatementVerdict::Incomplete
            };
            StatementResult {
                id: st.id,
                area: st.area,
                text: st.text,
                scenarios: verdicts
                    .into_iter()
                    .map(|(scenario, verdict)| Evidence { scenario, verdict })
                    .collect(),
                verdict,
            }
        })
        .collect()
}

/// The table for a terminal or a text file.
pub fn render_text(results: &[StatementResult]) -> String {
    let mut out = String::from("K8TRE statements:\n");
    for r in results {
        let _ = writeln!(out, "  [{}] {} ({}): {}", r.verdict, r.id, r.area, r.text);
        if r.scenarios.len() <= 6 {
            for e in &r.scenarios {
                let _ = writeln!(out, "      {} {}", e.verdict, e.scenario);
            }
        } else {
            let failed: Vec<&Evidence> = r
                .scenarios
                .iter()
                .filter(|e| e.verdict != ScenarioVerdict::Passed)
                .collect();
            let _ = writeln!(
                out,
                "      {} scenarios, {} not passed",
                r.scenarios.len(),
                failed.len()
            );
            for e in failed.iter().take(10) {
                let _ = writeln!(out, "      {} {}", e.verdict, e.scenario);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::facts::Environment;
    use crate::suite::{EnvironmentProblem, ScenarioOutcome};

    fn outcome(name: &str, tags: &[&str], env: bool) -> ScenarioOutcome {
        ScenarioOutcome {
            name: name.into(),
            file: "f".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            intent: true,
            baseline: None,
            steps: Vec::new(),
            environment: env.then(|| EnvironmentProblem {
                what: "no cluster".into(),
            }),
        }
    }

    fn report(scenarios: Vec<ScenarioOutcome>) -> RunReport {
        RunReport {
            run_id: "r".into(),
            netassay_version: "0".into(),
            started: String::new(),
            elapsed_ms: 0,
            sandbox: true,
            sandbox_faults: Vec::new(),
            profiles: vec!["k8tre".into()],
            environment: Environment::default(),
            scenarios,
        }
    }

    #[test]
    fn a_statement_without_scenarios_is_not_run_and_never_passed() {
        let r = judge(K8TRE, &report(Vec::new()));
        assert!(r.iter().all(|s| s.verdict == StatementVerdict::NotRun));
    }

    #[test]
    fn one_incomplete_scenario_makes_its_statement_incomplete_and_others_stay_apart() {
        let r = judge(
            K8TRE,
            &report(vec![
                outcome(
                    "iso",
                    &["stmt-workspace-isolation", "stmt-shared-services"],
                    true,
                ),
                outcome("out", &["stmt-outbound"], true),
            ]),
        );
        let by_id = |id: &str| r.iter().find(|s| s.id == id).expect("statement");
        assert_eq!(
            by_id("workspace-isolation").verdict,
            StatementVerdict::Incomplete
        );
        assert_eq!(by_id("shared-services").scenarios.len(), 1);
        assert_eq!(by_id("gateway").verdict, StatementVerdict::NotRun);
        assert!(render_text(&r).contains("[incomplete] outbound"));
    }

    #[test]
    fn the_table_appears_only_for_runs_with_statement_evidence() {
        let mut rep = report(vec![outcome("x", &["core"], false)]);
        rep.profiles = vec!["core".into()];
        assert!(k8tre(&rep).is_none());
        rep.profiles = vec!["k8tre".into()];
        assert!(k8tre(&rep).is_some());
    }
}
