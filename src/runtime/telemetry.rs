//! Prometheus metrics: counters and histograms recorded where things happen, gauges read from
//! the actors and the ledger when `/metrics` is scraped. Served by the health router; the
//! exporter runs no server of its own.

use std::sync::OnceLock;
use std::time::SystemTime;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Proof times cluster around 10 s (real-time targets) and 120 s (single GPU): dense buckets there.
const PROVING_BUCKETS: &[f64] = &[
    1.0, 2.5, 5.0, 7.5, 10.0, 12.5, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 150.0, 180.0, 240.0, 300.0, 600.0,
    1800.0, 3600.0,
];
const SHORT_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Installs the recorder once per process; later calls return the same handle.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let buckets = [
            ("ethproofs_proving_seconds", PROVING_BUCKETS),
            ("ethproofs_block_to_proof_seconds", PROVING_BUCKETS),
            ("ethproofs_end_to_end_seconds", PROVING_BUCKETS),
            ("ethproofs_input_generation_seconds", SHORT_BUCKETS),
            ("ethproofs_head_to_input_seconds", SHORT_BUCKETS),
            ("ethproofs_input_to_proving_seconds", SHORT_BUCKETS),
            ("ethproofs_report_latency_seconds", SHORT_BUCKETS),
            ("ethproofs_job_phase_seconds", PROVING_BUCKETS),
        ];
        let builder = buckets.into_iter().try_fold(PrometheusBuilder::new(), |b, (name, buckets)| {
            b.set_buckets_for_metric(Matcher::Full(name.into()), buckets)
        });
        let recorder = match builder {
            Ok(b) => b.build_recorder(),
            Err(e) => {
                tracing::error!(error = %e, "metric buckets rejected; using defaults");
                PrometheusBuilder::new().build_recorder()
            }
        };
        let handle = recorder.handle();
        // Another recorder (a test harness) may already be installed; rendering ours still works.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Folds the histograms' buffered samples into their buckets. The recorder keeps each sample
/// until a scrape renders it; with no Prometheus scraping (or one that is down for days) that
/// buffer would grow with every block.
pub fn fold_samples() {
    install().run_upkeep();
}

/// Every counter and histogram a rule or a graph reads, at zero, from start-up: a series that
/// appears only with its first event breaks `increase()` and rules over it until then. Label
/// sets are those the daemon itself records in this mode.
pub fn baseline(proves: bool, reporting: bool, coordinator: bool) {
    install();
    metrics::counter!("ethproofs_proofs_rejected_total").increment(0);
    metrics::counter!("ethproofs_proofs_orphaned_total").increment(0);
    let (outcome, stage) = if proves { ("proved", "prove") } else { ("executed", "execute") };
    metrics::counter!("ethproofs_blocks_total", "outcome" => outcome, "stage" => stage).increment(0);
    metrics::counter!("ethproofs_blocks_total", "outcome" => "failed", "stage" => "prover").increment(0);
    metrics::counter!("ethproofs_rpc_errors_total", "kind" => "head", "status" => "network").increment(0);
    // Also with reporting off (zero calls is the truth), so that every shipped rule has its series.
    // The answers rules watch (`permanent|transient`) as well as the good one.
    for endpoint in ["queued", "proving", "proved"] {
        for (result, status) in [("done", "2xx"), ("transient", "network"), ("permanent", "400")] {
            metrics::counter!("ethproofs_api_responses_total", "endpoint" => endpoint, "result" => result, "status" => status)
                .increment(0);
        }
    }
    if coordinator {
        metrics::counter!("ethproofs_coordinator_errors_total", "kind" => "unreachable").increment(0);
    }
    for name in [
        "ethproofs_proving_seconds",
        "ethproofs_block_to_proof_seconds",
        "ethproofs_input_generation_seconds",
        "ethproofs_head_to_input_seconds",
        "ethproofs_input_to_proving_seconds",
        "ethproofs_end_to_end_seconds",
    ] {
        let _ = metrics::histogram!(name);
    }
    if reporting {
        let _ = metrics::histogram!("ethproofs_report_latency_seconds");
    }
}

/// A proof the verifier refused (it is kept, the block failed, nothing was reported).
pub fn proof_rejected() {
    metrics::counter!("ethproofs_proofs_rejected_total").increment(1);
}

/// A proof whose block left the chain before `proved` was sent: kept, never reported.
pub fn proof_orphaned() {
    metrics::counter!("ethproofs_proofs_orphaned_total").increment(1);
}

pub fn block_outcome(outcome: &'static str, stage: &'static str) {
    metrics::counter!("ethproofs_blocks_total", "outcome" => outcome, "stage" => stage).increment(1);
}

