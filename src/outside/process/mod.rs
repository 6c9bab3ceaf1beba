//! Running an external program (cargo-zisk) so that it can always be stopped completely.
//!
//! The child is the leader of its own process group; timeouts, cancellation and even a dropped
//! future (an actor that died mid-run) end the whole group, TERM first and KILL after a grace
//! period, so no prover helper (MPI ranks, GPU workers) outlives the run. Output lines go to
//! tracing at debug level and the last ones are kept for error reports.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

mod orphans;
use orphans::Awaited;
#[cfg(test)]
pub(crate) use orphans::OWN_ORPHANS;
pub use orphans::sweep_orphans;

/// How many output lines are kept for error reports.
pub const TAIL_LINES: usize = 50;

#[derive(Debug, Clone)]
pub struct RunSpec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub timeout: Duration,
    pub kill_grace: Duration,
    /// Set for the prover alone (`CUDA_VISIBLE_DEVICES`: the GPU this run was given).
    pub env: Vec<(OsString, OsString)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Exited by itself with this code.
    Code(i32),
    /// Killed by a signal it did not get from us (a crash, the OOM killer).
    Signal(i32),
    /// Ran past the timeout and was terminated.
    TimedOut,
    /// Stopped because the daemon is shutting down.
    Cancelled,
}

impl Ending {
    pub fn describe(self) -> String {
        match self {
            Ending::Code(0) => "exited with code 0".into(),
            Ending::Code(101) => "panicked (exit code 101)".into(),
            Ending::Code(c) => format!("exited with code {c}"),
            Ending::Signal(9) => "was killed by SIGKILL (out of memory?)".into(),
            Ending::Signal(s) => format!("was killed by signal {s}"),
            Ending::TimedOut => "ran past its timeout and was terminated".into(),
            Ending::Cancelled => "was stopped for shutdown".into(),
        }
    }
}

impl Ending {
    /// How the ledger records it: `code 0`, `signal 9`, `timeout`, `cancelled`.
    pub fn record(self) -> String {
        match self {
            Ending::Code(c) => format!("code {c}"),
            Ending::Signal(s) => format!("signal {s}"),
            Ending::TimedOut => "timeout".into(),
            Ending::Cancelled => "cancelled".into(),
        }
    }

    /// Reads [`Ending::record`]'s text back; `None` for text it never writes.
    pub fn from_record(text: &str) -> Option<Ending> {
        match text.split_once(' ') {
            Some(("code", c)) => c.parse().ok().map(Ending::Code),
            Some(("signal", s)) => s.parse().ok().map(Ending::Signal),
            None if text == "timeout" => Some(Ending::TimedOut),
            None if text == "cancelled" => Some(Ending::Cancelled),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub ending: Ending,
    /// The last [`TAIL_LINES`] lines of stdout and stderr, interleaved as they arrived.
    pub tail: Vec<String>,
    pub elapsed: Duration,
}

/// Sends `signal` to the whole process group; a group already gone is not an error.
/// Whether `path` is a file this process could run: a regular file with an execute bit.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The file `program` names as a spawn would find it: a path as given, a bare name on `PATH`;
/// `None` when that is not an executable file.
pub fn resolve_program(program: &Path) -> Option<PathBuf> {
    let bare = program.components().count() == 1 && !program.is_absolute();
    if !bare {
        return is_executable(program).then(|| program.to_path_buf());
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join(program)).find(|p| is_executable(p))
}

pub fn signal_group(pgid: u32, signal: i32) {
    // SAFETY: killpg only sends a signal; a stale pgid yields ESRCH, which we ignore.
    unsafe {
        libc::killpg(pgid as libc::pid_t, signal);
    }
}

/// Kills the group when dropped, so an aborted run cannot leave processes behind.
struct GroupGuard(u32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        signal_group(self.0, libc::SIGKILL);
    }
}

/// Runs the program to completion, timeout or cancellation (`cancel` resolving).
/// `started` receives the process group id as soon as the child exists.
pub async fn run(
    spec: &RunSpec,
    cancel: impl Future<Output = ()>,
    started: impl FnOnce(u32),
) -> std::io::Result<RunOutcome> {
    tokio::pin!(cancel);
    let begin = Instant::now();
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // If the daemon itself is killed (SIGKILL, OOM), the kernel ends the prover too instead of
    // leaving it holding the GPU. Tokio's worker threads live as long as the runtime, so the
    // "parent thread exited" trigger of PDEATHSIG does not fire early.
    // SAFETY: prctl is async-signal-safe and touches only the child being set up.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let (mut child, _ours) = Awaited::spawn(&mut command)?;
    let pgid = child.id().unwrap_or(0);
    let guard = GroupGuard(pgid);
    started(pgid);

    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    if let Some(out) = child.stdout.take() {
        forward_lines(out, tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        forward_lines(err, tx.clone());
    }
    drop(tx);

    let mut tail = VecDeque::with_capacity(TAIL_LINES);
    let mut keep = |line: String| {
        tracing::debug!(target: "cargo_zisk", "{line}");
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    };

    let deadline = tokio::time::Instant::now() + spec.timeout;
    let mut forced = None;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            Some(line) = rx.recv() => keep(line),
            _ = tokio::time::sleep_until(deadline), if forced.is_none() => forced = Some(Ending::TimedOut),
            _ = &mut cancel, if forced.is_none() => forced = Some(Ending::Cancelled),
        }
        if forced.is_some() {
            signal_group(pgid, libc::SIGTERM);
            let grace_end = tokio::time::Instant::now() + spec.kill_grace;
            let status = loop {
                tokio::select! {
                    status = child.wait() => break Some(status?),
                    Some(line) = rx.recv() => keep(line),
                    _ = tokio::time::sleep_until(grace_end) => break None,
                }
            };
            match status {
                Some(s) => break s,
                None => {
                    signal_group(pgid, libc::SIGKILL);
                    break child.wait().await?;
                }
            }
        }
    };
    // Whatever the leader did, nothing of its group may outlive the run.
    drop(guard);
    // Pipes close once every holder is dead; don't wait forever on a straggler.
    let drain_end = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(line)) = tokio::time::timeout_at(drain_end, rx.recv()).await {
        keep(line);
    }

    use std::os::unix::process::ExitStatusExt;
    let ending = match forced {
        Some(f) => f,
        None => match (status.code(), status.signal()) {
            (Some(c), _) => Ending::Code(c),
            (None, Some(s)) => Ending::Signal(s),
            (None, None) => Ending::Code(-1),
        },
    };
    Ok(RunOutcome { ending, tail: tail.into_iter().collect(), elapsed: begin.elapsed() })
}

