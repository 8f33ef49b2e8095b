//! The heat maps of a step's grids. A grid of at most [`FULL_GRID_MAX_SIDE`] pods a side is drawn
//! cell by cell (expected and observed); a larger one (the isolation matrix grows as the square of
//! the projects) as namespace × namespace blocks, and each block holding a path that did not pass
//! is drawn again per pod below it, with its paths listed. A block never reads as passed unless
//! every path in it passed, and a failure is never aggregated away: its block is outlined in red,
//! opens by itself and lists it.
//!
//! Colours, outlines and text placement are CSS classes (see [`STYLE`]), not attributes repeated
//! on each of thousands of cells.

use super::escape::esc;
use crate::report::table::{expected_mark, observed_mark, path, status_name, Grid, View};
use crate::runner::result::{Attempt, CellResult, CellStatus};
use netassay_core::model::PodRef;
use std::fmt::Write as _;

/// Above this many sources or destinations, a grid is drawn as namespace blocks.
pub const FULL_GRID_MAX_SIDE: usize = 32;

pub const ALLOW: &str = "#a5d6a7";
pub const DENY: &str = "#546e7a";
pub const ERROR: &str = "#ffb74d";
pub const UNSUPPORTED: &str = "#cfd8dc";
pub const MISSING: &str = "#ffffff";
pub const WRONG: &str = "#d50000";
pub const ERROR_EDGE: &str = "#e65100";
/// A block whose paths do not all have the same expected or observed verdict.
pub const MIXED: &str = "#b39ddb";

