//! Running scenarios on fixtures: a pool of deployed topologies reused across scenarios with the
//! same topology (reset and re-checked with a baseline between them), at most `parallel` at once.

use crate::cluster::fixture::{Deployment, Fixture, FixtureTally, RejectCheck};
use crate::cluster::manifest::FixtureOptions;
use crate::cluster::ClusterError;
use crate::runner::converge::{begin_step, run_step, Judging};
use crate::runner::result::{CellStatus, StepResult};
use crate::scenario::plan::{changed_cells, expand, Source};
use crate::scenario::{walk, ExpectedCell, Matrix, PortRef, Scenario};
use netassay_core::model::{Topology, Verdict, Via};
use serde::Serialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

#[derive(Debug, Clone)]
pub struct SuiteOptions {
    pub judging: Judging,
    pub probe_timeout: Duration,
    pub ready_timeout: Duration,
    /// Replaces every matrix's `via` when set.
    pub via: Option<Vec<Via>>,
    pub fixture: FixtureOptions,
    /// Leave fixtures in place at the end (for debugging).
    pub keep: bool,
    /// How to run the agent outside the cluster (`argv + ["agent", "probe"]`); `None`: there is
    /// no outside vantage and outside cells are not judged.
    pub outside: Option<Vec<String>>,
    /// The CNI's own record of flows (Cilium's Hubble in a `--sandbox-cni cilium` sandbox):
    /// asked about every cell that went wrong, for the report's evidence. Never a verdict.
    pub witness: Option<netassay_sandbox::node::hubble::Hubble>,
}

/// The result of one step of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct StepOutcome {
    pub name: String,
    #[serde(flatten)]
    pub result: StepResult,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejects: Vec<RejectSummary>,
    /// The exposure inventory taken after this step, when the step asks for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory: Option<InventoryCheck>,
}

/// One exposure found in the cluster, judged against the profile's allow-list.
#[derive(Debug, Clone, Serialize)]
pub struct ExposureFinding {
    #[serde(flatten)]
    pub exposure: crate::cluster::inventory::Exposure,
    pub approved: bool,
    /// The allow-list rule's reason when approved; the operator-facing sentence when not.
    pub message: String,
}

