//! One prover run of one block, as a task: check the block is still canonical, record the
//! attempt, hand the input to the configured [`Backend`] (which records its process or job as
//! soon as it exists), record the exit and the proof at once, make an accepted proof durable
//! (fsync, SHA-256) and record the verdict. The Prover actor only starts these and hears how
//! they went; neither knows which backend runs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::Digest;

use super::run_progress::{Recording, RunProgress};
use super::{Context, ProverSettings, until_recorded};
use crate::backend::{Outcome, RunRequest, Stop, StopSignal};
use crate::decide::judge::Verdict;
use crate::store::RecordedJob;
use crate::store::Stage;
use crate::store::{Accepted, ExitRecord, Interrupted, StoreError};

/// What to run.
#[derive(Debug, Clone)]
pub struct RunJob {
    pub block: u64,
    pub input_path: PathBuf,
    /// The hash of the block the input was built from: checked against the node's canonical
    /// block at this height before the run starts and before its proof is accepted.
    pub block_hash: Option<String>,
    /// An attempt already running when the daemon (re)started, whose coordinator job is
    /// followed again rather than started anew.
    pub resume: Option<Resume>,
}

#[derive(Debug, Clone)]
pub struct Resume {
    pub attempt: u32,
    pub job: RecordedJob,
}

/// How it went, for the Prover's status and alerts (the ledger already has it).
#[derive(Debug)]
pub struct RunReport {
    pub block: u64,
    /// The attempt this run was (0 if it never started).
    pub attempt: u32,
    pub verdict: Verdict,
    pub last_lines: Vec<String>,
    /// A ledger write that failed: the block's row is left where it was, and the next start
    /// looks at it again.
    pub unrecorded: Option<StoreError>,
}

fn block_dir(settings: &ProverSettings, job: &RunJob) -> PathBuf {
    job.input_path.parent().map(PathBuf::from).unwrap_or_else(|| settings.output_dir.join(job.block.to_string()))
}

/// How long the canonical check may take; a node that cannot say is not a reason to stop.
const CANONICAL_CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// The node's canonical hash at the block's height, if it answers in time.
async fn canonical(ctx: &Context, block: u64) -> Option<String> {
    match tokio::time::timeout(CANONICAL_CHECK_TIMEOUT, ctx.node.block_hash(block)).await {
        Ok(Ok(hash)) => hash,
        Ok(Err(e)) => {
            tracing::warn!(block, error = %e, "cannot check that the block is still canonical");
            None
        }
        Err(_) => {
            tracing::warn!(block, "the canonical check did not answer in time");
            None
        }
    }
}

/// `Some(reason)` if the node's block at this height is not the one the input was built from.
async fn left_the_chain(ctx: &Context, job: &RunJob) -> Option<(String, String)> {
    let built_from = job.block_hash.as_deref()?;
    let now = canonical(ctx, job.block).await?;
    (!now.eq_ignore_ascii_case(built_from)).then(|| {
        let reason = format!("block {} {built_from} is no longer canonical (the chain now has {now})", job.block);
        (built_from.to_string(), reason)
    })
}

/// Keeps what was done for an orphaned block under `OUTPUT_DIR/<n>.orphan-<hash>` and records
/// it; the canonical block at this height is built and proved afresh.
fn orphan(
    ctx: &Context,
    settings: &ProverSettings,
    job: &RunJob,
    old_hash: &str,
    reason: &str,
) -> Result<(), StoreError> {
    let dir = block_dir(settings, job);
    let short: String = old_hash.trim_start_matches("0x").chars().take(12).collect();
    let kept = settings.output_dir.join(format!("{}.orphan-{short}", job.block));
    let kept = match std::fs::rename(&dir, &kept) {
        Ok(()) => Some(kept),
        Err(e) => {
            tracing::warn!(block = job.block, error = %e, "cannot move the orphan's files aside");
            None
        }
    };
    tracing::warn!(block = job.block, %reason, "reorg: the block is built again from the canonical chain");
    ctx.ledger.block_reorged(job.block, Some(old_hash), kept.as_deref(), reason)?;
    Ok(())
}

