//! The HTML report as a browser shows it: headless Chromium renders it to a non-blank screenshot
//! and its DOM carries the run's title. Skips without chromium, unless CI is set.

mod report_common;

use netassay::report::{write_all, Outputs};
use report_common::{missing, report, RUN_ID};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The verdict banner of a NOT CONFORMANT run (#b3261e).
const NOT_CONFORMANT_RGB: [u8; 3] = [0xb3, 0x26, 0x1e];

fn chromium_available() -> bool {
    Command::new("chromium")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Runs chromium headless with `extra` and the page; killed after a minute so a hung browser
/// fails the test instead of CI.
fn chromium(profile: &Path, extra: &[String], page: &Path) -> Output {
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait for chromium").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 60s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().expect("chromium output")
}

#[test]
fn chromium_renders_a_non_blank_page_with_the_runs_title() {
    if !chromium_available() {
        missing("chromium");
        return;
    }
    let keep = std::env::var_os("NETASSAY_KEEP_SCREENSHOT").is_some();
    let dir = tempfile::Builder::new()
        .prefix("netassay-html-")
        .tempdir()
        .unwrap();
    let page = dir.path().join("report.html");
    write_all(
        &report(),
        &Outputs {
            html: Some(page.clone()),
            ..Outputs::default()
        },
    )
    .unwrap();

    let shot = dir.path().join("shot.png");
    let out = chromium(
        &dir.path().join("profile-shot"),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,1600".into(),
        ],
        &page,
    );
    assert!(
        shot.exists(),
        "no screenshot; chromium said:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = std::fs::metadata(&shot).unwrap().len();
    assert!(
        size > 20_000,
        "screenshot of {size} bytes is too small to show the report"
    );

    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1200, 1600));
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    assert!(
        pixels.iter().any(|p| *p != pixels[0]),
        "the screenshot is a single colour"
    );
    let banner = pixels.iter().filter(|p| {
        p.iter()
            .zip(NOT_CONFORMANT_RGB)
            .all(|(a, b)| a.abs_diff(b) <= 8)
    });
    assert!(
        banner.count() > 10_000,
        "no NOT CONFORMANT banner in the screenshot"
    );

    let dom = chromium(
        &dir.path().join("profile-dom"),
        &["--dump-dom".into()],
        &page,
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains(&format!("<title>netassay report — {RUN_ID}</title>")),
        "title missing from the DOM:\n{}",
        &dom[..dom.len().min(500)]
    );
    assert!(dom.contains("NOT CONFORMANT"));
    if keep {
        let kept = dir.keep();
        eprintln!("kept {}", kept.display());
    }
}
