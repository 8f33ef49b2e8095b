//! `netassay bench scale`: how netassay's cost grows with the size of a TRE. For each N of
//! `--projects`, the k8tre profile runs against the sandbox's scaled TRE preset
//! (`run --sandbox --sandbox-preset k8tre --sandbox-scale projects=N`, a child process: the real
//! product path, emulator and default dataplane), and the bench prints its figures: wall time,
//! rounds and their time, probes per second, API requests and exec calls per step (the
//! fixtures' own clients count them, see `StepLoad`), the oracle's time (the run's scenarios
//! planned here, the same walk the run makes), the run's peak RSS and the size of every report;
//! then the growth exponent of each figure, the least-squares slope of log(figure) over
//! log(N), and the targets (50 projects within 10x the time of 5, at most 500 MiB, an
//! HTML report of at most 5 MB).

use super::exit;
use crate::scenario::{bind_profiles, builtin, Scenario};
use anyhow::Context;
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct ScaleBenchArgs {
    /// Project counts to run, comma-separated (each from 2 to 100).
    #[arg(long, value_delimiter = ',', default_value = "5,10,25,50")]
    pub projects: Vec<u16>,
    /// Fixtures probed at once, as for `run`.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Probe timeout, as for `run`.
    #[arg(long, default_value = "1s")]
    pub probe_timeout: String,
    /// Keep each run's reports in DIR/projects-N (default: a temporary folder, removed).
    #[arg(long, value_name = "DIR")]
    pub keep_reports: Option<PathBuf>,
    /// The netassay binary to measure (default: this one).
    #[arg(long)]
    pub executable: Option<PathBuf>,
}

/// The targets: the largest size within this many times the smallest's wall time
/// (50 projects against 5), ...
const TIME_RATIO_GOAL: f64 = 10.0;
/// ... netassay's peak RSS at most this (MiB) ...
const RSS_GOAL_MIB: f64 = 500.0;
/// ... and the HTML report at most this (bytes).
const HTML_GOAL_BYTES: u64 = 5_000_000;

/// The report files `run --report-dir` writes, in the order the table shows them.
const REPORTS: [&str; 4] = [
    "report.html",
    "results.json",
    "junit.xml",
    "conformance.yaml",
];

/// The figures of one run.
#[derive(Debug, Default, Clone, PartialEq)]
struct Figures {
    projects: u16,
    exit_code: i32,
    passed: bool,
    wall_s: f64,
    cells: u64,
    steps: u64,
    rounds: u64,
    /// Sum of the steps' wall times (fixtures run in parallel: it may exceed the wall time).
    step_s: f64,
    probes: u64,
    api_requests: u64,
    exec_calls: u64,
    oracle_ms: f64,
    peak_rss_mib: f64,
    /// Bytes of each of [`REPORTS`] (0: not written).
    report_bytes: [u64; 4],
}

impl Figures {
    fn per_step(&self, n: u64) -> f64 {
        n as f64 / self.steps.max(1) as f64
    }

    fn round_s(&self) -> f64 {
        self.step_s / self.rounds.max(1) as f64
    }

    fn probes_per_s(&self) -> f64 {
        self.probes as f64 / self.wall_s.max(f64::EPSILON)
    }

    /// The figures the table shows and fits, with their column names.
    fn columns(&self) -> Vec<(&'static str, f64)> {
        let mut out = vec![
            ("wall s", self.wall_s),
            ("cells", self.cells as f64),
            ("rounds", self.rounds as f64),
            ("s/round", self.round_s()),
            ("probes/s", self.probes_per_s()),
            ("API/step", self.per_step(self.api_requests)),
            ("exec/step", self.per_step(self.exec_calls)),
            ("oracle ms", self.oracle_ms),
            ("RSS MiB", self.peak_rss_mib),
        ];
        for (name, bytes) in ["html KiB", "json KiB", "junit KiB", "conf KiB"]
            .into_iter()
            .zip(self.report_bytes)
        {
            out.push((name, bytes as f64 / 1024.0));
        }
        out
    }

