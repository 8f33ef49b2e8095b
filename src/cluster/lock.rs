//! The run lock: a Lease that keeps two runs from colliding on one cluster.

use super::error::{status_code, ClusterError};
use super::manifest::{MANAGED_BY, MANAGER};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use std::collections::BTreeMap;

/// Where the lock lives: netassay's own namespace, created on first use.
pub const LOCK_NAMESPACE: &str = "netassay";
pub const LOCK_NAME: &str = "run-lock";
/// A holder that stops renewing loses the lock after this long.
pub const LEASE_SECONDS: i32 = 60;

pub struct RunLock {
    api: Api<Lease>,
    holder: String,
}

fn lease(holder: &str, resource_version: Option<String>) -> Lease {
    let now = MicroTime(Timestamp::now());
    Lease {
        metadata: ObjectMeta {
            name: Some(LOCK_NAME.into()),
            namespace: Some(LOCK_NAMESPACE.into()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY.to_string(),
                MANAGER.to_string(),
            )])),
            resource_version,
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.to_string()),
            lease_duration_seconds: Some(LEASE_SECONDS),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..LeaseSpec::default()
        }),
    }
}

fn expired(l: &Lease) -> bool {
    let Some(spec) = &l.spec else { return true };
    let Some(renew) = &spec.renew_time else {
        return true;
    };
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
    Timestamp::now().as_second() - renew.0.as_second() > secs
}

impl RunLock {
    /// Takes the lock for `holder` (the run id), or says who holds it.
    pub async fn acquire(client: kube::Client, holder: &str) -> Result<RunLock, ClusterError> {
        let ns_api: Api<Namespace> = Api::all(client.clone());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(LOCK_NAMESPACE.into()),
                labels: Some(BTreeMap::from([(
                    MANAGED_BY.to_string(),
                    MANAGER.to_string(),
                )])),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        match ns_api.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(e) if status_code(&e) == Some(409) => {}
            Err(e) => {
                return Err(ClusterError::api(
                    format!("creating namespace {LOCK_NAMESPACE}"),
                    e,
                ))
            }
        }
        let api: Api<Lease> = Api::namespaced(client, LOCK_NAMESPACE);
        match api
            .create(&PostParams::default(), &lease(holder, None))
            .await
        {
            Ok(_) => {
                return Ok(RunLock {
                    api,
                    holder: holder.into(),
                })
            }
            Err(e) if status_code(&e) == Some(409) => {}
            Err(e) => return Err(ClusterError::api("creating the run lock", e)),
        }
        let current = api
            .get(LOCK_NAME)
            .await
            .map_err(|e| ClusterError::api("reading the run lock", e))?;
        let owner = current
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default();
        if !expired(&current) && owner != holder {
            return Err(ClusterError::Locked(format!(
                "run {owner} holds Lease {LOCK_NAMESPACE}/{LOCK_NAME}; wait for it, or if it died, the lease expires {LEASE_SECONDS}s after its last renewal"
            )));
        }
        // Expired: take it over, guarded by resourceVersion so two takers cannot both win.
        api.replace(
            LOCK_NAME,
            &PostParams::default(),
            &lease(holder, current.metadata.resource_version),
        )
        .await
        .map_err(|e| match status_code(&e) {
            Some(409) => ClusterError::Locked("another run took the expired lock first".into()),
            _ => ClusterError::api("taking over the expired run lock", e),
        })?;
        Ok(RunLock {
            api,
            holder: holder.into(),
        })
    }

    /// Renews the lease; call well within LEASE_SECONDS.
    pub async fn renew(&self) -> Result<(), ClusterError> {
        let current = self
            .api
            .get(LOCK_NAME)
            .await
            .map_err(|e| ClusterError::api("reading the run lock", e))?;
        let owner = current
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default();
        if owner != self.holder {
            return Err(ClusterError::Locked(format!(
                "the run lock now belongs to {owner}"
            )));
        }
        self.api
            .replace(
                LOCK_NAME,
                &PostParams::default(),
                &lease(&self.holder, current.metadata.resource_version),
            )
            .await
            .map(|_| ())
            .map_err(|e| ClusterError::api("renewing the run lock", e))
    }

    /// Gives the lock back (only if still ours).
    pub async fn release(self) -> Result<(), ClusterError> {
        if let Ok(l) = self.api.get(LOCK_NAME).await {
            if l.spec.and_then(|s| s.holder_identity).as_deref() == Some(self.holder.as_str()) {
                self.api
                    .delete(LOCK_NAME, &DeleteParams::default())
                    .await
                    .map_err(|e| ClusterError::api("releasing the run lock", e))?;
            }
        }
        Ok(())
    }
}
