//! The node agent on a real API server (DESIGN §7a): the kubelet and the CNI agent of the
//! reference cluster's one node.
//!
//! It registers a Node (the dataplane's node address as InternalIP; `localhost` as Hostname,
//! where its kubelet endpoint listens, since the control plane runs on the host's loopback),
//! keeps its Lease in `kube-node-lease` fresh, binds unscheduled pods to itself (the sandbox has
//! no scheduler), starts each bound pod in the same [`Dataplane`] the emulator uses and reports
//! its status (IP, conditions, container states), finishes graceful deletions, serves the
//! kubelet's exec endpoint over TLS ([`kubelet`]), and, as a CNI agent does, watches
//! namespaces, pods, Services, NetworkPolicies and Ingresses and hands the dataplane a new
//! [`ClusterState`] whenever they change. Unlike the emulator, which syncs before it answers a
//! request, this is asynchronous, as on any real cluster.

pub mod api_relay;
mod cilium;
pub mod components;
pub mod hubble;
mod identity;
pub mod kubelet;

use crate::api::discovery::{container_runtime_version, go_arch, kernel_version, OS_IMAGE};
use crate::api::events::pod_event;
use crate::api::exposure::gateway_status_at;
use crate::api::lifecycle::{
    containers, dataplane_spec, failed_event, image_refused_events, mark_failed,
    mark_image_unavailable, mark_ready, mark_restarted, mark_running, refused_images, restartable,
    restarted_event, scheduled_event, started_events, PodEvent,
};
use crate::api::store::{pod_state, service_state};
use crate::control_fault::ControlPlaneFault;
use crate::control_fault::ControlPlaneFaults;
use crate::dataplane::Dataplane;
use crate::gateway_api::{Gateway, HttpRoute};
use crate::preset::PresetProfile;
use crate::reference::KubeletTls;
use crate::state::ClusterState;
use crate::state::NamespaceState;
use crate::system;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod, PodStatus, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// The Lease namespace of node heartbeats.
const LEASE_NAMESPACE: &str = "kube-node-lease";
const LEASE_SECONDS: i32 = 40;
const HEARTBEAT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum NodeError {
    #[error("the node agent: {0}")]
    Api(String),
    #[error("the node agent's kubelet endpoint: {0}")]
    Io(#[from] std::io::Error),
}

/// What the node agent is on its node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NodeRole {
    /// The kubelet too (`--sandbox-node netassay`): it registers the Node, runs pods in the
    /// dataplane, reports their status and serves exec.
    #[default]
    Kubelet,
    /// The real kubelet runs the pods (`--sandbox-node kubelet`): the agent only binds pods to
    /// the node (the sandbox has no scheduler) and, as a CNI agent and kube-proxy do, hands the
    /// dataplane every change of namespaces, pods (with the addresses the kubelet reports),
    /// Services and policies.
    BesideKubelet,
}

/// What the node agent needs.
pub struct NodeOptions {
    /// Whether it is the node's kubelet.
    pub role: NodeRole,
    pub client: kube::Client,
    pub dataplane: Arc<dyn Dataplane>,
    /// Each pod's output, for `kubectl logs`.
    pub logs: kubelet::PodLogs,
    pub tls: KubeletTls,
    /// The kubelet version the Node reports (the control plane's).
    pub version: String,
    /// How long a started pod may take to listen before its Ready condition says so.
    pub ready_timeout: Duration,
    /// The sandbox preset: persona namespaces get its objects (a TRE's policy controller).
    pub preset: Option<PresetProfile>,
    /// Whether the Gateway API CRDs are installed: then HTTPRoutes feed the sandbox gateway and
    /// Gateways of the sandbox's class are programmed at the node's address.
    pub gateway_api: bool,
    /// The control-plane faults a node carries: `exec-resets` (its kubelet endpoint cuts exec
    /// streams) and `pod-restarts` (it kills and restarts probe pods in place). The others are
    /// the emulator's API's and are refused before the node starts.
    pub faults: ControlPlaneFaults,
}

type Key = (String, String);

/// The objects the node agent mirrors from watches.
#[derive(Default)]
struct Objects {
    namespaces: BTreeMap<String, Namespace>,
    pods: BTreeMap<Key, Pod>,
    services: BTreeMap<Key, Service>,
    policies: BTreeMap<Key, NetworkPolicy>,
    ingresses: BTreeMap<Key, Ingress>,
    http_routes: BTreeMap<Key, HttpRoute>,
}

