//! The reference dataplane on real network namespaces: routing, masquerade, enforcement through
//! the compiled ruleset, Service DNAT, isolation between instances, and that nothing leaks.
//!
//! Needs root, `ip` and `nft` (CI runs as root). Without root each test says so and passes,
//! unless `CI` is set. Pods run the real agent (`netassay agent serve`); probes are the real
//! prober (`netassay agent probe`), exec'd inside the source namespace.

use netassay_core::model::{Labels, Protocol, ServedPort};
use netassay_sandbox::addresses::{
    EXTERNAL_ADDRESS, METADATA_ADDRESS, MIRROR_ADDRESS, NODE_ADDRESS, OUTSIDE_ADDRESS,
};
use netassay_sandbox::cni::networks::PodNetwork;
use netassay_sandbox::dataplane::netns::{NetnsConfig, NetnsDataplane, ETC_NETNS, STATE_DIR};
use netassay_sandbox::dataplane::{state_of_pods, Dataplane, DataplaneError, PodSpec};
use netassay_sandbox::fault::{Fault, FaultSet};
use netassay_sandbox::state::{
    ClusterState, GatewayRoute, ServicePortState, ServiceState, TargetPort,
};
use serde_json::{json, Value};
use std::future::Future;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const AGENT: &str = env!("CARGO_BIN_EXE_netassay");
const CONVERGE: Duration = Duration::from_secs(15);

// ---- scaffolding ----------------------------------------------------------------------------

/// True when the test can run; false (after saying why) when it should pass vacuously.
fn privileged() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|line| line.starts_with("Uid:"))
        .and_then(|line| line.split_whitespace().nth(2))
        == Some("0");
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "the dataplane tests need root in CI"
        );
        eprintln!("skipped: the dataplane tests need root");
    }
    root
}

fn config(faults: FaultSet) -> NetnsConfig {
    let mut config = NetnsConfig::new(faults).expect("config");
    config.executable = AGENT.into();
    config.external_command = Some(strings(&[
        "netassay",
        "agent",
        "serve",
        "--identity",
        "external/internet",
        "--listen",
        "tcp:80",
    ]));
    config
}

