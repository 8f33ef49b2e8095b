//! `agent serve`: every listener of a probe pod in one process, each answering with the identity.
//!
//! TCP and SCTP: on accept, write `netassay <identity>\n` and close. UDP: reply to each datagram
//! with its payload followed by the same greeting. HTTP (optional): GET answers the greeting;
//! `GET /netassay/ready` answers the [`ReadyReport`]. See the module doc of [`crate`] for
//! how readiness and unsupported protocols are reported.

use super::sock::{self, accept_backoff, stopped};
use netassay_core::model::Protocol;
use netassay_core::probe::{
    greeting, udp_reply, validate_identity, ListenSpec, ListenerState, ListenerStatus, ReadyReport,
    READY_SCHEMA,
};
use socket2::{Socket, Type};
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Path of the readiness endpoint on the HTTP listener.
pub const READY_PATH: &str = "/netassay/ready";

/// Longest request head the HTTP listener reads.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// How long the HTTP listener waits for a request head.
const HTTP_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What to serve.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// `namespace/pod`, announced in every answer.
    pub identity: String,
    pub listeners: Vec<ListenSpec>,
    /// Port of the HTTP listener, if any.
    pub http_port: Option<u16>,
    /// Address to bind; `None` binds dual-stack `[::]`, or `0.0.0.0` where IPv6 is absent.
    pub address: Option<IpAddr>,
}

/// Why the agent cannot serve.
#[derive(Debug, Error)]
pub enum ServeError {
    #[error("identity: {0}")]
    Identity(String),
    #[error("cannot listen on {what} at {addr}: {source}")]
    Bind {
        what: String,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("cannot write the ready file {path}: {source}")]
    ReadyFile { path: String, source: io::Error },
}

/// Every listener, bound and ready to serve.
pub struct BoundAgent {
    identity: Arc<str>,
    report: ReadyReport,
    streams: Vec<TcpListener>,
    datagrams: Vec<UdpSocket>,
    http: Option<TcpListener>,
}

/// Binds every listener of `config`. Must run inside a tokio runtime.
///
/// A protocol the kernel lacks is recorded as unsupported in the report; any other failure is
/// an error.
pub fn bind_all(config: &ServeConfig) -> Result<BoundAgent, ServeError> {
    validate_identity(&config.identity).map_err(ServeError::Identity)?;
    let mut statuses = Vec::with_capacity(config.listeners.len());
    let mut streams = Vec::new();
    let mut datagrams = Vec::new();
    for spec in &config.listeners {
        let (ty, proto) = match spec.protocol {
            Protocol::Tcp => (Type::STREAM, None),
            Protocol::Udp => (Type::DGRAM, None),
            Protocol::Sctp => (
                Type::STREAM,
                Some(socket2::Protocol::from(sock::IPPROTO_SCTP)),
            ),
        };
        match bind_socket(ty, proto, config.address, spec.port) {
            Ok((socket, local)) => {
                statuses.push(ListenerStatus {
                    protocol: spec.protocol,
                    port: local.port(),
                    state: ListenerState::Serving,
                    reason: None,
                });
                if spec.protocol == Protocol::Udp {
                    datagrams
                        .push(UdpSocket::from_std(socket.into()).map_err(bind_error(spec, local))?);
                } else {
                    // One-to-one SCTP sockets accept and stream like TCP ones.
                    streams.push(
                        TcpListener::from_std(socket.into()).map_err(bind_error(spec, local))?,
                    );
                }
            }
            Err((err, _)) if sock::is_protocol_unsupported(&err) => {
                statuses.push(ListenerStatus {
                    protocol: spec.protocol,
                    port: spec.port,
                    state: ListenerState::Unsupported,
                    reason: Some(format!(
                        "{} is not available in this kernel: {err}",
                        spec.protocol
                    )),
                });
            }
            Err((err, addr)) => {
                return Err(ServeError::Bind {
                    what: spec.to_string(),
                    addr,
                    source: err,
                })
            }
        }
    }
    let mut http = None;
    let mut http_port = None;
    if let Some(port) = config.http_port {
        let (socket, local) =
            bind_socket(Type::STREAM, None, config.address, port).map_err(|(source, addr)| {
                ServeError::Bind {
                    what: format!("http:{port}"),
                    addr,
                    source,
                }
            })?;
        http_port = Some(local.port());
        http = Some(
            TcpListener::from_std(socket.into()).map_err(|source| ServeError::Bind {
                what: format!("http:{port}"),
                addr: local,
                source,
            })?,
        );
    }
    Ok(BoundAgent {
        identity: Arc::from(config.identity.as_str()),
        report: ReadyReport {
            schema: READY_SCHEMA.to_string(),
            identity: config.identity.clone(),
            listeners: statuses,
            http_port,
        },
        streams,
        datagrams,
        http,
    })
}

