//! The prover backends behind one seam. A run of one block's input is handed to the
//! [`Backend`] the configuration chose; it reports what happens through a [`Recorder`] (whose
//! writes go to the ledger) and ends with an [`BackendOutcome`]. The Prover actor and the run
//! ([`crate::daemon`]) never know which backend runs.
//!
//! - [`CargoZisk`]: `cargo-zisk prove` / `execute` as a subprocess in its own process group, one per block.
//! - [`Remote`]: a job on ZisK's coordinator (distributed proving, the proving key loaded once
//!   per worker); survives a daemon restart by re-attaching to the job.
//! - [`Native`]: the input re-executed in-process (no ZisK at all).

mod cli;
mod native;
mod remote;

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

pub use cli::{CargoZisk, Emulator, find_ziskemu};
pub use native::Native;
pub use remote::{Remote, RemoteSettings};

use crate::block::commitment::{self, BlockOutputs, OutputLayout};
use crate::config::ZiskAction;
use crate::decide::judge::Exit;
use crate::decide::judge::{Action, Verdict};
use crate::outside::coordinator::{CoordError, Phase};
use crate::store::RecordedJob;
use crate::store::Stage;

/// What the configured `ZISK_ACTION` asks of a backend.
pub fn action(a: ZiskAction) -> Action {
    match a {
        ZiskAction::Prove => Action::Prove,
        ZiskAction::Execute => Action::Execute,
        ZiskAction::Native => Action::Native,
    }
}

/// Why a run is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stop {
    #[default]
    No,
    /// The daemon is stopping.
    Shutdown,
    /// The operator cancelled the block's run.
    Operator,
}

/// One run of one block's input.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub block: u64,
    pub attempt: u32,
    pub input: PathBuf,
    /// `OUTPUT_DIR/<block>`: where the proof is written.
    pub block_dir: PathBuf,
    /// A coordinator job of this attempt, recorded before a restart: followed, not submitted again.
    pub resume_job: Option<RecordedJob>,
    /// What the block's proof must commit to: the guest's own check of the input
    /// (`INPUT_CHECK=emulate`) is held to it before any GPU time is spent.
    pub expected: Option<BlockOutputs>,
    /// A prove job of the block submitted before whose answer was lost: nothing is submitted
    /// for the block before the coordinator has ended it (its deadline).
    pub in_doubt: Option<crate::store::JobInDoubt>,
    /// The GPU this run may use (`CUDA_VISIBLE_DEVICES` of its prover): runs beside it have
    /// their own. `None`: the prover sees what the daemon sees.
    pub gpu: Option<String>,
}

/// Why a job's id (or a submission in doubt) is not in the ledger.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NotRecorded {
    /// The ledger cannot be written for now (its lock held elsewhere, a full disk): tried again
    /// while the job waits.
    #[error("the ledger cannot be written for now: {0}")]
    ForNow(String),
    /// The attempt is no longer the block's, or the ledger refuses the write for good: the job
    /// is of no use and is cancelled.
    #[error("{0}")]
    Refused(String),
}

impl NotRecorded {
    pub fn from_store(e: &crate::store::StoreError) -> NotRecorded {
        if e.is_transient() { NotRecorded::ForNow(e.to_string()) } else { NotRecorded::Refused(e.to_string()) }
    }
}

/// Why the guest's check of an input does not hold it to the block (the block fails at
/// `input_check`, before any GPU time).
#[derive(Debug, thiserror::Error)]
enum InputCheckError {
    #[error("the emulator accepted the input but gave no public outputs to hold to the block: {0}")]
    NoOutputs(crate::block::proof_file::ProofFileError),
    #[error("the guest's public outputs are {0} bytes, not up to 64 u32 words: not this guest's")]
    NotThisGuest(usize),
    #[error("the guest ran the input, but its outputs are not this block's: {0}")]
    NotThisBlock(commitment::Mismatch),
}

/// The outputs the guest committed when it checked the input (`ziskemu -o`, an execute job's
/// `public_outputs`: little-endian u32 words) against the block's. `Ok` when the layout or the
/// block's outputs are not known (nothing to hold them to; the proof is checked in full later).
fn outputs_are_the_block_s(
    layout: Option<OutputLayout>,
    req: &RunRequest,
    bytes: &[u8],
) -> Result<(), InputCheckError> {
    let (Some(layout), Some(expected)) = (layout, req.expected.as_ref()) else { return Ok(()) };
    if !bytes.len().is_multiple_of(4) || bytes.len() > commitment::OUTPUT_WORDS * 4 {
        return Err(InputCheckError::NotThisGuest(bytes.len()));
    }
    let words: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .chain(std::iter::repeat(0))
        .take(commitment::OUTPUT_WORDS)
        .collect();
    commitment::compare(layout, expected, &words).map_err(InputCheckError::NotThisBlock)
}

