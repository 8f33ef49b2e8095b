//! `netassay bench udp`: N UDP probes towards one destination, in one prober process, from a
//! pod and from the outside vantage of the sandbox's dataplane (root, `ip` and `nft`): the wall
//! time of each batch (prober start to exit) and its ratio to the probe timeout.
//!
//! Every UDP probe needs a source port not used towards its destination within 150 s
//! (`netassay_agent::source_ports`); this measures what that costs a burst. Each vantage runs
//! `--rounds` batches, each a new prober process as the harness runs them: the first in a
//! network namespace that has never probed, the others `--pause-ms` after the one before. A
//! burst of up to `LEAD + 1` ports towards one destination is had at once; the ports it took
//! come back to the window at one a tick, so batches closer together than their size in ticks
//! wait (`--pause-ms 0` shows it).

use super::exit;
use anyhow::Context;
use clap::Args;
use netassay_core::model::{Labels, Protocol, ServedPort};
use netassay_core::probe::{AgentLine, Outcome, ProbeBatch, ProbeKind, ProbeSpec};
use netassay_sandbox::dataplane::netns::{NetnsConfig, NetnsDataplane};
use netassay_sandbox::dataplane::{state_of_pods, Dataplane, PodSpec};
use netassay_sandbox::fault::FaultSet;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Args)]
pub struct UdpBenchArgs {
    /// UDP probes per batch, all towards one destination, all at once.
    #[arg(long, default_value_t = 600)]
    pub probes: usize,
    /// Probe timeout.
    #[arg(long, default_value_t = 1000)]
    pub timeout_ms: u64,
    /// Batches per vantage, each a new prober process.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Pause between two batches of a vantage (600 ports come back to a destination's window
    /// in 600 ticks of 7 ms).
    #[arg(long, default_value_t = 5000)]
    pub pause_ms: u64,
    /// The netassay binary the pods, the external host and the probers run (default: this
    /// one), to measure another build with this bench.
    #[arg(long)]
    pub executable: Option<PathBuf>,
}

/// What the bench aims at: a batch within this many probe timeouts.
const GOAL_RATIO: f64 = 1.3;

/// How long a pod may take to get ready.
const READY_WITHIN: Duration = Duration::from_secs(15);

