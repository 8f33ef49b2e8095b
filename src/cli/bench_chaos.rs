//! `netassay bench chaos`: the equal-verdicts matrix of a hostile control plane (DESIGN §6).
//! Runs the sandbox clean, under each control-plane fault alone and all together, and with a
//! CNI fault alone and under all of them; prints per run the exit code, the cells whose status
//! differs from its reference run, the scenarios that failed, and what was retried.
//!
//! The rules: with the compliant dataplane a hostile control plane ends in exit 0 with the same
//! per-cell statuses as the clean run, or in exit 3 (environment not usable); never exit 1. With
//! a CNI fault, the same scenarios fail as without the hostile control plane. A run that ends in
//! exit 3 may leave paths unjudged, but no path it did judge may differ from its reference run;
//! its row says `exit-3`, not `ok`, and the bench lists why each such run ended so.
//!
//! The comparison is only as good as what is read: every run must have a results file of the
//! schema this bench reads, with at least one scenario, every scenario with steps (unless its
//! environment failed first) and every step with cells, each cell with a known status and a
//! distinct key; the clean run must have every scenario `--scenarios` names; and every run that
//! ends 0 or 1 at least as many cells as its reference run. Any of these missing makes the row
//! VIOLATED, whatever its exit code.

use super::exit;
use anyhow::Context;
use clap::Args;
use netassay_sandbox::{ControlPlane, ControlPlaneFault};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct ChaosBenchArgs {
    /// Built-in profile(s) to run.
    #[arg(long, default_value = "core,extended")]
    pub profile: String,
    /// Only these scenarios (exact names); default: the whole profile.
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// Control-plane fault sets to try, each a `+`-joined list
    /// (default: each fault alone, then all four).
    #[arg(long, value_delimiter = ',')]
    pub faults: Vec<String>,
    /// A CNI fault whose failures must stay the same under all control-plane faults; `none`
    /// skips that part.
    #[arg(long, default_value = "ignore-named-ports")]
    pub cni_fault: String,
    /// Fixtures probed at once, as for `run`.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// The API the sandbox serves, as for `run`. On the reference cluster (`kubernetes`) only
    /// the faults its node carries apply: `exec-resets` (cut by the node's kubelet endpoint and
    /// relayed by the real API server) and `pod-restarts`.
    #[arg(long, value_enum, default_value_t = ControlPlane::Emulator)]
    pub sandbox_control_plane: ControlPlane,
    /// Keep each run's JSON results (`run-N.json`) and output (`run-N.txt`) in this folder.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<std::path::PathBuf>,
}

/// The results schema this bench reads.
const SCHEMA: &str = "netassay.results/v1";

/// Every cell status the results spell.
const STATUSES: [&str; 7] = [
    "pass",
    "fail",
    "flapping",
    "error",
    "interrupted",
    "unsupported",
    "not-judged",
];

/// The statuses that are verdicts about a path.
fn judged(status: &str) -> bool {
    matches!(status, "pass" | "fail" | "flapping")
}

/// One run's result, read from its JSON report.
struct Run {
    label: String,
    code: i32,
    seconds: f64,
    cells: BTreeMap<String, String>,
    /// Every scenario in the results.
    scenarios: BTreeSet<String>,
    failed: BTreeSet<String>,
    retries: [u64; 3],
    /// What makes the results unreadable for the comparison: a missing file, another schema,
    /// unknown statuses, keys that collide, a scenario without steps or a step without cells.
    problems: Vec<String>,
    /// The incomplete scenarios and why (environment, interrupted paths, probe errors, nothing
    /// judged): what an exit 3 is made of.
    unusable: BTreeMap<String, String>,
}

impl Run {
    /// A run whose results could not be read at all.
    fn unreadable(label: String, code: i32, seconds: f64, problem: String) -> Run {
        Run {
            label,
            code,
            seconds,
            cells: BTreeMap::new(),
            scenarios: BTreeSet::new(),
            failed: BTreeSet::new(),
            retries: [0; 3],
            problems: vec![problem],
            unusable: BTreeMap::new(),
        }
    }
}

/// The runs' results, removed when the bench ends unless kept.
struct RunsDir(std::path::PathBuf, bool);

