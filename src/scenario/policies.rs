//! Policy text to Kubernetes objects: conversion from the strict mirror, IP placeholders, and the
//! logical-to-real namespace mapping.

use super::format::{IntOrName, PeerDoc, PolicyDoc, PolicyPortDoc, SelectorDoc};
use ipnet::IpNet;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use netassay_core::model::{PodRef, Topology, NAMESPACE_NAME_LABEL};
use netassay_core::policy::cilium::identity::{NAMESPACE_LABELS_PREFIX, POD_NAMESPACE_LABEL};
use netassay_core::policy::cilium::model::{EndpointSelector, SelectorRequirement, ServiceRef};
use netassay_core::policy::cilium::CiliumPolicy;
use std::collections::BTreeMap;

/// A conversion problem at a path relative to the policy object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertError {
    pub path: String,
    pub message: String,
}

fn selector(s: &SelectorDoc) -> LabelSelector {
    LabelSelector {
        match_labels: s.match_labels.clone(),
        match_expressions: s.match_expressions.as_ref().map(|v| {
            v.iter()
                .map(|r| LabelSelectorRequirement {
                    key: r.key.clone(),
                    operator: r.operator.clone(),
                    values: r.values.clone(),
                })
                .collect()
        }),
    }
}

fn peer(p: &PeerDoc) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: p.pod_selector.as_ref().map(selector),
        namespace_selector: p.namespace_selector.as_ref().map(selector),
        ip_block: p.ip_block.as_ref().map(|b| IPBlock {
            cidr: b.cidr.clone(),
            except: b.except.clone(),
        }),
    }
}

fn port(p: &PolicyPortDoc, path: &str, errors: &mut Vec<ConvertError>) -> NetworkPolicyPort {
    let mut int = |v: i64, field: &str| -> i32 {
        i32::try_from(v).unwrap_or_else(|_| {
            errors.push(ConvertError {
                path: format!("{path}.{field}"),
                message: format!("Invalid value: {v}: must be between 1 and 65535, inclusive"),
            });
            0
        })
    };
    let port = p.port.as_ref().map(|v| match v {
        IntOrName::Int(n) => IntOrString::Int(int(*n, "port")),
        IntOrName::Name(s) => IntOrString::String(s.clone()),
    });
    NetworkPolicyPort {
        protocol: p.protocol.clone(),
        port,
        end_port: p.end_port.map(|e| int(e, "endPort")),
    }
}

/// Converts a strictly parsed policy into the k8s-openapi object (placeholders still in place).
pub fn to_network_policy(doc: &PolicyDoc) -> Result<NetworkPolicy, Vec<ConvertError>> {
    let mut errors = Vec::new();
    if doc.api_version != "networking.k8s.io/v1" {
        errors.push(ConvertError {
            path: "apiVersion".into(),
            message: format!(
                "Unsupported value: {:?}: supported values: \"networking.k8s.io/v1\"",
                doc.api_version
            ),
        });
    }
    if doc.kind != "NetworkPolicy" {
        errors.push(ConvertError {
            path: "kind".into(),
            message: format!(
                "Unsupported value: {:?}: supported values: \"NetworkPolicy\"",
                doc.kind
            ),
        });
    }
    let spec = doc.spec.clone().unwrap_or_default();
    let ingress = spec.ingress.as_ref().map(|rules| {
        rules
            .iter()
            .enumerate()
            .map(|(i, r)| NetworkPolicyIngressRule {
                from: r.from.as_ref().map(|v| v.iter().map(peer).collect()),
                ports: r.ports.as_ref().map(|v| {
                    v.iter()
                        .enumerate()
                        .map(|(j, p)| {
                            port(p, &format!("spec.ingress[{i}].ports[{j}]"), &mut errors)
                        })
                        .collect()
                }),
            })
            .collect()
    });
    let egress = spec.egress.as_ref().map(|rules| {
        rules
            .iter()
            .enumerate()
            .map(|(i, r)| NetworkPolicyEgressRule {
                to: r.to.as_ref().map(|v| v.iter().map(peer).collect()),
                ports: r.ports.as_ref().map(|v| {
                    v.iter()
                        .enumerate()
                        .map(|(j, p)| port(p, &format!("spec.egress[{i}].ports[{j}]"), &mut errors))
                        .collect()
                }),
            })
            .collect()
    });
    let np = NetworkPolicy {
        metadata: ObjectMeta {
            name: doc.metadata.name.clone(),
            namespace: doc.metadata.namespace.clone(),
            labels: doc.metadata.labels.clone(),
            annotations: doc.metadata.annotations.clone(),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            // The API server defaults an absent podSelector to {} (every pod).
            pod_selector: Some(spec.pod_selector.as_ref().map(selector).unwrap_or_default()),
            policy_types: spec.policy_types.clone(),
            ingress,
            egress,
        }),
    };
    if errors.is_empty() {
        Ok(np)
    } else {
        Err(errors)
    }
}

