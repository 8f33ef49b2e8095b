//! The agent across real network namespaces: every outcome the probe table promises, produced by
//! real nftables verdicts between a client and a server namespace joined by a veth.
//!
//! Needs root, `ip` and `nft`. Every namespace is named `nat<pid>c<n>` / `nat<pid>s<n>` and is
//! removed by a drop guard on every path; the veth lives only inside them and nothing touches
//! the root namespace. Set NETASSAY_SKIP_NETNS=1 to skip these tests where root is unavailable.

use netassay_core::model::Protocol;
use netassay_core::probe::{
    AgentLine, BatchSummary, ListenerState, Outcome, ProbeBatch, ProbeKind, ProbeResult, ProbeSpec,
    ReadyReport,
};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_netassay");
const CLIENT_IP: &str = "10.201.0.1";
const SERVER_IP: &str = "10.201.0.2";
const SERVER: &str = "y/b";
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Whether to run; panics with the reason when the machine cannot, unless told to skip.
fn netns_available() -> bool {
    let root = unsafe { libc::geteuid() } == 0;
    let tools = ["ip", "nft"].iter().all(|t| {
        Command::new(t)
            .arg("-V")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    if root && tools {
        return true;
    }
    if std::env::var_os("NETASSAY_SKIP_NETNS").is_some() {
        // Never in CI, whatever the environment says: there these tests must run.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run these tests as root with ip and nft (NETASSAY_SKIP_NETNS is ignored there)"
        );
        eprintln!("skipping: needs root, ip and nft (NETASSAY_SKIP_NETNS is set)");
        return false;
    }
    panic!("these tests need root, ip (iproute2) and nft (nftables); set NETASSAY_SKIP_NETNS=1 to skip");
}

fn run(argv: &[&str]) {
    run_with_input(argv, None);
}

fn run_with_input(argv: &[&str], input: Option<&str>) {
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"));
    if let Some(text) = input {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{argv:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A background thread serving a socket until dropped.
struct Background {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A client and a server namespace joined by a veth, 10.201.0.1 <-> 10.201.0.2.
struct Pair {
    client: String,
    server: String,
    agent: Option<Child>,
    ready_dir: PathBuf,
    background: Vec<Background>,
}

impl Pair {
    fn new() -> Pair {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let pair = Pair {
            client: format!("nat{pid}c{n}"),
            server: format!("nat{pid}s{n}"),
            agent: None,
            ready_dir: std::env::temp_dir().join(format!("nat{pid}r{n}")),
            background: Vec::new(),
        };
        // From here on the guard removes whatever was made, also if a step fails.
        let (c, s) = (pair.client.as_str(), pair.server.as_str());
        let (cif, sif) = (format!("nat{pid}{n}a"), format!("nat{pid}{n}b"));
        run(&["ip", "netns", "add", c]);
        run(&["ip", "netns", "add", s]);
        run(&[
            "ip", "link", "add", &cif, "netns", c, "type", "veth", "peer", "name", &sif, "netns", s,
        ]);
        run(&[
            "ip",
            "-n",
            c,
            "addr",
            "add",
            &format!("{CLIENT_IP}/24"),
            "dev",
            &cif,
        ]);
        run(&[
            "ip",
            "-n",
            s,
            "addr",
            "add",
            &format!("{SERVER_IP}/24"),
            "dev",
            &sif,
        ]);
        for (ns, dev) in [(c, cif.as_str()), (s, sif.as_str()), (c, "lo"), (s, "lo")] {
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        // Several refusals in one test must each get their ICMP error, not a rate-limited few.
        for ns in [c, s] {
            run(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-q",
                "-w",
                "net.ipv4.icmp_ratelimit=0",
            ]);
        }
        std::fs::create_dir_all(&pair.ready_dir).unwrap();
        pair
    }

    /// Loads nft rules (one `table inet` per call) in the server namespace's input hook.
    fn server_input_rules(&self, rules: &str) {
        let text = format!(
            "table inet natest {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n{rules}\n }}\n}}\n"
        );
        run_with_input(
            &["ip", "netns", "exec", &self.server, "nft", "-f", "-"],
            Some(&text),
        );
    }

    /// Loads nft rules in the client namespace's output hook.
    fn client_output_rules(&self, rules: &str) {
        let text = format!(
            "table inet natest {{\n chain output {{\n  type filter hook output priority 0; policy accept;\n{rules}\n }}\n}}\n"
        );
        run_with_input(
            &["ip", "netns", "exec", &self.client, "nft", "-f", "-"],
            Some(&text),
        );
    }

    /// Starts `agent serve` as y/b in the server namespace and waits for its ready file.
    fn serve(&mut self, listen: &str, http: Option<u16>) -> ReadyReport {
        let ready = self.ready_dir.join("ready.json");
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.server,
            BIN,
            "agent",
            "serve",
            "--identity",
            SERVER,
        ])
        .args(["--listen", listen, "--ready-file"])
        .arg(&ready)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        if let Some(port) = http {
            cmd.args(["--http", &port.to_string()]);
        }
        self.agent = Some(cmd.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                return serde_json::from_str(&text).unwrap();
            }
            if let Some(status) = self.agent.as_mut().unwrap().try_wait().unwrap() {
                panic!("agent serve exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "agent serve not ready within 10 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Runs one batch from the client namespace; results by id, and the summary.
    fn probe(&self, batch: &ProbeBatch) -> (HashMap<String, ProbeResult>, BatchSummary) {
        probe_in(&self.client, batch)
    }

    /// A socket made inside the server namespace (sockets keep their namespace for life).
    fn udp_socket_in_server(&self, port: u16) -> UdpSocket {
        let path = format!("/run/netns/{}", self.server);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap();
            // SAFETY: setns on a valid namespace fd; it affects only this short-lived thread.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            UdpSocket::bind((SERVER_IP, port)).unwrap()
        })
        .join()
        .unwrap()
    }

    /// Serves `handler` on a UDP socket in the server namespace until the pair is dropped.
    fn udp_server(
        &mut self,
        port: u16,
        handler: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + 'static,
    ) {
        let socket = self.udp_socket_in_server(port);
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !flag.load(Ordering::SeqCst) {
                if let Ok((n, peer)) = socket.recv_from(&mut buf) {
                    if let Some(reply) = handler(&buf[..n]) {
                        let _ = socket.send_to(&reply, peer);
                    }
                }
            }
        });
        self.background.push(Background {
            stop,
            handle: Some(handle),
        });
    }

    /// Gives the client namespace a resolv.conf (`ip netns exec` bind-mounts /etc/netns/NAME/).
    fn client_resolv_conf(&self, text: &str) {
        let dir = PathBuf::from("/etc/netns").join(&self.client);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("resolv.conf"), text).unwrap();
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            unsafe { libc::kill(agent.id() as libc::pid_t, libc::SIGTERM) };
            let _ = agent.wait();
        }
        self.background.clear();
        let _ = std::fs::remove_dir_all(&self.ready_dir);
        let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(&self.client));
        // Only succeeds if empty, i.e. when no one else keeps files there.
        let _ = std::fs::remove_dir("/etc/netns");
        // Deleting a namespace deletes its veth end (and so the pair) and its nft tables.
        for ns in [&self.client, &self.server] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn probe_in(ns: &str, batch: &ProbeBatch) -> (HashMap<String, ProbeResult>, BatchSummary) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, BIN, "agent", "probe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", batch.to_json_line()).unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut results = HashMap::new();
    let mut summary = None;
    for line in stdout.lines() {
        match AgentLine::parse(&line.unwrap()).unwrap() {
            AgentLine::Result(r) => {
                assert!(
                    results.insert(r.id.clone(), r).is_none(),
                    "an id was answered twice"
                );
            }
            AgentLine::Summary { summary: s } => summary = Some(s),
            AgentLine::Started { .. } => panic!("a plain batch says nothing about a series"),
        }
    }
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert!(
        out.status.success(),
        "agent probe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(results.len(), batch.probes.len(), "one result per probe");
    (results, summary.expect("a summary line"))
}

