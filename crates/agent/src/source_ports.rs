//! Fresh UDP source ports, so that every UDP probe is a new flow.
//!
//! Conntrack remembers a UDP flow by its addresses and ports while datagrams keep it alive
//! (Linux: 30 s, 120 s for a flow that lasts; Cilium: 60 s), and enforcers that accept
//! established flows before their policy chains (iptables and nftables dataplanes, our sandbox)
//! let through a datagram that reuses the tuple of a flow admitted before a deny policy:
//! Kubernetes leaves the fate of existing connections to the implementation. With the kernel
//! choosing a random source port for each probe, a probe after a policy change now and then
//! drew the port of such a flow and read `connected` where the policy denies (once in eight
//! core+extended runs of `bench chaos`, in a clean run).
//!
//! So `agent serve`, which lives as long as the pod, hands out source ports over an abstract
//! Unix socket. Abstract names belong to a network namespace, which all containers of a pod
//! share, so the `agent probe` the harness execs in the pod reaches it. The prober names the
//! destination; what must never repeat within [`REUSE_AFTER`] is a source port *towards one
//! destination*, so each destination has its own hand that walks the port range no faster
//! than one port per [`TICK`] beyond a lead of [`LEAD`] ports ahead of the wall clock. That
//! also holds across a restart of the server, which remembers nothing: a new server starts
//! every destination past the furthest point its predecessor could have reached (the clock
//! plus the lead), so the ports a killed agent handed out are not handed out again either. The
//! ports come from below Linux's default ephemeral range, so the ports the kernel picks (the
//! resolver's, say) never meet them. Probes towards
//! different destinations may share a port at the same time (the sockets set `SO_REUSEADDR`
//! and are connected, so each gets its own peer's datagrams).
//!
//! Wire format: the prober writes a destination (`10.0.0.1:80`, `[fd00::1]:80`) and `\n`; the
//! server answers with a port in decimal and `\n`, `-\n` when that destination asked for ports
//! faster than they can be retired (about 140 a second, [`LEAD`] at once; the prober waits and
//! asks again), or `?\n` for a line that is not a destination.
//!
//! A prober whose server went away (the agent restarted) asks once more, on a new connection,
//! and so reaches the successor. Where nothing answers on the name (the outside vantage, which
//! runs no `agent serve`; an agent that is down), the prober keeps a hand of its own, made
//! when first needed: like a restarted server, it starts past anything an earlier prober or a
//! dead server can have reached, so consecutive probers never meet each other's ports. Only
//! probers that overlap in time with no server between them could.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::linux::net::SocketAddrExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

/// The abstract socket name `agent serve` answers on and `agent probe` asks.
pub const LEASE_NAME: &str = "netassay-udp-source-ports";

/// The ports handed out: below Linux's default ephemeral range (32768-60999).
pub const PORTS: std::ops::RangeInclusive<u16> = 10000..=32767;

/// How often each destination's hand may move on by one port.
pub const TICK: Duration = Duration::from_millis(7);

/// How far ahead of the clock a destination's hand may run: its burst.
pub const LEAD: u64 = 512;

/// The least time between two uses of one source port towards one destination, by
/// construction: (ports - lead - 2) ticks. Longer than every UDP conntrack timeout in common
/// use (Linux 30 s or 120 s, Cilium 60 s).
pub const REUSE_AFTER: Duration = Duration::from_secs(150);

/// How long the prober waits for an answer before it uses a hand of its own.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// Above this many destinations, those whose hand the clock has caught up with are forgotten
/// (which changes nothing: such a hand starts at the clock anyway).
const REMEMBERED: usize = 4096;

/// Each destination's hand over the port range, on a clock of [`TICK`]s.
#[derive(Debug)]
pub struct SourcePorts {
    first: u16,
    count: u64,
    tick_ms: u64,
    lead: u64,
    /// Where a destination this server has not handed a port for starts: past anything a
    /// predecessor in this namespace can have handed out.
    floor: u64,
    /// Per destination, the next position of its hand (positions count ticks, not ports).
    next: HashMap<SocketAddr, u64>,
}

impl SourcePorts {
    /// A server that starts at `now_ms` (milliseconds since the Unix epoch).
    pub fn new(
        ports: std::ops::RangeInclusive<u16>,
        tick: Duration,
        lead: u64,
        now_ms: u64,
    ) -> Self {
        let tick_ms = (tick.as_millis() as u64).max(1);
        SourcePorts {
            first: *ports.start(),
            count: u64::from(*ports.end()).saturating_sub(u64::from(*ports.start())) + 1,
            tick_ms,
            lead,
            floor: now_ms / tick_ms + lead + 1,
            next: HashMap::new(),
        }
    }

