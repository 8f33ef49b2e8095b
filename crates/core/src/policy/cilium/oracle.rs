//! What Cilium (v1.20.2, default agent flags) does with NetworkPolicy v1, CiliumNetworkPolicy and
//! CiliumClusterwideNetworkPolicy together, with the reasons as data.
//!
//! The model follows the agent's own pipeline (`pkg/policy/utils/parserules.go`,
//! `pkg/policy/repository.go:390-517`): every rule element becomes an *entry* (subject, direction,
//! allow or deny, default-deny flag, L3 peers, L4 ports); an endpoint's entries per direction
//! decide its traffic:
//!
//! 1. no entry selects the endpoint in that direction: allowed (not enforced);
//! 2. a matching deny entry: denied, whatever allows it (`deny.rst:15-17`, `l4.go:329-335`);
//! 3. a matching allow entry (v1 NP, CNP and CCNP allows are one union): allowed;
//! 4. no selecting entry asks for default deny (`enableDefaultDeny: false` everywhere): allowed;
//! 5. ingress from the local host: allowed (`--allow-localhost=auto` is `always` in Kubernetes
//!    mode, `repository.go:493-497`);
//! 6. otherwise denied by default deny.
//!
//! A connection needs the source's egress and the destination's ingress. The node, the API server
//! and the world carry no policy here (no host firewall). CIDR rules (and v1 `ipBlock`) match
//! only world addresses (`--policy-cidr-match-mode` empty, `pkg/policy/types/selector.go:526-533`).
//!
//! DNS: the cluster DNS is an endpoint of its own ([`Endpoint::ClusterDns`]). A query to it is
//! judged on the source's egress, with the DNS rules that admit it deciding the names
//! ([`CiliumOracle::judge_lookup`]); a connection to a world address after the source looked a
//! name up through the DNS proxy is judged with that name known ([`CiliumOracle::judge_world`],
//! [`NameFacts::Answered`]).
//!
//! Some cells cannot be predicted from policies alone; they come out *not judged* with the rule
//! that makes them so: a `toFQDNs` peer when the oracle has no name facts, or whose admission
//! depends on lookups other pods may have made; a `toServices` peer (the topology has no
//! Services to resolve); a port whose rule carries DNS rules, for anything but a query to the
//! cluster DNS (the DNS proxy answers there, not the pod); and a query that a rule with DNS rules
//! and one without both admit.
//!
//! Like the v1 oracle, selectors are evaluated once (into bit sets over identities) when the
//! oracle is built; a cell then costs a walk over the entries that select its two ends.

use super::fqdn::selector_matches;
use super::identity::{
    pod_identity, IdentityLabels, IdentitySelector, IdentitySelectorError, NAMESPACE_LABELS_PREFIX,
};
use super::model::{CiliumPolicy, CiliumPolicyRef, FqdnSelector, RulePlace};
use super::validate::{parse_port, parse_strict_cidr, protocols, PortSpec};
use super::view::{PeerRule, PortsView};
use crate::model::{PolicyRef, Protocol, Topology, Verdict};
use crate::policy::oracle::{policy_ref, policy_types, Direction};
use crate::policy::validate::parse_cidr;
use ipnet::IpNet;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;
use thiserror::Error;

/// Why policies cannot be compiled. The loader validates first, so these name input that skipped
/// validation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CiliumOracleError {
    #[error("{policy}: {source}")]
    Selector {
        policy: String,
        source: IdentitySelectorError,
    },
    #[error("{policy}: {at}: {reason}")]
    Invalid {
        policy: String,
        at: String,
        reason: String,
    },
}

/// Something the oracle can judge traffic from or to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A pod of the topology, by index.
    Pod(usize),
    /// The local node (`reserved:host`); on a one-node cluster every pod is local.
    Host,
    /// The API server's backend (`reserved:kube-apiserver`).
    KubeApiserver,
    /// An address outside the cluster (`reserved:world`): external endpoints, the outside vantage.
    World(IpAddr),
    /// The cluster's DNS server: a pod labelled `k8s-app: kube-dns` in `kube-system`, as kubeadm
    /// and the common distributions deploy it. Scenario policies never select it (netassay
    /// confines its policies to the namespaces it creates), so only its peers' rules decide.
    ClusterDns,
}

/// One name-to-address fact: the node's DNS proxy saw `name` resolve to `address` (within TTL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NameFact {
    pub name: String,
    pub address: IpAddr,
}

/// What the oracle knows about DNS names for `toFQDNs`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NameFacts {
    /// Nothing: `toFQDNs` peers are not judged.
    #[default]
    Unknown,
    /// Exactly these resolutions were observed; any other address is not an FQDN peer.
    Observed(Vec<NameFact>),
    /// What the cluster DNS answers. Cilium admits an address by `toFQDNs` only once some pod
    /// looked a matching name up through its DNS proxy (`layer7.rst`, "DNS-based"; the proxy
    /// feeds the name manager, `pkg/fqdn/namemanager`), so an address a matching name resolves
    /// to is judged only for a source that looked it up just before (a probe by name, see
    /// [`CiliumOracle::judge_world`]); for anyone else it depends on earlier lookups and is not
    /// judged. An address no matching name resolves to is never an FQDN peer.
    Answered(Vec<NameFact>),
}

/// The policy a rule comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyOrigin {
    NetworkPolicy(PolicyRef),
    Cilium(CiliumPolicyRef),
}

impl fmt::Display for PolicyOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyOrigin::NetworkPolicy(r) => write!(f, "NetworkPolicy {r}"),
            PolicyOrigin::Cilium(r) => write!(f, "{r}"),
        }
    }
}

impl Serialize for PolicyOrigin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Where one entry comes from: `CNP x/p ingress[1]`, `CCNP d specs[0].egressDeny[0]`,
/// `NetworkPolicy x/p spec.egress[0]`, or a v1 policy's bare isolation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuleOrigin {
    pub policy: PolicyOrigin,
    /// The rule's place for Cilium kinds; `None` for NetworkPolicy v1.
    pub place: Option<RulePlace>,
    /// `ingress`, `ingressDeny`, `egress`, `egressDeny` (v1: `ingress`, `egress`).
    pub section: &'static str,
    /// Index in the section; `None` for a v1 policy that isolates with no rules.
    pub index: Option<usize>,
}

impl fmt::Display for RuleOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.policy)?;
        match (&self.policy, self.place, self.index) {
            (PolicyOrigin::NetworkPolicy(_), _, Some(i)) => write!(f, "spec.{}[{i}]", self.section),
            (PolicyOrigin::NetworkPolicy(_), _, None) => {
                write!(f, "(isolates {} with no rules)", self.section)
            }
            (_, Some(RulePlace::Specs(s)), Some(i)) => {
                write!(f, "specs[{s}].{}[{i}]", self.section)
            }
            (_, _, Some(i)) => write!(f, "{}[{i}]", self.section),
            (_, _, None) => f.write_str(self.section),
        }
    }
}

