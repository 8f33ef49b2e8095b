//! NetworkPolicies + pods + services -> one nftables ruleset. Pure; the fault profiles are deliberate deviations here.
//!
//! Two stages: [`build`] resolves a [`ClusterState`] into a small rule model ([`Ruleset`]: every
//! selector, named port and Service endpoint already resolved to addresses and numbers), and
//! [`Ruleset::render`] prints that model as one `nft -f -` batch. Tests walk the model to check
//! it against the oracle; the text is a direct transcription of it.
//!
//! Shape of the batch (one table, replaced atomically):
//! - `nat_prerouting`: ClusterIP:port/proto -> endpoint pod:targetPort (`numgen random` over
//!   several endpoints, like kube-proxy's nftables mode); likewise the node's address:nodePort
//!   of NodePort and LoadBalancer Services, and a LoadBalancer's ingress address:port. Sources
//!   are never rewritten, so a connection from outside the cluster meets the endpoint's ingress
//!   policies with its own address (as with `externalTrafficPolicy: Local`);
//! - `nat_postrouting`: hairpin (a pod reaching itself through one of its Service's addresses)
//!   is SNATed to that address so the reply comes back through the node instead of over the
//!   pod's loopback;
//! - `services`: packets still addressed to a ClusterIP after DNAT (no endpoints, unknown port)
//!   are rejected, as kube-proxy does, instead of being routed out of the node;
//! - `forward`: conntrack shortcuts, then `ip saddr vmap` into the source pod's egress chain and
//!   `ip daddr vmap` into the destination pod's ingress chain. A pod chain `return`s on the first
//!   rule that admits the packet and `drop`s otherwise, so both sides must admit it.
//!
//! The filter runs after DNAT, so Service traffic is judged on the endpoint pod and target port,
//! as Kubernetes requires. Traffic from or to addresses that are not pods only meets ipBlocks.

use super::fault::{Fault, FaultSet};
use super::{ClusterState, PodState, ServiceState, TargetPort};
use crate::model::{Labels, Protocol, NAMESPACE_NAME_LABEL};
use crate::policy::oracle::{policy_ref, policy_types, Direction};
use crate::policy::selector::Selector;
use crate::policy::validate::parse_cidr;
use ipnet::IpNet;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// The nft script for `state` under `faults`: text for `nft -f -`, replacing `table inet <table>`
/// atomically. `table` must be an nft identifier (letters, digits, `_`).
pub fn compile(state: &ClusterState, faults: &FaultSet, table: &str) -> String {
    build(state, faults, table).render()
}

/// A resolved ruleset: what the batch does, before it is printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub table: String,
    /// One entry per Service port and address it is exposed at (ClusterIP, node port, load
    /// balancer) that has endpoints; an address:port two Services claim goes to the first.
    pub dnat: Vec<Dnat>,
    /// One entry per Service address with endpoints of its address family.
    pub hairpin: Vec<Hairpin>,
    /// Every ClusterIP: forwarded packets still addressed to one are rejected.
    pub cluster_ips: Vec<IpAddr>,
    /// `None`: no filtering at all (the `none` fault).
    pub filter: Option<Filter>,
    /// Inputs that could not be compiled (they match nothing), printed as `#` comments.
    pub notes: Vec<String>,
}

/// address:port/protocol to one of the endpoints, chosen at random per connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dnat {
    /// `namespace/name` of the Service.
    pub service: String,
    pub exposure: Exposure,
    /// The ClusterIP, the node's address, or the load balancer's.
    pub address: IpAddr,
    pub protocol: Protocol,
    /// The Service port (the node port for [`Exposure::NodePort`]).
    pub port: u16,
    /// Sorted by pod; never empty.
    pub endpoints: Vec<Endpoint>,
}

/// Where a Service port is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exposure {
    ClusterIp,
    /// The node's address, at the node port.
    NodePort,
    /// A `status.loadBalancer.ingress` address, at the Service port.
    LoadBalancer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `namespace/name` of the pod.
    pub pod: String,
    pub ip: IpAddr,
    /// The resolved targetPort.
    pub port: u16,
}

/// Connections from an endpoint to itself through a Service address are SNATed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hairpin {
    pub service: String,
    /// The ClusterIP, the node's address or the load balancer's.
    pub address: IpAddr,
    /// Sorted, distinct.
    pub endpoints: Vec<IpAddr>,
}

/// The `forward` chain and the per-pod chains it jumps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// `flaky` fault: 2% of new connections are dropped before any policy is consulted.
    pub flaky: bool,
    /// `tcp-only` fault: these protocols are accepted before any policy is consulted.
    pub unfiltered: Vec<Protocol>,
    /// Egress-isolated pods, sorted by pod; a source pod's new connections must match one allow.
    pub egress: Vec<PodChain>,
    /// Ingress-isolated pods, sorted by pod; judged on the (post-DNAT) destination.
    pub ingress: Vec<PodChain>,
}

/// The chain of one isolated pod in one direction: the union of its isolating policies' rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodChain {
    /// `namespace/name`.
    pub pod: String,
    pub ip: IpAddr,
    /// The nft chain name, e.g. `egress_x_a`.
    pub name: String,
    /// In policy order (policies sorted by namespace/name); exact duplicates removed.
    pub allows: Vec<Allow>,
}

/// One accepting rule: the peer address (destination for egress, source for ingress) and L4.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Allow {
    pub peer: Peer,
    pub l4: L4,
    /// Where it comes from: `ns/policy ingress[0].from[1].ports[0]`.
    pub origin: String,
}

/// The other end of a connection, as addresses.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Peer {
    /// Any address (`from`/`to` absent or empty).
    Any,
    /// Pod addresses, sorted and distinct, never empty.
    Pods(Vec<IpAddr>),
    /// An ipBlock: `cidr` minus `except` (aggregated, same family as `cidr`).
    Block { cidr: IpNet, except: Vec<IpNet> },
}

/// Which transport traffic an allow admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum L4 {
    /// Any protocol and port (`ports` absent or empty).
    Any,
    /// Every port of one protocol (a port entry without `port`).
    Protocol(Protocol),
    /// `first..=last` of one protocol.
    Ports {
        protocol: Protocol,
        first: u16,
        last: u16,
    },
}

impl Peer {
    /// Whether `ip` is this peer, as the rendered nft match decides it.
    pub fn matches(&self, ip: IpAddr) -> bool {
        match self {
            Peer::Any => true,
            Peer::Pods(ips) => ips.contains(&ip),
            Peer::Block { cidr, except } => {
                cidr.contains(&ip) && !except.iter().any(|e| e.contains(&ip))
            }
        }
    }
}

impl L4 {
    /// Whether a packet of `protocol` to `port` is admitted, as the rendered nft match decides it.
    pub fn matches(&self, protocol: Protocol, port: u16) -> bool {
        match *self {
            L4::Any => true,
            L4::Protocol(p) => p == protocol,
            L4::Ports {
                protocol: p,
                first,
                last,
            } => p == protocol && first <= port && port <= last,
        }
    }
}

/// Resolves `state` into the rule model, applying the compiler's faults.
pub fn build(state: &ClusterState, faults: &FaultSet, table: &str) -> Ruleset {
    let mut b = Builder::new(state, faults);
    let (dnat, hairpin, cluster_ips) = b.services(&state.services);
    let enforce = !faults.contains(&Fault::NoEnforcement);
    let flaky = faults.contains(&Fault::Flaky);
    let filter = if enforce || flaky {
        let (egress, ingress) = if enforce {
            b.policies(&state.policies)
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

struct Builder<'a> {
    faults: &'a FaultSet,
    node_address: Option<IpAddr>,
    namespaces: BTreeMap<&'a str, Labels>,
    /// Pods with an address, sorted by namespace/name, addresses distinct.
    pods: Vec<&'a PodState>,
    notes: Vec<String>,
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
                    allows,
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
fn chain_name(prefix: &str, namespace: &str, pod: &str, used: &mut BTreeSet<String>) -> String {
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

// ----- Rendering -----

fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "ip"
    } else {
        "ip6"
    }
}

fn net_family(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "ip",
        IpNet::V6(_) => "ip6",
    }
}

/// `items` split by address family, IPv4 first, without an empty group: one nft line per group.
fn by_family<T>(items: impl Iterator<Item = T>, is_v4: impl Fn(&T) -> bool) -> Vec<Vec<T>> {
    let (v4, v6): (Vec<T>, Vec<T>) = items.partition(is_v4);
    [v4, v6].into_iter().filter(|g| !g.is_empty()).collect()
}

/// One element bare, several as an anonymous set.
fn set<T: std::fmt::Display>(items: &[T]) -> String {
    match items {
        [one] => one.to_string(),
        many => {
            let inner: Vec<String> = many.iter().map(|i| i.to_string()).collect();
            format!("{{ {} }}", inner.join(", "))
        }
    }
}

/// An nft comment: printable ASCII without quotes or backslashes, within nft's 128-byte limit.
fn comment(text: &str) -> String {
    let mut clean: String = text
        .chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '?',
        })
        .collect();
    clean.truncate(120);
    format!("comment \"{clean}\"")
}

fn l4_match(l4: &L4) -> String {
    match *l4 {
        L4::Any => String::new(),
        L4::Protocol(p) => format!("meta l4proto {} ", p.lower()),
        L4::Ports {
            protocol,
            first,
            last,
        } if first == last => format!("{} dport {first} ", protocol.lower()),
        L4::Ports {
            protocol,
            first,
            last,
        } => format!("{} dport {first}-{last} ", protocol.lower()),
    }
}

