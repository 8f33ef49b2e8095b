//! Walking a scenario's steps: the state after each step, its probe matrix, and the expected verdict
//! of every cell (from the oracle, or from the scenario's pins in intent mode). Pure.

use super::definition::{CellPin, Expect, Matrix, Scenario};
use super::format::{ExpectDefault, Mode, PortRef};
use super::policies::{resolve_cilium_policy, resolve_policy};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netassay_core::model::{
    edit_labels, glob_match, PodRef, PolicyRef, Protocol, Topology, Verdict, Via,
};
use netassay_core::policy::cilium::{
    CiliumExplanation, CiliumOracle, CiliumOracleError, CiliumPolicy, CiliumPolicyRef, Endpoint,
    NameFact, NameFacts,
};
use netassay_core::policy::oracle::{policy_ref, Oracle};
use netassay_core::policy::{CellVerdict, Explanation};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// One probe path: from a pod to a pod's port over one address kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Cell {
    pub from: PodRef,
    pub to: PodRef,
    /// The destination (post-DNAT) port number, always numeric.
    pub port: u16,
    /// The container port name on the destination, when the matrix named the port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
    pub protocol: Protocol,
    pub via: Via,
    pub loopback: bool,
}

/// Where an expectation comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Oracle,
    /// The scenario's stated intent (intent mode).
    Intent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectedCell {
    #[serde(flatten)]
    pub cell: Cell,
    pub verdict: Verdict,
    pub ip_dependent: bool,
    #[serde(skip)]
    pub source: Source,
}

/// A pin that disagrees with the oracle (oracle mode) — a load error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinConflict {
    /// `Some(k)` for `expect.cells[k]`, `None` for `expect.default`.
    pub pin: Option<usize>,
    pub cell: Cell,
    pub pinned: Verdict,
    pub oracle: Verdict,
}

/// The world after a step's changes, and what should happen in it.
#[derive(Debug, Clone)]
pub struct StepPlan {
    pub name: String,
    pub topology: Topology,
    /// Active policies (placeholders resolved), by logical namespace/name.
    pub policies: BTreeMap<PolicyRef, NetworkPolicy>,
    pub cells: Vec<ExpectedCell>,
    pub conflicts: Vec<PinConflict>,
    /// Active Cilium policies, by kind, logical namespace and name.
    pub cilium: BTreeMap<CiliumPolicyRef, CiliumPolicy>,
    /// True when the scenario is judged under Cilium's semantics ([`Scenario::uses_cilium`]).
    pub cilium_semantics: bool,
    /// Cells of the matrix the oracle does not judge, with the reason (left out of `cells`).
    pub unjudged: Vec<(Cell, String)>,
}

impl StepPlan {
    pub fn oracle(&self) -> Result<Oracle<'_>, netassay_core::policy::OracleError> {
        let policies: Vec<_> = self.policies.values().cloned().collect();
        Oracle::new(&self.topology, &policies)
    }

    /// The Cilium oracle of this step (Cilium semantics).
    pub fn cilium_oracle(&self) -> Result<CiliumOracle<'_>, CiliumOracleError> {
        let nps: Vec<_> = self.policies.values().cloned().collect();
        let cps: Vec<_> = self.cilium.values().cloned().collect();
        CiliumOracle::new(&self.topology, &nps, &cps, name_facts(&self.topology))
    }

    /// The verdict this step's semantics give a pod-to-pod cell (`None`: not judged).
    pub fn verdict(&self, cell: &Cell) -> Option<Verdict> {
        let (f, t) = (
            self.topology.pod_index(&cell.from)?,
            self.topology.pod_index(&cell.to)?,
        );
        if self.cilium_semantics {
            let o = self.cilium_oracle().ok()?;
            o.judge(Endpoint::Pod(f), Endpoint::Pod(t), cell.port, cell.protocol)
                .verdict
        } else {
            Some(
                self.oracle()
                    .ok()?
                    .cell(f, t, cell.port, cell.protocol)
                    .verdict,
            )
        }
    }

    /// One line of reasons for a cell, under this step's semantics.
    pub fn explain_summary(&self, cell: &Cell) -> Option<String> {
        if self.cilium_semantics {
            self.explain_cilium(cell).map(|e| e.summary())
        } else {
            self.explain(cell).map(|e| e.summary())
        }
    }

    /// The Cilium oracle's reasons for one pod-to-pod cell of this step.
    pub fn explain_cilium(&self, cell: &Cell) -> Option<CiliumExplanation> {
        let o = self.cilium_oracle().ok()?;
        let t = o.topology();
        Some(o.explain(
            Endpoint::Pod(t.pod_index(&cell.from)?),
            Endpoint::Pod(t.pod_index(&cell.to)?),
            cell.port,
            cell.protocol,
        ))
    }

    /// The v1 oracle's reasons for one cell of this step.
    pub fn explain(&self, cell: &Cell) -> Option<Explanation> {
        let o = self.oracle().ok()?;
        let t = o.topology();
        Some(o.explain(
            t.pod_index(&cell.from)?,
            t.pod_index(&cell.to)?,
            cell.port,
            cell.protocol,
        ))
    }
}

