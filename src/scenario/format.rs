//! The scenario file as written (DESIGN §3): strict serde types, unknown fields rejected.
//!
//! NetworkPolicies are mirrored here field by field (rather than read as k8s-openapi types, which
//! ignore unknown fields) so that a misspelt `podSelecter` is an error, not an allow-all.

use netassay_core::model::{Protocol, Verdict, Via};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Expectations come from the oracle over the scenario's own policies.
    #[default]
    Oracle,
    /// Expectations come only from `expect`; the cluster's own policies decide.
    Intent,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioDoc {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub topology: Option<TopologyDoc>,
    #[serde(default)]
    pub probe: Option<ProbeDoc>,
    pub steps: Vec<StepDoc>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologyDoc {
    #[serde(default)]
    pub namespaces: BTreeMap<String, NamespaceDoc>,
    #[serde(default)]
    pub pods: BTreeMap<String, PodDoc>,
    #[serde(default)]
    pub serve: Option<Vec<ServeDoc>>,
    /// Endpoints outside the cluster that pods probe by address, by name and by the lookup
    /// alone (oracle mode, judged under Cilium's semantics; intent scenarios take them from the
    /// profile config).
    #[serde(default)]
    pub externals: BTreeMap<String, ExternalDoc>,
}

/// An external endpoint of a scenario's topology.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalDoc {
    #[serde(default)]
    pub description: Option<String>,
    pub address: std::net::IpAddr,
    /// The DNS name the cluster DNS answers with `address`.
    pub name: String,
    pub ports: Vec<super::profile::ExternalPortDoc>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceDoc {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Intent mode: the kind of namespace this stands for (e.g. `project`); the run's profile
    /// config gives the labels a namespace of that persona carries in the cluster.
    #[serde(default)]
    pub persona: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodDoc {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Overrides the topology's `serve` for this pod.
    #[serde(default)]
    pub serve: Option<Vec<ServeDoc>>,
    /// A TCP port on which the pod also answers HTTP (a web app behind the gateway).
    #[serde(default)]
    pub http: Option<u16>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeDoc {
    pub port: u16,
    pub protocol: Protocol,
    #[serde(default)]
    pub name: Option<String>,
}

/// A port written as a number or a container port name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

impl std::fmt::Display for PortRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeDoc {
    #[serde(default)]
    pub from: Option<Vec<String>>,
    #[serde(default)]
    pub to: Option<Vec<String>>,
    #[serde(default)]
    pub ports: Option<Vec<PortRef>>,
    #[serde(default)]
    pub protocols: Option<Vec<Protocol>>,
    #[serde(default)]
    pub via: Option<Vec<Via>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDoc {
    pub name: String,
    #[serde(default)]
    pub delete: Vec<String>,
    /// NetworkPolicy, CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy objects; read as
    /// plain data here and parsed strictly by kind in the loader (field paths and lines kept).
    #[serde(default)]
    pub apply: Vec<PolicyEntryDoc>,
    #[serde(default)]
    pub label: Option<LabelDoc>,
    /// Policies the API server must refuse (422); nothing changes.
    #[serde(default)]
    pub reject: Vec<PolicyEntryDoc>,
    #[serde(default)]
    pub probe: Option<ProbeDoc>,
    #[serde(default)]
    pub expect: Option<ExpectDoc>,
    /// Take the cluster's exposure inventory after this step's changes: every Service of type
    /// NodePort or LoadBalancer, hostPort, hostNetwork pod, Ingress and Gateway that the
    /// profile config does not allow is a failure.
    #[serde(default)]
    pub inventory: bool,
}

/// Label edits: a value sets a key, `null` removes it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelDoc {
    #[serde(default)]
    pub pods: BTreeMap<String, BTreeMap<String, Option<String>>>,
    #[serde(default)]
    pub namespaces: BTreeMap<String, BTreeMap<String, Option<String>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpectDefault {
    Allow,
    Deny,
    /// No pin for cells that no `cells` entry names.
    #[default]
    Oracle,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectDoc {
    #[serde(default)]
    pub default: ExpectDefault,
    #[serde(default)]
    pub cells: Vec<CellPinDoc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellPinDoc {
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub port: Option<PortRef>,
    #[serde(default)]
    pub protocol: Option<Protocol>,
    #[serde(default)]
    pub via: Option<Via>,
    pub verdict: PinVerdict,
}

/// A pinned verdict: a fixed one, or `profile` (the run's profile config decides, from the
/// source's persona and the external endpoint's allow-list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinVerdict {
    Allow,
    Deny,
    Profile,
}

impl PinVerdict {
    pub fn fixed(self) -> Option<Verdict> {
        match self {
            PinVerdict::Allow => Some(Verdict::Allow),
            PinVerdict::Deny => Some(Verdict::Deny),
            PinVerdict::Profile => None,
        }
    }
}

/// One policy object of `apply` or `reject`, any kind. The loader looks at `apiVersion` and parses
/// it as a NetworkPolicy ([`PolicyDoc`]) or a Cilium policy, both strictly.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct PolicyEntryDoc(pub serde_json::Value);

// ---- NetworkPolicy, mirrored strictly ----

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyDoc {
    pub api_version: String,
    pub kind: String,
    pub metadata: MetadataDoc,
    #[serde(default)]
    pub spec: Option<PolicySpecDoc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataDoc {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicySpecDoc {
    #[serde(default)]
    pub pod_selector: Option<SelectorDoc>,
    #[serde(default)]
    pub policy_types: Option<Vec<String>>,
    #[serde(default)]
    pub ingress: Option<Vec<IngressRuleDoc>>,
    #[serde(default)]
    pub egress: Option<Vec<EgressRuleDoc>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressRuleDoc {
    #[serde(default)]
    pub from: Option<Vec<PeerDoc>>,
    #[serde(default)]
    pub ports: Option<Vec<PolicyPortDoc>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressRuleDoc {
    #[serde(default)]
    pub to: Option<Vec<PeerDoc>>,
    #[serde(default)]
    pub ports: Option<Vec<PolicyPortDoc>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PeerDoc {
    #[serde(default)]
    pub pod_selector: Option<SelectorDoc>,
    #[serde(default)]
    pub namespace_selector: Option<SelectorDoc>,
    #[serde(default)]
    pub ip_block: Option<IpBlockDoc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpBlockDoc {
    #[serde(default)]
    pub cidr: String,
    #[serde(default)]
    pub except: Option<Vec<String>>,
}

/// `port` as the API accepts it: an integer or a name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum IntOrName {
    Int(i64),
    Name(String),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyPortDoc {
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub port: Option<IntOrName>,
    #[serde(default)]
    pub end_port: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SelectorDoc {
    #[serde(default)]
    pub match_labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub match_expressions: Option<Vec<RequirementDoc>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequirementDoc {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Option<Vec<String>>,
}