fn bind_error(spec: &ListenSpec, addr: SocketAddr) -> impl FnOnce(io::Error) -> ServeError + '_ {
    move |source| ServeError::Bind {
        what: spec.to_string(),
        addr,
        source,
    }
}

/// Opens and binds one socket; on failure, returns the error and the address tried.
fn bind_socket(
    ty: Type,
    proto: Option<socket2::Protocol>,
    address: Option<IpAddr>,
    port: u16,
) -> Result<(Socket, SocketAddr), (io::Error, SocketAddr)> {
    let Some(ip) = address else {
        let dual = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
        return match open_bound(ty, proto, dual) {
            Err((e, _)) if matches!(e.raw_os_error(), Some(libc::EAFNOSUPPORT)) => open_bound(
                ty,
                proto,
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
            ),
            other => other,
        };
    };
    open_bound(ty, proto, SocketAddr::new(ip, port))
}

fn open_bound(
    ty: Type,
    proto: Option<socket2::Protocol>,
    addr: SocketAddr,
) -> Result<(Socket, SocketAddr), (io::Error, SocketAddr)> {
    let attempt = || -> io::Result<(Socket, SocketAddr)> {
        let socket = Socket::new(sock::domain_of(addr), ty, proto)?;
        if addr.is_ipv6() && addr.ip().is_unspecified() {
            socket.set_only_v6(false)?;
        }
        if ty == Type::STREAM {
            socket.set_reuse_address(true)?;
        }
        socket.bind(&addr.into())?;
        if ty == Type::STREAM {
            socket.listen(1024)?;
        }
        socket.set_nonblocking(true)?;
        let local = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("bound socket has no IP address"))?;
        Ok((socket, local))
    };
    attempt().map_err(|e| (e, addr))
}

impl BoundAgent {
    /// What is serving and what is unsupported.
    pub fn report(&self) -> &ReadyReport {
        &self.report
    }

    /// Serves until `shutdown` completes, then stops accepting and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let greeting: Arc<[u8]> = Arc::from(greeting(&self.identity).into_bytes());
        let mut tasks = JoinSet::new();
        for listener in self.streams {
            tasks.spawn(serve_stream(listener, greeting.clone(), stop_rx.clone()));
        }
        for socket in self.datagrams {
            tasks.spawn(serve_datagrams(
                socket,
                self.identity.clone(),
                stop_rx.clone(),
            ));
        }
        if let Some(listener) = self.http {
            let ready: Arc<str> = Arc::from(self.report.to_json());
            tasks.spawn(serve_http(
                listener,
                greeting.clone(),
                ready,
                stop_rx.clone(),
            ));
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
    }
}

/// Writes the report to `path` atomically (a sibling file renamed over it).
pub fn write_ready_file(path: &Path, report: &ReadyReport) -> Result<(), ServeError> {
    super::watched::write_atomically(path, &format!("{}\n", report.to_json())).map_err(|source| {
        ServeError::ReadyFile {
            path: path.display().to_string(),
            source,
        }
    })
}

async fn serve_stream(listener: TcpListener, greeting: Arc<[u8]>, stop: watch::Receiver<bool>) {
    let stop = stopped(stop);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => greet(stream, greeting.clone()),
                Err(e) => accept_backoff(e, "netassay agent", "a stream listener").await,
            },
        }
    }
}

/// Sends the greeting and closes; the socket's send buffer is empty on accept, so the write
/// almost always completes at once and needs no task.
fn greet(stream: TcpStream, greeting: Arc<[u8]>) {
    match stream.try_write(&greeting) {
        Ok(n) if n == greeting.len() => drop(stream),
        Ok(n) => {
            tokio::spawn(finish_greeting(stream, greeting, n));
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            tokio::spawn(finish_greeting(stream, greeting, 0));
        }
        Err(_) => drop(stream),
    }
}

async fn finish_greeting(mut stream: TcpStream, greeting: Arc<[u8]>, written: usize) {
    let rest = greeting.get(written..).unwrap_or_default();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(rest)).await;
}

