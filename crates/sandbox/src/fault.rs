//! CNI fault profiles of the sandbox: names, one-line descriptions, parsing, and the history faults' memory.
//!
//! Most faults are deviations inside `compile`; `late` is a delay the runtime applies; the two
//! history faults (`ignore-updates`, `ignore-relabel`) rewrite the state the compiler sees, via
//! [`FaultMemory`]. A [`FaultSet`] also carries the preset faults ([`PresetFault`], e.g.
//! `k8tre-allow-all`): mistakes in the cluster's own configuration rather than CNI bugs, parsed
//! from the same names and applied by the preset.

use super::control_fault::{ControlPlaneFault, ControlPlaneFaults};
use crate::preset::{PresetFault, PresetFaultParseError};
use crate::state::ClusterState;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netassay_core::model::Labels;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The delay of `late` when no duration is given.
pub const DEFAULT_LATE: Duration = Duration::from_secs(5);

/// One deliberate deviation from NetworkPolicy semantics, modelling a real CNI bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// `none`: policies are not enforced at all.
    NoEnforcement,
    IngressOnly,
    EgressOnly,
    IgnoreNamedPorts,
    IgnoreEndport,
    IgnoreExcept,
    TcpOnly,
    IgnoreNamespaceSelector,
    /// Every ruleset reaches the dataplane this long after the change.
    Late(Duration),
    Flaky,
    IgnoreUpdates,
    IgnoreRelabel,
    /// Cilium's deny rules (`ingressDeny`, `egressDeny`) compile as nothing; they still make
    /// their pods default-deny.
    IgnoreDeny,
}

impl Fault {
    /// The CLI names, in the order `describe` lists them.
    pub const ALL_NAMES: [&'static str; 13] = [
        "none",
        "ingress-only",
        "egress-only",
        "ignore-named-ports",
        "ignore-endport",
        "ignore-except",
        "tcp-only",
        "ignore-namespace-selector",
        "late",
        "flaky",
        "ignore-updates",
        "ignore-relabel",
        "ignore-deny",
    ];

    /// Every fault with its default parameters, in `ALL_NAMES` order.
    pub const ALL: [Fault; 13] = [
        Fault::NoEnforcement,
        Fault::IngressOnly,
        Fault::EgressOnly,
        Fault::IgnoreNamedPorts,
        Fault::IgnoreEndport,
        Fault::IgnoreExcept,
        Fault::TcpOnly,
        Fault::IgnoreNamespaceSelector,
        Fault::Late(DEFAULT_LATE),
        Fault::Flaky,
        Fault::IgnoreUpdates,
        Fault::IgnoreRelabel,
        Fault::IgnoreDeny,
    ];

    /// The CLI name without parameters.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::NoEnforcement => "none",
            Fault::IngressOnly => "ingress-only",
            Fault::EgressOnly => "egress-only",
            Fault::IgnoreNamedPorts => "ignore-named-ports",
            Fault::IgnoreEndport => "ignore-endport",
            Fault::IgnoreExcept => "ignore-except",
            Fault::TcpOnly => "tcp-only",
            Fault::IgnoreNamespaceSelector => "ignore-namespace-selector",
            Fault::Late(_) => "late",
            Fault::Flaky => "flaky",
            Fault::IgnoreUpdates => "ignore-updates",
            Fault::IgnoreRelabel => "ignore-relabel",
            Fault::IgnoreDeny => "ignore-deny",
        }
    }

    /// What the fault does, in one line.
    pub fn describe(&self) -> &'static str {
        match self {
            Fault::NoEnforcement => "no NetworkPolicy enforcement at all (Services still work)",
            Fault::IngressOnly => "egress rules are ignored: no pod is ever egress-isolated",
            Fault::EgressOnly => "ingress rules are ignored: no pod is ever ingress-isolated",
            Fault::IgnoreNamedPorts => {
                "a named port in a rule matches nothing (numeric ports still work)"
            }
            Fault::IgnoreEndport => "port ranges admit only their first port (endPort is ignored)",
            Fault::IgnoreExcept => "ipBlock except lists are ignored (the whole cidr is admitted)",
            Fault::TcpOnly => "only TCP is filtered: UDP and SCTP always pass",
            Fault::IgnoreNamespaceSelector => {
                "a peer's namespaceSelector is read as the policy's own namespace"
            }
            Fault::Late(_) => "rulesets take effect late (late=DURATION, default 5s)",
            Fault::Flaky => "2% of new connections are dropped at random",
            Fault::IgnoreUpdates => {
                "a policy replaced in place keeps its first version until deleted"
            }
            Fault::IgnoreRelabel => "pods keep the labels they had when first seen",
            Fault::IgnoreDeny => {
                "Cilium deny rules ignored: ingressDeny/egressDeny compile as nothing (their default deny stays)"
            }
        }
    }

    /// Same fault, whatever its parameters.
    fn same_kind(&self, other: &Fault) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Late(d) if *d != DEFAULT_LATE => write!(f, "late={}", format_duration(*d)),
            other => f.write_str(other.name()),
        }
    }
}

