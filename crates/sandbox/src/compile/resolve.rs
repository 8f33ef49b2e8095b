//! From a cluster state to the rule model: Services to DNAT rules, NetworkPolicies to per-pod
//! chains, with the compiler's faults applied here.

use super::model::{
    Allow, Dnat, DnsRule, Endpoint, Exposure, Filter, Hairpin, Otherwise, Peer, PodChain, Ruleset,
    L4,
};
use crate::fault::{Fault, FaultSet};
use crate::state::ClusterState;
use crate::state::PodState;
use crate::state::ServiceState;
use crate::state::TargetPort;
use ipnet::IpNet;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use netassay_core::model::{Labels, Protocol, NAMESPACE_NAME_LABEL};
use netassay_core::policy::oracle::{policy_ref, policy_types, Direction};
use netassay_core::policy::selector::Selector;
use netassay_core::policy::validate::parse_cidr;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Resolves `state` into the rule model, applying the compiler's faults.
pub fn build(state: &ClusterState, faults: &FaultSet, table: &str) -> Ruleset {
    build_by(state, faults, table, |b| b.policies(&state.policies))
}

/// [`build`], with the pods' (egress, ingress) chains made by `chains` (the policy semantics:
/// Kubernetes' in [`build`], Cilium's in [`super::build_with`]).
pub(super) fn build_by<'a>(
    state: &'a ClusterState,
    faults: &'a FaultSet,
    table: &str,
    chains: impl FnOnce(&mut Builder<'a>) -> (Vec<PodChain>, Vec<PodChain>),
) -> Ruleset {
    let mut b = Builder::new(state, faults);
    let (dnat, hairpin, cluster_ips) = b.services(&state.services);
    let enforce = !faults.contains(&Fault::NoEnforcement);
    let flaky = faults.contains(&Fault::Flaky);
    let filter = if enforce || flaky {
        let (egress, ingress) = if enforce {
            chains(&mut b)
        } else {
            (Vec::new(), Vec::new())
        };
        Some(Filter {
            flaky,
            // Deviation `tcp-only`: only TCP ever meets a policy.
            unfiltered: if faults.contains(&Fault::TcpOnly) {
                vec![Protocol::Udp, Protocol::Sctp]
            } else {
                Vec::new()
            },
            egress,
            ingress,
        })
    } else {
        // Deviation `none`: no filter chain at all; Services keep working.
        None
    };
    Ruleset {
        table: table.to_string(),
        dnat,
        hairpin,
        cluster_ips,
        filter,
        notes: b.notes,
        dns_rules: b.dns_rules,
    }
}

/// A peer resolved against the pods, before it becomes addresses.
#[derive(Debug, Clone)]
enum PeerSet {
    Any,
    /// Indices into `Builder::pods`.
    Pods(BTreeSet<usize>),
    Block {
        cidr: IpNet,
        except: Vec<IpNet>,
    },
}

/// A port entry; entries that match nothing are dropped before this.
#[derive(Debug, Clone)]
enum PortEntry {
    Any,
    Protocol(Protocol),
    Range(Protocol, u16, u16),
    /// Resolved on the destination pod, per protocol.
    Named(Protocol, String),
}

/// One rule, resolved: every (peer, port) pair admits. Labels are the origin suffixes.
struct Rule {
    origin: String,
    peers: Vec<(String, PeerSet)>,
    ports: Vec<(String, PortEntry)>,
}

pub(super) struct Builder<'a> {
    pub(super) faults: &'a FaultSet,
    pub(super) node_address: Option<IpAddr>,
    namespaces: BTreeMap<&'a str, Labels>,
    /// Pods with an address, sorted by namespace/name, addresses distinct.
    pub(super) pods: Vec<&'a PodState>,
    pub(super) notes: Vec<String>,
    /// Pods whose DNS queries a DNS proxy answers by name (Cilium's DNS rules).
    pub(super) dns_rules: Vec<DnsRule>,
}

