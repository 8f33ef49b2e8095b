//! The agent's command-line contract on loopback: batch validation, streaming, the concurrency
//! bound, HTTP Host and SNI overrides, readiness and clean shutdown.

use netassay_core::model::{Protocol, Verdict};
use netassay_core::probe::{
    AgentLine, BatchSummary, DenyRule, ListenerState, Outcome, ProbeBatch, ProbeKind, ProbeResult,
    ProbeSpec, ReadyReport, Series,
};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_netassay");
const ME: &str = "x/a";

/// `agent serve` on 127.0.0.1 with free ports, stopped by SIGTERM when dropped.
struct Agent {
    child: Option<Child>,
    dir: tempfile::TempDir,
    report: ReadyReport,
}

impl Agent {
    fn start(listen: &str, http: bool) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready.json");
        let mut cmd = Command::new(BIN);
        cmd.args(["agent", "serve", "--identity", ME, "--address", "127.0.0.1"])
            .args(["--listen", listen, "--ready-file"])
            .arg(&ready)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if http {
            cmd.args(["--http", "0"]);
        }
        let mut child = cmd.spawn().unwrap();
        let report = wait_ready(&mut child, &ready);
        Agent {
            child: Some(child),
            dir,
            report,
        }
    }

    fn port(&self, protocol: Protocol) -> u16 {
        self.report.serving_ports(protocol)[0]
    }

    fn http_port(&self) -> u16 {
        self.report.http_port.unwrap()
    }

    fn ready_file(&self) -> PathBuf {
        self.dir.path().join("ready.json")
    }

    /// Sends SIGTERM; returns the exit and stderr.
    fn terminate(&mut self) -> Output {
        let child = self.child.take().unwrap();
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        child.wait_with_output().unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.terminate();
        }
    }
}

