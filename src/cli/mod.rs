//! The command-line edge: clap commands, exit codes (DESIGN §8), rendering of results.

pub mod agent;
mod bench;
mod bench_chaos;
mod bench_scale;
mod bench_udp;
mod cleanup;
pub mod exit;
mod kubeconfig;
mod offline;
pub mod render;
mod run;
mod runtime;
mod sandbox;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

const AFTER_HELP: &str = "\
Exit codes: 0 judged and conformant (unjudgeable scenarios are shown as ignored), 1 a path did
not behave as expected (or, with --strict, a scenario could not be judged), 2 bad input or usage,
3 environment not usable or nothing could be judged, 130 interrupted.

Examples:
  netassay list --profile core                 the built-in upstream-parity scenarios
  netassay plan scenarios/core                 expected truth tables of every step
  netassay plan my-policies/ --output json     the same, for tools
  netassay validate scenarios/                 every problem in every file
  netassay explain scenarios/core/01-default-deny-ingress.yaml --from y/a --to x/a --port 80";

#[derive(Debug, Parser)]
#[command(
    name = "netassay",
    version,
    about = "Active NetworkPolicy conformance testing for Kubernetes",
    long_about = "netassay proves that a cluster's CNI enforces NetworkPolicy: it deploys throwaway pods, \
applies policies step by step, probes every path and compares what happened with what Kubernetes \
semantics say should happen. The offline commands (plan, validate, explain, list) need no cluster.",
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the expected truth tables of every step of scenario files.
    Plan(offline::PlanArgs),
    /// Check scenario files and report every problem in every file.
    Validate(offline::ValidateArgs),
    /// Walk through the oracle's reasoning for one path.
    Explain(offline::ExplainArgs),
    /// List the built-in scenarios and their tags.
    List(offline::ListArgs),
    /// Run scenarios against a cluster (or the built-in sandbox) and judge the CNI.
    Run(Box<run::RunArgs>),
    /// Delete what runs left behind in a cluster.
    Cleanup(cleanup::CleanupArgs),
    /// The built-in sandbox cluster (root, Linux).
    #[command(subcommand)]
    Sandbox(sandbox::SandboxCommand),
    /// What runs inside probe pods, and the sandbox's DNS and gateway (the harness starts them).
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Oracle speed on a synthetic cluster (cells per second on one core).
    Oracle(bench::OracleArgs),
    /// Probes per second and round latency against local agents.
    Probe(agent::BenchProbeArgs),
    /// The core profile on the sandbox: wall time against the physical lower bound.
    Run(bench::RunBenchArgs),
    /// Time-to-enforce accuracy: the sandbox with injected enforcement delays, measured against
    /// injected.
    Enforce(bench::EnforceBenchArgs),
    /// Equal verdicts under a hostile control plane (API errors, exec resets, pod restarts, a
    /// slow API): exit codes and cells differing from the clean run.
    Chaos(bench_chaos::ChaosBenchArgs),
    /// N UDP probes towards one destination from a pod and from the outside vantage of the
    /// sandbox's dataplane: wall time against the probe timeout.
    Udp(bench_udp::UdpBenchArgs),
    /// The k8tre profile on the sandbox's TRE preset at 5 / 10 / 25 / 50 projects
    /// (`--projects`): wall time, rounds, probes/s, requests and exec calls per step, oracle
    /// time, peak RSS and report sizes, with the growth exponent of each.
    Scale(bench_scale::ScaleBenchArgs),
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::BAD_INPUT
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Plan(a) => offline::plan(a),
        Command::Validate(a) => offline::validate(a),
        Command::Explain(a) => offline::explain(a),
        Command::List(a) => offline::list(a),
        Command::Run(a) => run::run(*a),
        Command::Cleanup(a) => cleanup::cleanup(a),
        Command::Sandbox(c) => sandbox::sandbox(c),
        Command::Agent(cmd) => agent::run(cmd),
        Command::Bench(BenchCommand::Oracle(a)) => bench::oracle(a),
        Command::Bench(BenchCommand::Probe(a)) => agent::bench_probe(a),
        Command::Bench(BenchCommand::Run(a)) => bench::run(a),
        Command::Bench(BenchCommand::Enforce(a)) => bench::enforce(a),
        Command::Bench(BenchCommand::Chaos(a)) => bench_chaos::chaos(a),
        Command::Bench(BenchCommand::Udp(a)) => bench_udp::udp(a),
        Command::Bench(BenchCommand::Scale(a)) => bench_scale::scale(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("netassay: {err:#}");
            ExitCode::from(exit::BAD_INPUT)
        }
    }
}