pub fn udp(args: UdpBenchArgs) -> anyhow::Result<u8> {
    if args.probes == 0 || args.rounds == 0 {
        eprintln!("netassay bench udp: --probes and --rounds must be at least 1");
        return Ok(exit::BAD_INPUT);
    }
    let mut config = NetnsConfig::new(FaultSet::new()).context("the sandbox's configuration")?;
    if let Some(exe) = &args.executable {
        config.executable = exe.clone();
    }
    let executable = config.executable.clone();
    let dp = match NetnsDataplane::new(config) {
        Ok(dp) => dp,
        Err(e) => {
            eprintln!("netassay bench udp: the sandbox's dataplane cannot start (it needs root, ip and nft): {e}");
            return Ok(exit::ENVIRONMENT);
        }
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(measure(&dp, &args, &executable));
    dp.shutdown();
    match result {
        Ok(true) => Ok(exit::OK),
        Ok(false) => Ok(exit::MISMATCH),
        Err(e) => {
            eprintln!("netassay bench udp: {e:#}");
            Ok(exit::ENVIRONMENT)
        }
    }
}

fn pod(namespace: &str, name: &str) -> PodSpec {
    let identity = format!("{namespace}/{name}");
    PodSpec {
        namespace: namespace.into(),
        name: name.into(),
        uid: String::new(),
        labels: Labels::from([("pod".to_string(), name.to_string())]),
        command: ["netassay", "agent", "serve", "--identity", &identity]
            .into_iter()
            .chain(["--listen", "tcp:80,udp:80"])
            .map(str::to_string)
            .collect(),
        ports: vec![
            ServedPort::standard(80, Protocol::Tcp),
            ServedPort::standard(80, Protocol::Udp),
        ],
    }
}

/// One batch's figures.
struct Batch {
    wall: Duration,
    outcomes: BTreeMap<String, usize>,
    /// The last probe's start after the batch's (they all start at once, so this is the
    /// longest any waited for its source port).
    last_start_ms: u64,
    /// What the first probe that erred said.
    first_error: Option<String>,
}

async fn measure(
    dp: &NetnsDataplane,
    args: &UdpBenchArgs,
    executable: &std::path::Path,
) -> anyhow::Result<bool> {
    let (prober, target) = (pod("x", "a"), pod("y", "b"));
    let mut ips = Vec::new();
    for spec in [&prober, &target] {
        let ip = dp
            .create_pod(spec)
            .with_context(|| format!("creating {}/{}", spec.namespace, spec.name))?;
        let deadline = Instant::now() + READY_WITHIN;
        while !dp.pod_ready(&spec.namespace, &spec.name) {
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "{}/{} did not get ready in {} s: {:?}",
                    spec.namespace,
                    spec.name,
                    READY_WITHIN.as_secs(),
                    dp.pod_log(&spec.namespace, &spec.name)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ips.push(ip);
    }
    dp.sync(&state_of_pods(&[(&prober, ips[0]), (&target, ips[1])]))
        .context("syncing the sandbox's state")?;
    let destination = format!("{}:80", ips[1]);
    let timeout = Duration::from_millis(args.timeout_ms);
    let goal = timeout.mul_f64(GOAL_RATIO);
    println!(
        "netassay bench udp: {} UDP probes to one destination ({destination}, y/b) per batch, all at once, timeout {} ms; {} batches per vantage {} ms apart, each a new prober; prober {}",
        args.probes,
        args.timeout_ms,
        args.rounds,
        args.pause_ms,
        executable.display()
    );
    let mut all_met = true;
    let mut all_measured = true;
    for vantage in ["pod x/a", "outside"] {
        for round in 1..=args.rounds {
            if round > 1 {
                tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
            }
            let child = if vantage == "outside" {
                dp.exec_outside(&["netassay".into(), "agent".into(), "probe".into()])
            } else {
                dp.exec(
                    "x",
                    "a",
                    &["netassay".into(), "agent".into(), "probe".into()],
                )
            }
            .context("starting the prober")?;
            let batch = run_batch(child, args, &destination).await?;
            let connected = batch.outcomes.get("connected").copied().unwrap_or(0);
            let met = batch.wall <= goal;
            all_met &= met;
            all_measured &= connected == args.probes;
            let others: Vec<String> = batch
                .outcomes
                .iter()
                .filter(|(o, _)| *o != "connected")
                .map(|(o, n)| format!("{n} {o}"))
                .collect();
            println!(
                "  {} UDP probes to one destination from {vantage}, batch {round}: wall time {:.3} s, ratio to probe timeout {:.2} (goal <= {GOAL_RATIO}: {}); {connected} connected{}; last probe started {} ms after the batch (waiting for its source port)",
                args.probes,
                batch.wall.as_secs_f64(),
                batch.wall.as_secs_f64() / timeout.as_secs_f64(),
                if met { "met" } else { "MISSED" },
                if others.is_empty() { String::new() } else { format!(", {}", others.join(", ")) },
                batch.last_start_ms,
            );
            if let Some(error) = &batch.first_error {
                println!("    first error: {error}");
            }
        }
    }
    if !all_measured {
        println!("  NOT A MEASUREMENT: some probes did not connect (a batch measures probes that reach the destination)");
    }
    Ok(all_met && all_measured)
}

/// Sends one batch to a started prober; its figures, timed from now to the prober's exit.
async fn run_batch(
    mut child: tokio::process::Child,
    args: &UdpBenchArgs,
    destination: &str,
) -> anyhow::Result<Batch> {
    let probes = (0..args.probes)
        .map(|i| ProbeSpec::new(format!("u{i}"), ProbeKind::Udp, destination).expecting("y/b"))
        .collect();
    let mut batch = ProbeBatch::new(probes);
    batch.timeout_ms = args.timeout_ms;
    batch.concurrency = args.probes;
    let started = Instant::now();
    let mut stdin = child.stdin.take().context("the prober has no stdin")?;
    stdin
        .write_all(format!("{}\n", batch.to_json_line()).as_bytes())
        .await
        .context("sending the batch")?;
    drop(stdin);
    let mut stdout = child.stdout.take().context("the prober has no stdout")?;
    let mut stderr = child.stderr.take().context("the prober has no stderr")?;
    let (mut out, mut err) = (String::new(), String::new());
    let (read_out, read_err) = tokio::join!(
        stdout.read_to_string(&mut out),
        stderr.read_to_string(&mut err)
    );
    read_out.context("reading the prober's output")?;
    read_err.context("reading the prober's errors")?;
    let status = child.wait().await.context("waiting for the prober")?;
    let wall = started.elapsed();
    let mut outcomes = BTreeMap::new();
    let mut last_start_ms = 0;
    let mut first_error = None;
    let mut results = 0;
    for line in out.lines() {
        if let Ok(AgentLine::Result(r)) = AgentLine::parse(line) {
            results += 1;
            *outcomes.entry(r.outcome.to_string()).or_insert(0) += 1;
            if r.outcome == Outcome::Error && first_error.is_none() {
                first_error = Some(r.detail.clone());
            }
            last_start_ms = last_start_ms.max(r.start_ms.unwrap_or(0));
        }
    }
    if !status.success() || results != args.probes {
        anyhow::bail!(
            "the prober exited {status} with {results} of {} results: {}",
            args.probes,
            err.trim()
        );
    }
    Ok(Batch {
        wall,
        outcomes,
        last_start_ms,
        first_error,
    })
}
