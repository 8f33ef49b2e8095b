//! What a handler takes from a request: the shared state, the path's parameters, the query.

use super::shared::Shared;
use super::status::ApiError;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) type AppState = State<Arc<Shared>>;
pub(crate) type PathParams = Path<BTreeMap<String, String>>;

/// Query parameters in order, with repeats (exec's `command` repeats).
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub fn from_uri(uri: &Uri) -> Result<Self, ApiError> {
        Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map(|Query(pairs)| Params(pairs))
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1" | "True"))
    }

    /// kubectl asks for strict field validation; kube-rs does not by default.
    pub(super) fn strict(&self) -> bool {
        self.get("fieldValidation") == Some("Strict")
    }

    pub(super) fn dry_run(&self) -> bool {
        self.get("dryRun") == Some("All")
    }

    /// netassay polls; watches are refused with a message saying so.
    pub(super) fn refuse_watch(&self) -> Result<(), ApiError> {
        if self.flag("watch") {
            return Err(ApiError::method_not_allowed(
                "watch is not supported by the netassay sandbox API server; poll with list or get",
            ));
        }
        Ok(())
    }
}
