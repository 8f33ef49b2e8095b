//! `netassay bench probe`: round latency and probe throughput of the real binary, on this machine.
//!
//! A child `agent serve` on 127.0.0.1 answers the connected probes. Dropped probes go to an
//! address inside a network namespace of the bench's own (veth from the host, nft dropping all
//! TCP and UDP), created under a unique name and removed on every path. Nothing leaves the
//! machine. Each measurement runs a child `agent probe` exactly as the harness would (one JSON
//! line in, result lines out), and times it from spawn to exit.

use netassay_core::model::Protocol;
use netassay_core::probe::{
    AgentLine, BatchSummary, Outcome, ProbeBatch, ProbeKind, ProbeResult, ProbeSpec, ReadyReport,
};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use thiserror::Error;

/// The identity of the bench's agent.
const IDENTITY: &str = "bench/agent";

/// The host side and the namespace side of the bench's veth.
const HOST_ADDR: Ipv4Addr = Ipv4Addr::new(10, 201, 254, 1);
const DROP_ADDR: Ipv4Addr = Ipv4Addr::new(10, 201, 254, 2);

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The netassay binary to run as agent and prober.
    pub exe: PathBuf,
    /// Probes per latency round; half of them are dropped.
    pub round_probes: usize,
    pub rounds: usize,
    pub timeout_ms: u64,
    pub concurrency: usize,
    /// Connected probes per throughput batch, and how many batches back to back.
    pub throughput_probes: usize,
    pub throughput_batches: usize,
    /// Skip the latency rounds (which need root for their namespace).
    pub skip_dropped: bool,
}

/// The bench could not run.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct BenchError(String);

fn fail(what: impl Into<String>) -> BenchError {
    BenchError(what.into())
}

/// One timed `agent probe` run.
#[derive(Debug, Clone)]
pub struct Timed {
    /// From spawning the prober to its exit.
    pub wall: Duration,
    pub summary: BatchSummary,
    /// Every probe's result, in the order the prober wrote them.
    pub results: Vec<ProbeResult>,
}

/// Figures of a throughput run of one kind.
#[derive(Debug, Clone)]
pub struct Throughput {
    pub kind: ProbeKind,
    pub probes: usize,
    pub connected: usize,
    pub wall: Duration,
}