/// Longest output line kept; the rest of a longer line is dropped (a line without a newline
/// must not grow memory without bound).
pub const MAX_LINE_BYTES: usize = 4096;

/// Forwards the child's output line by line. Bytes that are not UTF-8 are replaced, never a
/// reason to stop reading: a reader that stops would leave the child to die of SIGPIPE.
fn forward_lines<R: tokio::io::AsyncRead + Unpin + Send + 'static>(reader: R, tx: mpsc::UnboundedSender<String>) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader);
        let mut line: Vec<u8> = Vec::with_capacity(256);
        let mut overflowed = false;
        loop {
            let chunk = match reader.fill_buf().await {
                Ok([]) | Err(_) => break,
                Ok(chunk) => chunk,
            };
            let (part, newline) = match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => (&chunk[..i], Some(i + 1)),
                None => (chunk, None),
            };
            let room = MAX_LINE_BYTES.saturating_sub(line.len());
            line.extend_from_slice(&part[..part.len().min(room)]);
            overflowed |= part.len() > room;
            let used = newline.unwrap_or(chunk.len());
            reader.consume(used);
            if newline.is_some() {
                let mut text = String::from_utf8_lossy(&line).trim_end_matches('\r').to_string();
                if std::mem::take(&mut overflowed) {
                    text.push_str(" …(line cut)");
                }
                line.clear();
                if tx.send(text).is_err() {
                    break;
                }
            }
        }
        if !line.is_empty() {
            let _ = tx.send(String::from_utf8_lossy(&line).to_string());
        }
    });
}

/// Makes this process the "subreaper" of its descendants: a helper the prover started that
/// outlives the prover (even one that left its process group) becomes our child instead of
/// init's, so [`sweep_orphans`] can find and end it.
pub fn become_subreaper() {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER only sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
    }
}

/// What `/proc/<pid>/stat` says about a process: the one parser of it in the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// `R`, `S`, `Z` (zombie: dead, not yet reaped), …
    pub state: char,
    pub ppid: u32,
    pub pgrp: u32,
    /// Start time in clock ticks since boot.
    pub start_ticks: u64,
}

impl ProcStat {
    /// Running, or at least not dead: a zombie holds nothing but its pid.
    pub fn alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X')
    }
}

pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is parenthesised and may contain anything; fields follow the last ')':
    // state(3) ppid(4) pgrp(5) … starttime(22).
    let fields: Vec<&str> = text.get(text.rfind(')')? + 2..)?.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

/// Every process on the machine with what `/proc` says of it.
pub fn all_processes() -> Vec<(u32, ProcStat)> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| proc_stat(pid).map(|st| (pid, st)))
        .collect()
}

/// Start time of this process's clock, in ticks since boot (comparable with `/proc` start times).
pub fn ticks_now() -> u64 {
    let uptime = std::fs::read_to_string("/proc/uptime").unwrap_or_default();
    let secs: f64 = uptime.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (secs * hz) as u64
}

/// Whether a process with this pid still runs. A zombie (dead, not yet reaped by a parent that
/// may be a container's init) does not count: it holds no resources but its pid.
pub fn process_alive(pid: i32) -> bool {
    u32::try_from(pid).ok().and_then(proc_stat).is_some_and(|st| st.alive())
}

#[cfg(test)]
mod tests;
