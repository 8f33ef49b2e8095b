//! Reports: the runner's results turned into JUnit, JSON, truth tables, HTML, a conformance
//! report and Sonobuoy output. Reports only read results; they never probe or decide.

pub mod conformance;
pub mod html;
pub mod json;
pub mod junit;
pub mod outputs;
pub mod sonobuoy;
pub mod statements;
pub mod table;

pub use junit::Granularity;
pub use outputs::{scenario_summary, summary_tables, write_all, Outputs, ReportError};

use crate::cluster::facts::Environment;
use crate::runner::suite::ScenarioOutcome;
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
