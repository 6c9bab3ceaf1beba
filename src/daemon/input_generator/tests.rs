use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::routing::post;
use ractor::Actor;

use super::*;
use crate::daemon::test_support::{context, serve, wait};

/// A node whose head the test moves; it has a bare header at its head and no other block
/// (every other fetch answers `null`).
async fn node(head: Arc<AtomicU64>) -> String {
    async fn rpc(State(head): State<Arc<AtomicU64>>, body: String) -> String {
        let req: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let head = head.load(Ordering::SeqCst);
        let at_head = req["params"][0].as_str() == Some(format!("{head:#x}").as_str());
        let result = match req["method"].as_str() {
            Some("eth_blockNumber") => serde_json::json!(format!("{head:#x}")),
            Some("eth_getBlockByNumber") if at_head => serde_json::json!({"hash": format!("0x{head:064x}")}),
            _ => serde_json::Value::Null,
        };
        serde_json::json!({"jsonrpc": "2.0", "id": req["id"], "result": result}).to_string()
    }
    serve(axum::Router::new().route("/", post(rpc)).with_state(head)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_target_is_recorded_a_long_gap_as_one_skip_and_one_never_served_leaves_with_the_window() {
    let head = Arc::new(AtomicU64::new(250));
    let url = node(head.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--poll-interval-ms", "100", "--block-interval", "100", "--max-backfill-blocks", "1000"];
    let (ctx, settings) = context(dir.path(), &url, &flags);
    let mailbox = Mailbox::default();
    let generator = InputGenerator {
        ctx: ctx.clone(),
        settings: settings.input,
        poller: Arc::new(HeadPoller::new(&url).unwrap()),
        alerts: Alerts::default(),
        mailbox: mailbox.clone(),
    };
    let (actor, _) = Actor::spawn(None, generator, ()).await.unwrap();
    mailbox.set(Some(actor.clone()));
    let ledger = ctx.ledger.clone();
    let state_of = |n| ledger.block(n).ok().flatten().map(|b| b.state);
    let not_served = || ctx.board.input.fresh().map_or(0, |s| s.not_served.len());
    // The node answers null: "not yet", so the target waits, asked for again.
    wait("target 200 waiting for the node", || not_served() == 1).await;
    assert_eq!(state_of(200), Some(BlockState::Seen), "not failed: the node may catch up");
    assert_eq!(ledger.last_scheduled().unwrap(), Some(200), "the first start takes the newest target");

    head.store(5_050, Ordering::SeqCst);
    // 200 is now far behind the head: given up, with the node's last answer.
    wait("target 200 out of the window", || state_of(200) == Some(BlockState::Failed)).await;
    let failed = ledger.block(200).unwrap().unwrap();
    assert_eq!(failed.stage.as_deref(), Some("backfill_window"), "{failed:?}");
    assert!(failed.reason.as_deref().is_some_and(|r| r.contains("null")), "{failed:?}");
    assert_eq!(ledger.last_scheduled().unwrap(), Some(5_000));
    let skipped = ledger.skipped_ranges(10).unwrap();
    assert_eq!(skipped.len(), 1, "one record for the whole gap: {skipped:?}");
    // More than 1000 below the head 5050: 300 … 4000.
    assert_eq!((skipped[0].first, skipped[0].last, skipped[0].count), (300, 4_000, 38));
    for n in (4_100..=5_000).step_by(100) {
        assert!(state_of(n).is_some(), "target {n} is in the ledger");
    }
    // The status follows the ledger by one turn of the actor: 200 and the gap missed, the ten
    // targets in the window waiting for the node.
    let counted = || ctx.board.input.fresh().is_some_and(|s| s.missed_count == 1 + 38 && s.not_served.len() == 10);
    wait("every target accounted for in the status", counted).await;
    assert_eq!(ctx.board.input.fresh().unwrap().head, Some(5_050));
    actor.stop(None);
}
