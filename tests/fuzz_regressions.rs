//! Inputs from the cargo-fuzz targets in fuzz/, replayed on stable: every committed corpus file
//! goes through the same library entry points as its target (never a panic, and the target's
//! invariants hold), plus the minimized inputs of crashes fuzzing found, each with its cause.

use k8s_openapi::api::networking::v1::NetworkPolicy;
use netassay::scenario::{load_str, Profile};
use netassay_agent::prepare;
use netassay_core::model::Protocol;
use netassay_core::policy::validate::validate_network_policy;
use netassay_core::policy::Oracle;
use netassay_core::probe::ProbeBatch;
use netassay_sandbox::api::decode_request;
use std::path::PathBuf;

/// A fuzz target's checks, by the target's name.
type Replay = (&'static str, fn(&[u8]));

/// The committed corpus of one fuzz target.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
        .into_iter()
        .map(|path| {
            let data = std::fs::read(&path).expect("corpus file");
            (path, data)
        })
        .collect()
}

fn scenario_loader(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(scenario) = load_str("fuzz.yaml", text) {
        if !scenario.needs_profile() {
            let _ = scenario.plan();
        }
    }
}

fn profile_config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Profile::parse("fuzz-profile-config.yaml", text);
    }
}

fn probe_batch(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let line = match text.find('\n') {
        Some(end) => &text[..=end],
        None => text,
    };
    if let Ok(batch) = ProbeBatch::from_json_line(line) {
        let written = batch.to_json_line();
        let again = ProbeBatch::from_json_line(&written).expect("a valid batch round-trips");
        assert_eq!(again.to_json_line(), written);
        let _ = prepare(batch);
    }
}

fn emulator_request(data: &[u8]) {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let (Some(request_line), Some(content_type)) = (parts.next(), parts.next()) else {
        return;
    };
    let body = parts.next().unwrap_or(&[]);
    let (Ok(request_line), Ok(content_type)) = (
        std::str::from_utf8(request_line),
        std::str::from_utf8(content_type),
    ) else {
        return;
    };
    if let Some((method, target)) = request_line.split_once(' ') {
        if let Ok(status) = decode_request(method, target, content_type, body) {
            assert!((200..300).contains(&status));
        }
    }
}

/// The JSON inputs of `policy_oracle` (its other inputs are read with `arbitrary`, a fuzz-only
/// dependency): the valid policies compile, and explain agrees with the fast path everywhere.
fn policy_oracle(data: &[u8]) {
    let mut set: Vec<NetworkPolicy> = match data.first() {
        Some(b'[') => serde_json::from_slice(data).unwrap_or_default(),
        Some(b'{') => serde_json::from_slice(data)
            .map(|p| vec![p])
            .unwrap_or_default(),
        _ => return,
    };
    for np in &mut set {
        if np.metadata.namespace.as_deref().unwrap_or("").is_empty() {
            np.metadata.namespace = Some("x".to_string());
        }
    }
    set.retain(|np| validate_network_policy(np).is_empty());
    let topology = netassay_core::model::Topology::standard();
    let oracle = Oracle::new(&topology, &set).expect("valid policies compile");
    for from in 0..topology.pods.len() {
        for to in 0..topology.pods.len() {
            for port in [80, 81] {
                for protocol in Protocol::ALL {
                    let why = oracle.explain(from, to, port, protocol);
                    assert_eq!(
                        why.egress.allows() && why.ingress.allows(),
                        oracle.allows(from, to, port, protocol)
                    );
                }
            }
        }
    }
}

#[test]
fn the_committed_fuzz_corpora_replay_cleanly() {
    let targets: [Replay; 5] = [
        ("scenario_loader", scenario_loader),
        ("profile_config", profile_config),
        ("probe_batch", probe_batch),
        ("emulator_request", emulator_request),
        ("policy_oracle", policy_oracle),
    ];
    for (target, check) in targets {
        for (path, data) in corpus(target) {
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target}: {} panics", path.display());
        }
    }
}
