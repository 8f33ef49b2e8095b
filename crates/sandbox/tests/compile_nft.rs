//! The policy compiler's output against the real `nft`: check mode for every fault profile, and
//! a load-replace-reload cycle inside a private network namespace (never the host's rules).
//! Without `nft` or root, or when the namespace cannot be made, the tests say they skipped, and
//! fail when `CI` is set.

use netassay_core::model::{standard_serve, Labels, Protocol, ServedPort, NAMESPACE_NAME_LABEL};
use netassay_sandbox::compile::compile;
use netassay_sandbox::fault::{Fault, FaultSet};
use netassay_sandbox::state::{
    ClusterState, NamespaceState, PodState, ServicePortState, ServiceState, TargetPort,
};
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Output};

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn np(
    ns: &str,
    name: &str,
    spec: serde_json::Value,
) -> k8s_openapi::api::networking::v1::NetworkPolicy {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }))
    .expect("test policy")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// Every feature the compiler renders at once: the standard model plus an IPv6 pod, a pod
/// without an address, multi-endpoint and named-targetPort Services (one a NodePort, one a
/// LoadBalancer at the node's address, as the sandbox makes them), and policies with every kind
/// of peer and port.
fn rich_state() -> ClusterState {
    let mut state = ClusterState {
        node_address: Some(ip("203.0.113.1")),
        ..ClusterState::default()
    };
    for (i, ns) in ["x", "y", "z"].into_iter().enumerate() {
        state.namespaces.push(NamespaceState {
            name: ns.into(),
            labels: labels(&[("ns", ns), (NAMESPACE_NAME_LABEL, ns)]),
        });
        for (j, name) in ["a", "b", "c"].into_iter().enumerate() {
            state.pods.push(PodState {
                namespace: ns.into(),
                name: name.into(),
                labels: labels(&[("pod", name), ("app", "web")]),
                ip: Some(ip(&format!("10.244.{i}.{}", 10 + j))),
                ports: standard_serve(),
            });
        }
    }
    state.pods.push(PodState {
        namespace: "x".into(),
        name: "v6".into(),
        labels: labels(&[("pod", "v6")]),
        ip: Some(ip("fd00:10:244::10")),
        ports: vec![ServedPort {
            port: 8080,
            protocol: Protocol::Tcp,
            name: Some("serve-80-tcp".into()),
        }],
    });
    state.pods.push(PodState {
        namespace: "y".into(),
        name: "pending".into(),
        labels: labels(&[("pod", "a")]),
        ip: None,
        ports: standard_serve(),
    });
    let svc =
        |ns: &str, name: &str, vip: &str, sel: &[(&str, &str)], ports: Vec<ServicePortState>| {
            ServiceState {
                namespace: ns.into(),
                name: name.into(),
                cluster_ip: ip(vip),
                load_balancer_ips: vec![],
                selector: labels(sel),
                ports,
            }
        };
    let port = |port: u16, protocol: Protocol, target: TargetPort| ServicePortState {
        port,
        protocol,
        target_port: target,
        node_port: None,
    };
    state.services = vec![
        svc(
            "x",
            "a",
            "10.96.0.10",
            &[("pod", "a")],
            vec![
                port(80, Protocol::Tcp, TargetPort::Number(80)),
                port(81, Protocol::Udp, TargetPort::Name("serve-81-udp".into())),
                port(80, Protocol::Sctp, TargetPort::Name("serve-80-sctp".into())),
            ],
        ),
        svc(
            "y",
            "web",
            "10.96.0.11",
            &[("app", "web")],
            vec![ServicePortState {
                node_port: Some(30080),
                ..port(8080, Protocol::Tcp, TargetPort::Name("serve-80-tcp".into()))
            }],
        ),
        ServiceState {
            load_balancer_ips: vec![ip("203.0.113.1")],
            ..svc(
                "z",
                "gateway",
                "10.96.0.13",
                &[("pod", "a")],
                vec![ServicePortState {
                    node_port: Some(30081),
                    ..port(80, Protocol::Tcp, TargetPort::Number(80))
                }],
            )
        },
        svc(
            "z",
            "nobody",
            "10.96.0.12",
            &[("pod", "nobody")],
            vec![port(80, Protocol::Tcp, TargetPort::Number(80))],
        ),
        svc(
            "x",
            "v6",
            "fd00:96::10",
            &[("pod", "v6")],
            vec![port(
                80,
                Protocol::Tcp,
                TargetPort::Name("serve-80-tcp".into()),
            )],
        ),
    ];
    state.policies = vec![
        np(
            "x",
            "deny-all",
            serde_json::json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        ),
        np(
            "x",
            "allow",
            serde_json::json!({
                "podSelector": {"matchExpressions": [{"key": "pod", "operator": "In", "values": ["a", "b", "v6"]}]},
                "ingress": [
                    {"from": [
                        {"namespaceSelector": {"matchLabels": {"ns": "y"}}, "podSelector": {"matchLabels": {"pod": "b"}}},
                        {"podSelector": {"matchExpressions": [{"key": "pod", "operator": "NotIn", "values": ["c"]}]}},
                        {"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.10/32", "203.0.113.128/25"]}},
                        {"ipBlock": {"cidr": "fd00::/8", "except": ["fd00:10:244::/64"]}}
                    ], "ports": [
                        {"port": "serve-80-tcp"},
                        {"port": 80, "endPort": 81, "protocol": "UDP"},
                        {"protocol": "SCTP"},
                        {"port": 81}
                    ]},
                    {}
                ],
                "egress": [
                    {"to": [{"namespaceSelector": {}}], "ports": [{"port": "serve-81-udp", "protocol": "UDP"}, {"port": "serve-80-sctp", "protocol": "SCTP"}]},
                    {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}, {"ipBlock": {"cidr": "::/0"}}]},
                    {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53}]}
                ]
            }),
        ),
        np(
            "y",
            "ns-only",
            serde_json::json!({
                "podSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [{"key": "ns", "operator": "Exists"}]}}]}]
            }),
        ),
        np(
            "z",
            "bad-cidr",
            serde_json::json!({
                "podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]
            }),
        ),
    ];
    state
}

