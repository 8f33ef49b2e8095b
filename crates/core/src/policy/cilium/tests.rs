//! Table-driven checks of the Cilium oracle and validator. Every case cites the Cilium v1.20.2
//! source (path:line) or documentation it checks; the numbers `#N` are the rows of the research
//! notes' test table (issue 26).

use super::model::CiliumPolicy;
use super::oracle::{CiliumOracle, Endpoint, NameFact, NameFacts, SideDecision};
use super::validate::validate_cilium_policy;
use crate::model::{PodRef, Protocol, ServedPort, Topology, Verdict};
use crate::policy::Oracle;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::{json, Value};
use std::net::IpAddr;

const EXT: &str = "203.0.113.10";
const EXT2: &str = "203.0.113.11";

fn cnp(ns: &str, name: &str, spec: Value) -> CiliumPolicy {
    serde_json::from_value(json!({
        "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
        "metadata": {"name": name, "namespace": ns}, "spec": spec
    }))
    .expect("CNP parses")
}

fn ccnp(name: &str, spec: Value) -> CiliumPolicy {
    serde_json::from_value(json!({
        "apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": {"name": name}, "spec": spec
    }))
    .expect("CCNP parses")
}

fn np(ns: &str, name: &str, spec: Value) -> NetworkPolicy {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}, "spec": spec}))
        .expect("NetworkPolicy parses")
}

fn ep(t: &Topology, s: &str) -> Endpoint {
    match s {
        "host" => Endpoint::Host,
        "apiserver" => Endpoint::KubeApiserver,
        "ext" => Endpoint::World(EXT.parse().expect("ip")),
        "ext2" => Endpoint::World(EXT2.parse().expect("ip")),
        pod => Endpoint::Pod(
            t.pod_index(&pod.parse::<PodRef>().expect("ns/pod"))
                .unwrap_or_else(|| panic!("no pod {pod}")),
        ),
    }
}

/// Expected verdict of a cell: allow, deny, or not judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    A,
    D,
    N,
}

fn want(v: Option<Verdict>) -> Want {
    match v {
        Some(Verdict::Allow) => Want::A,
        Some(Verdict::Deny) => Want::D,
        None => Want::N,
    }
}

struct Case {
    /// `#row rule — source:line`.
    rule: &'static str,
    topology: Topology,
    nps: Vec<NetworkPolicy>,
    cilium: Vec<CiliumPolicy>,
    facts: NameFacts,
    cells: Vec<(&'static str, &'static str, u16, Protocol, Want)>,
}

fn case(
    rule: &'static str,
    nps: Vec<NetworkPolicy>,
    cilium: Vec<CiliumPolicy>,
    cells: Vec<(&'static str, &'static str, u16, Protocol, Want)>,
) -> Case {
    Case {
        rule,
        topology: Topology::standard(),
        nps,
        cilium,
        facts: NameFacts::Unknown,
        cells,
    }
}

use Protocol::{Sctp as S, Tcp as T, Udp as U};
use Want::{A, D, N};

fn y_a() -> Value {
    json!({"matchLabels": {"k8s:io.kubernetes.pod.namespace": "y", "pod": "a"}})
}

fn ports(list: Value) -> Value {
    json!([{"ports": list}])
}

