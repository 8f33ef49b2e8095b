//! cilium.io/v2 objects (CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy) as the emulator
//! stores them: typed metadata plus the rest of the object as JSON, like any custom resource,
//! and their reading as the core's [`CiliumPolicy`] for validation and enforcement.
//
// The emulator serves these kinds only when the node's CNI plays Cilium
// (`Dataplane::cilium`), as a cluster has them only once Cilium has registered its CRDs.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{
    ClusterResourceScope, Metadata, NamespaceResourceScope, Resource, ResourceScope,
};
use netassay_core::policy::cilium::{CiliumKind, CiliumPolicy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::marker::PhantomData;

pub const GROUP: &str = "cilium.io";
pub const VERSION: &str = "v2";
pub const API_VERSION: &str = "cilium.io/v2";

/// What distinguishes the two kinds.
pub trait CiliumApiKind: Send + Sync + 'static {
    const KIND: CiliumKind;
    /// The resource name (URL path segment).
    const PLURAL: &'static str;
    const SINGULAR: &'static str;
    /// kubectl's short names, as Cilium's CRDs declare them.
    const SHORT_NAMES: &'static [&'static str];
    type Scope: ResourceScope;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CnpKind;

impl CiliumApiKind for CnpKind {
    const KIND: CiliumKind = CiliumKind::CiliumNetworkPolicy;
    const PLURAL: &'static str = "ciliumnetworkpolicies";
    const SINGULAR: &'static str = "ciliumnetworkpolicy";
    const SHORT_NAMES: &'static [&'static str] = &["cnp", "ciliumnp"];
    type Scope = NamespaceResourceScope;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CcnpKind;

impl CiliumApiKind for CcnpKind {
    const KIND: CiliumKind = CiliumKind::CiliumClusterwideNetworkPolicy;
    const PLURAL: &'static str = "ciliumclusterwidenetworkpolicies";
    const SINGULAR: &'static str = "ciliumclusterwidenetworkpolicy";
    const SHORT_NAMES: &'static [&'static str] = &["ccnp"];
    type Scope = ClusterResourceScope;
}

/// One stored Cilium policy: metadata, and the other top-level fields (`spec`, `specs`,
/// `status`) as JSON.
pub struct CiliumObject<K> {
    pub metadata: ObjectMeta,
    /// Every top-level field but `apiVersion`, `kind` and `metadata`.
    pub fields: Map<String, Value>,
    kind: PhantomData<K>,
}

pub type CiliumNetworkPolicyObject = CiliumObject<CnpKind>;
pub type CiliumClusterwideNetworkPolicyObject = CiliumObject<CcnpKind>;

/// Why an object's body does not read as a Cilium policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CiliumDecodeError {
    /// Fields the CRD schema does not have (the API server prunes them, or refuses them under
    /// `fieldValidation=Strict`), with their paths.
    #[error("unknown fields: {}", .0.join(", "))]
    Unknown(Vec<String>),
    /// A field of the wrong type: its path and what was wrong.
    #[error("{path}: {message}")]
    Type { path: String, message: String },
}

impl<K: CiliumApiKind> CiliumObject<K> {
    pub fn new(metadata: ObjectMeta, fields: Map<String, Value>) -> Self {
        CiliumObject {
            metadata,
            fields,
            kind: PhantomData,
        }
    }

    /// The object as the core reads it (status left out). Fields the schema does not know are
    /// pruned and reported in the error only when `strict`.
    pub fn policy(&self, strict: bool) -> Result<(CiliumPolicy, Vec<String>), CiliumDecodeError> {
        let mut meta = Map::new();
        let m = &self.metadata;
        if let Some(n) = &m.name {
            meta.insert("name".into(), Value::String(n.clone()));
        }
        if let Some(ns) = m.namespace.as_ref().filter(|_| !K::KIND.is_clusterwide()) {
            meta.insert("namespace".into(), Value::String(ns.clone()));
        }
        for (key, map) in [("labels", &m.labels), ("annotations", &m.annotations)] {
            if let Some(map) = map {
                meta.insert(key.into(), serde_json::to_value(map).unwrap_or(Value::Null));
            }
        }
        let mut doc = Map::new();
        doc.insert("apiVersion".into(), Value::String(API_VERSION.into()));
        doc.insert("kind".into(), Value::String(K::KIND.as_str().into()));
        doc.insert("metadata".into(), Value::Object(meta));
        for (k, v) in &self.fields {
            if k != "status" {
                doc.insert(k.clone(), v.clone());
            }
        }
        let mut doc = Value::Object(doc);
        let mut pruned = Vec::new();
        // Each round finds one unknown field; a schema-shaped object has few.
        for _ in 0..256 {
            match serde_path_to_error::deserialize::<_, CiliumPolicy>(&doc) {
                Ok(p) => {
                    if strict && !pruned.is_empty() {
                        return Err(CiliumDecodeError::Unknown(pruned));
                    }
                    return Ok((p, pruned));
                }
                Err(e) => {
                    let path = e.path().to_string();
                    let message = e.inner().to_string();
                    if message.starts_with("unknown field") && remove_at(&mut doc, &path) {
                        pruned.push(path);
                        continue;
                    }
                    return Err(CiliumDecodeError::Type { path, message });
                }
            }
        }
        Err(CiliumDecodeError::Unknown(pruned))
    }
}

