//! `netassay cleanup`: removes what runs left behind, found by labels and expiry annotations.

use super::error::{status_code, ClusterError};
use super::manifest::{EXPIRES_ANNOTATION, MANAGED_BY, MANAGER, RUN_LABEL};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams};
use kube::Api;

/// Which leftovers to remove.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Everything of one run.
    Run(String),
    /// Every netassay namespace whose expiry has passed.
    Expired,
}

/// Whether a namespace is selected, given its labels/annotations and the time now.
pub fn selected(ns: &Namespace, sel: &Selection, now: Timestamp) -> bool {
    let labels = ns.metadata.labels.clone().unwrap_or_default();
    if labels.get(MANAGED_BY).map(String::as_str) != Some(MANAGER)
        || !labels.contains_key(RUN_LABEL)
    {
        return false;
    }
    match sel {
        Selection::Run(run) => labels.get(RUN_LABEL) == Some(run),
        Selection::Expired => ns
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(EXPIRES_ANNOTATION))
            .and_then(|t| t.parse::<Timestamp>().ok())
            .is_some_and(|t| t <= now),
    }
}

/// Deletes the selected namespaces; returns their names.
pub async fn cleanup(client: &kube::Client, sel: &Selection) -> Result<Vec<String>, ClusterError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let list = api
        .list(&ListParams::default().labels(&format!("{MANAGED_BY}={MANAGER}")))
        .await
        .map_err(|e| ClusterError::api("listing netassay namespaces", e))?;
    let now = Timestamp::now();
    let mut removed = Vec::new();
    for ns in list.items.iter().filter(|n| selected(n, sel, now)) {
        let name = ns.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => removed.push(name),
            Err(e) if status_code(&e) == Some(404) => {}
            Err(e) => return Err(ClusterError::api(format!("deleting namespace {name}"), e)),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ns(run: Option<&str>, expires: Option<&str>) -> Namespace {
        let mut labels = BTreeMap::from([(MANAGED_BY.to_string(), MANAGER.to_string())]);
        if let Some(r) = run {
            labels.insert(RUN_LABEL.into(), r.into());
        }
        let mut n = Namespace::default();
        n.metadata.labels = Some(labels);
        n.metadata.annotations =
            expires.map(|e| BTreeMap::from([(EXPIRES_ANNOTATION.to_string(), e.to_string())]));
        n
    }

    #[test]
    fn selection_by_run_and_by_expiry() {
        let now: Timestamp = "2026-11-26T12:00:00Z".parse().expect("time");
        assert!(selected(
            &ns(Some("r1"), None),
            &Selection::Run("r1".into()),
            now
        ));
        assert!(!selected(
            &ns(Some("r2"), None),
            &Selection::Run("r1".into()),
            now
        ));
        assert!(selected(
            &ns(Some("r1"), Some("2026-11-26T11:00:00Z")),
            &Selection::Expired,
            now
        ));
        assert!(!selected(
            &ns(Some("r1"), Some("2026-11-26T13:00:00Z")),
            &Selection::Expired,
            now
        ));
        // The lock namespace carries no run label and is never swept.
        assert!(!selected(
            &ns(None, Some("2026-11-26T11:00:00Z")),
            &Selection::Expired,
            now
        ));
    }
}
