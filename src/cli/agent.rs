//! `netassay agent ...` and `netassay bench probe`: the command-line edge of the in-pod agent.

use super::exit;
use anyhow::Context as _;
use clap::{Args, Subcommand};
use netassay_agent::bench::{Bench, BenchConfig};
use netassay_agent::dns_server::{self, DnsConfig, DnsError};
use netassay_agent::gateway::{self, GatewayConfig, GatewayError};
use netassay_agent::serve::write_ready_file;
use netassay_agent::watched::{self, LineTable as _};
use netassay_agent::{bind_all, prepare, run_batch, ServeConfig, ServeError};
use netassay_core::probe::{AgentLine, ListenSpec, ListenerState, Outcome, ProbeBatch, ProbeKind};
use std::io::{BufRead, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
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
    /// Serve the sandbox's cluster DNS: authoritative answers from a zone file.
    #[command(long_about = DNS_ABOUT, after_help = DNS_AFTER)]
    Dns(DnsArgs),
    /// Serve the sandbox's ingress gateway: an HTTP reverse proxy routing by Host.
    #[command(long_about = GATEWAY_ABOUT, after_help = GATEWAY_AFTER)]
    Gateway(GatewayArgs),
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
  Results also carry start_ms: from the agent's start of the batch to the probe's start.

Series (schema netassay.probe/v2): the same batch with
  \"series\":{\"spacing_ms\":50,\"window_ms\":200,\"deadline_ms\":30000,\"deny_rule\":\"dropped-or-rejected\"}
  and \"expect\":\"allow\"|\"deny\" on every probe. Each probe is a cell: a new probe of it starts
  every spacing_ms (each with the full timeout, many in flight) until its probes have agreed with
  expect for window_ms with none in flight, or deadline_ms passes. The first line is
  {\"started\":{\"schema\",\"cells\"}} (the agent's clock starts), each result adds \"seq\" (the
  probe's number in its cell), then the summary. A plain v2 batch runs like v1.

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

const DNS_ABOUT: &str = "\
Serve the sandbox's cluster DNS: an authoritative server over UDP and TCP on the same port,
answering from a zone file that it re-reads whenever the file changes (no restart, no signal).

Zone file: one record per line, `<name> <IPv4-or-IPv6>`; a name may have several lines; `#`
starts a comment; blank lines are ignored; names are case-insensitive, the trailing dot is
optional. A line that does not parse is skipped with a warning on stderr naming file:line.
A line `!dns-rules <source-IP> [name=<fqdn>|pattern=<pattern>]...` plays Cilium's DNS proxy for
that source: only names its selectors match (Cilium's matchName / matchPattern) are answered,
others get REFUSED; with no selector, every name is refused.

Answers (all authoritative, TTL 5 s):
  A / AAAA of a name in the zone      NOERROR with its addresses of that family
  a name in the zone, no such record  NOERROR with no answers
  any other name                      NXDOMAIN
  a name the source's rules miss      REFUSED
  id.server / hostname.bind CH TXT    the --identity
  undecodable question                FORMERR (nothing at all if not even the header decodes)
A UDP answer too large for the client's buffer is sent truncated, so the client retries on TCP.

Readiness: once both sockets are bound and the zone is read, the address (`IP:PORT`, the port
actually bound when 0 was asked) is written to --ready-file. An unreadable zone file at start
exits 2; a socket that cannot be bound exits 3. Later, an unreadable zone file keeps the last
one read. SIGTERM or SIGINT stops the server cleanly (exit 0) and removes the ready file.";

const DNS_AFTER: &str = "\
Example:
  printf 'web.shop.svc.cluster.local 10.96.0.7\\ninternet.example.org 203.0.113.10\\n' > zone
  netassay agent dns --listen 127.0.0.1:5353 --zone zone --identity kube-system/coredns &
  dig @127.0.0.1 -p 5353 web.shop.svc.cluster.local A";

#[derive(Debug, Args)]
pub struct DnsArgs {
    /// Address and port for both UDP and TCP (port 0 picks one free for both).
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:53")]
    pub listen: SocketAddr,

    /// The zone file (`<name> <address>` per line), re-read when it changes.
    #[arg(long, value_name = "FILE")]
    pub zone: PathBuf,

    /// This server's identity, NAMESPACE/POD, answered to `id.server` CH TXT and logged.
    #[arg(long, value_name = "NS/POD")]
    pub identity: Option<String>,

    /// Write the bound address (IP:PORT) here once serving.
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
}

const GATEWAY_ABOUT: &str = "\
Serve the sandbox's ingress gateway: an HTTP/1.1 reverse proxy that picks the backend by the
request's Host header (port stripped, case-insensitive) from a routes file it re-reads whenever
the file changes.

Routes file: one route per line, `<host> <ip>:<port>` (IPv6 backend as [addr]:port); `#` starts
a comment. A host on several lines has its requests sent to each backend in turn. A host
`*.example.org` matches names ending in .example.org when no exact host does. A line that does
not parse is skipped with a warning on stderr naming file:line.

Each request goes to the backend over a new connection (none is kept, so every request meets
the network policies in force now); hop-by-hop headers are dropped both ways, Host is kept and
the client's address is appended to x-forwarded-for. The backend's status, headers and body
come back as they are. The gateway answers itself:
  400  the request has no Host
  404  no route for the host
  502  the backend refused, is unreachable, or sent no response head within 5 s
Every response carries `x-netassay-gateway: <identity>`.

Readiness: once listening with the routes read, the address (`IP:PORT`, the port actually bound
when 0 was asked) is written to --ready-file. An unreadable routes file at start exits 2; a port
that cannot be bound exits 3. SIGTERM or SIGINT stops the gateway (requests in flight get up to
5 s to finish; exit 0) and removes the ready file.";

const GATEWAY_AFTER: &str = "\
Example:
  echo 'shop.example.org 10.96.0.7:80' > routes
  netassay agent gateway --listen 127.0.0.1:8080 --routes routes --identity tre-gateway/gateway &
  curl -H 'Host: shop.example.org' http://127.0.0.1:8080/";

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address and port to listen on (port 0 picks a free one).
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// The routes file (`<host> <ip>:<port>` per line), re-read when it changes.
    #[arg(long, value_name = "FILE")]
    pub routes: PathBuf,

    /// This gateway's identity, NAMESPACE/POD, sent as x-netassay-gateway on every response.
    #[arg(long, value_name = "NS/POD")]
    pub identity: String,

    /// Write the bound address (IP:PORT) here once serving.
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
}

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
        AgentCommand::Dns(args) => serve_dns(args),
        AgentCommand::Gateway(args) => serve_gateway(args),
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
    if let Some(spec) = ListenSpec::repeated(&config.listeners) {
        eprintln!("netassay agent serve: --listen names {spec} twice");
        return Ok(exit::BAD_INPUT);
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
        remove_ready_file(args.ready_file.as_deref());
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

fn serve_dns(args: DnsArgs) -> anyhow::Result<u8> {
    const SPEAKER: &str = "netassay agent dns";
    let config = DnsConfig {
        listen: args.listen,
        zone: args.zone,
        identity: args.identity,
    };
    let rt = runtime()?;
    rt.block_on(async move {
        let server = match dns_server::bind(&config).await {
            Ok(server) => server,
            Err(e @ (DnsError::Identity(_) | DnsError::Zone { .. })) => {
                eprintln!("{SPEAKER}: {e}");
                return Ok(exit::BAD_INPUT);
            }
            Err(e @ DnsError::Bind { .. }) => {
                eprintln!("{SPEAKER}: {e}");
                return Ok(exit::ENVIRONMENT);
            }
        };
        let local = server.local_addr();
        let shutdown = shutdown_signal().context("cannot install signal handlers")?;
        if let Err(code) = announce_ready(SPEAKER, args.ready_file.as_deref(), local) {
            return Ok(code);
        }
        eprintln!(
            "{SPEAKER}: {}ready on udp and tcp {local}, zone {} ({})",
            config
                .identity
                .as_deref()
                .map(|id| format!("{id} "))
                .unwrap_or_default(),
            config.zone.display(),
            server.zone().summary()
        );
        server.run(shutdown).await;
        remove_ready_file(args.ready_file.as_deref());
        eprintln!("{SPEAKER}: stopped");
        Ok(exit::OK)
    })
}

fn serve_gateway(args: GatewayArgs) -> anyhow::Result<u8> {
    const SPEAKER: &str = "netassay agent gateway";
    let config = GatewayConfig {
        listen: args.listen,
        routes: args.routes,
        identity: args.identity,
    };
    let rt = runtime()?;
    rt.block_on(async move {
        let gateway = match gateway::bind(&config).await {
            Ok(gateway) => gateway,
            Err(e @ (GatewayError::Identity(_) | GatewayError::Routes { .. })) => {
                eprintln!("{SPEAKER}: {e}");
                return Ok(exit::BAD_INPUT);
            }
            Err(e @ (GatewayError::Bind { .. } | GatewayError::Client(_))) => {
                eprintln!("{SPEAKER}: {e}");
                return Ok(exit::ENVIRONMENT);
            }
        };
        let local = gateway.local_addr();
        let shutdown = shutdown_signal().context("cannot install signal handlers")?;
        if let Err(code) = announce_ready(SPEAKER, args.ready_file.as_deref(), local) {
            return Ok(code);
        }
        eprintln!(
            "{SPEAKER}: {} ready on http {local}, routes {} ({})",
            config.identity,
            config.routes.display(),
            gateway.routes().summary()
        );
        let served = gateway.run(shutdown).await;
        remove_ready_file(args.ready_file.as_deref());
        match served {
            Ok(()) => {
                eprintln!("{SPEAKER}: stopped");
                Ok(exit::OK)
            }
            Err(e) => {
                eprintln!("{SPEAKER}: serving failed: {e}");
                Ok(exit::ENVIRONMENT)
            }
        }
    })
}

/// Writes the bound address to the ready file, if one was asked; on failure says why and
/// gives the exit code.
fn announce_ready(speaker: &str, ready_file: Option<&Path>, local: SocketAddr) -> Result<(), u8> {
    let Some(path) = ready_file else {
        return Ok(());
    };
    watched::write_atomically(path, &format!("{local}\n")).map_err(|e| {
        eprintln!(
            "{speaker}: cannot write the ready file {}: {e}",
            path.display()
        );
        exit::ENVIRONMENT
    })
}

fn remove_ready_file(ready_file: Option<&Path>) {
    if let Some(path) = ready_file {
        let _ = std::fs::remove_file(path);
    }
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
    let _ = netassay_agent::raise_fd_limit();
    let rt = runtime()?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut write_error: Option<std::io::Error> = None;
    let summary = rt.block_on(run_batch(prepared, |line| {
        if write_error.is_none() {
            let written = serde_json::to_writer(&mut out, &line)
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
fn measure(bench: &Bench, args: &BenchProbeArgs) -> Result<(), netassay_agent::bench::BenchError> {
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
