//! The command line of `run`, `cleanup` and `sandbox`.

use crate::cli::kubeconfig::ClusterArgs;
use crate::cli::sandbox::SandboxBackendArgs;
use clap::Args;
use netassay_core::model::Via;
use netassay_sandbox::{Preset, PresetScale};
use std::path::PathBuf;
use std::time::Duration;

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
    /// The preset's size: `projects=N` (N from 2 to 100) gives the k8tre preset N projects of
    /// its own (project-001..: two workspaces and a shared service each) and the platform's
    /// services (tre-platform), all under its policies; the k8tre profile's project isolation
    /// then runs over N throwaway projects (a matrix of (2N)^2 paths per protocol). Without it,
    /// the preset has no project of its own and the isolation scenario two.
    #[arg(
        long = "sandbox-scale",
        value_name = "projects=N",
        requires = "sandbox_preset"
    )]
    pub sandbox_scale: Option<PresetScale>,
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
    /// Built-in profiles to run (comma-separated): core, extended, k8tre, cilium (Cilium's own
    /// policy kinds), scale (a 100-pod fixture and a cluster of 1,000 policies).
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
    /// How long the wait for probe pods goes on with none becoming Ready (the clock restarts
    /// with each pod that does, so large fixtures on rate-limited CNIs are slow, not failed).
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