fn batch(timeout_ms: u64, probes: Vec<ProbeSpec>) -> ProbeBatch {
    let mut b = ProbeBatch::new(probes);
    b.timeout_ms = timeout_ms;
    b
}

fn to_server(id: &str, kind: ProbeKind, port: u16) -> ProbeSpec {
    ProbeSpec::new(id, kind, format!("{SERVER_IP}:{port}")).expecting(SERVER)
}

fn assert_outcome(
    results: &HashMap<String, ProbeResult>,
    id: &str,
    outcome: Outcome,
) -> ProbeResult {
    let r = results
        .get(id)
        .unwrap_or_else(|| panic!("no result for {id}"))
        .clone();
    assert_eq!(r.outcome, outcome, "{id}: {r:?}");
    r
}

#[test]
fn allowed_paths_connect_and_prove_the_peer_identity() {
    if !netns_available() {
        return;
    }
    let mut pair = Pair::new();
    pair.serve("tcp:80,udp:80", Some(8080));
    let (r, summary) = pair.probe(&batch(
        2000,
        vec![
            to_server("tcp", ProbeKind::Tcp, 80),
            to_server("udp", ProbeKind::Udp, 80),
            to_server("http", ProbeKind::Http, 8080),
        ],
    ));
    for id in ["tcp", "udp", "http"] {
        let res = assert_outcome(&r, id, Outcome::Connected);
        assert_eq!(res.peer_identity.as_deref(), Some(SERVER), "{id}");
    }
    assert_eq!(summary.count(Outcome::Connected), 3);
}

