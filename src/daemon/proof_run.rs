//! One prover run of one block, as a task: start the process (recording its identity), wait for
//! its end, record the exit and the proof it wrote in the ledger at once, judge it
//! ([`crate::decide::judge`]), make an accepted proof durable (fsync, SHA-256) and record the
//! verdict. The Prover actor only starts these and
//! hears how they went.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sha2::Digest;
use tokio::sync::watch;

use super::Context;
use crate::config::ZiskAction;
use crate::control::Nudge;
use crate::decide::judge::{self, Action, ProofFile, RunFacts, Verdict};
use crate::process::{self, Ending, RunOutcome, RunSpec};
use crate::store::{Accepted, ExitRecord, Interrupted, StoreError};
use crate::zisk::{self, ProofLocation};

/// What to run.
#[derive(Debug, Clone)]
pub struct RunJob {
    pub block: u64,
    pub input_path: PathBuf,
    /// The hash of the block the input was built from: checked against the node's canonical
    /// block at this height before the run starts and before its proof is accepted.
    pub block_hash: Option<String>,
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

pub fn action(a: ZiskAction) -> Action {
    match a {
        ZiskAction::Prove => Action::Prove,
        ZiskAction::Execute => Action::Execute,
        ZiskAction::Native => Action::Native,
    }
}

fn block_dir(ctx: &Context, job: &RunJob) -> PathBuf {
    job.input_path.parent().map(PathBuf::from).unwrap_or_else(|| ctx.config.output_dir.join(job.block.to_string()))
}

/// Removes what an earlier run left at the proof location, so only this run's proof can count.
fn clear(location: &ProofLocation) {
    let _ = match location {
        ProofLocation::Dir(dir) => std::fs::remove_dir_all(dir),
        ProofLocation::File(file) => std::fs::remove_file(file),
    };
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
fn orphan(ctx: &Context, job: &RunJob, old_hash: &str, reason: &str) -> Result<(), StoreError> {
    let dir = block_dir(ctx, job);
    let short: String = old_hash.trim_start_matches("0x").chars().take(12).collect();
    let kept = ctx.config.output_dir.join(format!("{}.orphan-{short}", job.block));
    let kept = match std::fs::rename(&dir, &kept) {
        Ok(()) => Some(kept),
        Err(e) => {
            tracing::warn!(block = job.block, error = %e, "cannot move the orphan's files aside");
            None
        }
    };
    tracing::warn!(block = job.block, %reason, "reorg: the block is built again from the canonical chain");
    ctx.ledger.block_reorged(job.block, Some(old_hash), kept.as_deref(), reason)?;
    ctx.nudge(Nudge::Inputs);
    Ok(())
}

/// Runs the job to its end and records it. Never panics on the prover's behaviour.
pub async fn run(ctx: Arc<Context>, job: RunJob, cancel: watch::Receiver<bool>) -> RunReport {
    let cfg = &ctx.config;
    let act = action(cfg.zisk_action);
    let report = |attempt, verdict, last_lines, unrecorded| RunReport {
        block: job.block,
        attempt,
        verdict,
        last_lines,
        unrecorded,
    };
    // Before `proving` is raised: is the input still the chain's block at this height?
    if let Some((old, reason)) = left_the_chain(&ctx, &job).await {
        let unrecorded = orphan(&ctx, &job, &old, &reason).err();
        return report(0, Verdict::Orphaned(reason), Vec::new(), unrecorded);
    }
    let reporting = cfg.zisk_action == ZiskAction::Prove && cfg.ethproofs.is_some();
    let attempt = match ctx.ledger.proof_started(job.block, reporting) {
        Ok(attempt) => attempt,
        Err(e) => return report(0, Verdict::Stopped, Vec::new(), Some(e)),
    };
    if reporting {
        ctx.nudge(Nudge::Reporter);
    }
    let report = |verdict, last_lines, unrecorded| report(attempt, verdict, last_lines, unrecorded);
    let started_at = SystemTime::now();
    let location = match act {
        Action::Prove => {
            zisk::prove(ctx.dialect, &cfg.elf_path, &job.input_path, &block_dir(&ctx, &job), &cfg.zisk_extra_args).proof
        }
        _ => None,
    };
    if let Some(location) = &location {
        clear(location);
    }
    let outcome = match act {
        Action::Native => {
            tracing::info!(block = job.block, attempt = attempt, "native re-execution started");
            let (path, framing) = (job.input_path.clone(), ctx.zisk_version.framing());
            tokio::task::spawn_blocking(move || native_run(&path, framing))
                .await
                .map_err(|e| format!("native run panicked: {e}"))
        }
        Action::Prove | Action::Execute => {
            let invocation = match act {
                Action::Prove => zisk::prove(
                    ctx.dialect,
                    &cfg.elf_path,
                    &job.input_path,
                    &block_dir(&ctx, &job),
                    &cfg.zisk_extra_args,
                ),
                _ => zisk::execute(&cfg.elf_path, &job.input_path, &cfg.zisk_extra_args),
            };
            let spec = RunSpec {
                program: cfg.cargo_zisk.clone(),
                args: invocation.args,
                timeout: cfg.prover_timeout,
                kill_grace: cfg.prover_kill_grace,
            };
            tracing::info!(block = job.block, attempt = attempt, program = %cfg.cargo_zisk.display(), "prover started");
            let (ledger, block, attempt) = (ctx.ledger.clone(), job.block, attempt);
            let since = process::ticks_now();
            let outcome = process::run(&spec, cancel, move |pgid| {
                // Recorded before anything else happens, so a later start can end it (and only it).
                if let Some(record) = crate::instance::identify(pgid)
                    && let Err(e) = ledger.prover_process(block, attempt, &record)
                {
                    tracing::error!(block, error = %e, "cannot record the prover's process");
                }
            })
            .await
            .map_err(|e| format!("cannot start {}: {e}", spec.program.display()));
            // Helpers that left the prover's process group and outlived it (ours as subreaper).
            let swept = process::sweep_orphans(since);
            if swept > 0 {
                tracing::warn!(block, swept, "ended helpers the prover left running");
            }
            outcome
        }
    };
    let run = match outcome {
        Ok(run) => run,
        Err(reason) => {
            let verdict = Verdict::Failed { stage: "spawn", reason };
            let unrecorded = apply(&ctx, job.block, &verdict, None).err();
            return report(verdict, Vec::new(), unrecorded);
        }
    };
    let elapsed_ms = u64::try_from(run.elapsed.as_millis()).unwrap_or(u64::MAX);
    if run.ending == Ending::Cancelled {
        // A graceful stop is not the block's fault: back in the queue, not counted.
        let unrecorded = ctx.ledger.proof_interrupted(job.block, false, cfg.max_prove_attempts).err();
        tracing::info!(block = job.block, "prover stopped for shutdown; the block is proved again at the next start");
        return report(Verdict::Stopped, run.tail, unrecorded);
    }
    let (facts, proof) = gather(&ctx, act, &run, location.as_ref(), started_at);
    let verdict = judge::judge(&facts);
    let (proving_ms, cycles) = match &verdict {
        Verdict::Proved { proving_ms, cycles } => (*proving_ms, *cycles),
        Verdict::Executed { ms, cycles } => (*ms, *cycles),
        _ => (elapsed_ms.max(1), None),
    };
    let exit_text = run.ending.record();
    let exit = ExitRecord {
        exit: &exit_text,
        proof: proof.as_ref().map(|(p, bytes)| (p.as_path(), *bytes)),
        proving_ms,
        cycles,
    };
    // The exit first, the moment it is known: a crash from here on is judged from the ledger
    // at the next start, never proved again.
    if let Err(e) = ctx.ledger.prover_exited(job.block, &exit) {
        return report(verdict, run.tail, Some(e));
    }
    // Before `proved` is raised: a proof of a block that left the chain is kept, never reported.
    if matches!(verdict, Verdict::Proved { .. })
        && let Some((old, reason)) = left_the_chain(&ctx, &job).await
    {
        let unrecorded = orphan(&ctx, &job, &old, &reason).err();
        return report(Verdict::Orphaned(reason), run.tail, unrecorded);
    }
    match apply(&ctx, job.block, &verdict, proof.as_ref().map(|(p, _)| p.as_path())) {
        Ok(verdict) => report(verdict, run.tail, None),
        Err(e) => report(verdict, run.tail, Some(e)),
    }
}

/// Records a verdict on an exited (or never started) run, and returns it as recorded: a proof
/// that cannot be made durable is a failure, not a proof.
pub fn apply(ctx: &Context, block: u64, verdict: &Verdict, proof: Option<&Path>) -> Result<Verdict, StoreError> {
    let reporting = ctx.config.ethproofs.is_some();
    match verdict {
        Verdict::Proved { proving_ms, cycles } => {
            let sealed = proof
                .ok_or_else(|| "no proof path was recorded".to_string())
                .and_then(|p| seal(p).map_err(|e| format!("cannot make the proof {} durable: {e}", p.display())));
            match sealed {
                Ok(sha256) => {
                    let accepted = Accepted { proving_ms: *proving_ms, cycles: *cycles, sha256: &sha256 };
                    ctx.ledger.proof_accepted(block, &accepted, reporting)?;
                    ctx.nudge(Nudge::Reporter);
                }
                Err(reason) => {
                    ctx.ledger.proof_failed(block, "proof_output", &reason)?;
                    return Ok(Verdict::Failed { stage: "proof_output", reason });
                }
            }
        }
        Verdict::Executed { ms, cycles } => ctx.ledger.executed(block, *ms, *cycles)?,
        Verdict::Failed { stage, reason } => ctx.ledger.proof_failed(block, stage, reason)?,
        Verdict::Stopped => {
            if ctx.ledger.proof_interrupted(block, false, ctx.config.max_prove_attempts)? != Interrupted::Requeued {
                tracing::warn!(block, "stopped run was not requeued");
            }
        }
        // Recorded where it was found (`orphan`).
        Verdict::Orphaned(_) => {}
    }
    Ok(verdict.clone())
}

/// The facts of the run's end; for a proof this run wrote, also its path and size.
fn gather(
    ctx: &Context,
    act: Action,
    run: &RunOutcome,
    location: Option<&ProofLocation>,
    started_at: SystemTime,
) -> (RunFacts, Option<(PathBuf, u64)>) {
    let mut facts = RunFacts {
        action: act,
        ending: run.ending,
        elapsed: run.elapsed,
        proof: Err("not looked for".into()),
        reported_ms: None,
        cycles: if act == Action::Prove { None } else { zisk::parse_steps(&run.tail) },
        detail: run.tail.first().cloned(),
    };
    let mut written = None;
    if act == Action::Prove
        && run.ending == Ending::Code(0)
        && let Some(location) = location
    {
        match zisk::read_prove_result(ctx.dialect, location, &run.tail) {
            Ok(r) => {
                facts.reported_ms = r.proving_time_ms;
                facts.cycles = r.cycles;
                facts.proof = proof_file(&r.proof_path, started_at);
                if let Ok(file) = &facts.proof
                    && file.written_by_this_run
                    && file.bytes > 0
                {
                    written = Some((r.proof_path.clone(), file.bytes));
                }
            }
            Err(e) => facts.proof = Err(e.to_string()),
        }
    }
    (facts, written)
}

fn proof_file(path: &Path, started_at: SystemTime) -> Result<ProofFile, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let modified = meta.modified().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(ProofFile { bytes: meta.len(), written_by_this_run: modified >= started_at })
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

/// The `native` action: the input read back and re-executed as the guest would, in-process.
fn native_run(path: &Path, framing: crate::input::Framing) -> RunOutcome {
    let started = Instant::now();
    let outcome = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display())).and_then(|file| {
        let payload =
            framing.payload(&file).ok_or_else(|| format!("{} is not a well-formed {framing} input", path.display()))?;
        crate::input::validate::validate(payload).map_err(|e| format!("native re-execution failed: {e}"))
    });
    match outcome {
        Ok(report) => RunOutcome {
            ending: Ending::Code(0),
            tail: vec![format!(
                "native re-execution ok: state root {:#x}, gas {}",
                report.state_root_after, report.gas_used
            )],
            elapsed: started.elapsed(),
        },
        Err(reason) => RunOutcome { ending: Ending::Code(1), tail: vec![reason], elapsed: started.elapsed() },
    }
}
