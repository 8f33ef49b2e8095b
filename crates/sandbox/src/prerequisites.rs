//! What the sandbox needs on the host, and getting it: `ip` (iproute2) and `nft` (nftables).
//!
//! On a Debian-family host, as root, a missing tool is installed with apt-get after saying so
//! (the README's one command must work on a fresh machine); `NETASSAY_NO_INSTALL=1` refuses,
//! and elsewhere the error names the packages to install.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use thiserror::Error;

/// Each command the sandbox runs, with the Debian package that has it.
pub const NEEDED: [(&str, &str); 2] = [("ip", "iproute2"), ("nft", "nftables")];
/// Set to refuse automatic installation.
pub const NO_INSTALL_ENV: &str = "NETASSAY_NO_INSTALL";

#[derive(Debug, Error)]
pub enum PrerequisiteError {
    #[error("the sandbox needs {commands} ({install}){why}")]
    Missing {
        commands: String,
        install: String,
        why: String,
    },
    #[error("installing {packages} with apt-get failed ({detail}); install them by hand: apt-get install {packages}")]
    InstallFailed { packages: String, detail: String },
}

/// Where a command would be found: PATH plus the sbin folders root's PATH may lack.
fn search_path() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for extra in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let extra = PathBuf::from(extra);
        if !dirs.contains(&extra) {
            dirs.push(extra);
        }
    }
    dirs
}

fn found(command: &str, dirs: &[PathBuf]) -> bool {
    dirs.iter().any(|d| d.join(command).is_file())
}

/// Where `command` is, looked for as [`ensure`] looks for it (PATH plus the sbin folders).
pub fn locate(command: &str) -> Option<PathBuf> {
    search_path()
        .into_iter()
        .map(|d| d.join(command))
        .find(|p| p.is_file())
}

/// How [`ensure`] may act.
#[derive(Debug, Clone)]
pub struct Installer {
    /// Where commands are looked for.
    pub dirs: Vec<PathBuf>,
    /// The apt-get to run; `None` when the host has none.
    pub apt_get: Option<PathBuf>,
    /// Whether installing is allowed (root, and not refused).
    pub allowed: bool,
    /// Why it is not, for the error.
    pub refusal: Option<String>,
}

impl Installer {
    /// This host: PATH, its apt-get, root and [`NO_INSTALL_ENV`].
    pub fn host() -> Installer {
        let dirs = search_path();
        let apt_get = dirs.iter().map(|d| d.join("apt-get")).find(|p| p.is_file());
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let refused = std::env::var_os(NO_INSTALL_ENV).is_some_and(|v| !v.is_empty() && v != "0");
        let refusal = if refused {
            Some(format!("{NO_INSTALL_ENV} is set"))
        } else if !root {
            Some("not running as root".into())
        } else if apt_get.is_none() {
            Some("no apt-get on this host".into())
        } else {
            None
        };
        Installer {
            allowed: refusal.is_none(),
            dirs,
            apt_get,
            refusal,
        }
    }
}

/// The missing commands' (command, package) pairs.
pub fn missing(dirs: &[PathBuf]) -> Vec<(&'static str, &'static str)> {
    missing_of(&NEEDED, dirs)
}

/// Those of `needed` (command, package) whose command is not in `dirs`.
pub fn missing_of(
    needed: &[(&'static str, &'static str)],
    dirs: &[PathBuf],
) -> Vec<(&'static str, &'static str)> {
    needed
        .iter()
        .copied()
        .filter(|(c, _)| !found(c, dirs))
        .collect()
}

/// Makes sure `ip` and `nft` exist, installing them when allowed. Returns the packages it
/// installed (empty when nothing was missing). `say` receives what it is about to do.
pub fn ensure(installer: &Installer, say: &dyn Fn(&str)) -> Result<Vec<String>, PrerequisiteError> {
    ensure_commands(installer, &NEEDED, say)
}

