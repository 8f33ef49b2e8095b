//! `netassay agent ...` and `netassay bench probe`: the command-line edge of the in-pod agent.

use clap::{Args, Subcommand};

/// What the agent can do inside a probe pod.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Serve every configured listener and answer with this pod's identity.
    Serve(ServeArgs),
    /// Read one JSON probe batch on stdin and write one JSON result line per probe.
    Probe(ProbeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {}

#[derive(Debug, Args)]
pub struct ProbeArgs {}

/// Options of `netassay bench probe`.
#[derive(Debug, Args)]
pub struct BenchProbeArgs {}

/// Runs an agent command; returns the process exit code.
pub fn run(cmd: AgentCommand) -> anyhow::Result<u8> {
    let _ = cmd;
    anyhow::bail!("the agent is not built yet")
}

/// Runs the probe benchmark; returns the process exit code.
pub fn bench_probe(args: BenchProbeArgs) -> anyhow::Result<u8> {
    let _ = args;
    anyhow::bail!("the probe benchmark is not built yet")
}