impl Serialize for RuleOrigin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A fixed-size set of identity indices: pods first, then host, kube-apiserver, world.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IdSet(Vec<u64>);

impl IdSet {
    fn empty(n: usize) -> Self {
        IdSet(vec![0; n.div_ceil(64)])
    }
    fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    #[inline]
    fn contains(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn union(&mut self, other: &IdSet) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }
}

#[derive(Debug, Clone)]
struct Peers {
    identities: IdSet,
    /// (cidr, except): world addresses only.
    cidrs: Vec<(IpNet, Vec<IpNet>)>,
    fqdns: Vec<FqdnSelector>,
    /// `toServices`: not resolvable without Services in the topology.
    services: bool,
}

#[derive(Debug, Clone)]
enum L3 {
    /// No L3 field: every peer (a ports-only rule, or a v1 rule without `from`/`to`).
    Wildcard,
    Peers(Peers),
}

/// Which ports of a protocol a compiled port entry matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortMatch {
    /// Port `0`, or a protocol-only entry: every port.
    Any,
    /// `first..=last` (a single port when equal; `endPort` at or below `port` already folded).
    Range(u16, u16),
    /// A container port name, resolved on the destination pod per protocol.
    Named(String),
}

/// One `ports[]` entry of a rule, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledPort {
    /// The protocols it covers, in the order TCP, UDP, SCTP.
    pub protocols: [bool; 3],
    pub port: PortMatch,
}

/// One `toPorts[]` element of a rule, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledPortRule {
    pub ports: Vec<CompiledPort>,
    /// `rules.dns` on these ports: the DNS proxy answers, not the destination.
    pub dns: bool,
    /// The `rules.dns` selectors: the names the DNS proxy answers.
    pub dns_names: Vec<FqdnSelector>,
}

/// A DNS query's verdict under Cilium semantics ([`CiliumOracle::judge_lookup`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LookupCell {
    /// `None`: not judged (see `egress`).
    pub verdict: Option<Verdict>,
    /// Whether Cilium's DNS proxy sees the query (so a `toFQDNs` selector learns the answer);
    /// `None` when the oracle cannot tell.
    pub proxied: Option<bool>,
    /// The querying pod's egress, spelt out.
    pub egress: CiliumSide,
}

/// Both sides' outcomes as one verdict: a deny on either side denies.
fn combine(e: Outcome, i: Outcome) -> Option<Verdict> {
    match (e.verdict(), i.verdict()) {
        (Some(false), _) | (_, Some(false)) => Some(Verdict::Deny),
        (Some(true), Some(true)) => Some(Verdict::Allow),
        _ => None,
    }
}

/// The cluster DNS's identity ([`Endpoint::ClusterDns`]): kubeadm's CoreDNS labels in
/// `kube-system`.
fn cluster_dns_identity() -> IdentityLabels {
    let ns = crate::model::Namespace {
        name: CLUSTER_DNS_NAMESPACE.to_string(),
        labels: [(
            "kubernetes.io/metadata.name".to_string(),
            CLUSTER_DNS_NAMESPACE.to_string(),
        )]
        .into_iter()
        .collect(),
    };
    let pod = crate::model::Pod {
        id: crate::model::PodRef::new(CLUSTER_DNS_NAMESPACE, "coredns"),
        labels: [("k8s-app".to_string(), "kube-dns".to_string())]
            .into_iter()
            .collect(),
        ip: IpAddr::from([0, 0, 0, 0]),
        serve: Vec::new(),
        http: None,
    };
    pod_identity(&pod, Some(&ns))
}

/// The namespace of the cluster DNS ([`Endpoint::ClusterDns`]).
pub const CLUSTER_DNS_NAMESPACE: &str = "kube-system";

/// The peers of one rule element that selects a pod, as a dataplane enforces them
/// ([`CiliumOracle::rules_of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulePeers {
    /// The element selects no traffic (`ingress: [{}]`, an empty `fromEndpoints`): it only
    /// turns on default deny.
    Nothing,
    /// No L3 field (a ports-only rule, a v1 rule without `from`/`to`): every peer.
    Any,
    Peers(RulePeerSet),
}

/// The L3 peers of one rule element, resolved over the oracle's topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulePeerSet {
    /// Indices of the topology's pods the peer selectors and entities select, ascending.
    pub pods: Vec<usize>,
    /// `reserved:host`: the local node.
    pub host: bool,
    /// `reserved:kube-apiserver`: the API server's backends.
    pub kube_apiserver: bool,
    /// `reserved:world`: every address outside the cluster.
    pub world: bool,
    /// `(cidr, except)` entries: they match world addresses only.
    pub cidrs: Vec<(IpNet, Vec<IpNet>)>,
    /// `toFQDNs`: which addresses they match depends on DNS answers the oracle may not know.
    pub fqdns: Vec<FqdnSelector>,
    /// `toServices`: not resolved by the oracle.
    pub services: bool,
}

/// One rule element that selects a pod in one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleView<'o> {
    pub origin: &'o RuleOrigin,
    /// An `ingressDeny`/`egressDeny` element: matching traffic is denied whatever allows it.
    pub deny: bool,
    pub peers: RulePeers,
    /// `None`: every port and protocol (an L3-only rule).
    pub ports: Option<&'o [CompiledPortRule]>,
}

/// Everything that decides one pod's traffic in one direction ([`CiliumOracle::rules_of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedRules<'o> {
    /// Whether some selecting element asks for default deny; without it, traffic no deny
    /// matches is allowed.
    pub default_deny: bool,
    /// The selecting elements, v1 NetworkPolicies first, then Cilium policies in input order.
    pub rules: Vec<RuleView<'o>>,
}

#[derive(Debug, Clone)]
struct Entry {
    origin: RuleOrigin,
    deny: bool,
    default_deny: bool,
    /// `None`: the entry selects no traffic (`ingress: [{}]`), it only turns on default deny.
    l3: Option<L3>,
    /// `None`: every port and protocol (an L3-only rule).
    l4: Option<Vec<CompiledPortRule>>,
}

/// Why a cell is not judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unpredictable {
    /// A `toFQDNs` peer, and the oracle has no name facts.
    FqdnWithoutFacts,
    /// A `toServices` peer: Services are not in the topology.
    Services,
    /// The port carries DNS rules: the DNS proxy answers there.
    DnsProxy,
    /// A `toFQDNs` peer whose name resolves to the address, and the source did not look it up
    /// through the DNS proxy just before.
    FqdnNotLookedUp,
    /// A DNS query admitted both by a rule with DNS rules and by one without.
    DnsRulesMixed,
}

