//! The oracle: what Kubernetes NetworkPolicy v1 semantics allow between pods, with the reasons as data.
//!
//! Pure and synchronous. Selectors are evaluated once per pod when the oracle is built (into bit
//! sets); a cell then costs a few set lookups per policy that isolates its source or destination.

use super::selector::{Selector, SelectorError};
use crate::model::{PolicyRef, Protocol, Topology, Verdict};
use ipnet::IpNet;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;
use thiserror::Error;

/// Why a set of policies cannot be evaluated. The loader validates first, so these are bugs in
/// the caller's input rather than in the semantics.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OracleError {
    #[error("policy {policy}: {source}")]
    Selector {
        policy: PolicyRef,
        source: SelectorError,
    },
    #[error("policy {policy}: invalid CIDR {cidr:?}: {reason}")]
    Cidr {
        policy: PolicyRef,
        cidr: String,
        reason: String,
    },
    #[error("policy {policy}: {reason}")]
    Port { policy: PolicyRef, reason: String },
    #[error("policy {policy}: unsupported policyType {value:?}")]
    PolicyType { policy: PolicyRef, value: String },
    #[error("policy {policy} has no namespace")]
    NoNamespace { policy: PolicyRef },
}

/// Direction of a rule or an isolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// A fixed-size set of pod indices.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PodSet(Vec<u64>);

impl PodSet {
    fn empty(n: usize) -> Self {
        PodSet(vec![0; n.div_ceil(64)])
    }
    fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    #[inline]
    fn contains(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
}

#[derive(Debug, Clone)]
enum PortMatch {
    Any,
    Range(u16, u16),
    /// Index into the oracle's interned port names.
    Named(u32),
}

#[derive(Debug, Clone)]
struct CompiledPort {
    protocol: Protocol,
    port: PortMatch,
}

#[derive(Debug, Clone)]
struct CompiledPeer {
    /// Pods the peer admits.
    pods: PodSet,
    /// True for ipBlock peers: the verdict then depends on live pod addresses.
    ip_block: bool,
}

#[derive(Debug, Clone)]
struct CompiledRule {
    /// `None`: `from`/`to` absent or empty, every peer.
    peers: Option<Vec<CompiledPeer>>,
    /// `None`: `ports` absent or empty, every port and protocol.
    ports: Option<Vec<CompiledPort>>,
}

#[derive(Debug, Clone)]
struct CompiledPolicy {
    id: PolicyRef,
    /// `Some` when the policy isolates its pods for ingress (its rules, possibly none).
    ingress: Option<Vec<CompiledRule>>,
    egress: Option<Vec<CompiledRule>>,
    ingress_ip_block: bool,
    egress_ip_block: bool,
}

impl CompiledPolicy {
    fn rules(&self, direction: Direction) -> &[CompiledRule] {
        match direction {
            Direction::Egress => self.egress.as_deref().unwrap_or(&[]),
            Direction::Ingress => self.ingress.as_deref().unwrap_or(&[]),
        }
    }
}

/// The verdict of one cell plus whether it depends on live pod IPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellVerdict {
    pub verdict: Verdict,
    /// An ipBlock rule of an isolating policy was in play: the truth follows the pod IPs.
    pub ip_dependent: bool,
}

/// Where a rule sits: `spec.ingress[rule]`, and the peer and port entries that matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleMatch {
    pub policy: PolicyRef,
    pub direction: Direction,
    pub rule: usize,
    /// Index in `from`/`to`; `None` when the rule has no peers (all peers).
    pub peer: Option<usize>,
    /// Index in `ports`; `None` when the rule has no ports (all ports).
    pub port: Option<usize>,
}

/// Why one rule of an isolating policy did not admit the traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissReason {
    /// No peer of the rule selects the other side.
    Peer,
    /// A peer matched, but no port entry covers the port and protocol.
    Port,
    /// Neither peer nor port matched.
    PeerAndPort,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleMiss {
    pub policy: PolicyRef,
    pub direction: Direction,
    pub rule: usize,
    pub reason: MissReason,
}