/// Resolves `${ip:ns/pod}` and `${cidr:ns/pod/N}` in one string against live (or synthetic) IPs.
pub fn resolve_placeholders(text: &str, topology: &Topology) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated placeholder in {text:?}"))?;
        out.push_str(&resolve_one(&after[..end], topology)?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve_one(body: &str, topology: &Topology) -> Result<String, String> {
    let pod_ip = |r: &str| {
        let id: PodRef = r.parse()?;
        topology
            .pod(&id)
            .map(|p| p.ip)
            .ok_or_else(|| format!("placeholder names pod {id}, which is not in the topology"))
    };
    if let Some(r) = body.strip_prefix("ip:") {
        return Ok(pod_ip(r)?.to_string());
    }
    if let Some(r) = body.strip_prefix("cidr:") {
        let (pod, bits) = match r.rsplit_once('/') {
            Some((pod, bits)) if pod.contains('/') => (pod, bits),
            _ => return Err(format!("${{cidr:{r}}} must be ${{cidr:ns/pod/PREFIX}}")),
        };
        let bits: u8 = bits
            .parse()
            .map_err(|_| format!("prefix length {bits:?} in ${{cidr:{r}}} is not a number"))?;
        let ip = pod_ip(pod)?;
        let net = IpNet::new(ip, bits)
            .map_err(|_| format!("prefix length /{bits} is too long for {ip} in ${{cidr:{r}}}"))?;
        return Ok(net.trunc().to_string());
    }
    Err(format!(
        "unknown placeholder ${{{body}}}: expected ${{ip:ns/pod}} or ${{cidr:ns/pod/PREFIX}}"
    ))
}

/// Applies `f` to every ipBlock string (cidr and except) of a policy.
pub fn map_ip_blocks(
    np: &NetworkPolicy,
    mut f: impl FnMut(&str) -> Result<String, String>,
) -> Result<NetworkPolicy, (String, String)> {
    let mut np = np.clone();
    let Some(spec) = np.spec.as_mut() else {
        return Ok(np);
    };
    let mut visit = |peers: Option<&mut Vec<NetworkPolicyPeer>>,
                     base: String|
     -> Result<(), (String, String)> {
        for (k, p) in peers.into_iter().flatten().enumerate() {
            if let Some(b) = p.ip_block.as_mut() {
                let path = format!("{base}[{k}].ipBlock");
                b.cidr = f(&b.cidr).map_err(|e| (format!("{path}.cidr"), e))?;
                for (m, e) in b.except.iter_mut().flatten().enumerate() {
                    *e = f(e).map_err(|err| (format!("{path}.except[{m}]"), err))?;
                }
            }
        }
        Ok(())
    };
    for (i, r) in spec.ingress.iter_mut().flatten().enumerate() {
        visit(r.from.as_mut(), format!("spec.ingress[{i}].from"))?;
    }
    for (i, r) in spec.egress.iter_mut().flatten().enumerate() {
        visit(r.to.as_mut(), format!("spec.egress[{i}].to"))?;
    }
    Ok(np)
}

/// Resolves every IP placeholder of a policy; errors carry the policy-relative field path.
pub fn resolve_policy(
    np: &NetworkPolicy,
    topology: &Topology,
) -> Result<NetworkPolicy, (String, String)> {
    map_ip_blocks(np, |s| resolve_placeholders(s, topology))
}

/// Resolves every IP placeholder in a Cilium policy's CIDR fields (`fromCIDR`/`toCIDR`, and
/// `cidr`/`except` of the CIDR sets); errors carry the policy-relative field path.
pub fn resolve_cilium_policy(
    cp: &CiliumPolicy,
    topology: &Topology,
) -> Result<CiliumPolicy, (String, String)> {
    let mut cp = cp.clone();
    let f = |s: &mut String, path: String| -> Result<(), (String, String)> {
        *s = resolve_placeholders(s, topology).map_err(|e| (path, e))?;
        Ok(())
    };
    let rules = cp.spec.iter_mut().map(|r| ("spec".to_string(), r)).chain(
        cp.specs
            .iter_mut()
            .flatten()
            .enumerate()
            .map(|(i, r)| (format!("specs[{i}]"), r)),
    );
    for (base, r) in rules {
        macro_rules! cidrs {
            ($list:expr, $section:literal, $cidr:literal, $set:literal, $cf:ident, $sf:ident) => {
                for (i, rule) in $list.iter_mut().flatten().enumerate() {
                    let rp = format!("{base}.{}[{i}]", $section);
                    for (k, c) in rule.$cf.iter_mut().flatten().enumerate() {
                        f(c, format!("{rp}.{}[{k}]", $cidr))?;
                    }
                    for (k, c) in rule.$sf.iter_mut().flatten().enumerate() {
                        let sp = format!("{rp}.{}[{k}]", $set);
                        if let Some(cidr) = c.cidr.as_mut() {
                            f(cidr, format!("{sp}.cidr"))?;
                        }
                        for (m, e) in c.except.iter_mut().flatten().enumerate() {
                            f(e, format!("{sp}.except[{m}]"))?;
                        }
                    }
                }
            };
        }
        cidrs!(
            r.ingress,
            "ingress",
            "fromCIDR",
            "fromCIDRSet",
            from_cidr,
            from_cidr_set
        );
        cidrs!(
            r.ingress_deny,
            "ingressDeny",
            "fromCIDR",
            "fromCIDRSet",
            from_cidr,
            from_cidr_set
        );
        cidrs!(
            r.egress,
            "egress",
            "toCIDR",
            "toCIDRSet",
            to_cidr,
            to_cidr_set
        );
        cidrs!(
            r.egress_deny,
            "egressDeny",
            "toCIDR",
            "toCIDRSet",
            to_cidr,
            to_cidr_set
        );
    }
    Ok(cp)
}

/// Maps logical namespace names (x, y, z) to the real ones of a run (`netassay-<run>-x`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceMap {
    real: BTreeMap<String, String>,
}