impl Unpredictable {
    pub fn describe(self) -> &'static str {
        match self {
            Unpredictable::FqdnWithoutFacts => {
                "toFQDNs: which addresses a name resolves to is not known to the oracle"
            }
            Unpredictable::Services => {
                "toServices: the topology has no Services to resolve to backends"
            }
            Unpredictable::DnsProxy => {
                "the port carries DNS rules: Cilium's DNS proxy answers there, only DNS queries are judged"
            }
            Unpredictable::FqdnNotLookedUp => {
                "toFQDNs: the address is admitted only while Cilium remembers some pod's lookup of a matching name through its DNS proxy, and this source did not just look it up"
            }
            Unpredictable::DnsRulesMixed => {
                "the DNS query is admitted by a rule with DNS rules and by one without: which names Cilium's DNS proxy then answers is not modelled"
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tri {
    Yes,
    No,
    Unknown(Unpredictable),
}

/// How one side (the source's egress or the destination's ingress) decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The endpoint carries no policy (the node, the API server, the world).
    NoPolicyEndpoint,
    NotEnforced,
    Denied(u32),
    Allowed(u32),
    AllowedWithoutDefaultDeny,
    AllowedLocalhost,
    DefaultDeny,
    NotJudged(u32, Unpredictable),
    /// A DNS query that the DNS rules on its port (of these entries' ports) do not allow: the
    /// DNS proxy answers REFUSED.
    Refused(u32),
}

impl Outcome {
    fn verdict(self) -> Option<bool> {
        match self {
            Outcome::Denied(_) | Outcome::DefaultDeny | Outcome::Refused(_) => Some(false),
            Outcome::NotJudged(..) => None,
            _ => Some(true),
        }
    }
}

/// The verdict of one cell under Cilium semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CiliumCell {
    /// `None`: not judged (see [`CiliumExplanation`] for why).
    pub verdict: Option<Verdict>,
    /// A CIDR or FQDN rule of a selecting policy was in play: the truth follows live addresses.
    pub ip_dependent: bool,
}

/// One side's decision, spelt out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum SideDecision {
    /// The endpoint is the node, the API server or outside the cluster: no policy applies to it.
    NoPolicy,
    /// No rule selects the endpoint in this direction.
    NotEnforced,
    DeniedBy {
        rule: RuleOrigin,
    },
    AllowedBy {
        rule: RuleOrigin,
    },
    /// Every selecting rule sets `enableDefaultDeny` off for this direction.
    AllowedWithoutDefaultDeny,
    /// Ingress from the local node is always allowed.
    AllowedFromLocalHost,
    /// Default deny and no rule allows it.
    DefaultDeny,
    NotJudged {
        rule: RuleOrigin,
        reason: Unpredictable,
    },
    /// A DNS query for a name that the DNS rules admitting the query do not match: Cilium's DNS
    /// proxy refuses it.
    RefusedByDnsRules {
        rule: RuleOrigin,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CiliumSide {
    pub direction: Direction,
    /// Policies with an entry that selects the endpoint in this direction.
    pub selected_by: Vec<PolicyOrigin>,
    /// Whether any selecting entry asks for default deny.
    pub default_deny: bool,
    #[serde(flatten)]
    pub decision: SideDecision,
}

impl CiliumSide {
    /// The decision in one sentence, naming the rule that made it.
    pub fn summary(&self) -> String {
        let d = self.direction.as_str();
        match &self.decision {
            SideDecision::NoPolicy => format!("{d}: no policy applies to this end"),
            SideDecision::NotEnforced => format!("{d} not enforced (no rule selects it)"),
            SideDecision::DeniedBy { rule } => format!("{d} denied by {rule}"),
            SideDecision::AllowedBy { rule } => format!("{d} allowed by {rule}"),
            SideDecision::AllowedWithoutDefaultDeny => {
                format!("{d} allowed: every selecting rule has enableDefaultDeny.{d}=false")
            }
            SideDecision::AllowedFromLocalHost => {
                format!("{d} allowed: the local host always reaches local pods")
            }
            SideDecision::DefaultDeny => {
                let by: Vec<String> = self.selected_by.iter().map(|p| p.to_string()).collect();
                format!(
                    "{d} default-deny (selected by {}) and no rule allows it",
                    by.join(", ")
                )
            }
            SideDecision::NotJudged { rule, reason } => {
                format!("{d} not judged: {rule}: {}", reason.describe())
            }
            SideDecision::RefusedByDnsRules { rule } => {
                format!("{d}: the query is admitted by {rule}, whose DNS rules do not match the name: Cilium's DNS proxy refuses it")
            }
        }
    }
}

/// The reasoning behind one cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CiliumExplanation {
    pub verdict: Option<Verdict>,
    pub ip_dependent: bool,
    pub egress: CiliumSide,
    pub ingress: CiliumSide,
}

impl CiliumExplanation {
    pub fn summary(&self) -> String {
        format!("{}; {}", self.egress.summary(), self.ingress.summary())
    }
}

/// Cilium semantics over one topology, one set of policies and the name facts.
#[derive(Debug, Clone)]
pub struct CiliumOracle<'t> {
    topology: &'t Topology,
    facts: NameFacts,
    entries: Vec<Entry>,
    /// Per pod: entry indices that select it for ingress / egress.
    ingress_of: Vec<Vec<u32>>,
    egress_of: Vec<Vec<u32>>,
    ingress_default_deny: Vec<bool>,
    egress_default_deny: Vec<bool>,
    ingress_ip_dependent: Vec<bool>,
    egress_ip_dependent: Vec<bool>,
}

struct Universe {
    pods: usize,
    identities: Vec<IdentityLabels>,
}

impl Universe {
    fn host(&self) -> usize {
        self.pods
    }
    fn apiserver(&self) -> usize {
        self.pods + 1
    }
    fn world(&self) -> usize {
        self.pods + 2
    }
    fn cluster_dns(&self) -> usize {
        self.pods + 3
    }
    fn len(&self) -> usize {
        self.pods + 4
    }
    fn select(&self, sel: &IdentitySelector) -> IdSet {
        let mut s = IdSet::empty(self.len());
        for (i, id) in self.identities.iter().enumerate() {
            if sel.matches(id) {
                s.insert(i);
            }
        }
        s
    }
    fn select_pods(&self, sel: &IdentitySelector) -> IdSet {
        let mut s = IdSet::empty(self.len());
        for (i, id) in self.identities.iter().enumerate().take(self.pods) {
            if sel.matches(id) {
                s.insert(i);
            }
        }
        s
    }
    /// `pkg/policy/api/entity.go:102-149, 168-173`, on a one-node cluster named `default`.
    fn entity(&self, name: &str) -> IdSet {
        let mut s = IdSet::empty(self.len());
        let pods = |s: &mut IdSet| (0..self.pods).for_each(|i| s.insert(i));
        match name {
            "all" => (0..self.len()).for_each(|i| s.insert(i)),
            "world" => s.insert(self.world()),
            "cluster" | "cluster-mesh" => {
                pods(&mut s);
                s.insert(self.host());
                s.insert(self.apiserver());
                s.insert(self.cluster_dns());
            }
            "host" => s.insert(self.host()),
            "kube-apiserver" => s.insert(self.apiserver()),
            // remote-node: no other node; init, ingress, health, unmanaged, none: no such endpoint.
            _ => {}
        }
        s
    }
}