/// One side of a verdict: the source's egress or the destination's ingress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SideReport {
    pub direction: Direction,
    /// Policies that select the pod for this direction. Empty: the pod is not isolated.
    pub isolated_by: Vec<PolicyRef>,
    /// Rules that admit the traffic.
    pub admitted_by: Vec<RuleMatch>,
    /// Rules of the isolating policies that do not admit it, and why.
    pub missed: Vec<RuleMiss>,
}

impl SideReport {
    pub fn allows(&self) -> bool {
        self.isolated_by.is_empty() || !self.admitted_by.is_empty()
    }
}

/// The full reasoning behind one cell's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub verdict: Verdict,
    pub ip_dependent: bool,
    pub egress: SideReport,
    pub ingress: SideReport,
}

impl Explanation {
    /// One line: why the verdict is what it is.
    pub fn summary(&self) -> String {
        let side = |s: &SideReport| {
            let dir = s.direction.as_str();
            if s.isolated_by.is_empty() {
                format!("{dir} not isolated")
            } else if let Some(m) = s.admitted_by.first() {
                format!("{dir} admitted by {} spec.{dir}[{}]", m.policy, m.rule)
            } else {
                let by: Vec<String> = s.isolated_by.iter().map(|p| p.to_string()).collect();
                format!("{dir} isolated by {} and no rule admits it", by.join(", "))
            }
        };
        format!("{}; {}", side(&self.egress), side(&self.ingress))
    }
}

/// NetworkPolicy semantics over one topology and one set of policies.
#[derive(Debug, Clone)]
pub struct Oracle<'t> {
    topology: &'t Topology,
    policies: Vec<CompiledPolicy>,
    /// For each pod, the policies that isolate it for ingress / egress.
    ingress_of: Vec<Vec<u32>>,
    egress_of: Vec<Vec<u32>>,
    /// For each pod, its named ports: (interned name, protocol, port).
    named_ports: Vec<Vec<(u32, Protocol, u16)>>,
}

/// Whether a policy isolates for (ingress, egress), per `policyTypes` defaulting:
/// absent or empty types mean Ingress, plus Egress when the egress section is present and non-empty.
pub fn policy_types(np: &NetworkPolicy) -> Result<(bool, bool), String> {
    let spec = np.spec.as_ref();
    let types = spec.and_then(|s| s.policy_types.as_ref());
    match types {
        Some(t) if !t.is_empty() => {
            let mut ingress = false;
            let mut egress = false;
            for v in t {
                match v.as_str() {
                    "Ingress" => ingress = true,
                    "Egress" => egress = true,
                    other => return Err(other.to_string()),
                }
            }
            Ok((ingress, egress))
        }
        _ => {
            let has_egress = spec
                .and_then(|s| s.egress.as_ref())
                .is_some_and(|e| !e.is_empty());
            Ok((true, has_egress))
        }
    }
}

/// The policy's logical identity.
pub fn policy_ref(np: &NetworkPolicy) -> PolicyRef {
    PolicyRef {
        namespace: np.metadata.namespace.clone().unwrap_or_default(),
        name: np.metadata.name.clone().unwrap_or_default(),
    }
}

struct Compiler<'a> {
    topology: &'a Topology,
    port_names: HashMap<String, u32>,
}

