//! `netassay run` (the main job), `netassay cleanup` and `netassay sandbox up|down`.

use super::exit;
use crate::cluster::cleanup::{cleanup as cleanup_run, Selection};
use crate::cluster::facts::{self, Environment};
use crate::cluster::lock::RunLock;
use crate::cluster::manifest::FixtureOptions;
use crate::cluster::{client_with_retries, connect, load_config, new_run_id, ApiTally};
use crate::model::Via;
use crate::probe::DenyRule;
use crate::report::conformance::{
    no_evidence_reason, scenario_verdict, shortfall, ScenarioVerdict, Shortfall,
};
use crate::runner::suite::{Pool, ScenarioOutcome, SuiteOptions};
use crate::runner::Judging;
use crate::sandbox::node::components::{Enforcer, ServiceProxy};
use crate::sandbox::{ControlPlane, FaultSet, Preset, Sandbox, SandboxOptions};
use crate::scenario::{builtin, load_paths, Scenario};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 500ms, 1s or 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s or m)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[arg(long)]
    pub context: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Run against the built-in sandbox cluster (root, Linux) instead of a kubeconfig.
    #[arg(long)]
    pub sandbox: bool,
    /// Make the sandbox misbehave like a buggy CNI (repeatable): none, ingress-only, egress-only,
    /// ignore-named-ports, ignore-endport, ignore-except, tcp-only, ignore-namespace-selector,
    /// late[=5s], flaky, ignore-updates, ignore-relabel; with `--sandbox-preset k8tre`, also the
    /// TRE configuration mistakes k8tre-allow-all, k8tre-ports-only-egress, k8tre-nodeport.
    /// Or like a hostile control plane, combinable with all of these: api-errors, exec-resets,
    /// pod-restarts, slow-api (the reference cluster's node carries exec-resets and
    /// pod-restarts; api-errors and slow-api are the emulator's API's).
    #[arg(long = "sandbox-fault", value_name = "NAME", requires = "sandbox")]
    pub sandbox_faults: Vec<String>,
    /// Make the sandbox look like a configured cluster: `k8tre` adds a TRE's cluster-wide
    /// policies to every persona namespace, a gateway on the node address and cluster DNS.
    #[arg(long = "sandbox-preset", value_name = "NAME", requires = "sandbox")]
    pub sandbox_preset: Option<Preset>,
    #[command(flatten)]
    pub sandbox_backend: SandboxBackendArgs,
    /// Certification runs: a scenario that could not be judged (e.g. every cell on a protocol
    /// the cluster lacks, or a step that judged nothing) makes the run fail (exit 1) instead of
    /// being reported as ignored.
    #[arg(long)]
    pub strict: bool,
    /// The profile config of intent profiles (k8tre): persona labels, external endpoints,
    /// gateway, allowed exposures. Default: the built-in one, which describes the sandbox's
    /// k8tre preset. See scenarios/k8tre/profile-config.yaml.
    #[arg(long = "profile-config", value_name = "FILE")]
    pub profile_config: Option<PathBuf>,
    /// Built-in profiles to run (comma-separated): core, extended, k8tre.
    #[arg(long, value_delimiter = ',', default_value = "core")]
    pub profile: Vec<String>,
    /// Also run the scenario files in these directories (repeatable).
    #[arg(long = "scenarios", value_name = "DIR")]
    pub scenarios: Vec<PathBuf>,
    /// Only scenarios whose name contains one of these (exactly equals, with --exact).
    pub filter: Vec<String>,
    /// Skip scenarios whose name contains PAT (repeatable).
    #[arg(long)]
    pub skip: Vec<String>,
    /// FILTER and --skip must match names exactly.
    #[arg(long)]
    pub exact: bool,
    /// List the selected scenarios and exit.
    #[arg(long)]
    pub list: bool,
    /// Fixtures (deployed topologies) probed at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// How long one probe waits for an answer.
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub probe_timeout: Duration,
    /// How long disagreeing cells are re-probed before they count as wrong.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub converge_timeout: Duration,
    /// Full re-probes after agreement; any flip is a failure (flapping).
    #[arg(long, default_value_t = 1)]
    pub confirm_rounds: u32,
    /// Probe through these address kinds (comma-separated): pod-ip, service-ip, service-dns.
    #[arg(long, value_delimiter = ',')]
    pub via: Vec<Via>,
    /// Denied traffic must be dropped (a TCP reset or ICMP unreachable counts as a failure).
    #[arg(long)]
    pub deny_must_drop: bool,
    /// Judge loopback cells (a pod to itself) too; CNIs differ, so they are only reported by default.
    #[arg(long)]
    pub judge_loopback: bool,
    /// Image of the probe pods (the netassay binary); ignored by the sandbox.
    #[arg(long, default_value = "ghcr.io/netassay/netassay:latest")]
    pub image: String,
    /// Image pull secret for the probe pods.
    #[arg(long)]
    pub image_pull_secret: Option<String>,
    /// Node selector for the probe pods, k=v (repeatable).
    #[arg(long, value_name = "K=V")]
    pub node_selector: Vec<String>,
    /// How long probe pods may take to become Ready.
    #[arg(long, default_value = "120s", value_parser = duration)]
    pub ready_timeout: Duration,
    /// Leave the fixtures in the cluster afterwards (remove them with `netassay cleanup --run ID`).
    #[arg(long)]
    pub keep: bool,
    /// Write the results as JSON (schema netassay.results/v1).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write JUnit XML (one testsuite per scenario, one testcase per step).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// JUnit testcases per `step`, or per `path` (step, from, to, port, protocol).
    #[arg(long, default_value = "step", value_name = "step|path")]
    pub junit_granularity: crate::report::Granularity,
    /// Write the self-contained HTML sign-off report.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write the conformance report (YAML, Gateway API style).
    #[arg(long, value_name = "FILE")]
    pub conformance: Option<PathBuf>,
    /// Write every report into DIR (junit.xml, results.json, report.html, conformance.yaml).
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
    /// Write results for Sonobuoy (also implied by SONOBUOY_RESULTS_DIR).
    #[arg(long)]
    pub sonobuoy: bool,
    /// The implementation named in the conformance report, NAME[:VERSION] (default: the detected CNI).
    #[arg(long, value_name = "NAME[:VERSION]")]
    pub implementation: Option<String>,
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Remove everything of this run id.
    #[arg(long, conflicts_with = "all_expired")]
    pub run: Option<String>,
    /// Remove every netassay namespace whose expiry annotation has passed.
    #[arg(long)]
    pub all_expired: bool,
}

