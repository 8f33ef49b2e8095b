//! cilium.io/v2: CiliumNetworkPolicy (namespaced) and CiliumClusterwideNetworkPolicy
//! (cluster-scoped), served only while the node's CNI plays Cilium ([`Dataplane::cilium`]):
//! a cluster has these kinds once Cilium has registered its CRDs, and a cluster without Cilium
//! answers 404 for them and leaves `cilium.io` out of discovery.
//!
//! Admission is what kube-apiserver does with Cilium's CRDs: fields the schema does not have
//! are pruned (refused with 400 under `fieldValidation=Strict`), a field of the wrong type and
//! every error of the core validator that the CRD schema makes (everything but its
//! `Cilium agent:` and `not modelled:` errors) are a 422 naming the field. What only the agent
//! refuses is stored, as on a real cluster; the agent, netassay's compiler here, then ignores
//! the whole policy (see `compile::cilium`). `status` is the operator's: clients cannot set it.
//!
//! [`Dataplane::cilium`]: crate::dataplane::Dataplane::cilium

use super::admission::reject;
use super::extract::AppState;
use super::field_error::invalid_str;
use super::handlers as h;
use super::shared::Shared;
use super::status::ApiError;
use super::store::{Key, Kind, Store};
use crate::cilium_api::{
    CiliumApiKind, CiliumClusterwideNetworkPolicyObject, CiliumDecodeError,
    CiliumNetworkPolicyObject, CiliumObject, API_VERSION,
};
use crate::state::CiliumState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use netassay_core::policy::cilium::validate_cilium_policy;
use netassay_core::policy::validate::FieldError;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The errors kube-apiserver itself makes (the CRD schema and object metadata), not those only
/// the Cilium agent makes or netassay does not model.
fn api_server_refuses(e: &FieldError) -> bool {
    !(e.detail.starts_with("Cilium agent:") || e.detail.starts_with("not modelled:"))
}

fn admit_cilium<K: CiliumApiKind>(
    obj: &mut CiliumObject<K>,
    old: Option<&CiliumObject<K>>,
) -> Result<(), ApiError>
where
    CiliumObject<K>: Kind,
{
    let name = obj.metadata.name.clone().unwrap_or_default();
    let (policy, pruned) = match obj.policy(false) {
        Ok(p) => p,
        Err(CiliumDecodeError::Type { path, message }) => {
            let e = invalid_str(&path, "", &format!("{path} in body {message}"));
            return reject::<CiliumObject<K>>(&obj.metadata, vec![e]);
        }
        Err(CiliumDecodeError::Unknown(paths)) => {
            return Err(ApiError::bad_request(format!(
                "{} {name:?}: too many unknown fields: {}",
                K::KIND,
                paths.join(", ")
            )))
        }
    };
    // Pruned as the API server prunes a structural schema's unknown fields.
    let mut doc = Value::Object(std::mem::take(&mut obj.fields));
    for path in &pruned {
        crate::cilium_api::remove_at(&mut doc, path);
    }
    if let Value::Object(fields) = doc {
        obj.fields = fields;
    }
    let errs: Vec<FieldError> = validate_cilium_policy(&policy)
        .into_iter()
        .filter(api_server_refuses)
        .collect();
    reject::<CiliumObject<K>>(&obj.metadata, errs)?;
    let spec = |o: &CiliumObject<K>| {
        (
            o.fields.get("spec").cloned(),
            o.fields.get("specs").cloned(),
        )
    };
    obj.metadata.generation = Some(match old {
        None => 1,
        Some(old) if spec(old) == spec(obj) => old.metadata.generation.unwrap_or(1),
        Some(old) => old.metadata.generation.unwrap_or(1) + 1,
    });
    // Status is written by Cilium's operator and agents, never by clients.
    obj.fields.remove("status");
    if let Some(status) = old.and_then(|o| o.fields.get("status")) {
        obj.fields.insert("status".to_string(), status.clone());
    }
    Ok(())
}

/// Under `fieldValidation=Strict`, fields the schema does not have are a 400, as the API
/// server's strict decoding error.
fn strict_fields<K: CiliumApiKind>(obj: &CiliumObject<K>, strict: bool) -> Result<(), ApiError> {
    match obj.policy(strict) {
        Err(CiliumDecodeError::Unknown(paths)) => {
            let list: Vec<String> = paths
                .iter()
                .map(|f| format!("unknown field {f:?}"))
                .collect();
            Err(ApiError::bad_request(format!(
                "strict decoding error: {}",
                list.join(", ")
            )))
        }
        // Type errors are admission's 422.
        _ => Ok(()),
    }
}

