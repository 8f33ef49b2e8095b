//! A run report with one of everything the writers must show: a pass, fail/flapping/error/
//! unsupported/not-judged cells with an explanation, an accepted reject, an environment problem.

// Each test binary uses part of this module.
#![allow(dead_code)]

use netassay::cluster::facts::Environment;
use netassay::report::RunReport;
use netassay::runner::{Attempt, CellResult, CellStatus, StepResult};
use netassay::scenario::plan::Source;
use netassay::scenario::{Cell, ExpectedCell};
use netassay::suite::{EnvironmentProblem, RejectSummary, ScenarioOutcome, StepOutcome};
use netassay_core::model::{PodRef, Protocol, Verdict, Via};
use netassay_core::probe::Outcome;
use std::time::Duration;

pub const RUN_ID: &str = "fixture-run-0001";
/// A scenario name with characters that must be escaped in XML and HTML.
pub const TRICKY_NAME: &str = "allow <all> & \"everything\"";

/// Counts the step-granularity JUnit must have: suites, tests, failures, errors, skipped.
pub const JUNIT_STEP_COUNTS: [usize; 5] = [4, 6, 2, 2, 0];
/// The same for path granularity.
pub const JUNIT_PATH_COUNTS: [usize; 5] = [4, 68, 3, 2, 17];

const PODS: [&str; 4] = ["x/a", "x/b", "y/a", "y/b"];

fn pod(s: &str) -> PodRef {
    s.parse().expect("fixture pod")
}

pub fn cell(from: &str, to: &str, port: u16, protocol: Protocol, verdict: Verdict) -> CellResult {
    let (from, to) = (pod(from), pod(to));
    let loopback = from == to;
    let outcome = if verdict.is_allow() {
        Outcome::Connected
    } else {
        Outcome::Dropped
    };
    CellResult {
        expected: ExpectedCell {
            cell: Cell {
                from,
                to,
                port,
                port_name: None,
                protocol,
                via: Via::PodIp,
                loopback,
            },
            verdict,
            ip_dependent: false,
            source: Source::Oracle,
        },
        status: if loopback {
            CellStatus::NotJudged
        } else {
            CellStatus::Pass
        },
        attempts: vec![attempt(1, 40, outcome, "")],
        explanation: None,
        cni_account: None,
        changed: false,
        time_to_enforce: None,
        time_to_enforce_resolution: None,
    }
}

fn attempt(round: u32, at_ms: i64, outcome: Outcome, detail: &str) -> Attempt {
    Attempt {
        round,
        at_ms,
        outcome,
        detail: detail.into(),
        elapsed_ms: 4,
        peer_identity: None,
        seq: None,
    }
}

/// Every pair of PODS on one port, with `verdict` deciding each.
fn matrix(port: u16, verdict: impl Fn(&str, &str) -> Verdict) -> Vec<CellResult> {
    PODS.iter()
        .flat_map(|f| PODS.iter().map(move |t| (*f, *t)))
        .map(|(f, t)| cell(f, t, port, Protocol::Tcp, verdict(f, t)))
        .collect()
}

fn step(name: &str, cells: Vec<CellResult>, tte_ms: Option<u64>) -> StepOutcome {
    StepOutcome {
        name: name.into(),
        result: StepResult {
            cells,
            time_to_enforce: tte_ms.map(Duration::from_millis),
            time_to_enforce_resolution: tte_ms.map(|_| Duration::from_millis(50)),
            changed_cells: 0,
            time_to_enforce_disturbed: 0,
            series_ended_before_changes: false,
            rounds: 3,
            resilience: Default::default(),
            load: Default::default(),
        },
        rejects: vec![],
        inventory: None,
    }
}

fn scenario(name: &str, tags: &[&str], steps: Vec<StepOutcome>) -> ScenarioOutcome {
    ScenarioOutcome {
        name: name.into(),
        file: format!("scenarios/core/{}.yaml", name.replace(' ', "-")),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        intent: false,
        baseline: None,
        steps,
        environment: None,
    }
}