struct Shared {
    role: NodeRole,
    client: kube::Client,
    dataplane: Arc<dyn Dataplane>,
    node: String,
    node_address: IpAddr,
    ready_timeout: Duration,
    objects: Mutex<Objects>,
    /// Pods running in the dataplane, by key: the uid that runs there.
    running: Mutex<HashMap<Key, String>>,
    /// (uid, action) pairs already under way, so a watch event never starts one twice.
    handled: Mutex<BTreeSet<(String, &'static str)>>,
    /// One pod's dataplane work at a time (a re-created pod starts after the old one is gone).
    pod_locks: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
    changed: Notify,
    /// The Services (namespace, name) of the last state the dataplane programmed.
    programmed: watch::Sender<BTreeSet<Key>>,
    errors: Mutex<Vec<String>>,
    stopping: watch::Receiver<bool>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An object's (namespace, name).
pub(crate) fn key_of(meta: &kube::api::ObjectMeta) -> Key {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

impl Shared {
    fn record_error(&self, what: String) {
        eprintln!("netassay node agent: {what}");
        lock(&self.errors).push(what);
    }

    fn first_time(&self, uid: &str, action: &'static str) -> bool {
        lock(&self.handled).insert((uid.to_string(), action))
    }

    fn pod_lock(&self, key: &Key) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.pod_locks)
            .entry(key.clone())
            .or_default()
            .clone()
    }

    fn pods(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn cluster_state(&self) -> ClusterState {
        let objects = lock(&self.objects);
        let services: Vec<&Service> = objects.services.values().collect();
        ClusterState {
            namespaces: objects
                .namespaces
                .values()
                .map(|ns| NamespaceState {
                    name: ns.metadata.name.clone().unwrap_or_default(),
                    labels: ns.metadata.labels.clone().unwrap_or_default(),
                })
                .collect(),
            pods: objects
                .pods
                .values()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .map(pod_state)
                .collect(),
            services: services
                .iter()
                .filter(|s| selects_pods(s))
                .filter_map(|s| service_state(s))
                .collect(),
            policies: objects.policies.values().cloned().collect(),
            node_address: Some(self.node_address),
            gateway_routes: system::gateway_routes(
                objects.http_routes.values(),
                objects.ingresses.values(),
                services.iter().copied(),
            ),
        }
    }
}

/// Whether the node programs `service`: a Service without a selector has no endpoints it knows.
pub(crate) fn selects_pods(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|spec| spec.selector.as_ref())
        .is_some_and(|sel| !sel.is_empty())
}

/// A running node agent.
pub struct NodeAgent {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    kubelet: Option<kubelet::KubeletServer>,
}

impl NodeAgent {
    /// Starts the kubelet endpoint, registers the Node, and starts the watches, the pod
    /// lifecycle, the dataplane sync and the heartbeat. Returns once the Node is registered and
    /// every watch has listed once.
    pub async fn start(options: NodeOptions) -> Result<NodeAgent, NodeError> {
        let node_info = options.dataplane.node();
        let (stop, stopping) = watch::channel(false);
        // The kubelet endpoint starts first (the Node names its port); it reads the pods the
        // agent mirrors once the agent exists.
        let agent: Arc<std::sync::OnceLock<std::sync::Weak<Shared>>> = Arc::default();
        let waiting: kubelet::ContainerWaiting = {
            let agent = agent.clone();
            Arc::new(move |namespace: &str, pod: &str, container: &str| {
                let shared = agent.get()?.upgrade()?;
                let objects = lock(&shared.objects);
                let pod = objects
                    .pods
                    .get(&(namespace.to_string(), pod.to_string()))?;
                crate::api::lifecycle::container_waiting(pod, container)
            })
        };
        let kubelet = match options.role {
            NodeRole::Kubelet => Some(
                kubelet::KubeletServer::start(
                    &options.tls,
                    options.dataplane.clone(),
                    options.logs.clone(),
                    waiting,
                    options.faults.clone(),
                )
                .await?,
            ),
            NodeRole::BesideKubelet => None,
        };
        let shared = Arc::new(Shared {
            role: options.role,
            client: options.client,
            dataplane: options.dataplane,
            node: node_info.name.clone(),
            node_address: node_info.address,
            ready_timeout: options.ready_timeout,
            objects: Mutex::new(Objects::default()),
            running: Mutex::new(HashMap::new()),
            handled: Mutex::new(BTreeSet::new()),
            pod_locks: Mutex::new(HashMap::new()),
            changed: Notify::new(),
            programmed: watch::channel(BTreeSet::new()).0,
            errors: Mutex::new(Vec::new()),
            stopping,
        });
        let _ = agent.set(Arc::downgrade(&shared));
        if let Some(kubelet) = &kubelet {
            register(&shared, kubelet.addr(), &options.version).await?;
        }
        let mut agent = NodeAgent {
            shared: shared.clone(),
            stop,
            tasks: Vec::new(),
            kubelet,
        };
        let (listed_tx, mut listed_rx) = tokio::sync::mpsc::channel::<()>(8);
        if options.role == NodeRole::Kubelet {
            agent.tasks.push(tokio::spawn(heartbeat(shared.clone())));
        }
        agent.tasks.push(tokio::spawn(sync_loop(shared.clone())));
        let c = shared.client.clone();
        agent.tasks.push(tokio::spawn(mirror(
            shared.clone(),
            Api::<Namespace>::all(c.clone()),
            |o, ns| {
                o.namespaces
                    .insert(ns.metadata.name.clone().unwrap_or_default(), ns);
            },
            |o, ns| {
                o.namespaces
                    .remove(ns.metadata.name.as_deref().unwrap_or_default());
            },
            listed_tx.clone(),
        )));
        agent.tasks.push(tokio::spawn(mirror(
            shared.clone(),
            Api::<Service>::all(c.clone()),
            |o, s| {
                o.services.insert(key_of(&s.metadata), s);
            },
            |o, s| {
                o.services.remove(&key_of(&s.metadata));
            },
            listed_tx.clone(),
        )));
        agent.tasks.push(tokio::spawn(mirror(
            shared.clone(),
            Api::<NetworkPolicy>::all(c.clone()),
            |o, p| {
                o.policies.insert(key_of(&p.metadata), p);
            },
            |o, p| {
                o.policies.remove(&key_of(&p.metadata));
            },
            listed_tx.clone(),
        )));
        agent.tasks.push(tokio::spawn(mirror(
            shared.clone(),
            Api::<Ingress>::all(c.clone()),
            |o, i| {
                o.ingresses.insert(key_of(&i.metadata), i);
            },
            |o, i| {
                o.ingresses.remove(&key_of(&i.metadata));
            },
            listed_tx.clone(),
        )));
        let mut watches = 5;
        if options.gateway_api {
            watches += 1;
            agent.tasks.push(tokio::spawn(mirror(
                shared.clone(),
                Api::<HttpRoute>::all(c.clone()),
                |o, r| {
                    o.http_routes.insert(key_of(&r.metadata), r);
                },
                |o, r| {
                    o.http_routes.remove(&key_of(&r.metadata));
                },
                listed_tx.clone(),
            )));
            agent.tasks.push(tokio::spawn(gateways(shared.clone())));
        }
        agent
            .tasks
            .push(tokio::spawn(load_balancers(shared.clone())));
        if let Some(preset) = options.preset {
            agent
                .tasks
                .push(tokio::spawn(preset_namespaces(shared.clone(), preset)));
        }
        agent
            .tasks
            .push(tokio::spawn(pods(shared.clone(), listed_tx)));
        if options.role == NodeRole::Kubelet
            && options.faults.contains(ControlPlaneFault::PodRestarts)
        {
            agent
                .tasks
                .push(tokio::spawn(restarter(shared.clone(), options.faults)));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        for _ in 0..watches {
            match tokio::time::timeout_at(deadline, listed_rx.recv()).await {
                Ok(Some(())) => {}
                _ => {
                    agent.stop().await;
                    return Err(NodeError::Api("the watches did not list within 30s".into()));
                }
            }
        }
        Ok(agent)
    }

    /// Where the kubelet endpoint listens (127.0.0.1).
    pub fn kubelet_addr(&self) -> Option<SocketAddr> {
        self.kubelet.as_ref().map(|k| k.addr())
    }

    /// The node's name.
    pub fn node(&self) -> &str {
        &self.shared.node
    }

    /// Problems seen so far (failed syncs, pods that could not start, API errors).
    pub fn errors(&self) -> Vec<String> {
        lock(&self.shared.errors).clone()
    }

    /// Whether the pod runs in the dataplane and has been reported with its IP.
    pub fn is_running(&self, namespace: &str, name: &str) -> bool {
        lock(&self.shared.running).contains_key(&(namespace.to_string(), name.to_string()))
    }

    /// Waits until the dataplane has programmed Service `namespace/name` (its ClusterIP, its
    /// DNS name in the zone), for at most `timeout`. False if it did not in time.
    pub async fn wait_until_programmed(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> bool {
        let key = (namespace.to_string(), name.to_string());
        let mut programmed = self.shared.programmed.subscribe();
        tokio::time::timeout(timeout, programmed.wait_for(|s| s.contains(&key)))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Stops every task and the kubelet endpoint. The pods stay in the dataplane, whose owner
    /// removes them.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        if let Some(k) = self.kubelet.take() {
            k.stop().await;
        }
    }
}

impl Drop for NodeAgent {
    /// A node agent dropped without [`NodeAgent::stop`] (a failed start) leaves no task behind.
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Creates the Node (or takes over one of the same name) and reports its status.
async fn register(shared: &Shared, kubelet: SocketAddr, version: &str) -> Result<(), NodeError> {
    let nodes: Api<Node> = Api::all(shared.client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": shared.node,
            "labels": {
                "kubernetes.io/hostname": shared.node,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": go_arch(),
                "node.kubernetes.io/instance-type": "netassay-sandbox",
                // The control plane runs on this host too, as on a single-node kubeadm
                // cluster (and the emulator's node says the same).
                "node-role.kubernetes.io/control-plane": "",
            },
        },
    }))
    .map_err(|e| NodeError::Api(e.to_string()))?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => {
            return Err(NodeError::Api(format!(
                "registering Node {}: {e}",
                shared.node
            )))
        }
    }
    let status = node_status(shared, kubelet.port(), version);
    nodes
        .patch_status(
            &shared.node,
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .map_err(|e| NodeError::Api(format!("reporting Node {} status: {e}", shared.node)))?;
    Ok(())
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn node_status(shared: &Shared, port: u16, version: &str) -> serde_json::Value {
    let now = now();
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": type_, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        })
    };
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .to_string();
    let resources =
        json!({"cpu": cpus, "memory": "8Gi", "pods": "250", "ephemeral-storage": "10Gi"});
    json!({"status": {
        "addresses": [
            {"type": "InternalIP", "address": shared.node_address.to_string()},
            {"type": "Hostname", "address": "localhost"},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "the netassay node agent is posting ready status"),
        ],
        "capacity": resources,
        "allocatable": resources,
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": kernel_version(),
            "osImage": OS_IMAGE,
            "containerRuntimeVersion": container_runtime_version(),
            "kubeletVersion": version,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": go_arch(),
        },
        // kube-apiserver then proxies exec to this node as WebSocket (v5.channel.k8s.io)
        // instead of translating it to SPDY.
        "declaredFeatures": ["ExtendWebSocketsToKubelet"],
    }})
}

