//! Security identities and Cilium endpoint selectors: which labels an endpoint carries (with their
//! source), how `k8s:` / `any:` / `reserved:` keys match them, the default identity-label filter,
//! and the namespace scoping Cilium adds to subject and peer selectors.

use super::model::EndpointSelector;
use crate::model::{Labels, Namespace, Pod};
use std::collections::BTreeMap;
use thiserror::Error;

/// `io.kubernetes.pod.namespace`: the pod's namespace name.
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
/// Prefix of namespace labels in a pod's identity.
pub const NAMESPACE_LABELS_PREFIX: &str = "io.cilium.k8s.namespace.labels.";
/// The pod's service account.
pub const SERVICE_ACCOUNT_LABEL: &str = "io.cilium.k8s.policy.serviceaccount";
/// The cluster name label.
pub const CLUSTER_LABEL: &str = "io.cilium.k8s.policy.cluster";
/// Cilium's default cluster name (`pkg/defaults/cluster.go:8`).
pub const DEFAULT_CLUSTER_NAME: &str = "default";
/// The service account netassay's probe pods run as (none is set, so Kubernetes uses this).
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// Where a label comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LabelSource {
    /// `any:` (and a key with no prefix): matches a label of any source.
    Any,
    /// `k8s:`: pod, namespace and service-account labels.
    K8s,
    /// `reserved:`: host, world, kube-apiserver, ...
    Reserved,
    /// Any other source (`cidr:`, `fqdn:`, `container:`, ...): none of the endpoints the oracle
    /// knows carries such labels.
    Other(String),
}

/// Splits a selector key into its source and key (`k8s:app` -> (K8s, "app"); `app` -> (Any, "app")).
pub fn split_key(key: &str) -> (LabelSource, &str) {
    match key.split_once(':') {
        None => (LabelSource::Any, key),
        Some((src, rest)) => (
            match src {
                "any" | "" => LabelSource::Any,
                "k8s" => LabelSource::K8s,
                "reserved" => LabelSource::Reserved,
                other => LabelSource::Other(other.to_string()),
            },
            rest,
        ),
    }
}

/// The labels of one security identity, by source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityLabels {
    pub k8s: Labels,
    pub reserved: Labels,
}

impl IdentityLabels {
    fn get(&self, source: &LabelSource, key: &str) -> Option<&String> {
        match source {
            LabelSource::Any => self.k8s.get(key).or_else(|| self.reserved.get(key)),
            LabelSource::K8s => self.k8s.get(key),
            LabelSource::Reserved => self.reserved.get(key),
            LabelSource::Other(_) => None,
        }
    }

    /// One reserved label (`reserved:host`, `reserved:world`, ...).
    pub fn reserved(names: &[&str]) -> Self {
        IdentityLabels {
            k8s: Labels::new(),
            reserved: names
                .iter()
                .map(|n| (n.to_string(), String::new()))
                .collect(),
        }
    }
}

/// Cilium's default identity-label filter (`pkg/labelsfilter/filter.go:226-248, 297-340`): a
/// label counts when no ignore pattern matches it, or the longest matching include pattern
/// matches more of the key than the shortest matching ignore pattern.
pub fn is_identity_label(key: &str) -> bool {
    const INCLUDE: [&str; 5] = [
        POD_NAMESPACE_LABEL,
        "io.cilium.k8s.namespace.labels",
        "app.kubernetes.io",
        CLUSTER_LABEL,
        SERVICE_ACCOUNT_LABEL,
    ];
    const IGNORE_PREFIX: [&str; 15] = [
        "io.kubernetes",
        "kubernetes.io",
        "statefulset.kubernetes.io/pod-name",
        "apps.kubernetes.io/pod-index",
        "batch.kubernetes.io/job-completion-index",
        "batch.kubernetes.io/controller-uid",
        "k8s.io",
        "pod-template-generation",
        "pod-template-hash",
        "controller-revision-hash",
        "controller-uid",
        "etcd_node",
        "topology.kubernetes.io",
        // `annotation.*` and `.*beta\.kubernetes\.io` are handled below (they are regexps).
        "",
        "",
    ];
    let included = INCLUDE
        .iter()
        .filter(|p| key.starts_with(*p))
        .map(|p| p.len())
        .max()
        .unwrap_or(0);
    let mut ignored: Vec<usize> = IGNORE_PREFIX
        .iter()
        .filter(|p| !p.is_empty() && key.starts_with(*p))
        .map(|p| p.len())
        .collect();
    if key.starts_with("annotation") {
        // `annotation.*` is greedy: it matches the whole key.
        ignored.push(key.len());
    }
    if let Some(i) = key.rfind("beta.kubernetes.io") {
        // `.*beta\.kubernetes\.io`, anchored at the start: matches up to the last occurrence.
        ignored.push(i + "beta.kubernetes.io".len());
    }
    let ignored = ignored.into_iter().min().unwrap_or(0);
    ignored == 0 || included > ignored
}