/// The heat maps' share of the page's style sheet: one class per fill and per outline.
/// A mark (`rect + text`) is centred and lets the pointer through to its cell's tooltip.
pub const STYLE: &str = "\
svg.hm rect{stroke-width:0}
svg.hm .r{text-anchor:end}
svg.hm rect+text{text-anchor:middle;pointer-events:none}
svg.hm .a{fill:#a5d6a7}svg.hm .d{fill:#546e7a}svg.hm rect.d+text{fill:#fff}
svg.hm .e{fill:#ffb74d}svg.hm .u{fill:#cfd8dc}svg.hm .q{fill:#fff;stroke:#999;stroke-width:1}
svg.hm .mx{fill:#b39ddb}svg.hm .x{fill:#f1f3f5}
svg.hm .wrong{stroke:#d50000;stroke-width:3}svg.hm .flap{stroke-dasharray:4 2}
svg.hm .err{stroke:#e65100;stroke-width:2}
svg.hm .n,svg.hm .n+text{opacity:.45}
svg.hm text.sm{font-size:8px}
details.blocks{margin:6px 0 4px}details.blocks>summary{cursor:pointer;font-size:13px}
details.block{margin:4px 0 4px 16px}details.block>summary{cursor:pointer;font-size:13px}
details.block table.list td{font-size:12px}
";

const CELL: usize = 22;
const CHAR_W: usize = 7;

/// How many of a large grid's paths its drill-downs draw per pod, failures first; the blocks past
/// it are listed path by path but not drawn (a grid where everything failed would otherwise be
/// drawn twice over).
const DRAWN_PATHS: usize = 2_000;
/// How many drill-downs with a failure open by themselves; the others are one click away, their
/// summary counting what failed.
const OPEN_BLOCKS: usize = 20;

/// How many lines of attempts a tooltip has (each a run of like attempts); the JSON results keep
/// every attempt.
const TOOLTIP_LINES: usize = 8;
/// A run of more like attempts than this is given as its first and last time.
const RUN_TIMES: usize = 4;

/// One grid of a step: its maps, cell by cell or as namespace blocks with their drill-down.
/// `id` is unique in the page; blocks link to their drill-down with it.
pub fn figure(out: &mut String, g: &Grid<'_>, id: &str) {
    if g.sources.len() <= FULL_GRID_MAX_SIDE && g.destinations.len() <= FULL_GRID_MAX_SIDE {
        let _ = writeln!(
            out,
            "<figure><figcaption>{}</figcaption><div class=\"maps\">{}{}</div></figure>",
            esc(&g.key.to_string()),
            heat_map(g, View::Expected),
            heat_map(g, View::Observed)
        );
    } else {
        blocks_figure(out, g, id);
    }
}

/// The fill class of a cell's mark: `.` allow / connected, `X` deny / dropped, `E`/`I` error or
/// interrupted, `U`/`_` unsupported or not judged, else no result.
fn fill_class(mark: char) -> &'static str {
    match mark {
        '.' => "a",
        'X' => "d",
        'E' | 'I' => "e",
        'U' | '_' => "u",
        _ => "q",
    }
}

/// The outline (or fading) class a status gives its cell or block; empty for a pass.
fn status_class(status: CellStatus) -> &'static str {
    match status {
        CellStatus::Fail => " wrong",
        CellStatus::Flapping => " wrong flap",
        CellStatus::Error | CellStatus::Interrupted => " err",
        // Faded: shown for completeness, not part of the verdict.
        CellStatus::NotJudged | CellStatus::Unsupported => " n",
        CellStatus::Pass => "",
    }
}

fn mark(view: View, c: &CellResult) -> char {
    match view {
        View::Expected => expected_mark(c),
        View::Observed | View::Diff => observed_mark(c),
    }
}

/// A cell's tooltip: its path and expectation, and in the observed view what was seen, with
/// consecutive attempts of one round that saw the same thing on one line.
fn tooltip(view: View, c: &CellResult) -> String {
    let mut t = format!(
        "{}\nexpected: {}",
        path(&c.expected.cell),
        c.expected.verdict
    );
    if view == View::Expected {
        return t;
    }
    let _ = write!(
        t,
        "\nobserved: {} ({})\nattempts: {}",
        crate::report::table::observed_text(c),
        status_name(c.status),
        c.attempts.len()
    );
    let runs = runs(&c.attempts);
    for run in runs.iter().take(TOOLTIP_LINES) {
        attempt_line(&mut t, run);
    }
    if runs.len() > TOOLTIP_LINES {
        let rest: usize = runs[TOOLTIP_LINES..].iter().map(|r| r.len()).sum();
        let _ = write!(t, "\n  … {rest} more");
    }
    if let Some(why) = &c.explanation {
        let _ = write!(t, "\nwhy: {why}");
    }
    if let Some(account) = &c.cni_account {
        let _ = write!(t, "\nthe CNI's account: {account}");
    }
    t
}

/// Consecutive attempts of one round with the same outcome and detail.
fn runs(attempts: &[Attempt]) -> Vec<&[Attempt]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=attempts.len() {
        let same = attempts.get(i).is_some_and(|a| {
            let first = &attempts[start];
            a.round == first.round && a.outcome == first.outcome && a.detail == first.detail
        });
        if !same {
            out.push(&attempts[start..i]);
            start = i;
        }
    }
    out
}

/// `round 1 at 5 ms: dropped in 1001 ms, detail` for one attempt; for a few,
/// `round 1, 3 × at -384/-329/-283 ms: dropped in 1001 ms, detail` (one duration when they all
/// took as long); for more, `round 1, 12 × from -1004 to -493 ms: connected in 1–51 ms, detail`.
fn attempt_line(t: &mut String, run: &[Attempt]) {
    let (Some(first), Some(last)) = (run.first(), run.last()) else {
        return;
    };
    let join = |f: &dyn Fn(&Attempt) -> u64| {
        run.iter()
            .map(|a| f(a).to_string())
            .collect::<Vec<_>>()
            .join("/")
    };
    let (fastest, slowest) = run.iter().fold((u64::MAX, 0), |(lo, hi), a| {
        (lo.min(a.elapsed_ms), hi.max(a.elapsed_ms))
    });
    let took = if fastest == slowest {
        fastest.to_string()
    } else if run.len() > RUN_TIMES {
        format!("{fastest}–{slowest}")
    } else {
        join(&|a| a.elapsed_ms)
    };
    let _ = match run.len() {
        1 => write!(t, "\n  round {} at {} ms", first.round, first.at_ms),
        n if n <= RUN_TIMES => write!(
            t,
            "\n  round {}, {n} × at {} ms",
            first.round,
            run.iter()
                .map(|a| a.at_ms.to_string())
                .collect::<Vec<_>>()
                .join("/")
        ),
        n => write!(
            t,
            "\n  round {}, {n} × from {} to {} ms",
            first.round, first.at_ms, last.at_ms
        ),
    };
    let _ = write!(t, ": {} in {took} ms", first.outcome);
    if !first.detail.is_empty() {
        let _ = write!(t, ", {}", first.detail);
    }
}

/// The opening of a heat map's SVG with its title, and the label column and row sizes.
fn svg_open(
    s: &mut String,
    class: &str,
    label: &str,
    title: &str,
    rows: &[String],
    cols: &[String],
) -> (usize, usize) {
    let longest = |v: &[String]| v.iter().map(|p| p.chars().count()).max().unwrap_or(1);
    let left = longest(rows) * CHAR_W + 10;
    let top = longest(cols) * CHAR_W + 24;
    let width = left + cols.len() * CELL + 6;
    let height = top + rows.len() * CELL + 6;
    let _ = write!(
        s,
        "<svg class=\"hm {class}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{}\">\
         <text x=\"0\" y=\"12\" font-weight=\"bold\">{}</text>",
        esc(label),
        esc(title)
    );
    for (i, d) in cols.iter().enumerate() {
        let x = left + i * CELL + CELL / 2 + 4;
        let _ = write!(
            s,
            "<text transform=\"translate({x},{}) rotate(-90)\">{}</text>",
            top - 4,
            esc(d)
        );
    }
    (left, top)
}

fn row_label(s: &mut String, left: usize, y: usize, label: &str) {
    let _ = write!(
        s,
        "<text class=\"r\" x=\"{}\" y=\"{}\">{}</text>",
        left - 6,
        y + CELL / 2 + 4,
        esc(label)
    );
}

fn absent(s: &mut String, x: usize, y: usize) {
    let _ = write!(
        s,
        "<rect class=\"x\" x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{w}\" rx=\"3\"/>",
        w = CELL - 2
    );
}

/// One square with its tooltip and mark; the mark sits on top but lets the pointer through.
fn square(s: &mut String, x: usize, y: usize, class: &str, title: &str, text: &str) {
    let _ = write!(
        s,
        "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{w}\" height=\"{w}\" rx=\"3\"><title>{}</title></rect>",
        x + 1,
        y + 1,
        esc(title),
        w = CELL - 4
    );
    if !text.is_empty() {
        let small = if text.chars().count() > 2 {
            " class=\"sm\""
        } else {
            ""
        };
        let _ = write!(
            s,
            "<text{small} x=\"{}\" y=\"{}\">{}</text>",
            x + CELL / 2,
            y + CELL / 2 + 4,
            esc(text)
        );
    }
}

/// One grid as an inline SVG: sources down, destinations across, wrong cells outlined in red.
pub fn heat_map(g: &Grid<'_>, view: View) -> String {
    let names = |v: &[PodRef]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    let (rows, cols) = (names(&g.sources), names(&g.destinations));
    let mut s = String::new();
    let label = format!("{} {}", view.as_str(), g.key);
    let (left, top) = svg_open(&mut s, view.as_str(), &label, view.as_str(), &rows, &cols);
    for (r, src) in rows.iter().enumerate() {
        let y = top + r * CELL;
        row_label(&mut s, left, y, src);
        for c in 0..cols.len() {
            let x = left + c * CELL;
            let Some(cell) = g.get(r, c) else {
                absent(&mut s, x, y);
                continue;
            };
            let m = mark(view, cell);
            let class = format!("{}{}", fill_class(m), status_class(cell.status));
            square(&mut s, x, y, &class, &tooltip(view, cell), &m.to_string());
        }
    }
    s.push_str("</svg>");
    s
}

/// The pods of one side of a grid grouped by namespace, in the grid's order of first appearance.
fn by_namespace(pods: &[PodRef]) -> Vec<(&str, Vec<usize>)> {
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, p) in pods.iter().enumerate() {
        match groups.iter_mut().find(|(ns, _)| *ns == p.namespace) {
            Some((_, members)) => members.push(i),
            None => groups.push((&p.namespace, vec![i])),
        }
    }
    groups
}

/// The order in which a block's worst path decides its outline: a failure before anything else,
/// then flapping, probe trouble, and what was not judged; a block passes only when every path in
/// it passed.
const WORST_FIRST: [CellStatus; 7] = [
    CellStatus::Fail,
    CellStatus::Flapping,
    CellStatus::Error,
    CellStatus::Interrupted,
    CellStatus::Unsupported,
    CellStatus::NotJudged,
    CellStatus::Pass,
];

/// The probed paths from one source namespace to one destination namespace.
struct Block<'a> {
    from: &'a str,
    to: &'a str,
    /// Row and column of the block in the block map.
    at: (usize, usize),
    rows: &'a [usize],
    cols: &'a [usize],
    cells: Vec<&'a CellResult>,
}

