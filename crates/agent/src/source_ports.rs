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
//! # What must hold
//!
//! A probe's flow is (source address, source port, destination address, destination port). The
//! prober cannot choose its source address (one per network namespace), so the guarantee is: a
//! source port is not used towards one destination twice within [`REUSE_AFTER`], longer than
//! every UDP conntrack timeout in common use. Towards different destinations ports may be shared
//! at the same time (the sockets set `SO_REUSEADDR` and are connected, so each gets its own
//! peer's datagrams). With one address and the ports [`PORTS`] (below Linux's default ephemeral
//! range, so the ports the kernel picks for the resolver never meet them), no scheme can sustain
//! more than 22,768 probes per 150 s towards one destination, about 150 a second; what matters
//! is how large a burst may be, and that the guarantee holds across processes: probers come and
//! go (one `agent probe` per batch), in a pod and at the outside vantage alike, some die killed.
//!
//! # How
//!
//! Each destination has a hand over the port range. Its positions count [`TICK`]s of the wall
//! clock; position `p` is port `PORTS.start() + p mod 22,768`. Two rules:
//!
//! 1. **Window.** A position handed out at time `t` lies between `clock(t)` and
//!    `clock(t) + LEAD` (`clock` = the wall clock in ticks): a hand may run [`LEAD`] ports ahead
//!    of the clock (its burst) and never falls behind it.
//! 2. **Memory.** A destination's positions only ever increase: the next one is past the last
//!    one handed out.
//!
//! So a port comes back towards a destination only at a position 22,768 further on, which the
//! window allows only when the clock has moved on by 22,768 - `LEAD` ticks: at least
//! [`REUSE_AFTER`] (the constants are tested for it). The window also means that the memory of a
//! hand is worth something only for `LEAD` ticks after its last port (about 9 s): by then the
//! clock has passed every position it handed out, and starting at the clock avoids them all.
//!
//! The memory is a small file, the *ledger*, one per network namespace (named by the namespace's
//! inode) in `/dev/shm`, shared by every prober of the namespace: the pod's probers (all exec'd
//! into the agent's container, which has one `/dev/shm`), the outside vantage's. A prober takes
//! a port under an exclusive `flock` of the ledger: it reads every destination's next position,
//! takes one, and writes the ledger back *before* it uses the port. Consecutive probers, probers
//! that run at the same time, and a prober killed right after its lease all leave the ledger
//! with everything handed out; nothing is kept in a process, so nothing is lost when one dies.
//! The ledger lists only destinations whose hand is ahead of the clock (the others start at the
//! clock anyway), so it stays a few lines long.
//!
//! What the ledger's state means, and why each reading is safe:
//! - **No ledger**: nobody is ahead of the clock, since a ledger is only removed once the clock
//!   has passed everything in it (the sweep below), and a new namespace has had no probes. Every
//!   hand starts at the clock: a fresh prober gets its full burst at once.
//! - **A ledger that does not read back** (a process killed in the middle of writing it, another
//!   version's format, bytes of someone else's): everything up to `clock + LEAD` may have been
//!   handed out (rule 1), so every hand starts past that, which is what a memoryless start must
//!   do; the prober then writes a sound ledger.
//! - **A ledger that cannot be used** (not a file, no permission, locked by a hung process for
//!   [`LOCK_WAIT`]): no port, and the probe is an error. Never a port picked without the ledger:
//!   others of the namespace that can use it would not know about it.
//!
//! A prober also sweeps away the ledgers of other namespaces once the clock has passed everything
//! in them (under their lock, so never one in use), which makes them equivalent to no ledger;
//! what a run leaves in `/dev/shm` is a few small files, swept by the next.
//!
//! The ledger is created readable and writable by every user (mode 0666), so that probers of
//! different users in one namespace share it (a second user's probers must not pick ports the
//! first's ledger does not list). A local user who rewrites it can make a probe reuse a port; so
//! can one who sends datagrams on the probe's ports. Who deletes it while probes run (not the
//! sweep: `rm`) removes what the last `LEAD` ticks handed out.
//!
//! Before the ledger, `agent serve` kept the hands in memory and handed ports out over an
//! abstract Unix socket; a restarted server, or a prober with no server (the outside vantage),
//! knew nothing of its predecessors and had to start past `clock + LEAD`, where the window let it
//! have one port a tick: 200 probes towards one destination from the outside took 1.4 s, and 600
//! from a pod 3.6 s.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, Permissions};
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use thiserror::Error;

