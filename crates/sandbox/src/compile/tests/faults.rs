//! The fault profiles: each a deliberate deviation from the rule it names.

use super::*;

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