impl NamespaceMap {
    /// `netassay-<run>-<logical>` for every logical namespace.
    pub fn for_run(run: &str, logical: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        NamespaceMap {
            real: logical
                .into_iter()
                .map(|l| {
                    (
                        l.as_ref().to_string(),
                        format!("netassay-{run}-{}", l.as_ref()),
                    )
                })
                .collect(),
        }
    }

    /// The real name; names outside the topology (e.g. `kube-system`) are left alone.
    pub fn real<'a>(&'a self, logical: &'a str) -> &'a str {
        self.real
            .get(logical)
            .map(String::as_str)
            .unwrap_or(logical)
    }

    fn rewrite_selector(&self, sel: &mut LabelSelector) {
        for (k, v) in sel.match_labels.iter_mut().flatten() {
            if k == NAMESPACE_NAME_LABEL {
                *v = self.real(v).to_string();
            }
        }
        for r in sel.match_expressions.iter_mut().flatten() {
            if r.key == NAMESPACE_NAME_LABEL {
                for v in r.values.iter_mut().flatten() {
                    *v = self.real(v).to_string();
                }
            }
        }
    }

    /// Rewrites a policy's namespace and every `kubernetes.io/metadata.name` selector value.
    pub fn rewrite_policy(&self, np: &NetworkPolicy) -> NetworkPolicy {
        let mut np = np.clone();
        if let Some(ns) = np.metadata.namespace.as_mut() {
            *ns = self.real(ns).to_string();
        }
        if let Some(spec) = np.spec.as_mut() {
            // The target selector is pod labels only; peers may select namespaces by name.
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
            for p in peers {
                if let Some(s) = p.namespace_selector.as_mut() {
                    self.rewrite_selector(s);
                }
            }
        }
        np
    }
}

/// The real-name forms of the namespace name in a Cilium selector key, after its optional source
/// prefix (`k8s:`, `any:` or none): the pod's namespace label, and the namespace's own name label
/// seen through Cilium's namespace-label prefix.
fn names_a_namespace(key: &str) -> bool {
    let bare = match key.split_once(':') {
        Some(("k8s" | "any", rest)) => rest,
        Some(_) => return false,
        None => key,
    };
    bare == POD_NAMESPACE_LABEL
        || bare
            .strip_prefix(NAMESPACE_LABELS_PREFIX)
            .is_some_and(|k| k == NAMESPACE_NAME_LABEL)
}

