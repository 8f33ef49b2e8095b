//! The `policy_oracle` fuzz target's check (shared with tests/fuzz_regressions.rs; see
//! tests/fuzz_checks/mod.rs): a set of policies, from JSON or built from arbitrary bytes, is
//! validated as the API server does it; the valid ones must compile into an oracle over a small
//! fixed topology, and for every cell `explain` must agree with the fast path (`allows`/`cell`).
//!
//! Input: JSON (a policy or a list of policies, as the seeds from scenarios/ are), or any other
//! bytes, read with `arbitrary` into a policy set over a vocabulary that matches the topology.

use arbitrary::{Arbitrary, Unstructured};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netassay_core::model::{Labels, Pod, PodRef, Protocol, ServedPort, Topology};
use netassay_core::policy::validate::validate_network_policy;
use netassay_core::policy::Oracle;
use serde_json::{json, Map, Value};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::LazyLock;

/// Upstream's x/y/z × a/b/c model, plus x/d whose named ports differ from the standard ones
/// (`serve-80-tcp` is 8080 there) and which has an HTTP port, so named ports resolve per pod.
static TOPOLOGY: LazyLock<Topology> = LazyLock::new(|| {
    let standard = Topology::standard();
    let mut pods = standard.pods.clone();
    pods.push(Pod {
        id: PodRef::new("x", "d"),
        labels: Labels::from([("pod".to_string(), "d".to_string())]),
        ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        serve: vec![
            ServedPort {
                port: 8080,
                protocol: Protocol::Tcp,
                name: Some("serve-80-tcp".to_string()),
            },
            ServedPort::standard(81, Protocol::Udp),
        ],
        http: Some(8000),
    });
    let mut namespaces = standard.namespaces.clone();
    for ns in &mut namespaces {
        ns.labels.insert("ns".to_string(), ns.name.clone());
    }
    let mut topology = Topology::new(namespaces, pods);
    topology.assign_synthetic_ips();
    topology
});

const PORTS: [u16; 5] = [80, 81, 8000, 8080, 9000];
const MAX_POLICIES: usize = 6;

#[derive(Arbitrary, Debug)]
struct PolicySet(Vec<Policy>);

#[derive(Arbitrary, Debug)]
struct Policy {
    namespace: Word,
    name: Word,
    pod_selector: Option<Selector>,
    policy_types: Option<Vec<Word>>,
    ingress: Option<Vec<Rule>>,
    egress: Option<Vec<Rule>>,
}

#[derive(Arbitrary, Debug)]
struct Rule {
    peers: Option<Vec<Peer>>,
    ports: Option<Vec<PortEntry>>,
}

#[derive(Arbitrary, Debug)]
enum Peer {
    Pods(Selector),
    Namespaces(Selector),
    Both(Selector, Selector),
    Block(Cidr, Vec<Cidr>),
    Empty,
}

#[derive(Arbitrary, Debug)]
struct Selector {
    match_labels: Vec<(Word, Word)>,
    match_expressions: Option<Vec<Expression>>,
}

#[derive(Arbitrary, Debug)]
struct Expression {
    key: Word,
    operator: Word,
    values: Option<Vec<Word>>,
}

#[derive(Arbitrary, Debug)]
struct PortEntry {
    protocol: Option<Word>,
    port: Option<PortValue>,
    end_port: Option<i32>,
}

#[derive(Arbitrary, Debug)]
enum PortValue {
    Number(u16),
    AnyNumber(i32),
    Name(Word),
}

#[derive(Arbitrary, Debug)]
enum Cidr {
    V4(u32, u8),
    V6(u128, u8),
    Text(Word),
}

/// Mostly names the topology uses, so selectors select; sometimes any string.
#[derive(Arbitrary, Debug)]
enum Word {
    Known(u8),
    Any(String),
}

const WORDS: &[&str] = &[
    "x",
    "y",
    "z",
    "a",
    "b",
    "c",
    "d",
    "pod",
    "ns",
    "kubernetes.io/metadata.name",
    "In",
    "NotIn",
    "Exists",
    "DoesNotExist",
    "Ingress",
    "Egress",
    "TCP",
    "UDP",
    "SCTP",
    "serve-80-tcp",
    "serve-81-udp",
    "serve-81-sctp",
    "http",
    "w",
    "",
];

impl Word {
    fn text(&self) -> String {
        match self {
            Word::Known(i) => WORDS[usize::from(*i) % WORDS.len()].to_string(),
            Word::Any(s) => s.clone(),
        }
    }
}

impl Selector {
    fn json(&self) -> Value {
        let labels: Map<String, Value> = self
            .match_labels
            .iter()
            .map(|(k, v)| (k.text(), Value::String(v.text())))
            .collect();
        let mut out = json!({ "matchLabels": labels });
        if let Some(exprs) = &self.match_expressions {
            out["matchExpressions"] = exprs
                .iter()
                .map(|e| {
                    let mut x = json!({"key": e.key.text(), "operator": e.operator.text()});
                    if let Some(values) = &e.values {
                        x["values"] = values.iter().map(Word::text).collect();
                    }
                    x
                })
                .collect();
        }
        out
    }
}

