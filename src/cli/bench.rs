//! `netassay bench oracle` (the oracle's speed on a synthetic cluster), `bench run` (a sandbox
//! run's wall time against its lower bound) and `bench enforce` (time-to-enforce measured
//! against injected enforcement delays).

use super::exit;
use clap::Args;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netassay_core::model::{standard_serve, Labels, Namespace, Pod, PodRef, Protocol, Topology};
use netassay_core::policy::Oracle;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

#[derive(Debug, Args)]
pub struct OracleArgs {
    /// Pods in the synthetic cluster.
    #[arg(long, default_value_t = 1000)]
    pub pods: usize,
    /// Namespaces they are spread over.
    #[arg(long, default_value_t = 50)]
    pub namespaces: usize,
    /// NetworkPolicies, spread over the namespaces.
    #[arg(long, default_value_t = 200)]
    pub policies: usize,
    /// Repetitions of the full matrix; the best is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

/// A small deterministic generator, so every run measures the same cluster.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

fn cluster(args: &OracleArgs) -> Topology {
    let nss = args.namespaces.max(1);
    let namespaces = (0..nss)
        .map(|i| Namespace {
            name: format!("ns{i}"),
            labels: Labels::from([("team".to_string(), format!("t{}", i % 5))]),
        })
        .collect();
    let pods = (0..args.pods)
        .map(|k| {
            let ns = k % nss;
            let j = k / nss;
            Pod {
                http: None,
                id: PodRef::new(format!("ns{ns}"), format!("p{j}")),
                labels: Labels::from([
                    ("app".to_string(), format!("app{}", j % 7)),
                    ("tier".to_string(), ["web", "api", "db"][j % 3].to_string()),
                ]),
                ip: IpAddr::V4(Ipv4Addr::from(0x0af4_0000u32 + k as u32 + 2)),
                serve: standard_serve(),
            }
        })
        .collect();
    Topology::new(namespaces, pods)
}

fn policies(args: &OracleArgs) -> Vec<NetworkPolicy> {
    let mut rng = Lcg(42);
    let nss = args.namespaces.max(1);
    (0..args.policies)
        .map(|i| {
            let ns = format!("ns{}", i % nss);
            let app = format!("app{}", rng.next(7));
            let team = format!("t{}", rng.next(5));
            let spec = match rng.next(6) {
                0 => json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
                1 => json!({"podSelector": {"matchLabels": {"app": app}},
                    "ingress": [{"from": [{"podSelector": {"matchLabels": {"tier": "web"}}}], "ports": [{"port": 80}]}]}),
                2 => json!({"podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["api", "db"]}]},
                    "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": team}}, "podSelector": {"matchLabels": {"tier": "api"}}}],
                                 "ports": [{"port": "serve-81-tcp"}, {"protocol": "UDP"}]}]}),
                3 => json!({"podSelector": {"matchLabels": {"tier": "db"}}, "policyTypes": ["Egress"],
                    "egress": [{"to": [{"namespaceSelector": {}}], "ports": [{"port": 80, "endPort": 81}]}]}),
                4 => json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                    "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.1.0/24"]}}]}],
                    "egress": [{"to": [{"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "NotIn", "values": [team]}]}}]}]}),
                _ => json!({"podSelector": {"matchLabels": {"app": app}}, "ingress": [{}]}),
            };
            serde_json::from_value(json!({
                "metadata": {"name": format!("p{i}"), "namespace": ns},
                "spec": spec,
            }))
            .unwrap_or_default()
        })
        .collect()
}