impl RunsDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for RunsDir {
    fn drop(&mut self) {
        if !self.1 {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The control-plane faults `plane` can carry.
fn applicable(plane: ControlPlane) -> Vec<ControlPlaneFault> {
    ControlPlaneFault::ALL
        .into_iter()
        .filter(|f| plane == ControlPlane::Emulator || f.on_the_node())
        .collect()
}

/// Each applicable fault alone, then all of them together.
fn default_fault_sets(plane: ControlPlane) -> Vec<String> {
    let faults = applicable(plane);
    let mut sets: Vec<String> = faults.iter().map(|f| f.name().to_string()).collect();
    sets.push(
        faults
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join("+"),
    );
    sets
}

fn read_run(label: String, code: i32, seconds: f64, json: &Path) -> Run {
    let doc = std::fs::read_to_string(json)
        .map_err(|e| format!("no results file {}: {e}", json.display()))
        .and_then(|text| {
            serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|e| format!("results file {} is not JSON: {e}", json.display()))
        });
    match doc {
        Ok(doc) => read_doc(label, code, seconds, &doc),
        Err(problem) => Run::unreadable(label, code, seconds, problem),
    }
}

fn read_doc(label: String, code: i32, seconds: f64, doc: &serde_json::Value) -> Run {
    let mut cells = BTreeMap::new();
    let mut names = BTreeSet::new();
    let mut failed = BTreeSet::new();
    let mut retries = [0u64; 3];
    let mut problems = Vec::new();
    let mut unusable = BTreeMap::new();
    if doc["schema"] != SCHEMA {
        problems.push(format!(
            "results schema {} is not {SCHEMA:?}",
            doc["schema"]
        ));
    }
    let Some(scenarios) = doc["scenarios"].as_array() else {
        problems.push("the results have no scenario list".into());
        return Run {
            problems,
            ..Run::unreadable(label, code, seconds, String::new())
        };
    };
    if scenarios.is_empty() {
        problems.push("the results have no scenario".into());
    }
    for s in scenarios {
        let name = s["name"].as_str().unwrap_or_default();
        names.insert(name.to_string());
        match s["verdict"].as_str() {
            Some("failed") => {
                failed.insert(name.to_string());
            }
            Some("passed") => {}
            Some("incomplete") => {
                let why = s["reason"]
                    .as_str()
                    .unwrap_or("incomplete, no reason given");
                unusable.insert(name.to_string(), why.to_string());
            }
            other => problems.push(format!("scenario {name:?} has verdict {other:?}")),
        }
        // The baseline's retries too: the columns count the whole run.
        for r in std::iter::once(&s["baseline"]["resilience"]).chain(
            s["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|step| &step["resilience"]),
        ) {
            for (k, key) in ["api_retries", "exec_replays", "pod_restarts"]
                .iter()
                .enumerate()
            {
                retries[k] += r[key].as_u64().unwrap_or(0);
            }
        }
        match s["steps"].as_array() {
            Some(steps) if !steps.is_empty() => {}
            // A fixture that was unusable from the start leaves its scenario without steps.
            Some(_) if !s["environment"].is_null() => {}
            _ => problems.push(format!("scenario {name:?} has no steps")),
        }
        for step in s["steps"].as_array().into_iter().flatten() {
            if step["cells"].as_array().is_none_or(Vec::is_empty) {
                problems.push(format!(
                    "{name} | {} has no cells",
                    step["name"].as_str().unwrap_or_default()
                ));
            }
            for c in step["cells"].as_array().into_iter().flatten() {
                let key = format!(
                    "{name} | {} | {} -> {} {}/{} via {}",
                    step["name"].as_str().unwrap_or_default(),
                    c["from"].as_str().unwrap_or_default(),
                    c["to"].as_str().unwrap_or_default(),
                    c["port"],
                    c["protocol"].as_str().unwrap_or_default(),
                    c["via"].as_str().unwrap_or_default()
                );
                let status = c["status"].as_str().unwrap_or_default().to_string();
                if !STATUSES.contains(&status.as_str()) {
                    problems.push(format!("{key}: unknown status {:?}", c["status"]));
                }
                if cells.insert(key.clone(), status).is_some() {
                    problems.push(format!("{key}: two cells with this key"));
                }
            }
        }
    }
    problems.truncate(10);
    Run {
        label,
        code,
        seconds,
        cells,
        scenarios: names,
        failed,
        retries,
        problems,
        unusable,
    }
}

/// Cells that both runs judged (pass, fail or flapping) and whose status differs: what a run
/// that ended in exit 3 may not have, though it may lack or leave unjudged any other cell.
fn differing_judged(a: &Run, b: &Run) -> Vec<String> {
    a.cells
        .iter()
        .filter_map(|(k, sa)| {
            let sb = b.cells.get(k)?;
            (judged(sa) && judged(sb) && sa != sb).then(|| format!("{k}: {sa} vs {sb}"))
        })
        .collect()
}

/// What a row comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowResult {
    Ok,
    /// Allowed by the rules, but the run proves nothing about the paths it did not judge.
    Exit3,
    Violated,
}

/// Cells whose status differs between `a` and `b`, or that only one of them has.
fn differing(a: &Run, b: &Run) -> Vec<String> {
    let keys: BTreeSet<&String> = a.cells.keys().chain(b.cells.keys()).collect();
    keys.into_iter()
        .filter(|k| a.cells.get(*k) != b.cells.get(*k))
        .map(|k| {
            format!(
                "{k}: {} vs {}",
                a.cells.get(k).map_or("absent", String::as_str),
                b.cells.get(k).map_or("absent", String::as_str)
            )
        })
        .collect()
}

/// A row's verdict: its result, its cells differing from its reference run (none for the clean
/// run and the CNI fault alone), and what made its results unreadable.
struct Judged {
    result: RowResult,
    diff: Option<Vec<String>>,
    problems: Vec<String>,
}

/// Judges run `r` by the rules (module docs). `cni` is the CNI fault's name, `cni_alone` its run
/// without a hostile control plane; `requested` the scenarios named on the command line.
fn judge(
    r: &Run,
    clean: &Run,
    cni: Option<&str>,
    cni_alone: Option<&Run>,
    requested: &[String],
) -> Judged {
    let is_cni = cni.is_some_and(|c| r.label.starts_with(c));
    // The run this one is compared with: none for the clean run and the CNI fault alone.
    let reference = if r.label == "clean" || Some(r.label.as_str()) == cni {
        None
    } else if is_cni {
        cni_alone
    } else {
        Some(clean)
    };
    let mut problems = r.problems.clone();
    // Only an unusable environment may leave a run without cells.
    if problems.is_empty() && r.cells.is_empty() && (reference.is_none() || r.code != 3) {
        problems.push("no cells".into());
    }
    if r.label == "clean" {
        let missing: Vec<&String> = requested
            .iter()
            .filter(|n| !r.scenarios.contains(*n))
            .collect();
        if !missing.is_empty() {
            problems.push(format!("no results for the scenarios {missing:?}"));
        }
    }
    if let Some(base) = reference {
        if matches!(r.code, 0 | 1) && r.cells.len() < base.cells.len() {
            problems.push(format!(
                "{} cells, fewer than the {} of the {} run",
                r.cells.len(),
                base.cells.len(),
                base.label
            ));
        }
    }
    let diff = match (reference, r.code) {
        (Some(base), 3) => Some(differing_judged(base, r)),
        (Some(base), _) => Some(differing(base, r)),
        (None, _) => None,
    };
    let n_diff = diff.as_ref().map_or(0, Vec::len);
    let rules_met = if r.label == "clean" {
        r.code == 0
    } else if !is_cni {
        matches!(r.code, 0 | 3) && n_diff == 0
    } else if reference.is_none() {
        r.code == 1 && !r.failed.is_empty()
    } else {
        // With the CNI fault, exit 1 must fail the same scenarios (its differing cells are
        // shown); exit 3 may not judge a path otherwise.
        let base = cni_alone.map(|c| c.failed.clone()).unwrap_or_default();
        (r.code == 1 && r.failed == base) || (r.code == 3 && n_diff == 0)
    };
    let result = if !rules_met || !problems.is_empty() {
        RowResult::Violated
    } else if r.code == 3 {
        RowResult::Exit3
    } else {
        RowResult::Ok
    };
    Judged {
        result,
        diff,
        problems,
    }
}

pub fn chaos(args: ChaosBenchArgs) -> anyhow::Result<u8> {
    let exe = std::env::current_exe().context("locating the netassay binary")?;
    let dir = match &args.keep {
        Some(keep) => RunsDir(keep.clone(), true),
        None => RunsDir(
            std::env::temp_dir().join(format!("netassay-bench-chaos-{}", std::process::id())),
            false,
        ),
    };
    std::fs::create_dir_all(dir.path()).context("a directory for the runs' results")?;
    let plane = args.sandbox_control_plane;
    let sets = if args.faults.is_empty() {
        default_fault_sets(plane)
    } else {
        args.faults.clone()
    };
    for set in &sets {
        for f in set.split('+') {
            match f.parse::<ControlPlaneFault>() {
                Err(_) => {
                    eprintln!("netassay bench chaos: --faults {set:?}: {f:?} is not a control-plane fault (expected one of api-errors, exec-resets, pod-restarts, slow-api)");
                    return Ok(exit::BAD_INPUT);
                }
                Ok(fault) if !applicable(plane).contains(&fault) => {
                    eprintln!("netassay bench chaos: --faults {set:?}: {f} is a fault of the emulator's API, which --sandbox-control-plane {plane} does not have (its node carries exec-resets and pod-restarts)");
                    return Ok(exit::BAD_INPUT);
                }
                Ok(_) => {}
            }
        }
    }
    let cni = (args.cni_fault != "none").then(|| args.cni_fault.clone());
    let all_chaos = applicable(plane)
        .iter()
        .map(|f| f.name())
        .collect::<Vec<_>>()
        .join("+");
    // (label, faults): the clean run first, then each set; the CNI fault alone, then with all.
    let mut plan: Vec<(String, Vec<String>)> = vec![("clean".into(), vec![])];
    plan.extend(
        sets.iter()
            .map(|s| (s.clone(), s.split('+').map(str::to_string).collect())),
    );
    if let Some(c) = &cni {
        plan.push((c.clone(), vec![c.clone()]));
        let mut with: Vec<String> = vec![c.clone()];
        with.extend(all_chaos.split('+').map(str::to_string));
        plan.push((format!("{c}+{all_chaos}"), with));
    }
    let mut runs = Vec::new();
    for (k, (label, faults)) in plan.iter().enumerate() {
        let json = dir.path().join(format!("run-{k}.json"));
        eprintln!(
            "[netassay] bench chaos: run {} of {}: {label} ...",
            k + 1,
            plan.len()
        );
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["run", "--sandbox", "--profile", &args.profile])
            .args(["--sandbox-control-plane", &plane.to_string()])
            .args(["--parallel", &args.parallel.max(1).to_string()]);
        for f in faults {
            cmd.args(["--sandbox-fault", f]);
        }
        if !args.scenarios.is_empty() {
            cmd.arg("--exact").args(&args.scenarios);
        }
        let output = std::fs::File::create(dir.path().join(format!("run-{k}.txt")))
            .context("a file for the run's output")?;
        cmd.arg("--json")
            .arg(&json)
            .stdout(output.try_clone()?)
            .stderr(output);
        let started = Instant::now();
        let status = cmd.status().context("running netassay run --sandbox")?;
        let seconds = started.elapsed().as_secs_f64();
        runs.push(read_run(
            label.clone(),
            status.code().unwrap_or(-1),
            seconds,
            &json,
        ));
    }
    let Some((clean, rest)) = runs.split_first() else {
        return Ok(exit::BAD_INPUT);
    };
    println!(
        "netassay bench chaos: profile {}{}, --parallel {}, control plane {plane}",
        args.profile,
        if args.scenarios.is_empty() {
            String::new()
        } else {
            format!(" ({} scenarios)", args.scenarios.len())
        },
        args.parallel.max(1)
    );
    println!(
        "rules: a hostile control plane on the compliant dataplane exits 0 with no cell differing from the clean run, or exits 3, never 1; \
         with a CNI fault the same scenarios fail as without the hostile control plane; \
         a run that exits 3 judged no path otherwise than its reference run (its row says exit-3, and why it ended so is listed); \
         the clean run has at least one cell in every step, and a run that exits 0 or 1 has all of its reference run's cells"
    );
    println!(
        "{:<56} {:>4} {:>6} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8}  result",
        "faults",
        "exit",
        "cells",
        "differing",
        "failed",
        "API ret.",
        "exec rep",
        "restarts",
        "wall"
    );
    let mut all_ok = true;
    let mut details = Vec::new();
    let mut exit3 = Vec::new();
    let mut unreadable = Vec::new();
    let cni_alone = rest
        .iter()
        .find(|r| cni.as_deref() == Some(r.label.as_str()));
    for r in std::iter::once(clean).chain(rest) {
        let Judged {
            result,
            diff,
            problems,
        } = judge(r, clean, cni.as_deref(), cni_alone, &args.scenarios);
        let n_diff = diff.as_ref().map_or(0, Vec::len);
        all_ok &= result != RowResult::Violated;
        if let Some(d) = &diff {
            details.extend(d.iter().take(10).map(|d| format!("{}: {d}", r.label)));
        }
        unreadable.extend(problems.iter().map(|p| format!("{}: {p}", r.label)));
        if r.code == 3 {
            exit3.push(r);
        }
        println!(
            "{:<56} {:>4} {:>6} {:>9} {:>7} {:>8} {:>8} {:>8} {:>7.0}s  {}",
            r.label,
            r.code,
            r.cells.len(),
            diff.map_or("-".to_string(), |_| n_diff.to_string()),
            r.failed.len(),
            r.retries[0],
            r.retries[1],
            r.retries[2],
            r.seconds,
            match result {
                RowResult::Ok => "ok",
                RowResult::Exit3 => "exit-3",
                RowResult::Violated => "VIOLATED",
            }
        );
    }
    for d in &details {
        println!("  differs: {d}");
    }
    for u in &unreadable {
        println!("  results not as this bench reads them: {u}");
    }
    if !exit3.is_empty() {
        println!(
            "{} of {} runs ended in exit 3 (environment not usable): the rules allow it, but such a run says nothing about the paths it left unjudged; why:",
            exit3.len(),
            runs.len()
        );
        for r in &exit3 {
            let unjudged = r.cells.values().filter(|s| !judged(s)).count();
            // The scenarios incomplete here but not in the clean run (there, e.g., for lack of
            // SCTP): what the hostile control plane cost.
            let new: Vec<String> = r
                .unusable
                .iter()
                .filter(|(name, _)| !clean.unusable.contains_key(*name))
                .map(|(name, why)| format!("{name}: {why}"))
                .collect();
            println!(
                "  {}: {unjudged} of {} cells not judged; {}",
                r.label,
                r.cells.len(),
                if new.is_empty() {
                    "no scenario incomplete that the clean run judged (see the run's output)"
                        .to_string()
                } else {
                    format!(
                        "{} scenario(s) incomplete that the clean run judged: {}{}",
                        new.len(),
                        new.iter().take(5).cloned().collect::<Vec<_>>().join("; "),
                        if new.len() > 5 { "; ..." } else { "" }
                    )
                }
            );
        }
    }
    println!(
        "{}",
        if !all_ok {
            "some runs break the rules".to_string()
        } else if exit3.is_empty() {
            "every run follows the rules".to_string()
        } else {
            format!(
                "every run follows the rules ({} of them by ending in exit 3)",
                exit3.len()
            )
        }
    );
    Ok(if all_ok { exit::OK } else { exit::MISMATCH })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(label: &str, code: i32, cells: &[(&str, &str)], failed: &[&str]) -> Run {
        Run {
            label: label.into(),
            code,
            seconds: 1.0,
            cells: cells
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            scenarios: BTreeSet::new(),
            failed: failed.iter().map(|s| s.to_string()).collect(),
            retries: [0; 3],
            problems: Vec::new(),
            unusable: BTreeMap::new(),
        }
    }

    #[test]
    fn differing_cells_include_cells_only_one_run_has() {
        let a = run("clean", 0, &[("a", "pass"), ("b", "pass")], &[]);
        let b = run("x", 0, &[("a", "pass"), ("b", "fail"), ("c", "pass")], &[]);
        let d = differing(&a, &b);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].starts_with("b: pass vs fail"));
        assert!(d[1].starts_with("c: absent vs pass"));
    }

    // An exit 3 may leave cells out or unjudged, but what both runs judged must agree.
    #[test]
    fn an_exit_3_run_differs_only_where_both_judged() {
        let clean = run(
            "clean",
            0,
            &[("a", "pass"), ("b", "pass"), ("c", "pass")],
            &[],
        );
        let r = run("x", 3, &[("a", "interrupted"), ("b", "fail")], &[]);
        assert_eq!(differing_judged(&clean, &r), ["b: pass vs fail"]);
        let r = run("x", 3, &[("a", "interrupted"), ("b", "pass")], &[]);
        assert!(differing_judged(&clean, &r).is_empty());
    }

    // The rows' rules, each way a row can break them, and exit 3 shown apart from ok.
    #[test]
    fn rows_are_judged_by_the_rules() {
        let cells = [("a", "pass"), ("b", "pass"), ("c", "not-judged")];
        let clean = run("clean", 0, &cells, &[]);
        let judge = |r: &Run| judge(r, &clean, None, None, &[]).result;
        assert_eq!(judge(&clean), RowResult::Ok);
        assert_eq!(judge(&run("x", 0, &cells, &[])), RowResult::Ok);
        assert_eq!(judge(&run("x", 1, &cells, &["s"])), RowResult::Violated);
        let one_wrong = [("a", "pass"), ("b", "fail"), ("c", "not-judged")];
        assert_eq!(judge(&run("x", 0, &one_wrong, &[])), RowResult::Violated);
        // Exit 3 may leave cells out or interrupted, never judge one otherwise.
        let interrupted = [("a", "pass"), ("b", "interrupted")];
        assert_eq!(judge(&run("x", 3, &interrupted, &[])), RowResult::Exit3);
        assert_eq!(judge(&run("x", 3, &one_wrong, &[])), RowResult::Violated);
        // Exit 0 with fewer cells than the clean run, or none at all.
        assert_eq!(judge(&run("x", 0, &cells[..2], &[])), RowResult::Violated);
        let empty = run("clean", 0, &[], &[]);
        assert_eq!(judge(&empty), RowResult::Violated);
        let after_empty = super::judge(&run("x", 0, &[], &[]), &empty, None, None, &[]);
        assert_eq!(after_empty.problems, ["no cells"]);
        // The clean run must have every scenario asked for.
        let asked = ["s".to_string()];
        assert_eq!(
            super::judge(&clean, &clean, None, None, &asked).result,
            RowResult::Violated
        );
        // Unreadable results break the rules whatever the exit code.
        let mut unreadable = run("x", 3, &[], &[]);
        unreadable.problems.push("no results file".into());
        assert_eq!(judge(&unreadable), RowResult::Violated);
    }

    // With a CNI fault: alone it must fail something; with the hostile control plane, exit 1
    // must fail the same scenarios, and exit 3 may not judge a path otherwise.
    #[test]
    fn cni_rows_fail_the_same_scenarios() {
        let clean = run("clean", 0, &[("a", "pass"), ("b", "pass")], &[]);
        let alone = run("f", 1, &[("a", "pass"), ("b", "fail")], &["s"]);
        let j = |r: &Run| judge(r, &clean, Some("f"), Some(&alone), &[]).result;
        assert_eq!(j(&alone), RowResult::Ok);
        assert_eq!(
            j(&run("f", 1, &[("a", "pass"), ("b", "pass")], &[])),
            RowResult::Violated
        );
        assert_eq!(
            j(&run("f+x", 1, &[("a", "pass"), ("b", "fail")], &["s"])),
            RowResult::Ok
        );
        assert_eq!(
            j(&run("f+x", 1, &[("a", "pass"), ("b", "fail")], &["t"])),
            RowResult::Violated
        );
        assert_eq!(
            j(&run(
                "f+x",
                3,
                &[("a", "interrupted"), ("b", "fail")],
                &["s"]
            )),
            RowResult::Exit3
        );
        assert_eq!(
            j(&run("f+x", 3, &[("a", "fail"), ("b", "fail")], &["s"])),
            RowResult::Violated
        );
        assert_eq!(
            j(&run("f+x", 0, &[("a", "pass"), ("b", "fail")], &[])),
            RowResult::Violated
        );
    }

    fn results(scenarios: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"schema": SCHEMA, "scenarios": scenarios})
    }

    fn cell(to: &str, status: &str) -> serde_json::Value {
        serde_json::json!({"from": "x/a", "to": to, "port": 80, "protocol": "TCP", "via": "pod-ip", "status": status})
    }

    #[test]
    fn results_of_the_expected_schema_are_read_without_problems() {
        let doc = results(serde_json::json!([
            {"name": "s", "verdict": "passed", "steps": [{"name": "one", "cells": [cell("x/b", "pass"), cell("x/c", "not-judged")]}]},
            {"name": "t", "verdict": "incomplete", "reason": "3 paths the cluster kept interrupting",
             "steps": [{"name": "one", "cells": [cell("x/b", "interrupted")]}]},
            {"name": "u", "verdict": "incomplete", "reason": "environment: the fixture is unhealthy",
             "environment": {"what": "the fixture is unhealthy"}, "steps": []}
        ]));
        let r = read_doc("clean".into(), 3, 1.0, &doc);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(r.cells.len(), 3);
        let why: Vec<String> = r
            .unusable
            .iter()
            .map(|(n, w)| format!("{n}: {w}"))
            .collect();
        assert_eq!(
            why,
            [
                "t: 3 paths the cluster kept interrupting",
                "u: environment: the fixture is unhealthy"
            ]
        );
    }

    // If the results drift from what this bench reads, every row would show 0 cells and agree:
    // each drift is a problem of the run instead.
    #[test]
    fn results_the_bench_cannot_read_are_problems_not_agreement() {
        let problems = |doc: serde_json::Value| read_doc("r".into(), 0, 1.0, &doc).problems;
        assert!(!problems(serde_json::json!({"schema": SCHEMA, "tests": []})).is_empty());
        assert!(!problems(results(serde_json::json!([]))).is_empty());
        let renamed_schema = serde_json::json!({"schema": "netassay.results/v2", "scenarios": [
            {"name": "s", "verdict": "passed", "steps": [{"name": "one", "cells": [cell("x/b", "pass")]}]}]});
        assert!(problems(renamed_schema)[0].contains("netassay.results/v2"));
        let no_steps =
            results(serde_json::json!([{"name": "s", "verdict": "passed", "phases": []}]));
        assert!(problems(no_steps)[0].contains("no steps"));
        let no_cells = results(
            serde_json::json!([{"name": "s", "verdict": "passed", "steps": [{"name": "one", "paths": []}]}]),
        );
        assert!(problems(no_cells)[0].contains("has no cells"));
        let status_renamed = results(
            serde_json::json!([{"name": "s", "verdict": "passed", "steps": [{"name": "one", "cells": [
            {"from": "x/a", "to": "x/b", "port": 80, "protocol": "TCP", "via": "pod-ip", "result": "pass"}]}]}]),
        );
        assert!(problems(status_renamed)[0].contains("unknown status"));
        let keys_collide = results(
            serde_json::json!([{"name": "s", "verdict": "passed", "steps": [{"name": "one", "cells": [
            {"source": "x/a", "status": "pass"}, {"source": "x/b", "status": "pass"}]}]}]),
        );
        assert!(problems(keys_collide)[0].contains("two cells with this key"));
    }

    #[test]
    fn the_default_sets_are_each_fault_then_all() {
        let sets = default_fault_sets(ControlPlane::Emulator);
        assert_eq!(sets.len(), 5);
        assert_eq!(sets[4], "api-errors+exec-resets+pod-restarts+slow-api");
    }

    // The reference cluster's API is the real one: only the faults its node carries apply.
    #[test]
    fn on_the_reference_cluster_the_sets_are_the_node_faults() {
        let sets = default_fault_sets(ControlPlane::Kubernetes);
        assert_eq!(
            sets,
            ["exec-resets", "pod-restarts", "exec-resets+pod-restarts"]
        );
    }
}