/// Removes the field at a serde_path_to_error path (`spec.ingress[0].fromEndpointz`); false
/// when there is nothing there.
pub(crate) fn remove_at(doc: &mut Value, path: &str) -> bool {
    let mut segments: Vec<&str> = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        while let Some(i) = rest.find('[') {
            if i > 0 {
                segments.push(&rest[..i]);
            }
            let end = rest[i..].find(']').map_or(rest.len(), |e| i + e + 1);
            segments.push(&rest[i..end]);
            rest = &rest[end..];
        }
        if !rest.is_empty() {
            segments.push(rest);
        }
    }
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut at = doc;
    for s in parents {
        let next = match s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            Some(i) => i.parse::<usize>().ok().and_then(|i| at.get_mut(i)),
            None => at.get_mut(*s),
        };
        match next {
            Some(n) => at = n,
            None => return false,
        }
    }
    at.as_object_mut()
        .is_some_and(|m| m.remove(*last).is_some())
}

impl<K> Clone for CiliumObject<K> {
    fn clone(&self) -> Self {
        CiliumObject {
            metadata: self.metadata.clone(),
            fields: self.fields.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> PartialEq for CiliumObject<K> {
    fn eq(&self, other: &Self) -> bool {
        self.metadata == other.metadata && self.fields == other.fields
    }
}

impl<K: CiliumApiKind> std::fmt::Debug for CiliumObject<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(K::KIND.as_str())
            .field("metadata", &self.metadata)
            .field("fields", &self.fields)
            .finish()
    }
}

impl<K: CiliumApiKind> Resource for CiliumObject<K> {
    const API_VERSION: &'static str = API_VERSION;
    const GROUP: &'static str = GROUP;
    const KIND: &'static str = match K::KIND {
        CiliumKind::CiliumNetworkPolicy => "CiliumNetworkPolicy",
        CiliumKind::CiliumClusterwideNetworkPolicy => "CiliumClusterwideNetworkPolicy",
    };
    const VERSION: &'static str = VERSION;
    const URL_PATH_SEGMENT: &'static str = K::PLURAL;
    type Scope = K::Scope;
}

impl<K: CiliumApiKind> Metadata for CiliumObject<K> {
    type Ty = ObjectMeta;
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl<K: CiliumApiKind> Serialize for CiliumObject<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::custom_object::encode(
            serializer,
            API_VERSION,
            K::KIND.as_str(),
            &self.metadata,
            &self.fields,
        )
    }
}

impl<'de, K: CiliumApiKind> Deserialize<'de> for CiliumObject<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (metadata, fields) =
            crate::custom_object::decode(deserializer, API_VERSION, K::KIND.as_str())?;
        Ok(CiliumObject::new(metadata, fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cnp(body: Value) -> CiliumNetworkPolicyObject {
        serde_json::from_value(body).expect("an object")
    }

    #[test]
    fn reads_as_the_core_policy_and_prunes_unknown_fields_unless_strict() {
        let obj = cnp(json!({
            "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "p", "namespace": "x", "uid": "u", "resourceVersion": "3"},
            "spec": {"endpointSelector": {}, "ingress": [{"fromEndpointz": [{}]}]},
            "status": {"derivativePolicies": {}},
        }));
        let (p, pruned) = obj.policy(false).expect("pruned");
        assert_eq!(pruned, ["spec.ingress[0].fromEndpointz"]);
        assert_eq!(p.policy_ref().to_string(), "CNP x/p");
        assert_eq!(
            obj.policy(true),
            Err(CiliumDecodeError::Unknown(vec![
                "spec.ingress[0].fromEndpointz".into()
            ]))
        );
        let wrong = cnp(json!({"metadata": {"name": "p", "namespace": "x"},
            "spec": {"endpointSelector": {}, "ingress": [{"toPorts": [{"ports": [{"endPort": "x"}]}]}]}}));
        match wrong.policy(false) {
            Err(CiliumDecodeError::Type { path, .. }) => {
                assert_eq!(path, "spec.ingress[0].toPorts[0].ports[0].endPort")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_clusterwide_policy_has_no_namespace_and_the_kind_must_match() {
        let obj: CiliumClusterwideNetworkPolicyObject = serde_json::from_value(json!({
            "metadata": {"name": "d"}, "spec": {"endpointSelector": {}, "egress": [{}]},
        }))
        .expect("an object");
        let (p, _) = obj.policy(true).expect("reads");
        assert!(p.kind.is_clusterwide());
        let err = serde_json::from_value::<CiliumClusterwideNetworkPolicyObject>(json!({
            "kind": "CiliumNetworkPolicy", "metadata": {"name": "d"},
        }))
        .expect_err("wrong kind");
        assert!(err.to_string().contains("kind must be"), "{err}");
    }
}