/// The nft rules for one allow; `field` is `saddr` (ingress) or `daddr` (egress). Several lines
/// when a pod set spans both address families.
fn allow_rules(a: &Allow, field: &str) -> Vec<String> {
    let tail = format!("{}return {}", l4_match(&a.l4), comment(&a.origin));
    match &a.peer {
        Peer::Any => vec![tail],
        Peer::Pods(ips) => by_family(ips.iter().copied(), IpAddr::is_ipv4)
            .iter()
            .map(|ips| format!("{} {field} {} {tail}", family(&ips[0]), set(ips)))
            .collect(),
        Peer::Block { cidr, except } => {
            let fam = net_family(cidr);
            let exclude = if except.is_empty() {
                String::new()
            } else {
                format!("{fam} {field} != {} ", set(except))
            };
            vec![format!("{fam} {field} {cidr} {exclude}{tail}")]
        }
    }
}

fn dnat_rule(d: &Dnat) -> String {
    let fam = family(&d.address);
    let target = match d.endpoints.as_slice() {
        [one] => match one.ip {
            IpAddr::V4(ip) => format!("{ip}:{}", one.port),
            IpAddr::V6(ip) => format!("[{ip}]:{}", one.port),
        },
        many => {
            let entries: Vec<String> = many
                .iter()
                .enumerate()
                .map(|(i, e)| format!("{i} : {} . {}", e.ip, e.port))
                .collect();
            format!(
                "numgen random mod {} map {{ {} }}",
                many.len(),
                entries.join(", ")
            )
        }
    };
    let what = match d.exposure {
        Exposure::ClusterIp => d.service.clone(),
        Exposure::NodePort => format!("{} nodePort", d.service),
        Exposure::LoadBalancer => format!("{} loadBalancer", d.service),
    };
    format!(
        "{fam} daddr {} {} dport {} dnat {fam} to {target} {}",
        d.address,
        d.protocol.lower(),
        d.port,
        comment(&what)
    )
}

fn hairpin_rule(h: &Hairpin) -> String {
    let fam = family(&h.address);
    let pair = match h.endpoints.as_slice() {
        [one] => format!("{fam} saddr {one} {fam} daddr {one}"),
        many => {
            let pairs: Vec<String> = many.iter().map(|ip| format!("{ip} . {ip}")).collect();
            format!("{fam} saddr . {fam} daddr {{ {} }}", pairs.join(", "))
        }
    };
    format!(
        "ct original {fam} daddr {} {pair} snat {fam} to {} {}",
        h.address,
        h.address,
        comment(&format!("hairpin {}", h.service))
    )
}

/// `ip saddr vmap { a : jump c, ... }`, one line per address family present.
fn dispatch(chains: &[PodChain], field: &str) -> Vec<String> {
    by_family(chains.iter(), |c| c.ip.is_ipv4())
        .iter()
        .map(|cs| {
            let entries: Vec<String> = cs
                .iter()
                .map(|c| format!("{} : jump {}", c.ip, c.name))
                .collect();
            format!(
                "{} {field} vmap {{ {} }}",
                family(&cs[0].ip),
                entries.join(", ")
            )
        })
        .collect()
}

struct Out(String);

impl Out {
    fn line(&mut self, indent: usize, text: &str) {
        for _ in 0..indent {
            self.0.push('\t');
        }
        self.0.push_str(text);
        self.0.push('\n');
    }

    fn chain(&mut self, name: &str, head: Option<&str>, rules: &[String]) {
        self.line(1, &format!("chain {name} {{"));
        if let Some(h) = head {
            self.line(2, h);
        }
        for r in rules {
            self.line(2, r);
        }
        self.line(1, "}");
    }
}

impl Ruleset {
    /// The nft batch: create-if-missing, delete, recreate, so loading it replaces the table
    /// atomically whether or not it existed.
    pub fn render(&self) -> String {
        let t = &self.table;
        let mut o = Out(String::new());
        o.line(0, "# netassay sandbox ruleset (generated)");
        for n in &self.notes {
            let clean: String = n
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            o.line(0, &format!("# note: {clean}"));
        }
        o.line(0, &format!("table inet {t} {{}}"));
        o.line(0, &format!("delete table inet {t}"));
        o.line(0, &format!("table inet {t} {{"));

        let dnat: Vec<String> = self.dnat.iter().map(dnat_rule).collect();
        o.chain(
            "nat_prerouting",
            Some("type nat hook prerouting priority dstnat; policy accept;"),
            &dnat,
        );
        let hairpin: Vec<String> = self.hairpin.iter().map(hairpin_rule).collect();
        o.chain(
            "nat_postrouting",
            Some("type nat hook postrouting priority srcnat; policy accept;"),
            &hairpin,
        );
        // Before `forward`, so a dead ClusterIP port is rejected whatever the policies say.
        let reject: Vec<String> = by_family(self.cluster_ips.iter().copied(), IpAddr::is_ipv4)
            .iter()
            .map(|ips| {
                format!(
                    "{} daddr {} reject {}",
                    family(&ips[0]),
                    set(ips),
                    comment("ClusterIP port without endpoints")
                )
            })
            .collect();
        o.chain(
            "services",
            Some("type filter hook forward priority -10; policy accept;"),
            &reject,
        );

        if let Some(f) = &self.filter {
            let mut rules = vec![
                "ct state established,related accept".to_string(),
                "ct state invalid drop".to_string(),
            ];
            if f.flaky {
                rules.push(format!(
                    "ct state new numgen random mod 100 < 2 drop {}",
                    comment("fault: flaky")
                ));
            }
            if !f.unfiltered.is_empty() {
                let protos: Vec<&str> = f.unfiltered.iter().map(|p| p.lower()).collect();
                rules.push(format!(
                    "meta l4proto {} accept {}",
                    set(&protos),
                    comment("fault: tcp-only")
                ));
            }
            rules.extend(dispatch(&f.egress, "saddr"));
            rules.extend(dispatch(&f.ingress, "daddr"));
            o.chain(
                "forward",
                Some("type filter hook forward priority filter; policy accept;"),
                &rules,
            );
            for (chains, field) in [(&f.egress, "daddr"), (&f.ingress, "saddr")] {
                for c in chains {
                    let mut rules = vec![comment(&c.pod)];
                    rules.extend(c.allows.iter().flat_map(|a| allow_rules(a, field)));
                    rules.push("drop".to_string());
                    o.chain(&c.name, None, &rules);
                }
            }
        }
        o.line(0, "}");
        o.0
    }
}

#[cfg(test)]
mod tests {
    //! Each test states one NetworkPolicy (or fault) rule and shows it in the model, the text and,
    //! where it matters, the evaluator below, which walks the model the way nft walks the batch.

    use super::*;
    use crate::model::{
        standard_serve, Namespace, Pod, PodRef, ServedPort, Topology, NAMESPACE_NAME_LABEL,
    };
    use crate::policy::Oracle;
    use crate::sandbox::fault::FaultMemory;
    use crate::sandbox::{NamespaceState, ServicePortState};
    use proptest::prelude::*;
    use std::net::Ipv4Addr;
    use Protocol::{Sctp, Tcp, Udp};

