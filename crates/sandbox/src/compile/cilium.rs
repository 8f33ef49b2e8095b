//! Cilium's semantics compiled: NetworkPolicies, CiliumNetworkPolicies and
//! CiliumClusterwideNetworkPolicies together, as the node's CNI enforces them when it plays
//! Cilium.
//!
//! Selection is not done here: the pods become a core [`Topology`] and the policies a core
//! [`CiliumOracle`], whose [`CiliumOracle::rules_of`] says which rule elements select each pod in
//! each direction, with their peers already resolved to pods and entities. This module only
//! turns those into addresses and ports, so the dataplane enforces exactly what the oracle judges:
//!
//! - a pod chain exists for every pod some element selects in that direction; its deny elements
//!   come first (`drop`), then its allow elements (`return`), then `drop` when some selecting
//!   element asks for default deny and `return` otherwise;
//! - ingress under default deny admits the node's own address (Cilium's allow-localhost);
//! - peers: pods by address; `host` is the node's address; `world` and every CIDR match only
//!   addresses outside the cluster, which here means outside the pod range, the Service range and
//!   the node's address ([`crate::addresses`]); `kube-apiserver` matches no address, since pods
//!   cannot reach the sandbox's API server (its `kubernetes` Service has no endpoints);
//! - `toFQDNs`: the addresses the sandbox's DNS answers for matching names (its external
//!   host's), admitted at once; Cilium admits them only after a lookup through its DNS proxy,
//!   and the oracle judges no cell that depends on that difference;
//! - ports that carry DNS rules admit the query; the names are the cluster DNS's business: it
//!   plays Cilium's DNS proxy and answers a pod only the names its DNS rules match
//!   ([`super::model::DnsRule`], from [`CiliumOracle::dns_names`]), REFUSED for others;
//! - not compiled, with a note (the oracle does not judge the cells they decide): `toServices`
//!   peers. They admit nothing, and never deny.
//!
//! A Cilium policy the agent would refuse (the validator's `Cilium agent:` errors) or that
//! netassay does not model is ignored as a whole, with a note: the agent ignores such a policy
//! entirely, default deny included.
//!
//! Faults: `ignore-deny` compiles deny elements as nothing (they still turn on default deny);
//! `ingress-only`, `egress-only`, `ignore-endport`, `ignore-named-ports` and `ignore-except`
//! apply as for NetworkPolicies; `ignore-namespace-selector` does not apply here.

