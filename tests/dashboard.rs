#![recursion_limit = "256"]
//! The dashboard in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `.ci/run`) opens the pages on a running daemon, runs their scripts, and the rendered DOM is
//! checked: the board at desktop and phone width (nothing wider than a phone's screen), the block
//! page, the board once the daemon is gone, an input stage in trouble, and the words of a daemon
//! that executes without proofs. The 404 page of a block the ledger does not have is plain HTTP.

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use support::daemon::{Daemon, base_env, mini_node, set};
use support::fake_node::Answer;

/// A block hash in what the node said about a witness, with a path and a URL with a password.
const HASH: &str = "0x930fac1fd65556618589dceb76d0afb213aaea2e972dcbedaa050142a894f705";
const NODE_SAID: &str = "missing trie node \
    0x930fac1fd65556618589dceb76d0afb213aaea2e972dcbedaa050142a894f705 in /var/lib/hidden-dir/chaindata \
    (https://user:PASSWORD@node.example/v3/SECRET)";

const DESKTOP: &str = "1280,1000";
const PHONE: &str = "390,844";

fn chromium() -> Option<String> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
        .map(str::to_string);
    if found.is_none() {
        assert!(std::env::var("CI").is_err(), "chromium is missing under CI: .ci/run installs it");
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "\n*** dashboard browser test: SKIPPED, no chromium on this machine ***\n");
    }
    found
}

/// Runs headless Chromium on `url` at `size` with a fresh profile and the flags this network needs.
fn headless(browser: &str, url: &str, action: &[&str], size: &str) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
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
            // Give the page's script time to fetch and render (three of the board's refreshes)
            // before the DOM is taken.
            "--virtual-time-budget=6000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(action)
        .arg(url)
        .output()
        .expect("run chromium")
}

