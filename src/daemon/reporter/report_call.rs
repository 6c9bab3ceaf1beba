//! The EthProofs call a pending report becomes: its status and, for `proved`, the proof file
//! read back under the API's body limit and checked against the SHA-256 the ledger recorded; and
//! the two checks before a `proved` goes (its block still canonical, its bytes this block's and
//! this program's proof).

use std::sync::Arc;

use crate::block::proof_file::{ProofFile, ProofFileError};
use crate::daemon::Context;
use crate::daemon::canonical::Canonical;
use crate::decide::outbox;
use crate::outside::ethproofs::{Call, Proved, Status};
use crate::store::{ReportKind, ReportRow, Settle, now_ms};

fn status_of(kind: ReportKind) -> Status {
    match kind {
        ReportKind::Queued => Status::Queued,
        ReportKind::Proving => Status::Proving,
        ReportKind::Proved => Status::Proved,
    }
}

/// Why a call cannot be made at all (so it is given up, not retried).
#[derive(Debug, thiserror::Error)]
pub(super) enum CallError {
    #[error("a proved report without a proof path")]
    NoProofPath,
    #[error("{0}")]
    Unreadable(String),
    #[error("the proof is {0} bytes, too large for the API's body limit")]
    TooLarge(u64),
    #[error("the proof {0} is empty")]
    Empty(String),
    #[error(
        "the proof file no longer hashes to the SHA-256 recorded when it was accepted (recorded {recorded}, now {found}); not sent"
    )]
    Altered { recorded: String, found: String },
    #[error("no SHA-256 was recorded for the proof; not sent")]
    NoDigest,
    #[error("the block's record cannot be read: {0}")]
    Ledger(#[from] crate::store::StoreError),
    #[error("the task checking the proof failed: {0}")]
    CheckTask(String),
    #[error("the proof is not checked for this block and program ({0}); never sent")]
    NotThisBlock(crate::block::verify::Rejected),
}

/// The call a report row becomes: its status and, for `proved`, the sealed proof read back.
async fn build_call(report: &ReportRow) -> Result<Call, CallError> {
    let status = status_of(report.kind);
    let proved = match status {
        Status::Proved => {
            let path = report.proof_path.clone().ok_or(CallError::NoProofPath)?;
            // Checked before reading: base64 grows it by a third, and the body limit is fixed. Read
            // as the Prover read it: no symlink followed, a regular file only.
            let cap = (crate::outside::ethproofs::MAX_BODY_BYTES as u64) / 4 * 3;
            let proof = tokio::task::spawn_blocking(move || ProofFile::read(&path, cap))
                .await
                .map_err(|e| CallError::Unreadable(e.to_string()))?
                .map_err(|e| match e {
                    ProofFileError::TooLarge { bytes, .. } => CallError::TooLarge(bytes),
                    ProofFileError::Empty { path } => CallError::Empty(path),
                    other => CallError::Unreadable(other.to_string()),
                })?
                .bytes;
            same_as_recorded(&proof, report.proof_sha256.as_deref())?;
            Some(Proved {
                proving_time_ms: report.proving_ms.filter(|m| *m > 0).unwrap_or(1),
                cycles: report.cycles,
                proof,
            })
        }
        _ => None,
    };
    Ok(Call { block: report.block, status, proved })
}

/// The proof sent is the proof recorded: a file replaced or corrupted since it was accepted is
/// never reported as the block's proof.
fn same_as_recorded(proof: &[u8], recorded: Option<&str>) -> Result<(), CallError> {
    use sha2::Digest;
    let recorded = recorded.ok_or(CallError::NoDigest)?;
    let found = hex::encode(sha2::Sha256::digest(proof));
    if !found.eq_ignore_ascii_case(recorded) {
        return Err(CallError::Altered { recorded: recorded.to_string(), found });
    }
    Ok(())
}

