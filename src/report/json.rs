//! The JSON results file (`--json`): every step, cell and attempt, schema `netassay.results/v1`,
//! with each scenario's and step's verdict (`passed`, `failed`, `incomplete`) and why.

use super::conformance::{
    run_verdict, scenario_reason, scenario_verdict, shortfall, step_has_evidence,
    step_unjudged_reasons, step_verdict, ScenarioVerdict,
};
use super::run_report::RunReport;
use crate::suite::ScenarioOutcome;
use serde_json::{json, Value};

pub const SCHEMA: &str = "netassay.results/v1";

pub fn render(report: &RunReport) -> serde_json::Result<String> {
    let scenarios = report
        .scenarios
        .iter()
        .map(scenario)
        .collect::<serde_json::Result<Vec<Value>>>()?;
    let count = |v: ScenarioVerdict| {
        report
            .scenarios
            .iter()
            .filter(|o| scenario_verdict(o) == v)
            .count()
    };
    let stats = crate::suite::run_enforce_stats(&report.scenarios);
    let doc = json!({
        "schema": SCHEMA,
        "run": {
            "id": report.run_id,
            "netassay_version": report.netassay_version,
            "started": report.started,
            "elapsed_ms": report.elapsed_ms,
            "sandbox": report.sandbox,
            "sandbox_faults": report.sandbox_faults,
            "profiles": report.profiles,
        },
        "summary": {
            "verdict": run_verdict(report).as_str(),
            "passed": count(ScenarioVerdict::Passed),
            "failed": count(ScenarioVerdict::Failed),
            "incomplete": count(ScenarioVerdict::Incomplete),
            "time_to_enforce": stats,
            "resilience": crate::suite::run_resilience(&report.scenarios),
        },
        "environment": report.environment,
        "statements": super::statements::k8tre(report),
        "scenarios": scenarios,
    });
    serde_json::to_string_pretty(&doc)
}

/// A scenario as recorded, with its verdict and, when it did not pass, why; each step likewise.
fn scenario(o: &ScenarioOutcome) -> serde_json::Result<Value> {
    let mut v = serde_json::to_value(o)?;
    if let Some(map) = v.as_object_mut() {
        map.insert("verdict".into(), json!(scenario_verdict(o)));
        if let Some(why) = scenario_reason(o) {
            map.insert("reason".into(), json!(why));
        }
        if let Some(s) = shortfall(o) {
            map.insert("shortfall".into(), json!(s));
        }
    }
    if let Some(steps) = v.get_mut("steps").and_then(Value::as_array_mut) {
        for (value, step) in steps.iter_mut().zip(&o.steps) {
            if let Some(map) = value.as_object_mut() {
                map.insert("verdict".into(), json!(step_verdict(step)));
                if !step_has_evidence(step) {
                    map.insert(
                        "reason".into(),
                        json!(step_unjudged_reasons(step).join("; ")),
                    );
                }
            }
        }
    }
    Ok(v)
}
