//! The scenario YAML format, loading with precise errors, and the built-in corpus.

pub mod builtin;
pub mod format;
pub mod load;
pub mod plan;
pub mod policies;
pub mod profile;
pub mod source;

pub use format::{ExpectDefault, Mode, PinVerdict, PortRef};
pub use load::{load_paths, load_str, LoadError};
pub use plan::{walk, Cell, ExpectedCell, StepPlan};
pub use profile::Profile;

use crate::model::{PodRef, PolicyRef, Protocol, Topology, Via};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use std::collections::BTreeMap;
use std::sync::Arc;

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
    /// Intent mode: logical namespace -> persona, as the file says.
    pub personas: BTreeMap<String, String>,
    /// The profile config this scenario is bound to (see [`Scenario::bind`]); persona labels
    /// are merged into the topology and the profile's external endpoints added to it.
    pub profile: Option<Arc<Profile>>,
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
    /// Judge the cluster's exposures against the profile's allow-list after this step.
    pub inventory: bool,
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
    pub verdict: PinVerdict,
}

impl Scenario {
    /// The scenario's plan over its own (synthetic) topology.
    pub fn plan(&self) -> Result<Vec<StepPlan>, plan::WalkError> {
        walk(self, &self.topology)
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// True when the scenario cannot be planned without a profile config: it names personas,
    /// external endpoints, the outside vantage, gateway or NodePort paths, `profile` pins or an
    /// inventory.
    pub fn needs_profile(&self) -> bool {
        !self.personas.is_empty()
            || self.steps.iter().any(|s| {
                s.inventory
                    || s.matrix
                        .from
                        .iter()
                        .chain(&s.matrix.to)
                        .any(|g| plan::names_profile_endpoint(g))
                    || s.matrix
                        .via
                        .iter()
                        .any(|v| v.is_external() || matches!(v, Via::Gateway | Via::NodePort))
                    || s.expect
                        .as_ref()
                        .is_some_and(|e| e.cells.iter().any(|c| c.verdict == PinVerdict::Profile))
            })
    }

    /// The persona of a logical namespace, if the scenario gives it one.
    pub fn persona(&self, namespace: &str) -> Option<&str> {
        self.personas.get(namespace).map(String::as_str)
    }

    /// This scenario under a profile config: persona labels merged into its namespaces, the
    /// profile's external endpoints added, every `external/...` pattern checked against them.
    pub fn bind(&self, profile: &Arc<Profile>) -> Result<Scenario, Vec<LoadError>> {
        let mut errors = Vec::new();
        let err = |path: String, message: String| LoadError {
            file: self.file.clone(),
            location: None,
            path,
            message,
        };
        let mut s = self.clone();
        for (ns, persona) in &self.personas {
            let path = format!("topology.namespaces.{ns}.persona");
            let Some(p) = profile.personas.get(persona) else {
                let known: Vec<&str> = profile.personas.keys().map(String::as_str).collect();
                errors.push(err(
                    path,
                    format!(
                        "persona {persona:?} is not in the profile config {} (it has: {})",
                        profile.file,
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
                continue;
            };
            if let Some(n) = s.topology.namespace_mut(ns) {
                for (k, v) in &p.labels {
                    match n.labels.get(k) {
                        Some(old) if old != v => errors.push(err(
                            format!("topology.namespaces.{ns}.labels.{k}"),
                            format!(
                                "is {old:?} here but persona {persona:?} sets it to {v:?} in {}",
                                profile.file
                            ),
                        )),
                        _ => {
                            n.labels.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
        }
        s.topology = std::mem::take(&mut s.topology).with_externals(profile.model_externals());
        if profile.gateway.is_none() {
            for (i, step) in s.steps.iter().enumerate() {
                if let Some(k) = step.matrix.via.iter().position(|v| *v == Via::Gateway) {
                    errors.push(err(
                        format!("steps[{i}].probe.via[{k}]"),
                        format!(
                            "probes through the gateway, but the profile config {} has no `gateway`",
                            profile.file
                        ),
                    ));
                }
            }
        }
        for (i, step) in s.steps.iter().enumerate() {
            let globs = step
                .matrix
                .to
                .iter()
                .enumerate()
                .map(|(k, g)| (format!("steps[{i}].probe.to[{k}]"), g))
                .chain(step.expect.iter().flat_map(|e| {
                    e.cells
                        .iter()
                        .enumerate()
                        .map(move |(k, c)| (format!("steps[{i}].expect.cells[{k}].to"), &c.to))
                }));
            for (path, g) in globs {
                if let Some(name) = g.strip_prefix("external/") {
                    if !s
                        .topology
                        .externals
                        .iter()
                        .any(|e| crate::model::glob_match(name, &e.name))
                    {
                        errors.push(err(
                            path,
                            format!(
                                "{g:?} matches no external endpoint of the profile config {}",
                                profile.file
                            ),
                        ));
                    }
                }
            }
        }
        s.profile = Some(profile.clone());
        if errors.is_empty() {
            match s.plan() {
                Err(e) => errors.push(err(e.path, e.message)),
                Ok(plans) => {
                    for (i, _) in plans
                        .iter()
                        .enumerate()
                        .filter(|(i, p)| p.cells.is_empty() && !s.steps[*i].inventory)
                    {
                        errors.push(err(
                            format!("steps[{i}].probe"),
                            format!(
                                "the probe matrix is empty under the profile config {}: no \
                                 destination serves these ports, protocols and address kinds",
                                profile.file
                            ),
                        ));
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(s)
        } else {
            Err(errors)
        }
    }
}

/// Binds every scenario that needs a profile config to `config` (a file), or to the built-in
/// k8tre config when `config` is `None`. Scenarios that need none are left as they are.
pub fn bind_profiles(
    scenarios: &mut [Scenario],
    config: Option<&std::path::Path>,
) -> Result<(), Vec<LoadError>> {
    if !scenarios.iter().any(Scenario::needs_profile) {
        return Ok(());
    }
    let profile = Arc::new(match config {
        Some(path) => Profile::load(path)?,
        None => builtin::profile_config("k8tre")?,
    });
    let mut errors = Vec::new();
    for s in scenarios.iter_mut().filter(|s| s.needs_profile()) {
        match s.bind(&profile) {
            Ok(b) => *s = b,
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
