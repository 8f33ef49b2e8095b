//! `netassay agent ...` and `netassay bench probe`: the command-line edge of the in-pod agent.

use super::exit;
use crate::agent::bench::{Bench, BenchConfig};
use crate::agent::serve::write_ready_file;
use crate::agent::{bind_all, prepare, run_batch, ServeConfig, ServeError};
use crate::probe::{AgentLine, ListenSpec, ListenerState, Outcome, ProbeBatch, ProbeKind};
use anyhow::Context as _;
use clap::{Args, Subcommand};
use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What the agent can do inside a probe pod.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Serve every configured listener and answer with this pod's identity.
    #[command(long_about = SERVE_ABOUT, after_help = SERVE_AFTER)]
    Serve(ServeArgs),
    /// Read one JSON probe batch on stdin and write one JSON result line per probe.
    #[command(long_about = PROBE_ABOUT, after_help = PROBE_AFTER)]
    Probe(ProbeArgs),
}

const SERVE_ABOUT: &str = "\
Serve every listener of a probe pod from one process. Each answer names this pod, so a probe
proves it reached the right pod:
  TCP, SCTP  on accept: writes `netassay <identity>\\n` and closes
  UDP        replies to each datagram with its payload followed by `netassay <identity>\\n`
  HTTP       GET answers `netassay <identity>\\n`; GET /netassay/ready answers the ready report

Readiness: once every listener is bound, the ready report (JSON: each listener with state
`serving` or `unsupported` and the reason) is written to --ready-file and served on
GET /netassay/ready. A protocol missing from the kernel (SCTP often is) is reported there and on
stderr while the other listeners keep serving. Any other bind failure exits 3.
SIGTERM or SIGINT stops the agent cleanly (exit 0) and removes the ready file.";

const SERVE_AFTER: &str = "\
Examples:
  netassay agent serve --identity x/a
  netassay agent serve --identity x/a --listen tcp:80,udp:80 --http 8080 --ready-file /tmp/ready";

const PROBE_ABOUT: &str = "\
Read one JSON batch line on stdin (no need to close stdin), run its probes concurrently, and
write one JSON result line per probe as each completes, then a summary line.

Batch:  {\"schema\":\"netassay.probe/v1\",\"timeout_ms\":1000,\"concurrency\":256,
         \"probes\":[{\"id\":\"p1\",\"kind\":\"tcp\",\"target\":\"10.0.0.5:80\",\"expect_identity\":\"y/b\"}]}
  kind    tcp | udp | sctp | http | dns
  target  tcp/udp/sctp: host:port (address or name); http: URL or host:port; dns: the name
  optional per probe: expect_identity, timeout_ms; http: host, sni, expect_status, insecure;
  dns: server (IP or IP:port instead of resolv.conf), expect_addresses
Result: {\"id\",\"outcome\",\"detail\",\"elapsed_ms\",\"peer_identity\"} (+ \"addresses\" for dns)
  outcome connected | wrong-peer | dropped | rejected | dns-failed | error | unsupported
  dropped = no answer in time; rejected = RST or ICMP unreachable; wrong-peer = reached a peer
  that is not the expected one; error = the probe itself failed (never a verdict)
Summary: {\"summary\":{\"schema\",\"total\",\"counts\",\"elapsed_ms\"}}

Each probe's timeout runs from its own start. A malformed batch exits 2 before any probe runs,
with the reason on stderr and nothing on stdout.";

const PROBE_AFTER: &str = "\
Example:
  echo '{\"schema\":\"netassay.probe/v1\",\"probes\":[{\"id\":\"a\",\"kind\":\"tcp\",\"target\":\"127.0.0.1:80\"}]}' \\
    | netassay agent probe";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// This pod's identity, NAMESPACE/POD, announced in every answer.
    #[arg(long, value_name = "NS/POD")]
    pub identity: String,

    /// Listeners, comma-separated PROTOCOL:PORT (tcp, udp, sctp; port 0 picks a free port,
    /// reported in the ready file). May be repeated.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "tcp:80,tcp:81,udp:80,udp:81,sctp:80,sctp:81"
    )]
    pub listen: Vec<ListenSpec>,

    /// Also serve HTTP on this port (GET answers the identity; /netassay/ready the report).
    #[arg(long, value_name = "PORT")]
    pub http: Option<u16>,

    /// Address to bind [default: dual-stack [::], or 0.0.0.0 where IPv6 is absent].
    #[arg(long, value_name = "IP")]
    pub address: Option<IpAddr>,

    /// Write the ready report (JSON) here once every listener is bound.
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {}

/// Options of `netassay bench probe`.
#[derive(Debug, Args)]
#[command(
    after_help = "Measures the prober on this machine: latency rounds (half the probes connected to \
a local agent, half dropped by nft inside a network namespace the bench creates and removes; \
needs root, ip and nft) and connected-probe throughput. Every figure is the wall time of a real \
`netassay agent probe` process, from spawn to exit. Nothing leaves the machine."
)]
pub struct BenchProbeArgs {
    /// Probes per latency round (half connected, half dropped).
    #[arg(long, default_value_t = 500)]
    pub probes: usize,
    /// Latency rounds to run.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Probe timeout.
    #[arg(long, default_value_t = 1000)]
    pub timeout_ms: u64,
    /// Probes in flight at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Connected probes per throughput batch.
    #[arg(long, default_value_t = 5000)]
    pub throughput_probes: usize,
    /// Throughput batches per kind, run back to back.
    #[arg(long, default_value_t = 4)]
    pub throughput_batches: usize,
    /// Skip the latency rounds (no root needed); measure throughput only.
    #[arg(long)]
    pub skip_dropped: bool,
}

