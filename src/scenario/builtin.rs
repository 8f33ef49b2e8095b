//! The built-in corpus: scenarios/ embedded at build time, grouped into profiles by tag.

use super::load::{load_texts, LoadError};
use super::Scenario;

include!(concat!(env!("OUT_DIR"), "/builtin_scenarios.rs"));

/// Profiles users can select; a scenario belongs to a profile when it carries the tag.
pub const PROFILES: &[&str] = &["core", "extended", "k8tre"];

/// Loads every built-in scenario. Files are named `builtin:<dir>/<file>` in errors.
pub fn all() -> Result<Vec<Scenario>, Vec<LoadError>> {
    let named: Vec<(String, &str)> = FILES
        .iter()
        .map(|(p, t)| (format!("builtin:{p}"), *t))
        .collect();
    let (scenarios, errors) = load_texts(named.iter().map(|(f, t)| (f.as_str(), *t)));
    if errors.is_empty() {
        Ok(scenarios)
    } else {
        Err(errors)
    }
}

/// Built-in scenarios of the given profiles (all of them when `profiles` is empty).
pub fn select(profiles: &[String]) -> Result<Vec<Scenario>, Vec<LoadError>> {
    Ok(all()?
        .into_iter()
        .filter(|s| profiles.is_empty() || profiles.iter().any(|p| s.has_tag(p)))
        .collect())
}