use super::model::{Allow, DnsRule, Otherwise, Peer, PodChain, L4};
use super::resolve::{chain_name, Builder};
use crate::addresses::{POD_CIDR, SERVICE_CIDR};
use crate::fault::Fault;
use crate::state::{CiliumState, ClusterState};
use ipnet::{IpNet, Ipv4Net};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netassay_core::model::{Namespace, Pod, PodRef, Protocol, Topology};
use netassay_core::policy::cilium::fqdn::selector_matches;
use netassay_core::policy::cilium::{
    validate_cilium_policy, CiliumOracle, CiliumPolicy, NameFacts, PortMatch, RulePeers, RuleView,
};
use netassay_core::policy::oracle::policy_ref;
use netassay_core::policy::Direction;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// The pod chains (egress, ingress) of every pod some rule selects, under Cilium's semantics.
pub(super) fn chains(
    b: &mut Builder,
    state: &ClusterState,
    cilium: &CiliumState,
) -> (Vec<PodChain>, Vec<PodChain>) {
    // Sorted by namespace/name, like the builder's pods: chains come out in that order.
    let topology = topology(b, state);
    let cilium_policies = enforceable(b, &cilium.policies);
    let Some(oracle) = oracle(b, &topology, &state.policies, &cilium_policies) else {
        return (Vec::new(), Vec::new());
    };
    let mut c = Compiler {
        faults_ignore_deny: b.faults.contains(&Fault::IgnoreDeny),
        ignore_endport: b.faults.contains(&Fault::IgnoreEndport),
        ignore_named_ports: b.faults.contains(&Fault::IgnoreNamedPorts),
        ignore_except: b.faults.contains(&Fault::IgnoreExcept),
        node: b.node_address,
        cluster: cluster_nets(&topology, b.node_address),
        topology: &topology,
        notes: BTreeSet::new(),
    };
    // The cluster DNS plays Cilium's DNS proxy for pods whose DNS rules narrow the names
    // answered to them (egress is enforced, so not under `ingress-only`).
    if !b.faults.contains(&Fault::IngressOnly) {
        for (t, pod) in topology.pods.iter().enumerate() {
            if let Some(names) = oracle.dns_names(t) {
                b.dns_rules.push(DnsRule {
                    source: pod.ip,
                    names,
                });
            }
        }
    }
    let mut names = BTreeSet::new();
    let mut out = (Vec::new(), Vec::new());
    for (direction, skip) in [
        (Direction::Egress, b.faults.contains(&Fault::IngressOnly)),
        (Direction::Ingress, b.faults.contains(&Fault::EgressOnly)),
    ] {
        if skip {
            continue;
        }
        for (t, pod) in topology.pods.iter().enumerate() {
            let Some(selected) = oracle.rules_of(t, direction) else {
                continue;
            };
            let mut denies = Vec::new();
            let mut allows = Vec::new();
            for rule in &selected.rules {
                let list = if rule.deny { &mut denies } else { &mut allows };
                for a in c.rule(rule, direction, t) {
                    if !list
                        .iter()
                        .any(|x: &Allow| x.peer == a.peer && x.l4 == a.l4)
                    {
                        list.push(a);
                    }
                }
            }
            if selected.default_deny && direction == Direction::Ingress {
                if let Some(node) = c.node {
                    allows.push(Allow {
                        peer: Peer::Node(node),
                        l4: L4::Any,
                        origin: "allow-localhost: the node reaches its pods".into(),
                    });
                }
            }
            let prefix = match direction {
                Direction::Egress => "egress",
                Direction::Ingress => "ingress",
            };
            let chain = PodChain {
                pod: pod.id.to_string(),
                ip: pod.ip,
                name: chain_name(prefix, &pod.id.namespace, &pod.id.name, &mut names),
                denies,
                allows,
                otherwise: if selected.default_deny {
                    Otherwise::Drop
                } else {
                    Otherwise::Accept
                },
            };
            match direction {
                Direction::Egress => out.0.push(chain),
                Direction::Ingress => out.1.push(chain),
            }
        }
    }
    b.notes.extend(c.notes);
    out
}

/// The builder's pods (addressed, distinct addresses) and the state's namespaces as a core
/// topology; a pod whose namespace is not in the snapshot gets a namespace with only its name.
fn topology(b: &Builder, state: &ClusterState) -> Topology {
    let mut namespaces: BTreeMap<String, Namespace> = state
        .namespaces
        .iter()
        .map(|n| {
            (
                n.name.clone(),
                Namespace {
                    name: n.name.clone(),
                    labels: n.labels.clone(),
                },
            )
        })
        .collect();
    let pods: Vec<Pod> = b
        .pods
        .iter()
        .filter_map(|p| {
            namespaces
                .entry(p.namespace.clone())
                .or_insert_with(|| Namespace {
                    name: p.namespace.clone(),
                    labels: Default::default(),
                });
            Some(Pod {
                id: PodRef::new(&p.namespace, &p.name),
                labels: p.labels.clone(),
                ip: p.ip?,
                serve: p.ports.clone(),
                http: None,
            })
        })
        .collect();
    Topology::new(namespaces.into_values().collect(), pods)
}

/// The Cilium policies the agent would enforce: one the validator refuses (an error the agent
/// would refuse it for, or something netassay does not model) is ignored as a whole, with a note.
fn enforceable(b: &mut Builder, policies: &[CiliumPolicy]) -> Vec<CiliumPolicy> {
    let mut out = Vec::new();
    for p in policies {
        match validate_cilium_policy(p).first() {
            None => out.push(p.clone()),
            Some(e) => b.notes.push(format!(
                "{} ignored as a whole (as the Cilium agent ignores a policy it refuses): {e}",
                p.policy_ref()
            )),
        }
    }
    out
}

