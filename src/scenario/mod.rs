//! The scenario YAML format, loading with precise errors, and the built-in corpus.

pub mod builtin;
pub mod format;
pub mod load;
pub mod plan;
pub mod policies;
pub mod source;

pub use format::{ExpectDefault, Mode, PortRef};
pub use load::{load_paths, load_str, LoadError};
pub use plan::{walk, Cell, ExpectedCell, StepPlan};

use crate::model::{PodRef, PolicyRef, Protocol, Topology, Verdict, Via};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use std::collections::BTreeMap;

/// A loaded, checked scenario over logical names.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub mode: Mode,
    /// Where it came from: a path on disk or `builtin:core/01-....yaml`.
    pub file: String,
    /// The topology with synthetic addresses (live ones replace them at run time).
    pub topology: Topology,
    pub steps: Vec<Step>,
}

/// One step: changes, then a probe matrix and its expectations.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub delete: Vec<PolicyRef>,
    /// Policies as written, IP placeholders unresolved.
    pub apply: Vec<NetworkPolicy>,
    pub label_pods: Vec<(PodRef, BTreeMap<String, Option<String>>)>,
    pub label_namespaces: Vec<(String, BTreeMap<String, Option<String>>)>,
    /// Policies the API server must refuse.
    pub reject: Vec<NetworkPolicy>,
    pub matrix: Matrix,
    pub expect: Option<Expect>,
}

/// What to probe: globs over `ns/pod`, ports, protocols and address kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    pub from: Vec<String>,
    pub to: Vec<String>,
    pub ports: Vec<PortRef>,
    pub protocols: Vec<Protocol>,
    pub via: Vec<Via>,
}

impl Default for Matrix {
    fn default() -> Self {
        Matrix {
            from: vec!["*/*".into()],
            to: vec!["*/*".into()],
            ports: vec![PortRef::Number(80), PortRef::Number(81)],
            protocols: Protocol::ALL.to_vec(),
            via: vec![Via::PodIp],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub default: ExpectDefault,
    pub cells: Vec<CellPin>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellPin {
    pub from: String,
    pub to: String,
    pub port: Option<PortRef>,
    pub protocol: Option<Protocol>,
    pub via: Option<Via>,
    pub verdict: Verdict,
}

impl Scenario {
    /// The scenario's plan over its own (synthetic) topology.
    pub fn plan(&self) -> Result<Vec<StepPlan>, plan::WalkError> {
        walk(self, &self.topology)
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}
