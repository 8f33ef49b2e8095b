//! Cilium's semantics compiled (CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and
//! NetworkPolicy under Cilium): one table row per rule, each with the Cilium v1.20.2 source
//! that states it, checked on the evaluator; and every row's world checked cell by cell against
//! the core's `CiliumOracle`, so the dataplane enforces what the oracle judges.

use super::*;
use crate::state::CiliumState;
use netassay_core::policy::cilium::{CiliumOracle, CiliumPolicy, Endpoint, NameFacts};
use serde_json::{json, Value};

const NODE: &str = "203.0.113.1";
const MIRROR: &str = "203.0.113.20";
const INTERNET: &str = "203.0.113.10";

fn cnp(ns: &str, name: &str, spec: Value) -> CiliumPolicy {
    serde_json::from_value(json!({
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }))
    .expect("test CNP")
}

fn ccnp(name: &str, spec: Value) -> CiliumPolicy {
    serde_json::from_value(json!({
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("test CCNP")
}

/// The standard world with the node's address, these NetworkPolicies and Cilium policies.
fn world(nps: Vec<NetworkPolicy>, cps: Vec<CiliumPolicy>) -> (ClusterState, CiliumState) {
    let mut state = with(nps);
    state.node_address = Some(addr(NODE));
    (state, CiliumState { policies: cps })
}

fn resolve(state: &ClusterState, s: &str) -> IpAddr {
    if s.contains('/') {
        ip_of(state, s)
    } else {
        addr(s)
    }
}

fn cilium_allowed(
    (state, cilium): &(ClusterState, CiliumState),
    faults: &FaultSet,
    from: &str,
    to: &str,
    proto: Protocol,
    port: u16,
) -> bool {
    let rs = build_with(state, Some(cilium), faults, "t");
    filter_allows(&rs, resolve(state, from), resolve(state, to), proto, port)
}

type Cell = (&'static str, &'static str, Protocol, u16, bool);

struct Row {
    rule: &'static str,
    nps: Vec<NetworkPolicy>,
    cps: Vec<CiliumPolicy>,
    /// (from, to, protocol, port, allowed); `from`/`to` are pods or addresses.
    cells: Vec<Cell>,
}

fn rows() -> Vec<Row> {
    let allow_all_in_x = || {
        np(
            "x",
            "allow-all-in",
            json!({"podSelector": {}, "ingress": [{}]}),
        )
    };
    let y_a = json!({"matchLabels": {"k8s:io.kubernetes.pod.namespace": "y", "pod": "a"}});
    vec![
        Row {
            rule: "ingress: [{}] allows nothing, only default deny (pkg/policy/rule.go:369-375); the node always reaches its pods (repository.go:493-497)",
            nps: vec![],
            cps: vec![cnp("x", "p", json!({"endpointSelector": {}, "ingress": [{}]}))],
            cells: vec![
                ("y/a", "x/a", Tcp, 80, false),
                ("x/b", "x/a", Tcp, 80, false),
                (EXTERNAL, "x/a", Tcp, 80, false),
                (NODE, "x/a", Tcp, 80, true),
                ("x/a", "y/a", Tcp, 80, true),
            ],
        },
        Row {
            rule: "allows of NetworkPolicy and CNP are one union (Documentation/security/policy/intro.rst:137-143)",
            nps: vec![allow_all_in_x()],
            cps: vec![cnp("x", "p", json!({"endpointSelector": {}, "ingress": [{}]}))],
            cells: vec![("y/a", "x/a", Tcp, 80, true), ("x/b", "x/c", Udp, 81, true)],
        },
        Row {
            rule: "a deny beats any allow, a NetworkPolicy's too (deny.rst:15-17; pkg/policy/l4.go:329-335)",
            nps: vec![allow_all_in_x()],
            cps: vec![cnp("x", "deny-y", json!({"endpointSelector": {},
                "ingressDeny": [{"fromEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "y"}}]}]}))],
            cells: vec![
                ("y/a", "x/a", Tcp, 80, false),
                ("y/c", "x/b", Udp, 81, false),
                ("z/a", "x/a", Tcp, 80, true),
            ],
        },
        Row {
            rule: "a deny-only policy makes its pods default-deny (pkg/policy/api/rule_validation.go:56-58)",
            nps: vec![],
            cps: vec![cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"pod": "a"}},
                "ingressDeny": [{"fromEndpoints": [y_a.clone()]}]}))],
            cells: vec![
                ("y/a", "x/a", Tcp, 80, false),
                ("z/b", "x/a", Tcp, 80, false),
                ("z/b", "x/b", Tcp, 80, true),
            ],
        },
        Row {
            rule: "enableDefaultDeny.ingress=false leaves only the deny (repository.go:485-490)",
            nps: vec![],
            cps: vec![cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"pod": "a"}},
                "enableDefaultDeny": {"ingress": false},
                "ingressDeny": [{"fromEndpoints": [y_a.clone()]}]}))],
            cells: vec![("y/a", "x/a", Tcp, 80, false), ("z/b", "x/a", Tcp, 80, true)],
        },
        Row {
            rule: "a port-scoped deny under an L3 allow denies that port only (deny.rst:25-56)",
            nps: vec![],
            cps: vec![cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"fromEndpoints": [y_a.clone()]}],
                "ingressDeny": [{"fromEndpoints": [y_a.clone()],
                    "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}]}))],
            cells: vec![
                ("y/a", "x/a", Tcp, 80, false),
                ("y/a", "x/a", Tcp, 81, true),
                ("y/a", "x/a", Udp, 80, true),
                ("y/b", "x/a", Tcp, 81, false),
            ],
        },
        Row {
            rule: "a CNP's fromEndpoints [{}] is its own namespace (pkg/k8s/apis/cilium.io/utils/utils.go:136-148)",
            nps: vec![],
            cps: vec![cnp("x", "p", json!({"endpointSelector": {}, "ingress": [{"fromEndpoints": [{}]}]}))],
            cells: vec![
                ("x/b", "x/a", Tcp, 80, true),
                ("y/b", "x/a", Tcp, 80, false),
                (EXTERNAL, "x/a", Tcp, 80, false),
            ],
        },
        Row {
            rule: "a CCNP's fromEndpoints [{}] is every pod, not the world (utils.go:137-145); its endpointSelector {} every namespace",
            nps: vec![],
            cps: vec![ccnp("all", json!({"endpointSelector": {}, "ingress": [{"fromEndpoints": [{}]}]}))],
            cells: vec![
                ("y/b", "x/a", Tcp, 80, true),
                ("x/a", "z/c", Udp, 81, true),
                (EXTERNAL, "x/a", Tcp, 80, false),
            ],
        },
        Row {
            rule: "a peer naming a namespace-label key reaches across namespaces (utils.go:146; kubernetes.rst:106-121)",
            nps: vec![],
            cps: vec![cnp("x", "p", json!({"endpointSelector": {},
                "ingress": [{"fromEndpoints": [{"matchLabels": {"io.cilium.k8s.namespace.labels.ns": "y"}}]}]}))],
            cells: vec![("y/a", "x/a", Tcp, 80, true), ("z/a", "x/a", Tcp, 80, false)],
        },
        Row {
            rule: "toPorts without a peer admits every peer on those ports, TCP, UDP and SCTP when no protocol is given (ingress.go:24-26; l4.go:1026-1032; rule.go:395-402)",
            nps: vec![],
            cps: vec![cnp("x", "p", json!({"endpointSelector": {}, "ingress": [{"toPorts": [{"ports": [{"port": "80"}]}]}]}))],
            cells: vec![
                ("y/a", "x/a", Tcp, 80, true),
                ("y/a", "x/a", Udp, 80, true),
                ("y/a", "x/a", Sctp, 80, true),
                ("y/a", "x/a", Tcp, 81, false),
                (EXTERNAL, "x/a", Tcp, 80, true),
            ],
        },
        Row {
            rule: "endPort makes a range; an endPort below port is the single port (l4.go:718-721)",
            nps: vec![],
            cps: vec![
                cnp("x", "range", json!({"endpointSelector": {"matchLabels": {"pod": "a"}},
                    "ingress": [{"toPorts": [{"ports": [{"port": "80", "endPort": 81, "protocol": "TCP"}]}]}]})),
                cnp("x", "backwards", json!({"endpointSelector": {"matchLabels": {"pod": "b"}},
                    "ingress": [{"toPorts": [{"ports": [{"port": "81", "endPort": 80, "protocol": "TCP"}]}]}]})),
            ],
            cells: vec![
                ("y/a", "x/a", Tcp, 80, true),
                ("y/a", "x/a", Tcp, 81, true),
                ("y/a", "x/b", Tcp, 80, false),
                ("y/a", "x/b", Tcp, 81, true),
            ],
        },
        Row {
            rule: "a named port resolves on the destination pod, per protocol (l4.go:756-761)",
            nps: vec![],
            cps: vec![cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"toPorts": [{"ports": [{"port": "serve-80-tcp", "protocol": "TCP"}]}]}]}))],
            cells: vec![
                ("y/a", "x/a", Tcp, 80, true),
                ("y/a", "x/a", Tcp, 81, false),
                ("y/a", "x/a", Udp, 80, false),
            ],
        },
        Row {
            rule: "a CIDR never matches a pod, by CNP or by NetworkPolicy ipBlock (pkg/policy/types/selector.go:526-533; layer3.rst:404-407)",
            nps: vec![np("x", "ipblock", json!({"podSelector": {"matchLabels": {"pod": "b"}},
                "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": {"cidr": "10.244.1.11/32"}}]}]}))],
            cps: vec![cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"pod": "a"}},
                "egress": [{"toCIDR": ["10.244.1.11/32", "203.0.113.0/24"]}]}))],
            cells: vec![
                ("x/a", "y/b", Tcp, 80, false),
                ("x/b", "y/b", Tcp, 80, false),
                ("x/a", EXTERNAL, Tcp, 80, true),
                ("x/a", NODE, Tcp, 80, false),
            ],
        },
        Row {
            rule: "toCIDRSet except applies to its own entry (rule_validation.go:721-733; types/selector.go:440-454)",
            nps: vec![],
            cps: vec![cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"pod": "a"}},
                "egress": [{"toCIDRSet": [{"cidr": "203.0.113.0/24", "except": ["203.0.113.10/32"]}]}]}))],
            cells: vec![("x/a", EXTERNAL, Tcp, 80, false), ("x/a", MIRROR, Tcp, 80, true)],
        },
        Row {
            rule: "toEntities cluster is every pod and the node, not the world; world is none of them (entity.go:102-119)",
            nps: vec![],
            cps: vec![
                cnp("x", "a-cluster", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "egress": [{"toEntities": ["cluster"]}]})),
                cnp("x", "b-world", json!({"endpointSelector": {"matchLabels": {"pod": "b"}}, "egress": [{"toEntities": ["world"]}]})),
                cnp("x", "c-host", json!({"endpointSelector": {"matchLabels": {"pod": "c"}}, "egress": [{"toEntities": ["host"]}]})),
            ],
            cells: vec![
                ("x/a", "z/b", Tcp, 80, true),
                ("x/a", NODE, Tcp, 80, true),
                ("x/a", EXTERNAL, Tcp, 80, false),
                ("x/b", EXTERNAL, Tcp, 80, true),
                ("x/b", "y/b", Tcp, 80, false),
                ("x/b", NODE, Tcp, 80, false),
                ("x/c", NODE, Tcp, 80, true),
                ("x/c", "y/b", Tcp, 80, false),
            ],
        },
        Row {
            rule: "both ends must allow (layer3.rst:90-92, 124-126)",
            nps: vec![],
            cps: vec![
                cnp("x", "out", json!({"endpointSelector": {"matchLabels": {"pod": "a"}},
                    "egress": [{"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "y"}}]}]})),
                cnp("y", "in", json!({"endpointSelector": {"matchLabels": {"pod": "b"}}, "ingress": [{}]})),
            ],
            cells: vec![
                ("x/a", "y/a", Tcp, 80, true),
                ("x/a", "y/b", Tcp, 80, false),
                ("x/a", "z/a", Tcp, 80, false),
            ],
        },
        Row {
            rule: "an empty peer list selects nothing but still isolates (parserules.go:149-157)",
            nps: vec![],
            cps: vec![cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "egress": [{"toEndpoints": []}]}))],
            cells: vec![("x/a", "x/b", Tcp, 80, false), ("x/a", EXTERNAL, Tcp, 80, false)],
        },
        Row {
            rule: "kubernetes.io/ pod labels are not part of a pod's identity (labelsfilter/filter.go:226-248)",
            nps: vec![],
            cps: vec![cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"fromEndpoints": [{"matchLabels": {"kubernetes.io/role": "web"}}]}]}))],
            // `relabelled` gives x/b that label.
            cells: vec![("x/b", "x/a", Tcp, 80, false)],
        },
        Row {
            rule: "a policy the agent refuses is ignored as a whole, default deny included (cilium_network_policy.go:140-146)",
            nps: vec![],
            cps: vec![cnp("x", "p", json!({"endpointSelector": {},
                "ingress": [{"fromEndpoints": [{}], "fromCIDR": ["203.0.113.0/24"]}]}))],
            cells: vec![("y/a", "x/a", Tcp, 80, true)],
        },
        Row {
            rule: "toFQDNs is not compiled: it admits nothing (the oracle does not judge it), the rest of the policy holds",
            nps: vec![],
            cps: vec![cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"pod": "a"}},
                "egress": [{"toFQDNs": [{"matchName": "mirror.example.org"}]},
                           {"toEndpoints": [{"matchLabels": {"pod": "b"}}]}]}))],
            cells: vec![("x/a", "x/b", Tcp, 80, true), ("x/a", "x/c", Tcp, 80, false)],
        },
    ]
}

