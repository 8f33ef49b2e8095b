//! Which report goes to which file: the formats, their standard names, and writing them.

use super::junit::Granularity;
use super::run_report::RunReport;
use super::{conformance, html, json, junit};
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