async fn serve_datagrams(socket: UdpSocket, identity: Arc<str>, stop: watch::Receiver<bool>) {
    let stop = stopped(stop);
    tokio::pin!(stop);
    let mut buf = vec![0u8; 2048];
    loop {
        tokio::select! {
            _ = &mut stop => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, peer)) => {
                    let reply = udp_reply(buf.get(..n).unwrap_or_default(), &identity);
                    // A lost reply is the prober's timeout to report, not ours.
                    let _ = socket.send_to(&reply, peer).await;
                }
                // Stray ICMP errors from earlier replies; nothing to do.
                Err(_) => continue,
            },
        }
    }
}

async fn serve_http(
    listener: TcpListener,
    greeting: Arc<[u8]>,
    ready: Arc<str>,
    stop: watch::Receiver<bool>,
) {
    let stop = stopped(stop);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(answer_http(stream, greeting.clone(), ready.clone()));
                }
                Err(e) => accept_backoff(e, "netassay agent", "the http listener").await,
            },
        }
    }
}

async fn answer_http(mut stream: TcpStream, greeting: Arc<[u8]>, ready: Arc<str>) {
    let mut head = Vec::with_capacity(1024);
    let read = tokio::time::timeout(HTTP_READ_TIMEOUT, async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST_HEAD {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(buf.get(..n).unwrap_or_default());
        }
        io::Result::Ok(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return;
    }
    let response = http_response(&head, &greeting, &ready);
    let _ = stream.write_all(&response).await;
    let _ = stream.shutdown().await;
}

/// The whole response to a request head: decided here, written by the caller.
fn http_response(head: &[u8], greeting: &[u8], ready: &str) -> Vec<u8> {
    let request_line = head
        .split(|b| *b == b'\n')
        .next()
        .and_then(|l| std::str::from_utf8(l).ok())
        .unwrap_or("");
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let text = "text/plain; charset=utf-8";
    let (status, content_type, body): (&str, &str, &[u8]) = match (method, path) {
        ("GET" | "HEAD", READY_PATH) => ("200 OK", "application/json", ready.as_bytes()),
        ("GET" | "HEAD", p) if !p.is_empty() => ("200 OK", text, greeting),
        ("", _) | (_, "") => ("400 Bad Request", text, b"bad request\n"),
        _ => ("405 Method Not Allowed", text, b"only GET and HEAD\n"),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         connection: close\r\n",
        body.len()
    )
    .into_bytes();
    if status.starts_with("405") {
        out.extend_from_slice(b"allow: GET, HEAD\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if method != "HEAD" {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn respond(head: &str) -> String {
        String::from_utf8(http_response(head.as_bytes(), b"netassay x/a\n", "{}")).unwrap()
    }

    #[test]
    fn get_answers_the_greeting() {
        let r = respond("GET / HTTP/1.1\r\nHost: app\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\nnetassay x/a\n"), "{r}");
        assert!(r.contains("content-length: 13\r\n"));
    }

    #[test]
    fn the_ready_path_answers_the_report() {
        let r = respond("GET /netassay/ready HTTP/1.1\r\n\r\n");
        assert!(
            r.contains("application/json") && r.ends_with("\r\n\r\n{}"),
            "{r}"
        );
    }

    #[test]
    fn head_has_no_body_and_other_methods_are_refused() {
        assert!(respond("HEAD / HTTP/1.1\r\n\r\n").ends_with("\r\n\r\n"));
        let r = respond("POST / HTTP/1.1\r\n\r\n");
        assert!(
            r.starts_with("HTTP/1.1 405") && r.contains("allow: GET, HEAD"),
            "{r}"
        );
        assert!(respond("\r\n\r\n").starts_with("HTTP/1.1 400"));
    }

    #[test]
    fn bind_all_reports_every_listener_and_the_actual_ports() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let config = ServeConfig {
                identity: "x/a".into(),
                listeners: ListenSpec::parse_list("tcp:0,udp:0,sctp:0").unwrap(),
                http_port: Some(0),
                address: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            };
            let agent = bind_all(&config).unwrap();
            let r = agent.report();
            assert_eq!(r.listeners.len(), 3);
            assert_eq!(r.listeners[0].state, ListenerState::Serving);
            assert_ne!(r.listeners[0].port, 0);
            assert_ne!(r.http_port, Some(0));
            let sctp = &r.listeners[2];
            if sctp.state == ListenerState::Unsupported {
                assert!(sctp.reason.as_deref().unwrap_or("").contains("SCTP"));
            }
        });
    }

    #[test]
    fn a_bad_identity_is_refused_before_binding() {
        let config = ServeConfig {
            identity: "x a".into(),
            listeners: ListenSpec::standard(),
            http_port: None,
            address: None,
        };
        assert!(matches!(bind_all(&config), Err(ServeError::Identity(_))));
    }
}