/// One failed node call: `status` is the HTTP status, `rpc_error` or `network` (from the typed
/// error, never from its text).
pub fn rpc_error(kind: &'static str, status: String) {
    metrics::counter!("ethproofs_rpc_errors_total", "kind" => kind, "status" => status).increment(1);
}

/// One EthProofs answer: `result` is what it meant (done, already_proved, permanent,
/// rate_limited, transient), `status` the HTTP status or `network`.
pub fn api_response(endpoint: &str, result: &'static str, http: Option<u16>) {
    let status = match http {
        None => "network".to_string(),
        Some(200..=299) => "2xx".to_string(),
        Some(h) => h.to_string(),
    };
    metrics::counter!("ethproofs_api_responses_total", "endpoint" => endpoint.to_string(), "result" => result, "status" => status)
        .increment(1);
}

pub fn input_generated(seconds: f64) {
    metrics::histogram!("ethproofs_input_generation_seconds").record(seconds);
}

pub fn proved(proving_seconds: f64, block_timestamp: Option<u64>) {
    metrics::histogram!("ethproofs_proving_seconds").record(proving_seconds);
    if let Some(ts) = block_timestamp {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        if now > ts as f64 {
            metrics::histogram!("ethproofs_block_to_proof_seconds").record(now - ts as f64);
        }
    }
}

/// A coordinator job left `phase` after `took`.
pub fn job_phase(phase: &'static str, took: std::time::Duration) {
    metrics::histogram!("ethproofs_job_phase_seconds", "phase" => phase).record(took.as_secs_f64());
}

/// One failed coordinator call, by kind (`unreachable`, `no_capacity`, …).
pub fn coordinator_error(kind: &'static str) {
    metrics::counter!("ethproofs_coordinator_errors_total", "kind" => kind).increment(1);
}

/// A proved block's stretches before its proof: the head seen → input ready, and input ready →
/// a prover started on it (milliseconds, where known).
pub fn block_latency(head_to_input_ms: Option<u64>, input_to_proving_ms: Option<u64>) {
    if let Some(ms) = head_to_input_ms {
        metrics::histogram!("ethproofs_head_to_input_seconds").record(ms as f64 / 1000.0);
    }
    if let Some(ms) = input_to_proving_ms {
        metrics::histogram!("ethproofs_input_to_proving_seconds").record(ms as f64 / 1000.0);
    }
}

/// A block's timestamp to EthProofs accepting its proof (to its proof's record when the daemon
/// does not report).
pub fn end_to_end(ms: u64) {
    metrics::histogram!("ethproofs_end_to_end_seconds").record(ms as f64 / 1000.0);
}

pub fn report_latency(seconds: f64) {
    metrics::histogram!("ethproofs_report_latency_seconds").record(seconds);
}

/// Gauges that describe the present, set just before rendering.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub head: Option<u64>,
    pub last_target: Option<u64>,
    pub last_proved: Option<u64>,
    /// The newest block the mode's work is done on: proved, or executed without proofs (what
    /// the dashboards plot against the head in every mode).
    pub last_done: Option<u64>,
    pub last_reported: Option<u64>,
    pub input_queue: usize,
    pub prover_queue: usize,
    pub report_queue: usize,
    pub proving_block: Option<u64>,
    pub proving_seconds: Option<u64>,
    pub expected_6h: u64,
    pub proved_6h: u64,
    pub paused: bool,
    /// The running coordinator job's phase and how long it has been in it.
    pub job_phase: Option<(&'static str, u64)>,
    /// Whether the coordinator is answering (`None` with another backend).
    pub coordinator_up: Option<bool>,
    /// `BLOCK_INTERVAL`, so that rules can count targets.
    pub block_interval: u64,
    /// A proof runs past `PROVER_STUCK_THRESHOLD_SECONDS`.
    pub prover_stuck: bool,
    /// Scheduled targets not done (proved, or executed without proofs) newer than the newest done.
    pub targets_behind: u64,
    /// The cohort scoreboard, when the daemon keeps one (`COHORT`).
    pub cohort: Option<CohortGauges>,
}

/// The cohort scoreboard's bars and its figures per window (`1h`, `24h`).
#[derive(Debug)]
pub struct CohortGauges {
    pub in_time_bar: f64,
    pub proved_bar: Option<f64>,
    pub windows: Vec<CohortWindow>,
}

#[derive(Debug)]
pub struct CohortWindow {
    pub window: &'static str,
    /// Settled blocks of the cohort in the window: what the shares are of.
    pub counted: u64,
    pub share_in_time: Option<f64>,
    pub share_proved: Option<f64>,
    pub paralyzed: u64,
    pub avg_cost_per_proof: Option<f64>,
}

