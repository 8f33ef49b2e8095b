//! Fresh UDP source ports, so that every UDP probe is a new flow.
//!
//! Conntrack remembers a UDP flow by its addresses and ports for as long as datagrams keep it
//! alive (Linux: 30 s unanswered, 120 s once answered; Cilium: 60 s), and enforcers that accept
//! established flows before their policy chains (iptables and nftables dataplanes, our sandbox)
//! let through a datagram that reuses the tuple of a flow admitted before a deny policy:
//! Kubernetes leaves the fate of existing connections to the implementation. With the kernel
//! choosing a random source port for each probe, a probe after a policy change now and then
//! drew the port of such a flow and read `connected` where the policy denies (once in eight
//! core+extended runs of `bench chaos`, in a clean run).
//!
//! So `agent serve`, which lives as long as the pod, hands out source ports over an abstract
//! Unix socket. Abstract names belong to a network namespace, which all containers of a pod
//! share, so the `agent probe` the harness execs in the pod reaches it; a port is not handed out
//! again until [`REUSE_AFTER`] has passed. The ports come from below Linux's default ephemeral
//! range, so ports the kernel picks itself (the resolver's) do not meet them.
//!
//! Where nothing answers on the name (no `agent serve` in this namespace, or it restarted and
//! lost its memory), the prober lets the kernel choose, as before: the odds of meeting an old
//! flow are then those of a random pick among ~28 000 ports.
//!
//! Wire format: the prober writes `\n` for each port it wants; the server answers each with the
//! port in decimal and `\n`, or `-\n` when every port was handed out within [`REUSE_AFTER`].

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// The abstract socket name `agent serve` answers on and `agent probe` asks.
pub const LEASE_NAME: &str = "netassay-udp-source-ports";

/// The ports handed out: below Linux's default ephemeral range (32768-60999).
pub const PORTS: std::ops::RangeInclusive<u16> = 10000..=32767;

/// How long a port stays out of use after it was handed out: the longest UDP conntrack timeout
/// in common use (Linux's 120 s for an answered flow) with room for the probe itself and for
/// clusters that lengthen it.
pub const REUSE_AFTER: Duration = Duration::from_secs(300);

/// How long the prober waits for an answer before it lets the kernel choose.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// Which ports were handed out, and when.
#[derive(Debug)]
pub struct SourcePorts {
    first: u16,
    handed_out: Vec<Option<Instant>>,
    reuse_after: Duration,
}

impl SourcePorts {
    pub fn new(ports: std::ops::RangeInclusive<u16>, reuse_after: Duration) -> Self {
        let count = usize::from(*ports.end()).saturating_sub(usize::from(*ports.start())) + 1;
        SourcePorts {
            first: *ports.start(),
            handed_out: vec![None; count],
            reuse_after,
        }
    }

    fn free(&self, index: usize, now: Instant) -> bool {
        match self.handed_out[index] {
            None => true,
            Some(at) => now.saturating_duration_since(at) >= self.reuse_after,
        }
    }

    /// A port not handed out within `reuse_after` of `now`, now marked as handed out; `None`
    /// when there is none. Picked at random, so a server that restarted and forgot is no
    /// likelier than the kernel to pick a port its predecessor handed out.
    pub fn lease(&mut self, now: Instant) -> Option<u16> {
        let count = self.handed_out.len();
        if count == 0 {
            return None;
        }
        let start = fastrand::usize(..count);
        let index = (0..16)
            .map(|_| fastrand::usize(..count))
            .chain((0..count).map(|k| (start + k) % count))
            .find(|&i| self.free(i, now))?;
        self.handed_out[index] = Some(now);
        u16::try_from(index)
            .ok()
            .and_then(|i| self.first.checked_add(i))
    }
}

/// Binds the abstract socket `name`. `None` when another process in this network namespace
/// already answers on it (then that one hands out the ports).
pub fn bind(name: &str) -> io::Result<Option<UnixListener>> {
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    match std::os::unix::net::UnixListener::bind_addr(&addr) {
        Ok(listener) => {
            listener.set_nonblocking(true)?;
            Ok(Some(UnixListener::from_std(listener)?))
        }
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Ok(None),
        Err(e) => Err(e),
    }
}

/// Answers every prober that connects until `stop` is raised.
pub async fn serve(listener: UnixListener, stop: watch::Receiver<bool>) {
    let ports = Arc::new(Mutex::new(SourcePorts::new(PORTS, REUSE_AFTER)));
    let stopped = super::sock::stopped(stop);
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(answer(stream, ports.clone()));
                }
                Err(e) => super::sock::accept_backoff(e, "netassay agent serve", "the source-port socket").await,
            },
        }
    }
}

async fn answer(stream: UnixStream, ports: Arc<Mutex<SourcePorts>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(_)) = lines.next_line().await {
        let port = match ports.lock() {
            Ok(mut ports) => ports.lease(Instant::now()),
            Err(_) => None,
        };
        let answer = match port {
            Some(port) => format!("{port}\n"),
            None => "-\n".to_string(),
        };
        if write.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// What the prober got when it asked for a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    Port(u16),
    /// The server answered, but every port was handed out within [`REUSE_AFTER`].
    Exhausted,
    /// Nobody answers on the name (or stopped answering): let the kernel choose.
    Unavailable,
}

