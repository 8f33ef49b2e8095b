//! Running `ip`, `nft` and `kill`: every failure becomes an error naming the command line and
//! its stderr.

use super::super::DataplaneError;
use std::io::Write;
use std::process::{Child, Command, Stdio};

/// Runs `argv` to completion, feeding `stdin` if given; returns stdout.
pub fn run(argv: &[&str], stdin: Option<&str>) -> Result<String, DataplaneError> {
    let child = start(argv, stdin)?;
    finish(argv, child)
}

/// Runs independent commands side by side (each as [`run`] would) and waits for all of them;
/// the first failure in the given order is the error.
pub fn run_concurrently(commands: &[(&[&str], Option<&str>)]) -> Result<(), DataplaneError> {
    let started: Vec<Result<Child, DataplaneError>> = commands
        .iter()
        .map(|(argv, stdin)| start(argv, *stdin))
        .collect();
    let mut first_error = None;
    for ((argv, _), child) in commands.iter().zip(started) {
        let finished = child.and_then(|child| finish(argv, child));
        if let Err(e) = finished {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Spawns `argv` with stdout and stderr piped and `stdin` written (then closed).
fn start(argv: &[&str], stdin: Option<&str>) -> Result<Child, DataplaneError> {
    let what = command_line(argv);
    let mut command = Command::new(argv[0]);
    command
        .args(&argv[1..])
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|e| DataplaneError::Command {
        what,
        detail: spawn_hint(argv[0], &e),
    })?;
    if let Some(text) = stdin {
        // A write error (the command exited early) shows up as its exit status.
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let _ = pipe.write_all(text.as_bytes());
    }
    Ok(child)
}

/// Waits for a command [`start`]ed; its stdout, or an error with its stderr.
fn finish(argv: &[&str], child: Child) -> Result<String, DataplaneError> {
    let what = command_line(argv);
    let output = child.wait_with_output()?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        let detail = if stderr.is_empty() {
            format!("exited with {}", output.status)
        } else {
            stderr
        };
        Err(DataplaneError::Command { what, detail })
    }
}

/// Like [`run`], for removals: "it is already gone" counts as success.
pub fn remove(argv: &[&str]) -> Result<(), DataplaneError> {
    match run(argv, None) {
        Err(DataplaneError::Command { detail, .. }) if is_already_gone(&detail) => Ok(()),
        other => other.map(drop),
    }
}

/// Runs an `ip -batch` script inside `netns` (one process for many changes).
pub fn ip_batch(netns: &str, script: &str) -> Result<(), DataplaneError> {
    run(&["ip", "-n", netns, "-batch", "-"], Some(script)).map(drop)
}

/// Applies an nft script atomically inside `netns`.
pub fn nft_apply(netns: &str, script: &str) -> Result<(), DataplaneError> {
    run(
        &["ip", "netns", "exec", netns, "nft", "-f", "-"],
        Some(script),
    )
    .map(drop)
}

/// Sends SIGKILL to processes (`pid`) or process groups (`-pgid`); vanished ones are fine.
pub fn kill(targets: &[String]) -> Result<(), DataplaneError> {
    if targets.is_empty() {
        return Ok(());
    }
    let mut argv = vec!["kill", "-KILL", "--"];
    argv.extend(targets.iter().map(String::as_str));
    remove(&argv)
}

/// Names of all network namespaces (`ip netns list`, first column).
pub fn list_netns() -> Result<Vec<String>, DataplaneError> {
    let out = run(&["ip", "netns", "list"], None)?;
    Ok(out
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// Pids of the processes inside `netns`.
pub fn netns_pids(netns: &str) -> Result<Vec<String>, DataplaneError> {
    match run(&["ip", "netns", "pids", netns], None) {
        Ok(out) => Ok(out.split_whitespace().map(str::to_string).collect()),
        Err(DataplaneError::Command { detail, .. }) if is_already_gone(&detail) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Interface names in the current (root) namespace.
pub fn list_links() -> Result<Vec<String>, DataplaneError> {
    let out = run(&["ip", "-o", "link", "show"], None)?;
    Ok(parse_link_names(&out))
}

/// `(family, name)` of every nft table in the current (root) namespace.
pub fn list_tables() -> Result<Vec<(String, String)>, DataplaneError> {
    let out = run(&["nft", "list", "tables"], None)?;
    Ok(parse_tables(&out))
}

/// `ip -o link` lines look like `7: name@peer: <FLAGS> ...`.
pub fn parse_link_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_string())
        .collect()
}

/// `nft list tables` lines look like `table inet name`.
pub fn parse_tables(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("table"), Some(family), Some(name)) => {
                    Some((family.to_string(), name.to_string()))
                }
                _ => None,
            }
        })
        .collect()
}