#[test]
fn a_peer_with_another_identity_is_wrong_peer_never_connected() {
    if !netns_available() {
        return;
    }
    let mut pair = Pair::new();
    pair.serve("tcp:80,udp:80", Some(8080));
    let expect_other = |id: &str, kind, port| {
        ProbeSpec::new(id, kind, format!("{SERVER_IP}:{port}")).expecting("z/c")
    };
    let (r, _) = pair.probe(&batch(
        2000,
        vec![
            expect_other("tcp", ProbeKind::Tcp, 80),
            expect_other("udp", ProbeKind::Udp, 80),
            expect_other("http", ProbeKind::Http, 8080),
        ],
    ));
    for id in ["tcp", "udp", "http"] {
        let res = assert_outcome(&r, id, Outcome::WrongPeer);
        assert_eq!(
            res.peer_identity.as_deref(),
            Some(SERVER),
            "{id}: the real peer is named"
        );
        assert!(res.detail.contains("expected z/c"), "{id}: {}", res.detail);
    }
}

#[test]
fn nft_drop_is_dropped_after_the_full_timeout() {
    if !netns_available() {
        return;
    }
    let mut pair = Pair::new();
    pair.serve("tcp:81,udp:81", Some(8081));
    pair.server_input_rules("  tcp dport { 81, 8081 } drop\n  udp dport 81 drop");
    let timeout = 600;
    let (r, _) = pair.probe(&batch(
        timeout,
        vec![
            to_server("tcp", ProbeKind::Tcp, 81),
            to_server("udp", ProbeKind::Udp, 81),
            to_server("http", ProbeKind::Http, 8081),
        ],
    ));
    for id in ["tcp", "udp", "http"] {
        let res = assert_outcome(&r, id, Outcome::Dropped);
        assert!(res.elapsed_ms >= timeout, "{id} gave up early: {res:?}");
        assert!(
            res.elapsed_ms < timeout + 500,
            "{id} overran its timeout: {res:?}"
        );
    }
}

