//! State shared by the handlers: the store's mutex, the dataplane, ordered syncs, per-pod locks.

use super::options::ApiOptions;
use super::store::{Key, Store};
use crate::dataplane::{Dataplane, NodeInfo};
use crate::state::ClusterState;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub(crate) struct Shared {
    store: Mutex<Store>,
    pub dataplane: Arc<dyn Dataplane>,
    pub node: NodeInfo,
    pub options: ApiOptions,
    pub addr: SocketAddr,
    /// When the emulator started: the node's creationTimestamp.
    pub started: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    /// Held while a snapshot is taken and synced, so snapshots reach the dataplane in order;
    /// it guards the number of sync requests the last successful sync covered.
    sync_turn: tokio::sync::Mutex<u64>,
    /// Sync requests so far: a caller counts itself after its change is in the store.
    sync_requests: std::sync::atomic::AtomicU64,
    /// One lock per pod name, so dataplane create and delete of one name never overlap.
    pod_locks: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
    errors: Mutex<Vec<String>>,
    /// Flips to true on shutdown; background pod tasks stop when they see it.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking handler must not take the whole emulator down with a poisoned lock.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new(
        dataplane: Arc<dyn Dataplane>,
        node: NodeInfo,
        options: ApiOptions,
        addr: SocketAddr,
    ) -> Self {
        let mut store = Store::new(node.clone());
        store.preset = options.preset.clone();
        Shared {
            store: Mutex::new(store),
            dataplane,
            node,
            options,
            addr,
            started: super::store::now(),
            sync_turn: tokio::sync::Mutex::new(0),
            sync_requests: std::sync::atomic::AtomicU64::new(0),
            pod_locks: Mutex::new(HashMap::new()),
            errors: Mutex::new(Vec::new()),
            stopping: tokio::sync::watch::channel(false).0,
        }
    }

    /// The store; never hold the guard across an await.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    pub fn cluster_state(&self) -> ClusterState {
        self.store().cluster_state()
    }

    /// Records a dataplane failure: the API change stands (as on a real cluster, where the CNI
    /// failing does not undo the object), and the failure is reported to the sandbox's owner.
    pub fn record_error(&self, what: String) {
        eprintln!("netassay sandbox: {what}");
        lock(&self.errors).push(what);
    }

    pub fn errors(&self) -> Vec<String> {
        lock(&self.errors).clone()
    }

    /// Hands the current state to the dataplane; returns once a snapshot that holds the caller's
    /// change (made before the call) is in place. A burst of changes shares syncs: a caller
    /// whose change a finished sync already carried returns at once. Each sync compiles and
    /// applies the whole ruleset, so one per change made a burst of N changes cost N² (1,000
    /// policies, or a fixture of 100 pods on a TRE preset of 50 projects, took minutes).
    pub async fn sync(&self) {
        use std::sync::atomic::Ordering;
        let mine = self.sync_requests.fetch_add(1, Ordering::SeqCst) + 1;
        let mut covered = self.sync_turn.lock().await;
        if *covered >= mine {
            return;
        }
        // Every request counted by now was counted after its change was stored, so the
        // snapshot below holds all of them.
        let upto = self.sync_requests.load(Ordering::SeqCst);
        let (state, cilium) = {
            let store = self.store();
            let cilium = self.dataplane.cilium().then(|| store.cilium_state());
            (store.cluster_state(), cilium)
        };
        let dataplane = Arc::clone(&self.dataplane);
        let synced = tokio::task::spawn_blocking(move || match &cilium {
            Some(cilium) => dataplane.sync_cilium(&state, cilium),
            None => dataplane.sync(&state),
        });
        match synced.await {
            Ok(Ok(())) => *covered = upto,
            Ok(Err(e)) => self.record_error(format!("dataplane sync failed: {e}")),
            Err(e) => self.record_error(format!("dataplane sync panicked: {e}")),
        }
    }

    /// Runs `f` while holding the lock of one pod name.
    pub async fn with_pod_lock<T, F: Future<Output = T>>(
        &self,
        key: &Key,
        f: impl FnOnce() -> F,
    ) -> T {
        let pod_lock = Arc::clone(lock(&self.pod_locks).entry(key.clone()).or_default());
        let result = {
            let _held = pod_lock.lock().await;
            f().await
        };
        let mut locks = lock(&self.pod_locks);
        // Only the map and this call hold it: nobody waits, so the entry can go.
        if Arc::strong_count(&pod_lock) == 2 {
            locks.remove(key);
        }
        result
    }
}