impl Kind for CiliumNetworkPolicyObject {
    const NAMESPACED: bool = true;
    const ENFORCED: bool = true;
    const DELETE_RETURNS_STATUS: bool = true;

    fn table(store: &Store) -> &BTreeMap<Key, Self> {
        &store.cilium_policies
    }
    fn table_mut(store: &mut Store) -> &mut BTreeMap<Key, Self> {
        &mut store.cilium_policies
    }
    fn admit(_: &Store, obj: &mut Self, old: Option<&Self>) -> Result<(), ApiError> {
        admit_cilium(obj, old)
    }
    fn check_fields(&self, strict: bool) -> Result<(), ApiError> {
        strict_fields(self, strict)
    }
}

impl Kind for CiliumClusterwideNetworkPolicyObject {
    const NAMESPACED: bool = false;
    const ENFORCED: bool = true;
    const DELETE_RETURNS_STATUS: bool = true;

    fn table(store: &Store) -> &BTreeMap<Key, Self> {
        &store.cilium_clusterwide_policies
    }
    fn table_mut(store: &mut Store) -> &mut BTreeMap<Key, Self> {
        &mut store.cilium_clusterwide_policies
    }
    fn admit(_: &Store, obj: &mut Self, old: Option<&Self>) -> Result<(), ApiError> {
        admit_cilium(obj, old)
    }
    fn check_fields(&self, strict: bool) -> Result<(), ApiError> {
        strict_fields(self, strict)
    }
}

impl Store {
    /// The stored Cilium policies as the core reads them, CNPs (by namespace/name) then CCNPs.
    pub(crate) fn cilium_state(&self) -> CiliumState {
        let cnps = self.cilium_policies.values().map(|o| o.policy(false));
        let ccnps = self
            .cilium_clusterwide_policies
            .values()
            .map(|o| o.policy(false));
        CiliumState {
            // Admission made sure every stored object reads.
            policies: cnps
                .chain(ccnps)
                .filter_map(|r| r.ok())
                .map(|(p, _)| p)
                .collect(),
        }
    }
}

/// `/apis/cilium.io/v2`: the two kinds, as Cilium's CRDs declare them.
async fn discovery() -> Json<Value> {
    fn resource<K: CiliumApiKind>(namespaced: bool) -> Value {
        json!({
            "name": K::PLURAL,
            "singularName": K::SINGULAR,
            "namespaced": namespaced,
            "kind": K::KIND.as_str(),
            "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
            "shortNames": K::SHORT_NAMES,
            "categories": ["cilium", "ciliumpolicy"],
        })
    }
    Json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": API_VERSION,
        "resources": [
            resource::<crate::cilium_api::CcnpKind>(false),
            resource::<crate::cilium_api::CnpKind>(true),
        ],
    }))
}

/// Every cilium.io path answers 404 (as for any unknown resource) unless the node plays
/// Cilium.
async fn only_with_cilium(State(s): AppState, request: Request, next: Next) -> Response {
    if !s.dataplane.cilium() {
        return ApiError::no_route().into_response();
    }
    next.run(request).await
}

/// The cilium.io/v2 routes.
pub(super) fn routes(shared: Arc<Shared>) -> Router<Arc<Shared>> {
    const V2: &str = "/apis/cilium.io/v2";
    type Cnp = CiliumNetworkPolicyObject;
    type Ccnp = CiliumClusterwideNetworkPolicyObject;
    Router::new()
        .route(V2, get(discovery))
        .route(&format!("{V2}/ciliumnetworkpolicies"), get(h::list::<Cnp>))
        .route(
            &format!("{V2}/namespaces/{{namespace}}/ciliumnetworkpolicies"),
            get(h::list::<Cnp>)
                .post(h::create::<Cnp>)
                .delete(h::delete_collection::<Cnp>),
        )
        .route(
            &format!("{V2}/namespaces/{{namespace}}/ciliumnetworkpolicies/{{name}}"),
            get(h::get::<Cnp>)
                .put(h::replace::<Cnp>)
                .patch(h::patch::<Cnp>)
                .delete(h::delete::<Cnp>),
        )
        .route(
            &format!("{V2}/ciliumclusterwidenetworkpolicies"),
            get(h::list::<Ccnp>)
                .post(h::create::<Ccnp>)
                .delete(h::delete_collection::<Ccnp>),
        )
        .route(
            &format!("{V2}/ciliumclusterwidenetworkpolicies/{{name}}"),
            get(h::get::<Ccnp>)
                .put(h::replace::<Ccnp>)
                .patch(h::patch::<Ccnp>)
                .delete(h::delete::<Ccnp>),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            shared,
            only_with_cilium,
        ))
}