    /// Reads what the run's results say: steps (baselines included), their rounds, time,
    /// requests and exec calls, the cells of the last matrix of each and the probes made.
    fn read_results(&mut self, doc: &serde_json::Value) {
        let summary = &doc["summary"];
        self.passed = summary["failed"] == 0
            && summary["incomplete"] == 0
            && summary["passed"].as_u64().unwrap_or(0) > 0;
        for s in doc["scenarios"].as_array().into_iter().flatten() {
            let baseline = Some(&s["baseline"]).filter(|b| b.is_object());
            let steps = s["steps"].as_array().into_iter().flatten();
            for st in baseline.into_iter().chain(steps) {
                self.steps += 1;
                self.rounds += st["rounds"].as_u64().unwrap_or(0);
                let load = &st["load"];
                self.api_requests += load["api_requests"].as_u64().unwrap_or(0);
                self.exec_calls += load["exec_calls"].as_u64().unwrap_or(0);
                self.step_s += load["elapsed_ms"].as_u64().unwrap_or(0) as f64 / 1000.0;
                for c in st["cells"].as_array().into_iter().flatten() {
                    self.cells += 1;
                    self.probes += c["attempts"].as_array().map_or(0, |a| a.len() as u64);
                }
            }
        }
    }
}

/// The least-squares slope of ln(y) over ln(x): `k` when y = c * x^k. `None` with fewer than
/// two distinct x, or a point that is not positive (no logarithm).
fn growth_exponent(points: &[(f64, f64)]) -> Option<f64> {
    if points.iter().any(|&(x, y)| x <= 0.0 || y <= 0.0) {
        return None;
    }
    let logs: Vec<(f64, f64)> = points.iter().map(|&(x, y)| (x.ln(), y.ln())).collect();
    let n = logs.len() as f64;
    let mean_x = logs.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = logs.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = logs.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = logs.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    (sxx > 1e-12).then(|| sxy / sxx)
}

