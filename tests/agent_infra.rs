//! The sandbox's infrastructure agents on loopback: `agent dns` (cluster DNS from a zone file)
//! and `agent gateway` (reverse proxy by Host from a routes file), in process and as the real
//! binary, including file changes picked up while serving and clean shutdown on SIGTERM.

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use netassay_agent::dns_server::{self, DnsConfig};
use netassay_agent::gateway::{self, GatewayConfig};
use netassay_agent::watched::write_atomically;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_netassay");

/// How long anything here may take to become true.
const PATIENCE: Duration = Duration::from_secs(10);

/// Polls `probe` until it gives a value or [`PATIENCE`] runs out.
fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------------
// DNS client (raw hickory-proto over std sockets)

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Over {
    Udp,
    Tcp,
}

fn dns_query(name: &str, rtype: RecordType, class: DNSClass) -> Message {
    let mut query = Query::query(Name::from_ascii(name).unwrap(), rtype);
    query.set_query_class(class);
    let mut m = Message::new();
    m.set_id(fastrand::u16(..))
        .set_recursion_desired(true)
        .add_query(query);
    m
}

/// Sends `query` to `server` and returns the answer.
fn exchange(server: SocketAddr, query: &Message, over: Over) -> Message {
    let bytes = query.to_vec().unwrap();
    let answer = match over {
        Over::Udp => {
            let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            socket.send_to(&bytes, server).unwrap();
            let mut buf = vec![0u8; 65535];
            let (n, from) = socket.recv_from(&mut buf).expect("a UDP answer");
            assert_eq!(from, server);
            buf.truncate(n);
            buf
        }
        Over::Tcp => {
            let mut stream = TcpStream::connect(server).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            tcp_exchange(&mut stream, &bytes)
        }
    };
    let answer = Message::from_vec(&answer).unwrap();
    assert_eq!(answer.id(), query.id());
    assert_eq!(answer.message_type(), MessageType::Response);
    answer
}

/// One length-prefixed query and answer on an open TCP connection.
fn tcp_exchange(stream: &mut TcpStream, query: &[u8]) -> Vec<u8> {
    let len = u16::try_from(query.len()).unwrap();
    stream.write_all(&len.to_be_bytes()).unwrap();
    stream.write_all(query).unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).unwrap();
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut answer).unwrap();
    answer
}

fn ask(server: SocketAddr, name: &str, rtype: RecordType, over: Over) -> Message {
    exchange(server, &dns_query(name, rtype, DNSClass::IN), over)
}

fn a(ip: [u8; 4]) -> RData {
    RData::A(A::new(ip[0], ip[1], ip[2], ip[3]))
}

fn answers(m: &Message) -> Vec<RData> {
    m.answers().iter().map(|r| r.data().clone()).collect()
}

// ---------------------------------------------------------------------------------------------
// In-process servers

/// A tokio runtime serving something until dropped (then stopped and awaited).
struct InProcess {
    rt: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
}

impl InProcess {
    fn new() -> InProcess {
        InProcess {
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()
                .unwrap(),
            stop: None,
            served: None,
        }
    }

    fn stop_signal(&mut self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.stop = Some(tx);
        async move {
            let _ = rx.await;
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            let _ = self.rt.block_on(served);
        }
    }
}

fn start_dns(zone: &Path) -> (InProcess, SocketAddr) {
    let mut host = InProcess::new();
    let config = DnsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        zone: zone.to_path_buf(),
        identity: Some("kube-system/coredns".into()),
    };
    let server = host.rt.block_on(dns_server::bind(&config)).unwrap();
    let addr = server.local_addr();
    let stop = host.stop_signal();
    host.served = Some(host.rt.spawn(server.run(stop)));
    (host, addr)
}

const ZONE: &str = "\
# rendered by the sandbox
web.shop.svc.cluster.local 10.96.0.7
kubernetes.default.svc.cluster.local. 10.96.0.1
Internet.Example.ORG 203.0.113.10   # the internet
dual.example.org 203.0.113.30
dual.example.org 2001:db8::30
v6only.example.org 2001:db8::31
";

