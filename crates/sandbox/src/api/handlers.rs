//! HTTP handlers for the object kinds: request parsing in, store call, dataplane sync, JSON out.

use super::extract::{AppState, Params, PathParams};
use super::lifecycle;
use super::patch::{self, PatchKind};
use super::protobuf;
use super::selector::{FieldQuery, LabelQuery};
use super::shared::Shared;
use super::status::ApiError;
use super::store::{decode_object, Key, Kind, Preconditions};
use super::table;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::Json;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

fn namespace_of(p: &BTreeMap<String, String>) -> String {
    p.get("namespace").cloned().unwrap_or_default()
}

fn name_of(p: &BTreeMap<String, String>) -> String {
    p.get("name").cloned().unwrap_or_default()
}

fn to_json<T: serde::Serialize>(obj: &T) -> Result<Json<Value>, ApiError> {
    serde_json::to_value(obj)
        .map(Json)
        .map_err(|e| ApiError::internal(e.to_string()))
}

pub(super) fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A request body as JSON: JSON, YAML (as kubectl may send) or Kubernetes protobuf (kubectl's
/// typed clients), whose envelope must name `kind` in `api_version` when given.
pub(crate) fn body_value(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let media = media_type(headers);
    Ok(match media.as_str() {
        "application/json" | "" | "*/*" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding body: {e}")))?,
        "application/yaml" => {
            let text = std::str::from_utf8(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding body: {e}")))?;
            serde_saphyr::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding body: {e}")))?
        }
        protobuf::MEDIA_TYPE => {
            protobuf::decode(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding protobuf body: {e}")))?
                .object
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    })
}

/// Decodes a create/replace body of kind `K`.
pub(super) fn decode<K: Kind>(
    headers: &HeaderMap,
    body: &[u8],
    params: &Params,
) -> Result<K, ApiError> {
    let value = body_value(headers, body)?;
    if media_type(headers) == protobuf::MEDIA_TYPE
        && (value["kind"] != K::KIND || value["apiVersion"] != K::API_VERSION)
    {
        return Err(ApiError::bad_request(format!(
            "the body is a {} ({}), not a {} ({})",
            value["kind"].as_str().unwrap_or(""),
            value["apiVersion"].as_str().unwrap_or(""),
            K::KIND,
            K::API_VERSION
        )));
    }
    decode_object(value, params.strict())
}

/// A DELETE body as JSON: protobuf `DeleteOptions` (typed clients send them) are converted.
pub(super) fn json_body(headers: &HeaderMap, body: Bytes) -> Result<Bytes, ApiError> {
    if media_type(headers) != protobuf::MEDIA_TYPE || body.is_empty() {
        return Ok(body);
    }
    let decoded = protobuf::decode(&body)
        .map_err(|e| ApiError::bad_request(format!("error decoding protobuf body: {e}")))?;
    serde_json::to_vec(&decoded.object)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// `DeleteOptions` from a DELETE body: preconditions and dryRun (either may be absent).
pub(super) fn delete_options(
    body: &[u8],
    params: &Params,
) -> Result<(Preconditions, bool), ApiError> {
    let mut dry_run = params.dry_run();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((Preconditions::default(), dry_run));
    }
    let opts: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?;
    let text = |v: &Value| v.as_str().map(str::to_string);
    let pre = Preconditions {
        uid: text(&opts["preconditions"]["uid"]),
        resource_version: text(&opts["preconditions"]["resourceVersion"]),
    };
    if let Some(modes) = opts["dryRun"].as_array() {
        dry_run |= modes.iter().any(|m| m == "All");
    }
    Ok((pre, dry_run))
}

fn list_body<K: Kind>(items: &[K], revision: String) -> Result<Json<Value>, ApiError> {
    let items = serde_json::to_value(items).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(json!({
        "apiVersion": K::API_VERSION,
        "kind": format!("{}List", K::KIND),
        "metadata": {"resourceVersion": revision},
        "items": items,
    })))
}

/// The `Status` upstream returns for kinds deleted at once.
fn deleted_status<K: Kind>(obj: &K) -> Json<Value> {
    let meta = obj.metadata();
    Json(json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {
            "name": meta.name.clone().unwrap_or_default(),
            "group": K::GROUP,
            "kind": K::URL_PATH_SEGMENT,
            "uid": meta.uid.clone().unwrap_or_default(),
        },
    }))
}

async fn after_change<K: Kind>(s: &Shared, dry_run: bool) {
    if K::ENFORCED && !dry_run {
        s.sync().await;
    }
}

pub(super) fn selectors<K: Kind>(params: &Params) -> Result<(LabelQuery, FieldQuery), ApiError> {
    let labels = LabelQuery::parse(params.get("labelSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fields = FieldQuery::parse(params.get("fieldSelector").unwrap_or(""), K::FIELDS)
        .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

/// The Table of `items` when the client asked for one.
fn as_table<K: Kind>(
    headers: &HeaderMap,
    params: &Params,
    items: &[K],
    revision: &str,
) -> Result<Option<Json<Value>>, ApiError> {
    if !table::wanted(headers) {
        return Ok(None);
    }
    let now = k8s_openapi::jiff::Timestamp::now();
    let rows = items
        .iter()
        .map(|obj| Ok((to_json(obj)?.0, obj.cells(now))))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let include = table::Include::parse(params.get("includeObject"));
    Ok(Some(Json(table::table(
        K::COLUMNS,
        rows,
        revision,
        include,
    ))))
}

pub(crate) async fn list<K: Kind>(
    State(s): AppState,
    Path(p): PathParams,
    uri: Uri,
    headers: HeaderMap,
) -> Answer {
    let params = Params::from_uri(&uri)?;
    params.refuse_watch()?;
    let (labels, fields) = selectors::<K>(&params)?;
    let store = s.store();
    let items = store.list::<K>(p.get("namespace").map(String::as_str), &labels, &fields);
    let revision = store.revision();
    if let Some(t) = as_table(&headers, &params, &items, &revision)? {
        return Ok((StatusCode::OK, t));
    }
    Ok((StatusCode::OK, list_body(&items, revision)?))
}

pub(crate) async fn get<K: Kind>(
    State(s): AppState,
    Path(p): PathParams,
    uri: Uri,
    headers: HeaderMap,
) -> Answer {
    let params = Params::from_uri(&uri)?;
    params.refuse_watch()?;
    let obj = s.store().get::<K>(&namespace_of(&p), &name_of(&p))?;
    let revision = obj.metadata().resource_version.clone().unwrap_or_default();
    if let Some(t) = as_table(&headers, &params, std::slice::from_ref(&obj), &revision)? {
        return Ok((StatusCode::OK, t));
    }
    Ok((StatusCode::OK, to_json(&obj)?))
}

async fn create_inner<K: Kind>(
    s: &Arc<Shared>,
    p: &BTreeMap<String, String>,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(K, bool), ApiError> {
    let params = Params::from_uri(uri)?;
    let obj: K = decode(headers, body, &params)?;
    let dry_run = params.dry_run();
    let created = s.store().create(&namespace_of(p), obj, dry_run)?;
    after_change::<K>(s, dry_run).await;
    Ok((created, dry_run))
}

pub(crate) async fn create<K: Kind>(
    State(s): AppState,
    Path(p): PathParams,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let (created, _) = create_inner::<K>(&s, &p, &uri, &headers, &body).await?;
    Ok((StatusCode::CREATED, to_json(&created)?))
}

pub(crate) async fn create_pod(
    State(s): AppState,
    Path(p): PathParams,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let (pod, dry_run) = create_inner::<Pod>(&s, &p, &uri, &headers, &body).await?;
    if !dry_run {
        lifecycle::start(Arc::clone(&s), &pod);
    }
    Ok((StatusCode::CREATED, to_json(&pod)?))
}

pub(crate) async fn replace<K: Kind>(
    State(s): AppState,
    Path(p): PathParams,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let params = Params::from_uri(&uri)?;
    let obj: K = decode(&headers, &body, &params)?;
    let dry_run = params.dry_run();
    let replaced = s
        .store()
        .replace(&namespace_of(&p), &name_of(&p), obj, dry_run)?;
    after_change::<K>(&s, dry_run).await;
    Ok((StatusCode::OK, to_json(&replaced)?))
}

async fn patch_inner<K: Kind>(
    s: &Arc<Shared>,
    p: &BTreeMap<String, String>,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(K, bool, bool), ApiError> {
    let params = Params::from_uri(uri)?;
    let media = media_type(headers);
    let kind = PatchKind::from_content_type(&media)
        .ok_or_else(|| ApiError::unsupported_media_type(&media))?;
    let patch_body = patch::parse_body(kind, body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let dry_run = params.dry_run();
    let (obj, created) = s.store().patch::<K>(
        &namespace_of(p),
        &name_of(p),
        kind,
        &patch_body,
        dry_run,
        params.strict(),
    )?;
    after_change::<K>(s, dry_run).await;
    Ok((obj, created, dry_run))
}

pub(crate) async fn patch<K: Kind>(
    State(s): AppState,
    Path(p): PathParams,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let (obj, created, _) = patch_inner::<K>(&s, &p, &uri, &headers, &body).await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, to_json(&obj)?))
}

/// PATCH for pods: server-side apply may create one, which then has to start.
pub(crate) async fn patch_pod(
    State(s): AppState,
    Path(p): PathParams,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let (pod, created, dry_run) = patch_inner::<Pod>(&s, &p, &uri, &headers, &body).await?;
    if created && !dry_run {
        lifecycle::start(Arc::clone(&s), &pod);
    }
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, to_json(&pod)?))
}

/// Answers a delete: a `Status` or the object, as the upstream registry of the kind does.
fn deleted<K: Kind>(obj: &K) -> Result<Json<Value>, ApiError> {
    if K::DELETE_RETURNS_STATUS {
        Ok(deleted_status(obj))
    } else {
        to_json(obj)
    }
}

pub(crate) async fn delete<K: Kind>(
    State(s): AppState,
    Path(p): PathParams,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let body = json_body(&headers, body)?;
    let params = Params::from_uri(&uri)?;
    let (pre, dry_run) = delete_options(&body, &params)?;
    let obj = s
        .store()
        .delete::<K>(&namespace_of(&p), &name_of(&p), &pre, dry_run)?;
    after_change::<K>(&s, dry_run).await;
    Ok((StatusCode::OK, deleted(&obj)?))
}

/// DELETE on a collection: removes what the selectors match and returns the list of it.
pub(crate) async fn delete_collection<K: Kind>(
    State(s): AppState,
    Path(p): PathParams,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let body = json_body(&headers, body)?;
    let params = Params::from_uri(&uri)?;
    let (_, dry_run) = delete_options(&body, &params)?;
    let (labels, fields) = selectors::<K>(&params)?;
    let namespace = namespace_of(&p);
    let removed: Vec<K> = {
        let mut store = s.store();
        let matched = store.list::<K>(Some(&namespace), &labels, &fields);
        matched
            .into_iter()
            .filter_map(|obj| {
                let name = obj.metadata().name.clone().unwrap_or_default();
                store
                    .delete::<K>(&namespace, &name, &Preconditions::default(), dry_run)
                    .ok()
            })
            .collect()
    };
    after_change::<K>(&s, dry_run).await;
    let revision = s.store().revision();
    Ok((StatusCode::OK, list_body(&removed, revision)?))
}

/// A deleted pod as upstream answers it: the object with its deletion timestamp.
fn terminating(mut pod: Pod, grace: i64) -> Pod {
    pod.metadata.deletion_timestamp = Some(super::store::now());
    pod.metadata.deletion_grace_period_seconds = Some(grace);
    pod
}

fn grace_period(body: &[u8], params: &Params) -> i64 {
    let from_body = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["gracePeriodSeconds"].as_i64());
    from_body
        .or_else(|| params.get("gracePeriodSeconds")?.parse().ok())
        .unwrap_or(30)
}

pub(crate) async fn delete_pod(
    State(s): AppState,
    Path(p): PathParams,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let body = json_body(&headers, body)?;
    let params = Params::from_uri(&uri)?;
    let (pre, dry_run) = delete_options(&body, &params)?;
    let key: Key = (namespace_of(&p), name_of(&p));
    let pod = lifecycle::delete(&s, &key, &pre, dry_run).await?;
    after_change::<Pod>(&s, dry_run).await;
    Ok((
        StatusCode::OK,
        to_json(&terminating(pod, grace_period(&body, &params)))?,
    ))
}

pub(crate) async fn delete_pods(
    State(s): AppState,
    Path(p): PathParams,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let body = json_body(&headers, body)?;
    let params = Params::from_uri(&uri)?;
    let (_, dry_run) = delete_options(&body, &params)?;
    let (labels, fields) = selectors::<Pod>(&params)?;
    let namespace = namespace_of(&p);
    let matched = s.store().list::<Pod>(Some(&namespace), &labels, &fields);
    let grace = grace_period(&body, &params);
    let deletions = matched.iter().map(|pod| {
        let key: Key = (
            namespace.clone(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        let pre = Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        };
        let s = Arc::clone(&s);
        async move { lifecycle::delete(&s, &key, &pre, dry_run).await.ok() }
    });
    let removed: Vec<Pod> = futures::future::join_all(deletions)
        .await
        .into_iter()
        .flatten()
        .map(|pod| terminating(pod, grace))
        .collect();
    after_change::<Pod>(&s, dry_run).await;
    let revision = s.store().revision();
    Ok((StatusCode::OK, list_body(&removed, revision)?))
}

/// Namespace deletion cascades: pods leave the dataplane, then services, policies and leases go.
/// The answer is the namespace marked Terminating; it is already gone when the answer arrives.
pub(crate) async fn delete_namespace(
    State(s): AppState,
    Path(p): PathParams,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let body = json_body(&headers, body)?;
    let params = Params::from_uri(&uri)?;
    let (pre, dry_run) = delete_options(&body, &params)?;
    let name = name_of(&p);
    let ns: Namespace = s.store().begin_namespace_deletion(&name, &pre, dry_run)?;
    if dry_run {
        return Ok((StatusCode::OK, to_json(&ns)?));
    }
    let pods = s.store().pods_in(&name);
    let deletions = pods.into_iter().map(|(key, uid)| {
        let s = Arc::clone(&s);
        async move {
            let pre = Preconditions {
                uid: Some(uid),
                resource_version: None,
            };
            // A pod already deleted by someone else is fine here.
            let _ = lifecycle::delete(&s, &key, &pre, false).await;
        }
    });
    futures::future::join_all(deletions).await;
    s.store().finish_namespace_deletion(&name);
    s.sync().await;
    Ok((StatusCode::OK, to_json(&ns)?))
}