/// The oracle over every policy; a policy it cannot compile (input that skipped validation) is
/// left out with a note rather than sinking the others.
fn oracle<'t>(
    b: &mut Builder,
    topology: &'t Topology,
    nps: &[NetworkPolicy],
    cps: &[CiliumPolicy],
) -> Option<CiliumOracle<'t>> {
    if let Ok(o) = CiliumOracle::new(topology, nps, cps, NameFacts::Unknown) {
        return Some(o);
    }
    let mut keep_np = Vec::new();
    for np in nps {
        match CiliumOracle::new(topology, std::slice::from_ref(np), &[], NameFacts::Unknown) {
            Ok(_) => keep_np.push(np.clone()),
            Err(e) => b
                .notes
                .push(format!("NetworkPolicy {} skipped: {e}", policy_ref(np))),
        }
    }
    let mut keep_cp = Vec::new();
    for cp in cps {
        match CiliumOracle::new(topology, &[], std::slice::from_ref(cp), NameFacts::Unknown) {
            Ok(_) => keep_cp.push(cp.clone()),
            Err(e) => b.notes.push(format!("{} skipped: {e}", cp.policy_ref())),
        }
    }
    match CiliumOracle::new(topology, &keep_np, &keep_cp, NameFacts::Unknown) {
        Ok(o) => Some(o),
        Err(e) => {
            b.notes.push(format!(
                "no policy enforced: the policies do not compile: {e}"
            ));
            None
        }
    }
}

/// What is *not* the world: the pod and Service ranges, the node's address, and any pod address
/// outside the pod range.
fn cluster_nets(topology: &Topology, node: Option<IpAddr>) -> Vec<IpNet> {
    let v4 = |(a, len): (std::net::Ipv4Addr, u8)| Ipv4Net::new(a, len).map(IpNet::V4).ok();
    let mut nets: Vec<IpNet> = [v4(POD_CIDR), v4(SERVICE_CIDR)]
        .into_iter()
        .flatten()
        .collect();
    nets.extend(node.map(IpNet::from));
    for p in &topology.pods {
        if !nets.iter().any(|n| n.contains(&p.ip)) {
            nets.push(IpNet::from(p.ip));
        }
    }
    IpNet::aggregate(&nets)
}

struct Compiler<'t> {
    faults_ignore_deny: bool,
    ignore_endport: bool,
    ignore_named_ports: bool,
    ignore_except: bool,
    node: Option<IpAddr>,
    /// Aggregated; see [`cluster_nets`].
    cluster: Vec<IpNet>,
    topology: &'t Topology,
    /// Deduplicated: one note per rule and reason.
    notes: BTreeSet<String>,
}

/// One port entry before named ports are resolved.
enum Port {
    L4(L4),
    Named(Protocol, String),
}