/// Runs an agent command; returns the process exit code.
pub fn run(cmd: AgentCommand) -> anyhow::Result<u8> {
    match cmd {
        AgentCommand::Serve(args) => serve(args),
        AgentCommand::Probe(_) => probe(),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn serve(args: ServeArgs) -> anyhow::Result<u8> {
    let config = ServeConfig {
        identity: args.identity,
        listeners: args.listen,
        http_port: args.http,
        address: args.address,
    };
    let mut seen = Vec::new();
    for spec in &config.listeners {
        if spec.port != 0 && seen.contains(spec) {
            eprintln!("netassay agent serve: --listen names {spec} twice");
            return Ok(exit::BAD_INPUT);
        }
        seen.push(*spec);
    }
    let rt = runtime()?;
    rt.block_on(async move {
        let agent = match bind_all(&config) {
            Ok(agent) => agent,
            Err(e @ ServeError::Identity(_)) => {
                eprintln!("netassay agent serve: {e}");
                return Ok(exit::BAD_INPUT);
            }
            Err(e) => {
                eprintln!("netassay agent serve: {e}");
                return Ok(exit::ENVIRONMENT);
            }
        };
        let report = agent.report().clone();
        for l in &report.listeners {
            if l.state == ListenerState::Unsupported {
                let reason = l.reason.as_deref().unwrap_or("unsupported");
                eprintln!(
                    "netassay agent serve: {}:{} unsupported, not serving it: {reason}",
                    l.protocol.lower(),
                    l.port
                );
            }
        }
        // Signal handlers go in before readiness, so a SIGTERM right after it is not lost.
        let shutdown = shutdown_signal().context("cannot install signal handlers")?;
        if let Some(path) = &args.ready_file {
            if let Err(e) = write_ready_file(path, &report) {
                eprintln!("netassay agent serve: {e}");
                return Ok(exit::ENVIRONMENT);
            }
        }
        let serving: Vec<String> = report
            .listeners
            .iter()
            .filter(|l| l.state == ListenerState::Serving)
            .map(|l| format!("{}:{}", l.protocol.lower(), l.port))
            .chain(report.http_port.map(|p| format!("http:{p}")))
            .collect();
        eprintln!(
            "netassay agent serve: {} ready on {}",
            report.identity,
            serving.join(",")
        );
        agent.run(shutdown).await;
        if let Some(path) = &args.ready_file {
            let _ = std::fs::remove_file(path);
        }
        eprintln!("netassay agent serve: stopped");
        Ok(exit::OK)
    })
}

/// Resolves on the first SIGTERM or SIGINT.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

fn probe() -> anyhow::Result<u8> {
    let mut line = String::new();
    // One line, not the whole stream: the harness keeps stdin open.
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("netassay agent probe: cannot read the batch from stdin: {e}");
        return Ok(exit::BAD_INPUT);
    }
    let prepared = match ProbeBatch::from_json_line(&line).and_then(prepare) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("netassay agent probe: invalid batch, nothing probed: {e}");
            return Ok(exit::BAD_INPUT);
        }
    };
    // Each probe in flight holds a descriptor; a low soft limit would turn into `error`s.
    let _ = crate::agent::raise_fd_limit();
    let rt = runtime()?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut write_error: Option<std::io::Error> = None;
    let summary = rt.block_on(run_batch(prepared, |result| {
        if write_error.is_none() {
            let written = serde_json::to_writer(&mut out, &result)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| out.flush());
            write_error = written.err();
        }
    }));
    if write_error.is_none() {
        let line = AgentLine::Summary { summary }.to_json_line();
        write_error = writeln!(out, "{line}").and_then(|()| out.flush()).err();
    }
    match write_error {
        None => Ok(exit::OK),
        Some(e) => {
            eprintln!("netassay agent probe: cannot write results: {e}");
            Ok(exit::ENVIRONMENT)
        }
    }
}

