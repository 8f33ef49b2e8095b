//! Upstream-style truth tables of a step (expected, observed, diff) and the list of wrong cells.

use crate::runner::result::{CellResult, CellStatus, StepResult};
use crate::scenario::Cell;
use netassay_core::model::{PodRef, Protocol, Via};
use netassay_core::probe::Outcome;
use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};

/// What one grid is about: a step's cells on one port, protocol and address kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GridKey {
    pub port: u16,
    pub port_name: Option<String>,
    pub protocol: Protocol,
    pub via: Via,
}

impl GridKey {
    pub fn of(cell: &Cell) -> Self {
        GridKey {
            port: cell.port,
            port_name: cell.port_name.clone(),
            protocol: cell.protocol,
            via: cell.via,
        }
    }
}

impl fmt::Display for GridKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol)?;
        if let Some(name) = &self.port_name {
            write!(f, " ({name})")?;
        }
        write!(f, " via {}", self.via)
    }
}

/// `x/a -> x/b 80/TCP via pod-ip`: how every report names one path.
pub fn path(cell: &Cell) -> String {
    format!("{} -> {} {}", cell.from, cell.to, GridKey::of(cell))
}

/// A step's time-to-enforce as every report words it: the figure, its resolution and what it was
/// measured on, e.g. `300 ms (resolution 48 ms, 24 changed paths)`.
pub fn time_to_enforce(r: &StepResult) -> String {
    let ms = |d: std::time::Duration| d.as_millis();
    match (r.time_to_enforce, r.time_to_enforce_resolution) {
        (Some(t), res) => {
            let res = res.map_or(String::new(), |d| format!("resolution {} ms, ", ms(d)));
            if r.changed_cells > 0 {
                format!(
                    "{} ms ({res}{} changed path{})",
                    ms(t),
                    r.changed_cells,
                    if r.changed_cells == 1 { "" } else { "s" }
                )
            } else {
                format!("{} ms ({res}no path changed: its first probes)", ms(t))
            }
        }
        (None, _) if r.time_to_enforce_disturbed > 0 => {
            format!(
            "not measured (the cluster interrupted the series of {} changed path{}: it would time \
             a restart, not the enforcer)",
            r.time_to_enforce_disturbed,
            if r.time_to_enforce_disturbed == 1 { "" } else { "s" }
        )
        }
        (None, _) if r.series_ended_before_changes => {
            "not measured (the step's changes took longer \
             to apply than its series runs: the series saw only the time before them)"
                .into()
        }
        (None, _) if r.has_judged_changed_cells() => "never".into(),
        (None, _) if r.has_judged_cells() => {
            "not measured (no path the step changes was judged)".into()
        }
        (None, _) => "not measured (nothing judged)".into(),
    }
}

/// Which of the three upstream grids to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Expected,
    Observed,
    Diff,
}

impl View {
    pub const ALL: [View; 3] = [View::Expected, View::Observed, View::Diff];

    pub fn as_str(self) -> &'static str {
        match self {
            View::Expected => "expected",
            View::Observed => "observed",
            View::Diff => "diff",
        }
    }
}

/// A cell that went wrong: a mismatch, or a probe that kept failing or being interrupted.
pub fn is_wrong(status: CellStatus) -> bool {
    status.is_failure() || status.is_unanswered()
}

/// `.` allow, `X` deny.
pub fn expected_mark(cell: &CellResult) -> char {
    if cell.expected.verdict.is_allow() {
        '.'
    } else {
        'X'
    }
}

/// `.` connected, `X` dropped or rejected, `E` error or wrong peer, `I` interrupted by the
/// cluster, `U` unsupported, `?` no result.
pub fn observed_mark(cell: &CellResult) -> char {
    match cell.observed() {
        None => '?',
        Some(Outcome::Connected) => '.',
        Some(Outcome::Dropped | Outcome::Rejected) => 'X',
        Some(Outcome::WrongPeer | Outcome::DnsFailed | Outcome::Error) => 'E',
        Some(Outcome::Unsupported) => 'U',
        Some(Outcome::Interrupted) => 'I',
    }
}

/// `.` match, `X` mismatch (fail or flapping), `E` probe error, `I` interrupted by the cluster,
/// `U` unsupported, `_` not judged.
pub fn diff_mark(cell: &CellResult) -> char {
    match cell.status {
        CellStatus::Pass => '.',
        CellStatus::Fail | CellStatus::Flapping => 'X',
        CellStatus::Error => 'E',
        CellStatus::Interrupted => 'I',
        CellStatus::Unsupported => 'U',
        CellStatus::NotJudged => '_',
    }
}