fn compile_err(policy: &str, at: String, reason: impl Into<String>) -> CiliumOracleError {
    CiliumOracleError::Invalid {
        policy: policy.to_string(),
        at,
        reason: reason.into(),
    }
}

impl<'t> CiliumOracle<'t> {
    /// Compiles v1 NetworkPolicies and Cilium policies (all validated) against a topology.
    pub fn new(
        topology: &'t Topology,
        network_policies: &[NetworkPolicy],
        cilium: &[CiliumPolicy],
        facts: NameFacts,
    ) -> Result<Self, CiliumOracleError> {
        let n = topology.pods.len();
        let mut identities: Vec<IdentityLabels> = topology
            .pods
            .iter()
            .map(|p| pod_identity(p, topology.namespace(&p.id.namespace)))
            .collect();
        identities.push(IdentityLabels::reserved(&["host"]));
        identities.push(IdentityLabels::reserved(&["kube-apiserver"]));
        identities.push(IdentityLabels::reserved(&["world", "world-ipv4"]));
        identities.push(cluster_dns_identity());
        let u = Universe {
            pods: n,
            identities,
        };
        let mut entries: Vec<(IdSet, Direction, Entry)> = Vec::new();
        for np in network_policies {
            compile_network_policy(&u, np, &mut entries)?;
        }
        for p in cilium {
            compile_cilium_policy(&u, p, &mut entries)?;
        }
        let mut o = CiliumOracle {
            topology,
            facts,
            entries: Vec::with_capacity(entries.len()),
            ingress_of: vec![Vec::new(); n],
            egress_of: vec![Vec::new(); n],
            ingress_default_deny: vec![false; n],
            egress_default_deny: vec![false; n],
            ingress_ip_dependent: vec![false; n],
            egress_ip_dependent: vec![false; n],
        };
        for (subject, direction, entry) in entries {
            let k = o.entries.len() as u32;
            let ip = match &entry.l3 {
                Some(L3::Peers(p)) => !p.cidrs.is_empty() || !p.fqdns.is_empty(),
                _ => false,
            };
            for i in 0..n {
                if !subject.contains(i) {
                    continue;
                }
                let (of, dd, ipd) = match direction {
                    Direction::Ingress => (
                        &mut o.ingress_of,
                        &mut o.ingress_default_deny,
                        &mut o.ingress_ip_dependent,
                    ),
                    Direction::Egress => (
                        &mut o.egress_of,
                        &mut o.egress_default_deny,
                        &mut o.egress_ip_dependent,
                    ),
                };
                of[i].push(k);
                dd[i] |= entry.default_deny;
                ipd[i] |= ip;
            }
            o.entries.push(entry);
        }
        Ok(o)
    }

    pub fn topology(&self) -> &Topology {
        self.topology
    }