/// The label `kubernetes.io/role: web` on x/b (for the identity-filter row).
fn relabelled(mut state: ClusterState) -> ClusterState {
    for p in &mut state.pods {
        if p.namespace == "x" && p.name == "b" {
            p.labels.insert("kubernetes.io/role".into(), "web".into());
        }
    }
    state
}

fn row_world(row: &Row) -> (ClusterState, CiliumState) {
    let (state, cilium) = world(row.nps.clone(), row.cps.clone());
    (relabelled(state), cilium)
}

#[test]
fn every_rule_of_the_table_holds_on_the_compiled_model() {
    let mut wrong = Vec::new();
    for row in rows() {
        let w = row_world(&row);
        for &(from, to, proto, port, want) in &row.cells {
            let got = cilium_allowed(&w, &compliant(), from, to, proto, port);
            if got != want {
                wrong.push(format!(
                    "{}\n  {from} -> {to} {}/{port}: want {}, got {}",
                    row.rule,
                    proto.lower(),
                    if want { "allow" } else { "deny" },
                    if got { "allow" } else { "deny" }
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// The compiler only turns the core oracle's selection into addresses: on every cell the oracle
// judges (pods, the node, the external host, both ways, ports 80 and 81, TCP and UDP), the
// compiled model agrees with it.
#[test]
fn the_compiled_model_agrees_with_the_cilium_oracle_on_every_judged_cell() {
    let mut wrong = Vec::new();
    let mut judged = 0;
    for row in rows() {
        let w = row_world(&row);
        let (state, cilium) = (&w.0, &w.1);
        let topo = super::oracle::topology(state);
        // The agent-refused row: the oracle never sees such a policy (the loader refuses it).
        let valid: Vec<CiliumPolicy> = cilium
            .policies
            .iter()
            .filter(|p| netassay_core::policy::cilium::validate_cilium_policy(p).is_empty())
            .cloned()
            .collect();
        let oracle = CiliumOracle::new(&topo, &state.policies, &valid, NameFacts::Unknown)
            .expect("the table's policies compile");
        let mut ends: Vec<(String, Endpoint)> = topo
            .pods
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.to_string(), Endpoint::Pod(i)))
            .collect();
        ends.push((NODE.into(), Endpoint::Host));
        ends.push((EXTERNAL.into(), Endpoint::World(addr(EXTERNAL))));
        for (from, fe) in &ends {
            for (to, te) in &ends {
                if from == to || !(matches!(fe, Endpoint::Pod(_)) || matches!(te, Endpoint::Pod(_)))
                {
                    continue;
                }
                for proto in [Tcp, Udp] {
                    for port in [80, 81] {
                        let Some(v) = oracle.judge(*fe, *te, port, proto).verdict else {
                            continue;
                        };
                        judged += 1;
                        let want = v == netassay_core::model::Verdict::Allow;
                        let got = cilium_allowed(&w, &compliant(), from, to, proto, port);
                        if got != want {
                            wrong.push(format!(
                                "{}: {from} -> {to} {}/{port}: oracle {want}, compiled {got}",
                                row.rule,
                                proto.lower()
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(judged > 5000, "only {judged} cells judged");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn deny_rules_come_first_and_a_pod_without_default_deny_ends_in_return() {
    let (state, cilium) = world(
        vec![],
        vec![cnp(
            "x",
            "p",
            json!({"endpointSelector": {"matchLabels": {"pod": "a"}},
            "enableDefaultDeny": {"ingress": false},
            "ingress": [{"fromEndpoints": [{"matchLabels": {"pod": "b"}}]}],
            "ingressDeny": [{"fromEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "y"}}]}]}),
        )],
    );
    let rs = build_with(&state, Some(&cilium), &compliant(), "t");
    let c = chain(&rs, "ingress", "x/a").expect("x/a is ingress-enforced");
    assert_eq!(c.otherwise, Otherwise::Accept);
    assert_eq!(c.denies.len(), 1);
    let lines = chain_lines(&rs.render(), &c.name);
    let deny = lines
        .iter()
        .position(|l| l.contains(" drop comment \"CNP x/p ingressDeny[0]"));
    let allow = lines
        .iter()
        .position(|l| l.contains(" return comment \"CNP x/p ingress[0]"));
    assert!(deny.is_some() && deny < allow, "{lines:#?}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("return"),
        "{lines:#?}"
    );
    assert!(chain(&rs, "egress", "x/a").is_none(), "egress not enforced");
}

#[test]
fn world_and_cidrs_exclude_the_cluster_in_the_batch() {
    let (state, cilium) = world(
        vec![],
        vec![cnp(
            "x",
            "p",
            json!({"endpointSelector": {"matchLabels": {"pod": "a"}},
            "egress": [{"toEntities": ["world"]}]}),
        )],
    );
    let rs = build_with(&state, Some(&cilium), &compliant(), "t");
    let c = chain(&rs, "egress", "x/a").expect("egress-enforced");
    let lines = chain_lines(&rs.render(), &c.name);
    assert!(
        has_line(
            &lines,
            "ip daddr 0.0.0.0/0 ip daddr != { 10.96.0.0/16, 10.244.0.0/16, 203.0.113.1/32 } return"
        ),
        "{lines:#?}"
    );
    assert!(has_line(&lines, "ip6 daddr ::/0 return"), "{lines:#?}");
}

#[test]
fn what_is_not_compiled_is_noted_never_guessed() {
    let (state, cilium) = world(
        vec![],
        vec![
            cnp(
                "x",
                "fqdn",
                json!({"endpointSelector": {}, "egress": [
                {"toFQDNs": [{"matchName": "nowhere.example.org"}]},
                {"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "y"}}],
                 "toPorts": [{"ports": [{"port": "53", "protocol": "UDP"}], "rules": {"dns": [{"matchName": "mirror.example.org"}]}}]},
                {"toServices": [{"k8sService": {"serviceName": "web", "namespace": "y"}}]},
                {"toEntities": ["kube-apiserver"]}]}),
            ),
            cnp(
                "x",
                "refused",
                json!({"endpointSelector": {}, "ingress": [{"icmps": [{"fields": [{"type": 8}]}]}]}),
            ),
        ],
    );
    let rs = build_with(&state, Some(&cilium), &compliant(), "t");
    let notes = rs.notes.join("\n");
    for needle in [
        "CNP x/fqdn egress[0]: toFQDNs matches no external name the sandbox's DNS answers",
        "CNP x/fqdn egress[2]: toServices not compiled",
        "CNP x/fqdn egress[3]: kube-apiserver matches no address",
        "CNP x/refused ignored as a whole",
    ] {
        assert!(notes.contains(needle), "{needle:?} in\n{notes}");
    }
    // What is noted admits nothing: x's pods are egress default-deny with no allow.
    assert!(!cilium_allowed(
        &(state.clone(), cilium.clone()),
        &compliant(),
        "x/a",
        MIRROR,
        Tcp,
        80
    ));
    // The refused policy has no effect at all.
    assert!(chain(&rs, "ingress", "x/a").is_none());
}

/// toFQDNs admits the addresses the sandbox's DNS answers for the names it selects (its own
/// records), and nothing else; a DNS rule of `matchPattern: "*"` needs no note.
#[test]
fn to_fqdns_admits_the_sandbox_dns_records_of_its_names() {
    let w = world(
        vec![],
        vec![cnp(
            "x",
            "mirror",
            json!({"endpointSelector": {}, "egress": [
            {"toFQDNs": [{"matchPattern": "mirror.*.org"}], "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]},
            {"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "y"}}],
             "toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}], "rules": {"dns": [{"matchPattern": "*"}]}}]}]}),
        )],
    );
    let rs = build_with(&w.0, Some(&w.1), &compliant(), "t");
    assert!(rs.notes.is_empty(), "{:#?}", rs.notes);
    assert!(cilium_allowed(&w, &compliant(), "x/a", MIRROR, Tcp, 443));
    assert!(!cilium_allowed(&w, &compliant(), "x/a", MIRROR, Tcp, 80));
    assert!(!cilium_allowed(&w, &compliant(), "x/a", INTERNET, Tcp, 443));
    // The DNS port admits queries to y's pods.
    assert!(cilium_allowed(&w, &compliant(), "x/a", "y/a", Udp, 53));
}

#[test]
fn without_cilium_state_netpols_keep_kubernetes_semantics() {
    // The same ipBlock admits the pod under Kubernetes semantics and not under Cilium's.
    let block = np(
        "x",
        "ipblock",
        json!({"podSelector": {"matchLabels": {"pod": "b"}},
        "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": {"cidr": "10.244.1.11/32"}}]}]}),
    );
    let (state, cilium) = world(vec![block], vec![]);
    assert!(allowed(&state, "x/b", "y/b", Tcp, 80));
    assert!(!cilium_allowed(
        &(state, cilium),
        &compliant(),
        "x/b",
        "y/b",
        Tcp,
        80
    ));
}

// `ignore-deny`: deny rules compile as nothing, so the deny-beats-allow row flips, while the
// deny-only row keeps its default deny.
#[test]
fn ignore_deny_drops_deny_rules_but_keeps_their_default_deny() {
    let faults = faulty("ignore-deny");
    let rows = rows();
    let beats = rows
        .iter()
        .find(|r| r.rule.starts_with("a deny beats any allow"))
        .expect("row");
    let w = row_world(beats);
    assert!(!cilium_allowed(&w, &compliant(), "y/a", "x/a", Tcp, 80));
    assert!(cilium_allowed(&w, &faults, "y/a", "x/a", Tcp, 80));
    let only = rows
        .iter()
        .find(|r| r.rule.starts_with("a deny-only policy"))
        .expect("row");
    let w = row_world(only);
    assert!(!cilium_allowed(&w, &faults, "z/b", "x/a", Tcp, 80));
    let rs = build_with(&w.0, Some(&w.1), &faults, "t");
    let c = chain(&rs, "ingress", "x/a").expect("still enforced");
    assert!(c.denies.is_empty());
    assert_eq!(c.otherwise, Otherwise::Drop);
}

// The NetworkPolicy faults that are compiler deviations apply under Cilium too.
#[test]
fn netpol_faults_apply_under_cilium_semantics() {
    let range = rows()
        .into_iter()
        .find(|r| r.rule.starts_with("endPort makes a range"))
        .expect("row");
    let w = row_world(&range);
    assert!(!cilium_allowed(
        &w,
        &faulty("ignore-endport"),
        "y/a",
        "x/a",
        Tcp,
        81
    ));
    let named = rows()
        .into_iter()
        .find(|r| r.rule.starts_with("a named port"))
        .expect("row");
    let w = row_world(&named);
    assert!(!cilium_allowed(
        &w,
        &faulty("ignore-named-ports"),
        "y/a",
        "x/a",
        Tcp,
        80
    ));
    let deny_in = rows()
        .into_iter()
        .find(|r| r.rule.starts_with("ingress: [{}]"))
        .expect("row");
    let w = row_world(&deny_in);
    assert!(cilium_allowed(
        &w,
        &faulty("egress-only"),
        "y/a",
        "x/a",
        Tcp,
        80
    ));
    assert!(!cilium_allowed(
        &w,
        &faulty("ingress-only"),
        "y/a",
        "x/a",
        Tcp,
        80
    ));
}

/// A pod whose DNS rules narrow the names it may look up gets a DNS rule for the cluster DNS
/// (which plays Cilium's DNS proxy); a pod whose queries some rule admits without DNS rules, or
/// that no rule selects, gets none. The zone carries them as `!dns-rules` lines.
#[test]
fn dns_rules_narrowing_names_reach_the_cluster_dns() {
    let kube_dns = json!({"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system", "k8s:k8s-app": "kube-dns"}});
    let w = world(
        vec![],
        vec![
            cnp(
                "x",
                "one-name",
                json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "egress": [
                {"toEndpoints": [kube_dns],
                 "toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}], "rules": {"dns": [{"matchName": "mirror.example.org"}]}}]}]}),
            ),
            cnp(
                "x",
                "plain",
                json!({"endpointSelector": {"matchLabels": {"pod": "b"}}, "egress": [
                {"toEndpoints": [kube_dns], "toPorts": [{"ports": [{"port": "53", "protocol": "UDP"}]}]}]}),
            ),
        ],
    );
    let rs = build_with(&w.0, Some(&w.1), &compliant(), "t");
    let a = ip_of(&w.0, "x/a");
    assert_eq!(rs.dns_rules.len(), 1, "{:#?}", rs.dns_rules);
    assert_eq!(rs.dns_rules[0].source, a);
    assert_eq!(
        rs.dns_rules[0].names[0].match_name.as_deref(),
        Some("mirror.example.org")
    );
    let zone = crate::system::zone_with_rules(
        &w.0,
        rs.dns_rules.iter().map(|r| (r.source, r.names.as_slice())),
    );
    assert!(
        zone.contains(&format!("!dns-rules {a} name=mirror.example.org\n")),
        "{zone}"
    );
    // Under ingress-only, egress is not enforced, and neither are DNS rules.
    let ingress_only = FaultSet::from(Fault::IngressOnly);
    assert!(build_with(&w.0, Some(&w.1), &ingress_only, "t")
        .dns_rules
        .is_empty());
}