/// Why a walk failed: a problem that depends on the live topology (a placeholder, a bad policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkError {
    /// Path in the scenario file, e.g. `steps[1].apply[0].spec.ingress[0].from[0].ipBlock.cidr`.
    pub path: String,
    pub message: String,
}

pub use super::definition::names_profile_endpoint;

/// Expands a matrix into cells over a topology. Cells exist only where the destination serves the
/// port and protocol (an unserved port would be refused and read as a deny); named ports resolve
/// on each destination pod, and a destination without that name has no cell.
///
/// Address kinds apply where they make sense: `pod-ip`, `service-ip` and `service-dns` to pods;
/// `gateway` and `node-port` from the outside vantage to a pod's HTTP port; `address`, `name`
/// and `lookup` from pods to external endpoints (a lookup is one cell per source and endpoint,
/// written as 53/UDP whatever the matrix's ports).
pub fn expand(matrix: &Matrix, topology: &Topology) -> Vec<Cell> {
    let matches = |globs: &[String], id: &PodRef| {
        let text = id.to_string();
        globs.iter().any(|g| {
            let reserved = id.is_external() || id.is_outside();
            names_profile_endpoint(g) == reserved && glob_match(g, &text)
        })
    };
    let mut sources: Vec<PodRef> = topology
        .pods
        .iter()
        .map(|p| p.id.clone())
        .filter(|id| matches(&matrix.from, id))
        .collect();
    let outside = PodRef::outside();
    if matches(&matrix.from, &outside) {
        sources.push(outside);
    }
    let pods: Vec<&netassay_core::model::Pod> = topology
        .pods
        .iter()
        .filter(|p| matches(&matrix.to, &p.id))
        .collect();
    let externals: Vec<&netassay_core::model::External> = topology
        .externals
        .iter()
        .filter(|e| matches(&matrix.to, &e.id()))
        .collect();
    let mut cells = Vec::new();
    for via in &matrix.via {
        for protocol in &matrix.protocols {
            for port in &matrix.ports {
                for to in &pods {
                    let (number, name) = match port {
                        PortRef::Number(n) => {
                            (Some(*n), to.port_name(*n, *protocol).map(str::to_string))
                        }
                        PortRef::Name(s) => (to.named_port(s, *protocol), Some(s.clone())),
                    };
                    let Some(number) = number else { continue };
                    if via.is_external() || !to.serves(number, *protocol) {
                        continue;
                    }
                    let web_only = matches!(via, Via::Gateway | Via::NodePort);
                    if web_only && !to.is_http(number, *protocol) {
                        continue;
                    }
                    // gateway and node-port start outside; a cluster DNS name only resolves
                    // inside; addresses work from both.
                    let reaches = |from: &PodRef| match via {
                        Via::PodIp | Via::ServiceIp => true,
                        Via::ServiceDns => !from.is_outside(),
                        _ => from.is_outside(),
                    };
                    for from in sources.iter().filter(|f| reaches(f)) {
                        cells.push(Cell {
                            from: from.clone(),
                            to: to.id.clone(),
                            port: number,
                            port_name: if matches!(port, PortRef::Name(_)) {
                                name.clone()
                            } else {
                                None
                            },
                            protocol: *protocol,
                            via: *via,
                            loopback: *from == to.id,
                        });
                    }
                }
            }
            // An external endpoint is probed on the ports its profile entry lists (the
            // matrix's ports are pods' ports).
            for to in &externals {
                let usable = match via {
                    Via::Address => to.address.is_some(),
                    Via::Name => to.host.is_some(),
                    _ => false,
                };
                if !usable {
                    continue;
                }
                for p in to.ports.iter().filter(|p| p.protocol == *protocol) {
                    for from in sources.iter().filter(|f| !f.is_outside()) {
                        cells.push(Cell {
                            from: from.clone(),
                            to: to.id(),
                            port: p.port,
                            port_name: None,
                            protocol: *protocol,
                            via: *via,
                            loopback: false,
                        });
                    }
                }
            }
        }
        if *via == Via::Lookup {
            for to in externals.iter().filter(|e| e.host.is_some()) {
                for from in sources.iter().filter(|f| !f.is_outside()) {
                    cells.push(Cell {
                        from: from.clone(),
                        to: to.id(),
                        port: 53,
                        port_name: None,
                        protocol: netassay_core::model::Protocol::Udp,
                        via: Via::Lookup,
                        loopback: false,
                    });
                }
            }
        }
    }
    cells.sort_by(|a, b| {
        (a.via, a.protocol, a.port, &a.from, &a.to)
            .cmp(&(b.via, b.protocol, b.port, &b.from, &b.to))
    });
    cells.dedup();
    cells
}