#[test]
fn nft_reject_with_tcp_reset_is_rejected_at_once() {
    if !netns_available() {
        return;
    }
    let mut pair = Pair::new();
    pair.serve("tcp:82", Some(8082));
    pair.server_input_rules("  tcp dport { 82, 8082 } reject with tcp reset");
    let (r, _) = pair.probe(&batch(
        3000,
        vec![
            to_server("tcp", ProbeKind::Tcp, 82),
            to_server("http", ProbeKind::Http, 8082),
        ],
    ));
    for id in ["tcp", "http"] {
        let res = assert_outcome(&r, id, Outcome::Rejected);
        assert!(res.detail.contains("ECONNREFUSED"), "{res:?}");
        assert!(res.elapsed_ms < 1000, "a reset is immediate: {res:?}");
    }
}

#[test]
fn nft_reject_with_icmp_unreachable_is_rejected_for_tcp_and_udp() {
    if !netns_available() {
        return;
    }
    let mut pair = Pair::new();
    pair.serve("tcp:83,udp:83,tcp:84,udp:84", None);
    pair.server_input_rules(
        "  tcp dport 83 reject with icmp type port-unreachable\n  \
         udp dport 83 reject with icmp type port-unreachable\n  \
         tcp dport 84 reject with icmp type admin-prohibited\n  \
         udp dport 84 reject with icmp type host-prohibited",
    );
    let (r, _) = pair.probe(&batch(
        3000,
        vec![
            to_server("tcp-port-unreachable", ProbeKind::Tcp, 83),
            to_server("udp-port-unreachable", ProbeKind::Udp, 83),
            to_server("tcp-admin-prohibited", ProbeKind::Tcp, 84),
            to_server("udp-host-prohibited", ProbeKind::Udp, 84),
        ],
    ));
    for (id, errno) in [
        ("tcp-port-unreachable", "ECONNREFUSED"),
        ("udp-port-unreachable", "ECONNREFUSED"),
        ("tcp-admin-prohibited", "EHOSTUNREACH"),
        ("udp-host-prohibited", "EHOSTUNREACH"),
    ] {
        let res = assert_outcome(&r, id, Outcome::Rejected);
        assert!(res.detail.contains(errno), "{id}: {res:?}");
        assert!(
            res.elapsed_ms < 1000,
            "{id}: ICMP errors are immediate: {res:?}"
        );
    }
}

#[test]
fn udp_silence_is_dropped_and_a_reply_without_our_nonce_is_not_connected() {
    if !netns_available() {
        return;
    }
    let mut pair = Pair::new();
    pair.serve("udp:80", None);
    // A bound socket that never answers: no reply and no ICMP, only silence.
    pair.udp_server(90, |_| None);
    // A socket that answers, but not with our nonce.
    pair.udp_server(91, |_| Some(b"netassay y/b\n".to_vec()));
    let (r, _) = pair.probe(&batch(
        700,
        vec![
            to_server("reply", ProbeKind::Udp, 80),
            to_server("silence", ProbeKind::Udp, 90),
            to_server("foreign", ProbeKind::Udp, 91),
            to_server("closed", ProbeKind::Udp, 92),
        ],
    ));
    assert_outcome(&r, "reply", Outcome::Connected);
    let silence = assert_outcome(&r, "silence", Outcome::Dropped);
    assert!(silence.elapsed_ms >= 700);
    assert!(silence.detail.contains("3 datagrams sent"), "{silence:?}");
    assert_outcome(&r, "foreign", Outcome::WrongPeer);
    assert_outcome(&r, "closed", Outcome::Rejected);
}