/// The ports handed out: below Linux's default ephemeral range (32768-60999).
pub const PORTS: std::ops::RangeInclusive<u16> = 10000..=32767;

/// How often each destination's hand may move on by one port, beyond its lead.
pub const TICK: Duration = Duration::from_millis(7);

/// How far ahead of the clock a destination's hand may run: the most ports towards one
/// destination at once.
pub const LEAD: u64 = 1280;

/// The least time between two uses of one source port towards one destination, by
/// construction: (ports - lead - 2) ticks. Longer than every UDP conntrack timeout in common
/// use (Linux 30 s or 120 s, Cilium 60 s).
pub const REUSE_AFTER: Duration = Duration::from_secs(150);

/// Where the ledgers live: a tmpfs every Linux system and every container has.
pub const LEDGER_DIR: &str = netassay_core::probe::UDP_LEDGER_DIR;

/// A ledger's file name: this, then the network namespace's inode number.
const LEDGER_PREFIX: &str = netassay_core::probe::UDP_LEDGER_PREFIX;

/// The first line of a ledger: its format, and the constants its positions are counted with.
const HEADER: &str = "netassay-udp-source-ports v1 ports=10000-32767 tick=7ms lead=1280";

/// How long a prober waits for the ledger's lock before its probe is an error.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);

/// After this long unwritten, a ledger that does not read back is swept (a readable one is
/// swept as soon as the clock has passed it). Longer than `LEAD + 2` ticks.
const STALE_AFTER: Duration = Duration::from_secs(30);

/// Each destination's hand over the port range: the state a ledger holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePorts {
    first: u16,
    count: u64,
    tick_ms: u64,
    lead: u64,
    /// No hand starts below this position (0: none). Set when the memory was lost: past
    /// anything that can have been handed out.
    floor: u64,
    /// Per destination whose hand is ahead of the clock, its next position.
    next: HashMap<SocketAddr, u64>,
}

impl SourcePorts {
    /// Hands that are all at the clock: nobody is ahead of it.
    pub fn new(ports: std::ops::RangeInclusive<u16>, tick: Duration, lead: u64) -> Self {
        SourcePorts {
            first: *ports.start(),
            count: u64::from(*ports.end()).saturating_sub(u64::from(*ports.start())) + 1,
            tick_ms: (tick.as_millis() as u64).max(1),
            lead,
            floor: 0,
            next: HashMap::new(),
        }
    }

    /// Hands with the module's constants, all at the clock.
    pub fn standard() -> Self {
        SourcePorts::new(PORTS, TICK, LEAD)
    }

    /// Hands that know nothing at `now_ms`: each starts past anything that can have been
    /// handed out by then (rule 1 bounds it by the clock plus the lead).
    pub fn forgotten(&self, now_ms: u64) -> Self {
        SourcePorts {
            floor: self.clock(now_ms) + self.lead + 1,
            next: HashMap::new(),
            ..self.clone()
        }
    }

    fn clock(&self, now_ms: u64) -> u64 {
        now_ms / self.tick_ms
    }

    /// A port towards `destination` not used towards it within the reuse time, or `None`
    /// when the destination's hand is as far ahead of the clock as it may run.
    pub fn lease(&mut self, destination: SocketAddr, now_ms: u64) -> Option<u16> {
        let clock = self.clock(now_ms);
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
        let offset = u16::try_from(position % self.count).ok()?;
        let port = self.first.checked_add(offset)?;
        self.next.insert(destination, position + 1);
        Some(port)
    }