/// The part of a glob before its first wildcard: every text it matches starts with it.
fn literal_prefix(glob: &str) -> &str {
    glob.find(['*', '?']).map_or(glob, |i| &glob[..i])
}

impl CellPin {
    pub fn matches(&self, cell: &Cell) -> bool {
        self.matches_names(cell, &cell.from.to_string(), &cell.to.to_string())
    }

    /// [`CellPin::matches`] with the cell's `from` and `to` already spelt out: a step's cells
    /// are checked against every pin, and one pin per project makes that cells x pins.
    /// A pin whose literal prefix differs is rejected before any glob is matched.
    fn matches_names(&self, cell: &Cell, from: &str, to: &str) -> bool {
        from.starts_with(literal_prefix(&self.from))
            && to.starts_with(literal_prefix(&self.to))
            && glob_match(&self.from, from)
            && glob_match(&self.to, to)
            && self.protocol.is_none_or(|p| p == cell.protocol)
            && self.via.is_none_or(|v| v == cell.via)
            && match &self.port {
                None => true,
                Some(PortRef::Number(n)) => *n == cell.port,
                Some(PortRef::Name(s)) => cell.port_name.as_deref() == Some(s.as_str()),
            }
    }
}

/// The namespace a pin's `from` names literally (`project-007/*`, `outside`), or `None` when a
/// wildcard comes before the namespace ends (`*/workspace`, `project-*`).
fn literal_from_namespace(glob: &str) -> Option<&str> {
    let prefix = literal_prefix(glob);
    match prefix.split_once('/') {
        Some((namespace, _)) => Some(namespace),
        None if prefix.len() == glob.len() => Some(prefix),
        None => None,
    }
}

/// A step's pins grouped by the namespace their `from` names literally, so that a cell is
/// checked only against its own namespace's pins and the pins with a wildcard there: a TRE of N
/// projects has a pin per project, and checking every cell against all of them made planning
/// grow as N^3.
pub struct PinIndex<'a> {
    expect: &'a Expect,
    by_from_namespace: HashMap<&'a str, Vec<usize>>,
    /// Pins whose `from` has a wildcard in its namespace.
    wildcard: Vec<usize>,
}

impl<'a> PinIndex<'a> {
    pub fn new(expect: &'a Expect) -> Self {
        let mut by_from_namespace: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut wildcard = Vec::new();
        for (k, pin) in expect.cells.iter().enumerate() {
            match literal_from_namespace(&pin.from) {
                Some(ns) => by_from_namespace.entry(ns).or_default().push(k),
                None => wildcard.push(k),
            }
        }
        PinIndex {
            expect,
            by_from_namespace,
            wildcard,
        }
    }