impl Block<'_> {
    fn count(&self, status: CellStatus) -> usize {
        self.cells.iter().filter(|c| c.status == status).count()
    }

    fn not_passed(&self) -> usize {
        self.cells
            .iter()
            .filter(|c| c.status != CellStatus::Pass)
            .count()
    }

    fn worst(&self) -> Option<CellStatus> {
        WORST_FIRST.into_iter().find(|st| self.count(*st) > 0)
    }

    fn has_wrong(&self) -> bool {
        self.count(CellStatus::Fail) + self.count(CellStatus::Flapping) > 0
    }

    /// `2 passed, 1 failed, 1 not-judged`, worst first.
    fn statuses(&self) -> String {
        WORST_FIRST
            .into_iter()
            .filter_map(|st| match self.count(st) {
                0 => None,
                n => Some(format!("{n} {}", status_name(st))),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// How many paths have each mark in a view, as `3 allow, 1 deny`.
    fn marks(&self, view: View) -> String {
        let word = |m: char| match (view, m) {
            (View::Expected, '.') => "allow",
            (View::Expected, _) => "deny",
            (_, '.') => "connected",
            (_, 'X') => "dropped or rejected",
            (_, 'E') => "error or wrong peer",
            (_, 'I') => "interrupted",
            (_, 'U') => "unsupported",
            _ => "no result",
        };
        let mut seen: Vec<(char, usize)> = Vec::new();
        for c in &self.cells {
            let m = mark(view, c);
            match seen.iter_mut().find(|(k, _)| *k == m) {
                Some((_, n)) => *n += 1,
                None => seen.push((m, 1)),
            }
        }
        seen.iter()
            .map(|(m, n)| format!("{n} {}", word(*m)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The block's fill: the one mark its paths share, else the most telling one (probe trouble,
    /// then no result, then unsupported), else mixed allow and deny.
    fn fill(&self, view: View) -> (&'static str, char) {
        let marks: Vec<char> = self.cells.iter().map(|c| mark(view, c)).collect();
        match marks.first() {
            Some(first) if marks.iter().all(|m| m == first) => (fill_class(*first), *first),
            _ => ['E', 'I', '?', 'U']
                .into_iter()
                .find(|m| marks.contains(m))
                .map_or(("mx", '±'), |m| (fill_class(m), m)),
        }
    }
}

/// The blocks of a grid, row by row.
fn blocks<'a>(
    g: &Grid<'a>,
    rows: &'a [(&'a str, Vec<usize>)],
    cols: &'a [(&'a str, Vec<usize>)],
) -> Vec<Block<'a>> {
    let mut out = Vec::with_capacity(rows.len() * cols.len());
    for (bi, (from, rs)) in rows.iter().enumerate() {
        for (bj, (to, cs)) in cols.iter().enumerate() {
            let cells = rs
                .iter()
                .flat_map(|r| cs.iter().filter_map(move |c| g.get(*r, *c)))
                .collect();
            out.push(Block {
                from,
                to,
                at: (bi, bj),
                rows: rs,
                cols: cs,
                cells,
            });
        }
    }
    out
}

