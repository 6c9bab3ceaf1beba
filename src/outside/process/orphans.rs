//! The orphan sweep: helpers a run left behind, found as our children (we are their subreaper)
//! and ended, and the list of processes runs are still waiting for, which the sweep spares.

use std::time::Duration;

use tokio::process::Command;

use super::{ProcStat, all_processes};

/// The processes [`super::run`] started and is still waiting for: never swept as orphans, whichever
/// run ends (several runs may be in flight).
pub(super) struct Awaited(u32);

static RUNNING: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

impl Awaited {
    /// Spawns and registers in one step under the list's lock: a sweep (which holds the same
    /// lock while it looks) never sees a run's process before it is on the list. With several
    /// runs in flight, one run's end would otherwise take another's process, started a moment
    /// before, for an orphan and kill it.
    pub(super) fn spawn(command: &mut Command) -> std::io::Result<(tokio::process::Child, Awaited)> {
        let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
        let child = command.spawn()?;
        let pid = child.id().unwrap_or(0);
        running.push(pid);
        Ok((child, Awaited(pid)))
    }
}

impl Drop for Awaited {
    fn drop(&mut self) {
        RUNNING.lock().unwrap_or_else(|p| p.into_inner()).retain(|p| *p != self.0);
    }
}

/// Held (written) by a test that makes orphans of its own on purpose, so that a sweep after a
/// run in a test beside it does not end them first (a sweep holds it for reading).
#[cfg(test)]
pub(crate) static OWN_ORPHANS: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Ends and reaps every child of ours started at or after `since` (clock ticks) outside our own
/// process group: after a prover run (its leader already reaped), those are the
/// helpers it left behind, ours by [`become_subreaper`]. The daemon's other children (a
/// `--version` check, `nvidia-smi`) run in its own group and are left alone. Processes [`run`] is still
/// waiting for are not orphans and are left alone. Returns how many were ended.
pub fn sweep_orphans(since: u64) -> usize {
    #[cfg(test)]
    let _beside = OWN_ORPHANS.read().unwrap_or_else(|p| p.into_inner());
    let me = std::process::id();
    // SAFETY: getpgrp has no preconditions.
    let my_group = u32::try_from(unsafe { libc::getpgrp() }).unwrap_or(0);
    let orphans: Vec<(u32, ProcStat)> = {
        // Held while looking and signalling: no run can start a process meanwhile that the scan
        // would see before it is on the list (`Awaited::spawn`).
        let running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
        let orphans: Vec<(u32, ProcStat)> = all_processes()
            .into_iter()
            .filter(|(_, st)| st.ppid == me && st.pgrp != my_group && st.start_ticks >= since)
            // Another run's own process is no orphan: only what a run left behind is.
            .filter(|(pid, _)| !running.contains(pid))
            .collect();
        for &(pid, st) in &orphans {
            if st.alive() {
                // SAFETY: a signal to a direct child of ours that tokio does not track.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        }
        orphans
    };
    for &(pid, _) in &orphans {
        // SAFETY: a reap of a direct child of ours that tokio does not track.
        unsafe {
            let mut status = 0;
            for _ in 0..100 {
                if libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) != 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    orphans.len()
}
