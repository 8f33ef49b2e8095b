//! Verdicts of scenarios, profiles and the run, and the Gateway-API-style conformance report YAML.

use super::run_report::RunReport;
use crate::runner::result::CellStatus;
use crate::scenario::builtin::PROFILES;
use crate::suite::{ScenarioOutcome, StepOutcome};
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
    /// Every step has judged cells, every judged cell as expected, every reject refused.
    Passed,
    /// At least one mismatch (fail or flapping cell), accepted reject or unapproved exposure.
    Failed,
    /// No mismatch, but nothing can be claimed: see [`Shortfall`].
    Incomplete,
}

impl ScenarioVerdict {
    pub const ALL: [ScenarioVerdict; 3] = [
        ScenarioVerdict::Passed,
        ScenarioVerdict::Failed,
        ScenarioVerdict::Incomplete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioVerdict::Passed => "passed",
            ScenarioVerdict::Failed => "failed",
            ScenarioVerdict::Incomplete => "incomplete",
        }
    }
}

impl fmt::Display for ScenarioVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an incomplete scenario is incomplete, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shortfall {
    /// The environment, not the CNI, failed (exit 3).
    Environment,
    /// Probes kept failing (errors, wrong peers): reported as errors, never as passes.
    ProbeErrors,
    /// A step had no judged cell: all unsupported (e.g. SCTP absent) or not judged. Shown as
    /// ignored/skipped; `--strict` counts it as a failure.
    NoEvidence,
}

/// DESIGN §7b, no verdict without evidence: a step is evidence when it judged at least one
/// cell; a step that planned no cell at all stands on its reject checks or its inventory.
pub fn step_has_evidence(s: &StepOutcome) -> bool {
    if s.result.cells.is_empty() {
        !s.rejects.is_empty() || s.inventory.is_some()
    } else {
        s.result.has_judged_cells()
    }
}

fn step_failed(s: &StepOutcome) -> bool {
    s.result.failures().next().is_some()
        || s.rejects.iter().any(|r| !r.refused)
        || s.inventory.iter().any(|i| i.unapproved().next().is_some())
}

/// How one step ended: the same rule as a scenario's, on its own cells.
pub fn step_verdict(s: &StepOutcome) -> ScenarioVerdict {
    if step_failed(s) {
        ScenarioVerdict::Failed
    } else if s.result.cells.iter().any(|c| c.status.is_unanswered()) || !step_has_evidence(s) {
        ScenarioVerdict::Incomplete
    } else {
        ScenarioVerdict::Passed
    }
}

/// The one place a scenario's outcome becomes a verdict; every report uses it.
pub fn scenario_verdict(o: &ScenarioOutcome) -> ScenarioVerdict {
    if o.failed_cells() > 0 || o.failed_rejects() > 0 || o.failed_exposures() > 0 {
        ScenarioVerdict::Failed
    } else if shortfall(o).is_some() {
        ScenarioVerdict::Incomplete
    } else {
        ScenarioVerdict::Passed
    }
}

/// Why a scenario without a mismatch cannot pass, if it cannot: its environment failed, probes
/// kept failing, or a step judged nothing (or it has no step at all). Paths the cluster kept
/// interrupting are the environment's fault, unless some probe failed by itself too: a probe
/// error may be the dataplane's doing, so it is never excused as the environment's.
pub fn shortfall(o: &ScenarioOutcome) -> Option<Shortfall> {
    if o.environment.is_some() || (o.interrupted() > 0 && o.errors() == 0) {
        Some(Shortfall::Environment)
    } else if o.errors() > 0 {
        Some(Shortfall::ProbeErrors)
    } else if o.steps.is_empty() || !o.steps.iter().all(step_has_evidence) {
        Some(Shortfall::NoEvidence)
    } else {
        None
    }
}

/// What the unjudged cells of a step say, e.g. `unsupported: SCTP not available on this cluster`.
pub fn step_unjudged_reasons(s: &StepOutcome) -> Vec<String> {
    let mut reasons: Vec<String> = Vec::new();
    let mut add = |r: String| {
        if !reasons.contains(&r) {
            reasons.push(r);
        }
    };
    if s.result.cells.is_empty() {
        add(format!("step {:?} probes nothing", s.name));
    }
    for c in &s.result.cells {
        match c.status {
            CellStatus::Unsupported
                if c.expected.cell.protocol == netassay_core::model::Protocol::Sctp =>
            {
                add("unsupported: SCTP not available on this cluster".into())
            }
            CellStatus::Unsupported => add(format!(
                "unsupported: {}",
                c.attempts
                    .last()
                    .map(|a| a.detail.as_str())
                    .filter(|d| !d.is_empty())
                    .unwrap_or("the path cannot be probed here")
            )),
            CellStatus::NotJudged => {
                add("not judged: loopback paths only (--judge-loopback judges them)".into())
            }
            _ => {}
        }
    }
    reasons
}