/// Renews the node's Lease every 10 s, as a kubelet does, so the node lifecycle controller
/// keeps the node Ready and never taints or evicts.
async fn heartbeat(shared: Arc<Shared>) {
    let leases: Api<Lease> = Api::namespaced(shared.client.clone(), LEASE_NAMESPACE);
    let mut stopping = shared.stopping.clone();
    loop {
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": shared.node, "namespace": LEASE_NAMESPACE},
            "spec": {
                "holderIdentity": shared.node,
                "leaseDurationSeconds": LEASE_SECONDS,
                // MicroTime: kube-apiserver wants exactly six fractional digits.
                "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                    k8s_openapi::jiff::Timestamp::now(),
                ),
            },
        });
        let params = PatchParams::apply("netassay-node-agent").force();
        if let Err(e) = leases
            .patch(&shared.node, &params, &Patch::Apply(&lease))
            .await
        {
            shared.record_error(format!("renewing the node Lease: {e}"));
        }
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT) => {}
            _ = stopping.changed() => return,
        }
    }
}

/// Waits for changes and hands the dataplane the newest state (skipping unchanged ones).
async fn sync_loop(shared: Arc<Shared>) {
    let mut last: Option<ClusterState> = None;
    let mut stopping = shared.stopping.clone();
    loop {
        tokio::select! {
            _ = shared.changed.notified() => {}
            _ = stopping.changed() => return,
        }
        let state = shared.cluster_state();
        if last.as_ref() == Some(&state) {
            continue;
        }
        let dataplane = shared.dataplane.clone();
        let synced = state.clone();
        match tokio::task::spawn_blocking(move || dataplane.sync(&synced)).await {
            Ok(Ok(())) => {
                let services = state
                    .services
                    .iter()
                    .map(|s| (s.namespace.clone(), s.name.clone()))
                    .collect();
                shared.programmed.send_replace(services);
                last = Some(state);
            }
            Ok(Err(e)) => shared.record_error(format!("dataplane sync failed: {e}")),
            Err(e) => shared.record_error(format!("dataplane sync panicked: {e}")),
        }
    }
}