/// The DOM of `path` on port `port` once its script has run.
fn dom(browser: &str, port: u16, path: &str, size: &str) -> String {
    let out = headless(browser, &format!("http://127.0.0.1:{port}{path}"), &["--dump-dom"], size);
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The text of the element `id` (its first text node).
fn text_of<'a>(dom: &'a str, id: &str) -> &'a str {
    let after = dom.split(&format!(r#"id="{id}""#)).nth(1).unwrap_or("");
    after.split_once('>').map_or("", |(_, rest)| rest.split('<').next().unwrap_or(""))
}

/// What the page shows: its body, without the script that rendered it (whose source names
/// every word the page can say).
fn shown(dom: &str) -> &str {
    let body = &dom[dom.find("<body").unwrap_or(0)..];
    &body[..body.find("<script").unwrap_or(body.len())]
}

/// The opening tag of the element `id`, attributes and all.
fn tag_of<'a>(dom: &'a str, id: &str) -> &'a str {
    let Some(at) = dom.find(&format!(r#" id="{id}""#)) else { return "" };
    let start = dom[..at].rfind('<').unwrap_or(at);
    dom[start..].split_inclusive('>').next().unwrap_or("")
}

/// The chart's y-axis labels, checked to read as people read durations: from "0 <unit>", one
/// unit, a top of at least 1 in it (never "0.001 s"), at most three significant figures and one
/// decimal ("2.5 ms", "50 s", "20 min").
fn sane_axis(dom: &str) -> Vec<&str> {
    let labels: Vec<&str> = dom.split(r#"class="axis">"#).skip(1).map(|s| s.split('<').next().unwrap_or("")).collect();
    assert_eq!(labels.len(), 3, "no axis in:\n{dom}");
    let parsed: Vec<(f64, &str, &str)> = labels
        .iter()
        .map(|l| {
            let (number, unit) = l.split_once(' ').unwrap_or_else(|| panic!("{l:?} has no unit"));
            (number.replace(',', "").parse().unwrap_or_else(|_| panic!("{l:?}")), unit, number)
        })
        .collect();
    assert!(["ms", "s", "min", "h"].contains(&parsed[0].1), "{labels:?}");
    assert!(parsed.iter().all(|p| p.1 == parsed[0].1), "one unit: {labels:?}");
    assert_eq!(parsed[0].0, 0.0, "from zero: {labels:?}");
    assert!(parsed[2].0 >= 1.0, "a top below 1 {}: {labels:?}", parsed[0].1);
    for (_, _, number) in &parsed {
        let decimals = number.split_once('.').map_or(0, |(_, d)| d.len());
        let significant = number.replace([',', '.'], "").trim_start_matches('0').len();
        assert!(decimals <= 1 && significant <= 3, "{number:?} in {labels:?}");
    }
    labels
}

#[test]
fn a_proved_block_appears_on_the_dashboard_at_desktop_and_phone_width() {
    let Some(browser) = chromium() else { return };
    let node = mini_node(10);
    let mut d = Daemon::start(&base_env(&node, None));
    d.wait_for("block 10 proved", Duration::from_secs(60), |h| h["components"]["prover"]["proved_count"] == 1);
    // One more block a moment later (the daemon measures the chain's block time from it), whose
    // witness the node refuses in words with a hash in them (no break for 66 characters), a path
    // and a URL with a password: the reason the board shows.
    node.answer("debug_executionWitness", Answer::Error { code: -32000, message: NODE_SAID.into() });
    std::thread::sleep(Duration::from_millis(1500));
    node.set_head(11);
    d.wait_for("block 11 missed", Duration::from_secs(60), |h| h["components"]["input_generator"]["missed_count"] == 1);

    let dom = dom(&browser, d.port, "/", DESKTOP);
    assert!(dom.contains(r#"data-block="10" data-state="proved""#), "no proved row in:\n{dom}");
    assert!(dom.contains(r#"data-block="11" data-state="failed""#), "no failed row in:\n{dom}");
    assert!(dom.contains(HASH), "the reason is not shown:\n{dom}");
    assert!(dom.contains(r#"href="blocks/10""#), "no link to the block's page in:\n{dom}");
    assert!(!dom.contains("https://ethproofs.org/blocks/10"), "a dev chain's block links to ethproofs.org:\n{dom}");
    assert!(dom.contains(r#"id="status" class="status healthy""#), "status not rendered:\n{dom}");
    assert!(text_of(&dom, "updated").starts_with("live · updated"), "not marked live:\n{dom}");
    assert!(tag_of(&dom, "unreachable").contains("hidden"), "an unreachable banner on a live board:\n{dom}");
    assert!(tag_of(&dom, "input-card").contains(r#"class="card healthy""#), "the input stage:\n{dom}");
    // Reporting is off: the Reported column says so rather than staying empty.
    assert!(dom.contains("<td>off</td>"), "the Reported column does not say off:\n{dom}");
    assert!(dom.contains("reporting off"), "no mode badge:\n{dom}");
    assert_eq!(text_of(&dom, "reliability"), "last 6 h: 50.0 % of targets proved (1 of 2)");
    // The chart has a scale from zero in one sensible unit, and block labels.
    assert_eq!(sane_axis(&dom), ["0 ms", "100 ms", "200 ms"], "the fake prover says 123 ms");
    assert!(dom.contains(">10</text>"), "the chart has no block labels:\n{dom}");
    // Every block a target: the real-time cohort's card, its deadline and its bars.
    assert!(!tag_of(&dom, "cohort-card").contains("hidden"), "no cohort card:\n{dom}");
    assert_eq!(text_of(&dom, "cohort-title"), "Cohort real-time (under 10 s)");
    let cohort = text_of(&dom, "cohort-detail");
    assert!(cohort.starts_with("last hour: ") && cohort.contains("last day: "), "{cohort}");
    assert!(cohort.ends_with("bars 70.0 % in time, 95.0 % proved"), "{cohort}");
    let countdown = text_of(&dom, "countdown");
    assert!(countdown.contains(" a block") && !countdown.contains("12 s"), "the countdown: {countdown:?}");

    // A phone: nothing wider than the screen (the table scrolls inside its card, other words wrap).
    let dom = self::dom(&browser, d.port, "/", PHONE);
    assert!(dom.contains(r#"data-block="11""#) && dom.contains(HASH), "the phone's board is not rendered:\n{dom}");
    assert!(dom.contains(r#"data-fits="true""#), "the board is wider than a phone:\n{dom}");
    // …and no word in the table is broken over two lines ("Bloc" above "k"): the table scrolls instead.
    assert!(dom.contains(r#"data-words-whole="true""#), "a table word is broken mid-word on a phone:\n{dom}");
    for hidden in ["PASSWORD", "SECRET", "hidden-dir"] {
        assert!(!dom.contains(hidden), "the board shows {hidden}:\n{dom}");
    }

    for size in [DESKTOP, PHONE] {
        let dom = self::dom(&browser, d.port, "/blocks/10", size);
        for expected in
            ["target seen", "input built", "proof accepted", "where the time went", "never on ethproofs.org"]
        {
            assert!(dom.to_lowercase().contains(expected), "{expected:?} missing from the block page:\n{dom}");
        }
        assert!(dom.contains(r#"id="outcome" class="proved""#), "the outcome is shown:\n{dom}");
        // The block's hash, 66 characters without a break, is on the page and fits it.
        assert!(dom.contains("<dt>block hash</dt><dd>0x"), "no block hash:\n{dom}");
        assert!(dom.contains(r#"data-fits="true""#), "the block page is wider than the window ({size}):\n{dom}");
    }

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let url = format!("http://127.0.0.1:{}/", d.port);
    let out = headless(&browser, &url, &[&format!("--screenshot={}", shot.display())], DESKTOP);
    let png =
        std::fs::read(&shot).unwrap_or_else(|_| panic!("no screenshot: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "screenshot looks empty ({} bytes)", png.len());
    eprintln!("dashboard screenshot: {}", shot.display());
    assert!(d.terminate().0.success());
}

#[test]
fn the_board_says_when_the_daemon_is_unreachable_and_stops_looking_live() {
    let Some(browser) = chromium() else { return };
    let node = mini_node(10);
    let mut d = Daemon::start(&base_env(&node, None));
    d.wait_for("block 10 proved", Duration::from_secs(60), |h| h["components"]["prover"]["proved_count"] == 1);
    // The page's second poll is held until the test has stopped the daemon: it then finds it gone.
    let (stop_now, stop_asked) = mpsc::channel::<()>();
    let (stopped, wait_stopped) = mpsc::channel::<()>();
    let (stop_now, wait_stopped) = (Mutex::new(stop_now), Mutex::new(wait_stopped));
    let polls = AtomicUsize::new(0);
    let port = support::proxy::start(d.port, move |path| {
        if path.starts_with("/api/dashboard") && polls.fetch_add(1, Ordering::SeqCst) == 1 {
            stop_now.lock().unwrap().send(()).unwrap();
            let _ = wait_stopped.lock().unwrap().recv_timeout(Duration::from_secs(60));
        }
    });
    let page = std::thread::spawn(move || dom(&browser, port, "/", DESKTOP));
    stop_asked.recv_timeout(Duration::from_secs(60)).expect("the page never polled a second time");
    assert!(d.terminate().0.success());
    stopped.send(()).unwrap();
    let dom = page.join().unwrap();

    assert!(text_of(&dom, "unreachable").starts_with("Daemon unreachable: no answer since "), "{dom}");
    assert!(text_of(&dom, "unreachable").contains("not the present"), "{dom}");
    let body = dom.split("<body").nth(1).and_then(|b| b.split('>').next()).unwrap_or("");
    assert!(body.contains(r#"class="stale""#), "the last data is not marked stale:\n{dom}");
    assert!(!tag_of(&dom, "unreachable").contains("hidden"), "no banner:\n{dom}");
    assert!(dom.contains(r#"id="status" class="status unhealthy">unreachable<"#), "{dom}");
    assert!(text_of(&dom, "updated").starts_with("stale · last data"), "{dom}");
    assert!(!shown(&dom).contains("live"), "still says live:\n{dom}");
    assert!(dom.contains(r#"data-block="10""#), "the last answer is kept, marked stale:\n{dom}");
    // Nothing claims freshness: the head's age grows with the silence, the countdown stops counting.
    let age = text_of(&dom, "head-age");
    assert!(age.starts_with("seen ") && age.ends_with(" ago"), "the head still looks just seen: {age:?}");
    assert_eq!(text_of(&dom, "countdown"), "unknown while the daemon is unreachable", "{dom}");
}

#[test]
fn an_input_stage_whose_node_fails_is_not_shown_healthy() {
    let Some(browser) = chromium() else { return };
    let node = mini_node(10);
    let mut d = Daemon::start(&base_env(&node, None));
    d.wait_for("block 10 proved", Duration::from_secs(60), |h| h["components"]["prover"]["proved_count"] == 1);
    node.answer("eth_blockNumber", Answer::Http { status: 500, body: "upstream down".into() });
    d.wait_for("the poll failure shown", Duration::from_secs(30), |h| {
        h["components"]["input_generator"]["rpc_failing_seconds"].is_u64()
    });
    let dom = dom(&browser, d.port, "/", DESKTOP);
    assert!(tag_of(&dom, "input-card").contains(r#"class="card degraded""#), "the input stage looks healthy:\n{dom}");
    assert_eq!(text_of(&dom, "input-state"), "node failing", "{dom}");
    assert!(text_of(&dom, "input-detail").starts_with("the node's head poll fails for "), "{dom}");
    assert!(dom.contains(r#"id="status" class="status degraded""#), "the header says healthy:\n{dom}");
    node.clear_answer("eth_blockNumber");
    assert!(d.terminate().0.success());
}

#[test]
fn a_pause_says_who_paused_and_why_and_the_disk_s_is_not_healthy() {
    let Some(browser) = chromium() else { return };
    let mut env = base_env(&mini_node(10), None);
    env.push(("MIN_FREE_DISK_MB", "999999999999".into()));
    let mut d = Daemon::start(&env);
    d.wait_for("paused for disk", Duration::from_secs(30), |h| h["pause"]["by"] == "disk");
    let dom = dom(&browser, d.port, "/", DESKTOP);
    assert!(dom.contains(r#"id="status" class="status degraded""#), "a disk-full pause looks healthy:\n{dom}");
    assert!(!tag_of(&dom, "paused").contains("hidden"), "no pause banner:\n{dom}");
    let banner = text_of(&dom, "paused");
    assert!(
        banner.starts_with("Paused (disk): paused by the daemon") && banner.contains("MIN_FREE_DISK_MB"),
        "{banner}"
    );
    assert!(text_of(&dom, "meta").ends_with("PAUSED by disk"), "{}", text_of(&dom, "meta"));
    assert!(d.terminate().0.success());
}

#[test]
fn without_proofs_the_pages_speak_of_executions() {
    let Some(browser) = chromium() else { return };
    // A fresh deploy: the head (9) is below the first target (10).
    let node = mini_node(9);
    let mut env = base_env(&node, None);
    set(&mut env, "ZISK_ACTION", "native");
    set(&mut env, "BLOCK_INTERVAL", "10");
    set(&mut env, "CARGO_ZISK", "/nonexistent/cargo-zisk");
    let mut d = Daemon::start(&env);
    d.wait_for("the head believed", Duration::from_secs(30), |h| h["components"]["input_generator"]["head"] == 9);
    let dom = dom(&browser, d.port, "/", DESKTOP);
    assert_eq!(text_of(&dom, "reliability"), "last 6 h: no targets yet", "{dom}");
    assert_eq!(text_of(&dom, "done-title"), "Executed / missed", "{dom}");

    node.set_head(10);
    d.wait_for("block 10 executed", Duration::from_secs(60), |h| h["components"]["prover"]["executed_count"] == 1);
    let dom = self::dom(&browser, d.port, "/", DESKTOP);
    assert_eq!(text_of(&dom, "reliability"), "last 6 h: 100.0 % of targets executed (1 of 1)", "{dom}");
    assert_eq!((text_of(&dom, "time-title"), text_of(&dom, "prover-title")), ("Execution time", "Executor"));
    assert!(text_of(&dom, "chart-title").starts_with("Execution time per block"), "{dom}");
    // A native run takes milliseconds: the axis says so in ms, not in thousandths of a second.
    assert_eq!(sane_axis(&dom)[0], "0 ms", "{dom}");
    assert!(dom.contains(r#"data-state="executed""#), "{dom}");

    let page = self::dom(&browser, d.port, "/blocks/10", DESKTOP);
    assert!(page.contains("<dt>execution time</dt>") && page.contains("executed (no proof)"), "{page}");
    assert!(page.contains("execution started") && page.contains("execution finished"), "{page}");
    for wrong in ["proving time", "proving started", "? steps", "? cycles", "prover finished", "proof accepted"] {
        assert!(!shown(&page).contains(wrong), "{wrong:?} on a block executed without a proof:\n{page}");
    }
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
    // Any other path: a 404 page in words too, quoting the path as text, never as markup.
    assert_eq!(d.get("/nothing/here").map(|r| r.0), Some(404));
    let page = d.get_text("/nothing/here").unwrap_or_default();
    assert!(
        page.contains("serves no page at <code>/nothing/here</code>") && page.contains(r#"<a href="/">"#),
        "{page}"
    );
    let page = d.get_text("/nothing/<b>x").unwrap_or_default();
    assert!(!page.contains("<b>"), "the asked path is markup:\n{page}");
    assert!(d.terminate().0.success());
}
