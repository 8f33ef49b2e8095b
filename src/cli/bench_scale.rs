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
//!
//! With `--pods`, the series is one fixture of N pods instead (a square `topology.grid`, so N
//! is a square: 25, 100, 400) under one policy, TCP 80 between every pair: the cost of large
//! fixtures and rounds, and the target that a 100-pod round takes at most twice the probe
//! timeout.

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
    /// Measure fixtures of these many pods instead (squares from 4 to 2,500: a grid of
    /// sqrt(N) namespaces x sqrt(N) pods), comma-separated, e.g. 25,100,400.
    #[arg(long, value_delimiter = ',', conflicts_with = "projects")]
    pub pods: Vec<u16>,
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
/// A round of a fixture of [`ROUND_GOAL_PODS`] pods takes at most this many probe timeouts.
const ROUND_GOAL_TIMEOUTS: f64 = 2.0;
const ROUND_GOAL_PODS: u16 = 100;

/// What grows along a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Series {
    /// The k8tre profile on a TRE preset of N projects.
    #[default]
    Projects,
    /// One scenario on a fixture of N pods.
    Pods,
}

impl Series {
    fn unit(self) -> &'static str {
        match self {
            Series::Projects => "projects",
            Series::Pods => "pods",
        }
    }
}

/// The side of the square grid of `pods` pods, when it is a square of at least 2.
fn grid_side(pods: u16) -> Option<u16> {
    let side = (f64::from(pods).sqrt().round()) as u16;
    (side >= 2 && side * side == pods).then_some(side)
}

/// The scenario of the pods series: a grid of `side` x `side`, ns-00 admitting only its own
/// namespace, TCP 80 between every pair.
fn grid_scenario(side: u16) -> (String, String) {
    let name = format!("bench-grid-{}-pods", u32::from(side) * u32::from(side));
    let text = format!(
        "name: {name}\n\
         description: bench scale's fixture of {side} namespaces x {side} pods; ns-00 admits only its own namespace.\n\
         tags: [scale]\n\
         topology:\n  grid: {{namespaces: {side}, pods: {side}}}\n  serve: [{{port: 80, protocol: TCP}}]\n\
         probe: {{ports: [80], protocols: [TCP]}}\n\
         steps:\n  - name: ns-00 admits only its own namespace\n    apply:\n\
         \x20     - apiVersion: networking.k8s.io/v1\n\
         \x20       kind: NetworkPolicy\n\
         \x20       metadata: {{name: same-namespace, namespace: ns-00}}\n\
         \x20       spec: {{podSelector: {{}}, policyTypes: [Ingress], ingress: [{{from: [{{podSelector: {{}}}}]}}]}}\n"
    );
    (name, text)
}

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
    /// Projects or pods, as the series counts.
    size: u16,
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

fn loaded(errors: Vec<crate::scenario::LoadError>) -> anyhow::Error {
    anyhow::anyhow!(errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n"))
}

/// The scenarios the run at `size` judges, planned as the run plans them: the oracle's time,
/// in milliseconds.
fn oracle_ms(series: Series, size: u16) -> anyhow::Result<f64> {
    let scenarios = match series {
        Series::Projects => k8tre_scenarios(size)?,
        Series::Pods => {
            let (name, text) = grid_scenario(grid_side(size).unwrap_or(2));
            vec![crate::scenario::load_str(&name, &text).map_err(loaded)?]
        }
    };
    let t = Instant::now();
    for s in &scenarios {
        s.plan()
            .map_err(|e| anyhow::anyhow!("planning {}: {}", s.name, e.message))?;
    }
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

/// The k8tre profile's scenarios with the isolation scenario at `projects`.
fn k8tre_scenarios(projects: u16) -> anyhow::Result<Vec<Scenario>> {
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
    Ok(scenarios)
}

/// One run at `size` (the k8tre profile at `size` projects, or the grid of `size` pods), its
/// reports in `dir`.
fn measure(
    exe: &Path,
    args: &ScaleBenchArgs,
    series: Series,
    size: u16,
    dir: &Path,
) -> anyhow::Result<Figures> {
    std::fs::create_dir_all(dir)?;
    let log = std::fs::File::create(dir.join("run.log"))?;
    let mut f = Figures {
        size,
        oracle_ms: oracle_ms(series, size)?,
        ..Figures::default()
    };
    let mut command = std::process::Command::new(exe);
    command.args(["run", "--sandbox"]);
    match series {
        Series::Projects => {
            command
                .args(["--sandbox-preset", "k8tre", "--sandbox-scale"])
                .arg(format!("projects={size}"))
                .args(["--profile", "k8tre"]);
        }
        Series::Pods => {
            let scenarios = dir.join("scenarios");
            std::fs::create_dir_all(&scenarios)?;
            let (name, text) = grid_scenario(grid_side(size).unwrap_or(2));
            std::fs::write(scenarios.join(format!("{name}.yaml")), text)?;
            command
                .arg("--scenarios")
                .arg(&scenarios)
                .args(["--exact", &name]);
        }
    }
    command
        .arg("--parallel")
        .arg(args.parallel.max(1).to_string())
        .args(["--probe-timeout", &args.probe_timeout, "--report-dir"])
        .arg(dir);
    if series == Series::Projects {
        command.arg("k8tre-");
    }
    let t = Instant::now();
    let mut child = command
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
            "reading the results of {}={size} (see {})",
            series.unit(),
            dir.join("run.log").display()
        )
    })?;
    f.read_results(&serde_json::from_str(&text)?);
    Ok(f)
}

