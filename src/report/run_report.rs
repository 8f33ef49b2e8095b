//! The one input of every report: a run, as the runner left it.

use crate::cluster::facts::Environment;
use crate::suite::ScenarioOutcome;
use serde::Serialize;

/// Everything a report needs about one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub netassay_version: String,
    /// RFC 3339.
    pub started: String,
    pub elapsed_ms: u64,
    pub sandbox: bool,
    pub sandbox_faults: Vec<String>,
    pub profiles: Vec<String>,
    pub environment: Environment,
    pub scenarios: Vec<ScenarioOutcome>,
}
