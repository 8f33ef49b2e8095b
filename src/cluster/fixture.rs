//! A deployed topology: namespaces, probe pods and services of one run, with live addresses; it
//! applies steps, probes cells in batches (one exec per source pod) and tears itself down.

use super::agent_run::AgentRun;
use super::manifest::{self, FixtureOptions, RUN_LABEL};
use super::{status_code, ClusterError};
use crate::model::{Labels, PodRef, Topology, Via};
use crate::probe::{Outcome, ProbeBatch, ProbeKind, ProbeResult, ProbeSpec, Series};
use crate::runner::{Probed, Prober, ReadyRound, Resilience, RunningSeries, SeriesPlan};
use crate::scenario::policies::{resolve_policy, NamespaceMap};
use crate::scenario::profile::{Gateway, RouteKind};
use crate::scenario::{ExpectedCell, Step};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::Api;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a fixture had to do again because of the control plane (counters only grow; a step's
/// share is the difference around it).
#[derive(Debug, Clone, Default)]
pub struct FixtureTally {
    /// Retries of the fixture's own client.
    pub api: super::ApiTally,
    exec_replays: Arc<AtomicU64>,
    pod_restarts: Arc<AtomicU64>,
}

impl FixtureTally {
    pub fn snapshot(&self) -> Resilience {
        Resilience {
            api_retries: self.api.retries(),
            exec_replays: self.exec_replays.load(Ordering::Relaxed),
            pod_restarts: self.pod_restarts.load(Ordering::Relaxed),
        }
    }

    fn exec_replayed(&self) {
        self.exec_replays.fetch_add(1, Ordering::Relaxed);
    }

    fn pods_restarted(&self, n: usize) {
        self.pod_restarts.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A live topology of one run.
pub struct Fixture {
    /// Restart counts as last seen.
    restarts: Option<RestartWatch>,
    client: kube::Client,
    /// Retries, replays and restarts seen, for the reports.
    pub tally: FixtureTally,
    run: String,
    pub names: NamespaceMap,
    /// The scenario topology (logical names) with live pod addresses and current labels.
    pub topology: Topology,
    /// The topology as deployed, to reset labels between scenarios.
    original: Topology,
    pub services: BTreeMap<PodRef, IpAddr>,
    pub probe_timeout: Duration,
    /// Real namespace names, as created.
    namespaces: Vec<String>,
    /// The profile's gateway, when routes were created for the pods' HTTP ports.
    gateway: Option<Gateway>,
    /// Route host names, per pod with an HTTP port, when there is a gateway.
    pub hosts: BTreeMap<PodRef, String>,
    /// How to run `netassay agent probe` outside the cluster (`None`: no outside vantage).
    outside: Option<Vec<String>>,
    /// The node each pod runs on (a NodePort is probed on the node of its endpoint).
    nodes: BTreeMap<PodRef, String>,
}

/// What to deploy: one topology of one run.
#[derive(Debug, Clone, Copy)]
pub struct Deployment<'a> {
    pub run: &'a str,
    /// Distinguishes fixtures of one run (namespace names are `netassay-<run>-<id>-<ns>`).
    pub fixture_id: usize,
    pub topology: &'a Topology,
    pub opts: &'a FixtureOptions,
    /// Also create a ClusterIP Service per pod.
    pub services: bool,
    pub ready_timeout: Duration,
    /// Expose every pod's HTTP port through this gateway (an HTTPRoute or an Ingress).
    pub gateway: Option<&'a Gateway>,
    /// The command that runs the agent outside the cluster: `argv + ["agent", "probe"]`.
    pub outside: Option<&'a [String]>,
}

/// A step applied: when its last change was accepted, and its reject checks.
#[derive(Debug, Clone)]
pub struct Applied {
    /// When the API server answered the step's last change (delete, apply or label): the origin
    /// of its time-to-enforce. Before the reject checks, which change nothing.
    pub accepted: Instant,
    pub rejects: Vec<RejectCheck>,
}

/// The outcome of a `reject` entry: did the API server refuse it?
#[derive(Debug, Clone)]
pub struct RejectCheck {
    pub policy: String,
    pub refused: bool,
    pub detail: String,
}

impl Fixture {
    /// Creates namespaces, pods (and services when `services`), waits until every pod is Ready
    /// (or `ready_timeout` passes, naming the pods that are not), and reads live addresses.
    pub async fn deploy(
        client: kube::Client,
        tally: FixtureTally,
        plan: &Deployment<'_>,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Fixture, ClusterError> {
        let Deployment {
            run,
            fixture_id,
            topology,
            opts,
            services,
            ready_timeout,
            gateway,
            outside,
        } = *plan;
        let tag = format!("{run}-{fixture_id}");
        let names =
            NamespaceMap::for_run(&tag, topology.namespaces.iter().map(|n| n.name.as_str()));
        let mut fixture = Fixture {
            restarts: None,
            client: client.clone(),
            tally,
            run: run.to_string(),
            names: names.clone(),
            topology: topology.clone(),
            original: topology.clone(),
            services: BTreeMap::new(),
            probe_timeout: Duration::from_secs(1),
            namespaces: Vec::new(),
            gateway: gateway.cloned(),
            hosts: BTreeMap::new(),
            outside: outside.map(<[String]>::to_vec),
            nodes: BTreeMap::new(),
        };
        let ns_api: Api<Namespace> = Api::all(client.clone());
        for ns in &topology.namespaces {
            let real = names.real(&ns.name).to_string();
            let obj = manifest::namespace(&real, ns, run, opts);
            ns_api
                .create(&PostParams::default(), &obj)
                .await
                .map_err(|e| ClusterError::api(format!("creating namespace {real}"), e))?;
            fixture.namespaces.push(real);
        }
        for pod in &topology.pods {
            let real = names.real(&pod.id.namespace).to_string();
            let api: Api<Pod> = Api::namespaced(client.clone(), &real);
            let manifest = manifest::pod(&real, pod, run, opts);
            let deadline = tokio::time::Instant::now() + super::SERVICE_ACCOUNT_WAIT;
            loop {
                match api.create(&PostParams::default(), &manifest).await {
                    Ok(_) => break,
                    Err(kube::Error::Api(s))
                        if super::is_service_account_race(&s)
                            && tokio::time::Instant::now() < deadline =>
                    {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => {
                        return Err(ClusterError::api(
                            format!("creating pod {real}/{}", pod.id.name),
                            e,
                        ))
                    }
                }
            }
            if services {
                let sapi: Api<Service> = Api::namespaced(client.clone(), &real);
                sapi.create(&PostParams::default(), &manifest::service(&real, pod, run))
                    .await
                    .map_err(|e| {
                        ClusterError::api(format!("creating service {real}/{}", pod.id.name), e)
                    })?;
            }
        }
        if let (Some(g), true) = (gateway, services) {
            for pod in topology.pods.iter().filter(|p| p.http.is_some()) {
                let real = names.real(&pod.id.namespace).to_string();
                let host = manifest::route_host(&real, pod, &g.host_suffix);
                fixture.create_route(&real, pod, &host, g, run).await?;
                fixture.hosts.insert(pod.id.clone(), host);
            }
        }
        fixture.wait_ready(ready_timeout, &mut progress).await?;
        let watch = RestartWatch {
            client: client.clone(),
            run: run.to_string(),
            namespaces: topology
                .namespaces
                .iter()
                .map(|n| (names.real(&n.name).to_string(), n.name.clone()))
                .collect(),
            seen: Default::default(),
            tally: fixture.tally.clone(),
        };
        // The first look records the counts the fixture starts with.
        watch.restarted().await.map_err(ClusterError::NotReady)?;
        fixture.restarts = Some(watch);
        if services {
            for pod in &topology.pods {
                let real = names.real(&pod.id.namespace).to_string();
                let sapi: Api<Service> = Api::namespaced(client.clone(), &real);
                let s = sapi.get(&pod.id.name).await.map_err(|e| {
                    ClusterError::api(format!("reading service {real}/{}", pod.id.name), e)
                })?;
                let ip = s
                    .spec
                    .and_then(|s| s.cluster_ip)
                    .and_then(|ip| ip.parse().ok())
                    .ok_or_else(|| {
                        ClusterError::NotReady(format!(
                            "service {real}/{} has no ClusterIP",
                            pod.id.name
                        ))
                    })?;
                fixture.services.insert(pod.id.clone(), ip);
            }
        }
        Ok(fixture)
    }

    async fn wait_ready(
        &mut self,
        timeout: Duration,
        progress: &mut impl FnMut(usize, usize),
    ) -> Result<(), ClusterError> {
        let deadline = Instant::now() + timeout;
        let total = self.topology.pods.len();
        loop {
            let mut ready = BTreeMap::new();
            let mut why = BTreeMap::new();
            for real in &self.namespaces {
                let api: Api<Pod> = Api::namespaced(self.client.clone(), real);
                let pods = api
                    .list(&ListParams::default().labels(&format!("{RUN_LABEL}={}", self.run)))
                    .await
                    .map_err(|e| ClusterError::api(format!("listing pods in {real}"), e))?;
                for p in pods {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    let status = p.status.clone().unwrap_or_default();
                    let cond = status
                        .conditions
                        .iter()
                        .flatten()
                        .find(|c| c.type_ == "Ready")
                        .cloned();
                    let is_ready = cond.as_ref().is_some_and(|c| c.status == "True");
                    let ip = status
                        .pod_ip
                        .as_deref()
                        .and_then(|s| s.parse::<IpAddr>().ok());
                    if is_ready && ip.is_some() {
                        let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
                        ready.insert((real.clone(), name), (ip, node));
                    } else {
                        let detail = match cond {
                            Some(c) => format!(
                                "phase {}, Ready={} {} {}",
                                status.phase.unwrap_or_default(),
                                c.status,
                                c.reason.unwrap_or_default(),
                                c.message.unwrap_or_default()
                            ),
                            None => format!(
                                "phase {}, no Ready condition yet",
                                status.phase.unwrap_or_default()
                            ),
                        };
                        why.insert(format!("{real}/{name}"), detail.trim().to_string());
                    }
                }
            }
            progress(ready.len(), total);
            if ready.len() == total {
                for pod in &mut self.original.pods {
                    let key = (
                        self.names.real(&pod.id.namespace).to_string(),
                        pod.id.name.clone(),
                    );
                    if let Some((Some(ip), node)) = ready.get(&key) {
                        pod.ip = *ip;
                        if let Some(node) = node {
                            self.nodes.insert(pod.id.clone(), node.clone());
                        }
                    }
                }
                self.topology = self.original.clone();
                return Ok(());
            }
            if Instant::now() >= deadline {
                let list: Vec<String> = why.iter().map(|(p, d)| format!("{p}: {d}")).collect();
                return Err(ClusterError::NotReady(format!(
                    "{} of {total} probe pods not ready after {:?}: {}",
                    total - ready.len(),
                    timeout,
                    if list.is_empty() {
                        "pods missing".to_string()
                    } else {
                        list.join("; ")
                    }
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A scenario policy as submitted: real namespace names, and this run's labels, so that a
    /// reset removes exactly these and never the cluster's own policies.
    fn as_ours(&self, np: &NetworkPolicy) -> NetworkPolicy {
        let mut real = self.names.rewrite_policy(np);
        real.metadata
            .labels
            .get_or_insert_with(Default::default)
            .extend(manifest::ownership(&self.run));
        real
    }

    /// A policy of that name exists: replace it only if this run made it. The cluster's own
    /// policies (a TRE's generated ones in persona namespaces) are never overwritten, so a
    /// reset can never lose them.
    fn check_owned(
        &self,
        current: &NetworkPolicy,
        ns: &str,
        name: &str,
    ) -> Result<(), ClusterError> {
        let ours = current
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(RUN_LABEL))
            .is_some_and(|r| *r == self.run);
        if ours {
            Ok(())
        } else {
            Err(ClusterError::Policy {
                policy: format!("{ns}/{name}"),
                detail: "a policy of this name already exists and netassay did not create it (the \
                         cluster's own?); refusing to replace it: rename the scenario's policy"
                    .into(),
            })
        }
    }

    /// Exposes a pod's HTTP port through the gateway, as the profile says (HTTPRoute/Ingress).
    async fn create_route(
        &self,
        real: &str,
        pod: &crate::model::Pod,
        host: &str,
        g: &Gateway,
        run: &str,
    ) -> Result<(), ClusterError> {
        let what = || format!("creating the route {real}/{} for host {host}", pod.id.name);
        match (g.route, &g.parent_ref) {
            (RouteKind::HttpRoute, Some(parent)) => {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), real, &http_route_resource());
                let obj: DynamicObject =
                    serde_json::from_value(manifest::http_route(real, pod, run, host, parent))
                        .map_err(|e| ClusterError::Exec {
                            what: what(),
                            detail: e.to_string(),
                        })?;
                api.create(&PostParams::default(), &obj)
                    .await
                    .map(|_| ())
                    .map_err(|e| ClusterError::api(what(), e))
            }
            _ => {
                let api: Api<k8s_openapi::api::networking::v1::Ingress> =
                    Api::namespaced(self.client.clone(), real);
                let obj = manifest::ingress(real, pod, run, host, g.ingress_class_name.as_deref());
                api.create(&PostParams::default(), &obj)
                    .await
                    .map(|_| ())
                    .map_err(|e| ClusterError::api(what(), e))
            }
        }
    }

    fn policies(&self, ns_logical: &str) -> Api<NetworkPolicy> {
        Api::namespaced(self.client.clone(), self.names.real(ns_logical))
    }

    /// Creates a policy, or replaces it when one of that name exists.
    async fn apply_policy(&self, np: &NetworkPolicy) -> Result<(), ClusterError> {
        let real = self.as_ours(np);
        let ns = np.metadata.namespace.clone().unwrap_or_default();
        let name = np.metadata.name.clone().unwrap_or_default();
        let api = self.policies(&ns);
        match api.create(&PostParams::default(), &real).await {
            Ok(_) => Ok(()),
            Err(e) if status_code(&e) == Some(409) => {
                let current = api
                    .get(&name)
                    .await
                    .map_err(|e| ClusterError::api(format!("reading policy {ns}/{name}"), e))?;
                self.check_owned(&current, &ns, &name)?;
                let mut replacement = real.clone();
                replacement.metadata.resource_version = current.metadata.resource_version;
                api.replace(&name, &PostParams::default(), &replacement)
                    .await
                    .map(|_| ())
                    .map_err(|e| ClusterError::api(format!("replacing policy {ns}/{name}"), e))
            }
            Err(e) => Err(ClusterError::api(format!("creating policy {ns}/{name}"), e)),
        }
    }

    /// Applies one step: delete, apply, label, then the `reject` checks.
    pub async fn apply_step(&mut self, step: &Step) -> Result<Applied, ClusterError> {
        for d in &step.delete {
            match self
                .policies(&d.namespace)
                .delete(&d.name, &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(e) if status_code(&e) == Some(404) => {}
                Err(e) => return Err(ClusterError::api(format!("deleting policy {d}"), e)),
            }
        }
        for template in &step.apply {
            let np = resolve_policy(template, &self.topology).map_err(|(path, m)| {
                ClusterError::Policy {
                    policy: template.metadata.name.clone().unwrap_or_default(),
                    detail: format!("{path}: {m}"),
                }
            })?;
            self.apply_policy(&np).await?;
        }
        for (pod, edit) in &step.label_pods {
            self.patch_pod_labels(pod, edit).await?;
            if let Some(p) = self.topology.pod_mut(pod) {
                crate::model::edit_labels(&mut p.labels, edit);
            }
        }
        for (ns, edit) in &step.label_namespaces {
            self.patch_namespace_labels(ns, edit).await?;
            if let Some(n) = self.topology.namespace_mut(ns) {
                crate::model::edit_labels(&mut n.labels, edit);
            }
        }
        let accepted = Instant::now();
        let mut checks = Vec::new();
        for template in &step.reject {
            let name = template.metadata.name.clone().unwrap_or_default();
            let ns = template.metadata.namespace.clone().unwrap_or_default();
            let np = match resolve_policy(template, &self.topology) {
                Ok(np) => self.as_ours(&np),
                Err((p, m)) => {
                    checks.push(RejectCheck {
                        policy: format!("{ns}/{name}"),
                        refused: true,
                        detail: format!("{p}: {m}"),
                    });
                    continue;
                }
            };
            // Create-or-replace, as a user would; a 422 must leave any existing policy untouched.
            let api = self.policies(&ns);
            let attempt = match api.get_opt(&name).await {
                Ok(Some(cur)) => {
                    self.check_owned(&cur, &ns, &name)?;
                    let mut r = np.clone();
                    r.metadata.resource_version = cur.metadata.resource_version;
                    api.replace(&name, &PostParams::default(), &r)
                        .await
                        .map(|_| ())
                }
                _ => api.create(&PostParams::default(), &np).await.map(|_| ()),
            };
            match attempt {
                Err(e) if status_code(&e) == Some(422) => checks.push(RejectCheck {
                    policy: format!("{ns}/{name}"),
                    refused: true,
                    detail: e.to_string(),
                }),
                Err(e) => {
                    return Err(ClusterError::api(
                        format!("submitting policy {ns}/{name} that must be refused"),
                        e,
                    ))
                }
                Ok(()) => checks.push(RejectCheck {
                    policy: format!("{ns}/{name}"),
                    refused: false,
                    detail: "the API server accepted a policy that Kubernetes validation rejects"
                        .into(),
                }),
            }
        }
        Ok(Applied {
            accepted,
            rejects: checks,
        })
    }

    /// The topology as deployed (live addresses, original labels): the state before a
    /// scenario's first step.
    pub fn original_topology(&self) -> &Topology {
        &self.original
    }

    /// Back to the deployed state: none of our policies (the cluster's own ones stay), original
    /// labels.
    pub async fn reset(&mut self) -> Result<(), ClusterError> {
        for real in &self.namespaces {
            let api: Api<NetworkPolicy> = Api::namespaced(self.client.clone(), real);
            let list = api
                .list(&ListParams::default().labels(&run_selector(&self.run)))
                .await
                .map_err(|e| ClusterError::api(format!("listing policies in {real}"), e))?;
            for p in list {
                let name = p.metadata.name.unwrap_or_default();
                if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
                    if status_code(&e) != Some(404) {
                        return Err(ClusterError::api(
                            format!("deleting policy {real}/{name}"),
                            e,
                        ));
                    }
                }
            }
        }
        for pod in &self.original.pods {
            let now = self.topology.pod(&pod.id).map(|p| &p.labels);
            if now != Some(&pod.labels) {
                let edit = restoring(now.unwrap_or(&Labels::new()), &pod.labels);
                self.patch_pod_labels(&pod.id, &edit).await?;
            }
        }
        for ns in &self.original.namespaces {
            let now = self.topology.namespace(&ns.name).map(|n| &n.labels);
            if now != Some(&ns.labels) {
                let mut edit = restoring(now.unwrap_or(&Labels::new()), &ns.labels);
                // The API server owns the name label; it is never patched.
                edit.remove(crate::model::NAMESPACE_NAME_LABEL);
                self.patch_namespace_labels(&ns.name, &edit).await?;
            }
        }
        self.topology = self.original.clone();
        Ok(())
    }

    /// Merge-patches a pod's labels (`None` removes a key).
    async fn patch_pod_labels(&self, pod: &PodRef, edit: &LabelEdit) -> Result<(), ClusterError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), self.names.real(&pod.namespace));
        let patch = serde_json::json!({"metadata": {"labels": edit}});
        api.patch(&pod.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| ClusterError::api(format!("relabelling pod {pod}"), e))
    }

    /// Merge-patches a namespace's labels (`None` removes a key).
    async fn patch_namespace_labels(&self, ns: &str, edit: &LabelEdit) -> Result<(), ClusterError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let patch = serde_json::json!({"metadata": {"labels": edit}});
        api.patch(
            self.names.real(ns),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map(|_| ())
        .map_err(|e| ClusterError::api(format!("relabelling namespace {ns}"), e))
    }

    /// Deletes the fixture's namespaces (which cascades to everything in them).
    pub async fn teardown(&self) -> Result<(), ClusterError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let mut first = None;
        for real in &self.namespaces {
            if let Err(e) = api.delete(real, &DeleteParams::background()).await {
                if status_code(&e) != Some(404) && first.is_none() {
                    first = Some(ClusterError::api(format!("deleting namespace {real}"), e));
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// The probe spec for a cell, addressed as the cell says.
    fn spec(
        &self,
        id: String,
        cell: &ExpectedCell,
        node_ports: &NodePorts,
    ) -> Result<ProbeSpec, Unprobed> {
        let c = &cell.cell;
        let kind = ProbeKind::for_protocol(c.protocol);
        if c.to.is_external() {
            let e = self
                .topology
                .external(&c.to.name)
                .ok_or_else(|| Unprobed::Error(format!("no external endpoint {}", c.to)))?;
            let host = || {
                e.host
                    .clone()
                    .ok_or_else(|| Unprobed::Error(format!("{} has no name", c.to)))
            };
            return match c.via {
                Via::Address => {
                    let ip = e
                        .address
                        .ok_or_else(|| Unprobed::Error(format!("{} has no address", c.to)))?;
                    Ok(ProbeSpec::new(id, kind, sock(ip, c.port)))
                }
                Via::Name => Ok(ProbeSpec::new(id, kind, format!("{}:{}", host()?, c.port))),
                Via::Lookup => Ok(ProbeSpec::new(id, ProbeKind::Dns, host()?)),
                other => Err(Unprobed::Error(format!(
                    "{other} does not address an external endpoint"
                ))),
            };
        }
        let to = self
            .topology
            .pod(&c.to)
            .ok_or_else(|| Unprobed::Error(format!("no pod {}", c.to)))?;
        let service_ip = || {
            self.services
                .get(&c.to)
                .copied()
                .ok_or_else(|| Unprobed::Error(format!("no service for {}", c.to)))
        };
        let http = to.is_http(c.port, c.protocol);
        let mut host_header = None;
        let target = match c.via {
            Via::PodIp => sock(to.ip, c.port),
            Via::ServiceIp => sock(service_ip()?, c.port),
            Via::ServiceDns => format!(
                "{}.{}.svc.cluster.local:{}",
                c.to.name,
                self.names.real(&c.to.namespace),
                c.port
            ),
            Via::Gateway => {
                let g = self
                    .gateway
                    .as_ref()
                    .ok_or_else(|| Unprobed::Error("the profile config names no gateway".into()))?;
                host_header = Some(self.hosts.get(&c.to).cloned().ok_or_else(|| {
                    Unprobed::Error(format!("no route was created for {}", c.to))
                })?);
                sock(g.address, g.port)
            }
            Via::NodePort => match node_ports
                .get(&(c.to.clone(), c.port))
                .and_then(|v| v.first())
            {
                Some((ip, port)) => sock(*ip, *port),
                None => {
                    return Err(Unprobed::NotApplicable(format!(
                        "no NodePort Service exposes {} port {}: nothing to probe",
                        c.to, c.port
                    )))
                }
            },
            other => {
                return Err(Unprobed::Error(format!("{other} does not address a pod")));
            }
        };
        let mut spec = if http {
            ProbeSpec::new(id, ProbeKind::Http, format!("http://{target}/"))
        } else {
            ProbeSpec::new(id, kind, target)
        };
        spec.host = host_header;
        Ok(spec.expecting(c.to.to_string()))
    }

    /// NodePorts that lead to the cells' destinations: (pod, container port) -> (node address,
    /// node port). Empty unless some cell goes via `node-port`.
    async fn node_ports(&self, cells: &[(usize, &ExpectedCell)]) -> Result<NodePorts, String> {
        let wanted: BTreeSet<&PodRef> = cells
            .iter()
            .filter(|(_, c)| c.cell.via == Via::NodePort)
            .map(|(_, c)| &c.cell.to)
            .collect();
        let mut out = NodePorts::new();
        if wanted.is_empty() {
            return Ok(out);
        }
        // Each node's address as seen from outside: its ExternalIP, else its InternalIP. A
        // NodePort is probed on the node that runs the endpoint (with externalTrafficPolicy
        // Local, the only one that answers).
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(self.client.clone());
        let node_ips: BTreeMap<String, IpAddr> = nodes
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("listing nodes: {e}"))?
            .items
            .iter()
            .filter_map(|n| {
                let ip = n
                    .status
                    .iter()
                    .flat_map(|s| s.addresses.iter().flatten())
                    .filter(|a| a.type_ == "ExternalIP" || a.type_ == "InternalIP")
                    .min_by_key(|a| a.type_ != "ExternalIP")
                    .and_then(|a| a.address.parse::<IpAddr>().ok())?;
                Some((n.metadata.name.clone().unwrap_or_default(), ip))
            })
            .collect();
        let node_of = |pod: &PodRef| -> Result<IpAddr, String> {
            match self.nodes.get(pod) {
                Some(name) => node_ips
                    .get(name)
                    .copied()
                    .ok_or_else(|| format!("node {name} of {pod} has no address to probe")),
                None => node_ips
                    .values()
                    .next()
                    .copied()
                    .ok_or_else(|| "no node has an address to probe NodePorts on".to_string()),
            }
        };
        let namespaces: BTreeSet<&str> = wanted.iter().map(|p| p.namespace.as_str()).collect();
        for ns in namespaces {
            let real = self.names.real(ns);
            let api: Api<Service> = Api::namespaced(self.client.clone(), real);
            let services = api
                .list(&ListParams::default())
                .await
                .map_err(|e| format!("listing services in {real}: {e}"))?;
            for svc in services {
                let Some(spec) = svc.spec else { continue };
                let selector = spec.selector.unwrap_or_default();
                if selector.is_empty() {
                    continue;
                }
                for pod in wanted.iter().filter(|p| p.namespace == ns) {
                    let Some(live) = self.topology.pod(pod) else {
                        continue;
                    };
                    let node_ip = node_of(pod)?;
                    let labels = manifest::pod_labels(live, &self.run);
                    if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                        continue;
                    }
                    for port in spec.ports.iter().flatten() {
                        let Some(node_port) = port.node_port.and_then(|n| u16::try_from(n).ok())
                        else {
                            continue;
                        };
                        let proto = port.protocol.as_deref().unwrap_or("TCP").parse().ok();
                        let target = match &port.target_port {
                            Some(
                                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n),
                            ) => u16::try_from(*n).ok(),
                            Some(
                                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
                                    name,
                                ),
                            ) => proto.and_then(|p| live.named_port(name, p)),
                            None => u16::try_from(port.port).ok(),
                        };
                        if let Some(t) = target {
                            out.entry(((*pod).clone(), t))
                                .or_default()
                                .push((node_ip, node_port));
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

type LabelEdit = BTreeMap<String, Option<String>>;

/// The merge-patch edit that turns labels `now` into `want`: keys only in `now` are removed.
fn restoring(now: &Labels, want: &Labels) -> LabelEdit {
    let mut edit: LabelEdit = now
        .keys()
        .filter(|k| !want.contains_key(*k))
        .map(|k| (k.clone(), None))
        .collect();
    edit.extend(want.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));
    edit
}

/// Time an exec may take beyond its probes' own timeouts (pod exec start-up, streaming).
const EXEC_SLACK_MS: u64 = 10_000;

fn sock(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

fn error_result(id: String, detail: String) -> ProbeResult {
    ProbeResult {
        id,
        outcome: Outcome::Error,
        detail,
        elapsed_ms: 0,
        peer_identity: None,
        addresses: Vec::new(),
        start_ms: None,
        seq: None,
    }
}

/// A probe the cluster stopped (a restart, a broken exec, an agent that would not start, an API
/// call that failed): no evidence, retried, and an environment problem if it persists.
fn interrupted(id: String, detail: String) -> ProbeResult {
    ProbeResult {
        outcome: Outcome::Interrupted,
        ..error_result(id, detail)
    }
}

/// Where the outside vantage's NodePorts lead: (pod, container port) -> node address and port.
type NodePorts = BTreeMap<(PodRef, u16), Vec<(IpAddr, u16)>>;

/// Why a cell was not probed.
enum Unprobed {
    /// Something is wrong (retried, never a verdict).
    Error(String),
    /// The path does not exist (e.g. no NodePort): reported, not judged.
    NotApplicable(String),
}

fn unprobed_result(id: String, u: Unprobed) -> ProbeResult {
    match u {
        Unprobed::Error(e) => error_result(id, e),
        Unprobed::NotApplicable(why) => ProbeResult {
            outcome: Outcome::Unsupported,
            ..error_result(id, why)
        },
    }
}

/// A name that does not resolve cannot be reached: for paths to external endpoints by name,
/// an answered "no such name" is how DNS-level egress control denies, so it counts as a deny
/// (rejected). A DNS server that does not answer stays `dropped`; other failures stay errors.
///
/// Through the gateway, an answer that is not the app's (a 404 for an unknown host, a 502 when
/// the gateway cannot reach the app, another app) means the app is not reachable that way: a
/// deny, with the gateway's answer as the detail.
fn judge_result(cell: &ExpectedCell, mut r: ProbeResult) -> ProbeResult {
    if cell.cell.to.is_external()
        && matches!(cell.cell.via, Via::Name | Via::Lookup)
        && r.outcome == Outcome::DnsFailed
    {
        r.outcome = Outcome::Rejected;
        r.detail = format!("the name does not resolve: {}", r.detail);
    }
    if cell.cell.via == Via::Gateway && r.outcome == Outcome::WrongPeer {
        r.outcome = Outcome::Rejected;
        r.detail = format!("the gateway answered, but not with the app: {}", r.detail);
    }
    r
}

/// The probes of one source pod.
struct SourceBatch {
    from: PodRef,
    batch: ProbeBatch,
    /// Longest the agent may take, start-up and streaming included.
    budget: Duration,
}

impl Fixture {
    /// One batch per source pod for `cells` (a series when `series` is given), and results for
    /// the cells that cannot be probed at all.
    async fn batches(
        &self,
        cells: &[(usize, &ExpectedCell)],
        series: Option<&SeriesPlan>,
    ) -> (Vec<SourceBatch>, Vec<(usize, Probed)>) {
        let mut by_source: BTreeMap<&PodRef, Vec<ProbeSpec>> = BTreeMap::new();
        let mut unprobed = Vec::new();
        let node_ports = match self.node_ports(cells).await {
            Ok(n) => n,
            Err(e) => {
                let all = cells
                    .iter()
                    .map(|(i, _)| (*i, Probed::now(interrupted(i.to_string(), e.clone()))))
                    .collect();
                return (Vec::new(), all);
            }
        };
        for (i, c) in cells {
            if c.cell.from.is_outside() && self.outside.is_none() {
                let why = "no vantage point outside the cluster (profile config outside.vantage: \
                           none): not probed";
                let r = unprobed_result(i.to_string(), Unprobed::NotApplicable(why.into()));
                unprobed.push((*i, Probed::now(r)));
                continue;
            }
            match self.spec(i.to_string(), c, &node_ports) {
                Ok(mut s) => {
                    if series.is_some() {
                        s.expect = Some(c.verdict);
                    }
                    by_source.entry(&c.cell.from).or_default().push(s)
                }
                Err(u) => unprobed.push((*i, Probed::now(unprobed_result(i.to_string(), u)))),
            }
        }
        let timeout_ms = self.probe_timeout.as_millis() as u64;
        let batches = by_source
            .into_iter()
            .map(|(from, specs)| {
                let (mut batch, budget) = match series {
                    Some(plan) => {
                        let left = plan.deadline.saturating_duration_since(Instant::now());
                        let s = Series {
                            spacing_ms: plan.spacing.as_millis() as u64,
                            window_ms: plan.window.as_millis() as u64,
                            deadline_ms: (left.as_millis() as u64).max(1),
                            deny_rule: plan.deny_rule,
                        };
                        let budget = left + Duration::from_millis(timeout_ms + EXEC_SLACK_MS);
                        (ProbeBatch::series(specs, s), budget)
                    }
                    None => {
                        let batch = ProbeBatch::new(specs);
                        let waves = batch.probes.len().div_ceil(batch.concurrency.max(1)) as u64;
                        let budget = Duration::from_millis(timeout_ms * waves + EXEC_SLACK_MS);
                        (batch, budget)
                    }
                };
                batch.timeout_ms = timeout_ms;
                SourceBatch {
                    from: from.clone(),
                    batch,
                    budget,
                }
            })
            .collect();
        (batches, unprobed)
    }

    /// One batch per source pod, once.
    async fn probe_once(
        &self,
        cells: &[(usize, &ExpectedCell)],
        by_index: &BTreeMap<usize, ExpectedCell>,
    ) -> Vec<(usize, Probed)> {
        let (batches, mut out) = self.batches(cells, None).await;
        let runs = batches.into_iter().map(|b| {
            run_source(
                self.agent_opener(&b.from),
                None,
                b,
                None,
                self.tally.clone(),
            )
        });
        for results in futures::future::join_all(runs).await {
            out.extend(to_cells(by_index, results));
        }
        out
    }

    /// How to start `netassay agent probe` for a source: over exec in its pod, or on this
    /// machine for the outside vantage.
    fn agent_opener(&self, from: &PodRef) -> AgentOpener {
        AgentOpener {
            client: self.client.clone(),
            namespace: self.names.real(&from.namespace).to_string(),
            from: from.clone(),
            outside: self.outside.clone(),
        }
    }
}

/// Starts agents for one source, as often as needed.
#[derive(Clone)]
struct AgentOpener {
    client: kube::Client,
    namespace: String,
    from: PodRef,
    outside: Option<Vec<String>>,
}

impl AgentOpener {
    async fn open(&self) -> Result<AgentRun, String> {
        if self.from.is_outside() {
            let argv = self
                .outside
                .as_deref()
                .ok_or("no vantage point outside the cluster")?;
            AgentRun::local(argv, "outside the cluster".into())
        } else {
            AgentRun::exec(
                self.client.clone(),
                &self.namespace,
                &self.from.name,
                format!("in {}", self.from),
            )
            .await
        }
    }
}

/// Restart counts of a fixture's pods as last seen (DESIGN §6). A pod restarted while a round
/// probed it (an OOM kill, an eviction: its server was down for a moment) says nothing about
/// policy in that round, so the cells that involved it are probed again.
#[derive(Clone)]
struct RestartWatch {
    client: kube::Client,
    run: String,
    /// (real, logical) namespace names.
    namespaces: Vec<(String, String)>,
    seen: Arc<std::sync::Mutex<BTreeMap<PodRef, i32>>>,
    tally: FixtureTally,
}

/// How often one round re-probes after restarts before it leaves the rest to the step's rounds.
const MAX_RESTART_REPROBES: usize = 3;
/// How long a restarted pod may take to be ready again.
const RESTART_READY_WAIT: Duration = Duration::from_secs(30);
/// How long a restarted pod must stay Ready, with no further restart, before it is probed again.
const RESTART_SETTLE: Duration = Duration::from_secs(1);

impl RestartWatch {
    /// Every pod of the fixture with the sum of its containers' restart counts and whether it
    /// is Ready.
    async fn look(&self) -> Result<Vec<(PodRef, i32, bool)>, String> {
        let mut out = Vec::new();
        for (real, logical) in &self.namespaces {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), real);
            let pods = api
                .list(&ListParams::default().labels(&format!("{RUN_LABEL}={}", self.run)))
                .await
                .map_err(|e| format!("listing pods in {real} to check for restarts: {e}"))?;
            for p in pods {
                let status = p.status.unwrap_or_default();
                let restarts = status
                    .container_statuses
                    .iter()
                    .flatten()
                    .map(|c| c.restart_count)
                    .sum();
                let ready = status
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                let name = p.metadata.name.unwrap_or_default();
                out.push((PodRef::new(logical.clone(), name), restarts, ready));
            }
        }
        Ok(out)
    }

    /// Pods whose restart count went up since the last look (the first look only records).
    async fn restarted(&self) -> Result<BTreeSet<PodRef>, String> {
        let now = self.look().await?;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let first = seen.is_empty();
        let mut up = BTreeSet::new();
        for (pod, restarts, _) in now {
            let before = seen.insert(pod.clone(), restarts);
            if !first && before.is_some_and(|b| restarts > b) {
                up.insert(pod);
            }
        }
        if !up.is_empty() {
            self.tally.pods_restarted(up.len());
        }
        Ok(up)
    }

    /// Waits until every pod of `pods` is Ready again and has stayed so, without another
    /// restart, for [`RESTART_SETTLE`] (or the wait is over): a pod that restarts again at once
    /// would only interrupt the probes that follow.
    async fn ready_again(&self, pods: &BTreeSet<PodRef>) {
        let deadline = Instant::now() + RESTART_READY_WAIT;
        // Since when the pods have been Ready, with which restart counts.
        let mut steady: Option<(Instant, Vec<i32>)> = None;
        while Instant::now() < deadline {
            if let Ok(now) = self.look().await {
                let ours: Vec<_> = now
                    .into_iter()
                    .filter(|(p, _, _)| pods.contains(p))
                    .collect();
                let counts: Vec<i32> = ours.iter().map(|(_, r, _)| *r).collect();
                if ours.iter().all(|(_, _, ready)| *ready) {
                    match &steady {
                        Some((since, was)) if *was == counts => {
                            if since.elapsed() >= RESTART_SETTLE {
                                return;
                            }
                        }
                        _ => steady = Some((Instant::now(), counts)),
                    }
                } else {
                    steady = None;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The cells (indices) of `cells` that involve one of `pods`, as source or destination.
fn involving(cells: &BTreeMap<usize, ExpectedCell>, pods: &BTreeSet<PodRef>) -> Vec<usize> {
    cells
        .iter()
        .filter(|(_, c)| pods.contains(&c.cell.from) || pods.contains(&c.cell.to))
        .map(|(i, _)| *i)
        .collect()
}

/// For a round or series that cannot re-probe by itself: the cells that involved a restarted
/// pod get an error result after what they saw, so the step's rounds probe them again; what a
/// restart made them see is never their verdict.
async fn mark_restarted(
    watch: &RestartWatch,
    cells: &BTreeMap<usize, ExpectedCell>,
    out: &mut Vec<(usize, Probed)>,
) {
    let (pods, why) = match watch.restarted().await {
        Ok(p) if p.is_empty() => return,
        Ok(p) => {
            let names: Vec<String> = p.iter().map(PodRef::to_string).collect();
            let why = format!(
                "pod {} restarted while this was probed: probed again",
                names.join(", ")
            );
            (p, why)
        }
        // Not knowing is not "no restart": every cell is probed again.
        Err(e) => (cells.values().map(|c| c.cell.from.clone()).collect(), e),
    };
    for i in involving(cells, &pods) {
        out.push((i, Probed::now(interrupted(i.to_string(), why.clone()))));
    }
}

/// How often a probe batch whose exec stream broke is run again.
const MAX_EXEC_REPLAYS: u32 = 3;

/// Runs one source's batch to its end within its budget. An agent whose stream breaks (an exec
/// reset, an exec the API server refused) is replayed: a round's partial results are dropped and
/// the whole batch runs again, so every result comes from one consistent run; a series keeps
/// what it saw (each probe is timed on its own) and goes on until its deadline. An agent that
/// never finishes (a stuck kubelet) must not hang the run: its probes become errors, which are
/// retried and never count as verdicts.
async fn run_source(
    opener: AgentOpener,
    mut first: Option<Result<AgentRun, String>>,
    mut b: SourceBatch,
    mut started: Option<tokio::sync::watch::Sender<bool>>,
    tally: FixtureTally,
) -> Vec<Probed> {
    let wanted: BTreeSet<String> = b.batch.probes.iter().map(|s| s.id.clone()).collect();
    let budget = b.budget;
    let series_end = b
        .batch
        .series
        .map(|s| Instant::now() + Duration::from_millis(s.deadline_ms));
    let mut kept: Vec<Probed> = Vec::new();
    let mut replays = 0;
    let ran = loop {
        let agent = match first.take() {
            Some(a) => a,
            None => opener.open().await,
        };
        let batch = &b.batch;
        let tx = started.take();
        let ran = tokio::time::timeout(budget, async { agent?.run(batch, tx).await })
            .await
            .map_err(|_| format!("agent probe in {} did not finish within {budget:?}", b.from));
        let broken = match &ran {
            Ok(Ok(r)) => r.cut.is_some(),
            Ok(Err(_)) => true,
            // Stuck rather than broken: the rounds retry it.
            Err(_) => false,
        };
        let left = series_end.map(|end| end.saturating_duration_since(Instant::now()));
        if !broken || replays >= MAX_EXEC_REPLAYS || left.is_some_and(|l| l.is_zero()) {
            break ran.and_then(|r| r);
        }
        replays += 1;
        tally.exec_replayed();
        if let (Ok(Ok(partial)), Some(left)) = (ran, left) {
            kept.extend(partial.timed());
            if let Some(series) = b.batch.series.as_mut() {
                series.deadline_ms = (left.as_millis() as u64).max(1);
            }
        }
        tokio::time::sleep(crate::cluster::retry::backoff(replays)).await;
    };
    // What did not come, from this run or a replay, is an error: never a verdict.
    // An agent that ended early (its stream broke, it died) or never ran was stopped by the
    // cluster; one that reached its summary without a probe's result is at fault itself.
    let missing: fn(String, String) -> ProbeResult;
    let why_missing = match ran {
        Ok(ran) => {
            let cut = ran.cut.clone();
            kept.extend(ran.timed());
            match cut {
                Some(why) => {
                    missing = interrupted;
                    format!("the agent's run broke (replayed {replays} time(s)): {why}")
                }
                None => {
                    missing = error_result;
                    "the agent gave no result for this probe".to_string()
                }
            }
        }
        Err(e) => {
            missing = interrupted;
            e
        }
    };
    let seen: BTreeSet<String> = kept.iter().map(|p| p.result.id.clone()).collect();
    let mut got: Vec<Probed> = kept
        .into_iter()
        .filter(|p| wanted.contains(&p.result.id))
        .collect();
    got.extend(
        wanted
            .into_iter()
            .filter(|id| !seen.contains(id))
            .map(|id| Probed::now(missing(id, why_missing.clone()))),
    );
    got
}

/// Each result back to its cell index, read the way its path is judged.
fn to_cells(
    cells: &BTreeMap<usize, ExpectedCell>,
    results: impl IntoIterator<Item = Probed>,
) -> Vec<(usize, Probed)> {
    results
        .into_iter()
        .filter_map(|mut p| {
            let i = p.result.id.parse::<usize>().ok()?;
            if let Some(c) = cells.get(&i) {
                p.result = judge_result(c, p.result);
            }
            Some((i, p))
        })
        .collect()
}

/// A series under way in one agent per source pod; dropping it stops them.
pub struct FixtureSeries {
    runs: Vec<tokio::task::JoinHandle<Vec<Probed>>>,
    cells: BTreeMap<usize, ExpectedCell>,
    unprobed: Vec<(usize, Probed)>,
    restarts: Option<RestartWatch>,
}

impl Drop for FixtureSeries {
    fn drop(&mut self) {
        for r in &self.runs {
            r.abort();
        }
    }
}

impl RunningSeries for FixtureSeries {
    async fn finish(mut self) -> Vec<(usize, Probed)> {
        let mut out = std::mem::take(&mut self.unprobed);
        for run in std::mem::take(&mut self.runs) {
            let results = run.await.unwrap_or_default();
            out.extend(to_cells(&self.cells, results));
        }
        if let Some(watch) = &self.restarts {
            mark_restarted(watch, &self.cells, &mut out).await;
        }
        out
    }
}

/// A round whose agents are started (one per source pod) and wait for their batch.
pub struct FixtureRound {
    agents: Vec<(AgentOpener, SourceBatch, Result<AgentRun, String>)>,
    cells: BTreeMap<usize, ExpectedCell>,
    unprobed: Vec<(usize, Probed)>,
    tally: FixtureTally,
    restarts: Option<RestartWatch>,
}

impl ReadyRound for FixtureRound {
    async fn run(self) -> Vec<(usize, Probed)> {
        let mut out = self.unprobed;
        let tally = self.tally;
        let runs = self
            .agents
            .into_iter()
            .map(|(opener, b, agent)| run_source(opener, Some(agent), b, None, tally.clone()));
        for results in futures::future::join_all(runs).await {
            out.extend(to_cells(&self.cells, results));
        }
        if let Some(watch) = &self.restarts {
            mark_restarted(watch, &self.cells, &mut out).await;
        }
        out
    }
}

/// How long a series may take to start (agents exec'd and their clocks running) before the step
/// goes ahead anyway; also how long a ready round's agents may take to start.
const SERIES_START_WAIT: Duration = Duration::from_secs(10);

impl Prober for Fixture {
    type Series = FixtureSeries;
    type Round = FixtureRound;

    async fn ready_round(&self, cells: &[(usize, &ExpectedCell)]) -> FixtureRound {
        let (batches, unprobed) = self.batches(cells, None).await;
        let opening = batches.into_iter().map(|b| {
            let opener = self.agent_opener(&b.from);
            async move {
                let agent = tokio::time::timeout(SERIES_START_WAIT, opener.open())
                    .await
                    .unwrap_or_else(|_| {
                        Err(format!("agent probe in {} did not start in time", b.from))
                    });
                (opener, b, agent)
            }
        });
        FixtureRound {
            agents: futures::future::join_all(opening).await,
            cells: cells.iter().map(|(i, c)| (*i, (*c).clone())).collect(),
            unprobed,
            tally: self.tally.clone(),
            restarts: self.restarts.clone(),
        }
    }

    async fn probe(&self, cells: &[(usize, &ExpectedCell)]) -> Vec<(usize, Probed)> {
        let by_index: BTreeMap<usize, ExpectedCell> =
            cells.iter().map(|(i, c)| (*i, (*c).clone())).collect();
        let mut out = self.probe_once(cells, &by_index).await;
        let Some(watch) = &self.restarts else {
            return out;
        };
        // A pod restarted meanwhile: what its cells saw is no evidence. They are probed again,
        // once it is ready, a few times at most; then the step's rounds take over.
        for _ in 0..MAX_RESTART_REPROBES {
            let pods = match watch.restarted().await {
                Ok(p) if p.is_empty() => return out,
                Ok(p) => p,
                Err(e) => {
                    for (i, _) in cells {
                        out.push((*i, Probed::now(interrupted(i.to_string(), e.clone()))));
                    }
                    return out;
                }
            };
            watch.ready_again(&pods).await;
            let again: BTreeSet<usize> = involving(&by_index, &pods).into_iter().collect();
            let cells_again: Vec<(usize, &ExpectedCell)> = cells
                .iter()
                .filter(|(i, _)| again.contains(i))
                .copied()
                .collect();
            out.retain(|(i, _)| !again.contains(i));
            out.extend(self.probe_once(&cells_again, &by_index).await);
        }
        mark_restarted(watch, &by_index, &mut out).await;
        out
    }

    async fn start_series(
        &self,
        cells: &[(usize, &ExpectedCell)],
        plan: &SeriesPlan,
    ) -> FixtureSeries {
        let (batches, unprobed) = self.batches(cells, Some(plan)).await;
        let mut started = Vec::new();
        let runs = batches
            .into_iter()
            .map(|b| {
                let (tx, mut rx) = tokio::sync::watch::channel(false);
                started.push(async move {
                    // Err: the sender is gone, the agent failed before its clock started.
                    let _ = rx.wait_for(|s| *s).await;
                });
                tokio::spawn(run_source(
                    self.agent_opener(&b.from),
                    None,
                    b,
                    Some(tx),
                    self.tally.clone(),
                ))
            })
            .collect();
        // Every agent's clock runs (or it failed) before the step goes on.
        let _ = tokio::time::timeout(SERIES_START_WAIT, futures::future::join_all(started)).await;
        FixtureSeries {
            runs,
            cells: cells.iter().map(|(i, c)| (*i, (*c).clone())).collect(),
            unprobed,
            restarts: self.restarts.clone(),
        }
    }
}

/// Gateway API HTTPRoutes (no k8s-openapi type: a dynamic object).
fn http_route_resource() -> ApiResource {
    ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "HTTPRoute".into(),
        plural: "httproutes".into(),
    }
}

/// Label selector for everything of one run.
pub fn run_selector(run: &str) -> String {
    format!(
        "{}={},{RUN_LABEL}={run}",
        manifest::MANAGED_BY,
        manifest::MANAGER
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expected(from: &str, to: &str, via: Via) -> ExpectedCell {
        ExpectedCell {
            cell: crate::scenario::Cell {
                from: from.parse().expect("from"),
                to: to.parse().expect("to"),
                port: 80,
                port_name: None,
                protocol: crate::model::Protocol::Tcp,
                via,
                loopback: false,
            },
            verdict: crate::model::Verdict::Deny,
            ip_dependent: false,
            source: crate::scenario::plan::Source::Intent,
        }
    }

    fn result(outcome: Outcome) -> ProbeResult {
        ProbeResult {
            outcome,
            ..error_result("1".into(), "detail".into())
        }
    }

    // Only definitive answers become verdicts: "no such name" for an external reached by name
    // or looked up, and the gateway answering without the app; everything else is unchanged.
    #[test]
    fn name_and_gateway_answers_are_judged_and_nothing_else_is_rewritten() {
        let cases = [
            (
                "p/a",
                "external/x",
                Via::Name,
                Outcome::DnsFailed,
                Outcome::Rejected,
            ),
            (
                "p/a",
                "external/x",
                Via::Lookup,
                Outcome::DnsFailed,
                Outcome::Rejected,
            ),
            (
                "p/a",
                "external/x",
                Via::Name,
                Outcome::Error,
                Outcome::Error,
            ),
            (
                "p/a",
                "external/x",
                Via::Lookup,
                Outcome::Dropped,
                Outcome::Dropped,
            ),
            (
                "p/a",
                "y/b",
                Via::ServiceDns,
                Outcome::DnsFailed,
                Outcome::DnsFailed,
            ),
            (
                "outside/vantage",
                "p/web",
                Via::Gateway,
                Outcome::WrongPeer,
                Outcome::Rejected,
            ),
            (
                "outside/vantage",
                "p/web",
                Via::PodIp,
                Outcome::WrongPeer,
                Outcome::WrongPeer,
            ),
            (
                "outside/vantage",
                "p/web",
                Via::Gateway,
                Outcome::Connected,
                Outcome::Connected,
            ),
        ];
        for (from, to, via, got, want) in cases {
            let r = judge_result(&expected(from, to, via), result(got));
            assert_eq!(r.outcome, want, "{from} -> {to} via {via}: {got}");
        }
    }

    #[test]
    fn restoring_removes_added_keys_and_resets_changed_ones() {
        let now = labels(&[("pod", "c"), ("extra", "1"), ("kept", "k")]);
        let want = labels(&[("pod", "b"), ("kept", "k"), ("gone", "g")]);
        let edit = restoring(&now, &want);
        let mut after = now.clone();
        crate::model::edit_labels(&mut after, &edit);
        assert_eq!(after, want);
        assert_eq!(edit.get("extra"), Some(&None));
    }
}
