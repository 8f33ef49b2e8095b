//! The Kubernetes-API emulator: the subset netassay uses, served by axum on 127.0.0.1.
//!
//! Plain HTTP on a random port, so the ordinary kube-rs client (and kubectl) can talk to it via
//! [`ApiServer::write_kubeconfig`] or a `kube::Config` for [`ApiServer::url`]. Served:
//! namespaces, pods (with status, IPs and readiness from the dataplane; the spec is kept as
//! given, hostNetwork and hostPort included), pods/exec over the v4/v5 websocket channel
//! protocols, services with ClusterIPs from 10.96.0.0/16 (10.96.0.1 and 10.96.0.10 are never
//! allocated) and node ports from 30000-32767 (types ClusterIP, NodePort and LoadBalancer, whose
//! load balancer is the node's address), networking.k8s.io/v1 networkpolicies (defaulted and
//! validated like the API server) and ingresses, gateway.networking.k8s.io/v1 httproutes and
//! gateways (kept as JSON; Gateways of class `netassay-sandbox` are programmed at the node's
//! address), cilium.io/v2 ciliumnetworkpolicies and ciliumclusterwidenetworkpolicies (only
//! while the node's CNI plays Cilium, see `cilium`), coordination.k8s.io/v1 leases (resourceVersion conflicts), nodes, `/version`,
//! discovery, and just enough of `/openapi/v3` for kubectl to leave field validation to the
//! server (`fieldValidation=Strict` rejects unknown fields). Errors are `Status` objects with
//! upstream's codes and reasons.
//!
//! After every change that enforcement or the gateway depends on (everything but leases) the
//! server hands a [`ClusterState`] snapshot to [`Dataplane::sync`], before it answers the
//! request. With a preset ([`ApiOptions::preset`]), a namespace created or relabelled into a
//! persona gets the preset's objects in the same change, through the same admission as a
//! client's. [`ApiServer::bootstrap`] creates the sandbox's own objects (cluster DNS, the
//! gateway) the same way.
//!
//! kubectl works as on a real cluster for what people do while writing scenarios: request
//! bodies may be JSON, YAML or Kubernetes protobuf (`protobuf`: kubectl's typed clients send it
//! for `create namespace`, `run`, `create service`, `auth can-i`); `get` receives server-side
//! Tables with upstream's printer columns (`table`); `auth can-i` and `auth whoami` are answered
//! for the sandbox's one user, who may do everything (`access`); `logs` reads `pods/log`, each
//! pod process's output kept by the dataplane (`logs`); and the emulator records the scheduler's
//! and kubelet's Events for pods, core/v1 and events.k8s.io/v1 (`events`), so `describe` says why
//! a pod does not run (only images of a repository named `netassay` run: any other waits in
//! `ErrImagePull` with an event saying so). Answers are always JSON.
//!
//! New pods are defaulted as kube-apiserver defaults them (its admission plugins included: the
//! `default` ServiceAccount and its `kube-api-access-*` volume, the default tolerations), and the
//! `kubernetes` Service sits at 10.96.0.1, so that kubectl prints the same here as against the
//! reference cluster (`tests/reference_cluster.rs` compares the two with one kubectl script).
//!
//! Not served: **watch** (netassay polls; `?watch=true` gets 405 MethodNotAllowed with a message
//! saying so, so `kubectl wait` and `get -w` do not work), SPDY exec, tty resizing, following
//! logs (`logs -f` prints what there is and ends), field managers and managedFields (server-side
//! apply is approximated by a merge patch), list pagination (`limit` is ignored and everything
//! is returned), and authentication (none: the server listens on loopback only).

mod access;
mod admission;
mod chaos;
mod cilium;
pub(crate) mod discovery;
pub(crate) mod events;
pub(crate) mod exec;
pub(crate) mod exposure;
mod extract;
mod field_error;
mod handlers;
pub(crate) mod lifecycle;
mod logs;
mod options;
mod patch;
mod protobuf;
mod request;
mod selector;
mod shared;
mod status;
pub(crate) mod store;
mod table;

use crate::dataplane::Dataplane;
use crate::gateway_api::{Gateway, HttpRoute};
use crate::object::Object;
use crate::state::ClusterState;
use axum::routing::{get, post};
use axum::Router;
use handlers as h;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
pub use options::ApiOptions;
pub use request::decode_request;
use shared::Shared;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The kubeconfig name of the sandbox's cluster, user and context.
pub const CONTEXT: &str = "netassay-sandbox";