    /// The pinned verdict of a cell and which pin set it (`None`: the default). Later pins win.
    /// Loopback cells are never pinned. `profile` decides a `profile` pin (`None` there: the pin
    /// does not apply to this cell).
    pub fn pinned(
        &self,
        cell: &Cell,
        profile: impl Fn(&Cell) -> Option<Verdict>,
    ) -> Option<(Verdict, Option<usize>)> {
        if cell.loopback {
            return None;
        }
        let (from, to) = (cell.from.to_string(), cell.to.to_string());
        let own = self
            .by_from_namespace
            .get(cell.from.namespace.as_str())
            .map_or(&[][..], Vec::as_slice);
        let mut candidates: Vec<usize> = own.iter().chain(&self.wildcard).copied().collect();
        // Later pins win.
        candidates.sort_unstable_by(|x, y| y.cmp(x));
        for k in candidates {
            let pin = &self.expect.cells[k];
            if !pin.matches_names(cell, &from, &to) {
                continue;
            }
            let verdict = match pin.verdict.fixed() {
                Some(v) => Some(v),
                None => profile(cell),
            };
            if let Some(v) = verdict {
                return Some((v, Some(k)));
            }
        }
        match self.expect.default {
            ExpectDefault::Allow => Some((Verdict::Allow, None)),
            ExpectDefault::Deny => Some((Verdict::Deny, None)),
            ExpectDefault::Oracle => None,
        }
    }
}

/// Which of `plan`'s cells its step changes (DESIGN §7b): those whose verdict differs from the
/// one they had in the state before the step. `before` is the previous step's plan; `None` means
/// the topology as deployed (`initial`) with none of the scenario's policies. In intent mode the
/// cluster's own policies decide and no state is computed: a cell counts as changed only when the
/// previous step expected the opposite.
pub fn changed_cells(
    mode: Mode,
    before: Option<&StepPlan>,
    initial: &Topology,
    plan: &StepPlan,
) -> Vec<bool> {
    if mode == Mode::Intent {
        let prior: std::collections::HashMap<&Cell, Verdict> = before
            .map(|b| b.cells.iter().map(|c| (&c.cell, c.verdict)).collect())
            .unwrap_or_default();
        return plan
            .cells
            .iter()
            .map(|c| prior.get(&c.cell).is_some_and(|v| *v != c.verdict))
            .collect();
    }
    if let Some(b) = before.filter(|b| b.cilium_semantics) {
        return plan
            .cells
            .iter()
            .map(|c| b.verdict(&c.cell).is_some_and(|v| v != c.verdict))
            .collect();
    }
    let oracle = match before {
        Some(b) => b.oracle(),
        None => Oracle::new(initial, &[]),
    };
    let Ok(oracle) = oracle else {
        return vec![false; plan.cells.len()];
    };
    let t = oracle.topology();
    plan.cells
        .iter()
        .map(
            |c| match (t.pod_index(&c.cell.from), t.pod_index(&c.cell.to)) {
                (Some(f), Some(to)) => {
                    oracle.cell(f, to, c.cell.port, c.cell.protocol).verdict != c.verdict
                }
                _ => false,
            },
        )
        .collect()
}