/// Mirrors one kind into [`Objects`] from a watch and signals a change after each event.
/// Signals `listed` once, after the first complete list.
async fn mirror<K>(
    shared: Arc<Shared>,
    api: Api<K>,
    apply: fn(&mut Objects, K),
    delete: fn(&mut Objects, &K),
    listed: tokio::sync::mpsc::Sender<()>,
) where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + 'static,
{
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    let mut relisting: Option<Vec<K>> = None;
    let mut announced = false;
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(obj)) => apply(&mut lock(&shared.objects), obj),
            Ok(watcher::Event::Delete(obj)) => delete(&mut lock(&shared.objects), &obj),
            Ok(watcher::Event::Init) => relisting = Some(Vec::new()),
            Ok(watcher::Event::InitApply(obj)) => {
                if let Some(list) = relisting.as_mut() {
                    list.push(obj);
                }
            }
            Ok(watcher::Event::InitDone) => {
                let list = relisting.take().unwrap_or_default();
                replace_all(&mut lock(&shared.objects), list, apply);
                if !announced {
                    announced = true;
                    let _ = listed.send(()).await;
                }
            }
            Err(e) => {
                // The watcher retries by itself; say what happened once in a while.
                shared.record_error(format!("watching {}: {e}", K::plural(&())));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        shared.changed.notify_one();
    }
}

