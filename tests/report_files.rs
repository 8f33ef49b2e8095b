//! The report files as their consumers see them: JUnit through junitparser (Python, independent of
//! quick-junit), the conformance YAML parsed back, and the Sonobuoy results dir with its `done` file.

mod report_common;

use netassay::report::conformance::{ConformanceReport, ProfileResult};
use netassay::report::files::Kind;
use netassay::report::{sonobuoy, write_all, Granularity, Outputs};
use report_common::{missing, report, JUNIT_PATH_COUNTS, JUNIT_STEP_COUNTS, RUN_ID, TRICKY_NAME};
use std::path::Path;
use std::process::Command;

fn junitparser_available() -> bool {
    Command::new("python3")
        .args(["-c", "import junitparser"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn check_with_junitparser(file: &Path, counts: [usize; 5]) {
    if !junitparser_available() {
        missing("python3 with junitparser");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/junit_check.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(file)
        .args(counts.map(|n| n.to_string()))
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "junit_check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn junit_per_step_reads_back_with_junitparser() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("junit.xml");
    let written = write_all(
        &report(),
        &Outputs {
            junit: Some(file.clone()),
            ..Outputs::default()
        },
    )
    .unwrap();
    assert_eq!(written, std::slice::from_ref(&file));
    let xml = std::fs::read_to_string(&file).unwrap();
    assert!(xml.contains("allow &lt;all&gt; &amp; &quot;everything&quot;"));
    assert!(xml.contains("ingress isolated by x/deny-from-y and no rule admits it"));
    // Beside the oracle's reasons, the CNI's own account of the cell's flows.
    assert!(xml.contains(
        "account: Hubble: 0 dropped, 3 forwarded since the step began; last: FORWARDED at ingress"
    ));
    assert!(xml.contains("x/endport-below-port: created without error"));
    check_with_junitparser(&file, JUNIT_STEP_COUNTS);
}

#[test]
fn junit_per_path_reads_back_with_junitparser() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("junit-paths.xml");
    write_all(
        &report(),
        &Outputs {
            junit: Some(file.clone()),
            junit_granularity: Granularity::Path,
            ..Outputs::default()
        },
    )
    .unwrap();
    check_with_junitparser(&file, JUNIT_PATH_COUNTS);
}

#[test]
fn the_conformance_report_parses_back_with_profiles_by_tag() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("conformance.yaml");
    write_all(
        &report(),
        &Outputs {
            conformance: Some(file.clone()),
            implementation: Some("acme-cni:1.2.3".into()),
            ..Outputs::default()
        },
    )
    .unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let c: ConformanceReport = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(c.api_version, "netassay.io/v1alpha1");
    assert_eq!(c.kind, "ConformanceReport");
    assert_eq!(c.run_id, RUN_ID);
    assert_eq!(
        (
            c.implementation.name.as_str(),
            c.implementation.version.as_str()
        ),
        ("acme-cni", "1.2.3")
    );
    let core = &c.profiles[0];
    assert_eq!(core.name, "core");
    assert_eq!(core.result, ProfileResult::Failure);
    assert_eq!(
        (
            core.statistics.passed,
            core.statistics.failed,
            core.statistics.skipped
        ),
        (1, 1, 0)
    );
    assert_eq!(core.failed_tests, ["deny ingress from y"]);
    let extended = &c.profiles[1];
    assert_eq!(extended.failed_tests, ["invalid policies are refused"]);
    assert_eq!(extended.skipped_tests, ["fixture never became ready"]);
    assert!(!core.failed_tests.contains(&TRICKY_NAME.to_string()));
}

#[test]
fn the_sonobuoy_dir_gets_every_report_a_tarball_and_done_last() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let written = write_all(
        &report(),
        &Outputs {
            sonobuoy_dir: Some(results.clone()),
            ..Outputs::default()
        },
    )
    .unwrap();
    let mut expected: Vec<_> = Kind::ALL
        .iter()
        .map(|k| results.join(k.file_name()))
        .collect();
    expected.push(results.join(sonobuoy::TARBALL));
    expected.push(results.join(sonobuoy::DONE));
    assert_eq!(written, expected);
    let done = std::fs::read_to_string(results.join(sonobuoy::DONE)).unwrap();
    assert_eq!(
        done,
        results.join(sonobuoy::TARBALL).display().to_string(),
        "no newline"
    );
    check_with_junitparser(&results.join("junit.xml"), JUNIT_STEP_COUNTS);
    if Command::new("tar").arg("--version").output().is_err() {
        missing("tar");
        return;
    }
    let out = Command::new("tar").arg("-tzf").arg(&done).output().unwrap();
    assert!(out.status.success());
    let listed = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = listed.lines().collect();
    assert_eq!(
        names,
        [
            "junit.xml",
            "results.json",
            "report.html",
            "conformance.yaml"
        ]
    );
}
