//! NetworkPolicy (pkg/apis/networking/validation): metadata, then the spec, every problem in
//! the API server's order.

use super::cidr::{go_contains, parse_cidr};
use super::field_error::{child, index, FieldError};
use super::go_text::{go_quote, go_string_slice, json_list};
use super::labels::{validate_label_selector, validate_labels};
use super::names::{
    is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_port_name,
    is_valid_port_num, mask_trailing_dash, STANDARD_FINALIZERS, TOTAL_ANNOTATION_SIZE_LIMIT,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// ValidateNetworkPolicy: metadata (ValidateObjectMeta with a DNS-1123 subdomain name and a
/// required namespace) then the spec. Every problem, in the API server's order.
pub fn validate_network_policy(np: &NetworkPolicy) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&np.metadata, "metadata");
    let default_spec = NetworkPolicySpec::default();
    let spec = np.spec.as_ref().unwrap_or(&default_spec);
    errs.extend(validate_spec(spec, "spec"));
    errs
}

/// ValidateObjectMetaAccessor(requiresNamespace=true, NameIsDNSSubdomain) plus core's
/// per-finalizer check.
fn validate_object_meta(meta: &ObjectMeta, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let generate_name = meta.generate_name.as_deref().unwrap_or("");
    if !generate_name.is_empty() {
        for m in is_dns1123_subdomain(&mask_trailing_dash(generate_name)) {
            errs.push(FieldError::invalid_str(
                child(path, "generateName"),
                generate_name,
                &m,
            ));
        }
    }
    let name = meta.name.as_deref().unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::required(
            child(path, "name"),
            "name or generateName is required",
        ));
    } else {
        for m in is_dns1123_subdomain(name) {
            errs.push(FieldError::invalid_str(child(path, "name"), name, &m));
        }
    }
    let namespace = meta.namespace.as_deref().unwrap_or("");
    if namespace.is_empty() {
        errs.push(FieldError::required(child(path, "namespace"), ""));
    } else {
        for m in is_dns1123_label(namespace) {
            errs.push(FieldError::invalid_str(
                child(path, "namespace"),
                namespace,
                &m,
            ));
        }
    }
    if let Some(g) = meta.generation.filter(|g| *g < 0) {
        errs.push(FieldError::invalid_int(
            child(path, "generation"),
            g,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(labels) = &meta.labels {
        errs.extend(validate_labels(labels, &child(path, "labels")));
    }
    if let Some(annotations) = &meta.annotations {
        errs.extend(validate_annotations(
            annotations,
            &child(path, "annotations"),
        ));
    }
    if let Some(refs) = &meta.owner_references {
        errs.extend(validate_owner_references(
            refs,
            &child(path, "ownerReferences"),
        ));
    }
    let finalizers: &[String] = meta.finalizers.as_deref().unwrap_or(&[]);
    errs.extend(validate_finalizers(finalizers, &child(path, "finalizers")));
    // core validateKubeFinalizerName, with indexed paths.
    for (i, f) in finalizers.iter().enumerate() {
        if !f.contains('/') && !STANDARD_FINALIZERS.contains(&f.as_str()) {
            errs.push(FieldError::invalid_str(
                index(&child(path, "finalizers"), i),
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    errs
}

/// ValidateAnnotations: keys are qualified names ignoring case; keys plus values ≤ 256 KiB.
fn validate_annotations(annotations: &BTreeMap<String, String>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (k, v) in annotations {
        for m in is_qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid_str(path.to_string(), k, &m));
        }
        total = total.saturating_add(k.len()).saturating_add(v.len());
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(
            path.to_string(),
            TOTAL_ANNOTATION_SIZE_LIMIT,
        ));
    }
    errs
}

/// Go's `%#v` of a metav1.OwnerReference. Go prints set pointer fields as addresses; we print
/// the pointee instead (the only place our message text cannot equal the server's).
fn go_owner_reference(r: &OwnerReference) -> String {
    let ptr = |b: Option<bool>| match b {
        None => "(*bool)(nil)".to_string(),
        Some(v) => format!("(*bool)({v})"),
    };
    format!(
        "v1.OwnerReference{{APIVersion:{}, Kind:{}, Name:{}, UID:{}, Controller:{}, BlockOwnerDeletion:{}}}",
        go_quote(&r.api_version),
        go_quote(&r.kind),
        go_quote(&r.name),
        go_quote(&r.uid),
        ptr(r.controller),
        ptr(r.block_owner_deletion)
    )
}

fn owner_reference_json(r: &OwnerReference) -> String {
    serde_json::to_string(r).unwrap_or_default()
}

/// ValidateOwnerReferences (paths are not indexed upstream).
fn validate_owner_references(refs: &[OwnerReference], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut first_controller: Option<String> = None;
    for r in refs {
        // schema.FromAPIVersionAndKind(ParseGroupVersion(apiVersion), kind)
        let (group, version) = match r.api_version.as_str() {
            "" | "/" => ("", ""),
            av => match av.matches('/').count() {
                0 => ("", av),
                1 => av.split_once('/').unwrap_or(("", "")),
                _ => ("", ""),
            },
        };
        if version.is_empty() {
            errs.push(FieldError::invalid_str(
                child(path, "apiVersion"),
                &r.api_version,
                "version must not be empty",
            ));
        }
        if r.kind.is_empty() {
            errs.push(FieldError::invalid_str(
                child(path, "kind"),
                &r.kind,
                "kind must not be empty",
            ));
        }
        if r.name.is_empty() {
            errs.push(FieldError::invalid_str(
                child(path, "name"),
                &r.name,
                "name must not be empty",
            ));
        }
        if r.uid.is_empty() {
            errs.push(FieldError::invalid_str(
                child(path, "uid"),
                &r.uid,
                "uid must not be empty",
            ));
        }
        if group.is_empty() && version == "v1" && r.kind == "Event" {
            errs.push(FieldError::invalid_go(
                path.to_string(),
                owner_reference_json(r),
                go_owner_reference(r),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.controller == Some(true) {
            let current = format!("{}/{}", r.kind, r.name);
            match &first_controller {
                Some(first) => {
                    let rendered: Vec<String> = refs.iter().map(go_owner_reference).collect();
                    let plain: Vec<String> = refs.iter().map(owner_reference_json).collect();
                    errs.push(FieldError::invalid_go(
                        path.to_string(),
                        format!("[{}]", plain.join(",")),
                        format!("[]v1.OwnerReference{{{}}}", rendered.join(", ")),
                        &format!("Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"),
                    ));
                }
                None => first_controller = Some(current),
            }
        }
    }
    errs
}

/// ValidateFinalizers (apimachinery part; path not indexed upstream).
fn validate_finalizers(finalizers: &[String], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for f in finalizers {
        for m in is_qualified_name(f) {
            errs.push(FieldError::invalid_str(path.to_string(), f, &m));
        }
    }
    let has = |n: &str| finalizers.iter().any(|f| f == n);
    if has("orphan") && has("foregroundDeletion") {
        errs.push(FieldError::invalid_go(
            path.to_string(),
            json_list(finalizers),
            go_string_slice("string", finalizers),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    errs
}

/// ValidateNetworkPolicySpec.
fn validate_spec(spec: &NetworkPolicySpec, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(sel) = &spec.pod_selector {
        errs.extend(validate_label_selector(sel, &child(path, "podSelector")));
    }
    let ingress_path = child(path, "ingress");
    for (i, rule) in spec.ingress.iter().flatten().enumerate() {
        let rule_path = index(&ingress_path, i);
        errs.extend(validate_ports(rule.ports.as_deref(), &rule_path));
        errs.extend(validate_peers(
            rule.from.as_deref(),
            &child(&rule_path, "from"),
        ));
    }
    let egress_path = child(path, "egress");
    for (i, rule) in spec.egress.iter().flatten().enumerate() {
        let rule_path = index(&egress_path, i);
        errs.extend(validate_ports(rule.ports.as_deref(), &rule_path));
        errs.extend(validate_peers(rule.to.as_deref(), &child(&rule_path, "to")));
    }
    let types: &[String] = spec.policy_types.as_deref().unwrap_or(&[]);
    let types_path = child(path, "policyTypes");
    const ALLOWED: [&str; 2] = ["Ingress", "Egress"];
    if types.len() > ALLOWED.len() {
        errs.push(FieldError::invalid_go(
            types_path,
            json_list(types),
            go_string_slice("networking.PolicyType", types),
            "may not specify more than two policyTypes",
        ));
        return errs;
    }
    for (i, t) in types.iter().enumerate() {
        if !ALLOWED.contains(&t.as_str()) {
            errs.push(FieldError::not_supported(
                index(&types_path, i),
                t,
                &ALLOWED,
            ));
        }
    }
    errs
}

fn validate_ports(ports: Option<&[NetworkPolicyPort]>, rule_path: &str) -> Vec<FieldError> {
    let ports_path = child(rule_path, "ports");
    ports
        .unwrap_or(&[])
        .iter()
        .enumerate()
        .flat_map(|(i, p)| validate_port(p, &index(&ports_path, i)))
        .collect()
}

fn validate_peers(peers: Option<&[NetworkPolicyPeer]>, peers_path: &str) -> Vec<FieldError> {
    peers
        .unwrap_or(&[])
        .iter()
        .enumerate()
        .flat_map(|(i, p)| validate_peer(p, &index(peers_path, i)))
        .collect()
}

/// ValidateNetworkPolicyPort.
fn validate_port(port: &NetworkPolicyPort, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(proto) = &port.protocol {
        if !matches!(proto.as_str(), "TCP" | "UDP" | "SCTP") {
            errs.push(FieldError::not_supported(
                child(path, "protocol"),
                proto,
                &["TCP", "UDP", "SCTP"],
            ));
        }
    }
    let port_path = child(path, "port");
    let end_path = child(path, "endPort");
    match &port.port {
        Some(IntOrString::Int(p)) => {
            for m in is_valid_port_num(*p) {
                errs.push(FieldError::invalid_int(port_path.clone(), (*p).into(), &m));
            }
            if let Some(end) = port.end_port {
                if end < *p {
                    errs.push(FieldError::invalid_int(
                        end_path.clone(),
                        end.into(),
                        "must be greater than or equal to `port`",
                    ));
                }
                for m in is_valid_port_num(end) {
                    errs.push(FieldError::invalid_int(end_path.clone(), end.into(), &m));
                }
            }
        }
        Some(IntOrString::String(name)) => {
            if let Some(end) = port.end_port {
                errs.push(FieldError::invalid_int(
                    end_path,
                    end.into(),
                    "may not be specified when `port` is non-numeric",
                ));
            }
            for m in is_valid_port_name(name) {
                errs.push(FieldError::invalid_str(port_path.clone(), name, &m));
            }
        }
        None => {
            if let Some(end) = port.end_port {
                errs.push(FieldError::invalid_int(
                    end_path,
                    end.into(),
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
    errs
}

/// ValidateNetworkPolicyPeer.
fn validate_peer(peer: &NetworkPolicyPeer, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut count = 0;
    if let Some(sel) = &peer.pod_selector {
        count += 1;
        errs.extend(validate_label_selector(sel, &child(path, "podSelector")));
    }
    if let Some(sel) = &peer.namespace_selector {
        count += 1;
        errs.extend(validate_label_selector(
            sel,
            &child(path, "namespaceSelector"),
        ));
    }
    if let Some(block) = &peer.ip_block {
        count += 1;
        errs.extend(validate_ip_block(block, &child(path, "ipBlock")));
    }
    if count == 0 {
        errs.push(FieldError::required(
            path.to_string(),
            "must specify a peer",
        ));
    } else if count > 1 && peer.ip_block.is_some() {
        errs.push(FieldError::forbidden(
            path.to_string(),
            "may not specify both ipBlock and another peer",
        ));
    }
    errs
}

/// ValidateIPBlock.
fn validate_ip_block(block: &IPBlock, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let cidr_path = child(path, "cidr");
    if block.cidr.is_empty() {
        errs.push(FieldError::required(cidr_path, ""));
        return errs;
    }
    let cidr = match parse_cidr(&block.cidr) {
        Ok(net) => net,
        Err(m) => {
            errs.push(FieldError::invalid_str(cidr_path, &block.cidr, &m));
            return errs;
        }
    };
    let except_path = child(path, "except");
    for (i, ex) in block.except.iter().flatten().enumerate() {
        let p = index(&except_path, i);
        match parse_cidr(ex) {
            Err(m) => errs.push(FieldError::invalid_str(p, ex, &m)),
            Ok(ex_net) => {
                if !go_contains(&cidr, ex_net.network()) || cidr.prefix_len() >= ex_net.prefix_len()
                {
                    errs.push(FieldError::invalid_str(
                        p,
                        ex,
                        "must be a strict subset of `cidr`",
                    ));
                }
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::policy::validate::FieldErrorKind::{self, *};

    use serde_json::{json, Value};

    /// A policy in namespace `default` named `np` with the given spec.
    fn np(spec: Value) -> Value {
        json!({"metadata": {"name": "np", "namespace": "default"}, "spec": spec})
    }

    /// A policy with the given metadata and an empty spec.
    fn meta(metadata: Value) -> Value {
        json!({"metadata": metadata, "spec": {}})
    }

    fn validate_json(v: &Value) -> Vec<FieldError> {
        let policy: NetworkPolicy = serde_json::from_value(v.clone()).expect("policy JSON");
        validate_network_policy(&policy)
    }

    struct Row {
        /// What the row checks, and the upstream function it mirrors.
        what: &'static str,
        policy: Value,
        want: Vec<(&'static str, FieldErrorKind)>,
    }

    fn row(what: &'static str, policy: Value, want: &[(&'static str, FieldErrorKind)]) -> Row {
        Row {
            what,
            policy,
            want: want.to_vec(),
        }
    }

    fn run(rows: Vec<Row>) {
        let mut failures = Vec::new();
        for r in &rows {
            let got: Vec<(String, FieldErrorKind)> = validate_json(&r.policy)
                .into_iter()
                .map(|e| (e.path, e.kind))
                .collect();
            let want: Vec<(String, FieldErrorKind)> =
                r.want.iter().map(|(p, k)| (p.to_string(), *k)).collect();
            if got != want {
                failures.push(format!("{}:\n  want {want:?}\n  got  {got:?}", r.what));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn object_meta() {
        let long_name = "a".repeat(254);
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
        run(vec![
            // ValidateObjectMetaAccessor + NameIsDNSSubdomain / ValidateNamespaceName: valid.
            row(
                "valid name, namespace, labels, annotations, finalizers",
                meta(json!({
                    "name": "allow-dns.v2", "namespace": "team-a",
                    "labels": {"app.kubernetes.io/name": "web", "tier": "", "x": "A_b.c-1"},
                    "annotations": {"Example.COM/Some-Key": "anything at all"},
                    "finalizers": ["kubernetes", "example.com/cleanup"],
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": "u1", "controller": true}]
                })),
                &[],
            ),
            // ValidateObjectMetaAccessor: name required.
            row(
                "missing name",
                meta(json!({"namespace": "default"})),
                &[("metadata.name", Required)],
            ),
            // NameIsDNSSubdomain: uppercase and underscore rejected.
            row(
                "name not a DNS-1123 subdomain",
                meta(json!({"name": "Bad_Name", "namespace": "default"})),
                &[("metadata.name", Invalid)],
            ),
            // IsDNS1123Subdomain: at most 253 characters.
            row(
                "name too long",
                meta(json!({"name": long_name, "namespace": "default"})),
                &[("metadata.name", Invalid)],
            ),
            // ValidateObjectMetaAccessor: namespace required for namespaced kinds.
            row(
                "missing namespace",
                meta(json!({"name": "np"})),
                &[("metadata.namespace", Required)],
            ),
            // ValidateNamespaceName = NameIsDNSLabel: no dots.
            row(
                "namespace with dots",
                meta(json!({"name": "np", "namespace": "a.b"})),
                &[("metadata.namespace", Invalid)],
            ),
            // ValidateObjectMetaAccessor: generateName checked with prefix=true (trailing dash ok),
            // name still required (generation happens before validation).
            row(
                "generateName with trailing dash, no name",
                meta(json!({"generateName": "web-", "namespace": "default"})),
                &[("metadata.name", Required)],
            ),
            row(
                "invalid generateName",
                meta(json!({"generateName": "Web-", "name": "web-1", "namespace": "default"})),
                &[("metadata.generateName", Invalid)],
            ),
            // ValidateLabels: key qualified name, value label value; errors on the map path.
            row(
                "bad label key and value",
                meta(json!({"name": "np", "namespace": "default",
                    "labels": {"-x": "ok", "good": "not ok", "a/b/c": "v"}})),
                &[
                    ("metadata.labels", Invalid), // "-x" name part regex
                    ("metadata.labels", Invalid), // "a/b/c" three parts
                    ("metadata.labels", Invalid), // "not ok"
                ],
            ),
            row(
                "empty label key prefix",
                meta(json!({"name": "np", "namespace": "default", "labels": {"/x": "v"}})),
                &[("metadata.labels", Invalid)],
            ),
            // ValidateAnnotations: keys are qualified names (case-insensitive), total ≤ 256 KiB.
            row(
                "bad annotation key",
                meta(json!({"name": "np", "namespace": "default", "annotations": {"a b": "v"}})),
                &[("metadata.annotations", Invalid)],
            ),
            row(
                "annotations too large",
                meta(json!({"name": "np", "namespace": "default", "annotations": {"k": big}})),
                &[("metadata.annotations", TooLong)],
            ),
            // ValidateNonnegativeField(generation).
            row(
                "negative generation",
                meta(json!({"name": "np", "namespace": "default", "generation": -1})),
                &[("metadata.generation", Invalid)],
            ),
            // ValidateFinalizers + core validateKubeFinalizerName.
            row(
                "finalizers: unqualified non-standard name, invalid name, orphan+foreground",
                meta(json!({"name": "np", "namespace": "default",
                    "finalizers": ["custom", "bad name!", "orphan", "foregroundDeletion"]})),
                &[
                    ("metadata.finalizers", Invalid), // "bad name!" not a qualified name
                    ("metadata.finalizers", Invalid), // orphan and foregroundDeletion
                    ("metadata.finalizers[0]", Invalid), // "custom" not standard nor qualified
                    ("metadata.finalizers[1]", Invalid), // "bad name!" likewise
                ],
            ),
            // ValidateOwnerReferences.
            row(
                "owner references: empty uid, Event owner, two controllers",
                meta(
                    json!({"name": "np", "namespace": "default", "ownerReferences": [
                        {"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "", "controller": true},
                        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": "u", "controller": true}
                    ]}),
                ),
                &[
                    ("metadata.ownerReferences.uid", Invalid),
                    ("metadata.ownerReferences", Invalid),
                    ("metadata.ownerReferences", Invalid),
                ],
            ),
        ]);
    }

    #[test]
    fn label_selectors() {
        run(vec![
            // ValidateLabelSelector / ValidateLabelSelectorRequirement: valid operators.
            row(
                "In, NotIn, Exists without values, DoesNotExist, matchLabels",
                np(json!({"podSelector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["a", "b"]},
                    {"key": "example.com/env", "operator": "NotIn", "values": [""]},
                    {"key": "x", "operator": "Exists"},
                    {"key": "y", "operator": "DoesNotExist", "values": []}
                ]}})),
                &[],
            ),
            // In/NotIn need values.
            row(
                "In without values",
                np(json!({"podSelector": {"matchExpressions": [{"key": "k", "operator": "In"}]}})),
                &[("spec.podSelector.matchExpressions[0].values", Required)],
            ),
            row(
                "NotIn with empty values",
                np(json!({"podSelector": {"matchExpressions": [
                    {"key": "k", "operator": "NotIn", "values": []}]}})),
                &[("spec.podSelector.matchExpressions[0].values", Required)],
            ),
            // Exists/DoesNotExist forbid values.
            row(
                "Exists with values",
                np(json!({"podSelector": {"matchExpressions": [
                    {"key": "k", "operator": "Exists", "values": ["v"]}]}})),
                &[("spec.podSelector.matchExpressions[0].values", Forbidden)],
            ),
            // Unknown operator: upstream reports Invalid "not a valid selector operator".
            row(
                "unknown operator",
                np(json!({"podSelector": {"matchExpressions": [
                    {"key": "k", "operator": "Equals", "values": ["v"]}]}})),
                &[("spec.podSelector.matchExpressions[0].operator", Invalid)],
            ),
            // ValidateLabelName on the key.
            row(
                "bad key",
                np(json!({"podSelector": {"matchExpressions": [
                    {"key": "bad key", "operator": "Exists"}]}})),
                &[("spec.podSelector.matchExpressions[0].key", Invalid)],
            ),
            // IsValidLabelValue on each value (create: AllowInvalidLabelValueInSelector=false).
            row(
                "bad value",
                np(json!({"podSelector": {"matchExpressions": [
                    {"key": "k", "operator": "In", "values": ["ok", "not ok"]}]}})),
                &[("spec.podSelector.matchExpressions[0].values[1]", Invalid)],
            ),
            // ValidateLabels on matchLabels.
            row(
                "bad matchLabels value",
                np(json!({"podSelector": {"matchLabels": {"app": "-web"}}})),
                &[("spec.podSelector.matchLabels", Invalid)],
            ),
            // Peer selectors go through the same checks (ValidateNetworkPolicyPeer).
            row(
                "peer namespaceSelector bad operator",
                np(
                    json!({"ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
                    {"key": "k", "operator": "in", "values": ["v"]}]}}]}]}),
                ),
                &[(
                    "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].operator",
                    Invalid,
                )],
            ),
        ]);
    }

    #[test]
    fn ports() {
        run(vec![
            // ValidateNetworkPolicyPort: valid protocols, numbers, names and ranges.
            row(
                "valid ports",
                np(json!({"ingress": [{"ports": [
                    {"protocol": "TCP", "port": 80},
                    {"protocol": "UDP", "port": 53},
                    {"protocol": "SCTP", "port": 9000},
                    {"port": 65535},
                    {"port": "serve-80-tcp"},
                    {"port": 8080, "endPort": 8080},
                    {"protocol": "TCP", "port": 32000, "endPort": 32768},
                    {"protocol": "UDP"},
                    {}
                ]}]})),
                &[],
            ),
            // Protocol must be TCP, UDP or SCTP (case-sensitive).
            row(
                "unsupported protocols",
                np(
                    json!({"egress": [{"ports": [{"protocol": "ICMP"}, {"protocol": "tcp", "port": 80}]}]}),
                ),
                &[
                    ("spec.egress[0].ports[0].protocol", NotSupported),
                    ("spec.egress[0].ports[1].protocol", NotSupported),
                ],
            ),
            // IsValidPortNum: 1..=65535.
            row(
                "port out of range",
                np(json!({"ingress": [{"ports": [{"port": 0}, {"port": 70000}]}]})),
                &[
                    ("spec.ingress[0].ports[0].port", Invalid),
                    ("spec.ingress[0].ports[1].port", Invalid),
                ],
            ),
            // IsValidPortName: each violation is its own error.
            row(
                "bad port names",
                np(json!({"ingress": [{"ports": [
                    {"port": "http--alt"},
                    {"port": "-http"},
                    {"port": "Http"},
                    {"port": "8080"},
                    {"port": "a-very-long-port-name"},
                    {"port": ""}
                ]}]})),
                &[
                    ("spec.ingress[0].ports[0].port", Invalid), // consecutive hyphens
                    ("spec.ingress[0].ports[1].port", Invalid), // leading hyphen
                    ("spec.ingress[0].ports[2].port", Invalid), // charset
                    ("spec.ingress[0].ports[3].port", Invalid), // no letter
                    ("spec.ingress[0].ports[4].port", Invalid), // longer than 15
                    ("spec.ingress[0].ports[5].port", Invalid), // empty: charset
                    ("spec.ingress[0].ports[5].port", Invalid), // empty: no letter
                ],
            ),
            // endPort >= port.
            row(
                "endPort below port",
                np(json!({"egress": [{"ports": [{"port": 8080, "endPort": 80}]}]})),
                &[("spec.egress[0].ports[0].endPort", Invalid)],
            ),
            // endPort itself 1..=65535.
            row(
                "endPort out of range",
                np(json!({"egress": [{"ports": [{"port": 80, "endPort": 70000}]}]})),
                &[("spec.egress[0].ports[0].endPort", Invalid)],
            ),
            row(
                "endPort zero: below port and out of range",
                np(json!({"egress": [{"ports": [{"port": 80, "endPort": 0}]}]})),
                &[
                    ("spec.egress[0].ports[0].endPort", Invalid),
                    ("spec.egress[0].ports[0].endPort", Invalid),
                ],
            ),
            // endPort forbidden with a named port.
            row(
                "endPort with named port",
                np(json!({"ingress": [{"ports": [{"port": "http", "endPort": 90}]}]})),
                &[("spec.ingress[0].ports[0].endPort", Invalid)],
            ),
            // endPort forbidden without a port.
            row(
                "endPort without port",
                np(json!({"ingress": [{"ports": [{"protocol": "TCP", "endPort": 90}]}]})),
                &[("spec.ingress[0].ports[0].endPort", Invalid)],
            ),
        ]);
    }

    #[test]
    fn peers() {
        run(vec![
            // ValidateNetworkPolicyPeer: one of the three, or both selectors.
            row(
                "valid peers",
                np(json!({
                    "ingress": [{"from": [
                        {"podSelector": {}},
                        {"namespaceSelector": {"matchLabels": {"team": "a"}}},
                        {"podSelector": {"matchLabels": {"app": "db"}}, "namespaceSelector": {}},
                        {"ipBlock": {"cidr": "10.0.0.0/8"}}
                    ]}],
                    "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]
                })),
                &[],
            ),
            // numPeers == 0: "must specify a peer".
            row(
                "empty peer",
                np(json!({"ingress": [{"from": [{"podSelector": {}}, {}]}]})),
                &[("spec.ingress[0].from[1]", Required)],
            ),
            // ipBlock with any selector is Forbidden.
            row(
                "ipBlock with podSelector",
                np(json!({"ingress": [{"from": [
                    {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]})),
                &[("spec.ingress[0].from[0]", Forbidden)],
            ),
            row(
                "ipBlock with namespaceSelector (egress)",
                np(json!({"egress": [{"to": [
                    {"ipBlock": {"cidr": "10.0.0.0/8"}, "namespaceSelector": {}}]}]})),
                &[("spec.egress[0].to[0]", Forbidden)],
            ),
        ]);
    }

    #[test]
    fn ip_blocks() {
        run(vec![
            // ValidateIPBlock: valid IPv4 and IPv6 blocks with strict-subset excepts; non-strict
            // parsing accepts host bits and leading zeros.
            row(
                "valid ipBlocks",
                np(json!({"egress": [{"to": [
                    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.2.3.4/32"]}},
                    {"ipBlock": {"cidr": "2001:db8::/32", "except": ["2001:db8:1::/48"]}},
                    {"ipBlock": {"cidr": "10.0.0.1/8", "except": ["10.1.2.3/16"]}},
                    {"ipBlock": {"cidr": "010.000.000.000/08"}},
                    {"ipBlock": {"cidr": "::/0", "except": ["fe80::/10"]}},
                    {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["::ffff:10.0.0.0/104"]}}
                ]}]})),
                &[],
            ),
            // cidr required.
            row(
                "empty cidr",
                np(json!({"ingress": [{"from": [{"ipBlock": {"cidr": ""}}]}]})),
                &[("spec.ingress[0].from[0].ipBlock.cidr", Required)],
            ),
            // IsValidCIDRForLegacyField.
            row(
                "invalid cidrs",
                np(json!({"ingress": [{"from": [
                    {"ipBlock": {"cidr": "10.0.0.0/33"}},
                    {"ipBlock": {"cidr": "10.0.0.0"}},
                    {"ipBlock": {"cidr": "fe80::/129"}},
                    {"ipBlock": {"cidr": "not-a-cidr/8", "except": ["also-bad"]}}
                ]}]})),
                &[
                    ("spec.ingress[0].from[0].ipBlock.cidr", Invalid),
                    ("spec.ingress[0].from[1].ipBlock.cidr", Invalid),
                    ("spec.ingress[0].from[2].ipBlock.cidr", Invalid),
                    // a bad cidr stops the block's checks: its except is not looked at
                    ("spec.ingress[0].from[3].ipBlock.cidr", Invalid),
                ],
            ),
            // Each except must parse and be a strict subset of cidr.
            row(
                "bad excepts",
                np(
                    json!({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": [
                        "10.0.1.0/24",       // ok
                        "10.0.0.0/16",       // equal, not strict
                        "10.1.0.0/24",       // outside
                        "10.0.0.0/8",        // wider
                        "2001:db8::/64",     // other family
                        "bogus",             // not a CIDR
                        ""                   // not a CIDR either (Invalid, not Required)
                    ]}}]}]}),
                ),
                &[
                    ("spec.ingress[0].from[0].ipBlock.except[1]", Invalid),
                    ("spec.ingress[0].from[0].ipBlock.except[2]", Invalid),
                    ("spec.ingress[0].from[0].ipBlock.except[3]", Invalid),
                    ("spec.ingress[0].from[0].ipBlock.except[4]", Invalid),
                    ("spec.ingress[0].from[0].ipBlock.except[5]", Invalid),
                    ("spec.ingress[0].from[0].ipBlock.except[6]", Invalid),
                ],
            ),
            row(
                "IPv4 except in IPv6 cidr",
                np(
                    json!({"egress": [{"to": [{"ipBlock": {"cidr": "::/0", "except": ["10.0.0.0/8"]}}]}]}),
                ),
                &[("spec.egress[0].to[0].ipBlock.except[0]", Invalid)],
            ),
        ]);
    }

    #[test]
    fn policy_types() {
        run(vec![
            // ValidateNetworkPolicySpec: Ingress/Egress, at most two (duplicates not checked).
            row("Ingress", np(json!({"policyTypes": ["Ingress"]})), &[]),
            row("Egress", np(json!({"policyTypes": ["Egress"]})), &[]),
            row(
                "both",
                np(json!({"policyTypes": ["Ingress", "Egress"]})),
                &[],
            ),
            row("none", np(json!({"policyTypes": []})), &[]),
            row(
                "duplicate accepted upstream",
                np(json!({"policyTypes": ["Ingress", "Ingress"]})),
                &[],
            ),
            row(
                "lowercase",
                np(json!({"policyTypes": ["ingress"]})),
                &[("spec.policyTypes[0]", NotSupported)],
            ),
            row(
                "unknown second",
                np(json!({"policyTypes": ["Ingress", "Foo"]})),
                &[("spec.policyTypes[1]", NotSupported)],
            ),
            // More than two: one Invalid on the list, items not checked.
            row(
                "three",
                np(json!({"policyTypes": ["Ingress", "Egress", "Bogus"]})),
                &[("spec.policyTypes", Invalid)],
            ),
            // No spec at all is an empty spec.
            row(
                "no spec",
                json!({"metadata": {"name": "np", "namespace": "default"}}),
                &[],
            ),
        ]);
    }

    #[test]
    fn several_problems_all_reported_in_order() {
        // ValidateNetworkPolicy = ValidateObjectMeta then ValidateNetworkPolicySpec, collecting all.
        run(vec![row(
            "many problems",
            json!({
                "metadata": {"name": "Bad_Name", "labels": {"ok": "bad value"}},
                "spec": {
                    "podSelector": {"matchExpressions": [{"key": "k", "operator": "Equals"}]},
                    "ingress": [{
                        "ports": [{"protocol": "ICMP", "port": 0}],
                        "from": [{}, {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}]
                    }],
                    "egress": [{"ports": [{"port": "http", "endPort": 81}],
                                "to": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}],
                    "policyTypes": ["Ingress", "Sideways"]
                }
            }),
            &[
                ("metadata.name", Invalid),
                ("metadata.namespace", Required),
                ("metadata.labels", Invalid),
                ("spec.podSelector.matchExpressions[0].operator", Invalid),
                ("spec.ingress[0].ports[0].protocol", NotSupported),
                ("spec.ingress[0].ports[0].port", Invalid),
                ("spec.ingress[0].from[0]", Required),
                ("spec.ingress[0].from[1].ipBlock.except[0]", Invalid),
                ("spec.egress[0].ports[0].endPort", Invalid),
                ("spec.egress[0].to[0]", Forbidden),
                ("spec.policyTypes[1]", NotSupported),
            ],
        )]);
    }

    /// The full `path: message` texts, compared with what the API server prints.
    #[test]
    fn messages_match_upstream() {
        let policy = json!({
            "metadata": {"name": "Bad_Name", "namespace": "default",
                         "labels": {"a/b/c": "v"}},
            "spec": {
                "podSelector": {"matchExpressions": [{"key": "k", "operator": "Equals", "values": ["v"]}]},
                "ingress": [{
                    "ports": [{"protocol": "ICMP", "port": 70000},
                              {"port": "http", "endPort": 90},
                              {"endPort": 90},
                              {"port": 80, "endPort": 79}],
                    "from": [{}, {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}},
                             {"ipBlock": {"cidr": "", "except": ["x"]}},
                             {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8", "bad"]}}]
                }],
                "policyTypes": ["Ingress", "Egress", "Ingress"]
            }
        });
        let got: Vec<String> = validate_json(&policy)
            .iter()
            .map(ToString::to_string)
            .collect();
        let want = vec![
            "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            "metadata.labels: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
            "spec.podSelector.matchExpressions[0].operator: Invalid value: \"Equals\": not a valid selector operator",
            "spec.ingress[0].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\"",
            "spec.ingress[0].ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.ingress[0].ports[1].endPort: Invalid value: 90: may not be specified when `port` is non-numeric",
            "spec.ingress[0].ports[2].endPort: Invalid value: 90: may not be specified when `port` is not specified",
            "spec.ingress[0].ports[3].endPort: Invalid value: 79: must be greater than or equal to `port`",
            "spec.ingress[0].from[0]: Required value: must specify a peer",
            "spec.ingress[0].from[1]: Forbidden: may not specify both ipBlock and another peer",
            "spec.ingress[0].from[2].ipBlock.cidr: Required value",
            "spec.ingress[0].from[3].ipBlock.except[0]: Invalid value: \"10.0.0.0/8\": must be a strict subset of `cidr`",
            "spec.ingress[0].from[3].ipBlock.except[1]: Invalid value: \"bad\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            "spec.policyTypes: Invalid value: []networking.PolicyType{\"Ingress\", \"Egress\", \"Ingress\"}: may not specify more than two policyTypes",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn field_error_parts() {
        let errs = validate_json(&np(json!({"ingress": [{"ports": [{"port": 70000}]}]})));
        assert_eq!(
            errs,
            vec![FieldError {
                path: "spec.ingress[0].ports[0].port".into(),
                kind: Invalid,
                value: Some("70000".into()),
                detail: "must be between 1 and 65535, inclusive".into(),
                message: "Invalid value: 70000: must be between 1 and 65535, inclusive".into(),
            }]
        );
        let errs = validate_json(&meta(json!({"name": "np", "namespace": "default",
            "annotations": {"k": "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT)}})));
        assert_eq!(
            errs[0].to_string(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
        assert_eq!(errs[0].value, None);
        let errs = validate_json(&meta(json!({"name": "np", "namespace": "default",
            "finalizers": ["orphan", "foregroundDeletion"]})));
        assert_eq!(
            errs[0].to_string(),
            "metadata.finalizers: Invalid value: []string{\"orphan\", \"foregroundDeletion\"}: finalizer orphan and foregroundDeletion cannot be both set"
        );
        assert_eq!(
            errs[0].value.as_deref(),
            Some(r#"["orphan","foregroundDeletion"]"#)
        );
        let kinds = [
            (Required, "FieldValueRequired"),
            (Invalid, "FieldValueInvalid"),
            (NotSupported, "FieldValueNotSupported"),
            (Forbidden, "FieldValueForbidden"),
            (TooLong, "FieldValueTooLong"),
            (TooMany, "FieldValueTooMany"),
            (Duplicate, "FieldValueDuplicate"),
        ];
        for (k, s) in kinds {
            assert_eq!(k.cause_type(), s);
        }
    }
}