/// Walks every step from `topology` (synthetic addresses offline, live ones at run time).
pub fn walk(scenario: &Scenario, topology: &Topology) -> Result<Vec<StepPlan>, WalkError> {
    let mut topo = topology.clone();
    let mut policies: BTreeMap<PolicyRef, NetworkPolicy> = BTreeMap::new();
    let mut cilium: BTreeMap<CiliumPolicyRef, CiliumPolicy> = BTreeMap::new();
    let cilium_semantics = scenario.uses_cilium();
    let mut plans = Vec::with_capacity(scenario.steps.len());
    for (i, step) in scenario.steps.iter().enumerate() {
        for d in &step.delete {
            policies.remove(d);
        }
        for d in &step.delete_cilium {
            cilium.remove(d);
        }
        for (j, template) in step.apply_cilium.iter().enumerate() {
            let cp =
                resolve_cilium_policy(template, &topo).map_err(|(path, message)| WalkError {
                    path: format!("steps[{i}].apply[{j}].{path}"),
                    message,
                })?;
            cilium.insert(cp.policy_ref(), cp);
        }
        for (j, template) in step.apply.iter().enumerate() {
            let np = resolve_policy(template, &topo).map_err(|(path, message)| WalkError {
                path: format!("steps[{i}].apply[{j}].{path}"),
                message,
            })?;
            policies.insert(policy_ref(&np), np);
        }
        for (pod, edit) in &step.label_pods {
            if let Some(p) = topo.pod_mut(pod) {
                edit_labels(&mut p.labels, edit);
            }
        }
        for (ns, edit) in &step.label_namespaces {
            if let Some(n) = topo.namespace_mut(ns) {
                edit_labels(&mut n.labels, edit);
            }
        }
        let active: Vec<NetworkPolicy> = policies.values().cloned().collect();
        let oracle = Oracle::new(&topo, &active).map_err(|e| WalkError {
            path: format!("steps[{i}]"),
            message: e.to_string(),
        })?;
        let cilium_active: Vec<CiliumPolicy> = cilium.values().cloned().collect();
        let cilium_oracle = if cilium_semantics {
            Some(
                CiliumOracle::new(&topo, &active, &cilium_active, name_facts(&topo)).map_err(
                    |e| WalkError {
                        path: format!("steps[{i}]"),
                        message: e.to_string(),
                    },
                )?,
            )
        } else {
            None
        };
        let mut unjudged = Vec::new();
        let mut cells = Vec::new();
        let mut conflicts = Vec::new();
        let by_profile = |c: &Cell| -> Option<Verdict> {
            let profile = scenario.profile.as_ref()?;
            if !c.to.is_external() || c.from.is_outside() {
                return None;
            }
            profile.external_verdict(
                scenario.persona(&c.from.namespace),
                &c.to.name,
                c.port,
                c.via,
            )
        };
        let pins = step.expect.as_ref().map(PinIndex::new);
        for cell in expand(&step.matrix, &topo) {
            let pin = pins.as_ref().and_then(|p| p.pinned(&cell, by_profile));
            let computed = match (topo.pod_index(&cell.from), topo.pod_index(&cell.to)) {
                (Some(f), Some(t)) => match &cilium_oracle {
                    None => Some(oracle.cell(f, t, cell.port, cell.protocol)),
                    Some(co) => {
                        let (from, to) = (Endpoint::Pod(f), Endpoint::Pod(t));
                        let c = co.judge(from, to, cell.port, cell.protocol);
                        match c.verdict {
                            Some(verdict) => Some(CellVerdict {
                                verdict,
                                ip_dependent: c.ip_dependent,
                            }),
                            None => {
                                let why = co.explain(from, to, cell.port, cell.protocol).summary();
                                unjudged.push((cell, why));
                                continue;
                            }
                        }
                    }
                },
                (Some(f), None) if scenario.mode == Mode::Oracle && cell.to.is_external() => {
                    match (&cilium_oracle, topo.external(&cell.to.name)) {
                        (Some(co), Some(e)) => match judge_external(co, f, e, &cell) {
                            Ok(c) => Some(c),
                            Err(why) => {
                                unjudged.push((cell, why));
                                continue;
                            }
                        },
                        _ => None,
                    }
                }
                _ => None,
            };
            let Some(computed) = computed else {
                // Outside the oracle's world (external endpoints, the outside vantage): only
                // intent speaks, and a cell no pin covers is not planned.
                if let (Mode::Intent, Some((verdict, _))) = (scenario.mode, pin) {
                    cells.push(ExpectedCell {
                        cell,
                        verdict,
                        ip_dependent: false,
                        source: Source::Intent,
                    });
                }
                continue;
            };
            let (verdict, source) = match scenario.mode {
                Mode::Oracle => {
                    if let Some((pinned, k)) = pin {
                        if pinned != computed.verdict {
                            conflicts.push(PinConflict {
                                pin: k,
                                cell: cell.clone(),
                                pinned,
                                oracle: computed.verdict,
                            });
                        }
                    }
                    (computed.verdict, Source::Oracle)
                }
                Mode::Intent => (
                    pin.map(|(v, _)| v).unwrap_or(computed.verdict),
                    Source::Intent,
                ),
            };
            cells.push(ExpectedCell {
                cell,
                verdict,
                ip_dependent: computed.ip_dependent,
                source,
            });
        }
        drop(oracle);
        drop(cilium_oracle);
        plans.push(StepPlan {
            name: step.name.clone(),
            topology: topo.clone(),
            policies: policies.clone(),
            cells,
            conflicts,
            cilium: cilium.clone(),
            cilium_semantics,
            unjudged,
        });
    }
    Ok(plans)
}

