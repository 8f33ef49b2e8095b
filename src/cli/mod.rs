//! The command-line edge: clap commands, exit codes, rendering of results.

pub mod agent;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "netassay", version, about = "Active NetworkPolicy conformance testing for Kubernetes")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs inside probe pods.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Probes per second and round latency against local agents.
    Probe(agent::BenchProbeArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Agent(cmd) => agent::run(cmd),
        Command::Bench(BenchCommand::Probe(args)) => agent::bench_probe(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("netassay: {err:#}");
            ExitCode::from(2)
        }
    }
}
