//! gateway.networking.k8s.io/v1 objects (HTTPRoute, Gateway): k8s-openapi has no types for the
//! Gateway API (it is CRDs upstream), so they are kept as typed metadata plus the rest of the
//! object as JSON.
//
// The wire form is [`crate::custom_object`]'s: every top-level field but metadata is kept as
// given, so strict field validation finds unknown fields only in metadata, as for a CRD without
// a schema.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, NamespaceResourceScope, Resource};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::marker::PhantomData;

pub const GROUP: &str = "gateway.networking.k8s.io";
pub const VERSION: &str = "v1";
pub const API_VERSION: &str = "gateway.networking.k8s.io/v1";
/// The GatewayClass the sandbox's own gateway implements: Gateways of this class are programmed
/// at the node's address at once.
pub const SANDBOX_GATEWAY_CLASS: &str = "netassay-sandbox";

/// What distinguishes one Gateway API kind from another.
pub trait GatewayApiKind: Send + Sync + 'static {
    const KIND: &'static str;
    /// The resource name (URL path segment).
    const PLURAL: &'static str;
}

/// One Gateway API object: metadata, and the other top-level fields (`spec`, `status`) as JSON.
pub struct GatewayApiObject<K> {
    pub metadata: ObjectMeta,
    /// Every top-level field but `apiVersion`, `kind` and `metadata`.
    pub fields: Map<String, Value>,
    kind: PhantomData<K>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpRouteKind;

impl GatewayApiKind for HttpRouteKind {
    const KIND: &'static str = "HTTPRoute";
    const PLURAL: &'static str = "httproutes";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayKind;

impl GatewayApiKind for GatewayKind {
    const KIND: &'static str = "Gateway";
    const PLURAL: &'static str = "gateways";
}

pub type HttpRoute = GatewayApiObject<HttpRouteKind>;
pub type Gateway = GatewayApiObject<GatewayKind>;

impl<K> GatewayApiObject<K> {
    pub fn new(metadata: ObjectMeta, fields: Map<String, Value>) -> Self {
        GatewayApiObject {
            metadata,
            fields,
            kind: PhantomData,
        }
    }

    /// `spec`, or `null` when absent.
    pub fn spec(&self) -> &Value {
        self.fields.get("spec").unwrap_or(&Value::Null)
    }
}

impl<K> Clone for GatewayApiObject<K> {
    fn clone(&self) -> Self {
        GatewayApiObject::new(self.metadata.clone(), self.fields.clone())
    }
}

impl<K> PartialEq for GatewayApiObject<K> {
    fn eq(&self, other: &Self) -> bool {
        self.metadata == other.metadata && self.fields == other.fields
    }
}

impl<K: GatewayApiKind> std::fmt::Debug for GatewayApiObject<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(K::KIND)
            .field("metadata", &self.metadata)
            .field("fields", &self.fields)
            .finish()
    }
}

impl<K: GatewayApiKind> Resource for GatewayApiObject<K> {
    const API_VERSION: &'static str = API_VERSION;
    const GROUP: &'static str = GROUP;
    const KIND: &'static str = K::KIND;
    const VERSION: &'static str = VERSION;
    const URL_PATH_SEGMENT: &'static str = K::PLURAL;
    type Scope = NamespaceResourceScope;
}

impl<K: GatewayApiKind> Metadata for GatewayApiObject<K> {
    type Ty = ObjectMeta;
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl<K: GatewayApiKind> Serialize for GatewayApiObject<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::custom_object::encode(
            serializer,
            API_VERSION,
            K::KIND,
            &self.metadata,
            &self.fields,
        )
    }
}

impl<'de, K: GatewayApiKind> Deserialize<'de> for GatewayApiObject<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (metadata, fields) = crate::custom_object::decode(deserializer, API_VERSION, K::KIND)?;
        Ok(GatewayApiObject::new(metadata, fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_round_trip_with_their_api_version_and_kind() {
        let text = json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": "x"},
            "spec": {"hostnames": ["a.example.org"]},
        });
        let route: HttpRoute = serde_json::from_value(text.clone()).expect("decodes");
        assert_eq!(route.metadata.name.as_deref(), Some("r"));
        assert_eq!(route.spec()["hostnames"][0], "a.example.org");
        assert_eq!(serde_json::to_value(&route).unwrap(), text);
    }

    #[test]
    fn a_missing_kind_is_filled_in_and_a_wrong_one_refused() {
        let gw: Gateway = serde_json::from_value(json!({"metadata": {"name": "g"}})).unwrap();
        assert_eq!(serde_json::to_value(&gw).unwrap()["kind"], "Gateway");
        let wrong = serde_json::from_value::<Gateway>(json!({"kind": "HTTPRoute"}));
        assert!(wrong
            .unwrap_err()
            .to_string()
            .contains("kind must be \"Gateway\""));
        let old = serde_json::from_value::<Gateway>(
            json!({"apiVersion": "gateway.networking.k8s.io/v1beta1"}),
        );
        assert!(old.unwrap_err().to_string().contains("apiVersion"));
    }
}
