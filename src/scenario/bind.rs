//! Binding scenarios to a profile config: persona labels into the topology, the profile's
//! external endpoints beside the pods.

use super::builtin;
use super::definition::Scenario;
use super::document::LoadError;
use super::profile::Profile;
use netassay_core::model::Via;
use std::sync::Arc;

impl Scenario {
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
                        .any(|e| netassay_core::model::glob_match(name, &e.name))
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