/// What a backend says as the run goes; the implementation records it.
pub trait Recorder: Send + Sync {
    /// The prover's process group exists (it can be recognised, and ended, after a crash).
    fn process(&self, pgid: u32);
    /// The coordinator accepted the attempt's job. Must be durable before anything else happens
    /// to the job: the ledger's token for it; `ForNow` is asked again while the job waits,
    /// `Refused` makes the backend cancel the job.
    fn job(&self, job_id: &str) -> Result<RecordedJob, NotRecorded>;
    /// The attempt's prove job was submitted and its answer lost: the coordinator may run it
    /// until the deadline sent with it.
    fn in_doubt(&self, doubt: &crate::store::JobInDoubt) -> Result<(), NotRecorded>;
    /// The job entered a phase.
    fn phase(&self, phase: Phase);
    /// The coordinator cannot be asked (`Some`), or answers again (`None`).
    fn trouble(&self, error: Option<&CoordError>);
    /// The guest accepted the input (`INPUT_CHECK=emulate`), in this many steps.
    fn checked(&self, steps: Option<u64>);
}

/// How a run ended.
#[derive(Debug)]
pub enum BackendOutcome {
    /// The run ended by itself, or by its timeout or an operator's cancel: judged.
    Ended(Ended),
    /// Stopped for shutdown and nothing of it continues: the block goes back to the queue,
    /// not counted as an attempt's failure.
    Stopped,
    /// Shutdown left the job running on the coordinator: the next start re-attaches to it.
    Detached,
    /// The coordinator no longer knows the job: proved again, counted as an interrupted attempt.
    Lost(String),
}

/// A judged run.
#[derive(Debug)]
pub struct Ended {
    pub verdict: Verdict,
    /// How the run ended, as the ledger records it (`code 0`, `job completed`, …). `None`: the
    /// run never got as far as a prover (a spawn failure, a refused input check).
    pub exit: Option<Exit>,
    /// The proof this run wrote, and its size.
    pub proof: Option<(PathBuf, u64)>,
    pub last_lines: Vec<String>,
}

impl Ended {
    fn failed(stage: Stage, reason: String) -> Ended {
        Ended { verdict: Verdict::Failed { stage, reason }, exit: None, proof: None, last_lines: Vec::new() }
    }
}

/// Why the configured backend cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Coordinator(#[from] CoordError),
}

/// What the status shows of a proving service behind the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceFacts {
    /// The service's address, without credentials.
    pub url: String,
    /// The program it registered for this ELF, if it has.
    pub hash_id: Option<String>,
    /// Whether that program is set up there.
    pub set_up: bool,
}

/// A run's future, boxed so that backends can be chosen at start-up behind one trait object.
pub type RunFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// What proves (or executes) a block. Each kind implements it: [`CargoZisk`], [`Remote`], [`Native`].
/// The daemon holds one as `Box<dyn Backend>` and never asks which kind it is.
pub trait Backend: Send + Sync {
    /// `cli`, `coordinator` or `native`, for status and metrics.
    fn name(&self) -> &'static str;

    /// Which ZisK proves, for status: the cargo-zisk version, or the service that has none.
    fn describe(&self) -> String;

    /// One run of one block's input, reported through `rec`, until it ends or `stop` asks.
    fn run<'a>(&'a self, req: &'a RunRequest, stop: StopSignal, rec: &'a dyn Recorder)
    -> RunFuture<'a, BackendOutcome>;

    /// Only the guest's own check of the input (`reproduce --action emulate`): `Executed` with
    /// the guest's steps when it accepts it, `input_check` failed when it does not.
    fn check<'a>(
        &'a self,
        req: &'a RunRequest,
        stop: StopSignal,
        rec: &'a dyn Recorder,
    ) -> RunFuture<'a, BackendOutcome>;

    /// Whether a run writes a proof into the request's `block_dir` (which must then exist).
    fn makes_proofs(&self) -> bool;

    /// Whether a run can outlive the daemon and be re-attached to.
    fn reattaches(&self) -> bool {
        false
    }

    /// Where the proofs are made, when it is a service the status should show (the coordinator:
    /// its address, the program registered, whether it is set up).
    fn service(&self) -> Option<ServiceFacts> {
        None
    }
}

/// The backend the configuration asks for. Nothing is dialled: a coordinator that is down delays
/// proofs, not the daemon. `elf_sha256` is the ELF checked at start-up (the coordinator registers
/// only that one).
pub fn from_config(
    config: &crate::config::Config,
    ledger: &std::sync::Arc<crate::store::Ledger>,
    zisk_version: crate::block::zisk::ZiskVersion,
    dialect: crate::block::zisk::Dialect,
    elf_sha256: &str,
    output_layout: Option<OutputLayout>,
) -> Result<Box<dyn Backend>, BackendError> {
    use crate::config::ProverBackend;
    let act = action(config.zisk_action);
    Ok(match (config.zisk_action, config.prover_backend) {
        (ZiskAction::Native, _) => Box::new(Native { framing: zisk_version.framing() }),
        (_, ProverBackend::Cli) => Box::new(CargoZisk {
            program: config.cargo_zisk.clone(),
            version: zisk_version,
            elf: config.elf_path.clone(),
            dialect,
            extra_args: config.zisk_extra_args.clone(),
            action: act,
            timeout: config.prover_timeout,
            kill_grace: config.prover_kill_grace,
            emulate: config.input_check.emulate().then(|| Emulator {
                ziskemu: find_ziskemu(config.ziskemu.as_deref(), &config.cargo_zisk),
                timeout: config.input_check_timeout,
                output_layout,
            }),
        }),
        (_, ProverBackend::Coordinator) => {
            let client = crate::outside::coordinator::Coordinator::new(
                &config.coordinator_url,
                config.coordinator_inline_limit,
            )?;
            let settings = RemoteSettings {
                elf: config.elf_path.clone(),
                action: act,
                timeout: config.prover_timeout,
                emulate_first: config.input_check.emulate(),
                check_timeout: config.input_check_timeout,
                cancel_on_shutdown: config.cancel_on_shutdown,
                output_layout,
            };
            Box::new(Remote::new(client, ledger.clone(), settings, elf_sha256.to_string()))
        }
    })
}

