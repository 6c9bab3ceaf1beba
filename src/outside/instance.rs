//! One daemon per `OUTPUT_DIR` (and per ledger), and recognising our own prover processes.
//!
//! The lock is an `flock` on `OUTPUT_DIR/.lock`, taken before anything else is touched; the
//! kernel drops it when the process dies, however it dies, so a stale lock file never blocks a
//! start. A recorded prover process group is signalled only after its leader's start time and
//! the boot id match what was recorded: a pid reused by an unrelated program is never killed.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::outside::process::{all_processes, proc_stat};
use crate::store::ProcessRecord;

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("another ethproofs-daemon (pid {pid}) is running on {path}; stop it first, or use another OUTPUT_DIR")]
    Held { path: String, pid: String },
    #[error("cannot take the instance lock {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Held for the life of the process; dropping it releases the lock.
#[derive(Debug)]
pub struct InstanceLock {
    _files: Vec<File>,
}

/// Locks `OUTPUT_DIR/.lock` (and `<ledger>.lock` when the ledger lives elsewhere).
pub fn lock(output_dir: &Path, ledger: &Path) -> Result<InstanceLock, InstanceError> {
    let mut paths = vec![output_dir.join(".lock")];
    if ledger.parent() != Some(output_dir) {
        let mut name = ledger.as_os_str().to_owned();
        name.push(".lock");
        paths.push(PathBuf::from(name));
    }
    let mut files = Vec::new();
    for path in paths {
        files.push(lock_file(&path)?);
    }
    Ok(InstanceLock { _files: files })
}

fn lock_file(path: &Path) -> Result<File, InstanceError> {
    let io = |source| InstanceError::Io { path: path.display().to_string(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file =
        std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
    // SAFETY: flock on a descriptor we own; it only takes an advisory lock.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        let pid = pid.trim().chars().take(20).collect::<String>();
        return Err(InstanceError::Held {
            path: path.display().to_string(),
            pid: if pid.is_empty() { "unknown".into() } else { pid },
        });
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(file)
}

/// Whether a running daemon holds `dir` as its `OUTPUT_DIR` (its `.lock` is locked now). Asks
/// without taking the lock for longer than the question.
pub fn held(dir: &Path) -> bool {
    let Ok(file) = File::open(dir.join(".lock")) else { return false };
    // SAFETY: flock on a descriptor we own; a shared, non-blocking try, released on drop.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) != 0 }
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// What identifies the process `pid` now, for the ledger.
pub fn identify(pid: u32) -> Option<ProcessRecord> {
    let start_ticks = proc_stat(pid)?.start_ticks;
    Some(ProcessRecord { pgid: pid, start_ticks, boot_id: boot_id() })
}

/// Live (non-zombie) processes of group `pgid` that started no earlier than `since` ticks.
fn members(pgid: u32, since: u64) -> Vec<u32> {
    all_processes()
        .into_iter()
        .filter(|(_, st)| st.pgrp == pgid && st.start_ticks >= since && st.alive())
        .map(|(pid, _)| pid)
        .collect()
}

/// Ends what is left of a recorded prover run, if it is still ours; returns how many processes
/// were signalled. The leader may be dead already (PDEATHSIG) while its children live on.
pub fn reap(record: &ProcessRecord) -> usize {
    if record.pgid <= 1 || record.boot_id.is_empty() || record.boot_id != boot_id() {
        return 0;
    }
    if let Some(leader) = proc_stat(record.pgid)
        && leader.start_ticks != record.start_ticks
    {
        // The leader's pid belongs to another program now: not ours.
        return 0;
    }
    // A group id cannot be reused while any member lives, so members started since the run
    // began are the run's own.
    let pids = members(record.pgid, record.start_ticks);
    for pid in &pids {
        // SAFETY: kill only sends a signal to a pid verified above.
        unsafe {
            libc::kill(*pid as libc::pid_t, libc::SIGKILL);
        }
    }
    pids.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_instance_is_refused_naming_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path(), &dir.path().join("ethproofs-daemon.db")).unwrap();
        let err = lock(dir.path(), &dir.path().join("ethproofs-daemon.db")).unwrap_err().to_string();
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(held);
        lock(dir.path(), &dir.path().join("ethproofs-daemon.db")).expect("free again once released");
    }

    #[test]
    fn a_ledger_elsewhere_is_locked_too() {
        let (a, b, shared) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let ledger = shared.path().join("l.db");
        let _held = lock(a.path(), &ledger).unwrap();
        assert!(matches!(lock(b.path(), &ledger), Err(InstanceError::Held { .. })));
    }

    #[test]
    fn a_stale_record_kills_nothing() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let mut record = identify(child.id()).expect("a live process");
        record.start_ticks += 1;
        assert_eq!(reap(&record), 0, "start time differs: not ours");
        let other_boot = ProcessRecord { boot_id: "another-boot".into(), ..identify(child.id()).unwrap() };
        assert_eq!(reap(&other_boot), 0);
        assert!(child.try_wait().unwrap().is_none(), "still running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_recorded_group_is_ended_even_after_its_leader_died() {
        use std::os::unix::process::CommandExt;
        let _own = crate::outside::process::OWN_ORPHANS.write().unwrap_or_else(|p| p.into_inner());
        // A leader that starts a long-lived child in its own group, then exits.
        let mut leader = std::process::Command::new("sh")
            .args(["-c", "sleep 30 >/dev/null 2>&1 & echo $!; sleep 0.3"])
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let record = identify(leader.id()).unwrap();
        let mut out = String::new();
        leader.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        let orphan: u32 = out.trim().parse().unwrap();
        leader.wait().unwrap();
        assert!(crate::outside::process::process_alive(orphan as i32));
        assert_eq!(reap(&record), 1);
        for _ in 0..100 {
            if !crate::outside::process::process_alive(orphan as i32) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("the orphan survived");
    }
}
