//! Each test states one NetworkPolicy (or fault) rule and shows it in the model, the text and,
//! where it matters, the evaluator below, which walks the model the way nft walks the batch.

use super::model::*;
use super::*;
use crate::fault::Fault;
use crate::fault::FaultMemory;
use crate::state::NamespaceState;
use crate::state::ServicePortState;
use crate::state::{PodState, ServiceState, TargetPort};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netassay_core::model::Labels;
use netassay_core::model::Protocol;
use netassay_core::model::{
    standard_serve, Namespace, Pod, PodRef, ServedPort, Topology, NAMESPACE_NAME_LABEL,
};
use netassay_core::policy::Oracle;
use proptest::prelude::*;
use std::net::IpAddr;
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
            let hit = |a: &Allow| a.peer.matches(other) && a.l4.matches(proto, port);
            if c.denies.iter().any(hit) {
                return false;
            }
            c.allows.iter().any(hit) || c.otherwise == Otherwise::Accept
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

mod cilium;
mod faults;
mod oracle;
mod policies;
mod services;
