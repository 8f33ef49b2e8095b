//! The offline commands: `plan`, `validate`, `explain` and `list`. They need no cluster.

use super::exit;
use super::render;
use crate::scenario::{builtin, load_paths, LoadError, PortRef, Scenario};
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use netassay_core::model::{PodRef, Protocol};
use serde_json::json;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Scenario files or directories (searched for *.yaml); `builtin` or `builtin:PROFILE` for the
    /// embedded corpus.
    #[arg(required = true, value_name = "FILE_OR_DIR")]
    pub paths: Vec<String>,
    /// Output format. JSON carries `"schema": "netassay.plan/v1"`.
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Output,
    /// Only scenarios whose name contains this text.
    #[arg(long)]
    pub filter: Option<String>,
    /// Profile config for intent scenarios that need one (k8tre); default: the built-in one.
    #[arg(long = "profile-config", value_name = "FILE")]
    pub profile_config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files or directories; `builtin` or `builtin:PROFILE` for the embedded corpus.
    #[arg(required = true, value_name = "FILE_OR_DIR")]
    pub paths: Vec<String>,
    /// Profile config for intent scenarios that need one (k8tre); default: the built-in one.
    #[arg(long = "profile-config", value_name = "FILE")]
    pub profile_config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// One scenario file.
    #[arg(value_name = "FILE")]
    pub file: String,
    /// Source pod, as namespace/pod (logical names).
    #[arg(long)]
    pub from: String,
    /// Destination pod, as namespace/pod.
    #[arg(long)]
    pub to: String,
    /// Destination port: a number, or a container port name resolved on the destination pod.
    #[arg(long)]
    pub port: String,
    /// TCP, UDP or SCTP.
    #[arg(long, default_value = "TCP")]
    pub protocol: String,
    /// Only this step: its 1-based number or its name. Default: every step.
    #[arg(long)]
    pub step: Option<String>,
    /// Profile config for intent scenarios that need one (k8tre); default: the built-in one.
    #[arg(long = "profile-config", value_name = "FILE")]
    pub profile_config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only scenarios of this profile (core, extended, k8tre); repeatable or comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub profile: Vec<String>,
}

fn print_errors(errors: &[LoadError]) {
    for e in errors {
        eprintln!("{e}");
    }
    let files: std::collections::BTreeSet<&str> = errors.iter().map(|e| e.file.as_str()).collect();
    eprintln!("{} problem(s) in {} file(s)", errors.len(), files.len());
}

/// Loads paths and the `builtin[:PROFILE]` pseudo-paths, collecting every error.
fn load(
    paths: &[String],
    profile_config: Option<&std::path::Path>,
) -> Result<Vec<Scenario>, Vec<LoadError>> {
    let mut scenarios = Vec::new();
    let mut errors = Vec::new();
    let mut disk = Vec::new();
    for p in paths {
        if let Some(rest) = p.strip_prefix("builtin") {
            let profile = rest.strip_prefix(':').unwrap_or("");
            if !rest.is_empty() && !rest.starts_with(':') {
                disk.push(PathBuf::from(p));
                continue;
            }
            let profiles: Vec<String> = profile
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            match builtin::select(&profiles) {
                Ok(s) => scenarios.extend(s),
                Err(e) => errors.extend(e),
            }
        } else {
            disk.push(PathBuf::from(p));
        }
    }
    if !disk.is_empty() {
        match load_paths(&disk) {
            Ok(s) => scenarios.extend(s),
            Err(e) => errors.extend(e),
        }
    }
    // Offline, intent scenarios are planned under the given (or the built-in) profile config.
    if let Err(e) = crate::scenario::bind_profiles(&mut scenarios, profile_config) {
        errors.extend(e);
    }
    if errors.is_empty() {
        Ok(scenarios)
    } else {
        Err(errors)
    }
}

