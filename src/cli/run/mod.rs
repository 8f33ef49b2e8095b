//! `netassay run`, the main job, told as its phases: select the scenarios, bring up the cluster
//! (the sandbox, or a kubeconfig), hold the run lock, execute the scenarios on fixtures, and
//! conclude (reports, summary, exit code). Every phase that fails ends the run with its exit
//! code after undoing what the phases before it started.

mod args;
mod cluster;
mod conclude;
mod execute;
mod progress;
mod select;
mod session;
mod unusable;

pub use args::RunArgs;

use crate::cli::exit;
use crate::cluster::new_run_id;
use cluster::Cluster;
use conclude::{conclude, Started};
use progress::log_line;
use session::Session;

pub fn run(args: RunArgs) -> anyhow::Result<u8> {
    let scenarios = match select::select(&args) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    if args.list {
        return Ok(select::list(&args, &scenarios));
    }
    // Everything the command line says is checked before any cluster is touched.
    let mut sandbox = crate::cli::sandbox::options(
        &args.sandbox_backend,
        &args.sandbox_faults,
        args.sandbox_preset,
        args.sandbox_scale,
    )?;
    // The real kubelet finds the probe pods' image under the name they give it.
    if let Some(images) = sandbox.node_images.as_mut() {
        images.netassay_names.push(args.image.clone());
    }
    let sandbox = args.sandbox.then_some(sandbox);
    if let Some(Err(e)) = sandbox.as_ref().map(|o| o.validate()) {
        eprintln!("netassay: {e}");
        return Ok(exit::BAD_INPUT);
    }
    let options = execute::suite_options(&args)?;
    let rt = crate::cli::runtime::runtime()?;
    let started = Started::now();
    let run_id = new_run_id();
    log_line(format!(
        "run {run_id}: {} scenario(s) selected",
        scenarios.len()
    ));

    let cilium = args
        .sandbox_backend
        .cilium_api
        .wanted(scenarios.iter().any(|s| s.uses_cilium()));
    let not_cilium = scenarios.iter().filter(|s| !s.uses_cilium()).count();
    let cluster = match Cluster::start(&args, &rt, sandbox, cilium, not_cilium) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let session = match Session::open(&args, &rt, &cluster, &run_id) {
        Ok(s) => s,
        Err(code) => {
            cluster.stop(&rt);
            return Ok(code);
        }
    };
    let executed = match execute::execute(&args, &rt, &cluster, &run_id, options, scenarios) {
        Ok(e) => e,
        Err(e) => {
            session.close(&rt);
            cluster.stop(&rt);
            return Err(e);
        }
    };
    let environment = session.close(&rt);
    let (code, why) = conclude(&args, &run_id, &started, environment, executed);
    cluster.stop(&rt);
    if let Some(why) = why {
        eprintln!("netassay: {why}");
    }
    Ok(code)
}
