//! An in-process dataplane for API tests: no root, no network; exec runs local processes.
//
// Pods get addresses from 10.244.0.0/16 and are ready at once (unless a test says otherwise);
// every `sync` is recorded so tests can assert what enforcement would have been given.

use super::{Dataplane, DataplaneError, NodeInfo, PodSpec};
use crate::state::{CiliumState, ClusterState};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::process::Stdio;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

type PodKey = (String, String);

#[derive(Default)]
struct Inner {
    next_offset: u32,
    pods: BTreeMap<PodKey, (IpAddr, PodSpec)>,
    syncs: Vec<ClusterState>,
    /// When the fake plays Cilium: the Cilium state of each sync (`None` for plain syncs).
    cilium: Option<Vec<Option<CiliumState>>>,
    created: Vec<PodSpec>,
    deleted: Vec<PodKey>,
    failing: BTreeMap<PodKey, String>,
    /// Pods whose next creations fail in their CNI ADD: (failures left, message).
    network_failing: BTreeMap<PodKey, (u32, String)>,
    unready: BTreeSet<PodKey>,
    logs: BTreeMap<PodKey, String>,
    create_delay: Duration,
    sync_delay: Duration,
}

/// A dataplane that records instead of enforcing.
#[derive(Default)]
pub struct FakeDataplane {
    inner: Mutex<Inner>,
}

fn key(namespace: &str, name: &str) -> PodKey {
    (namespace.to_string(), name.to_string())
}

impl FakeDataplane {
    pub fn new() -> Self {
        Self::default()
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the fake play Cilium ([`Dataplane::cilium`]): the emulator then serves
    /// `cilium.io/v2` and syncs with the Cilium policies.
    pub fn play_cilium(&self) {
        self.inner().cilium.get_or_insert_with(Vec::new);
    }

    /// The Cilium state of the last sync, when the fake plays Cilium.
    pub fn last_cilium_sync(&self) -> Option<CiliumState> {
        self.inner().cilium.as_ref()?.last().cloned().flatten()
    }

    /// Every state handed to `sync`, oldest first.
    pub fn syncs(&self) -> Vec<ClusterState> {
        self.inner().syncs.clone()
    }

    pub fn last_sync(&self) -> Option<ClusterState> {
        self.inner().syncs.last().cloned()
    }

    /// Every pod spec passed to `create_pod`, oldest first.
    pub fn created(&self) -> Vec<PodSpec> {
        self.inner().created.clone()
    }

    /// Every (namespace, name) passed to `delete_pod`, oldest first.
    pub fn deleted(&self) -> Vec<(String, String)> {
        self.inner().deleted.clone()
    }

    /// The pods that exist in this dataplane now, with their addresses.
    pub fn pods(&self) -> BTreeMap<(String, String), IpAddr> {
        self.inner()
            .pods
            .iter()
            .map(|(k, (ip, _))| (k.clone(), *ip))
            .collect()
    }

    /// Makes `create_pod` fail for this pod with `message`.
    pub fn fail_create(&self, namespace: &str, name: &str, message: &str) {
        self.inner()
            .failing
            .insert(key(namespace, name), message.to_string());
    }

    /// Makes the next `times` creations of this pod fail to set up its network, as a CNI
    /// ADD that failed (the kubelet retries those), with `message`.
    pub fn fail_network(&self, namespace: &str, name: &str, times: u32, message: &str) {
        self.inner()
            .network_failing
            .insert(key(namespace, name), (times, message.to_string()));
    }

    /// Sets what `pod_ready` answers for this pod (ready by default).
    pub fn set_ready(&self, namespace: &str, name: &str, ready: bool) {
        let mut inner = self.inner();
        if ready {
            inner.unready.remove(&key(namespace, name));
        } else {
            inner.unready.insert(key(namespace, name));
        }
    }

    /// Appends to what `pod_log` answers for this pod (its output; empty by default).
    pub fn write_log(&self, namespace: &str, name: &str, text: &str) {
        self.inner()
            .logs
            .entry(key(namespace, name))
            .or_default()
            .push_str(text);
    }

    /// Makes every `create_pod` take this long, as network setup does on a real dataplane.
    pub fn set_create_delay(&self, delay: Duration) {
        self.inner().create_delay = delay;
    }

    /// Makes every sync take this long, as compiling and applying a ruleset does.
    pub fn set_sync_delay(&self, delay: Duration) {
        self.inner().sync_delay = delay;
    }

    /// Host addresses of 10.244.0.0/16 in order, skipping the .0 and .255 of each /24.
    fn allocate(inner: &mut Inner) -> Option<IpAddr> {
        loop {
            inner.next_offset += 1;
            if inner.next_offset >= 1 << 16 {
                return None;
            }
            if !matches!(inner.next_offset & 0xff, 0 | 0xff) {
                let base = u32::from(Ipv4Addr::new(10, 244, 0, 0));
                return Some(IpAddr::V4(Ipv4Addr::from(base + inner.next_offset)));
            }
        }
    }
}

impl Dataplane for FakeDataplane {
    fn create_pod(&self, pod: &PodSpec) -> Result<IpAddr, DataplaneError> {
        let delay = self.inner().create_delay;
        std::thread::sleep(delay);
        let mut inner = self.inner();
        inner.created.push(pod.clone());
        let k = key(&pod.namespace, &pod.name);
        if let Some((left, message)) = inner.network_failing.get_mut(&k) {
            if *left > 0 {
                *left -= 1;
                return Err(DataplaneError::PodNetwork {
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                    detail: message.clone(),
                });
            }
        }
        if let Some(message) = inner.failing.get(&k) {
            return Err(DataplaneError::Command {
                what: format!("starting pod {}/{}", pod.namespace, pod.name),
                detail: message.clone(),
            });
        }
        if inner.pods.contains_key(&k) {
            return Err(DataplaneError::Command {
                what: format!("starting pod {}/{}", pod.namespace, pod.name),
                detail: "a pod of that name already exists in the dataplane".to_string(),
            });
        }
        let ip = Self::allocate(&mut inner).ok_or_else(|| DataplaneError::Command {
            what: "allocating a pod address".to_string(),
            detail: "10.244.0.0/16 is exhausted".to_string(),
        })?;
        inner.pods.insert(k, (ip, pod.clone()));
        Ok(ip)
    }