/// Why a fault name does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultParseError {
    #[error(
        "unknown sandbox fault {0:?}: expected one of {names}, a control-plane fault ({control}), with --sandbox-preset k8tre one of {presets}, or with a third-party --sandbox-cni {ENFORCER_STOPPED}",
        names = Fault::ALL_NAMES.join(", "),
        control = ControlPlaneFault::ALL.map(|f| f.name()).join(", "),
        presets = PresetFault::ALL_NAMES.join(", ")
    )]
    Unknown(String),
    /// A preset fault's name where only CNI faults are accepted (`Fault::from_str`).
    #[error(
        "{0:?} is a fault of the k8tre sandbox preset, not a CNI fault (parse it into a FaultSet)"
    )]
    PresetFault(String),
    #[error("fault {name:?} takes no parameter (got {param:?})")]
    UnexpectedParameter { name: String, param: String },
    #[error("invalid duration {0:?} for late: expected e.g. 7s, 500ms, 1.5s or 2m")]
    Duration(String),
}

impl FromStr for Fault {
    type Err = FaultParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (name, param) = match s.split_once('=') {
            Some((n, p)) => (n, Some(p)),
            None => (s, None),
        };
        let fault = match name {
            "none" => Fault::NoEnforcement,
            "ingress-only" => Fault::IngressOnly,
            "egress-only" => Fault::EgressOnly,
            "ignore-named-ports" => Fault::IgnoreNamedPorts,
            "ignore-endport" => Fault::IgnoreEndport,
            "ignore-except" => Fault::IgnoreExcept,
            "tcp-only" => Fault::TcpOnly,
            "ignore-namespace-selector" => Fault::IgnoreNamespaceSelector,
            "late" => {
                return match param {
                    None => Ok(Fault::Late(DEFAULT_LATE)),
                    Some(p) => parse_duration(p)
                        .map(Fault::Late)
                        .ok_or_else(|| FaultParseError::Duration(p.to_string())),
                }
            }
            "flaky" => Fault::Flaky,
            "ignore-updates" => Fault::IgnoreUpdates,
            "ignore-relabel" => Fault::IgnoreRelabel,
            "ignore-deny" => Fault::IgnoreDeny,
            _ if s.parse::<PresetFault>().is_ok() => {
                return Err(FaultParseError::PresetFault(s.to_string()))
            }
            _ => return Err(FaultParseError::Unknown(s.to_string())),
        };
        match param {
            None => Ok(fault),
            Some(p) => Err(FaultParseError::UnexpectedParameter {
                name: name.to_string(),
                param: p.to_string(),
            }),
        }
    }
}

/// `7s`, `500ms`, `1.5s`, `2m`; a bare number means seconds.
fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    // Only plain decimals: no signs, exponents, "inf" or "NaN" that f64 parsing would accept.
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    Duration::try_from_secs_f64(value * scale).ok()
}

fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// The negative control of a third-party enforcer: `enforcer-stopped` stops it as soon as it
/// has programmed its first ruleset, before any fixture or policy exists, so it never enforces
/// a policy. A run under it must fail the default-deny scenarios, which proves the verdicts came
/// from the enforcer, not from netassay.
pub const ENFORCER_STOPPED: &str = "enforcer-stopped";