impl<'a> Builder<'a> {
    fn new(state: &'a ClusterState, faults: &'a FaultSet) -> Self {
        let mut notes = Vec::new();
        let mut namespaces: BTreeMap<&str, Labels> = BTreeMap::new();
        for ns in &state.namespaces {
            let mut labels = ns.labels.clone();
            // The API server always sets it; a hand-made state may not.
            labels
                .entry(NAMESPACE_NAME_LABEL.to_string())
                .or_insert_with(|| ns.name.clone());
            namespaces.insert(ns.name.as_str(), labels);
        }
        let mut pods: Vec<&PodState> = state.pods.iter().filter(|p| p.ip.is_some()).collect();
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        // Two pods with one address would make the vmaps invalid and sink the whole batch.
        let mut seen = BTreeSet::new();
        pods.retain(|p| {
            let fresh = p.ip.is_some_and(|ip| seen.insert(ip));
            if !fresh {
                notes.push(format!(
                    "pod {}/{} skipped: its address is already another pod's",
                    p.namespace, p.name
                ));
            }
            fresh
        });
        Builder {
            faults,
            node_address: state.node_address,
            namespaces,
            pods,
            notes,
            dns_rules: Vec::new(),
        }
    }

    fn ip(&self, i: usize) -> Option<IpAddr> {
        self.pods.get(i).and_then(|p| p.ip)
    }

    fn namespace_labels(&self, name: &str) -> Labels {
        match self.namespaces.get(name) {
            Some(l) => l.clone(),
            // Not in the snapshot yet: it still carries its name label.
            None => Labels::from([(NAMESPACE_NAME_LABEL.to_string(), name.to_string())]),
        }
    }

    // ----- Services -----

    fn services(&mut self, services: &[ServiceState]) -> (Vec<Dnat>, Vec<Hairpin>, Vec<IpAddr>) {
        let mut sorted: Vec<&ServiceState> = services.iter().collect();
        sorted.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let mut dnat = Vec::new();
        let mut hairpin = Vec::new();
        let mut cluster_ips = BTreeSet::new();
        // (address, protocol, port) already DNATed, and by which Service.
        let mut claimed: BTreeMap<(IpAddr, Protocol, u16), String> = BTreeMap::new();
        for svc in sorted {
            cluster_ips.insert(svc.cluster_ip);
            let id = format!("{}/{}", svc.namespace, svc.name);
            // Endpoint addresses per Service address, for the hairpin SNAT.
            let mut by_address: BTreeMap<IpAddr, BTreeSet<IpAddr>> = BTreeMap::new();
            for sp in &svc.ports {
                let endpoints: Vec<Endpoint> = self
                    .pods
                    .iter()
                    .filter(|p| is_endpoint_pod(svc, p))
                    .filter_map(|p| {
                        let ip = p.ip?;
                        let port = match &sp.target_port {
                            TargetPort::Number(n) => *n,
                            // A pod without that name for this protocol is not an endpoint.
                            TargetPort::Name(name) => p.named_ports(name, sp.protocol).next()?,
                        };
                        Some(Endpoint {
                            pod: format!("{}/{}", p.namespace, p.name),
                            ip,
                            port,
                        })
                    })
                    .collect();
                if endpoints.is_empty() {
                    continue;
                }
                let family = svc.cluster_ip.is_ipv4();
                let mut frontends = vec![(Exposure::ClusterIp, svc.cluster_ip, sp.port)];
                if let (Some(node), Some(node_port)) = (self.node_address, sp.node_port) {
                    frontends.push((Exposure::NodePort, node, node_port));
                }
                for &lb in &svc.load_balancer_ips {
                    frontends.push((Exposure::LoadBalancer, lb, sp.port));
                }
                for (exposure, address, port) in frontends {
                    if address.is_ipv4() != family {
                        continue;
                    }
                    let key = (address, sp.protocol, port);
                    if let Some(owner) = claimed.get(&key) {
                        if *owner != id {
                            self.notes.push(format!(
                                "service {id}: {address} {} {port} is already {owner}'s; not exposed there",
                                sp.protocol.lower()
                            ));
                        }
                        continue;
                    }
                    claimed.insert(key, id.clone());
                    by_address
                        .entry(address)
                        .or_default()
                        .extend(endpoints.iter().map(|e| e.ip));
                    dnat.push(Dnat {
                        service: id.clone(),
                        exposure,
                        address,
                        protocol: sp.protocol,
                        port,
                        endpoints: endpoints.clone(),
                    });
                }
            }
            for (address, endpoints) in by_address {
                hairpin.push(Hairpin {
                    service: id.clone(),
                    address,
                    endpoints: endpoints.into_iter().collect(),
                });
            }
        }
        (dnat, hairpin, cluster_ips.into_iter().collect())
    }

