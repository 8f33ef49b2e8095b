//! The built-in corpus: scenarios/ embedded at build time, grouped into profiles by tag.

use super::definition::Scenario;
use super::document::LoadError;
use super::load::load_texts;
use super::profile::{Profile, CONFIG_FILE_NAME};

include!(concat!(env!("OUT_DIR"), "/builtin_scenarios.rs"));

/// Profiles users can select; a scenario belongs to a profile when it carries the tag.
pub const PROFILES: &[&str] = &["core", "extended", "k8tre"];

/// The built-in profile config of a profile (`scenarios/<profile>/profile-config.yaml`).
pub fn profile_config(profile: &str) -> Result<Profile, Vec<LoadError>> {
    let rel = format!("{profile}/{}", CONFIG_FILE_NAME);
    let file = format!("builtin:{rel}");
    match FILES.iter().find(|(p, _)| *p == rel) {
        Some((_, text)) => Profile::parse(&file, text),
        None => Err(vec![LoadError {
            file,
            location: None,
            path: String::new(),
            message: format!("profile {profile:?} has no built-in profile config"),
        }]),
    }
}

fn is_scenario_file(rel: &str) -> bool {
    !rel.ends_with(CONFIG_FILE_NAME)
}

/// Loads every built-in scenario. Files are named `builtin:<dir>/<file>` in errors.
pub fn all() -> Result<Vec<Scenario>, Vec<LoadError>> {
    let named: Vec<(String, &str)> = FILES
        .iter()
        .filter(|(p, _)| is_scenario_file(p))
        .map(|(p, t)| (format!("builtin:{p}"), *t))
        .collect();
    let (scenarios, errors) = load_texts(named.iter().map(|(f, t)| (f.as_str(), *t)));
    if errors.is_empty() {
        Ok(scenarios)
    } else {
        Err(errors)
    }
}

/// Profiles that include others: K8TRE's "a CNI that fully supports NetworkPolicy" statement
/// is the core profile.
pub fn includes(profile: &str) -> &'static [&'static str] {
    match profile {
        "k8tre" => &["core"],
        _ => &[],
    }
}

/// Built-in scenarios of the given profiles and those they include (all of them when
/// `profiles` is empty).
pub fn select(profiles: &[String]) -> Result<Vec<Scenario>, Vec<LoadError>> {
    let mut wanted: Vec<&str> = profiles.iter().map(String::as_str).collect();
    for p in profiles {
        wanted.extend(includes(p));
    }
    Ok(all()?
        .into_iter()
        .filter(|s| profiles.is_empty() || wanted.iter().any(|p| s.has_tag(p)))
        .collect())
}
