//! The async runtime every command that talks to a cluster builds by hand (libtest-mimic
//! trials block on it from their own threads, so it cannot be `#[tokio::main]`'s).

use anyhow::Context;

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