/// Which control plane the sandbox's node runs under (`run --sandbox` and `sandbox up`).
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxBackendArgs {
    /// The sandbox's API: `emulator` (built in, starts in milliseconds, needs nothing) or
    /// `kubernetes` (the reference cluster: real etcd, kube-apiserver and
    /// kube-controller-manager built by scripts/reference-cluster/build.sh, ~8 s to start,
    /// ~430 MiB; netassay then runs as the least-privilege ServiceAccount of
    /// manifests/rbac.yaml). netassay's node agent is the kubelet of both.
    #[arg(long = "sandbox-control-plane", value_name = "NAME", default_value_t = ControlPlane::Emulator)]
    pub control_plane: ControlPlane,
    /// Where the reference cluster's binaries are. Default: $NETASSAY_SANDBOX_BIN_DIR, else
    /// target/reference-cluster/bin (where the build script puts them).
    #[arg(long = "sandbox-bin-dir", value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Who enforces NetworkPolicy on the sandbox's node: `netassay` (its nftables compiler,
    /// where the fault profiles live) or `kube-network-policies` (the upstream SIG-Network
    /// reference enforcer, NFQUEUE-based; needs `--sandbox-control-plane kubernetes`, no
    /// --sandbox-fault, and a kernel with the nftables `queue` expression).
    #[arg(long = "sandbox-enforcer", value_name = "NAME", default_value_t = Enforcer::Netassay)]
    pub enforcer: Enforcer,
    /// Who programs Service addresses on the node: `netassay` or `kube-proxy` (the real one,
    /// nftables mode, from the real EndpointSlices; needs `--sandbox-control-plane kubernetes`).
    #[arg(long = "sandbox-proxy", value_name = "NAME", default_value_t = ServiceProxy::Netassay)]
    pub proxy: ServiceProxy,
}

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Start a sandbox in the foreground and print its kubeconfig; Ctrl-C removes it.
    Up {
        #[command(flatten)]
        backend: SandboxBackendArgs,
        /// Fault profiles, as for `run --sandbox-fault`.
        #[arg(long = "sandbox-fault", value_name = "NAME")]
        faults: Vec<String>,
        /// A preset, as for `run --sandbox-preset` (k8tre).
        #[arg(long = "sandbox-preset", value_name = "NAME")]
        preset: Option<Preset>,
    },
    /// Remove what sandboxes whose process is gone left behind (netns, links, tables).
    Down,
}

