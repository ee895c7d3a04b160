//! Renders a run's report.html in headless Chromium and checks the charts are drawn.
//! Needs Debian's `chromium`: ignored by default (shown as ignored), run by CI with
//! `--ignored` after `ci/install-servers.sh` installed it.

use std::process::Command;

#[test]
#[ignore = "needs chromium; CI runs it with --ignored"]
fn report_renders_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.yaml");
    std::fs::write(
        &scenario,
        "name: browser\nload: {model: open, stages: [{duration: 2s, rate: 200}]}\n\
         keyspaces: {k: {count: 10}}\noperations:\n  - {op: keyvalue.get, keys: k}\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let status = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args([
            "run",
            scenario.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let profile = tempfile::tempdir().unwrap();
    let dom = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.path().display()),
            "--dump-dom",
            &format!("file://{}", out.join("report.html").display()),
        ])
        .output()
        .expect("chromium must be installed (apt-get install chromium)");
    let dom = String::from_utf8_lossy(&dom.stdout);
    // The DOM as Chromium parsed it: four SVG charts, each with drawn series.
    assert_eq!(dom.matches("<svg id=").count(), 4, "{dom}");
    // One operation: p99 + overall p50 over time, its distribution corrected and
    // uncorrected, target + achieved, errors + drops.
    assert_eq!(dom.matches("<polyline").count(), 8, "series drawn");
    assert!(dom.contains("<h2>Stages</h2>"), "the stage table");
    assert!(dom.contains("browser: PASSED"));
}
