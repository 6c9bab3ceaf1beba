//! The `native` action: no ZisK at all; the input read back and re-executed in-process as the
//! guest would. Nothing it does is a proof, so it is recorded as executed.

use std::path::Path;
use std::time::Instant;

use super::{Backend, BackendOutcome, Ended, Recorder, RunFuture, RunRequest, StopSignal};
use crate::block::input::Framing;
use crate::decide::judge::Exit;
use crate::decide::judge::{self, Action, RunFacts};
use crate::outside::process::{Ending, RunOutcome};
use crate::store::Stage;

#[derive(Debug, Clone, Copy)]
pub struct Native {
    /// How the input files are framed (the configured ZisK version's).
    pub framing: Framing,
}

impl Backend for Native {
    fn name(&self) -> &'static str {
        "native"
    }

    fn describe(&self) -> String {
        "none (native)".to_string()
    }

    fn makes_proofs(&self) -> bool {
        false
    }

    fn run<'a>(&'a self, req: &'a RunRequest, _: StopSignal, _: &'a dyn Recorder) -> RunFuture<'a, BackendOutcome> {
        Box::pin(self.execute(req))
    }

    /// Re-execution is the check: there is no guest to ask.
    fn check<'a>(&'a self, req: &'a RunRequest, _: StopSignal, _: &'a dyn Recorder) -> RunFuture<'a, BackendOutcome> {
        Box::pin(self.execute(req))
    }
}

impl Native {
    async fn execute(&self, req: &RunRequest) -> BackendOutcome {
        tracing::info!("native re-execution started");
        let (path, framing) = (req.input.clone(), self.framing);
        // The block's span goes along to the blocking pool.
        let span = tracing::Span::current();
        let run = match tokio::task::spawn_blocking(move || span.in_scope(|| native_run(&path, framing))).await {
            Ok(run) => run,
            Err(e) => {
                return BackendOutcome::Ended(Ended::failed(
                    Stage::NativeValidation,
                    format!("native run panicked: {e}"),
                ));
            }
        };
        let facts = RunFacts {
            action: Action::Native,
            ending: run.ending,
            elapsed: run.elapsed,
            proof: Err(crate::decide::judge::NoProof::NotLookedFor),
            reported_ms: None,
            cycles: None,
            detail: run.tail.first().cloned(),
        };
        BackendOutcome::Ended(Ended {
            verdict: judge::judge(&facts),
            exit: Some(Exit::Process(run.ending)),
            proof: None,
            last_lines: run.tail,
        })
    }
}

fn native_run(path: &Path, framing: Framing) -> RunOutcome {
    let started = Instant::now();
    let outcome = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display())).and_then(|file| {
        let payload =
            framing.payload(&file).ok_or_else(|| format!("{} is not a well-formed {framing} input", path.display()))?;
        crate::block::input::validate::validate(payload).map_err(|e| format!("native re-execution failed: {e}"))
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