/// Why a scenario lacks evidence: the reasons of its steps without any.
pub fn no_evidence_reason(o: &ScenarioOutcome) -> String {
    let mut reasons: Vec<String> = Vec::new();
    for r in o
        .steps
        .iter()
        .filter(|s| !step_has_evidence(s))
        .flat_map(step_unjudged_reasons)
    {
        if !reasons.contains(&r) {
            reasons.push(r);
        }
    }
    if o.steps.is_empty() {
        reasons.push("the scenario has no step".into());
    }
    reasons.join("; ")
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
    if o.interrupted() > 0 {
        parts.push(format!(
            "{} the cluster kept interrupting (restarts, broken exec streams; see each path)",
            plural(o.interrupted(), "path")
        ));
    }
    match (scenario_verdict(o), shortfall(o)) {
        (ScenarioVerdict::Passed, _) => None,
        (ScenarioVerdict::Incomplete, Some(Shortfall::NoEvidence)) => {
            let without = o.steps.iter().filter(|s| !step_has_evidence(s)).count();
            let what = if without == o.steps.len() {
                "nothing could be judged".to_string()
            } else {
                format!("{} of {} steps could not be judged", without, o.steps.len())
            };
            Some(format!("{what} ({})", no_evidence_reason(o)))
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
    /// How it ran (the environment's CNI mode), when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
}

impl Implementation {
    /// `NAME[:VERSION]` as given with `--implementation`.
    pub fn from_flag(s: &str) -> Self {
        match s.split_once(':') {
            Some((name, version)) => Implementation {
                name: name.trim().to_string(),
                version: version.trim().to_string(),
                mode: String::new(),
            },
            None => Implementation {
                name: s.trim().to_string(),
                version: "unknown".into(),
                mode: String::new(),
            },
        }
    }

    /// The detected CNI, `cilium v1.16.3` or just `calico`.
    pub fn from_cni(cni: &str) -> Self {
        match cni.trim().split_once(' ') {
            Some((name, version)) => Implementation {
                name: name.to_string(),
                version: version.trim().to_string(),
                mode: String::new(),
            },
            None => Implementation {
                name: if cni.trim().is_empty() {
                    "unknown".into()
                } else {
                    cni.trim().to_string()
                },
                version: "unknown".into(),
                mode: String::new(),
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
    /// Incomplete scenarios (nothing judged, probe errors, environment): nothing is claimed
    /// for them.
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
            ScenarioVerdict::Incomplete => {
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
            "{} of {total} scenarios passed, {} failed, {} incomplete (skipped: nothing claimed)",
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
            None => Implementation {
                mode: report.environment.cni_mode.clone(),
                ..Implementation::from_cni(&report.environment.cni)
            },
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
    use crate::report::table::fixtures::{cell, pass, step};
    use crate::suite::{EnvironmentProblem, RejectSummary, StepOutcome};
    use netassay_core::model::Verdict;
    use netassay_core::probe::Outcome;

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
                cni_mode: "eBPF, native routing".into(),
            },
            scenarios,
        }
    }

    fn exposure(approved: bool) -> crate::suite::ExposureFinding {
        crate::suite::ExposureFinding {
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
        o.steps[0].inventory = Some(crate::suite::InventoryCheck {
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
            scenario_verdict(&with_inventory(unprobed.clone(), true)),
            ScenarioVerdict::Incomplete
        );
        assert_eq!(
            shortfall(&with_inventory(unprobed, true)),
            Some(Shortfall::NoEvidence)
        );
        let inventory_only = scenario("inv", &["k8tre"], vec![]);
        assert_eq!(
            scenario_verdict(&with_inventory(inventory_only, true)),
            ScenarioVerdict::Passed
        );
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

    // DESIGN §7b: no verdict without evidence. A scenario whose cells are all unsupported is
    // incomplete (shown as ignored/skipped), never passed, and says why.
    #[test]
    fn only_unsupported_cells_is_incomplete_for_lack_of_evidence() {
        let mut sctp = cell(
            "x/a",
            "x/b",
            Verdict::Allow,
            CellStatus::Unsupported,
            &[Outcome::Unsupported],
        );
        sctp.expected.cell.protocol = netassay_core::model::Protocol::Sctp;
        let s = scenario("sctp", &["extended"], vec![sctp]);
        assert_eq!(scenario_verdict(&s), ScenarioVerdict::Incomplete);
        assert_eq!(shortfall(&s), Some(Shortfall::NoEvidence));
        assert_eq!(
            scenario_reason(&s).as_deref(),
            Some("nothing could be judged (unsupported: SCTP not available on this cluster)")
        );
    }

    // Every step needs judged cells: one step without them leaves the scenario incomplete even
    // when another step passed; a step with some unsupported cells passes on the judged ones.
    #[test]
    fn every_step_needs_judged_cells_and_partial_support_is_enough() {
        let unsupported = || {
            cell(
                "x/a",
                "x/c",
                Verdict::Allow,
                CellStatus::Unsupported,
                &[Outcome::Unsupported],
            )
        };
        let loopback = cell(
            "x/a",
            "x/a",
            Verdict::Allow,
            CellStatus::NotJudged,
            &[Outcome::Connected],
        );
        let mut two = scenario(
            "two",
            &["core"],
            vec![pass("x/a", "x/b", Verdict::Allow), unsupported()],
        );
        assert_eq!(scenario_verdict(&two), ScenarioVerdict::Passed);
        assert_eq!(step_verdict(&two.steps[0]), ScenarioVerdict::Passed);
        two.steps.push(StepOutcome {
            name: "second".into(),
            result: step(vec![unsupported(), loopback]),
            rejects: vec![],
            inventory: None,
        });
        assert_eq!(step_verdict(&two.steps[1]), ScenarioVerdict::Incomplete);
        assert_eq!(scenario_verdict(&two), ScenarioVerdict::Incomplete);
        let reason = scenario_reason(&two).unwrap_or_default();
        assert!(
            reason.starts_with("1 of 2 steps could not be judged"),
            "{reason}"
        );
        assert!(
            reason.contains("not judged: loopback paths only"),
            "{reason}"
        );
        let empty = ScenarioOutcome {
            steps: vec![],
            ..scenario("none", &["core"], vec![])
        };
        assert_eq!(shortfall(&empty), Some(Shortfall::NoEvidence));
    }

    #[test]
    fn probe_errors_and_environment_problems_are_their_own_shortfalls() {
        let err = scenario(
            "err",
            &["core"],
            vec![
                pass("x/a", "x/b", Verdict::Allow),
                cell(
                    "x/a",
                    "x/c",
                    Verdict::Deny,
                    CellStatus::Error,
                    &[Outcome::Error],
                ),
            ],
        );
        assert_eq!(shortfall(&err), Some(Shortfall::ProbeErrors));
        let mut env = scenario("env", &["core"], vec![]);
        env.environment = Some(EnvironmentProblem {
            what: "pods not ready".into(),
        });
        assert_eq!(shortfall(&env), Some(Shortfall::Environment));
    }

    // Issue 15: a path the cluster kept interrupting (restarts, broken exec streams) is the
    // environment's fault (exit 3), not a probe error (exit 1) and never a pass; but a probe
    // error beside it may be the dataplane's doing and is not excused.
    #[test]
    fn paths_the_cluster_kept_interrupting_are_an_environment_shortfall() {
        let interrupted = || {
            cell(
                "x/a",
                "x/c",
                Verdict::Deny,
                CellStatus::Interrupted,
                &[Outcome::Dropped, Outcome::Interrupted],
            )
        };
        let only = scenario(
            "restarts",
            &["core"],
            vec![pass("x/a", "x/b", Verdict::Allow), interrupted()],
        );
        assert_eq!(shortfall(&only), Some(Shortfall::Environment));
        assert_eq!(scenario_verdict(&only), ScenarioVerdict::Incomplete);
        assert_eq!(step_verdict(&only.steps[0]), ScenarioVerdict::Incomplete);
        let reason = scenario_reason(&only).unwrap_or_default();
        assert!(
            reason.contains("1 path the cluster kept interrupting"),
            "{reason}"
        );
        let mixed = scenario(
            "mixed",
            &["core"],
            vec![
                interrupted(),
                cell(
                    "x/a",
                    "x/d",
                    Verdict::Deny,
                    CellStatus::Error,
                    &[Outcome::Error],
                ),
            ],
        );
        assert_eq!(shortfall(&mixed), Some(Shortfall::ProbeErrors));
        let failed = scenario(
            "failed",
            &["core"],
            vec![
                interrupted(),
                cell(
                    "x/a",
                    "x/d",
                    Verdict::Deny,
                    CellStatus::Fail,
                    &[Outcome::Connected],
                ),
            ],
        );
        assert_eq!(scenario_verdict(&failed), ScenarioVerdict::Failed);
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
                version: "v1.16.3".into(),
                mode: "eBPF, native routing".into(),
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
