//! The cargo-zisk backend: one `cargo-zisk prove` (or `execute`) per block, in its own process
//! group, with a timeout, judged from its exit and the proof it wrote
//! ([`crate::decide::judge::judge`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{Backend, BackendOutcome, Ended, Recorder, RunFuture, RunRequest, Stop, StopSignal, checked};
use crate::block::zisk::{self, Dialect, ProofLocation, ZiskVersion};
use crate::decide::judge::Exit;
use crate::decide::judge::{self, Action, FoundProof, NoProof, RunFacts, Verdict};
use crate::outside::process::{self, Ending, RunOutcome, RunSpec};
use crate::store::Stage;

/// How cargo-zisk is run.
#[derive(Debug, Clone)]
pub struct CargoZisk {
    pub program: PathBuf,
    /// What `--version` said at start-up (the status shows it).
    pub version: ZiskVersion,
    pub elf: PathBuf,
    pub dialect: Dialect,
    /// `ZISK_EXTRA_ARGS`, passed through.
    pub extra_args: Vec<String>,
    pub action: Action,
    pub timeout: Duration,
    pub kill_grace: Duration,
    /// `INPUT_CHECK=emulate`: the guest runs on the input before it is proved.
    pub emulate: Option<Emulator>,
}

/// How the guest is run on an input without proving.
#[derive(Debug, Clone)]
pub struct Emulator {
    /// `ziskemu`; `None`: `cargo-zisk execute`.
    pub ziskemu: Option<PathBuf>,
    pub timeout: Duration,
    /// How the guest commits its outputs: `ziskemu -o` writes them, and they are compared with
    /// the block's (`None`: not known, not compared).
    pub output_layout: Option<crate::block::commitment::OutputLayout>,
}

/// Where `ziskemu -o` writes the guest's public outputs, in the block's folder.
const EMULATOR_OUTPUTS: &str = "guest-outputs.bin";

/// The most a guest's outputs file can hold (64 u32 words); a longer file is not read whole.
const MAX_OUTPUTS_BYTES: u64 = 256;

/// The emulator to use: `ZISKEMU` as given, else `ziskemu` beside cargo-zisk or on `PATH`;
/// `None` when there is none (then `cargo-zisk execute` runs the guest).
pub fn find_ziskemu(setting: Option<&Path>, cargo_zisk: &Path) -> Option<PathBuf> {
    if let Some(p) = setting {
        return Some(p.to_path_buf());
    }
    let beside = cargo_zisk.parent().filter(|d| !d.as_os_str().is_empty()).map(|d| d.join("ziskemu"));
    beside.filter(|p| process::is_executable(p)).or_else(|| process::resolve_program(Path::new("ziskemu")))
}

impl Backend for CargoZisk {
    fn name(&self) -> &'static str {
        "cli"
    }

    fn describe(&self) -> String {
        self.version.to_string()
    }

    fn makes_proofs(&self) -> bool {
        self.action == Action::Prove
    }

    fn run<'a>(
        &'a self,
        req: &'a RunRequest,
        stop: StopSignal,
        rec: &'a dyn Recorder,
    ) -> RunFuture<'a, BackendOutcome> {
        Box::pin(self.run_block(req, stop, rec))
    }

    fn check<'a>(
        &'a self,
        req: &'a RunRequest,
        stop: StopSignal,
        rec: &'a dyn Recorder,
    ) -> RunFuture<'a, BackendOutcome> {
        Box::pin(async move {
            let Some(emulator) = &self.emulate else {
                return BackendOutcome::Ended(Ended::failed(Stage::InputCheck, "no emulator configured".into()));
            };
            let started = std::time::Instant::now();
            checked(started, self.check_input(emulator, req, stop, rec).await)
        })
    }
}

