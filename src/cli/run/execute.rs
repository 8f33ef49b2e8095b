//! Phase 4: the scenarios on fixtures, as libtest-style trials (filters, `--skip`, threads),
//! `--parallel` fixtures at a time.

use super::args::RunArgs;
use super::cluster::Cluster;
use super::progress::{self, log_line};
use super::select::test_args;
use crate::cluster::manifest::FixtureOptions;
use crate::report::conformance::{
    no_evidence_reason, scenario_verdict, shortfall, ScenarioVerdict, Shortfall,
};
use crate::runner::Judging;
use crate::scenario::Scenario;
use crate::suite::{Pool, ScenarioOutcome, SuiteOptions};
use anyhow::Context;
use netassay_core::probe::DenyRule;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// What running the scenarios left: their outcomes (in completion order) and whether the test
/// runner counted a failure.
pub(super) struct Executed {
    pub outcomes: Vec<ScenarioOutcome>,
    pub runner_failed: bool,
}

/// How fixtures are built and steps judged, from the command line; checked before any cluster
/// is touched.
pub(super) fn suite_options(args: &RunArgs) -> anyhow::Result<SuiteOptions> {
    let mut node_selector = BTreeMap::new();
    for kv in &args.node_selector {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--node-selector {kv:?}: expected k=v"))?;
        node_selector.insert(k.to_string(), v.to_string());
    }
    let judging = Judging {
        deny_rule: if args.deny_must_drop {
            DenyRule::DroppedOnly
        } else {
            DenyRule::DroppedOrRejected
        },
        judge_loopback: args.judge_loopback,
        converge_timeout: args.converge_timeout,
        confirm_rounds: args.confirm_rounds,
        ..Judging::default()
    };
    let expires = k8s_openapi::jiff::Timestamp::now()
        .checked_add(k8s_openapi::jiff::SignedDuration::from_hours(6))
        .map(|t| t.to_string())
        .unwrap_or_default();
    Ok(SuiteOptions {
        judging,
        probe_timeout: args.probe_timeout,
        ready_timeout: args.ready_timeout,
        via: (!args.via.is_empty()).then(|| args.via.clone()),
        fixture: FixtureOptions {
            image: args.image.clone(),
            image_pull_secret: args.image_pull_secret.clone(),
            node_selector,
            expires,
        },
        keep: args.keep,
        outside: None,
        witness: None,
    })
}

/// Runs every scenario on the cluster, each as one trial, and shuts the fixture pool down.
pub(super) fn execute(
    args: &RunArgs,
    rt: &tokio::runtime::Runtime,
    cluster: &Cluster,
    run_id: &str,
    mut options: SuiteOptions,
    scenarios: Vec<Scenario>,
) -> anyhow::Result<Executed> {
    options.outside = cluster.outside_vantage(args, &scenarios)?;
    options.witness = cluster
        .sandbox
        .lock()
        .ok()
        .and_then(|s| s.as_ref().and_then(|s| s.hubble()));
    let bar = progress::bar(scenarios.len());
    let bar_for_log = bar.clone();
    let pool = Arc::new(
        Pool::new(
            cluster.client.clone(),
            run_id,
            args.parallel,
            options,
            Box::new(move |m| match &bar_for_log {
                Some(pb) => pb.set_message(m),
                None => log_line(m),
            }),
        )
        .with_client_config(cluster.config.clone()),
    );
    let outcomes: Arc<Mutex<Vec<ScenarioOutcome>>> = Arc::new(Mutex::new(Vec::new()));
    let handle = rt.handle().clone();
    let trials = scenarios
        .into_iter()
        .map(|s| {
            let pool = pool.clone();
            let outcomes = outcomes.clone();
            let handle = handle.clone();
            let bar = bar.clone();
            let kind = s.tags.first().cloned().unwrap_or_default();
            let strict = args.strict;
            libtest_mimic::Trial::ignorable_test(s.name.clone(), move || {
                let o = handle.block_on(pool.run(&s));
                if let Some(pb) = &bar {
                    pb.inc(1);
                }
                let shown = trial_result(&o, strict);
                if let Ok(mut v) = outcomes.lock() {
                    v.push(o);
                }
                shown
            })
            .with_kind(kind)
        })
        .collect();
    let conclusion = libtest_mimic::run(&test_args(args), trials);
    if let Some(pb) = &bar {
        pb.finish_and_clear();
    }
    rt.block_on(pool.shutdown());
    let outcomes = outcomes.lock().map(|v| v.clone()).unwrap_or_default();
    Ok(Executed {
        outcomes,
        runner_failed: conclusion.has_failed(),
    })
}

/// How the test runner shows one scenario (DESIGN §7b): passed is ok; a mismatch, probe errors
/// or an environment problem fail; a scenario with a step that judged nothing is ignored with
/// the reason, or fails under `--strict`.
pub(super) fn trial_result(
    o: &ScenarioOutcome,
    strict: bool,
) -> Result<libtest_mimic::Completion, libtest_mimic::Failed> {
    match (scenario_verdict(o), shortfall(o)) {
        (ScenarioVerdict::Passed, _) => Ok(libtest_mimic::Completion::Completed),
        (ScenarioVerdict::Incomplete, Some(Shortfall::NoEvidence)) if !strict => Ok(
            libtest_mimic::Completion::ignored_with(no_evidence_reason(o)),
        ),
        (ScenarioVerdict::Incomplete, Some(Shortfall::NoEvidence)) => Err(format!(
            "incomplete, and --strict counts that as a failure: {}",
            crate::report::scenario_summary(o, false).trim_end()
        )
        .into()),
        _ => Err(crate::report::scenario_summary(o, false).into()),
    }
}
