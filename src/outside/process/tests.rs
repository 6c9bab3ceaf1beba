use super::*;

fn sh(script: &str, timeout: Duration) -> RunSpec {
    RunSpec {
        program: "sh".into(),
        args: vec!["-c".into(), script.into()],
        timeout,
        kill_grace: Duration::from_millis(300),
        env: Vec::new(),
    }
}

fn never() -> std::future::Pending<()> {
    std::future::pending()
}

#[tokio::test]
async fn exit_code_and_tail() {
    let out = run(
        &sh("for i in $(seq 1 60); do echo line $i; done; echo err >&2; exit 3", Duration::from_secs(10)),
        never(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(out.ending, Ending::Code(3));
    assert_eq!(out.tail.len(), TAIL_LINES);
    assert!(out.tail.contains(&"err".to_string()));
    assert!(out.tail.contains(&"line 60".to_string()));
    assert!(!out.tail.contains(&"line 1".to_string()));
}

#[tokio::test]
async fn crash_is_a_signal() {
    let out = run(&sh("kill -SEGV $$", Duration::from_secs(10)), never(), |_| {}).await.unwrap();
    assert_eq!(out.ending, Ending::Signal(libc::SIGSEGV));
}

#[tokio::test]
async fn timeout_kills_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild.pid");
    // The grandchild ignores TERM: only the group KILL can end it.
    let script = format!("(trap '' TERM; sleep 30) & echo $! > {}; wait", pidfile.display());
    let out = run(&sh(&script, Duration::from_millis(500)), never(), |_| {}).await.unwrap();
    assert_eq!(out.ending, Ending::TimedOut);
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    for _ in 0..250 {
        if !process_alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("grandchild {pid} survived");
}

#[tokio::test]
async fn cancellation_stops_the_run() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let spec = sh("sleep 30", Duration::from_secs(60));
    let handle = tokio::spawn(async move {
        run(
            &spec,
            async move {
                let _ = rx.await;
            },
            |_| {},
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    tx.send(()).unwrap();
    let out = handle.await.unwrap().unwrap();
    assert_eq!(out.ending, Ending::Cancelled);
    assert!(out.elapsed < Duration::from_secs(5));
}

#[tokio::test]
async fn garbage_output_is_read_to_the_end_and_long_lines_are_cut() {
    // Invalid UTF-8, then a 100 kB line without a newline, then a normal exit.
    let script = "printf 'bad \\377\\376 bytes\\n'; head -c 100000 /dev/zero | tr '\\0' x; echo; echo done; exit 0";
    let out = run(&sh(script, Duration::from_secs(10)), never(), |_| {}).await.unwrap();
    assert_eq!(out.ending, Ending::Code(0), "the child was not killed by a closed pipe");
    assert!(out.tail.iter().any(|l| l.starts_with("bad ") && l.contains('\u{fffd}')), "{:?}", out.tail);
    let long = out.tail.iter().find(|l| l.starts_with("xxx")).expect("the long line");
    assert!(long.len() <= MAX_LINE_BYTES + 20 && long.ends_with("(line cut)"), "{}", long.len());
    assert_eq!(out.tail.last().map(String::as_str), Some("done"));
}

/// Several runs in flight (one per GPU), each sweeping orphans as it ends: a sweep must never
/// take a run's process, started a moment before, for an orphan. Runs start one after another
/// while sweeps run back to back; every run must end as its script does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_beside_runs_starting_never_kills_their_processes() {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    let (sweeping, sweeps) = (std::sync::Arc::new(AtomicBool::new(true)), std::sync::Arc::new(AtomicU32::new(0)));
    let sweeper = {
        let (sweeping, sweeps) = (sweeping.clone(), sweeps.clone());
        std::thread::spawn(move || {
            while sweeping.load(Ordering::SeqCst) {
                sweep_orphans(0);
                sweeps.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    // Runs keep starting until at least 40 have and 20 sweeps ran beside them (a loaded machine
    // sweeps more slowly; the overlap, not the clock, is what the test needs).
    let mut runs = Vec::new();
    while runs.len() < 40 || sweeps.load(Ordering::SeqCst) < 20 {
        assert!(runs.len() < 2000, "the sweeper never got going ({} sweeps)", sweeps.load(Ordering::SeqCst));
        runs.push(tokio::spawn(async { run(&sh("sleep 0.05", Duration::from_secs(30)), never(), |_| {}).await }));
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let mut endings = Vec::new();
    for r in runs {
        endings.push(r.await.unwrap().unwrap().ending);
    }
    sweeping.store(false, Ordering::SeqCst);
    sweeper.join().unwrap();
    let killed: Vec<&Ending> = endings.iter().filter(|e| **e != Ending::Code(0)).collect();
    assert!(killed.is_empty(), "runs ended by a sweep: {killed:?} of {}", endings.len());
}
