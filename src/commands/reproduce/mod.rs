//! `ethproofs-daemon reproduce`: prove (or execute, or check with the guest) every kept input of
//! a directory — a daemon's `OUTPUT_DIR` or a copy from another machine — through the configured
//! backend, one at a time, with no node. A progress line per block and a CSV row per block.
//!
//! Architecture invariant: it never opens the input directory's ledger and never writes into
//! the input directory; proofs (and, for the coordinator, its own scratch ledger) go under
//! `--out`. Nothing is reported to EthProofs unless asked.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{Backend, NotRecorded, Recorder, RunRequest, StopSignal};
use crate::config::Config;
use crate::outside::coordinator::{CoordError, Phase};
use crate::outside::ethproofs::{Call, EthProofsClient, Outcome as Answer, Proved, Status};
use crate::runtime::backoff::Backoff;

mod rows;

use rows::row;
pub use rows::{Row, summary, write_csv};

/// A call EthProofs could not take for now is sent again after 4, 8, 16 s (three more tries).
const RESEND: Backoff = Backoff::new(Duration::from_secs(4), Duration::from_secs(16));

/// What to do with each input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReproduceAction {
    /// A proof with the configured backend.
    Prove,
    /// The prover's execute (no proof).
    Execute,
    /// The guest's own check only (ziskemu / the coordinator's execute job / native re-execution).
    Emulate,
}

#[derive(Debug, thiserror::Error)]
pub enum ReproduceError {
    #[error("{dir}: {reason}")]
    Inputs { dir: String, reason: String },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("{0}")]
    Backend(String),
    #[error("--out {given} resolves to {resolved}, {why}; choose a directory of its own")]
    Out { given: String, resolved: String, why: String },
}

/// `path` as the kernel will reach it: the part that exists with its symlinks followed, the rest
/// with `.` and `..` folded.
fn resolved(path: &Path) -> std::io::Result<PathBuf> {
    let path = std::path::absolute(path)?;
    let mut existing = path.as_path();
    let mut rest = Vec::new();
    let base = loop {
        match existing.canonicalize() {
            Ok(real) => break real,
            Err(_) => {
                rest.push(existing.file_name().map(|n| n.to_os_string()));
                match existing.parent() {
                    Some(parent) => existing = parent,
                    None => break PathBuf::from("/"),
                }
            }
        }
    };
    let mut out = base;
    for part in rest.into_iter().rev() {
        match part {
            Some(name) => out.push(name),
            // `..` has no file name: it folds onto what came before.
            None => {
                out.pop();
            }
        }
    }
    Ok(out)
}

/// Refuses an `--out` that resolves into the inputs or into a running daemon's `OUTPUT_DIR`
/// (symlinks and `..` followed): a replay never overwrites what a daemon proves and reports.
pub fn check_out(out: &Path, inputs: &Path) -> Result<PathBuf, ReproduceError> {
    let refuse = |resolved: &Path, why: String| ReproduceError::Out {
        given: out.display().to_string(),
        resolved: resolved.display().to_string(),
        why,
    };
    let real = resolved(out).map_err(|e| refuse(out, format!("which cannot be resolved ({e})")))?;
    let inputs = resolved(inputs).map_err(|e| refuse(inputs, format!("whose inputs cannot be resolved ({e})")))?;
    if real.starts_with(&inputs) {
        return Err(refuse(
            &real,
            format!("inside --inputs {}: a replay never writes into the inputs", inputs.display()),
        ));
    }
    if let Some(daemon) = real.ancestors().find(|dir| crate::outside::instance::held(dir)) {
        return Err(refuse(&real, format!("inside the OUTPUT_DIR {} of a running daemon", daemon.display())));
    }
    Ok(real)
}

/// The kept inputs under `dir` (`<dir>/<block>/input.bin`), oldest block first.
pub fn inputs(dir: &Path) -> Result<Vec<(u64, PathBuf)>, ReproduceError> {
    let err = |reason: String| ReproduceError::Inputs { dir: dir.display().to_string(), reason };
    let entries = std::fs::read_dir(dir).map_err(|e| err(e.to_string()))?;
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let block: u64 = e.file_name().to_str()?.parse().ok()?;
            let input = e.path().join("input.bin");
            input.is_file().then_some((block, input))
        })
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(err("no <block>/input.bin here (a daemon's OUTPUT_DIR keeps its inputs that way)".into()));
    }
    Ok(found)
}

/// Records nothing in the daemon's ledger: a replay leaves no trace but its proofs, its report
/// and, for the coordinator, its jobs in the scratch ledger under `--out` (a job is followed
/// only once recorded, here as in the daemon). Its lines are written in the replayed block's span.
struct Quiet {
    block: u64,
    steps: std::sync::Mutex<Option<u64>>,
    scratch: Option<Arc<crate::store::Ledger>>,
}

