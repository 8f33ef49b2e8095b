//! The kubelet's part for pods: start in the dataplane, readiness into `Ready`, removal.

use super::events::{self, Severity};
use super::shared::Shared;
use super::status::ApiError;
use super::store::{container_ports, now, Key, Preconditions};
use crate::dataplane::PodSpec;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateWaiting, ContainerStatus, Pod,
    PodCondition, PodIP, PodStatus,
};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// What the dataplane runs for a pod: the first container's command followed by its args.
pub(crate) fn dataplane_spec(pod: &Pod) -> PodSpec {
    let container = pod.spec.as_ref().and_then(|s| s.containers.first());
    let command = container
        .map(|c| {
            c.command
                .iter()
                .flatten()
                .chain(c.args.iter().flatten())
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    PodSpec {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        command,
        ports: container_ports(pod),
    }
}

/// Sets a condition, keeping its transition time when its status does not change.
pub(crate) fn set_condition(
    status: &mut PodStatus,
    type_: &str,
    value: bool,
    reason: Option<&str>,
    message: Option<String>,
) {
    let value = if value { "True" } else { "False" };
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let previous = conditions.iter().position(|c| c.type_ == type_);
    let transition = match previous.map(|i| &conditions[i]) {
        Some(c) if c.status == value => c.last_transition_time.clone(),
        _ => Some(now()),
    };
    let condition = PodCondition {
        type_: type_.to_string(),
        status: value.to_string(),
        reason: reason.map(str::to_string),
        message,
        last_transition_time: transition,
        ..Default::default()
    };
    match previous {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

fn unready_message(containers: &[String]) -> String {
    format!("containers with unready status: [{}]", containers.join(" "))
}

/// `ContainersReady` and `Ready` false because of `containers`, as a kubelet says it.
fn mark_unready(status: &mut PodStatus, containers: &[String]) {
    for condition in ["ContainersReady", "Ready"] {
        set_condition(
            status,
            condition,
            false,
            Some("ContainersNotReady"),
            Some(unready_message(containers)),
        );
    }
}

/// Why `container` of `pod` has not started, from its status: its waiting reason, or
/// `ContainerCreating` before any status was reported. Both kubelets (the emulator's `logs` and
/// the node agent's endpoint) answer from it.
pub(crate) fn container_waiting(pod: &Pod, container: &str) -> Option<String> {
    let status = pod
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .find(|c| c.name == container);
    match status {
        None => Some("ContainerCreating".to_string()),
        Some(c) => c
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .map(|w| w.reason.clone().unwrap_or_default()),
    }
}

pub(crate) fn mark_running(status: &mut PodStatus, ip: IpAddr, containers: &[(String, String)]) {
    let started = now();
    status.phase = Some("Running".to_string());
    status.pod_ip = Some(ip.to_string());
    status.pod_ips = Some(vec![PodIP { ip: ip.to_string() }]);
    status.start_time = Some(started.clone());
    let names: Vec<String> = containers.iter().map(|(n, _)| n.clone()).collect();
    // Bound to the node before it starts (the emulator's admission, or the node agent's
    // binding, whose condition its status patch would otherwise replace).
    set_condition(status, "PodScheduled", true, None, None);
    set_condition(status, "PodReadyToStartContainers", true, None, None);
    set_condition(status, "Initialized", true, None, None);
    mark_unready(status, &names);
    status.container_statuses = Some(
        containers
            .iter()
            .map(|(name, image)| ContainerStatus {
                name: name.clone(),
                image: image.clone(),
                image_id: String::new(),
                ready: false,
                started: Some(true),
                restart_count: 0,
                last_state: Some(ContainerState::default()),
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(started.clone()),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
    );
}

pub(crate) fn mark_ready(status: &mut PodStatus) {
    set_condition(status, "ContainersReady", true, None, None);
    set_condition(status, "Ready", true, None, None);
    for c in status.container_statuses.iter_mut().flatten() {
        c.ready = true;
    }
}

pub(crate) fn mark_failed(status: &mut PodStatus, message: String) {
    status.phase = Some("Failed".to_string());
    status.reason = Some("DataplaneError".to_string());
    status.message = Some(message.clone());
    set_condition(
        status,
        "Ready",
        false,
        Some("DataplaneError"),
        Some(message),
    );
}

/// Each container's name and image, for its status.
pub(crate) fn containers(pod: &Pod) -> Vec<(String, String)> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .collect()
}

/// Why the sandbox cannot run an image: it runs only the netassay binary, so only images of a
/// repository called `netassay` (any registry, tag or digest: `ghcr.io/netassay/netassay:latest`,
/// `netassay:sandbox`, an air-gapped mirror's copy) stand for what it can run.
pub(crate) fn image_problem(image: &str) -> Option<String> {
    if image.is_empty() {
        return None;
    }
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let repository = last.split(':').next().unwrap_or(last);
    (repository != "netassay").then(|| {
        format!("image {image} is not available in the sandbox: only the netassay image runs")
    })
}

/// A pod whose image cannot run: Pending, its containers waiting in `ErrImagePull`, as a kubelet
/// reports an image it cannot pull.
pub(crate) fn mark_image_unavailable(
    status: &mut PodStatus,
    containers: &[(String, String)],
    why: &str,
) {
    status.phase = Some("Pending".to_string());
    let names: Vec<String> = containers.iter().map(|(n, _)| n.clone()).collect();
    set_condition(status, "PodScheduled", true, None, None);
    set_condition(status, "Initialized", true, None, None);
    mark_unready(status, &names);
    status.container_statuses = Some(
        containers
            .iter()
            .map(|(name, image)| ContainerStatus {
                name: name.clone(),
                image: image.clone(),
                image_id: String::new(),
                ready: false,
                started: Some(false),
                restart_count: 0,
                last_state: Some(ContainerState::default()),
                state: Some(ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some("ErrImagePull".to_string()),
                        message: image_problem(image).or_else(|| Some(why.to_string())),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
    );
}

/// Starts a freshly stored pod in the background, as a kubelet would, recording the scheduler's
/// and the kubelet's events on the way (`kubectl describe` shows them).
pub(crate) fn start(shared: Arc<Shared>, pod: &Pod) {
    let key = (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let containers = containers(pod);
    let spec = dataplane_spec(pod);
    let pod = pod.clone();
    tokio::spawn(async move {
        let event = |severity, reason: &str, message: String, container: bool| {
            events::record_pod_event(&shared, &pod, container, severity, reason, message)
        };
        let (severity, reason, message) = scheduled_event(&key.0, &key.1, &shared.node.name);
        event(severity, reason, message, false);
        let refused = refused_images(&containers);
        if let Some((_, first)) = refused.first() {
            shared.store().update_pod_status(&key, &uid, |s| {
                mark_image_unavailable(s, &containers, first)
            });
            for (severity, reason, message) in image_refused_events(&refused) {
                event(severity, reason, message, true);
            }
            return;
        }
        if create(&shared, &key, &uid, spec, &containers).await {
            for (severity, reason, message) in started_events(&containers) {
                event(severity, reason, message, true);
            }
            shared.sync().await;
            poll_readiness(&shared, &key, &uid).await;
        } else {
            let failure = shared
                .store()
                .pod_with_uid(&key, &uid)
                .and_then(|p| p.status.as_ref()?.message.clone());
            if let Some(message) = failure {
                let (severity, reason, message) = failed_event(&message);
                event(severity, reason, message, true);
            }
        }
    });
}

/// A kubelet event: severity, reason, message.
pub(crate) type PodEvent = (Severity, &'static str, String);

/// The scheduler's event for a pod bound to `node`.
pub(crate) fn scheduled_event(namespace: &str, name: &str, node: &str) -> PodEvent {
    (
        Severity::Normal,
        "Scheduled",
        format!("Successfully assigned {namespace}/{name} to {node}"),
    )
}

/// The images of `containers` the sandbox cannot run, each with why.
pub(crate) fn refused_images(containers: &[(String, String)]) -> Vec<(String, String)> {
    containers
        .iter()
        .filter_map(|(_, image)| Some((image.clone(), image_problem(image)?)))
        .collect()
}

/// The kubelet's events for images it cannot pull.
pub(crate) fn image_refused_events(refused: &[(String, String)]) -> Vec<PodEvent> {
    refused
        .iter()
        .map(|(image, why)| {
            (
                Severity::Warning,
                "Failed",
                format!("Failed to pull image {image:?}: {why}"),
            )
        })
        .chain([(Severity::Warning, "Failed", "Error: ErrImagePull".into())])
        .collect()
}

/// The kubelet's events for started containers.
pub(crate) fn started_events(containers: &[(String, String)]) -> Vec<PodEvent> {
    containers
        .iter()
        .flat_map(|(name, image)| {
            [
                (
                    Severity::Normal,
                    "Pulled",
                    format!("Container image {image:?} already present on machine"),
                ),
                (
                    Severity::Normal,
                    "Created",
                    format!("Created container: {name}"),
                ),
                (
                    Severity::Normal,
                    "Started",
                    format!("Started container {name}"),
                ),
            ]
        })
        .collect()
}

/// The kubelet's event for a pod the dataplane could not start.
pub(crate) fn failed_event(message: &str) -> PodEvent {
    (Severity::Warning, "Failed", format!("Error: {message}"))
}

/// Creates the pod in the dataplane under its lock; true when it runs with an IP.
async fn create(
    shared: &Arc<Shared>,
    key: &Key,
    uid: &str,
    spec: PodSpec,
    containers: &[(String, String)],
) -> bool {
    shared
        .with_pod_lock(key, || async {
            if shared.store().pod_with_uid(key, uid).is_none() {
                return false;
            }
            let dataplane = Arc::clone(&shared.dataplane);
            let created = tokio::task::spawn_blocking(move || dataplane.create_pod(&spec))
                .await
                .map_err(|e| format!("the dataplane panicked: {e}"))
                .and_then(|r| r.map_err(|e| e.to_string()));
            match created {
                Ok(ip) => {
                    let mut store = shared.store();
                    store.update_pod_status(key, uid, |s| mark_running(s, ip, containers))
                }
                Err(message) => {
                    let message =
                        format!("the sandbox dataplane could not start the pod: {message}");
                    shared
                        .store()
                        .update_pod_status(key, uid, |s| mark_failed(s, message));
                    false
                }
            }
        })
        .await
}

/// Polls `Dataplane::pod_ready` with backoff until the pod is ready, gone, or out of time.
async fn poll_readiness(shared: &Arc<Shared>, key: &Key, uid: &str) {
    let deadline = Instant::now() + shared.options.ready_timeout;
    let mut stopping = shared.stopping.subscribe();
    let mut delay = Duration::from_millis(10);
    loop {
        if *stopping.borrow() || shared.store().pod_with_uid(key, uid).is_none() {
            return;
        }
        let dataplane = Arc::clone(&shared.dataplane);
        let (ns, name) = key.clone();
        let ready = tokio::task::spawn_blocking(move || dataplane.pod_ready(&ns, &name))
            .await
            .unwrap_or(false);
        if ready {
            shared.store().update_pod_status(key, uid, mark_ready);
            return;
        }
        if Instant::now() >= deadline {
            let message = format!(
                "the pod's container ports did not accept connections within {:?}",
                shared.options.ready_timeout
            );
            shared.store().update_pod_status(key, uid, |s| {
                set_condition(s, "Ready", false, Some("ReadinessTimeout"), Some(message));
            });
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopping.changed() => return,
        }
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}

/// Deletes a pod from the store and then from the dataplane, under its lock so that a
/// re-created pod of the same name starts only after the old one is gone.
pub(crate) async fn delete(
    shared: &Arc<Shared>,
    key: &Key,
    pre: &Preconditions,
    dry_run: bool,
) -> Result<Pod, ApiError> {
    shared
        .with_pod_lock(key, || async {
            let pod = shared.store().delete::<Pod>(&key.0, &key.1, pre, dry_run)?;
            if !dry_run {
                let dataplane = Arc::clone(&shared.dataplane);
                let (ns, name) = key.clone();
                match tokio::task::spawn_blocking(move || dataplane.delete_pod(&ns, &name)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => shared.record_error(format!(
                        "deleting pod {ns}/{name}: {e}",
                        ns = key.0,
                        name = key.1
                    )),
                    Err(e) => shared.record_error(format!("deleting pod {}/{}: {e}", key.0, key.1)),
                }
            }
            Ok(pod)
        })
        .await
}

/// The `pod-restarts` fault: while the emulator runs, every few seconds one of netassay's probe
/// pods (label `netassay.io/run`, running and ready) has its process killed
/// and started again in place, as a kubelet restarts a container after an OOM kill: the pod
/// keeps its IP, `restartCount` goes up, `lastState` says OOMKilled, and the pod is not ready
/// until its ports accept connections again.
pub(crate) fn start_restarter(shared: Arc<Shared>) {
    if shared.options.faults.draw_restart_pause().is_none() {
        return;
    }
    tokio::spawn(async move {
        let mut stopping = shared.stopping.subscribe();
        loop {
            let Some(pause) = shared.options.faults.draw_restart_pause() else {
                return;
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stopping.changed() => return,
            }
            if *stopping.borrow() {
                return;
            }
            let Some((key, uid, pod)) = pick_restart_victim(&shared) else {
                continue;
            };
            restart(&shared, &key, &uid, &pod).await;
        }
    });
}

fn pick_restart_victim(shared: &Shared) -> Option<(Key, String, Pod)> {
    let pods: Vec<Pod> = shared
        .store()
        .list::<Pod>(None, &Default::default(), &Default::default())
        .into_iter()
        .filter(restartable)
        .collect();
    let pod = pods.get(fastrand::usize(0..pods.len().max(1)))?.clone();
    let key = (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    Some((key, uid, pod))
}

/// Marks the container as killed and running again: restartCount + 1, lastState OOMKilled, not
/// ready until the readiness poll sees its ports again.
pub(crate) fn mark_restarted(status: &mut PodStatus) {
    let at = now();
    for c in status.container_statuses.iter_mut().flatten() {
        c.restart_count += 1;
        c.ready = false;
        c.last_state = Some(ContainerState {
            terminated: Some(k8s_openapi::api::core::v1::ContainerStateTerminated {
                exit_code: 137,
                reason: Some("OOMKilled".into()),
                finished_at: Some(at.clone()),
                started_at: c
                    .state
                    .as_ref()
                    .and_then(|s| s.running.as_ref())
                    .and_then(|r| r.started_at.clone()),
                ..Default::default()
            }),
            ..Default::default()
        });
        c.state = Some(ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(at.clone()),
            }),
            ..Default::default()
        });
    }
    let names: Vec<String> = status
        .container_statuses
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect();
    mark_unready(status, &names);
}

async fn restart(shared: &Arc<Shared>, key: &Key, uid: &str, pod: &Pod) {
    let restarted = shared
        .with_pod_lock(key, || async {
            if shared.store().pod_with_uid(key, uid).is_none() {
                return false;
            }
            let dataplane = Arc::clone(&shared.dataplane);
            let (ns, name) = key.clone();
            let done = tokio::task::spawn_blocking(move || dataplane.restart_pod(&ns, &name))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
            match done {
                Ok(()) => shared.store().update_pod_status(key, uid, mark_restarted),
                Err(e) => {
                    shared.record_error(format!("restarting pod {}/{}: {e}", key.0, key.1));
                    false
                }
            }
        })
        .await;
    if restarted {
        let (severity, reason, message) = restarted_event();
        events::record_pod_event(shared, pod, true, severity, reason, message);
        poll_readiness(shared, key, uid).await;
    }
}

/// The kubelet's event for a container the `pod-restarts` fault killed and restarted.
pub(crate) fn restarted_event() -> PodEvent {
    (
        Severity::Warning,
        "BackOff",
        "Container was OOM-killed (the sandbox's pod-restarts fault) and restarted in place".into(),
    )
}

/// Whether `pod` is a ready probe pod the `pod-restarts` fault may restart.
pub(crate) fn restartable(pod: &Pod) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(netassay_core::objects::RUN_LABEL))
        && pod.status.as_ref().is_some_and(|s| {
            s.phase.as_deref() == Some("Running")
                && s.container_statuses.iter().flatten().all(|c| c.ready)
        })
}