/// `VmHWM` of a process (its peak resident set so far), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The scenarios the run at `projects` judges, planned as the run plans them: the oracle's
/// time, in milliseconds.
fn oracle_ms(projects: u16) -> anyhow::Result<f64> {
    let loaded = |errors: Vec<crate::scenario::LoadError>| {
        anyhow::anyhow!(errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"))
    };
    let mut scenarios: Vec<Scenario> = builtin::select(&["k8tre".to_string()])
        .map_err(loaded)?
        .into_iter()
        .filter(|s| s.name.starts_with("k8tre-"))
        .collect();
    for s in scenarios.iter_mut() {
        if s.name == builtin::PROJECT_ISOLATION {
            *s = builtin::project_isolation(projects).map_err(loaded)?;
        }
    }
    bind_profiles(&mut scenarios, None).map_err(loaded)?;
    let t = Instant::now();
    for s in &scenarios {
        s.plan()
            .map_err(|e| anyhow::anyhow!("planning {}: {}", s.name, e.message))?;
    }
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

/// One run of the k8tre profile at `projects`, its reports in `dir`.
fn measure(
    exe: &Path,
    args: &ScaleBenchArgs,
    projects: u16,
    dir: &Path,
) -> anyhow::Result<Figures> {
    std::fs::create_dir_all(dir)?;
    let log = std::fs::File::create(dir.join("run.log"))?;
    let mut f = Figures {
        projects,
        oracle_ms: oracle_ms(projects)?,
        ..Figures::default()
    };
    let t = Instant::now();
    let mut child = std::process::Command::new(exe)
        .args([
            "run",
            "--sandbox",
            "--sandbox-preset",
            "k8tre",
            "--sandbox-scale",
        ])
        .arg(format!("projects={projects}"))
        .args(["--profile", "k8tre", "--parallel"])
        .arg(args.parallel.max(1).to_string())
        .args(["--probe-timeout", &args.probe_timeout, "--report-dir"])
        .arg(dir)
        .arg("k8tre-")
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting netassay run --sandbox")?;
    // VmHWM only grows: the last reading before the process ends is its peak, give or take
    // what it allocated in its last 50 ms (it is tearing the sandbox down by then).
    let mut peak_kib = 0;
    let status = loop {
        if let Some(kib) = peak_rss_kib(child.id()) {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    f.wall_s = t.elapsed().as_secs_f64();
    f.exit_code = status.code().unwrap_or(-1);
    f.peak_rss_mib = peak_kib as f64 / 1024.0;
    for (i, name) in REPORTS.iter().enumerate() {
        f.report_bytes[i] = std::fs::metadata(dir.join(name)).map_or(0, |m| m.len());
    }
    let text = std::fs::read_to_string(dir.join("results.json")).with_context(|| {
        format!(
            "reading the results of projects={projects} (see {})",
            dir.join("run.log").display()
        )
    })?;
    f.read_results(&serde_json::from_str(&text)?);
    Ok(f)
}

/// The table: a row per size, then the exponent of every column.
fn table(runs: &[Figures]) -> Vec<String> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    let names: Vec<&str> = first.columns().iter().map(|c| c.0).collect();
    let mut out = vec![format!(
        "{:>8} {}",
        "projects",
        names.iter().map(|n| format!("{n:>10}")).collect::<String>()
    )];
    for r in runs {
        out.push(format!(
            "{:>8} {}",
            r.projects,
            r.columns()
                .iter()
                .map(|(_, v)| format!("{:>10}", figure(*v)))
                .collect::<String>()
        ));
    }
    let exponents: String = (0..names.len())
        .map(|i| {
            let points: Vec<(f64, f64)> = runs
                .iter()
                .map(|r| (f64::from(r.projects), r.columns()[i].1))
                .collect();
            match growth_exponent(&points) {
                Some(k) => format!("{:>10}", format!("N^{k:.2}")),
                None => format!("{:>10}", "-"),
            }
        })
        .collect();
    out.push(format!("{:>8} {exponents}", "exponent"));
    out
}

fn figure(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The targets, for the sizes measured: a line each, and whether all are met.
fn targets(runs: &[Figures]) -> (Vec<String>, bool) {
    let mut lines = Vec::new();
    let mut ok = true;
    let mut say = |met: bool, text: String| {
        ok &= met;
        lines.push(format!(
            "{} {text}",
            if met { "met:    " } else { "NOT MET:" }
        ));
    };
    let (Some(small), Some(large)) = (
        runs.iter().min_by_key(|r| r.projects),
        runs.iter().max_by_key(|r| r.projects),
    ) else {
        return (lines, true);
    };
    if large.projects > small.projects {
        let ratio = large.wall_s / small.wall_s.max(f64::EPSILON);
        say(
            ratio <= TIME_RATIO_GOAL,
            format!(
                "{} projects in {ratio:.2} x the time of {} (goal: at most {TIME_RATIO_GOAL} x; the issue's sizes are 50 and 5)",
                large.projects, small.projects
            ),
        );
    }
    say(
        large.peak_rss_mib <= RSS_GOAL_MIB,
        format!(
            "peak RSS {:.0} MiB at {} projects (goal: at most {RSS_GOAL_MIB} MiB)",
            large.peak_rss_mib, large.projects
        ),
    );
    let html = large.report_bytes[0];
    say(
        html > 0 && html <= HTML_GOAL_BYTES,
        format!(
            "HTML report {:.2} MB at {} projects (goal: at most {} MB)",
            html as f64 / 1e6,
            large.projects,
            HTML_GOAL_BYTES / 1_000_000
        ),
    );
    (lines, ok)
}

pub fn scale(args: ScaleBenchArgs) -> anyhow::Result<u8> {
    let range =
        netassay_sandbox::PresetScale::MIN_PROJECTS..=netassay_sandbox::PresetScale::MAX_PROJECTS;
    if args.projects.is_empty() || args.projects.iter().any(|n| !range.contains(n)) {
        eprintln!(
            "netassay bench scale: --projects takes project counts from {} to {}, comma-separated (e.g. 5,10)",
            range.start(),
            range.end()
        );
        return Ok(exit::BAD_INPUT);
    }
    let exe = match &args.executable {
        Some(e) => e.clone(),
        None => std::env::current_exe().context("locating the netassay binary")?,
    };
    let temp = std::env::temp_dir().join(format!("netassay-bench-scale-{}", std::process::id()));
    let root = args.keep_reports.clone().unwrap_or_else(|| temp.clone());
    let mut sizes = args.projects.clone();
    sizes.sort_unstable();
    sizes.dedup();
    println!(
        "k8tre profile on the sandbox's TRE preset (emulator, default dataplane), --parallel {}, --probe-timeout {}",
        args.parallel.max(1),
        args.probe_timeout
    );
    let mut runs = Vec::new();
    let mut ok = true;
    for &n in &sizes {
        let dir = root.join(format!("projects-{n}"));
        let f = measure(&exe, &args, n, &dir)?;
        println!(
            "projects={n}: run exited {} ({}), {:.1} s",
            f.exit_code,
            if f.passed { "passed" } else { "NOT PASSED" },
            f.wall_s
        );
        ok &= f.exit_code == 0 && f.passed;
        runs.push(f);
    }
    if args.keep_reports.is_none() {
        let _ = std::fs::remove_dir_all(&temp);
    }
    println!();
    for line in table(&runs) {
        println!("{line}");
    }
    println!(
        "\nwall s: the run, sandbox start and teardown included; cells: paths probed in every step and baseline;\n\
         s/round: the steps' wall time (fixtures run in parallel) over their rounds; API/step, exec/step: requests of\n\
         the fixtures' clients (exec upgrades included) per step; oracle ms: the run's scenarios planned once;\n\
         RSS: the run's VmHWM; exponent: least-squares slope of log(figure) over log(projects)."
    );
    let (lines, met) = targets(&runs);
    println!();
    for l in lines {
        println!("{l}");
    }
    Ok(if ok && met { exit::OK } else { exit::MISMATCH })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exponent_of_an_exact_power_law_is_its_power() {
        for k in [0.0, 0.5, 1.0, 2.0, 3.0] {
            let points: Vec<(f64, f64)> = [5.0, 10.0, 25.0, 50.0_f64]
                .iter()
                .map(|&x| (x, 7.5 * x.powf(k)))
                .collect();
            let got = growth_exponent(&points).expect("an exponent");
            assert!((got - k).abs() < 1e-9, "{k}: {got}");
        }
    }

    #[test]
    fn no_exponent_without_two_sizes_or_with_a_zero() {
        assert_eq!(growth_exponent(&[(5.0, 1.0)]), None);
        assert_eq!(growth_exponent(&[(5.0, 1.0), (5.0, 2.0)]), None);
        assert_eq!(growth_exponent(&[(5.0, 0.0), (10.0, 2.0)]), None);
        assert_eq!(growth_exponent(&[]), None);
    }

    #[test]
    fn results_are_read_per_step_with_the_baseline() {
        let doc = serde_json::json!({
            "summary": {"passed": 1, "failed": 0, "incomplete": 0},
            "scenarios": [{
                "baseline": {"rounds": 1, "load": {"api_requests": 3, "exec_calls": 2, "elapsed_ms": 500},
                             "cells": [{"attempts": [{}]}]},
                "steps": [{"rounds": 3, "load": {"api_requests": 7, "exec_calls": 4, "elapsed_ms": 1500},
                           "cells": [{"attempts": [{}, {}]}, {"attempts": [{}]}]}],
            }],
        });
        let mut f = Figures::default();
        f.read_results(&doc);
        assert!(f.passed);
        assert_eq!((f.steps, f.rounds, f.cells, f.probes), (2, 4, 3, 4));
        assert_eq!((f.api_requests, f.exec_calls), (10, 6));
        assert_eq!(f.step_s, 2.0);
        assert_eq!(f.round_s(), 0.5);
        assert_eq!(f.per_step(f.exec_calls), 3.0);
    }

    #[test]
    fn targets_compare_the_largest_size_with_the_smallest() {
        let run = |projects, wall_s, rss, html| Figures {
            projects,
            wall_s,
            peak_rss_mib: rss,
            report_bytes: [html, 1, 1, 1],
            ..Figures::default()
        };
        let (lines, ok) = targets(&[run(5, 10.0, 50.0, 1000), run(50, 99.0, 400.0, 4_000_000)]);
        assert!(ok, "{lines:?}");
        assert_eq!(lines.len(), 3);
        assert!(lines[0].contains("9.90 x the time of 5"), "{lines:?}");
        let (lines, ok) = targets(&[run(5, 10.0, 50.0, 1000), run(50, 101.0, 600.0, 6_000_000)]);
        assert!(!ok);
        assert!(lines.iter().all(|l| l.starts_with("NOT MET")), "{lines:?}");
    }

    #[test]
    fn the_table_has_a_row_per_size_and_an_exponent_row() {
        let run = |projects: u16| Figures {
            projects,
            wall_s: f64::from(projects),
            steps: 1,
            rounds: 1,
            ..Figures::default()
        };
        let lines = table(&[run(5), run(10)]);
        assert_eq!(lines.len(), 4);
        assert!(lines[0].contains("projects") && lines[0].contains("wall s"));
        assert!(lines[3].starts_with("exponent"));
        assert!(lines[3].contains("N^1.00"), "{}", lines[3]);
    }
}
