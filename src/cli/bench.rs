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

/// Confirmation rounds of the benchmarked run (passed explicitly: the bound counts them).
const CONFIRM_ROUNDS: u64 = 1;

/// The rounds of a run that each must last at least one probe timeout, from its plan (each
/// cell's expected verdict, as the run's JSON records it with the live addresses), and the
/// evidence that they did.
///
/// A round waits a full timeout when it probes a cell expected to be denied: the compliant
/// sandbox drops denied traffic, and a drop is only known when the probe times out. Every step
/// probes every cell in its first round (the changed cells as a series, the others once, both
/// at the same time: one round) and again in each confirmation round, so a step with such a cell
/// has `1 + CONFIRM_ROUNDS` rounds that wait a timeout; a step without one (everything expected
/// to connect, or only loopback cells, which are not judged, or cells on a protocol the kernel
/// lacks, which come back at once) needs none. Baselines are counted by the same rule; they
/// expect every path to connect, so on a standard fixture they need none. Re-probe and
/// error-retry rounds are not counted: a conformant run may need none.
#[derive(Debug, Default, PartialEq)]
struct TimeoutRounds {
    /// Per scenario, in run order: its name and its rounds that must wait a timeout (a
    /// scenario's rounds run one after the other, on one fixture).
    scenarios: Vec<(String, u64)>,
    steps: u64,
    waiting_steps: u64,
    baselines: u64,
    waiting_baselines: u64,
    /// Steps whose counted rounds the run did not show: fewer rounds had a probe that lasted
    /// the full timeout (the bound's premise, that denied cells are dropped, does not hold).
    unverified: Vec<String>,
}

impl TimeoutRounds {
    fn total(&self) -> u64 {
        self.scenarios.iter().map(|(_, r)| r).sum()
    }

    fn longest(&self) -> Option<&(String, u64)> {
        self.scenarios.iter().max_by_key(|(_, r)| *r)
    }

    /// The bound in seconds: at most `parallel` scenarios run at once, each one's rounds in
    /// sequence, so the run lasts at least the total over `parallel`, and at least its longest
    /// scenario.
    fn bound(&self, timeout: f64, parallel: usize) -> f64 {
        let spread = self.total() as f64 * timeout / parallel.max(1) as f64;
        let longest = self.longest().map_or(0, |(_, r)| *r) as f64 * timeout;
        spread.max(longest)
    }

    fn read(doc: &serde_json::Value, timeout_ms: u64) -> Self {
        let mut out = TimeoutRounds::default();
        for s in doc["scenarios"].as_array().into_iter().flatten() {
            let name = s["name"].as_str().unwrap_or("?");
            let mut rounds = 0;
            let baseline = Some(&s["baseline"]).filter(|b| b.is_object());
            let steps = s["steps"].as_array().into_iter().flatten();
            for (is_baseline, st) in baseline
                .map(|b| (true, b))
                .into_iter()
                .chain(steps.map(|st| (false, st)))
            {
                let waits = step_waits(st);
                let label = if is_baseline {
                    out.baselines += 1;
                    out.waiting_baselines += u64::from(waits);
                    format!("{name} › baseline")
                } else {
                    out.steps += 1;
                    out.waiting_steps += u64::from(waits);
                    format!("{name} › {}", st["name"].as_str().unwrap_or("?"))
                };
                if !waits {
                    continue;
                }
                let needed = 1 + CONFIRM_ROUNDS;
                let seen = rounds_with_a_full_timeout(st, timeout_ms);
                if seen < needed {
                    out.unverified.push(format!(
                        "{label}: the plan has {needed} rounds that wait a timeout, the run shows {seen} with a probe that lasted {timeout_ms} ms"
                    ));
                }
                rounds += needed;
            }
            out.scenarios.push((name.to_string(), rounds));
        }
        out
    }
}

/// Whether a step (or baseline) probes a cell expected to be denied that is judged: not a
/// loopback cell, not on a protocol the cluster lacks.
fn step_waits(step: &serde_json::Value) -> bool {
    step["cells"].as_array().into_iter().flatten().any(|c| {
        c["verdict"] == "deny"
            && c["loopback"] != true
            && !matches!(c["status"].as_str(), Some("unsupported" | "not-judged"))
    })
}

