//! One prover run of one block, as a task: check the block is still canonical, record the
//! attempt, hand the input to the configured [`Backend`] (which records its process or job as
//! soon as it exists), record the exit and the proof at once, make an accepted proof durable
//! (fsync, SHA-256) and record the verdict. The Prover actor only starts these and hears how
//! they went; neither knows which backend runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::run_progress::{Recording, RunProgress};
use crate::backend::{BackendOutcome, RunRequest, Stop, StopSignal};
use crate::block::commitment::BlockOutputs;
use crate::block::proof_file::ProofFile;
use crate::daemon::canonical::{self, Canonical};
use crate::daemon::{Context, ProverSettings, until_recorded};
use crate::decide::judge::Verdict;
use crate::store::RecordedJob;
use crate::store::Stage;
use crate::store::{Acceptance, Accepted, ExitRecord, Interrupted, StoreError};

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
    /// What the block's proof must commit to, recorded when its input was built.
    pub expected: Option<BlockOutputs>,
    /// A submission of an earlier attempt whose answer was lost (kept across restarts): the
    /// block is not submitted again before it has ended.
    pub in_doubt: Option<crate::store::JobInDoubt>,
    /// The GPU the run's lane was given (`GPUS`): the only one its prover sees.
    pub gpu: Option<String>,
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

/// `Some((old hash, reason))` if the node's block at this height is not the one the input was
/// built from. A node that cannot say is logged and the run goes on: nothing is reported on
/// this answer (the Reporter asks again, closed, before `proved` is sent).
async fn left_the_chain(ctx: &Context, job: &RunJob) -> Option<(String, String)> {
    match canonical::check(ctx, job.block, job.block_hash.as_deref()).await {
        Canonical::Yes => None,
        Canonical::Left { built_from, reason } => Some((built_from, reason)),
        Canonical::Unknown(why) => {
            tracing::warn!(%why, "cannot check that the block is still canonical; checked again before it is reported");
            None
        }
    }
}