/// The prober's side: one connection per process, opened on first use, shared by every probe.
pub struct SourcePortClient {
    name: String,
    connection: tokio::sync::Mutex<Connection>,
}

enum Connection {
    NotTried,
    Open(BufReader<UnixStream>),
    Unavailable,
}

impl SourcePortClient {
    pub fn new(name: &str) -> Self {
        SourcePortClient {
            name: name.to_string(),
            connection: tokio::sync::Mutex::new(Connection::NotTried),
        }
    }

    /// A fresh source port, or why there is none.
    pub async fn lease(&self) -> Lease {
        let mut connection = self.connection.lock().await;
        if matches!(*connection, Connection::NotTried) {
            *connection = match connect(&self.name) {
                Ok(stream) => Connection::Open(BufReader::new(stream)),
                Err(_) => Connection::Unavailable,
            };
        }
        let Connection::Open(stream) = &mut *connection else {
            return Lease::Unavailable;
        };
        match tokio::time::timeout(ASK_TIMEOUT, ask(stream)).await {
            Ok(Ok(lease)) => lease,
            // The server is gone (its pod restarted) or confused: stop asking it.
            Ok(Err(_)) | Err(_) => {
                *connection = Connection::Unavailable;
                Lease::Unavailable
            }
        }
    }
}

fn connect(name: &str) -> io::Result<UnixStream> {
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    let stream = std::os::unix::net::UnixStream::connect_addr(&addr)?;
    stream.set_nonblocking(true)?;
    UnixStream::from_std(stream)
}

async fn ask(stream: &mut BufReader<UnixStream>) -> io::Result<Lease> {
    stream.get_mut().write_all(b"\n").await?;
    let mut answer = String::new();
    if stream.read_line(&mut answer).await? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    match answer.trim_end() {
        "-" => Ok(Lease::Exhausted),
        port => port
            .parse()
            .map(Lease::Port)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not a port")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_port_is_handed_out_twice_within_the_reuse_time() {
        let now = Instant::now();
        let mut ports = SourcePorts::new(40000..=40099, Duration::from_secs(300));
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..100 {
            let port = ports.lease(now).expect("a free port");
            assert!((40000..=40099).contains(&port));
            assert!(seen.insert(port), "{port} handed out twice");
        }
        assert_eq!(ports.lease(now + Duration::from_secs(299)), None);
        let again = ports
            .lease(now + Duration::from_secs(300))
            .expect("free again");
        assert!(seen.contains(&again));
    }

    #[test]
    fn a_port_handed_out_later_is_held_from_then() {
        let start = Instant::now();
        let mut ports = SourcePorts::new(40000..=40001, Duration::from_secs(10));
        let a = ports.lease(start).unwrap();
        let b = ports.lease(start + Duration::from_secs(5)).unwrap();
        assert_ne!(a, b);
        // At 12 s only the first is free again.
        assert_eq!(ports.lease(start + Duration::from_secs(12)), Some(a));
        assert_eq!(ports.lease(start + Duration::from_secs(12)), None);
    }

    #[test]
    fn the_whole_range_is_usable() {
        let mut ports = SourcePorts::new(PORTS, REUSE_AFTER);
        let now = Instant::now();
        let count = PORTS.count();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..count {
            seen.insert(ports.lease(now).unwrap());
        }
        assert_eq!(seen.len(), count);
        assert_eq!(ports.lease(now), None);
    }

    fn unique_name(tag: &str) -> String {
        format!(
            "netassay-test-{tag}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        )
    }

    #[tokio::test]
    async fn a_prober_gets_fresh_ports_from_the_server_and_none_once_it_is_gone() {
        let name = unique_name("lease");
        let listener = bind(&name).unwrap().expect("name free");
        assert!(bind(&name).unwrap().is_none(), "a second server defers");
        let (stop_tx, stop_rx) = watch::channel(false);
        let server = tokio::spawn(serve(listener, stop_rx));

        let client = SourcePortClient::new(&name);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            match client.lease().await {
                Lease::Port(port) => {
                    assert!(PORTS.contains(&port));
                    assert!(seen.insert(port), "{port} handed out twice");
                }
                other => panic!("expected a port, got {other:?}"),
            }
        }
        // A second prober process shares the server's memory.
        let other = SourcePortClient::new(&name);
        match other.lease().await {
            Lease::Port(port) => assert!(!seen.contains(&port)),
            lease => panic!("expected a port, got {lease:?}"),
        }

        let _ = stop_tx.send(true);
        server.await.unwrap();
        assert_eq!(
            SourcePortClient::new(&name).lease().await,
            Lease::Unavailable
        );
    }

    #[tokio::test]
    async fn without_a_server_the_kernel_chooses() {
        let client = SourcePortClient::new(&unique_name("absent"));
        assert_eq!(client.lease().await, Lease::Unavailable);
        assert_eq!(client.lease().await, Lease::Unavailable);
    }
}