/// How many of a step's rounds had a probe that was dropped after the full timeout.
fn rounds_with_a_full_timeout(step: &serde_json::Value, timeout_ms: u64) -> u64 {
    let rounds: std::collections::BTreeSet<u64> = step["cells"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["attempts"].as_array().into_iter().flatten())
        .filter(|a| {
            a["outcome"] == "dropped" && a["elapsed_ms"].as_u64().unwrap_or(0) >= timeout_ms
        })
        .filter_map(|a| a["round"].as_u64())
        .collect();
    rounds.len() as u64
}

/// Runs `netassay run --sandbox` as a child (the real product path) and prints how close the
/// wall time is to a lower bound computed from its plan ([`TimeoutRounds`]).
pub fn run(args: RunBenchArgs) -> anyhow::Result<u8> {
    use anyhow::Context;
    let dir = std::env::temp_dir().join(format!("netassay-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let json_path = dir.join("results.json");
    let exe = std::env::current_exe().context("locating the netassay binary")?;
    let parallel = args.parallel.max(1);
    let timeout = parse_secs(&args.probe_timeout)?;
    let timeout_ms = (timeout * 1000.0).round() as u64;
    let t = Instant::now();
    let status = std::process::Command::new(exe)
        .args([
            "run",
            "--sandbox",
            "--profile",
            &args.profile,
            "--parallel",
            &parallel.to_string(),
            "--confirm-rounds",
            &CONFIRM_ROUNDS.to_string(),
        ])
        .args(["--probe-timeout", &args.probe_timeout, "--json"])
        .arg(&json_path)
        .stdout(std::process::Stdio::null())
        .status()
        .context("running netassay run --sandbox")?;
    let wall = t.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&json_path).context("reading the run's results");
    let _ = std::fs::remove_dir_all(&dir);
    let doc: serde_json::Value = serde_json::from_str(&text?)?;
    let mut attempts = 0u64;
    for s in doc["scenarios"].as_array().into_iter().flatten() {
        let baseline = s["baseline"]["cells"].as_array().into_iter().flatten();
        let steps = s["steps"].as_array().into_iter().flatten();
        for c in baseline.chain(steps.flat_map(|st| st["cells"].as_array().into_iter().flatten())) {
            attempts += c["attempts"].as_array().map_or(0, |a| a.len() as u64);
        }
    }
    let tte = &doc["summary"]["time_to_enforce"];
    let waits = TimeoutRounds::read(&doc, timeout_ms);
    let bound = waits.bound(timeout, parallel);
    let mut ok = status.success();
    println!(
        "profile {} on the sandbox, --parallel {parallel}, --confirm-rounds {CONFIRM_ROUNDS}: run exited {}",
        args.profile,
        status.code().unwrap_or(-1)
    );
    println!(
        "wall time:      {wall:.1} s (including sandbox start, fixture deployment and teardown)"
    );
    let (longest_name, longest) = waits.longest().map_or(("-", 0), |(n, r)| (n.as_str(), *r));
    println!(
        "lower bound:    {bound:.1} s = max({} rounds x {timeout} s / {parallel} fixtures at once, \
         the longest scenario ({longest_name}) {longest} rounds x {timeout} s)",
        waits.total()
    );
    println!(
        "                counted: the rounds that probe a cell expected to be denied (dropped, so \
         they wait the full probe timeout): the first round and {CONFIRM_ROUNDS} confirmation \
         round(s) of {} of {} steps and {} of {} baselines; a scenario's rounds run in sequence",
        waits.waiting_steps, waits.steps, waits.waiting_baselines, waits.baselines
    );
    if waits.unverified.is_empty() {
        println!("                checked: each counted round had a probe dropped after the full {timeout_ms} ms");
    } else {
        ok = false;
        println!(
            "                NOT A BOUND for this run: {} step(s) did not show their counted rounds:",
            waits.unverified.len()
        );
        for u in &waits.unverified {
            println!("                  {u}");
        }
    }
    if bound > 0.0 {
        let ratio = wall / bound;
        println!("ratio:          {ratio:.2} (at least 1 by construction; goal: at most 1.5)");
        if ratio < 1.0 {
            ok = false;
            println!("                BELOW 1: the bound's premises do not hold");
        }
    } else {
        println!("ratio:          none (no round has to wait a probe timeout)");
    }
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
    Ok(if ok { exit::OK } else { exit::MISMATCH })
}

pub(super) fn parse_secs(s: &str) -> anyhow::Result<f64> {
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

    /// A cell of a results file: expected `verdict`, its `status`, and dropped attempts (round,
    /// elapsed ms) or a connected one in round 1.
    fn cell(
        verdict: &str,
        status: &str,
        loopback: bool,
        dropped: &[(u64, u64)],
    ) -> serde_json::Value {
        let attempts: Vec<serde_json::Value> = if dropped.is_empty() {
            vec![json!({"round": 1, "outcome": "connected", "elapsed_ms": 3})]
        } else {
            dropped
                .iter()
                .map(|(round, ms)| json!({"round": round, "outcome": "dropped", "elapsed_ms": ms}))
                .collect()
        };
        json!({"verdict": verdict, "status": status, "loopback": loopback, "attempts": attempts})
    }

    // The bound counts the rounds that must wait a timeout: a step with a judged cell expected to
    // be denied waits in its first round and its confirmation round; a step that denies nothing,
    // or only a loopback or unsupported cell, waits in none; baselines by the same rule.
    #[test]
    fn only_rounds_that_probe_a_denied_cell_count_towards_the_bound() {
        let allow = cell("allow", "pass", false, &[]);
        let deny = cell("deny", "pass", false, &[(1, 1000), (2, 1001)]);
        let doc = json!({"scenarios": [
            {"name": "s1",
             "baseline": {"cells": [allow.clone()]},
             "steps": [
                {"name": "deny", "cells": [allow.clone(), deny.clone()]},
                {"name": "allow", "cells": [allow.clone()]},
                {"name": "loopback", "cells": [cell("deny", "not-judged", true, &[]), allow.clone()]},
                {"name": "sctp", "cells": [cell("deny", "unsupported", false, &[])]}]},
            {"name": "s2",
             "baseline": {"cells": [deny.clone()]},
             "steps": [{"name": "deny", "cells": [deny.clone()]}, {"name": "again", "cells": [deny]}]}
        ]});
        let r = TimeoutRounds::read(&doc, 1000);
        assert_eq!(r.scenarios, [("s1".to_string(), 2), ("s2".to_string(), 6)]);
        assert_eq!((r.steps, r.waiting_steps), (6, 3));
        assert_eq!((r.baselines, r.waiting_baselines), (2, 1));
        assert!(r.unverified.is_empty(), "{:?}", r.unverified);
        // 8 rounds over 4 fixtures is 2 timeouts, but s2 alone runs 6 in sequence.
        assert_eq!(r.bound(1.0, 4), 6.0);
        assert_eq!(r.bound(0.5, 1), 4.0);
    }

    // The premise is checked against the run: a counted round in which no probe was dropped
    // after the full timeout (a reject, an early answer) makes the figure no bound.
    #[test]
    fn a_counted_round_without_a_full_timeout_is_reported() {
        let doc = json!({"scenarios": [{"name": "s", "steps": [
            {"name": "rejected", "cells": [cell("deny", "pass", false, &[(1, 1000), (2, 12)])]},
            {"name": "short", "cells": [cell("deny", "pass", false, &[(1, 400), (2, 400)])]},
            {"name": "fine", "cells": [cell("deny", "pass", false, &[(1, 1000), (3, 1000)])]}
        ]}]});
        let r = TimeoutRounds::read(&doc, 1000);
        assert_eq!(r.unverified.len(), 2, "{:?}", r.unverified);
        assert!(
            r.unverified[0].starts_with("s › rejected: "),
            "{:?}",
            r.unverified
        );
        assert!(
            r.unverified[1].contains("the run shows 0"),
            "{:?}",
            r.unverified
        );
    }

    // Nothing to wait for: no bound, rather than a ratio over zero.
    #[test]
    fn a_run_that_denies_nothing_has_a_zero_bound() {
        let doc = json!({"scenarios": [{"name": "s", "steps": [
            {"name": "allow", "cells": [cell("allow", "pass", false, &[])]}]}]});
        let r = TimeoutRounds::read(&doc, 1000);
        assert_eq!(r.bound(1.0, 4), 0.0);
        assert_eq!(r.waiting_steps, 0);
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