/// The negative control of a third-party enforcer that is also the pods' network (Cilium: its
/// CNI plugin asks the agent for every pod, so a stopped agent would leave no fixture to
/// probe): `enforcement-off` runs it with policy enforcement turned off
/// (`--enable-policy=never`), a setting an operator can leave behind. Its datapath works and
/// sees every policy; it enforces none, so the default-deny scenarios must fail.
pub const ENFORCEMENT_OFF: &str = "enforcement-off";

/// The faults of one sandbox run; empty is the compliant profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultSet {
    faults: Vec<Fault>,
    /// [`ENFORCER_STOPPED`]: only with a third-party enforcer.
    enforcer_stopped: bool,
    /// [`ENFORCEMENT_OFF`]: only with Cilium.
    enforcement_off: bool,
    /// Sorted, distinct; they need the preset they belong to (see `SandboxOptions::validate`).
    preset_faults: Vec<PresetFault>,
    /// A hostile control plane rather than a buggy CNI (`api-errors`, `exec-resets`, ...).
    control_plane: ControlPlaneFaults,
}

impl FaultSet {
    pub fn new() -> Self {
        FaultSet::default()
    }

    /// Adds a fault; a second `late` replaces the first one's delay.
    pub fn insert(&mut self, fault: Fault) {
        match self.faults.iter_mut().find(|f| f.same_kind(&fault)) {
            Some(existing) => *existing = fault,
            None => {
                self.faults.push(fault);
                self.faults.sort();
            }
        }
    }

    /// Adds a preset fault.
    pub fn insert_preset(&mut self, fault: PresetFault) {
        if !self.preset_faults.contains(&fault) {
            self.preset_faults.push(fault);
            self.preset_faults.sort();
        }
    }

    /// Adds one fault by its `--sandbox-fault` name: a CNI fault (`tcp-only`, `late=2s`) or a
    /// preset fault (`k8tre-allow-all`).
    pub fn insert_name(&mut self, name: &str) -> Result<(), FaultParseError> {
        if name.trim() == ENFORCER_STOPPED {
            self.enforcer_stopped = true;
            return Ok(());
        }
        if name.trim() == ENFORCEMENT_OFF {
            self.enforcement_off = true;
            return Ok(());
        }
        if let Ok(f) = name.parse::<ControlPlaneFault>() {
            self.control_plane.insert(f);
            return Ok(());
        }
        match name.parse::<Fault>() {
            Ok(fault) => self.insert(fault),
            Err(FaultParseError::PresetFault(_)) => self.insert_preset(
                name.trim()
                    .parse()
                    .map_err(|e: PresetFaultParseError| FaultParseError::Unknown(e.0))?,
            ),
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// The preset faults, sorted.
    pub fn preset_faults(&self) -> &[PresetFault] {
        &self.preset_faults
    }

    /// The control-plane faults.
    pub fn control_plane(&self) -> &ControlPlaneFaults {
        &self.control_plane
    }

    /// Adds a control-plane fault.
    pub fn insert_control_plane(&mut self, fault: ControlPlaneFault) {
        self.control_plane.insert(fault);
    }

    /// Whether the set holds this fault; `Late` matches whatever its delay.
    pub fn contains(&self, fault: &Fault) -> bool {
        self.faults.iter().any(|f| f.same_kind(fault))
    }

    /// The delay of `late`, if set.
    pub fn late_delay(&self) -> Option<Duration> {
        self.faults.iter().find_map(|f| match f {
            Fault::Late(d) => Some(*d),
            _ => None,
        })
    }

    /// Whether the third-party enforcer is to be stopped once it has started
    /// ([`ENFORCER_STOPPED`]).
    pub fn enforcer_stopped(&self) -> bool {
        self.enforcer_stopped
    }

    /// Whether the third-party enforcer runs with enforcement turned off ([`ENFORCEMENT_OFF`]).
    pub fn enforcement_off(&self) -> bool {
        self.enforcement_off
    }

    /// No fault of any kind: the compliant profile.
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
            && self.preset_faults.is_empty()
            && self.control_plane.is_empty()
            && !self.enforcer_stopped
            && !self.enforcement_off
    }

    /// The CNI faults (not the preset ones).
    pub fn iter(&self) -> impl Iterator<Item = &Fault> {
        self.faults.iter()
    }
}

impl FromIterator<Fault> for FaultSet {
    fn from_iter<I: IntoIterator<Item = Fault>>(iter: I) -> Self {
        let mut set = FaultSet::new();
        for f in iter {
            set.insert(f);
        }
        set
    }
}

impl From<Fault> for FaultSet {
    fn from(f: Fault) -> Self {
        FaultSet::from_iter([f])
    }
}

impl From<PresetFault> for FaultSet {
    fn from(f: PresetFault) -> Self {
        let mut set = FaultSet::new();
        set.insert_preset(f);
        set
    }
}

/// A comma-separated list of fault names: `ingress-only,late=2s,k8tre-nodeport`. Empty is the
/// compliant profile.
impl FromStr for FaultSet {
    type Err = FaultParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = FaultSet::new();
        for name in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            set.insert_name(name)?;
        }
        Ok(set)
    }
}