fn wait_ready(child: &mut Child, ready: &std::path::Path) -> ReadyReport {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(ready) {
            return serde_json::from_str(&text).unwrap();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("agent serve exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "agent serve not ready within 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `agent probe` with `input` on stdin (closed afterwards).
fn probe_raw(input: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(["agent", "probe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn probe(batch: &ProbeBatch) -> (HashMap<String, ProbeResult>, BatchSummary) {
    let out = probe_raw(&format!("{}\n", batch.to_json_line()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut results = HashMap::new();
    let mut summary = None;
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        match AgentLine::parse(line).unwrap() {
            AgentLine::Result(r) => {
                results.insert(r.id.clone(), r);
            }
            AgentLine::Summary { summary: s } => summary = Some(s),
            AgentLine::Started { .. } => panic!("a plain batch says nothing about a series"),
        }
    }
    assert_eq!(results.len(), batch.probes.len());
    (results, summary.unwrap())
}

fn batch(timeout_ms: u64, probes: Vec<ProbeSpec>) -> ProbeBatch {
    let mut b = ProbeBatch::new(probes);
    b.timeout_ms = timeout_ms;
    b
}

fn local(id: &str, kind: ProbeKind, port: u16) -> ProbeSpec {
    ProbeSpec::new(id, kind, format!("127.0.0.1:{port}"))
}

#[test]
fn malformed_batches_exit_2_with_the_reason_and_no_output() {
    let good = r#"{"id":"ok","kind":"tcp","target":"127.0.0.1:9"}"#;
    let cases = [
        ("not json\n", "not a valid netassay.probe/v1 batch"),
        (
            "{\"schema\":\"netassay.probe/v1\",\"probes\":[\n",
            "EOF while parsing",
        ),
        (
            r#"{"schema":"netassay.probe/v1","probes":[{"id":"a","kind":"tcp"}]}"#,
            "missing field `target`",
        ),
        (
            r#"{"schema":"netassay.probe/v1","probes":[{"id":"a","kind":"icmp","target":"x:1"}]}"#,
            "unknown variant `icmp`",
        ),
        (
            r#"{"schema":"netassay.probe/v1","probes":[],"retries":3}"#,
            "unknown field `retries`",
        ),
        (
            r#"{"schema":"netassay.probe/v9","probes":[]}"#,
            "schema \"netassay.probe/v9\" is not supported",
        ),
        (
            r#"{"schema":"netassay.probe/v1","concurrency":0,"probes":[]}"#,
            "concurrency 0 is out of range",
        ),
        (
            &format!(r#"{{"schema":"netassay.probe/v1","probes":[{good},{good}]}}"#),
            "repeats id \"ok\"",
        ),
        (
            &format!(
                r#"{{"schema":"netassay.probe/v1","probes":[{good},{{"id":"b","kind":"tcp","target":"10.0.0.5"}}]}}"#
            ),
            "probes[1] (id \"b\"): target",
        ),
        (
            &format!(
                r#"{{"schema":"netassay.probe/v1","probes":[{good},{{"id":"h","kind":"http","target":"http://[::1/"}}]}}"#
            ),
            "probes[1] (id \"h\")",
        ),
        ("", "got end of input"),
    ];
    for (input, reason) in cases {
        let out = probe_raw(input);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{input:?}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{input:?} produced output: {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            stderr.contains("invalid batch, nothing probed"),
            "{input:?}: {stderr}"
        );
        assert!(
            stderr.contains(reason),
            "{input:?}: expected {reason:?} in {stderr}"
        );
    }
}

#[test]
fn the_prober_answers_one_line_without_waiting_for_end_of_input() {
    let agent = Agent::start("tcp:0", false);
    let mut child = Command::new(BIN)
        .args(["agent", "probe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let b = batch(
        2000,
        vec![local("p", ProbeKind::Tcp, agent.port(Protocol::Tcp)).expecting(ME)],
    );
    writeln!(stdin, "{}", b.to_json_line()).unwrap();
    stdin.flush().unwrap();
    // stdin stays open: the agent must finish on the line alone.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "agent probe waited for end of input"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(stdin);
    assert!(status.success());
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        matches!(AgentLine::parse(lines[0]).unwrap(), AgentLine::Result(r) if r.outcome == Outcome::Connected)
    );
    assert!(matches!(
        AgentLine::parse(lines[1]).unwrap(),
        AgentLine::Summary { .. }
    ));
}

#[test]
fn results_stream_out_as_each_probe_completes() {
    let agent = Agent::start("tcp:0", false);
    // A bound UDP socket that never answers: the probe to it lasts its whole timeout.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut slow = local("slow", ProbeKind::Udp, silent.local_addr().unwrap().port());
    slow.timeout_ms = Some(1500);
    let fast = local("fast", ProbeKind::Tcp, agent.port(Protocol::Tcp)).expecting(ME);
    let mut child = Command::new(BIN)
        .args(["agent", "probe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let sent = Instant::now();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", batch(3000, vec![slow, fast]).to_json_line()).unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = AgentLine::parse(&lines.next().unwrap().unwrap()).unwrap();
    let first_at = sent.elapsed();
    let second = AgentLine::parse(&lines.next().unwrap().unwrap()).unwrap();
    let second_at = sent.elapsed();
    assert!(
        matches!(first, AgentLine::Result(ref r) if r.id == "fast"),
        "{first:?}"
    );
    assert!(
        first_at < Duration::from_millis(1000),
        "the fast result waited: {first_at:?}"
    );
    assert!(
        matches!(second, AgentLine::Result(ref r) if r.id == "slow" && r.outcome == Outcome::Dropped),
        "{second:?}"
    );
    assert!(second_at >= Duration::from_millis(1500));
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

// The server counts the connections it holds: from accept until just before it greets, which
// lies inside the client's slot (the slot is taken before connecting and given back after the
// greeting), so the count never exceeds the probes in flight. "In fact 3" is shown by a
// rendezvous rather than by timing (a loaded machine may accept the first connection only after
// another's 100 ms are up): each connection is held until three have been held at once, or 3 s
// have passed, so a prober that ran fewer at a time ends with a maximum below 3.
#[test]
fn no_more_probes_are_in_flight_than_the_concurrency_allows() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let current = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let (cur, mx) = (current.clone(), max.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let now = cur.fetch_add(1, Ordering::SeqCst) + 1;
            mx.fetch_max(now, Ordering::SeqCst);
            let (cur, mx) = (cur.clone(), mx.clone());
            std::thread::spawn(move || {
                let held = Instant::now();
                while mx.load(Ordering::SeqCst) < 3 && held.elapsed() < Duration::from_secs(3) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                std::thread::sleep(Duration::from_millis(100));
                // Counted out before greeting, so the count never outlives the client's slot.
                cur.fetch_sub(1, Ordering::SeqCst);
                let _ = stream.write_all(b"netassay x/a\n");
            });
        }
    });
    let probes = (0..12)
        .map(|i| local(&format!("p{i}"), ProbeKind::Tcp, port).expecting(ME))
        .collect();
    let mut b = batch(5000, probes);
    b.concurrency = 3;
    let started = Instant::now();
    let (_, summary) = probe(&b);
    let wall = started.elapsed();
    assert_eq!(summary.count(Outcome::Connected), 12);
    assert_eq!(
        max.load(Ordering::SeqCst),
        3,
        "at most, and in fact, 3 in flight"
    );
    // A lower bound, which load can only lengthen: each probe holds its slot for the server's
    // 100 ms, and 3 slots serve 12 probes in at least 4 turns.
    assert!(
        wall >= Duration::from_millis(400),
        "12 probes in waves of 3 x 100 ms: {wall:?}"
    );
}

#[test]
fn udp_reply_silence_and_a_closed_port_are_told_apart() {
    let agent = Agent::start("udp:0", false);
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (r, _) = probe(&batch(
        600,
        vec![
            local("reply", ProbeKind::Udp, agent.port(Protocol::Udp)).expecting(ME),
            local(
                "silence",
                ProbeKind::Udp,
                silent.local_addr().unwrap().port(),
            ),
            local("closed", ProbeKind::Udp, closed),
        ],
    ));
    assert_eq!(r["reply"].outcome, Outcome::Connected);
    assert_eq!(r["reply"].peer_identity.as_deref(), Some(ME));
    assert_eq!(r["silence"].outcome, Outcome::Dropped);
    assert!(r["silence"].elapsed_ms >= 600);
    assert_eq!(r["closed"].outcome, Outcome::Rejected);
}

/// An HTTP server answering `netassay host/<Host header>`, so a probe can see what it sent.
fn host_echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut host = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("host:") {
                    host = v.trim().to_string();
                }
                line.clear();
            }
            let body = format!("netassay host/{host}\n");
            let status = if host == "missing.example" {
                "404 Not Found"
            } else {
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn http_probes_send_the_host_override_and_check_the_status() {
    let port = host_echo_server();
    let agent = Agent::start("tcp:0", true);
    let mut with_host = local("host", ProbeKind::Http, port).expecting("host/gw.example");
    with_host.host = Some("gw.example".into());
    let mut status_ok = local("status-ok", ProbeKind::Http, agent.http_port()).expecting(ME);
    status_ok.expect_status = Some(200);
    let mut status_wrong = local("status-wrong", ProbeKind::Http, port);
    status_wrong.host = Some("missing.example".into());
    status_wrong.expect_status = Some(200);
    let mut ready = ProbeSpec::new(
        "ready",
        ProbeKind::Http,
        format!("http://127.0.0.1:{}/netassay/ready", agent.http_port()),
    );
    ready.expect_status = Some(200);
    let not_http = local("not-http", ProbeKind::Http, agent.port(Protocol::Tcp));
    let mut tls_to_plain = ProbeSpec::new(
        "tls-to-plain",
        ProbeKind::Http,
        format!("https://127.0.0.1:{}/", agent.http_port()),
    );
    tls_to_plain.timeout_ms = Some(800);
    let (r, _) = probe(&batch(
        3000,
        vec![
            with_host,
            status_ok,
            status_wrong,
            ready,
            not_http,
            tls_to_plain,
        ],
    ));
    assert_eq!(r["host"].outcome, Outcome::Connected, "{:?}", r["host"]);
    assert_eq!(r["status-ok"].outcome, Outcome::Connected);
    assert_eq!(r["status-ok"].peer_identity.as_deref(), Some(ME));
    assert_eq!(r["status-wrong"].outcome, Outcome::WrongPeer);
    assert!(
        r["status-wrong"].detail.contains("HTTP 404, expected 200"),
        "{:?}",
        r["status-wrong"]
    );
    assert_eq!(r["ready"].outcome, Outcome::Connected);
    // A peer that answers, but not in HTTP, fails the probe itself.
    assert_eq!(r["not-http"].outcome, Outcome::Error, "{:?}", r["not-http"]);
    // An open port that never answers is reached, but not by the expected peer: never dropped.
    let silent = &r["tls-to-plain"];
    assert_eq!(silent.outcome, Outcome::WrongPeer, "{silent:?}");
    assert!(
        silent.detail.contains("accepted the connection"),
        "{silent:?}"
    );
}

/// The server name in a TLS ClientHello, if `hello` holds one.
fn sni_of(hello: &[u8]) -> Option<String> {
    let get = |i: usize| hello.get(i).copied().map(usize::from);
    let u16_at = |i: usize| Some(get(i)? << 8 | get(i + 1)?);
    // record header (5), handshake header (4), version (2), random (32)
    let mut i = 5 + 4 + 2 + 32;
    i += 1 + get(i)?; // session id
    i += 2 + u16_at(i)?; // cipher suites
    i += 1 + get(i)?; // compression methods
    let end = i + 2 + u16_at(i)?;
    i += 2;
    while i + 4 <= end {
        let (kind, len) = (u16_at(i)?, u16_at(i + 2)?);
        if kind == 0 {
            let name_len = u16_at(i + 4 + 3)?;
            let name = hello.get(i + 4 + 5..i + 4 + 5 + name_len)?;
            return Some(String::from_utf8_lossy(name).into_owned());
        }
        i += 4 + len;
    }
    None
}

#[test]
fn https_probes_send_the_sni_override_to_the_target_address() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::thread::spawn(move || {
        // The prober first checks that the port is open, on a connection that sends nothing.
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut hello = vec![0u8; 4096];
            let mut got = 0;
            // Read the whole first TLS record.
            while got < 5 || got < 5 + (usize::from(hello[3]) << 8 | usize::from(hello[4])) {
                let n = stream.read(&mut hello[got..]).unwrap();
                if n == 0 {
                    break;
                }
                got += n;
            }
            if got > 0 {
                return sni_of(&hello[..got]);
            }
        }
        None
    });
    let mut p = ProbeSpec::new("sni", ProbeKind::Http, format!("https://127.0.0.1:{port}/"));
    p.sni = Some("app.gw.example".into());
    let (r, _) = probe(&batch(2000, vec![p]));
    assert_eq!(seen.join().unwrap().as_deref(), Some("app.gw.example"));
    // The server closed without a handshake: the probe failed, and says so.
    assert_eq!(r["sni"].outcome, Outcome::Error, "{:?}", r["sni"]);
}

#[test]
fn serve_reports_unsupported_sctp_keeps_serving_and_stops_cleanly_on_sigterm() {
    let mut agent = Agent::start("tcp:0,sctp:0,udp:0", true);
    let sctp = agent
        .report
        .listeners
        .iter()
        .find(|l| l.protocol == Protocol::Sctp)
        .unwrap()
        .clone();
    let (r, _) = probe(&batch(
        1000,
        vec![
            local("tcp", ProbeKind::Tcp, agent.port(Protocol::Tcp)).expecting(ME),
            local("udp", ProbeKind::Udp, agent.port(Protocol::Udp)).expecting(ME),
        ],
    ));
    assert_eq!(r["tcp"].outcome, Outcome::Connected);
    assert_eq!(r["udp"].outcome, Outcome::Connected);
    // The same report is served over HTTP.
    let mut ready = ProbeSpec::new(
        "ready",
        ProbeKind::Http,
        format!("http://127.0.0.1:{}/netassay/ready", agent.http_port()),
    );
    ready.expect_status = Some(200);
    assert_eq!(
        probe(&batch(1000, vec![ready])).0["ready"].outcome,
        Outcome::Connected
    );

    let ready_file = agent.ready_file();
    let out = agent.terminate();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "SIGTERM is a clean stop: {:?} {stderr}",
        out.status
    );
    assert!(!ready_file.exists(), "the ready file is removed on stop");
    if sctp.state == ListenerState::Unsupported {
        assert!(stderr.contains("sctp:0 unsupported"), "{stderr}");
        assert!(sctp.reason.is_some(), "an unsupported listener says why");
    } else {
        assert!(!stderr.contains("unsupported"), "{stderr}");
        assert_eq!(agent.report.serving_ports(Protocol::Sctp).len(), 1);
    }
}

#[test]
fn serve_refuses_bad_listeners_and_taken_ports() {
    let out = Command::new(BIN)
        .args(["agent", "serve", "--identity", ME, "--listen", "http:80"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcp, udp or sctp"));

    // Repeated across --listen flags as well as within one.
    let out = Command::new(BIN)
        .args(["agent", "serve", "--identity", ME])
        .args(["--listen", "tcp:5,udp:5", "--listen", "tcp:5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcp:5 twice"));

    let out = Command::new(BIN)
        .args(["agent", "serve", "--identity", "x a", "--listen", "tcp:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = Command::new(BIN)
        .args(["agent", "serve", "--identity", ME, "--address", "127.0.0.1"])
        .args(["--listen", &format!("tcp:{port}")])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("tcp:{port}")));
}

// DESIGN §7b: a series starts a probe of each cell every spacing until it agreed for the
// window; its first line says the agent's clock started, every result carries its start offset
// and its number in the cell's series, and a cell that agrees from the start ends soon.
#[test]
fn a_series_streams_numbered_probes_until_each_cell_agrees_for_the_window() {
    let agent = Agent::start("tcp:0", false);
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut open = local("open", ProbeKind::Tcp, agent.port(Protocol::Tcp)).expecting(ME);
    open.expect = Some(Verdict::Allow);
    let mut refused = local("refused", ProbeKind::Tcp, closed_port);
    refused.expect = Some(Verdict::Deny);
    let series = Series {
        spacing_ms: 20,
        window_ms: 100,
        deadline_ms: 5000,
        deny_rule: DenyRule::DroppedOrRejected,
    };
    let mut b = ProbeBatch::series(vec![open, refused], series);
    b.timeout_ms = 1000;
    let out = probe_raw(&format!("{}\n", b.to_json_line()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<AgentLine> = text.lines().map(|l| AgentLine::parse(l).unwrap()).collect();
    assert!(
        matches!(&lines[0], AgentLine::Started { started } if started.cells == 2),
        "{text}"
    );
    let results: Vec<&ProbeResult> = lines
        .iter()
        .filter_map(|l| match l {
            AgentLine::Result(r) => Some(r),
            _ => None,
        })
        .collect();
    // Read on the agent's own clock (start offsets, elapsed), not by wall time: a loaded
    // machine makes the agent skip ticks, which changes how many probes there are, not these.
    for (id, outcome) in [("open", Outcome::Connected), ("refused", Outcome::Rejected)] {
        let mut mine: Vec<&&ProbeResult> = results.iter().filter(|r| r.id == id).collect();
        mine.sort_by_key(|r| r.seq);
        assert!(mine.iter().all(|r| r.outcome == outcome), "{id}: {mine:?}");
        let seqs: Vec<u32> = mine.iter().filter_map(|r| r.seq).collect();
        assert_eq!(seqs, (0..mine.len() as u32).collect::<Vec<_>>(), "{id}");
        // One probe per tick of the 20 ms spacing: probe k starts no earlier than tick k.
        let starts: Vec<u64> = mine.iter().filter_map(|r| r.start_ms).collect();
        assert_eq!(starts.len(), mine.len(), "{id}: every probe has its start");
        assert!(
            starts.iter().zip(0..).all(|(start, k)| *start >= 20 * k),
            "{id}: spaced {starts:?}"
        );
        // Until the agreeing answers span the 100 ms window...
        let answered: Vec<u64> = mine
            .iter()
            .map(|r| r.start_ms.unwrap_or(0) + r.elapsed_ms)
            .collect();
        let span = answered.iter().max().unwrap() - answered.iter().min().unwrap();
        assert!(span >= 100, "{id}: answers over {span} ms: {mine:?}");
        // ...and then no longer: a series that ran to its 5 s deadline would still be starting
        // probes thousands of ms in.
        let last = starts.last().copied().unwrap_or(0);
        assert!(
            last < 2500,
            "{id}: ended at agreement, not the deadline: last start {last} ms"
        );
    }
    let summary = lines.iter().find_map(|l| match l {
        AgentLine::Summary { summary } => Some(summary),
        _ => None,
    });
    assert_eq!(
        summary.map(|s| s.schema.as_str()),
        Some("netassay.probe/v2")
    );
}

#[test]
fn help_teaches_the_wire_format() {
    let out = Command::new(BIN)
        .args(["agent", "probe", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "netassay.probe/v1",
        "netassay.probe/v2",
        "spacing_ms",
        "wrong-peer",
        "dns-failed",
        "expect_identity",
        "exits 2",
    ] {
        assert!(help.contains(needle), "probe --help lacks {needle:?}");
    }
    let out = Command::new(BIN)
        .args(["agent", "serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in ["--ready-file", "unsupported", "SIGTERM", "/netassay/ready"] {
        assert!(help.contains(needle), "serve --help lacks {needle:?}");
    }
}

#[test]
fn by_default_the_agent_serves_ipv4_and_ipv6_from_one_dual_stack_socket() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready.json");
    let mut child = Command::new(BIN)
        .args([
            "agent",
            "serve",
            "--identity",
            ME,
            "--listen",
            "tcp:0,udp:0",
            "--ready-file",
        ])
        .arg(&ready)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let report = wait_ready(&mut child, &ready);
    let (tcp, udp) = (
        report.serving_ports(Protocol::Tcp)[0],
        report.serving_ports(Protocol::Udp)[0],
    );
    let (r, _) = probe(&batch(
        2000,
        vec![
            ProbeSpec::new("tcp4", ProbeKind::Tcp, format!("127.0.0.1:{tcp}")).expecting(ME),
            ProbeSpec::new("tcp6", ProbeKind::Tcp, format!("[::1]:{tcp}")).expecting(ME),
            ProbeSpec::new("udp4", ProbeKind::Udp, format!("127.0.0.1:{udp}")).expecting(ME),
            ProbeSpec::new("udp6", ProbeKind::Udp, format!("[::1]:{udp}")).expecting(ME),
        ],
    ));
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    for id in ["tcp4", "tcp6", "udp4", "udp6"] {
        assert_eq!(r[id].outcome, Outcome::Connected, "{:?}", r[id]);
    }
}
