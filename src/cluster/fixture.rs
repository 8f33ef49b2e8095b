//! A deployed topology: namespaces, probe pods and services of one run, with live addresses; it
//! applies steps, probes cells in batches (one exec per source pod) and tears itself down.

use super::manifest::{self, FixtureOptions, RUN_LABEL};
use super::{status_code, ClusterError};
use crate::model::{Labels, PodRef, Topology, Via};
use crate::probe::{AgentLine, Outcome, ProbeBatch, ProbeKind, ProbeResult, ProbeSpec};
use crate::runner::Prober;
use crate::scenario::policies::{resolve_policy, NamespaceMap};
use crate::scenario::{ExpectedCell, Step};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{AttachParams, DeleteParams, ListParams, Patch, PatchParams, PostParams};
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
            api.create(
                &PostParams::default(),
                &manifest::pod(&real, pod, run, opts),
            )
            .await
            .map_err(|e| ClusterError::api(format!("creating pod {real}/{}", pod.id.name), e))?;
            if services {
                let sapi: Api<Service> = Api::namespaced(client.clone(), &real);
                sapi.create(&PostParams::default(), &manifest::service(&real, pod, run))
                    .await
                    .map_err(|e| {
                        ClusterError::api(format!("creating service {real}/{}", pod.id.name), e)
                    })?;
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
                        ready.insert((real.clone(), name), ip);
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
                    if let Some(Some(ip)) = ready.get(&key) {
                        pod.ip = *ip;
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

    fn policies(&self, ns_logical: &str) -> Api<NetworkPolicy> {
        Api::namespaced(self.client.clone(), self.names.real(ns_logical))
    }

    /// Creates a policy, or replaces it when one of that name exists.
    async fn apply_policy(&self, np: &NetworkPolicy) -> Result<(), ClusterError> {
        let real = self.names.rewrite_policy(np);
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
                Ok(np) => self.names.rewrite_policy(&np),
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

    /// Back to the deployed state: no policies, original labels.
    pub async fn reset(&mut self) -> Result<(), ClusterError> {
        for real in &self.namespaces {
            let api: Api<NetworkPolicy> = Api::namespaced(self.client.clone(), real);
            let list = api
                .list(&ListParams::default())
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
    fn spec(&self, id: String, cell: &ExpectedCell) -> Result<ProbeSpec, String> {
        let c = &cell.cell;
        let to = self
            .topology
            .pod(&c.to)
            .ok_or_else(|| format!("no pod {}", c.to))?;
        let target = match c.via {
            Via::PodIp => sock(to.ip, c.port),
            Via::ServiceIp => {
                let ip = self
                    .services
                    .get(&c.to)
                    .ok_or_else(|| format!("no service for {}", c.to))?;
                sock(*ip, c.port)
            }
            Via::ServiceDns => format!(
                "{}.{}.svc.cluster.local:{}",
                c.to.name,
                self.names.real(&c.to.namespace),
                c.port
            ),
        };
        Ok(
            ProbeSpec::new(id, ProbeKind::for_protocol(c.protocol), target)
                .expecting(c.to.to_string()),
        )
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
        let read_out = async move {
            let mut results = Vec::new();
            let mut finished = false;
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                match AgentLine::parse(&l) {
                    Ok(AgentLine::Result(r)) => results.push(r),
                    Ok(AgentLine::Summary { .. }) => {
                        finished = true;
                        break;
                    }
                    Err(_) => {}
                }
            }
            (results, finished)
        };
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

impl Prober for Fixture {
    async fn probe(&self, cells: &[(usize, &ExpectedCell)]) -> Vec<(usize, ProbeResult)> {
        let mut by_source: BTreeMap<&PodRef, Vec<ProbeSpec>> = BTreeMap::new();
        let mut out = Vec::new();
        for (i, c) in cells {
            match self.spec(i.to_string(), c) {
                Ok(s) => by_source.entry(&c.cell.from).or_default().push(s),
                Err(e) => out.push((*i, error_result(i.to_string(), e))),
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
            let ran = match tokio::time::timeout(budget, self.exec_batch(from, &batch)).await {
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
        for results in futures::future::join_all(runs).await {
            for r in results {
                if let Ok(i) = r.id.parse::<usize>() {
                    out.push((i, r));
                }
            }
        }
        out
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