#[test]
fn sctp_is_unsupported_where_the_kernel_lacks_it_and_the_rest_keeps_serving() {
    if !netns_available() {
        return;
    }
    let kernel_has_sctp = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 132) };
    if kernel_has_sctp >= 0 {
        unsafe { libc::close(kernel_has_sctp) };
    }
    let mut pair = Pair::new();
    let ready = pair.serve("tcp:80,sctp:80,sctp:81", None);
    let (r, _) = pair.probe(&batch(
        1000,
        vec![
            to_server("sctp", ProbeKind::Sctp, 80),
            to_server("tcp", ProbeKind::Tcp, 80),
        ],
    ));
    assert_outcome(&r, "tcp", Outcome::Connected);
    assert_eq!(ready.serving_ports(Protocol::Tcp), vec![80]);
    if kernel_has_sctp >= 0 {
        assert_outcome(&r, "sctp", Outcome::Connected);
        assert!(!ready.is_unsupported(Protocol::Sctp));
    } else {
        let res = assert_outcome(&r, "sctp", Outcome::Unsupported);
        assert!(res.detail.contains("SCTP"), "{res:?}");
        assert!(ready.is_unsupported(Protocol::Sctp));
        let sctp: Vec<_> = ready
            .listeners
            .iter()
            .filter(|l| l.protocol == Protocol::Sctp)
            .collect();
        assert_eq!(sctp.len(), 2);
        for l in sctp {
            assert_eq!(l.state, ListenerState::Unsupported);
            assert!(
                l.reason.as_deref().unwrap_or("").contains("not available"),
                "{l:?}"
            );
        }
    }
}

#[test]
fn a_firewall_in_the_source_namespace_is_an_error_not_a_verdict() {
    if !netns_available() {
        return;
    }
    let mut pair = Pair::new();
    pair.serve("udp:85", None);
    // A local drop makes sendmsg fail with EPERM: the probe never reached the network.
    pair.client_output_rules("  udp dport 85 drop");
    let (r, _) = pair.probe(&batch(1000, vec![to_server("udp", ProbeKind::Udp, 85)]));
    let res = assert_outcome(&r, "udp", Outcome::Error);
    assert!(res.detail.contains("not permitted"), "{res:?}");
}

/// Answers A queries from `table`; NXDOMAIN for names not in it, NOERROR/empty for other types.
fn dns_answer(query: &[u8], table: &HashMap<&str, Vec<Ipv4Addr>>) -> Option<Vec<u8>> {
    let qdcount = u16::from_be_bytes([*query.get(4)?, *query.get(5)?]);
    if query.len() < 12 || qdcount != 1 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *query.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*query.get(i)?, *query.get(i + 1)?]);
    let question = query.get(12..i + 4)?;
    let (rcode, answers) = match table.get(labels.join(".").as_str()) {
        None => (3u16, Vec::new()),
        Some(ips) if qtype == 1 => (0, ips.clone()),
        Some(_) => (0, Vec::new()),
    };
    let flags =
        0x8000 | 0x0400 | (u16::from_be_bytes([query[2], query[3]]) & 0x0100) | 0x0080 | rcode;
    let mut out = Vec::new();
    out.extend_from_slice(&query[0..2]);
    out.extend_from_slice(&flags.to_be_bytes());
    for count in [1u16, answers.len() as u16, 0, 0] {
        out.extend_from_slice(&count.to_be_bytes());
    }
    out.extend_from_slice(question);
    for ip in answers {
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4]);
        out.extend_from_slice(&ip.octets());
    }
    Some(out)
}

