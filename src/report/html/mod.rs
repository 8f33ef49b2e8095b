//! The HTML report (`--html`): one self-contained page for sign-off, with inline CSS and SVG only.

mod escape;
mod heatmap;

use super::conformance::{
    run_verdict, scenario_reason, scenario_verdict, shortfall, step_verdict, RunVerdict,
    ScenarioVerdict, Shortfall,
};
use super::run_report::RunReport;
use super::table::{self, grids, path, status_name};
use crate::runner::result::{CellResult, CellStatus, StepResult};
use crate::suite::{ScenarioOutcome, StepOutcome};
use heatmap::{ALLOW, DENY, ERROR, ERROR_EDGE, MISSING, UNSUPPORTED, WRONG};
use std::fmt::Write as _;

pub use escape::esc;

const STYLE: &str = r#"
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:0;padding:24px 32px;color:#1f2430;background:#f4f5f7;line-height:1.4}
h1{font-size:22px;margin:0 0 12px}
h2{font-size:18px;margin:28px 0 10px;border-bottom:1px solid #d7dbe0;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.verdict{display:flex;align-items:center;gap:24px;padding:18px 24px;border-radius:10px;color:#fff}
.verdict .word{font-size:30px;font-weight:800;letter-spacing:.5px}
.verdict.conformant{background:#1b7f3b}.verdict.not-conformant{background:#b3261e}.verdict.incomplete{background:#a15c00}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin-top:12px}
.card{background:#fff;border:1px solid #d7dbe0;border-radius:8px;padding:8px 14px;min-width:110px}
.card .n{font-size:22px;font-weight:700}.card .l{font-size:12px;color:#5b6270}
.card.bad .n{color:#b3261e}.card.warn .n{color:#a15c00}.card.good .n{color:#1b7f3b}
.statements td.good{color:#1b7f3b;font-weight:700}.statements td.bad{color:#b3261e;font-weight:700}.statements td.warn{color:#a15c00;font-weight:700}
table.kv,table.list{border-collapse:collapse;background:#fff;border:1px solid #d7dbe0}
table.kv td,table.list td,table.list th{padding:4px 10px;border-bottom:1px solid #eceef1;text-align:left;vertical-align:top;font-size:13px}
table.kv td:first-child{color:#5b6270;white-space:nowrap}
table.list th{background:#eef0f3;font-size:12px}
details.scenario{background:#fff;border:1px solid #d7dbe0;border-radius:8px;margin:10px 0;padding:6px 14px}
details.scenario>summary{cursor:pointer;font-weight:600;padding:4px 0}
.badge{display:inline-block;font-size:11px;font-weight:700;padding:1px 8px;border-radius:10px;color:#fff;margin-right:8px;text-transform:uppercase}
.badge.passed{background:#1b7f3b}.badge.failed{background:#b3261e}.badge.incomplete{background:#a15c00}.badge.skipped{background:#6b7280}
.meta{color:#5b6270;font-size:12px;font-weight:400}
.step{border-top:1px solid #eceef1;padding:6px 0 10px}
.maps{display:flex;flex-wrap:wrap;gap:22px;align-items:flex-start}
figure{margin:6px 0}figcaption{font-size:12px;color:#5b6270}
.compact{background:#fff4f2;border:1px solid #f1c6c0;border-radius:6px;padding:8px;white-space:pre-wrap;margin:6px 0}
.reject{font-size:13px}.reject.accepted{color:#b3261e;font-weight:600}
.legend span{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:middle;margin:0 4px 0 12px}
svg text{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:11px}
"#;

#[derive(Default)]
struct Counts {
    scenarios: [usize; 3],
    /// Incomplete scenarios that lack evidence (unsupported / not judged), of `scenarios[2]`.
    no_evidence: usize,
    cells: [usize; 7],
    rejects_refused: usize,
    rejects_accepted: usize,
    exposures_unapproved: usize,
}

const STATUSES: [CellStatus; 7] = [
    CellStatus::Pass,
    CellStatus::Fail,
    CellStatus::Flapping,
    CellStatus::Error,
    CellStatus::Unsupported,
    CellStatus::NotJudged,
    CellStatus::Interrupted,
];

fn counts(report: &RunReport) -> Counts {
    let mut c = Counts::default();
    for o in &report.scenarios {
        c.scenarios[scenario_verdict(o) as usize] += 1;
        if shortfall(o) == Some(Shortfall::NoEvidence) {
            c.no_evidence += 1;
        }
        for s in &o.steps {
            for (i, st) in STATUSES.iter().enumerate() {
                c.cells[i] += s.result.count(*st);
            }
            for r in &s.rejects {
                if r.refused {
                    c.rejects_refused += 1;
                } else {
                    c.rejects_accepted += 1;
                }
            }
            c.exposures_unapproved += s.inventory.iter().flat_map(|i| i.unapproved()).count();
        }
    }
    c
}

pub fn render(report: &RunReport) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>netassay report — {}</title>\n<style>{STYLE}{}</style>\n</head>\n<body>\n",
        esc(&report.run_id),
        heatmap::STYLE
    );
    summary(&mut out, report);
    statements(&mut out, report);
    environment(&mut out, report);
    enforcement_chart(&mut out, report);
    out.push_str("<h2>Scenarios</h2>\n");
    legend(&mut out);
    for (i, o) in report.scenarios.iter().enumerate() {
        scenario(&mut out, &format!("g{i}"), o);
    }
    not_judged(&mut out, report);
    out.push_str("</body>\n</html>\n");
    out
}

/// The sign-off table: statement -> scenarios -> result (intent profiles only).
fn statements(out: &mut String, report: &RunReport) {
    let Some(rows) = super::statements::k8tre(report) else {
        return;
    };
    out.push_str("<h2>K8TRE statements</h2>\n<table class=\"kv statements\">\n");
    out.push_str("<tr><th>Statement</th><th>Scenarios</th><th>Result</th></tr>\n");
    for r in rows {
        let class = match r.verdict {
            super::statements::StatementVerdict::Passed => "good",
            super::statements::StatementVerdict::Failed => "bad",
            _ => "warn",
        };
        let scenarios: Vec<String> = r
            .scenarios
            .iter()
            .map(|e| format!("{} ({})", esc(&e.scenario), e.verdict))
            .collect();
        let shown = if scenarios.len() > 8 {
            let not_passed = r
                .scenarios
                .iter()
                .filter(|e| e.verdict != ScenarioVerdict::Passed)
                .count();
            format!("{} scenarios, {not_passed} not passed", scenarios.len())
        } else {
            scenarios.join("<br>")
        };
        let _ = writeln!(
            out,
            "<tr><td><b>{}</b> ({})<br>{}</td><td>{}</td><td class=\"{class}\">{}</td></tr>",
            esc(r.id),
            esc(r.area),
            esc(r.text),
            shown,
            r.verdict
        );
    }
    out.push_str("</table>\n");
}

fn summary(out: &mut String, report: &RunReport) {
    let v = run_verdict(report);
    let class = match v {
        RunVerdict::Conformant => "conformant",
        RunVerdict::NotConformant => "not-conformant",
        RunVerdict::Incomplete => "incomplete",
    };
    let c = counts(report);
    let total: usize = c.scenarios.iter().sum();
    let _ = write!(
        out,
        "<h1>netassay report <span class=\"meta mono\">{}</span></h1>\n\
         <div class=\"verdict {class}\" id=\"verdict\"><div class=\"word\">{}</div>\
         <div>{} of {total} scenario(s) passed, {} failed, {} incomplete ({} with nothing judged)</div></div>\n",
        esc(&report.run_id),
        v.as_str(),
        c.scenarios[ScenarioVerdict::Passed as usize],
        c.scenarios[ScenarioVerdict::Failed as usize],
        c.scenarios[ScenarioVerdict::Incomplete as usize],
        c.no_evidence,
    );
    let tried = crate::suite::run_resilience(&report.scenarios);
    if !tried.is_quiet() {
        let _ = writeln!(
            out,
            "<p class=\"meta\" id=\"resilience\">The control plane made netassay try again: {}. \
             Retried requests, replayed probe batches and cells re-probed after a pod restart are \
             never a verdict; each step below says what it needed.</p>",
            esc(&tried.summary())
        );
    }
    out.push_str("<div class=\"cards\">");
    let mut card = |n: usize, label: &str, tone: &str| {
        let tone = if n == 0 { "" } else { tone };
        let _ = write!(
            out,
            "<div class=\"card {tone}\"><div class=\"n\">{n}</div><div class=\"l\">{}</div></div>",
            esc(label)
        );
    };
    card(c.cells[0], "paths passed", "good");
    card(c.cells[1], "paths failed", "bad");
    card(c.cells[2], "paths flapping", "bad");
    card(c.cells[3], "probe errors", "warn");
    card(c.cells[4], "unsupported", "");
    card(c.cells[5], "not judged", "");
    if c.cells[6] > 0 {
        card(c.cells[6], "interrupted by the cluster", "warn");
    }
    card(c.rejects_refused, "rejects refused", "good");
    card(c.rejects_accepted, "rejects accepted", "bad");
    if report
        .scenarios
        .iter()
        .any(|o| o.steps.iter().any(|s| s.inventory.is_some()))
    {
        card(c.exposures_unapproved, "unapproved exposures", "bad");
    }
    out.push_str("</div>\n");
}

fn environment(out: &mut String, report: &RunReport) {
    let e = &report.environment;
    out.push_str("<h2>Environment</h2>\n<table class=\"kv\">\n");
    let sandbox = if report.sandbox {
        if report.sandbox_faults.is_empty() {
            "yes".to_string()
        } else {
            format!("yes, faults: {}", report.sandbox_faults.join(", "))
        }
    } else {
        "no".to_string()
    };
    for (k, v) in [
        ("run id", report.run_id.clone()),
        ("netassay", report.netassay_version.clone()),
        ("started", report.started.clone()),
        (
            "elapsed",
            format!("{:.1} s", report.elapsed_ms as f64 / 1000.0),
        ),
        ("Kubernetes", e.kubernetes_version.clone()),
        ("nodes", e.nodes.to_string()),
        ("CNI", e.cni.clone()),
        ("CNI mode", e.cni_mode.clone()),
        ("profiles", report.profiles.join(", ")),
        ("sandbox", sandbox),
    ] {
        let _ = writeln!(out, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(&v));
    }
    out.push_str("</table>\n");
}

/// Horizontal bars, one per step that probed anything; steps that never agreed show in red.
fn enforcement_chart(out: &mut String, report: &RunReport) {
    // Steps that change paths, measured on them; steps that change none say little (their first
    // probes) and steps that judged nothing nothing at all.
    // The last field: the pale bar's word for a step without a figure that is not the enforcer's
    // fault; `None` for a step that has one or never agreed.
    let rows: Vec<(String, Option<u128>, String, Option<&str>)> = report
        .scenarios
        .iter()
        .flat_map(|o| {
            o.steps
                .iter()
                .filter(|s| s.result.changed_cells > 0)
                .map(move |s| {
                    (
                        format!("{} › {}", o.name, s.name),
                        s.result.time_to_enforce.map(|d| d.as_millis()),
                        table::time_to_enforce(&s.result),
                        if s.result.time_to_enforce_disturbed > 0
                            || s.result.series_ended_before_changes
                        {
                            Some("not timed")
                        } else if !s.result.has_judged_changed_cells() {
                            Some("not measured")
                        } else {
                            None
                        },
                    )
                })
        })
        .collect();
    out.push_str("<h2>Time to enforce</h2>\n");
    let stats = crate::suite::run_enforce_stats(&report.scenarios);
    let _ = writeln!(
        out,
        "<p class=\"meta\" id=\"tte-stats\">{}. Measured against the enforcer: from the API server's \
         answer to the step's last change (t0) to the first probe after which every probe of every \
         path the step changes agreed; probes of those paths start every few tens of milliseconds, \
         from before t0.</p>",
        esc(&stats.summary())
    );
    if rows.is_empty() {
        out.push_str("<p class=\"meta\">No step changed a path.</p>\n");
        return;
    }
    let max = rows
        .iter()
        .filter_map(|(_, v, _, _)| *v)
        .max()
        .unwrap_or(0)
        .max(1);
    let (label_w, bar_w, row_h, top) = (330usize, 520usize, 18usize, 22usize);
    let width = label_w + bar_w + 90;
    let height = top + rows.len() * row_h + 6;
    let _ = writeln!(
        out,
        "<svg id=\"tte-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"time to enforce per step\">"
    );
    for frac in [0.0, 0.5, 1.0] {
        let x = label_w as f64 + frac * bar_w as f64;
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#d7dbe0\"/>\
             <text x=\"{x:.1}\" y=\"14\" text-anchor=\"middle\" fill=\"#5b6270\">{} ms</text>",
            top - 4,
            height - 2,
            (frac * max as f64).round() as u128
        );
    }
    for (i, (label, value, full, pale)) in rows.iter().enumerate() {
        let y = top + i * row_h;
        let shown: String = if label.chars().count() > 46 {
            format!("{}…", label.chars().take(45).collect::<String>())
        } else {
            label.clone()
        };
        let (w, fill, text) = match value {
            Some(ms) => (
                ((*ms as f64 / max as f64) * bar_w as f64).max(1.0),
                "#3f7fbf",
                format!("{ms} ms"),
            ),
            // Not a figure of the enforcer's: a pale bar, not a red one.
            None => match pale {
                Some(word) => (bar_w as f64, UNSUPPORTED, word.to_string()),
                None => (bar_w as f64, WRONG, "never".to_string()),
            },
        };
        let title = format!("{label}: {full}");
        let _ = writeln!(
            out,
            "<g><title>{}</title>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{label_w}\" y=\"{}\" width=\"{w:.1}\" height=\"{}\" rx=\"2\" fill=\"{fill}\"/>\
             <text x=\"{:.1}\" y=\"{}\" fill=\"#1f2430\">{}</text></g>",
            esc(&title),
            label_w - 8,
            y + 12,
            esc(&shown),
            y + 2,
            row_h - 4,
            label_w as f64 + w + 6.0,
            y + 12,
            esc(&text)
        );
    }
    out.push_str("</svg>\n");
}

fn legend(out: &mut String) {
    let _ = writeln!(
        out,
        "<p class=\"legend meta\">Cells: <span style=\"background:{ALLOW}\"></span>allow / connected\
         <span style=\"background:{DENY}\"></span>deny / dropped or rejected\
         <span style=\"background:{ERROR}\"></span>error or wrong peer\
         <span style=\"background:{UNSUPPORTED}\"></span>unsupported\
         <span style=\"background:{MISSING};border:1px solid #999\"></span>no result\
         <span style=\"border:3px solid {WRONG}\"></span>wrong (dashed: flapping)\
         <span style=\"border:2px solid {ERROR_EDGE}\"></span>probe error or interrupted; \
         faded: not judged or unsupported. Hover a cell for its attempts and the oracle's explanation.</p>"
    );
}

/// `id` is unique in the page; the scenario's heat maps take theirs from it.
fn scenario(out: &mut String, id: &str, o: &ScenarioOutcome) {
    let v = scenario_verdict(o);
    let _ = write!(
        out,
        "<details class=\"scenario\" data-verdict=\"{}\"{}>\n<summary><span class=\"badge {}\">{}</span>{} \
         <span class=\"meta\">{} · {}{}</span></summary>\n",
        v.as_str(),
        if v == ScenarioVerdict::Passed { "" } else { " open" },
        v.as_str(),
        v.as_str(),
        esc(&o.name),
        esc(&o.file),
        esc(&o.tags.join(", ")),
        if o.intent { " · intent" } else { "" }
    );
    if let Some(reason) = scenario_reason(o) {
        let _ = writeln!(out, "<p><strong>{}</strong></p>", esc(&reason));
    }
    for (i, s) in o.steps.iter().enumerate() {
        step(out, &format!("{id}-{i}"), s);
    }
    out.push_str("</details>\n");
}

fn step(out: &mut String, id: &str, s: &StepOutcome) {
    let r = &s.result;
    let parts: Vec<String> = STATUSES
        .iter()
        .filter(|st| r.count(**st) > 0)
        .map(|st| format!("{} {}", r.count(*st), status_name(*st)))
        .collect();
    let v = step_verdict(s);
    let badge = if v == ScenarioVerdict::Passed {
        String::new()
    } else {
        format!("<span class=\"badge {}\">{}</span>", v.as_str(), v.as_str())
    };
    let _ = writeln!(
        out,
        "<div class=\"step\" data-verdict=\"{}\"><h3>{badge}{}</h3><div class=\"meta\">{} · time to enforce: {} · {} round(s){}</div>",
        v.as_str(),
        esc(&s.name),
        esc(&parts.join(", ")),
        esc(&table::time_to_enforce(r)),
        r.rounds,
        if r.resilience.is_quiet() {
            String::new()
        } else {
            format!(
                " · <span class=\"retries\">tried again: {}</span>",
                esc(&r.resilience.summary())
            )
        }
    );
    if let Some(inv) = &s.inventory {
        for e in &inv.exposures {
            let _ = writeln!(
                out,
                "<div class=\"reject {}\">exposure {} {}/{}: {} — {}</div>",
                if e.approved { "refused" } else { "accepted" },
                esc(&e.exposure.kind.to_string()),
                esc(&e.exposure.namespace),
                esc(&e.exposure.name),
                esc(&e.exposure.detail),
                esc(&e.message)
            );
        }
        for n in &inv.notes {
            let _ = writeln!(out, "<div class=\"reject\">inventory: {}</div>", esc(n));
        }
    }
    for x in &s.rejects {
        let _ = writeln!(
            out,
            "<div class=\"reject {}\">reject check {}: {} — {}</div>",
            if x.refused { "refused" } else { "accepted" },
            esc(&x.policy),
            if x.refused {
                "refused"
            } else {
                "ACCEPTED (should have been refused)"
            },
            esc(&x.detail)
        );
    }
    let wrong = table::compact_diff(r, false, table::LISTED_WRONG_PATHS);
    if !wrong.is_empty() {
        let _ = writeln!(out, "<div class=\"compact mono\">{}</div>", esc(&wrong));
    }
    for (i, g) in grids(r).iter().enumerate() {
        heatmap::figure(out, g, &format!("{id}-{i}"));
    }
    out.push_str("</div>\n");
}

/// Everything that was not judged, and why: environment problems, skipped scenarios, probe
/// errors, unsupported and not-judged cells.
///
/// A step's loopback paths are one row (a TRE of 50 projects has 200); of its other items the
/// first [`table::LISTED_WRONG_PATHS`] are listed, then a row counts the rest (the JSON results
/// list every one). The heading counts every item.
fn not_judged(out: &mut String, report: &RunReport) {
    let mut rows: Vec<[String; 5]> = Vec::new();
    let mut items = 0;
    for o in &report.scenarios {
        if let Some(e) = &o.environment {
            items += 1;
            rows.push([
                o.name.clone(),
                String::new(),
                "whole scenario".into(),
                "environment".into(),
                e.what.clone(),
            ]);
        }
        if shortfall(o) == Some(Shortfall::NoEvidence) {
            items += 1;
            rows.push([
                o.name.clone(),
                String::new(),
                "whole scenario".into(),
                "incomplete".into(),
                scenario_reason(o).unwrap_or_default(),
            ]);
        }
        for s in &o.steps {
            let (loopback, others): (Vec<&CellResult>, Vec<&CellResult>) = unjudged(&s.result)
                .partition(|c| c.status == CellStatus::NotJudged && c.expected.cell.loopback);
            items += loopback.len() + others.len();
            if !loopback.is_empty() {
                rows.push([
                    o.name.clone(),
                    s.name.clone(),
                    format!("{} loopback path(s), each pod to itself", loopback.len()),
                    status_name(CellStatus::NotJudged).into(),
                    "loopback (a pod to itself) is reported, not judged".into(),
                ]);
            }
            let listed = others.len().min(table::LISTED_WRONG_PATHS);
            let more = others.len() - listed;
            for c in others.into_iter().take(listed) {
                let detail = c
                    .attempts
                    .last()
                    .map(|a| a.detail.clone())
                    .unwrap_or_default();
                let reason = match c.status {
                    CellStatus::Unsupported => format!("protocol not available: {detail}"),
                    CellStatus::Error => format!(
                        "probe kept failing ({}): {detail}",
                        c.observed().map(|o| o.as_str()).unwrap_or("no attempt")
                    ),
                    CellStatus::Interrupted => format!(
                        "the cluster kept interrupting the probe past the step's deadline \
                         (an environment problem, not the CNI's): {detail}"
                    ),
                    _ => detail,
                };
                rows.push([
                    o.name.clone(),
                    s.name.clone(),
                    path(&c.expected.cell),
                    status_name(c.status).into(),
                    reason.trim().to_string(),
                ]);
            }
            if more > 0 {
                rows.push([
                    o.name.clone(),
                    s.name.clone(),
                    format!("{more} more item(s) not listed here"),
                    String::new(),
                    "the JSON results list every one".into(),
                ]);
            }
        }
    }
    let _ = writeln!(out, "<h2 id=\"not-judged\">Not judged ({items})</h2>");
    if rows.is_empty() {
        out.push_str("<p class=\"meta\">Every path of every scenario was judged.</p>\n");
        return;
    }
    out.push_str(
        "<table class=\"list\" id=\"not-judged-table\"><tr><th>scenario</th><th>step</th><th>item</th>\
         <th>status</th><th>reason</th></tr>\n",
    );
    for row in rows {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&row[0]),
            esc(&row[1]),
            esc(&row[2]),
            esc(&row[3]),
            esc(&row[4])
        );
    }
    out.push_str("</table>\n");
}

fn unjudged(r: &StepResult) -> impl Iterator<Item = &CellResult> {
    r.cells.iter().filter(|c| {
        matches!(
            c.status,
            CellStatus::Error
                | CellStatus::Interrupted
                | CellStatus::Unsupported
                | CellStatus::NotJudged
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::facts::Environment;
    use crate::report::table::fixtures::{cell, pass, step};
    use crate::suite::EnvironmentProblem;
    use netassay_core::model::Verdict;
    use netassay_core::probe::Outcome;

    fn report(name: &str, cells: Vec<CellResult>) -> RunReport {
        RunReport {
            run_id: "run-<1>".into(),
            netassay_version: "0.1.0".into(),
            started: "2025-01-01T00:00:00Z".into(),
            elapsed_ms: 1,
            sandbox: true,
            sandbox_faults: vec![],
            profiles: vec!["core".into()],
            environment: Environment::default(),
            scenarios: vec![ScenarioOutcome {
                name: name.into(),
                file: "f.yaml".into(),
                tags: vec!["core".into()],
                intent: false,
                baseline: None,
                steps: vec![StepOutcome {
                    name: "s".into(),
                    result: step(cells),
                    rejects: vec![],
                    inventory: None,
                }],
                environment: None,
            }],
        }
    }

    #[test]
    fn the_document_title_names_the_run_and_every_string_is_escaped() {
        let html = render(&report(
            "<script>alert(1)</script>",
            vec![pass("x/a", "x/b", Verdict::Allow)],
        ));
        assert!(html.contains("<title>netassay report — run-&lt;1&gt;</title>"));
        assert!(!html.contains("<script>alert"), "user text must be escaped");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    #[test]
    fn nothing_external_is_loaded() {
        let html = render(&report("s", vec![pass("x/a", "x/b", Verdict::Allow)]));
        for needle in ["<link", "src=", "@import", "url(", "http://", "https://"] {
            let hits: Vec<_> = html
                .match_indices(needle)
                .filter(|(i, _)| !html[..*i].ends_with("xmlns=\""))
                .collect();
            assert!(hits.is_empty(), "{needle} found");
        }
    }

    #[test]
    fn the_verdict_banner_follows_the_run_verdict() {
        let ok = render(&report("s", vec![pass("x/a", "x/b", Verdict::Allow)]));
        assert!(ok.contains("<div class=\"word\">CONFORMANT</div>"));
        let mut wrong = cell(
            "x/a",
            "x/b",
            Verdict::Deny,
            CellStatus::Fail,
            &[Outcome::Connected],
        );
        wrong.explanation = Some("ingress isolated by x/deny".into());
        let bad = render(&report("s", vec![wrong]));
        assert!(bad.contains("<div class=\"word\">NOT CONFORMANT</div>"));
        assert!(bad.contains("class=\"d wrong\""), "wrong cells stand out");
        assert!(
            bad.contains("why: ingress isolated by x/deny"),
            "tooltips explain"
        );
        let mut env = report("s", vec![]);
        env.scenarios[0].environment = Some(EnvironmentProblem {
            what: "no nodes".into(),
        });
        assert!(render(&env).contains("<div class=\"word\">INCOMPLETE</div>"));
    }

    #[test]
    fn unjudged_items_are_listed_with_their_reason() {
        let mut u = cell(
            "x/a",
            "x/b",
            Verdict::Allow,
            CellStatus::Unsupported,
            &[Outcome::Unsupported],
        );
        u.attempts[0].detail = "SCTP: protocol not supported by kernel".into();
        let html = render(&report(
            "s",
            vec![
                u,
                cell(
                    "x/a",
                    "x/a",
                    Verdict::Allow,
                    CellStatus::NotJudged,
                    &[Outcome::Connected],
                ),
                pass("x/b", "x/a", Verdict::Allow),
            ],
        ));
        assert!(html.contains("<h2 id=\"not-judged\">Not judged (2)</h2>"));
        assert!(html.contains("SCTP: protocol not supported by kernel"));
        assert!(html.contains("loopback (a pod to itself)"));
    }

    // A step's loopback paths are one row, and past LISTED_WRONG_PATHS its other unjudged
    // items are counted in a row, not listed; the heading counts every item.
    #[test]
    fn loopback_paths_share_a_row_and_a_long_unjudged_list_is_counted() {
        let mut cells: Vec<_> = ["x/a", "x/b", "x/c"]
            .iter()
            .map(|p| {
                cell(
                    p,
                    p,
                    Verdict::Allow,
                    CellStatus::NotJudged,
                    &[Outcome::Connected],
                )
            })
            .collect();
        for c in &mut cells {
            c.expected.cell.loopback = true;
        }
        let many = table::LISTED_WRONG_PATHS + 2;
        for port in 0..many {
            let mut u = cell(
                "x/a",
                "x/b",
                Verdict::Allow,
                CellStatus::Unsupported,
                &[Outcome::Unsupported],
            );
            u.expected.cell.port = 1000 + port as u16;
            cells.push(u);
        }
        // A judged path, so the scenario is not incomplete as a whole (a row of its own).
        cells.push(pass("x/b", "x/a", Verdict::Allow));
        let html = render(&report("s", cells));
        let heading = format!("<h2 id=\"not-judged\">Not judged ({})</h2>", 3 + many);
        assert!(html.contains(&heading), "{heading}");
        assert!(html.contains("3 loopback path(s), each pod to itself"));
        assert!(html.contains("2 more item(s) not listed here"));
        assert_eq!(
            html.matches("<td>unsupported</td>").count(),
            table::LISTED_WRONG_PATHS
        );
    }

    // DESIGN §7b: a scenario with a step that judged nothing reads "incomplete", never
    // "passed"; time-to-enforce comes with its resolution and the run's statistics.
    #[test]
    fn unjudged_scenarios_are_incomplete_and_time_to_enforce_has_its_resolution() {
        let mut sctp = cell(
            "x/a",
            "x/b",
            Verdict::Allow,
            CellStatus::Unsupported,
            &[Outcome::Unsupported],
        );
        sctp.expected.cell.protocol = netassay_core::model::Protocol::Sctp;
        let html = render(&report("s", vec![sctp]));
        assert!(html.contains("<details class=\"scenario\" data-verdict=\"incomplete\""));
        assert!(html.contains("<div class=\"step\" data-verdict=\"incomplete\">"));
        assert!(html.contains("unsupported: SCTP not available on this cluster"));
        assert!(html.contains("<div class=\"word\">INCOMPLETE</div>"));
        let timed = render(&report("t", vec![pass("x/a", "x/b", Verdict::Deny)]));
        assert!(
            timed.contains("t › s: 250 ms (resolution 50 ms, 1 changed path)"),
            "{timed}"
        );
        assert!(timed.contains("id=\"tte-stats\""));
        assert!(timed.contains("min 250 ms, median 250 ms, p90 250 ms, max 250 ms"));
    }

    #[test]
    fn steps_that_never_agreed_show_as_never_in_the_chart() {
        let mut changed = pass("x/a", "x/b", Verdict::Allow);
        changed.changed = true;
        let mut r = report("s", vec![changed]);
        r.scenarios[0].steps[0].result.time_to_enforce = None;
        let html = render(&r);
        assert!(html.contains("id=\"tte-chart\""));
        assert!(html.contains("s › s: never"));
    }

    // A step whose changed paths were all unsupported (not judged) says so, pale, not "never".
    #[test]
    fn steps_whose_changed_paths_were_not_judged_are_not_never() {
        let mut r = report("s", vec![pass("x/a", "x/b", Verdict::Allow)]);
        r.scenarios[0].steps[0].result.time_to_enforce = None;
        let html = render(&r);
        assert!(html.contains("s › s: not measured (no path the step changes was judged)"));
        assert!(html.contains(">not measured</text>"));
        assert!(!html.contains("s › s: never"));
    }

    // Issue 15: a step whose series the cluster interrupted has no figure, and it is not shown
    // as an enforcer that never enforced.
    #[test]
    fn steps_the_cluster_interrupted_are_not_timed_and_not_never() {
        let mut r = report("s", vec![pass("x/a", "x/b", Verdict::Allow)]);
        r.scenarios[0].steps[0].result.time_to_enforce = None;
        r.scenarios[0].steps[0].result.time_to_enforce_disturbed = 1;
        let html = render(&r);
        assert!(
            html.contains("s › s: not measured (the cluster interrupted"),
            "chart title"
        );
        assert!(html.contains(">not timed</text>"));
        assert!(!html.contains("s › s: never"));
        assert!(html.contains("1 step(s) not timed"), "summary line");
    }
}
