//! The size of the K8TRE preset (`--sandbox-scale projects=N`): N projects of its own, each a
//! project namespace with workspaces and a shared service, and the platform's own services in
//! an infrastructure namespace. This file is the size and the names; the preset builds the
//! objects, and its policies reach them the way they reach every persona namespace (by label);
//! without a scale the preset creates no project and is what it always was.

use std::fmt;
use std::str::FromStr;

/// The port every scaled workload serves, TCP and UDP (as the K8TRE scenarios' pods do).
pub const WORKLOAD_PORT: u16 = 8080;
/// Workspaces in each project (`workspace-1`, `workspace-2`).
pub const WORKSPACES_PER_PROJECT: u16 = 2;
/// Each project's shared service: a pod and a ClusterIP Service of this name.
pub const SHARED_SERVICE: &str = "shared-storage";
/// The platform's infrastructure namespace and its services (pod and Service of each name).
pub const PLATFORM_NAMESPACE: &str = "tre-platform";
pub const PLATFORM_SERVICES: [&str; 2] = ["identity", "hub"];

/// How big the preset's TRE is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PresetScale {
    /// Projects, from [`PresetScale::MIN_PROJECTS`] to [`PresetScale::MAX_PROJECTS`].
    pub projects: u16,
}

/// A `--sandbox-scale` value that is not `projects=N` with N in range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScaleParseError {
    #[error("{0:?} is not KEY=VALUE: expected projects=N, N from {min} to {max}", min = PresetScale::MIN_PROJECTS, max = PresetScale::MAX_PROJECTS)]
    NotKeyValue(String),
    #[error("unknown key {0:?}: expected projects=N, N from {min} to {max}", min = PresetScale::MIN_PROJECTS, max = PresetScale::MAX_PROJECTS)]
    UnknownKey(String),
    #[error("projects={0}: N must be a whole number from {min} to {max}", min = PresetScale::MIN_PROJECTS, max = PresetScale::MAX_PROJECTS)]
    OutOfRange(String),
}

impl PresetScale {
    /// Isolation needs two projects to mean anything.
    pub const MIN_PROJECTS: u16 = 2;
    /// Each project is three pods (processes and network namespaces on one host).
    pub const MAX_PROJECTS: u16 = 100;

    /// The name of project `i` (1-based): `project-001`.
    pub fn project_namespace(i: u16) -> String {
        format!("project-{i:03}")
    }

    /// The project namespaces, in order.
    pub fn project_namespaces(&self) -> Vec<String> {
        (1..=self.projects).map(Self::project_namespace).collect()
    }
}

impl fmt::Display for PresetScale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "projects={}", self.projects)
    }
}

impl FromStr for PresetScale {
    type Err = ScaleParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let Some((key, value)) = s.split_once('=') else {
            return Err(ScaleParseError::NotKeyValue(s.to_string()));
        };
        if key.trim() != "projects" {
            return Err(ScaleParseError::UnknownKey(key.trim().to_string()));
        }
        let value = value.trim();
        match value.parse::<u16>() {
            Ok(n) if (Self::MIN_PROJECTS..=Self::MAX_PROJECTS).contains(&n) => {
                Ok(PresetScale { projects: n })
            }
            _ => Err(ScaleParseError::OutOfRange(value.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_parse_as_projects_n_within_range() {
        assert_eq!(
            "projects=50".parse::<PresetScale>(),
            Ok(PresetScale { projects: 50 })
        );
        assert_eq!(
            " projects = 2 ".parse::<PresetScale>(),
            Ok(PresetScale { projects: 2 })
        );
        assert_eq!(PresetScale { projects: 7 }.to_string(), "projects=7");
        for (bad, says) in [
            ("50", "is not KEY=VALUE"),
            ("pods=5", "unknown key \"pods\""),
            ("projects=1", "from 2 to 100"),
            ("projects=101", "from 2 to 100"),
            ("projects=-3", "from 2 to 100"),
            ("projects=many", "from 2 to 100"),
            ("projects=", "from 2 to 100"),
        ] {
            let err = bad.parse::<PresetScale>().expect_err(bad).to_string();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(
                err.contains("projects=N") || err.contains("projects="),
                "{err}"
            );
        }
    }
}