impl Throughput {
    pub fn per_second(&self) -> f64 {
        self.connected as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// A running bench environment: the agent child and, when asked for, the drop namespace.
pub struct Bench {
    config: BenchConfig,
    agent: AgentChild,
    tcp_port: u16,
    udp_port: u16,
    dropper: Option<DropNamespace>,
}

impl Bench {
    /// Starts the agent and, unless skipped, the drop namespace.
    pub fn start(config: BenchConfig) -> Result<Self, BenchError> {
        let dropper = if config.skip_dropped {
            None
        } else {
            Some(DropNamespace::create()?)
        };
        let mut agent = AgentChild::spawn(&config.exe)?;
        let report = agent.wait_ready(Duration::from_secs(10))?;
        let port = |p| {
            report
                .serving_ports(p)
                .first()
                .copied()
                .ok_or_else(|| fail(format!("the bench agent serves no {p} listener")))
        };
        Ok(Bench {
            tcp_port: port(Protocol::Tcp)?,
            udp_port: port(Protocol::Udp)?,
            config,
            agent,
            dropper,
        })
    }

    /// A line for the figures: where the agent and the drop target are.
    pub fn describe(&self) -> String {
        let dropped = match &self.dropper {
            Some(d) => format!("dropped targets {DROP_ADDR} in netns {} (nft drop)", d.name),
            None => "no dropped targets (--skip-dropped)".to_string(),
        };
        format!(
            "agent pid {} on 127.0.0.1 (tcp:{}, udp:{}); {dropped}",
            self.agent.child.id(),
            self.tcp_port,
            self.udp_port
        )
    }

    /// One latency round: half connected TCP probes to the agent, half to the drop target. The
    /// round is a measurement only when its probes did what it is built of: every connected
    /// probe reached the agent (identity checked) and every dropped probe waited out its
    /// timeout; otherwise (a refused, erring or wrong-peer probe ends early) it is an error that
    /// names the probes, never a fast round.
    pub fn round(&self) -> Result<Timed, BenchError> {
        if self.dropper.is_none() {
            return Err(fail("latency rounds need the drop namespace"));
        }
        let probes = (0..self.config.round_probes)
            .map(|i| {
                if i % 2 == 0 {
                    ProbeSpec::new(
                        format!("c{i}"),
                        ProbeKind::Tcp,
                        format!("127.0.0.1:{}", self.tcp_port),
                    )
                    .expecting(IDENTITY)
                } else {
                    ProbeSpec::new(
                        format!("d{i}"),
                        ProbeKind::Tcp,
                        format!("{DROP_ADDR}:{}", 80 + i % 2),
                    )
                    .expecting(IDENTITY)
                }
            })
            .collect::<Vec<_>>();
        let expected: Vec<(String, Outcome)> = probes
            .iter()
            .map(|p| {
                let outcome = if p.id.starts_with('c') {
                    Outcome::Connected
                } else {
                    Outcome::Dropped
                };
                (p.id.clone(), outcome)
            })
            .collect();
        let timed = self.run_batch(probes)?;
        let wrong = unexpected_outcomes(&expected, &timed.results);
        if !wrong.is_empty() {
            return Err(fail(format!(
                "a latency round did not measure what it is built of ({} probes connected to the agent, {} dropped after {} ms): {} of {} probes came out otherwise: {}{}",
                expected.iter().filter(|(_, o)| *o == Outcome::Connected).count(),
                expected.iter().filter(|(_, o)| *o == Outcome::Dropped).count(),
                self.config.timeout_ms,
                wrong.len(),
                expected.len(),
                wrong.iter().take(5).cloned().collect::<Vec<_>>().join("; "),
                if wrong.len() > 5 { "; ..." } else { "" }
            )));
        }
        Ok(timed)
    }

    /// Throughput batches of connected probes of `kind` (tcp or udp), back to back.
    pub fn throughput(&self, kind: ProbeKind) -> Result<Throughput, BenchError> {
        let port = if kind == ProbeKind::Udp {
            self.udp_port
        } else {
            self.tcp_port
        };
        let mut wall = Duration::ZERO;
        let mut connected = 0;
        for _ in 0..self.config.throughput_batches {
            let probes = (0..self.config.throughput_probes)
                .map(|i| {
                    ProbeSpec::new(format!("p{i}"), kind, format!("127.0.0.1:{port}"))
                        .expecting(IDENTITY)
                })
                .collect();
            let timed = self.run_batch(probes)?;
            wall += timed.wall;
            connected += timed.summary.count(Outcome::Connected);
        }
        Ok(Throughput {
            kind,
            probes: self.config.throughput_probes * self.config.throughput_batches,
            connected,
            wall,
        })
    }

    fn run_batch(&self, probes: Vec<ProbeSpec>) -> Result<Timed, BenchError> {
        let mut batch = ProbeBatch::new(probes);
        batch.timeout_ms = self.config.timeout_ms;
        batch.concurrency = self.config.concurrency;
        run_prober(&self.config.exe, &batch)
    }
}

/// Runs `agent probe` on `batch` as the harness does; returns its summary and wall time.
pub fn run_prober(exe: &Path, batch: &ProbeBatch) -> Result<Timed, BenchError> {
    let line = batch.to_json_line();
    let started = Instant::now();
    let mut child = Command::new(exe)
        .args(["agent", "probe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| fail(format!("cannot start {} agent probe: {e}", exe.display())))?;
    let exchanged = exchange(&mut child, &line);
    if exchanged.is_err() {
        let _ = child.kill();
    }
    let status = child
        .wait()
        .map_err(|e| fail(format!("waiting for the prober: {e}")))?;
    let wall = started.elapsed();
    let (results, summary) = exchanged?;
    if !status.success() {
        return Err(fail(format!("the prober exited with {status}")));
    }
    let summary = summary.ok_or_else(|| fail("the prober wrote no summary"))?;
    if results.len() != batch.probes.len() || summary.total != results.len() {
        return Err(fail(format!(
            "the prober answered {} of {} probes",
            results.len(),
            batch.probes.len()
        )));
    }
    Ok(Timed {
        wall,
        summary,
        results,
    })
}

/// The probes whose result differs from what `expected` says (by probe id), one line each:
/// a wrong outcome, a probe with no result, or one with several.
fn unexpected_outcomes(expected: &[(String, Outcome)], results: &[ProbeResult]) -> Vec<String> {
    let mut by_id: BTreeMap<&str, Vec<&ProbeResult>> = BTreeMap::new();
    for r in results {
        by_id.entry(r.id.as_str()).or_default().push(r);
    }
    let mut wrong = Vec::new();
    for (id, want) in expected {
        match by_id.remove(id.as_str()).as_deref() {
            Some([r]) if r.outcome == *want => {}
            Some([r]) => wrong.push(format!(
                "{id} {} after {} ms, expected {want} ({})",
                r.outcome, r.elapsed_ms, r.detail
            )),
            None | Some([]) => wrong.push(format!("{id} has no result")),
            Some(several) => wrong.push(format!("{id} has {} results", several.len())),
        }
    }
    wrong.extend(
        by_id
            .into_keys()
            .map(|id| format!("{id} was not asked for")),
    );
    wrong
}

/// Sends the batch line and reads every output line: the results, and the summary.
fn exchange(
    child: &mut Child,
    line: &str,
) -> Result<(Vec<ProbeResult>, Option<BatchSummary>), BenchError> {
    {
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| fail("prober has no stdin"))?;
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| fail(format!("cannot send the batch: {e}")))?;
    }
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| fail("prober has no stdout"))?;
    let mut summary = None;
    let mut results = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| fail(format!("reading prober output: {e}")))?;
        match AgentLine::parse(&line) {
            Ok(AgentLine::Result(r)) => results.push(r),
            Ok(AgentLine::Summary { summary: s }) => summary = Some(s),
            Ok(AgentLine::Started { .. }) => {}
            Err(e) => return Err(fail(format!("prober wrote {line:?}: {e}"))),
        }
    }
    Ok((results, summary))
}

