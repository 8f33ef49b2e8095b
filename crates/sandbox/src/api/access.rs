//! Who the client is and what it may do: the sandbox has one user, who may do everything.
//! SelfSubjectAccessReview (`kubectl auth can-i`), SelfSubjectRulesReview (`can-i --list`) and
//! SelfSubjectReview (`kubectl auth whoami`) answer accordingly.

use super::extract::AppState;
use super::field_error::required;
use super::handlers::body_value;
use super::status::ApiError;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use netassay_core::policy::validate::{FieldError, FieldErrorKind};
use serde_json::{json, Value};

/// The one user of the sandbox (the kubeconfig carries no credentials), named as the reference
/// cluster's admin certificate names it.
pub(crate) const USER: &str = "netassay-sandbox-admin";
const REASON: &str = "the netassay sandbox has one user, who may do everything";

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

/// The review as created: the request's metadata and spec, with `status` set.
fn answered(body: Value, kind: &str, api_version: &str, status: Value) -> Value {
    let mut metadata = body.get("metadata").cloned().unwrap_or(json!({}));
    if let Value::Object(m) = &mut metadata {
        m.entry("creationTimestamp").or_insert(Value::Null);
    }
    json!({
        "kind": kind,
        "apiVersion": api_version,
        "metadata": metadata,
        "spec": body.get("spec").cloned().unwrap_or(json!({})),
        "status": status,
    })
}

pub(crate) async fn self_subject_access_review(
    _: AppState,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let review = body_value(&headers, &body)?;
    let spec = &review["spec"];
    let resource = spec.get("resourceAttributes").is_some_and(|v| !v.is_null());
    let non_resource = spec
        .get("nonResourceAttributes")
        .is_some_and(|v| !v.is_null());
    if resource == non_resource {
        let error = if resource {
            FieldError {
                path: "spec.nonResourceAttributes".into(),
                kind: FieldErrorKind::Invalid,
                value: None,
                detail: "cannot be specified in combination with resourceAttributes".into(),
                message:
                    "Invalid value: cannot be specified in combination with resourceAttributes"
                        .into(),
            }
        } else {
            required(
                "spec.resourceAttributes",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )
        };
        return Err(ApiError::invalid(
            "authorization.k8s.io",
            "SelfSubjectAccessReview",
            "",
            &[error],
        ));
    }
    Ok((
        StatusCode::CREATED,
        Json(answered(
            review,
            "SelfSubjectAccessReview",
            "authorization.k8s.io/v1",
            json!({"allowed": true, "reason": REASON}),
        )),
    ))
}

pub(crate) async fn self_subject_rules_review(
    _: AppState,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let review = body_value(&headers, &body)?;
    Ok((
        StatusCode::CREATED,
        Json(answered(
            review,
            "SelfSubjectRulesReview",
            "authorization.k8s.io/v1",
            // What kube-apiserver answers a system:masters user: everything, then the rules of
            // the default ClusterRoles every authenticated user has (system:basic-user,
            // system:discovery, system:public-info-viewer), in its order.
            json!({
                "resourceRules": [
                    {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
                     "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]},
                    {"verbs": ["create"], "apiGroups": ["authentication.k8s.io"],
                     "resources": ["selfsubjectreviews"]},
                    {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                ],
                "nonResourceRules": [
                    {"verbs": ["*"], "nonResourceURLs": ["*"]},
                    {"verbs": ["get"], "nonResourceURLs": [
                        "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                        "/openapi", "/openapi/*", "/readyz", "/version", "/version/",
                    ]},
                    {"verbs": ["get"], "nonResourceURLs": [
                        "/healthz", "/livez", "/readyz", "/version", "/version/",
                    ]},
                ],
                "incomplete": false,
            }),
        )),
    ))
}

pub(crate) async fn self_subject_review(_: AppState, headers: HeaderMap, body: Bytes) -> Answer {
    let review = body_value(&headers, &body)?;
    let mut answer = answered(
        review,
        "SelfSubjectReview",
        "authentication.k8s.io/v1",
        json!({"userInfo": {"username": USER, "groups": ["system:masters", "system:authenticated"]}}),
    );
    if let Value::Object(m) = &mut answer {
        m.remove("spec");
    }
    Ok((StatusCode::CREATED, Json(answer)))
}
