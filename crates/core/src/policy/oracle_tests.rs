//! Table-driven tests of the oracle; every row cites the NetworkPolicy rule it checks.

use super::*;
use crate::model::{Namespace, Pod, PodRef, ServedPort, Topology};
use proptest::prelude::*;

fn policy(json: &str) -> NetworkPolicy {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("bad test policy {json}: {e}"))
}

/// A compact policy: namespace, spec JSON.
fn np(ns: &str, name: &str, spec: &str) -> NetworkPolicy {
    policy(&format!(
        r#"{{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{{"name":"{name}","namespace":"{ns}"}},"spec":{spec}}}"#
    ))
}

fn idx(t: &Topology, s: &str) -> usize {
    t.pod_index(&s.parse::<PodRef>().expect("pod ref"))
        .unwrap_or_else(|| panic!("no pod {s}"))
}

fn check(
    t: &Topology,
    policies: &[NetworkPolicy],
    from: &str,
    to: &str,
    port: u16,
    proto: Protocol,
) -> Verdict {
    let o = Oracle::new(t, policies).expect("oracle builds");
    o.cell(idx(t, from), idx(t, to), port, proto).verdict
}

use Protocol::{Sctp, Tcp, Udp};
use Verdict::{Allow, Deny};

struct Row {
    rule: &'static str,
    policies: Vec<NetworkPolicy>,
    cells: Vec<(&'static str, &'static str, u16, Protocol, Verdict)>,
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            rule: "a pod selected by no policy is not isolated: everything is allowed",
            policies: vec![],
            cells: vec![("x/a", "y/b", 80, Tcp, Allow), ("z/c", "x/a", 81, Udp, Allow)],
        },
        Row {
            rule: "ingress isolation: policyTypes [Ingress] and no rules denies all ingress to selected pods, only in the policy's namespace",
            policies: vec![np("x", "deny", r#"{"podSelector":{},"policyTypes":["Ingress"]}"#)],
            cells: vec![
                ("y/a", "x/a", 80, Tcp, Deny),
                ("x/b", "x/a", 80, Tcp, Deny),
                ("y/a", "y/b", 80, Tcp, Allow),
                ("x/a", "y/a", 80, Tcp, Allow), // egress of x is not isolated
            ],
        },
        Row {
            rule: "egress isolation: policyTypes [Egress] and no rules denies all egress from selected pods",
            policies: vec![np("x", "deny", r#"{"podSelector":{},"policyTypes":["Egress"]}"#)],
            cells: vec![("x/a", "y/a", 80, Tcp, Deny), ("x/a", "x/b", 81, Udp, Deny), ("y/a", "x/a", 80, Tcp, Allow)],
        },
        Row {
            rule: "`ingress: [{}]` is one rule with no from and no ports: it allows every peer on every port",
            policies: vec![np("x", "all", r#"{"podSelector":{},"ingress":[{}]}"#)],
            cells: vec![("z/c", "x/a", 81, Sctp, Allow)],
        },
        Row {
            rule: "`ingress: []` with policyTypes [Ingress] isolates with no rules: deny",
            policies: vec![np("x", "none", r#"{"podSelector":{},"policyTypes":["Ingress"],"ingress":[]}"#)],
            cells: vec![("z/c", "x/a", 80, Tcp, Deny)],
        },
        Row {
            rule: "policyTypes defaulting: absent types with a non-empty egress section isolate both directions",
            policies: vec![np("x", "p", r#"{"podSelector":{"matchLabels":{"pod":"a"}},"egress":[{"to":[{"podSelector":{}}]}]}"#)],
            cells: vec![
                ("x/a", "x/b", 80, Tcp, Allow),
                ("x/a", "y/b", 80, Tcp, Deny),  // egress isolated
                ("x/b", "x/a", 80, Tcp, Deny),  // ingress isolated, no ingress rules
            ],
        },
        Row {
            rule: "policyTypes defaulting: absent types and no egress section isolate ingress only",
            policies: vec![np("x", "p", r#"{"podSelector":{"matchLabels":{"pod":"a"}}}"#)],
            cells: vec![("x/a", "y/b", 80, Tcp, Allow), ("y/b", "x/a", 80, Tcp, Deny)],
        },
        Row {
            rule: "policyTypes defaulting: an empty egress list does not make a policy an egress policy",
            policies: vec![np("x", "p", r#"{"podSelector":{},"policyTypes":[],"egress":[]}"#)],
            cells: vec![("x/a", "y/b", 80, Tcp, Allow), ("y/b", "x/a", 80, Tcp, Deny)],
        },
        Row {
            rule: "a podSelector-only peer selects pods in the policy's own namespace",
            policies: vec![np("x", "p", r#"{"podSelector":{"matchLabels":{"pod":"a"}},"ingress":[{"from":[{"podSelector":{"matchLabels":{"pod":"b"}}}]}]}"#)],
            cells: vec![("x/b", "x/a", 80, Tcp, Allow), ("y/b", "x/a", 80, Tcp, Deny), ("x/c", "x/a", 80, Tcp, Deny)],
        },
        Row {
            rule: "an empty podSelector peer means every pod of the policy's namespace, and no other",
            policies: vec![np("x", "p", r#"{"podSelector":{},"ingress":[{"from":[{"podSelector":{}}]}]}"#)],
            cells: vec![("x/c", "x/a", 80, Tcp, Allow), ("y/c", "x/a", 80, Tcp, Deny)],
        },
        Row {
            rule: "a namespaceSelector-only peer selects every pod in matching namespaces",
            policies: vec![np("x", "p", r#"{"podSelector":{},"ingress":[{"from":[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"y"}}}]}]}"#)],
            cells: vec![("y/c", "x/a", 80, Tcp, Allow), ("z/c", "x/a", 80, Tcp, Deny), ("x/b", "x/a", 80, Tcp, Deny)],
        },
        Row {
            rule: "an empty namespaceSelector peer selects pods in every namespace",
            policies: vec![np("x", "p", r#"{"podSelector":{},"ingress":[{"from":[{"namespaceSelector":{}}]}]}"#)],
            cells: vec![("z/c", "x/a", 80, Tcp, Allow), ("x/b", "x/a", 80, Tcp, Allow)],
        },
        Row {
            rule: "podSelector and namespaceSelector in one peer are ANDed",
            policies: vec![np("x", "p", r#"{"podSelector":{},"ingress":[{"from":[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"y"}},"podSelector":{"matchLabels":{"pod":"b"}}}]}]}"#)],
            cells: vec![("y/b", "x/a", 80, Tcp, Allow), ("y/a", "x/a", 80, Tcp, Deny), ("z/b", "x/a", 80, Tcp, Deny), ("x/b", "x/a", 80, Tcp, Deny)],
        },
        Row {
            rule: "separate peers in one rule are ORed",
            policies: vec![np("x", "p", r#"{"podSelector":{},"ingress":[{"from":[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"y"}}},{"podSelector":{"matchLabels":{"pod":"b"}}}]}]}"#)],
            cells: vec![("y/a", "x/a", 80, Tcp, Allow), ("x/b", "x/a", 80, Tcp, Allow), ("z/b", "x/a", 80, Tcp, Deny)],
        },
        Row {
            rule: "matchExpressions NotIn over namespace names: every namespace but the excluded one",
            policies: vec![np("x", "p", r#"{"podSelector":{},"ingress":[{"from":[{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["x"]}]}}]}]}"#)],
            cells: vec![("y/a", "x/a", 80, Tcp, Allow), ("x/b", "x/a", 80, Tcp, Deny)],
        },
        Row {
            rule: "matchExpressions DoesNotExist on pods matches pods lacking the key",
            policies: vec![np("x", "p", r#"{"podSelector":{},"ingress":[{"from":[{"podSelector":{"matchExpressions":[{"key":"pod","operator":"DoesNotExist"}]},"namespaceSelector":{}}]}]}"#)],
            cells: vec![("y/a", "x/a", 80, Tcp, Deny)],
        },
        Row {
            rule: "policies are unioned: a pod selected by several policies admits what any of them admits",
            policies: vec![
                np("x", "from-y", r#"{"podSelector":{},"ingress":[{"from":[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"y"}}}]}]}"#),
                np("x", "from-z-81", r#"{"podSelector":{"matchLabels":{"pod":"a"}},"ingress":[{"from":[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"z"}}}],"ports":[{"port":81}]}]}"#),
            ],
            cells: vec![("y/a", "x/a", 80, Tcp, Allow), ("z/a", "x/a", 81, Tcp, Allow), ("z/a", "x/a", 80, Tcp, Deny), ("z/a", "x/b", 81, Tcp, Deny)],
        },
        Row {
            rule: "an allow-all policy next to a deny-all one: the union wins",
            policies: vec![
                np("x", "deny", r#"{"podSelector":{},"policyTypes":["Ingress"]}"#),
                np("x", "allow", r#"{"podSelector":{},"ingress":[{}]}"#),
            ],
            cells: vec![("y/a", "x/a", 80, Tcp, Allow)],
        },
        Row {
            rule: "a port entry with no protocol defaults to TCP",
            policies: vec![np("x", "p", r#"{"podSelector":{},"ingress":[{"ports":[{"port":80}]}]}"#)],
            cells: vec![("y/a", "x/a", 80, Tcp, Allow), ("y/a", "x/a", 80, Udp, Deny), ("y/a", "x/a", 81, Tcp, Deny)],
        },
        Row {
            rule: "a port entry with a protocol and no port covers every port of that protocol only",
            policies: vec![np("x", "p", r#"{"podSelector":{},"ingress":[{"ports":[{"protocol":"UDP"}]}]}"#)],
            cells: vec![("y/a", "x/a", 80, Udp, Allow), ("y/a", "x/a", 81, Udp, Allow), ("y/a", "x/a", 80, Tcp, Deny), ("y/a", "x/a", 81, Sctp, Deny)],
        },
        Row {
            rule: "a pod selected by a policy that allows only SCTP is isolated for TCP (upstream case 38-40)",
            policies: vec![np("x", "p", r#"{"podSelector":{},"ingress":[{"ports":[{"protocol":"SCTP","port":80}]}]}"#)],
            cells: vec![("y/a", "x/a", 80, Sctp, Allow), ("y/a", "x/a", 80, Tcp, Deny)],
        },
        Row {
            rule: "endPort makes a rule cover port..endPort inclusive",
            policies: vec![np("x", "p", r#"{"podSelector":{},"ingress":[{"ports":[{"port":79,"endPort":80}]}]}"#)],
            cells: vec![("y/a", "x/a", 80, Tcp, Allow), ("y/a", "x/a", 81, Tcp, Deny)],
        },
        Row {
            rule: "a named port resolves on the destination pod, per protocol",
            policies: vec![np("x", "p", r#"{"podSelector":{},"ingress":[{"ports":[{"port":"serve-81-udp","protocol":"UDP"}]}]}"#)],
            cells: vec![("y/a", "x/a", 81, Udp, Allow), ("y/a", "x/a", 80, Udp, Deny), ("y/a", "x/a", 81, Tcp, Deny)],
        },
        Row {
            rule: "a named port whose protocol differs from the rule's protocol does not match",
            policies: vec![np("x", "p", r#"{"podSelector":{},"ingress":[{"ports":[{"port":"serve-81-udp"}]}]}"#)],
            cells: vec![("y/a", "x/a", 81, Tcp, Deny), ("y/a", "x/a", 81, Udp, Deny)],
        },
        Row {
            rule: "egress named ports resolve on the destination pod too (upstream case 19)",
            policies: vec![np("x", "p", r#"{"podSelector":{"matchLabels":{"pod":"a"}},"policyTypes":["Egress"],"egress":[{"ports":[{"port":"serve-80-tcp"}]}]}"#)],
            cells: vec![("x/a", "y/b", 80, Tcp, Allow), ("x/a", "y/b", 81, Tcp, Deny)],
        },
        Row {
            rule: "traffic needs both the source's egress and the destination's ingress: egress deny beats ingress allow",
            policies: vec![
                np("x", "allow-in", r#"{"podSelector":{},"ingress":[{}]}"#),
                np("y", "deny-out", r#"{"podSelector":{},"policyTypes":["Egress"]}"#),
            ],
            cells: vec![("y/a", "x/a", 80, Tcp, Deny), ("z/a", "x/a", 80, Tcp, Allow)],
        },
        Row {
            rule: "egress allow at the source does not override ingress isolation at the destination",
            policies: vec![
                np("x", "allow-out", r#"{"podSelector":{},"policyTypes":["Egress"],"egress":[{}]}"#),
                np("y", "deny-in", r#"{"podSelector":{},"policyTypes":["Ingress"]}"#),
            ],
            cells: vec![("x/a", "y/a", 80, Tcp, Deny), ("x/a", "z/a", 80, Tcp, Allow)],
        },
        Row {
            rule: "ipBlock matches pod addresses; except carves addresses out (10.244.0.11 is x/b)",
            policies: vec![np("x", "p", r#"{"podSelector":{"matchLabels":{"pod":"a"}},"ingress":[{"from":[{"ipBlock":{"cidr":"10.244.0.0/16","except":["10.244.0.11/32"]}}]}]}"#)],
            cells: vec![("x/c", "x/a", 80, Tcp, Allow), ("y/c", "x/a", 80, Tcp, Allow), ("x/b", "x/a", 80, Tcp, Deny)],
        },
        Row {
            rule: "egress ipBlock /32 admits exactly that pod (upstream case 34)",
            policies: vec![np("x", "p", r#"{"podSelector":{"matchLabels":{"pod":"a"}},"policyTypes":["Egress"],"egress":[{"to":[{"ipBlock":{"cidr":"10.244.1.11/32"}}]}]}"#)],
            cells: vec![("x/a", "y/b", 80, Tcp, Allow), ("x/a", "y/a", 80, Tcp, Deny)],
        },
    ]
}

#[test]
fn oracle_follows_networkpolicy_semantics() {
    let t = Topology::standard();
    for row in rows() {
        for (from, to, port, proto, want) in &row.cells {
            let got = check(&t, &row.policies, from, to, *port, *proto);
            assert_eq!(
                got, *want,
                "rule: {}\ncell {from} -> {to} {port}/{proto}",
                row.rule
            );
        }
    }
}

#[test]
fn named_port_existing_only_on_some_pods_admits_only_those() {
    // Rule: a named port resolves per destination pod; a pod without that name gets no match.
    let mut t = Topology::standard();
    let xb = t.pod_mut(&PodRef::new("x", "b")).expect("x/b");
    xb.serve = vec![ServedPort {
        port: 80,
        protocol: Tcp,
        name: Some("web".into()),
    }];
    let policies = [np(
        "x",
        "p",
        r#"{"podSelector":{},"ingress":[{"ports":[{"port":"web"}]}]}"#,
    )];
    assert_eq!(check(&t, &policies, "y/a", "x/b", 80, Tcp), Allow);
    assert_eq!(check(&t, &policies, "y/a", "x/a", 80, Tcp), Deny);
}

#[test]
fn ipv6_ip_blocks_match_ipv6_pods() {
    // Rule: ipBlock works for both families; an IPv4 block never matches an IPv6 pod.
    let mk = |name: &str, ip: &str| Pod {
        id: PodRef::new("v6", name),
        labels: [("pod".to_string(), name.to_string())].into(),
        ip: ip.parse().expect("ip"),
        serve: crate::model::standard_serve(),
        http: None,
    };
    let t = Topology::new(
        vec![Namespace {
            name: "v6".into(),
            labels: Default::default(),
        }],
        vec![
            mk("a", "fd00:10::a"),
            mk("b", "fd00:10::b"),
            mk("c", "fd00:20::c"),
        ],
    );
    let p6 = [np(
        "v6",
        "p",
        r#"{"podSelector":{"matchLabels":{"pod":"a"}},"ingress":[{"from":[{"ipBlock":{"cidr":"fd00::/16","except":["fd00:20::/32"]}}]}]}"#,
    )];
    assert_eq!(check(&t, &p6, "v6/b", "v6/a", 80, Tcp), Allow);
    assert_eq!(check(&t, &p6, "v6/c", "v6/a", 80, Tcp), Deny);
    let p4 = [np(
        "v6",
        "p",
        r#"{"podSelector":{"matchLabels":{"pod":"a"}},"ingress":[{"from":[{"ipBlock":{"cidr":"0.0.0.0/0"}}]}]}"#,
    )];
    assert_eq!(check(&t, &p4, "v6/b", "v6/a", 80, Tcp), Deny);
}

#[test]
fn explanation_names_isolating_policies_and_the_admitting_rule() {
    let t = Topology::standard();
    let policies = [
        np(
            "x",
            "deny",
            r#"{"podSelector":{},"policyTypes":["Ingress"]}"#,
        ),
        np(
            "x",
            "allow-y-81",
            r#"{"podSelector":{},"ingress":[{"from":[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"y"}}}],"ports":[{"port":80},{"port":81}]}]}"#,
        ),
    ];
    let o = Oracle::new(&t, &policies).expect("oracle");
    let e = o.explain(idx(&t, "y/a"), idx(&t, "x/a"), 81, Tcp);
    assert_eq!(e.verdict, Allow);
    assert!(e.egress.isolated_by.is_empty());
    let names: Vec<_> = e
        .ingress
        .isolated_by
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["deny", "allow-y-81"]);
    assert_eq!(e.ingress.admitted_by.len(), 1);
    let m = &e.ingress.admitted_by[0];
    assert_eq!(
        (m.policy.name.as_str(), m.rule, m.peer, m.port),
        ("allow-y-81", 0, Some(0), Some(1))
    );

    let denied = o.explain(idx(&t, "z/a"), idx(&t, "x/a"), 81, Tcp);
    assert_eq!(denied.verdict, Deny);
    assert!(denied.ingress.admitted_by.is_empty());
    assert_eq!(denied.ingress.missed[0].reason, MissReason::Peer);
    let wrong_port = o.explain(idx(&t, "y/a"), idx(&t, "x/a"), 82, Tcp);
    assert_eq!(wrong_port.ingress.missed[0].reason, MissReason::Port);
}

#[test]
fn ip_dependence_is_flagged_only_where_an_ip_block_is_in_play() {
    let t = Topology::standard();
    let policies = [np(
        "x",
        "p",
        r#"{"podSelector":{"matchLabels":{"pod":"a"}},"ingress":[{"from":[{"ipBlock":{"cidr":"10.0.0.0/8"}}]}]}"#,
    )];
    let o = Oracle::new(&t, &policies).expect("oracle");
    assert!(o.cell(idx(&t, "y/a"), idx(&t, "x/a"), 80, Tcp).ip_dependent);
    assert!(!o.cell(idx(&t, "y/a"), idx(&t, "x/b"), 80, Tcp).ip_dependent);
}

#[test]
fn malformed_policies_are_errors_not_silent_verdicts() {
    let t = Topology::standard();
    let bad_cidr = np(
        "x",
        "p",
        r#"{"podSelector":{},"ingress":[{"from":[{"ipBlock":{"cidr":"10.0.0.0/33"}}]}]}"#,
    );
    assert!(matches!(
        Oracle::new(&t, &[bad_cidr]),
        Err(OracleError::Cidr { .. })
    ));
    let bad_type = np("x", "p", r#"{"podSelector":{},"policyTypes":["Sideways"]}"#);
    assert!(matches!(
        Oracle::new(&t, &[bad_type]),
        Err(OracleError::PolicyType { .. })
    ));
    let bad_proto = np(
        "x",
        "p",
        r#"{"podSelector":{},"ingress":[{"ports":[{"protocol":"ICMP"}]}]}"#,
    );
    assert!(matches!(
        Oracle::new(&t, &[bad_proto]),
        Err(OracleError::Port { .. })
    ));
}

// ---- properties ----

fn arb_selector() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{}".to_string()),
        prop::sample::select(vec!["a", "b", "c"])
            .prop_map(|p| format!(r#"{{"matchLabels":{{"pod":"{p}"}}}}"#)),
        prop::sample::select(vec!["a", "b"]).prop_map(|p| format!(
            r#"{{"matchExpressions":[{{"key":"pod","operator":"NotIn","values":["{p}"]}}]}}"#
        )),
    ]
}

fn arb_ns_selector() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{}".to_string()),
        prop::sample::select(vec!["x", "y", "z"])
            .prop_map(|n| format!(r#"{{"matchLabels":{{"kubernetes.io/metadata.name":"{n}"}}}}"#)),
    ]
}

fn arb_peer() -> impl Strategy<Value = String> {
    prop_oneof![
        arb_selector().prop_map(|s| format!(r#"{{"podSelector":{s}}}"#)),
        arb_ns_selector().prop_map(|s| format!(r#"{{"namespaceSelector":{s}}}"#)),
        (arb_selector(), arb_ns_selector())
            .prop_map(|(p, n)| format!(r#"{{"podSelector":{p},"namespaceSelector":{n}}}"#)),
        Just(r#"{"ipBlock":{"cidr":"10.244.0.0/16","except":["10.244.1.0/24"]}}"#.to_string()),
    ]
}

fn arb_port() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(r#"{"port":80}"#.to_string()),
        Just(r#"{"port":81,"protocol":"UDP"}"#.to_string()),
        Just(r#"{"port":"serve-81-tcp"}"#.to_string()),
        Just(r#"{"protocol":"SCTP"}"#.to_string()),
        Just(r#"{"port":80,"endPort":81}"#.to_string()),
    ]
}

fn arb_rule(peer_key: &'static str) -> impl Strategy<Value = String> {
    (
        prop::collection::vec(arb_peer(), 0..3),
        prop::collection::vec(arb_port(), 0..3),
    )
        .prop_map(move |(peers, ports)| {
            format!(
                r#"{{"{peer_key}":[{}],"ports":[{}]}}"#,
                peers.join(","),
                ports.join(",")
            )
        })
}

fn arb_policy(i: usize) -> impl Strategy<Value = NetworkPolicy> {
    (
        prop::sample::select(vec!["x", "y", "z"]),
        arb_selector(),
        prop::collection::vec(arb_rule("from"), 0..3),
        prop::collection::vec(arb_rule("to"), 0..3),
        prop::sample::select(vec![
            r#"["Ingress"]"#,
            r#"["Egress"]"#,
            r#"["Ingress","Egress"]"#,
        ]),
    )
        .prop_map(move |(ns, sel, ing, eg, types)| {
            np(
                ns,
                &format!("p{i}"),
                &format!(
                    r#"{{"podSelector":{sel},"policyTypes":{types},"ingress":[{}],"egress":[{}]}}"#,
                    ing.join(","),
                    eg.join(",")
                ),
            )
        })
}

fn arb_policies() -> impl Strategy<Value = Vec<NetworkPolicy>> {
    (0usize..5).prop_flat_map(|n| (0..n).map(arb_policy).collect::<Vec<_>>())
}

fn all_cells(t: &Topology) -> Vec<(usize, usize, u16, Protocol)> {
    let mut cells = Vec::new();
    for from in 0..t.pods.len() {
        for to in 0..t.pods.len() {
            for port in [80, 81] {
                for proto in Protocol::ALL {
                    cells.push((from, to, port, proto));
                }
            }
        }
    }
    cells
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    /// Rules are unioned: adding an allow-all policy for a direction never turns an allow into a deny.
    #[test]
    fn adding_allow_all_never_denies(policies in arb_policies(), ns in prop::sample::select(vec!["x", "y", "z"]), egress in any::<bool>()) {
        let t = Topology::standard();
        let before = Oracle::new(&t, &policies).expect("oracle");
        let mut more = policies.clone();
        more.push(if egress {
            np(ns, "allow-all", r#"{"podSelector":{},"policyTypes":["Egress"],"egress":[{}]}"#)
        } else {
            np(ns, "allow-all", r#"{"podSelector":{},"ingress":[{}]}"#)
        });
        let after = Oracle::new(&t, &more).expect("oracle");
        for (f, to, port, proto) in all_cells(&t) {
            if before.allows(f, to, port, proto) {
                prop_assert!(after.allows(f, to, port, proto));
            }
        }
    }

    /// A pod selected by no policy in either direction is reachable from and reaches pods that are
    /// themselves not isolated.
    #[test]
    fn unselected_pods_are_reachable(policies in arb_policies()) {
        let t = Topology::standard();
        let o = Oracle::new(&t, &policies).expect("oracle");
        for (f, to, port, proto) in all_cells(&t) {
            let free = |i: usize| o.ingress_of[i].is_empty() && o.egress_of[i].is_empty();
            if free(f) && free(to) {
                prop_assert!(o.allows(f, to, port, proto));
            }
        }
    }

    /// The explanation and the fast path always agree, and a verdict is allow exactly when both
    /// sides allow.
    #[test]
    fn explanation_agrees_with_verdict(policies in arb_policies()) {
        let t = Topology::standard();
        let o = Oracle::new(&t, &policies).expect("oracle");
        for (f, to, port, proto) in all_cells(&t) {
            let e = o.explain(f, to, port, proto);
            prop_assert_eq!(e.verdict.is_allow(), o.allows(f, to, port, proto));
            prop_assert_eq!(e.verdict.is_allow(), e.egress.allows() && e.ingress.allows());
        }
    }

    /// Adding a deny-all policy for a direction to a namespace denies every cell into (ingress)
    /// or out of (egress) that namespace that no other policy allows — in particular it never
    /// turns a deny into an allow.
    #[test]
    fn adding_deny_all_never_allows(policies in arb_policies(), ns in prop::sample::select(vec!["x", "y", "z"])) {
        let t = Topology::standard();
        let before = Oracle::new(&t, &policies).expect("oracle");
        let mut more = policies.clone();
        more.push(np(ns, "deny-all", r#"{"podSelector":{},"policyTypes":["Ingress","Egress"]}"#));
        let after = Oracle::new(&t, &more).expect("oracle");
        for (f, to, port, proto) in all_cells(&t) {
            if !before.allows(f, to, port, proto) {
                prop_assert!(!after.allows(f, to, port, proto));
            }
        }
    }
}