/// The child `agent serve`, stopped with SIGTERM when dropped.
struct AgentChild {
    child: Child,
    dir: PathBuf,
}

impl AgentChild {
    fn spawn(exe: &Path) -> Result<Self, BenchError> {
        let dir = std::env::temp_dir().join(format!("netassay-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        let child = Command::new(exe)
            .args([
                "agent",
                "serve",
                "--identity",
                IDENTITY,
                "--address",
                "127.0.0.1",
            ])
            .args(["--listen", "tcp:0,udp:0", "--ready-file"])
            .arg(dir.join("ready.json"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| fail(format!("cannot start {} agent serve: {e}", exe.display())))?;
        Ok(AgentChild { child, dir })
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<ReadyReport, BenchError> {
        let path = self.dir.join("ready.json");
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                return serde_json::from_str(&text)
                    .map_err(|e| fail(format!("bad ready file {}: {e}", path.display())));
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(fail(format!("the bench agent exited: {status}")));
            }
            if Instant::now() >= deadline {
                return Err(fail("the bench agent did not get ready within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for AgentChild {
    fn drop(&mut self) {
        stop_child(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends SIGTERM, waits up to 5 s, then kills.
pub fn stop_child(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on the pid of a child we spawned and have not yet reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A namespace reachable over a veth from the host, dropping every TCP and UDP packet.
struct DropNamespace {
    name: String,
    host_if: String,
}

impl DropNamespace {
    fn create() -> Result<Self, BenchError> {
        let pid = std::process::id();
        let name = format!("natb{pid}");
        let host_if = format!("natb{pid}h");
        let ns_if = format!("natb{pid}n");
        // From here on, Drop removes whatever part was made.
        let ns = DropNamespace {
            name: name.clone(),
            host_if: host_if.clone(),
        };
        let host_cidr = format!("{HOST_ADDR}/30");
        let ns_cidr = format!("{DROP_ADDR}/30");
        let steps: [&[&str]; 7] = [
            &["ip", "netns", "add", &name],
            &[
                "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
            ],
            &["ip", "link", "set", &ns_if, "netns", &name],
            &["ip", "addr", "add", &host_cidr, "dev", &host_if],
            &["ip", "link", "set", &host_if, "up"],
            &["ip", "-n", &name, "addr", "add", &ns_cidr, "dev", &ns_if],
            &["ip", "-n", &name, "link", "set", &ns_if, "up"],
        ];
        for step in steps {
            run_command(step, None)?;
        }
        let rules = "table inet natbench {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    meta l4proto { tcp, udp } drop\n  }\n}\n";
        run_command(
            &["ip", "netns", "exec", &name, "nft", "-f", "-"],
            Some(rules),
        )?;
        Ok(ns)
    }
}

impl Drop for DropNamespace {
    fn drop(&mut self) {
        // Deleting the namespace also deletes its nft table and its end of the veth.
        let _ = run_command(&["ip", "link", "del", &self.host_if], None);
        let _ = run_command(&["ip", "netns", "del", &self.name], None);
    }
}

fn run_command(argv: &[&str], stdin: Option<&str>) -> Result<(), BenchError> {
    let (program, args) = argv.split_first().ok_or_else(|| fail("empty command"))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run {}: {e} (the dropped half needs root, ip and nft; --skip-dropped measures throughput only)", argv.join(" "))))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| fail(format!("{}: {e}", argv.join(" "))))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("{}: {e}", argv.join(" "))))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(fail(format!(
            "{} failed: {} (the dropped half needs root, ip and nft; --skip-dropped measures throughput only)",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str, outcome: Outcome, elapsed_ms: u64) -> ProbeResult {
        ProbeResult {
            id: id.into(),
            outcome,
            detail: "detail".into(),
            elapsed_ms,
            peer_identity: None,
            addresses: Vec::new(),
            start_ms: None,
            seq: None,
        }
    }

    fn expected() -> Vec<(String, Outcome)> {
        vec![
            ("c0".into(), Outcome::Connected),
            ("d1".into(), Outcome::Dropped),
        ]
    }

    #[test]
    fn a_round_whose_probes_did_what_it_is_built_of_has_nothing_unexpected() {
        let results = [
            result("d1", Outcome::Dropped, 800),
            result("c0", Outcome::Connected, 1),
        ];
        assert_eq!(
            unexpected_outcomes(&expected(), &results),
            Vec::<String>::new()
        );
    }

    // A fast-erroring half would make a fast round: it is named, not counted as a latency.
    #[test]
    fn erring_refused_missing_and_stray_probes_are_named() {
        let results = [
            result("c0", Outcome::Error, 0),
            result("d1", Outcome::Rejected, 2),
            result("x9", Outcome::Connected, 1),
        ];
        let wrong = unexpected_outcomes(&expected(), &results);
        assert_eq!(wrong.len(), 3, "{wrong:?}");
        assert!(
            wrong[0].starts_with("c0 error after 0 ms, expected connected"),
            "{wrong:?}"
        );
        assert!(
            wrong[1].starts_with("d1 rejected after 2 ms, expected dropped"),
            "{wrong:?}"
        );
        assert_eq!(wrong[2], "x9 was not asked for");
        let wrong = unexpected_outcomes(&expected(), &[result("c0", Outcome::Connected, 1)]);
        assert_eq!(wrong, ["d1 has no result"]);
        let twice = [
            result("c0", Outcome::Connected, 1),
            result("c0", Outcome::Connected, 1),
            result("d1", Outcome::Dropped, 800),
        ];
        assert_eq!(
            unexpected_outcomes(&expected(), &twice),
            ["c0 has 2 results"]
        );
    }
}