/// A cell from pod `from` to an external endpoint under Cilium's semantics, or why it is not
/// judged:
/// - by address: the pod's egress to the address (a `toFQDNs` rule admits it only after some
///   lookup of a matching name, so such cells are not judged);
/// - the lookup alone: the query to the cluster DNS, which DNS rules may refuse;
/// - by name: the lookup, then the connection, which a `toFQDNs` rule admits when the lookup
///   went through Cilium's DNS proxy.
fn judge_external(
    co: &CiliumOracle,
    from: usize,
    e: &netassay_core::model::External,
    cell: &Cell,
) -> Result<CellVerdict, String> {
    let src = Endpoint::Pod(from);
    let connect = |seen: Option<&NameFact>| -> Result<CellVerdict, String> {
        let Some(address) = e.address else {
            return Err(format!("external/{} has no address", e.name));
        };
        let to = Endpoint::World(address);
        let c = co.judge_world(src, to, cell.port, cell.protocol, seen);
        match c.verdict {
            Some(verdict) => Ok(CellVerdict {
                verdict,
                ip_dependent: c.ip_dependent,
            }),
            None => Err(co
                .explain_world(src, to, cell.port, cell.protocol, seen)
                .summary()),
        }
    };
    let lookup = |host: &str| -> Result<(Verdict, Option<bool>), String> {
        let l = co.judge_lookup(src, host);
        match l.verdict {
            Some(v) => Ok((v, l.proxied)),
            None => Err(format!("the lookup of {host}: {}", l.egress.summary())),
        }
    };
    let host = e.host.as_deref().unwrap_or_default();
    match cell.via {
        Via::Address => connect(None),
        Via::Lookup => lookup(host).map(|(verdict, _)| CellVerdict {
            verdict,
            ip_dependent: false,
        }),
        Via::Name => match lookup(host)? {
            (Verdict::Deny, _) => Ok(CellVerdict {
                verdict: Verdict::Deny,
                ip_dependent: false,
            }),
            (Verdict::Allow, proxied) => {
                let fact = e.address.map(|address| NameFact {
                    name: host.to_string(),
                    address,
                });
                let seen = fact.as_ref().filter(|_| proxied == Some(true));
                connect(seen)
            }
        },
        other => Err(format!(
            "{} probes reach pods, not external endpoints",
            other.as_str()
        )),
    }
}

/// What the oracle may assume about DNS names (for `toFQDNs`): the cluster DNS answers each
/// external endpoint's name with its address; a `toFQDNs` rule admits that address for a source
/// that just looked the name up through Cilium's DNS proxy ([`NameFacts::Answered`]). Without
/// such endpoints, nothing is known and `toFQDNs` peers are not judged.
pub fn name_facts(topology: &Topology) -> NameFacts {
    let facts: Vec<NameFact> = topology
        .externals
        .iter()
        .filter_map(|e| {
            Some(NameFact {
                name: e.host.clone()?,
                address: e.address?,
            })
        })
        .collect();
    if facts.is_empty() {
        NameFacts::Unknown
    } else {
        NameFacts::Answered(facts)
    }
}

