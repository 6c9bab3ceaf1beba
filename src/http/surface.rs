//! The HTTP surface's state and assembly: what `/health`, `/metrics`, the dashboard and
//! `/admin/*` may see and do. It holds the status board (read), the control (typed commands)
//! and fixed facts about the run; never an actor. `startup` assembles the routes.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use crate::config::Secret;
use crate::http::control::Control;
use crate::runtime::status::Board;

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
    /// `MIN_FREE_DISK_MB`: below it the daemon pauses itself, and every screen says so.
    pub min_free_disk_mb: u64,
    pub admin_token: Option<Secret>,
    /// The cohort whose rules the scoreboard keeps (`COHORT`; `None`: no scoreboard).
    pub cohort: Option<crate::config::Cohort>,
    /// `GPU_HOURLY_PRICE` and `CLUSTER_GPUS`, for the cost per proof.
    pub gpu_hourly_price: Option<f64>,
    pub cluster_gpus: u32,
}

/// Why no new input or proof starts, and who decided it: every screen says both.
pub struct Pause {
    /// `operator` (the `pause` command), `disk` (free space under MIN_FREE_DISK_MB), `ledger`
    /// (the pause cannot be read), or both kinds joined.
    pub by: &'static str,
    pub reason: String,
    /// The daemon paused itself: it is not healthy meanwhile.
    pub imposed: bool,
}

/// Everything the HTTP surface needs, and nothing more.
pub struct Surface {
    pub board: Arc<Board>,
    pub control: Control,
    pub info: Info,
    /// Set by the InputGenerator while OUTPUT_DIR is short of space.
    pub disk_low: Arc<AtomicBool>,
    /// The cohort scoreboard last worked out from the ledger (`health::scoreboard` keeps it a
    /// few seconds: the pages poll often, the figures move by the block).
    pub scoreboard: crate::runtime::status::Slot<crate::runtime::status::Scoreboard>,
}

impl Surface {
    /// The operator's pause or a full disk.
    pub fn paused(&self) -> bool {
        self.pause().is_some()
    }

    /// The pause in force, if any: the disk guard's (with the space left), the operator's, or a
    /// ledger that cannot say (taken as paused, as the actors take it).
    pub fn pause(&self) -> Option<Pause> {
        let disk = self.disk_low.load(Ordering::SeqCst).then(|| {
            let free = crate::runtime::disk::free_mb(&self.info.output_dir).map_or("too few".to_string(), |mb| mb.to_string());
            format!(
                "paused by the daemon: OUTPUT_DIR has {free} MB free, below MIN_FREE_DISK_MB = {}; new inputs and proofs start once space is freed",
                self.info.min_free_disk_mb
            )
        });
        let operator = match self.control.reads().paused() {
            Ok(false) => None,
            Ok(true) => Some((
                "operator",
                "paused by the operator: `ethproofs-daemon resume` lets new inputs and proofs start".to_string(),
            )),
            Err(_) => Some(("ledger", "the ledger cannot be read, so the pause cannot: taken as paused".to_string())),
        };
        match (disk, operator) {
            (None, None) => None,
            (Some(reason), None) => Some(Pause { by: "disk", reason, imposed: true }),
            (None, Some((by, reason))) => Some(Pause { by, reason, imposed: by != "operator" }),
            (Some(disk), Some((by, reason))) => {
                let by = if by == "operator" { "disk and operator" } else { "disk and ledger" };
                Some(Pause { by, reason: format!("{disk}; {reason}"), imposed: true })
            }
        }
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
