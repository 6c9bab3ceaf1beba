//! Whether the ledger can be written right now, and when to try again.
//!
//! A write can fail for a while without anything being wrong with the daemon: another process
//! holds the database's write lock (a backup, an operator's `sqlite3`), the disk is full, the
//! filesystem went read-only. Such a failure is kept here: the health surface shows it (the
//! daemon is not ready, and says why), and further writes are refused at once until a backoff
//! has passed, so that no actor spends its turns (and a runtime thread) waiting on the lock
//! again and again. The first write after the backoff tries the database for real; its success
//! clears the trouble.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::runtime::backoff::Backoff;

/// The wait after failed writes in a row: 0.5 s doubling, at most 10 s, so a lock released is noticed soon.
pub(super) const WRITE_BACKOFF: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));

/// What the health surface shows while writes fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteTrouble {
    /// When the first write of this run of failures failed.
    pub since: SystemTime,
    /// The last failure, as SQLite said it.
    pub error: String,
    /// Failed writes in a row.
    pub failures: u32,
}

#[derive(Debug)]
struct Failing {
    trouble: WriteTrouble,
    /// No real attempt before this instant.
    next_try: Instant,
}

#[derive(Debug, Default)]
pub(super) struct WriteGate {
    failing: Mutex<Option<Failing>>,
}

impl WriteGate {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Failing>> {
        self.failing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(last error, wait)` while a backoff runs: the caller refuses the write at once.
    pub(super) fn admit(&self, now: Instant) -> Result<(), (String, Duration)> {
        match &*self.lock() {
            Some(f) if now < f.next_try => Err((f.trouble.error.clone(), f.next_try - now)),
            _ => Ok(()),
        }
    }

    /// A real attempt failed for a reason that may pass. Returns whether this is the first
    /// failure of a run (worth one log line).
    pub(super) fn failed(&self, error: String, now: Instant) -> bool {
        let mut failing = self.lock();
        let first = failing.is_none();
        let failures = failing.as_ref().map_or(1, |f| f.trouble.failures.saturating_add(1));
        let since = failing.as_ref().map_or_else(SystemTime::now, |f| f.trouble.since);
        *failing = Some(Failing {
            trouble: WriteTrouble { since, error, failures },
            next_try: now + WRITE_BACKOFF.after(failures),
        });
        first
    }

    /// A write went through. Returns the trouble it ends, if any.
    pub(super) fn succeeded(&self) -> Option<WriteTrouble> {
        self.lock().take().map(|f| f.trouble)
    }

    pub(super) fn trouble(&self) -> Option<WriteTrouble> {
        self.lock().as_ref().map(|f| f.trouble.clone())
    }

    /// How long until the next real attempt (zero when writes are admitted).
    pub(super) fn retry_in(&self, now: Instant) -> Duration {
        self.lock().as_ref().map_or(Duration::ZERO, |f| f.next_try.saturating_duration_since(now))
    }
}

impl super::Ledger {
    /// Repeats a write that failed for a reason that may pass (`for_now`), at the ledger's
    /// backoff, until it goes through, fails for another reason, or `stopping` says to give up.
    /// For the records that must not be lost: a run's exit and verdict, a coordinator job's id,
    /// an EthProofs answer.
    pub async fn until_written<T, E>(
        &self,
        stopping: impl Fn() -> bool,
        for_now: impl Fn(&E) -> bool,
        mut write: impl FnMut() -> Result<T, E>,
    ) -> Result<T, E> {
        loop {
            match write() {
                Err(e) if for_now(&e) && !stopping() => {
                    tokio::time::sleep(self.write_retry_in().max(Duration::from_millis(100))).await;
                }
                result => return result,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        assert_eq!(WRITE_BACKOFF.after(1), Duration::from_millis(500));
        assert_eq!(WRITE_BACKOFF.after(2), Duration::from_secs(1));
        assert_eq!(WRITE_BACKOFF.after(4), Duration::from_secs(4));
        assert_eq!(WRITE_BACKOFF.after(6), Duration::from_secs(10));
        assert_eq!(WRITE_BACKOFF.after(u32::MAX), Duration::from_secs(10), "no overflow however long it fails");
    }

    #[test]
    fn writes_are_refused_during_the_backoff_and_a_success_ends_the_trouble() {
        let gate = WriteGate::default();
        let t0 = Instant::now();
        assert!(gate.admit(t0).is_ok());
        assert!(gate.failed("database is locked".into(), t0), "the first failure of a run");
        let (error, wait) = gate.admit(t0).unwrap_err();
        assert_eq!((error.as_str(), wait), ("database is locked", Duration::from_millis(500)));
        assert!(gate.admit(t0 + Duration::from_millis(500)).is_ok(), "one real attempt after the backoff");
        assert!(!gate.failed("disk is full".into(), t0 + Duration::from_millis(500)));
        assert_eq!(gate.retry_in(t0 + Duration::from_millis(500)), Duration::from_secs(1));
        let trouble = gate.trouble().unwrap();
        assert_eq!((trouble.error.as_str(), trouble.failures), ("disk is full", 2));
        assert_eq!(gate.succeeded(), Some(trouble));
        assert_eq!(gate.trouble(), None);
        assert!(gate.admit(t0).is_ok());
    }
}