    // ----- worlds -----

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn addr(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    const EXTERNAL: &str = "203.0.113.10";

    /// Upstream's model: namespaces x, y, z (labelled `ns=<name>`), pods a, b, c labelled
    /// `pod=<name>` at 10.244.<ns>.<10+pod>, serving TCP/UDP/SCTP on 80 and 81.
    fn standard() -> ClusterState {
        let mut state = ClusterState::default();
        for (i, ns) in ["x", "y", "z"].into_iter().enumerate() {
            state.namespaces.push(NamespaceState {
                name: ns.into(),
                labels: labels(&[("ns", ns), (NAMESPACE_NAME_LABEL, ns)]),
            });
            for (j, name) in ["a", "b", "c"].into_iter().enumerate() {
                state.pods.push(PodState {
                    namespace: ns.into(),
                    name: name.into(),
                    labels: labels(&[("pod", name)]),
                    ip: Some(IpAddr::V4(Ipv4Addr::new(10, 244, i as u8, 10 + j as u8))),
                    ports: standard_serve(),
                });
            }
        }
        state
    }

    fn ip_of(state: &ClusterState, pod: &str) -> IpAddr {
        let (ns, name) = pod.split_once('/').expect("ns/name");
        state
            .pods
            .iter()
            .find(|p| p.namespace == ns && p.name == name)
            .and_then(|p| p.ip)
            .unwrap_or_else(|| panic!("no pod {pod}"))
    }

    fn np(ns: &str, name: &str, spec: serde_json::Value) -> NetworkPolicy {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }))
        .expect("test policy")
    }

    fn with(policies: Vec<NetworkPolicy>) -> ClusterState {
        ClusterState {
            policies,
            ..standard()
        }
    }

    fn compliant() -> FaultSet {
        FaultSet::new()
    }

    fn faulty(name: &str) -> FaultSet {
        name.parse().expect("fault name")
    }

    // ----- the evaluator: nft's walk over the model -----

    /// Whether the filter lets a new connection through (flaky drops aside), post-DNAT.
    fn filter_allows(rs: &Ruleset, src: IpAddr, dst: IpAddr, proto: Protocol, port: u16) -> bool {
        if rs.cluster_ips.contains(&dst) {
            return false; // `services` chain: still addressed to a ClusterIP
        }
        let Some(f) = &rs.filter else {
            return true;
        };
        if f.unfiltered.contains(&proto) {
            return true;
        }
        let side = |chains: &[PodChain], me: IpAddr, other: IpAddr| {
            chains.iter().find(|c| c.ip == me).is_none_or(|c| {
                c.allows
                    .iter()
                    .any(|a| a.peer.matches(other) && a.l4.matches(proto, port))
            })
        };
        side(&f.egress, src, dst) && side(&f.ingress, dst, src)
    }

    /// Every possible fate of a new connection: (endpoint, target port, allowed), one per
    /// endpoint the DNAT may pick.
    fn connect(
        rs: &Ruleset,
        src: IpAddr,
        dst: IpAddr,
        proto: Protocol,
        port: u16,
    ) -> Vec<(IpAddr, u16, bool)> {
        let targets: Vec<(IpAddr, u16)> = match rs
            .dnat
            .iter()
            .find(|d| d.address == dst && d.protocol == proto && d.port == port)
        {
            Some(d) => d.endpoints.iter().map(|e| (e.ip, e.port)).collect(),
            None => vec![(dst, port)],
        };
        targets
            .into_iter()
            .map(|(d, p)| (d, p, filter_allows(rs, src, d, proto, p)))
            .collect()
    }

    /// A pod-to-pod (or address) verdict for the compliant compiler.
    fn allowed(state: &ClusterState, from: &str, to: &str, proto: Protocol, port: u16) -> bool {
        allowed_with(state, &compliant(), from, to, proto, port)
    }

    fn allowed_with(
        state: &ClusterState,
        faults: &FaultSet,
        from: &str,
        to: &str,
        proto: Protocol,
        port: u16,
    ) -> bool {
        let resolve = |s: &str| {
            if s.contains('/') {
                ip_of(state, s)
            } else {
                addr(s)
            }
        };
        let rs = build(state, faults, "t");
        let fates = connect(&rs, resolve(from), resolve(to), proto, port);
        assert_eq!(fates.len(), 1, "one destination");
        fates[0].2
    }

    fn chain<'r>(rs: &'r Ruleset, dir: &str, pod: &str) -> Option<&'r PodChain> {
        let f = rs.filter.as_ref()?;
        let chains = if dir == "egress" {
            &f.egress
        } else {
            &f.ingress
        };
        chains.iter().find(|c| c.pod == pod)
    }

    /// The rule lines of chain `name` in the rendered text.
    fn chain_lines(text: &str, name: &str) -> Vec<String> {
        let head = format!("\tchain {name} {{");
        let mut lines = text.lines().skip_while(|l| *l != head).skip(1);
        let mut out = Vec::new();
        for l in lines.by_ref() {
            if l == "\t}" {
                break;
            }
            out.push(l.trim().to_string());
        }
        out
    }

    fn has_line(lines: &[String], needle: &str) -> bool {
        lines.iter().any(|l| l.contains(needle))
    }

    // ----- batch shape -----

    #[test]
    fn the_batch_replaces_the_table_atomically() {
        let text = compile(&standard(), &compliant(), "nac_t");
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines[0], "table inet nac_t {}");
        assert_eq!(lines[1], "delete table inet nac_t");
        assert_eq!(lines[2], "table inet nac_t {");
        assert_eq!(
            text.matches("table inet nac_t").count(),
            3,
            "one table only"
        );
        let fwd = chain_lines(&text, "forward");
        assert_eq!(
            fwd[0],
            "type filter hook forward priority filter; policy accept;"
        );
        assert_eq!(fwd[1], "ct state established,related accept");
        assert_eq!(fwd[2], "ct state invalid drop");
        assert_eq!(fwd.len(), 3, "no policies, no dispatch: {fwd:?}");
        assert!(chain_lines(&text, "nat_prerouting")[0].contains("type nat hook prerouting"));
    }

    #[test]
    fn output_is_deterministic_whatever_the_input_order() {
        let policies = vec![
            np(
                "x",
                "p1",
                serde_json::json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}),
            ),
            np(
                "y",
                "p0",
                serde_json::json!({"podSelector": {}, "policyTypes": ["Egress"]}),
            ),
        ];
        let a = with(policies.clone());
        let mut b = with(policies.into_iter().rev().collect());
        b.pods.reverse();
        b.namespaces.reverse();
        assert_eq!(
            compile(&a, &compliant(), "t"),
            compile(&b, &compliant(), "t")
        );
    }

    #[test]
    fn a_pod_without_an_address_is_skipped() {
        let mut state = with(vec![np(
            "x",
            "deny",
            serde_json::json!({"podSelector": {}}),
        )]);
        state.pods[0].ip = None; // x/a
        let rs = build(&state, &compliant(), "t");
        assert!(chain(&rs, "ingress", "x/a").is_none());
        assert!(chain(&rs, "ingress", "x/b").is_some());
    }

    // ----- isolation -----

    // Rule: a pod selected by an Ingress policy with no rules accepts nothing; egress is untouched.
    #[test]
    fn deny_all_ingress_isolates_selected_pods_only() {
        let state = with(vec![np(
            "x",
            "deny",
            serde_json::json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        )]);
        let rs = build(&state, &compliant(), "t");
        let f = rs.filter.as_ref().expect("filter");
        assert!(f.egress.is_empty());
        let pods: Vec<&str> = f.ingress.iter().map(|c| c.pod.as_str()).collect();
        assert_eq!(pods, ["x/a", "x/b", "x/c"]);
        assert!(f.ingress.iter().all(|c| c.allows.is_empty()));
        let text = rs.render();
        assert!(has_line(
            &chain_lines(&text, "forward"),
            "ip daddr vmap { 10.244.0.10 : jump ingress_x_a, 10.244.0.11 : jump ingress_x_b, 10.244.0.12 : jump ingress_x_c }"
        ));
        assert_eq!(
            chain_lines(&text, "ingress_x_a"),
            ["comment \"x/a\"", "drop"]
        );
        assert!(!allowed(&state, "y/a", "x/a", Tcp, 80));
        assert!(!allowed(&state, "x/b", "x/a", Udp, 81));
        assert!(allowed(&state, "x/a", "y/a", Tcp, 80));
        assert!(allowed(&state, "y/a", "y/b", Tcp, 80));
    }

    // Rule: a pod selected by an Egress policy with no rules opens no new connections.
    #[test]
    fn deny_all_egress_isolates_sources() {
        let state = with(vec![np(
            "x",
            "deny",
            serde_json::json!({"podSelector": {}, "policyTypes": ["Egress"]}),
        )]);
        let text = compile(&state, &compliant(), "t");
        assert!(has_line(
            &chain_lines(&text, "forward"),
            "ip saddr vmap { 10.244.0.10 : jump egress_x_a,"
        ));
        assert_eq!(
            chain_lines(&text, "egress_x_b"),
            ["comment \"x/b\"", "drop"]
        );
        assert!(!text.contains("ingress_x_a"));
        assert!(!allowed(&state, "x/a", "y/a", Tcp, 80));
        assert!(!allowed(&state, "x/a", EXTERNAL, Tcp, 443));
        assert!(allowed(&state, "y/a", "x/a", Tcp, 80));
    }

    // Rule: both sides must allow; with both directions denied nothing in or out passes.
    #[test]
    fn deny_both_directions() {
        let state = with(vec![np(
            "x",
            "deny",
            serde_json::json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Ingress", "Egress"]}),
        )]);
        let rs = build(&state, &compliant(), "t");
        assert!(chain(&rs, "egress", "x/a").is_some() && chain(&rs, "ingress", "x/a").is_some());
        assert!(chain(&rs, "ingress", "x/b").is_none());
        assert!(!allowed(&state, "x/a", "x/b", Tcp, 80));
        assert!(!allowed(&state, "x/b", "x/a", Tcp, 80));
        assert!(allowed(&state, "x/b", "x/c", Tcp, 80));
    }

    // Rule: `ingress: [{}]` is one rule without from and ports: every peer, every port, any address.
    #[test]
    fn one_empty_ingress_rule_admits_everything() {
        let state = with(vec![np(
            "x",
            "all",
            serde_json::json!({"podSelector": {}, "ingress": [{}]}),
        )]);
        let rs = build(&state, &compliant(), "t");
        let c = chain(&rs, "ingress", "x/a").expect("isolated");
        assert_eq!(c.allows.len(), 1);
        assert_eq!((&c.allows[0].peer, c.allows[0].l4), (&Peer::Any, L4::Any));
        assert_eq!(
            chain_lines(&rs.render(), "ingress_x_a")[1],
            "return comment \"x/all ingress[0]\""
        );
        assert!(allowed(&state, "z/c", "x/a", Sctp, 81));
        assert!(allowed(&state, EXTERNAL, "x/a", Tcp, 8080));
    }

    // Rule: rules of all policies selecting a pod are unioned.
    #[test]
    fn rules_of_several_policies_are_unioned() {
        let state = with(vec![
            np(
                "x",
                "from-b",
                serde_json::json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
            ),
            np(
                "x",
                "from-c",
                serde_json::json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "c"}}}]}]}),
            ),
        ]);
        let lines = chain_lines(&compile(&state, &compliant(), "t"), "ingress_x_a");
        assert!(has_line(
            &lines,
            "ip saddr 10.244.0.11 return comment \"x/from-b ingress[0].from[0]\""
        ));
        assert!(has_line(
            &lines,
            "ip saddr 10.244.0.12 return comment \"x/from-c ingress[0].from[0]\""
        ));
        assert!(allowed(&state, "x/b", "x/a", Tcp, 80));
        assert!(allowed(&state, "x/c", "x/a", Tcp, 80));
        assert!(!allowed(&state, "x/b", "x/c", Tcp, 80));
    }

    // ----- peers -----

    // Rule: a podSelector peer alone selects pods of the policy's own namespace.
    #[test]
    fn pod_selector_peers_stay_in_the_policy_namespace() {
        let state = with(vec![np(
            "x",
            "p",
            serde_json::json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
        )]);
        let rs = build(&state, &compliant(), "t");
        let c = chain(&rs, "ingress", "x/a").expect("isolated");
        assert_eq!(c.allows[0].peer, Peer::Pods(vec![addr("10.244.0.11")]));
        assert!(allowed(&state, "x/b", "x/a", Tcp, 80));
        assert!(!allowed(&state, "y/b", "x/a", Tcp, 80));
    }

    // Rule: a namespaceSelector peer alone selects every pod of the matching namespaces.
    #[test]
    fn namespace_selector_peers_select_whole_namespaces() {
        let state = with(vec![np(
            "x",
            "p",
            serde_json::json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]}),
        )]);
        let lines = chain_lines(&compile(&state, &compliant(), "t"), "ingress_x_a");
        assert!(has_line(
            &lines,
            "ip saddr { 10.244.1.10, 10.244.1.11, 10.244.1.12 } return"
        ));
        assert!(allowed(&state, "y/c", "x/a", Udp, 81));
        assert!(!allowed(&state, "x/b", "x/a", Udp, 81));
        assert!(!allowed(&state, "z/b", "x/a", Udp, 81));
    }

    // Rule: namespaceSelector and podSelector in one peer are ANDed; in two peers, ORed.
    #[test]
    fn pod_and_namespace_selectors_in_one_peer_are_anded() {
        let and = with(vec![np(
            "x",
            "p",
            serde_json::json!({"podSelector": {}, "ingress": [{"from": [
                {"namespaceSelector": {"matchLabels": {"ns": "y"}}, "podSelector": {"matchLabels": {"pod": "b"}}}
            ]}]}),
        )]);
        assert!(allowed(&and, "y/b", "x/a", Tcp, 80));
        assert!(!allowed(&and, "y/a", "x/a", Tcp, 80));
        assert!(!allowed(&and, "x/b", "x/a", Tcp, 80));
        let or = with(vec![np(
            "x",
            "p",
            serde_json::json!({"podSelector": {}, "ingress": [{"from": [
                {"namespaceSelector": {"matchLabels": {"ns": "y"}}}, {"podSelector": {"matchLabels": {"pod": "b"}}}
            ]}]}),
        )]);
        assert!(allowed(&or, "y/a", "x/a", Tcp, 80));
        assert!(allowed(&or, "x/b", "x/a", Tcp, 80));
        assert!(!allowed(&or, "z/b", "x/a", Tcp, 80));
    }

    // Rule: ipBlock admits cidr minus except; pod selectors never match a non-pod address.
    #[test]
    fn ip_block_with_except_for_external_egress() {
        let state = with(vec![np(
            "x",
            "out",
            serde_json::json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [
                {"to": [{"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.10/32"]}}]},
                {"to": [{"namespaceSelector": {}}]}
            ]}),
        )]);
        let lines = chain_lines(&compile(&state, &compliant(), "t"), "egress_x_a");
        assert!(has_line(
            &lines,
            "ip daddr 203.0.113.0/24 ip daddr != 203.0.113.10/32 return"
        ));
        assert!(allowed(&state, "x/a", "203.0.113.11", Tcp, 443));
        assert!(!allowed(&state, "x/a", EXTERNAL, Tcp, 443));
        assert!(!allowed(&state, "x/a", "198.51.100.1", Tcp, 443));
        assert!(
            allowed(&state, "x/a", "z/c", Tcp, 80),
            "all pods via namespaceSelector {{}}"
        );
    }

    // Rule: traffic from outside the cluster meets ingress ipBlocks only.
    #[test]
    fn outside_sources_meet_ingress_ip_blocks_only() {
        let state = with(vec![np(
            "x",
            "in",
            serde_json::json!({"podSelector": {}, "ingress": [
                {"from": [{"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.128/25", "203.0.113.0/28"]}}]},
                {"from": [{"namespaceSelector": {}, "podSelector": {}}]}
            ]}),
        )]);
        let lines = chain_lines(&compile(&state, &compliant(), "t"), "ingress_x_b");
        assert!(has_line(
            &lines,
            "ip saddr 203.0.113.0/24 ip saddr != { 203.0.113.0/28, 203.0.113.128/25 } return"
        ));
        assert!(allowed(&state, "203.0.113.20", "x/b", Tcp, 80));
        assert!(
            !allowed(&state, EXTERNAL, "x/b", Tcp, 80),
            ".10 is in the /28 except"
        );
        assert!(!allowed(&state, "203.0.113.200", "x/b", Tcp, 80));
        assert!(allowed(&state, "y/a", "x/b", Tcp, 80));
    }

    // Rule: ipBlock is matched on addresses, so it also selects pods inside the range.
    #[test]
    fn ip_blocks_also_cover_pod_addresses() {
        let state = with(vec![np(
            "x",
            "in",
            serde_json::json!({"podSelector": {}, "ingress": [
                {"from": [{"ipBlock": {"cidr": "10.244.1.0/24", "except": ["10.244.1.11/32"]}}]}
            ]}),
        )]);
        assert!(allowed(&state, "y/a", "x/a", Tcp, 80));
        assert!(!allowed(&state, "y/b", "x/a", Tcp, 80));
        assert!(!allowed(&state, "z/a", "x/a", Tcp, 80));
    }

    // ----- ports -----

    // Rule: protocol defaults to TCP; a port entry without `port` admits every port of its protocol.
    #[test]
    fn protocol_defaults_and_protocol_only_entries() {
        let state = with(vec![np(
            "x",
            "p",
            serde_json::json!({"podSelector": {}, "ingress": [
                {"ports": [{"port": 80}, {"protocol": "UDP"}]}
            ]}),
        )]);
        let lines = chain_lines(&compile(&state, &compliant(), "t"), "ingress_x_a");
        assert!(has_line(
            &lines,
            "tcp dport 80 return comment \"x/p ingress[0].ports[0]\""
        ));
        assert!(has_line(
            &lines,
            "meta l4proto udp return comment \"x/p ingress[0].ports[1]\""
        ));
        assert!(allowed(&state, "y/a", "x/a", Tcp, 80));
        assert!(!allowed(&state, "y/a", "x/a", Tcp, 81));
        assert!(!allowed(&state, "y/a", "x/a", Sctp, 80));
        assert!(allowed(&state, "y/a", "x/a", Udp, 81));
    }

    // Rule: UDP and SCTP entries match only their own protocol.
    #[test]
    fn udp_and_sctp_ports() {
        let state = with(vec![np(
            "x",
            "p",
            serde_json::json!({"podSelector": {}, "ingress": [
                {"ports": [{"port": 81, "protocol": "UDP"}, {"port": 80, "protocol": "SCTP"}]}
            ]}),
        )]);
        let lines = chain_lines(&compile(&state, &compliant(), "t"), "ingress_x_c");
        assert!(has_line(&lines, "udp dport 81 return"));
        assert!(has_line(&lines, "sctp dport 80 return"));
        assert!(allowed(&state, "y/a", "x/c", Udp, 81));
        assert!(allowed(&state, "y/a", "x/c", Sctp, 80));
        assert!(!allowed(&state, "y/a", "x/c", Tcp, 81));
        assert!(!allowed(&state, "y/a", "x/c", Udp, 80));
    }

    // Rule: endPort makes `port` the first of an inclusive range.
    #[test]
    fn end_port_ranges() {
        let state = with(vec![np(
            "x",
            "p",
            serde_json::json!({"podSelector": {}, "ingress": [
                {"ports": [{"port": 80, "endPort": 81}]}
            ]}),
        )]);
        let lines = chain_lines(&compile(&state, &compliant(), "t"), "ingress_x_a");
        assert!(has_line(&lines, "tcp dport 80-81 return"));
        assert!(allowed(&state, "y/a", "x/a", Tcp, 81));
        assert!(!allowed(&state, "y/a", "x/a", Tcp, 82));
    }

    /// x/b serves `web` on TCP 80, x/c on TCP 81, x/a not at all; everyone serves `dns` on UDP 81.
    fn named_port_world(policies: Vec<NetworkPolicy>) -> ClusterState {
        let mut state = with(policies);
        for p in &mut state.pods {
            let web = match (p.namespace.as_str(), p.name.as_str()) {
                ("x", "b") => Some(80),
                ("x", "c") => Some(81),
                _ => None,
            };
            p.ports = vec![
                ServedPort {
                    port: 80,
                    protocol: Tcp,
                    name: (web == Some(80)).then(|| "web".into()),
                },
                ServedPort {
                    port: 81,
                    protocol: Tcp,
                    name: (web == Some(81)).then(|| "web".into()),
                },
                ServedPort {
                    port: 81,
                    protocol: Udp,
                    name: Some("dns".into()),
                },
            ];
        }
        state
    }

    // Rule: a named port resolves on the destination pod, per protocol; egress expands it per peer.
    #[test]
    fn named_ports_resolve_on_each_destination() {
        let state = named_port_world(vec![np(
            "x",
            "out",
            serde_json::json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"], "egress": [
                {"to": [{"podSelector": {}}], "ports": [{"port": "web"}, {"port": "dns", "protocol": "UDP"}, {"port": "dns"}]}
            ]}),
        )]);
        let lines = chain_lines(&compile(&state, &compliant(), "t"), "egress_x_a");
        assert!(has_line(&lines, "ip daddr 10.244.0.11 tcp dport 80 return"));
        assert!(has_line(&lines, "ip daddr 10.244.0.12 tcp dport 81 return"));
        assert!(has_line(
            &lines,
            "ip daddr { 10.244.0.10, 10.244.0.11, 10.244.0.12 } udp dport 81 return"
        ));
        assert!(
            !has_line(
                &lines,
                "tcp dport 81 return comment \"x/out egress[0].to[0].ports[2]"
            ),
            "dns is UDP only"
        );
        assert!(allowed(&state, "x/a", "x/b", Tcp, 80));
        assert!(!allowed(&state, "x/a", "x/b", Tcp, 81));
        assert!(allowed(&state, "x/a", "x/c", Tcp, 81));
        assert!(!allowed(&state, "x/a", "x/c", Tcp, 80));
        assert!(allowed(&state, "x/a", "x/c", Udp, 81));
    }

    #[test]
    fn named_ports_on_ingress_resolve_on_the_isolated_pod() {
        let state = named_port_world(vec![np(
            "x",
            "in",
            serde_json::json!({"podSelector": {}, "ingress": [
                {"ports": [{"port": "web"}]}
            ]}),
        )]);
        let rs = build(&state, &compliant(), "t");
        assert!(
            chain(&rs, "ingress", "x/a")
                .expect("isolated")
                .allows
                .is_empty(),
            "x/a has no `web`"
        );
        assert!(allowed(&state, "y/a", "x/b", Tcp, 80));
        assert!(!allowed(&state, "y/a", "x/b", Tcp, 81));
        assert!(allowed(&state, "y/a", "x/c", Tcp, 81));
        assert!(!allowed(&state, "y/a", "x/a", Tcp, 80));
    }

    // ----- Services -----

    fn with_services(mut state: ClusterState) -> ClusterState {
        state.services = vec![
            ServiceState {
                namespace: "x".into(),
                name: "web".into(),
                cluster_ip: addr("10.96.0.10"),
                load_balancer_ips: vec![],
                selector: labels(&[("pod", "a")]),
                ports: vec![
                    ServicePortState {
                        port: 80,
                        protocol: Tcp,
                        target_port: TargetPort::Number(81),
                        node_port: None,
                    },
                    ServicePortState {
                        port: 53,
                        protocol: Udp,
                        target_port: TargetPort::Name("dns".into()),
                        node_port: None,
                    },
                ],
            },
            ServiceState {
                namespace: "x".into(),
                name: "all".into(),
                cluster_ip: addr("10.96.0.11"),
                load_balancer_ips: vec![],
                selector: labels(&[("app", "x")]),
                ports: vec![ServicePortState {
                    port: 80,
                    protocol: Tcp,
                    target_port: TargetPort::Name("web".into()),
                    node_port: None,
                }],
            },
            ServiceState {
                namespace: "y".into(),
                name: "empty".into(),
                cluster_ip: addr("10.96.0.12"),
                load_balancer_ips: vec![],
                selector: labels(&[("pod", "nobody")]),
                ports: vec![ServicePortState {
                    port: 80,
                    protocol: Tcp,
                    target_port: TargetPort::Number(80),
                    node_port: None,
                }],
            },
        ];
        for p in &mut state.pods {
            p.labels.insert("app".into(), p.namespace.clone());
        }
        state
    }

    // Rule: ClusterIP traffic is DNATed to the endpoints; a named targetPort resolves per endpoint
    // pod, and pods without the name are not endpoints.
    #[test]
    fn services_dnat_to_endpoints_with_named_target_ports() {
        let state = with_services(named_port_world(vec![]));
        let rs = build(&state, &compliant(), "t");
        let text = rs.render();
        let nat = chain_lines(&text, "nat_prerouting");
        assert!(has_line(
            &nat,
            "ip daddr 10.96.0.10 tcp dport 80 dnat ip to 10.244.0.10:81 comment \"x/web\""
        ));
        assert!(has_line(
            &nat,
            "ip daddr 10.96.0.10 udp dport 53 dnat ip to 10.244.0.10:81"
        ));
        assert!(has_line(
            &nat,
            "ip daddr 10.96.0.11 tcp dport 80 dnat ip to numgen random mod 2 map { 0 : 10.244.0.11 . 80, 1 : 10.244.0.12 . 81 } comment \"x/all\""
        ));
        assert!(
            !text.contains("10.96.0.12 tcp dport"),
            "no endpoints, no DNAT"
        );
        assert!(has_line(
            &chain_lines(&text, "services"),
            "ip daddr { 10.96.0.10, 10.96.0.11, 10.96.0.12 } reject"
        ));
        let hp = chain_lines(&text, "nat_postrouting");
        assert!(has_line(&hp, "ct original ip daddr 10.96.0.10 ip saddr 10.244.0.10 ip daddr 10.244.0.10 snat ip to 10.96.0.10"));
        assert!(has_line(&hp, "ip saddr . ip daddr { 10.244.0.11 . 10.244.0.11, 10.244.0.12 . 10.244.0.12 } snat ip to 10.96.0.11"));
        // A ClusterIP port without endpoints, or not defined, never reaches a pod.
        let y = ip_of(&state, "y/a");
        assert_eq!(
            connect(&rs, y, addr("10.96.0.12"), Tcp, 80),
            vec![(addr("10.96.0.12"), 80, false)]
        );
        assert_eq!(
            connect(&rs, y, addr("10.96.0.10"), Tcp, 81),
            vec![(addr("10.96.0.10"), 81, false)]
        );
    }

    // Rule: policies judge Service traffic after DNAT: on the endpoint pod and the target port.
    #[test]
    fn service_traffic_is_judged_on_the_endpoint_and_target_port() {
        let state = with_services(with(vec![np(
            "x",
            "only-81",
            serde_json::json!({"podSelector": {}, "ingress": [
                {"ports": [{"port": 81}]}
            ]}),
        )]));
        let rs = build(&state, &compliant(), "t");
        let vip = addr("10.96.0.10");
        assert_eq!(
            connect(&rs, ip_of(&state, "y/a"), vip, Tcp, 80),
            vec![(ip_of(&state, "x/a"), 81, true)]
        );
        // Direct to port 80 of the pod: denied.
        assert!(!allowed(&state, "y/a", "x/a", Tcp, 80));
    }

    // Hairpin (a pod to itself through its ClusterIP) reaches the node and is judged like any cell.
    #[test]
    fn hairpin_through_a_cluster_ip_is_an_ordinary_cell() {
        let deny = with_services(with(vec![np(
            "x",
            "deny",
            serde_json::json!({"podSelector": {}}),
        )]));
        let rs = build(&deny, &compliant(), "t");
        let a = ip_of(&deny, "x/a");
        assert_eq!(
            connect(&rs, a, addr("10.96.0.10"), Tcp, 80),
            vec![(a, 81, false)]
        );
        let allow_self = with_services(with(vec![np(
            "x",
            "self",
            serde_json::json!({"podSelector": {}, "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"pod": "a"}}}]}
            ]}),
        )]));
        let rs = build(&allow_self, &compliant(), "t");
        assert_eq!(
            connect(&rs, a, addr("10.96.0.10"), Tcp, 80),
            vec![(a, 81, true)]
        );
    }

    // ----- exposure beyond the cluster: node ports, load balancers, external addresses -----

    const NODE: &str = "203.0.113.1";
    const OUTSIDE: &str = "203.0.113.100";
    const MIRROR: &str = "203.0.113.20";

    /// x/web as NodePort (TCP 80 -> 81 at node port 30080, UDP 53 -> `dns` at 30053) and y/gw as
    /// a LoadBalancer at the node's address (TCP 80 -> 80 on y/b), the node at 203.0.113.1.
    fn exposed(policies: Vec<NetworkPolicy>) -> ClusterState {
        let mut state = with_services(named_port_world(policies));
        state.node_address = Some(addr(NODE));
        state.services[0].ports[0].node_port = Some(30080);
        state.services[0].ports[1].node_port = Some(30053);
        state.services.push(ServiceState {
            namespace: "y".into(),
            name: "gw".into(),
            cluster_ip: addr("10.96.0.13"),
            load_balancer_ips: vec![addr(NODE)],
            selector: labels(&[("pod", "b")]),
            ports: vec![ServicePortState {
                port: 80,
                protocol: Tcp,
                target_port: TargetPort::Number(80),
                node_port: None,
            }],
        });
        state
    }

    /// Where a connection to `dst` ends up and whether the filter lets it through, one fate.
    fn reach(
        state: &ClusterState,
        from: &str,
        dst: &str,
        proto: Protocol,
        port: u16,
    ) -> (IpAddr, u16, bool) {
        let rs = build(state, &compliant(), "t");
        let fates = connect(&rs, addr(from), addr(dst), proto, port);
        assert_eq!(fates.len(), 1, "one endpoint: {fates:?}");
        fates[0]
    }

    // Rule (kube-proxy): a NodePort Service port is reached at <node address>:<nodePort> as well
    // as at its ClusterIP, and DNATed to the same endpoints and target ports.
    #[test]
    fn node_ports_are_dnatted_at_the_node_address() {
        let state = exposed(vec![]);
        let rs = build(&state, &compliant(), "t");
        let nat = chain_lines(&rs.render(), "nat_prerouting");
        assert!(has_line(
            &nat,
            "ip daddr 203.0.113.1 tcp dport 30080 dnat ip to 10.244.0.10:81 comment \"x/web nodePort\""
        ));
        assert!(has_line(
            &nat,
            "ip daddr 203.0.113.1 udp dport 30053 dnat ip to 10.244.0.10:81 comment \"x/web nodePort\""
        ));
        assert!(has_line(
            &nat,
            "ip daddr 10.96.0.10 tcp dport 80 dnat ip to 10.244.0.10:81 comment \"x/web\""
        ));
        let exposures: Vec<(Exposure, String, u16)> = rs
            .dnat
            .iter()
            .filter(|d| d.service == "x/web")
            .map(|d| (d.exposure, d.address.to_string(), d.port))
            .collect();
        assert_eq!(
            exposures,
            [
                (Exposure::ClusterIp, "10.96.0.10".to_string(), 80),
                (Exposure::NodePort, NODE.to_string(), 30080),
                (Exposure::ClusterIp, "10.96.0.10".to_string(), 53),
                (Exposure::NodePort, NODE.to_string(), 30053),
            ]
        );
        assert_eq!(
            reach(&state, OUTSIDE, NODE, Tcp, 30080),
            (ip_of(&state, "x/a"), 81, true)
        );
        // Without a node address (a state made by hand) there is nowhere to serve node ports.
        let mut nowhere = state.clone();
        nowhere.node_address = None;
        let rs = build(&nowhere, &compliant(), "t");
        assert!(rs.dnat.iter().all(|d| d.exposure != Exposure::NodePort));
    }

    // Rule (Service type LoadBalancer): each port is reached at every status.loadBalancer
    // ingress address; the sandbox's load balancer address is the node's.
    #[test]
    fn load_balancer_ports_are_dnatted_at_their_ingress_address() {
        let state = exposed(vec![]);
        let nat = chain_lines(&compile(&state, &compliant(), "t"), "nat_prerouting");
        assert!(has_line(
            &nat,
            "ip daddr 203.0.113.1 tcp dport 80 dnat ip to 10.244.1.11:80 comment \"y/gw loadBalancer\""
        ));
        assert_eq!(
            reach(&state, OUTSIDE, NODE, Tcp, 80),
            (ip_of(&state, "y/b"), 80, true)
        );
    }

    // Rule: the endpoint's ingress policies judge node-port traffic with the client's own
    // address (no SNAT): an ipBlock for the outside vantage admits it, an except or a deny-all
    // does not.
    #[test]
    fn node_port_traffic_meets_the_endpoint_ingress_policies_with_the_client_address() {
        let from_outside = exposed(vec![np(
            "x",
            "outside",
            serde_json::json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [
                {"from": [{"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.10/32"]}}]}
            ]}),
        )]);
        assert!(reach(&from_outside, OUTSIDE, NODE, Tcp, 30080).2);
        assert!(
            !reach(&from_outside, EXTERNAL, NODE, Tcp, 30080).2,
            "the except"
        );
        let deny = exposed(vec![np(
            "x",
            "deny",
            serde_json::json!({"podSelector": {}}),
        )]);
        assert_eq!(
            reach(&deny, OUTSIDE, NODE, Tcp, 30080),
            (ip_of(&deny, "x/a"), 81, false)
        );
        assert!(
            reach(&deny, OUTSIDE, NODE, Tcp, 80).2,
            "y/b behind the load balancer is not isolated"
        );
    }

    // A pod reaching itself through its node port is SNATed to the node address, as hairpin
    // traffic through a ClusterIP is to the ClusterIP.
    #[test]
    fn hairpin_through_the_node_address_is_snatted_to_it() {
        let state = exposed(vec![]);
        let rs = build(&state, &compliant(), "t");
        let hp = chain_lines(&rs.render(), "nat_postrouting");
        assert!(has_line(
            &hp,
            "ct original ip daddr 203.0.113.1 ip saddr 10.244.0.10 ip daddr 10.244.0.10 snat ip to 203.0.113.1 comment \"hairpin x/web\""
        ));
        assert!(has_line(
            &hp,
            "ct original ip daddr 203.0.113.1 ip saddr 10.244.1.11 ip daddr 10.244.1.11 snat ip to 203.0.113.1 comment \"hairpin y/gw\""
        ));
        let a = ip_of(&state, "x/a");
        assert_eq!(connect(&rs, a, addr(NODE), Tcp, 30080), vec![(a, 81, true)]);
    }

    // Two Services claiming one address:port: the first (by namespace/name) gets it, the other
    // is noted, and the batch stays valid.
    #[test]
    fn an_address_and_port_claimed_twice_goes_to_the_first_service() {
        let mut state = exposed(vec![]);
        let mut second = state.services[3].clone();
        second.name = "gw2".into();
        second.cluster_ip = addr("10.96.0.14");
        second.selector = labels(&[("pod", "c")]);
        state.services.push(second);
        let rs = build(&state, &compliant(), "t");
        let lb: Vec<&str> = rs
            .dnat
            .iter()
            .filter(|d| d.exposure == Exposure::LoadBalancer)
            .map(|d| d.service.as_str())
            .collect();
        assert_eq!(lb, ["y/gw"]);
        assert_eq!(
            rs.notes,
            ["service y/gw2: 203.0.113.1 tcp 80 is already y/gw's; not exposed there"]
        );
        assert!(rs
            .dnat
            .iter()
            .any(|d| d.service == "y/gw2" && d.exposure == Exposure::ClusterIp));
    }

    // Rule: pod traffic to addresses outside the cluster meets the pod's egress chain: deny-all
    // egress blocks the internet and the mirror; an ipBlock for the mirror admits it alone.
    #[test]
    fn egress_to_external_addresses_is_judged_by_ip_blocks() {
        let deny = with(vec![np(
            "x",
            "deny",
            serde_json::json!({"podSelector": {}, "policyTypes": ["Egress"]}),
        )]);
        for dst in [EXTERNAL, MIRROR, "169.254.169.254"] {
            assert!(!allowed(&deny, "x/a", dst, Tcp, 443), "{dst}");
        }
        let mirror_only = with(vec![np(
            "x",
            "mirror",
            serde_json::json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [
                {"to": [{"ipBlock": {"cidr": "203.0.113.20/32"}}], "ports": [{"port": 443}]}
            ]}),
        )]);
        assert!(has_line(
            &chain_lines(&compile(&mirror_only, &compliant(), "t"), "egress_x_a"),
            "ip daddr 203.0.113.20/32 tcp dport 443 return"
        ));
        assert!(allowed(&mirror_only, "x/a", MIRROR, Tcp, 443));
        assert!(!allowed(&mirror_only, "x/a", MIRROR, Tcp, 80));
        assert!(!allowed(&mirror_only, "x/a", EXTERNAL, Tcp, 443));
        assert!(!allowed(&mirror_only, "x/a", "169.254.169.254", Tcp, 80));
        assert!(
            allowed(&mirror_only, "y/a", EXTERNAL, Tcp, 443),
            "y is not isolated"
        );
    }

    // ----- bad input -----

    #[test]
    fn invalid_parts_match_nothing_and_are_noted() {
        let state = with(vec![np(
            "x",
            "bad",
            serde_json::json!({"podSelector": {}, "ingress": [
                {"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]},
                {"ports": [{"port": 81, "endPort": 80}]},
                {"from": [{"podSelector": {"matchExpressions": [{"key": "pod", "operator": "Gt", "values": ["1"]}]}}]}
            ]}),
        )]);
        let rs = build(&state, &compliant(), "t");
        assert!(chain(&rs, "ingress", "x/a")
            .expect("still isolated")
            .allows
            .is_empty());
        assert_eq!(rs.notes.len(), 3, "{:?}", rs.notes);
        assert!(rs
            .render()
            .contains("# note: x/bad ingress[0].from[0]: invalid CIDR \"10.0.0.0/33\""));
    }

    // ----- faults: one deliberate deviation each -----

    fn fault_world() -> ClusterState {
        with_services(named_port_world(vec![
            np(
                "x",
                "in",
                serde_json::json!({"podSelector": {}, "ingress": [
                    {"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}, "podSelector": {"matchLabels": {"pod": "b"}}}],
                     "ports": [{"port": "web"}]},
                    {"from": [{"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.10/32"]}}],
                     "ports": [{"port": 80, "endPort": 81}, {"port": "dns", "protocol": "UDP"}]}
                ]}),
            ),
            np(
                "x",
                "out",
                serde_json::json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"], "egress": [
                    {"to": [{"namespaceSelector": {"matchLabels": {"ns": "z"}}}], "ports": [{"port": 80, "protocol": "UDP"}]}
                ]}),
            ),
        ]))
    }

    #[test]
    fn fault_none_drops_the_filter_but_keeps_services() {
        let state = fault_world();
        let rs = build(&state, &faulty("none"), "t");
        assert!(rs.filter.is_none());
        let text = rs.render();
        assert!(!text.contains("chain forward"), "{text}");
        assert!(!text.contains("jump"));
        assert_eq!(rs.dnat, build(&state, &compliant(), "t").dnat);
        assert!(allowed_with(&state, &faulty("none"), "z/c", "x/a", Tcp, 80));
        assert!(!allowed(&state, "z/c", "x/a", Tcp, 80));
    }

    #[test]
    fn fault_ingress_only_never_isolates_egress() {
        let state = fault_world();
        let rs = build(&state, &faulty("ingress-only"), "t");
        assert!(rs.filter.as_ref().expect("filter").egress.is_empty());
        assert!(chain(&rs, "ingress", "x/a").is_some());
        assert!(!allowed(&state, "x/a", "y/a", Tcp, 80));
        assert!(allowed_with(
            &state,
            &faulty("ingress-only"),
            "x/a",
            "y/a",
            Tcp,
            80
        ));
    }

    #[test]
    fn fault_egress_only_never_isolates_ingress() {
        let state = fault_world();
        let rs = build(&state, &faulty("egress-only"), "t");
        assert!(rs.filter.as_ref().expect("filter").ingress.is_empty());
        assert!(chain(&rs, "egress", "x/a").is_some());
        assert!(allowed_with(
            &state,
            &faulty("egress-only"),
            "y/a",
            "x/a",
            Tcp,
            80
        ));
        assert!(!allowed_with(
            &state,
            &faulty("egress-only"),
            "x/a",
            "y/a",
            Tcp,
            80
        ));
    }

    // Chosen bug: the named entry is dropped and a rule left without ports admits nothing.
    #[test]
    fn fault_ignore_named_ports_makes_named_entries_match_nothing() {
        let state = fault_world();
        assert!(
            allowed(&state, "y/b", "x/b", Tcp, 80),
            "compliant: web is 80 on x/b"
        );
        let faults = faulty("ignore-named-ports");
        let rs = build(&state, &faults, "t");
        let c = chain(&rs, "ingress", "x/b").expect("isolated");
        assert!(
            c.allows.iter().all(|a| !a.origin.contains("ingress[0]")),
            "{:?}",
            c.allows
        );
        assert!(
            c.allows.iter().all(|a| !a.origin.ends_with("ports[1]")),
            "dns dropped too"
        );
        assert!(
            c.allows
                .iter()
                .any(|a| a.origin.ends_with("ingress[1].from[0].ports[0]")),
            "numeric kept"
        );
        assert!(!allowed_with(&state, &faults, "y/b", "x/b", Tcp, 80));
        assert!(
            !allowed_with(&state, &faults, "y/b", "x/b", Tcp, 81),
            "not widened to all ports"
        );
    }

    #[test]
    fn fault_ignore_endport_admits_only_the_first_port() {
        let state = fault_world();
        let faults = faulty("ignore-endport");
        let text = compile(&state, &faults, "t");
        assert!(has_line(
            &chain_lines(&text, "ingress_x_a"),
            "tcp dport 80 return"
        ));
        assert!(!text.contains("80-81"));
        assert!(allowed(&state, "203.0.113.20", "x/a", Tcp, 81));
        assert!(!allowed_with(
            &state,
            &faults,
            "203.0.113.20",
            "x/a",
            Tcp,
            81
        ));
        assert!(allowed_with(
            &state,
            &faults,
            "203.0.113.20",
            "x/a",
            Tcp,
            80
        ));
    }

    #[test]
    fn fault_ignore_except_admits_the_whole_cidr() {
        let state = fault_world();
        let faults = faulty("ignore-except");
        let text = compile(&state, &faults, "t");
        assert!(has_line(
            &chain_lines(&text, "ingress_x_a"),
            "ip saddr 203.0.113.0/24 tcp dport 80-81 return"
        ));
        assert!(!text.contains("!="));
        assert!(!allowed(&state, EXTERNAL, "x/a", Tcp, 80));
        assert!(allowed_with(&state, &faults, EXTERNAL, "x/a", Tcp, 80));
    }

    #[test]
    fn fault_tcp_only_lets_udp_and_sctp_through() {
        let state = fault_world();
        let faults = faulty("tcp-only");
        let fwd = chain_lines(&compile(&state, &faults, "t"), "forward");
        let bypass = fwd
            .iter()
            .position(|l| l.starts_with("meta l4proto { udp, sctp } accept"))
            .expect("bypass");
        let dispatch = fwd
            .iter()
            .position(|l| l.contains("vmap"))
            .expect("dispatch");
        assert!(bypass < dispatch);
        assert!(!allowed(&state, "z/a", "x/a", Sctp, 80));
        assert!(allowed_with(&state, &faults, "z/a", "x/a", Sctp, 80));
        assert!(allowed_with(&state, &faults, "x/a", "y/a", Udp, 81));
        assert!(!allowed_with(&state, &faults, "z/a", "x/a", Tcp, 80));
    }

    // Chosen bug: a namespaceSelector is read as the policy's own namespace.
    #[test]
    fn fault_ignore_namespace_selector_reads_it_as_the_own_namespace() {
        let state = fault_world();
        let faults = faulty("ignore-namespace-selector");
        let rs = build(&state, &faults, "t");
        let c = chain(&rs, "ingress", "x/b").expect("isolated");
        assert_eq!(
            c.allows[0].peer,
            Peer::Pods(vec![addr("10.244.0.11")]),
            "x/b instead of y/b"
        );
        assert!(allowed(&state, "y/b", "x/b", Tcp, 80));
        assert!(!allowed_with(&state, &faults, "y/b", "x/b", Tcp, 80));
        // A namespaceSelector-only peer becomes "every pod of my namespace".
        let e = chain(&rs, "egress", "x/a").expect("isolated");
        assert_eq!(
            e.allows[0].peer,
            Peer::Pods(vec![
                addr("10.244.0.10"),
                addr("10.244.0.11"),
                addr("10.244.0.12")
            ])
        );
        assert!(!allowed_with(&state, &faults, "x/a", "z/a", Udp, 80));
        assert!(allowed(&state, "x/a", "z/a", Udp, 80));
    }

    #[test]
    fn fault_flaky_drops_some_new_connections_first() {
        let state = fault_world();
        let fwd = chain_lines(&compile(&state, &faulty("flaky"), "t"), "forward");
        assert_eq!(
            fwd[3],
            "ct state new numgen random mod 100 < 2 drop comment \"fault: flaky\""
        );
        // With `none` too, the flaky drop is the whole filter.
        let fwd = chain_lines(&compile(&state, &faulty("none,flaky"), "t"), "forward");
        assert_eq!(fwd.len(), 4, "{fwd:?}");
        assert!(fwd[3].contains("numgen random mod 100 < 2 drop"));
    }

    #[test]
    fn fault_late_is_not_the_compilers_business() {
        let state = fault_world();
        assert_eq!(
            compile(&state, &faulty("late=7s"), "t"),
            compile(&state, &compliant(), "t")
        );
    }

    // The history faults rewrite the state before compiling: here a relabel is ignored.
    #[test]
    fn fault_ignore_relabel_through_fault_memory() {
        let before = with(vec![np(
            "x",
            "p",
            serde_json::json!({"podSelector": {}, "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}
            ]}),
        )]);
        let mut after = before.clone();
        after.pods[2].labels = labels(&[("pod", "b")]); // x/c becomes pod=b
        let faults = faulty("ignore-relabel");
        let mut mem = FaultMemory::new();
        mem.effective(&faults, &before);
        let seen = mem.effective(&faults, &after);
        assert!(allowed(&after, "x/c", "x/a", Tcp, 80));
        assert!(!allowed_with(&seen, &faults, "x/c", "x/a", Tcp, 80));
    }

    #[test]
    fn fault_ignore_updates_through_fault_memory() {
        let v1 = with(vec![np(
            "x",
            "p",
            serde_json::json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        )]);
        let v2 = with(vec![np(
            "x",
            "p",
            serde_json::json!({"podSelector": {}, "ingress": [{}]}),
        )]);
        let faults = faulty("ignore-updates");
        let mut mem = FaultMemory::new();
        mem.effective(&faults, &v1);
        let seen = mem.effective(&faults, &v2);
        assert!(allowed(&v2, "y/a", "x/a", Tcp, 80));
        assert!(!allowed_with(&seen, &faults, "y/a", "x/a", Tcp, 80));
    }

    // ----- differential: the model against the oracle on random small worlds -----

    fn topology(state: &ClusterState) -> Topology {
        Topology::new(
            state
                .namespaces
                .iter()
                .map(|n| Namespace {
                    name: n.name.clone(),
                    labels: n.labels.clone(),
                })
                .collect(),
            state
                .pods
                .iter()
                .filter_map(|p| {
                    Some(Pod {
                        id: PodRef::new(&p.namespace, &p.name),
                        labels: p.labels.clone(),
                        ip: p.ip?,
                        serve: p.ports.clone(),
                        http: None,
                    })
                })
                .collect(),
        )
    }

    /// The policies a faulty CNI effectively enforces, for the faults that are policy rewrites.
    fn rewrite(policies: &[NetworkPolicy], fault: Fault) -> Vec<NetworkPolicy> {
        let mut out = Vec::new();
        for np in policies {
            let mut np = np.clone();
            let (ing, eg) = policy_types(&np).expect("valid types");
            let spec = np.spec.get_or_insert_with(Default::default);
            let peers = spec
                .ingress
                .iter_mut()
                .flatten()
                .flat_map(|r| r.from.iter_mut().flatten())
                .chain(
                    spec.egress
                        .iter_mut()
                        .flatten()
                        .flat_map(|r| r.to.iter_mut().flatten()),
                );
            match fault {
                Fault::IgnoreExcept => peers.for_each(|p| {
                    if let Some(b) = &mut p.ip_block {
                        b.except = None;
                    }
                }),
                Fault::IgnoreNamespaceSelector => peers.for_each(|p| {
                    if p.namespace_selector.take().is_some() && p.pod_selector.is_none() {
                        p.pod_selector = Some(LabelSelector::default());
                    }
                }),
                _ => drop(peers),
            }
            let ports = spec
                .ingress
                .iter_mut()
                .flatten()
                .flat_map(|r| r.ports.iter_mut().flatten())
                .chain(
                    spec.egress
                        .iter_mut()
                        .flatten()
                        .flat_map(|r| r.ports.iter_mut().flatten()),
                );
            match fault {
                Fault::IgnoreEndport => ports.for_each(|p| p.end_port = None),
                Fault::IgnoreNamedPorts => ports.for_each(|p| {
                    if let Some(IntOrString::String(_)) = p.port {
                        p.port = Some(IntOrString::String("no-such-port".into()));
                    }
                }),
                _ => drop(ports),
            }
            match fault {
                Fault::IngressOnly if !ing => continue,
                Fault::IngressOnly => spec.policy_types = Some(vec!["Ingress".into()]),
                Fault::EgressOnly if !eg => continue,
                Fault::EgressOnly => spec.policy_types = Some(vec!["Egress".into()]),
                _ => {}
            }
            out.push(np);
        }
        out
    }

    /// Compares every pod-to-pod cell and every Service path of the compiled model with the oracle
    /// over the (possibly rewritten) policies.
    fn check_against_oracle(
        state: &ClusterState,
        fault: Option<Fault>,
    ) -> Result<(), TestCaseError> {
        let faults: FaultSet = fault.into_iter().collect();
        let rs = build(state, &faults, "t");
        prop_assert!(rs.notes.is_empty(), "notes: {:?}", rs.notes);
        let topo = topology(state);
        let policies = match fault {
            Some(f) => rewrite(&state.policies, f),
            None => state.policies.clone(),
        };
        let oracle =
            Oracle::new(&topo, &policies).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let index = |ip: IpAddr| topo.pods.iter().position(|p| p.ip == ip);
        let expect = |s: usize, d: usize, proto: Protocol, port: u16| match fault {
            Some(Fault::NoEnforcement) => true,
            Some(Fault::TcpOnly) if proto != Tcp => true,
            _ => oracle.allows(s, d, port, proto),
        };
        for (s, src) in topo.pods.iter().enumerate() {
            for (d, dst) in topo.pods.iter().enumerate() {
                for proto in Protocol::ALL {
                    for port in [79, 80, 81, 82] {
                        let got = connect(&rs, src.ip, dst.ip, proto, port);
                        prop_assert_eq!(got.len(), 1);
                        let want = expect(s, d, proto, port);
                        prop_assert_eq!(
                            got[0].2,
                            want,
                            "{} -> {} {} {} (fault {:?}): {:?}",
                            src.id,
                            dst.id,
                            proto,
                            port,
                            fault,
                            oracle.explain(s, d, port, proto)
                        );
                    }
                }
            }
            for dn in &rs.dnat {
                for (ep, port, ok) in connect(&rs, src.ip, dn.address, dn.protocol, dn.port) {
                    let d = index(ep).ok_or_else(|| TestCaseError::fail("endpoint is no pod"))?;
                    prop_assert_eq!(
                        ok,
                        expect(s, d, dn.protocol, port),
                        "{} -> {} via {}",
                        src.id,
                        topo.pods[d].id,
                        dn.service
                    );
                }
            }
        }
        Ok(())
    }

    fn arb_selector(keys: &'static [&'static str]) -> impl Strategy<Value = serde_json::Value> {
        let values = prop::sample::select(vec!["a", "b", "c"]);
        let key = prop::sample::select(keys.to_vec());
        prop_oneof![
            2 => Just(serde_json::json!({})),
            3 => (key.clone(), values.clone()).prop_map(|(k, v)| serde_json::json!({"matchLabels": {k: v}})),
            2 => (key, prop::sample::select(vec!["In", "NotIn", "Exists", "DoesNotExist"]), prop::collection::vec(values, 1..3))
                .prop_map(|(k, op, vs)| {
                    if op == "Exists" || op == "DoesNotExist" {
                        serde_json::json!({"matchExpressions": [{"key": k, "operator": op}]})
                    } else {
                        serde_json::json!({"matchExpressions": [{"key": k, "operator": op, "values": vs}]})
                    }
                }),
        ]
    }

    fn arb_peer() -> impl Strategy<Value = serde_json::Value> {
        let cidrs = vec![
            ("0.0.0.0/0", vec!["10.244.1.0/24", "10.244.0.10/32"]),
            (
                "10.244.0.0/16",
                vec!["10.244.1.0/24", "10.244.2.0/25", "10.244.0.11/32"],
            ),
            ("10.244.1.0/24", vec!["10.244.1.10/31"]),
            ("10.244.0.10/32", vec![]),
        ];
        let block = prop::sample::select(cidrs).prop_flat_map(|(cidr, excepts)| {
            let n = excepts.len();
            prop::sample::subsequence(excepts, 0..=n).prop_map(move |ex| {
                if ex.is_empty() {
                    serde_json::json!({"ipBlock": {"cidr": cidr}})
                } else {
                    serde_json::json!({"ipBlock": {"cidr": cidr, "except": ex}})
                }
            })
        });
        prop_oneof![
            arb_selector(&["pod", "role"]).prop_map(|p| serde_json::json!({"podSelector": p})),
            arb_selector(&["team", NAMESPACE_NAME_LABEL])
                .prop_map(|n| serde_json::json!({"namespaceSelector": n})),
            (arb_selector(&["pod", "role"]), arb_selector(&["team"]))
                .prop_map(|(p, n)| serde_json::json!({"podSelector": p, "namespaceSelector": n})),
            block,
        ]
    }

    fn arb_port() -> impl Strategy<Value = serde_json::Value> {
        let proto = prop::option::of(prop::sample::select(vec!["TCP", "UDP", "SCTP"]));
        let port = prop_oneof![
            Just(serde_json::Value::Null),
            Just(serde_json::json!(80)),
            Just(serde_json::json!(81)),
            Just(serde_json::json!("http")),
            Just(serde_json::json!("dns")),
            Just(serde_json::json!("nosuch")),
        ];
        (proto, port, any::<bool>()).prop_map(|(proto, port, range)| {
            let mut entry = serde_json::Map::new();
            if let Some(p) = proto {
                entry.insert("protocol".into(), p.into());
            }
            if !port.is_null() {
                if range && port.is_number() {
                    entry.insert("endPort".into(), 82.into());
                }
                entry.insert("port".into(), port);
            }
            serde_json::Value::Object(entry)
        })
    }

    fn arb_rule(peer_key: &'static str) -> impl Strategy<Value = serde_json::Value> {
        (
            prop::option::of(prop::collection::vec(arb_peer(), 0..3)),
            prop::option::of(prop::collection::vec(arb_port(), 0..3)),
        )
            .prop_map(move |(peers, ports)| {
                let mut rule = serde_json::Map::new();
                if let Some(p) = peers {
                    rule.insert(peer_key.into(), p.into());
                }
                if let Some(p) = ports {
                    rule.insert("ports".into(), p.into());
                }
                serde_json::Value::Object(rule)
            })
    }

    fn arb_policy() -> impl Strategy<Value = NetworkPolicy> {
        let types = prop::sample::select(vec![
            None,
            Some(vec!["Ingress"]),
            Some(vec!["Egress"]),
            Some(vec!["Ingress", "Egress"]),
        ]);
        (
            prop::sample::select(vec!["x", "y"]),
            arb_selector(&["pod", "role"]),
            types,
            prop::option::of(prop::collection::vec(arb_rule("from"), 0..3)),
            prop::option::of(prop::collection::vec(arb_rule("to"), 0..3)),
        )
            .prop_map(|(ns, target, types, ingress, egress)| {
                let mut spec = serde_json::Map::new();
                spec.insert("podSelector".into(), target);
                if let Some(t) = types {
                    spec.insert("policyTypes".into(), serde_json::json!(t));
                }
                if let Some(r) = ingress {
                    spec.insert("ingress".into(), r.into());
                }
                if let Some(r) = egress {
                    spec.insert("egress".into(), r.into());
                }
                np(ns, "p", serde_json::Value::Object(spec))
            })
    }

    /// Up to 5 pods over namespaces x, y (labelled team=a/b), with random labels, named ports
    /// that differ per pod, sometimes no address; random policies; two Services, one also a
    /// LoadBalancer at the node's address, the other also a NodePort.
    fn arb_state() -> impl Strategy<Value = ClusterState> {
        let pod = (
            prop::sample::select(vec!["x", "y"]),
            prop::option::of(prop::sample::select(vec!["a", "b", "c"])),
            prop::option::of(prop::sample::select(vec!["a", "b"])),
            prop::sample::select(vec![80u16, 81]),
            prop::option::of(prop::sample::select(vec![80u16, 81])),
            prop::bool::weighted(0.9),
        );
        (
            prop::collection::vec(pod, 1..6),
            prop::collection::vec(arb_policy(), 0..4),
            prop::sample::select(vec!["a", "b"]),
        )
            .prop_map(|(pods, policies, team_x)| {
                let mut state = ClusterState::default();
                for (ns, team) in [("x", team_x), ("y", "b")] {
                    state.namespaces.push(NamespaceState {
                        name: ns.into(),
                        labels: labels(&[("team", team), (NAMESPACE_NAME_LABEL, ns)]),
                    });
                }
                for (i, (ns, pod_label, role, http, dns, has_ip)) in pods.into_iter().enumerate() {
                    let mut l = Labels::new();
                    if let Some(p) = pod_label {
                        l.insert("pod".into(), p.into());
                    }
                    if let Some(r) = role {
                        l.insert("role".into(), r.into());
                    }
                    let mut ports = vec![ServedPort {
                        port: http,
                        protocol: Tcp,
                        name: Some("http".into()),
                    }];
                    if let Some(d) = dns {
                        ports.push(ServedPort {
                            port: d,
                            protocol: Udp,
                            name: Some("dns".into()),
                        });
                    }
                    ports.push(ServedPort {
                        port: 80,
                        protocol: Sctp,
                        name: Some("http".into()),
                    });
                    let subnet = if ns == "x" { 0 } else { 1 };
                    state.pods.push(PodState {
                        namespace: ns.into(),
                        name: format!("p{i}"),
                        labels: l,
                        ip: has_ip.then_some(IpAddr::V4(Ipv4Addr::new(
                            10,
                            244,
                            subnet,
                            10 + i as u8,
                        ))),
                        ports,
                    });
                }
                for (i, p) in policies.into_iter().enumerate() {
                    let mut p = p;
                    p.metadata.name = Some(format!("p{i}"));
                    state.policies.push(p);
                }
                state.node_address = Some(addr("203.0.113.1"));
                state.services = vec![
                    ServiceState {
                        namespace: "x".into(),
                        name: "s0".into(),
                        cluster_ip: addr("10.96.0.10"),
                        load_balancer_ips: vec![addr("203.0.113.1")],
                        selector: labels(&[("pod", "a")]),
                        ports: vec![
                            ServicePortState {
                                port: 80,
                                protocol: Tcp,
                                target_port: TargetPort::Number(81),
                                node_port: None,
                            },
                            ServicePortState {
                                port: 53,
                                protocol: Udp,
                                target_port: TargetPort::Name("dns".into()),
                                node_port: None,
                            },
                        ],
                    },
                    ServiceState {
                        namespace: "y".into(),
                        name: "s1".into(),
                        cluster_ip: addr("10.96.0.11"),
                        load_balancer_ips: vec![],
                        selector: labels(&[("role", "a")]),
                        ports: vec![ServicePortState {
                            port: 8080,
                            protocol: Tcp,
                            target_port: TargetPort::Name("http".into()),
                            node_port: Some(30080),
                        }],
                    },
                ];
                state
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

        #[test]
        fn compliant_ruleset_agrees_with_the_oracle(state in arb_state()) {
            check_against_oracle(&state, None)?;
        }

        #[test]
        fn each_fault_is_exactly_its_policy_rewrite(
            state in arb_state(),
            fault in prop::sample::select(vec![
                Fault::NoEnforcement,
                Fault::IngressOnly,
                Fault::EgressOnly,
                Fault::IgnoreNamedPorts,
                Fault::IgnoreEndport,
                Fault::IgnoreExcept,
                Fault::TcpOnly,
                Fault::IgnoreNamespaceSelector,
            ]),
        ) {
            check_against_oracle(&state, Some(fault))?;
        }
    }
}
