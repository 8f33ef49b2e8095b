//! TCP and SCTP probes: connect, then read the peer's greeting when an identity is expected.

use super::dns::{resolve_target, Resolvers};
use super::finding::{judge_identity, Finding};
use crate::{classify, sock};
use netassay_core::probe::{parse_greeting, HostPort, Outcome, ProbeSpec};
use std::io;
use std::net::SocketAddr;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// Longest greeting read: `netassay ` and an identity of at most 507 bytes, with room to spare.
const MAX_GREETING: usize = 1024;

/// Which stream protocol to connect with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stream {
    Tcp,
    Sctp,
}

pub(super) async fn probe(
    resolvers: &Resolvers,
    spec: &ProbeSpec,
    target: &HostPort,
    stream: Stream,
    deadline: Instant,
    timeout_ms: u64,
) -> Finding {
    let addr = match resolve_target(resolvers, target, deadline).await {
        Ok(addr) => addr,
        Err(finding) => return finding,
    };
    let connected = match connect(stream, addr, deadline, timeout_ms).await {
        Ok(connected) => connected,
        Err(finding) => return finding,
    };
    let Some(expected) = spec.expect_identity.as_deref() else {
        return Finding::new(Outcome::Connected, format!("connected to {addr}"));
    };
    match tokio::time::timeout_at(deadline, read_greeting(connected)).await {
        Err(_) => Finding::new(
            Outcome::WrongPeer,
            format!("connected to {addr}, but no greeting within {timeout_ms} ms"),
        ),
        Ok(Err(e)) => Finding::new(
            Outcome::Error,
            format!(
                "connected to {addr}, then reading failed: {}",
                classify::describe(&e)
            ),
        ),
        Ok(Ok(bytes)) => judge_identity(Some(expected), parse_greeting(&bytes), addr),
    }
}

/// Connects to `addr` before `deadline`; a failure is already the probe's finding.
pub(super) async fn connect(
    stream: Stream,
    addr: SocketAddr,
    deadline: Instant,
    timeout_ms: u64,
) -> Result<TcpStream, Finding> {
    let socket = match open(stream, addr) {
        Ok(socket) => socket,
        Err(e) if sock::is_protocol_unsupported(&e) => {
            return Err(Finding::new(
                Outcome::Unsupported,
                format!("SCTP is not available in this kernel: {e}"),
            ))
        }
        Err(e) => {
            return Err(Finding::new(
                Outcome::Error,
                format!("cannot open a socket: {}", classify::describe(&e)),
            ))
        }
    };
    match tokio::time::timeout_at(deadline, socket.connect(addr)).await {
        Err(_) => Err(Finding::new(
            Outcome::Dropped,
            format!("no answer from {addr} within {timeout_ms} ms"),
        )),
        Ok(Err(e)) => {
            let (outcome, detail) = classify::reach_error(&e);
            Err(Finding::new(outcome, format!("{addr}: {detail}")))
        }
        Ok(Ok(connected)) => Ok(connected),
    }
}

/// A not-yet-connected socket of the right protocol and family.
fn open(stream: Stream, addr: SocketAddr) -> io::Result<TcpSocket> {
    match stream {
        Stream::Tcp if addr.is_ipv4() => TcpSocket::new_v4(),
        Stream::Tcp => TcpSocket::new_v6(),
        Stream::Sctp => {
            let socket = sock::sctp_socket(sock::domain_of(addr))?;
            socket.set_nonblocking(true)?;
            // A one-to-one SCTP socket connects, reads and closes like a TCP one, so tokio's
            // stream machinery drives it unchanged.
            Ok(TcpSocket::from_std_stream(socket.into()))
        }
    }
}

/// Reads until the first newline or the end of the stream.
async fn read_greeting(mut stream: TcpStream) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(64);
    let mut buf = [0u8; 256];
    loop {
        let n = stream.read(&mut buf).await?;
        let chunk = buf.get(..n).unwrap_or_default();
        bytes.extend_from_slice(chunk);
        if n == 0 || chunk.contains(&b'\n') || bytes.len() >= MAX_GREETING {
            return Ok(bytes);
        }
    }
}