    /// A server with the module's constants, starting now.
    pub fn starting_now() -> Self {
        SourcePorts::new(PORTS, TICK, LEAD, wall_ms())
    }

    /// A port towards `destination` not used towards it within the reuse time, or `None`
    /// when the destination's hand is as far ahead of the clock as it may run.
    pub fn lease(&mut self, destination: SocketAddr, now_ms: u64) -> Option<u16> {
        let clock = now_ms / self.tick_ms;
        let position = self
            .next
            .get(&destination)
            .copied()
            .unwrap_or(0)
            .max(self.floor)
            .max(clock);
        if position > clock + self.lead {
            return None;
        }
        if self.next.len() >= REMEMBERED {
            self.next.retain(|_, next| *next > clock);
        }
        self.next.insert(destination, position + 1);
        let offset = u16::try_from(position % self.count).ok()?;
        self.first.checked_add(offset)
    }
}

/// Milliseconds since the Unix epoch.
fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
    let ports = Arc::new(Mutex::new(SourcePorts::starting_now()));
    let stopped = super::sock::stopped(stop.clone());
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let (ports, stop) = (ports.clone(), stop.clone());
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = super::sock::stopped(stop) => {}
                            _ = answer(stream, ports) => {}
                        }
                    });
                }
                Err(e) => super::sock::accept_backoff(e, "netassay agent serve", "the source-port socket").await,
            },
        }
    }
}