    /// The rule elements that select pod `pod` (a topology index) in `direction`, for a
    /// dataplane that enforces exactly what this oracle judges; `None` when no element selects
    /// it (the direction is not enforced). Decision order, as [`CiliumOracle::judge`] applies
    /// it: a matching deny element, then a matching allow element, then, without default deny,
    /// allowed; with it, ingress from the local host allowed, everything else denied.
    pub fn rules_of(&self, pod: usize, direction: Direction) -> Option<SelectedRules<'_>> {
        let (of, dd) = match direction {
            Direction::Ingress => (self.ingress_of.get(pod)?, self.ingress_default_deny[pod]),
            Direction::Egress => (self.egress_of.get(pod)?, self.egress_default_deny[pod]),
        };
        if of.is_empty() {
            return None;
        }
        let n = self.topology.pods.len();
        let rules = of
            .iter()
            .map(|&k| {
                let e = &self.entries[k as usize];
                let peers = match &e.l3 {
                    None => RulePeers::Nothing,
                    Some(L3::Wildcard) => RulePeers::Any,
                    Some(L3::Peers(p)) => RulePeers::Peers(RulePeerSet {
                        pods: (0..n).filter(|&i| p.identities.contains(i)).collect(),
                        host: p.identities.contains(n),
                        kube_apiserver: p.identities.contains(n + 1),
                        world: p.identities.contains(n + 2),
                        cidrs: p.cidrs.clone(),
                        fqdns: p.fqdns.clone(),
                        services: p.services,
                    }),
                };
                RuleView {
                    origin: &e.origin,
                    deny: e.deny,
                    peers,
                    ports: e.l4.as_deref(),
                }
            })
            .collect();
        Some(SelectedRules {
            default_deny: dd,
            rules,
        })
    }

    fn peer_matches(&self, l3: &L3, peer: Endpoint, seen: Option<&NameFact>) -> Tri {
        let peers = match l3 {
            L3::Wildcard => return Tri::Yes,
            L3::Peers(p) => p,
        };
        let n = self.topology.pods.len();
        let idx = match peer {
            Endpoint::Pod(i) => i,
            Endpoint::Host => n,
            Endpoint::KubeApiserver => n + 1,
            Endpoint::World(_) => n + 2,
            Endpoint::ClusterDns => n + 3,
        };
        if peers.identities.contains(idx) {
            return Tri::Yes;
        }
        if let Endpoint::World(ip) = peer {
            let in_cidr = peers
                .cidrs
                .iter()
                .any(|(net, except)| net.contains(&ip) && !except.iter().any(|e| e.contains(&ip)));
            if in_cidr {
                return Tri::Yes;
            }
            if !peers.fqdns.is_empty() {
                let matches = |f: &NameFact| {
                    f.address == ip && peers.fqdns.iter().any(|s| selector_matches(s, &f.name))
                };
                match &self.facts {
                    NameFacts::Unknown => return Tri::Unknown(Unpredictable::FqdnWithoutFacts),
                    NameFacts::Observed(facts) => {
                        if facts.iter().any(matches) {
                            return Tri::Yes;
                        }
                    }
                    NameFacts::Answered(facts) => {
                        if seen.is_some_and(matches) {
                            return Tri::Yes;
                        }
                        if facts.iter().any(matches) {
                            return Tri::Unknown(Unpredictable::FqdnNotLookedUp);
                        }
                    }
                }
            }
        }
        if peers.services {
            return Tri::Unknown(Unpredictable::Services);
        }
        Tri::No
    }

    /// The port rule that covers (port, protocol) at `dst`, and whether it carries DNS rules.
    fn ports_match(
        &self,
        l4: &Option<Vec<CompiledPortRule>>,
        dst: Endpoint,
        port: u16,
        protocol: Protocol,
    ) -> Option<bool> {
        let Some(rules) = l4 else {
            return Some(false);
        };
        let pi = match protocol {
            Protocol::Tcp => 0,
            Protocol::Udp => 1,
            Protocol::Sctp => 2,
        };
        let mut found = None;
        for r in rules {
            let hit = r.ports.iter().any(|p| {
                p.protocols[pi]
                    && match &p.port {
                        PortMatch::Any => true,
                        PortMatch::Range(lo, hi) => *lo <= port && port <= *hi,
                        PortMatch::Named(name) => match dst {
                            Endpoint::Pod(i) => self.topology.pods[i]
                                .named_port(name, protocol)
                                .is_some_and(|n| n == port),
                            _ => false,
                        },
                    }
            });
            if hit {
                if r.dns {
                    found = Some(true);
                } else {
                    return Some(false);
                }
            }
        }
        found
    }

    fn entry_matches(
        &self,
        e: &Entry,
        peer: Endpoint,
        dst: Endpoint,
        port: u16,
        protocol: Protocol,
        seen: Option<&NameFact>,
    ) -> Tri {
        let Some(l3) = &e.l3 else { return Tri::No };
        let peer_hit = self.peer_matches(l3, peer, seen);
        if peer_hit == Tri::No {
            return Tri::No;
        }
        match self.ports_match(&e.l4, dst, port, protocol) {
            None => Tri::No,
            Some(true) if !e.deny => Tri::Unknown(Unpredictable::DnsProxy),
            Some(_) => peer_hit,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn side(
        &self,
        direction: Direction,
        subject: Endpoint,
        peer: Endpoint,
        dst: Endpoint,
        port: u16,
        protocol: Protocol,
        seen: Option<&NameFact>,
    ) -> Outcome {
        let Endpoint::Pod(p) = subject else {
            return Outcome::NoPolicyEndpoint;
        };
        let (of, dd) = match direction {
            Direction::Ingress => (&self.ingress_of[p], self.ingress_default_deny[p]),
            Direction::Egress => (&self.egress_of[p], self.egress_default_deny[p]),
        };
        if of.is_empty() {
            return Outcome::NotEnforced;
        }
        let mut deny_unknown = None;
        let mut allow = None;
        let mut allow_unknown = None;
        for &k in of {
            let e = &self.entries[k as usize];
            match (
                e.deny,
                self.entry_matches(e, peer, dst, port, protocol, seen),
            ) {
                (true, Tri::Yes) => return Outcome::Denied(k),
                (true, Tri::Unknown(w)) => {
                    deny_unknown.get_or_insert((k, w));
                }
                (false, Tri::Yes) => {
                    allow.get_or_insert(k);
                }
                (false, Tri::Unknown(w)) => {
                    allow_unknown.get_or_insert((k, w));
                }
                (_, Tri::No) => {}
            }
        }
        let fallback = if !dd {
            Outcome::AllowedWithoutDefaultDeny
        } else if direction == Direction::Ingress && peer == Endpoint::Host {
            Outcome::AllowedLocalhost
        } else {
            Outcome::DefaultDeny
        };
        let base = match (allow, allow_unknown) {
            (Some(k), _) => Outcome::Allowed(k),
            (None, Some((k, w))) if fallback.verdict() == Some(false) => Outcome::NotJudged(k, w),
            _ => fallback,
        };
        match deny_unknown {
            Some((k, w)) if base.verdict() == Some(true) => Outcome::NotJudged(k, w),
            _ => base,
        }
    }

    fn sides(
        &self,
        from: Endpoint,
        to: Endpoint,
        port: u16,
        protocol: Protocol,
        seen: Option<&NameFact>,
    ) -> (Outcome, Outcome) {
        (
            self.side(Direction::Egress, from, to, to, port, protocol, seen),
            self.side(Direction::Ingress, to, from, to, port, protocol, seen),
        )
    }

    fn ip_dependent(&self, from: Endpoint, to: Endpoint) -> bool {
        let e = matches!(from, Endpoint::Pod(i) if self.egress_ip_dependent[i]);
        let i = matches!(to, Endpoint::Pod(i) if self.ingress_ip_dependent[i]);
        e || i
    }

    /// The verdict of a cell; `port` is the destination (post-DNAT) port.
    pub fn judge(&self, from: Endpoint, to: Endpoint, port: u16, protocol: Protocol) -> CiliumCell {
        self.judge_world(from, to, port, protocol, None)
    }

    /// [`CiliumOracle::judge`] for a source that has just looked `seen` up through the cluster
    /// DNS (a probe by name): under [`NameFacts::Answered`], `toFQDNs` peers matching that name
    /// admit its address.
    pub fn judge_world(
        &self,
        from: Endpoint,
        to: Endpoint,
        port: u16,
        protocol: Protocol,
        seen: Option<&NameFact>,
    ) -> CiliumCell {
        let (e, i) = self.sides(from, to, port, protocol, seen);
        CiliumCell {
            verdict: combine(e, i),
            ip_dependent: self.ip_dependent(from, to),
        }
    }

    /// A DNS query for `name` from `from` to the cluster DNS (UDP 53, after the Service's DNAT).
    /// A port rule with DNS rules sends the query to Cilium's DNS proxy, which answers only names
    /// those rules match and REFUSED for others (`pkg/fqdn/dnsproxy`); a rule without DNS rules
    /// for the same peer admits every name (`pkg/policy/rule.go` mergePortProto: empty L7 rules
    /// are a wildcard), and so does one whose policy turns default deny off for egress
    /// (`pkg/policy/l4.go`, "Adding wildcard L7 rules for default-allow policy").
    pub fn judge_lookup(&self, from: Endpoint, name: &str) -> LookupCell {
        let (outcome, proxied) = self.lookup_side(from, name);
        LookupCell {
            verdict: outcome.verdict().map(Verdict::from_allowed),
            proxied,
            egress: self.spell(Direction::Egress, from, outcome),
        }
    }

    /// The egress entries of pod `p` that decide a DNS query to the cluster DNS.
    fn dns_query_entries(&self, p: usize) -> DnsQueryEntries<'_> {
        let mut q = DnsQueryEntries::default();
        for &k in &self.egress_of[p] {
            let e = &self.entries[k as usize];
            let Some(l3) = &e.l3 else { continue };
            let peer = self.peer_matches(l3, Endpoint::ClusterDns, None);
            if peer == Tri::No {
                continue;
            }
            let Some(hit) = lookup_ports(&e.l4, 53) else {
                continue;
            };
            match (e.deny, peer) {
                (true, Tri::Yes) => {
                    q.deny.get_or_insert(k);
                }
                (true, Tri::Unknown(w)) => {
                    q.deny_unknown.get_or_insert((k, w));
                }
                (false, Tri::Yes) => {
                    // Default deny off for egress: Cilium adds a wildcard DNS rule.
                    let proxied = hit.is_some();
                    let names = hit.filter(|_| e.default_deny);
                    q.admitting.push((k, names, proxied));
                }
                (false, Tri::Unknown(w)) => {
                    q.allow_unknown.get_or_insert((k, w));
                }
                (_, Tri::No) => {}
            }
        }
        q
    }

    /// The names Cilium's DNS proxy answers for pod `pod`'s queries to the cluster DNS, for a
    /// dataplane that plays the proxy: `None` when the pod's queries are not filtered by name
    /// (not proxied, or some admitting rule admits every name); whether the query passes at all
    /// is the L3/L4 rules' business ([`CiliumOracle::rules_of`]).
    pub fn dns_names(&self, pod: usize) -> Option<Vec<FqdnSelector>> {
        let q = self.dns_query_entries(pod);
        if q.admitting.is_empty()
            || q.admitting
                .iter()
                .any(|(_, n, proxied)| !proxied || n.is_none())
        {
            return None;
        }
        let mut out: Vec<FqdnSelector> = Vec::new();
        for (_, names, _) in &q.admitting {
            for s in names.iter().flatten() {
                if !out.contains(s) {
                    out.push((*s).clone());
                }
            }
        }
        Some(out)
    }

    fn lookup_side(&self, from: Endpoint, name: &str) -> (Outcome, Option<bool>) {
        let Endpoint::Pod(p) = from else {
            return (Outcome::NoPolicyEndpoint, Some(false));
        };
        if self.egress_of[p].is_empty() {
            return (Outcome::NotEnforced, Some(false));
        }
        let DnsQueryEntries {
            deny,
            deny_unknown,
            admitting,
            allow_unknown,
        } = self.dns_query_entries(p);
        if let Some(k) = deny {
            return (Outcome::Denied(k), Some(false));
        }
        let dd = self.egress_default_deny[p];
        let with_rules = admitting.iter().any(|(_, _, proxied)| *proxied);
        let without_rules = admitting
            .iter()
            .find(|(_, _, proxied)| !proxied)
            .map(|(k, _, _)| *k);
        let matching = admitting
            .iter()
            .find(|(_, n, proxied)| {
                *proxied
                    && n.as_ref()
                        .is_none_or(|sels| sels.iter().any(|s| selector_matches(s, name)))
            })
            .map(|(k, _, _)| *k);
        let (base, proxied) = match (with_rules, without_rules, matching) {
            (false, None, _) => {
                let fallback = if dd {
                    Outcome::DefaultDeny
                } else {
                    Outcome::AllowedWithoutDefaultDeny
                };
                match allow_unknown {
                    Some((k, w)) if dd => (Outcome::NotJudged(k, w), None),
                    _ => (fallback, Some(false)),
                }
            }
            (false, Some(k), _) => (Outcome::Allowed(k), Some(false)),
            (true, None, Some(k)) => (Outcome::Allowed(k), Some(true)),
            (true, None, None) => {
                let k = admitting.first().map_or(0, |(k, _, _)| *k);
                (Outcome::Refused(k), Some(true))
            }
            (true, Some(_), Some(k)) => (Outcome::Allowed(k), None),
            (true, Some(k), None) => (Outcome::NotJudged(k, Unpredictable::DnsRulesMixed), None),
        };
        match deny_unknown {
            Some((k, w)) if base.verdict() == Some(true) => (Outcome::NotJudged(k, w), None),
            _ => (base, proxied),
        }
    }
}

