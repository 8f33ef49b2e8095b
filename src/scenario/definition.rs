//! A loaded, checked scenario over logical names: its steps, matrices and pins.

use super::format::{ExpectDefault, Mode, PinVerdict, PortRef};
use super::profile::Profile;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netassay_core::model::{PodRef, PolicyRef, Protocol, Topology, Via};
use netassay_core::policy::cilium::{CiliumPolicy, CiliumPolicyRef};
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
    /// Cilium policies removed before `apply` (`ns/name`, or
    /// `CiliumClusterwideNetworkPolicy/name` for a cluster-wide one).
    pub delete_cilium: Vec<CiliumPolicyRef>,
    /// CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy objects, created or replaced by name.
    pub apply_cilium: Vec<CiliumPolicy>,
    /// Cilium policies that must be refused (by the CRD schema or the agent).
    pub reject_cilium: Vec<CiliumPolicy>,
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
    /// True when any step applies, deletes or rejects a Cilium policy: then the whole scenario
    /// is judged under Cilium's semantics (v1 NetworkPolicies included).
    pub fn uses_cilium(&self) -> bool {
        self.steps.iter().any(|s| {
            !s.apply_cilium.is_empty() || !s.delete_cilium.is_empty() || !s.reject_cilium.is_empty()
        })
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// True when the scenario cannot be planned without a profile config: it names personas,
    /// external endpoints, the outside vantage, gateway or NodePort paths, `profile` pins or an
    /// inventory.
    pub fn needs_profile(&self) -> bool {
        // External endpoints of the scenario's own topology need no profile.
        let own = !self.topology.externals.is_empty();
        let from_profile =
            |g: &String| g.starts_with("outside/") || (g.starts_with("external/") && !own);
        !self.personas.is_empty()
            || self.steps.iter().any(|s| {
                s.inventory
                    || s.matrix.from.iter().chain(&s.matrix.to).any(from_profile)
                    || s.matrix.via.iter().any(|v| {
                        (v.is_external() && !own) || matches!(v, Via::Gateway | Via::NodePort)
                    })
                    || s.expect
                        .as_ref()
                        .is_some_and(|e| e.cells.iter().any(|c| c.verdict == PinVerdict::Profile))
            })
    }

    /// The persona of a logical namespace, if the scenario gives it one.
    pub fn persona(&self, namespace: &str) -> Option<&str> {
        self.personas.get(namespace).map(String::as_str)
    }
}

/// True for a matrix pattern that names the profile's external endpoints or the outside
/// vantage (`external/...`, `outside/...`) rather than pods: `*/*` never matches those.
pub fn names_profile_endpoint(glob: &str) -> bool {
    glob.starts_with("external/") || glob.starts_with("outside/")
}