fn is_already_gone(stderr: &str) -> bool {
    [
        "No such file",
        "Cannot find device",
        "No such process",
        "does not exist",
    ]
    .iter()
    .any(|needle| stderr.contains(needle))
}

fn spawn_hint(program: &str, error: &std::io::Error) -> String {
    match (program, error.kind()) {
        ("ip", std::io::ErrorKind::NotFound) => {
            format!("{error} (install iproute2: apt-get install -y iproute2)")
        }
        ("nft", std::io::ErrorKind::NotFound) => {
            format!("{error} (install nftables: apt-get install -y nftables)")
        }
        _ => error.to_string(),
    }
}

pub fn command_line(argv: &[&str]) -> String {
    argv.iter()
        .map(|arg| {
            if arg.is_empty() || arg.contains(char::is_whitespace) {
                format!("'{arg}'")
            } else {
                arg.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_drop_the_peer_suffix() {
        let text = "1: lo: <LOOPBACK,UP> mtu 65536\n7: na12abx@if2: <BROADCAST> mtu 1500\n";
        assert_eq!(parse_link_names(text), ["lo", "na12abx"]);
    }

    #[test]
    fn tables_are_family_and_name() {
        let text = "table inet na12ab-policy\ntable ip na12ab-egress\n";
        assert_eq!(
            parse_tables(text),
            [
                ("inet".to_string(), "na12ab-policy".to_string()),
                ("ip".to_string(), "na12ab-egress".to_string())
            ]
        );
    }

    /// A shell prefix that makes command `n` of 4 wait until all four have started (each leaves
    /// a file in `dir`): it passes only if they run side by side. Bounded: after 10 s it gives up
    /// with exit 99 and says so, which the test reports instead of hanging.
    fn all_four_started(dir: &std::path::Path, n: usize) -> String {
        let d = dir.display();
        format!(
            "touch {d}/{n}; i=0; \
             until [ -e {d}/1 ] && [ -e {d}/2 ] && [ -e {d}/3 ] && [ -e {d}/4 ]; do \
             i=$((i+1)); [ $i -lt 1000 ] || {{ echo not side by side >&2; exit 99; }}; \
             sleep 0.01; done; "
        )
    }

    // Side by side is shown by a rendezvous, not by wall time (which a loaded machine stretches):
    // every command waits until all four have started. Then the fourth fails at once and the
    // first 0.1 s later, yet the first in the given order is the error reported.
    #[test]
    fn concurrent_commands_all_run_and_the_first_failure_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let started = dir.path().join("started");
        std::fs::create_dir(&started).unwrap();
        let wait = |n| all_four_started(&started, n);
        let marker = dir.path().join("ran");
        let first = format!("{}sleep 0.1; echo first >&2; exit 1", wait(1));
        let touch = format!("{}sleep 0.1; touch {}", wait(2), marker.display());
        let fed = format!("{}read line; test \"$line\" = fed", wait(3));
        let second = format!("{}echo second >&2; exit 2", wait(4));
        let err = run_concurrently(&[
            (&["sh", "-c", &first], None),
            (&["sh", "-c", &touch], None),
            (&["sh", "-c", &fed], Some("fed\n")),
            (&["sh", "-c", &second], None),
        ])
        .unwrap_err();
        // The error is the command line and its stderr: "first", not "not side by side".
        let text = err.to_string();
        assert!(text.trim_end().ends_with(": first"), "{text}");
        assert!(marker.exists(), "every command ran to its end");
        run_concurrently(&[(&["true"], None), (&["sh", "-c", "read l"], Some("x\n"))]).unwrap();
    }

    #[test]
    fn a_failing_command_is_an_error_with_its_command_line_and_stderr() {
        let err = run(&["sh", "-c", "echo broken >&2; exit 3"], None).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("sh -c 'echo broken >&2; exit 3'"), "{text}");
        assert!(text.contains("broken"), "{text}");
    }
}
