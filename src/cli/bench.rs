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
