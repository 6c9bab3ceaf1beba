//! The EthProofs call a pending report becomes: its status and, for `proved`, the proof file
//! read back under the API's body limit and checked against the SHA-256 the ledger recorded.

use crate::ethproofs::{Call, Proved, Status};
use crate::proof_file::{ProofFile, ProofFileError};
use crate::store::{ReportKind, ReportRow};

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
}

pub(super) async fn build_call(report: &ReportRow) -> Result<Call, CallError> {
    let status = status_of(report.kind);
    let proved = match status {
        Status::Proved => {
            let path = report.proof_path.clone().ok_or(CallError::NoProofPath)?;
            // Checked before reading: base64 grows it by a third, and the body limit is fixed. Read
            // as the Prover read it: no symlink followed, a regular file only.
            let cap = (crate::ethproofs::MAX_BODY_BYTES as u64) / 4 * 3;
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
