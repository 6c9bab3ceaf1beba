use ractor::Actor;

use super::*;
use crate::daemon::test_support::{NodeHash, context, enqueued, node, wait};
use crate::store::{Accepted, ExitRecord, ReportState};

type Seen = crate::daemon::test_support::Calls;

/// An EthProofs API that accepts everything and remembers the order.
async fn api(seen: Seen) -> String {
    crate::daemon::test_support::ethproofs(seen).await
}

const HASH: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";

/// Block `n` proved with `proof` (reporting on): its three calls pending.
fn proved(ledger: &crate::store::Ledger, n: u64, proof: &std::path::Path) {
    use sha2::Digest;
    ledger.targets_scheduled(&[n], None, n).unwrap();
    ledger.input_built(n, &enqueued(proof, HASH), true).unwrap();
    ledger.proof_started(n, true).unwrap();
    let bytes = std::fs::read(proof).unwrap();
    let exit = ExitRecord { exit: "code 0", proof: Some((proof, bytes.len() as u64)), proving_ms: 5, cycles: None };
    ledger.prover_exited(n, &exit).unwrap();
    let digest = hex::encode(sha2::Sha256::digest(&bytes));
    ledger
        .proof_accepted(n, &Accepted { proving_ms: 5, cycles: None, sha256: &digest, checked_for: None }, true)
        .unwrap();
}