/// Immediately before `proved` goes: the block the proof is of must still be the chain's at its
/// height. `Err` says why the call is not sent now, and whether the block was orphaned; what
/// became of it is already recorded — a node that cannot say keeps the call waiting (with
/// backoff, its reason on `/health` and the block page), and a block that left the chain is
/// orphaned and proved afresh. A ledger that cannot be read or written keeps it waiting too.
pub(super) async fn still_canonical(ctx: &Arc<Context>, row: &ReportRow) -> Result<(), (String, bool)> {
    let wait = |why: String| {
        let waited = now_ms().saturating_sub(row.created_at_ms).max(0);
        let next_at_ms = now_ms().saturating_add(outbox::canonical_wait_ms(waited));
        let reason = format!("waiting for the node to confirm block {} is still canonical: {why}", row.block);
        // Unrecorded, the call is simply looked at again at the next turn.
        let _ = ctx.ledger.report_settled(row, &Settle::Wait { reason: reason.clone(), next_at_ms });
        Err((reason, false))
    };
    let record = match ctx.ledger.block(row.block) {
        Ok(record) => record,
        Err(e) => return wait(format!("the ledger cannot be read: {e}")),
    };
    let built_from = record.as_ref().and_then(|b| b.block_hash.clone());
    match crate::daemon::canonical::check(ctx, row.block, built_from.as_deref()).await {
        Canonical::Yes => Ok(()),
        Canonical::Unknown(why) => wait(why),
        Canonical::Left { built_from, reason } => {
            // The block's own folder (`<n>/`), wherever the prover put the proof inside it.
            let dir = record.as_ref().and_then(|b| b.input_path.as_deref()).and_then(std::path::Path::parent);
            let (ctx, block, dir) = (ctx.clone(), row.block, dir.map(std::path::Path::to_path_buf));
            let (why, span) = (reason.clone(), tracing::Span::current());
            let orphaned = tokio::task::spawn_blocking(move || {
                span.in_scope(|| match &dir {
                    Some(dir) => crate::daemon::canonical::orphan(&ctx, block, dir, &built_from, &why),
                    None => ctx.ledger.block_reorged(block, Some(&built_from), None, &why),
                })
            })
            .await;
            match orphaned {
                Ok(Ok(())) => {
                    crate::runtime::telemetry::proof_orphaned();
                    Err((
                        format!("{reason}: its proof is kept, never reported, and the canonical block is proved"),
                        true,
                    ))
                }
                Ok(Err(e)) => Err((format!("{reason}, but the orphan could not be recorded yet: {e}"), false)),
                Err(e) => Err((format!("{reason}, but the task recording the orphan failed: {e}"), false)),
            }
        }
    }
}

/// A `proved` is sent only with a proof checked for this block and this program, whenever it
/// was accepted: one accepted while checks were off, before this build recorded outputs, or
/// before an operator's resubmit, is checked now (the bytes about to go, off the async
/// threads). `Err` is why it is never sent.
/// The call a pending report becomes, bound to its block; `Err` is why it is never sent.
pub(super) async fn prepare(ctx: &Arc<Context>, row: &ReportRow) -> Result<Call, CallError> {
    bound_to_its_block(ctx, row, build_call(row).await?).await
}

async fn bound_to_its_block(
    ctx: &Arc<Context>,
    row: &ReportRow,
    call: crate::outside::ethproofs::Call,
) -> Result<crate::outside::ethproofs::Call, CallError> {
    let Some(check) = ctx.verify.clone() else { return Ok(call) };
    let Some(proved) = &call.proved else { return Ok(call) };
    let record = ctx.ledger.block(row.block)?;
    let key = ctx.program_key();
    // Checked at acceptance for what is in force now: the same bytes (`build_call` compared their
    // digest) need no second STARK check.
    if record.as_ref().and_then(|b| b.proof_checked.as_deref()) == Some(check.fingerprint(key.as_ref()).as_str()) {
        return Ok(call);
    }
    let expected =
        record.and_then(|b| b.expected_output).and_then(|hex| crate::block::commitment::BlockOutputs::from_hex(&hex));
    let proof = proved.proof.clone();
    let checked = tokio::task::spawn_blocking(move || check.check_bytes(&proof, expected.as_ref(), key.as_ref()))
        .await
        .map_err(|e| CallError::CheckTask(e.to_string()))?;
    match checked {
        Ok(_) => Ok(call),
        Err(rejected) => {
            crate::runtime::telemetry::proof_rejected();
            Err(CallError::NotThisBlock(rejected))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ReportState;

    #[tokio::test]
    async fn a_proof_file_altered_after_it_was_accepted_is_never_sent() {
        use sha2::Digest;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proof.bin");
        std::fs::write(&path, b"the proof that was accepted").unwrap();
        let recorded = hex::encode(sha2::Sha256::digest(b"the proof that was accepted"));
        let row = ReportRow {
            id: 1,
            block: 10,
            kind: ReportKind::Proved,
            state: ReportState::Pending,
            created_at_ms: 0,
            attempts: 0,
            next_attempt_at_ms: 0,
            in_doubt: false,
            proving_ms: Some(5),
            cycles: None,
            proof_path: Some(path.clone()),
            last_error: None,
            proof_sha256: Some(recorded.clone()),
        };
        let call = build_call(&row).await.unwrap();
        assert_eq!(call.proved.unwrap().proof, b"the proof that was accepted");
        std::fs::write(&path, b"another proof, same path").unwrap();
        let err = build_call(&row).await.unwrap_err();
        assert!(matches!(&err, CallError::Altered { recorded: r, .. } if *r == recorded), "{err}");
        assert!(err.to_string().contains("not sent"), "{err}");
        // The accepted bytes behind a symlink are still not read: only the file that was sealed.
        let elsewhere = dir.path().join("elsewhere.bin");
        std::fs::write(&elsewhere, b"the proof that was accepted").unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        let err = build_call(&row).await.unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"the proof that was accepted").unwrap();
        let no_digest = ReportRow { proof_sha256: None, ..row };
        assert!(matches!(build_call(&no_digest).await, Err(CallError::NoDigest)));
    }
}
