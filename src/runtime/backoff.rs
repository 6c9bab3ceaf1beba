//! The one retry rhythm: every loop that waits before trying again (a node fetch, a ledger
//! write, an EthProofs call, a coordinator submission, a proof write, an actor's restart) asks a
//! [`Backoff`] how long. (What may be retried, each error type says with its `is_transient`.)

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A doubling wait: `first` after the first failure, twice as long after each next one, never
/// more than `max`, plus up to `jitter` so that daemons sharing a key do not retry in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after one failure.
    pub first: Duration,
    /// The longest wait, however many failures.
    pub max: Duration,
    /// The most a wait is spread by (added, never subtracted: a wait is never shorter than the rule).
    pub jitter: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { first, max, jitter: Duration::ZERO }
    }

    /// The same wait after every failure: for waits on something that does not get better by
    /// being asked less often (our own jobs finishing, a reconnect).
    pub const fn steady(every: Duration) -> Backoff {
        Backoff::new(every, every)
    }

    pub const fn with_jitter(self, jitter: Duration) -> Backoff {
        Backoff { jitter, ..self }
    }

    /// The wait after `failures` failures in a row (0 and 1 both give `first`), without jitter;
    /// overflow-safe for any count.
    pub fn after(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.first.saturating_mul(1u32 << doublings).min(self.max)
    }

    /// [`Backoff::after`] plus the share of the jitter `draw` (0..1000) names: a plain function
    /// for decisions that take their draw as data.
    pub fn at(&self, failures: u32, draw: u32) -> Duration {
        self.after(failures).saturating_add(self.spread(draw))
    }

    /// The jitter for a draw in 0..1000 (a thousandth of `jitter` each).
    fn spread(&self, draw: u32) -> Duration {
        self.jitter.mul_f64(f64::from(draw.min(999)) / 1000.0)
    }
}

/// A number in 0..1000 from the clock's sub-second part: enough to spread retries, with no
/// generator to seed.
pub fn draw() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_micros() % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_from_the_first_up_to_the_cap_for_any_count() {
        let b = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        let waits: Vec<u128> = (0..8).map(|n| b.after(n).as_millis()).collect();
        assert_eq!(waits, [500, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
        assert_eq!(b.after(u32::MAX), Duration::from_secs(10), "no overflow however long it fails");
        let steady = Backoff::steady(Duration::from_secs(15));
        assert!((1..40).all(|n| steady.after(n) == Duration::from_secs(15)), "a steady rhythm never grows");
        let huge = Backoff::new(Duration::MAX, Duration::MAX);
        assert_eq!(huge.after(40), Duration::MAX, "saturates, never wraps");
    }

    #[test]
    fn jitter_only_lengthens_a_wait_and_by_at_most_its_bound() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8)).with_jitter(Duration::from_millis(500));
        assert_eq!(b.spread(0), Duration::ZERO);
        assert_eq!(b.spread(500), Duration::from_millis(250));
        assert!(b.spread(u32::MAX) < Duration::from_millis(500));
        for n in 1..6 {
            let w = b.at(n, draw());
            assert!(w >= b.after(n) && w < b.after(n) + Duration::from_millis(500), "{n}: {w:?}");
        }
        assert_eq!(b.at(3, 999), Duration::from_secs(4) + Duration::from_micros(499_500));
        let none = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        assert_eq!(none.at(3, 999), Duration::from_secs(4), "no jitter, no spread");
    }
}