    /// Drops what the clock has passed: a hand at or behind the clock starts at the clock
    /// anyway, so this changes no lease.
    pub fn forget_caught_up(&mut self, now_ms: u64) {
        let clock = self.clock(now_ms);
        self.next.retain(|_, next| *next > clock);
        if self.floor <= clock {
            self.floor = 0;
        }
    }

    /// Whether the clock has passed everything: then these hands are the same as none.
    pub fn caught_up(&self, now_ms: u64) -> bool {
        let mut copy = self.clone();
        copy.forget_caught_up(now_ms);
        copy.floor == 0 && copy.next.is_empty()
    }

    /// The ledger's text: the header, the floor, one line per destination, and a checksum of
    /// all that, so that a ledger written halfway never reads back.
    pub fn to_text(&self) -> String {
        let mut body = format!("{HEADER}\nfloor {}\n", self.floor);
        let mut lines: Vec<String> = self
            .next
            .iter()
            .map(|(destination, next)| format!("{destination} {next}\n"))
            .collect();
        lines.sort();
        body.extend(lines);
        let sum = checksum(body.as_bytes());
        body.push_str(&format!("end {sum:016x}\n"));
        body
    }

    /// Reads a ledger's text written by [`Self::to_text`] with the same constants as `self`;
    /// `None` for anything else.
    pub fn from_text(&self, text: &str) -> Option<Self> {
        let body_end = text.rfind("end ")?;
        let (body, end) = text.split_at(body_end);
        let sum = end.strip_prefix("end ")?.strip_suffix('\n')?;
        if u64::from_str_radix(sum, 16).ok()? != checksum(body.as_bytes()) {
            return None;
        }
        let mut lines = body.lines();
        if lines.next()? != HEADER {
            return None;
        }
        let floor = lines.next()?.strip_prefix("floor ")?.parse().ok()?;
        let mut next = HashMap::new();
        for line in lines {
            let (destination, position) = line.split_once(' ')?;
            next.insert(destination.parse().ok()?, position.parse().ok()?);
        }
        Some(SourcePorts {
            floor,
            next,
            ..self.clone()
        })
    }
}

/// FNV-1a, 64 bits.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Milliseconds since the Unix epoch.
fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The ledger cannot be used.
#[derive(Debug, Error)]
pub enum LedgerError {
    #[error("the UDP source-port ledger {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("the UDP source-port ledger {path} is not a regular file")]
    NotAFile { path: String },
    #[error("the UDP source-port ledger {path} keeps being replaced")]
    Unsettled { path: String },
    #[error("cannot name this network namespace's UDP source-port ledger: {0}")]
    Namespace(io::Error),
}

/// What one attempt at a lease came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Port(u16),
    /// This destination's hand is as far ahead of the clock as it may run: try again after a
    /// [`TICK`].
    Exhausted,
    /// Another process holds the ledger's lock right now.
    Busy,
}

/// The ledger of one network namespace: see the module doc.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    /// Open on first use; reopened when the path no longer names it (swept, replaced).
    file: Option<File>,
    constants: SourcePorts,
}

impl Ledger {
    /// The ledger at `path`, with the module's constants.
    pub fn at(path: PathBuf) -> Self {
        Ledger {
            path,
            file: None,
            constants: SourcePorts::standard(),
        }
    }