fn cases() -> Vec<Case> {
    let mut out = vec![
        case(
            "#1 a CNP deny beats a v1 NP allow — Documentation/security/policy/deny.rst:15-17; pkg/policy/l4.go:329-335",
            vec![np("x", "allow-y-a", json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y"}}, "podSelector": {"matchLabels": {"pod": "a"}}}]}]}))],
            vec![cnp("x", "deny-y-a", json!({"endpointSelector": {}, "ingressDeny": [{"fromEndpoints": [y_a()]}]}))],
            vec![("y/a", "x/a", 80, T, D), ("y/b", "x/a", 80, T, D), ("x/b", "y/a", 80, T, A)],
        ),
        case(
            "#2 a CCNP deny beats a CNP allow — deny.rst:15-17; pkg/policy/repository.go:438-464",
            vec![],
            vec![
                cnp("x", "allow-all", json!({"endpointSelector": {}, "ingress": [{"fromEntities": ["all"]}]})),
                ccnp("y-not-to-x", json!({"endpointSelector": {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "y"}}, "egressDeny": [{"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "x"}}]}], "enableDefaultDeny": {"egress": false}})),
            ],
            vec![("y/b", "x/a", 80, T, D), ("z/b", "x/a", 80, T, A), ("y/b", "z/a", 80, T, A)],
        ),
        case(
            "#3 a port-scoped deny under an L3 allow — deny.rst:25-56",
            vec![],
            vec![cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"fromEndpoints": [y_a()]}], "ingressDeny": [{"fromEndpoints": [y_a()], "toPorts": ports(json!([{"port": "80", "protocol": "TCP"}]))}]}))],
            vec![("y/a", "x/a", 80, T, D), ("y/a", "x/a", 81, T, A), ("y/a", "x/a", 80, U, A), ("y/b", "x/a", 81, T, D)],
        ),
        case(
            "#4 a deny-only policy makes its endpoints default-deny — pkg/policy/api/rule_validation.go:56-58; deny.rst:19-20",
            vec![],
            vec![cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "ingressDeny": [{"fromEndpoints": [y_a()]}]}))],
            vec![("y/b", "x/a", 80, T, D), ("y/a", "x/a", 80, T, D), ("x/b", "x/c", 80, T, A)],
        ),
        case(
            "#5 deny-only with enableDefaultDeny.ingress=false denies only its peers — repository.go:485-490; intro.rst:56-63",
            vec![],
            vec![cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "ingressDeny": [{"fromEndpoints": [y_a()]}], "enableDefaultDeny": {"ingress": false}}))],
            vec![("y/b", "x/a", 80, T, A), ("y/a", "x/a", 80, T, D)],
        ),
        case(
            "#6 `ingress: [{}]` allows nothing in a CNP, everything in a v1 NP — pkg/policy/rule.go:369-375; parserules.go:22-29",
            vec![np("y", "v1-allow", json!({"podSelector": {}, "ingress": [{}]}))],
            vec![cnp("x", "p", json!({"endpointSelector": {}, "ingress": [{}]}))],
            vec![("x/b", "x/a", 80, T, D), ("z/a", "x/c", 81, U, D), ("z/a", "y/a", 80, T, A)],
        ),
        case(
            "#7 a missing section leaves that direction open — pkg/policy/utils/parserules.go:19-80",
            vec![],
            vec![cnp("x", "p", json!({"endpointSelector": {}, "egress": [{"toEndpoints": [{}]}]}))],
            vec![("y/a", "x/a", 80, T, A), ("x/a", "y/a", 80, T, D), ("x/a", "x/b", 80, T, A)],
        ),
        case(
            "#8 enableDefaultDeny.egress=false with an allow rule leaves the rest open — repository.go:509-518; api/rule.go:119-136",
            vec![],
            vec![cnp("x", "lax", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "egress": [{"toEndpoints": [y_a()]}], "enableDefaultDeny": {"egress": false}}))],
            vec![("x/a", "z/b", 80, T, A), ("x/a", "y/a", 80, T, A)],
        ),
        case(
            "#9 any default-deny rule wins over non-default-deny ones — repository.go:419-428; api/rule.go:129-131",
            vec![],
            vec![
                cnp("x", "lax", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "egress": [{"toEndpoints": [y_a()]}], "enableDefaultDeny": {"egress": false}})),
                cnp("x", "strict", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "egress": [{"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "y", "pod": "b"}}]}]})),
            ],
            vec![("x/a", "z/b", 80, T, D), ("x/a", "y/a", 80, T, A), ("x/a", "y/b", 80, T, A)],
        ),
        case(
            "#10 CNP `fromEndpoints: [{}]` is the policy's own namespace — pkg/k8s/apis/cilium.io/utils/utils.go:136-148; layer3.rst:116-119",
            vec![],
            vec![cnp("x", "p", json!({"endpointSelector": {}, "ingress": [{"fromEndpoints": [{}]}]}))],
            vec![("x/b", "x/a", 80, T, A), ("y/b", "x/a", 80, T, D), ("ext", "x/a", 80, T, D)],
        ),
        case(
            "#11 CCNP `fromEndpoints: [{}]` is every pod, not the world — utils.go:137-145",
            vec![],
            vec![ccnp("p", json!({"endpointSelector": {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "x", "pod": "a"}}, "ingress": [{"fromEndpoints": [{}]}]}))],
            vec![("y/b", "x/a", 80, T, A), ("ext", "x/a", 80, T, D), ("host", "x/a", 80, T, A)],
        ),
        case(
            "#12 a namespace key in a peer lifts the namespace restriction, prefixed or not — utils.go:136; api/selector.go:221-231; cnp_types.go:195-202",
            vec![],
            vec![
                cnp("x", "prefixed", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"fromEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "y"}}]}]})),
                cnp("x", "plain", json!({"endpointSelector": {"matchLabels": {"pod": "b"}}, "ingress": [{"fromEndpoints": [{"matchLabels": {"io.kubernetes.pod.namespace": "y"}}]}]})),
            ],
            vec![("y/c", "x/a", 80, T, A), ("y/c", "x/b", 80, T, A), ("x/c", "x/a", 80, T, D), ("x/c", "x/b", 80, T, D)],
        ),
        case(
            "#14 a CNP endpointSelector cannot leave its namespace: the forced namespace match replaces the user's — utils.go:366-389; api/selector.go:197-203",
            vec![],
            vec![cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "y"}}, "ingress": [{}]}))],
            vec![("z/a", "y/a", 80, T, A), ("z/a", "x/a", 80, T, D)],
        ),
        case(
            "#15 a CCNP `endpointSelector: {}` selects every namespace but never the host; the host still reaches pods — utils.go:378; rule.go:462-470; repository.go:493-497",
            vec![],
            vec![ccnp("p", json!({"endpointSelector": {}, "ingress": [{"fromEndpoints": [{"matchLabels": {"pod": "a"}}]}]}))],
            vec![("y/b", "x/c", 80, T, D), ("z/a", "x/c", 80, T, A), ("host", "x/c", 80, T, A), ("x/c", "host", 80, T, A)],
        ),
        case(
            "#16 a CIDR rule never matches a pod address (CNP and v1 ipBlock) — pkg/policy/types/selector.go:526-533; layer3.rst:404-407; network_policy.go:115-117",
            vec![np("x", "v1-cidr", json!({"podSelector": {"matchLabels": {"pod": "b"}}, "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": {"cidr": "10.244.1.11/32"}}]}]}))],
            vec![cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "egress": [{"toCIDR": ["10.244.1.11/32", "203.0.113.0/24"]}]}))],
            vec![("x/a", "y/b", 80, T, D), ("x/b", "y/b", 80, T, D), ("x/a", "ext", 443, T, A)],
        ),
        case(
            "#17 `toCIDR: 0.0.0.0/0` is the world and only the world — pkg/labels/cidr.go:105-108; layer3.rst:289-293",
            vec![],
            vec![cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "egress": [{"toCIDR": ["0.0.0.0/0"]}]}))],
            vec![("x/a", "ext", 80, T, A), ("x/a", "y/b", 80, T, D), ("x/a", "host", 80, T, D), ("x/a", "apiserver", 443, T, D)],
        ),
        case(
            "#18 toCIDRSet except carves out of its own cidr — rule_validation.go:721-733; types/selector.go:440-454",
            vec![],
            vec![cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "egress": [{"toCIDRSet": [{"cidr": "203.0.113.0/24", "except": ["203.0.113.10/32"]}]}]}))],
            vec![("x/a", "ext", 80, T, D), ("x/a", "ext2", 80, T, A)],
        ),
        case(
            "#19 toEntities world excludes the cluster — pkg/policy/api/entity.go:119; types/selector.go:526-533",
            vec![],
            vec![cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "egress": [{"toEntities": ["world"]}]}))],
            vec![("x/a", "ext", 80, T, A), ("x/a", "y/b", 80, T, D), ("x/a", "host", 80, T, D)],
        ),
        case(
            "#20 toEntities cluster is every pod, the host and the API server, not the world — entity.go:102-111,169-172; layer3.rst:267-272",
            vec![],
            vec![cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "egress": [{"toEntities": ["cluster"]}]}))],
            vec![("x/a", "z/b", 80, T, A), ("x/a", "host", 80, T, A), ("x/a", "apiserver", 443, T, A), ("x/a", "ext", 80, T, D)],
        ),
        case(
            "#21 toEntities all is everything — entity.go:118",
            vec![],
            vec![cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "egress": [{"toEntities": ["all"]}]}))],
            vec![("x/a", "ext", 80, T, A), ("x/a", "z/b", 81, S, A), ("x/a", "host", 80, T, A)],
        ),
        case(
            "#22 the local host always reaches local pods; egress gets no such rule — repository.go:493-497; daemon/cmd/daemon.go:88-96; layer3.rst:321-324",
            vec![],
            vec![cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{}], "egress": [{}]}))],
            vec![("host", "x/a", 80, T, A), ("y/b", "x/a", 80, T, D), ("x/a", "host", 80, T, D)],
        ),
        case(
            "#23 a toPorts-only rule is any peer on those ports, world included — egress.go:24-26; l4.go:1026-1032",
            vec![],
            vec![cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "egress": [{"toPorts": ports(json!([{"port": "443", "protocol": "TCP"}]))}]}))],
            vec![("x/a", "ext", 443, T, A), ("x/a", "y/b", 443, T, A), ("x/a", "y/b", 80, T, D), ("x/a", "ext", 443, U, D)],
        ),
        case(
            "#24 an empty peer list selects nothing but still isolates — parserules.go:149-157; rule.go:359-362",
            vec![],
            vec![cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "egress": [{"toEndpoints": []}]}))],
            vec![("x/a", "x/b", 80, T, D), ("x/a", "ext", 80, T, D)],
        ),
        case(
            "#25 an omitted protocol or ANY is TCP, UDP and SCTP — api/l4.go:56-57; rule.go:395-402",
            vec![],
            vec![
                cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"toPorts": ports(json!([{"port": "80"}]))}]})),
                cnp("x", "q", json!({"endpointSelector": {"matchLabels": {"pod": "b"}}, "ingress": [{"toPorts": ports(json!([{"port": "80", "protocol": "ANY"}]))}]})),
            ],
            vec![("y/a", "x/a", 80, T, A), ("y/a", "x/a", 80, U, A), ("y/a", "x/a", 80, S, A), ("y/a", "x/a", 81, T, D), ("y/a", "x/b", 80, S, A), ("y/a", "x/b", 81, U, D)],
        ),
        case(
            "#26 endPort makes a range; endPort below port is the single port — pkg/policy/l4.go:718-721; portrange.go:42-45",
            vec![],
            vec![
                cnp("x", "range", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"toPorts": ports(json!([{"port": "80", "endPort": 81, "protocol": "TCP"}]))}]})),
                cnp("x", "backwards", json!({"endpointSelector": {"matchLabels": {"pod": "b"}}, "ingress": [{"toPorts": ports(json!([{"port": "81", "endPort": 80, "protocol": "TCP"}]))}]})),
            ],
            vec![("y/a", "x/a", 80, T, A), ("y/a", "x/a", 81, T, A), ("y/a", "x/b", 80, T, D), ("y/a", "x/b", 81, T, A)],
        ),
        case(
            "#29 a service-account key in a CNP peer matches in the policy's namespace (probe pods run as `default`) — pkg/k8s/utils/utils.go:234-238; kubernetes.rst:160-199",
            vec![],
            vec![
                cnp("x", "sa", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"fromEndpoints": [{"matchLabels": {"k8s:io.cilium.k8s.policy.serviceaccount": "default"}}]}]})),
                cnp("x", "sa1", json!({"endpointSelector": {"matchLabels": {"pod": "b"}}, "ingress": [{"fromEndpoints": [{"matchLabels": {"k8s:io.cilium.k8s.policy.serviceaccount": "sa1"}}]}]})),
            ],
            vec![("x/c", "x/a", 80, T, A), ("y/c", "x/a", 80, T, D), ("x/c", "x/b", 80, T, D)],
        ),
        case(
            "#30 toServices is not judged unless another rule decides — pkg/policy/k8s/service.go:444-452,459-490",
            vec![],
            vec![cnp("x", "p", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "egress": [
                {"toServices": [{"k8sService": {"serviceName": "s", "namespace": "y"}}]},
                {"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "y", "pod": "b"}}]}
            ]}))],
            vec![("x/a", "y/c", 80, T, N), ("x/a", "y/b", 80, T, A)],
        ),
        case(
            "#34 both ends must allow — layer3.rst:90-92,124-126",
            vec![],
            vec![
                cnp("x", "out", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "egress": [{"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "y", "pod": "b"}}]}]})),
                cnp("y", "closed", json!({"endpointSelector": {"matchLabels": {"pod": "b"}}, "ingress": [{}]})),
            ],
            vec![("x/a", "y/b", 80, T, D), ("x/a", "y/c", 80, T, D), ("y/c", "y/a", 80, T, A)],
        ),
        case(
            "a deny with ports and no peer denies those ports from everyone — rule.go:356-415 (shared by allow and deny)",
            vec![],
            vec![cnp("x", "p", json!({"endpointSelector": {}, "ingressDeny": [{"toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}], "enableDefaultDeny": {"ingress": false}}))],
            vec![("y/a", "x/a", 80, T, D), ("y/a", "x/a", 81, T, A), ("ext", "x/b", 80, T, D)],
        ),
        case(
            "a CCNP subject NotIn a namespace label selects namespaces without the label — pkg/policy/types/requirements.go:171-183",
            vec![],
            vec![ccnp("not-projects", json!({"endpointSelector": {"matchExpressions": [{"key": "io.cilium.k8s.namespace.labels.k8tre.io/resource-type", "operator": "NotIn", "values": ["project-namespace"]}]}, "egress": [{"toEntities": ["cluster"]}]}))],
            vec![("x/a", "y/a", 80, T, A), ("x/a", "ext", 80, T, D)],
        ),
    ];

    // #13: namespace-label keys select across namespaces (kubernetes.rst:106-121; utils.go:146).
    let mut t13 = Topology::standard();
    if let Some(ns) = t13.namespace_mut("y") {
        ns.labels.insert("team".into(), "red".into());
    }
    out.push(Case {
        rule: "#13 a namespace-label key in a CNP peer selects across namespaces — utils.go:146; kubernetes.rst:106-121",
        topology: t13,
        nps: vec![],
        cilium: vec![cnp("x", "p", json!({"endpointSelector": {}, "ingress": [{"fromEndpoints": [{"matchLabels": {"io.cilium.k8s.namespace.labels.team": "red"}}]}]}))],
        facts: NameFacts::Unknown,
        cells: vec![("y/a", "x/a", 80, T, A), ("z/a", "x/a", 80, T, D), ("x/b", "x/a", 80, T, D)],
    });

    // #27: named ports resolve on the subject pod (pkg/policy/l4.go:756-761).
    let mut t27 = Topology::standard();
    if let Some(p) = t27.pod_mut(&PodRef::new("x", "b")) {
        for s in &mut p.serve {
            s.name = None;
        }
    }
    out.push(Case {
        rule: "#27 a named port resolves on the destination pod per protocol; a pod without the name allows nothing — pkg/policy/l4.go:756-761",
        topology: t27,
        nps: vec![],
        cilium: vec![cnp("x", "p", json!({"endpointSelector": {}, "ingress": [{"toPorts": ports(json!([{"port": "serve-80-tcp", "protocol": "TCP"}]))}]}))],
        facts: NameFacts::Unknown,
        cells: vec![("y/a", "x/a", 80, T, A), ("y/a", "x/a", 80, U, D), ("y/a", "x/b", 80, T, D)],
    });

    // #28: kubernetes.io/ pod labels are not identity labels (labelsfilter/filter.go:226-248,336).
    let mut t28 = Topology::standard();
    if let Some(p) = t28.pod_mut(&PodRef::new("x", "b")) {
        p.labels.insert("kubernetes.io/role".into(), "web".into());
        p.labels.insert("role".into(), "web".into());
    }
    out.push(Case {
        rule: "#28 `kubernetes.io/*` pod labels are invisible to selectors, also in v1 NetworkPolicy — pkg/labelsfilter/filter.go:226-248,336",
        topology: t28,
        nps: vec![np("x", "v1", json!({"podSelector": {"matchLabels": {"pod": "c"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"kubernetes.io/role": "web"}}}]}]}))],
        cilium: vec![
            cnp("x", "k8s-io", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"fromEndpoints": [{"matchLabels": {"kubernetes.io/role": "web"}}]}]})),
            cnp("y", "plain", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"fromEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "x", "role": "web"}}]}]})),
        ],
        facts: NameFacts::Unknown,
        cells: vec![("x/b", "x/a", 80, T, D), ("x/b", "x/c", 80, T, D), ("x/b", "y/a", 80, T, A)],
    });

    // #32: toFQDNs needs name facts; never matches pods (egress.go:151-166; layer7.rst:196-223).
    let fqdn = cnp(
        "x",
        "mirror",
        json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "egress": [{"toFQDNs": [{"matchName": "mirror.test"}], "toPorts": ports(json!([{"port": "443", "protocol": "TCP"}]))}]}),
    );
    out.push(Case {
        rule: "#32a toFQDNs without name facts is not judged for world addresses, and never matches pods — layer7.rst:196-223; egress.go:161-162",
        topology: Topology::standard(),
        nps: vec![],
        cilium: vec![fqdn.clone()],
        facts: NameFacts::Unknown,
        cells: vec![("x/a", "ext", 443, T, N), ("x/a", "y/b", 443, T, D), ("x/a", "ext", 80, T, D)],
    });
    out.push(Case {
        rule: "#32b toFQDNs allows exactly the addresses the name was seen to resolve to — layer7.rst:196-223",
        topology: Topology::standard(),
        nps: vec![],
        cilium: vec![fqdn],
        facts: NameFacts::Observed(vec![NameFact {
            name: "mirror.test".into(),
            address: EXT.parse::<IpAddr>().expect("ip"),
        }]),
        cells: vec![("x/a", "ext", 443, T, A), ("x/a", "ext2", 443, T, D), ("x/a", "ext", 80, T, D)],
    });

    // #33: a port with DNS rules is answered by the DNS proxy (layer7.rst:46-50).
    let mut t33 = Topology::standard();
    if let Some(p) = t33.pod_mut(&PodRef::new("y", "c")) {
        p.serve.push(ServedPort {
            port: 53,
            protocol: Protocol::Udp,
            name: Some("dns".into()),
        });
    }
    out.push(Case {
        rule: "#33 a port that carries DNS rules is not judged for non-DNS probes — layer7.rst:46-50,235-249",
        topology: t33,
        nps: vec![],
        cilium: vec![cnp("x", "dns", json!({"endpointSelector": {"matchLabels": {"pod": "a"}}, "egress": [{"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "y", "pod": "c"}}], "toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}], "rules": {"dns": [{"matchPattern": "*"}]}}]}]}))],
        facts: NameFacts::Unknown,
        cells: vec![("x/a", "y/c", 53, U, N), ("x/a", "y/c", 80, T, D)],
    });
    out
}