impl Compiler<'_> {
    fn intern(&mut self, name: &str) -> u32 {
        let next = self.port_names.len() as u32;
        *self.port_names.entry(name.to_string()).or_insert(next)
    }

    fn selector(
        &self,
        id: &PolicyRef,
        sel: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    ) -> Result<Option<Selector>, OracleError> {
        sel.map(|s| {
            Selector::compile(s).map_err(|source| OracleError::Selector {
                policy: id.clone(),
                source,
            })
        })
        .transpose()
    }

    fn peer(&self, id: &PolicyRef, peer: &NetworkPolicyPeer) -> Result<CompiledPeer, OracleError> {
        let n = self.topology.pods.len();
        let mut pods = PodSet::empty(n);
        if let Some(block) = &peer.ip_block {
            let cidr = parse_net(id, &block.cidr)?;
            let except = block
                .except
                .iter()
                .flatten()
                .map(|e| parse_net(id, e))
                .collect::<Result<Vec<_>, _>>()?;
            for (i, pod) in self.topology.pods.iter().enumerate() {
                if net_contains(&cidr, pod.ip) && !except.iter().any(|e| net_contains(e, pod.ip)) {
                    pods.insert(i);
                }
            }
            return Ok(CompiledPeer {
                pods,
                ip_block: true,
            });
        }
        let pod_sel = self.selector(id, peer.pod_selector.as_ref())?;
        let ns_sel = self.selector(id, peer.namespace_selector.as_ref())?;
        // A peer with neither selector admits nothing (the API server rejects it anyway).
        if pod_sel.is_none() && ns_sel.is_none() {
            return Ok(CompiledPeer {
                pods,
                ip_block: false,
            });
        }
        let ns_ok: Vec<bool> = self
            .topology
            .namespaces
            .iter()
            .map(|ns| match &ns_sel {
                // podSelector alone: pods of the policy's own namespace.
                None => ns.name == id.namespace,
                Some(s) => s.matches(&ns.labels),
            })
            .collect();
        for (i, pod) in self.topology.pods.iter().enumerate() {
            let in_ns = self
                .topology
                .namespace_index(&pod.id.namespace)
                .is_some_and(|k| ns_ok[k]);
            if in_ns && pod_sel.as_ref().is_none_or(|s| s.matches(&pod.labels)) {
                pods.insert(i);
            }
        }
        Ok(CompiledPeer {
            pods,
            ip_block: false,
        })
    }

    fn port(&mut self, id: &PolicyRef, p: &NetworkPolicyPort) -> Result<CompiledPort, OracleError> {
        let protocol: Protocol = match p.protocol.as_deref() {
            None => Protocol::Tcp, // API-server defaulting
            Some(s) => s.parse().map_err(|reason| OracleError::Port {
                policy: id.clone(),
                reason,
            })?,
        };
        let bad = |reason: String| OracleError::Port {
            policy: id.clone(),
            reason,
        };
        let port = match &p.port {
            None => PortMatch::Any,
            Some(IntOrString::Int(v)) => {
                let lo = u16::try_from(*v).map_err(|_| bad(format!("port {v} out of range")))?;
                let hi = match p.end_port {
                    Some(e) => {
                        u16::try_from(e).map_err(|_| bad(format!("endPort {e} out of range")))?
                    }
                    None => lo,
                };
                PortMatch::Range(lo, hi)
            }
            Some(IntOrString::String(name)) => PortMatch::Named(self.intern(name)),
        };
        Ok(CompiledPort { protocol, port })
    }

    fn rules<'r>(
        &mut self,
        id: &PolicyRef,
        rules: impl Iterator<
            Item = (
                Option<&'r Vec<NetworkPolicyPeer>>,
                Option<&'r Vec<NetworkPolicyPort>>,
            ),
        >,
    ) -> Result<(Vec<CompiledRule>, bool), OracleError> {
        let mut out = Vec::new();
        let mut ip_block = false;
        for (peers, ports) in rules {
            let peers = match peers {
                Some(list) if !list.is_empty() => Some(
                    list.iter()
                        .map(|p| self.peer(id, p))
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                _ => None,
            };
            ip_block |= peers.iter().flatten().any(|p| p.ip_block);
            let ports = match ports {
                Some(list) if !list.is_empty() => Some(
                    list.iter()
                        .map(|p| self.port(id, p))
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                _ => None,
            };
            out.push(CompiledRule { peers, ports });
        }
        Ok((out, ip_block))
    }
}

fn parse_net(id: &PolicyRef, s: &str) -> Result<IpNet, OracleError> {
    super::validate::parse_cidr(s).map_err(|reason| OracleError::Cidr {
        policy: id.clone(),
        cidr: s.to_string(),
        reason,
    })
}

fn net_contains(net: &IpNet, ip: IpAddr) -> bool {
    net.contains(&ip)
}

impl<'t> Oracle<'t> {
    /// Compiles policies against a topology. Policies live in the topology's (logical) namespaces.
    pub fn new(topology: &'t Topology, policies: &[NetworkPolicy]) -> Result<Self, OracleError> {
        let mut c = Compiler {
            topology,
            port_names: HashMap::new(),
        };
        let n = topology.pods.len();
        let mut compiled = Vec::with_capacity(policies.len());
        let mut ingress_of = vec![Vec::new(); n];
        let mut egress_of = vec![Vec::new(); n];
        for np in policies {
            let id = policy_ref(np);
            if id.namespace.is_empty() {
                return Err(OracleError::NoNamespace { policy: id });
            }
            let (isolates_in, isolates_out) =
                policy_types(np).map_err(|value| OracleError::PolicyType {
                    policy: id.clone(),
                    value,
                })?;
            let spec = np.spec.clone().unwrap_or_default();
            let target = c
                .selector(&id, spec.pod_selector.as_ref())?
                .unwrap_or_default();
            let (ingress, ingress_ip_block) = if isolates_in {
                let (r, b) = c.rules(
                    &id,
                    spec.ingress
                        .iter()
                        .flatten()
                        .map(|r| (r.from.as_ref(), r.ports.as_ref())),
                )?;
                (Some(r), b)
            } else {
                (None, false)
            };
            let (egress, egress_ip_block) = if isolates_out {
                let (r, b) = c.rules(
                    &id,
                    spec.egress
                        .iter()
                        .flatten()
                        .map(|r| (r.to.as_ref(), r.ports.as_ref())),
                )?;
                (Some(r), b)
            } else {
                (None, false)
            };
            let index = compiled.len() as u32;
            for (i, pod) in topology.pods.iter().enumerate() {
                if pod.id.namespace == id.namespace && target.matches(&pod.labels) {
                    if ingress.is_some() {
                        ingress_of[i].push(index);
                    }
                    if egress.is_some() {
                        egress_of[i].push(index);
                    }
                }
            }
            compiled.push(CompiledPolicy {
                id,
                ingress,
                egress,
                ingress_ip_block,
                egress_ip_block,
            });
        }
        let named_ports = topology
            .pods
            .iter()
            .map(|pod| {
                pod.serve
                    .iter()
                    .filter_map(|sp| {
                        let name = sp.name.as_ref()?;
                        let id = *c.port_names.get(name)?;
                        Some((id, sp.protocol, sp.port))
                    })
                    .collect()
            })
            .collect();
        Ok(Oracle {
            topology,
            policies: compiled,
            ingress_of,
            egress_of,
            named_ports,
        })
    }

    pub fn topology(&self) -> &Topology {
        self.topology
    }

    /// Policies that isolate `pod` for `direction`.
    #[inline]
    fn isolating(&self, direction: Direction, pod: usize) -> &[u32] {
        match direction {
            Direction::Egress => &self.egress_of[pod],
            Direction::Ingress => &self.ingress_of[pod],
        }
    }

    /// Does a port entry cover (port, protocol) on the destination pod? Named ports resolve there.
    #[inline]
    fn port_matches(&self, p: &CompiledPort, dst: usize, port: u16, protocol: Protocol) -> bool {
        if p.protocol != protocol {
            return false;
        }
        match p.port {
            PortMatch::Any => true,
            PortMatch::Range(lo, hi) => lo <= port && port <= hi,
            PortMatch::Named(name) => self.named_ports[dst]
                .iter()
                .any(|&(n, proto, num)| n == name && proto == protocol && num == port),
        }
    }

    #[inline]
    fn rule_admits(
        &self,
        rule: &CompiledRule,
        peer: usize,
        dst: usize,
        port: u16,
        protocol: Protocol,
    ) -> bool {
        let peer_ok = match &rule.peers {
            None => true,
            Some(peers) => peers.iter().any(|p| p.pods.contains(peer)),
        };
        peer_ok
            && match &rule.ports {
                None => true,
                Some(ports) => ports
                    .iter()
                    .any(|p| self.port_matches(p, dst, port, protocol)),
            }
    }

    /// Does `side`'s isolation (if any) admit the connection? `peer` is the other end.
    #[inline]
    fn side_allows(
        &self,
        direction: Direction,
        pod: usize,
        peer: usize,
        dst: usize,
        port: u16,
        protocol: Protocol,
    ) -> bool {
        let isolating = self.isolating(direction, pod);
        if isolating.is_empty() {
            return true;
        }
        isolating.iter().any(|&pi| {
            let pol = &self.policies[pi as usize];
            let rules = pol.rules(direction);
            rules
                .iter()
                .any(|r| self.rule_admits(r, peer, dst, port, protocol))
        })
    }

    fn side_ip_dependent(&self, direction: Direction, pod: usize) -> bool {
        let isolating = self.isolating(direction, pod);
        isolating.iter().any(|&pi| {
            let pol = &self.policies[pi as usize];
            match direction {
                Direction::Egress => pol.egress_ip_block,
                Direction::Ingress => pol.ingress_ip_block,
            }
        })
    }

    /// Traffic is allowed only if the source's egress and the destination's ingress both allow it.
    /// `from` and `to` are pod indices in the topology; `port` is the (post-DNAT) destination port.
    #[inline]
    pub fn allows(&self, from: usize, to: usize, port: u16, protocol: Protocol) -> bool {
        self.side_allows(Direction::Egress, from, to, to, port, protocol)
            && self.side_allows(Direction::Ingress, to, from, to, port, protocol)
    }

    /// The verdict of a cell and whether it depends on live addresses.
    pub fn cell(&self, from: usize, to: usize, port: u16, protocol: Protocol) -> CellVerdict {
        CellVerdict {
            verdict: Verdict::from_allowed(self.allows(from, to, port, protocol)),
            ip_dependent: self.side_ip_dependent(Direction::Egress, from)
                || self.side_ip_dependent(Direction::Ingress, to),
        }
    }

    fn report(
        &self,
        direction: Direction,
        pod: usize,
        peer: usize,
        dst: usize,
        port: u16,
        protocol: Protocol,
    ) -> SideReport {
        let isolating = self.isolating(direction, pod);
        let mut report = SideReport {
            direction,
            isolated_by: Vec::new(),
            admitted_by: Vec::new(),
            missed: Vec::new(),
        };
        for &pi in isolating {
            let pol = &self.policies[pi as usize];
            report.isolated_by.push(pol.id.clone());
            let rules = pol.rules(direction);
            for (ri, rule) in rules.iter().enumerate() {
                let peer_hit = match &rule.peers {
                    None => Some(None),
                    Some(peers) => peers.iter().position(|p| p.pods.contains(peer)).map(Some),
                };
                let port_hit = match &rule.ports {
                    None => Some(None),
                    Some(ports) => ports
                        .iter()
                        .position(|p| self.port_matches(p, dst, port, protocol))
                        .map(Some),
                };
                match (peer_hit, port_hit) {
                    (Some(peer), Some(port)) => report.admitted_by.push(RuleMatch {
                        policy: pol.id.clone(),
                        direction,
                        rule: ri,
                        peer,
                        port,
                    }),
                    (p, q) => report.missed.push(RuleMiss {
                        policy: pol.id.clone(),
                        direction,
                        rule: ri,
                        reason: match (p.is_some(), q.is_some()) {
                            (true, _) => MissReason::Port,
                            (false, true) => MissReason::Peer,
                            (false, false) => MissReason::PeerAndPort,
                        },
                    }),
                }
            }
        }
        report
    }

    /// The verdict with its reasons: which policies isolate each side and which rule admits it.
    pub fn explain(&self, from: usize, to: usize, port: u16, protocol: Protocol) -> Explanation {
        let egress = self.report(Direction::Egress, from, to, to, port, protocol);
        let ingress = self.report(Direction::Ingress, to, from, to, port, protocol);
        let cell = self.cell(from, to, port, protocol);
        debug_assert_eq!(cell.verdict.is_allow(), egress.allows() && ingress.allows());
        Explanation {
            verdict: cell.verdict,
            ip_dependent: cell.ip_dependent,
            egress,
            ingress,
        }
    }
}

#[cfg(test)]
#[path = "oracle_tests.rs"]
mod tests;