/// A pod's identity: its own labels (Cilium's own `io.cilium.k8s*` keys removed, then filtered),
/// its namespace's name and labels, its service account and the cluster name
/// (`pkg/k8s/utils/utils.go:205-245`).
pub fn pod_identity(pod: &Pod, namespace: Option<&Namespace>) -> IdentityLabels {
    let mut k8s = Labels::new();
    for (k, v) in &pod.labels {
        if !k.starts_with("io.cilium.k8s") && is_identity_label(k) {
            k8s.insert(k.clone(), v.clone());
        }
    }
    if let Some(ns) = namespace {
        for (k, v) in &ns.labels {
            k8s.insert(format!("{NAMESPACE_LABELS_PREFIX}{k}"), v.clone());
        }
    }
    k8s.insert(POD_NAMESPACE_LABEL.to_string(), pod.id.namespace.clone());
    k8s.insert(
        SERVICE_ACCOUNT_LABEL.to_string(),
        DEFAULT_SERVICE_ACCOUNT.to_string(),
    );
    k8s.insert(CLUSTER_LABEL.to_string(), DEFAULT_CLUSTER_NAME.to_string());
    IdentityLabels {
        k8s,
        reserved: Labels::new(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    source: LabelSource,
    key: String,
    op: Op,
    values: Vec<String>,
}

/// A compiled endpoint selector: requirements ANDed; the empty selector matches every identity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdentitySelector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unsupported selector operator {0:?}")]
pub struct IdentitySelectorError(pub String);

impl IdentitySelector {
    pub fn compile(sel: &EndpointSelector) -> Result<Self, IdentitySelectorError> {
        let mut requirements = Vec::new();
        // matchLabels: a later `k8s:` key overrides an earlier one with the same source and key,
        // as Go's map would; BTreeMap input has no duplicates anyway.
        for (k, v) in sel.match_labels.iter().flatten() {
            let (source, key) = split_key(k);
            requirements.push(Requirement {
                source,
                key: key.to_string(),
                op: Op::In,
                values: vec![v.clone()],
            });
        }
        for e in sel.match_expressions.iter().flatten() {
            let op = match e.operator.as_str() {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => return Err(IdentitySelectorError(other.to_string())),
            };
            let (source, key) = split_key(&e.key);
            requirements.push(Requirement {
                source,
                key: key.to_string(),
                op,
                values: e.values.clone().unwrap_or_default(),
            });
        }
        Ok(IdentitySelector { requirements })
    }

    /// Kubernetes semantics per requirement; `NotIn` and `DoesNotExist` match an absent key
    /// (`pkg/policy/types/requirements.go:171-183`).
    pub fn matches(&self, id: &IdentityLabels) -> bool {
        self.requirements.iter().all(|r| {
            let v = id.get(&r.source, &r.key);
            match r.op {
                Op::In => v.is_some_and(|v| r.values.iter().any(|x| x == v)),
                Op::NotIn => v.is_none_or(|v| !r.values.iter().any(|x| x == v)),
                Op::Exists => v.is_some(),
                Op::DoesNotExist => v.is_none(),
            }
        })
    }

    fn has_key(&self, pred: impl Fn(&LabelSource, &str) -> bool) -> bool {
        self.requirements.iter().any(|r| pred(&r.source, &r.key))
    }

    fn push(&mut self, source: LabelSource, key: &str, op: Op, values: Vec<String>) {
        self.requirements.push(Requirement {
            source,
            key: key.to_string(),
            op,
            values,
        });
    }

    /// The subject of a rule (`ParseToCiliumRule`, `pkg/k8s/apis/cilium.io/utils/utils.go:366-389`):
    /// in a CNP, `k8s:io.kubernetes.pod.namespace=<ns>` replaces any `k8s:` namespace match of
    /// `matchLabels` and is ANDed with everything else; a CCNP (`namespace` None) adds nothing.
    pub fn subject(
        sel: &EndpointSelector,
        namespace: Option<&str>,
    ) -> Result<Self, IdentitySelectorError> {
        let Some(ns) = namespace else {
            return Self::compile(sel);
        };
        // `AddMatch` writes the matchLabels entry `k8s:io.kubernetes.pod.namespace`, replacing
        // the user's own entry with that exact key.
        let forced = format!("k8s:{POD_NAMESPACE_LABEL}");
        let mut own = sel.clone();
        if let Some(m) = own.match_labels.as_mut() {
            m.remove(&forced);
        }
        let mut s = Self::compile(&own)?;
        s.push(
            LabelSource::K8s,
            POD_NAMESPACE_LABEL,
            Op::In,
            vec![ns.to_string()],
        );
        Ok(s)
    }

    /// A peer of `fromEndpoints`/`toEndpoints` (`getEndpointSelector`, utils.go:120-157):
    /// unchanged when it names a `reserved:` key; otherwise, without a namespace-name key, a
    /// CCNP peer gets `k8s:io.kubernetes.pod.namespace Exists` (any pod) and a CNP peer gets the
    /// policy's namespace unless it names an `io.cilium.k8s.namespace.labels.*` key.
    pub fn peer(
        sel: &EndpointSelector,
        namespace: Option<&str>,
    ) -> Result<Self, IdentitySelectorError> {
        let mut s = Self::compile(sel)?;
        if s.has_key(|src, _| *src == LabelSource::Reserved) {
            return Ok(s);
        }
        let names_namespace = s.has_key(|src, k| {
            matches!(src, LabelSource::K8s | LabelSource::Any) && k == POD_NAMESPACE_LABEL
        });
        if !names_namespace {
            match namespace {
                None => s.push(
                    LabelSource::K8s,
                    POD_NAMESPACE_LABEL,
                    Op::Exists,
                    Vec::new(),
                ),
                Some(ns) => {
                    let names_ns_labels = s.has_key(|src, k| {
                        matches!(src, LabelSource::K8s | LabelSource::Any)
                            && k.starts_with(NAMESPACE_LABELS_PREFIX)
                    });
                    if !names_ns_labels {
                        s.push(
                            LabelSource::K8s,
                            POD_NAMESPACE_LABEL,
                            Op::In,
                            vec![ns.to_string()],
                        );
                    }
                }
            }
        }
        Ok(s)
    }

    /// A selector from plain label requirements of one source (used for entities and for
    /// NetworkPolicy v1 translation).
    pub fn from_pairs(pairs: &[(LabelSource, &str, Option<&str>)]) -> Self {
        let mut s = IdentitySelector::default();
        for (src, k, v) in pairs {
            match v {
                Some(v) => s.push(src.clone(), k, Op::In, vec![v.to_string()]),
                None => s.push(src.clone(), k, Op::Exists, Vec::new()),
            }
        }
        s
    }

    /// A Kubernetes label selector over one source with a key prefix (NetworkPolicy v1
    /// translation: pod selectors over `k8s:` pod labels, namespace selectors over
    /// `k8s:io.cilium.k8s.namespace.labels.*`).
    pub fn from_k8s(
        sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
        key_prefix: &str,
    ) -> Result<Self, IdentitySelectorError> {
        let mut s = IdentitySelector::default();
        for (k, v) in sel.match_labels.iter().flatten() {
            s.push(
                LabelSource::K8s,
                &format!("{key_prefix}{k}"),
                Op::In,
                vec![v.clone()],
            );
        }
        for e in sel.match_expressions.iter().flatten() {
            let op = match e.operator.as_str() {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => return Err(IdentitySelectorError(other.to_string())),
            };
            s.push(
                LabelSource::K8s,
                &format!("{key_prefix}{}", e.key),
                op,
                e.values.clone().unwrap_or_default(),
            );
        }
        Ok(s)
    }

    /// ANDs another selector's requirements into this one.
    pub fn and(mut self, other: IdentitySelector) -> Self {
        self.requirements.extend(other.requirements);
        self
    }

    /// Requires `k8s:io.kubernetes.pod.namespace=<ns>`.
    pub fn in_namespace(mut self, ns: &str) -> Self {
        self.push(
            LabelSource::K8s,
            POD_NAMESPACE_LABEL,
            Op::In,
            vec![ns.to_string()],
        );
        self
    }

    /// Requires `k8s:io.kubernetes.pod.namespace` to exist (any pod).
    pub fn any_pod(mut self) -> Self {
        self.push(
            LabelSource::K8s,
            POD_NAMESPACE_LABEL,
            Op::Exists,
            Vec::new(),
        );
        self
    }
}

/// Namespace labels of a topology by name (for building pod identities).
pub fn namespaces_by_name(namespaces: &[Namespace]) -> BTreeMap<&str, &Namespace> {
    namespaces.iter().map(|n| (n.name.as_str(), n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // pkg/labelsfilter/filter.go:226-248 (patterns) and :336 (include beats ignore when longer).
    #[test]
    fn default_label_filter_table() {
        for (key, kept) in [
            ("pod", true),
            ("app", true),
            ("app.kubernetes.io/name", true),
            ("kubernetes.io/metadata.name", false),
            ("kubernetes.io/role", false),
            ("io.kubernetes.pod.namespace", true),
            ("io.kubernetes.container.name", false),
            ("statefulset.kubernetes.io/pod-name", false),
            ("pod-template-hash", false),
            ("controller-revision-hash", false),
            ("node.beta.kubernetes.io/instance-type", false),
            ("annotation.foo", false),
            ("k8s.io/foo", false),
            ("topology.kubernetes.io/zone", false),
            ("io.cilium.k8s.namespace.labels.team", true),
            ("hub.jupyter.org/network-access-singleuser", true),
            ("k8s-app", true),
            ("v1.min.io/tenant", true),
        ] {
            assert_eq!(is_identity_label(key), kept, "{key}");
        }
    }

    #[test]
    fn source_prefixes_split() {
        assert_eq!(split_key("k8s:app"), (LabelSource::K8s, "app"));
        assert_eq!(split_key("app"), (LabelSource::Any, "app"));
        assert_eq!(split_key("any:app"), (LabelSource::Any, "app"));
        assert_eq!(split_key("reserved:host"), (LabelSource::Reserved, "host"));
        assert_eq!(
            split_key("cidr:10.0.0.0/8"),
            (LabelSource::Other("cidr".into()), "10.0.0.0/8")
        );
    }
}