/// Runs the job to its end and records it. Never panics on the prover's behaviour.
pub async fn run(
    ctx: Arc<Context>,
    settings: Arc<ProverSettings>,
    job: RunJob,
    stop: StopSignal,
    progress: Arc<RunProgress>,
) -> RunReport {
    let cfg = &*settings;
    let report = |attempt, verdict, last_lines, unrecorded| RunReport {
        block: job.block,
        attempt,
        verdict,
        last_lines,
        unrecorded,
    };
    let attempt = match &job.resume {
        Some(resume) => resume.attempt,
        None => {
            // Before `proving` is raised: is the input still the chain's block at this height?
            if let Some((old, reason)) = left_the_chain(&ctx, &job).await {
                let unrecorded = orphan(&ctx, &settings, &job, &old, &reason).err();
                return report(0, Verdict::Orphaned(reason), Vec::new(), unrecorded);
            }
            // A stop that came during the check: the block stays queued, nothing raised.
            if stop.now() == Stop::Shutdown {
                return report(0, Verdict::Stopped, Vec::new(), None);
            }
            match ctx.ledger.proof_started(job.block, cfg.raises_reports) {
                Ok(attempt) => attempt,
                Err(e) => return report(0, Verdict::Stopped, Vec::new(), Some(e)),
            }
        }
    };
    let report = |verdict, last_lines, unrecorded| report(attempt, verdict, last_lines, unrecorded);
    let request = RunRequest {
        block: job.block,
        attempt,
        input: job.input_path.clone(),
        block_dir: block_dir(&settings, &job),
        resume_job: job.resume.as_ref().map(|r| r.job.clone()),
    };
    let recording = Recording { block: job.block, attempt, ledger: &ctx.ledger, progress: &progress };
    // Once the run has ended, its records are retried through a ledger that cannot be written
    // for now; only a shutdown gives up (the block is then looked at again at the next start).
    let drain = ctx.drain.clone();
    let stopping = move || drain.is_draining();
    let outcome = ctx.backend.run(&request, stop, &recording).await;
    progress.finish();
    let ended = match outcome {
        Outcome::Ended(ended) => ended,
        Outcome::Stopped => {
            // A graceful stop is not the block's fault: back in the queue, not counted.
            let unrecorded = ctx.ledger.proof_interrupted(job.block, false, cfg.max_prove_attempts).err();
            tracing::info!(
                block = job.block,
                "prover stopped for shutdown; the block is proved again at the next start"
            );
            return report(Verdict::Stopped, Vec::new(), unrecorded);
        }
        // The block stays `proving` with its job recorded: the next start follows it again.
        Outcome::Detached => return report(Verdict::Stopped, Vec::new(), None),
        Outcome::Lost(reason) => {
            tracing::warn!(block = job.block, %reason, "the attempt is lost; proving again");
            let interrupted = until_recorded(&ctx.ledger, &stopping, || {
                ctx.ledger.proof_interrupted(job.block, true, cfg.max_prove_attempts)
            })
            .await;
            return match interrupted {
                Ok(Interrupted::Requeued) => report(Verdict::Stopped, vec![reason], None),
                Ok(Interrupted::GaveUp(gave_up)) => {
                    report(Verdict::Failed { stage: Stage::Prove, reason: gave_up }, vec![reason], None)
                }
                Err(e) => report(Verdict::Stopped, vec![reason], Some(e)),
            };
        }
    };
    let verdict = match ended.verdict {
        // A prover that gives no cycle count: the guest's own steps on the input stand in.
        Verdict::Proved { proving_ms, cycles: None } => {
            Verdict::Proved { proving_ms, cycles: progress.snapshot().guest_steps }
        }
        verdict => verdict,
    };
    if let Some(exit_text) = ended.exit.map(|e| e.record()) {
        let (proving_ms, cycles) = match &verdict {
            Verdict::Proved { proving_ms, cycles } => (*proving_ms, *cycles),
            Verdict::Executed { ms, cycles } => (*ms, *cycles),
            _ => (1, None),
        };
        let exit = ExitRecord {
            exit: &exit_text,
            proof: ended.proof.as_ref().map(|(p, bytes)| (p.as_path(), *bytes)),
            proving_ms,
            cycles,
        };
        // The exit first, the moment it is known: a crash from here on is judged from the
        // ledger at the next start, never proved again.
        if let Err(e) = until_recorded(&ctx.ledger, &stopping, || ctx.ledger.prover_exited(job.block, &exit)).await {
            return report(verdict, ended.last_lines, Some(e));
        }
    }
    // Before `proved` is raised: a proof of a block that left the chain is kept, never reported.
    if matches!(verdict, Verdict::Proved { .. })
        && let Some((old, reason)) = left_the_chain(&ctx, &job).await
    {
        let unrecorded = orphan(&ctx, &settings, &job, &old, &reason).err();
        return report(Verdict::Orphaned(reason), ended.last_lines, unrecorded);
    }
    let proof = ended.proof.as_ref().map(|(p, _)| p.as_path());
    let verdict = match (&verdict, proof) {
        (Verdict::Proved { .. }, Some(path)) if ctx.verify.is_some() => {
            let (ctx, block, path, proved) = (ctx.clone(), job.block, path.to_path_buf(), verdict.clone());
            tokio::task::spawn_blocking(move || verified(&ctx, block, proved, Some(&path))).await.unwrap_or_else(|e| {
                Verdict::Failed { stage: Stage::Verify, reason: format!("the verification task failed: {e}") }
            })
        }
        _ => verdict,
    };
    // The proof's fsync and SHA-256 read the whole file: off the async threads, once.
    let sealed = match (&verdict, proof.map(Path::to_path_buf)) {
        (Verdict::Proved { .. }, path) => Some(
            tokio::task::spawn_blocking(move || sealed(path.as_deref()))
                .await
                .unwrap_or_else(|e| Err(format!("the task sealing the proof failed: {e}"))),
        ),
        _ => None,
    };
    match until_recorded(&ctx.ledger, &stopping, || record(&ctx, &settings, job.block, &verdict, sealed.clone())).await
    {
        Ok(verdict) => report(verdict, ended.last_lines, None),
        Err(e) => report(verdict, ended.last_lines, Some(e)),
    }
}