impl Recorder for Quiet {
    fn process(&self, _pgid: u32) {}
    fn job(&self, job_id: &str) -> Result<crate::store::RecordedJob, NotRecorded> {
        tracing::info!(job_id, "coordinator job");
        let scratch = self
            .scratch
            .as_ref()
            .ok_or_else(|| NotRecorded::Refused("the scratch ledger under --out cannot be opened".into()))?;
        scratch.coordinator_job("replay", "", Some((self.block, 1)), job_id).map_err(|e| NotRecorded::from_store(&e))
    }
    fn in_doubt(&self, doubt: &crate::store::JobInDoubt) -> Result<(), NotRecorded> {
        // A replay records nothing of its blocks: it says so and waits the job out like the daemon.
        tracing::warn!(submission = %doubt.submission, "a job's answer was lost; waiting out its deadline");
        Ok(())
    }
    fn phase(&self, phase: Phase) {
        tracing::debug!(phase = phase.as_str(), "phase");
    }
    fn trouble(&self, error: Option<&CoordError>) {
        if let Some(e) = error {
            tracing::warn!(error = %e, "coordinator trouble; waiting");
        }
    }
    fn checked(&self, steps: Option<u64>) {
        *self.steps.lock().unwrap_or_else(|p| p.into_inner()) = steps;
    }
}

/// Runs every input through `backend`, printing a progress line each, returning the rows.
pub async fn run(
    backend: &dyn Backend,
    action: ReproduceAction,
    inputs: &[(u64, PathBuf)],
    out: &Path,
    progress: &mut dyn Write,
) -> Vec<Row> {
    let stop = StopSignal::never();
    let scratch = match backend.service() {
        Some(_) => crate::store::Ledger::open(&out.join("reproduce.db")).ok().map(Arc::new),
        None => None,
    };
    let mut rows = Vec::new();
    for (i, (block, input)) in inputs.iter().enumerate() {
        let block_dir = out.join(block.to_string());
        // Only a proof is written there: no empty folders for execute, emulate or native runs.
        if backend.makes_proofs() {
            let _ = std::fs::create_dir_all(&block_dir);
        }
        let req = RunRequest {
            block: *block,
            attempt: 1,
            input: input.clone(),
            block_dir,
            resume_job: None,
            expected: None,
            in_doubt: None,
            gpu: None,
        };
        let rec = Quiet { block: *block, steps: std::sync::Mutex::new(None), scratch: scratch.clone() };
        let started = Instant::now();
        // The backend's lines name their block through the span, as in the daemon.
        let span = crate::runtime::block_span!(block = *block);
        let outcome = tracing::Instrument::instrument(
            async {
                match action {
                    ReproduceAction::Emulate => backend.check(&req, stop.clone(), &rec).await,
                    _ => backend.run(&req, stop.clone(), &rec).await,
                }
            },
            span,
        )
        .await;
        let checked = *rec.steps.lock().unwrap_or_else(|p| p.into_inner());
        let input_bytes = std::fs::metadata(input).map(|m| m.len()).unwrap_or(0);
        let row = row(*block, input_bytes, action, outcome, checked, started.elapsed());
        let _ = writeln!(
            progress,
            "[{}/{}] block {}: {}{} ({} bytes in{}{})",
            i + 1,
            inputs.len(),
            row.block,
            row.outcome,
            if row.reason.is_empty() { String::new() } else { format!(": {}", row.reason) },
            row.input_bytes,
            row.steps.map_or(String::new(), |s| format!(", {s} steps")),
            row.proving_ms.map_or(String::new(), |ms| format!(", {ms} ms")),
        );
        rows.push(row);
    }
    rows
}