#[test]
fn dns_answers_a_aaaa_nodata_and_nxdomain_over_udp_and_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("zone");
    std::fs::write(&zone, ZONE).unwrap();
    let (_host, server) = start_dns(&zone);
    for over in [Over::Udp, Over::Tcp] {
        let m = ask(server, "web.shop.svc.cluster.local.", RecordType::A, over);
        assert_eq!(m.response_code(), ResponseCode::NoError, "{over:?}");
        assert!(m.authoritative() && m.recursion_desired(), "{over:?}");
        assert_eq!(
            m.queries()[0].name().to_ascii(),
            "web.shop.svc.cluster.local."
        );
        assert_eq!(answers(&m), [a([10, 96, 0, 7])], "{over:?}");

        // Case-insensitive, as a client using 0x20 randomisation asks; the question's case
        // comes back as asked.
        let m = ask(server, "INTERNET.example.org.", RecordType::A, over);
        assert_eq!(answers(&m), [a([203, 0, 113, 10])], "{over:?}");
        assert_eq!(m.answers()[0].name().to_ascii(), "INTERNET.example.org.");

        let m = ask(server, "dual.example.org.", RecordType::AAAA, over);
        assert_eq!(
            answers(&m),
            [RData::AAAA(AAAA("2001:db8::30".parse().unwrap()))],
            "{over:?}"
        );

        // NODATA: the name exists, the type does not.
        let m = ask(server, "v6only.example.org.", RecordType::A, over);
        assert_eq!(m.response_code(), ResponseCode::NoError, "{over:?}");
        assert!(m.answers().is_empty(), "{over:?}");

        // Unknown, including the search-path expansions a pod tries first.
        for name in [
            "nothing.example.org.",
            "internet.example.org.shop.svc.cluster.local.",
        ] {
            let m = ask(server, name, RecordType::A, over);
            assert_eq!(m.response_code(), ResponseCode::NXDomain, "{name} {over:?}");
            assert!(
                m.authoritative() && m.answers().is_empty(),
                "{name} {over:?}"
            );
        }

        let id = exchange(
            server,
            &dns_query("id.server.", RecordType::TXT, DNSClass::CH),
            over,
        );
        assert_eq!(
            answers(&id),
            [RData::TXT(TXT::new(vec!["kube-system/coredns".into()]))]
        );
    }
}

#[test]
fn dns_over_tcp_answers_several_queries_on_one_connection_and_formerr_on_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("zone");
    std::fs::write(&zone, ZONE).unwrap();
    let (_host, server) = start_dns(&zone);
    let mut stream = TcpStream::connect(server).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for name in ["web.shop.svc.cluster.local.", "nothing.example.org."] {
        let q = dns_query(name, RecordType::A, DNSClass::IN);
        let m = Message::from_vec(&tcp_exchange(&mut stream, &q.to_vec().unwrap())).unwrap();
        assert_eq!(m.id(), q.id());
    }
    // A header announcing a question that is not there.
    let garbage = [0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xff];
    let m = Message::from_vec(&tcp_exchange(&mut stream, &garbage)).unwrap();
    assert_eq!((m.id(), m.response_code()), (0xbeef, ResponseCode::FormErr));

    // Over UDP as well; and a datagram shorter than a header gets no answer, which the next
    // query on the same socket proves by getting its own.
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket.send_to(&garbage, server).unwrap();
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).unwrap();
    let m = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(m.response_code(), ResponseCode::FormErr);
    socket.send_to(&[1, 2, 3], server).unwrap();
    let q = dns_query("web.shop.svc.cluster.local.", RecordType::A, DNSClass::IN);
    socket.send_to(&q.to_vec().unwrap(), server).unwrap();
    let n = socket.recv(&mut buf).unwrap();
    assert_eq!(Message::from_vec(&buf[..n]).unwrap().id(), q.id());
}