pub fn report() -> RunReport {
    let passing = scenario(
        TRICKY_NAME,
        &["core", "upstream"],
        vec![step(
            "allow everything",
            matrix(80, |_, _| Verdict::Allow),
            Some(180),
        )],
    );

    // deny ingress into x: y -> x is denied, everything else allowed.
    let deny = |_: &str, t: &str| Verdict::from_allowed(!t.starts_with("x/"));
    let mut cells = matrix(80, |f, t| {
        if f.starts_with("y/") {
            deny(f, t)
        } else {
            Verdict::Allow
        }
    });
    let wrong = cells
        .iter_mut()
        .find(|c| c.expected.cell.from == pod("y/a") && c.expected.cell.to == pod("x/a"))
        .expect("y/a -> x/a");
    wrong.status = CellStatus::Fail;
    wrong.attempts = vec![
        attempt(1, 30, Outcome::Connected, "greeting from x/a"),
        attempt(2, 1030, Outcome::Connected, "greeting from x/a"),
        attempt(3, 5030, Outcome::Connected, "greeting from x/a"),
    ];
    wrong.explanation = Some("ingress isolated by x/deny-from-y and no rule admits it".into());
    wrong.cni_account = Some(
        "Hubble: 0 dropped, 3 forwarded since the step began; last: FORWARDED at ingress".into(),
    );
    let flap = cells
        .iter_mut()
        .find(|c| c.expected.cell.from == pod("y/b") && c.expected.cell.to == pod("x/b"))
        .expect("y/b -> x/b");
    flap.status = CellStatus::Flapping;
    flap.attempts = vec![
        attempt(1, 30, Outcome::Dropped, "timeout after 1s"),
        attempt(4, 6000, Outcome::Connected, "greeting from x/b"),
    ];
    flap.explanation = Some("ingress isolated by x/deny-from-y and no rule admits it".into());
    let err = cells
        .iter_mut()
        .find(|c| c.expected.cell.from == pod("x/a") && c.expected.cell.to == pod("y/b"))
        .expect("x/a -> y/b");
    err.status = CellStatus::Error;
    err.attempts = vec![
        attempt(1, 30, Outcome::WrongPeer, "answered by z/c, expected y/b"),
        attempt(2, 1030, Outcome::WrongPeer, "answered by z/c, expected y/b"),
    ];
    let mut sctp = cell("x/a", "x/b", 80, Protocol::Sctp, Verdict::Allow);
    sctp.status = CellStatus::Unsupported;
    sctp.attempts = vec![attempt(
        1,
        30,
        Outcome::Unsupported,
        "SCTP: protocol not supported",
    )];
    cells.push(sctp);
    let failing = scenario(
        "deny ingress from y",
        &["core", "ingress"],
        vec![
            step("deny from y", cells, None),
            step(
                "allow everything again",
                matrix(81, |_, _| Verdict::Allow),
                Some(950),
            ),
        ],
    );

    let mut reject_step = step(
        "apply invalid policy",
        matrix(80, |_, _| Verdict::Allow),
        Some(20),
    );
    reject_step.rejects = vec![
        RejectSummary {
            policy: "x/port-out-of-range".into(),
            refused: true,
            detail: "spec.ingress[0].ports[0].port: Invalid value: 70000".into(),
        },
        RejectSummary {
            policy: "x/endport-below-port".into(),
            refused: false,
            detail: "created without error".into(),
        },
    ];
    let rejects = scenario(
        "invalid policies are refused",
        &["extended"],
        vec![reject_step],
    );

    let mut broken = scenario("fixture never became ready", &["extended"], vec![]);
    broken.environment = Some(EnvironmentProblem {
        what: "pods not ready after 120s: y/b ImagePullBackOff".into(),
    });

    RunReport {
        run_id: RUN_ID.into(),
        netassay_version: "0.1.0".into(),
        started: "2025-06-01T12:00:00Z".into(),
        elapsed_ms: 42_000,
        sandbox: false,
        sandbox_faults: vec![],
        profiles: vec!["core".into(), "extended".into()],
        environment: Environment {
            kubernetes_version: "v1.33.1".into(),
            nodes: 3,
            cni: "cilium v1.16.3".into(),
            cni_mode: String::new(),
        },
        scenarios: vec![passing, failing, rejects, broken],
    }
}

/// Fails in CI, skips elsewhere, when a tool the test needs is missing.
pub fn missing(tool: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{tool} is required in CI (.ci/run installs it)"
    );
    eprintln!("skipped: {tool} is not installed");
}
