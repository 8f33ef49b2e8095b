//! Verdicts of scenarios, profiles and the run, and the Gateway-API-style conformance report YAML.

use super::RunReport;
use crate::runner::result::CellStatus;
use crate::runner::suite::ScenarioOutcome;
use crate::scenario::builtin::PROFILES;
use serde::{Deserialize, Serialize};
use std::fmt;

pub const API_VERSION: &str = "netassay.io/v1alpha1";
pub const KIND: &str = "ConformanceReport";
/// The profile of scenarios that carry none of the built-in profile tags (user scenario files).
pub const CUSTOM_PROFILE: &str = "custom";

/// How one scenario ended, for counting and sign-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScenarioVerdict {
    /// Every judged cell as expected, every reject refused.
    Passed,
    /// At least one mismatch (fail or flapping cell) or accepted reject.
    Failed,
    /// No mismatch, but the environment or the probes failed: nothing can be claimed.
    Incomplete,
    /// Nothing could be judged (e.g. every cell on an unsupported protocol).
    Skipped,
}

impl ScenarioVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioVerdict::Passed => "passed",
            ScenarioVerdict::Failed => "failed",
            ScenarioVerdict::Incomplete => "incomplete",
            ScenarioVerdict::Skipped => "skipped",
        }
    }
}

impl fmt::Display for ScenarioVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn judged_cells(o: &ScenarioOutcome) -> usize {
    o.steps
        .iter()
        .flat_map(|s| &s.result.cells)
        .filter(|c| !matches!(c.status, CellStatus::Unsupported | CellStatus::NotJudged))
        .count()
}

/// A step that planned paths but could judge none of them (all unsupported or not judged) and
/// checked no rejects: it proves nothing, so its scenario cannot pass (the evidence rule,
/// DESIGN §7b). An inventory does not stand in for paths that were planned.
fn step_without_evidence(s: &crate::runner::suite::StepOutcome) -> bool {
    !s.result.cells.is_empty()
        && s.result
            .cells
            .iter()
            .all(|c| matches!(c.status, CellStatus::Unsupported | CellStatus::NotJudged))
        && s.rejects.is_empty()
}

/// The one place a scenario's outcome becomes a verdict; every report uses it.
///
/// Passed needs evidence: every step that planned paths judged at least one of them (or
/// checked rejects or an inventory). Nothing judged at all, or a step that judged nothing, is
/// Skipped (reported as not judged: libtest ignored, JUnit skipped), never Passed.
pub fn scenario_verdict(o: &ScenarioOutcome) -> ScenarioVerdict {
    if o.failed_cells() > 0 || o.failed_rejects() > 0 || o.failed_exposures() > 0 {
        ScenarioVerdict::Failed
    } else if o.environment.is_some() || o.errors() > 0 {
        ScenarioVerdict::Incomplete
    } else if (judged_cells(o) == 0
        && o.steps.iter().all(|s| s.rejects.is_empty())
        // An inventory alone is evidence only when the scenario probes nothing; paths that
        // were planned but could not be judged leave it incomplete.
        && (o.steps.iter().any(|s| !s.result.cells.is_empty())
            || o.steps.iter().all(|s| s.inventory.is_none())))
        || o.steps.iter().any(step_without_evidence)
    {
        ScenarioVerdict::Skipped
    } else {
        ScenarioVerdict::Passed
    }
}