impl NamespaceMap {
    fn rewrite_endpoint_selector(&self, sel: &mut EndpointSelector) {
        for (k, v) in sel.match_labels.iter_mut().flatten() {
            if names_a_namespace(k) {
                *v = self.real(v).to_string();
            }
        }
        for r in sel.match_expressions.iter_mut().flatten() {
            if names_a_namespace(&r.key) {
                for v in r.values.iter_mut().flatten() {
                    *v = self.real(v).to_string();
                }
            }
        }
    }

    /// Rewrites a Cilium policy for the cluster: a CNP's namespace, and every place a rule names
    /// a namespace (`[k8s:|any:]io.kubernetes.pod.namespace` and
    /// `[k8s:|any:]io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name`, in matchLabels
    /// and in matchExpressions values, of subjects and peers, allow and deny; the namespace of
    /// `toServices`). A CCNP keeps its name here: the fixture names it per run.
    pub fn rewrite_cilium_policy(&self, cp: &CiliumPolicy) -> CiliumPolicy {
        let mut cp = cp.clone();
        if !cp.kind.is_clusterwide() {
            if let Some(ns) = cp.metadata.namespace.as_mut() {
                *ns = self.real(ns).to_string();
            }
        }
        let rules = cp.spec.iter_mut().chain(cp.specs.iter_mut().flatten());
        for r in rules {
            if let Some(s) = r.endpoint_selector.as_mut() {
                self.rewrite_endpoint_selector(s);
            }
            let mut selectors: Vec<&mut EndpointSelector> = Vec::new();
            let mut services: Vec<&mut ServiceRef> = Vec::new();
            for i in r.ingress.iter_mut().flatten() {
                selectors.extend(i.from_endpoints.iter_mut().flatten());
            }
            for i in r.ingress_deny.iter_mut().flatten() {
                selectors.extend(i.from_endpoints.iter_mut().flatten());
            }
            for e in r.egress.iter_mut().flatten() {
                selectors.extend(e.to_endpoints.iter_mut().flatten());
                services.extend(e.to_services.iter_mut().flatten());
            }
            for e in r.egress_deny.iter_mut().flatten() {
                selectors.extend(e.to_endpoints.iter_mut().flatten());
                services.extend(e.to_services.iter_mut().flatten());
            }
            for s in selectors {
                self.rewrite_endpoint_selector(s);
            }
            for s in services {
                if let Some(ns) = s.k8s_service.as_mut().and_then(|k| k.namespace.as_mut()) {
                    *ns = self.real(ns).to_string();
                }
                if let Some(sel) = s.k8s_service_selector.as_mut() {
                    if let Some(ns) = sel.namespace.as_mut() {
                        *ns = self.real(ns).to_string();
                    }
                    self.rewrite_endpoint_selector(&mut sel.selector);
                }
            }
        }
        cp
    }
}

