//! A deployed topology: namespaces, probe pods and services of one run, with live addresses; it
//! applies steps, probes cells in batches (one exec per source pod) and tears itself down.

use super::manifest::{self, FixtureOptions, RUN_LABEL};
use super::{status_code, ClusterError};
use crate::model::{Labels, PodRef, Topology, Via};
use crate::probe::{AgentLine, Outcome, ProbeBatch, ProbeKind, ProbeResult, ProbeSpec};
use crate::runner::Prober;
use crate::scenario::policies::{resolve_policy, NamespaceMap};
use crate::scenario::profile::{Gateway, RouteKind};
use crate::scenario::{ExpectedCell, Step};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{
    ApiResource, AttachParams, DeleteParams, DynamicObject, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::Api;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// A live topology of one run.
pub struct Fixture {
    client: kube::Client,
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
            client: client.clone(),
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

    /// Applies one step: delete, apply, label, then the `reject` checks. Returns the reject checks.
    pub async fn apply_step(&mut self, step: &Step) -> Result<Vec<RejectCheck>, ClusterError> {
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
        Ok(checks)
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

    /// Runs one batch from one source pod through `netassay agent probe`.
    async fn exec_batch(
        &self,
        from: &PodRef,
        batch: &ProbeBatch,
    ) -> Result<Vec<ProbeResult>, String> {
        let real = self.names.real(&from.namespace).to_string();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &real);
        let ap = AttachParams::default()
            .stdin(true)
            .stdout(true)
            .stderr(true);
        let mut proc = api
            .exec(&from.name, ["netassay", "agent", "probe"], &ap)
            .await
            .map_err(|e| format!("exec in {from}: {e}"))?;
        let mut stdin = proc.stdin().ok_or("exec gave no stdin")?;
        let stdout = proc.stdout().ok_or("exec gave no stdout")?;
        let mut stderr = proc.stderr().ok_or("exec gave no stderr")?;
        let status = proc.take_status();
        let line = batch.to_json_line();
        // stdin stays open: the agent does not wait for EOF, and closing it races with the end
        // of the session (kube-rs then never ends stdout), so the end is the summary line.
        let write = async {
            stdin.write_all(line.as_bytes()).await?;
            stdin.write_all(b"\n").await?;
            stdin.flush().await
        };
        let read_out = read_results(stdout);
        // stderr is read on the side (its pipe is small) and only consulted on failure.
        let read_err = tokio::spawn(async move {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s).await;
            s
        });
        let (w, (results, finished)) = tokio::join!(write, read_out);
        drop(stdin);
        if let Err(e) = w {
            if results.is_empty() {
                return Err(format!("writing the batch to {from}: {e}"));
            }
        }
        if finished {
            return Ok(results);
        }
        // No summary: the agent died or could not start. Say why, from its status and stderr.
        let st = match status {
            Some(s) => tokio::time::timeout(Duration::from_secs(1), s)
                .await
                .ok()
                .flatten(),
            None => None,
        };
        let err = tokio::time::timeout(Duration::from_millis(500), read_err)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        if results.is_empty() {
            let why = st
                .and_then(|s| s.message)
                .unwrap_or_else(|| "no summary line".into());
            return Err(format!(
                "agent probe in {from} failed: {why} {}",
                err.trim()
            ));
        }
        Ok(results)
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

impl Fixture {
    /// Runs one batch outside the cluster: the agent as a local process under the vantage's
    /// command prefix.
    async fn exec_outside(&self, batch: &ProbeBatch) -> Result<Vec<ProbeResult>, String> {
        let argv = self
            .outside
            .as_ref()
            .ok_or("no vantage point outside the cluster")?;
        let (program, rest) = argv.split_first().ok_or("empty outside command")?;
        let mut child = tokio::process::Command::new(program)
            .args(rest)
            .args(["agent", "probe"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting the outside prober {}: {e}", argv.join(" ")))?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut stderr = child.stderr.take().ok_or("no stderr")?;
        let line = batch.to_json_line();
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| format!("writing the batch to the outside prober: {e}"))?;
        let read_err = tokio::spawn(async move {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s).await;
            s
        });
        let (results, finished) = read_results(stdout).await;
        drop(stdin);
        if finished {
            return Ok(results);
        }
        let _ = child.kill().await;
        let err = tokio::time::timeout(Duration::from_millis(500), read_err)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        Err(format!("the outside prober ended early: {}", err.trim()))
    }
}

/// Reads an agent's result lines up to its summary; `true` when the summary came.
async fn read_results(stdout: impl tokio::io::AsyncRead + Unpin) -> (Vec<ProbeResult>, bool) {
    let mut results = Vec::new();
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(l)) = lines.next_line().await {
        match AgentLine::parse(&l) {
            Ok(AgentLine::Result(r)) => results.push(r),
            Ok(AgentLine::Summary { .. }) => return (results, true),
            Err(_) => {}
        }
    }
    (results, false)
}

impl Prober for Fixture {
    async fn probe(&self, cells: &[(usize, &ExpectedCell)]) -> Vec<(usize, ProbeResult)> {
        let mut by_source: BTreeMap<&PodRef, Vec<ProbeSpec>> = BTreeMap::new();
        let mut out = Vec::new();
        let node_ports = match self.node_ports(cells).await {
            Ok(n) => n,
            Err(e) => {
                return cells
                    .iter()
                    .map(|(i, _)| (*i, error_result(i.to_string(), e.clone())))
                    .collect()
            }
        };
        for (i, c) in cells {
            if c.cell.from.is_outside() && self.outside.is_none() {
                let why = "no vantage point outside the cluster (profile config outside.vantage: \
                           none): not probed";
                out.push((
                    *i,
                    unprobed_result(i.to_string(), Unprobed::NotApplicable(why.into())),
                ));
                continue;
            }
            match self.spec(i.to_string(), c, &node_ports) {
                Ok(s) => by_source.entry(&c.cell.from).or_default().push(s),
                Err(u) => out.push((*i, unprobed_result(i.to_string(), u))),
            }
        }
        let timeout_ms = self.probe_timeout.as_millis() as u64;
        let runs = by_source.into_iter().map(|(from, specs)| async move {
            let wanted: BTreeSet<String> = specs.iter().map(|s| s.id.clone()).collect();
            let mut batch = ProbeBatch::new(specs);
            batch.timeout_ms = timeout_ms;
            // An exec that never finishes (a lost stream, a stuck kubelet) must not hang the run:
            // its probes become errors, which are retried and never count as verdicts.
            let waves = batch.probes.len().div_ceil(batch.concurrency.max(1)) as u64;
            let budget = Duration::from_millis(timeout_ms * waves + EXEC_SLACK_MS);
            let exec = async {
                if from.is_outside() {
                    self.exec_outside(&batch).await
                } else {
                    self.exec_batch(from, &batch).await
                }
            };
            let ran = match tokio::time::timeout(budget, exec).await {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "exec of agent probe in {from} did not finish within {budget:?}"
                )),
            };
            match ran {
                Ok(results) => {
                    let mut got: Vec<ProbeResult> = results
                        .into_iter()
                        .filter(|r| wanted.contains(&r.id))
                        .collect();
                    let seen: BTreeSet<String> = got.iter().map(|r| r.id.clone()).collect();
                    for missing in wanted.difference(&seen) {
                        got.push(error_result(
                            missing.clone(),
                            "the agent gave no result for this probe".into(),
                        ));
                    }
                    got
                }
                Err(e) => wanted
                    .into_iter()
                    .map(|id| error_result(id, e.clone()))
                    .collect(),
            }
        });
        let by_index: BTreeMap<usize, &ExpectedCell> =
            cells.iter().map(|(i, c)| (*i, *c)).collect();
        for results in futures::future::join_all(runs).await {
            for r in results {
                if let Ok(i) = r.id.parse::<usize>() {
                    let r = match by_index.get(&i) {
                        Some(c) => judge_result(c, r),
                        None => r,
                    };
                    out.push((i, r));
                }
            }
        }
        out
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
