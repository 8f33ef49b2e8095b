//! `pods/log`: a pod's output as `kubectl logs` reads it (the dataplane keeps each pod process's
//! stdout and stderr). `tailLines` and `limitBytes` are honoured; `follow` answers what there is
//! so far and ends, since the emulator serves no streams.

use super::extract::{AppState, Params, PathParams};
use super::status::ApiError;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::Pod;
use std::sync::Arc;

pub(crate) async fn pod_log(
    State(s): AppState,
    Path(p): PathParams,
    uri: Uri,
) -> Result<Response, ApiError> {
    let params = Params::from_uri(&uri)?;
    let namespace = p.get("namespace").cloned().unwrap_or_default();
    let name = p.get("name").cloned().unwrap_or_default();
    let pod = s.store().get::<Pod>(&namespace, &name)?;
    let containers: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| c.name.clone())
        .collect();
    let container = match params.get("container") {
        Some(c) if !c.is_empty() => c.to_string(),
        _ if containers.len() == 1 => containers[0].clone(),
        _ => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )))
        }
    };
    if !containers.contains(&container) {
        return Err(ApiError::bad_request(format!(
            "container {container} is not valid for pod {name}"
        )));
    }
    if params.flag("previous") {
        return Err(ApiError::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{name}\" not found"
        )));
    }
    if let Some(reason) = super::lifecycle::container_waiting(&pod, &container) {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
        )));
    }
    let dataplane = Arc::clone(&s.dataplane);
    let (ns, n) = (namespace.clone(), name.clone());
    let text = tokio::task::spawn_blocking(move || dataplane.pod_log(&ns, &n))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .unwrap_or_default();
    let text = tail(
        &text,
        params.get("tailLines").and_then(|v| v.parse().ok()),
        params.get("limitBytes").and_then(|v| v.parse().ok()),
    );
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], text).into_response())
}

/// The last `lines` lines, then at most `bytes` bytes (from the start, as the kubelet cuts).
fn tail(text: &str, lines: Option<usize>, bytes: Option<usize>) -> String {
    let mut out = match lines {
        Some(n) => {
            let all: Vec<&str> = text.split_inclusive('\n').collect();
            all[all.len().saturating_sub(n)..].concat()
        }
        None => text.to_string(),
    };
    if let Some(limit) = bytes {
        let mut cut = limit.min(out.len());
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn tail_lines_then_limit_bytes() {
        assert_eq!(tail("a\nb\nc\n", Some(2), None), "b\nc\n");
        assert_eq!(tail("a\nb\nc", Some(1), None), "c");
        assert_eq!(tail("a\nb\n", Some(0), None), "");
        assert_eq!(tail("abcdef", None, Some(3)), "abc");
        assert_eq!(tail("a\n", Some(10), Some(100)), "a\n");
    }
}
