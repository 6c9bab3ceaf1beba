//! The dashboard at `/`: one server-rendered page whose script polls `/api/dashboard` every two
//! seconds (no front-end build step). Everything it shows comes from the actors and the ledger.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::http::surface::Surface;
use crate::store::BlockState;

mod stage;

const PAGE: &str = include_str!("index.html");
/// What both pages share (how durations read, whether a page fits its window), served once.
const COMMON_JS: &str = include_str!("common.js");

pub fn router(surface: Arc<Surface>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/assets/common.js", get(common_js))
        .route("/api/dashboard", get(data))
        .with_state(surface)
}

async fn common_js() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/javascript; charset=utf-8")], COMMON_JS)
}

/// "cargo-zisk 0.16.0", "ZisK coordinator", "no ZisK (native)": what the header says proves.
fn prover_label(zisk: &str, prover: &Value) -> String {
    match prover["backend"].as_str() {
        Some("coordinator") => "ZisK coordinator".to_string(),
        Some("native") => "no ZisK (native re-execution)".to_string(),
        _ => format!("cargo-zisk {zisk}"),
    }
}

async fn page() -> impl IntoResponse {
    Html(PAGE)
}

#[derive(Clone)]
struct Hardware {
    cpu: String,
    cores: usize,
    ram_gb: f64,
    gpus: Vec<String>,
}

static HARDWARE: OnceLock<Hardware> = OnceLock::new();

fn read_hardware() -> Hardware {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_string(), |(_, v)| v.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let ram_kb: f64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    // nvidia-smi is there only on GPU hosts; its absence is not an error.
    let gpus = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name,memory.total", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout).lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
        })
        .unwrap_or_default();
    Hardware {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ram_gb: (ram_kb / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        gpus,
    }
}

async fn hardware() -> Hardware {
    if let Some(h) = HARDWARE.get() {
        return h.clone();
    }
    let h = tokio::task::spawn_blocking(read_hardware).await.unwrap_or_else(|_| Hardware {
        cpu: "unknown CPU".into(),
        cores: 1,
        ram_gb: 0.0,
        gpus: vec![],
    });
    HARDWARE.get_or_init(|| h).clone()
}

async fn data(State(s): State<Arc<Surface>>) -> Response {
    let hw = hardware().await;
    crate::http::surface::off_runtime(s, move |s| data_now(s, hw).into_response()).await
}

