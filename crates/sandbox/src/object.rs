//! The objects the sandbox itself creates (system add-ons, preset objects): created through the
//! emulator's admission like a client's, or through the real API server on the reference cluster.

use crate::gateway_api::{Gateway, HttpRoute};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, Resource};

/// An object the sandbox itself creates (system add-ons, preset objects), admitted like a
/// client's.
// A handful are made per namespace or per start: boxing the large variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Namespace(Namespace),
    Pod(Pod),
    Service(Service),
    NetworkPolicy(NetworkPolicy),
    Ingress(Ingress),
    HttpRoute(HttpRoute),
    Gateway(Gateway),
}

impl Object {
    /// `Kind namespace/name` (or `Kind name`), for messages.
    pub fn describe(&self) -> String {
        fn name<K: Resource + Metadata<Ty = ObjectMeta>>(obj: &K) -> String {
            let meta = obj.metadata();
            let name = meta.name.as_deref().unwrap_or("");
            match meta.namespace.as_deref() {
                Some(ns) if !ns.is_empty() => format!("{} {ns}/{name}", K::KIND),
                _ => format!("{} {name}", K::KIND),
            }
        }
        match self {
            Object::Namespace(o) => name(o),
            Object::Pod(o) => name(o),
            Object::Service(o) => name(o),
            Object::NetworkPolicy(o) => name(o),
            Object::Ingress(o) => name(o),
            Object::HttpRoute(o) => name(o),
            Object::Gateway(o) => name(o),
        }
    }
}