/// A guest check's answer as an outcome: `Executed` with its steps, timed from `started`.
fn checked(started: std::time::Instant, accepted: Result<Option<u64>, BackendOutcome>) -> BackendOutcome {
    match accepted {
        Ok(steps) => BackendOutcome::Ended(Ended {
            verdict: Verdict::Executed {
                ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX).max(1),
                cycles: steps,
            },
            exit: None,
            proof: None,
            last_lines: Vec::new(),
        }),
        Err(outcome) => outcome,
    }
}

/// How a run is asked to stop: the daemon's drain (shutdown) or the operator's cancel of this
/// run. A child of the daemon's one stop signal, so a shutdown reaches every run without a
/// message of its own.
#[derive(Clone)]
pub struct StopSignal {
    /// The daemon's stop signal.
    shutdown: CancellationToken,
    /// This run's: cancelled by the operator, or with `shutdown`.
    run: CancellationToken,
}

impl StopSignal {
    /// A run's stop under the daemon's `drain`.
    pub fn for_run(drain: &crate::runtime::drain::Drain) -> StopSignal {
        StopSignal { shutdown: drain.token().clone(), run: drain.token().child_token() }
    }

    /// A stop nobody asks for (a one-shot command, a set-up job).
    pub fn never() -> StopSignal {
        let shutdown = CancellationToken::new();
        StopSignal { run: shutdown.child_token(), shutdown }
    }

    /// The operator cancels this run (a shutdown, if it also comes, wins).
    pub fn cancel(&self) {
        self.run.cancel();
    }

    /// What is asked now.
    pub fn now(&self) -> Stop {
        if self.shutdown.is_cancelled() {
            Stop::Shutdown
        } else if self.run.is_cancelled() {
            Stop::Operator
        } else {
            Stop::No
        }
    }

    /// Resolves when a stop beyond `heard` is asked for, with what is asked: a run that already
    /// acted on the operator's cancel waits only for a shutdown (never, after a shutdown).
    pub async fn beyond(&self, heard: Stop) -> Stop {
        match heard {
            Stop::No => self.run.cancelled().await,
            Stop::Operator => self.shutdown.cancelled().await,
            Stop::Shutdown => std::future::pending().await,
        }
        self.now()
    }

    /// Resolves when any stop is asked for.
    pub async fn requested(&self) -> Stop {
        self.beyond(Stop::No).await
    }
}

/// Writes `data` as `path` through a temporary file and a rename, so a crash never leaves a
/// half-written proof under the proof's name. (The run's acceptance fsyncs it.)
pub(crate) fn write_whole(path: &Path, data: &[u8]) -> std::io::Result<u64> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)?;
    Ok(data.len() as u64)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::runtime::drain::Drain;

    async fn resolves(f: impl std::future::Future<Output = Stop>) -> Option<Stop> {
        tokio::time::timeout(Duration::from_millis(50), f).await.ok()
    }

    #[tokio::test]
    async fn a_cancel_stops_one_run_a_shutdown_stops_every_run_and_wins() {
        let drain = Drain::new();
        let (first, second) = (StopSignal::for_run(&drain), StopSignal::for_run(&drain));
        first.cancel();
        assert_eq!(first.now(), Stop::Operator);
        assert_eq!(second.now(), Stop::No, "an operator's cancel is one run's");
        assert_eq!(resolves(first.requested()).await, Some(Stop::Operator));
        // Once acted on, the cancel is not heard again: only a shutdown is.
        assert_eq!(resolves(first.beyond(Stop::Operator)).await, None);
        let third = StopSignal::for_run(&drain);
        assert_eq!(third.now(), Stop::No, "a run after a cancelled one starts unstopped");

        drain.signal();
        for run in [&first, &second, &third] {
            assert_eq!(run.now(), Stop::Shutdown, "a shutdown reaches every run and wins over a cancel");
        }
        assert_eq!(resolves(first.beyond(Stop::Operator)).await, Some(Stop::Shutdown));
        assert_eq!(resolves(second.requested()).await, Some(Stop::Shutdown));
        assert_eq!(resolves(second.beyond(Stop::Shutdown)).await, None, "nothing is beyond a shutdown");
        assert_eq!(StopSignal::for_run(&drain).now(), Stop::Shutdown, "a run started while draining is stopped");
        assert_eq!(StopSignal::never().now(), Stop::No);
    }
}