fn data_now(s: &Surface, hw: Hardware) -> impl IntoResponse {
    let (health, status) = crate::http::health::snapshot(s, false);
    let ledger = s.control.reads();
    let components = &health["components"];
    let input = &components["input_generator"];
    let prover = &components["prover"];
    let counts = ledger.counts().unwrap_or_default();
    let count =
        |states: &[&str]| -> u64 { counts.iter().filter(|(s, _)| states.contains(&s.as_str())).map(|(_, n)| n).sum() };
    let six_hours_ago = SystemTime::now()
        .checked_sub(Duration::from_secs(6 * 3600))
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
    // Without proofs (execute, native) a target is done when executed: the figures, the chart
    // and the reliability count executions, and the page words them so.
    // The configured mode, not the prover's live status (absent while it restarts).
    let proving = s.info.proves;
    let done = if proving { BlockState::Proved } else { BlockState::Executed };
    let (expected, done_6h) = ledger.reliability(six_hours_ago, done).unwrap_or((0, 0));
    let recent = ledger.recent_blocks(None, 20).unwrap_or_default();
    let mut chart = ledger.recent_blocks(Some(done.as_str()), 30).unwrap_or_default();
    chart.reverse();
    let points: Vec<Value> =
        chart.iter().filter_map(|b| b.proving_ms.map(|ms| json!({"block": b.block, "ms": ms}))).collect();
    let times: Vec<u64> = chart.iter().filter_map(|b| b.proving_ms).collect();
    let avg = average_ms(&times);
    let input_stage = stage::input(input, health["uptime_seconds"].as_u64().unwrap_or(0));
    let board_status = stage::worse(status, input_stage["health"].as_str().unwrap_or("unhealthy"));
    let head = input["head"].as_u64();
    let next = input["next_target"].as_u64();
    let hardware = json!({
        "cpu": hw.cpu, "cores": hw.cores, "ram_gb": hw.ram_gb, "gpus": hw.gpus,
        "disk_free_gb": crate::runtime::disk::free_mb(&s.info.output_dir).map(|mb| (mb as f64 / 100.0).round() / 10.0),
    });
    // What the daemon does with each block, for the header's badge.
    let mode = match prover["action"].as_str() {
        Some("prove") => "proving",
        Some("execute") => "executing (no proofs)",
        Some("native") => "native re-execution (no ZisK)",
        _ => "starting",
    };
    let mut doc = json!({
        // The worse of `/health`'s verdict and the board's own of the input stage.
        "status": board_status,
        "daemon_status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "ethrex": crate::ETHREX_VERSION,
        "chain": s.info.chain_name,
        "dev_chain": s.info.dev,
        // ethproofs.org knows a block only when this daemon reports it, and never a dev chain's.
        "ethproofs_links": crate::runtime::status::on_ethproofs(s.info.reporting, s.info.dev),
        "zisk": s.info.zisk_version,
        "prover": prover_label(&s.info.zisk_version, prover),
        "mode": mode,
        "proving": proving,
        "reporting": s.info.reporting,
        "block_time_ms": input["block_time_ms"],
        "paused": health["paused"],
        // Who paused and why, as `/health` says it.
        "pause": health["pause"],
        "head": head,
        "head_age_seconds": input["head_age_seconds"],
        "next_target": next,
        "blocks_to_next": head.zip(next).map(|(h, n)| n.saturating_sub(h)),
        "proved": count(&["proved"]),
        "executed": count(&["executed"]),
        "missed": count(&["failed", "skipped"]),
        // No targets yet is not 100 % nor 0 %: the page says so.
        "targets_6h": expected,
        "done_6h": done_6h,
        "reliability_6h": (expected > 0).then(|| done_6h as f64 / expected as f64),
        "input_stage": input_stage,
        // How the daemon stands against its EthProofs cohort's rules (`null` without a cohort).
        "cohort": health["cohort"],
    });
    // Two documents merged: one `json!` of every field is past the macro's recursion limit.
    let work = json!({
        "prover_health": prover["status"],
        "prover_state": prover["state"],
        "proving_block": prover["proving_block"],
        "proving_seconds": prover["proving_duration_seconds"],
        "runs": prover["in_flight"],
        "lanes": prover["lanes"],
        "backend": prover["backend"],
        "phase": prover["phase"],
        "phase_seconds": prover["phase_seconds"],
        "coordinator_error": prover["coordinator"]["error"],
        "input_queue": input["queue_length"],
        "prover_queue": prover["queue_length"],
        "report_queue": components["reporter"]["queue_length"],
        // Proving times, or execution times in the modes that make no proofs.
        "avg_ms": avg,
        "last_ms": times.last(),
        "chart": points,
        "hardware": hardware,
        "blocks": recent,
    });
    if let (Some(doc), Value::Object(work)) = (doc.as_object_mut(), work) {
        doc.extend(work);
    }
    // A block's reason is the ledger's whole error, with what a node or the prover wrote: shown
    // without credentials, keys or paths, as on every public document.
    crate::outside::sanitize::public_strings(&mut doc);
    Json(doc)
}

/// The mean of the chart's proving times, summed wide: a prover's absurd figure (the ledger
/// keeps up to i64::MAX) must not overflow the page.
fn average_ms(times: &[u64]) -> Option<u64> {
    let sum: u128 = times.iter().map(|&t| u128::from(t)).sum();
    let n = u128::try_from(times.len()).ok().filter(|n| *n > 0)?;
    Some(u64::try_from(sum / n).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_average_of_absurd_times_does_not_overflow() {
        assert_eq!(super::average_ms(&[]), None);
        assert_eq!(super::average_ms(&[1000, 2000]), Some(1500));
        let absurd = i64::MAX as u64;
        assert_eq!(super::average_ms(&[absurd; 30]), Some(absurd));
    }
}