fn faults(names: &[String]) -> anyhow::Result<FaultSet> {
    let mut set = FaultSet::new();
    for n in names {
        set.insert_name(n)
            .map_err(|e| anyhow::anyhow!("--sandbox-fault {n:?}: {e}"))?;
    }
    Ok(set)
}

/// How this run reaches "outside the cluster": the sandbox's outside host, or this machine
/// when the profile says netassay runs outside the cluster.
fn outside_vantage(
    args: &RunArgs,
    scenarios: &[Scenario],
    sandbox: &Arc<Mutex<Option<Sandbox>>>,
) -> anyhow::Result<Option<Vec<String>>> {
    let exe = std::env::current_exe()
        .context("finding the netassay executable for probes from outside the cluster")?
        .display()
        .to_string();
    if args.sandbox {
        let prefix = sandbox
            .lock()
            .ok()
            .and_then(|s| s.as_ref().map(Sandbox::outside_command));
        return Ok(prefix.map(|mut p| {
            p.push(exe);
            p
        }));
    }
    let local = scenarios
        .iter()
        .filter_map(|s| s.profile.as_ref())
        .any(|p| p.outside == crate::scenario::profile::OutsideVantage::Local);
    // Inside a pod, "this machine" is not outside the cluster.
    if local && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        log_line(
            "running inside a pod: there is no vantage point outside the cluster, so paths from \
             outside are reported as not judged (profile config outside.vantage: local needs a run \
             from outside the cluster)"
                .into(),
        );
        return Ok(None);
    }
    Ok(local.then(|| vec![exe]))
}

fn log_line(msg: String) {
    eprintln!("[netassay] {msg}");
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn select(args: &RunArgs) -> Result<Vec<Scenario>, u8> {
    for p in &args.profile {
        if !builtin::PROFILES.contains(&p.as_str()) {
            eprintln!(
                "netassay: --profile {p:?}: known profiles are {}",
                builtin::PROFILES.join(", ")
            );
            return Err(exit::BAD_INPUT);
        }
    }
    let mut all = match builtin::select(&args.profile) {
        Ok(s) => s,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return Err(exit::BAD_INPUT);
        }
    };
    if !args.scenarios.is_empty() {
        match load_paths(&args.scenarios) {
            Ok(s) => all.extend(s),
            Err(errors) => {
                for e in errors {
                    eprintln!("{e}");
                }
                return Err(exit::BAD_INPUT);
            }
        }
    }
    // Intent scenarios that need a profile config are bound to it here. The built-in config
    // describes the sandbox's TRE preset; on a real cluster it would test made-up addresses.
    if !args.sandbox
        && !args.list
        && args.profile_config.is_none()
        && all.iter().any(Scenario::needs_profile)
    {
        let names: Vec<&str> = all
            .iter()
            .filter(|s| s.needs_profile())
            .map(|s| s.name.as_str())
            .take(3)
            .collect();
        eprintln!(
            "netassay: {} need --profile-config FILE: what personas, external endpoints, the \
             gateway and allowed exposures are in this cluster (the built-in config describes \
             only the sandbox). Start from scenarios/k8tre/profile-config.yaml.",
            names.join(", ")
        );
        return Err(exit::BAD_INPUT);
    }
    if let Err(errors) = crate::scenario::bind_profiles(&mut all, args.profile_config.as_deref()) {
        for e in errors {
            eprintln!("{e}");
        }
        return Err(exit::BAD_INPUT);
    }
    if args.filter.len() > 1 {
        all.retain(|s| {
            args.filter.iter().any(|f| {
                if args.exact {
                    s.name == *f
                } else {
                    s.name.contains(f.as_str())
                }
            })
        });
    }
    Ok(all)
}

