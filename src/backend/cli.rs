//! The cargo-zisk backend: one `cargo-zisk prove` (or `execute`) per block, in its own process
//! group, with a timeout, judged from its exit and the proof it wrote
//! ([`crate::decide::judge::judge`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::{Ended, Outcome, Recorder, RunRequest, Stop};
use crate::decide::judge::{self, Action, ProofFile, RunFacts, Verdict};
use crate::process::{self, Ending, RunOutcome, RunSpec};
use crate::zisk::{self, Dialect, ProofLocation};

/// How cargo-zisk is run.
#[derive(Debug, Clone)]
pub struct Cli {
    pub program: PathBuf,
    pub elf: PathBuf,
    pub dialect: Dialect,
    /// `ZISK_EXTRA_ARGS`, passed through.
    pub extra_args: Vec<String>,
    pub action: Action,
    pub timeout: Duration,
    pub kill_grace: Duration,
}

impl Cli {
    pub async fn run(&self, req: &RunRequest, stop: watch::Receiver<Stop>, rec: &dyn Recorder) -> Outcome {
        let invocation = match self.action {
            Action::Prove => zisk::prove(self.dialect, &self.elf, &req.input, &req.block_dir, &self.extra_args),
            _ => zisk::execute(&self.elf, &req.input, &self.extra_args),
        };
        // Only this run's proof can count: whatever an earlier run left there goes first.
        if let Some(location) = &invocation.proof {
            clear(location);
        }
        let spec = RunSpec {
            program: self.program.clone(),
            args: invocation.args,
            timeout: self.timeout,
            kill_grace: self.kill_grace,
        };
        tracing::info!(block = req.block, attempt = req.attempt, program = %self.program.display(), "prover started");
        let started_at = SystemTime::now();
        let since = process::ticks_now();
        let (cancel, cancelled) = watch::channel(false);
        let mut stop_seen = stop.clone();
        // Turns a stop request into the process's cancel; never finishes by itself, and keeps
        // `cancel` alive (a dropped sender would read as a cancel).
        let relay = async move {
            while stop_seen.changed().await.is_ok() {
                if *stop_seen.borrow() != Stop::No {
                    let _ = cancel.send(true);
                    break;
                }
            }
            std::future::pending::<std::io::Result<RunOutcome>>().await
        };
        let outcome = tokio::select! {
            outcome = process::run(&spec, cancelled, |pgid| rec.process(pgid)) => outcome,
            never = relay => never,
        };
        // Helpers that left the prover's process group and outlived it (ours as subreaper).
        let swept = process::sweep_orphans(since);
        if swept > 0 {
            tracing::warn!(block = req.block, swept, "ended helpers the prover left running");
        }
        let run = match outcome {
            Ok(run) => run,
            Err(e) => {
                return Outcome::Ended(Ended::failed("spawn", format!("cannot start {}: {e}", spec.program.display())));
            }
        };
        if run.ending == Ending::Cancelled {
            if *stop.borrow() == Stop::Operator {
                return Outcome::Ended(Ended {
                    verdict: Verdict::Failed { stage: "cancelled", reason: "cancelled by the operator".into() },
                    exit: Some(run.ending.record()),
                    proof: None,
                    last_lines: run.tail,
                });
            }
            return Outcome::Stopped;
        }
        let (facts, proof) = self.gather(&run, invocation.proof.as_ref(), started_at);
        Outcome::Ended(Ended {
            verdict: judge::judge(&facts),
            exit: Some(run.ending.record()),
            proof,
            last_lines: run.tail,
        })
    }

    /// The facts of the run's end; for a proof this run wrote, also its path and size.
    fn gather(
        &self,
        run: &RunOutcome,
        location: Option<&ProofLocation>,
        started_at: SystemTime,
    ) -> (RunFacts, Option<(PathBuf, u64)>) {
        let act = self.action;
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
            match zisk::read_prove_result(self.dialect, location, &run.tail) {
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
}

/// Removes what an earlier run left at the proof location.
fn clear(location: &ProofLocation) {
    let _ = match location {
        ProofLocation::Dir(dir) => std::fs::remove_dir_all(dir),
        ProofLocation::File(file) => std::fs::remove_file(file),
    };
}

fn proof_file(path: &Path, started_at: SystemTime) -> Result<ProofFile, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let modified = meta.modified().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(ProofFile { bytes: meta.len(), written_by_this_run: modified >= started_at })
}
