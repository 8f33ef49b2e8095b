//! NetworkPolicy rules in the model, the text and the evaluator: isolation, union, selectors, ipBlocks, ports.

use super::*;

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