fn block_id(id: &str, b: &Block<'_>) -> String {
    format!("{id}-b{}-{}", b.at.0, b.at.1)
}

/// A large grid: namespace blocks (expected and observed), then the blocks that hold a path that
/// did not pass, drawn per pod, failures first and open.
fn blocks_figure(out: &mut String, g: &Grid<'_>, id: &str) {
    let rows = by_namespace(&g.sources);
    let cols = by_namespace(&g.destinations);
    let all = blocks(g, &rows, &cols);
    let _ = writeln!(
        out,
        "<figure class=\"aggregated\" id=\"{id}\"><figcaption>{} · {} sources × {} destinations, \
         drawn as {} × {} namespace blocks</figcaption>\
         <p class=\"legend meta\">More than {FULL_GRID_MAX_SIDE} pods a side: each square is every path \
         from one namespace to another. Colour as for cells when its paths agree, \
         <span style=\"background:{MIXED}\"></span>mixed when they differ; \
         outlined and faded as its worst path; the number counts its paths that did not pass \
         (hover for all counts). A block with such a path is drawn per pod below.</p>\
         <div class=\"maps\">{}{}</div>",
        esc(&g.key.to_string()),
        g.sources.len(),
        g.destinations.len(),
        rows.len(),
        cols.len(),
        block_map(g, &all, &rows, &cols, View::Expected, id),
        block_map(g, &all, &rows, &cols, View::Observed, id),
    );
    let mut flagged: Vec<&Block<'_>> = all.iter().filter(|b| b.not_passed() > 0).collect();
    // Failures first, then the rest in the map's order.
    flagged.sort_by_key(|b| {
        WORST_FIRST
            .iter()
            .position(|st| Some(*st) == b.worst())
            .unwrap_or(WORST_FIRST.len())
    });
    if flagged.is_empty() {
        out.push_str(
            "<p class=\"meta\">Every path in every block passed; the JSON report has each path's \
             attempts.</p></figure>\n",
        );
        return;
    }
    let wrong = flagged.iter().filter(|b| b.has_wrong()).count();
    let not_passed: usize = flagged.iter().map(|b| b.not_passed()).sum();
    let _ = writeln!(
        out,
        "<details class=\"blocks\"{}><summary>{} block(s) with {not_passed} path(s) that did not \
         pass, {wrong} of them with a failure: drawn per pod</summary>",
        if wrong > 0 { " open" } else { "" },
        flagged.len(),
    );
    let mut budget = DRAWN_PATHS;
    let mut undrawn = 0;
    for (i, b) in flagged.iter().enumerate() {
        let draw = b.cells.len() <= budget;
        if draw {
            budget -= b.cells.len();
        } else {
            undrawn += 1;
        }
        let open = b.has_wrong() && i < OPEN_BLOCKS;
        drill_down(out, g, b, &block_id(id, b), open, draw);
    }
    if undrawn > 0 {
        let _ = writeln!(
            out,
            "<p class=\"meta\">{undrawn} block(s) are listed path by path but not drawn per pod: \
             the first {DRAWN_PATHS} paths are drawn, failures first.</p>"
        );
    }
    out.push_str("</details></figure>\n");
}

