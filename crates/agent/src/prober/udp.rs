//! UDP probes: a nonce on a connected socket; the echo proves the path, ICMP errors refuse it.

use super::dns::{resolve_target, Resolvers};
use super::finding::{judge_identity, Finding};
use crate::source_ports::{Lease, SourcePortClient, REUSE_AFTER, TICK};
use crate::{classify, sock};
use netassay_core::probe::{parse_udp_reply, HostPort, Outcome, ProbeSpec, UdpReply};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// Datagrams sent per probe, spread over the first third of its timeout, so that one lost
/// datagram does not pass for a drop.
const SENDS: u32 = 3;

pub(super) async fn probe(
    resolvers: &Resolvers,
    source_ports: &SourcePortClient,
    spec: &ProbeSpec,
    target: &HostPort,
    started: Instant,
    deadline: Instant,
    timeout_ms: u64,
) -> Finding {
    let addr = match resolve_target(resolvers, target, deadline).await {
        Ok(addr) => addr,
        Err(finding) => return finding,
    };
    let asked = Instant::now();
    let socket = match open_socket(source_ports, addr).await {
        Ok(s) => s,
        Err(finding) => return finding,
    };
    // Waiting for a fresh source port is not the path's time: the probe's own timeout starts
    // once it has its socket, so a wait can never read as a drop, and its result is reported
    // from then, so it is never placed before the probe looked.
    let waited = asked.elapsed();
    let mut finding = exchange(
        socket,
        addr,
        spec,
        started + waited,
        deadline + waited,
        timeout_ms,
    )
    .await;
    finding.began_after = waited;
    finding
}

/// Sends the nonce from `socket` to `addr` and judges what comes back by `deadline`.
async fn exchange(
    socket: UdpSocket,
    addr: SocketAddr,
    spec: &ProbeSpec,
    started: Instant,
    deadline: Instant,
    timeout_ms: u64,
) -> Finding {
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

/// How long a probe waits for a fresh source port when its destination is asked for faster
/// than ports retire (more than [`crate::source_ports::LEAD`] probes at once towards one
/// destination).
const EXHAUSTED_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A UDP socket on a source port no recent probe from this network namespace used towards
/// `destination` (see [`crate::source_ports`]).
async fn open_socket(
    source_ports: &SourcePortClient,
    destination: SocketAddr,
) -> Result<UdpSocket, Finding> {
    let unspecified: IpAddr = if destination.is_ipv6() {
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
    let mut taken = 0;
    let waiting_since = Instant::now();
    while taken < TAKEN_PORTS_SKIPPED {
        let port = match source_ports.lease(destination).await {
            Lease::Port(port) => port,
            // Probes towards this destination came faster than ports retire: wait for the
            // clock, a while. A reused port could ride a flow admitted before the policy: no
            // probe rather than one that may lie.
            Lease::Exhausted if waiting_since.elapsed() < EXHAUSTED_WAIT => {
                tokio::time::sleep(TICK).await;
                continue;
            }
            Lease::Exhausted => {
                return Err(Finding::new(
                    Outcome::Error,
                    format!(
                        "no fresh UDP source port towards {destination} within {} s: probes to it \
                         came faster than ports can be retired ({} s before a port is used again)",
                        EXHAUSTED_WAIT.as_secs(),
                        REUSE_AFTER.as_secs()
                    ),
                ))
            }
            // Without the ledger a port could be one an earlier probe used: no probe.
            Lease::Unavailable(why) => {
                return Err(Finding::new(
                    Outcome::Error,
                    format!("no fresh UDP source port towards {destination}: {why}"),
                ))
            }
        };
        match sock::shared_udp_socket(SocketAddr::new(unspecified, port)) {
            Ok(socket) => return UdpSocket::from_std(socket).map_err(cannot_open),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => taken += 1,
            Err(e) => return Err(cannot_open(e)),
        }
    }
    Err(Finding::new(
        Outcome::Error,
        format!("no fresh UDP source port: {TAKEN_PORTS_SKIPPED} in a row were taken in this pod"),
    ))
}