/// A running emulator. Dropping it stops serving; [`ApiServer::shutdown`] does so gracefully.
/// The dataplane stays its owner's to shut down.
pub struct ApiServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// The pods of [`ApiOptions::bootstrap`], started at start.
    bootstrapped: Vec<(String, String)>,
}

/// Starts the emulator with default options on 127.0.0.1 and a random port.
pub async fn start(dataplane: Arc<dyn Dataplane>) -> std::io::Result<ApiServer> {
    start_with(dataplane, ApiOptions::default()).await
}

/// Starts the emulator on 127.0.0.1 and a random port. The objects of
/// [`ApiOptions::bootstrap`] are created first (an error stops the start) and their pods
/// started; the dataplane learns the initial state before the pods start and again as each of
/// them has its address.
pub async fn start_with(
    dataplane: Arc<dyn Dataplane>,
    mut options: ApiOptions,
) -> std::io::Result<ApiServer> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let dataplane_for_node = Arc::clone(&dataplane);
    let node = tokio::task::spawn_blocking(move || dataplane_for_node.node())
        .await
        .map_err(std::io::Error::other)?;
    let bootstrap = std::mem::take(&mut options.bootstrap);
    let shared = Arc::new(Shared::new(dataplane, node, options, addr));
    let pods = create_objects(&shared, bootstrap)
        .map_err(|e| std::io::Error::other(format!("creating the sandbox's own objects: {e}")))?;
    // The dataplane learns the initial state (system namespaces, bootstrap objects) before any
    // bootstrap pod starts: the add-ons read their Services' names in the zone they start with,
    // as on the reference cluster, where the node programs an add-on's Services before its pods
    // are created. Each started pod syncs again once it has its address.
    shared.sync().await;
    let bootstrapped = start_pods(&shared, pods);
    lifecycle::start_restarter(Arc::clone(&shared));
    let app = router(Arc::clone(&shared));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serving = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = serving.await {
            eprintln!("netassay sandbox: API server failed: {e}");
        }
    });
    Ok(ApiServer {
        addr,
        shared,
        stop: Some(stop),
        task: Some(task),
        bootstrapped,
    })
}

/// Creates objects in order through the store (one that exists already is left alone); returns
/// the pods created.
fn create_objects(shared: &Shared, objects: Vec<Object>) -> Result<Vec<Pod>, String> {
    let mut store = shared.store();
    let mut pods = Vec::new();
    for object in objects {
        let what = object.describe();
        match store.create_object(object) {
            Ok(Object::Pod(pod)) => pods.push(pod),
            Ok(_) => {}
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => return Err(format!("creating {what}: {}", e.message)),
        }
    }
    Ok(pods)
}