    // ----- Policies -----

    /// Egress and ingress chains of every isolated pod.
    fn policies(&mut self, policies: &[NetworkPolicy]) -> (Vec<PodChain>, Vec<PodChain>) {
        let mut sorted: Vec<&NetworkPolicy> = policies.iter().collect();
        sorted.sort_by_key(|np| policy_ref(np).to_string());
        // Presence of an entry means the pod is isolated in that direction.
        let mut egress: BTreeMap<usize, Vec<Allow>> = BTreeMap::new();
        let mut ingress: BTreeMap<usize, Vec<Allow>> = BTreeMap::new();
        for np in sorted {
            self.policy(np, &mut egress, &mut ingress);
        }
        let mut names = BTreeSet::new();
        let egress = self.chains("egress", egress, &mut names);
        let ingress = self.chains("ingress", ingress, &mut names);
        (egress, ingress)
    }

    fn policy(
        &mut self,
        np: &NetworkPolicy,
        egress: &mut BTreeMap<usize, Vec<Allow>>,
        ingress: &mut BTreeMap<usize, Vec<Allow>>,
    ) {
        let id = policy_ref(np).to_string();
        let Some(namespace) = np.metadata.namespace.as_deref().filter(|n| !n.is_empty()) else {
            self.notes
                .push(format!("policy {id} skipped: no namespace"));
            return;
        };
        let (mut isolates_in, mut isolates_out) = match policy_types(np) {
            Ok(t) => t,
            Err(value) => {
                self.notes.push(format!(
                    "policy {id} skipped: unsupported policyType {value:?}"
                ));
                return;
            }
        };
        // Deviation `ingress-only`: egress sections never isolate.
        if self.faults.contains(&Fault::IngressOnly) {
            isolates_out = false;
        }
        // Deviation `egress-only`: ingress sections never isolate.
        if self.faults.contains(&Fault::EgressOnly) {
            isolates_in = false;
        }
        let spec = np.spec.clone().unwrap_or_default();
        let Some(target) = self.selector(&id, spec.pod_selector.as_ref()) else {
            return;
        };
        let targets: Vec<usize> = (0..self.pods.len())
            .filter(|&i| {
                self.pods[i].namespace == namespace && target.matches(&self.pods[i].labels)
            })
            .collect();
        if targets.is_empty() {
            return;
        }
        // Each isolating direction: its rules as (peers, ports) sections, and its chains.
        type Section<'s> = (
            Option<&'s Vec<NetworkPolicyPeer>>,
            Option<&'s Vec<NetworkPolicyPort>>,
        );
        let ingress_sections: Vec<Section> = spec
            .ingress
            .iter()
            .flatten()
            .map(|r| (r.from.as_ref(), r.ports.as_ref()))
            .collect();
        let egress_sections: Vec<Section> = spec
            .egress
            .iter()
            .flatten()
            .map(|r| (r.to.as_ref(), r.ports.as_ref()))
            .collect();
        for (dir, isolates, sections, isolated) in [
            (Direction::Ingress, isolates_in, ingress_sections, ingress),
            (Direction::Egress, isolates_out, egress_sections, egress),
        ] {
            if !isolates {
                continue;
            }
            let rules: Vec<Rule> = sections
                .into_iter()
                .enumerate()
                .map(|(ri, (peers, ports))| self.rule(&id, namespace, dir, ri, peers, ports))
                .collect();
            for &t in &targets {
                let allows = isolated.entry(t).or_default();
                for rule in &rules {
                    self.allows(dir, rule, t, allows);
                }
            }
        }
    }

    fn selector(&mut self, id: &str, sel: Option<&LabelSelector>) -> Option<Selector> {
        match sel.map(Selector::compile).transpose() {
            Ok(s) => Some(s.unwrap_or_default()),
            Err(e) => {
                self.notes
                    .push(format!("policy {id}: {e}; that selector matches nothing"));
                None
            }
        }
    }

    fn rule(
        &mut self,
        id: &str,
        namespace: &str,
        dir: Direction,
        index: usize,
        peers: Option<&Vec<NetworkPolicyPeer>>,
        ports: Option<&Vec<NetworkPolicyPort>>,
    ) -> Rule {
        let peer_field = match dir {
            Direction::Ingress => "from",
            Direction::Egress => "to",
        };
        let origin = format!("{id} {}[{index}]", dir.as_str());
        let peers = match peers {
            Some(list) if !list.is_empty() => list
                .iter()
                .enumerate()
                .filter_map(|(i, p)| {
                    let label = format!(".{peer_field}[{i}]");
                    self.peer(&format!("{origin}{label}"), namespace, p)
                        .map(|set| (label, set))
                })
                .collect(),
            _ => vec![(String::new(), PeerSet::Any)],
        };
        let ports = match ports {
            Some(list) if !list.is_empty() => list
                .iter()
                .enumerate()
                .filter_map(|(i, p)| {
                    let label = format!(".ports[{i}]");
                    self.port(&format!("{origin}{label}"), p)
                        .map(|e| (label, e))
                })
                .collect(),
            _ => vec![(String::new(), PortEntry::Any)],
        };
        Rule {
            origin,
            peers,
            ports,
        }
    }

    /// `None`: the peer admits nothing.
    fn peer(&mut self, origin: &str, namespace: &str, peer: &NetworkPolicyPeer) -> Option<PeerSet> {
        if let Some(block) = &peer.ip_block {
            let cidr = self.cidr(origin, &block.cidr)?;
            // Deviation `ignore-except`: the except list is never read.
            let except = if self.faults.contains(&Fault::IgnoreExcept) {
                Vec::new()
            } else {
                let mut nets = Vec::new();
                for e in block.except.iter().flatten() {
                    // An unparsable except is skipped; the API server rejects it anyway.
                    if let Some(net) = self.cidr(origin, e) {
                        if same_family(&net, &cidr) {
                            nets.push(net);
                        }
                    }
                }
                IpNet::aggregate(&nets)
            };
            return Some(PeerSet::Block { cidr, except });
        }
        let (mut pod_sel, mut ns_sel) =
            (peer.pod_selector.as_ref(), peer.namespace_selector.as_ref());
        // Deviation `ignore-namespace-selector`: a namespaceSelector is read as "the policy's own
        // namespace" (the podSelector, or all pods when absent, applies there).
        let everything = LabelSelector::default();
        if ns_sel.is_some() && self.faults.contains(&Fault::IgnoreNamespaceSelector) {
            ns_sel = None;
            pod_sel = pod_sel.or(Some(&everything));
        }
        if pod_sel.is_none() && ns_sel.is_none() {
            // The API server rejects an empty peer; admit nothing rather than everything.
            return None;
        }
        let pod_sel = self.selector(origin, pod_sel)?;
        let ns_sel = match ns_sel {
            Some(s) => Some(self.selector(origin, Some(s))?),
            None => None,
        };
        let mut pods = BTreeSet::new();
        for (i, p) in self.pods.iter().enumerate() {
            let ns_ok = match &ns_sel {
                // podSelector alone: the policy's own namespace.
                None => p.namespace == namespace,
                Some(s) => s.matches(&self.namespace_labels(&p.namespace)),
            };
            if ns_ok && pod_sel.matches(&p.labels) {
                pods.insert(i);
            }
        }
        Some(PeerSet::Pods(pods))
    }

    fn cidr(&mut self, origin: &str, text: &str) -> Option<IpNet> {
        match parse_cidr(text) {
            Ok(net) => Some(net),
            Err(reason) => {
                self.notes.push(format!(
                    "{origin}: invalid CIDR {text:?} ({reason}); it matches nothing"
                ));
                None
            }
        }
    }

    /// `None`: the entry matches nothing.
    fn port(&mut self, origin: &str, p: &NetworkPolicyPort) -> Option<PortEntry> {
        let protocol = match p.protocol.as_deref() {
            None => Protocol::Tcp, // API-server defaulting
            Some(s) => match s.parse() {
                Ok(proto) => proto,
                Err(reason) => {
                    self.notes
                        .push(format!("{origin}: {reason}; it matches nothing"));
                    return None;
                }
            },
        };
        let faults = self.faults;
        let mut bad = |what: String| {
            self.notes
                .push(format!("{origin}: {what}; it matches nothing"));
            None
        };
        match &p.port {
            None => Some(PortEntry::Protocol(protocol)),
            Some(IntOrString::Int(v)) => {
                let Ok(first) = u16::try_from(*v) else {
                    return bad(format!("port {v} out of range"));
                };
                let last = match p.end_port {
                    // Deviation `ignore-endport`: a range admits its first port only.
                    Some(_) if faults.contains(&Fault::IgnoreEndport) => first,
                    Some(e) => match u16::try_from(e) {
                        Ok(e) if e >= first => e,
                        _ => return bad(format!("endPort {e} is not a port at or above {first}")),
                    },
                    None => first,
                };
                Some(PortEntry::Range(protocol, first, last))
            }
            // Deviation `ignore-named-ports`: the entry is dropped, and a rule left without
            // ports admits nothing (never "all ports"), so named-port allows visibly fail.
            Some(IntOrString::String(_)) if faults.contains(&Fault::IgnoreNamedPorts) => None,
            Some(IntOrString::String(name)) => Some(PortEntry::Named(protocol, name.clone())),
        }
    }

    /// Pods a resolved peer selects, for resolving named ports on each destination.
    fn members(&self, peer: &PeerSet) -> Vec<usize> {
        match peer {
            PeerSet::Any => (0..self.pods.len()).collect(),
            PeerSet::Pods(set) => set.iter().copied().collect(),
            PeerSet::Block { .. } => {
                let block = self.peer_addresses(peer);
                (0..self.pods.len())
                    .filter(|&i| self.ip(i).is_some_and(|ip| block.matches(ip)))
                    .collect()
            }
        }
    }

    fn peer_addresses(&self, peer: &PeerSet) -> Peer {
        match peer {
            PeerSet::Any => Peer::Any,
            PeerSet::Pods(set) => {
                let ips: BTreeSet<IpAddr> = set.iter().filter_map(|&i| self.ip(i)).collect();
                Peer::Pods(ips.into_iter().collect())
            }
            PeerSet::Block { cidr, except } => Peer::Block {
                cidr: *cidr,
                except: except.clone(),
            },
        }
    }

    /// Appends the allows of `rule` for the isolated pod `pod`.
    fn allows(&self, dir: Direction, rule: &Rule, pod: usize, out: &mut Vec<Allow>) {
        for (peer_label, peer) in &rule.peers {
            for (port_label, port) in &rule.ports {
                let origin = format!("{}{peer_label}{port_label}", rule.origin);
                let mut push = |peer: Peer, l4: L4| {
                    let empty = matches!(&peer, Peer::Pods(ips) if ips.is_empty());
                    if !empty && !out.iter().any(|a| a.peer == peer && a.l4 == l4) {
                        out.push(Allow {
                            peer,
                            l4,
                            origin: origin.clone(),
                        });
                    }
                };
                let l4 = match port {
                    PortEntry::Any => L4::Any,
                    PortEntry::Protocol(p) => L4::Protocol(*p),
                    PortEntry::Range(p, first, last) => L4::Ports {
                        protocol: *p,
                        first: *first,
                        last: *last,
                    },
                    PortEntry::Named(protocol, name) => {
                        // Named ports resolve on the destination: the pod itself for ingress,
                        // each selected peer pod for egress (non-pod addresses never match).
                        let dsts = match dir {
                            Direction::Ingress => vec![pod],
                            Direction::Egress => self.members(peer),
                        };
                        let mut by_port: BTreeMap<u16, BTreeSet<IpAddr>> = BTreeMap::new();
                        for d in dsts {
                            let (Some(dp), Some(ip)) = (self.pods.get(d), self.ip(d)) else {
                                continue;
                            };
                            for port in dp.named_ports(name, *protocol) {
                                by_port.entry(port).or_default().insert(ip);
                            }
                        }
                        for (n, ips) in by_port {
                            let l4 = L4::Ports {
                                protocol: *protocol,
                                first: n,
                                last: n,
                            };
                            match dir {
                                Direction::Ingress => push(self.peer_addresses(peer), l4),
                                Direction::Egress => {
                                    push(Peer::Pods(ips.into_iter().collect()), l4)
                                }
                            }
                        }
                        continue;
                    }
                };
                push(self.peer_addresses(peer), l4);
            }
        }
    }

    fn chains(
        &self,
        prefix: &str,
        isolated: BTreeMap<usize, Vec<Allow>>,
        names: &mut BTreeSet<String>,
    ) -> Vec<PodChain> {
        isolated
            .into_iter()
            .filter_map(|(i, allows)| {
                let p = self.pods.get(i)?;
                let ip = p.ip?;
                Some(PodChain {
                    pod: format!("{}/{}", p.namespace, p.name),
                    ip,
                    name: chain_name(prefix, &p.namespace, &p.name, names),
                    denies: Vec::new(),
                    allows,
                    otherwise: Otherwise::Drop,
                })
            })
            .collect()
    }
}