/// Marks for a pair the step did not probe on this port.
const ABSENT: char = '-';

pub const LEGEND: &str =
    "legend: expected . allow X deny | observed . connected X dropped/rejected \
E error/wrong peer I interrupted U unsupported ? no result | diff . match X mismatch E error \
I interrupted by the cluster U unsupported _ not judged | - not probed";

const RED: &str = "\x1b[1;31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// The ANSI colour a mark gets in a view, if any: only what needs attention stands out.
fn colour(view: View, cell: &CellResult) -> Option<&'static str> {
    match (view, cell.status) {
        (View::Expected, _) => None,
        (_, CellStatus::Fail | CellStatus::Flapping) => Some(RED),
        (_, CellStatus::Error | CellStatus::Interrupted) => Some(YELLOW),
        (_, CellStatus::Unsupported | CellStatus::NotJudged) => Some(DIM),
        (View::Diff, CellStatus::Pass) => Some(GREEN),
        (View::Observed, CellStatus::Pass) => None,
    }
}

/// One port's cells of a step, laid out as sources × destinations.
#[derive(Debug, Clone)]
pub struct Grid<'a> {
    pub key: GridKey,
    pub sources: Vec<PodRef>,
    pub destinations: Vec<PodRef>,
    cells: HashMap<(usize, usize), &'a CellResult>,
}

impl<'a> Grid<'a> {
    /// The cell at row `source`, column `destination`, when it was probed.
    pub fn get(&self, source: usize, destination: usize) -> Option<&'a CellResult> {
        self.cells.get(&(source, destination)).copied()
    }

    pub fn cells(&self) -> impl Iterator<Item = &'a CellResult> + '_ {
        self.cells.values().copied()
    }

    /// The part of the grid at some of its rows and columns (indices into `sources` and
    /// `destinations`; others are left out), e.g. one namespace's pods to another's.
    pub fn sub(&self, rows: &[usize], cols: &[usize]) -> Grid<'a> {
        let pick = |list: &[PodRef], at: &[usize]| -> Vec<(usize, PodRef)> {
            at.iter()
                .filter_map(|i| list.get(*i).map(|p| (*i, p.clone())))
                .collect()
        };
        let (rows, cols) = (pick(&self.sources, rows), pick(&self.destinations, cols));
        let mut cells = HashMap::new();
        for (r, (from, _)) in rows.iter().enumerate() {
            for (c, (to, _)) in cols.iter().enumerate() {
                if let Some(cell) = self.get(*from, *to) {
                    cells.insert((r, c), cell);
                }
            }
        }
        Grid {
            key: self.key.clone(),
            sources: rows.into_iter().map(|(_, p)| p).collect(),
            destinations: cols.into_iter().map(|(_, p)| p).collect(),
            cells,
        }
    }

    pub fn has_wrong(&self) -> bool {
        self.cells().any(|c| is_wrong(c.status))
    }

    fn mark(&self, view: View, r: usize, c: usize, color: bool) -> String {
        let Some(cell) = self.get(r, c) else {
            return ABSENT.to_string();
        };
        let m = match view {
            View::Expected => expected_mark(cell),
            View::Observed => observed_mark(cell),
            View::Diff => diff_mark(cell),
        };
        match colour(view, cell).filter(|_| color) {
            Some(code) => format!("{code}{m}{RESET}"),
            None => m.to_string(),
        }
    }

    /// The grid as upstream prints it: a `-` corner, destinations across, sources down.
    pub fn render(&self, view: View, color: bool) -> String {
        let row_w = self
            .sources
            .iter()
            .map(|p| p.to_string().len())
            .max()
            .unwrap_or(1)
            .max(1);
        let col_w = self
            .destinations
            .iter()
            .map(|p| p.to_string().len())
            .max()
            .unwrap_or(1);
        let mut out = String::new();
        let title = format!("{} ({}):", view.as_str(), self.key);
        if color {
            let _ = writeln!(out, "{BOLD}{title}{RESET}");
        } else {
            let _ = writeln!(out, "{title}");
        }
        let _ = write!(out, "{:<row_w$}", "-");
        for d in &self.destinations {
            let _ = write!(out, "  {:<col_w$}", d.to_string());
        }
        out.push('\n');
        for (r, s) in self.sources.iter().enumerate() {
            let _ = write!(out, "{:<row_w$}", s.to_string());
            for c in 0..self.destinations.len() {
                // Pad outside the colour codes so columns stay aligned.
                let _ = write!(
                    out,
                    "  {}{}",
                    self.mark(view, r, c, color),
                    " ".repeat(col_w - 1)
                );
            }
            // Trailing spaces would be noise in JUnit bodies and diffs.
            let trimmed = out.trim_end_matches(' ').len();
            out.truncate(trimmed);
            out.push('\n');
        }
        out
    }
}

