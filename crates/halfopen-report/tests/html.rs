//! The HTML report stands alone (no network reference, the plot inline, no
//! script) and renders: headless Chromium (Debian's `chromium`) turns it
//! into a screenshot that is not blank. Without Chromium the render test
//! fails under CI (CI=true or 1) and is skipped with a message elsewhere.
mod common;

use common::fixture::{self, Spec};
use halfopen_report::postmortem::{render, Format};
use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn html() -> String {
    render(&fixture::realistic(), Format::Html, fixture::now_ms(&Spec::default())).unwrap()
}

#[test]
fn the_page_stands_alone() {
    let h = html();
    assert!(h.starts_with("<!DOCTYPE html>"));
    assert!(!h.contains("http://") && !h.contains("https://"), "a network reference");
    assert!(!h.contains("<script"), "a script");
    assert!(
        !h.contains("<link") && !h.contains("@import") && !h.contains("url("),
        "an external resource"
    );
    assert!(h.contains("<svg viewBox="), "the plot inline");
    assert_eq!(h.matches("<svg").count(), 1);
    assert!(
        h.contains("default-src 'none'"),
        "the CSP that forbids loading anything"
    );
    for section in [
        "What happened",
        "Timeline (UTC, 2026-11-30)",
        "Who was affected",
        "Why",
        "What to change",
        "How it ended",
    ] {
        assert!(h.contains(&format!("<h2>{section}</h2>")), "no section {section}");
    }
}

fn ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

/// Runs `cmd`, killing it after `limit`.
fn run_bounded(cmd: &mut Command, limit: Duration) -> std::process::ExitStatus {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn chromium_renders_the_page_to_a_non_blank_screenshot() {
    let have = Command::new("chromium")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(
            !ci(),
            "chromium is missing: install Debian's `chromium` package (CI needs it for this test)"
        );
        eprintln!("skipping: chromium is not installed (Debian package `chromium`)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("incident.html");
    let shot = dir.path().join("incident.png");
    std::fs::write(&page, html()).unwrap();
    let status = run_bounded(
        Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
            .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
            .arg(format!("--screenshot={}", shot.display()))
            .arg("--window-size=1200,2000")
            .arg(format!("file://{}", page.display())),
        Duration::from_secs(90),
    );
    assert!(status.success(), "chromium exited with {status}");
    let bytes = std::fs::read(&shot).expect("chromium wrote no screenshot");
    if let Ok(keep) = std::env::var("HALFOPEN_KEEP_SCREENSHOT") {
        std::fs::write(keep, &bytes).unwrap();
    }
    let mut dec = png::Decoder::new(std::io::Cursor::new(&bytes[..])).read_info().unwrap();
    let mut buf = vec![0; dec.output_buffer_size()];
    let info = dec.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1200, 2000));
    let step = info.color_type.samples();
    let px: Vec<[u8; 3]> = buf[..info.buffer_size()]
        .chunks(step)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    let colours: HashSet<[u8; 3]> = px.iter().copied().collect();
    assert!(
        colours.len() > 500,
        "only {} colours: the page did not render",
        colours.len()
    );
    // The plot's colours made it to the screen: the first client process's
    // blue area and the drops' orange bars.
    let near = |p: &[u8; 3], c: [u8; 3]| p.iter().zip(c).all(|(a, b)| a.abs_diff(b) < 40);
    let blue = px.iter().filter(|p| near(p, [16, 120, 170])).count();
    let orange = px.iter().filter(|p| near(p, [232, 170, 40])).count();
    assert!(blue > 2_000, "{blue} blue pixels: no plot on the page");
    assert!(orange > 2_000, "{orange} orange pixels: no plot on the page");
}