    /// The ledger of the network namespace this process is in.
    pub fn of_this_namespace() -> Result<Self, LedgerError> {
        let namespace = std::fs::metadata("/proc/self/ns/net").map_err(LedgerError::Namespace)?;
        Ok(Ledger::at(netassay_core::probe::udp_ledger_path(
            namespace.ino(),
        )))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One attempt at a port towards `destination` at `now_ms`; never waits for the lock.
    pub fn try_lease(
        &mut self,
        destination: SocketAddr,
        now_ms: u64,
    ) -> Result<Attempt, LedgerError> {
        let io_error = |source| LedgerError::Io {
            path: self.path.display().to_string(),
            source,
        };
        // The path may be swept or replaced between our open and our lock: then the file we
        // locked is no longer the ledger, and we open the one that is.
        for _ in 0..8 {
            let (file, created) = match self.file.take() {
                Some(file) => (file, false),
                None => open_or_create(&self.path).map_err(io_error)?,
            };
            if !file.metadata().map_err(io_error)?.is_file() {
                return Err(LedgerError::NotAFile {
                    path: self.path.display().to_string(),
                });
            }
            match lock(&file) {
                Ok(true) => {}
                Ok(false) => {
                    self.file = Some(file);
                    return Ok(Attempt::Busy);
                }
                Err(e) => return Err(io_error(e)),
            }
            let _unlock = Unlock(&file);
            if !still_at(&file, &self.path).map_err(io_error)? {
                continue;
            }
            let attempt = self
                .lease_locked(&file, created, destination, now_ms)
                .map_err(io_error);
            drop(_unlock);
            self.file = Some(file);
            return attempt;
        }
        Err(LedgerError::Unsettled {
            path: self.path.display().to_string(),
        })
    }

    fn lease_locked(
        &self,
        file: &File,
        created: bool,
        destination: SocketAddr,
        now_ms: u64,
    ) -> io::Result<Attempt> {
        let text = read_all(file)?;
        let read = if text.is_empty() && created {
            Some(self.constants.clone())
        } else {
            self.constants.from_text(&text)
        };
        let Some(mut hands) = read else {
            // Written at once, even with no port to hand out: the floor must be that of the
            // first prober to find the ledger unreadable, not move on with every reader's clock.
            write(file, &self.constants.forgotten(now_ms))?;
            return Ok(Attempt::Exhausted);
        };
        hands.forget_caught_up(now_ms);
        let Some(port) = hands.lease(destination, now_ms) else {
            return Ok(Attempt::Exhausted);
        };
        // Written before the port is used.
        write(file, &hands)?;
        Ok(Attempt::Port(port))
    }

    /// Removes the ledgers of other namespaces that the clock has passed (so no ledger at all
    /// means the same), or that have not read back for [`STALE_AFTER`]. Skips any in use.
    pub fn sweep(&self, now_ms: u64) {
        let (Some(dir), Some(own)) = (self.path.parent(), self.path.file_name()) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name == own || !name.to_string_lossy().starts_with(LEDGER_PREFIX) {
                continue;
            }
            let path = entry.path();
            let Ok(file) = open_existing(&path) else {
                continue;
            };
            if !matches!(lock(&file), Ok(true)) {
                continue;
            }
            let _unlock = Unlock(&file);
            if !matches!(still_at(&file, &path), Ok(true)) {
                continue;
            }
            let passed = match read_all(&file)
                .ok()
                .and_then(|text| self.constants.from_text(&text))
            {
                Some(hands) => hands.caught_up(now_ms),
                None => file
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .is_some_and(|written| {
                        now_ms.saturating_sub(written.as_millis() as u64)
                            >= STALE_AFTER.as_millis() as u64
                    }),
            };
            if passed {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// Opens the ledger at `path`, creating it (for every user) if there is none; `true` when
/// this call created it.
fn open_or_create(path: &Path) -> io::Result<(File, bool)> {
    for _ in 0..8 {
        match open_existing(path) {
            Ok(file) => return Ok((file, false)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o666)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(file) => {
                // The umask may have taken bits away.
                file.set_permissions(Permissions::from_mode(0o666))?;
                return Ok((file, true));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("created and removed over and over"))
}

fn open_existing(path: &Path) -> io::Result<File> {
    // Without O_CREAT: opening a file of another user in a sticky directory is refused with it
    // (fs.protected_regular), and the ledger is shared between users.
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// An exclusive `flock`, if it can be had right now.
fn lock(file: &File) -> io::Result<bool> {
    // SAFETY: flock(2) on a descriptor this File owns.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Releases the lock when dropped.
struct Unlock<'a>(&'a File);

impl Drop for Unlock<'_> {
    fn drop(&mut self) {
        // SAFETY: flock(2) on a descriptor the File owns.
        unsafe {
            libc::flock(self.0.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

/// Writes `hands` over the ledger: written first, then cut to length, so a process killed in
/// between leaves a ledger that does not read back, never a shorter one that does.
fn write(file: &File, hands: &SourcePorts) -> io::Result<()> {
    let text = hands.to_text();
    file.write_all_at(text.as_bytes(), 0)?;
    file.set_len(text.len() as u64)
}

/// Whether `path` still names the file `file` is open on.
fn still_at(file: &File, path: &Path) -> io::Result<bool> {
    let open = file.metadata()?;
    Ok(match std::fs::symlink_metadata(path) {
        Ok(named) => named.dev() == open.dev() && named.ino() == open.ino() && open.nlink() > 0,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    })
}

fn read_all(file: &File) -> io::Result<String> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = file.read_at(&mut chunk, bytes.len() as u64)?;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    // Bytes that are not text do not read back as a ledger.
    Ok(String::from_utf8(bytes).unwrap_or_else(|_| "\u{fffd}".to_string()))
}

/// What the prober got when it asked for a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    Port(u16),
    /// This destination asked faster than ports can be retired: ask again after a [`TICK`].
    Exhausted,
    /// No port can be had without the ledger: why.
    Unavailable(String),
}

/// The prober's side: this namespace's ledger, opened on first use (when the ledgers the clock
/// has passed are swept) and shared by every probe of the process.
pub struct SourcePortClient {
    ledger: Arc<tokio::sync::Mutex<Option<Result<Ledger, String>>>>,
    path: Option<PathBuf>,
    lock_wait: Duration,
}

impl SourcePortClient {
    /// The client of this network namespace's ledger.
    pub fn of_this_namespace() -> Self {
        SourcePortClient {
            ledger: Arc::default(),
            path: None,
            lock_wait: LOCK_WAIT,
        }
    }

    /// The client of the ledger at `path`, waiting `lock_wait` for its lock (tests).
    pub fn at(path: PathBuf, lock_wait: Duration) -> Self {
        SourcePortClient {
            ledger: Arc::default(),
            path: Some(path),
            lock_wait,
        }
    }

    /// A fresh source port towards `destination`. Waits for the ledger's lock (other probers
    /// of the namespace hold it for microseconds) up to [`LOCK_WAIT`].
    pub async fn lease(&self, destination: SocketAddr) -> Lease {
        let mut ledger = self.ledger.lock().await;
        let ledger = ledger.get_or_insert_with(|| {
            let ledger = match &self.path {
                Some(path) => Ok(Ledger::at(path.clone())),
                None => Ledger::of_this_namespace(),
            };
            if let Ok(ledger) = &ledger {
                ledger.sweep(wall_ms());
            }
            ledger.map_err(|e| e.to_string())
        });
        let ledger = match ledger {
            Ok(ledger) => ledger,
            Err(why) => return Lease::Unavailable(why.clone()),
        };
        let deadline = tokio::time::Instant::now() + self.lock_wait;
        loop {
            match ledger.try_lease(destination, wall_ms()) {
                Ok(Attempt::Port(port)) => return Lease::Port(port),
                Ok(Attempt::Exhausted) => return Lease::Exhausted,
                Ok(Attempt::Busy) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_micros(500)).await;
                }
                Ok(Attempt::Busy) => {
                    return Lease::Unavailable(format!(
                        "the UDP source-port ledger {} was locked by another process for {} ms",
                        ledger.path().display(),
                        self.lock_wait.as_millis()
                    ))
                }
                Err(e) => return Lease::Unavailable(e.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests;