fn orphan(
    ctx: &Context,
    settings: &ProverSettings,
    job: &RunJob,
    old_hash: &str,
    reason: &str,
) -> Result<(), StoreError> {
    canonical::orphan(ctx, job.block, &block_dir(settings, job), old_hash, reason)
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
    tracing::Span::current().record("attempt", attempt);
    if let Some(resume) = &job.resume {
        tracing::Span::current().record("job", resume.job.id());
    }
    let request = RunRequest {
        block: job.block,
        attempt,
        input: job.input_path.clone(),
        block_dir: block_dir(&settings, &job),
        resume_job: job.resume.as_ref().map(|r| r.job.clone()),
        expected: job.expected,
        in_doubt: job.in_doubt.clone(),
        gpu: job.gpu.clone(),
    };
    let recording = Recording { block: job.block, attempt, ledger: &ctx.ledger, progress: &progress };
    // Once the run has ended, its records are retried through a ledger that cannot be written
    // for now; only a shutdown gives up (the block is then looked at again at the next start).
    let drain = ctx.drain.clone();
    let stopping = move || drain.is_draining();
    let outcome = ctx.backend.run(&request, stop, &recording).await;
    progress.finish();
    let ended = match outcome {
        BackendOutcome::Ended(ended) => ended,
        BackendOutcome::Stopped => {
            // A graceful stop is not the block's fault: back in the queue, not counted.
            let unrecorded = ctx.ledger.proof_interrupted(job.block, false, cfg.max_prove_attempts).err();
            tracing::info!("prover stopped for shutdown; the block is proved again at the next start");
            return report(Verdict::Stopped, Vec::new(), unrecorded);
        }
        // The block stays `proving` with its job recorded: the next start follows it again.
        BackendOutcome::Detached => return report(Verdict::Stopped, Vec::new(), None),
        BackendOutcome::Lost(reason) => {
            tracing::warn!(%reason, "the attempt is lost; proving again");
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
        // Retried like every end-of-run record: an unrecorded orphan would be judged a proof.
        let unrecorded =
            until_recorded(&ctx.ledger, &stopping, || orphan(&ctx, &settings, &job, &old, &reason)).await.err();
        return report(Verdict::Orphaned(reason), ended.last_lines, unrecorded);
    }
    let sealed = match (&verdict, ended.proof.as_ref()) {
        (Verdict::Proved { .. }, Some((path, _))) => {
            let (ctx, path, expected) = (ctx.clone(), path.clone(), job.expected);
            let span = tracing::Span::current();
            Some(
                tokio::task::spawn_blocking(move || span.in_scope(|| accept(&ctx, &path, expected.as_ref())))
                    .await
                    .unwrap_or_else(|e| Err((Stage::ProofOutput, format!("the task checking the proof failed: {e}")))),
            )
        }
        (Verdict::Proved { .. }, None) => Some(Err((Stage::ProofOutput, "no proof path was recorded".to_string()))),
        _ => None,
    };
    match until_recorded(&ctx.ledger, &stopping, || record(&ctx, &settings, job.block, &verdict, sealed.clone())).await
    {
        Ok(verdict) => report(verdict, ended.last_lines, None),
        Err(e) => report(verdict, ended.last_lines, Some(e)),
    }
}

/// Whether the proof file at `path` is a whole saved proof (see [`crate::block::verify::is_whole`]).
pub(super) fn whole(path: &Path) -> bool {
    ProofFile::read(path, crate::block::verify::max_proof_bytes())
        .is_ok_and(|f| crate::block::verify::is_whole(&f.bytes))
}

/// The largest proof file read when proofs are not verified (ZisK 0.x layouts are larger).
const UNVERIFIED_READ_CAP: u64 = 256 << 20;

/// A proved run's proof, read once (no symlink followed): those bytes are checked for this
/// program and this block (when VERIFY_PROOFS is on), then made durable and hashed. The
/// SHA-256 to record, or the stage and reason the block fails with; a rejected proof stays on
/// disk for a person to look at. Blocking: a STARK check takes CPU time. In the block's span
/// (the run's, or recovery's), as are `settle_recorded` and `record`.
pub fn accept(ctx: &Context, path: &Path, expected: Option<&BlockOutputs>) -> Result<String, (Stage, String)> {
    let cap = if ctx.verify.is_some() { crate::block::verify::max_proof_bytes() } else { UNVERIFIED_READ_CAP };
    let file = ProofFile::read(path, cap).map_err(|e| (Stage::ProofOutput, e.to_string()))?;
    if let Some(check) = &ctx.verify {
        match check.check_bytes(&file.bytes, expected, ctx.program_key().as_ref()) {
            Ok(v) => tracing::info!(program_vk = %v.program_vk, compressed = v.compressed, "proof verified"),
            Err(rejected) => {
                crate::runtime::telemetry::proof_rejected();
                tracing::error!(proof = %path.display(), reason = %rejected, "proof rejected by the verifier; kept, never reported");
                return Err((Stage::Verify, rejected.to_string()));
            }
        }
    }
    file.seal(path).map_err(|e| (Stage::ProofOutput, e.to_string()))
}

/// Judges again, after a restart, a run whose exit (and proof) the ledger recorded: the proof
/// is read, checked and sealed as at its run's end, and the verdict recorded.
pub fn settle_recorded(
    ctx: &Context,
    settings: &ProverSettings,
    row: &crate::store::BlockRecord,
    verdict: Verdict,
) -> Result<Verdict, StoreError> {
    let sealed = match (&verdict, &row.proof_path) {
        (Verdict::Proved { .. }, Some(path)) => {
            let expected = row.expected_output.as_deref().and_then(BlockOutputs::from_hex);
            Some(accept(ctx, path, expected.as_ref()))
        }
        (Verdict::Proved { .. }, None) => Some(Err((Stage::ProofOutput, "no proof path was recorded".to_string()))),
        _ => None,
    };
    record(ctx, settings, row.number, &verdict, sealed)
}

/// Records a verdict on an exited (or never started) run, with a proved verdict's proof
/// already checked and sealed (`sealed` is `Some` for it), and returns it as recorded: a proof
/// that cannot be made durable, or that is another block's, is a failure, not a proof.
pub(super) fn record(
    ctx: &Context,
    settings: &ProverSettings,
    block: u64,
    verdict: &Verdict,
    sealed: Option<Result<String, (Stage, String)>>,
) -> Result<Verdict, StoreError> {
    let reporting = settings.raises_reports;
    match verdict {
        Verdict::Proved { proving_ms, cycles } => {
            let sealed = sealed.unwrap_or_else(|| Err((Stage::ProofOutput, "the proof was not sealed".to_string())));
            match sealed {
                Ok(sha256) => {
                    // `accept` checked it with the check in force, when there is one.
                    let checked = ctx.verify.as_ref().map(|c| c.fingerprint(ctx.program_key().as_ref()));
                    let accepted = Accepted {
                        proving_ms: *proving_ms,
                        cycles: *cycles,
                        sha256: &sha256,
                        checked_for: checked.as_deref(),
                    };
                    if let Acceptance::Duplicate { block: other, reason } =
                        ctx.ledger.proof_accepted(block, &accepted, reporting)?
                    {
                        crate::runtime::telemetry::proof_rejected();
                        tracing::error!(other, %reason, "a proof already recorded for another block; kept, never reported");
                        return Ok(Verdict::Failed { stage: Stage::Verify, reason });
                    }
                }
                Err((stage, reason)) => {
                    ctx.ledger.proof_failed(block, stage, &reason)?;
                    return Ok(Verdict::Failed { stage, reason });
                }
            }
        }
        Verdict::Executed { ms, cycles } => ctx.ledger.executed(block, *ms, *cycles)?,
        Verdict::Failed { stage, reason } => ctx.ledger.proof_failed(block, *stage, reason)?,
        Verdict::Stopped => {
            if ctx.ledger.proof_interrupted(block, false, settings.max_prove_attempts)? != Interrupted::Requeued {
                tracing::warn!("stopped run was not requeued");
            }
        }
        // Recorded where it was found (`orphan`).
        Verdict::Orphaned(_) => {}
    }
    Ok(verdict.clone())
}

/// Whether the proof recorded at exit is still there, whole (for judging a recorded exit again
/// after a restart).
pub fn intact(path: &Path, bytes: u64) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == bytes && bytes > 0)
}