/// The build labels last rendered: when they change (the coordinator's hash id becomes known)
/// the old series is set to 0, so exactly one `build_info` series is 1.
static LAST_BUILD: std::sync::Mutex<Vec<(&'static str, String)>> = std::sync::Mutex::new(Vec::new());

const PHASES: [&str; 6] = ["queued", "started", "contributions", "prove", "recurse", "waiting_for_input"];

pub fn render(snapshot: &Snapshot, build: Vec<(&'static str, String)>) -> String {
    // 0 for "none yet" (no block seen, proved or reported): a NaN breaks every rule and graph.
    let set = |name: &'static str, v: Option<u64>| metrics::gauge!(name).set(v.map_or(0.0, |v| v as f64));
    set("ethproofs_chain_head", snapshot.head);
    set("ethproofs_last_target_seen", snapshot.last_target);
    set("ethproofs_last_proved_block", snapshot.last_proved);
    set("ethproofs_last_done_block", snapshot.last_done);
    set("ethproofs_last_reported_block", snapshot.last_reported);
    metrics::gauge!("ethproofs_queue_length", "queue" => "input").set(snapshot.input_queue as f64);
    metrics::gauge!("ethproofs_queue_length", "queue" => "prover").set(snapshot.prover_queue as f64);
    metrics::gauge!("ethproofs_queue_length", "queue" => "reports").set(snapshot.report_queue as f64);
    metrics::gauge!("ethproofs_proof_in_progress").set(if snapshot.proving_block.is_some() { 1.0 } else { 0.0 });
    set("ethproofs_proof_in_progress_block", snapshot.proving_block);
    set("ethproofs_proof_in_progress_seconds", snapshot.proving_seconds);
    metrics::gauge!("ethproofs_paused").set(if snapshot.paused { 1.0 } else { 0.0 });
    metrics::gauge!("ethproofs_block_interval").set(snapshot.block_interval as f64);
    metrics::gauge!("ethproofs_targets_behind").set(snapshot.targets_behind as f64);
    metrics::gauge!("ethproofs_prover_stuck").set(if snapshot.prover_stuck { 1.0 } else { 0.0 });
    metrics::gauge!("ethproofs_expected_targets_6h").set(snapshot.expected_6h as f64);
    metrics::gauge!("ethproofs_proved_targets_6h").set(snapshot.proved_6h as f64);
    // With nothing expected there is nothing to miss: report 1, not a division by zero.
    let ratio = if snapshot.expected_6h == 0 { 1.0 } else { snapshot.proved_6h as f64 / snapshot.expected_6h as f64 };
    metrics::gauge!("ethproofs_reliability_ratio_6h").set(ratio);
    for phase in PHASES {
        let seconds = snapshot.job_phase.filter(|(p, _)| *p == phase).map(|(_, s)| s as f64);
        metrics::gauge!("ethproofs_job_phase", "phase" => phase).set(if seconds.is_some() { 1.0 } else { 0.0 });
        metrics::gauge!("ethproofs_job_phase_elapsed_seconds", "phase" => phase).set(seconds.unwrap_or(0.0));
    }
    if let Some(c) = &snapshot.cohort {
        metrics::gauge!("ethproofs_cohort_in_time_bar").set(c.in_time_bar);
        // A cohort with no proved-at-all bar cannot fall below one.
        metrics::gauge!("ethproofs_cohort_proved_bar").set(c.proved_bar.unwrap_or(0.0));
        for w in &c.windows {
            let window = w.window;
            metrics::gauge!("ethproofs_cohort_blocks", "window" => window).set(w.counted as f64);
            // Nothing counted is nothing missed: 1, never a NaN (the rules also wait for blocks).
            metrics::gauge!("ethproofs_cohort_in_time_ratio", "window" => window).set(w.share_in_time.unwrap_or(1.0));
            metrics::gauge!("ethproofs_cohort_proved_ratio", "window" => window).set(w.share_proved.unwrap_or(1.0));
            metrics::gauge!("ethproofs_cohort_paralyzed_blocks", "window" => window).set(w.paralyzed as f64);
            if let Some(cost) = w.avg_cost_per_proof {
                metrics::gauge!("ethproofs_cohort_cost_per_proof", "window" => window).set(cost);
            }
        }
    }
    if let Some(up) = snapshot.coordinator_up {
        metrics::gauge!("ethproofs_coordinator_up").set(if up { 1.0 } else { 0.0 });
    }
    let labels = |b: &[(&'static str, String)]| {
        b.iter().map(|(k, v)| metrics::Label::new(*k, v.clone())).collect::<Vec<metrics::Label>>()
    };
    {
        let mut last = LAST_BUILD.lock().unwrap_or_else(|p| p.into_inner());
        if !last.is_empty() && *last != build {
            metrics::gauge!("ethproofs_build_info", labels(&last)).set(0.0);
        }
        metrics::gauge!("ethproofs_build_info", labels(&build)).set(1.0);
        *last = build;
    }
    install().render()
}