#[test]
fn dns_resolves_through_resolv_conf_or_an_explicit_server_and_fails_precisely() {
    if !netns_available() {
        return;
    }
    let mut pair = Pair::new();
    pair.serve("tcp:80", None);
    let table: HashMap<&str, Vec<Ipv4Addr>> = HashMap::from([
        ("b.y.svc.test", vec![SERVER_IP.parse().unwrap()]),
        (
            "multi.test",
            vec![Ipv4Addr::new(10, 201, 0, 7), Ipv4Addr::new(10, 201, 0, 8)],
        ),
    ]);
    pair.udp_server(53, move |q| dns_answer(q, &table));
    pair.udp_server(5353, |_| None);
    pair.client_resolv_conf(&format!(
        "nameserver {SERVER_IP}\noptions timeout:1 attempts:1\n"
    ));

    let dns = |id: &str, name: &str| ProbeSpec::new(id, ProbeKind::Dns, name);
    let mut via_server = dns("explicit", "multi.test");
    via_server.server = Some(format!("{SERVER_IP}:53"));
    let mut silent_server = dns("silent-server", "multi.test");
    silent_server.server = Some(format!("{SERVER_IP}:5353"));
    let mut wrong_address = dns("wrong-address", "multi.test");
    wrong_address.expect_addresses = Some(vec!["10.201.0.9".parse().unwrap()]);
    let mut right_address = dns("right-address", "multi.test");
    right_address.expect_addresses = Some(vec!["10.201.0.8".parse().unwrap()]);
    let (r, _) = pair.probe(&batch(
        1500,
        vec![
            dns("resolv-conf", "b.y.svc.test"),
            dns("nxdomain", "missing.test"),
            via_server,
            silent_server,
            wrong_address,
            right_address,
            ProbeSpec::new("by-name", ProbeKind::Tcp, "b.y.svc.test:80").expecting(SERVER),
            ProbeSpec::new("unknown-name", ProbeKind::Tcp, "missing.test:80").expecting(SERVER),
        ],
    ));
    let resolved = assert_outcome(&r, "resolv-conf", Outcome::Connected);
    assert_eq!(
        resolved.addresses,
        vec![SERVER_IP.parse::<std::net::IpAddr>().unwrap()]
    );
    let nx = assert_outcome(&r, "nxdomain", Outcome::DnsFailed);
    assert!(nx.detail.contains("NXDOMAIN"), "{nx:?}");
    let explicit = assert_outcome(&r, "explicit", Outcome::Connected);
    assert_eq!(explicit.addresses.len(), 2);
    assert!(
        explicit.detail.contains("server 10.201.0.2:53"),
        "{explicit:?}"
    );
    assert_outcome(&r, "silent-server", Outcome::Dropped);
    assert_outcome(&r, "wrong-address", Outcome::WrongPeer);
    assert_outcome(&r, "right-address", Outcome::Connected);
    assert_eq!(
        assert_outcome(&r, "by-name", Outcome::Connected)
            .peer_identity
            .as_deref(),
        Some(SERVER)
    );
    assert_outcome(&r, "unknown-name", Outcome::DnsFailed);
}

#[test]
fn the_bench_style_round_of_dropped_and_connected_finishes_near_one_timeout() {
    if !netns_available() {
        return;
    }
    let mut pair = Pair::new();
    pair.serve("tcp:80", None);
    pair.server_input_rules("  tcp dport 81 drop");
    let probes = (0..200)
        .map(|i| to_server(&format!("p{i}"), ProbeKind::Tcp, 80 + (i % 2) as u16))
        .collect();
    let (results, summary) = pair.probe(&batch(800, probes));
    assert_eq!(summary.count(Outcome::Connected), 100);
    assert_eq!(summary.count(Outcome::Dropped), 100);
    // 200 probes fit in one concurrency window: the round costs one timeout, not several. Shown
    // by the agent's own clock, not by wall time (which includes spawning it and a loaded
    // machine's scheduling): every dropped probe started before any of them timed out, so all
    // 100 timeouts ran at once. Had they waited for slots, a later one would start only after
    // an earlier one's 800 ms were up.
    let dropped: Vec<(u64, u64)> = results
        .values()
        .filter(|r| r.outcome == Outcome::Dropped)
        .map(|r| {
            let start = r.start_ms.expect("the agent reports each probe's start");
            (start, start + r.elapsed_ms)
        })
        .collect();
    let last_start = dropped.iter().map(|(s, _)| *s).max().unwrap();
    let first_end = dropped.iter().map(|(_, e)| *e).min().unwrap();
    assert!(
        first_end >= 800,
        "a dropped probe waits out its timeout: {dropped:?}"
    );
    assert!(
        last_start < first_end,
        "the last dropped probe started at {last_start} ms, after the first timed out at \
         {first_end} ms: the round took more than one concurrency window"
    );
}
