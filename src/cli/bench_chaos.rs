//! `netassay bench chaos`: the equal-verdicts matrix of a hostile control plane (DESIGN §6).
//! Runs the sandbox clean, under each control-plane fault alone and all together, and with a
//! CNI fault alone and under all of them; prints per run the exit code, the cells whose status
//! differs from its reference run, the scenarios that failed, and what was retried.
//!
//! The rules: with the compliant dataplane a hostile control plane ends in exit 0 with the same
//! per-cell statuses as the clean run, or in exit 3 (environment not usable); never exit 1. With
//! a CNI fault, the same scenarios fail as without the hostile control plane.

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

/// One run's result, read from its JSON report.
struct Run {
    label: String,
    code: i32,
    seconds: f64,
    cells: BTreeMap<String, String>,
    failed: BTreeSet<String>,
    retries: [u64; 3],
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

fn read_run(label: String, code: i32, seconds: f64, json: &Path) -> anyhow::Result<Run> {
    let text = std::fs::read_to_string(json)
        .with_context(|| format!("reading the results of the {label} run"))?;
    let doc: serde_json::Value = serde_json::from_str(&text)?;
    let mut cells = BTreeMap::new();
    let mut failed = BTreeSet::new();
    let mut retries = [0u64; 3];
    for s in doc["scenarios"].as_array().into_iter().flatten() {
        let name = s["name"].as_str().unwrap_or_default();
        if s["verdict"] == "failed" {
            failed.insert(name.to_string());
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
        for step in s["steps"].as_array().into_iter().flatten() {
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
                cells.insert(key, c["status"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    Ok(Run {
        label,
        code,
        seconds,
        cells,
        failed,
        retries,
    })
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
        )?);
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
         with a CNI fault the same scenarios fail as without the hostile control plane"
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
    let cni_alone = rest
        .iter()
        .find(|r| cni.as_deref() == Some(r.label.as_str()));
    for r in std::iter::once(clean).chain(rest) {
        let is_cni = cni
            .as_ref()
            .is_some_and(|c| r.label.starts_with(c.as_str()));
        let (reference, ok) = if r.label == "clean" {
            (None, r.code == 0)
        } else if !is_cni {
            let diff = differing(clean, r);
            let ok = match r.code {
                0 => diff.is_empty(),
                3 => true,
                _ => false,
            };
            (Some(diff), ok)
        } else if Some(r.label.as_str()) == cni.as_deref() {
            (None, r.code == 1 && !r.failed.is_empty())
        } else {
            let base = cni_alone.map(|c| c.failed.clone()).unwrap_or_default();
            let diff = cni_alone.map(|c| differing(c, r)).unwrap_or_default();
            (Some(diff), (r.code == 1 && r.failed == base) || r.code == 3)
        };
        all_ok &= ok;
        let n_diff = reference.as_ref().map_or(0, Vec::len);
        if let Some(d) = &reference {
            details.extend(d.iter().take(10).map(|d| format!("{}: {d}", r.label)));
        }
        println!(
            "{:<56} {:>4} {:>6} {:>9} {:>7} {:>8} {:>8} {:>8} {:>7.0}s  {}",
            r.label,
            r.code,
            r.cells.len(),
            reference.map_or("-".to_string(), |_| n_diff.to_string()),
            r.failed.len(),
            r.retries[0],
            r.retries[1],
            r.retries[2],
            r.seconds,
            if ok { "ok" } else { "VIOLATED" }
        );
    }
    for d in &details {
        println!("  differs: {d}");
    }
    println!(
        "{}",
        if all_ok {
            "every run follows the rules"
        } else {
            "some runs break the rules"
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
            failed: failed.iter().map(|s| s.to_string()).collect(),
            retries: [0; 3],
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