/// A relist replaces every object of the kind.
fn replace_all<K>(objects: &mut Objects, list: Vec<K>, apply: fn(&mut Objects, K))
where
    K: kube::Resource<DynamicType = ()>,
{
    match K::kind(&()).as_ref() {
        "Namespace" => objects.namespaces.clear(),
        "Service" => objects.services.clear(),
        "NetworkPolicy" => objects.policies.clear(),
        "Ingress" => objects.ingresses.clear(),
        "HTTPRoute" => objects.http_routes.clear(),
        "Pod" => objects.pods.clear(),
        _ => {}
    }
    for obj in list {
        apply(objects, obj);
    }
}

/// The pod watch: mirrors pods and drives their lifecycle.
async fn pods(shared: Arc<Shared>, listed: tokio::sync::mpsc::Sender<()>) {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    let mut relisting: Option<Vec<Pod>> = None;
    let mut announced = false;
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(pod)) => {
                lock(&shared.objects)
                    .pods
                    .insert(key_of(&pod.metadata), pod.clone());
                on_pod(&shared, pod);
            }
            Ok(watcher::Event::Delete(pod)) => {
                lock(&shared.objects).pods.remove(&key_of(&pod.metadata));
                on_pod_gone(&shared, &pod);
            }
            Ok(watcher::Event::Init) => relisting = Some(Vec::new()),
            Ok(watcher::Event::InitApply(pod)) => {
                if let Some(list) = relisting.as_mut() {
                    list.push(pod);
                }
            }
            Ok(watcher::Event::InitDone) => {
                let list = relisting.take().unwrap_or_default();
                let present: BTreeSet<Key> = list.iter().map(|p| key_of(&p.metadata)).collect();
                let vanished: Vec<Pod> = {
                    let mut objects = lock(&shared.objects);
                    let gone: Vec<Pod> = objects
                        .pods
                        .iter()
                        .filter(|(k, _)| !present.contains(*k))
                        .map(|(_, p)| p.clone())
                        .collect();
                    objects.pods = list
                        .iter()
                        .map(|p| (key_of(&p.metadata), p.clone()))
                        .collect();
                    gone
                };
                for pod in &vanished {
                    on_pod_gone(&shared, pod);
                }
                for pod in list {
                    on_pod(&shared, pod);
                }
                if !announced {
                    announced = true;
                    let _ = listed.send(()).await;
                }
            }
            Err(e) => {
                shared.record_error(format!("watching pods: {e}"));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        shared.changed.notify_one();
    }
}

/// What a pod event asks of the node: bind it, start it, or finish its deletion.
fn on_pod(shared: &Arc<Shared>, pod: Pod) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    let deleting = pod.metadata.deletion_timestamp.is_some();
    let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
    match node {
        None if !deleting && shared.first_time(&uid, "bind") => {
            tokio::spawn(bind(shared.clone(), pod));
        }
        // The real kubelet runs, reports and terminates the pods it was given.
        _ if shared.role == NodeRole::BesideKubelet => {}
        Some(n) if n == shared.node && deleting && shared.first_time(&uid, "terminate") => {
            tokio::spawn(terminate(shared.clone(), pod));
        }
        Some(n)
            if n == shared.node
                && !deleting
                && !matches!(phase.as_deref(), Some("Succeeded" | "Failed"))
                && shared.first_time(&uid, "start") =>
        {
            tokio::spawn(start_pod(shared.clone(), pod));
        }
        _ => {}
    }
}

fn on_pod_gone(shared: &Arc<Shared>, pod: &Pod) {
    let shared = shared.clone();
    let key = key_of(&pod.metadata);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    tokio::spawn(async move {
        stop_in_dataplane(&shared, &key, &uid).await;
        lock(&shared.handled).retain(|(u, _)| *u != uid);
    });
}