/// One block's map square per namespace pair; a block with a drill-down links to it.
fn block_map(
    g: &Grid<'_>,
    all: &[Block<'_>],
    rows: &[(&str, Vec<usize>)],
    cols: &[(&str, Vec<usize>)],
    view: View,
    id: &str,
) -> String {
    let names =
        |v: &[(&str, Vec<usize>)]| v.iter().map(|(ns, _)| ns.to_string()).collect::<Vec<_>>();
    let (row_names, col_names) = (names(rows), names(cols));
    let mut s = String::new();
    let label = format!("{} {} by namespace", view.as_str(), g.key);
    let (left, top) = svg_open(
        &mut s,
        &format!("{} blocks", view.as_str()),
        &label,
        view.as_str(),
        &row_names,
        &col_names,
    );
    for b in all {
        let (x, y) = (left + b.at.1 * CELL, top + b.at.0 * CELL);
        if b.at.1 == 0 {
            row_label(&mut s, left, y, b.from);
        }
        if b.cells.is_empty() {
            absent(&mut s, x, y);
            continue;
        }
        let (fill, m) = b.fill(view);
        let not_passed = b.not_passed();
        let (edge, text, title) = match view {
            View::Expected => (
                "",
                m.to_string(),
                format!("{} → {}: expected {}", b.from, b.to, b.marks(view)),
            ),
            _ => (
                b.worst().map_or("", status_class),
                if not_passed > 0 {
                    not_passed.to_string()
                } else {
                    m.to_string()
                },
                format!(
                    "{} → {}: {} path(s): {}\nobserved: {}",
                    b.from,
                    b.to,
                    b.cells.len(),
                    b.statuses(),
                    b.marks(view)
                ),
            ),
        };
        let linked = not_passed > 0;
        if linked {
            let _ = write!(s, "<a href=\"#{}\">", block_id(id, b));
        }
        square(&mut s, x, y, &format!("{fill}{edge}"), &title, &text);
        if linked {
            s.push_str("</a>");
        }
    }
    s.push_str("</svg>");
    s
}

/// A block's paths that did not pass, listed (under the grid's caption, so without its port), and
/// the block drawn per pod when `draw`.
fn drill_down(out: &mut String, g: &Grid<'_>, b: &Block<'_>, id: &str, open: bool, draw: bool) {
    let _ = write!(
        out,
        "<details class=\"block\" id=\"{id}\"{}><summary><b>{} → {}</b> <span class=\"meta\">{} \
         path(s): {}</span></summary>\n<table class=\"list\"><tr><th>from → to</th><th>status</th>\
         <th>expected</th><th>observed</th><th>why</th></tr>\n",
        if open { " open" } else { "" },
        esc(b.from),
        esc(b.to),
        b.cells.len(),
        esc(&b.statuses()),
    );
    let mut listed: Vec<&&CellResult> = b
        .cells
        .iter()
        .filter(|c| c.status != CellStatus::Pass)
        .collect();
    listed.sort_by_key(|c| WORST_FIRST.iter().position(|st| *st == c.status));
    for c in listed {
        let _ = writeln!(
            out,
            "<tr data-status=\"{}\"><td class=\"mono\">{} → {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            status_name(c.status),
            esc(&c.expected.cell.from.to_string()),
            esc(&c.expected.cell.to.to_string()),
            status_name(c.status),
            c.expected.verdict,
            esc(&crate::report::table::observed_text(c)),
            esc(&why_and_account(c)),
        );
    }
    out.push_str("</table>");
    if draw {
        let sub = g.sub(b.rows, b.cols);
        let _ = write!(
            out,
            "<div class=\"maps\">{}{}</div>",
            heat_map(&sub, View::Expected),
            heat_map(&sub, View::Observed)
        );
    }
    out.push_str("</details>\n");
}

/// The oracle's reasons and, when the CNI gave one, its own account, for the drill-down table.
fn why_and_account(c: &CellResult) -> String {
    match (&c.explanation, &c.cni_account) {
        (Some(why), Some(account)) => format!("{why} — the CNI's account: {account}"),
        (Some(why), None) => why.clone(),
        (None, Some(account)) => format!("the CNI's account: {account}"),
        (None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::table::fixtures::{cell, pass, step};
    use crate::report::table::grids;
    use crate::runner::result::StepResult;
    use netassay_core::model::Verdict;
    use netassay_core::probe::Outcome;

    /// `namespaces` namespaces `n00`… of two pods each, every pair probed on one port: allowed
    /// inside a namespace, denied across, all passed but loopback (not judged, as in a run).
    fn matrix(namespaces: usize) -> Vec<CellResult> {
        let pods: Vec<String> = (0..namespaces)
            .flat_map(|n| [format!("n{n:02}/a"), format!("n{n:02}/b")])
            .collect();
        let mut cells = Vec::new();
        for from in &pods {
            for to in &pods {
                let same_ns = from.split('/').next() == to.split('/').next();
                let verdict = if same_ns {
                    Verdict::Allow
                } else {
                    Verdict::Deny
                };
                if from == to {
                    cells.push(cell(
                        from,
                        to,
                        verdict,
                        CellStatus::NotJudged,
                        &[Outcome::Connected],
                    ));
                } else {
                    cells.push(pass(from, to, verdict));
                }
            }
        }
        cells
    }

    fn with_status(cells: &mut [CellResult], from: &str, to: &str, status: CellStatus) {
        let c = cells
            .iter_mut()
            .find(|c| {
                c.expected.cell.from.to_string() == from && c.expected.cell.to.to_string() == to
            })
            .expect("cell in the matrix");
        c.status = status;
        if status == CellStatus::Fail {
            c.attempts[0].outcome = Outcome::Connected;
            c.explanation = Some("ingress isolated by n03/deny-all".into());
        }
        if status == CellStatus::Error {
            c.attempts[0].outcome = Outcome::Error;
        }
    }

    fn draw(r: &StepResult) -> String {
        let mut out = String::new();
        for (i, g) in grids(r).iter().enumerate() {
            figure(&mut out, g, &format!("t-{i}"));
        }
        out
    }

    /// The text of the element with `id` up to its closing `</details>`.
    fn drill_down_of<'a>(html: &'a str, id: &str) -> &'a str {
        let start = html
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no drill-down {id}"));
        let end = html[start..].find("</details>").expect("drill-down closes") + start;
        &html[start..end]
    }

    /// The class of the observed square whose tooltip starts with `title`, the text on it and
    /// whether it links to a drill-down.
    fn square_of<'a>(html: &'a str, title: &str) -> (&'a str, &'a str, bool) {
        let at = html
            .find(&format!("<title>{title}"))
            .unwrap_or_else(|| panic!("no square titled {title}"));
        let rect = html[..at].rfind("<rect class=\"").expect("a square") + "<rect class=\"".len();
        let class = &html[rect..rect + html[rect..].find('"').expect("class ends")];
        let after = &html[at..];
        let rest = &after[after.find("</rect>").expect("square ends") + "</rect>".len()..];
        let text = match rest.strip_prefix("<text") {
            Some(t) => &t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()],
            None => "",
        };
        (
            class,
            text,
            html[..rect].ends_with("\"><rect class=\"")
                && html[..rect]
                    .rfind("<a href")
                    .is_some_and(|a| !html[a..rect].contains("</a>")),
        )
    }

    #[test]
    fn small_grids_keep_every_cell_with_its_attempts() {
        // 16 pods a side: under the threshold, drawn cell by cell as before.
        let r = step(matrix(8));
        let html = draw(&r);
        assert!(
            !html.contains("aggregated"),
            "a small grid is not aggregated"
        );
        assert!(!html.contains("blocks"));
        // Expected and observed: one square per cell in each.
        assert_eq!(html.matches("<rect class=").count(), 2 * 16 * 16);
        assert!(html.contains("n00/a -&gt; n01/b 80/TCP via pod-ip\nexpected: deny\nobserved: dropped (pass)\nattempts: 1\n  round 1 at 0 ms: dropped in 3 ms</title>"));
        assert!(html.contains("<rect class=\"a n\""), "loopback is faded");
    }

    #[test]
    fn large_grids_are_namespace_blocks_and_passed_blocks_have_no_drill_down() {
        // 17 namespaces of 2 pods: 34 pods a side, over the threshold.
        let r = step(matrix(17));
        let html = draw(&r);
        assert!(html.contains("<figure class=\"aggregated\" id=\"t-0\">"));
        assert!(html.contains("34 sources × 34 destinations, drawn as 17 × 17 namespace blocks"));
        assert!(html.contains("class=\"hm expected blocks\""));
        assert!(html.contains("class=\"hm observed blocks\""));
        // An all-passed block reads passed, with its mark and no drill-down.
        assert_eq!(
            square_of(
                &html,
                "n00 → n01: 4 path(s): 4 pass\nobserved: 4 dropped or rejected</title>"
            ),
            ("d", "X", false)
        );
        assert_eq!(
            square_of(&html, "n00 → n01: expected 4 deny</title>"),
            ("d", "X", false)
        );
        assert!(!html.contains("id=\"t-0-b0-1\""));
        // The diagonal holds the loopback cells: each of those blocks is drawn per pod, closed
        // (nothing failed).
        assert!(html.contains(
            "<details class=\"blocks\"><summary>17 block(s) with 34 path(s) that did not pass, \
             0 of them with a failure: drawn per pod</summary>"
        ));
        assert!(html.contains("<details class=\"block\" id=\"t-0-b0-0\">"));
        // Far fewer squares than the 2 × 34 × 34 cells of the full grid.
        let squares = html.matches("<rect class=").count();
        assert_eq!(squares, 2 * 17 * 17 + 17 * 2 * 4);
    }

    #[test]
    fn incomplete_cells_never_count_as_passed() {
        let mut cells = matrix(17);
        with_status(&mut cells, "n02/a", "n05/b", CellStatus::Error);
        with_status(&mut cells, "n04/a", "n06/a", CellStatus::Unsupported);
        let html = draw(&step(cells));
        // The block with a probe error: outlined orange, counted, linked and drawn per pod.
        assert_eq!(
            square_of(
                &html,
                "n02 → n05: 4 path(s): 1 error, 3 pass\nobserved: 3 dropped or rejected, 1 error or \
                 wrong peer</title>"
            ),
            ("e err", "1", true)
        );
        assert!(html.contains("<a href=\"#t-0-b2-5\">"));
        let d = drill_down_of(&html, "t-0-b2-5");
        assert!(d.contains("n02/a → n05/b</td><td>error</td>"));
        // Unsupported: faded, counted, never "4 pass".
        assert_eq!(
            square_of(&html, "n04 → n06: 4 path(s): 1 unsupported, 3 pass"),
            ("d n", "1", true)
        );
        // Loopback blocks: not judged, faded, counted, never "4 pass".
        assert_eq!(
            square_of(&html, "n00 → n00: 4 path(s): 2 not-judged, 2 pass"),
            ("a n", "2", true)
        );
        assert!(!html.contains("n00 → n00: 4 path(s): 4 pass"));
        assert!(!html.contains("n02 → n05: 4 path(s): 4 pass"));
    }

    #[test]
    fn failures_are_outlined_open_and_listed_in_their_drill_down() {
        let mut cells = matrix(17);
        with_status(&mut cells, "n03/a", "n07/b", CellStatus::Fail);
        with_status(&mut cells, "n03/b", "n07/b", CellStatus::Flapping);
        let html = draw(&step(cells));
        // The block map: the failing block is red, linked, with the number that did not pass.
        assert_eq!(
            square_of(&html, "n03 → n07: 4 path(s): 1 fail, 1 flapping, 2 pass"),
            ("mx wrong", "2", true)
        );
        assert!(html.contains("<a href=\"#t-0-b3-7\">"));
        // The group of drill-downs opens, and the failing block opens first.
        assert!(html.contains(
            "<details class=\"blocks\" open><summary>18 block(s) with 36 path(s) that did not \
             pass, 1 of them with a failure"
        ));
        let first = html.find("<details class=\"block\"").unwrap();
        assert!(html[first..].starts_with("<details class=\"block\" id=\"t-0-b3-7\" open>"));
        let d = drill_down_of(&html, "t-0-b3-7");
        assert!(d.contains(
            "<tr data-status=\"fail\"><td class=\"mono\">n03/a → n07/b</td>\
             <td>fail</td><td>deny</td><td>connected</td><td>ingress isolated by n03/deny-all</td></tr>"
        ));
        assert!(d.contains("<td class=\"mono\">n03/b → n07/b</td><td>flapping</td>"));
        // Drawn per pod: 2 × 2 in each view, the failing cell outlined as in a small grid.
        assert_eq!(d.matches("<rect class=").count(), 8);
        assert!(d.contains("<rect class=\"a wrong\""));
        assert!(d.contains("<rect class=\"d wrong flap\""));
    }

    #[test]
    fn like_attempts_share_a_line_and_every_attempt_is_counted() {
        let outcomes: Vec<Outcome> = [Outcome::Connected; 6]
            .into_iter()
            .chain([Outcome::Dropped; 3])
            .collect();
        let mut c = cell("x/a", "x/b", Verdict::Deny, CellStatus::Pass, &outcomes);
        for a in &mut c.attempts {
            a.round = 1;
        }
        let t = tooltip(View::Observed, &c);
        assert!(t.contains("attempts: 9\n"), "{t}");
        assert!(
            t.contains("\n  round 1, 6 × from 0 to 500 ms: connected in 3 ms"),
            "{t}"
        );
        assert!(
            t.contains("\n  round 1, 3 × at 600/700/800 ms: dropped in 3 ms"),
            "{t}"
        );
        assert_eq!(t.lines().count(), 6, "{t}");
        // Alternating outcomes: one line each, at most TOOLTIP_LINES, the rest counted.
        let flips: Vec<Outcome> = (0..12)
            .map(|i| {
                if i % 2 == 0 {
                    Outcome::Connected
                } else {
                    Outcome::Dropped
                }
            })
            .collect();
        let c = cell("x/a", "x/b", Verdict::Deny, CellStatus::Flapping, &flips);
        let t = tooltip(View::Observed, &c);
        assert!(t.ends_with("\n  … 4 more"), "{t}");
    }

    // Issue 24: 50 projects' isolation matrix fits in about a megabyte a grid when it passes;
    // when everything fails, every failure is still listed, and the page stays bounded.
    #[test]
    fn fifty_namespaces_stay_small_and_mass_failures_are_all_listed() {
        let html = draw(&step(matrix(50)));
        assert!(html.len() < 1_200_000, "{} bytes", html.len());

        let mut cells = matrix(50);
        let mut failed = 0;
        for c in cells.iter_mut().filter(|c| !c.expected.verdict.is_allow()) {
            c.status = CellStatus::Fail;
            c.attempts[0].outcome = Outcome::Connected;
            failed += 1;
        }
        let html = draw(&step(cells));
        assert_eq!(html.matches("<tr data-status=\"fail\">").count(), failed);
        assert_eq!(
            html.matches("<details class=\"block\" id=").count(),
            50 * 50
        );
        assert_eq!(
            html.matches("<details class=\"block\" id=\"t-0-b").count()
                - html.matches("\" open><summary><b>").count(),
            50 * 50 - OPEN_BLOCKS
        );
        assert!(html.contains("block(s) are listed path by path but not drawn per pod"));
        assert!(html.len() < 6_000_000, "{} bytes", html.len());
    }
}
