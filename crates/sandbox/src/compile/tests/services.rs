//! Services: DNAT to endpoints, node ports, load balancers, hairpin.

use super::*;

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