/// The scheduler's part: every pod goes to the one node.
async fn bind(shared: Arc<Shared>, pod: Pod) {
    let (namespace, name) = key_of(&pod.metadata);
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "namespace": namespace, "uid": pod.metadata.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": shared.node},
    });
    let result = shared
        .pods(&namespace)
        .create_subresource::<_, serde_json::Value>(
            "binding",
            &name,
            &PostParams::default(),
            &binding,
        )
        .await;
    match result {
        Ok(_) => {
            let event = scheduled_event(&namespace, &name, &shared.node);
            record_events(&shared, &pod, false, vec![event]).await;
        }
        // Deleted meanwhile, or bound by someone else: nothing to do.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(e) => shared.record_error(format!("binding pod {namespace}/{name}: {e}")),
    }
}

/// Records the scheduler's or the kubelet's events about `pod` (its first container, when
/// `container` is set), the same ones the emulator records.
async fn record_events(shared: &Shared, pod: &Pod, container: bool, events: Vec<PodEvent>) {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Event> = Api::namespaced(shared.client.clone(), &namespace);
    for (severity, reason, message) in events {
        // As a kubelet's event recorder names them: the time in nanoseconds, in hex.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let event = pod_event(
            pod,
            &shared.node,
            &format!("{nanos:x}"),
            container,
            severity,
            reason,
            message,
        );
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {}
            // The namespace is going away: the event has nowhere to go.
            Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => {}
            Err(e) => shared.record_error(format!("recording event {reason} for {namespace}: {e}")),
        }
    }
}

async fn patch_status(shared: &Shared, pod: &Pod, status: &PodStatus) -> Result<(), kube::Error> {
    let (namespace, name) = key_of(&pod.metadata);
    let patch = json!({
        "metadata": {"uid": pod.metadata.uid},
        "status": status,
    });
    shared
        .pods(&namespace)
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// The first wait before a failed pod sandbox is created again, and the longest.
const SANDBOX_RETRY_FIRST: Duration = Duration::from_secs(1);
const SANDBOX_RETRY_MAX: Duration = Duration::from_secs(20);

/// The pod's lock, held until the guard drops.
async fn lock_owned(shared: &Shared, key: &Key) -> tokio::sync::OwnedMutexGuard<()> {
    shared.pod_lock(key).lock_owned().await
}

/// Starts a bound pod in the dataplane, reports it Running with its IP, then Ready once its
/// ports listen.
async fn start_pod(shared: Arc<Shared>, pod: Pod) {
    let key = key_of(&pod.metadata);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let containers = containers(&pod);
    let spec = dataplane_spec(&pod);
    let mut turn = lock_owned(&shared, &key).await;
    let still_there = lock(&shared.objects)
        .pods
        .get(&key)
        .is_some_and(|p| p.metadata.uid.as_deref() == Some(uid.as_str()));
    if !still_there {
        return;
    }
    // Only the netassay image runs: any other waits in ErrImagePull, as in the emulator.
    let refused = refused_images(&containers);
    if let Some((_, first)) = refused.first() {
        let mut status = PodStatus::default();
        mark_image_unavailable(&mut status, &containers, first);
        status.host_ip = Some(shared.node_address.to_string());
        status.host_ips = Some(vec![k8s_openapi::api::core::v1::HostIP {
            ip: shared.node_address.to_string(),
        }]);
        status.qos_class = Some("BestEffort".into());
        if let Err(e) = patch_status(&shared, &pod, &status).await {
            shared.record_error(format!("reporting pod {}/{} waiting: {e}", key.0, key.1));
        }
        record_events(&shared, &pod, true, image_refused_events(&refused)).await;
        return;
    }
    // As a kubelet does: a sandbox whose network could not be set up (CNI ADD failed) is
    // retried with backoff while the pod stays Pending, each failure a FailedCreatePodSandBox
    // event (Cilium, for one, answers "too many requests" when endpoint creations queue).
    let mut backoff = SANDBOX_RETRY_FIRST;
    let created = loop {
        let dataplane = shared.dataplane.clone();
        let attempt = spec.clone();
        let result = tokio::task::spawn_blocking(move || dataplane.create_pod(&attempt)).await;
        let detail = match result {
            Ok(Err(crate::dataplane::DataplaneError::PodNetwork { detail, .. })) => detail,
            Ok(r) => break r.map_err(|e| e.to_string()),
            Err(e) => break Err(format!("the dataplane panicked: {e}")),
        };
        record_events(
            &shared,
            &pod,
            false,
            vec![(
                crate::api::events::Severity::Warning,
                "FailedCreatePodSandBox",
                format!("Failed to create pod sandbox: {detail}"),
            )],
        )
        .await;
        drop(turn);
        let mut stopping = shared.stopping.clone();
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopping.changed() => return,
        }
        backoff = (backoff * 2).min(SANDBOX_RETRY_MAX);
        turn = lock_owned(&shared, &key).await;
        let still_there = lock(&shared.objects)
            .pods
            .get(&key)
            .is_some_and(|p| p.metadata.uid.as_deref() == Some(uid.as_str()));
        if !still_there {
            return;
        }
    };
    let _turn = turn;
    let mut status = PodStatus::default();
    match created {
        Ok(ip) => {
            lock(&shared.running).insert(key.clone(), uid.clone());
            mark_running(&mut status, ip, &containers);
            status.host_ip = Some(shared.node_address.to_string());
            status.host_ips = Some(vec![k8s_openapi::api::core::v1::HostIP {
                ip: shared.node_address.to_string(),
            }]);
            status.qos_class = Some("BestEffort".into());
            if let Err(e) = patch_status(&shared, &pod, &status).await {
                shared.record_error(format!("reporting pod {}/{} running: {e}", key.0, key.1));
                return;
            }
            record_events(&shared, &pod, true, started_events(&containers)).await;
        }
        Err(message) => {
            let message = format!("the sandbox dataplane could not start the pod: {message}");
            mark_failed(&mut status, message.clone());
            if let Err(e) = patch_status(&shared, &pod, &status).await {
                shared.record_error(format!("reporting pod {}/{} failed: {e}", key.0, key.1));
            }
            record_events(&shared, &pod, true, vec![failed_event(&message)]).await;
            return;
        }
    }
    shared.changed.notify_one();
    drop(_turn);
    report_ready(&shared, &pod, &key, &uid, status).await;
}