/// The exposure inventory of one step.
#[derive(Debug, Clone, Serialize)]
pub struct InventoryCheck {
    pub exposures: Vec<ExposureFinding>,
    /// Things the inventory could not look at (e.g. no Gateway API in the cluster).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl InventoryCheck {
    pub fn unapproved(&self) -> impl Iterator<Item = &ExposureFinding> {
        self.exposures.iter().filter(|e| !e.approved)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RejectSummary {
    pub policy: String,
    pub refused: bool,
    pub detail: String,
}

impl From<RejectCheck> for RejectSummary {
    fn from(r: RejectCheck) -> Self {
        RejectSummary {
            policy: r.policy,
            refused: r.refused,
            detail: r.detail,
        }
    }
}

/// Why a scenario could not be judged.
#[derive(Debug, Clone, Serialize)]
pub struct EnvironmentProblem {
    pub what: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioOutcome {
    pub name: String,
    pub file: String,
    pub tags: Vec<String>,
    pub intent: bool,
    pub baseline: Option<StepResult>,
    pub steps: Vec<StepOutcome>,
    /// Set when the environment, not the CNI, is at fault (exit 3).
    pub environment: Option<EnvironmentProblem>,
}

impl ScenarioOutcome {
    pub fn failed_cells(&self) -> usize {
        self.steps.iter().map(|s| s.result.failures().count()).sum()
    }
    pub fn failed_rejects(&self) -> usize {
        self.steps
            .iter()
            .flat_map(|s| &s.rejects)
            .filter(|r| !r.refused)
            .count()
    }
    /// Exposures found by inventories that the profile does not allow.
    pub fn failed_exposures(&self) -> usize {
        self.steps
            .iter()
            .flat_map(|s| &s.inventory)
            .map(|i| i.unapproved().count())
            .sum()
    }
    pub fn errors(&self) -> usize {
        self.steps
            .iter()
            .map(|s| s.result.count(CellStatus::Error))
            .sum()
    }
    /// Paths the cluster kept interrupting (restarts, broken exec streams) past their deadline.
    pub fn interrupted(&self) -> usize {
        self.steps
            .iter()
            .map(|s| s.result.count(CellStatus::Interrupted))
            .sum()
    }

    /// Every step's result, the baseline first.
    fn all_steps(&self) -> impl Iterator<Item = &StepResult> {
        self.baseline
            .iter()
            .chain(self.steps.iter().map(|s| &s.result))
    }
}

/// Time-to-enforce over a whole run's steps (baselines change nothing and are left out): the
/// terminal, JSON and HTML say it.
pub fn run_enforce_stats(outcomes: &[ScenarioOutcome]) -> crate::runner::enforce::EnforceStats {
    crate::runner::enforce::stats(outcomes.iter().flat_map(|o| &o.steps).map(|s| &s.result))
}

/// What the control plane made a whole run do again (the terminal, JSON and HTML say it).
pub fn run_resilience(outcomes: &[ScenarioOutcome]) -> crate::runner::Resilience {
    crate::runner::Resilience::total(outcomes.iter().flat_map(ScenarioOutcome::all_steps))
}

/// The least time the baseline step may take to agree.
const BASELINE_DEADLINE: Duration = Duration::from_secs(20);

/// Two scenarios can share a fixture when their topologies (names, labels, ports) are equal
/// and they need the same objects around the pods.
fn key(t: &Topology, services: bool, routes: bool) -> String {
    let mut k = format!("svc={services};routes={routes};");
    for n in &t.namespaces {
        k.push_str(&format!("ns {} {:?};", n.name, n.labels));
    }
    for p in &t.pods {
        k.push_str(&format!(
            "pod {} {:?} {:?} {:?};",
            p.id, p.labels, p.serve, p.http
        ));
    }
    // A fixture probes the external endpoints of its own topology.
    for e in &t.externals {
        k.push_str(&format!("external {e:?};"));
    }
    k
}

/// The scenario as this run probes it (the `--via` override applied).
pub fn effective(scenario: &Scenario, via: Option<&[Via]>) -> Scenario {
    let mut s = scenario.clone();
    if let Some(v) = via {
        // Only matrices of pod-to-pod address kinds: external, gateway and NodePort paths say
        // what they probe.
        let pod_kinds = |m: &[Via]| {
            m.iter()
                .all(|x| matches!(x, Via::PodIp | Via::ServiceIp | Via::ServiceDns))
        };
        for st in s.steps.iter_mut().filter(|st| pod_kinds(&st.matrix.via)) {
            st.matrix.via = v.to_vec();
        }
    }
    s
}

fn needs_services(s: &Scenario) -> bool {
    s.steps
        .iter()
        .any(|st| st.matrix.via.iter().any(|v| v.needs_service()))
}

fn needs_routes(s: &Scenario) -> bool {
    s.steps
        .iter()
        .any(|st| st.matrix.via.contains(&Via::Gateway))
        && s.topology.pods.iter().any(|p| p.http.is_some())
}

/// Intent fixtures live under the cluster's own policies, so nothing can be expected to
/// connect; their baseline is each pod probing itself on one served port, and only errors (an
/// agent that does not answer, an exec that fails) make the fixture unhealthy.
fn intent_baseline_cells(t: &Topology) -> Vec<ExpectedCell> {
    t.pods
        .iter()
        .filter_map(|p| {
            let port = p.serve.first()?;
            Some(ExpectedCell {
                cell: crate::scenario::Cell {
                    from: p.id.clone(),
                    to: p.id.clone(),
                    port: port.port,
                    port_name: None,
                    protocol: port.protocol,
                    via: Via::PodIp,
                    loopback: true,
                },
                verdict: Verdict::Allow,
                ip_dependent: false,
                source: Source::Intent,
            })
        })
        .collect()
}

/// Everything allowed, everything served, by pod IP: proves a fixture is healthy.
fn baseline_cells(t: &Topology) -> Vec<ExpectedCell> {
    let mut ports: Vec<PortRef> = t
        .pods
        .iter()
        .flat_map(|p| p.serve.iter().map(|s| PortRef::Number(s.port)))
        .collect();
    ports.sort_by_key(|p| p.to_string());
    ports.dedup();
    let m = Matrix {
        ports,
        ..Matrix::default()
    };
    expand(&m, t)
        .into_iter()
        .map(|cell| ExpectedCell {
            cell,
            verdict: Verdict::Allow,
            ip_dependent: false,
            source: Source::Oracle,
        })
        .collect()
}

/// Every step of a scenario that cannot run here, each of its planned cells unsupported with
/// `why` (so the scenario is incomplete for lack of evidence, with that reason, as a scenario
/// on a protocol the cluster lacks). Nothing is deployed or applied.
fn unsupported_steps(s: &Scenario, why: &str) -> Vec<StepOutcome> {
    let plans = walk(s, &s.topology).unwrap_or_default();
    s.steps
        .iter()
        .enumerate()
        .map(|(k, step)| {
            let cells = plans
                .get(k)
                .map(|p| p.cells.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|expected| crate::runner::result::CellResult {
                    status: CellStatus::Unsupported,
                    attempts: vec![crate::runner::result::Attempt {
                        round: 1,
                        at_ms: 0,
                        outcome: netassay_core::probe::Outcome::Unsupported,
                        detail: why.to_string(),
                        elapsed_ms: 0,
                        peer_identity: None,
                        seq: None,
                    }],
                    expected,
                    explanation: None,
                    cni_account: None,
                    changed: false,
                    time_to_enforce: None,
                    time_to_enforce_resolution: None,
                })
                .collect();
            StepOutcome {
                name: step.name.clone(),
                result: StepResult {
                    cells,
                    time_to_enforce: None,
                    time_to_enforce_resolution: None,
                    changed_cells: 0,
                    time_to_enforce_disturbed: 0,
                    series_ended_before_changes: false,
                    rounds: 0,
                    resilience: Default::default(),
                    load: Default::default(),
                },
                rejects: Vec::new(),
                inventory: None,
            }
        })
        .collect()
}

/// Fixtures alive in the run, reused by topology.
pub struct Pool {
    client: kube::Client,
    /// Where each fixture's own client comes from; `None`: fixtures share `client`.
    client_config: Option<kube::Config>,
    run: String,
    opts: SuiteOptions,
    idle: Mutex<Vec<(String, Fixture)>>,
    permits: Semaphore,
    next_id: Mutex<usize>,
    log: Box<dyn Fn(String) + Send + Sync>,
    /// Whether the cluster serves Cilium's policy kinds, asked once, when the first scenario
    /// with Cilium policies comes.
    cilium_api: tokio::sync::OnceCell<bool>,
}

impl Pool {
    pub fn new(
        client: kube::Client,
        run: &str,
        parallel: usize,
        opts: SuiteOptions,
        log: Box<dyn Fn(String) + Send + Sync>,
    ) -> Self {
        Pool {
            client,
            client_config: None,
            run: run.to_string(),
            opts,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(parallel.max(1)),
            next_id: Mutex::new(0),
            log,
            cilium_api: tokio::sync::OnceCell::new(),
        }
    }

    /// Fixtures get clients of their own from `config` (with retries counted per fixture).
    pub fn with_client_config(mut self, config: kube::Config) -> Self {
        self.client_config = Some(config);
        self
    }

    fn take_idle(&self, k: &str) -> Option<Fixture> {
        let mut idle = self.idle.lock().ok()?;
        let i = idle.iter().position(|(key, _)| key == k)?;
        Some(idle.swap_remove(i).1)
    }

    fn put_idle(&self, k: String, f: Fixture) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push((k, f));
        }
    }

    /// Any idle fixture of another topology, to make room.
    fn evict(&self, keep: &str) -> Option<Fixture> {
        let mut idle = self.idle.lock().ok()?;
        let i = idle.iter().position(|(key, _)| key != keep)?;
        Some(idle.swap_remove(i).1)
    }

    /// Runs one scenario on a fixture of its topology.
    pub async fn run(&self, scenario: &Scenario) -> ScenarioOutcome {
        let s = effective(scenario, self.opts.via.as_deref());
        let mut outcome = ScenarioOutcome {
            name: s.name.clone(),
            file: s.file.clone(),
            tags: s.tags.clone(),
            intent: s.mode == crate::scenario::Mode::Intent,
            baseline: None,
            steps: Vec::new(),
            environment: None,
        };
        let Ok(_permit) = self.permits.acquire().await else {
            outcome.environment = Some(EnvironmentProblem {
                what: "the run is shutting down".into(),
            });
            return outcome;
        };
        if s.uses_cilium() {
            let served = self
                .cilium_api
                .get_or_try_init(|| crate::cluster::cilium::served(&self.client, &self.run))
                .await;
            match served {
                Ok(true) => {}
                Ok(false) => {
                    (self.log)(format!(
                        "{}: not run: {}",
                        s.name,
                        crate::cluster::cilium::NO_CILIUM_API
                    ));
                    outcome.steps = unsupported_steps(&s, crate::cluster::cilium::NO_CILIUM_API);
                    return outcome;
                }
                Err(e) => {
                    outcome.environment = Some(EnvironmentProblem {
                        what: e.to_string(),
                    });
                    return outcome;
                }
            }
        }
        let routes = needs_routes(&s);
        let services = needs_services(&s) || routes;
        let gateway = s
            .profile
            .as_ref()
            .and_then(|p| p.gateway.as_ref())
            .filter(|_| routes);
        let k = key(&s.topology, services, gateway.is_some());
        let mut fixture = match self.take_idle(&k) {
            Some(mut f) => match f.reset().await {
                Ok(()) => f,
                Err(e) => {
                    outcome.environment = Some(EnvironmentProblem {
                        what: format!("resetting the fixture: {e}"),
                    });
                    let _ = f.teardown().await;
                    return outcome;
                }
            },
            None => {
                if let Some(old) = self.evict(&k) {
                    let _ = old.teardown().await;
                }
                let id = self.next_id.lock().map(|mut n| {
                    *n += 1;
                    *n
                });
                let id = id.unwrap_or_default();
                (self.log)(format!(
                    "{}: deploying fixture {id} ({} pods)",
                    s.name,
                    s.topology.pods.len()
                ));
                let name = s.name.clone();
                let log = &self.log;
                let mut last = usize::MAX;
                let plan = Deployment {
                    run: &self.run,
                    fixture_id: id,
                    topology: &s.topology,
                    opts: &self.opts.fixture,
                    services,
                    ready_timeout: self.opts.ready_timeout,
                    gateway,
                    outside: self.opts.outside.as_deref(),
                };
                let progress = |ready, total| {
                    if ready != last {
                        last = ready;
                        log(format!("{name}: pods ready {ready}/{total}"));
                    }
                };
                // A client per fixture, so each step's API retries can be told apart.
                let tally = FixtureTally::default();
                let client = match &self.client_config {
                    Some(config) => {
                        match crate::cluster::client_with_retries(config.clone(), &tally.api) {
                            Ok(c) => c,
                            Err(e) => {
                                outcome.environment = Some(EnvironmentProblem {
                                    what: format!("building a client for the fixture: {e}"),
                                });
                                return outcome;
                            }
                        }
                    }
                    None => self.client.clone(),
                };
                match Fixture::deploy(client, tally, &plan, progress).await {
                    Ok(f) => f,
                    Err(e) => {
                        outcome.environment = Some(EnvironmentProblem {
                            what: e.to_string(),
                        });
                        return outcome;
                    }
                }
            }
        };
        fixture.probe_timeout = self.opts.probe_timeout;
        let result = self.run_on(&s, &mut fixture, &mut outcome).await;
        if let Err(e) = result {
            outcome.environment = Some(EnvironmentProblem {
                what: e.to_string(),
            });
            let _ = fixture.teardown().await;
        } else {
            self.put_idle(k, fixture);
        }
        outcome
    }

    async fn run_on(
        &self,
        s: &Scenario,
        fixture: &mut Fixture,
        outcome: &mut ScenarioOutcome,
    ) -> Result<(), ClusterError> {
        let intent = s.mode == crate::scenario::Mode::Intent;
        let baseline = if intent {
            intent_baseline_cells(&fixture.topology)
        } else {
            baseline_cells(&fixture.topology)
        };
        (self.log)(format!("{}: baseline ({} probes)", s.name, baseline.len()));
        // Fresh pods may take a moment to answer: the baseline gets at least BASELINE_DEADLINE.
        let judging = Judging {
            converge_timeout: self.opts.judging.converge_timeout.max(BASELINE_DEADLINE),
            judge_loopback: self.opts.judging.judge_loopback || intent,
            ..self.opts.judging.clone()
        };
        let before = fixture.tally.snapshot();
        let (load, t0) = (fixture.tally.load(), Instant::now());
        let none = begin_step(fixture, &baseline, &[], &judging).await;
        let mut b = run_step(fixture, &baseline, &judging, none, Instant::now()).await;
        b.resilience = fixture.tally.snapshot().since(&before);
        b.load = fixture.tally.load().since(&load, t0.elapsed());
        // Unreachable pods mean a broken fixture (environment); connectivity that comes and goes
        // with no policy at all is the dataplane's fault and is judged like any other step.
        let bad: Vec<String> = b
            .cells
            .iter()
            .filter(|c| match c.status {
                CellStatus::Error | CellStatus::Interrupted => true,
                // Under the cluster's own policies a pod may not even reach itself.
                CellStatus::Fail => !intent,
                _ => false,
            })
            .take(5)
            .map(|c| {
                format!(
                    "{} -> {} {}/{}: {}",
                    c.expected.cell.from,
                    c.expected.cell.to,
                    c.expected.cell.port,
                    c.expected.cell.protocol,
                    c.attempts
                        .last()
                        .map(|a| format!("{} {}", a.outcome, a.detail))
                        .unwrap_or_default()
                )
            })
            .collect();
        if b.count(CellStatus::Flapping) > 0 && !intent {
            outcome.steps.push(StepOutcome {
                name: "baseline (no policies)".into(),
                result: b.clone(),
                rejects: Vec::new(),
                inventory: None,
            });
        }
        outcome.baseline = Some(b);
        if !bad.is_empty() {
            return Err(ClusterError::NotReady(format!(
                "the fixture is unhealthy before any policy (baseline): {}",
                bad.join("; ")
            )));
        }
        let plans = walk(s, &fixture.topology).map_err(|e| ClusterError::Policy {
            policy: e.path,
            detail: e.message,
        })?;
        for (k, (step, plan)) in s.steps.iter().zip(&plans).enumerate() {
            (self.log)(format!("{}: step {:?}: applying", s.name, step.name));
            let before = k.checked_sub(1).and_then(|b| plans.get(b));
            let changed = changed_cells(s.mode, before, fixture.original_topology(), plan);
            // The changed cells' series runs while the changes are made (dropped on error).
            let before = fixture.tally.snapshot();
            let began = std::time::SystemTime::now();
            let (load, t0) = (fixture.tally.load(), Instant::now());
            let begun = begin_step(fixture, &plan.cells, &changed, &self.opts.judging).await;
            let applied = fixture.apply_step(step).await?;
            (self.log)(format!(
                "{}: step {:?}: probing {} cells ({} changed)",
                s.name,
                step.name,
                plan.cells.len(),
                changed.iter().filter(|c| **c).count()
            ));
            let mut result = run_step(
                fixture,
                &plan.cells,
                &self.opts.judging,
                begun,
                applied.accepted,
            )
            .await;
            result.resilience = fixture.tally.snapshot().since(&before);
            result.load = fixture.tally.load().since(&load, t0.elapsed());
            if s.mode == crate::scenario::Mode::Oracle {
                for c in result.cells.iter_mut().filter(|c| c.status.is_failure()) {
                    c.explanation = plan.explain_summary(&c.expected.cell);
                }
            }
            if let Some(witness) = &self.opts.witness {
                witness_accounts(witness, &fixture.topology, began, &mut result.cells).await;
            }
            let (inventory, inventory_error) = if step.inventory {
                match self.inventory(s).await {
                    Ok(i) => (Some(i), None),
                    Err(e) => (None, Some(e)),
                }
            } else {
                (None, None)
            };
            // The step's probe results are kept even when its inventory could not be taken.
            outcome.steps.push(StepOutcome {
                name: step.name.clone(),
                result,
                rejects: applied
                    .rejects
                    .into_iter()
                    .map(RejectSummary::from)
                    .collect(),
                inventory,
            });
            if let Some(e) = inventory_error {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Takes the cluster's exposure inventory and judges it against the scenario's profile.
    async fn inventory(&self, s: &Scenario) -> Result<InventoryCheck, ClusterError> {
        let rules = s
            .profile
            .as_ref()
            .map(|p| p.exposures.clone())
            .unwrap_or_default();
        let inv = crate::cluster::inventory::take(&self.client).await?;
        let exposures = inv
            .exposures
            .into_iter()
            .map(|exposure| {
                let rule = exposure.approved_by(&rules);
                ExposureFinding {
                    approved: rule.is_some(),
                    message: match rule {
                        Some(r) => r
                            .reason
                            .clone()
                            .unwrap_or_else(|| "on the allow-list of exposures".into()),
                        None => exposure.summary(),
                    },
                    exposure,
                }
            })
            .collect();
        Ok(InventoryCheck {
            exposures,
            notes: inv.notes,
        })
    }

    /// Tears down every idle fixture (unless `--keep`).
    pub async fn shutdown(&self) {
        let idle: Vec<(String, Fixture)> = self
            .idle
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        if self.opts.keep {
            return;
        }
        for (_, f) in idle {
            if let Err(e) = f.teardown().await {
                (self.log)(format!("teardown: {e}"));
            }
        }
    }
}

/// Asks the CNI's own record (Hubble) about each cell that went wrong since the step began,
/// between the pods' addresses on the destination port: its account goes in the cell as
/// evidence; when it could not be asked, the cell says so.
async fn witness_accounts(
    witness: &netassay_sandbox::node::hubble::Hubble,
    topology: &netassay_core::model::Topology,
    since: std::time::SystemTime,
    cells: &mut [crate::runner::CellResult],
) {
    use netassay_core::model::Via;
    for c in cells.iter_mut().filter(|c| c.status.is_failure()) {
        let cell = &c.expected.cell;
        // Pod to pod, directly or through a Service (the datapath sees the translated flow at
        // the destination); flows from or to outside the cluster are not looked up.
        if !matches!(cell.via, Via::PodIp | Via::ServiceIp | Via::ServiceDns) {
            continue;
        }
        let (Some(from), Some(to)) = (topology.pod(&cell.from), topology.pod(&cell.to)) else {
            continue;
        };
        let query = netassay_sandbox::node::hubble::FlowQuery {
            from: from.ip,
            to: to.ip,
            port: cell.port,
            protocol: cell.protocol,
            since,
        };
        let witness = witness.clone();
        let answer = tokio::task::spawn_blocking(move || witness.account(&query)).await;
        c.cni_account = Some(match answer.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(Some(account)) => account,
            Ok(None) => "Hubble: no flow recorded since the step began".into(),
            Err(e) => format!("Hubble could not be asked: {e}"),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::conformance::{scenario_reason, scenario_verdict, ScenarioVerdict};

    /// DESIGN §7b, no verdict without evidence: a Cilium scenario on a cluster that serves no
    /// CiliumNetworkPolicy API judges nothing, so it is incomplete with that reason (as a
    /// scenario on a protocol the cluster lacks), never passed.
    #[test]
    fn cilium_scenarios_without_the_api_are_incomplete_with_the_reason() {
        let all = crate::scenario::builtin::all().expect("builtin corpus loads");
        let cilium: Vec<&Scenario> = all.iter().filter(|s| s.uses_cilium()).collect();
        assert!(
            cilium.len() >= 20,
            "the cilium profile has {}",
            cilium.len()
        );
        for s in cilium {
            let outcome = ScenarioOutcome {
                name: s.name.clone(),
                file: s.file.clone(),
                tags: s.tags.clone(),
                intent: false,
                baseline: None,
                steps: unsupported_steps(s, crate::cluster::cilium::NO_CILIUM_API),
                environment: None,
            };
            assert_eq!(outcome.steps.len(), s.steps.len(), "{}", s.name);
            assert!(
                outcome.steps.iter().all(|st| !st.result.cells.is_empty()
                    && st
                        .result
                        .cells
                        .iter()
                        .all(|c| c.status == CellStatus::Unsupported)),
                "{}",
                s.name
            );
            assert_eq!(scenario_verdict(&outcome), ScenarioVerdict::Incomplete);
            let reason = scenario_reason(&outcome).unwrap_or_default();
            assert!(
                reason.starts_with("nothing could be judged (unsupported: this cluster serves no CiliumNetworkPolicy API"),
                "{}: {reason}",
                s.name
            );
        }
    }
}
