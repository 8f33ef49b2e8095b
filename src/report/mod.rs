//! Reports: the runner's results turned into JUnit, JSON, truth tables, HTML, a conformance
//! report and Sonobuoy output. Reports only read results; they never probe or decide.

pub mod conformance;
pub mod files;
pub mod html;
pub mod json;
pub mod junit;
pub mod outputs;
mod run_report;
pub mod sonobuoy;
pub mod statements;
pub mod summary;
pub mod table;

pub use files::{Outputs, ReportError};
pub use junit::Granularity;
pub use outputs::write_all;
pub use run_report::RunReport;
pub use summary::{scenario_summary, summary_tables};