pub fn oracle(args: OracleArgs) -> anyhow::Result<u8> {
    let topology = cluster(&args);
    let pols = policies(&args);
    let combos = [
        (80, Protocol::Tcp),
        (81, Protocol::Tcp),
        (80, Protocol::Udp),
        (81, Protocol::Sctp),
    ];
    let n = topology.pods.len();
    let cells = n * n * combos.len();
    println!(
        "synthetic cluster: {n} pods in {} namespaces, {} policies, {} port/protocol combinations, {cells} cells",
        topology.namespaces.len(),
        pols.len(),
        combos.len()
    );
    let t0 = Instant::now();
    let o = Oracle::new(&topology, &pols).map_err(|e| anyhow::anyhow!("{e}"))?;
    let build = t0.elapsed();
    let mut best = f64::INFINITY;
    let mut allowed = 0usize;
    for _ in 0..args.rounds.max(1) {
        let t = Instant::now();
        allowed = 0;
        for &(port, proto) in &combos {
            for from in 0..n {
                for to in 0..n {
                    allowed += usize::from(o.allows(from, to, port, proto));
                }
            }
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    let rate = cells as f64 / best;
    println!("compile: {:.1} ms", build.as_secs_f64() * 1e3);
    println!(
        "matrix:  {:.1} ms (best of {}), {allowed} allowed / {} denied",
        best * 1e3,
        args.rounds.max(1),
        cells - allowed
    );
    println!(
        "speed:   {:.2} million cells/s on one core (goal: 5)",
        rate / 1e6
    );
    Ok(exit::OK)
}

#[derive(Debug, Args)]
pub struct RunBenchArgs {
    /// Fixtures probed at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Built-in profile(s) to run.
    #[arg(long, default_value = "core")]
    pub profile: String,
    /// Probe timeout, as for `run`.
    #[arg(long, default_value = "1s")]
    pub probe_timeout: String,
}

/// Runs `netassay run --sandbox` as a child (the real product path) and prints how close the
/// wall time is to the physical lower bound.
pub fn run(args: RunBenchArgs) -> anyhow::Result<u8> {
    use anyhow::Context;
    let dir = std::env::temp_dir().join(format!("netassay-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let json_path = dir.join("results.json");
    let exe = std::env::current_exe().context("locating the netassay binary")?;
    let parallel = args.parallel.max(1);
    let t = Instant::now();
    let status = std::process::Command::new(exe)
        .args([
            "run",
            "--sandbox",
            "--profile",
            &args.profile,
            "--parallel",
            &parallel.to_string(),
        ])
        .args(["--probe-timeout", &args.probe_timeout, "--json"])
        .arg(&json_path)
        .stdout(std::process::Stdio::null())
        .status()
        .context("running netassay run --sandbox")?;
    let wall = t.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&json_path).context("reading the run's results")?;
    let _ = std::fs::remove_dir_all(&dir);
    let doc: serde_json::Value = serde_json::from_str(&text)?;
    let timeout = parse_secs(&args.probe_timeout)?;
    let mut steps = 0u64;
    let mut attempts = 0u64;
    for s in doc["scenarios"].as_array().into_iter().flatten() {
        for b in s["baseline"]["cells"].as_array().into_iter().flatten() {
            attempts += b["attempts"].as_array().map_or(0, |a| a.len() as u64);
        }
        for st in s["steps"].as_array().into_iter().flatten() {
            steps += 1;
            for c in st["cells"].as_array().into_iter().flatten() {
                attempts += c["attempts"].as_array().map_or(0, |a| a.len() as u64);
            }
        }
    }
    let tte = &doc["summary"]["time_to_enforce"];
    // Every step needs a full round and a confirmation round, each as long as one probe timeout
    // when anything is denied.
    let rounds = 2.0;
    let bound = steps as f64 * rounds * timeout / parallel as f64;
    println!(
        "profile {} on the sandbox, --parallel {parallel}: run exited {}",
        args.profile,
        status.code().unwrap_or(-1)
    );
    println!(
        "wall time:      {wall:.1} s (including sandbox start, fixture deployment and teardown)"
    );
    println!(
        "lower bound:    {bound:.1} s = {steps} steps x {rounds} rounds x {timeout} s / {parallel} fixtures"
    );
    println!(
        "ratio:          {:.2} (goal: at most 1.5)",
        wall / bound.max(f64::EPSILON)
    );
    println!(
        "probes:         {attempts} in all, {:.0} probes/s",
        attempts as f64 / wall
    );
    println!(
        "time-to-enforce over {} steps that change paths: min {} ms, median {} ms, p90 {} ms, max {} ms (resolution at worst {} ms)",
        tte["steps"],
        tte["min_ms"],
        tte["median_ms"],
        tte["p90_ms"],
        tte["max_ms"],
        tte["max_resolution_ms"]
    );
    Ok(if status.success() {
        exit::OK
    } else {
        exit::MISMATCH
    })
}

fn parse_secs(s: &str) -> anyhow::Result<f64> {
    let s = s.trim();
    if let Some(ms) = s.strip_suffix("ms") {
        return Ok(ms.parse::<f64>()? / 1000.0);
    }
    Ok(s.trim_end_matches('s').parse::<f64>()?)
}

#[derive(Debug, Args)]
pub struct EnforceBenchArgs {
    /// Enforcement delays to inject (`--sandbox-fault late=D`); the first is the baseline the
    /// others are measured against. A delay of 0 runs the compliant sandbox (no fault).
    #[arg(long, value_delimiter = ',', default_value = "0,300ms,1500ms,4s")]
    pub delays: Vec<String>,
    /// Scenarios to run under each delay.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "default-deny-ingress,allow-all,updated-policy"
    )]
    pub scenarios: Vec<String>,
    /// Fixtures probed at once (1 keeps the runs from disturbing each other's timing).
    #[arg(long, default_value_t = 1)]
    pub parallel: usize,
    /// Runs per delay; each step's figure is the median over them (the sandbox's own timing
    /// jitters with the machine's load).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
}

/// One step's time-to-enforce in one run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Measured {
    ms: Option<u64>,
    resolution_ms: Option<u64>,
    changed: u64,
}