/// The step's grids, one per port/protocol/address kind, in port order. Sources and destinations
/// follow one order (first appearance in the step), so a square matrix keeps its diagonal.
pub fn grids(step: &StepResult) -> Vec<Grid<'_>> {
    let mut order: Vec<&PodRef> = Vec::new();
    for c in &step.cells {
        for p in [&c.expected.cell.from, &c.expected.cell.to] {
            if !order.contains(&p) {
                order.push(p);
            }
        }
    }
    let mut by_key: BTreeMap<GridKey, Vec<&CellResult>> = BTreeMap::new();
    for cell in &step.cells {
        by_key
            .entry(GridKey::of(&cell.expected.cell))
            .or_default()
            .push(cell);
    }
    by_key
        .into_iter()
        .map(|(key, cells)| {
            let pick = |side: fn(&CellResult) -> &PodRef| -> Vec<PodRef> {
                order
                    .iter()
                    .filter(|p| cells.iter().any(|c| side(c) == **p))
                    .map(|p| (*p).clone())
                    .collect()
            };
            let sources = pick(|c| &c.expected.cell.from);
            let destinations = pick(|c| &c.expected.cell.to);
            let at = |list: &[PodRef], p: &PodRef| list.iter().position(|q| q == p);
            let cells = cells
                .into_iter()
                .filter_map(|c| {
                    let r = at(&sources, &c.expected.cell.from)?;
                    let d = at(&destinations, &c.expected.cell.to)?;
                    Some(((r, d), c))
                })
                .collect();
            Grid {
                key,
                sources,
                destinations,
                cells,
            }
        })
        .collect()
}

/// Expected, observed and diff grids for each port of the step (only ports with wrong cells
/// when `only_wrong`), followed by the legend.
pub fn truth_tables(step: &StepResult, color: bool, only_wrong: bool) -> String {
    let mut out = String::new();
    for grid in grids(step).iter().filter(|g| !only_wrong || g.has_wrong()) {
        for view in View::ALL {
            out.push_str(&grid.render(view, color));
            out.push('\n');
        }
    }
    if !out.is_empty() {
        out.push_str(LEGEND);
        out.push('\n');
    }
    out
}

/// The attempt count and last outcome of a cell, as `connected ("detail")`.
pub fn observed_text(cell: &CellResult) -> String {
    match cell.attempts.last() {
        None => "nothing (no attempt)".to_string(),
        Some(a) if a.detail.is_empty() => a.outcome.to_string(),
        Some(a) => format!("{} ({:?})", a.outcome, a.detail),
    }
}

/// How many wrong paths of one step the terminal and the HTML report list; the JSON results
/// and the JUnit report list every one. A step of 10,000 paths that all went wrong made an HTML
/// report of 95 MB.
pub const LISTED_WRONG_PATHS: usize = 100;

/// One line per wrong cell: path, expected, observed, status and attempts; the oracle's reason
/// indented below when there is one. Empty when nothing went wrong. At most `limit` cells, then
/// a line with how many more there are and where they are.
pub fn compact_diff(step: &StepResult, color: bool, limit: usize) -> String {
    let mut out = String::new();
    let wrong = step.cells.iter().filter(|c| is_wrong(c.status)).count();
    for cell in step.cells.iter().filter(|c| is_wrong(c.status)).take(limit) {
        let status = status_name(cell.status);
        let status = if !color {
            status.to_string()
        } else if cell.status.is_unanswered() {
            format!("{YELLOW}{status}{RESET}")
        } else {
            format!("{RED}{status}{RESET}")
        };
        let _ = writeln!(
            out,
            "{}: expected {}, observed {} [{}, {} attempt{}]",
            path(&cell.expected.cell),
            cell.expected.verdict,
            observed_text(cell),
            status,
            cell.attempts.len(),
            if cell.attempts.len() == 1 { "" } else { "s" }
        );
        if let Some(why) = &cell.explanation {
            let _ = writeln!(out, "    because: {why}");
        }
        if let Some(account) = &cell.cni_account {
            let _ = writeln!(out, "    the CNI's account: {account}");
        }
    }
    if wrong > limit {
        let _ = writeln!(
            out,
            "... and {} more wrong path{} (every one is in the JSON results and the JUnit report)",
            wrong - limit,
            if wrong - limit == 1 { "" } else { "s" }
        );
    }
    out
}