/// A Service selects pods of its namespace whose labels contain its selector; like Kubernetes,
/// an empty selector selects nothing (such Services have manually managed endpoints).
fn is_endpoint_pod(svc: &ServiceState, pod: &PodState) -> bool {
    pod.namespace == svc.namespace
        && !svc.selector.is_empty()
        && svc
            .selector
            .iter()
            .all(|(k, v)| pod.labels.get(k) == Some(v))
        && pod
            .ip
            .is_some_and(|ip| ip.is_ipv4() == svc.cluster_ip.is_ipv4())
}

fn same_family(a: &IpNet, b: &IpNet) -> bool {
    matches!(
        (a, b),
        (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_))
    )
}

/// `egress_<ns>_<pod>` restricted to nft identifier characters, unique within the table.
pub(super) fn chain_name(
    prefix: &str,
    namespace: &str,
    pod: &str,
    used: &mut BTreeSet<String>,
) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect()
    };
    // nft limits chain names to 255 bytes; Kubernetes names can be longer together.
    let mut base = format!("{prefix}_{}_{}", clean(namespace), clean(pod));
    base.truncate(200);
    let mut name = base.clone();
    let mut n = 2;
    while !used.insert(name.clone()) {
        name = format!("{base}_{n}");
        n += 1;
    }
    name
}