impl Cidr {
    fn text(&self) -> String {
        match self {
            Cidr::V4(addr, prefix) => format!("{}/{}", Ipv4Addr::from(*addr), prefix % 40),
            Cidr::V6(addr, prefix) => {
                format!("{}/{}", std::net::Ipv6Addr::from(*addr), prefix % 140)
            }
            Cidr::Text(w) => w.text(),
        }
    }
}

impl Rule {
    fn json(&self, peer_key: &str) -> Value {
        let mut out = json!({});
        if let Some(peers) = &self.peers {
            out[peer_key] = peers
                .iter()
                .map(|p| match p {
                    Peer::Pods(s) => json!({"podSelector": s.json()}),
                    Peer::Namespaces(s) => json!({"namespaceSelector": s.json()}),
                    Peer::Both(p, n) => {
                        json!({"podSelector": p.json(), "namespaceSelector": n.json()})
                    }
                    Peer::Block(cidr, except) => json!({"ipBlock": {
                        "cidr": cidr.text(),
                        "except": except.iter().map(Cidr::text).collect::<Vec<_>>(),
                    }}),
                    Peer::Empty => json!({}),
                })
                .collect();
        }
        if let Some(ports) = &self.ports {
            out["ports"] = ports
                .iter()
                .map(|p| {
                    let mut x = json!({});
                    if let Some(proto) = &p.protocol {
                        x["protocol"] = Value::String(proto.text());
                    }
                    match &p.port {
                        Some(PortValue::Number(n)) => {
                            x["port"] = json!(PORTS[usize::from(*n) % PORTS.len()] + n / 4096)
                        }
                        Some(PortValue::AnyNumber(n)) => x["port"] = json!(n),
                        Some(PortValue::Name(w)) => x["port"] = Value::String(w.text()),
                        None => {}
                    }
                    if let Some(end) = p.end_port {
                        x["endPort"] = json!(end);
                    }
                    x
                })
                .collect();
        }
        out
    }
}

impl Policy {
    fn network_policy(&self) -> Option<NetworkPolicy> {
        let mut spec = json!({});
        if let Some(sel) = &self.pod_selector {
            spec["podSelector"] = sel.json();
        }
        if let Some(types) = &self.policy_types {
            spec["policyTypes"] = types.iter().map(Word::text).collect();
        }
        if let Some(rules) = &self.ingress {
            spec["ingress"] = rules.iter().map(|r| r.json("from")).collect();
        }
        if let Some(rules) = &self.egress {
            spec["egress"] = rules.iter().map(|r| r.json("to")).collect();
        }
        serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": self.name.text(), "namespace": self.namespace.text()},
            "spec": spec,
        }))
        .ok()
    }
}

/// The policies the input describes.
fn policies(data: &[u8]) -> Vec<NetworkPolicy> {
    match data.first() {
        Some(b'[') => serde_json::from_slice(data).unwrap_or_default(),
        Some(b'{') => serde_json::from_slice(data)
            .map(|p| vec![p])
            .unwrap_or_default(),
        _ => {
            let u = Unstructured::new(data);
            let Ok(PolicySet(set)) = PolicySet::arbitrary_take_rest(u) else {
                return Vec::new();
            };
            set.iter().filter_map(Policy::network_policy).collect()
        }
    }
}

/// Checks one input; `true` when at least one valid policy compiled into the oracle whose every
/// cell was then checked (an empty set is checked too, but proves little).
pub fn check(data: &[u8]) -> bool {
    let mut set = policies(data);
    set.truncate(MAX_POLICIES);
    for np in &mut set {
        // The API server takes the namespace from the request path.
        let meta = &mut np.metadata;
        if meta.namespace.as_deref().unwrap_or("").is_empty() {
            meta.namespace = Some("x".to_string());
        }
    }
    let valid: Vec<NetworkPolicy> = set
        .into_iter()
        .filter(|np| validate_network_policy(np).is_empty())
        .collect();
    let topology = &*TOPOLOGY;
    let oracle = match Oracle::new(topology, &valid) {
        Ok(o) => o,
        Err(e) => panic!("the oracle refuses policies the validator accepts: {e}\n{valid:#?}"),
    };
    let pods = topology.pods.len();
    for from in 0..pods {
        for to in 0..pods {
            for port in PORTS {
                for protocol in Protocol::ALL {
                    let fast = oracle.allows(from, to, port, protocol);
                    let cell = oracle.cell(from, to, port, protocol);
                    let why = oracle.explain(from, to, port, protocol);
                    assert_eq!(cell.verdict.is_allow(), fast, "cell and allows differ");
                    assert_eq!(why.verdict, cell.verdict, "explain's verdict differs");
                    assert_eq!(why.ip_dependent, cell.ip_dependent);
                    assert_eq!(
                        why.egress.allows() && why.ingress.allows(),
                        fast,
                        "explain's reasons disagree with the fast path for {} -> {} {port}/{}: {}",
                        topology.pods[from].id,
                        topology.pods[to].id,
                        protocol.as_str(),
                        why.summary()
                    );
                }
            }
        }
    }
    !valid.is_empty()
}