async fn answer(stream: UnixStream, ports: Arc<Mutex<SourcePorts>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let answer = match line.trim().parse::<SocketAddr>() {
            Err(_) => "?\n".to_string(),
            Ok(destination) => {
                let port = match ports.lock() {
                    Ok(mut ports) => ports.lease(destination, wall_ms()),
                    Err(_) => None,
                };
                match port {
                    Some(port) => format!("{port}\n"),
                    None => "-\n".to_string(),
                }
            }
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
    /// This destination asked faster than ports can be retired: ask again after a [`TICK`].
    Exhausted,
}

/// The prober's side: one connection per process, opened on first use, shared by every probe;
/// where no server answers, a hand of its own.
pub struct SourcePortClient {
    name: String,
    state: tokio::sync::Mutex<ClientState>,
}

#[derive(Default)]
struct ClientState {
    tried: bool,
    server: Option<BufReader<UnixStream>>,
    /// Where nobody answers on the name (or stopped answering): the prober's own hand, made
    /// when first needed, so it starts past anything an earlier prober (or a server that
    /// died) can have reached.
    own: Option<SourcePorts>,
}

impl SourcePortClient {
    pub fn new(name: &str) -> Self {
        SourcePortClient {
            name: name.to_string(),
            state: tokio::sync::Mutex::new(ClientState::default()),
        }
    }

    /// A fresh source port towards `destination`, from the pod's server or the prober's own
    /// hand.
    pub async fn lease(&self, destination: SocketAddr) -> Lease {
        let mut state = self.state.lock().await;
        let first = !state.tried;
        if first {
            state.tried = true;
            state.server = connect(&self.name).ok().map(BufReader::new);
        }
        if let Some(stream) = state.server.as_mut() {
            if let Some(lease) = ask_in_time(stream, destination).await {
                return lease;
            }
            // The server went away (its pod's agent restarted) or is confused: a successor may
            // answer on the name already, and it never hands out what its predecessor did.
            state.server = None;
            if !first {
                if let Ok(stream) = connect(&self.name) {
                    let mut stream = BufReader::new(stream);
                    if let Some(lease) = ask_in_time(&mut stream, destination).await {
                        state.server = Some(stream);
                        return lease;
                    }
                }
            }
        }
        match state
            .own
            .get_or_insert_with(SourcePorts::starting_now)
            .lease(destination, wall_ms())
        {
            Some(port) => Lease::Port(port),
            None => Lease::Exhausted,
        }
    }

    /// Whether this prober hands out its own ports (no server answered).
    #[cfg(test)]
    async fn is_on_its_own(&self) -> bool {
        self.state.lock().await.own.is_some()
    }
}

async fn ask_in_time(stream: &mut BufReader<UnixStream>, destination: SocketAddr) -> Option<Lease> {
    match tokio::time::timeout(ASK_TIMEOUT, ask(stream, destination)).await {
        Ok(Ok(lease)) => Some(lease),
        Ok(Err(_)) | Err(_) => None,
    }
}

fn connect(name: &str) -> io::Result<UnixStream> {
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    let stream = std::os::unix::net::UnixStream::connect_addr(&addr)?;
    stream.set_nonblocking(true)?;
    UnixStream::from_std(stream)
}

async fn ask(stream: &mut BufReader<UnixStream>, destination: SocketAddr) -> io::Result<Lease> {
    stream
        .get_mut()
        .write_all(format!("{destination}\n").as_bytes())
        .await?;
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

    const D1: &str = "10.0.0.1:80";
    const D2: &str = "[fd00::1]:80";

    fn dst(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn ports(now_ms: u64) -> SourcePorts {
        SourcePorts::new(PORTS, TICK, LEAD, now_ms)
    }

    #[test]
    fn the_constants_keep_the_promised_reuse_time() {
        let count = PORTS.count() as u64;
        assert!(TICK * (count - LEAD - 2) as u32 >= REUSE_AFTER);
    }

    /// Every lease towards `d` from `from_ms` for `for_ms`, one every `every_ms`: (time, port).
    fn leases(
        p: &mut SourcePorts,
        d: SocketAddr,
        from_ms: u64,
        for_ms: u64,
        every_ms: u64,
    ) -> Vec<(u64, u16)> {
        (0..for_ms / every_ms)
            .map(|k| from_ms + k * every_ms)
            .filter_map(|t| p.lease(d, t).map(|port| (t, port)))
            .collect()
    }

    fn assert_no_reuse_within(got: &[(u64, u16)], reuse_ms: u64) {
        let mut last: HashMap<u16, u64> = HashMap::new();
        for &(t, port) in got {
            if let Some(&before) = last.get(&port) {
                assert!(
                    t - before >= reuse_ms,
                    "port {port} again after {} ms",
                    t - before
                );
            }
            last.insert(port, t);
        }
    }

    #[test]
    fn one_destination_probed_at_the_series_pace_never_meets_a_port_again_within_the_reuse_time() {
        let start = 1_700_000_000_000;
        let mut p = ports(start);
        // A series probes a cell every 50 ms: 20 minutes of it, all granted.
        let after_start = start + TICK.as_millis() as u64;
        let got = leases(&mut p, dst(D1), after_start, 20 * 60 * 1000, 50);
        assert_eq!(got.len(), 20 * 60 * 20);
        assert_no_reuse_within(&got, REUSE_AFTER.as_millis() as u64);
        // The hand went round the range: ports did come again, only never too soon.
        let distinct: std::collections::BTreeSet<u16> = got.iter().map(|g| g.1).collect();
        assert!(distinct.len() < got.len());
    }

    #[test]
    fn a_burst_gets_the_lead_then_is_refused_until_the_clock_moves() {
        let start = 1_700_000_000_000;
        let mut p = ports(start);
        // Past the start-up period, a destination may take LEAD + 1 ports at once.
        let later = start + (LEAD + 2) * TICK.as_millis() as u64;
        let burst: Vec<u16> = std::iter::from_fn(|| p.lease(dst(D1), later))
            .take(10_000)
            .collect();
        assert_eq!(burst.len() as u64, LEAD + 1);
        assert_eq!(p.lease(dst(D1), later), None);
        assert!(p.lease(dst(D1), later + TICK.as_millis() as u64).is_some());
        // Another destination has its own hand.
        assert!(p.lease(dst(D2), later).is_some());
    }

    #[test]
    fn a_server_that_restarted_never_hands_out_what_its_predecessor_did() {
        let start = 1_700_000_000_000;
        let mut first = ports(start);
        // The predecessor runs its hand as far ahead as it may (bursts) for 10 s, then dies.
        let mut got = Vec::new();
        let mut t = start;
        while t < start + 10_000 {
            while let Some(port) = first.lease(dst(D1), t) {
                got.push((t, port));
            }
            t += 100;
        }
        // Its successor starts right away and probes at the series pace.
        let mut second = ports(t);
        got.extend(leases(&mut second, dst(D1), t, 60_000, 50));
        assert_no_reuse_within(&got, REUSE_AFTER.as_millis() as u64);
    }

    #[test]
    fn right_after_start_a_destination_gets_a_port_a_tick() {
        // The first tick belongs to a predecessor that may have died in it.
        let start = 1_700_000_000_000;
        let tick = TICK.as_millis() as u64;
        let mut p = ports(start);
        assert_eq!(p.lease(dst(D1), start), None);
        assert!(p.lease(dst(D1), start + tick).is_some());
        assert_eq!(p.lease(dst(D1), start + tick), None);
        assert!(p.lease(dst(D1), start + 2 * tick).is_some());
    }

    #[test]
    fn forgetting_caught_up_destinations_changes_nothing() {
        let start = 1_700_000_000_000;
        let mut p = ports(start);
        let late = start + 10 * 60 * 1000;
        for i in 0..(REMEMBERED as u32 + 10) {
            let d = SocketAddr::from((std::net::Ipv4Addr::from(0x0a00_0000 + i), 80));
            assert!(p
                .lease(d, start + TICK.as_millis() as u64 + u64::from(i))
                .is_some());
        }
        assert!(p.lease(dst(D1), late).is_some());
        assert!(p.next.len() < REMEMBERED);
    }

    fn unique_name(tag: &str) -> String {
        format!(
            "netassay-test-{tag}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        )
    }

    #[tokio::test]
    async fn a_prober_gets_ports_from_the_server_and_from_its_own_hand_once_it_is_gone() {
        let name = unique_name("lease");
        let listener = bind(&name).unwrap().expect("name free");
        assert!(bind(&name).unwrap().is_none(), "a second server defers");
        let (stop_tx, stop_rx) = watch::channel(false);
        let server = tokio::spawn(serve(listener, stop_rx));

        let client = SourcePortClient::new(&name);
        let first = port(&client, dst(D1)).await;
        assert!(PORTS.contains(&first));
        assert!(!client.is_on_its_own().await);
        // Another destination, and another prober process of the same pod, are served too;
        // the second prober does not get the first one's port towards the same destination.
        assert!(PORTS.contains(&port(&client, dst(D2)).await));
        let other = SourcePortClient::new(&name);
        assert_ne!(port(&other, dst(D1)).await, first);
        assert!(!other.is_on_its_own().await);

        let _ = stop_tx.send(true);
        server.await.unwrap();
        let alone = SourcePortClient::new(&name);
        assert!(PORTS.contains(&port(&alone, dst(D1)).await));
        assert!(alone.is_on_its_own().await);
    }

    /// A port towards `d`, waiting out the refusals of a hand's first tick.
    async fn port(client: &SourcePortClient, d: SocketAddr) -> u16 {
        for _ in 0..100 {
            match client.lease(d).await {
                Lease::Port(port) => return port,
                Lease::Exhausted => tokio::time::sleep(TICK).await,
            }
        }
        panic!("no port towards {d} in 100 ticks");
    }

    #[tokio::test]
    async fn a_prober_whose_server_restarted_asks_the_successor() {
        let name = unique_name("restart");
        let (stop_tx, stop_rx) = watch::channel(false);
        let first = tokio::spawn(serve(bind(&name).unwrap().expect("name free"), stop_rx));
        let client = SourcePortClient::new(&name);
        let mut handed = std::collections::BTreeSet::new();
        for _ in 0..20 {
            assert!(handed.insert(port(&client, dst(D1)).await));
        }
        let _ = stop_tx.send(true);
        first.await.unwrap();

        // The successor answers the same prober, and hands out nothing its predecessor did.
        let (stop_tx, stop_rx) = watch::channel(false);
        let second = tokio::spawn(serve(bind(&name).unwrap().expect("name free"), stop_rx));
        for _ in 0..20 {
            let got = port(&client, dst(D1)).await;
            assert!(handed.insert(got), "port {got} handed out twice");
            assert!(!client.is_on_its_own().await);
        }
        // With no successor, the prober's own hand takes over, and meets neither server's.
        let _ = stop_tx.send(true);
        second.await.unwrap();
        for _ in 0..20 {
            let got = port(&client, dst(D1)).await;
            assert!(handed.insert(got), "port {got} handed out twice");
        }
        assert!(client.is_on_its_own().await);
    }

    #[tokio::test]
    async fn without_a_server_consecutive_probers_never_meet_each_others_ports() {
        // The outside vantage: one prober process per batch, nothing that outlives them.
        let name = unique_name("absent");
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..3 {
            let client = SourcePortClient::new(&name);
            for _ in 0..50 {
                let got = port(&client, dst(D1)).await;
                assert!(seen.insert(got), "port {got} handed out twice");
            }
            assert!(client.is_on_its_own().await);
        }
    }
}