pub fn plan(args: PlanArgs) -> anyhow::Result<u8> {
    let scenarios = match load(&args.paths, args.profile_config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            print_errors(&e);
            return Ok(exit::BAD_INPUT);
        }
    };
    let selected: Vec<&Scenario> = scenarios
        .iter()
        .filter(|s| {
            args.filter
                .as_ref()
                .is_none_or(|f| s.name.contains(f.as_str()))
        })
        .collect();
    let mut json_scenarios = Vec::new();
    let mut text = String::new();
    for s in &selected {
        let plans = s
            .plan()
            .map_err(|e| anyhow::anyhow!("{}: {}: {}", s.file, e.path, e.message))?;
        match args.output {
            Output::Json => {
                let steps: Vec<_> = plans
                    .iter()
                    .map(|p| {
                        let unjudged: Vec<_> = p
                            .unjudged
                            .iter()
                            .map(|(c, why)| json!({"cell": c, "reason": why}))
                            .collect();
                        json!({"name": p.name, "cells": p.cells, "unjudged": unjudged})
                    })
                    .collect();
                json_scenarios.push(json!({
                    "name": s.name,
                    "file": s.file,
                    "mode": match s.mode { crate::scenario::Mode::Oracle => "oracle", crate::scenario::Mode::Intent => "intent" },
                    "tags": s.tags,
                    "steps": steps,
                }));
            }
            Output::Text => {
                text.push_str(&format!("scenario {} ({})\n", s.name, s.file));
                if !s.description.is_empty() {
                    text.push_str(&format!("  {}\n", s.description));
                }
                for (i, p) in plans.iter().enumerate() {
                    text.push_str(&format!("step {}/{}: {}\n", i + 1, plans.len(), p.name));
                    text.push_str(&render::grids(p));
                    let ip: usize = p.cells.iter().filter(|c| c.ip_dependent).count();
                    if ip > 0 {
                        text.push_str(&format!("  ({ip} cell(s) depend on live pod addresses)\n"));
                    }
                    if !p.unjudged.is_empty() {
                        text.push_str(&format!("  not judged ({}):\n", p.unjudged.len()));
                        for (c, why) in &p.unjudged {
                            text.push_str(&format!(
                                "    {} -> {} {}/{} via {}: {why}\n",
                                c.from,
                                c.to,
                                c.port,
                                c.protocol,
                                c.via.as_str()
                            ));
                        }
                    }
                }
                text.push('\n');
            }
        }
    }
    match args.output {
        Output::Json => {
            let doc = json!({"schema": "netassay.plan/v1", "scenarios": json_scenarios});
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Output::Text => {
            print!("{text}");
            println!(
                "{} scenario(s); `.` allowed, `X` denied, `-` not served or not judged (listed under the step)",
                selected.len()
            );
        }
    }
    Ok(exit::OK)
}

pub fn validate(args: ValidateArgs) -> anyhow::Result<u8> {
    match load(&args.paths, args.profile_config.as_deref()) {
        Ok(s) => {
            let steps: usize = s.iter().map(|s| s.steps.len()).sum();
            println!("ok: {} scenario(s), {steps} step(s), no problems", s.len());
            Ok(exit::OK)
        }
        Err(e) => {
            print_errors(&e);
            Ok(exit::BAD_INPUT)
        }
    }
}

pub fn explain(args: ExplainArgs) -> anyhow::Result<u8> {
    let scenarios = match load(
        std::slice::from_ref(&args.file),
        args.profile_config.as_deref(),
    ) {
        Ok(s) => s,
        Err(e) => {
            print_errors(&e);
            return Ok(exit::BAD_INPUT);
        }
    };
    let [s] = scenarios.as_slice() else {
        bail!(
            "{} holds {} scenarios; explain takes one file with one scenario",
            args.file,
            scenarios.len()
        );
    };
    let from: PodRef = args
        .from
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--from: {e}"))?;
    let to: PodRef = args
        .to
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--to: {e}"))?;
    let protocol: Protocol = args
        .protocol
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--protocol: {e}"))?;
    let port = match args.port.parse::<u16>() {
        Ok(n) => PortRef::Number(n),
        Err(_) => PortRef::Name(args.port.clone()),
    };
    if s.mode == crate::scenario::Mode::Intent {
        return explain_intent(s, &from, &to, &port, protocol);
    }
    for (flag, pod) in [("--from", &from), ("--to", &to)] {
        if s.topology.pod(pod).is_none() {
            let known: Vec<String> = s.topology.pods.iter().map(|p| p.id.to_string()).collect();
            bail!(
                "{flag}: no pod {pod} in scenario {}; pods: {}",
                s.name,
                known.join(", ")
            );
        }
    }
    let plans = s
        .plan()
        .map_err(|e| anyhow::anyhow!("{}: {}: {}", s.file, e.path, e.message))?;
    let chosen: Vec<usize> = match &args.step {
        None => (0..plans.len()).collect(),
        Some(sel) => {
            let i = match sel.parse::<usize>() {
                Ok(n) if n >= 1 && n <= plans.len() => n - 1,
                Ok(n) => bail!(
                    "--step {n}: scenario {} has steps 1..{}",
                    s.name,
                    plans.len()
                ),
                Err(_) => plans
                    .iter()
                    .position(|p| &p.name == sel)
                    .with_context(|| format!("--step: no step named {sel:?} in {}", s.name))?,
            };
            vec![i]
        }
    };
    for i in chosen {
        let p = &plans[i];
        let dst = p.topology.pod(&to).context("destination pod")?;
        let number = match &port {
            PortRef::Number(n) => *n,
            PortRef::Name(n) => match dst.named_port(n, protocol) {
                Some(num) => num,
                None => {
                    println!("step {}/{} {:?}: {to} has no {protocol} port named {n:?}, so there is no such path\n", i + 1, plans.len(), p.name);
                    continue;
                }
            },
        };
        if p.cilium_semantics {
            let cell = crate::scenario::Cell {
                from: from.clone(),
                to: to.clone(),
                port: number,
                port_name: None,
                protocol,
                via: netassay_core::model::Via::PodIp,
                loopback: from == to,
            };
            let e = p.explain_cilium(&cell).context("the Cilium oracle")?;
            println!(
                "scenario {} (Cilium semantics), step {}/{} {:?}: {from} -> {to} {number}/{protocol}",
                s.name,
                i + 1,
                plans.len(),
                p.name
            );
            let verdict = e
                .verdict
                .map_or("not judged".to_string(), |v| v.to_string());
            for (side, end) in [(&e.egress, &from), (&e.ingress, &to)] {
                let selection = if side.selected_by.is_empty() {
                    "selected by no policy".to_string()
                } else {
                    let by: Vec<String> = side.selected_by.iter().map(|p| p.to_string()).collect();
                    let deny = if side.default_deny {
                        "default deny"
                    } else {
                        "no default deny"
                    };
                    format!("selected by {} ({deny})", by.join(", "))
                };
                println!(
                    "  {} of {end}: {selection}: {}",
                    side.direction.as_str(),
                    side.summary()
                );
            }
            println!("  verdict: {verdict} (traffic needs egress at the source and ingress at the destination)\n");
            continue;
        }
        let o = p.oracle().map_err(|e| anyhow::anyhow!("{e}"))?;
        let t = o.topology();
        let (fi, ti) = (
            t.pod_index(&from).context("source")?,
            t.pod_index(&to).context("destination")?,
        );
        let e = o.explain(fi, ti, number, protocol);
        println!(
            "scenario {}, step {}/{} {:?}: {from} -> {to} {number}/{protocol}",
            s.name,
            i + 1,
            plans.len(),
            p.name
        );
        if from == to {
            println!("  (loopback: reported but not judged by default; CNIs differ)");
        }
        print!("{}", render::explanation(&e, &from, &to, number, protocol));
        println!();
    }
    Ok(exit::OK)
}