impl fmt::Display for FaultSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("compliant");
        }
        let names = self
            .faults
            .iter()
            .map(Fault::to_string)
            .chain(self.preset_faults.iter().map(PresetFault::to_string))
            .chain(self.control_plane.iter().map(ControlPlaneFault::to_string))
            .chain(self.enforcer_stopped.then(|| ENFORCER_STOPPED.to_string()))
            .chain(self.enforcement_off.then(|| ENFORCEMENT_OFF.to_string()));
        for (i, name) in names.enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(&name)?;
        }
        Ok(())
    }
}

/// What the history faults remember between successive cluster states.
///
/// Pure: feed it every state the dataplane is given, in order, and compile what it returns.
#[derive(Debug, Clone, Default)]
pub struct FaultMemory {
    /// First version of each live policy, by (namespace, name).
    policies: BTreeMap<(String, String), NetworkPolicy>,
    /// Labels of each live pod when it was first seen, by (namespace, name).
    pod_labels: BTreeMap<(String, String), Labels>,
}

impl FaultMemory {
    pub fn new() -> Self {
        FaultMemory::default()
    }

    /// The state a CNI with these faults would enforce after seeing `state`.
    pub fn effective(&mut self, faults: &FaultSet, state: &ClusterState) -> ClusterState {
        let mut out = state.clone();

        // Forget what was deleted: a re-created object is new to the buggy CNI too.
        let live_policies: BTreeSet<(String, String)> =
            state.policies.iter().map(policy_key).collect();
        self.policies.retain(|k, _| live_policies.contains(k));
        let live_pods: BTreeSet<(String, String)> = state
            .pods
            .iter()
            .map(|p| (p.namespace.clone(), p.name.clone()))
            .collect();
        self.pod_labels.retain(|k, _| live_pods.contains(k));

        for (np, effective) in state.policies.iter().zip(out.policies.iter_mut()) {
            let key = policy_key(np);
            let first = self.policies.entry(key).or_insert_with(|| np.clone());
            // A different uid means delete + create between two states, not an update.
            if uid(first) != uid(np) {
                *first = np.clone();
            }
            if faults.contains(&Fault::IgnoreUpdates) {
                *effective = first.clone();
            }
        }

        for pod in &mut out.pods {
            let key = (pod.namespace.clone(), pod.name.clone());
            let first = self
                .pod_labels
                .entry(key)
                .or_insert_with(|| pod.labels.clone());
            if faults.contains(&Fault::IgnoreRelabel) {
                pod.labels = first.clone();
            }
        }
        out
    }
}

fn policy_key(np: &NetworkPolicy) -> (String, String) {
    (
        np.metadata.namespace.clone().unwrap_or_default(),
        np.metadata.name.clone().unwrap_or_default(),
    )
}

