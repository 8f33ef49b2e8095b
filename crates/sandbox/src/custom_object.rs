//! The wire form of objects of kinds k8s-openapi has no types for (CRD kinds: the Gateway API's
//! in [`crate::gateway_api`], Cilium's in [`crate::cilium_api`]): typed metadata, and every
//! other top-level field (`spec`, `status`, ...) kept as JSON.
//
// Decoding checks `apiVersion` and `kind` (when given, they must be the kind's own) and decodes
// `metadata` as an ObjectMeta; explicit nulls mean "unset", as for the typed kinds.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serializer};
use serde_json::{Map, Value};

/// Writes `apiVersion`, `kind`, `metadata`, then `fields` in their order.
pub(crate) fn encode<S: Serializer>(
    serializer: S,
    api_version: &str,
    kind: &str,
    metadata: &ObjectMeta,
    fields: &Map<String, Value>,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(fields.len() + 3))?;
    map.serialize_entry("apiVersion", api_version)?;
    map.serialize_entry("kind", kind)?;
    map.serialize_entry("metadata", metadata)?;
    for (key, value) in fields {
        map.serialize_entry(key, value)?;
    }
    map.end()
}

/// Reads an object of this `api_version` and `kind`: its metadata and its other top-level
/// fields (nulls dropped).
pub(crate) fn decode<'de, D: Deserializer<'de>>(
    deserializer: D,
    api_version: &str,
    kind: &str,
) -> Result<(ObjectMeta, Map<String, Value>), D::Error> {
    let mut fields = Map::deserialize(deserializer)?;
    for (field, want) in [("apiVersion", api_version), ("kind", kind)] {
        match fields.remove(field) {
            None | Some(Value::Null) => {}
            Some(Value::String(got)) if got == want => {}
            Some(got) => {
                return Err(D::Error::custom(format!(
                    "{field} must be {want:?}, not {got}"
                )))
            }
        }
    }
    let metadata = match fields.remove("metadata") {
        None | Some(Value::Null) => ObjectMeta::default(),
        Some(m) => ObjectMeta::deserialize(m).map_err(D::Error::custom)?,
    };
    fields.retain(|_, v| !v.is_null());
    Ok((metadata, fields))
}