impl CargoZisk {
    async fn run_block(&self, req: &RunRequest, stop: StopSignal, rec: &dyn Recorder) -> BackendOutcome {
        if self.action == Action::Prove
            && let Some(emulator) = &self.emulate
        {
            match self.check_input(emulator, req, stop.clone(), rec).await {
                Ok(steps) => rec.checked(steps),
                Err(outcome) => return outcome,
            }
        }
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
            env: gpu_env(req),
        };
        tracing::info!(program = %self.program.display(), "prover started");
        let started_at = SystemTime::now();
        let outcome = self.run_process(&spec, stop.clone(), rec).await;
        let run = match outcome {
            Ok(run) => run,
            Err(e) => {
                return BackendOutcome::Ended(Ended::failed(
                    Stage::Spawn,
                    format!("cannot start {}: {e}", spec.program.display()),
                ));
            }
        };
        // A run killed while a stop was asked for (the supervisor giving up ends the group at
        // once) was stopped, not crashed: the block is not failed for it.
        let stopped = run.ending == Ending::Cancelled || (stop.now() != Stop::No && run.ending != Ending::Code(0));
        if stopped {
            if stop.now() == Stop::Operator {
                return BackendOutcome::Ended(Ended {
                    verdict: Verdict::Failed { stage: Stage::Cancelled, reason: "cancelled by the operator".into() },
                    exit: Some(Exit::Process(run.ending)),
                    proof: None,
                    last_lines: run.tail,
                });
            }
            return BackendOutcome::Stopped;
        }
        let (facts, proof) = self.gather(&run, invocation.proof.as_ref(), started_at);
        BackendOutcome::Ended(Ended {
            verdict: judge::judge(&facts),
            exit: Some(Exit::Process(run.ending)),
            proof,
            last_lines: run.tail,
        })
    }

    /// Runs `spec` in its own process group, recording it, until it ends, times out or is asked
    /// to stop; then ends what it left behind.
    async fn run_process(&self, spec: &RunSpec, stop: StopSignal, rec: &dyn Recorder) -> std::io::Result<RunOutcome> {
        let since = process::ticks_now();
        let stopped = async {
            stop.requested().await;
        };
        let outcome = process::run(spec, stopped, |pgid| rec.process(pgid)).await;
        // Helpers that left the process group and outlived it (ours as subreaper).
        let swept = process::sweep_orphans(since);
        if swept > 0 {
            tracing::warn!(swept, "ended helpers the prover left running");
        }
        outcome
    }

    /// Runs the guest on the input without proving (`ziskemu`, else `cargo-zisk execute`): its
    /// steps if it accepts it; a block it rejects fails at `input_check` with its own last lines.
    pub(super) async fn check_input(
        &self,
        emulator: &Emulator,
        req: &RunRequest,
        stop: StopSignal,
        rec: &dyn Recorder,
    ) -> Result<Option<u64>, BackendOutcome> {
        let outputs = emulator.ziskemu.as_ref().map(|_| req.block_dir.join(EMULATOR_OUTPUTS));
        let (program, args) = match (&emulator.ziskemu, &outputs) {
            (Some(ziskemu), Some(outputs)) => {
                let _ = std::fs::remove_file(outputs);
                let mut args: Vec<std::ffi::OsString> =
                    vec!["-e".into(), self.elf.clone().into(), "-i".into(), req.input.clone().into()];
                args.extend(["-o".into(), outputs.clone().into()]);
                (ziskemu.clone(), args)
            }
            _ => (self.program.clone(), zisk::execute(&self.elf, &req.input, &self.extra_args).args),
        };
        let spec = RunSpec { program, args, timeout: emulator.timeout, kill_grace: self.kill_grace, env: gpu_env(req) };
        tracing::info!(program = %spec.program.display(), "the guest checks the input");
        let run = match self.run_process(&spec, stop.clone(), rec).await {
            Ok(run) => run,
            Err(e) => {
                let reason = format!("cannot run {}: {e} (set ZISKEMU, or INPUT_CHECK=native)", spec.program.display());
                return Err(BackendOutcome::Ended(Ended::failed(Stage::InputCheck, reason)));
            }
        };
        let fail = |reason: String, last_lines: Vec<String>| {
            BackendOutcome::Ended(Ended {
                verdict: Verdict::Failed { stage: Stage::InputCheck, reason },
                exit: None,
                proof: None,
                last_lines,
            })
        };
        match run.ending {
            Ending::Code(0) => {
                if let Some(path) = &outputs
                    && emulator.output_layout.is_some()
                {
                    let committed = read_outputs(path).map_err(|e| fail(e.to_string(), run.tail.clone()))?;
                    super::outputs_are_the_block_s(emulator.output_layout, req, &committed)
                        .map_err(|e| fail(e.to_string(), run.tail.clone()))?;
                }
                Ok(zisk::parse_steps(&run.tail))
            }
            Ending::Cancelled if stop.now() == Stop::Operator => {
                Err(BackendOutcome::Ended(Ended::failed(Stage::Cancelled, "cancelled by the operator".into())))
            }
            Ending::Cancelled => Err(BackendOutcome::Stopped),
            Ending::TimedOut => Err(fail(
                format!(
                    "the guest did not finish checking the input within INPUT_CHECK_TIMEOUT_SECONDS = {}",
                    emulator.timeout.as_secs()
                ),
                run.tail,
            )),
            ending => {
                // stdout and stderr interleave: the guest's own complaint is the line that says so.
                let complaint = |l: &&String| {
                    let l = l.to_ascii_lowercase();
                    l.contains("panicked") || l.contains("error") || l.contains("invalid")
                };
                let said = run
                    .tail
                    .iter()
                    .rev()
                    .find(complaint)
                    .or_else(|| run.tail.iter().rev().find(|l| !l.trim().is_empty()))
                    .cloned()
                    .unwrap_or_default();
                Err(fail(format!("the guest rejected the input ({}): {said}", ending.describe()), run.tail))
            }
        }
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
            proof: Err(NoProof::NotLookedFor),
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
                Err(e) => facts.proof = Err(e.into()),
            }
        }
        (facts, written)
    }
}

/// The outputs file `ziskemu -o` wrote: at most 64 words, read without following a symlink.
fn read_outputs(path: &Path) -> Result<Vec<u8>, super::InputCheckError> {
    crate::block::proof_file::ProofFile::read(path, MAX_OUTPUTS_BYTES)
        .map(|f| f.bytes)
        .map_err(super::InputCheckError::NoOutputs)
}

/// Removes what an earlier run left at the proof location.
fn clear(location: &ProofLocation) {
    let _ = match location {
        ProofLocation::Dir(dir) => std::fs::remove_dir_all(dir),
        ProofLocation::File(file) => std::fs::remove_file(file),
    };
}

fn proof_file(path: &Path, started_at: SystemTime) -> Result<FoundProof, NoProof> {
    let unreadable =
        |e: std::io::Error| NoProof::Unreadable { path: path.display().to_string(), reason: e.to_string() };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    let modified = meta.modified().map_err(unreadable)?;
    Ok(FoundProof { bytes: meta.len(), written_by_this_run: modified >= started_at })
}

/// The run's own GPU, as the CUDA runtime takes it: a prover beside another never touches its GPU.
fn gpu_env(req: &RunRequest) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    req.gpu.iter().map(|g| ("CUDA_VISIBLE_DEVICES".into(), g.into())).collect()
}
