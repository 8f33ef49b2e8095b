//! `netassay cleanup`: delete what runs left behind, by run id or expiry.

use super::exit;
use super::kubeconfig::ClusterArgs;
use super::runtime::runtime;
use crate::cluster::cleanup::{cleanup as cleanup_run, Selection};
use crate::cluster::connect;
use clap::Args;

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