impl Compiler<'_> {
    /// The rules of one element for pod `subject` in `direction`.
    fn rule(&mut self, rule: &RuleView, direction: Direction, subject: usize) -> Vec<Allow> {
        let origin = rule.origin.to_string();
        if rule.deny && self.faults_ignore_deny {
            // Deviation `ignore-deny`: deny elements compile as nothing.
            return Vec::new();
        }
        let peers = self.peers(rule, &origin);
        if peers.is_empty() {
            return Vec::new();
        }
        let ports = self.ports(rule);
        let mut out = Vec::new();
        for (peer, members) in &peers {
            for port in &ports {
                match port {
                    Port::L4(l4) => out.push(Allow {
                        peer: peer.clone(),
                        l4: *l4,
                        origin: origin.clone(),
                    }),
                    Port::Named(protocol, name) => out.extend(
                        self.named(direction, subject, peer, members, *protocol, name, &origin),
                    ),
                }
            }
        }
        out
    }

    /// The peers as addresses, each with the pods it stands for (to resolve named ports on).
    fn peers(&mut self, rule: &RuleView, origin: &str) -> Vec<(Peer, Vec<usize>)> {
        let all_pods: Vec<usize> = (0..self.topology.pods.len()).collect();
        let set = match &rule.peers {
            RulePeers::Nothing => return Vec::new(),
            RulePeers::Any => return vec![(Peer::Any, all_pods)],
            RulePeers::Peers(set) => set,
        };
        let mut out = Vec::new();
        if !set.pods.is_empty() {
            let mut ips: Vec<IpAddr> = set
                .pods
                .iter()
                .filter_map(|&i| self.topology.pods.get(i).map(|p| p.ip))
                .collect();
            ips.sort();
            ips.dedup();
            out.push((Peer::Pods(ips), set.pods.clone()));
        }
        if set.host {
            match self.node {
                Some(node) => out.push((Peer::Node(node), Vec::new())),
                None => {
                    self.notes.insert(format!(
                        "{origin}: the node has no address; host matches nothing"
                    ));
                }
            }
        }
        if set.kube_apiserver {
            self.notes.insert(format!(
                "{origin}: kube-apiserver matches no address (pods cannot reach the sandbox's API server)"
            ));
        }
        if set.world {
            for any in ["0.0.0.0/0", "::/0"] {
                if let Some(p) = any.parse().ok().and_then(|net| self.world_block(net, &[])) {
                    out.push((p, Vec::new()));
                }
            }
        }
        for (cidr, except) in &set.cidrs {
            // Deviation `ignore-except`: the except list is never read.
            let except: &[IpNet] = if self.ignore_except { &[] } else { except };
            if let Some(p) = self.world_block(*cidr, except) {
                out.push((p, Vec::new()));
            }
        }
        if !set.fqdns.is_empty() {
            // The sandbox's DNS answers are fixed: a name's addresses are its records, admitted
            // whether or not the pod looked the name up (Cilium waits for a lookup through its
            // DNS proxy; the oracle judges no cell that depends on that difference).
            let mut matched = false;
            for (name, ip) in crate::system::external_records() {
                if set.fqdns.iter().any(|s| selector_matches(s, name)) {
                    if let Some(p) = self.world_block(IpNet::from(ip), &[]) {
                        out.push((p, Vec::new()));
                        matched = true;
                    }
                }
            }
            if !matched {
                self.notes.insert(format!(
                    "{origin}: toFQDNs matches no external name the sandbox's DNS answers: it admits nothing"
                ));
            }
        }
        if set.services {
            self.notes.insert(format!(
                "{origin}: toServices not compiled: it admits nothing"
            ));
        }
        out
    }

    /// `cidr` minus `except`, restricted to the world (CIDR selectors never match in-cluster
    /// addresses); `None` when nothing of it is the world.
    fn world_block(&self, cidr: IpNet, except: &[IpNet]) -> Option<Peer> {
        if self.cluster.iter().any(|c| c.contains(&cidr)) {
            return None;
        }
        let same_family = |n: &IpNet| n.addr().is_ipv4() == cidr.addr().is_ipv4();
        let mut out: Vec<IpNet> = except.iter().copied().filter(same_family).collect();
        out.extend(
            self.cluster
                .iter()
                .copied()
                .filter(|c| same_family(c) && cidr.contains(c)),
        );
        Some(Peer::Block {
            cidr,
            except: IpNet::aggregate(&out),
        })
    }

    fn ports(&mut self, rule: &RuleView) -> Vec<Port> {
        let Some(rules) = rule.ports else {
            return vec![Port::L4(L4::Any)];
        };
        let mut out = Vec::new();
        for r in rules {
            for p in &r.ports {
                for (i, protocol) in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp]
                    .into_iter()
                    .enumerate()
                {
                    if !p.protocols[i] {
                        continue;
                    }
                    match &p.port {
                        PortMatch::Any => out.push(Port::L4(L4::Protocol(protocol))),
                        PortMatch::Range(first, last) => out.push(Port::L4(L4::Ports {
                            protocol,
                            first: *first,
                            // Deviation `ignore-endport`: a range admits its first port only.
                            last: if self.ignore_endport { *first } else { *last },
                        })),
                        // Deviation `ignore-named-ports`: a named port matches nothing.
                        PortMatch::Named(_) if self.ignore_named_ports => {}
                        PortMatch::Named(name) => out.push(Port::Named(protocol, name.clone())),
                    }
                }
            }
        }
        out
    }

    /// A named port resolved on the destination: the subject for ingress, each peer pod for
    /// egress (addresses that are not pods never match a name).
    #[allow(clippy::too_many_arguments)]
    fn named(
        &self,
        direction: Direction,
        subject: usize,
        peer: &Peer,
        members: &[usize],
        protocol: Protocol,
        name: &str,
        origin: &str,
    ) -> Vec<Allow> {
        let pods = &self.topology.pods;
        let rule = |peer: Peer, port: u16| Allow {
            peer,
            l4: L4::Ports {
                protocol,
                first: port,
                last: port,
            },
            origin: origin.to_string(),
        };
        match direction {
            Direction::Ingress => pods
                .get(subject)
                .and_then(|p| p.named_port(name, protocol))
                .map(|port| rule(peer.clone(), port))
                .into_iter()
                .collect(),
            Direction::Egress => {
                let mut by_port: BTreeMap<u16, BTreeSet<IpAddr>> = BTreeMap::new();
                for &m in members {
                    if let Some(p) = pods.get(m) {
                        if let Some(port) = p.named_port(name, protocol) {
                            by_port.entry(port).or_default().insert(p.ip);
                        }
                    }
                }
                by_port
                    .into_iter()
                    .map(|(port, ips)| rule(Peer::Pods(ips.into_iter().collect()), port))
                    .collect()
            }
        }
    }
}
