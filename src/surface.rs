//! The HTTP surface's state and assembly: what `/health`, `/metrics`, the dashboard and
//! `/admin/*` may see and do. It holds the status board (read), the control (typed commands)
//! and fixed facts about the run; never an actor. `startup` assembles the routes.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use crate::config::Secret;
use crate::control::Control;
use crate::status::Board;

/// What the surface shows that never changes while the daemon runs.
pub struct Info {
    pub started_at: SystemTime,
    pub chain_name: String,
    /// `BLOCK_INTERVAL`: which blocks are targets (`prove --latest`).
    pub block_interval: u64,
    /// The daemon makes proofs (ZISK_ACTION=prove): a target is done when proved, else when
    /// executed. Figures and metrics count what the mode makes.
    pub proves: bool,
    /// The offline dev chain (`run --dev`): its blocks are executed, never on ethproofs.org.
    pub dev: bool,
    /// EthProofs reporting is configured: only then does a block link to ethproofs.org.
    pub reporting: bool,
    pub chain_id: u64,
    pub zisk_version: String,
    pub elf_sha256: String,
    /// What the ELF was built from: the ethrex and ziskos versions or commits, or `unknown`.
    pub elf_ethrex: String,
    pub elf_ziskos: String,
    /// Whether proofs are verified before they are reported, and the program key pinned (hex).
    pub verify_proofs: bool,
    pub program_vk: Option<String>,
    /// Where the program key comes from (`PROGRAM_VK`, cargo-zisk's set-up cache, the
    /// coordinator's set-up), when one is pinned.
    pub key_from: Option<String>,
    /// How the guest's committed outputs are read to compare them with the block's.
    pub output_layout: Option<&'static str>,
    /// Proofs are made and reported without any check (an explicit VERIFY_PROOFS=off, or a
    /// ZisK 0.x prover): said on every screen, never implied.
    pub proofs_unchecked: bool,
    pub output_dir: PathBuf,
    pub admin_token: Option<Secret>,
}

/// Everything the HTTP surface needs, and nothing more.
pub struct Surface {
    pub board: Arc<Board>,
    pub control: Control,
    pub info: Info,
    /// Set by the InputGenerator while OUTPUT_DIR is short of space.
    pub disk_low: Arc<AtomicBool>,
}

impl Surface {
    /// The operator's pause or a full disk.
    pub fn paused(&self) -> bool {
        self.disk_low.load(Ordering::SeqCst) || self.control.reads().paused().unwrap_or(true)
    }
}

/// Runs a page's work (ledger reads, the status document) on the blocking pool, off tokio's
/// worker threads: a slow disk under the ledger never stalls the runtime, probes included.
pub async fn off_runtime(
    s: Arc<Surface>,
    f: impl FnOnce(&Surface) -> axum::response::Response + Send + 'static,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::task::spawn_blocking(move || f(&s)).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "a page's task failed");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