fn start(faults: FaultSet) -> NetnsDataplane {
    NetnsDataplane::new(config(faults)).expect("the dataplane starts")
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

fn agent_pod(namespace: &str, name: &str, identity: &str) -> PodSpec {
    PodSpec {
        namespace: namespace.into(),
        name: name.into(),
        uid: format!("uid-{namespace}-{name}"),
        labels: Labels::from([("pod".to_string(), name.to_string())]),
        command: strings(&[
            "netassay",
            "agent",
            "serve",
            "--identity",
            identity,
            "--listen",
            "tcp:80",
        ]),
        ports: vec![ServedPort::standard(80, Protocol::Tcp)],
    }
}

/// A pod running the agent as `<namespace>/<name>`, created and waited for until ready.
fn ready_pod(dp: &NetnsDataplane, namespace: &str, name: &str) -> (PodSpec, IpAddr) {
    let spec = agent_pod(namespace, name, &format!("{namespace}/{name}"));
    let ip = dp.create_pod(&spec).expect("pod created");
    let deadline = Instant::now() + CONVERGE;
    while !dp.pod_ready(namespace, name) {
        assert!(
            Instant::now() < deadline,
            "{namespace}/{name} never got ready; log: {:?}",
            dp.pod_log(namespace, name)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (spec, ip)
}

/// Where a probe starts.
#[derive(Clone, Copy)]
enum Vantage<'a> {
    Pod(&'a str, &'a str),
    Outside,
}

/// One TCP probe with the real prober, expecting `target` to be `identity`:
/// `(outcome, identity of the peer that answered)`.
async fn probe(
    dp: &NetnsDataplane,
    from: Vantage<'_>,
    target: &str,
    identity: &str,
) -> (String, Option<String>) {
    let mut results = probes(dp, from, target, identity, 1, PROBE_TIMEOUT_MS).await;
    results.remove(0)
}

/// How long a probe waits for an answer, unless it is confirming a drop.
const PROBE_TIMEOUT_MS: u64 = 500;

/// `count` TCP probes of `target` from one prober, side by side, each with its own connection
/// and `timeout_ms`; their results in order.
async fn probes(
    dp: &NetnsDataplane,
    from: Vantage<'_>,
    target: &str,
    identity: &str,
    count: usize,
    timeout_ms: u64,
) -> Vec<(String, Option<String>)> {
    let command = strings(&["netassay", "agent", "probe"]);
    let mut child = match from {
        Vantage::Pod(namespace, name) => dp.exec(namespace, name, &command),
        Vantage::Outside => dp.exec_outside(&command),
    }
    .expect("exec");
    let ids: Vec<String> = (0..count).map(|i| format!("p{i}")).collect();
    let batch = json!({
        "schema": "netassay.probe/v1",
        "timeout_ms": timeout_ms,
        "probes": ids
            .iter()
            .map(|id| json!({"id": id, "kind": "tcp", "target": target, "expect_identity": identity}))
            .collect::<Vec<_>>(),
    });
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{batch}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.expect("prober ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .collect();
    ids.iter()
        .map(|id| {
            let result = lines
                .iter()
                .find(|line| line["id"] == id.as_str())
                .unwrap_or_else(|| {
                    panic!(
                        "no result for {id} from the prober: {stdout} {}",
                        String::from_utf8_lossy(&output.stderr)
                    )
                });
            let outcome = result["outcome"].as_str().unwrap_or_default().to_string();
            let peer = result["peer_identity"].as_str().map(str::to_string);
            (outcome, peer)
        })
        .collect()
}

/// Drops that confirm a deny, and how long each waits. One drop within the usual 500 ms is no
/// evidence of a deny: a prober that a loaded machine starves may miss its deadline on a path
/// that is open. An open path here (veths on this host) answers a SYN within milliseconds, so
/// three connections that all go unanswered for 3 s are.
const CONFIRMING_DROPS: usize = 3;
const CONFIRMING_TIMEOUT_MS: u64 = 3000;

/// Whether `target` drops from `from` beyond doubt: [`CONFIRMING_DROPS`] probes side by side,
/// each unanswered for [`CONFIRMING_TIMEOUT_MS`]. The outcomes seen otherwise.
async fn confirmed_drop(
    dp: &NetnsDataplane,
    from: Vantage<'_>,
    target: &str,
    identity: &str,
) -> Result<(), Vec<(String, Option<String>)>> {
    let seen = probes(
        dp,
        from,
        target,
        identity,
        CONFIRMING_DROPS,
        CONFIRMING_TIMEOUT_MS,
    )
    .await;
    if seen.iter().all(|r| *r == dropped()) {
        Ok(())
    } else {
        Err(seen)
    }
}

/// Polls `attempt` until it yields `want` or the deadline passes; returns the last result.
async fn eventually<T, F, Fut>(want: T, mut attempt: F) -> T
where
    T: PartialEq + std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = Instant::now() + CONVERGE;
    loop {
        let got = attempt().await;
        if got == want || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn connected(identity: &str) -> (String, Option<String>) {
    ("connected".to_string(), Some(identity.to_string()))
}

fn dropped() -> (String, Option<String>) {
    ("dropped".to_string(), None)
}

fn deny_all_ingress(namespace: &str) -> k8s_openapi::api::networking::v1::NetworkPolicy {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "deny-ingress", "namespace": namespace, "uid": "uid-deny"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }))
    .unwrap()
}

fn netns_list() -> Vec<String> {
    run(&["ip", "netns", "list"])
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn run(argv: &[&str]) -> String {
    let output = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .expect("spawn");
    assert!(
        output.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Names of everything in the root namespace (netns, links, nft tables) that start with `prefix`.
fn leftovers(prefix: &str) -> Vec<String> {
    let netns = netns_list();
    let links = run(&["ip", "-o", "link", "show"]);
    let tables = run(&["nft", "list", "tables"]);
    let links = links.lines().filter_map(|l| l.split(": ").nth(1));
    let tables = tables.lines().filter_map(|l| l.split_whitespace().nth(2));
    netns
        .iter()
        .map(String::as_str)
        .chain(links)
        .chain(tables)
        .filter(|name| name.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// The `/etc/netns` entries of an instance.
fn etc_netns(prefix: &str) -> Vec<String> {
    std::fs::read_dir(ETC_NETNS)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(&format!("{prefix}-")))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether process `pid` still runs (a zombie does not).
fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after = &stat[stat.rfind(')')? + 2..];
            after.chars().next()
        })
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// Removes an instance by name when dropped: for instances a test abandons on purpose.
struct RemoveOnDrop(String);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = NetnsDataplane::remove_instance(&self.0);
    }
}

// ---- routing ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_reaches_another_pod_through_the_node() {
    if !privileged() {
        return;
    }
    let dp = &start(FaultSet::new());
    let (_, _) = ready_pod(dp, "x", "a");
    let (_, b_ip) = ready_pod(dp, "x", "b");
    assert_eq!(b_ip, "10.244.0.3".parse::<IpAddr>().unwrap());
    let target = &format!("{b_ip}:80");
    let got = eventually(connected("x/b"), move || {
        probe(dp, Vantage::Pod("x", "a"), target, "x/b")
    })
    .await;
    assert_eq!(got, connected("x/b"));
    let closed_port = probe(dp, Vantage::Pod("x", "a"), &format!("{b_ip}:81"), "x/b").await;
    assert_eq!(closed_port.0, "rejected", "a closed port answers with RST");
}

// The node forwards, and its conntrack lets closed TCP flows go after a few seconds (a 400-pod
// round filled the machine's table with the default 120 s); the host keeps its own value.
#[tokio::test(flavor = "multi_thread")]
async fn the_node_forwards_and_forgets_closed_flows_soon_and_the_host_is_untouched() {
    if !privileged() {
        return;
    }
    const TIME_WAIT: &str = "net.netfilter.nf_conntrack_tcp_timeout_time_wait";
    let host_before = run(&["sysctl", "-n", TIME_WAIT]);
    let dp = start(FaultSet::new());
    let node = dp.node_netns();
    let in_node = |key: &str| run(&["ip", "netns", "exec", &node, "sysctl", "-n", key]);
    assert_eq!(in_node("net.ipv4.ip_forward").trim(), "1");
    assert_eq!(
        in_node(TIME_WAIT).trim(),
        netassay_sandbox::dataplane::netns::NODE_TIME_WAIT_SECS.to_string()
    );
    assert_eq!(run(&["sysctl", "-n", TIME_WAIT]), host_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_reaches_the_external_host_masqueraded_as_the_node() {
    if !privileged() {
        return;
    }
    let dp = &start(FaultSet::new());
    ready_pod(dp, "x", "a");
    // Record the source address of every new connection the external host accepts.
    let seen = format!("{}_seen", dp.prefix());
    let script = format!(
        "table ip {seen} {{\n set sources {{ type ipv4_addr; flags dynamic; }}\n \
         chain input {{ type filter hook input priority 0; policy accept;\n \
         tcp dport 80 ct state new add @sources {{ ip saddr }}\n }}\n}}\n"
    );
    let mut nft = Command::new("ip")
        .args(["netns", "exec", &dp.external_netns(), "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    nft.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(nft.wait().unwrap().success());

    let target = &format!("{EXTERNAL_ADDRESS}:80");
    let got = eventually(connected("external/internet"), move || {
        probe(dp, Vantage::Pod("x", "a"), target, "external/internet")
    })
    .await;
    assert_eq!(got, connected("external/internet"));
    let sources = run(&[
        "ip",
        "netns",
        "exec",
        &dp.external_netns(),
        "nft",
        "list",
        "set",
        "ip",
        &seen,
        "sources",
    ]);
    assert!(sources.contains(&NODE_ADDRESS.to_string()), "{sources}");
    assert!(
        !sources.contains("10.244."),
        "pod addresses leaked: {sources}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_outside_vantage_reaches_the_external_host_through_the_node() {
    if !privileged() {
        return;
    }
    let dp = &start(FaultSet::new());
    let target = &format!("{EXTERNAL_ADDRESS}:80");
    let got = eventually(connected("external/internet"), move || {
        probe(dp, Vantage::Outside, target, "external/internet")
    })
    .await;
    assert_eq!(got, connected("external/internet"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_external_host_answers_on_its_extra_addresses() {
    if !privileged() {
        return;
    }
    let mut config = config(FaultSet::new());
    config.external_addresses = vec!["203.0.113.11".parse().unwrap()];
    let dp = &NetnsDataplane::new(config).expect("the dataplane starts");
    dp.add_external_address("203.0.113.12".parse().unwrap())
        .expect("one more address");
    assert!(
        dp.add_external_address(NODE_ADDRESS).is_err(),
        "the node's own"
    );
    ready_pod(dp, "x", "a");
    for target in ["203.0.113.11:80", "203.0.113.12:80"] {
        let got = eventually(connected("external/internet"), move || {
            probe(dp, Vantage::Pod("x", "a"), target, "external/internet")
        })
        .await;
        assert_eq!(got, connected("external/internet"), "{target}");
    }
}

// ---- enforcement --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_deny_all_ingress_policy_blocks_and_its_removal_restores() {
    if !privileged() {
        return;
    }
    let dp = &start(FaultSet::new());
    let (a, a_ip) = ready_pod(dp, "x", "a");
    let (b, b_ip) = ready_pod(dp, "y", "b");
    let target = &format!("{b_ip}:80");
    let open = state_of_pods(&[(&a, a_ip), (&b, b_ip)]);
    dp.sync(&open).expect("sync without policies");
    let got = eventually(connected("y/b"), move || {
        probe(dp, Vantage::Pod("x", "a"), target, "y/b")
    })
    .await;
    assert_eq!(got, connected("y/b"));

    let mut denied = open.clone();
    denied.policies.push(deny_all_ingress("y"));
    dp.sync(&denied).expect("sync with the policy");
    expect(dp, Vantage::Pod("x", "a"), target, "y/b", dropped()).await;
    assert!(dp.pod_ready("y", "b"), "policies never make a pod unready");

    dp.sync(&open).expect("sync after removing the policy");
    let got = eventually(connected("y/b"), move || {
        probe(dp, Vantage::Pod("x", "a"), target, "y/b")
    })
    .await;
    assert_eq!(got, connected("y/b"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_ip_is_dnatted_to_its_endpoint() {
    if !privileged() {
        return;
    }
    let dp = &start(FaultSet::new());
    let (a, a_ip) = ready_pod(dp, "x", "a");
    let (b, b_ip) = ready_pod(dp, "x", "b");
    let mut cluster = state_of_pods(&[(&a, a_ip), (&b, b_ip)]);
    cluster.services.push(ServiceState {
        namespace: "x".into(),
        name: "s-b".into(),
        cluster_ip: "10.96.0.10".parse().unwrap(),
        load_balancer_ips: vec![],
        selector: Labels::from([("pod".to_string(), "b".to_string())]),
        ports: vec![ServicePortState {
            port: 8080,
            protocol: Protocol::Tcp,
            target_port: TargetPort::Number(80),
            node_port: None,
        }],
    });
    dp.sync(&cluster).expect("sync");
    let got = eventually(connected("x/b"), move || {
        probe(dp, Vantage::Pod("x", "a"), "10.96.0.10:8080", "x/b")
    })
    .await;
    assert_eq!(
        got,
        connected("x/b"),
        "ruleset:\n{}",
        dp.node_ruleset().unwrap()
    );
    // Hairpin: the endpoint reaches itself through its own ClusterIP.
    let got = eventually(connected("x/b"), move || {
        probe(dp, Vantage::Pod("x", "b"), "10.96.0.10:8080", "x/b")
    })
    .await;
    assert_eq!(got, connected("x/b"));
}

// The delay is shown by probes that ended before it (all connected: not enforced yet) and a
// deny seen after it. Which probes end in time depends on the machine's load, so the test
// probes until the delay is up and needs at least one such probe, failing (not passing
// silently) when load left it none.
#[tokio::test(flavor = "multi_thread")]
async fn the_late_fault_applies_each_ruleset_only_after_its_delay() {
    if !privileged() {
        return;
    }
    let delay = Duration::from_secs(4);
    let dp = &start(FaultSet::from(Fault::Late(delay)));
    let (a, a_ip) = ready_pod(dp, "x", "a");
    let (b, b_ip) = ready_pod(dp, "y", "b");
    let target = &format!("{b_ip}:80");
    let mut denied = state_of_pods(&[(&a, a_ip), (&b, b_ip)]);
    denied.policies.push(deny_all_ingress("y"));
    let synced = Instant::now();
    dp.sync(&denied).expect("sync");
    let (mut in_time, mut early) = (0, Vec::new());
    loop {
        let got = probe(dp, Vantage::Pod("x", "a"), target, "y/b").await;
        let ended = synced.elapsed();
        if ended >= delay {
            break;
        }
        in_time += 1;
        if got != connected("y/b") {
            early.push(format!("{got:?} ended at {ended:?}"));
        }
    }
    assert!(
        in_time > 0,
        "no probe ended within the {delay:?} delay: the machine is too loaded to show it"
    );
    assert!(
        early.is_empty(),
        "enforced before the delay: {} of the {in_time} probes that ended within it did not \
         connect: {}",
        early.len(),
        early.join(", ")
    );
    expect(dp, Vantage::Pod("x", "a"), target, "y/b", dropped()).await;
}

// ---- pods -------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_pod_leaves_no_namespace_and_unknown_pods_are_fine() {
    if !privileged() {
        return;
    }
    let dp = &start(FaultSet::new());
    ready_pod(dp, "x", "a");
    let netns = dp.pod_netns("x", "a").expect("the pod has a namespace");
    assert!(netns_list().contains(&netns));
    dp.delete_pod("x", "a").expect("delete");
    assert!(!netns_list().contains(&netns));
    assert!(!dp.pod_ready("x", "a"));
    assert!(matches!(
        dp.exec("x", "a", &strings(&["true"])),
        Err(DataplaneError::NoSuchPod { .. })
    ));
    dp.delete_pod("x", "a")
        .expect("deleting an unknown pod is fine");
    // The name can be used again, with a fresh address.
    let (_, ip) = ready_pod(dp, "x", "a");
    assert_eq!(ip, "10.244.0.3".parse::<IpAddr>().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_is_not_ready_until_its_ports_listen() {
    if !privileged() {
        return;
    }
    let dp = &start(FaultSet::new());
    let mut spec = agent_pod("x", "slow", "x/slow");
    spec.command = strings(&[
        "sh",
        "-c",
        "sleep 1; exec \"$0\" agent serve --identity x/slow --listen tcp:80",
    ]);
    spec.command.push(AGENT.to_string());
    let created = Instant::now();
    dp.create_pod(&spec).expect("create");
    assert!(!dp.pod_ready("x", "slow"));
    let deadline = Instant::now() + CONVERGE;
    while !dp.pod_ready("x", "slow") {
        assert!(Instant::now() < deadline, "{:?}", dp.pod_log("x", "slow"));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(created.elapsed() >= Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_created_concurrently_get_distinct_addresses_and_all_get_ready() {
    if !privileged() {
        return;
    }
    let dp = &start(FaultSet::new());
    let ips: Vec<IpAddr> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..6)
            .map(|i| scope.spawn(move || ready_pod(dp, "x", &format!("p{i}")).1))
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let distinct: std::collections::BTreeSet<&IpAddr> = ips.iter().collect();
    assert_eq!(distinct.len(), 6, "{ips:?}");
    assert!(
        dp.create_pod(&agent_pod("x", "p0", "x/p0")).is_err(),
        "a pod name is unique"
    );
}

// ---- isolation and hygiene ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_do_not_interfere() {
    if !privileged() {
        return;
    }
    let one = &start(FaultSet::new());
    let two = &start(FaultSet::new());
    assert_ne!(one.prefix(), two.prefix());
    let mut pods = Vec::new();
    for (dp, namespace) in [(one, "one"), (two, "two")] {
        let (a, a_ip) = ready_pod(dp, namespace, "a");
        let (b, b_ip) = ready_pod(dp, namespace, "b");
        assert_eq!(
            b_ip,
            "10.244.0.3".parse::<IpAddr>().unwrap(),
            "same addresses"
        );
        pods.push(state_of_pods(&[(&a, a_ip), (&b, b_ip)]));
    }
    // Deny in the first instance only.
    let mut denied = pods[0].clone();
    denied.policies.push(deny_all_ingress("one"));
    one.sync(&denied).unwrap();
    two.sync(&pods[1]).unwrap();
    expect(
        one,
        Vantage::Pod("one", "a"),
        "10.244.0.3:80",
        "one/b",
        dropped(),
    )
    .await;
    let got = eventually(connected("two/b"), move || {
        probe(two, Vantage::Pod("two", "a"), "10.244.0.3:80", "two/b")
    })
    .await;
    assert_eq!(got, connected("two/b"));
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_leaves_no_namespace_link_table_process_or_file() {
    if !privileged() {
        return;
    }
    let dp = &start(FaultSet::new());
    let (a, a_ip) = ready_pod(dp, "x", "a");
    dp.sync(&state_of_pods(&[(&a, a_ip)])).unwrap();
    let prefix = dp.prefix().to_string();
    let mut pids = Vec::new();
    for netns in netns_list().iter().filter(|ns| ns.starts_with(&prefix)) {
        pids.extend(
            run(&["ip", "netns", "pids", netns])
                .split_whitespace()
                .map(str::to_string),
        );
    }
    assert!(
        pids.len() >= 2,
        "the pod and the external agent run: {pids:?}"
    );
    assert!(!leftovers(&prefix).is_empty());

    dp.shutdown();
    assert_eq!(leftovers(&prefix), Vec::<String>::new());
    let still: Vec<&String> = pids.iter().filter(|pid| running(pid)).collect();
    assert!(still.is_empty(), "processes survived: {still:?}");
    assert!(!std::path::Path::new(&format!("{STATE_DIR}/{prefix}.json")).exists());
    assert!(!std::path::Path::new(&format!("{STATE_DIR}/{prefix}")).exists());
    assert_eq!(
        etc_netns(&prefix),
        Vec::<String>::new(),
        "resolv.conf folders"
    );
    dp.shutdown();
    assert!(dp.create_pod(&agent_pod("x", "b", "x/b")).is_err());
}

// ---- pods through CNI (the bridge baseline) ---------------------------------------------------

/// A dataplane whose pods get their network from the bridge plugin; `None` (after saying why)
/// where the test cannot run: no root, or no CNI plugins (which CI installs).
fn start_bridge() -> Option<NetnsDataplane> {
    if !privileged() {
        return None;
    }
    if netassay_sandbox::cni::networks::locate_plugin("bridge").is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs the CNI plugins"
        );
        eprintln!("skipped: the CNI plugins (containernetworking-plugins) are not installed");
        return None;
    }
    let mut config = config(FaultSet::new());
    config.pod_network = PodNetwork::Bridge;
    config.enforce_policies = false;
    Some(NetnsDataplane::new(config).expect("the dataplane starts on the bridge plugin"))
}

/// How many pods hang off the instance's bridge in the node (one bridge port each).
fn bridge_ports(dp: &NetnsDataplane) -> usize {
    let bridge = format!("{}br", dp.prefix());
    let node = dp.node_netns();
    run(&["ip", "-n", &node, "-o", "link", "show", "master", &bridge])
        .lines()
        .count()
}

/// The addresses host-local has handed out in an instance (one file per address).
fn host_local_addresses(prefix: &str) -> Vec<String> {
    let dir = format!("{STATE_DIR}/{prefix}/cni/ipam/netassay-bridge");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.parse::<IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn bridge_pods_get_host_local_addresses_reach_each_other_and_del_releases_them() {
    let Some(dp) = &start_bridge() else {
        return;
    };
    let prefix = dp.prefix().to_string();
    let (_, a_ip) = ready_pod(dp, "x", "a");
    let (_, b_ip) = ready_pod(dp, "x", "b");
    // host-local hands out the range in order after the bridge's gateway (.1).
    assert_eq!(a_ip, "10.244.0.2".parse::<IpAddr>().unwrap());
    assert_eq!(b_ip, "10.244.0.3".parse::<IpAddr>().unwrap());
    assert_eq!(host_local_addresses(&prefix), ["10.244.0.2", "10.244.0.3"]);
    // The conflist and the plugin links are the instance's own.
    let conflist = format!("{STATE_DIR}/{prefix}/cni/net.d/10-bridge.conflist");
    let text = std::fs::read_to_string(&conflist).expect("the conflist is written");
    assert!(
        text.contains(&format!("\"bridge\": \"{prefix}br\"")),
        "{text}"
    );
    // In the node, the bridge is the pods' gateway; each pod is one bridge port.
    let node = dp.node_netns();
    let bridge = run(&[
        "ip",
        "-n",
        &node,
        "-o",
        "addr",
        "show",
        "dev",
        &format!("{prefix}br"),
    ]);
    assert!(bridge.contains("10.244.0.1/16"), "{bridge}");
    assert_eq!(bridge_ports(dp), 2);
    let target = &format!("{b_ip}:80");
    let got = eventually(connected("x/b"), move || {
        probe(dp, Vantage::Pod("x", "a"), target, "x/b")
    })
    .await;
    assert_eq!(got, connected("x/b"));
    // The outside vantage routes the pod range via the node, which routes it to the bridge.
    let got = eventually(connected("x/b"), move || {
        probe(dp, Vantage::Outside, target, "x/b")
    })
    .await;
    assert_eq!(got, connected("x/b"));

    // DEL releases the address and removes the pod's bridge port.
    dp.delete_pod("x", "b").expect("delete");
    assert_eq!(host_local_addresses(&prefix), ["10.244.0.2"]);
    assert_eq!(bridge_ports(dp), 1);

    // A restart keeps the pod's namespace and address (CHECK passes first).
    dp.restart_pod("x", "a").expect("restart");
    let deadline = Instant::now() + CONVERGE;
    while !dp.pod_ready("x", "a") {
        assert!(
            Instant::now() < deadline,
            "x/a never got ready after its restart"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(host_local_addresses(&prefix), ["10.244.0.2"]);

    dp.shutdown();
    assert_eq!(leftovers(&prefix), Vec::<String>::new());
    assert!(!std::path::Path::new(&format!("{STATE_DIR}/{prefix}")).exists());
    assert_eq!(etc_netns(&prefix), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cni_error_fails_the_pod_and_leaves_nothing_of_it() {
    let Some(dp) = &start_bridge() else {
        return;
    };
    let prefix = dp.prefix().to_string();
    // host-local refuses once its allocation folder is not writable: an IPAM failure.
    let ipam = format!("{STATE_DIR}/{prefix}/cni/ipam");
    std::fs::write(format!("{ipam}/netassay-bridge"), "not a folder").unwrap();
    let error = dp
        .create_pod(&agent_pod("x", "a", "x/a"))
        .expect_err("the pod network refuses")
        .to_string();
    assert!(
        error.contains("attaching pod x/a to the CNI network"),
        "{error}"
    );
    assert!(error.contains("CNI ADD of plugin bridge failed"), "{error}");
    assert!(dp.pod_netns("x", "a").is_none());
    assert!(
        !netns_list()
            .iter()
            .any(|ns| ns.starts_with(&format!("{prefix}-p"))),
        "the pod's namespace is removed"
    );
    dp.shutdown();
    assert_eq!(leftovers(&prefix), Vec::<String>::new());
}

/// Not a test: the body of the child process `the_sweep_removes_an_instance_whose_owner_died`
/// starts and then kills.
#[test]
#[ignore = "helper process for the sweep test"]
fn helper_abandoned_instance() {
    if std::env::var_os("NETASSAY_SWEEP_HELPER").is_none() {
        return;
    }
    let dp = &start(FaultSet::new());
    ready_pod(dp, "x", "a");
    println!("PREFIX={}", dp.prefix());
    std::thread::sleep(Duration::from_secs(600));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sweep_removes_an_instance_whose_owner_died() {
    if !privileged() {
        return;
    }
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "helper_abandoned_instance",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("NETASSAY_SWEEP_HELPER", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufRead::lines(std::io::BufReader::new(helper.stdout.take().unwrap()));
    let prefix = stdout
        .map_while(Result::ok)
        .find_map(|line| Some(line.split_once("PREFIX=")?.1.trim().to_string()));
    let Some(prefix) = prefix else {
        let _ = helper.kill();
        panic!("the helper did not start an instance");
    };
    let _guard = RemoveOnDrop(prefix.clone());
    let mut pids = Vec::new();
    for netns in netns_list().iter().filter(|ns| ns.starts_with(&prefix)) {
        pids.extend(
            run(&["ip", "netns", "pids", netns])
                .split_whitespace()
                .map(str::to_string),
        );
    }
    assert!(
        pids.len() >= 2,
        "the pod and the external agent run: {pids:?}"
    );

    // SIGKILL: the owner gets no chance to clean up; its pods run on as orphans.
    helper.kill().unwrap();
    helper.wait().unwrap();

    // Any `new` (another test's, another process's) may sweep it first: either way, after a
    // sweep it is gone.
    assert!(
        !etc_netns(&prefix).is_empty(),
        "the pod's resolv.conf folder is left"
    );
    // Two sweeps at once (two tests' `sandbox down`, or two starts): both succeed, one of them
    // removing it.
    let other = std::thread::spawn(NetnsDataplane::sweep_dead);
    let swept = NetnsDataplane::sweep_dead().expect("sweep");
    let other = other.join().unwrap().expect("the concurrent sweep");
    assert_eq!(
        leftovers(&prefix),
        Vec::<String>::new(),
        "swept: {swept:?}, {other:?}"
    );
    assert_eq!(etc_netns(&prefix), Vec::<String>::new(), "swept: {swept:?}");
    let still: Vec<&String> = pids.iter().filter(|pid| running(pid)).collect();
    assert!(still.is_empty(), "processes survived the sweep: {still:?}");
    assert!(!std::path::Path::new(&format!("{STATE_DIR}/{prefix}.json")).exists());
}

// ---- beyond the cluster: external addresses, the outside vantage, node ports -------------------

/// A pod running the agent on `listen` (e.g. `tcp:8080`), waited for until ready.
fn serving_pod(dp: &NetnsDataplane, namespace: &str, name: &str, port: u16) -> (PodSpec, IpAddr) {
    let mut spec = agent_pod(namespace, name, &format!("{namespace}/{name}"));
    spec.command = strings(&[
        "netassay",
        "agent",
        "serve",
        "--identity",
        &format!("{namespace}/{name}"),
        "--listen",
        &format!("tcp:{port}"),
    ]);
    spec.ports = vec![ServedPort::standard(port, Protocol::Tcp)];
    let ip = dp.create_pod(&spec).expect("pod created");
    let deadline = Instant::now() + CONVERGE;
    while !dp.pod_ready(namespace, name) {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            dp.pod_log(namespace, name)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (spec, ip)
}

fn egress_policy(
    namespace: &str,
    egress: Value,
) -> k8s_openapi::api::networking::v1::NetworkPolicy {
    all_pods_policy(namespace, "Egress", egress)
}

fn ingress_policy(
    namespace: &str,
    ingress: Value,
) -> k8s_openapi::api::networking::v1::NetworkPolicy {
    all_pods_policy(namespace, "Ingress", ingress)
}

/// A policy named after its one direction (`Ingress` or `Egress`), isolating every pod of
/// `namespace` in that direction with `rules`.
fn all_pods_policy(
    namespace: &str,
    direction: &str,
    rules: Value,
) -> k8s_openapi::api::networking::v1::NetworkPolicy {
    let name = direction.to_lowercase();
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}")},
        "spec": {"podSelector": {}, "policyTypes": [direction], name.as_str(): rules},
    }))
    .unwrap()
}

/// A Service selecting pod `pod` of `namespace`: `port` -> `target`, with a node port if given.
fn service(
    namespace: &str,
    pod: &str,
    ip: &str,
    port: u16,
    target: u16,
    node_port: Option<u16>,
) -> ServiceState {
    ServiceState {
        namespace: namespace.into(),
        name: format!("s-{pod}"),
        cluster_ip: ip.parse().unwrap(),
        selector: Labels::from([("pod".to_string(), pod.to_string())]),
        ports: vec![ServicePortState {
            port,
            protocol: Protocol::Tcp,
            target_port: TargetPort::Number(target),
            node_port,
        }],
        load_balancer_ips: vec![],
    }
}

/// Polls a probe until it gives `want`, then asserts it (with the ruleset on failure).
async fn expect(
    dp: &NetnsDataplane,
    from: Vantage<'_>,
    target: &str,
    identity: &str,
    want: (String, Option<String>),
) {
    let got = eventually(want.clone(), move || probe(dp, from, target, identity)).await;
    let whence = match from {
        Vantage::Pod(ns, name) => format!("{ns}/{name}"),
        Vantage::Outside => "outside".into(),
    };
    assert_eq!(
        got,
        want,
        "{target} from {whence}; ruleset:\n{}",
        dp.node_ruleset().unwrap_or_default()
    );
    if want == dropped() {
        let confirmed = confirmed_drop(dp, from, target, identity).await;
        assert_eq!(
            confirmed,
            Ok(()),
            "{target} from {whence} dropped once but not {CONFIRMING_DROPS} times for \
             {CONFIRMING_TIMEOUT_MS} ms; ruleset:\n{}",
            dp.node_ruleset().unwrap_or_default()
        );
    }
}

// Pods reach the internet, the mirror and the metadata address via the node, each through the
// pod's egress chain: a deny-all egress policy blocks all three, an ipBlock for the mirror
// admits the mirror alone.
#[tokio::test(flavor = "multi_thread")]
async fn pod_traffic_to_external_addresses_goes_through_the_pod_egress_chain() {
    if !privileged() {
        return;
    }
    let dp = &start(FaultSet::new());
    let (a, a_ip) = ready_pod(dp, "x", "a");
    let open = state_of_pods(&[(&a, a_ip)]);
    dp.sync(&open).unwrap();
    let internet = format!("{EXTERNAL_ADDRESS}:80");
    let mirror = format!("{MIRROR_ADDRESS}:80");
    let metadata = format!("{METADATA_ADDRESS}:80");
    let me = Vantage::Pod("x", "a");
    for target in [&internet, &mirror, &metadata] {
        expect(
            dp,
            me,
            target,
            "external/internet",
            connected("external/internet"),
        )
        .await;
    }

    let mut deny = open.clone();
    deny.policies.push(egress_policy("x", json!([])));
    dp.sync(&deny).unwrap();
    for target in [&internet, &mirror, &metadata] {
        expect(dp, me, target, "external/internet", dropped()).await;
    }

    let mut mirror_only = open.clone();
    mirror_only.policies.push(egress_policy(
        "x",
        json!([{"to": [{"ipBlock": {"cidr": "203.0.113.20/32"}}]}]),
    ));
    dp.sync(&mirror_only).unwrap();
    expect(
        dp,
        me,
        &mirror,
        "external/internet",
        connected("external/internet"),
    )
    .await;
    expect(dp, me, &internet, "external/internet", dropped()).await;
    expect(dp, me, &metadata, "external/internet", dropped()).await;
}

// The outside vantage routes the pod range and the ClusterIP range via the node: with no policy
// a pod and its ClusterIP answer from outside; a deny-all ingress policy makes both drop.
#[tokio::test(flavor = "multi_thread")]
async fn the_outside_vantage_reaches_pod_and_cluster_ips_unless_policies_deny() {
    if !privileged() {
        return;
    }
    let dp = &start(FaultSet::new());
    let (a, a_ip) = ready_pod(dp, "x", "a");
    let mut open = state_of_pods(&[(&a, a_ip)]);
    open.services
        .push(service("x", "a", "10.96.0.20", 8080, 80, None));
    dp.sync(&open).unwrap();
    let pod = format!("{a_ip}:80");
    for target in [pod.as_str(), "10.96.0.20:8080"] {
        expect(dp, Vantage::Outside, target, "x/a", connected("x/a")).await;
    }
    let mut denied = open.clone();
    denied.policies.push(deny_all_ingress("x"));
    dp.sync(&denied).unwrap();
    for target in [pod.as_str(), "10.96.0.20:8080"] {
        expect(dp, Vantage::Outside, target, "x/a", dropped()).await;
    }
}

// A NodePort is DNATed at the node's address to the endpoint without SNAT: the endpoint's
// ingress policy sees the outside vantage's own address (an ipBlock for it admits, an except
// for it drops).
#[tokio::test(flavor = "multi_thread")]
async fn a_node_port_reaches_its_endpoint_with_the_client_address() {
    if !privileged() {
        return;
    }
    let dp = &start(FaultSet::new());
    let (a, a_ip) = ready_pod(dp, "x", "a");
    let mut cluster = state_of_pods(&[(&a, a_ip)]);
    cluster.node_address = Some(IpAddr::V4(NODE_ADDRESS));
    cluster
        .services
        .push(service("x", "a", "10.96.0.20", 8080, 80, Some(30080)));
    dp.sync(&cluster).unwrap();
    let node_port = format!("{NODE_ADDRESS}:30080");
    expect(dp, Vantage::Outside, &node_port, "x/a", connected("x/a")).await;

    let mut only_outside = cluster.clone();
    only_outside.policies.push(ingress_policy(
        "x",
        json!([{"from": [{"ipBlock": {"cidr": format!("{OUTSIDE_ADDRESS}/32")}}]}]),
    ));
    dp.sync(&only_outside).unwrap();
    expect(dp, Vantage::Outside, &node_port, "x/a", connected("x/a")).await;

    let mut all_but_outside = cluster.clone();
    all_but_outside.policies.push(ingress_policy(
        "x",
        json!([{"from": [{"ipBlock": {"cidr": "203.0.113.0/24", "except": [format!("{OUTSIDE_ADDRESS}/32")]}}]}]),
    ));
    dp.sync(&all_but_outside).unwrap();
    expect(dp, Vantage::Outside, &node_port, "x/a", dropped()).await;
    // A port of the node nothing is exposed on answers with a reset, from the node itself.
    let closed = probe(
        dp,
        Vantage::Outside,
        &format!("{NODE_ADDRESS}:30081"),
        "x/a",
    )
    .await;
    assert_eq!(closed.0, "rejected");
}

// A LoadBalancer Service at the node's address: <node>:80 reaches the endpoint's 8080 (the
// preset's gateway exposure), from outside and from pods.
#[tokio::test(flavor = "multi_thread")]
async fn a_load_balancer_port_is_served_at_the_node_address() {
    if !privileged() {
        return;
    }
    let dp = &start(FaultSet::new());
    let (gw, gw_ip) = serving_pod(dp, "tre-gateway", "gw", 8080);
    let (a, a_ip) = ready_pod(dp, "x", "a");
    let mut cluster = state_of_pods(&[(&gw, gw_ip), (&a, a_ip)]);
    cluster.node_address = Some(IpAddr::V4(NODE_ADDRESS));
    let mut lb = service("tre-gateway", "gw", "10.96.0.30", 80, 8080, None);
    lb.load_balancer_ips = vec![IpAddr::V4(NODE_ADDRESS)];
    cluster.services.push(lb);
    dp.sync(&cluster).unwrap();
    let exposed = format!("{NODE_ADDRESS}:80");
    expect(
        dp,
        Vantage::Outside,
        &exposed,
        "tre-gateway/gw",
        connected("tre-gateway/gw"),
    )
    .await;
    expect(
        dp,
        Vantage::Pod("x", "a"),
        &exposed,
        "tre-gateway/gw",
        connected("tre-gateway/gw"),
    )
    .await;
    // Hairpin through the node's address.
    expect(
        dp,
        Vantage::Pod("tre-gateway", "gw"),
        &exposed,
        "tre-gateway/gw",
        connected("tre-gateway/gw"),
    )
    .await;
}

// ---- cluster DNS files -------------------------------------------------------------------------

// Each pod gets /etc/netns/<netns>/resolv.conf naming cluster DNS with its namespace's search
// path; `ip netns exec` shows it as /etc/resolv.conf; it goes with the pod.
#[tokio::test(flavor = "multi_thread")]
async fn every_pod_resolves_through_cluster_dns_and_its_resolv_conf_goes_with_it() {
    if !privileged() {
        return;
    }
    let dp = &start(FaultSet::new());
    ready_pod(dp, "team-a", "a");
    let netns = dp.pod_netns("team-a", "a").unwrap();
    let file = std::path::Path::new(ETC_NETNS)
        .join(&netns)
        .join("resolv.conf");
    let want = "nameserver 10.96.0.10\nsearch team-a.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n";
    assert_eq!(std::fs::read_to_string(&file).unwrap(), want);
    let child = dp
        .exec("team-a", "a", &strings(&["cat", "/etc/resolv.conf"]))
        .unwrap();
    let output = child.wait_with_output().await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        want,
        "what the pod sees"
    );
    dp.delete_pod("team-a", "a").unwrap();
    assert!(!file.parent().unwrap().exists(), "removed with the pod");
}

// Every sync renders the cluster DNS zone and the gateway's routes from the state, replacing
// the files atomically (no temporary file is left).
#[tokio::test(flavor = "multi_thread")]
async fn every_sync_writes_the_zone_and_the_routes() {
    if !privileged() {
        return;
    }
    let dp = &start(FaultSet::new());
    let mut cluster = ClusterState::default();
    cluster
        .services
        .push(service("p1", "web", "10.96.0.20", 80, 80, None));
    cluster.gateway_routes.push(GatewayRoute {
        host: "web.example.org".into(),
        backend: "10.96.0.20:80".parse().unwrap(),
        origin: "HTTPRoute p1/web".into(),
    });
    dp.sync(&cluster).unwrap();
    let zone = std::fs::read_to_string(dp.zone_file()).unwrap();
    assert!(
        zone.contains("\ns-web.p1.svc.cluster.local 10.96.0.20\n"),
        "{zone}"
    );
    assert!(
        zone.contains("\ninternet.example.org 203.0.113.10\n"),
        "{zone}"
    );
    let routes = std::fs::read_to_string(dp.routes_file()).unwrap();
    assert!(
        routes.ends_with("\nweb.example.org 10.96.0.20:80\n"),
        "{routes}"
    );

    cluster.services.clear();
    cluster.gateway_routes.clear();
    dp.sync(&cluster).unwrap();
    let zone = std::fs::read_to_string(dp.zone_file()).unwrap();
    assert!(!zone.contains("s-web"), "{zone}");
    let routes = std::fs::read_to_string(dp.routes_file()).unwrap();
    assert!(!routes.contains("web.example.org"), "{routes}");
    let dir = dp.zone_file().parent().unwrap().to_path_buf();
    let temporary: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(temporary.is_empty(), "{temporary:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_outside_command_runs_in_the_outside_vantage() {
    if !privileged() {
        return;
    }
    let dp = &start(FaultSet::new());
    let mut argv = dp.outside_command();
    assert_eq!(argv, ["ip", "netns", "exec", &dp.outside_netns()]);
    argv.extend(strings(&["ip", "-o", "-4", "addr", "show", "dev", "eth0"]));
    let out = run(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains(&format!("{OUTSIDE_ADDRESS}/32")), "{out}");
}

// ---- every probe is a new flow -----------------------------------------------------------------

/// `count` UDP probes from `from` to `target` in one prober process: each one's outcome.
async fn udp_probes(
    dp: &NetnsDataplane,
    from: Vantage<'_>,
    target: &str,
    identity: &str,
    count: usize,
) -> Vec<String> {
    let argv = strings(&["netassay", "agent", "probe"]);
    let mut child = match from {
        Vantage::Pod(namespace, name) => dp.exec(namespace, name, &argv),
        Vantage::Outside => dp.exec_outside(&argv),
    }
    .expect("exec");
    let probes: Vec<Value> = (0..count)
        .map(|i| json!({"id": format!("p{i}"), "kind": "udp", "target": target, "expect_identity": identity}))
        .collect();
    let batch = json!({
        "schema": "netassay.probe/v1",
        "timeout_ms": 400,
        "concurrency": count,
        "probes": probes,
    });
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{batch}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.expect("prober ran");
    let outcomes: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["id"].as_str().is_some_and(|id| id.starts_with('p')))
        .map(|line| line["outcome"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        outcomes.len(),
        count,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    outcomes
}

fn udp_pod(namespace: &str, name: &str) -> PodSpec {
    let mut spec = agent_pod(namespace, name, &format!("{namespace}/{name}"));
    spec.command = strings(&[
        "netassay",
        "agent",
        "serve",
        "--identity",
        &format!("{namespace}/{name}"),
        "--listen",
        "tcp:80,udp:80",
    ]);
    spec.ports = vec![
        ServedPort::standard(80, Protocol::Tcp),
        ServedPort::standard(80, Protocol::Udp),
    ];
    spec
}

/// Kubernetes leaves existing connections to the implementation, and this dataplane (like
/// iptables and nftables CNIs) accepts established flows before any policy: a UDP probe on the
/// source port of a flow admitted before a deny rides it. 300 probes before and 300 after over
/// ~28 000 kernel-chosen ports meet such a port with odds of about 96 %; with the ports the
/// probers of the pod's network namespace take from its ledger, never.
#[tokio::test(flavor = "multi_thread")]
async fn udp_probes_after_a_deny_never_ride_a_flow_admitted_before_it() {
    if !privileged() {
        return;
    }
    udp_before_and_after_a_deny(Vantage::Pod("x", "a")).await;
}

/// The same from the outside vantage, where no agent runs: consecutive probers share their
/// namespace's ledger all the same.
#[tokio::test(flavor = "multi_thread")]
async fn udp_probes_from_outside_after_a_deny_never_ride_a_flow_admitted_before_it() {
    if !privileged() {
        return;
    }
    udp_before_and_after_a_deny(Vantage::Outside).await;
}

/// 300 UDP probes from `from` to y/b, a deny-all-ingress on y, 300 more: none of those gets
/// through. Each batch is a new prober process.
async fn udp_before_and_after_a_deny(from: Vantage<'static>) {
    let dp = &start(FaultSet::new());
    let mut pods = Vec::new();
    for (namespace, name) in [("x", "a"), ("y", "b")] {
        let spec = udp_pod(namespace, name);
        let ip = dp.create_pod(&spec).expect("pod created");
        let deadline = Instant::now() + CONVERGE;
        while !dp.pod_ready(namespace, name) {
            assert!(
                Instant::now() < deadline,
                "{:?}",
                dp.pod_log(namespace, name)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        pods.push((spec, ip));
    }
    let (a, a_ip) = &pods[0];
    let (b, b_ip) = &pods[1];
    let target = &format!("{b_ip}:80");
    let open = state_of_pods(&[(a, *a_ip), (b, *b_ip)]);
    dp.sync(&open).expect("sync without policies");
    let first = eventually(vec!["connected".to_string()], move || {
        udp_probes(dp, from, target, "y/b", 1)
    })
    .await;
    assert_eq!(first, vec!["connected".to_string()]);
    let before = udp_probes(dp, from, target, "y/b", 300).await;
    let admitted = before.iter().filter(|o| *o == "connected").count();
    assert!(
        admitted >= 290,
        "only {admitted} of 300 connected: {before:?}"
    );

    let mut denied = open.clone();
    denied.policies.push(deny_all_ingress("y"));
    dp.sync(&denied).expect("sync with the policy");
    let first = eventually(vec!["dropped".to_string()], move || {
        udp_probes(dp, from, target, "y/b", 1)
    })
    .await;
    assert_eq!(first, vec!["dropped".to_string()]);
    let after = udp_probes(dp, from, target, "y/b", 300).await;
    let through = after.iter().filter(|o| *o != "dropped").count();
    assert_eq!(
        through, 0,
        "{through} of 300 probes after the deny were not dropped (an old flow's port?): {after:?}"
    );
    // The prober's namespace kept a ledger in /dev/shm; it goes with the namespace.
    let netns = match from {
        Vantage::Pod(namespace, name) => dp.pod_netns(namespace, name).expect("the pod's netns"),
        Vantage::Outside => dp.outside_netns(),
    };
    let inode = std::os::unix::fs::MetadataExt::ino(
        &std::fs::metadata(format!("/run/netns/{netns}")).expect("the namespace exists"),
    );
    let ledger = netassay_core::probe::udp_ledger_path(inode);
    assert!(ledger.exists(), "{} was kept", ledger.display());
    dp.shutdown();
    assert!(!ledger.exists(), "{} is left behind", ledger.display());
}