    fn pod_log(&self, namespace: &str, name: &str) -> Option<String> {
        let inner = self.inner();
        let k = key(namespace, name);
        inner
            .pods
            .contains_key(&k)
            .then(|| inner.logs.get(&k).cloned().unwrap_or_default())
    }

    fn delete_pod(&self, namespace: &str, name: &str) -> Result<(), DataplaneError> {
        let mut inner = self.inner();
        inner.deleted.push(key(namespace, name));
        inner.pods.remove(&key(namespace, name));
        Ok(())
    }

    fn pod_ready(&self, namespace: &str, name: &str) -> bool {
        let inner = self.inner();
        let k = key(namespace, name);
        inner.pods.contains_key(&k) && !inner.unready.contains(&k)
    }

    fn exec(
        &self,
        namespace: &str,
        name: &str,
        command: &[String],
    ) -> Result<tokio::process::Child, DataplaneError> {
        if !self.inner().pods.contains_key(&key(namespace, name)) {
            return Err(DataplaneError::NoSuchPod {
                namespace: namespace.to_string(),
                name: name.to_string(),
            });
        }
        let (program, args) = command
            .split_first()
            .ok_or_else(|| DataplaneError::Command {
                what: "exec".to_string(),
                detail: "empty command".to_string(),
            })?;
        let program = if program == "netassay" {
            std::env::current_exe()?
        } else {
            program.into()
        };
        let child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        Ok(child)
    }

    fn sync(&self, state: &ClusterState) -> Result<(), DataplaneError> {
        let delay = self.inner().sync_delay;
        std::thread::sleep(delay);
        let mut inner = self.inner();
        inner.syncs.push(state.clone());
        if let Some(c) = inner.cilium.as_mut() {
            c.push(None);
        }
        Ok(())
    }

    fn cilium(&self) -> bool {
        self.inner().cilium.is_some()
    }

    fn sync_cilium(
        &self,
        state: &ClusterState,
        cilium: &CiliumState,
    ) -> Result<(), DataplaneError> {
        let mut inner = self.inner();
        inner.syncs.push(state.clone());
        inner
            .cilium
            .get_or_insert_with(Vec::new)
            .push(Some(cilium.clone()));
        Ok(())
    }

    fn node(&self) -> NodeInfo {
        NodeInfo {
            name: "sandbox-node".to_string(),
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    fn shutdown(&self) {
        self.inner().pods.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> PodSpec {
        PodSpec {
            namespace: "ns".to_string(),
            name: name.to_string(),
            uid: String::new(),
            labels: Default::default(),
            command: vec!["sleep".to_string(), "1".to_string()],
            ports: vec![],
        }
    }

    #[test]
    fn addresses_are_distinct_hosts_of_the_pod_range() {
        let dp = FakeDataplane::new();
        let a = dp.create_pod(&spec("a")).unwrap();
        let b = dp.create_pod(&spec("b")).unwrap();
        assert_eq!(a, IpAddr::V4(Ipv4Addr::new(10, 244, 0, 1)));
        assert_eq!(b, IpAddr::V4(Ipv4Addr::new(10, 244, 0, 2)));
        assert!(dp.create_pod(&spec("a")).is_err(), "names are unique");
    }

    #[test]
    fn readiness_follows_existence_and_overrides() {
        let dp = FakeDataplane::new();
        assert!(!dp.pod_ready("ns", "a"));
        dp.create_pod(&spec("a")).unwrap();
        assert!(dp.pod_ready("ns", "a"));
        dp.set_ready("ns", "a", false);
        assert!(!dp.pod_ready("ns", "a"));
        dp.delete_pod("ns", "a").unwrap();
        assert!(!dp.pod_ready("ns", "a"));
    }
}