/// Why a scenario did not pass, in one line; `None` when it passed.
pub fn scenario_reason(o: &ScenarioOutcome) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(e) = &o.environment {
        parts.push(format!("environment: {}", e.what));
    }
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    if o.failed_cells() > 0 {
        parts.push(plural(o.failed_cells(), "wrong path"));
    }
    if o.failed_rejects() > 0 {
        parts.push(plural(o.failed_rejects(), "accepted reject"));
    }
    if o.failed_exposures() > 0 {
        parts.push(plural(o.failed_exposures(), "unapproved exposure"));
    }
    if o.errors() > 0 {
        parts.push(plural(o.errors(), "probe error"));
    }
    match scenario_verdict(o) {
        ScenarioVerdict::Passed => None,
        ScenarioVerdict::Skipped => {
            let unsupported: usize = o
                .steps
                .iter()
                .map(|s| s.result.count(CellStatus::Unsupported))
                .sum();
            let protocols: std::collections::BTreeSet<String> = o
                .steps
                .iter()
                .flat_map(|s| &s.result.cells)
                .filter(|c| c.status == CellStatus::Unsupported)
                .map(|c| c.expected.cell.protocol.to_string())
                .collect();
            let blind: Vec<&str> = o
                .steps
                .iter()
                .filter(|s| step_without_evidence(s))
                .map(|s| s.name.as_str())
                .collect();
            let what = if protocols.is_empty() {
                "nothing could be judged".to_string()
            } else {
                format!(
                    "unsupported: {} not available on this cluster",
                    protocols.into_iter().collect::<Vec<_>>().join(", ")
                )
            };
            let steps = if judged_cells(o) == 0 {
                "in every step".to_string()
            } else {
                format!("step(s) {} judged nothing", blind.join(", "))
            };
            Some(format!(
                "{what} ({}; {steps})",
                plural(unsupported, "unsupported cell")
            ))
        }
        _ => Some(parts.join("; ")),
    }
}

/// The summary verdict of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunVerdict {
    Conformant,
    NotConformant,
    Incomplete,
}

impl RunVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            RunVerdict::Conformant => "CONFORMANT",
            RunVerdict::NotConformant => "NOT CONFORMANT",
            RunVerdict::Incomplete => "INCOMPLETE",
        }
    }
}

