//! The `api-errors` and `slow-api` control-plane faults (`sandbox::control_fault`), applied to
//! every request before the handler sees it. A failed request is never processed: as a throttled
//! or overloaded kube-apiserver does, the emulator answers 429 (with `Retry-After`), 500 or 503
//! without touching the store, or stalls past the client's timeout and then answers 504.

use super::shared::Shared;
use super::status::ApiError;
use crate::control_fault::{ApiMishap, RETRY_AFTER_SECS, STALL};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The middleware: `slow-api` delays the answer, `api-errors` may replace it.
pub(crate) async fn hostile(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let faults = &shared.options.faults;
    if let Some(delay) = faults.draw_api_delay() {
        tokio::time::sleep(delay).await;
    }
    match faults.draw_api_mishap() {
        None => next.run(request).await,
        Some(mishap) => mishap_response(mishap).await,
    }
}

async fn mishap_response(mishap: ApiMishap) -> Response {
    match mishap {
        ApiMishap::Throttled => {
            let mut r = ApiError::too_many_requests(RETRY_AFTER_SECS).into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            r
        }
        ApiMishap::Internal => {
            ApiError::internal("the sandbox's api-errors fault failed this request").into_response()
        }
        ApiMishap::Unavailable => ApiError::unavailable().into_response(),
        ApiMishap::Stall => {
            tokio::time::sleep(STALL).await;
            ApiError::timeout(StatusCode::GATEWAY_TIMEOUT).into_response()
        }
    }
}