/// The kebab-case name of a status, as the JSON results spell it.
pub fn status_name(status: CellStatus) -> &'static str {
    match status {
        CellStatus::Pass => "pass",
        CellStatus::Fail => "fail",
        CellStatus::Flapping => "flapping",
        CellStatus::Error => "error",
        CellStatus::Interrupted => "interrupted",
        CellStatus::Unsupported => "unsupported",
        CellStatus::NotJudged => "not-judged",
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! The smallest worlds the report tests need: single cells and steps built from them.

    use crate::runner::result::{Attempt, CellResult, CellStatus, StepResult};
    use crate::scenario::plan::Source;
    use crate::scenario::{Cell, ExpectedCell};
    use netassay_core::model::{PodRef, Protocol, Verdict, Via};
    use netassay_core::probe::Outcome;
    use std::time::Duration;

    pub fn cell(
        from: &str,
        to: &str,
        verdict: Verdict,
        status: CellStatus,
        outcomes: &[Outcome],
    ) -> CellResult {
        let (from, to): (PodRef, PodRef) = (from.parse().unwrap(), to.parse().unwrap());
        CellResult {
            expected: ExpectedCell {
                cell: Cell {
                    loopback: from == to,
                    from,
                    to,
                    port: 80,
                    port_name: None,
                    protocol: Protocol::Tcp,
                    via: Via::PodIp,
                },
                verdict,
                ip_dependent: false,
                source: Source::Oracle,
            },
            status,
            attempts: outcomes
                .iter()
                .enumerate()
                .map(|(i, o)| Attempt {
                    round: i as u32 + 1,
                    at_ms: 100 * i as i64,
                    outcome: *o,
                    detail: String::new(),
                    elapsed_ms: 3,
                    peer_identity: None,
                    seq: None,
                })
                .collect(),
            explanation: None,
            cni_account: None,
            changed: false,
            time_to_enforce: None,
            time_to_enforce_resolution: None,
        }
    }

    pub fn step(cells: Vec<CellResult>) -> StepResult {
        StepResult {
            cells,
            time_to_enforce: Some(Duration::from_millis(250)),
            time_to_enforce_resolution: Some(Duration::from_millis(50)),
            changed_cells: 1,
            time_to_enforce_disturbed: 0,
            series_ended_before_changes: false,
            rounds: 2,
            resilience: Default::default(),
            load: Default::default(),
        }
    }

    pub fn pass(from: &str, to: &str, verdict: Verdict) -> CellResult {
        let o = if verdict.is_allow() {
            Outcome::Connected
        } else {
            Outcome::Dropped
        };
        cell(from, to, verdict, CellStatus::Pass, &[o])
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{cell, pass, step};
    use super::*;
    use netassay_core::model::Verdict;

    #[test]
    fn grids_put_sources_down_and_destinations_across() {
        let s = step(vec![
            pass("x/a", "x/a", Verdict::Allow),
            pass("x/a", "x/b", Verdict::Deny),
            pass("x/b", "x/a", Verdict::Allow),
            pass("x/b", "x/b", Verdict::Allow),
        ]);
        let g = grids(&s);
        assert_eq!(g.len(), 1);
        assert_eq!(
            g[0].render(View::Expected, false),
            "expected (80/TCP via pod-ip):\n-    x/a  x/b\nx/a  .    X\nx/b  .    .\n"
        );
    }

    #[test]
    fn observed_marks_say_what_happened_not_what_was_judged() {
        let s = step(vec![
            cell(
                "x/a",
                "x/b",
                Verdict::Deny,
                CellStatus::Fail,
                &[Outcome::Connected],
            ),
            cell(
                "x/a",
                "x/c",
                Verdict::Deny,
                CellStatus::Pass,
                &[Outcome::Rejected],
            ),
            cell(
                "x/a",
                "x/d",
                Verdict::Allow,
                CellStatus::Error,
                &[Outcome::WrongPeer],
            ),
            cell(
                "x/a",
                "x/e",
                Verdict::Allow,
                CellStatus::Unsupported,
                &[Outcome::Unsupported],
            ),
            cell("x/a", "x/f", Verdict::Allow, CellStatus::Error, &[]),
        ]);
        let g = grids(&s);
        let row = g[0].render(View::Observed, false);
        assert!(row.ends_with("x/a  .    X    E    U    ?\n"), "{row}");
        let diff = g[0].render(View::Diff, false);
        assert!(diff.ends_with("x/a  X    .    E    U    E\n"), "{diff}");
    }

    #[test]
    fn pairs_not_probed_on_a_port_show_a_dash() {
        let mut other = pass("x/b", "x/a", Verdict::Allow);
        other.expected.cell.port = 81;
        let s = step(vec![
            pass("x/a", "x/b", Verdict::Allow),
            pass("x/b", "x/a", Verdict::Allow),
            other,
        ]);
        let g = grids(&s);
        assert_eq!(g.len(), 2, "one grid per port");
        assert!(g[0].render(View::Expected, false).contains("x/a  -    ."));
        assert!(g[1].render(View::Expected, false).contains("81/TCP"));
    }

    #[test]
    fn colour_codes_appear_only_when_asked_and_keep_columns_aligned() {
        let s = step(vec![
            cell(
                "x/a",
                "x/b",
                Verdict::Deny,
                CellStatus::Fail,
                &[Outcome::Connected],
            ),
            pass("x/a", "x/c", Verdict::Allow),
        ]);
        let plain = truth_tables(&s, false, false);
        assert!(!plain.contains('\x1b'));
        let coloured = truth_tables(&s, true, false);
        assert!(coloured.contains("\x1b[1;31mX\x1b[0m"));
        let stripped: String = coloured
            .replace(RED, "")
            .replace(GREEN, "")
            .replace(BOLD, "")
            .replace(RESET, "");
        assert_eq!(stripped, plain);
    }

    #[test]
    fn compact_diff_lists_only_wrong_cells_with_the_oracles_reason() {
        let mut wrong = cell(
            "x/a",
            "x/b",
            Verdict::Deny,
            CellStatus::Flapping,
            &[Outcome::Dropped, Outcome::Connected],
        );
        wrong.explanation = Some("ingress isolated by x/deny and no rule admits it".into());
        let s = step(vec![wrong, pass("x/a", "x/c", Verdict::Allow)]);
        assert_eq!(
            compact_diff(&s, false, LISTED_WRONG_PATHS),
            "x/a -> x/b 80/TCP via pod-ip: expected deny, observed connected [flapping, 2 attempts]\n    because: ingress isolated by x/deny and no rule admits it\n"
        );
        assert_eq!(
            compact_diff(
                &step(vec![pass("x/a", "x/c", Verdict::Allow)]),
                false,
                LISTED_WRONG_PATHS
            ),
            ""
        );
    }

    // A step where thousands of paths went wrong lists the first ones and says how many more
    // there are and where: the terminal and the HTML report stay readable.
    #[test]
    fn compact_diff_lists_at_most_its_limit_and_counts_the_rest() {
        let wrong = |to: &str| {
            cell(
                "x/a",
                to,
                Verdict::Deny,
                CellStatus::Fail,
                &[Outcome::Connected],
            )
        };
        let s = step(vec![
            wrong("x/b"),
            wrong("x/c"),
            pass("y/a", "x/b", Verdict::Allow),
            wrong("y/b"),
        ]);
        let text = compact_diff(&s, false, 2);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("x/a -> x/b") && lines[1].starts_with("x/a -> x/c"));
        assert_eq!(
            lines[2],
            "... and 1 more wrong path (every one is in the JSON results and the JUnit report)"
        );
        assert_eq!(compact_diff(&s, false, 3).lines().count(), 3);
    }

    #[test]
    fn only_wrong_keeps_just_the_ports_that_went_wrong() {
        let mut ok = pass("x/a", "x/b", Verdict::Allow);
        ok.expected.cell.port = 81;
        let s = step(vec![
            ok,
            cell(
                "x/a",
                "x/b",
                Verdict::Deny,
                CellStatus::Fail,
                &[Outcome::Connected],
            ),
        ]);
        let t = truth_tables(&s, false, true);
        assert!(t.contains("80/TCP") && !t.contains("81/TCP"), "{t}");
        assert_eq!(truth_tables(&step(vec![]), false, false), "");
    }

    #[test]
    fn named_ports_are_shown_with_their_number() {
        let mut c = pass("x/a", "x/b", Verdict::Allow);
        c.expected.cell.port_name = Some("serve-80-tcp".into());
        c.expected.cell.via = Via::ServiceDns;
        assert_eq!(
            path(&c.expected.cell),
            "x/a -> x/b 80/TCP (serve-80-tcp) via service-dns"
        );
    }
}
