//! The invariant, stated as tests: a port is never used twice towards one destination within
//! `REUSE_AFTER`, whoever took it (one prober, consecutive probers, probers at the same time, a
//! prober killed while writing the ledger); and a burst of up to `LEAD + 1` ports needs no wait
//! unless the ledger was lost. Every clock is given, never slept on.

use super::*;
use std::collections::{BTreeSet, HashMap};

const D1: &str = "10.0.0.1:80";
const D2: &str = "[fd00::1]:80";
const T0: u64 = 1_700_000_000_000;

fn dst(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn tick() -> u64 {
    TICK.as_millis() as u64
}

fn reuse_ms() -> u64 {
    REUSE_AFTER.as_millis() as u64
}

#[test]
fn the_constants_keep_the_promised_reuse_time() {
    let count = PORTS.count() as u64;
    assert!(TICK * (count - LEAD - 2) as u32 >= REUSE_AFTER);
    // A ledger that does not read back is swept only once the clock has passed anything its
    // last writer can have handed out.
    assert!(STALE_AFTER >= TICK * (LEAD + 2) as u32);
    // The header names the constants positions are counted with: a ledger written with others
    // does not read back.
    assert_eq!(
        HEADER,
        format!(
            "netassay-udp-source-ports v1 ports={}-{} tick={}ms lead={LEAD}",
            PORTS.start(),
            PORTS.end(),
            TICK.as_millis()
        )
    );
}

/// A scratch directory for ledgers.
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn ledger_in(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(format!("{LEDGER_PREFIX}{name}"))
}

/// A lease the test must get, or `None` when the hand is ahead (the lock is never busy here).
fn lease(ledger: &mut Ledger, d: SocketAddr, now_ms: u64) -> Option<u16> {
    match ledger.try_lease(d, now_ms).unwrap() {
        Attempt::Port(port) => Some(port),
        Attempt::Exhausted => None,
        Attempt::Busy => panic!("nobody else holds the lock"),
    }
}

/// `count` ports towards `d` from `from_ms`, waiting a tick whenever the hand is ahead, as the
/// prober does: (time each was had, port); the time the last was had.
fn burst(ledger: &mut Ledger, d: SocketAddr, from_ms: u64, count: usize) -> Vec<(u64, u16)> {
    let mut got = Vec::new();
    let mut t = from_ms;
    while got.len() < count {
        match lease(ledger, d, t) {
            Some(port) => got.push((t, port)),
            None => t += tick(),
        }
    }
    got
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

/// Who takes the ports of a round.
#[derive(Clone, Copy, Debug)]
enum Prober {
    /// The prober of the round before.
    Same,
    /// A new prober process: it knows only the ledger.
    New,
    /// A new prober, after the one before was killed halfway through writing the ledger.
    AfterAKill,
}

/// Rounds: (every ms, rounds, ports towards D1 per round, who takes them).
const SCHEDULES: &[(&str, u64, usize, usize, Prober)] = &[
    (
        "a series, one probe each 50 ms, one process",
        50,
        20 * 60 * 20,
        1,
        Prober::Same,
    ),
    (
        "a series, one prober per probe",
        50,
        20 * 60 * 20,
        1,
        Prober::New,
    ),
    (
        "600 at once every 4.5 s, a prober each",
        4_500,
        120,
        600,
        Prober::New,
    ),
    (
        "600 at once every second (faster than ports retire)",
        1_000,
        200,
        600,
        Prober::New,
    ),
    (
        "a burst of LEAD + 1 every 10 s",
        10_000,
        50,
        LEAD as usize + 1,
        Prober::New,
    ),
    (
        "600 at once, each prober killed writing",
        4_500,
        120,
        600,
        Prober::AfterAKill,
    ),
    (
        "300 at once every 100 ms, one process",
        100,
        600,
        300,
        Prober::Same,
    ),
];

#[test]
fn no_port_comes_back_towards_a_destination_within_the_reuse_time_whoever_took_it() {
    for &(name, every_ms, rounds, per_round, prober) in SCHEDULES {
        let dir = scratch();
        let path = ledger_in(&dir, "1");
        let mut ledger = Ledger::at(path.clone());
        let mut got = Vec::new();
        let mut t = T0;
        for round in 0..rounds {
            t = t.max(T0 + round as u64 * every_ms);
            match prober {
                Prober::Same => {}
                Prober::New => ledger = Ledger::at(path.clone()),
                Prober::AfterAKill => {
                    // Killed after writing a new ledger over a longer old one, before cutting
                    // it to length: the tail of the old one follows.
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    std::fs::write(&path, format!("{text}10.9.9.9:80 12\nend 0\n")).unwrap();
                    ledger = Ledger::at(path.clone());
                }
            }
            let ports = burst(&mut ledger, dst(D1), t, per_round);
            t = ports.last().map_or(t, |p| p.0);
            got.extend(ports);
        }
        assert_eq!(got.len(), rounds * per_round, "{name}");
        assert_no_reuse_within(&got, reuse_ms());
        // Over the schedules that run past the reuse time, ports did come back: the range is
        // walked round, only never too soon.
        let distinct: BTreeSet<u16> = got.iter().map(|g| g.1).collect();
        if t - T0 > 3 * reuse_ms() {
            assert!(distinct.len() < got.len(), "{name}: never came round");
        }
    }
}

#[test]
fn a_burst_of_the_lead_needs_no_wait_in_a_fresh_namespace_nor_for_a_new_prober() {
    let clock = |ms: u64| ms / tick();
    // (what came before: 600 ports at T0 and then a gap, ports wanted at once). A new prober
    // after 600 has at once what the window allows past them: up to clock + LEAD.
    let cases: &[(&str, Option<u64>)] = &[
        ("a namespace with no ledger", None),
        ("a new prober a second after 600", Some(1_000)),
        ("a new prober 10 s after 600", Some(10_000)),
    ];
    for &(name, gap_ms) in cases {
        let dir = scratch();
        let path = ledger_in(&dir, "1");
        let (t, at_once) = match gap_ms {
            None => (T0, LEAD + 1),
            Some(gap) => {
                let earlier = burst(&mut Ledger::at(path.clone()), dst(D1), T0, 600);
                assert_eq!(earlier.last().unwrap().0, T0, "{name}: 600 at once");
                let t = T0 + gap;
                let past_them = clock(T0) + 600;
                (t, (clock(t) + LEAD + 1 - past_them).min(LEAD + 1))
            }
        };
        assert!(at_once >= 600, "{name}: {at_once}");
        let mut ledger = Ledger::at(path);
        let granted = std::iter::from_fn(|| lease(&mut ledger, dst(D1), t))
            .take(100_000)
            .count() as u64;
        assert_eq!(granted, at_once, "{name}");
        assert_eq!(lease(&mut ledger, dst(D1), t), None, "{name}");
        assert!(lease(&mut ledger, dst(D1), t + tick()).is_some(), "{name}");
        // Another destination has a hand of its own.
        assert!(lease(&mut ledger, dst(D2), t).is_some(), "{name}");
    }
}

#[test]
fn probers_at_the_same_time_never_share_a_port_towards_a_destination() {
    // Two prober processes of one namespace, leasing in turn (the lock serializes them).
    let dir = scratch();
    let path = ledger_in(&dir, "1");
    let (mut a, mut b) = (Ledger::at(path.clone()), Ledger::at(path));
    let mut got = Vec::new();
    let mut t = T0;
    while got.len() < 2 * (LEAD as usize + 1) + 400 {
        let mut any = false;
        for ledger in [&mut a, &mut b] {
            if let Some(port) = lease(ledger, dst(D1), t) {
                got.push((t, port));
                any = true;
            }
        }
        if !any {
            t += tick();
        }
    }
    assert_no_reuse_within(&got, reuse_ms());
    let distinct: BTreeSet<u16> = got.iter().map(|g| g.1).collect();
    assert_eq!(distinct.len(), got.len());
}

#[test]
fn while_another_process_holds_the_lock_a_lease_waits() {
    let dir = scratch();
    let path = ledger_in(&dir, "1");
    let mut ledger = Ledger::at(path.clone());
    assert!(lease(&mut ledger, dst(D1), T0).is_some());
    let other = open_existing(&path).unwrap();
    assert!(lock(&other).unwrap());
    assert_eq!(ledger.try_lease(dst(D1), T0).unwrap(), Attempt::Busy);
    drop(other);
    assert!(lease(&mut ledger, dst(D1), T0).is_some());
}

/// Ledgers that do not read back: (what, the bytes).
fn unreadable(sound: &str) -> Vec<(&'static str, Vec<u8>)> {
    let half = sound.len() / 2;
    vec![
        ("cut halfway", sound.as_bytes()[..half].to_vec()),
        (
            "the tail of a longer old one after it",
            format!("{sound}10.0.0.9:80 5\nend 0\n").into_bytes(),
        ),
        (
            "another version's",
            sound
                .replace("lead=1280", "lead=4000")
                .replace("v1", "v2")
                .into_bytes(),
        ),
        ("not text", vec![0xff, 0xfe, 0x00, 0x41]),
        ("empty, its creator killed before writing", Vec::new()),
        (
            "a bit flipped",
            sound.replacen("floor 0", "floor 1", 1).into_bytes(),
        ),
    ]
}

#[test]
fn a_ledger_that_does_not_read_back_starts_every_hand_past_anything_handed_out() {
    let dir = scratch();
    let path = ledger_in(&dir, "sound");
    // A prober takes a full burst and is killed; its ledger is then damaged.
    let before = burst(
        &mut Ledger::at(path.clone()),
        dst(D1),
        T0,
        LEAD as usize + 1,
    );
    let sound = std::fs::read_to_string(&path).unwrap();
    assert!(SourcePorts::standard().from_text(&sound).is_some());
    for (what, bytes) in unreadable(&sound) {
        std::fs::write(&path, &bytes).unwrap();
        let mut next = Ledger::at(path.clone());
        // Nothing in the tick it reads the damage: everything up to clock + LEAD may be taken.
        assert_eq!(lease(&mut next, dst(D1), T0), None, "{what}");
        assert_eq!(lease(&mut next, dst(D2), T0), None, "{what}");
        let mut got = before.clone();
        got.extend(burst(&mut next, dst(D1), T0 + tick(), 2_000));
        assert_no_reuse_within(&got, reuse_ms());
        // The prober wrote a sound ledger back.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(SourcePorts::standard().from_text(&text).is_some(), "{what}");
        // Restore the first prober's ledger for the next case.
        std::fs::write(&path, &sound).unwrap();
    }
}

#[test]
fn a_ledger_round_trips_and_lists_only_hands_ahead_of_the_clock() {
    let mut hands = SourcePorts::standard();
    for _ in 0..10 {
        hands.lease(dst(D1), T0).unwrap();
    }
    hands.lease(dst(D2), T0).unwrap();
    let text = hands.to_text();
    assert_eq!(
        SourcePorts::standard().from_text(&text),
        Some(hands.clone())
    );
    assert!(text.contains("[fd00::1]:80"), "{text}");
    // A tick on, D2 (one port) is passed and forgotten; D1 (ten) is still ahead.
    hands.forget_caught_up(T0 + tick());
    assert_eq!(hands.next.len(), 1);
    assert!(!hands.caught_up(T0 + tick()));
    assert!(hands.caught_up(T0 + 10 * tick()));
    // Forgetting what the clock passed changes no lease.
    let mut kept = SourcePorts::standard().from_text(&text).unwrap();
    let mut forgot = kept.clone();
    forgot.forget_caught_up(T0 + 5 * tick());
    for d in [D1, D2] {
        assert_eq!(
            kept.lease(dst(d), T0 + 5 * tick()),
            forgot.lease(dst(d), T0 + 5 * tick())
        );
    }
}

/// How old a swept file is, and what is in it.
#[derive(Clone, Copy, Debug)]
enum Other {
    /// Another namespace's ledger, written `ms` ago with a burst of `ports`.
    Ledger { ms: u64, ports: usize },
    /// Bytes that are not a ledger, written `ms` ago.
    Garbage { ms: u64 },
    /// A ledger whose clock has passed, but locked by its prober.
    LockedPassed,
}

#[test]
fn the_sweep_removes_only_ledgers_of_other_namespaces_that_the_clock_has_passed() {
    let now = T0 + 60_000;
    let cases: &[(&str, Other, bool)] = &[
        (
            "passed",
            Other::Ledger {
                ms: 20_000,
                ports: 600,
            },
            true,
        ),
        ("ahead", Other::Ledger { ms: 10, ports: 600 }, false),
        (
            "one port, a tick ago",
            Other::Ledger {
                ms: tick(),
                ports: 1,
            },
            true,
        ),
        ("garbage, old", Other::Garbage { ms: 31_000 }, true),
        ("garbage, recent", Other::Garbage { ms: 5_000 }, false),
        ("in use", Other::LockedPassed, false),
    ];
    for &(name, other, removed) in cases {
        let dir = scratch();
        let own = ledger_in(&dir, "1");
        let path = ledger_in(&dir, "2");
        let unrelated = dir.path().join("something-else");
        std::fs::write(&unrelated, "x").unwrap();
        let mut _holder = None;
        match other {
            Other::Ledger { ms, ports } => {
                burst(&mut Ledger::at(path.clone()), dst(D1), now - ms, ports);
            }
            Other::Garbage { ms } => {
                let file = File::create(&path).unwrap();
                std::io::Write::write_all(&mut &file, b"garbage").unwrap();
                let written = SystemTime::UNIX_EPOCH + Duration::from_millis(now - ms);
                file.set_modified(written).unwrap();
            }
            Other::LockedPassed => {
                burst(&mut Ledger::at(path.clone()), dst(D1), T0, 10);
                let file = open_existing(&path).unwrap();
                assert!(lock(&file).unwrap());
                _holder = Some(file);
            }
        }
        let mut ours = Ledger::at(own.clone());
        assert!(lease(&mut ours, dst(D1), now - 10).is_some());
        ours.sweep(now);
        assert_eq!(!path.exists(), removed, "{name}");
        assert!(own.exists() && unrelated.exists(), "{name}");
    }
}

#[test]
fn a_swept_ledger_is_replaced_by_a_fresh_one_for_a_prober_that_had_it_open() {
    let dir = scratch();
    let path = ledger_in(&dir, "2");
    let mut prober = Ledger::at(path.clone());
    let before = burst(&mut prober, dst(D1), T0, 600);
    // Its namespace idles; another namespace's prober sweeps its ledger away.
    let later = T0 + 20_000;
    Ledger::at(ledger_in(&dir, "1")).sweep(later);
    assert!(!path.exists());
    // The prober (file still open) notices, and starts at the clock: past all of `before`.
    let mut got = before;
    got.extend(burst(&mut prober, dst(D1), later, LEAD as usize + 1));
    assert_eq!(got.last().unwrap().0, later, "a full burst at once");
    assert_no_reuse_within(&got, reuse_ms());
    assert!(path.exists());
}

#[test]
fn a_path_that_is_not_a_ledger_file_gives_no_port() {
    let dir = scratch();
    let path = ledger_in(&dir, "1");
    std::fs::create_dir(&path).unwrap();
    assert!(Ledger::at(path.clone()).try_lease(dst(D1), T0).is_err());
    let link = ledger_in(&dir, "2");
    std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).unwrap();
    assert!(Ledger::at(link).try_lease(dst(D1), T0).is_err());
    assert!(
        !dir.path().join("elsewhere").exists(),
        "a symlink is not followed"
    );
}

#[test]
fn this_namespace_has_its_ledger_in_dev_shm_named_by_its_inode() {
    let ledger = Ledger::of_this_namespace().unwrap();
    let ino = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
    assert_eq!(
        ledger.path(),
        Path::new(&format!("/dev/shm/netassay-udp-source-ports.{ino}"))
    );
}

#[tokio::test]
async fn a_prober_gets_ports_through_the_ledger_and_another_prober_continues_from_it() {
    let dir = scratch();
    let path = ledger_in(&dir, "1");
    let first = SourcePortClient::at(path.clone(), LOCK_WAIT);
    let mut handed = BTreeSet::new();
    for _ in 0..600 {
        match first.lease(dst(D1)).await {
            Lease::Port(port) => assert!(handed.insert(port), "port {port} twice"),
            other => panic!("{other:?}"),
        }
    }
    drop(first);
    let second = SourcePortClient::at(path, LOCK_WAIT);
    for _ in 0..300 {
        match second.lease(dst(D1)).await {
            Lease::Port(port) => assert!(handed.insert(port), "port {port} twice"),
            // 900 in all fit in one burst whatever the clock did meanwhile.
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_ledger_locked_for_too_long_gives_an_error_not_a_port() {
    let dir = scratch();
    let path = ledger_in(&dir, "1");
    Ledger::at(path.clone())
        .try_lease(dst(D1), wall_ms())
        .unwrap();
    let holder = open_existing(&path).unwrap();
    assert!(lock(&holder).unwrap());
    // Held throughout the wait: the outcome does not depend on timing.
    let client = SourcePortClient::at(path, Duration::from_millis(50));
    match client.lease(dst(D1)).await {
        Lease::Unavailable(why) => assert!(why.contains("locked"), "{why}"),
        other => panic!("{other:?}"),
    }
    drop(holder);
    assert!(matches!(client.lease(dst(D1)).await, Lease::Port(_)));
}

#[tokio::test]
async fn a_ledger_that_cannot_be_made_gives_an_error_not_a_port() {
    let dir = scratch();
    let client = SourcePortClient::at(dir.path().join("missing").join("ledger"), LOCK_WAIT);
    match client.lease(dst(D1)).await {
        Lease::Unavailable(why) => assert!(why.contains("ledger"), "{why}"),
        other => panic!("{other:?}"),
    }
}
