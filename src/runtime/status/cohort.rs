//! The cohort scoreboard as `/health`, `status`, the dashboard and `/metrics` tell it.

use serde::Serialize;

/// How the daemon stands against its EthProofs cohort's rules, over the last hour and day.
#[derive(Debug, Clone, Serialize)]
pub struct Scoreboard {
    /// `one-in-ten` or `real-time`.
    pub cohort: &'static str,
    /// The cohort proves every this many blocks.
    pub every: u64,
    /// A proof is in time under this proving time.
    pub deadline_seconds: f64,
    /// The least share of blocks proved in time.
    pub in_time_bar: f64,
    /// The least share of blocks proved at all, when the cohort has one.
    pub proved_bar: Option<f64>,
    /// A block without a proof this long after it appeared is paralyzed.
    pub paralyzed_after_seconds: u64,
    pub last_hour: CohortFigures,
    pub last_day: CohortFigures,
}

/// The figures over one window.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CohortFigures {
    /// Settled blocks of the cohort that appeared in the window (proved, given up, or past the
    /// paralysis mark): what the shares are of.
    pub counted: u64,
    /// Blocks still on their way: in no share yet.
    pub pending: u64,
    pub proved: u64,
    pub in_time: u64,
    pub paralyzed: u64,
    /// `None` with nothing counted: a fresh deploy is neither 0 % nor 100 %.
    pub share_in_time: Option<f64>,
    pub share_proved: Option<f64>,
    pub avg_proving_seconds: Option<f64>,
    /// GPU_HOURLY_PRICE × CLUSTER_GPUS × the average proving time; `None` without a price.
    pub avg_cost_per_proof: Option<f64>,
    /// Whether the shares meet the cohort's bars (`None` with nothing counted).
    pub meets_bars: Option<bool>,
}
