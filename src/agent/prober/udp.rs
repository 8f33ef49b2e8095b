//! UDP probes: a nonce on a connected socket; the echo proves the path, ICMP errors refuse it.

use super::{judge_identity, Context, Finding};
use crate::agent::source_ports::{Lease, PORTS, REUSE_AFTER};
use crate::agent::{classify, sock};
use crate::probe::{parse_udp_reply, HostPort, Outcome, ProbeSpec, UdpReply};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// Datagrams sent per probe, spread over the first third of its timeout, so that one lost
/// datagram does not pass for a drop.
const SENDS: u32 = 3;

pub(super) async fn probe(
    ctx: &Context,
    spec: &ProbeSpec,
    target: &HostPort,
    started: Instant,
    deadline: Instant,
    timeout_ms: u64,
) -> Finding {
    let addr = match ctx.resolve_target(target, deadline).await {
        Ok(addr) => addr,
        Err(finding) => return finding,
    };
    let socket = match open_socket(ctx, addr.is_ipv6()).await {
        Ok(s) => s,
        Err(finding) => return finding,
    };
    if let Err(e) = sock::report_icmp_errors(&socket, addr.is_ipv6()) {
        return Finding::new(
            Outcome::Error,
            format!(
                "cannot enable ICMP error reports: {}",
                classify::describe(&e)
            ),
        );
    }
    if let Err(e) = socket.connect(addr).await {
        let (outcome, detail) = classify::reach_error(&e);
        return Finding::new(outcome, format!("{addr}: {detail}"));
    }

    let nonce = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let span = deadline.saturating_duration_since(started);
    let mut sent = 0;
    let mut next_send = Instant::now();
    let mut foreign = 0usize;
    let mut buf = vec![0u8; 2048];
    loop {
        if sent < SENDS && Instant::now() >= next_send {
            if let Err(e) = socket.send(nonce.as_bytes()).await {
                let (outcome, detail) = classify::reach_error(&e);
                return Finding::new(outcome, format!("{addr}: {detail}"));
            }
            sent += 1;
            next_send = started + span * sent / (2 * SENDS);
        }
        let wake = if sent < SENDS {
            next_send.min(deadline)
        } else {
            deadline
        };
        match tokio::time::timeout_at(wake, socket.recv(&mut buf)).await {
            Err(_) if Instant::now() >= deadline => break,
            Err(_) => continue,
            Ok(Err(e)) => {
                let (outcome, detail) = classify::reach_error(&e);
                return Finding::new(outcome, format!("{addr}: {detail}"));
            }
            Ok(Ok(n)) => {
                match parse_udp_reply(buf.get(..n).unwrap_or_default(), nonce.as_bytes()) {
                    UdpReply::Echo { identity } => {
                        return judge_identity(spec.expect_identity.as_deref(), identity, addr)
                    }
                    UdpReply::Foreign => foreign += 1,
                }
            }
        }
    }
    if foreign > 0 {
        Finding::new(
            Outcome::WrongPeer,
            format!("{addr} answered {foreign} datagram(s), none echoing our nonce"),
        )
    } else {
        Finding::new(
            Outcome::Dropped,
            format!("no reply from {addr} within {timeout_ms} ms ({sent} datagrams sent)"),
        )
    }
}

/// Ports taken by something else in the pod that a probe skips before it gives up.
const TAKEN_PORTS_SKIPPED: usize = 32;

/// A UDP socket on a source port no recent probe from this pod used (see
/// [`crate::agent::source_ports`]), or on one the kernel picks where the pod hands out none.
async fn open_socket(ctx: &Context, ipv6: bool) -> Result<UdpSocket, Finding> {
    let unspecified: IpAddr = if ipv6 {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    let cannot_open = |e: std::io::Error| {
        Finding::new(
            Outcome::Error,
            format!("cannot open a socket: {}", classify::describe(&e)),
        )
    };
    for _ in 0..TAKEN_PORTS_SKIPPED {
        let port = match ctx.source_ports.lease().await {
            Lease::Port(port) => port,
            Lease::Unavailable => {
                return UdpSocket::bind(SocketAddr::new(unspecified, 0))
                    .await
                    .map_err(cannot_open)
            }
            // A reused port could ride a flow admitted before the policy: no probe rather
            // than one that may lie.
            Lease::Exhausted => {
                return Err(Finding::new(
                    Outcome::Error,
                    format!(
                        "no fresh UDP source port: all of {}-{} were used within {} s, and a reused one could ride an older flow",
                        PORTS.start(),
                        PORTS.end(),
                        REUSE_AFTER.as_secs()
                    ),
                ))
            }
        };
        match UdpSocket::bind(SocketAddr::new(unspecified, port)).await {
            Ok(socket) => return Ok(socket),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(cannot_open(e)),
        }
    }
    Err(Finding::new(
        Outcome::Error,
        format!("no fresh UDP source port: {TAKEN_PORTS_SKIPPED} in a row were taken in this pod"),
    ))
}
