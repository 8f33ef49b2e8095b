//! `netassay bench oracle`: the oracle's speed on a synthetic cluster, in cells per second.

use super::exit;
use crate::model::{standard_serve, Labels, Namespace, Pod, PodRef, Protocol, Topology};
use crate::policy::Oracle;
use clap::Args;
use k8s_openapi::api::networking::v1::NetworkPolicy;
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

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
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
    let mut tte: Vec<u64> = Vec::new();
    for s in doc["scenarios"].as_array().into_iter().flatten() {
        for b in s["baseline"]["cells"].as_array().into_iter().flatten() {
            attempts += b["attempts"].as_array().map_or(0, |a| a.len() as u64);
        }
        for st in s["steps"].as_array().into_iter().flatten() {
            steps += 1;
            if let Some(ms) = st["time_to_enforce"].as_u64() {
                tte.push(ms);
            }
            for c in st["cells"].as_array().into_iter().flatten() {
                attempts += c["attempts"].as_array().map_or(0, |a| a.len() as u64);
            }
        }
    }
    tte.sort_unstable();
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
        "time-to-enforce over {} steps: min {} ms, median {} ms, p90 {} ms, max {} ms",
        tte.len(),
        percentile(&tte, 0.0),
        percentile(&tte, 0.5),
        percentile(&tte, 0.9),
        percentile(&tte, 1.0)
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