fn uid(np: &NetworkPolicy) -> Option<&str> {
    np.metadata.uid.as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;

    // enforcer-stopped is the negative control of a third-party enforcer: its own kind of
    // fault, named in the set, never one of netassay's CNI faults.
    #[test]
    fn enforcer_stopped_is_its_own_fault() {
        let set: FaultSet = "enforcer-stopped".parse().unwrap();
        assert!(set.enforcer_stopped());
        assert_eq!(set.iter().count(), 0);
        assert!(!set.is_empty());
        assert_eq!(set.to_string(), "enforcer-stopped");
        assert!(!FaultSet::new().enforcer_stopped());
        let err = "enforcer-stop".parse::<FaultSet>().unwrap_err().to_string();
        assert!(err.contains("enforcer-stopped"), "{err}");
    }
    use crate::state::PodState;
    use k8s_openapi::api::networking::v1::NetworkPolicySpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    #[test]
    fn every_name_parses_to_its_fault_and_back() {
        for (name, fault) in Fault::ALL_NAMES.iter().zip(Fault::ALL) {
            assert_eq!(name.parse::<Fault>(), Ok(fault), "{name}");
            assert_eq!(fault.name(), *name);
            assert_eq!(fault.to_string(), *name);
            assert!(!fault.describe().is_empty());
        }
    }

    #[test]
    fn late_takes_an_optional_duration() {
        assert_eq!("late".parse(), Ok(Fault::Late(Duration::from_secs(5))));
        assert_eq!("late=7s".parse(), Ok(Fault::Late(Duration::from_secs(7))));
        assert_eq!(
            "late=500ms".parse(),
            Ok(Fault::Late(Duration::from_millis(500)))
        );
        assert_eq!(
            "late=1.5s".parse(),
            Ok(Fault::Late(Duration::from_millis(1500)))
        );
        assert_eq!("late=2m".parse(), Ok(Fault::Late(Duration::from_secs(120))));
        assert_eq!("late=3".parse(), Ok(Fault::Late(Duration::from_secs(3))));
        assert_eq!(Fault::Late(Duration::from_secs(7)).to_string(), "late=7s");
        assert_eq!(
            Fault::Late(Duration::from_millis(250)).to_string(),
            "late=250ms"
        );
        for bad in [
            "late=",
            "late=-1s",
            "late=1e3s",
            "late=inf",
            "late=soon",
            "late=1h",
        ] {
            assert!(
                matches!(bad.parse::<Fault>(), Err(FaultParseError::Duration(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_names_and_stray_parameters_are_errors() {
        let err = "ignore-everything".parse::<Fault>().expect_err("unknown");
        assert!(err.to_string().contains("ignore-named-ports"), "{err}");
        assert_eq!(
            "flaky=3".parse::<Fault>(),
            Err(FaultParseError::UnexpectedParameter {
                name: "flaky".into(),
                param: "3".into()
            })
        );
    }

    #[test]
    fn fault_sets_parse_lists_and_answer_membership() {
        let set: FaultSet = "tcp-only, late=2s,flaky".parse().expect("parses");
        assert!(set.contains(&Fault::TcpOnly));
        assert!(set.contains(&Fault::Flaky));
        assert!(set.contains(&Fault::Late(Duration::ZERO)), "any delay");
        assert!(!set.contains(&Fault::IngressOnly));
        assert_eq!(set.late_delay(), Some(Duration::from_secs(2)));
        assert_eq!(set.to_string(), "tcp-only,late=2s,flaky");
        let empty: FaultSet = "".parse().expect("empty");
        assert!(empty.is_empty());
        assert_eq!(empty.late_delay(), None);
        assert_eq!(empty.to_string(), "compliant");
        let twice: FaultSet = "late=1s,late=3s".parse().expect("parses");
        assert_eq!(twice.late_delay(), Some(Duration::from_secs(3)));
        assert_eq!(twice.iter().count(), 1);
    }

    #[test]
    fn preset_faults_parse_into_sets_but_not_as_cni_faults() {
        let set: FaultSet = "k8tre-nodeport, tcp-only,k8tre-allow-all,k8tre-nodeport"
            .parse()
            .expect("parses");
        assert_eq!(
            set.preset_faults(),
            [PresetFault::AllowAll, PresetFault::NodePort]
        );
        assert!(set.contains(&Fault::TcpOnly));
        assert_eq!(set.iter().count(), 1, "iter yields CNI faults only");
        assert!(!set.is_empty());
        assert_eq!(set.to_string(), "tcp-only,k8tre-allow-all,k8tre-nodeport");
        assert_eq!(set.to_string().parse::<FaultSet>(), Ok(set));
        let only_preset = FaultSet::from(PresetFault::PortsOnlyEgress);
        assert_eq!(only_preset.to_string(), "k8tre-ports-only-egress");

        let err = "k8tre-allow-all"
            .parse::<Fault>()
            .expect_err("not a CNI fault");
        assert_eq!(err, FaultParseError::PresetFault("k8tre-allow-all".into()));
        assert!(err.to_string().contains("preset"), "{err}");
        let mut set = FaultSet::new();
        set.insert_name("k8tre-ports-only-egress").expect("by name");
        set.insert_name("late=1s").expect("by name");
        assert_eq!(set.preset_faults(), [PresetFault::PortsOnlyEgress]);
        assert_eq!(set.late_delay(), Some(Duration::from_secs(1)));
        let unknown = set.insert_name("k8tre-everything").expect_err("unknown");
        assert!(
            unknown.to_string().contains("k8tre-nodeport")
                && unknown.to_string().contains("tcp-only"),
            "the message lists both kinds: {unknown}"
        );
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn pod(name: &str, l: &[(&str, &str)]) -> PodState {
        PodState {
            namespace: "x".into(),
            name: name.into(),
            labels: labels(l),
            ip: None,
            ports: vec![],
        }
    }

    fn policy(name: &str, uid: &str, target: &str) -> NetworkPolicy {
        NetworkPolicy {
            metadata: ObjectMeta {
                namespace: Some("x".into()),
                name: Some(name.into()),
                uid: Some(uid.into()),
                ..Default::default()
            },
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector {
                    match_labels: Some([("pod".to_string(), target.to_string())].into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }

    fn state(pods: Vec<PodState>, policies: Vec<NetworkPolicy>) -> ClusterState {
        ClusterState {
            pods,
            policies,
            ..Default::default()
        }
    }

    #[test]
    fn without_history_faults_the_state_passes_through() {
        let mut mem = FaultMemory::new();
        let faults: FaultSet = "tcp-only".parse().expect("parses");
        let s1 = state(vec![pod("a", &[("pod", "a")])], vec![policy("p", "1", "a")]);
        let s2 = state(vec![pod("a", &[("pod", "b")])], vec![policy("p", "1", "b")]);
        assert_eq!(mem.effective(&faults, &s1), s1);
        assert_eq!(mem.effective(&faults, &s2), s2);
    }

    // ignore-updates: the CNI handles create and delete events but drops update events.
    #[test]
    fn ignore_updates_keeps_the_first_version_until_deleted() {
        let mut mem = FaultMemory::new();
        let faults = FaultSet::from(Fault::IgnoreUpdates);
        let v1 = policy("p", "1", "a");
        let v2 = policy("p", "1", "b");
        let other = policy("q", "2", "c");
        let seen = mem.effective(&faults, &state(vec![], vec![v1.clone()]));
        assert_eq!(seen.policies, vec![v1.clone()]);
        // Replaced in place: still v1; a new policy alongside is picked up.
        let seen = mem.effective(&faults, &state(vec![], vec![v2.clone(), other.clone()]));
        assert_eq!(seen.policies, vec![v1.clone(), other.clone()]);
        // Deleted, then created again: the new version counts.
        let seen = mem.effective(&faults, &state(vec![], vec![]));
        assert!(seen.policies.is_empty());
        let seen = mem.effective(&faults, &state(vec![], vec![v2.clone()]));
        assert_eq!(seen.policies, vec![v2.clone()]);
        // Deleted and re-created between two states (new uid): also a new object.
        let v3 = policy("p", "3", "c");
        let seen = mem.effective(&faults, &state(vec![], vec![v3.clone()]));
        assert_eq!(seen.policies, vec![v3]);
    }

    #[test]
    fn ignore_relabel_keeps_first_seen_pod_labels() {
        let mut mem = FaultMemory::new();
        let faults = FaultSet::from(Fault::IgnoreRelabel);
        mem.effective(&faults, &state(vec![pod("a", &[("pod", "a")])], vec![]));
        let seen = mem.effective(
            &faults,
            &state(
                vec![pod("a", &[("pod", "z")]), pod("b", &[("pod", "b")])],
                vec![],
            ),
        );
        assert_eq!(seen.pods[0].labels, labels(&[("pod", "a")]));
        assert_eq!(seen.pods[1].labels, labels(&[("pod", "b")]));
        // A pod deleted and created again is seen afresh.
        mem.effective(&faults, &state(vec![], vec![]));
        let seen = mem.effective(&faults, &state(vec![pod("a", &[("pod", "z")])], vec![]));
        assert_eq!(seen.pods[0].labels, labels(&[("pod", "z")]));
    }
}