/// The egress entries that decide a DNS query to the cluster DNS
/// ([`CiliumOracle::dns_query_entries`]).
#[derive(Default)]
struct DnsQueryEntries<'o> {
    /// The first matching deny entry.
    deny: Option<u32>,
    deny_unknown: Option<(u32, Unpredictable)>,
    /// (entry, the names it admits: `None` for every name, whether it sends the query to the
    /// DNS proxy).
    admitting: Vec<(u32, Option<Vec<&'o FqdnSelector>>, bool)>,
    allow_unknown: Option<(u32, Unpredictable)>,
}

/// Whether an entry's ports admit UDP `port` (a DNS query); with the DNS rules of the admitting
/// port rules (`None`: some admitting port rule has none, so every name passes).
fn lookup_ports(
    l4: &Option<Vec<CompiledPortRule>>,
    port: u16,
) -> Option<Option<Vec<&FqdnSelector>>> {
    let Some(rules) = l4 else {
        return Some(None);
    };
    let mut found: Option<Vec<&FqdnSelector>> = None;
    for r in rules {
        let hit = r.ports.iter().any(|p| {
            p.protocols[1]
                && match &p.port {
                    PortMatch::Any => true,
                    PortMatch::Range(lo, hi) => *lo <= port && port <= *hi,
                    // The cluster DNS's container ports are named `dns` (UDP), as kubeadm's.
                    PortMatch::Named(n) => n == "dns",
                }
        });
        if !hit {
            continue;
        }
        if !r.dns {
            return Some(None);
        }
        found.get_or_insert_with(Vec::new).extend(&r.dns_names);
    }
    found.map(Some)
}

impl<'t> CiliumOracle<'t> {
    fn spell(&self, direction: Direction, subject: Endpoint, o: Outcome) -> CiliumSide {
        let (selected_by, default_deny) = match subject {
            Endpoint::Pod(p) => {
                let (of, dd) = match direction {
                    Direction::Ingress => (&self.ingress_of[p], self.ingress_default_deny[p]),
                    Direction::Egress => (&self.egress_of[p], self.egress_default_deny[p]),
                };
                let mut by: Vec<PolicyOrigin> = of
                    .iter()
                    .map(|&k| self.entries[k as usize].origin.policy.clone())
                    .collect();
                by.sort();
                by.dedup();
                (by, dd)
            }
            _ => (Vec::new(), false),
        };
        let rule = |k: u32| self.entries[k as usize].origin.clone();
        let decision = match o {
            Outcome::NoPolicyEndpoint => SideDecision::NoPolicy,
            Outcome::NotEnforced => SideDecision::NotEnforced,
            Outcome::Denied(k) => SideDecision::DeniedBy { rule: rule(k) },
            Outcome::Allowed(k) => SideDecision::AllowedBy { rule: rule(k) },
            Outcome::AllowedWithoutDefaultDeny => SideDecision::AllowedWithoutDefaultDeny,
            Outcome::AllowedLocalhost => SideDecision::AllowedFromLocalHost,
            Outcome::DefaultDeny => SideDecision::DefaultDeny,
            Outcome::NotJudged(k, reason) => SideDecision::NotJudged {
                rule: rule(k),
                reason,
            },
            Outcome::Refused(k) => SideDecision::RefusedByDnsRules { rule: rule(k) },
        };
        CiliumSide {
            direction,
            selected_by,
            default_deny,
            decision,
        }
    }

