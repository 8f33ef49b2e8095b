//! Text rendering for the terminal: upstream-style truth tables and oracle explanations.

use crate::scenario::{ExpectedCell, StepPlan};
use netassay_core::model::{PodRef, Protocol, Verdict, Via};
use netassay_core::policy::oracle::{MissReason, RuleMatch, SideReport};
use netassay_core::policy::{Direction, Explanation};
use std::collections::BTreeMap;
use std::fmt::Write as _;

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn rule_name(m: &RuleMatch) -> String {
    let peers = match m.direction {
        Direction::Ingress => "from",
        Direction::Egress => "to",
    };
    let mut s = format!("{} spec.{}[{}]", m.policy, m.direction.as_str(), m.rule);
    let mut parts = Vec::new();
    match m.peer {
        Some(p) => parts.push(format!("{peers}[{p}]")),
        None => parts.push(format!("no `{peers}`: every peer")),
    }
    match m.port {
        Some(p) => parts.push(format!("ports[{p}]")),
        None => parts.push("no `ports`: every port".to_string()),
    }
    let _ = write!(s, " ({})", parts.join(", "));
    s
}

/// The full walkthrough for one cell.
pub fn explanation(
    e: &Explanation,
    from: &PodRef,
    to: &PodRef,
    port: u16,
    protocol: Protocol,
) -> String {
    let mut out = String::new();
    let side = |out: &mut String, s: &SideReport, pod: &PodRef| {
        let dir = s.direction.as_str();
        if s.isolated_by.is_empty() {
            let _ = writeln!(
                out,
                "  {dir} of {pod}: not isolated (no policy selects it for {dir}): allowed"
            );
            return;
        }
        let _ = writeln!(
            out,
            "  {dir} of {pod}: isolated by {}",
            list(&s.isolated_by)
        );
        for m in &s.admitted_by {
            let _ = writeln!(out, "    admitted by {}", rule_name(m));
        }
        for m in &s.missed {
            let why = match m.reason {
                MissReason::Peer => "its peers do not select the other side".to_string(),
                MissReason::Port => {
                    format!("a peer matches but its ports do not cover {port}/{protocol}")
                }
                MissReason::PeerAndPort => {
                    format!("neither its peers nor its ports ({port}/{protocol}) match")
                }
            };
            let _ = writeln!(out, "    {} spec.{dir}[{}]: {why}", m.policy, m.rule);
        }
        for p in &s.isolated_by {
            let has_rules = s.admitted_by.iter().any(|m| &m.policy == p)
                || s.missed.iter().any(|m| &m.policy == p);
            if !has_rules {
                let _ = writeln!(out, "    {p} has no {dir} rules: it only isolates");
            }
        }
        let verdict = if s.allows() { "allowed" } else { "denied" };
        let _ = writeln!(out, "    => {dir} {verdict}");
    };
    side(&mut out, &e.egress, from);
    side(&mut out, &e.ingress, to);
    let _ = writeln!(
        out,
        "  verdict: {} (traffic needs egress at the source and ingress at the destination)",
        e.verdict
    );
    if e.ip_dependent {
        let _ = writeln!(
            out,
            "  note: an ipBlock rule is involved, so the verdict follows the pods' live addresses"
        );
    }
    out
}

/// Upstream-style grids, one per (via, port, protocol): rows are sources, columns destinations;
/// `.` allowed, `X` denied, `-` no such cell (the destination does not serve it).
pub fn grids(plan: &StepPlan) -> String {
    let mut groups: BTreeMap<(Via, Protocol, u16), Vec<&ExpectedCell>> = BTreeMap::new();
    for c in &plan.cells {
        groups
            .entry((c.cell.via, c.cell.protocol, c.cell.port))
            .or_default()
            .push(c);
    }
    let mut out = String::new();
    for ((via, protocol, port), cells) in groups {
        let mut froms: Vec<&PodRef> = cells.iter().map(|c| &c.cell.from).collect();
        let mut tos: Vec<&PodRef> = cells.iter().map(|c| &c.cell.to).collect();
        froms.sort();
        froms.dedup();
        tos.sort();
        tos.dedup();
        let by: BTreeMap<(&PodRef, &PodRef), Verdict> = cells
            .iter()
            .map(|c| ((&c.cell.from, &c.cell.to), c.verdict))
            .collect();
        let width = froms
            .iter()
            .chain(tos.iter())
            .map(|p| p.to_string().len())
            .max()
            .unwrap_or(1)
            .max(1);
        let _ = writeln!(out, "  {port}/{protocol} via {via}");
        let _ = write!(out, "    {:width$}", "-");
        for t in &tos {
            let _ = write!(out, " {:>width$}", t.to_string());
        }
        out.push('\n');
        for f in &froms {
            let _ = write!(out, "    {:width$}", f.to_string());
            for t in &tos {
                let sym = by.get(&(*f, *t)).map(|v| v.symbol()).unwrap_or('-');
                let _ = write!(out, " {:>width$}", sym);
            }
            out.push('\n');
        }
    }
    out
}