#[test]
fn cilium_semantics_table() {
    let mut failures = Vec::new();
    let all = cases();
    for c in &all {
        for p in &c.cilium {
            let errs = validate_cilium_policy(p);
            assert!(
                errs.is_empty(),
                "{}: {} is invalid: {errs:?}",
                c.rule,
                p.policy_ref()
            );
        }
        let o = CiliumOracle::new(&c.topology, &c.nps, &c.cilium, c.facts.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", c.rule));
        for (from, to, port, proto, expected) in &c.cells {
            let (f, t) = (ep(&c.topology, from), ep(&c.topology, to));
            let got = want(o.judge(f, t, *port, *proto).verdict);
            let e = o.explain(f, t, *port, *proto);
            assert_eq!(want(e.verdict), got, "explain agrees with judge");
            if got != *expected {
                failures.push(format!(
                    "{}\n    {from} -> {to} {port}/{proto}: want {expected:?}, got {got:?} ({})",
                    c.rule,
                    e.summary()
                ));
            }
        }
    }
    assert!(
        all.len() >= 30,
        "at least 30 semantic cases, have {}",
        all.len()
    );
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn explanations_name_the_deciding_rule() {
    let t = Topology::standard();
    let pols = vec![
        ccnp(
            "tre-default",
            json!({"endpointSelector": {}, "egressDeny": [{"toEntities": ["world"]}], "egress": [{"toEntities": ["all"]}]}),
        ),
        cnp(
            "x",
            "in",
            json!({"endpointSelector": {}, "ingress": [{"fromEndpoints": [{"matchLabels": {"pod": "z"}}]}, {"fromEndpoints": [{"matchLabels": {"pod": "b"}}]}]}),
        ),
    ];
    let o = CiliumOracle::new(&t, &[], &pols, NameFacts::Unknown).expect("compiles");
    let e = o.explain(ep(&t, "x/a"), ep(&t, "ext"), 80, T);
    assert_eq!(
        e.summary().split(';').next(),
        Some("egress denied by CCNP tre-default egressDeny[0]")
    );
    let e = o.explain(ep(&t, "x/b"), ep(&t, "x/a"), 80, T);
    assert!(
        e.summary()
            .contains("ingress allowed by CNP x/in ingress[1]"),
        "{}",
        e.summary()
    );
    let e = o.explain(ep(&t, "y/b"), ep(&t, "x/a"), 80, T);
    assert!(matches!(e.ingress.decision, SideDecision::DefaultDeny));
    assert!(
        e.summary().contains("selected by CNP x/in"),
        "{}",
        e.summary()
    );
}

/// With only v1 NetworkPolicies and no ipBlock or `kubernetes.io/` pod labels, Cilium's
/// semantics equal Kubernetes': the two oracles agree on every pod-to-pod cell of the standard
/// model (the union of allows, isolation per direction, both ends).
#[test]
fn v1_only_agrees_with_the_kubernetes_oracle() {
    let t = Topology::standard();
    let nps = vec![
        np(
            "x",
            "deny-in",
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        ),
        np(
            "x",
            "allow-y",
            json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y"}}}], "ports": [{"port": 80}, {"protocol": "UDP", "port": "serve-81-udp"}]}]}),
        ),
        np(
            "y",
            "egress",
            json!({"podSelector": {"matchExpressions": [{"key": "pod", "operator": "NotIn", "values": ["c"]}]}, "policyTypes": ["Egress"], "egress": [{"to": [{"podSelector": {}}]}, {"ports": [{"port": 80, "endPort": 81, "protocol": "TCP"}]}]}),
        ),
    ];
    let k8s = Oracle::new(&t, &nps).expect("k8s oracle");
    let cil = CiliumOracle::new(&t, &nps, &[], NameFacts::Unknown).expect("cilium oracle");
    for f in 0..t.pods.len() {
        for d in 0..t.pods.len() {
            for port in [80, 81] {
                for proto in Protocol::ALL {
                    let a = k8s.cell(f, d, port, proto).verdict;
                    let b = cil
                        .judge(Endpoint::Pod(f), Endpoint::Pod(d), port, proto)
                        .verdict;
                    assert_eq!(
                        Some(a),
                        b,
                        "{} -> {} {port}/{proto}",
                        t.pods[f].id,
                        t.pods[d].id
                    );
                }
            }
        }
    }
}

// ---- validation ----

fn raw(kind: &str, ns: Option<&str>, spec: Value) -> CiliumPolicy {
    let mut meta = json!({"name": "p"});
    if let Some(ns) = ns {
        meta["namespace"] = json!(ns);
    }
    serde_json::from_value(
        json!({"apiVersion": "cilium.io/v2", "kind": kind, "metadata": meta, "spec": spec}),
    )
    .expect("parses")
}

#[test]
fn validation_table() {
    let sel = json!({});
    let c = |spec: Value| raw("CiliumNetworkPolicy", Some("x"), spec);
    let cases: Vec<(&str, CiliumPolicy, &str, &str)> = vec![
        (
            "no sections — rule_validation.go:43-45",
            c(json!({"endpointSelector": sel})),
            "spec",
            "at least one of Ingress",
        ),
        (
            "present but empty sections — rule_validation.go:43-45",
            c(json!({"endpointSelector": sel, "ingress": []})),
            "spec",
            "at least one of Ingress",
        ),
        (
            "no endpointSelector — rule_validation.go:66-68",
            c(json!({"ingress": [{}]})),
            "spec.endpointSelector",
            "one of EndpointSelector or NodeSelector",
        ),
        (
            "nodeSelector in a CNP — cnp_types.go:199-201",
            c(json!({"nodeSelector": sel, "ingress": [{}]})),
            "spec.nodeSelector",
            "cannot have NodeSelector",
        ),
        (
            "both selectors — rule_validation.go:69-71",
            c(json!({"endpointSelector": sel, "nodeSelector": sel, "ingress": [{}]})),
            "spec.nodeSelector",
            "cannot have both",
        ),
        (
            "#36 two L3 kinds in one rule — rule_validation.go:200-216",
            c(
                json!({"endpointSelector": sel, "ingress": [{"fromEndpoints": [{}], "fromCIDR": ["10.0.0.0/8"]}]}),
            ),
            "spec.ingress[0]",
            "combining FromEndpoints and FromCIDR is not supported yet",
        ),
        (
            "#37 toFQDNs with toEndpoints — rule_validation.go:354-358,411-418",
            c(
                json!({"endpointSelector": sel, "egress": [{"toEndpoints": [{}], "toFQDNs": [{"matchName": "a.b"}]}]}),
            ),
            "spec.egress[0]",
            "combining ToEndpoints and ToFQDNs",
        ),
        (
            "#38 DNS rules on ingress — rule_validation.go:143-147",
            c(
                json!({"endpointSelector": sel, "ingress": [{"toPorts": [{"ports": [{"port": "53"}], "rules": {"dns": [{"matchPattern": "*"}]}}]}]}),
            ),
            "spec.ingress[0].toPorts[0].rules.dns",
            "L7 protocol DNS is not supported on ingress yet",
        ),
        (
            "#38 an unsubstituted ${DOMAIN} pattern — fqdn.go:63; matchpattern.go:79-81",
            c(
                json!({"endpointSelector": sel, "egress": [{"toFQDNs": [{"matchPattern": "*.${DOMAIN}"}]}]}),
            ),
            "spec.egress[0].toFQDNs[0].matchPattern",
            "Invalid characters in MatchPattern",
        ),
        (
            "#39 port 70000 passes the CRD, not the agent — rule_validation.go:625-628",
            c(
                json!({"endpointSelector": sel, "ingress": [{"toPorts": [{"ports": [{"port": "70000"}]}]}]}),
            ),
            "spec.ingress[0].toPorts[0].ports[0].port",
            "value out of range",
        ),
        (
            "empty port — rule_validation.go:608-611",
            c(
                json!({"endpointSelector": sel, "ingress": [{"toPorts": [{"ports": [{"protocol": "TCP"}]}]}]}),
            ),
            "spec.ingress[0].toPorts[0].ports[0].port",
            "port must be specified",
        ),
        (
            "lower-case protocol — CRD enum, api/l4.go:71",
            c(
                json!({"endpointSelector": sel, "ingress": [{"toPorts": [{"ports": [{"port": "80", "protocol": "tcp"}]}]}]}),
            ),
            "spec.ingress[0].toPorts[0].ports[0].protocol",
            "Unsupported value",
        ),
        (
            "endPort above 65535 — CRD maximum",
            c(
                json!({"endpointSelector": sel, "ingress": [{"toPorts": [{"ports": [{"port": "80", "endPort": 70000}]}]}]}),
            ),
            "spec.ingress[0].toPorts[0].ports[0].endPort",
            "between 0 and 65535",
        ),
        (
            "a bare IP in toCIDR — CRD format: cidr (cidr.go:15)",
            c(json!({"endpointSelector": sel, "egress": [{"toCIDR": ["10.0.0.1"]}]})),
            "spec.egress[0].toCIDR[0]",
            "must be of type cidr",
        ),
        (
            "except outside its cidr — rule_validation.go:729-732",
            c(
                json!({"endpointSelector": sel, "egress": [{"toCIDRSet": [{"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24"]}]}]}),
            ),
            "spec.egress[0].toCIDRSet[0].except[0]",
            "does not contain exclude CIDR prefix",
        ),
        (
            "CIDR set with neither cidr nor group — rule_validation.go:695-697",
            c(json!({"endpointSelector": sel, "egress": [{"toCIDRSet": [{}]}]})),
            "spec.egress[0].toCIDRSet[0]",
            "one of cidr, cidrGroupRef",
        ),
        (
            "unknown entity — entity.go:16; rule_validation.go:248-253",
            c(json!({"endpointSelector": sel, "egress": [{"toEntities": ["internet"]}]})),
            "spec.egress[0].toEntities[0]",
            "Unsupported value",
        ),
        (
            "world-ipv4 is not in the CRD enum — entity.go:16",
            c(json!({"endpointSelector": sel, "egress": [{"toEntities": ["world-ipv4"]}]})),
            "spec.egress[0].toEntities[0]",
            "Unsupported value",
        ),
        (
            "both matchName and matchPattern — fqdn.go:101-103",
            c(
                json!({"endpointSelector": sel, "egress": [{"toFQDNs": [{"matchName": "a.b", "matchPattern": "*.b"}]}]}),
            ),
            "spec.egress[0].toFQDNs[0]",
            "only one of MatchName or MatchPattern",
        ),
        (
            "bad matchName characters — fqdn.go:104-106",
            c(json!({"endpointSelector": sel, "egress": [{"toFQDNs": [{"matchName": "a*b"}]}]})),
            "spec.egress[0].toFQDNs[0].matchName",
            "Invalid characters in MatchName",
        ),
        (
            "DNS rules without ports — rule_validation.go:498-500",
            c(
                json!({"endpointSelector": sel, "egress": [{"toPorts": [{"rules": {"dns": [{"matchPattern": "*"}]}}]}]}),
            ),
            "spec.egress[0].toPorts[0].ports",
            "port 53 must be specified",
        ),
        (
            "DNS rules with a port range — rule_validation.go:630-632",
            c(
                json!({"endpointSelector": sel, "egress": [{"toPorts": [{"ports": [{"port": "53", "endPort": 54}], "rules": {"dns": [{"matchPattern": "*"}]}}]}]}),
            ),
            "spec.egress[0].toPorts[0].ports[0].endPort",
            "DNS rules do not support port ranges",
        ),
        (
            "HTTP rules are not modelled",
            c(
                json!({"endpointSelector": sel, "ingress": [{"toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}], "rules": {"http": [{"method": "GET"}]}}]}]}),
            ),
            "spec.ingress[0].toPorts[0].rules.http",
            "not modelled",
        ),
        (
            "ICMP rules are not modelled",
            c(
                json!({"endpointSelector": sel, "ingress": [{"icmps": [{"fields": [{"type": 8}]}]}]}),
            ),
            "spec.ingress[0].icmps",
            "not modelled",
        ),
        (
            "extended IP protocols are not modelled",
            c(
                json!({"endpointSelector": sel, "ingress": [{"toPorts": [{"ports": [{"port": "0", "protocol": "GRE"}]}]}]}),
            ),
            "spec.ingress[0].toPorts[0].ports[0].protocol",
            "not modelled",
        ),
        (
            "more than 40 ports — rule_validation.go:533-535",
            c(
                json!({"endpointSelector": sel, "ingress": [{"toPorts": [{"ports": (1..=41).map(|p| json!({"port": p.to_string()})).collect::<Vec<_>>()}]}]}),
            ),
            "spec.ingress[0].toPorts[0].ports",
            "too many ports",
        ),
        (
            "In without values — pkg/labels/validation.go:59-67",
            c(
                json!({"endpointSelector": {"matchExpressions": [{"key": "pod", "operator": "In"}]}, "ingress": [{}]}),
            ),
            "spec.endpointSelector.matchExpressions[0].values",
            "must be specified",
        ),
        (
            "Exists with values — pkg/labels/validation.go:59-67",
            c(
                json!({"endpointSelector": {"matchExpressions": [{"key": "pod", "operator": "Exists", "values": ["a"]}]}, "ingress": [{}]}),
            ),
            "spec.endpointSelector.matchExpressions[0].values",
            "may not be specified",
        ),
        (
            "two colons in a key — pkg/labels/validation.go:109-130",
            c(json!({"endpointSelector": {"matchLabels": {"k8s:a:b": "x"}}, "ingress": [{}]})),
            "spec.endpointSelector.matchLabels",
            "at most one ':'",
        ),
        (
            "fromRequires — CRD maxItems 0",
            c(json!({"endpointSelector": sel, "ingress": [{"fromRequires": [{}]}]})),
            "spec.ingress[0].fromRequires",
            "at most 0 items",
        ),
        (
            "CNP without namespace",
            raw(
                "CiliumNetworkPolicy",
                None,
                json!({"endpointSelector": sel, "ingress": [{}]}),
            ),
            "metadata.namespace",
            "Required",
        ),
        (
            "CCNP with a namespace",
            raw(
                "CiliumClusterwideNetworkPolicy",
                Some("x"),
                json!({"endpointSelector": sel, "ingress": [{}]}),
            ),
            "metadata.namespace",
            "cluster-scoped",
        ),
        (
            "CCNP host policy is not modelled",
            raw(
                "CiliumClusterwideNetworkPolicy",
                None,
                json!({"nodeSelector": sel, "ingress": [{}]}),
            ),
            "spec.nodeSelector",
            "not modelled",
        ),
    ];
    let mut failures = Vec::new();
    for (what, p, path, needle) in &cases {
        let errs = validate_cilium_policy(p);
        if !errs
            .iter()
            .any(|e| e.path == *path && e.message.contains(needle))
        {
            failures.push(format!("{what}: want {path} ~ {needle:?}, got {errs:?}"));
        }
    }
    let empty: CiliumPolicy = serde_json::from_value(json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "p", "namespace": "x"}}))
        .expect("parses");
    if !validate_cilium_policy(&empty)
        .iter()
        .any(|e| e.path == "spec" && e.message.contains("spec or specs"))
    {
        failures.push("no spec and no specs — v2/errors.go:9".into());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unknown_fields_and_kinds_are_refused_by_the_parser() {
    for bad in [
        json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "p", "namespace": "x"}, "spec": {"endpointSelector": {}, "ingress": [{"fromEndpoint": [{}]}]}}),
        json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "p", "namespace": "x"}, "spec": {"endpointSelector": {}, "egressDeny": [{"toFQDNs": [{"matchName": "a.b"}]}]}}),
        json!({"apiVersion": "cilium.io/v2", "kind": "CiliumEgressGatewayPolicy", "metadata": {"name": "p"}, "spec": {}}),
        json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "p", "namespace": "x"}, "spec": {"endpointSelector": {}, "ingress": [{"toPorts": [{"ports": [{"port": 80}]}]}]}}),
    ] {
        assert!(
            serde_json::from_value::<CiliumPolicy>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

/// DNS queries to the cluster DNS and probes by name under `toFQDNs`: what Cilium's DNS proxy
/// answers, and when a `toFQDNs` selector admits an address. Every row cites its rule.
#[test]
fn cilium_dns_lookups_and_fqdn_table() {
    use super::oracle::LookupCell;
    const MIRROR: &str = "mirror.test";
    const OTHER: &str = "other.test";
    let kube_dns = json!({"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system", "k8s:k8s-app": "kube-dns"}});
    let dns_port = |names: Value| json!([{"ports": [{"port": "53", "protocol": "ANY"}], "rules": {"dns": names}}]);
    let a = json!({"matchLabels": {"pod": "a"}});
    let fqdn_egress = |dns_names: Value| {
        cnp(
            "x",
            "fqdn",
            json!({"endpointSelector": a, "egress": [
                {"toEndpoints": [kube_dns], "toPorts": dns_port(dns_names)},
                {"toFQDNs": [{"matchName": MIRROR}], "toPorts": ports(json!([{"port": "443", "protocol": "TCP"}]))},
            ]}),
        )
    };
    // (rule, policies, name looked up, want lookup, want proxied)
    type LookupRow = (
        &'static str,
        Vec<CiliumPolicy>,
        &'static str,
        Want,
        Option<bool>,
    );
    let lookups: Vec<LookupRow> = vec![
        ("#39 no policy selects the pod: the query is not enforced and not proxied — pkg/policy/repository.go:390-517",
            vec![], OTHER, A, Some(false)),
        ("#40 a DNS rule matchPattern \"*\" answers every name, through the proxy — layer7.rst:235-249 (DNS-based)",
            vec![fqdn_egress(json!([{"matchPattern": "*"}]))], OTHER, A, Some(true)),
        ("#41 a DNS rule matchName answers that name only; others are REFUSED — layer7.rst:235-249; pkg/fqdn/dnsproxy/proxy.go CheckAllowed",
            vec![fqdn_egress(json!([{"matchName": MIRROR}]))], OTHER, D, Some(true)),
        ("#41b the name it matches is answered",
            vec![fqdn_egress(json!([{"matchName": MIRROR}]))], MIRROR, A, Some(true)),
        ("#42 default deny with no rule to the cluster DNS: the query is dropped — repository.go:493-517",
            vec![cnp("x", "p", json!({"endpointSelector": a, "egress": [{"toEndpoints": [{}]}]}))], MIRROR, D, Some(false)),
        ("#43 an egressDeny to the cluster DNS beats its DNS allow — deny.rst:15-17",
            vec![fqdn_egress(json!([{"matchPattern": "*"}])), ccnp("no-dns", json!({"endpointSelector": {}, "egressDeny": [{"toEndpoints": [kube_dns], "toPorts": ports(json!([{"port": "53", "protocol": "UDP"}]))}]}))], MIRROR, D, Some(false)),
        ("#44 toEntities cluster covers the cluster DNS; without DNS rules every name passes, unproxied — entity.go:102-149",
            vec![cnp("x", "p", json!({"endpointSelector": a, "egress": [{"toEntities": ["cluster"], "toPorts": ports(json!([{"port": "53", "protocol": "UDP"}]))}]}))], OTHER, A, Some(false)),
        ("#45 a rule with DNS rules and one without both admit the query: a name the DNS rules miss is not judged — rule.go:299-310 (merge of L7 rules per selector)",
            vec![fqdn_egress(json!([{"matchName": MIRROR}])), cnp("x", "q", json!({"endpointSelector": a, "egress": [{"toEntities": ["cluster"]}]}))], OTHER, N, None),
        ("#45b ... and a name they match is answered, proxied or not",
            vec![fqdn_egress(json!([{"matchName": MIRROR}])), cnp("x", "q", json!({"endpointSelector": a, "egress": [{"toEntities": ["cluster"]}]}))], MIRROR, A, None),
        ("#46 enableDefaultDeny.egress false: Cilium adds a wildcard DNS rule, every name passes — l4.go:1124-1140",
            vec![cnp("x", "p", json!({"endpointSelector": a, "enableDefaultDeny": {"egress": false}, "egress": [{"toEndpoints": [kube_dns], "toPorts": dns_port(json!([{"matchName": MIRROR}]))}]}))], OTHER, A, Some(true)),
        ("#47 a CNP's empty toEndpoints is its own namespace: not the cluster DNS — rule.go:369-375; layer3.rst",
            vec![cnp("x", "p", json!({"endpointSelector": a, "egress": [{"toEndpoints": [{}], "toPorts": ports(json!([{"port": "53", "protocol": "UDP"}]))}]}))], MIRROR, D, Some(false)),
    ];
    let t = Topology::standard();
    let facts = NameFacts::Answered(vec![
        NameFact {
            name: MIRROR.into(),
            address: EXT.parse().expect("ip"),
        },
        NameFact {
            name: OTHER.into(),
            address: EXT2.parse().expect("ip"),
        },
    ]);
    let from = ep(&t, "x/a");
    let mut failures = Vec::new();
    let Endpoint::Pod(a_index) = from else {
        panic!("x/a is a pod")
    };
    for (rule, pols, name, want_v, want_p) in &lookups {
        let o = CiliumOracle::new(&t, &[], pols, facts.clone()).expect("compiles");
        // A dataplane playing the proxy with `dns_names` answers exactly what the oracle judges:
        // every name it allows, and no name the proxy refuses.
        let filter = o.dns_names(a_index);
        let answered = filter
            .as_ref()
            .is_none_or(|sels| sels.iter().any(|s| super::fqdn::selector_matches(s, name)));
        let refused = *want_v == D && *want_p == Some(true);
        if (*want_v == A && !answered) || (refused && answered) {
            failures.push(format!(
                "{rule}: dns_names {filter:?} disagrees with the lookup of {name}"
            ));
        }
        let LookupCell {
            verdict,
            proxied,
            egress,
        } = o.judge_lookup(from, name);
        if want(verdict) != *want_v || proxied != *want_p {
            failures.push(format!("{rule}: lookup {name}: got {:?} proxied {proxied:?} ({}), want {want_v:?} proxied {want_p:?}", want(verdict), egress.summary()));
        }
    }

    // Connections to world addresses under toFQDNs, after (seen) or without a lookup.
    let mirror = NameFact {
        name: MIRROR.into(),
        address: EXT.parse().expect("ip"),
    };
    let other = NameFact {
        name: OTHER.into(),
        address: EXT2.parse().expect("ip"),
    };
    let o = CiliumOracle::new(
        &t,
        &[],
        &[fqdn_egress(json!([{"matchPattern": "*"}]))],
        facts.clone(),
    )
    .expect("compiles");
    let connects: Vec<(&str, &str, u16, Option<&NameFact>, Want)> = vec![
        ("#48 after the source looked the approved name up through the proxy, its address is admitted — layer7.rst:196-223", "ext", 443, Some(&mirror), A),
        ("#48b ... on the rule's ports only", "ext", 80, Some(&mirror), D),
        ("#49 by address, without a lookup: admitted only while some lookup is remembered: not judged — pkg/fqdn/namemanager", "ext", 443, None, N),
        ("#50 an address no approved name resolves to is never admitted, looked up or not", "ext2", 443, Some(&other), D),
        ("#50b ... nor by address", "ext2", 443, None, D),
    ];
    for (rule, to, port, seen, w) in connects {
        let got = o.judge_world(from, ep(&t, to), port, T, seen);
        if want(got.verdict) != w {
            let why = o.explain_world(from, ep(&t, to), port, T, seen).summary();
            failures.push(format!(
                "{rule}: {to}:{port}: got {:?} ({why}), want {w:?}",
                want(got.verdict)
            ));
        }
    }
    // A refused lookup names the rule whose DNS rules refuse it.
    let o = CiliumOracle::new(
        &t,
        &[],
        &[fqdn_egress(json!([{"matchName": MIRROR}]))],
        facts,
    )
    .expect("compiles");
    let refused = o.judge_lookup(from, OTHER).egress;
    assert!(
        matches!(&refused.decision, SideDecision::RefusedByDnsRules { rule } if rule.to_string() == "CNP x/fqdn egress[0]"),
        "{}",
        refused.summary()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