#[test]
fn dns_answers_the_new_zone_once_the_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("zone");
    std::fs::write(&zone, "web.shop.svc.cluster.local 10.96.0.7\n").unwrap();
    let (_host, server) = start_dns(&zone);
    let name = "web.shop.svc.cluster.local.";
    assert_eq!(
        answers(&ask(server, name, RecordType::A, Over::Udp)),
        [a([10, 96, 0, 7])]
    );

    // Rewritten in place, same size: the stamp may not change, the answer must.
    std::fs::write(&zone, "web.shop.svc.cluster.local 10.96.0.8\n").unwrap();
    eventually("the in-place rewrite answered", || {
        (answers(&ask(server, name, RecordType::A, Over::Udp)) == [a([10, 96, 0, 8])]).then_some(())
    });

    // Renamed over, as the sandbox renders it; a new name appears, the old one goes.
    write_atomically(
        &zone,
        "db.shop.svc.cluster.local 10.96.0.9\nbad line here\n",
    )
    .unwrap();
    eventually("the renamed zone answered", || {
        let m = ask(
            server,
            "db.shop.svc.cluster.local.",
            RecordType::A,
            Over::Tcp,
        );
        (answers(&m) == [a([10, 96, 0, 9])]).then_some(())
    });
    let gone = ask(server, name, RecordType::A, Over::Udp);
    assert_eq!(gone.response_code(), ResponseCode::NXDomain);

    // A zone file that disappears keeps the last one answering.
    std::fs::remove_file(&zone).unwrap();
    let m = ask(
        server,
        "db.shop.svc.cluster.local.",
        RecordType::A,
        Over::Udp,
    );
    assert_eq!(answers(&m), [a([10, 96, 0, 9])]);
}