/// The table: a row per size, then the exponent of every column.
fn table(series: Series, runs: &[Figures]) -> Vec<String> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    let names: Vec<&str> = first.columns().iter().map(|c| c.0).collect();
    let mut out = vec![format!(
        "{:>8} {}",
        series.unit(),
        names.iter().map(|n| format!("{n:>10}")).collect::<String>()
    )];
    for r in runs {
        out.push(format!(
            "{:>8} {}",
            r.size,
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
                .map(|r| (f64::from(r.size), r.columns()[i].1))
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

/// The targets, for the sizes measured: a line each, and whether all are met. The
/// projects series: the largest size's time against the smallest's, its peak RSS and HTML size;
/// the pods series: a round of a 100-pod fixture against the probe timeout.
fn targets(series: Series, runs: &[Figures], timeout_s: f64) -> (Vec<String>, bool) {
    let mut lines = Vec::new();
    let mut ok = true;
    let mut say = |met: bool, text: String| {
        ok &= met;
        lines.push(format!(
            "{} {text}",
            if met { "met:    " } else { "NOT MET:" }
        ));
    };
    if series == Series::Pods {
        if let Some(r) = runs.iter().find(|r| r.size == ROUND_GOAL_PODS) {
            let ratio = r.round_s() / timeout_s.max(f64::EPSILON);
            say(
                ratio <= ROUND_GOAL_TIMEOUTS,
                format!(
                    "a round at {ROUND_GOAL_PODS} pods took {:.2} s, {ratio:.2} x the probe timeout (goal: at most {ROUND_GOAL_TIMEOUTS} x)",
                    r.round_s()
                ),
            );
        }
        return (lines, ok);
    }
    let (Some(small), Some(large)) = (
        runs.iter().min_by_key(|r| r.size),
        runs.iter().max_by_key(|r| r.size),
    ) else {
        return (lines, true);
    };
    if large.size > small.size {
        let ratio = large.wall_s / small.wall_s.max(f64::EPSILON);
        say(
            ratio <= TIME_RATIO_GOAL,
            format!(
                "{} projects in {ratio:.2} x the time of {} (goal: at most {TIME_RATIO_GOAL} x; the issue's sizes are 50 and 5)",
                large.size, small.size
            ),
        );
    }
    say(
        large.peak_rss_mib <= RSS_GOAL_MIB,
        format!(
            "peak RSS {:.0} MiB at {} projects (goal: at most {RSS_GOAL_MIB} MiB)",
            large.peak_rss_mib, large.size
        ),
    );
    let html = large.report_bytes[0];
    say(
        html > 0 && html <= HTML_GOAL_BYTES,
        format!(
            "HTML report {:.2} MB at {} projects (goal: at most {} MB)",
            html as f64 / 1e6,
            large.size,
            HTML_GOAL_BYTES / 1_000_000
        ),
    );
    (lines, ok)
}

pub fn scale(args: ScaleBenchArgs) -> anyhow::Result<u8> {
    let series = if args.pods.is_empty() {
        Series::Projects
    } else {
        Series::Pods
    };
    let sizes_ok = match series {
        Series::Projects => {
            let range = netassay_sandbox::PresetScale::MIN_PROJECTS
                ..=netassay_sandbox::PresetScale::MAX_PROJECTS;
            let ok = !args.projects.is_empty() && args.projects.iter().all(|n| range.contains(n));
            if !ok {
                eprintln!(
                    "netassay bench scale: --projects takes project counts from {} to {}, comma-separated (e.g. 5,10)",
                    range.start(),
                    range.end()
                );
            }
            ok
        }
        Series::Pods => {
            let max = crate::scenario::load::MAX_GRID_PODS;
            let bad: Vec<String> = args
                .pods
                .iter()
                .filter(|&&n| grid_side(n).is_none() || u32::from(n) > max)
                .map(u16::to_string)
                .collect();
            if !bad.is_empty() {
                eprintln!(
                    "netassay bench scale: --pods {}: each must be a square from 4 to {max} (a grid of sqrt(N) namespaces x sqrt(N) pods), e.g. 25,100,400",
                    bad.join(",")
                );
            }
            bad.is_empty()
        }
    };
    if !sizes_ok {
        return Ok(exit::BAD_INPUT);
    }
    let timeout_s = match super::bench::parse_secs(&args.probe_timeout) {
        Ok(t) if t > 0.0 => t,
        _ => {
            eprintln!(
                "netassay bench scale: --probe-timeout {:?}: expected a duration such as 1s or 500ms",
                args.probe_timeout
            );
            return Ok(exit::BAD_INPUT);
        }
    };
    let exe = match &args.executable {
        Some(e) => e.clone(),
        None => std::env::current_exe().context("locating the netassay binary")?,
    };
    let temp = std::env::temp_dir().join(format!("netassay-bench-scale-{}", std::process::id()));
    let root = args.keep_reports.clone().unwrap_or_else(|| temp.clone());
    let mut sizes = match series {
        Series::Projects => args.projects.clone(),
        Series::Pods => args.pods.clone(),
    };
    sizes.sort_unstable();
    sizes.dedup();
    match series {
        Series::Projects => println!(
            "k8tre profile on the sandbox's TRE preset (emulator, default dataplane), --parallel {}, --probe-timeout {}",
            args.parallel.max(1),
            args.probe_timeout
        ),
        Series::Pods => println!(
            "one fixture of N pods (a square grid, TCP 80 between every pair, one policy; emulator, default dataplane), --probe-timeout {}",
            args.probe_timeout
        ),
    }
    let mut runs = Vec::new();
    let mut ok = true;
    for &n in &sizes {
        let unit = series.unit();
        let dir = root.join(format!("{unit}-{n}"));
        let f = measure(&exe, &args, series, n, &dir)?;
        println!(
            "{unit}={n}: run exited {} ({}), {:.1} s",
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
    for line in table(series, &runs) {
        println!("{line}");
    }
    println!(
        "\nwall s: the run, sandbox start and teardown included; cells: paths probed in every step and baseline;\n\
         s/round: the steps' wall time (fixtures run in parallel) over their rounds; API/step, exec/step: requests of\n\
         the fixtures' clients (exec upgrades included) per step; oracle ms: the run's scenarios planned once;\n\
         RSS: the run's VmHWM; exponent: least-squares slope of log(figure) over log({}).",
        series.unit()
    );
    let (lines, met) = targets(series, &runs, timeout_s);
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
        let run = |size, wall_s, rss, html| Figures {
            size,
            wall_s,
            peak_rss_mib: rss,
            report_bytes: [html, 1, 1, 1],
            ..Figures::default()
        };
        let (lines, ok) = targets(
            Series::Projects,
            &[run(5, 10.0, 50.0, 1000), run(50, 99.0, 400.0, 4_000_000)],
            1.0,
        );
        assert!(ok, "{lines:?}");
        assert_eq!(lines.len(), 3);
        assert!(lines[0].contains("9.90 x the time of 5"), "{lines:?}");
        let (lines, ok) = targets(
            Series::Projects,
            &[run(5, 10.0, 50.0, 1000), run(50, 101.0, 600.0, 6_000_000)],
            1.0,
        );
        assert!(!ok);
        assert!(lines.iter().all(|l| l.starts_with("NOT MET")), "{lines:?}");
    }

    #[test]
    fn the_pods_series_takes_squares_and_its_scenario_is_the_grid_it_names() {
        assert_eq!(grid_side(25), Some(5));
        assert_eq!(grid_side(400), Some(20));
        assert_eq!(grid_side(50), None);
        assert_eq!(grid_side(1), None);
        let (name, text) = grid_scenario(10);
        assert_eq!(name, "bench-grid-100-pods");
        let s = crate::scenario::load_str(&name, &text).expect("the generated scenario loads");
        assert_eq!(s.topology.pods.len(), 100);
        assert_eq!(s.topology.namespaces.len(), 10);
        let plans = s.plan().expect("plans");
        let cells = &plans[0].cells;
        // TCP 80 between every pair; the 90 pods outside ns-00 are denied into its 10 pods.
        assert_eq!(cells.len(), 100 * 100);
        let denied = cells
            .iter()
            .filter(|c| c.verdict == netassay_core::model::Verdict::Deny)
            .count();
        assert_eq!(denied, 90 * 10);
    }

    #[test]
    fn the_pods_target_sets_a_100_pod_round_against_the_probe_timeout() {
        let run = |size, step_s, rounds| Figures {
            size,
            step_s,
            rounds,
            ..Figures::default()
        };
        let (lines, ok) = targets(Series::Pods, &[run(25, 2.0, 2), run(100, 3.8, 2)], 1.0);
        assert!(ok, "{lines:?}");
        assert!(
            lines[0].contains("1.90 s, 1.90 x the probe timeout"),
            "{lines:?}"
        );
        let (lines, ok) = targets(Series::Pods, &[run(100, 4.2, 2)], 1.0);
        assert!(!ok && lines[0].starts_with("NOT MET"), "{lines:?}");
    }

    #[test]
    fn the_table_has_a_row_per_size_and_an_exponent_row() {
        let run = |size: u16| Figures {
            size,
            wall_s: f64::from(size),
            steps: 1,
            rounds: 1,
            ..Figures::default()
        };
        let lines = table(Series::Projects, &[run(5), run(10)]);
        assert_eq!(lines.len(), 4);
        assert!(lines[0].contains("projects") && lines[0].contains("wall s"));
        assert!(lines[3].starts_with("exponent"));
        assert!(lines[3].contains("N^1.00"), "{}", lines[3]);
    }
}