/// Steps by `scenario › step`, in run order.
type Measurements = Vec<(String, Measured)>;

fn measurements(doc: &serde_json::Value) -> Measurements {
    let mut out = Vec::new();
    for s in doc["scenarios"].as_array().into_iter().flatten() {
        for st in s["steps"].as_array().into_iter().flatten() {
            out.push((
                format!(
                    "{} › {}",
                    s["name"].as_str().unwrap_or("?"),
                    st["name"].as_str().unwrap_or("?")
                ),
                Measured {
                    ms: st["time_to_enforce"].as_u64(),
                    resolution_ms: st["time_to_enforce_resolution"].as_u64(),
                    changed: st["changed_cells"].as_u64().unwrap_or(0),
                },
            ));
        }
    }
    out
}

/// Each step's median figure over repeated runs (a step that never agreed in a run counts as
/// never there; the median of the runs that agreed is taken only if most did).
fn median(runs: &[Measurements]) -> Measurements {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    first
        .iter()
        .map(|(step, m)| {
            let of = |f: fn(&Measured) -> Option<u64>| -> Option<u64> {
                let mut v: Vec<u64> = runs
                    .iter()
                    .filter_map(|r| r.iter().find(|(s, _)| s == step).and_then(|(_, m)| f(m)))
                    .collect();
                v.sort_unstable();
                (v.len() * 2 > runs.len()).then(|| v[v.len() / 2])
            };
            (
                step.clone(),
                Measured {
                    ms: of(|m| m.ms),
                    resolution_ms: of(|m| m.resolution_ms),
                    changed: m.changed,
                },
            )
        })
        .collect()
}

/// The bench's rule: measured within max(100 ms, 10 % of the injected delay) of the injected
/// delay plus the baseline run's figure for the same step. Returns (expected, tolerance).
fn expected_with_tolerance(baseline_ms: u64, injected_ms: u64) -> (u64, u64) {
    (baseline_ms + injected_ms, (injected_ms / 10).max(100))
}