/// Reports each proved block to EthProofs (queued, proving, proved, each retried a few times),
/// only when the operator asked for it. Returns how many were accepted.
pub async fn report(client: &EthProofsClient, rows: &[Row], out: &Path, say: &mut dyn Write) -> usize {
    let mut accepted = 0;
    for r in rows.iter().filter(|r| r.outcome == "proved") {
        let Ok(proof) = std::fs::read(out.join(r.block.to_string()).join("proof.bin")) else {
            let _ = writeln!(say, "block {}: its proof is not under {}: not reported", r.block, out.display());
            continue;
        };
        let proved = Proved { proving_time_ms: r.proving_ms.unwrap_or(1), cycles: r.steps, proof };
        let calls = [
            Call { block: r.block, status: Status::Queued, proved: None },
            Call { block: r.block, status: Status::Proving, proved: None },
            Call { block: r.block, status: Status::Proved, proved: Some(proved) },
        ];
        let mut ok = true;
        for call in &calls {
            let mut tries = 0;
            let answer = loop {
                tries += 1;
                match client.send(call).await {
                    Answer::RetryAfter(wait) if tries < 4 => {
                        tokio::time::sleep(wait.min(Duration::from_secs(60))).await
                    }
                    Answer::Transient { .. } if tries < 4 => tokio::time::sleep(RESEND.after(tries)).await,
                    answer => break answer,
                }
            };
            match answer {
                Answer::Done => {}
                Answer::AlreadyProved => break,
                other => {
                    let _ = writeln!(
                        say,
                        "block {}: EthProofs `{}` not accepted: {other:?}",
                        r.block,
                        call.status.as_str()
                    );
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            accepted += 1;
            let _ = writeln!(say, "block {}: reported to EthProofs", r.block);
        }
    }
    accepted
}

/// The backend for a replay: the daemon's, with the coordinator's program records in a scratch
/// ledger under `out` (never the input directory's).
pub fn backend(config: &Config, out: &Path, action: ReproduceAction) -> Result<Box<dyn Backend>, ReproduceError> {
    let mut config = config.clone();
    config.zisk_action = match (action, config.zisk_action) {
        (_, crate::config::ZiskAction::Native) => crate::config::ZiskAction::Native,
        (ReproduceAction::Prove, _) => crate::config::ZiskAction::Prove,
        _ => crate::config::ZiskAction::Execute,
    };
    if action == ReproduceAction::Emulate && !config.input_check.emulate() {
        config.input_check = crate::config::InputCheck::Emulate;
    }
    let version = crate::block::zisk::ZiskVersion { major: 1, minor: 0, patch: 0 };
    let (version, dialect) = match config.zisk_version {
        crate::config::ZiskVersionSetting::Fixed { major, minor } => {
            let v = crate::block::zisk::ZiskVersion { major, minor, patch: 0 };
            (v, v.dialect().map_err(|e| ReproduceError::Backend(e.to_string()))?)
        }
        crate::config::ZiskVersionSetting::Auto => (version, crate::block::zisk::Dialect::V1),
    };
    // The coordinator registers the ELF as it is now, checked like at a daemon's start-up.
    let elf_sha256 = match config.zisk_action {
        crate::config::ZiskAction::Native => String::new(),
        _ => {
            let elf = std::fs::read(&config.elf_path).map_err(|e| {
                ReproduceError::Backend(format!(
                    "cannot read ELF_PATH {}: {e}; set ELF_PATH to the guest ELF, or ZISK_ACTION=native to re-execute the inputs without ZisK",
                    config.elf_path.display()
                ))
            })?;
            let fp = crate::block::elf::fingerprint(&elf);
            if let Err(mismatch) = crate::block::elf::check_layout(&fp, &config.elf_path.display().to_string())
                && !config.allow_elf_mismatch
            {
                return Err(ReproduceError::Backend(mismatch.to_string()));
            }
            fp.sha256
        }
    };
    // Only the coordinator keeps records (its program, set up once): the scratch ledger, and so
    // `--out`, exist only for it or for proofs.
    let coordinator = config.prover_backend == crate::config::ProverBackend::Coordinator
        && config.zisk_action != crate::config::ZiskAction::Native;
    let ledger = if coordinator {
        std::fs::create_dir_all(out)
            .map_err(|source| ReproduceError::Write { path: out.display().to_string(), source })?;
        crate::store::Ledger::open(&out.join("reproduce.db")).map_err(|e| ReproduceError::Backend(e.to_string()))?
    } else {
        crate::store::Ledger::open_in_memory().map_err(|e| ReproduceError::Backend(e.to_string()))?
    };
    // Replays hold nothing to compare the guest's outputs with: no layout.
    crate::backend::from_config(&config, &Arc::new(ledger), version, dialect, &elf_sha256, None)
        .map_err(|e| ReproduceError::Backend(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_the_kept_block_directories_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for b in ["300", "100", "200", "not-a-block", "400"] {
            std::fs::create_dir_all(dir.path().join(b)).unwrap();
        }
        for b in ["300", "100", "200", "not-a-block"] {
            std::fs::write(dir.path().join(b).join("input.bin"), b"x").unwrap();
        }
        let found: Vec<u64> = inputs(dir.path()).unwrap().into_iter().map(|(b, _)| b).collect();
        assert_eq!(found, vec![100, 200, 300], "400 has no input; not-a-block is not a block");
        assert!(inputs(tempfile::tempdir().unwrap().path()).is_err());
    }

    #[test]
    fn out_is_refused_inside_a_running_daemons_output_dir_however_spelled() {
        let root = tempfile::tempdir().unwrap();
        let daemon_dir = root.path().join("daemon-output");
        let inputs = root.path().join("copied-inputs");
        std::fs::create_dir_all(&inputs).unwrap();
        let lock = crate::outside::instance::lock(&daemon_dir, &daemon_dir.join("ethproofs-daemon.db")).unwrap();
        std::os::unix::fs::symlink(&daemon_dir, root.path().join("link")).unwrap();
        let spellings = [
            daemon_dir.join("replay"),
            root.path().join("link/replay/new"),
            root.path().join("elsewhere/../daemon-output/replay"),
        ];
        for out in &spellings {
            let err = check_out(out, &inputs).unwrap_err().to_string();
            assert!(err.contains("running daemon") && err.contains("daemon-output"), "{}: {err}", out.display());
        }
        let err = check_out(&inputs.join("x/../y"), &inputs).unwrap_err().to_string();
        assert!(err.contains("inside --inputs"), "{err}");
        // A directory of its own is fine, and so is the daemon's once it has stopped.
        assert_eq!(
            check_out(&root.path().join("replay"), &inputs).unwrap(),
            root.path().canonicalize().unwrap().join("replay")
        );
        drop(lock);
        assert!(check_out(&spellings[1], &inputs).is_ok());
    }
}