    /// The verdict with both sides' reasons.
    pub fn explain(
        &self,
        from: Endpoint,
        to: Endpoint,
        port: u16,
        protocol: Protocol,
    ) -> CiliumExplanation {
        self.explain_world(from, to, port, protocol, None)
    }

    /// [`CiliumOracle::explain`] for a source that just looked `seen` up (see
    /// [`CiliumOracle::judge_world`]).
    pub fn explain_world(
        &self,
        from: Endpoint,
        to: Endpoint,
        port: u16,
        protocol: Protocol,
        seen: Option<&NameFact>,
    ) -> CiliumExplanation {
        let (e, i) = self.sides(from, to, port, protocol, seen);
        CiliumExplanation {
            verdict: combine(e, i),
            ip_dependent: self.ip_dependent(from, to),
            egress: self.spell(Direction::Egress, from, e),
            ingress: self.spell(Direction::Ingress, to, i),
        }
    }
}

fn compile_cilium_policy(
    u: &Universe,
    p: &CiliumPolicy,
    out: &mut Vec<(IdSet, Direction, Entry)>,
) -> Result<(), CiliumOracleError> {
    let id = p.policy_ref();
    let name = id.to_string();
    let namespace = (!p.kind.is_clusterwide()).then_some(id.namespace.as_str());
    let sel_err = |source| CiliumOracleError::Selector {
        policy: name.clone(),
        source,
    };
    for (place, rule) in p.rules() {
        let Some(es) = &rule.endpoint_selector else {
            return Err(compile_err(
                &name,
                place.to_string(),
                "no endpointSelector (host policies are not modelled)",
            ));
        };
        // No endpointSelector ever selects the node (pkg/policy/rule.go:462-470): pods only.
        let subject = u.select_pods(&IdentitySelector::subject(es, namespace).map_err(sel_err)?);
        for (section, i, pr) in rule.peer_rules() {
            let direction = section.direction();
            let at = format!("{place}.{section}[{i}]");
            let (l3, l4) = compile_peer_rule(u, &pr, namespace, &name, &at)?;
            out.push((
                subject.clone(),
                direction,
                Entry {
                    origin: RuleOrigin {
                        policy: PolicyOrigin::Cilium(id.clone()),
                        place: Some(place),
                        section: section.as_str(),
                        index: Some(i),
                    },
                    deny: section.is_deny(),
                    default_deny: rule.default_deny(direction),
                    l3,
                    l4,
                },
            ));
        }
    }
    Ok(())
}

type Compiled = (Option<L3>, Option<Vec<CompiledPortRule>>);

fn compile_peer_rule(
    u: &Universe,
    pr: &PeerRule,
    namespace: Option<&str>,
    policy: &str,
    at: &str,
) -> Result<Compiled, CiliumOracleError> {
    let l4 = match pr.ports {
        Some(ports) if !ports.is_empty() => Some(compile_ports(ports, policy, at)?),
        _ => None,
    };
    if !pr.has_l3_field() {
        // No peers: with ports, every peer on those ports (egress.go:24-26, l4.go:1026-1032);
        // without, the entry selects nothing (rule.go:369-375).
        return Ok(match l4 {
            Some(l4) => (Some(L3::Wildcard), Some(l4)),
            None => (None, None),
        });
    }
    let mut peers = Peers {
        identities: IdSet::empty(u.len()),
        cidrs: Vec::new(),
        fqdns: Vec::new(),
        services: false,
    };
    for sel in pr.endpoints.into_iter().flatten() {
        let s = IdentitySelector::peer(sel, namespace).map_err(|source| {
            CiliumOracleError::Selector {
                policy: policy.to_string(),
                source,
            }
        })?;
        peers.identities.union(&u.select(&s));
    }
    for e in pr.entities.into_iter().flatten() {
        peers.identities.union(&u.entity(e));
    }
    for c in pr.cidr.into_iter().flatten() {
        let net = parse_strict_cidr(c).map_err(|r| compile_err(policy, at.to_string(), r))?;
        peers.cidrs.push((net, Vec::new()));
    }
    for c in pr.cidr_set.into_iter().flatten() {
        let Some(cidr) = c.cidr.as_deref() else {
            return Err(compile_err(
                policy,
                at.to_string(),
                "CIDR groups are not modelled",
            ));
        };
        let net = parse_strict_cidr(cidr).map_err(|r| compile_err(policy, at.to_string(), r))?;
        let except = c
            .except
            .iter()
            .flatten()
            .map(|e| parse_strict_cidr(e).map_err(|r| compile_err(policy, at.to_string(), r)))
            .collect::<Result<Vec<_>, _>>()?;
        peers.cidrs.push((net, except));
    }
    peers.fqdns.extend(pr.fqdns.into_iter().flatten().cloned());
    peers.services = pr.services.is_some_and(|s| !s.is_empty());
    Ok((Some(L3::Peers(peers)), l4))
}

fn compile_ports(
    ports: PortsView,
    policy: &str,
    at: &str,
) -> Result<Vec<CompiledPortRule>, CiliumOracleError> {
    let one = |p: &super::model::PortProtocol| -> Result<CompiledPort, CiliumOracleError> {
        let protos = protocols(p).map_err(|v| {
            compile_err(
                policy,
                at.to_string(),
                format!("protocol {v} is not modelled"),
            )
        })?;
        let mut mask = [false; 3];
        for pr in protos {
            mask[match pr {
                Protocol::Tcp => 0,
                Protocol::Udp => 1,
                Protocol::Sctp => 2,
            }] = true;
        }
        let spec = parse_port(p.port.as_deref().unwrap_or(""))
            .map_err(|r| compile_err(policy, at.to_string(), r))?;
        let port = match spec {
            PortSpec::Any => PortMatch::Any,
            // endPort <= port is a single port (pkg/policy/l4.go:718-721); named ports ignore it.
            PortSpec::Number(lo) => {
                let hi = p
                    .end_port
                    .and_then(|e| u16::try_from(e).ok())
                    .filter(|e| *e > lo)
                    .unwrap_or(lo);
                PortMatch::Range(lo, hi)
            }
            PortSpec::Name(n) => PortMatch::Named(n),
        };
        Ok(CompiledPort {
            protocols: mask,
            port,
        })
    };
    match ports {
        PortsView::Allow(list) => list
            .iter()
            .map(|r| {
                Ok(CompiledPortRule {
                    ports: r
                        .ports
                        .iter()
                        .flatten()
                        .map(one)
                        .collect::<Result<_, _>>()?,
                    dns: r.rules.as_ref().and_then(|l| l.dns.as_ref()).is_some(),
                    dns_names: r
                        .rules
                        .as_ref()
                        .and_then(|l| l.dns.clone())
                        .unwrap_or_default(),
                })
            })
            .collect(),
        PortsView::Deny(list) => list
            .iter()
            .map(|r| {
                Ok(CompiledPortRule {
                    ports: r
                        .ports
                        .iter()
                        .flatten()
                        .map(one)
                        .collect::<Result<_, _>>()?,
                    dns: false,
                    dns_names: Vec::new(),
                })
            })
            .collect(),
    }
}

