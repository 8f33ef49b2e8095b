//! What the kubectl tests share: which kubectl they drive (`NETASSAY_KUBECTL`, then the one the
//! reference-cluster script builds, `target/reference-cluster/bin/kubectl`, then `kubectl` on
//! PATH; without one a test says it skipped, and fails when `CI` is set: a kubectl test never
//! passes silently in CI), `netassay sandbox up` as a child, and the one kubectl script
//! ([`script`]) that runs against both control planes.
#![allow(dead_code)] // each test file uses its own subset

pub mod script;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The kubectl to use, or `None` (after saying so) when there is none outside CI.
pub fn kubectl_or_skip(test: &str) -> Option<PathBuf> {
    let found = find();
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: no kubectl (set NETASSAY_KUBECTL, build it with scripts/reference-cluster/build.sh, or put one on PATH)"
        );
        eprintln!(
            "{test}: skipped: no kubectl (NETASSAY_KUBECTL, target/reference-cluster/bin/kubectl or PATH)"
        );
    }
    found
}

fn find() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("NETASSAY_KUBECTL").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "NETASSAY_KUBECTL={} is not a file",
            path.display()
        );
        return Some(path);
    }
    let built =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/reference-cluster/bin/kubectl");
    if built.is_file() {
        return Some(built);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| {
            Command::new(candidate)
                .args(["version", "--client"])
                .output()
                .is_ok_and(|out| out.status.success())
        })
}

/// `netassay sandbox up [ARGS]` as a child; SIGTERM on drop (it then removes everything it
/// made).
pub struct SandboxUp {
    child: Child,
    /// The admin kubeconfig it printed first.
    pub kubeconfig: PathBuf,
}

impl SandboxUp {
    pub fn start(args: &[&str]) -> SandboxUp {
        let mut child = Command::new(env!("CARGO_BIN_EXE_netassay"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["sandbox", "up"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("netassay sandbox up starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("sandbox up prints its kubeconfig");
        let kubeconfig = PathBuf::from(line.trim());
        assert!(
            kubeconfig.is_file(),
            "sandbox up printed {line:?}, not a kubeconfig"
        );
        SandboxUp { child, kubeconfig }
    }

    /// SIGTERM, then its exit status (it stops cleanly).
    pub fn stop(mut self) -> std::process::ExitStatus {
        terminate(&self.child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "sandbox up did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn terminate(child: &Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill has no memory preconditions; the pid is our own child's.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

impl Drop for SandboxUp {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            terminate(&self.child);
            let _ = self.child.wait();
        }
    }
}

/// One kubectl with one kubeconfig and its own discovery cache.
pub struct Kubectl {
    pub program: PathBuf,
    pub kubeconfig: PathBuf,
    pub cache: PathBuf,
}

impl Kubectl {
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.program)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("kubectl runs")
    }

    /// Runs and expects success; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Runs and expects failure; its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should fail: {}",
            text(&out.stdout)
        );
        text(&out.stderr)
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The header line of a table, split into column names (multi-word names kept whole).
pub fn header(table: &str) -> Vec<String> {
    let line = table.lines().next().unwrap_or("");
    line.split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// The cells of the row whose first cell is `name`.
pub fn row(table: &str, name: &str) -> Vec<String> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|cells| cells.first().map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{table}"))
}

/// Writes a manifest into `dir`; its path.
pub fn write(dir: &Path, name: &str, yaml: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("write manifest");
    path.to_string_lossy().into_owned()
}