/// A Reporter over `ctx` sending to EthProofs at `settings`.
async fn reporter(ctx: &Arc<Context>, settings: &crate::daemon::Settings) -> ActorRef<ReporterMsg> {
    let client = Arc::new(EthProofsClient::new(ctx.http.clone(), settings.reporter.ethproofs.clone().unwrap()));
    let mailbox = Mailbox::default();
    let reporter = Reporter {
        ctx: ctx.clone(),
        settings: settings.reporter.clone(),
        client: Some(client),
        alerts: Alerts::default(),
        mailbox: mailbox.clone(),
    };
    let (actor, _) = Actor::spawn(None, reporter, ()).await.unwrap();
    mailbox.set(Some(actor.clone()));
    actor
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_each_blocks_calls_in_order_and_holds_a_call_in_doubt() {
    let seen: Seen = Arc::default();
    let url = api(seen.clone()).await;
    let node_url = node(Arc::new(std::sync::Mutex::new(Some(HASH.to_string())))).await;
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--ethproofs-rpc-url", &url, "--ethproofs-api-key", "k", "--ethproofs-cluster-id", "1"];
    let (ctx, settings) = context(dir.path(), &node_url, &flags);
    let ledger = &ctx.ledger;
    let proof = dir.path().join("proof.bin");
    std::fs::write(&proof, [7u8; 64]).unwrap();
    // Block 10: proved, all three calls pending. Block 20: its `proving` went out and the
    // daemon died before the answer, and nothing follows it yet.
    proved(ledger, 10, &proof);
    ledger.targets_scheduled(&[20], None, 20).unwrap();
    ledger.input_built(20, &enqueued(&proof, HASH), false).unwrap();
    ledger.proof_started(20, true).unwrap();
    let in_doubt = ledger.pending_reports().unwrap().into_iter().find(|r| r.block == 20).unwrap();
    ledger.report_sending(in_doubt.id).unwrap();

    let actor = reporter(&ctx, &settings).await;
    // The turn that recorded the third answer looked at the outbox again and sent nothing: the
    // in-doubt call is held whatever the time (nothing follows it), so no later turn sends it.
    let settled = || ctx.board.reporter.fresh().is_some_and(|r| (r.delivered_count, r.state) == (3, "waiting"));
    wait("block 10's three calls answered, nothing sending", settled).await;
    let sent = seen.lock().unwrap().clone();
    let expected: Vec<(String, u64)> = ["queued", "proving", "proved"].iter().map(|s| (s.to_string(), 10)).collect();
    assert_eq!(sent, expected, "in order, and block 20's call in doubt is not sent again");
    assert!(ledger.reports_of(10).unwrap().iter().all(|r| r.state == ReportState::Done));
    assert_eq!(ledger.report_state(20, ReportKind::Proving).unwrap(), Some(ReportState::Pending));
    let status = ctx.board.reporter.fresh().unwrap();
    assert_eq!((status.delivered_count, status.state), (3, "waiting"), "block 20's call is still pending");
    actor.stop(None);
}

/// Block 10 proved (its proof under `OUTPUT_DIR/10/`), a node answering `answer`, and a
/// Reporter sending to an API that records what it gets.
async fn block_10_proved(answer: NodeHash) -> (tempfile::TempDir, Arc<Context>, Seen, ActorRef<ReporterMsg>) {
    let seen: Seen = Arc::default();
    let url = api(seen.clone()).await;
    let node_url = node(answer).await;
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--ethproofs-rpc-url", &url, "--ethproofs-api-key", "k", "--ethproofs-cluster-id", "1"];
    let (ctx, settings) = context(dir.path(), &node_url, &flags);
    let proof = dir.path().join("10").join("proof.bin");
    std::fs::create_dir_all(proof.parent().unwrap()).unwrap();
    std::fs::write(&proof, [7u8; 64]).unwrap();
    proved(&ctx.ledger, 10, &proof);
    let actor = reporter(&ctx, &settings).await;
    (dir, ctx, seen, actor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proved_waits_while_the_node_cannot_say_the_block_is_canonical_and_goes_once_it_does() {
    let answer = Arc::new(std::sync::Mutex::new(None));
    let (_dir, ctx, seen, actor) = block_10_proved(answer.clone()).await;
    wait("queued and proving sent", || seen.lock().unwrap().len() >= 2).await;
    let proved_call = || ctx.ledger.reports_of(10).unwrap().into_iter().find(|r| r.kind == ReportKind::Proved).unwrap();
    wait("the proved call waiting on the node", || {
        proved_call().last_error.is_some_and(|e| e.contains("waiting for the node to confirm block 10"))
    })
    .await;
    assert_eq!(seen.lock().unwrap().len(), 2, "proved is never sent on hope");
    let call = proved_call();
    assert_eq!((call.state, call.attempts, call.in_doubt), (ReportState::Pending, 0, false), "a wait is no attempt");
    // Published at the Reporter's next turn after the ledger has it.
    let shown = || ctx.board.reporter.fresh().and_then(|r| r.last_error).is_some_and(|e| e.contains("canonical"));
    wait("the wait shown on /health", shown).await;

    *answer.lock().unwrap() = Some(HASH.to_string());
    wait("proved sent once the node confirms", || seen.lock().unwrap().len() == 3).await;
    assert_eq!(seen.lock().unwrap()[2], ("proved".to_string(), 10));
    actor.stop(None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proved_block_that_left_the_chain_before_proved_went_is_orphaned_and_built_again() {
    let other = "0x2222222222222222222222222222222222222222222222222222222222222222";
    let (dir, ctx, seen, actor) = block_10_proved(Arc::new(std::sync::Mutex::new(Some(other.to_string())))).await;
    wait("the block orphaned", || ctx.ledger.block(10).unwrap().unwrap().state == BlockState::Seen).await;
    // The Reporter heard why (its send task held the call) and sends nothing more: the proved
    // call is gone with the orphan, so no later turn can send it.
    let held = || {
        ctx.board
            .reporter
            .fresh()
            .is_some_and(|r| r.state != "sending" && r.last_error_detail.is_some_and(|e| e.contains("never reported")))
    };
    wait("the Reporter told the call is held", held).await;
    assert!(seen.lock().unwrap().iter().all(|(s, _)| s != "proved"), "the orphan's proof is never reported");
    assert_eq!(ctx.ledger.orphans(5).unwrap().len(), 1);
    assert!(dir.path().join("10.orphan-111111111111/proof.bin").is_file(), "its proof is kept aside");
    assert!(ctx.ledger.reports_of(10).unwrap().iter().all(|r| r.kind != ReportKind::Proved));
    actor.stop(None);
}

/// A proof accepted while it was not checked (checks off then, an older daemon, a resubmit) is
/// checked before `proved` goes, and never sent when it fails; one accepted under the check in
/// force goes without a second STARK check (the bytes are the ones recorded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proved_goes_only_with_a_proof_checked_for_its_block_and_program() {
    use crate::block::verify::{KeySource, ProofCheck};
    let vk = [1, 2, 3, 4];
    let check = ProofCheck {
        program_vk: Some(vk),
        key_source: Some(KeySource::Setting),
        layout: Some(crate::block::commitment::OutputLayout::Encoded),
    };
    let fingerprint = check.fingerprint(Some(&vk));
    let seen: Seen = Arc::default();
    let url = api(seen.clone()).await;
    let node_url = node(Arc::new(std::sync::Mutex::new(Some(HASH.to_string())))).await;
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--ethproofs-rpc-url", &url, "--ethproofs-api-key", "k", "--ethproofs-cluster-id", "1"];
    let (ctx, settings) = crate::daemon::test_support::context_checking(dir.path(), &node_url, &flags, Some(check));
    // A well-formed proof of this program whose STARK does not hold, for blocks 10 and 20: 10's
    // was accepted unchecked, 20's under the check in force (its bytes differ by one output).
    for (n, checked) in [(10u64, None), (20, Some(fingerprint.as_str()))] {
        use sha2::Digest;
        let mut words = [0u32; 64];
        words[63] = n as u32;
        let bytes = crate::block::verify::tests::forged(&vk, &words);
        let proof = dir.path().join(n.to_string()).join("proof.bin");
        std::fs::create_dir_all(proof.parent().unwrap()).unwrap();
        std::fs::write(&proof, &bytes).unwrap();
        ctx.ledger.targets_scheduled(&[n], None, n).unwrap();
        ctx.ledger.input_built(n, &enqueued(&proof, HASH), true).unwrap();
        ctx.ledger.proof_started(n, true).unwrap();
        let exit =
            ExitRecord { exit: "code 0", proof: Some((&proof, bytes.len() as u64)), proving_ms: 5, cycles: None };
        ctx.ledger.prover_exited(n, &exit).unwrap();
        let digest = hex::encode(sha2::Sha256::digest(&bytes));
        let accepted = Accepted { proving_ms: 5, cycles: None, sha256: &digest, checked_for: checked };
        ctx.ledger.proof_accepted(n, &accepted, true).unwrap();
    }
    let actor = reporter(&ctx, &settings).await;
    let settled =
        |n| ctx.ledger.reports_of(n).unwrap().into_iter().find(|r| r.kind == ReportKind::Proved).map(|r| r.state);
    wait("both proved calls settled", || {
        settled(10) == Some(ReportState::Failed) && settled(20) == Some(ReportState::Done)
    })
    .await;
    let sent = seen.lock().unwrap().clone();
    assert!(!sent.contains(&("proved".to_string(), 10)), "an unchecked proof is never sent: {sent:?}");
    assert!(sent.contains(&("proved".to_string(), 20)), "{sent:?}");
    let failed = ctx.ledger.reports_of(10).unwrap().into_iter().find(|r| r.kind == ReportKind::Proved).unwrap();
    let why = failed.last_error.unwrap();
    assert!(why.contains("not checked for this block and program") && why.contains("never sent"), "{why}");
    actor.stop(None);
}
