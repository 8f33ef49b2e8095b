//! Shared by the end-to-end tests that run the netassay binary on the sandbox.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// True as root; otherwise says the test is skipped, and fails under CI (which runs as root).
pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: CI must run these tests as root"
        );
        eprintln!("{test}: skipped (needs root for network namespaces)");
    }
    root
}

/// The built binary, run from the repository root.
pub fn netassay() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_netassay"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

pub fn run(args: &[&str]) -> Output {
    netassay().args(args).output().expect("run netassay")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `netassay sandbox up --sandbox-control-plane kubernetes` with `extra` flags, once it has
/// printed its admin kubeconfig (its first stdout line, printed once everything runs): the
/// process and the kubeconfig's path (empty when it exited instead).
pub fn sandbox_up_reference(extra: &[&str]) -> (Child, PathBuf) {
    let mut up = netassay()
        .args(["sandbox", "up", "--sandbox-control-plane", "kubernetes"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sandbox up starts");
    let mut line = String::new();
    {
        use std::io::BufRead;
        let stdout = up.stdout.take().expect("stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("a kubeconfig path");
    }
    (up, PathBuf::from(line.trim()))
}

/// A client with the identity of a kubeconfig file (a sandbox's admin one, or a
/// ServiceAccount's); ring is the TLS provider, whoever installs it first.
pub async fn kube_client(kubeconfig: &Path) -> kube::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    kube::Client::try_from(config).expect("client")
}
