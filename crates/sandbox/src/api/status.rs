//! API errors as Kubernetes `Status` objects with upstream's codes, reasons and messages.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use netassay_core::policy::validate::FieldError;
use serde_json::{json, Value};

/// A failed request, rendered as a `Status` (kind Status, status Failure).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

/// The group-qualified resource of an object, as Status messages name it (`pods`,
/// `networkpolicies.networking.k8s.io`).
pub(crate) fn qualified_resource(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, group: &str, kind: &str, name: &str) -> Self {
        self.details = Some(json!({"name": name, "group": group, "kind": kind}));
        self
    }

    /// 404 for a named object (`pods "a" not found`); details carry the plural, as upstream.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        let resource = qualified_resource(group, plural);
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{resource} {name:?} not found"),
        )
        .with_details(group, plural, name)
    }

    /// 404 for a path the emulator does not serve.
    pub fn no_route() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        let resource = qualified_resource(group, plural);
        Self::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{resource} {name:?} already exists"),
        )
        .with_details(group, plural, name)
    }

    /// 409 for a failed precondition, usually a stale resourceVersion.
    pub fn conflict(group: &str, plural: &str, name: &str, why: &str) -> Self {
        let resource = qualified_resource(group, plural);
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!("Operation cannot be fulfilled on {resource} {name:?}: {why}"),
        )
        .with_details(group, plural, name)
    }

    /// 422 like `apierrors.NewInvalid`: details name the kind (not the plural) and list one cause
    /// per field error; the message aggregates them as Go's `ErrorList.ToAggregate` prints.
    pub fn invalid(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> Self {
        let qualified_kind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let mut rendered: Vec<String> = Vec::new();
        for e in errors {
            let text = e.to_string();
            if !rendered.contains(&text) {
                rendered.push(text);
            }
        }
        let aggregate = match rendered.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({"reason": e.kind.cause_type(), "message": e.message, "field": e.path}))
            .collect();
        ApiError {
            code: StatusCode::UNPROCESSABLE_ENTITY,
            reason: "Invalid",
            message: format!("{qualified_kind} {name:?} is invalid: {aggregate}"),
            details: Some(json!({"name": name, "group": group, "kind": kind, "causes": causes})),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/merge-patch+json, application/strategic-merge-patch+json, application/json-patch+json, application/apply-patch+yaml (got {content_type:?})"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    /// 429 as kube-apiserver's max-in-flight filter answers it.
    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests, please try again later.",
        );
        e.details = Some(json!({"causes": [], "retryAfterSeconds": retry_after_secs}));
        e
    }

    /// 503 as an overloaded or starting kube-apiserver answers it.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        )
    }

    /// A request that took too long (504 from the sandbox's stall).
    pub fn timeout(code: StatusCode) -> Self {
        Self::new(
            code,
            "Timeout",
            "the server was unable to return a response in the time allotted",
        )
    }

    /// The `Status` object itself (also sent on the exec status channel).
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let (Some(details), Some(obj)) = (&self.details, status.as_object_mut()) {
            obj.insert("details".to_string(), details.clone());
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.code, axum::Json(self.to_status())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netassay_core::policy::validate::FieldErrorKind;

    fn field_error(path: &str, message: &str) -> FieldError {
        FieldError {
            path: path.to_string(),
            kind: FieldErrorKind::Invalid,
            value: None,
            detail: String::new(),
            message: message.to_string(),
        }
    }

    #[test]
    fn invalid_message_lists_several_errors_in_brackets_like_go_aggregates() {
        let errs = [
            field_error("spec.a", "Invalid value: 1: bad"),
            field_error("spec.b", "Invalid value: 2: bad"),
        ];
        let e = ApiError::invalid("networking.k8s.io", "NetworkPolicy", "x", &errs);
        assert_eq!(
            e.message,
            "NetworkPolicy.networking.k8s.io \"x\" is invalid: [spec.a: Invalid value: 1: bad, spec.b: Invalid value: 2: bad]"
        );
        assert_eq!(e.to_status()["details"]["causes"][1]["field"], "spec.b");
    }

    #[test]
    fn invalid_message_shows_a_single_error_bare() {
        let e = ApiError::invalid(
            "",
            "Pod",
            "p",
            &[field_error("metadata.name", "Required value")],
        );
        assert_eq!(
            e.message,
            "Pod \"p\" is invalid: metadata.name: Required value"
        );
    }

    #[test]
    fn not_found_names_the_group_qualified_resource() {
        let e = ApiError::not_found("coordination.k8s.io", "leases", "lock");
        assert_eq!(e.message, "leases.coordination.k8s.io \"lock\" not found");
        assert_eq!(e.to_status()["code"], 404);
    }
}