#[test]
fn dns_answers_many_concurrent_clients() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("zone");
    std::fs::write(&zone, ZONE).unwrap();
    let (_host, server) = start_dns(&zone);
    let clients: Vec<_> = (0..16)
        .map(|i| {
            std::thread::spawn(move || {
                let over = if i % 4 == 0 { Over::Tcp } else { Over::Udp };
                for _ in 0..50 {
                    let m = ask(server, "web.shop.svc.cluster.local.", RecordType::A, over);
                    assert_eq!(answers(&m), [a([10, 96, 0, 7])]);
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP client (raw, so the Host header is exactly what the test says)

#[derive(Debug)]
struct HttpAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl HttpAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` with the given Host header (none when `None`), read to the end.
fn http_get(addr: SocketAddr, host: Option<&str>, path: &str) -> HttpAnswer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let host_line = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\n{host_line}Connection: close\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut raw = Vec::new();
    reader.read_to_end(&mut raw).unwrap();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(&raw) } else { raw };
    HttpAnswer {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = std::str::from_utf8(&raw[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        raw = &raw[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// A backend that names itself in a header and its body, and reports the Host and
/// x-forwarded-for it received; `/teapot` answers 418.
async fn start_backend(name: &'static str) -> SocketAddr {
    use axum::http::{HeaderMap, StatusCode, Uri};
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| async move {
        let got = |h: &str| {
            headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string()
        };
        let status = if uri.path() == "/teapot" {
            StatusCode::IM_A_TEAPOT
        } else {
            StatusCode::OK
        };
        (
            status,
            [("x-backend", name), ("keep-alive", "timeout=7")],
            format!(
                "{name} host={} xff={} path={uri}\n",
                got("host"),
                got("x-forwarded-for")
            ),
        )
    });
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A port with nothing listening on it (bound, then closed).
fn dead_port() -> SocketAddr {
    let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    l.local_addr().unwrap()
}

fn start_gateway(host: &mut InProcess, routes: &Path) -> SocketAddr {
    let config = GatewayConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        routes: routes.to_path_buf(),
        identity: "tre-gateway/gateway".into(),
    };
    let gateway = host.rt.block_on(gateway::bind(&config)).unwrap();
    let addr = gateway.local_addr();
    let stop = host.stop_signal();
    host.served = Some(host.rt.spawn(async move {
        gateway.run(stop).await.unwrap();
    }));
    addr
}

#[test]
fn gateway_routes_by_host_and_answers_404_and_502_itself() {
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes");
    let mut host = InProcess::new();
    let alpha = host.rt.block_on(start_backend("alpha"));
    let beta = host.rt.block_on(start_backend("beta"));
    let dead = dead_port();
    std::fs::write(
        &routes,
        format!(
            "# rendered by the sandbox\n\
             alpha.example.org {alpha}\n\
             Beta.Example.org. {beta}   # from an Ingress\n\
             dead.example.org {dead}\n\
             not a route\n"
        ),
    )
    .unwrap();
    let gw = start_gateway(&mut host, &routes);

    let r = http_get(gw, Some("alpha.example.org"), "/a?b=c");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        "alpha host=alpha.example.org xff=192.0.2.1, 127.0.0.1 path=/a?b=c\n"
    );
    assert_eq!(r.header("x-backend"), Some("alpha"));
    assert_eq!(r.header("x-netassay-gateway"), Some("tre-gateway/gateway"));
    assert_eq!(r.header("keep-alive"), None, "hop-by-hop header relayed");

    // Port stripped, case folded, trailing dot ignored; the Host reaches the backend as sent.
    let r = http_get(gw, Some("BETA.example.org.:8080"), "/teapot");
    assert_eq!(r.status, 418, "{r:?}");
    assert!(
        r.body.starts_with("beta host=BETA.example.org.:8080 "),
        "{r:?}"
    );
    assert_eq!(r.header("x-netassay-gateway"), Some("tre-gateway/gateway"));

    let r = http_get(gw, Some("unknown.example.org"), "/");
    assert_eq!(r.status, 404, "{r:?}");
    assert!(
        r.body.contains("no route for host unknown.example.org"),
        "{r:?}"
    );
    assert_eq!(r.header("x-netassay-gateway"), Some("tre-gateway/gateway"));

    let r = http_get(gw, Some("dead.example.org"), "/");
    assert_eq!(r.status, 502, "{r:?}");
    assert!(
        r.body.contains(&format!("backend {dead} unreachable")),
        "{r:?}"
    );
    assert_eq!(r.header("x-netassay-gateway"), Some("tre-gateway/gateway"));

    let r = http_get(gw, None, "/");
    assert_eq!(r.status, 400, "{r:?}");
}

#[test]
fn gateway_answers_502_when_the_backend_does_not_answer_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes");
    // Accepts (the kernel completes the handshake) but never answers.
    let silent = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    std::fs::write(
        &routes,
        format!("silent.example.org {}\n", silent.local_addr().unwrap()),
    )
    .unwrap();
    let mut host = InProcess::new();
    let gw = start_gateway(&mut host, &routes);
    let started = Instant::now();
    let r = http_get(gw, Some("silent.example.org"), "/");
    let waited = started.elapsed();
    assert_eq!(r.status, 502, "{r:?}");
    assert!(r.body.contains("did not answer within 5 s"), "{r:?}");
    assert!(
        waited >= Duration::from_millis(4900) && waited < Duration::from_secs(9),
        "{waited:?}"
    );
}

#[test]
fn gateway_follows_the_routes_file_and_spreads_a_host_over_its_backends() {
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes");
    let mut host = InProcess::new();
    let alpha = host.rt.block_on(start_backend("alpha"));
    let beta = host.rt.block_on(start_backend("beta"));
    std::fs::write(&routes, format!("web.example.org {alpha}\n")).unwrap();
    let gw = start_gateway(&mut host, &routes);
    let backend_of = |host: &str| {
        let r = http_get(gw, Some(host), "/");
        (r.status == 200).then(|| r.header("x-backend").unwrap_or("").to_string())
    };
    assert_eq!(backend_of("web.example.org").as_deref(), Some("alpha"));
    assert_eq!(http_get(gw, Some("new.example.org"), "/").status, 404);

    write_atomically(
        &routes,
        format!("web.example.org {beta}\nnew.example.org {alpha}\n").as_str(),
    )
    .unwrap();
    eventually("the new routes", || {
        (backend_of("web.example.org").as_deref() == Some("beta")).then_some(())
    });
    assert_eq!(backend_of("new.example.org").as_deref(), Some("alpha"));

    // Two backends for one host: both get requests.
    write_atomically(
        &routes,
        format!("web.example.org {alpha}\nweb.example.org {beta}\n").as_str(),
    )
    .unwrap();
    let mut seen: Vec<String> = (0..4)
        .filter_map(|_| backend_of("web.example.org"))
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["alpha", "beta"]);
}

// ---------------------------------------------------------------------------------------------
// The binary

/// A netassay agent process, SIGTERMed when dropped.
struct Agent {
    child: Option<Child>,
    ready: PathBuf,
}

impl Agent {
    fn spawn(args: &[&str], ready: PathBuf) -> Agent {
        let child = Command::new(BIN)
            .args(args)
            .arg("--ready-file")
            .arg(&ready)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Agent {
            child: Some(child),
            ready,
        }
    }

    /// The address in the ready file, once written.
    fn wait_ready(&mut self) -> SocketAddr {
        let child = self.child.as_mut().unwrap();
        let ready = &self.ready;
        eventually("the ready file", || {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("agent exited before it was ready: {status}");
            }
            let text = std::fs::read_to_string(ready).ok()?;
            Some(text.trim().parse().unwrap())
        })
    }

    /// Sends SIGTERM; returns the exit and stderr.
    fn terminate(&mut self) -> Output {
        let child = self.child.take().unwrap();
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
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

fn assert_clean_stop(out: &Output, ready: &Path) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    assert!(!ready.exists(), "the ready file outlived the agent");
    stderr
}

#[test]
fn the_dns_binary_serves_udp_and_tcp_warns_of_bad_lines_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("zone");
    std::fs::write(
        &zone,
        "# zone\nweb.shop.svc.cluster.local 10.96.0.7\nweb.shop 10.96.0.300\n",
    )
    .unwrap();
    let ready = dir.path().join("ready");
    let zone_arg = zone.to_str().unwrap();
    let mut agent = Agent::spawn(
        &[
            "agent",
            "dns",
            "--listen",
            "127.0.0.1:0",
            "--zone",
            zone_arg,
            "--identity",
            "kube-system/coredns",
        ],
        ready.clone(),
    );
    let server = agent.wait_ready();
    for over in [Over::Udp, Over::Tcp] {
        let m = ask(server, "web.shop.svc.cluster.local.", RecordType::A, over);
        assert_eq!(answers(&m), [a([10, 96, 0, 7])], "{over:?}");
        let m = ask(server, "web.shop.", RecordType::A, over);
        assert_eq!(m.response_code(), ResponseCode::NXDomain, "{over:?}");
    }
    let stderr = assert_clean_stop(&agent.terminate(), &ready);
    assert!(stderr.contains(&format!("{zone_arg}:3: ")), "{stderr}");
    assert!(stderr.contains("line skipped"), "{stderr}");
}

#[test]
fn the_probers_dns_probe_resolves_through_the_dns_binary() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("zone");
    std::fs::write(&zone, ZONE).unwrap();
    let ready = dir.path().join("ready");
    let mut agent = Agent::spawn(
        &[
            "agent",
            "dns",
            "--listen",
            "127.0.0.1:0",
            "--zone",
            zone.to_str().unwrap(),
        ],
        ready.clone(),
    );
    let server = agent.wait_ready();
    let batch = format!(
        r#"{{"schema":"netassay.probe/v1","timeout_ms":3000,"probes":[
        {{"id":"hit","kind":"dns","target":"internet.example.org","server":"{server}","expect_addresses":["203.0.113.10"]}},
        {{"id":"miss","kind":"dns","target":"nothing.example.org","server":"{server}"}}]}}"#
    )
    .replace('\n', "");
    let results = run_probe_batch(&batch);
    assert_eq!(results["hit"]["outcome"], "connected", "{results:?}");
    assert_eq!(results["miss"]["outcome"], "dns-failed", "{results:?}");
    assert_clean_stop(&agent.terminate(), &ready);
}

/// Runs `agent probe` on one batch line; returns the results by probe id.
fn run_probe_batch(batch: &str) -> std::collections::HashMap<String, serde_json::Value> {
    let mut child = Command::new(BIN)
        .args(["agent", "probe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{batch}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|v| Some((v.get("id")?.as_str()?.to_string(), v)))
        .collect()
}

#[test]
fn the_gateway_binary_relays_to_an_agent_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // The backend: a probe pod's `agent serve` with HTTP, as in the sandbox.
    let backend_ready = dir.path().join("backend-ready");
    let mut backend = Agent::spawn(
        &[
            "agent",
            "serve",
            "--identity",
            "project-1/web",
            "--address",
            "127.0.0.1",
            "--listen",
            "tcp:0",
            "--http",
            "0",
        ],
        backend_ready.clone(),
    );
    let http_port = eventually("the backend's ready file", || {
        let text = std::fs::read_to_string(&backend_ready).ok()?;
        let report: serde_json::Value = serde_json::from_str(&text).unwrap();
        Some(u16::try_from(report["http_port"].as_u64().unwrap()).unwrap())
    });

    let routes = dir.path().join("routes");
    std::fs::write(
        &routes,
        format!("web.project-1.example.org 127.0.0.1:{http_port}\n"),
    )
    .unwrap();
    let ready = dir.path().join("ready");
    let mut gateway = Agent::spawn(
        &[
            "agent",
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--routes",
            routes.to_str().unwrap(),
            "--identity",
            "tre-gateway/gateway",
        ],
        ready.clone(),
    );
    let gw = gateway.wait_ready();

    let r = http_get(gw, Some("web.project-1.example.org"), "/");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "netassay project-1/web\n");
    assert_eq!(r.header("x-netassay-gateway"), Some("tre-gateway/gateway"));
    assert_eq!(http_get(gw, Some("other.example.org"), "/").status, 404);

    // The harness's own http probe, from "outside", through the gateway to the pod.
    let batch = format!(
        r#"{{"schema":"netassay.probe/v1","timeout_ms":3000,"probes":[{{"id":"in","kind":"http","target":"http://{gw}/","host":"web.project-1.example.org","expect_identity":"project-1/web"}}]}}"#
    );
    let results = run_probe_batch(&batch);
    assert_eq!(results["in"]["outcome"], "connected", "{results:?}");

    assert_clean_stop(&gateway.terminate(), &ready);
    assert_clean_stop(&backend.terminate(), &backend_ready);
}

#[test]
fn the_binaries_refuse_an_unreadable_file_with_exit_2_and_teach_in_help() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent");
    for (args, file_kind) in [
        (
            vec!["agent", "dns", "--listen", "127.0.0.1:0", "--zone"],
            "zone file",
        ),
        (
            vec![
                "agent",
                "gateway",
                "--listen",
                "127.0.0.1:0",
                "--identity",
                "tre-gateway/gateway",
                "--routes",
            ],
            "routes file",
        ),
    ] {
        let out = Command::new(BIN).args(&args).arg(&absent).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("cannot read the {file_kind} {}", absent.display())),
            "{stderr}"
        );
    }
    for (command, teaches) in [("dns", "NXDOMAIN"), ("gateway", "x-netassay-gateway")] {
        let out = Command::new(BIN)
            .args(["agent", command, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{help}");
        assert!(help.contains(teaches) && help.contains("Example"), "{help}");
    }
}
