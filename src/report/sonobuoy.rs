//! Sonobuoy plugin output: every report in the results dir, bundled in a tarball that `done` names.

use super::files::{self, create_dir, write_file, Outputs, ReportError};
use super::run_report::RunReport;
use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Set by Sonobuoy in plugin containers.
pub const ENV_VAR: &str = "SONOBUOY_RESULTS_DIR";
/// Sonobuoy's default results dir, for `--sonobuoy` without the variable.
pub const DEFAULT_DIR: &str = "/tmp/sonobuoy/results";
pub const TARBALL: &str = "netassay-results.tar.gz";
/// The worker sidecar waits for this file, then uploads the file whose path it contains.
pub const DONE: &str = "done";

/// Where to write for Sonobuoy: the variable's dir when set, else the default when asked.
pub fn results_dir(env: Option<OsString>, flag: bool) -> Option<PathBuf> {
    match env.filter(|v| !v.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir)),
        None if flag => Some(PathBuf::from(DEFAULT_DIR)),
        None => None,
    }
}

/// [`results_dir`] with the process environment.
pub fn results_dir_from_env(flag: bool) -> Option<PathBuf> {
    results_dir(std::env::var_os(ENV_VAR), flag)
}

/// Writes every report into `dir`, bundles them into [`TARBALL`], then writes `done` with the
/// tarball's absolute path. Returns every file written; `done` last.
pub fn write(
    report: &RunReport,
    dir: &Path,
    outputs: &Outputs,
) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = files::write_dir(report, dir, outputs)?;
    written.extend(finish(dir, &written)?);
    Ok(written)
}

/// When the run could not produce a report at all, Sonobuoy must still hear back, or it waits
/// until its timeout: a JUnit file with one error, bundled and announced like [`write`].
pub fn write_error(dir: &Path, message: &str) -> Result<Vec<PathBuf>, ReportError> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    create_dir(dir)?;
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
    status.set_type("environment").set_message(message);
    let mut suite = TestSuite::new("netassay");
    suite.add_test_case(TestCase::new("run", status));
    let mut junit = Report::new("netassay");
    junit.add_test_suite(suite);
    let path = dir.join(files::Kind::Junit.file_name());
    write_file(&path, &junit.to_string()?)?;
    let mut written = vec![path];
    written.extend(finish(dir, &written)?);
    Ok(written)
}

fn finish(dir: &Path, files: &[PathBuf]) -> Result<Vec<PathBuf>, ReportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Write { path, source }
    };
    let mut entries = Vec::new();
    for f in files {
        let data = std::fs::read(f).map_err(io(f))?;
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        entries.push((name, data));
    }
    let mtime = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let tarball = dir.join(TARBALL);
    std::fs::write(&tarball, gzip(&tar(&entries, mtime), mtime as u32)).map_err(io(&tarball))?;
    let absolute = std::path::absolute(&tarball).map_err(io(&tarball))?;
    // The worker reads `done` as soon as it exists and opens its whole content as a path: write
    // it elsewhere and rename it into place, with no trailing newline.
    let done = dir.join(DONE);
    let tmp = dir.join(".done.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(absolute.to_string_lossy().as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, &done).map_err(io(&done))?;
    Ok(vec![tarball, done])
}

/// A ustar archive of regular files (names up to 100 bytes, which ours are).
fn tar(entries: &[(String, Vec<u8>)], mtime: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in entries {
        let mut h = [0u8; 512];
        let put = |h: &mut [u8; 512], at: usize, s: &[u8]| h[at..at + s.len()].copy_from_slice(s);
        put(&mut h, 0, &name.as_bytes()[..name.len().min(100)]);
        put(&mut h, 100, b"0000644\0");
        put(&mut h, 108, b"0000000\0");
        put(&mut h, 116, b"0000000\0");
        put(&mut h, 124, format!("{:011o}\0", data.len()).as_bytes());
        put(&mut h, 136, format!("{:011o}\0", mtime).as_bytes());
        put(&mut h, 148, b"        ");
        h[156] = b'0';
        put(&mut h, 257, b"ustar\0");
        put(&mut h, 263, b"00");
        let sum: u32 = h.iter().map(|b| *b as u32).sum();
        put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// Gzip with stored (uncompressed) deflate blocks: valid everywhere, and reports are small.
fn gzip(data: &[u8], mtime: u32) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0];
    out.extend_from_slice(&mtime.to_le_bytes());
    out.extend_from_slice(&[0, 3]);
    let mut blocks = data.chunks(u16::MAX as usize).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in data {
        crc ^= *b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn the_variable_wins_and_the_flag_falls_back_to_the_default_dir() {
        assert_eq!(
            results_dir(Some("/r".into()), false),
            Some(PathBuf::from("/r"))
        );
        assert_eq!(results_dir(Some("".into()), false), None);
        assert_eq!(results_dir(None, true), Some(PathBuf::from(DEFAULT_DIR)));
        assert_eq!(results_dir(None, false), None);
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn the_tarball_unpacks_with_system_tar() {
        if !Command::new("tar")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            // CI has tar (the Debian base system): there the test must run, never skip.
            assert!(
                std::env::var_os("CI").is_none(),
                "tar is required in CI to check the tarball"
            );
            eprintln!("skipped: no tar");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let entries = vec![
            ("junit.xml".to_string(), b"<testsuites/>".to_vec()),
            ("big.bin".to_string(), big.clone()),
        ];
        let path = dir.path().join("t.tar.gz");
        std::fs::write(&path, gzip(&tar(&entries, 1_700_000_000), 0)).unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let st = Command::new("tar")
            .arg("-xzf")
            .arg(&path)
            .arg("-C")
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(
            std::fs::read(out.join("junit.xml")).unwrap(),
            b"<testsuites/>"
        );
        assert_eq!(std::fs::read(out.join("big.bin")).unwrap(), big);
    }

    #[test]
    fn write_error_still_announces_a_result() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_error(dir.path(), "cluster unreachable").unwrap();
        assert_eq!(written.last(), Some(&dir.path().join(DONE)));
        let done = std::fs::read_to_string(dir.path().join(DONE)).unwrap();
        assert_eq!(done, dir.path().join(TARBALL).display().to_string());
        let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
        assert!(junit.contains("cluster unreachable"));
    }
}
