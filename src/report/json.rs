//! The JSON results file (`--json`): every step, cell and attempt, schema `netassay.results/v1`.

use super::RunReport;
use serde_json::json;

pub const SCHEMA: &str = "netassay.results/v1";

pub fn render(report: &RunReport) -> serde_json::Result<String> {
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
        "environment": report.environment,
        "statements": super::statements::k8tre(report),
        "scenarios": report.scenarios,
    });
    serde_json::to_string_pretty(&doc)
}