impl Scenario {
    /// The scenario's plan over its own (synthetic) topology.
    pub fn plan(&self) -> Result<Vec<StepPlan>, WalkError> {
        walk(self, &self.topology)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::PinVerdict;

    // The fast rejection of a pin never rejects what its glob matches: every text a glob
    // matches starts with the glob's literal prefix.
    #[test]
    fn a_globs_literal_prefix_starts_every_text_it_matches() {
        for (glob, prefix) in [
            ("*/*", ""),
            ("project-007/*", "project-007/"),
            ("x/?b", "x/"),
            ("x/a", "x/a"),
            ("external/*", "external/"),
        ] {
            assert_eq!(literal_prefix(glob), prefix);
        }
        for (glob, text) in [
            ("x/*", "x/a"),
            ("x/?", "x/b"),
            ("*/a", "y/a"),
            ("x/a", "x/a"),
        ] {
            assert!(glob_match(glob, text) && text.starts_with(literal_prefix(glob)));
        }
    }

    // The index only narrows which pins are looked at: for every cell it picks the pin that
    // the last-pin-wins rule over all pins picks (DESIGN §3: later pins win).
    #[test]
    fn the_pin_index_picks_the_pin_a_scan_of_every_pin_picks() {
        let pin = |from: &str, to: &str, verdict| CellPin {
            from: from.into(),
            to: to.into(),
            port: None,
            protocol: None,
            via: None,
            verdict,
        };
        let expect = Expect {
            default: ExpectDefault::Deny,
            cells: vec![
                pin("*/*", "*/*", PinVerdict::Deny),
                pin("project-a/*", "project-a/*", PinVerdict::Allow),
                pin("*/workspace", "project-b/*", PinVerdict::Allow),
                pin("project-b/*", "project-b/*", PinVerdict::Allow),
                pin("project-?/shared", "*/*", PinVerdict::Deny),
                pin("project-a/shared", "project-b/workspace", PinVerdict::Allow),
                pin("proj*", "project-c/*", PinVerdict::Allow),
                pin("outside/vantage", "*/*", PinVerdict::Allow),
            ],
        };
        let index = PinIndex::new(&expect);
        let names = [
            "project-a/workspace",
            "project-a/shared",
            "project-b/workspace",
            "project-b/shared",
            "project-c/workspace",
            "outside/vantage",
        ];
        let mut checked = 0;
        for from in names {
            for to in names {
                let cell = Cell {
                    from: from.parse().expect("pod ref"),
                    to: to.parse().expect("pod ref"),
                    port: 8080,
                    port_name: None,
                    protocol: Protocol::Tcp,
                    via: Via::PodIp,
                    loopback: false,
                };
                let scan = expect
                    .cells
                    .iter()
                    .enumerate()
                    .rev()
                    .find(|(_, p)| p.matches(&cell))
                    .map(|(k, p)| (p.verdict.fixed().expect("fixed"), Some(k)))
                    .unwrap_or((Verdict::Deny, None));
                assert_eq!(index.pinned(&cell, |_| None), Some(scan), "{from} -> {to}");
                checked += 1;
            }
        }
        assert_eq!(checked, 36);
        // Pins 0, 2, 4 and 6 have a wildcard in their source namespace; the others are looked
        // at only for cells from the namespace they name.
        assert_eq!(index.wildcard, vec![0, 2, 4, 6]);
        assert_eq!(index.by_from_namespace.get("project-a"), Some(&vec![1, 5]));
    }

    fn scenario(steps: &str) -> Scenario {
        let text = format!(
            "name: t\ntags: [core]\nprobe: {{ports: [80], protocols: [TCP]}}\nsteps:\n{steps}"
        );
        super::super::load_str("t.yaml", &text).expect("scenario")
    }

    fn changed(s: &Scenario) -> Vec<Vec<(String, String)>> {
        let plans = s.plan().expect("plan");
        plans
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let before = i.checked_sub(1).map(|k| &plans[k]);
                changed_cells(s.mode, before, &s.topology, p)
                    .iter()
                    .zip(&p.cells)
                    .filter(|(c, _)| **c)
                    .map(|(_, c)| (c.cell.from.to_string(), c.cell.to.to_string()))
                    .collect()
            })
            .collect()
    }

    // DESIGN §7b: a step changes the cells whose verdict differs from the state before it;
    // the first step starts from the deployed fixture, where everything is allowed.
    #[test]
    fn changed_cells_are_the_verdicts_a_step_flips() {
        let s = scenario(
            "  - name: deny into x/a
    apply:
      - {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy,
         metadata: {name: p, namespace: x},
         spec: {podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress]}}
  - name: same again (nothing changes)
    apply:
      - {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy,
         metadata: {name: p, namespace: x},
         spec: {podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress]}}
  - name: removed
    delete: [x/p]
",
        );
        let c = changed(&s);
        // Eight sources into x/a (x/a -> x/a is loopback but still denied by the oracle).
        assert_eq!(c[0].len(), 9);
        assert!(c[0].iter().all(|(_, to)| to == "x/a"));
        assert!(c[1].is_empty());
        assert_eq!(c[2], c[0]);
    }
}