/// Readiness: the dataplane's check of the container ports, as the emulator does. Reports the
/// pod Ready (with `status`) once they listen, while `uid` still runs under `key`.
async fn report_ready(shared: &Shared, pod: &Pod, key: &Key, uid: &str, mut status: PodStatus) {
    let deadline = tokio::time::Instant::now() + shared.ready_timeout;
    let mut delay = Duration::from_millis(10);
    let mut stopping = shared.stopping.clone();
    loop {
        if lock(&shared.running).get(key).map(String::as_str) != Some(uid) {
            return;
        }
        let dataplane = shared.dataplane.clone();
        let (ns, name) = key.clone();
        let ready = tokio::task::spawn_blocking(move || dataplane.pod_ready(&ns, &name))
            .await
            .unwrap_or(false);
        if ready {
            mark_ready(&mut status);
            if let Err(e) = patch_status(shared, pod, &status).await {
                shared.record_error(format!("reporting pod {}/{} ready: {e}", key.0, key.1));
            }
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            shared.record_error(format!(
                "pod {}/{}: its container ports did not accept connections within {:?}",
                key.0, key.1, shared.ready_timeout
            ));
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopping.changed() => return,
        }
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}

/// The `pod-restarts` fault, as a kubelet after an OOM kill: every few seconds one ready probe
/// pod's processes are killed and started again in place (same network, same IP); its status
/// says so (restartCount + 1, lastState OOMKilled, not Ready) until its ports listen again.
async fn restarter(shared: Arc<Shared>, faults: ControlPlaneFaults) {
    let mut stopping = shared.stopping.clone();
    while let Some(pause) = faults.draw_restart_pause() {
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stopping.changed() => return,
        }
        let victims: Vec<Pod> = {
            let objects = lock(&shared.objects);
            let running = lock(&shared.running);
            objects
                .pods
                .iter()
                .filter(|(key, pod)| {
                    restartable(pod) && running.get(*key) == pod.metadata.uid.as_ref()
                })
                .map(|(_, pod)| pod.clone())
                .collect()
        };
        if victims.is_empty() {
            continue;
        }
        let pod = victims[fastrand::usize(0..victims.len())].clone();
        restart_pod(&shared, pod).await;
    }
}

async fn restart_pod(shared: &Arc<Shared>, pod: Pod) {
    let key = key_of(&pod.metadata);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let guard = shared.pod_lock(&key);
    let turn = guard.lock().await;
    if lock(&shared.running).get(&key) != Some(&uid) {
        return;
    }
    let dataplane = shared.dataplane.clone();
    let (ns, name) = key.clone();
    let done = tokio::task::spawn_blocking(move || dataplane.restart_pod(&ns, &name))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    if let Err(e) = done {
        shared.record_error(format!("restarting pod {}/{}: {e}", key.0, key.1));
        return;
    }
    // The newest status the node knows of this pod (its own Ready report included).
    let Some(mut status) = lock(&shared.objects)
        .pods
        .get(&key)
        .filter(|p| p.metadata.uid.as_deref() == Some(uid.as_str()))
        .and_then(|p| p.status.clone())
    else {
        return;
    };
    mark_restarted(&mut status);
    if let Err(e) = patch_status(shared, &pod, &status).await {
        shared.record_error(format!("reporting pod {}/{} restarted: {e}", key.0, key.1));
        return;
    }
    drop(turn);
    record_events(shared, &pod, true, vec![restarted_event()]).await;
    report_ready(shared, &pod, &key, &uid, status).await;
}