/// Confines a CCNP's subjects to a fixture's namespaces: every rule's `endpointSelector` gets
/// `k8s:io.kubernetes.pod.namespace In [namespaces]`. A CCNP is cluster-wide, and its
/// `endpointSelector: {}` would select every pod of the cluster (other fixtures', other runs',
/// the cluster's own), where a scenario means the pods of its topology, which are exactly the
/// pods of these namespaces. Peers are left alone: traffic is only probed between the fixture's
/// pods. A `nodeSelector` rule (host policy) is left alone too; the loader refuses those.
pub fn confine_clusterwide(cp: &CiliumPolicy, namespaces: &[String]) -> CiliumPolicy {
    let mut cp = cp.clone();
    if !cp.kind.is_clusterwide() {
        return cp;
    }
    for r in cp.spec.iter_mut().chain(cp.specs.iter_mut().flatten()) {
        if let Some(s) = r.endpoint_selector.as_mut() {
            s.match_expressions
                .get_or_insert_with(Vec::new)
                .push(SelectorRequirement {
                    key: format!("k8s:{POD_NAMESPACE_LABEL}"),
                    operator: "In".into(),
                    values: Some(namespaces.to_vec()),
                });
        }
    }
    cp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_resolve_to_pod_addresses_and_masked_networks() {
        let t = Topology::standard();
        assert_eq!(
            resolve_placeholders("${ip:y/b}", &t),
            Ok("10.244.1.11".into())
        );
        assert_eq!(
            resolve_placeholders("${cidr:y/b/24}", &t),
            Ok("10.244.1.0/24".into())
        );
        assert_eq!(
            resolve_placeholders("${cidr:x/b/4}", &t),
            Ok("0.0.0.0/4".into())
        );
        assert_eq!(
            resolve_placeholders("${ip:x/a}/32", &t),
            Ok("10.244.0.10/32".into())
        );
        assert_eq!(
            resolve_placeholders("10.0.0.0/8", &t),
            Ok("10.0.0.0/8".into())
        );
    }

    #[test]
    fn bad_placeholders_are_explained() {
        let t = Topology::standard();
        for (text, needle) in [
            ("${ip:q/a}", "not in the topology"),
            ("${cidr:x/a}", "must be"),
            ("${cidr:x/a/33}", "too long"),
            ("${cidr:x/a/abc}", "not a number"),
            ("${host:x/a}", "unknown placeholder"),
            ("${ip:x/a", "unterminated"),
        ] {
            let err = resolve_placeholders(text, &t).expect_err(text);
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn namespace_names_in_selectors_are_rewritten_and_nothing_else() {
        let np: NetworkPolicy = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "x"},
            "spec": {
                "podSelector": {"matchLabels": {"kubernetes.io/metadata.name": "x"}},
                "ingress": [{"from": [
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y", "team": "x"}}},
                    {"namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["z", "kube-system"]}]}}
                ]}],
                "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "z"}}}]}]
            }
        }))
        .expect("policy");
        let map = NamespaceMap::for_run("r1", ["x", "y", "z"]);
        let out = serde_json::to_value(map.rewrite_policy(&np)).expect("json");
        assert_eq!(out["metadata"]["namespace"], "netassay-r1-x");
        // podSelector matches pod labels, never namespace names.
        assert_eq!(
            out["spec"]["podSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            "x"
        );
        let from = &out["spec"]["ingress"][0]["from"];
        assert_eq!(
            from[0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            "netassay-r1-y"
        );
        assert_eq!(from[0]["namespaceSelector"]["matchLabels"]["team"], "x");
        assert_eq!(
            from[1]["namespaceSelector"]["matchExpressions"][0]["values"],
            serde_json::json!(["netassay-r1-z", "kube-system"])
        );
        assert_eq!(
            out["spec"]["egress"][0]["to"][0]["namespaceSelector"]["matchLabels"]
                ["kubernetes.io/metadata.name"],
            "netassay-r1-z"
        );
    }

    fn cilium(v: serde_json::Value) -> CiliumPolicy {
        serde_json::from_value(v).expect("cilium policy")
    }

    /// Every namespace-naming key form Cilium reads (pkg/k8s/apis/cilium.io/utils/utils.go:136
    /// checks `k8s:` and `any:` io.kubernetes.pod.namespace after `Sanitize` has turned a bare
    /// key into `any:`, pkg/policy/api/selector.go:221-231; namespace labels are
    /// `io.cilium.k8s.namespace.labels.<key>`, pkg/k8s/utils/utils.go:224-245), rewritten in
    /// matchLabels and matchExpressions of subjects, allow and deny peers; everything else is
    /// left alone.
    #[test]
    fn cilium_namespace_names_are_rewritten_in_every_form_and_nothing_else() {
        let map = NamespaceMap::for_run("r1-2", ["x", "y", "z"]);
        let cp = cilium(serde_json::json!({
            "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "p", "namespace": "x"},
            "spec": {
                "endpointSelector": {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "x", "pod": "y"}},
                "ingress": [{"fromEndpoints": [
                    {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "y"}},
                    {"matchLabels": {"io.kubernetes.pod.namespace": "z"}},
                    {"matchLabels": {"any:io.kubernetes.pod.namespace": "x", "team": "y"}},
                    {"matchLabels": {"io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name": "y"}},
                    {"matchLabels": {"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name": "z"}},
                    {"matchLabels": {"io.cilium.k8s.namespace.labels.team": "x"}},
                    {"matchLabels": {"reserved:io.kubernetes.pod.namespace": "x"}},
                    {"matchExpressions": [
                        {"key": "k8s:io.kubernetes.pod.namespace", "operator": "In", "values": ["y", "kube-system"]},
                        {"key": "pod", "operator": "In", "values": ["x"]}
                    ]}
                ]}],
                "ingressDeny": [{"fromEndpoints": [{"matchExpressions": [
                    {"key": "io.kubernetes.pod.namespace", "operator": "NotIn", "values": ["z"]}]}]}]
            },
            "specs": [{
                "endpointSelector": {},
                "egress": [{"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "z"}}]},
                           {"toServices": [{"k8sService": {"serviceName": "s", "namespace": "y"}}]}],
                "egressDeny": [{"toEndpoints": [{"matchLabels": {"any:io.kubernetes.pod.namespace": "y"}}]}]
            }]
        }));
        let out = serde_json::to_value(map.rewrite_cilium_policy(&cp)).expect("json");
        let real = |l: &str| format!("netassay-r1-2-{l}");
        assert_eq!(out["metadata"]["namespace"], real("x"));
        let spec = &out["spec"];
        assert_eq!(
            spec["endpointSelector"]["matchLabels"]["k8s:io.kubernetes.pod.namespace"],
            real("x")
        );
        assert_eq!(spec["endpointSelector"]["matchLabels"]["pod"], "y");
        let from = &spec["ingress"][0]["fromEndpoints"];
        for (i, key, want) in [
            (0, "k8s:io.kubernetes.pod.namespace", real("y")),
            (1, "io.kubernetes.pod.namespace", real("z")),
            (2, "any:io.kubernetes.pod.namespace", real("x")),
            (2, "team", "y".to_string()),
            (
                3,
                "io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name",
                real("y"),
            ),
            (
                4,
                "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name",
                real("z"),
            ),
            // Another namespace label is a label, not a name.
            (5, "io.cilium.k8s.namespace.labels.team", "x".to_string()),
            // No endpoint carries a reserved: namespace label.
            (6, "reserved:io.kubernetes.pod.namespace", "x".to_string()),
        ] {
            assert_eq!(
                from[i]["matchLabels"][key], want,
                "fromEndpoints[{i}] {key}"
            );
        }
        assert_eq!(
            from[7]["matchExpressions"][0]["values"],
            serde_json::json!([real("y"), "kube-system"])
        );
        assert_eq!(
            from[7]["matchExpressions"][1]["values"],
            serde_json::json!(["x"])
        );
        assert_eq!(
            spec["ingressDeny"][0]["fromEndpoints"][0]["matchExpressions"][0]["values"],
            serde_json::json!([real("z")])
        );
        let second = &out["specs"][0];
        assert_eq!(
            second["egress"][0]["toEndpoints"][0]["matchLabels"]["k8s:io.kubernetes.pod.namespace"],
            real("z")
        );
        assert_eq!(
            second["egress"][1]["toServices"][0]["k8sService"]["namespace"],
            real("y")
        );
        assert_eq!(
            second["egressDeny"][0]["toEndpoints"][0]["matchLabels"]
                ["any:io.kubernetes.pod.namespace"],
            real("y")
        );
    }

    #[test]
    fn clusterwide_policies_keep_their_name_and_are_confined_to_the_fixture() {
        let map = NamespaceMap::for_run("r1-2", ["x", "y"]);
        let cp = cilium(serde_json::json!({
            "apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
            "metadata": {"name": "all"},
            "spec": {"endpointSelector": {}, "ingress": [{"fromEndpoints": [{}]}]}
        }));
        let ns = vec![map.real("x").to_string(), map.real("y").to_string()];
        let out = confine_clusterwide(&map.rewrite_cilium_policy(&cp), &ns);
        assert_eq!(out.metadata.name.as_deref(), Some("all"));
        assert_eq!(out.metadata.namespace, None);
        let sel = out
            .spec
            .as_ref()
            .and_then(|s| s.endpoint_selector.as_ref())
            .expect("selector");
        assert_eq!(
            sel.match_expressions,
            Some(vec![SelectorRequirement {
                key: "k8s:io.kubernetes.pod.namespace".into(),
                operator: "In".into(),
                values: Some(ns.clone()),
            }])
        );
        // The peer `{}` stays "every pod" (utils.go:137-145): only subjects are confined.
        let peer = &out
            .spec
            .as_ref()
            .expect("spec")
            .ingress
            .as_ref()
            .expect("in")[0];
        assert_eq!(peer.from_endpoints, Some(vec![EndpointSelector::default()]));
        // A CNP is namespaced already: untouched.
        let cnp = cilium(serde_json::json!({
            "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "p", "namespace": "x"},
            "spec": {"endpointSelector": {}, "ingress": [{}]}
        }));
        assert_eq!(confine_clusterwide(&cnp, &ns), cnp);
    }
}