/// NetworkPolicy v1 as Cilium translates it (`pkg/k8s/network_policy.go:115-270`): allow entries
/// with default deny, pod selectors over the filtered identity labels, namespace selectors over
/// `io.cilium.k8s.namespace.labels.*`, `ipBlock` as a CIDR selector (world only), an absent or
/// empty `from`/`to` as every peer.
fn compile_network_policy(
    u: &Universe,
    np: &NetworkPolicy,
    out: &mut Vec<(IdSet, Direction, Entry)>,
) -> Result<(), CiliumOracleError> {
    let id = policy_ref(np);
    let name = format!("NetworkPolicy {id}");
    let sel_err = |source| CiliumOracleError::Selector {
        policy: name.clone(),
        source,
    };
    let (isolates_in, isolates_out) = policy_types(np).map_err(|v| {
        compile_err(
            &name,
            "spec.policyTypes".into(),
            format!("unsupported policyType {v:?}"),
        )
    })?;
    let spec = np.spec.clone().unwrap_or_default();
    let pod_sel = spec.pod_selector.clone().unwrap_or_default();
    let subject = u.select_pods(
        &IdentitySelector::from_k8s(&pod_sel, "")
            .map_err(sel_err)?
            .in_namespace(&id.namespace),
    );
    let peer = |p: &NetworkPolicyPeer, peers: &mut Peers| -> Result<(), CiliumOracleError> {
        if let Some(b) = &p.ip_block {
            let net = parse_cidr(&b.cidr).map_err(|r| compile_err(&name, "ipBlock".into(), r))?;
            let except = b
                .except
                .iter()
                .flatten()
                .map(|e| parse_cidr(e).map_err(|r| compile_err(&name, "ipBlock".into(), r)))
                .collect::<Result<Vec<_>, _>>()?;
            peers.cidrs.push((net, except));
            return Ok(());
        }
        let mut s = match &p.pod_selector {
            Some(ps) => IdentitySelector::from_k8s(ps, "").map_err(sel_err)?,
            None => IdentitySelector::default(),
        };
        s = match &p.namespace_selector {
            Some(ns) => s
                .and(IdentitySelector::from_k8s(ns, NAMESPACE_LABELS_PREFIX).map_err(sel_err)?)
                .any_pod(),
            None if p.pod_selector.is_some() => s.in_namespace(&id.namespace),
            // A peer with neither selector admits nothing (the API server rejects it anyway).
            None => return Ok(()),
        };
        peers.identities.union(&u.select_pods(&s));
        Ok(())
    };
    let mut port = |p: &NetworkPolicyPort| -> Result<CompiledPort, CiliumOracleError> {
        let proto: Protocol = match p.protocol.as_deref() {
            None => Protocol::Tcp,
            Some(s) => s
                .parse()
                .map_err(|r: String| compile_err(&name, "ports".into(), r))?,
        };
        let mut mask = [false; 3];
        mask[match proto {
            Protocol::Tcp => 0,
            Protocol::Udp => 1,
            Protocol::Sctp => 2,
        }] = true;
        let port = match &p.port {
            None => PortMatch::Any,
            Some(IntOrString::Int(v)) => {
                let lo = u16::try_from(*v).map_err(|_| {
                    compile_err(&name, "ports".into(), format!("port {v} out of range"))
                })?;
                let hi = p.end_port.and_then(|e| u16::try_from(e).ok()).unwrap_or(lo);
                PortMatch::Range(lo, hi.max(lo))
            }
            Some(IntOrString::String(s)) => PortMatch::Named(s.clone()),
        };
        Ok(CompiledPort {
            protocols: mask,
            port,
        })
    };
    type Rule<'a> = (
        Option<&'a Vec<NetworkPolicyPeer>>,
        Option<&'a Vec<NetworkPolicyPort>>,
    );
    let sections: [(bool, Direction, &'static str, Vec<Rule>); 2] = [
        (
            isolates_in,
            Direction::Ingress,
            "ingress",
            spec.ingress
                .iter()
                .flatten()
                .map(|r| (r.from.as_ref(), r.ports.as_ref()))
                .collect(),
        ),
        (
            isolates_out,
            Direction::Egress,
            "egress",
            spec.egress
                .iter()
                .flatten()
                .map(|r| (r.to.as_ref(), r.ports.as_ref()))
                .collect(),
        ),
    ];
    for (isolates, direction, section, rules) in sections {
        if !isolates {
            continue;
        }
        let origin = |index| RuleOrigin {
            policy: PolicyOrigin::NetworkPolicy(id.clone()),
            place: None,
            section,
            index,
        };
        if rules.is_empty() {
            out.push((
                subject.clone(),
                direction,
                Entry {
                    origin: origin(None),
                    deny: false,
                    default_deny: true,
                    l3: None,
                    l4: None,
                },
            ));
        }
        for (i, (peers_doc, ports_doc)) in rules.into_iter().enumerate() {
            let l3 = match peers_doc {
                Some(list) if !list.is_empty() => {
                    let mut peers = Peers {
                        identities: IdSet::empty(u.len()),
                        cidrs: Vec::new(),
                        fqdns: Vec::new(),
                        services: false,
                    };
                    for p in list {
                        peer(p, &mut peers)?;
                    }
                    L3::Peers(peers)
                }
                _ => L3::Wildcard,
            };
            let l4 = match ports_doc {
                Some(list) if !list.is_empty() => Some(vec![CompiledPortRule {
                    ports: list.iter().map(&mut port).collect::<Result<_, _>>()?,
                    dns: false,
                    dns_names: Vec::new(),
                }]),
                _ => None,
            };
            out.push((
                subject.clone(),
                direction,
                Entry {
                    origin: origin(Some(i)),
                    deny: false,
                    default_deny: true,
                    l3: Some(l3),
                    l4,
                },
            ));
        }
    }
    Ok(())
}