/// Removes a pod's processes and network if `uid` is what runs under its key.
async fn stop_in_dataplane(shared: &Arc<Shared>, key: &Key, uid: &str) {
    let guard = shared.pod_lock(key);
    let _turn = guard.lock().await;
    let runs = lock(&shared.running).get(key).map(String::as_str) == Some(uid);
    if !runs {
        return;
    }
    let dataplane = shared.dataplane.clone();
    let (ns, name) = key.clone();
    match tokio::task::spawn_blocking(move || dataplane.delete_pod(&ns, &name)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => shared.record_error(format!("deleting pod {}/{}: {e}", key.0, key.1)),
        Err(e) => shared.record_error(format!("deleting pod {}/{}: {e}", key.0, key.1)),
    }
    lock(&shared.running).remove(key);
    shared.changed.notify_one();
}

/// A graceful deletion: stop the pod, then remove the object (grace 0, this uid only), as a
/// kubelet confirms that the containers are gone.
async fn terminate(shared: Arc<Shared>, pod: Pod) {
    let key = key_of(&pod.metadata);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    stop_in_dataplane(&shared, &key, &uid).await;
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match shared.pods(&key.0).delete(&key.1, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(e) => shared.record_error(format!("removing pod {}/{}: {e}", key.0, key.1)),
    }
}

/// The sandbox's load balancer (as k3s' servicelb): every LoadBalancer Service is served at the
/// node's address, and its status says so.
async fn load_balancers(shared: Arc<Shared>) {
    let api: Api<Service> = Api::all(shared.client.clone());
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = stream.next().await {
        let service = match event {
            Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => s,
            Ok(_) => continue,
            // The watcher retries by itself; do not spin while the API is away.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let is_lb = service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
        let address = shared.node_address.to_string();
        let has = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .is_some_and(|i| i.iter().any(|i| i.ip.as_deref() == Some(address.as_str())));
        if !is_lb || has {
            continue;
        }
        let (namespace, name) = key_of(&service.metadata);
        let patch =
            json!({"status": {"loadBalancer": {"ingress": [{"ip": address, "ipMode": "VIP"}]}}});
        let api: Api<Service> = Api::namespaced(shared.client.clone(), &namespace);
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            shared.record_error(format!(
                "service {namespace}/{name} load balancer status: {e}"
            ));
        }
    }
}

/// The sandbox's gateway controller: Gateways of its class are accepted and programmed at the
/// node's address (the gateway pod serves what the HTTPRoutes say).
async fn gateways(shared: Arc<Shared>) {
    let api: Api<Gateway> = Api::all(shared.client.clone());
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = stream.next().await {
        let gateway = match event {
            Ok(watcher::Event::Apply(g) | watcher::Event::InitApply(g)) => g,
            Ok(_) => continue,
            // The watcher retries by itself; do not spin while the API is away.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let Some(status) = gateway_status_at(&gateway, shared.node_address) else {
            continue;
        };
        let programmed = gateway
            .fields
            .get("status")
            .and_then(|s| s.get("addresses"))
            .is_some_and(|a| *a == status["addresses"]);
        if programmed {
            continue;
        }
        let (namespace, name) = key_of(&gateway.metadata);
        let api: Api<Gateway> = Api::namespaced(shared.client.clone(), &namespace);
        let patch = json!({"status": status});
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            shared.record_error(format!("gateway {namespace}/{name} status: {e}"));
        }
    }
}

/// The preset's policy controller (a TRE's generator of per-project policies): a namespace
/// created with, or relabelled into, a persona gets the preset's objects, if absent.
async fn preset_namespaces(shared: Arc<Shared>, preset: PresetProfile) {
    let api: Api<Namespace> = Api::all(shared.client.clone());
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = stream.next().await {
        let namespace = match event {
            Ok(watcher::Event::Apply(n) | watcher::Event::InitApply(n)) => n,
            Ok(_) => continue,
            // The watcher retries by itself; do not spin while the API is away.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if namespace.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = namespace.metadata.name.clone().unwrap_or_default();
        let labels = namespace.metadata.labels.clone().unwrap_or_default();
        for object in preset.namespace_objects(&name, &labels) {
            let what = object.describe();
            let created = match crate::reference::object_json(&object) {
                Ok(value) => crate::reference::create_object(&shared.client, value)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            if let Err(e) = created {
                // The namespace may be going away meanwhile: not the preset's problem.
                if !e.contains("NotFound") && !e.contains("being terminated") {
                    shared.record_error(format!("preset object {what}: {e}"));
                }
            }
        }
    }
}