/// [`ensure`] for any (command, package) pairs: those the chosen node components need too.
pub fn ensure_commands(
    installer: &Installer,
    needed: &[(&'static str, &'static str)],
    say: &dyn Fn(&str),
) -> Result<Vec<String>, PrerequisiteError> {
    let missing = missing_of(needed, &installer.dirs);
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let commands: Vec<String> = missing.iter().map(|(c, _)| format!("`{c}`")).collect();
    let mut packages: Vec<String> = missing.iter().map(|(_, p)| p.to_string()).collect();
    packages.dedup();
    let (Some(apt_get), true) = (&installer.apt_get, installer.allowed) else {
        return Err(PrerequisiteError::Missing {
            commands: commands.join(" and "),
            install: format!("apt-get install {}", packages.join(" ")),
            why: installer
                .refusal
                .as_ref()
                .map(|r| format!("; not installing them automatically: {r}"))
                .unwrap_or_default(),
        });
    };
    say(&format!(
        "the sandbox needs {} and this host has no {}: installing {} with apt-get (set {NO_INSTALL_ENV}=1 to refuse)",
        packages.join(" and "),
        commands.join(" or "),
        packages.join(" ")
    ));
    let failed = |detail: String| PrerequisiteError::InstallFailed {
        packages: packages.join(" "),
        detail,
    };
    for args in [
        vec!["update", "-qq"],
        [
            vec!["install", "-y", "-qq", "--no-install-recommends"],
            packages.iter().map(String::as_str).collect(),
        ]
        .concat(),
    ] {
        // apt-get's output goes to stderr: `sandbox up` prints its kubeconfig path on stdout,
        // and scripts read that line.
        let to_stderr = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        let status = Command::new(apt_get)
            .args(&args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(to_stderr)
            .status()
            .map_err(|e| failed(format!("{}: {e}", apt_get.display())))?;
        if !status.success() {
            return Err(failed(format!("apt-get {} exited with {status}", args[0])));
        }
    }
    let still: Vec<&str> = missing_of(needed, &installer.dirs)
        .iter()
        .map(|(c, _)| *c)
        .collect();
    if !still.is_empty() {
        return Err(failed(format!(
            "{} still not found afterwards",
            still.join(", ")
        )));
    }
    Ok(packages)
}

/// Whether `path` is an executable file (for tests and diagnostics).
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(path: &Path, body: &str) {
        std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A host without `ip` and `nft` and a fake apt-get that "installs" them into `bin`,
    /// recording its arguments.
    fn fake_host() -> (tempfile::TempDir, Installer) {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let apt = dir.path().join("apt-get");
        script(
            &apt,
            &format!(
                "echo \"$@\" >> {log}\n[ \"$1\" = install ] && for c in ip nft; do printf '#!/bin/sh\\n' > {bin}/$c; chmod +x {bin}/$c; done\nexit 0",
                log = dir.path().join("apt.log").display(),
                bin = bin.display()
            ),
        );
        let installer = Installer {
            dirs: vec![bin],
            apt_get: Some(apt),
            allowed: true,
            refusal: None,
        };
        (dir, installer)
    }

    #[test]
    fn missing_tools_are_installed_after_saying_so() {
        let (dir, installer) = fake_host();
        let said = std::sync::Mutex::new(Vec::new());
        let installed = ensure(&installer, &|m| said.lock().unwrap().push(m.to_string())).unwrap();
        assert_eq!(installed, ["iproute2", "nftables"]);
        let said = said.into_inner().unwrap().join("\n");
        assert!(
            said.contains("installing iproute2 nftables with apt-get"),
            "{said}"
        );
        assert!(said.contains(NO_INSTALL_ENV), "{said}");
        let log = std::fs::read_to_string(dir.path().join("apt.log")).unwrap();
        assert_eq!(
            log.lines().collect::<Vec<_>>(),
            [
                "update -qq",
                "install -y -qq --no-install-recommends iproute2 nftables"
            ]
        );
        assert!(is_executable(&installer.dirs[0].join("nft")));
        // Once there, nothing more is done.
        assert!(ensure(&installer, &|_| panic!("nothing to say"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_refusal_names_the_packages_and_the_reason() {
        let (_dir, mut installer) = fake_host();
        installer.allowed = false;
        installer.refusal = Some(format!("{NO_INSTALL_ENV} is set"));
        let err = ensure(&installer, &|_| {}).unwrap_err().to_string();
        assert_eq!(
            err,
            "the sandbox needs `ip` and `nft` (apt-get install iproute2 nftables); not installing them automatically: NETASSAY_NO_INSTALL is set"
        );
    }

    #[test]
    fn an_install_that_does_not_deliver_is_an_error() {
        let (dir, installer) = fake_host();
        script(installer.apt_get.as_ref().unwrap(), "exit 0");
        let err = ensure(&installer, &|_| {}).unwrap_err().to_string();
        assert!(err.contains("ip, nft still not found afterwards"), "{err}");
        drop(dir);
    }
}