/// Runs `netassay run --sandbox --sandbox-fault late=D` once per delay (the real product path)
/// and prints each step's measured time-to-enforce against the injected delay.
pub fn enforce(args: EnforceBenchArgs) -> anyhow::Result<u8> {
    use anyhow::Context;
    if args.delays.len() < 2 || args.scenarios.is_empty() {
        eprintln!(
            "netassay bench enforce: give a baseline delay and at least one more, and a scenario"
        );
        return Ok(exit::BAD_INPUT);
    }
    let mut delays = Vec::new();
    for d in &args.delays {
        let fault: netassay_sandbox::Fault = format!("late={d}")
            .parse()
            .map_err(|e| anyhow::anyhow!("--delays {d:?}: {e}"))?;
        let netassay_sandbox::Fault::Late(delay) = fault else {
            anyhow::bail!("--delays {d:?}: not a delay");
        };
        delays.push((d.clone(), delay.as_millis() as u64));
    }
    let exe = std::env::current_exe().context("locating the netassay binary")?;
    let dir = std::env::temp_dir().join(format!("netassay-bench-enforce-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("a directory for the runs' results")?;
    let mut runs: Vec<(String, u64, Measurements)> = Vec::new();
    let repeat = args.repeat.max(1);
    for (name, injected) in &delays {
        let mut repeats = Vec::new();
        for k in 0..repeat {
            let json = dir.join(format!("late-{injected}-{k}.json"));
            eprintln!(
                "[netassay] bench enforce: late={name}, run {} of {repeat} ...",
                k + 1
            );
            // A zero delay is the compliant sandbox itself (its dataplane enforces before the API
            // answers), the baseline the rule speaks of; `late=0` would add the
            // background applier's own queueing, which is not an enforcer delay anyone injected.
            let fault = (*injected > 0).then(|| format!("late={name}"));
            let status = std::process::Command::new(&exe)
                .args(["run", "--sandbox"])
                .args(fault.iter().flat_map(|f| ["--sandbox-fault", f.as_str()]))
                .args(["--parallel", &args.parallel.max(1).to_string(), "--exact"])
                .args(&args.scenarios)
                .arg("--json")
                .arg(&json)
                .stdout(std::process::Stdio::null())
                .status()
                .context("running netassay run --sandbox")?;
            let doc = std::fs::read_to_string(&json)
                .with_context(|| format!("reading the results of late={name}"))
                .and_then(|t| Ok(serde_json::from_str::<serde_json::Value>(&t)?));
            let doc = match doc {
                Ok(d) => d,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(e);
                }
            };
            if !status.success() {
                eprintln!(
                    "[netassay] bench enforce: the run with late={name} exited {}",
                    status.code().unwrap_or(-1)
                );
            }
            repeats.push(measurements(&doc));
        }
        runs.push((name.clone(), *injected, median(&repeats)));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let Some(((base_name, _, baseline), rest)) = runs.split_first() else {
        return Ok(exit::BAD_INPUT);
    };
    println!(
        "netassay bench enforce: time-to-enforce measured against injected enforcement delays \
         (sandbox --sandbox-fault late=D, --parallel {}, median of {repeat} run(s) per delay)",
        args.parallel.max(1)
    );
    println!(
        "rule: measured within max(100 ms, 10 % of D) of D + the late={base_name} baseline of the same step"
    );
    println!(
        "{:<58} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}  result",
        "step", "baseline", "injected", "expected", "measured", "resol.", "tol."
    );
    let mut all_ok = true;
    let mut compared = 0;
    for (step, base) in baseline {
        if base.changed == 0 {
            println!(
                "{step:<58} the step changes no path: no probe can see when the enforcer applied it"
            );
            continue;
        }
        let Some(base_ms) = base.ms else {
            println!("{step:<58} no baseline figure (the changed paths never agreed)");
            all_ok = false;
            continue;
        };
        for (name, injected, run) in rest {
            let m = run.iter().find(|(s, _)| s == step).map(|(_, m)| m);
            let (expected, tolerance) = expected_with_tolerance(base_ms, *injected);
            let (measured, ok) = match m.and_then(|m| m.ms) {
                Some(ms) => (format!("{ms} ms"), ms.abs_diff(expected) <= tolerance),
                None => ("never".to_string(), false),
            };
            compared += 1;
            all_ok &= ok;
            println!(
                "{:<58} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}  {}",
                step,
                format!("{base_ms} ms"),
                format!("late={name}"),
                format!("{expected} ms"),
                measured,
                m.and_then(|m| m.resolution_ms)
                    .map_or("-".into(), |r| format!("{r} ms")),
                format!("±{tolerance}"),
                if ok { "ok" } else { "OUT OF BOUND" }
            );
        }
    }
    if compared == 0 {
        println!("nothing to compare: no step changes a path");
        return Ok(exit::MISMATCH);
    }
    println!(
        "{}",
        if all_ok {
            "every measured value is within its bound"
        } else {
            "some measured values are out of bound"
        }
    );
    Ok(if all_ok { exit::OK } else { exit::MISMATCH })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The accuracy rule of `bench enforce`: within max(100 ms, 10 %) of injected + baseline.
    #[test]
    fn the_tolerance_is_100_ms_or_a_tenth_of_the_injected_delay() {
        for (baseline, injected, expected, tolerance) in [
            (40, 300, 340, 100),
            (40, 1500, 1540, 150),
            (40, 4000, 4040, 400),
            (0, 0, 0, 100),
        ] {
            assert_eq!(
                expected_with_tolerance(baseline, injected),
                (expected, tolerance),
                "{baseline} + {injected}"
            );
        }
    }

    #[test]
    fn repeated_runs_give_the_median_per_step() {
        let run = |ms: Option<u64>| {
            vec![(
                "s › a".to_string(),
                Measured {
                    ms,
                    resolution_ms: ms.map(|_| 50),
                    changed: 3,
                },
            )]
        };
        let m = median(&[run(Some(420)), run(Some(300)), run(Some(330))]);
        assert_eq!(m[0].1.ms, Some(330));
        let m = median(&[run(Some(420)), run(None), run(None)]);
        assert_eq!(m[0].1.ms, None, "most runs never agreed");
    }

    #[test]
    fn measurements_are_read_per_step_from_the_results() {
        let doc = serde_json::json!({"scenarios": [{"name": "s", "steps": [
            {"name": "a", "time_to_enforce": 310, "time_to_enforce_resolution": 48, "changed_cells": 24},
            {"name": "b", "time_to_enforce": null, "time_to_enforce_resolution": null, "changed_cells": 0}
        ]}]});
        let m = measurements(&doc);
        assert_eq!(m[0].0, "s › a");
        assert_eq!(
            m[0].1,
            Measured {
                ms: Some(310),
                resolution_ms: Some(48),
                changed: 24
            }
        );
        assert_eq!(m[1].1.ms, None);
    }
}
