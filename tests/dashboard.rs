#![recursion_limit = "256"]
//! The dashboard in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `.ci/run`) opens `/` on a daemon that has proved a block, runs the page's script, and the
//! rendered page must list the proved block linked to its own page — and not to ethproofs.org,
//! which never hears of a block of this chain (id 1337, a dev chain) with reporting off. The
//! block's page must render its timeline. A screenshot is saved.

mod support;

use std::process::Command;
use std::time::Duration;

use support::daemon::{Daemon, base_env, mini_node};

fn chromium() -> Option<String> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
        .map(str::to_string)
}

/// Runs headless Chromium on `url` with a fresh profile and the flags this network needs.
fn headless(browser: &str, profile: &std::path::Path, url: &str, action: &[&str]) -> std::process::Output {
    headless_sized(browser, profile, url, action, "1280,1000")
}

fn headless_sized(
    browser: &str,
    profile: &std::path::Path,
    url: &str,
    action: &[&str],
    size: &str,
) -> std::process::Output {
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--window-size={size}"),
            // Give the page's script time to fetch and render before the DOM is taken.
            "--virtual-time-budget=6000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(action)
        .arg(url)
        .output()
        .expect("run chromium")
}

#[test]
fn a_proved_block_appears_on_the_dashboard_in_a_real_browser() {
    let Some(browser) = chromium() else {
        assert!(std::env::var("CI").is_err(), "chromium is missing under CI: .ci/run installs it");
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "\n*** dashboard browser test: SKIPPED, no chromium on this machine ***\n");
        return;
    };
    let node = mini_node(10);
    let mut d = Daemon::start(&base_env(&node, None));
    d.wait_for("block 10 proved", Duration::from_secs(60), |h| h["components"]["prover"]["proved_count"] == 1);
    // One more block a moment later: the daemon measures the chain's block time from it.
    std::thread::sleep(Duration::from_millis(1500));
    node.set_head(11);
    d.wait_for("block 11 proved", Duration::from_secs(60), |h| h["components"]["prover"]["proved_count"] == 2);
    let url = format!("http://127.0.0.1:{}/", d.port);
    let profile = tempfile::tempdir().unwrap();

    let out = headless(&browser, profile.path(), &url, &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains(r#"data-block="10""#) && dom.contains(r#"data-state="proved""#), "no proved row in:\n{dom}");
    assert!(dom.contains(r#"href="blocks/10""#), "no link to the block's page in:\n{dom}");
    assert!(!dom.contains("https://ethproofs.org/blocks/10"), "a dev chain's block links to ethproofs.org:\n{dom}");
    assert!(dom.contains(r#"id="status" class="status healthy""#), "status not rendered:\n{dom}");
    // Reporting is off: the Reported column says so rather than staying empty.
    assert!(dom.contains("<td>off</td>"), "the Reported column does not say off:\n{dom}");
    assert!(dom.contains("reporting off"), "no mode badge:\n{dom}");
    // The chart has a scale from zero in seconds and block labels.
    assert!(dom.contains(">0 s</text>") && dom.contains(">10</text>"), "the chart has no axis or labels:\n{dom}");
    let countdown = dom.split(r#"id="countdown">"#).nth(1).and_then(|s| s.split('<').next()).unwrap_or("");
    assert!(countdown.contains(" a block") && !countdown.contains("12 s"), "the countdown: {countdown:?}");

    // A phone: nothing wider than the screen (the table scrolls inside its card).
    let phone = headless_sized(&browser, profile.path(), &url, &["--dump-dom"], "390,844");
    let dom = String::from_utf8_lossy(&phone.stdout);
    assert!(dom.contains(r#"data-fits="true""#), "the page is wider than a phone:\n{dom}");

    let page = format!("http://127.0.0.1:{}/blocks/10", d.port);
    let out = headless(&browser, profile.path(), &page, &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&out.stdout);
    for expected in ["target seen", "input built", "proof accepted", "where the time went", "never on ethproofs.org"] {
        assert!(dom.to_lowercase().contains(expected), "{expected:?} missing from the block page:\n{dom}");
    }
    assert!(dom.contains(r#"id="outcome" class="proved""#), "the outcome is shown:\n{dom}");

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let out = headless(&browser, profile.path(), &url, &[&format!("--screenshot={}", shot.display())]);
    let png =
        std::fs::read(&shot).unwrap_or_else(|_| panic!("no screenshot: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "screenshot looks empty ({} bytes)", png.len());
    eprintln!("dashboard screenshot: {}", shot.display());
    assert!(d.terminate().0.success());
}

#[test]
fn a_block_that_cannot_be_shown_is_a_404_page_with_words() {
    let node = mini_node(10);
    let mut d = Daemon::start(&base_env(&node, None));
    d.wait_for("block 10 proved", Duration::from_secs(60), |h| h["components"]["prover"]["proved_count"] == 1);
    for (path, words) in [
        ("/blocks/abc", "that is not a block number"),
        ("/blocks/%3Cb%3Ex", "that is not a block number"),
        ("/blocks/99999999999999999999", "above the largest block number"),
        ("/blocks/12345", "this daemon has no block 12345 in its ledger"),
    ] {
        assert_eq!(d.get(path).map(|r| r.0), Some(404), "{path}");
        let page = d.get_text(path).unwrap_or_default();
        assert!(page.contains(r#"id="not-found""#) && page.contains(words), "{path}:\n{page}");
        assert!(page.contains(r#"<a href="../">Back to the dashboard</a>"#), "no way back from {path}:\n{page}");
        assert!(!page.contains("<b>"), "the asked text is markup:\n{page}");
    }
    let (code, body) = d.get("/api/blocks/abc").unwrap();
    assert_eq!((code, body["error"].as_str().is_some_and(|e| e.contains("not a block number"))), (404, true), "{body}");
    assert_eq!(d.get("/blocks/10").map(|r| r.0), Some(200), "a block in the ledger has its page");
    assert!(d.terminate().0.success());
}