impl fmt::Display for RunVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Any mismatch makes the run not conformant; otherwise anything unjudged (or an empty run)
/// leaves it incomplete.
pub fn run_verdict(report: &RunReport) -> RunVerdict {
    let verdicts: Vec<ScenarioVerdict> = report.scenarios.iter().map(scenario_verdict).collect();
    if verdicts.contains(&ScenarioVerdict::Failed) {
        RunVerdict::NotConformant
    } else if verdicts.is_empty() || verdicts.iter().any(|v| *v != ScenarioVerdict::Passed) {
        RunVerdict::Incomplete
    } else {
        RunVerdict::Conformant
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConformanceReport {
    pub api_version: String,
    pub kind: String,
    /// RFC 3339: when the run started.
    pub date: String,
    pub run_id: String,
    pub netassay_version: String,
    pub kubernetes_version: String,
    pub implementation: Implementation,
    pub profiles: Vec<ProfileReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Implementation {
    pub name: String,
    pub version: String,
}

impl Implementation {
    /// `NAME[:VERSION]` as given with `--implementation`.
    pub fn from_flag(s: &str) -> Self {
        match s.split_once(':') {
            Some((name, version)) => Implementation {
                name: name.trim().to_string(),
                version: version.trim().to_string(),
            },
            None => Implementation {
                name: s.trim().to_string(),
                version: "unknown".into(),
            },
        }
    }

    /// The detected CNI, `cilium v1.16.3` or just `calico`.
    pub fn from_cni(cni: &str) -> Self {
        match cni.trim().split_once(' ') {
            Some((name, version)) => Implementation {
                name: name.to_string(),
                version: version.trim().to_string(),
            },
            None => Implementation {
                name: if cni.trim().is_empty() {
                    "unknown".into()
                } else {
                    cni.trim().to_string()
                },
                version: "unknown".into(),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileResult {
    /// Every scenario passed.
    Success,
    /// At least one scenario failed.
    Failure,
    /// None failed, but some were skipped or incomplete.
    Partial,
    /// The profile had no scenario in this run.
    Skipped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Statistics {
    pub passed: usize,
    pub failed: usize,
    /// Skipped and incomplete scenarios: nothing is claimed for them.
    pub skipped: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileReport {
    pub name: String,
    pub result: ProfileResult,
    pub statistics: Statistics,
    pub summary: String,
    #[serde(default)]
    pub failed_tests: Vec<String>,
    #[serde(default)]
    pub skipped_tests: Vec<String>,
}

/// The profiles a scenario counts towards: its profile tags, or `custom` when it has none.
fn profiles_of(o: &ScenarioOutcome) -> Vec<&str> {
    let p: Vec<&str> = PROFILES
        .iter()
        .copied()
        .filter(|p| o.tags.iter().any(|t| t == p))
        .collect();
    if p.is_empty() {
        vec![CUSTOM_PROFILE]
    } else {
        p
    }
}

/// The profiles to report: those selected for the run (even if empty), then any other profile
/// a scenario of the run belongs to.
fn profile_names(report: &RunReport) -> Vec<String> {
    let mut names: Vec<String> = report
        .profiles
        .iter()
        .flat_map(|p| p.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    for o in &report.scenarios {
        for p in profiles_of(o) {
            if !names.iter().any(|n| n == p) {
                names.push(p.to_string());
            }
        }
    }
    names.dedup();
    names
}

fn profile_report(report: &RunReport, name: &str) -> ProfileReport {
    let mut stats = Statistics::default();
    let (mut failed_tests, mut skipped_tests) = (Vec::new(), Vec::new());
    // A selected profile also reports the profiles it includes (k8tre: core, the CNI statement).
    let included = crate::scenario::builtin::includes(name);
    let selected = report.profiles.iter().any(|p| p == name);
    let counts = |o: &&ScenarioOutcome| {
        let ps = profiles_of(o);
        ps.contains(&name) || (selected && ps.iter().any(|p| included.contains(p)))
    };
    for o in report.scenarios.iter().filter(counts) {
        match scenario_verdict(o) {
            ScenarioVerdict::Passed => stats.passed += 1,
            ScenarioVerdict::Failed => {
                stats.failed += 1;
                failed_tests.push(o.name.clone());
            }
            ScenarioVerdict::Incomplete | ScenarioVerdict::Skipped => {
                stats.skipped += 1;
                skipped_tests.push(o.name.clone());
            }
        }
    }
    let total = stats.passed + stats.failed + stats.skipped;
    let result = if total == 0 {
        ProfileResult::Skipped
    } else if stats.failed > 0 {
        ProfileResult::Failure
    } else if stats.skipped > 0 {
        ProfileResult::Partial
    } else {
        ProfileResult::Success
    };
    let summary = match result {
        ProfileResult::Skipped => "no scenario of this profile ran".to_string(),
        _ => format!(
            "{} of {total} scenarios passed, {} failed, {} skipped",
            stats.passed, stats.failed, stats.skipped
        ),
    };
    ProfileReport {
        name: name.to_string(),
        result,
        statistics: stats,
        summary,
        failed_tests,
        skipped_tests,
    }
}

/// The report as data; `implementation` is `--implementation NAME[:VERSION]` when given.
pub fn build(report: &RunReport, implementation: Option<&str>) -> ConformanceReport {
    ConformanceReport {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        date: report.started.clone(),
        run_id: report.run_id.clone(),
        netassay_version: report.netassay_version.clone(),
        kubernetes_version: report.environment.kubernetes_version.clone(),
        implementation: match implementation {
            Some(s) => Implementation::from_flag(s),
            None => Implementation::from_cni(&report.environment.cni),
        },
        profiles: profile_names(report)
            .iter()
            .map(|p| profile_report(report, p))
            .collect(),
    }
}

pub fn render(
    report: &RunReport,
    implementation: Option<&str>,
) -> Result<String, serde_saphyr::ser::Error> {
    serde_saphyr::to_string(&build(report, implementation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::facts::Environment;
    use crate::model::Verdict;
    use crate::probe::Outcome;
    use crate::report::table::fixtures::{cell, pass, step};
    use crate::runner::suite::{EnvironmentProblem, RejectSummary, StepOutcome};

    fn scenario(
        name: &str,
        tags: &[&str],
        cells: Vec<crate::runner::CellResult>,
    ) -> ScenarioOutcome {
        ScenarioOutcome {
            name: name.into(),
            file: format!("{name}.yaml"),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            intent: false,
            baseline: None,
            steps: vec![StepOutcome {
                name: "only".into(),
                result: step(cells),
                rejects: vec![],
                inventory: None,
            }],
            environment: None,
        }
    }

    fn report(scenarios: Vec<ScenarioOutcome>) -> RunReport {
        RunReport {
            run_id: "r1".into(),
            netassay_version: "0.1.0".into(),
            started: "2025-01-01T00:00:00Z".into(),
            elapsed_ms: 1,
            sandbox: true,
            sandbox_faults: vec![],
            profiles: vec!["core".into(), "extended".into()],
            environment: Environment {
                kubernetes_version: "v1.33.0".into(),
                nodes: 1,
                cni: "cilium v1.16.3".into(),
            },
            scenarios,
        }
    }

    fn exposure(approved: bool) -> crate::runner::suite::ExposureFinding {
        crate::runner::suite::ExposureFinding {
            exposure: crate::cluster::inventory::Exposure {
                kind: crate::cluster::inventory::ExposureKind::NodePort,
                namespace: "p".into(),
                name: "web".into(),
                detail: "NodePort 30000/TCP".into(),
            },
            approved,
            message: "NodePort service p/web: ... is not on the allow-list of exposures".into(),
        }
    }

    fn with_inventory(mut o: ScenarioOutcome, approved: bool) -> ScenarioOutcome {
        o.steps[0].inventory = Some(crate::runner::suite::InventoryCheck {
            exposures: vec![exposure(approved)],
            notes: vec![],
        });
        o
    }

    // An unapproved exposure fails the scenario whatever its paths did; an approved inventory
    // counts as evidence only when the scenario planned no paths at all.
    #[test]
    fn inventories_fail_on_unapproved_exposures_and_never_stand_in_for_unjudged_paths() {
        let passing = scenario("gw", &["k8tre"], vec![pass("x/a", "x/b", Verdict::Allow)]);
        assert_eq!(
            scenario_verdict(&with_inventory(passing.clone(), false)),
            ScenarioVerdict::Failed
        );
        assert!(scenario_reason(&with_inventory(passing.clone(), false))
            .is_some_and(|r| r.contains("1 unapproved exposure")));
        assert_eq!(
            scenario_verdict(&with_inventory(passing, true)),
            ScenarioVerdict::Passed
        );
        let unprobed = scenario(
            "gw",
            &["k8tre"],
            vec![cell(
                "outside/vantage",
                "x/b",
                Verdict::Deny,
                CellStatus::Unsupported,
                &[Outcome::Unsupported],
            )],
        );
        assert_eq!(
            scenario_verdict(&with_inventory(unprobed, true)),
            ScenarioVerdict::Skipped
        );
        let inventory_only = scenario("inv", &["k8tre"], vec![]);
        assert_eq!(
            scenario_verdict(&with_inventory(inventory_only, true)),
            ScenarioVerdict::Passed
        );
    }

    // DESIGN §7b, the evidence rule: a scenario passes only if every step that planned paths
    // judged at least one; a step whose cells were all unsupported (or not judged) leaves the
    // scenario not judged (Skipped), even when another step passed; partly unsupported steps
    // pass on their judged cells.
    #[test]
    fn every_step_needs_evidence_for_its_scenario_to_pass() {
        let unsupported = || {
            cell(
                "x/a",
                "x/b",
                Verdict::Deny,
                CellStatus::Unsupported,
                &[Outcome::Unsupported],
            )
        };
        let loopback = || {
            cell(
                "x/a",
                "x/a",
                Verdict::Allow,
                CellStatus::NotJudged,
                &[Outcome::Connected],
            )
        };
        let two_steps = |first: Vec<crate::runner::CellResult>,
                         second: Vec<crate::runner::CellResult>| {
            let mut o = scenario("s", &["core"], first);
            o.steps.push(StepOutcome {
                name: "second".into(),
                result: step(second),
                rejects: vec![],
                inventory: None,
            });
            o
        };
        let table: Vec<(&str, ScenarioOutcome, ScenarioVerdict)> = vec![
            (
                "both steps judged",
                two_steps(
                    vec![pass("x/a", "x/b", Verdict::Allow)],
                    vec![pass("x/a", "x/c", Verdict::Deny)],
                ),
                ScenarioVerdict::Passed,
            ),
            (
                "second step all unsupported",
                two_steps(
                    vec![pass("x/a", "x/b", Verdict::Allow)],
                    vec![unsupported()],
                ),
                ScenarioVerdict::Skipped,
            ),
            (
                "second step only loopback",
                two_steps(vec![pass("x/a", "x/b", Verdict::Allow)], vec![loopback()]),
                ScenarioVerdict::Skipped,
            ),
            (
                "partly unsupported step passes on its judged cell",
                two_steps(
                    vec![pass("x/a", "x/b", Verdict::Allow), unsupported()],
                    vec![pass("x/a", "x/c", Verdict::Deny)],
                ),
                ScenarioVerdict::Passed,
            ),
            (
                "nothing judged anywhere",
                two_steps(vec![unsupported()], vec![unsupported()]),
                ScenarioVerdict::Skipped,
            ),
            (
                "a mismatch beats missing evidence",
                two_steps(
                    vec![cell(
                        "x/a",
                        "x/b",
                        Verdict::Deny,
                        CellStatus::Fail,
                        &[Outcome::Connected],
                    )],
                    vec![unsupported()],
                ),
                ScenarioVerdict::Failed,
            ),
        ];
        for (what, outcome, want) in table {
            assert_eq!(scenario_verdict(&outcome), want, "{what}");
        }
        let reason = scenario_reason(&two_steps(
            vec![pass("x/a", "x/b", Verdict::Allow)],
            vec![unsupported()],
        ))
        .unwrap_or_default();
        assert!(
            reason.starts_with("unsupported: TCP not available on this cluster"),
            "{reason}"
        );
        assert!(reason.contains("step(s) second judged nothing"), "{reason}");
    }

    #[test]
    fn a_mismatch_fails_and_an_error_alone_is_incomplete() {
        let ok = scenario("ok", &["core"], vec![pass("x/a", "x/b", Verdict::Allow)]);
        assert_eq!(scenario_verdict(&ok), ScenarioVerdict::Passed);
        let bad = scenario(
            "bad",
            &["core"],
            vec![
                cell(
                    "x/a",
                    "x/b",
                    Verdict::Deny,
                    CellStatus::Fail,
                    &[Outcome::Connected],
                ),
                cell(
                    "x/a",
                    "x/c",
                    Verdict::Deny,
                    CellStatus::Error,
                    &[Outcome::Error],
                ),
            ],
        );
        assert_eq!(scenario_verdict(&bad), ScenarioVerdict::Failed);
        let err = scenario(
            "err",
            &["core"],
            vec![cell(
                "x/a",
                "x/c",
                Verdict::Deny,
                CellStatus::Error,
                &[Outcome::Error],
            )],
        );
        assert_eq!(scenario_verdict(&err), ScenarioVerdict::Incomplete);
        assert_eq!(scenario_reason(&err).as_deref(), Some("1 probe error"));
    }

    #[test]
    fn an_accepted_reject_fails_and_an_environment_problem_is_incomplete() {
        let mut rej = scenario("rej", &["core"], vec![pass("x/a", "x/b", Verdict::Allow)]);
        rej.steps[0].rejects.push(RejectSummary {
            policy: "x/bad".into(),
            refused: false,
            detail: "created".into(),
        });
        assert_eq!(scenario_verdict(&rej), ScenarioVerdict::Failed);
        let mut env = scenario("env", &["core"], vec![]);
        env.environment = Some(EnvironmentProblem {
            what: "pods not ready".into(),
        });
        assert_eq!(scenario_verdict(&env), ScenarioVerdict::Incomplete);
    }

    #[test]
    fn only_unsupported_cells_is_skipped() {
        let s = scenario(
            "sctp",
            &["extended"],
            vec![cell(
                "x/a",
                "x/b",
                Verdict::Allow,
                CellStatus::Unsupported,
                &[Outcome::Unsupported],
            )],
        );
        assert_eq!(scenario_verdict(&s), ScenarioVerdict::Skipped);
        assert_eq!(
            scenario_reason(&s).as_deref(),
            Some("unsupported: TCP not available on this cluster (1 unsupported cell; in every step)")
        );
    }

    #[test]
    fn run_verdict_is_not_conformant_on_any_failure_and_incomplete_on_anything_unjudged() {
        let ok = || scenario("ok", &["core"], vec![pass("x/a", "x/b", Verdict::Allow)]);
        assert_eq!(run_verdict(&report(vec![ok()])), RunVerdict::Conformant);
        assert_eq!(run_verdict(&report(vec![])), RunVerdict::Incomplete);
        let sctp = scenario(
            "sctp",
            &["extended"],
            vec![cell(
                "x/a",
                "x/b",
                Verdict::Allow,
                CellStatus::Unsupported,
                &[Outcome::Unsupported],
            )],
        );
        assert_eq!(
            run_verdict(&report(vec![ok(), sctp])),
            RunVerdict::Incomplete
        );
        let bad = scenario(
            "bad",
            &["core"],
            vec![cell(
                "x/a",
                "x/b",
                Verdict::Deny,
                CellStatus::Flapping,
                &[Outcome::Connected],
            )],
        );
        assert_eq!(
            run_verdict(&report(vec![ok(), bad])),
            RunVerdict::NotConformant
        );
    }

    #[test]
    fn profiles_count_scenarios_by_tag_and_report_empty_selected_profiles_as_skipped() {
        let r = report(vec![
            scenario(
                "a",
                &["core", "upstream"],
                vec![pass("x/a", "x/b", Verdict::Allow)],
            ),
            scenario(
                "b",
                &["core"],
                vec![cell(
                    "x/a",
                    "x/b",
                    Verdict::Deny,
                    CellStatus::Fail,
                    &[Outcome::Connected],
                )],
            ),
            scenario("mine", &["team"], vec![pass("x/a", "x/b", Verdict::Allow)]),
        ]);
        let c = build(&r, None);
        let names: Vec<&str> = c.profiles.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["core", "extended", "custom"]);
        assert_eq!(c.profiles[0].result, ProfileResult::Failure);
        assert_eq!(
            c.profiles[0].statistics,
            Statistics {
                passed: 1,
                failed: 1,
                skipped: 0
            }
        );
        assert_eq!(c.profiles[0].failed_tests, ["b"]);
        assert_eq!(c.profiles[1].result, ProfileResult::Skipped);
        assert_eq!(c.profiles[2].result, ProfileResult::Success);
        assert_eq!(
            c.implementation,
            Implementation {
                name: "cilium".into(),
                version: "v1.16.3".into()
            }
        );
    }

    #[test]
    fn the_implementation_flag_wins_over_the_detected_cni() {
        let c = build(&report(vec![]), Some("acme-cni:2.0.1"));
        assert_eq!(c.implementation.name, "acme-cni");
        assert_eq!(c.implementation.version, "2.0.1");
        assert_eq!(Implementation::from_flag("acme").version, "unknown");
        assert_eq!(Implementation::from_cni("unknown").name, "unknown");
    }

    #[test]
    fn the_yaml_parses_back_to_the_same_report() {
        let r = report(vec![
            scenario(
                "a: tricky \"name\"",
                &["core"],
                vec![pass("x/a", "x/b", Verdict::Allow)],
            ),
            scenario(
                "b",
                &["core"],
                vec![cell(
                    "x/a",
                    "x/b",
                    Verdict::Deny,
                    CellStatus::Fail,
                    &[Outcome::Connected],
                )],
            ),
        ]);
        let yaml = render(&r, None).unwrap();
        assert!(
            yaml.starts_with("apiVersion: netassay.io/v1alpha1\nkind: ConformanceReport\n"),
            "{yaml}"
        );
        let back: ConformanceReport = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, build(&r, None));
    }
}
