//! What can go wrong with the ledger, each naming the file or row, and which failures may pass.

use super::state::{BlockState, Move};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the ledger {path} is unreadable or corrupt ({reason}); move it aside to start afresh, or restore it")]
    Corrupt { path: String, reason: String },
    #[error("the ledger {path} has schema version {found}, newer than this build knows ({known}); run a newer daemon")]
    TooNew { path: String, found: i64, known: i64 },
    #[error(
        "the ledger {path} has schema version {found}, older than this build's ({known}); a read-only command never upgrades it: start the daemon once"
    )]
    TooOld { path: String, found: i64, known: i64 },
    #[error("ledger {path}: {source}")]
    Sql { path: String, source: rusqlite::Error },
    /// Refused without trying: the last write failed for a reason that may pass, and its
    /// backoff has not run out.
    #[error("ledger {path}: not written, the last write failed ({error}); trying again in {retry_in_ms} ms")]
    Deferred { path: String, error: String, retry_in_ms: u64 },
    #[error("ledger {path}: {table} row {row} has state {text:?}, which this build does not know")]
    UnknownState { path: String, table: &'static str, row: i64, text: String },
    #[error("block {block}: {mv:?} is not allowed from {}", from.map_or("(unknown block)", |s| s.as_str()))]
    IllegalMove { block: u64, from: Option<BlockState>, mv: Move },
    #[error(
        "the ledger {path} belongs to chain {recorded}, but the node serves chain {found}; point OUTPUT_DIR (or DB_PATH) elsewhere for this chain"
    )]
    OtherChain { path: String, recorded: String, found: String },
}

impl StoreError {
    /// Whether the same write may succeed later: the database's lock held by another process,
    /// a full disk, an I/O error, a filesystem gone read-only. Such a failure is retried with
    /// backoff, never a reason to restart an actor or to give a block up.
    pub fn is_transient(&self) -> bool {
        use rusqlite::ErrorCode::*;
        match self {
            StoreError::Deferred { .. } => true,
            StoreError::Sql { source: rusqlite::Error::SqliteFailure(e, _), .. } => {
                matches!(e.code, DatabaseBusy | DatabaseLocked | DiskFull | SystemIoFailure | ReadOnly)
            }
            _ => false,
        }
    }
}