/// Every profile the compiler distinguishes: compliant, each fault, and a combination.
fn profiles() -> Vec<(String, FaultSet)> {
    let mut out = vec![("compliant".to_string(), FaultSet::new())];
    for f in Fault::ALL {
        out.push((f.to_string(), FaultSet::from(f)));
    }
    out.push((
        "none,flaky".into(),
        "none,flaky".parse().expect("fault list"),
    ));
    out.push(("all".into(), Fault::ALL.into_iter().collect()));
    out
}

/// Whether `nft` and root are there; says why not on stderr. Under CI (`CI` set; `.ci/run`
/// installs nftables and runs as root) a missing prerequisite fails the test instead: these
/// tests never pass there without having run.
fn nft_usable() -> bool {
    let nft = Command::new("nft").arg("--version").output();
    let why = if !nft.as_ref().is_ok_and(|o| o.status.success()) {
        "the nft binary is not installed (apt-get install -y nftables)"
    } else if !is_root() {
        "nft -c needs root (CAP_NET_ADMIN) to ask the kernel"
    } else {
        return true;
    };
    skip_outside_ci(why);
    false
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// Says the test is skipped, and why; fails instead when `CI` is set.
fn skip_outside_ci(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "in CI this test must run: {why}"
    );
    eprintln!("skipped: {why}");
}

fn script_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write script");
    f
}

fn show(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn nft_accepts_every_profile_in_check_mode() {
    if !nft_usable() {
        return;
    }
    let states = [("rich", rich_state()), ("empty", ClusterState::default())];
    for (what, state) in &states {
        for (name, faults) in profiles() {
            let text = compile(state, &faults, "nac_check");
            let file = script_file(&text);
            let out = Command::new("nft")
                .arg("-c")
                .arg("-f")
                .arg(file.path())
                .output()
                .expect("run nft");
            assert!(
                out.status.success(),
                "nft -c rejected the {what} state under {name}:\n{}\n--- script ---\n{text}",
                show(&out)
            );
        }
    }
}

/// A network namespace of our own, removed on drop (also when the test panics).
struct Netns(String);

impl Netns {
    /// The namespace, or `None` (after saying why, and failing under CI) when it cannot be made.
    fn create() -> Option<Netns> {
        let name = format!("nac{}", std::process::id());
        let why = match Command::new("ip").args(["netns", "add", &name]).output() {
            Ok(out) if out.status.success() => return Some(Netns(name)),
            Ok(out) => format!("cannot create netns {name}: {}", show(&out)),
            Err(e) => format!("cannot run ip netns add {name}: {e}"),
        };
        skip_outside_ci(&why);
        None
    }

    fn nft(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0, "nft"])
            .args(args)
            .output()
            .expect("run ip netns exec nft")
    }

    fn load(&self, text: &str) {
        let file = script_file(text);
        let path = file.path().to_string_lossy().to_string();
        let out = self.nft(&["-f", &path]);
        assert!(
            out.status.success(),
            "nft -f failed:\n{}\n--- script ---\n{text}",
            show(&out)
        );
    }

    fn list(&self, args: &[&str]) -> String {
        let out = self.nft(args);
        assert!(out.status.success(), "nft {args:?}: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

// The batch must both create the table and replace an existing one in one transaction.
#[test]
fn batches_load_and_replace_each_other_in_a_private_netns() {
    if !nft_usable() {
        return;
    }
    let Some(ns) = Netns::create() else {
        return;
    };
    let state = rich_state();
    ns.load(&compile(&state, &FaultSet::new(), "nac_t"));
    let first = ns.list(&["list", "table", "inet", "nac_t"]);
    assert!(first.contains("chain egress_x_a"), "{first}");
    assert!(
        first.contains("dnat ip to numgen random mod 3 map"),
        "{first}"
    );
    // Node ports and the load balancer at the node's address, and their hairpin.
    assert!(
        first.contains("ip daddr 203.0.113.1 tcp dport 30080 dnat ip to numgen random mod 3 map"),
        "{first}"
    );
    assert!(
        first.contains("ip daddr 203.0.113.1 tcp dport 80 dnat ip to 10.244.2.10:80"),
        "{first}"
    );
    assert!(
        first.contains("ct original ip daddr 203.0.113.1 ip saddr 10.244.2.10 ip daddr 10.244.2.10 snat ip to 203.0.113.1"),
        "{first}"
    );

    // Same batch again: the table exists now, and is replaced, not duplicated or appended to.
    ns.load(&compile(&state, &FaultSet::new(), "nac_t"));
    assert_eq!(ns.list(&["list", "table", "inet", "nac_t"]), first);

    // A different profile replaces the chains wholesale.
    ns.load(&compile(
        &state,
        &FaultSet::from(Fault::NoEnforcement),
        "nac_t",
    ));
    let none = ns.list(&["list", "table", "inet", "nac_t"]);
    assert!(!none.contains("chain forward"), "{none}");
    assert!(!none.contains("egress_x_a"), "{none}");
    assert!(none.contains("chain nat_prerouting"), "{none}");

    ns.load(&compile(
        &ClusterState::default(),
        &FaultSet::new(),
        "nac_t",
    ));
    let tables = ns.list(&["list", "tables"]);
    assert_eq!(tables.trim(), "table inet nac_t");
}