/// Runs the probe benchmark; returns the process exit code.
pub fn bench_probe(args: BenchProbeArgs) -> anyhow::Result<u8> {
    if !args.skip_dropped && (args.probes == 0 || args.rounds == 0) {
        eprintln!("netassay bench probe: --probes and --rounds must be at least 1");
        return Ok(exit::BAD_INPUT);
    }
    let config = BenchConfig {
        exe: std::env::current_exe().context("cannot find the netassay binary")?,
        round_probes: args.probes,
        rounds: args.rounds,
        timeout_ms: args.timeout_ms,
        concurrency: args.concurrency,
        throughput_probes: args.throughput_probes,
        throughput_batches: args.throughput_batches,
        skip_dropped: args.skip_dropped,
    };
    let bench = match Bench::start(config) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("netassay bench probe: {e}");
            return Ok(exit::ENVIRONMENT);
        }
    };
    match measure(&bench, &args) {
        Ok(()) => Ok(exit::OK),
        Err(e) => {
            eprintln!("netassay bench probe: {e}");
            Ok(exit::ENVIRONMENT)
        }
    }
}

/// Prints the figures as they are measured.
fn measure(bench: &Bench, args: &BenchProbeArgs) -> Result<(), crate::agent::bench::BenchError> {
    println!("netassay bench probe");
    println!("  {}", bench.describe());
    let secs = |d: Duration| format!("{:.3} s", d.as_secs_f64());
    if !args.skip_dropped {
        println!(
            "  latency: {} probes per round (half connected, half dropped), timeout {} ms, concurrency {}",
            args.probes, args.timeout_ms, args.concurrency
        );
        let mut walls = Vec::new();
        for i in 1..=args.rounds {
            let timed = bench.round()?;
            let s = &timed.summary;
            println!(
                "    round {i}: {} wall (process spawn to exit; batch {} ms): {} connected, {} dropped, {} other",
                secs(timed.wall),
                s.elapsed_ms,
                s.count(Outcome::Connected),
                s.count(Outcome::Dropped),
                s.total - s.count(Outcome::Connected) - s.count(Outcome::Dropped)
            );
            walls.push(timed.wall);
        }
        let worst = walls.iter().max().copied().unwrap_or_default();
        let limit = Duration::from_millis(args.timeout_ms * 13 / 10);
        println!(
            "    worst round {} (target <= {}): {}",
            secs(worst),
            secs(limit),
            if worst <= limit { "met" } else { "MISSED" }
        );
    }
    println!(
        "  throughput: {} x {} connected probes per kind, concurrency {}",
        args.throughput_batches, args.throughput_probes, args.concurrency
    );
    for kind in [ProbeKind::Tcp, ProbeKind::Udp] {
        let t = bench.throughput(kind)?;
        println!(
            "    {kind}: {}/{} connected in {}: {:.0} probes/s (target >= 2000): {}",
            t.connected,
            t.probes,
            secs(t.wall),
            t.per_second(),
            if t.per_second() >= 2000.0 && t.connected == t.probes {
                "met"
            } else {
                "MISSED"
            }
        );
    }
    Ok(())
}