/// Starts freshly stored pods in the background; their (namespace, name).
fn start_pods(shared: &Arc<Shared>, pods: Vec<Pod>) -> Vec<(String, String)> {
    pods.iter()
        .map(|pod| {
            lifecycle::start(Arc::clone(shared), pod);
            (
                pod.metadata.namespace.clone().unwrap_or_default(),
                pod.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect()
}

impl ApiServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the cluster server URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig for kube-rs and kubectl: cluster, user (no credentials) and context all
    /// named [`CONTEXT`], with `default` as the context's namespace.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {CONTEXT}\n  cluster:\n    server: {url}\ncontexts:\n- name: {CONTEXT}\n  context:\n    cluster: {CONTEXT}\n    user: {CONTEXT}\n    namespace: default\ncurrent-context: {CONTEXT}\nusers:\n- name: {CONTEXT}\n  user: {{}}\npreferences: {{}}\n",
            url = self.url()
        )
    }

    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// The state the dataplane was last asked to enforce (or is about to be: it is built from
    /// the store now).
    pub fn cluster_state(&self) -> ClusterState {
        self.shared.cluster_state()
    }

    /// Creates the sandbox's own objects in order, through the same admission as a client's
    /// (an object that exists already is left alone), starts the new pods (concurrently, in the
    /// background) and hands the result to the dataplane in one sync. Returns the
    /// (namespace, name) of the pods it started.
    pub async fn bootstrap(&self, objects: Vec<Object>) -> Result<Vec<(String, String)>, String> {
        let pods = create_objects(&self.shared, objects)?;
        let started = start_pods(&self.shared, pods);
        self.shared.sync().await;
        Ok(started)
    }

    /// Hands the current state to the dataplane now (and waits for a sync in progress).
    pub async fn sync(&self) {
        self.shared.sync().await;
    }

    /// The pods [`ApiOptions::bootstrap`] created, started in the background.
    pub fn bootstrapped_pods(&self) -> &[(String, String)] {
        &self.bootstrapped
    }

    /// The pod's `Ready` condition: `Some(true)` ready, `Some(false)` not (yet), `None` no such
    /// pod, or it failed to start (then `Err` with the reason).
    pub fn pod_ready(&self, namespace: &str, name: &str) -> Result<Option<bool>, String> {
        let pod = match self.shared.store().get::<Pod>(namespace, name) {
            Ok(pod) => pod,
            Err(_) => return Ok(None),
        };
        let status = pod.status.unwrap_or_default();
        if status.phase.as_deref() == Some("Failed") {
            return Err(status.message.unwrap_or_default());
        }
        let ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        Ok(Some(ready))
    }

    /// Dataplane failures seen so far (sync, pod deletion); pod start failures are in the pods'
    /// status instead.
    pub fn dataplane_errors(&self) -> Vec<String> {
        self.shared.errors()
    }

    /// Stops accepting requests, ends background pod tasks and waits (briefly) for open
    /// connections to finish.
    pub async fn shutdown(mut self) {
        self.shared.stopping.send_replace(true);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shared.stopping.send_replace(true);
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn no_route() -> status::ApiError {
    status::ApiError::no_route()
}

async fn method_not_allowed() -> status::ApiError {
    status::ApiError::method_not_allowed(
        "the server does not allow this method on the requested resource",
    )
}

fn router(shared: Arc<Shared>) -> Router {
    const NP: &str = "/apis/networking.k8s.io/v1";
    const LEASES: &str = "/apis/coordination.k8s.io/v1";
    const GW: &str = "/apis/gateway.networking.k8s.io/v1";
    const EVENTS: &str = "/apis/events.k8s.io/v1";
    const AUTHZ: &str = "/apis/authorization.k8s.io/v1";
    const AUTHN: &str = "/apis/authentication.k8s.io/v1";
    let exec_route = get(exec::exec)
        .post(exec::exec)
        .layer(axum::middleware::map_request(exec::post_upgrade_as_get));
    Router::new()
        .route("/version", get(discovery::version))
        .route("/healthz", get(discovery::healthz))
        .route("/livez", get(discovery::healthz))
        .route("/readyz", get(discovery::healthz))
        .route("/api", get(discovery::api_versions))
        .route("/api/v1", get(discovery::core_v1))
        .route("/apis", get(discovery::api_groups))
        .route("/apis/{group}", get(discovery::api_group))
        .route(NP, get(discovery::networking_v1))
        .route(LEASES, get(discovery::coordination_v1))
        .route(GW, get(discovery::gateway_v1))
        .route("/openapi/v3", get(discovery::openapi_v3_root))
        .route("/openapi/v3/api/v1", get(discovery::openapi_v3_core))
        .route(
            "/openapi/v3/apis/{group}/{version}",
            get(discovery::openapi_v3_group),
        )
        .route("/api/v1/nodes", get(discovery::nodes))
        .route("/api/v1/nodes/{name}", get(discovery::node))
        .route(
            "/api/v1/namespaces",
            get(h::list::<Namespace>).post(h::create::<Namespace>),
        )
        .route(
            "/api/v1/namespaces/{name}",
            get(h::get::<Namespace>)
                .patch(h::patch::<Namespace>)
                .put(h::replace::<Namespace>)
                .delete(h::delete_namespace),
        )
        .route("/api/v1/pods", get(h::list::<Pod>))
        .route(
            "/api/v1/namespaces/{namespace}/pods",
            get(h::list::<Pod>)
                .post(h::create_pod)
                .delete(h::delete_pods),
        )
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}",
            get(h::get::<Pod>).patch(h::patch_pod).delete(h::delete_pod),
        )
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/exec",
            exec_route,
        )
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/log",
            get(logs::pod_log),
        )
        .route("/api/v1/events", get(h::list::<Event>))
        .route(
            "/api/v1/namespaces/{namespace}/events",
            get(h::list::<Event>)
                .post(h::create::<Event>)
                .delete(h::delete_collection::<Event>),
        )
        .route(
            "/api/v1/namespaces/{namespace}/events/{name}",
            get(h::get::<Event>)
                .patch(h::patch::<Event>)
                .put(h::replace::<Event>)
                .delete(h::delete::<Event>),
        )
        .route(EVENTS, get(discovery::events_v1))
        .route(&format!("{EVENTS}/events"), get(events::list_v1))
        .route(
            &format!("{EVENTS}/namespaces/{{namespace}}/events"),
            get(events::list_v1),
        )
        .route(
            &format!("{EVENTS}/namespaces/{{namespace}}/events/{{name}}"),
            get(events::get_v1),
        )
        .route(AUTHZ, get(discovery::authorization_v1))
        .route(
            &format!("{AUTHZ}/selfsubjectaccessreviews"),
            post(access::self_subject_access_review),
        )
        .route(
            &format!("{AUTHZ}/selfsubjectrulesreviews"),
            post(access::self_subject_rules_review),
        )
        .route(AUTHN, get(discovery::authentication_v1))
        .route(
            &format!("{AUTHN}/selfsubjectreviews"),
            post(access::self_subject_review),
        )
        .route("/api/v1/services", get(h::list::<Service>))
        .route(
            "/api/v1/namespaces/{namespace}/services",
            get(h::list::<Service>)
                .post(h::create::<Service>)
                .delete(h::delete_collection::<Service>),
        )
        .route(
            "/api/v1/namespaces/{namespace}/services/{name}",
            get(h::get::<Service>)
                .patch(h::patch::<Service>)
                .put(h::replace::<Service>)
                .delete(h::delete::<Service>),
        )
        .route(
            &format!("{NP}/networkpolicies"),
            get(h::list::<NetworkPolicy>),
        )
        .route(
            &format!("{NP}/namespaces/{{namespace}}/networkpolicies"),
            get(h::list::<NetworkPolicy>)
                .post(h::create::<NetworkPolicy>)
                .delete(h::delete_collection::<NetworkPolicy>),
        )
        .route(
            &format!("{NP}/namespaces/{{namespace}}/networkpolicies/{{name}}"),
            get(h::get::<NetworkPolicy>)
                .put(h::replace::<NetworkPolicy>)
                .patch(h::patch::<NetworkPolicy>)
                .delete(h::delete::<NetworkPolicy>),
        )
        .route(&format!("{NP}/ingresses"), get(h::list::<Ingress>))
        .route(
            &format!("{NP}/namespaces/{{namespace}}/ingresses"),
            get(h::list::<Ingress>)
                .post(h::create::<Ingress>)
                .delete(h::delete_collection::<Ingress>),
        )
        .route(
            &format!("{NP}/namespaces/{{namespace}}/ingresses/{{name}}"),
            get(h::get::<Ingress>)
                .put(h::replace::<Ingress>)
                .patch(h::patch::<Ingress>)
                .delete(h::delete::<Ingress>),
        )
        .route(&format!("{GW}/httproutes"), get(h::list::<HttpRoute>))
        .route(
            &format!("{GW}/namespaces/{{namespace}}/httproutes"),
            get(h::list::<HttpRoute>)
                .post(h::create::<HttpRoute>)
                .delete(h::delete_collection::<HttpRoute>),
        )
        .route(
            &format!("{GW}/namespaces/{{namespace}}/httproutes/{{name}}"),
            get(h::get::<HttpRoute>)
                .put(h::replace::<HttpRoute>)
                .patch(h::patch::<HttpRoute>)
                .delete(h::delete::<HttpRoute>),
        )
        .route(&format!("{GW}/gateways"), get(h::list::<Gateway>))
        .route(
            &format!("{GW}/namespaces/{{namespace}}/gateways"),
            get(h::list::<Gateway>)
                .post(h::create::<Gateway>)
                .delete(h::delete_collection::<Gateway>),
        )
        .route(
            &format!("{GW}/namespaces/{{namespace}}/gateways/{{name}}"),
            get(h::get::<Gateway>)
                .put(h::replace::<Gateway>)
                .patch(h::patch::<Gateway>)
                .delete(h::delete::<Gateway>),
        )
        .route(&format!("{LEASES}/leases"), get(h::list::<Lease>))
        .route(
            &format!("{LEASES}/namespaces/{{namespace}}/leases"),
            get(h::list::<Lease>)
                .post(h::create::<Lease>)
                .delete(h::delete_collection::<Lease>),
        )
        .route(
            &format!("{LEASES}/namespaces/{{namespace}}/leases/{{name}}"),
            get(h::get::<Lease>)
                .put(h::replace::<Lease>)
                .patch(h::patch::<Lease>)
                .delete(h::delete::<Lease>),
        )
        .merge(cilium::routes(Arc::clone(&shared)))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            chaos::hostile,
        ))
        .with_state(shared)
}