/// Intent scenarios have no oracle walkthrough: their expectation is the scenario's stated
/// intent (or the profile config's allow-list), and the cluster's own policies decide.
fn explain_intent(
    s: &Scenario,
    from: &PodRef,
    to: &PodRef,
    port: &PortRef,
    protocol: Protocol,
) -> anyhow::Result<u8> {
    let plans = s
        .plan()
        .map_err(|e| anyhow::anyhow!("{}: {}: {}", s.file, e.path, e.message))?;
    println!(
        "scenario {} is an intent scenario: its expectations are its stated intent{}, checked \
         against the cluster's own policies, so there is no oracle walkthrough.",
        s.name,
        s.profile
            .as_ref()
            .map(|p| format!(" and the allow-lists of the profile config {}", p.file))
            .unwrap_or_default()
    );
    let mut found = false;
    for (i, p) in plans.iter().enumerate() {
        for c in p.cells.iter().filter(|c| {
            c.cell.from == *from
                && c.cell.to == *to
                && c.cell.protocol == protocol
                && match port {
                    PortRef::Number(n) => c.cell.port == *n,
                    PortRef::Name(n) => c.cell.port_name.as_deref() == Some(n.as_str()),
                }
        }) {
            found = true;
            println!(
                "step {}/{} {:?}: {from} -> {to} {}/{protocol} via {}: expected {}{}",
                i + 1,
                plans.len(),
                p.name,
                c.cell.port,
                c.cell.via,
                c.verdict,
                if c.cell.loopback {
                    " (loopback: reported, not judged)"
                } else {
                    ""
                }
            );
        }
    }
    if !found {
        println!(
            "no step of {} probes {from} -> {to} {port}/{protocol}",
            s.name
        );
    }
    Ok(exit::OK)
}

pub fn list(args: ListArgs) -> anyhow::Result<u8> {
    for p in &args.profile {
        if !builtin::PROFILES.contains(&p.as_str()) {
            bail!(
                "--profile {p:?}: known profiles are {}",
                builtin::PROFILES.join(", ")
            );
        }
    }
    let scenarios = match builtin::select(&args.profile) {
        Ok(s) => s,
        Err(e) => {
            print_errors(&e);
            return Ok(exit::BAD_INPUT);
        }
    };
    let width = scenarios.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in &scenarios {
        println!(
            "{:width$}  {:>2} step(s)  [{}]",
            s.name,
            s.steps.len(),
            s.tags.join(", ")
        );
    }
    println!("{} scenario(s)", scenarios.len());
    Ok(exit::OK)
}
