//! Processes an instance starts outside its pods (the reference cluster's components): each is
//! recorded by pid and start time, so a later sweep kills exactly those of a dead instance and
//! never a process that merely reuses a pid.

use std::path::Path;

/// The control plane's folder inside the sandbox instance's folder.
pub const STATE_SUBDIR: &str = "control-plane";
/// The file, in the control plane's folder, that lists its processes for the sweep.
pub const PIDS_FILE: &str = "pids";

/// Field 22 of `/proc/<pid>/stat`; `None` if there is no such process.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

fn parse_start_time(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces and parentheses: skip past its last ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    // after_name starts at field 3, so field 22 is the 20th word.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Kills the processes a dead instance's `pids` file lists (pid and start time, so a reused
/// pid is left alone). For the startup sweep.
pub fn kill_recorded(pids_file: &Path) {
    let Ok(text) = std::fs::read_to_string(pids_file) else {
        return;
    };
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(pid), Some(start)) = (
            words.next().and_then(|p| p.parse::<u32>().ok()),
            words.next().and_then(|s| s.parse::<u64>().ok()),
        ) else {
            continue;
        };
        if process_start_time(pid) == Some(start) {
            // SAFETY: kill(2) on a pid whose start time matches the one we recorded.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
    }
}

/// Runs `process` with `input` on stdin; its exit status, stdout and stderr; killed after
/// `limit`. stdout and stderr are read while it runs (a pipe holds only so much).
pub(crate) fn run_with_timeout(
    mut process: std::process::Command,
    input: &str,
    limit: std::time::Duration,
) -> Result<(std::process::ExitStatus, String, String), String> {
    let mut child = process.spawn().map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that exits without reading shows that in its status.
        let _ = std::io::Write::write_all(&mut stdin, input.as_bytes());
    }
    let mut stdout = child.stdout.take().ok_or("stdout is not piped")?;
    let mut stderr = child.stderr.take().ok_or("stderr is not piped")?;
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status,
            None if std::time::Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {} s: killed", limit.as_secs()));
            }
            None => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok((status, stdout, stderr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_survives_a_command_name_with_spaces_and_parentheses() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_time(stat), Some(987654));
    }
}
