//! One request decoded and admitted as the handlers do it, without a server or a dataplane: the
//! entry point the fuzz target `emulator_request` drives.

use super::extract::Params;
use super::handlers;
use super::patch::{self, PatchKind};
use super::status::ApiError;
use super::store::{decode_object, Kind, Store};
use crate::dataplane::NodeInfo;
use crate::gateway_api::{Gateway, HttpRoute};
use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};

/// Decodes one API request the way the emulator's handlers do, against a fresh store that holds
/// only the system namespaces, and answers what the API server would: `Ok` with the HTTP status,
/// or `Err` with the status and message of the refusal.
///
/// `uri` is the request target (path and query: `labelSelector`, `fieldSelector`, `dryRun`,
/// `fieldValidation`, ...); its path names the resource as the router does
/// (`/api/v1/namespaces/{namespace}/pods/{name}`, `/apis/{group}/{version}/...`).
/// `content_type` picks the body's decoding: JSON, YAML, Kubernetes protobuf, or a PATCH
/// flavour. For PUT and PATCH an object of the named kind is created first (when the body or a
/// minimal object allows), so that updates meet a stored object. Never panics on any input; no
/// I/O. Meant for fuzzing and tests.
pub fn decode_request(
    method: &str,
    uri: &str,
    content_type: &str,
    body: &[u8],
) -> Result<u16, (u16, String)> {
    let refused = |e: ApiError| (e.code.as_u16(), e.message);
    let uri: Uri = uri
        .parse()
        .map_err(|e| (400, format!("invalid request target: {e}")))?;
    let params = Params::from_uri(&uri).map_err(refused)?;
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let (namespace, resource, name) = match segments.as_slice() {
        ["api", "v1", "namespaces"] => ("", "namespaces", None),
        ["api", "v1", "namespaces", name] => ("", "namespaces", Some(*name)),
        ["api", "v1", resource] => ("", *resource, None),
        ["api", "v1", "namespaces", ns, resource] => (*ns, *resource, None),
        ["api", "v1", "namespaces", ns, resource, name] => (*ns, *resource, Some(*name)),
        ["apis", _, _, resource] => ("", *resource, None),
        ["apis", _, _, "namespaces", ns, resource] => (*ns, *resource, None),
        ["apis", _, _, "namespaces", ns, resource, name] => (*ns, *resource, Some(*name)),
        _ => {
            return Err((
                404,
                "the server could not find the requested resource".into(),
            ))
        }
    };
    let request = Request {
        method,
        namespace,
        name,
        params: &params,
        headers: &headers,
        body,
    };
    match resource {
        "namespaces" => request.run::<Namespace>(),
        "pods" => request.run::<Pod>(),
        "services" => request.run::<Service>(),
        "events" => request.run::<Event>(),
        "networkpolicies" => request.run::<NetworkPolicy>(),
        "leases" => request.run::<Lease>(),
        "ingresses" => request.run::<Ingress>(),
        "httproutes" => request.run::<HttpRoute>(),
        "gateways" => request.run::<Gateway>(),
        _ => Err(ApiError::bad_request(format!(
            "unknown resource {resource}"
        ))),
    }
    .map_err(refused)
}

struct Request<'a> {
    method: &'a str,
    namespace: &'a str,
    name: Option<&'a str>,
    params: &'a Params,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

impl Request<'_> {
    fn run<K: Kind>(&self) -> Result<u16, ApiError> {
        let mut store = Store::new(NodeInfo {
            name: "fuzz".into(),
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        });
        let (labels, fields) = handlers::selectors::<K>(self.params)?;
        let dry_run = self.params.dry_run();
        let name = self.name.unwrap_or("");
        match (self.method, self.name) {
            ("GET", None) => {
                let namespace = Some(self.namespace).filter(|n| !n.is_empty());
                store.list::<K>(namespace, &labels, &fields);
                Ok(200)
            }
            ("GET", Some(_)) => store.get::<K>(self.namespace, name).map(|_| 200),
            ("POST", None) => {
                let obj: K = handlers::decode(self.headers, self.body, self.params)?;
                store.create(self.namespace, obj, dry_run).map(|_| 201)
            }
            ("PUT", Some(_)) => {
                let obj: K = handlers::decode(self.headers, self.body, self.params)?;
                // The update meets a stored object: the same one, created first when it can be.
                let _ = store.create(self.namespace, obj.clone(), false);
                store
                    .replace(self.namespace, name, obj, dry_run)
                    .map(|_| 200)
            }
            ("PATCH", Some(_)) => {
                let media = handlers::media_type(self.headers);
                let kind = PatchKind::from_content_type(&media)
                    .ok_or_else(|| ApiError::unsupported_media_type(&media))?;
                let patch_body =
                    patch::parse_body(kind, self.body).map_err(ApiError::bad_request)?;
                if kind != PatchKind::Apply {
                    let minimal = json!({"metadata": {"name": name}});
                    if let Ok(obj) = decode_object::<K>(minimal, false) {
                        let _ = store.create(self.namespace, obj, false);
                    }
                }
                store
                    .patch::<K>(
                        self.namespace,
                        name,
                        kind,
                        &patch_body,
                        dry_run,
                        self.params.strict(),
                    )
                    .map(|(_, created)| if created { 201 } else { 200 })
            }
            ("DELETE", _) => {
                let body = handlers::json_body(self.headers, Bytes::copy_from_slice(self.body))?;
                let (pre, dry_run) = handlers::delete_options(&body, self.params)?;
                store
                    .delete::<K>(self.namespace, name, &pre, dry_run)
                    .map(|_| 200)
            }
            _ => Err(ApiError::method_not_allowed("method not allowed")),
        }
    }
}
