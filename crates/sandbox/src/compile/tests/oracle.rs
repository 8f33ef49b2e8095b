//! The compiled model agrees with the oracle on every cell of generated worlds.

use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use netassay_core::policy::oracle::policy_types;

/// The oracle's view of a cluster state: its namespaces and the pods that have an address.
pub(super) fn topology(state: &ClusterState) -> Topology {
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
fn check_against_oracle(state: &ClusterState, fault: Option<Fault>) -> Result<(), TestCaseError> {
    let faults: FaultSet = fault.into_iter().collect();
    let rs = build(state, &faults, "t");
    prop_assert!(rs.notes.is_empty(), "notes: {:?}", rs.notes);
    let topo = topology(state);
    let policies = match fault {
        Some(f) => rewrite(&state.policies, f),
        None => state.policies.clone(),
    };
    let oracle = Oracle::new(&topo, &policies).map_err(|e| TestCaseError::fail(e.to_string()))?;
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
                    ip: has_ip.then_some(IpAddr::V4(Ipv4Addr::new(10, 244, subnet, 10 + i as u8))),
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