/// A proved verdict stands only if its proof verifies (when VERIFY_PROOFS is on); otherwise the
/// block fails at stage `verify` with the verifier's reason, and the proof file is kept for a
/// person to look at. Blocking: a STARK check takes CPU time.
pub fn verified(ctx: &Context, block: u64, verdict: Verdict, proof: Option<&Path>) -> Verdict {
    let (Some(check), Verdict::Proved { .. }, Some(path)) = (&ctx.verify, &verdict, proof) else { return verdict };
    match check.check_file(path) {
        Ok(v) => {
            tracing::info!(block, program_vk = %v.program_vk, compressed = v.compressed, "proof verified");
            verdict
        }
        Err(rejected) => {
            crate::telemetry::proof_rejected();
            tracing::error!(block, proof = %path.display(), reason = %rejected, "proof rejected by the verifier; kept, never reported");
            Verdict::Failed { stage: Stage::Verify, reason: rejected.to_string() }
        }
    }
}

/// Records a verdict on an exited (or never started) run, and returns it as recorded: a proof
/// that cannot be made durable is a failure, not a proof.
pub fn apply(
    ctx: &Context,
    settings: &ProverSettings,
    block: u64,
    verdict: &Verdict,
    proof: Option<&Path>,
) -> Result<Verdict, StoreError> {
    let sealed = matches!(verdict, Verdict::Proved { .. }).then(|| sealed(proof));
    record(ctx, settings, block, verdict, sealed)
}

/// The proof made durable, and its SHA-256; or why it cannot be.
fn sealed(proof: Option<&Path>) -> Result<String, String> {
    proof
        .ok_or_else(|| "no proof path was recorded".to_string())
        .and_then(|p| seal(p).map_err(|e| format!("cannot make the proof {} durable: {e}", p.display())))
}

/// [`apply`] with a proved verdict's proof already sealed (`sealed` is `Some` for it).
fn record(
    ctx: &Context,
    settings: &ProverSettings,
    block: u64,
    verdict: &Verdict,
    sealed: Option<Result<String, String>>,
) -> Result<Verdict, StoreError> {
    let reporting = settings.raises_reports;
    match verdict {
        Verdict::Proved { proving_ms, cycles } => {
            let sealed = sealed.unwrap_or_else(|| Err("the proof was not sealed".to_string()));
            match sealed {
                Ok(sha256) => {
                    let accepted = Accepted { proving_ms: *proving_ms, cycles: *cycles, sha256: &sha256 };
                    ctx.ledger.proof_accepted(block, &accepted, reporting)?;
                }
                Err(reason) => {
                    ctx.ledger.proof_failed(block, Stage::ProofOutput, &reason)?;
                    return Ok(Verdict::Failed { stage: Stage::ProofOutput, reason });
                }
            }
        }
        Verdict::Executed { ms, cycles } => ctx.ledger.executed(block, *ms, *cycles)?,
        Verdict::Failed { stage, reason } => ctx.ledger.proof_failed(block, *stage, reason)?,
        Verdict::Stopped => {
            if ctx.ledger.proof_interrupted(block, false, settings.max_prove_attempts)? != Interrupted::Requeued {
                tracing::warn!(block, "stopped run was not requeued");
            }
        }
        // Recorded where it was found (`orphan`).
        Verdict::Orphaned(_) => {}
    }
    Ok(verdict.clone())
}

/// fsyncs the proof and the directories above it up to the block directory, and returns its
/// SHA-256: the ledger may say `proved` only about bytes that survive a power cut.
pub fn seal(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    file.sync_all()?;
    let mut dir = path.parent();
    for _ in 0..2 {
        let Some(d) = dir else { break };
        std::fs::File::open(d)?.sync_all()?;
        dir = d.parent();
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Whether the proof recorded at exit is still there, whole (for judging a recorded exit again
/// after a restart).
pub fn intact(path: &Path, bytes: u64) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == bytes && bytes > 0)
}