fn test_args(args: &RunArgs) -> libtest_mimic::Arguments {
    libtest_mimic::Arguments {
        // One filter goes to the test runner (it reports "N filtered out"); several are applied
        // by `select` before.
        filter: (args.filter.len() == 1).then(|| args.filter[0].clone()),
        skip: args.skip.clone(),
        exact: args.exact,
        list: args.list,
        test_threads: Some(args.parallel.max(1)),
        ..libtest_mimic::Arguments::default()
    }
}

pub fn run(args: RunArgs) -> anyhow::Result<u8> {
    let scenarios = match select(&args) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    if args.list {
        let trials = scenarios
            .iter()
            .map(|s| {
                libtest_mimic::Trial::test(s.name.clone(), || Ok(()))
                    .with_kind(s.tags.first().cloned().unwrap_or_default())
            })
            .collect();
        let _ = libtest_mimic::run(&test_args(&args), trials);
        return Ok(exit::OK);
    }
    let fault_set = faults(&args.sandbox_faults)?;
    let mut node_selector = BTreeMap::new();
    for kv in &args.node_selector {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--node-selector {kv:?}: expected k=v"))?;
        node_selector.insert(k.to_string(), v.to_string());
    }
    let rt = runtime()?;
    let started = Instant::now();
    let started_at = k8s_openapi::jiff::Timestamp::now().to_string();
    let run_id = new_run_id();
    log_line(format!(
        "run {run_id}: {} scenario(s) selected",
        scenarios.len()
    ));

    // The cluster: the sandbox, or a kubeconfig.
    let sandbox: Arc<Mutex<Option<Sandbox>>> = Arc::new(Mutex::new(None));
    let kubeconfig = if args.sandbox {
        log_line("starting the sandbox cluster".into());
        let options = SandboxOptions {
            faults: fault_set.clone(),
            preset: args.sandbox_preset,
            control_plane: args.sandbox_backend.control_plane,
            bin_dir: args.sandbox_backend.bin_dir.clone(),
            enforcer: args.sandbox_backend.enforcer,
            proxy: args.sandbox_backend.proxy,
        };
        if let Err(e) = options.validate() {
            eprintln!("netassay: {e}");
            return Ok(exit::BAD_INPUT);
        }
        match rt.block_on(Sandbox::start_with(options)) {
            Ok(s) => {
                let path = s.kubeconfig().to_path_buf();
                log_line(format!(
                    "sandbox instance {} with its API at {} ({})",
                    s.instance(),
                    s.url(),
                    match s.kubernetes_version() {
                        Some(v) => format!("reference cluster, Kubernetes {v}"),
                        None => "emulator".to_string(),
                    }
                ));
                if let Ok(mut slot) = sandbox.lock() {
                    *slot = Some(s);
                }
                Some(path)
            }
            Err(e) => return Ok(environment_failure(&args, &e.to_string())),
        }
    } else {
        args.cluster.kubeconfig.clone()
    };
    let stop_sandbox = |rt: &tokio::runtime::Runtime, sandbox: &Arc<Mutex<Option<Sandbox>>>| {
        let s = sandbox.lock().ok().and_then(|mut s| s.take());
        if let Some(s) = s {
            rt.block_on(s.stop());
        }
    };

    let connected = rt.block_on(async {
        let config = load_config(kubeconfig.as_deref(), args.cluster.context.as_deref()).await?;
        let client = client_with_retries(config.clone(), &ApiTally::default())
            .map_err(|e| crate::cluster::ClusterError::api("building the client", e))?;
        Ok::<_, crate::cluster::ClusterError>((config, client))
    });
    let (client_config, client) = match connected {
        Ok(c) => c,
        Err(e) => {
            stop_sandbox(&rt, &sandbox);
            return Ok(environment_failure(&args, &e.to_string()));
        }
    };
    if let Err(e) = rt.block_on(client.apiserver_version()) {
        stop_sandbox(&rt, &sandbox);
        return Ok(environment_failure(
            &args,
            &format!("the cluster is not reachable: {e}"),
        ));
    }
    let lock = match rt.block_on(RunLock::acquire(client.clone(), &run_id)) {
        Ok(l) => Arc::new(l),
        Err(e) => {
            stop_sandbox(&rt, &sandbox);
            return Ok(environment_failure(&args, &e.to_string()));
        }
    };
    let renewer = {
        let lock = lock.clone();
        rt.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(20)).await;
                if let Err(e) = lock.renew().await {
                    log_line(format!("run lock: {e}"));
                }
            }
        })
    };
    let environment: Environment = rt.block_on(facts::gather(&client));
    log_line(format!(
        "cluster: Kubernetes {}, {} node(s), CNI {}",
        environment.kubernetes_version, environment.nodes, environment.cni
    ));

    // Ctrl-C / SIGTERM: stop, delete everything of the run, exit 130.
    {
        let client = client.clone();
        let run_id = run_id.clone();
        let sandbox = sandbox.clone();
        let lock = lock.clone();
        rt.spawn(async move {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(_) => return,
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            log_line("interrupted: deleting everything of this run".into());
            if let Err(e) = cleanup_run(&client, &Selection::Run(run_id)).await {
                log_line(format!("cleanup: {e}"));
            }
            let _ = lock.renew().await; // no-op if lost; release below needs ownership
            let s = sandbox.lock().ok().and_then(|mut s| s.take());
            if let Some(s) = s {
                s.stop().await;
            }
            std::process::exit(i32::from(exit::INTERRUPTED));
        });
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
    let options = SuiteOptions {
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
        outside: outside_vantage(&args, &scenarios, &sandbox)?,
    };
    // On a terminal: a live progress line (scenarios done, and the latest fixture/pods/step
    // news). Otherwise, or with NETASSAY_VERBOSE: plain log lines.
    let plain = !std::io::stderr().is_terminal() || std::env::var_os("NETASSAY_VERBOSE").is_some();
    let bar = (!plain).then(|| {
        let pb = indicatif::ProgressBar::new(scenarios.len() as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] scenarios {pos}/{len} {wide_msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        pb.enable_steady_tick(Duration::from_millis(200));
        pb
    });
    let bar_for_log = bar.clone();
    let pool = Arc::new(
        Pool::new(
            client.clone(),
            &run_id,
            args.parallel,
            options,
            Box::new(move |m| match &bar_for_log {
                Some(pb) => pb.set_message(m),
                None => log_line(m),
            }),
        )
        .with_client_config(client_config),
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
    let conclusion = libtest_mimic::run(&test_args(&args), trials);

    if let Some(pb) = &bar {
        pb.finish_and_clear();
    }
    rt.block_on(pool.shutdown());
    renewer.abort();
    if let Ok(l) = Arc::try_unwrap(lock) {
        if let Err(e) = rt.block_on(l.release()) {
            log_line(format!("run lock: {e}"));
        }
    }
    let outcomes = outcomes.lock().map(|v| v.clone()).unwrap_or_default();
    let report = crate::report::RunReport {
        run_id: run_id.clone(),
        netassay_version: env!("CARGO_PKG_VERSION").to_string(),
        started: started_at,
        elapsed_ms: started.elapsed().as_millis() as u64,
        sandbox: args.sandbox,
        sandbox_faults: args.sandbox_faults.clone(),
        profiles: args.profile.clone(),
        environment,
        scenarios: outcomes.clone(),
    };
    if let Some(rows) = crate::report::statements::k8tre(&report) {
        print!("{}", crate::report::statements::render_text(&rows));
    }
    let outputs = report_outputs(&args);
    match crate::report::write_all(&report, &outputs) {
        Ok(files) => {
            for f in files {
                log_line(format!("wrote {}", f.display()));
            }
        }
        Err(e) => log_line(format!("reports: {e}")),
    }
    let stats = crate::runner::suite::run_enforce_stats(&outcomes);
    log_line(stats.summary());
    let resilience = crate::runner::suite::run_resilience(&outcomes);
    if !resilience.is_quiet() {
        log_line(format!(
            "the control plane made netassay try again: {} (none of it is a verdict)",
            resilience.summary()
        ));
    }
    let tally = Tally::of(&outcomes);
    println!("{}", tally.line());
    log_line(format!(
        "run {run_id} took {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    stop_sandbox(&rt, &sandbox);
    let (code, why) = exit_code(&tally, conclusion.has_failed(), args.strict);
    if let Some(why) = why {
        eprintln!("netassay: {why}");
    }
    Ok(code)
}

/// How the test runner shows one scenario (DESIGN §7b): passed is ok; a mismatch, probe errors
/// or an environment problem fail; a scenario with a step that judged nothing is ignored with
/// the reason, or fails under `--strict`.
fn trial_result(
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

/// Scenarios by how they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    passed: usize,
    failed: usize,
    /// Incomplete for lack of evidence (unsupported, not judged).
    unjudged: usize,
    /// Incomplete because probes kept failing.
    errors: usize,
    environment: usize,
}

impl Tally {
    fn of(outcomes: &[ScenarioOutcome]) -> Self {
        let mut t = Tally::default();
        for o in outcomes {
            match (scenario_verdict(o), shortfall(o)) {
                (ScenarioVerdict::Passed, _) => t.passed += 1,
                (ScenarioVerdict::Failed, _) => t.failed += 1,
                (_, Some(Shortfall::Environment)) => t.environment += 1,
                (_, Some(Shortfall::ProbeErrors)) => t.errors += 1,
                (_, _) => t.unjudged += 1,
            }
        }
        t
    }

    /// Scenarios that were judged (passed or failed).
    fn judged(&self) -> usize {
        self.passed + self.failed
    }

    fn line(&self) -> String {
        format!(
            "scenarios: {} passed, {} failed, {} incomplete (nothing judged in a step: {}; probe \
             errors: {}; environment: {})",
            self.passed,
            self.failed,
            self.unjudged + self.errors + self.environment,
            self.unjudged,
            self.errors,
            self.environment
        )
    }
}

/// The exit code of a finished run (README, exit codes), and what to say about it. The
/// environment comes first (3), then anything the test runner failed (1: mismatches, probe
/// errors, and incomplete scenarios under `--strict`); a run that judged nothing at all never
/// exits 0.
fn exit_code(t: &Tally, runner_failed: bool, strict: bool) -> (u8, Option<String>) {
    if *t == Tally::default() && !runner_failed {
        (
            exit::BAD_INPUT,
            Some("no scenario was selected: check FILTER, --skip and --profile".into()),
        )
    } else if t.environment > 0 {
        (exit::ENVIRONMENT, None)
    } else if runner_failed || t.failed > 0 || t.errors > 0 {
        let why = (strict && t.unjudged > 0 && t.failed == 0 && t.errors == 0).then(|| {
            format!(
                "--strict: {} scenario(s) could not be judged, so the run is not conformant",
                t.unjudged
            )
        });
        (exit::MISMATCH, why)
    } else if t.judged() == 0 {
        (
            exit::ENVIRONMENT,
            Some(format!(
                "nothing was judged: {} scenario(s) ran and none had evidence (see the reasons above)",
                t.unjudged
            )),
        )
    } else {
        (exit::OK, None)
    }
}

fn report_outputs(args: &RunArgs) -> crate::report::Outputs {
    crate::report::Outputs {
        junit: args.junit.clone(),
        junit_granularity: args.junit_granularity,
        json: args.json.clone(),
        html: args.html.clone(),
        conformance: args.conformance.clone(),
        report_dir: args.report_dir.clone(),
        sonobuoy_dir: crate::report::sonobuoy::results_dir_from_env(args.sonobuoy),
        implementation: args.implementation.clone(),
    }
}

/// An unusable environment still tells Sonobuoy (which would otherwise wait for its timeout).
fn environment_failure(args: &RunArgs, message: &str) -> u8 {
    eprintln!("netassay: {message}");
    if let Some(dir) = crate::report::sonobuoy::results_dir_from_env(args.sonobuoy) {
        if let Err(e) = crate::report::sonobuoy::write_error(&dir, message) {
            eprintln!("netassay: sonobuoy results: {e}");
        }
    }
    exit::ENVIRONMENT
}

pub fn cleanup(args: CleanupArgs) -> anyhow::Result<u8> {
    let sel = match (&args.run, args.all_expired) {
        (Some(r), _) => Selection::Run(r.clone()),
        (None, true) => Selection::Expired,
        (None, false) => anyhow::bail!("say what to remove: --run ID or --all-expired"),
    };
    let rt = runtime()?;
    let client = match rt.block_on(connect(
        args.cluster.kubeconfig.as_deref(),
        args.cluster.context.as_deref(),
    )) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("netassay: {e}");
            return Ok(exit::ENVIRONMENT);
        }
    };
    match rt.block_on(cleanup_run(&client, &sel)) {
        Ok(removed) => {
            for n in &removed {
                println!("deleted namespace {n}");
            }
            println!("{} namespace(s) deleted", removed.len());
            Ok(exit::OK)
        }
        Err(e) => {
            eprintln!("netassay: {e}");
            Ok(exit::ENVIRONMENT)
        }
    }
}

pub fn sandbox(cmd: SandboxCommand) -> anyhow::Result<u8> {
    match cmd {
        SandboxCommand::Up {
            backend,
            faults: names,
            preset,
        } => {
            let options = SandboxOptions {
                faults: faults(&names)?,
                preset,
                control_plane: backend.control_plane,
                bin_dir: backend.bin_dir,
                enforcer: backend.enforcer,
                proxy: backend.proxy,
            };
            if let Err(e) = options.validate() {
                eprintln!("netassay: {e}");
                return Ok(exit::BAD_INPUT);
            }
            let rt = runtime()?;
            rt.block_on(async move {
                let s = match Sandbox::start_with(options).await {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("netassay: {e}");
                        return Ok(exit::ENVIRONMENT);
                    }
                };
                println!("{}", s.admin_kubeconfig().display());
                if s.admin_kubeconfig() != s.kubeconfig() {
                    eprintln!(
                        "netassay's own least-privilege kubeconfig (ServiceAccount netassay/netassay, manifests/rbac.yaml): {}",
                        s.kubeconfig().display()
                    );
                }
                eprintln!(
                    "sandbox instance {} with its API at {} ({}); use it with KUBECONFIG={} (Ctrl-C stops it and removes everything)",
                    s.instance(),
                    s.url(),
                    match s.kubernetes_version() {
                        Some(v) => format!("reference cluster, Kubernetes {v}"),
                        None => "emulator".to_string(),
                    },
                    s.admin_kubeconfig().display()
                );
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                s.stop().await;
                Ok(exit::OK)
            })
        }
        SandboxCommand::Down => {
            let removed = crate::sandbox::dataplane::netns::NetnsDataplane::sweep_dead()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "removed {} abandoned sandbox instance(s){}",
                removed.len(),
                if removed.is_empty() {
                    String::new()
                } else {
                    format!(": {}", removed.join(", "))
                }
            );
            Ok(exit::OK)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // README, exit codes: 0 only when nothing failed and something was judged; --strict fails
    // incomplete runs; the environment comes first.
    #[test]
    fn exit_codes_follow_the_evidence_rule() {
        let t = |passed, failed, unjudged, errors, environment| Tally {
            passed,
            failed,
            unjudged,
            errors,
            environment,
        };
        let cases = [
            // (tally, runner failed, strict, code)
            (t(46, 0, 2, 0, 0), false, false, exit::OK),
            (t(46, 0, 2, 0, 0), true, true, exit::MISMATCH),
            (t(48, 0, 0, 0, 0), false, true, exit::OK),
            (t(40, 1, 2, 0, 0), true, false, exit::MISMATCH),
            (t(40, 0, 0, 1, 0), true, false, exit::MISMATCH),
            (t(0, 0, 3, 0, 0), false, false, exit::ENVIRONMENT),
            (t(0, 0, 3, 0, 0), true, true, exit::MISMATCH),
            (t(40, 1, 0, 0, 1), true, false, exit::ENVIRONMENT),
            (t(0, 0, 0, 0, 0), false, false, exit::BAD_INPUT),
        ];
        for (tally, failed, strict, want) in cases {
            let (code, _) = exit_code(&tally, failed, strict);
            assert_eq!(
                code, want,
                "{tally:?} runner failed {failed} strict {strict}"
            );
        }
        let (_, why) = exit_code(&t(46, 0, 2, 0, 0), true, true);
        assert!(why.is_some_and(|w| w.contains("--strict")));
        let (_, why) = exit_code(&t(0, 0, 3, 0, 0), false, false);
        assert!(why.is_some_and(|w| w.contains("nothing was judged")));
    }
}
