//! `netassay cleanup`: removes what runs left behind, found by labels and expiry annotations:
//! the runs' namespaces (everything namespaced goes with them) and their
//! CiliumClusterwideNetworkPolicies (cluster-scoped; on clusters that serve them).

use super::error::{status_code, ClusterError};
use super::manifest::{EXPIRES_ANNOTATION, MANAGED_BY, MANAGER, RUN_LABEL};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, DynamicObject, ListParams};
use kube::Api;

/// Which leftovers to remove.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Everything of one run.
    Run(String),
    /// Every netassay namespace whose expiry has passed.
    Expired,
}

/// Whether an object (a namespace, a CCNP) is selected, given its labels/annotations and the
/// time now.
pub fn selected(meta: &ObjectMeta, sel: &Selection, now: Timestamp) -> bool {
    let labels = meta.labels.clone().unwrap_or_default();
    if labels.get(MANAGED_BY).map(String::as_str) != Some(MANAGER)
        || !labels.contains_key(RUN_LABEL)
    {
        return false;
    }
    match sel {
        Selection::Run(run) => labels.get(RUN_LABEL) == Some(run),
        Selection::Expired => meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(EXPIRES_ANNOTATION))
            .and_then(|t| t.parse::<Timestamp>().ok())
            .is_some_and(|t| t <= now),
    }
}

/// Deletes the selected namespaces, then the selected CCNPs (even when a namespace could not
/// be deleted); returns their names (CCNPs as `CiliumClusterwideNetworkPolicy/NAME`).
pub async fn cleanup(client: &kube::Client, sel: &Selection) -> Result<Vec<String>, ClusterError> {
    let namespaces = cleanup_namespaces(client, sel).await;
    let clusterwide = cleanup_clusterwide(client, sel).await;
    let mut removed = namespaces?;
    removed.extend(clusterwide?);
    Ok(removed)
}

/// The CCNPs runs left behind. A cluster that serves no such kind (404) has none.
async fn cleanup_clusterwide(
    client: &kube::Client,
    sel: &Selection,
) -> Result<Vec<String>, ClusterError> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &super::cilium::ccnp_resource());
    let list = match api
        .list(&ListParams::default().labels(&format!("{MANAGED_BY}={MANAGER}")))
        .await
    {
        Ok(l) => l,
        Err(e) if status_code(&e) == Some(404) => return Ok(Vec::new()),
        Err(e) => {
            return Err(ClusterError::api(
                "listing netassay CiliumClusterwideNetworkPolicies",
                e,
            ))
        }
    };
    let now = Timestamp::now();
    let mut removed = Vec::new();
    for p in list
        .items
        .iter()
        .filter(|p| selected(&p.metadata, sel, now))
    {
        let name = p.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => removed.push(format!("CiliumClusterwideNetworkPolicy/{name}")),
            Err(e) if status_code(&e) == Some(404) => {}
            Err(e) => {
                return Err(ClusterError::api(
                    format!("deleting CiliumClusterwideNetworkPolicy {name}"),
                    e,
                ))
            }
        }
    }
    Ok(removed)
}

async fn cleanup_namespaces(
    client: &kube::Client,
    sel: &Selection,
) -> Result<Vec<String>, ClusterError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let list = api
        .list(&ListParams::default().labels(&format!("{MANAGED_BY}={MANAGER}")))
        .await
        .map_err(|e| ClusterError::api("listing netassay namespaces", e))?;
    let now = Timestamp::now();
    let mut removed = Vec::new();
    for ns in list
        .items
        .iter()
        .filter(|n| selected(&n.metadata, sel, now))
    {
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
            &ns(Some("r1"), None).metadata,
            &Selection::Run("r1".into()),
            now
        ));
        assert!(!selected(
            &ns(Some("r2"), None).metadata,
            &Selection::Run("r1".into()),
            now
        ));
        assert!(selected(
            &ns(Some("r1"), Some("2026-11-26T11:00:00Z")).metadata,
            &Selection::Expired,
            now
        ));
        assert!(!selected(
            &ns(Some("r1"), Some("2026-11-26T13:00:00Z")).metadata,
            &Selection::Expired,
            now
        ));
        // The lock namespace carries no run label and is never swept.
        assert!(!selected(
            &ns(None, Some("2026-11-26T11:00:00Z")).metadata,
            &Selection::Expired,
            now
        ));
    }
}
