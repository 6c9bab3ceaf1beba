//! The one stop signal. Start-up makes one [`Drain`]; a shutdown (a signal, or the supervisor
//! giving up) fires it once, and every component reacts to that same signal: the HTTP servers
//! drain their connections, the InputGenerator and the Reporter start nothing new, a prover run
//! stops (its [`crate::backend::StopSignal`] is a child of this one), and the supervisor waits
//! until the work that holds the drain open ([`Hold`]: a prover run, an EthProofs call) has
//! recorded its end, then stops the actors. No component has a stop message of its own.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The daemon's stop signal and the count of work that must end before the actors stop.
#[derive(Clone, Default)]
pub struct Drain {
    /// Fired once, by whoever stops the daemon.
    signal: CancellationToken,
    /// How many [`Hold`]s are alive: work whose end must be recorded before the actors stop.
    busy: Arc<watch::Sender<usize>>,
}

/// A piece of work the stop waits for; released when dropped (its task ended or was aborted).
pub struct Hold(Arc<watch::Sender<usize>>);

impl Drop for Hold {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Drain {
    pub fn new() -> Drain {
        Drain::default()
    }

    /// Begins the stop. Firing it again does nothing.
    pub fn signal(&self) {
        self.signal.cancel();
    }

    pub fn is_draining(&self) -> bool {
        self.signal.is_cancelled()
    }

    /// Resolves once the stop has begun.
    pub async fn signalled(&self) {
        self.signal.cancelled().await;
    }

    /// The token itself, for a run's stop signal (which also carries the operator's cancel).
    pub fn token(&self) -> &CancellationToken {
        &self.signal
    }

    /// Marks work the stop must wait for, until the returned [`Hold`] is dropped.
    pub fn hold(&self) -> Hold {
        self.busy.send_modify(|n| *n = n.saturating_add(1));
        Hold(self.busy.clone())
    }

    /// Resolves when no [`Hold`] is alive.
    pub async fn settled(&self) {
        let mut busy = self.busy.subscribe();
        let _ = busy.wait_for(|n| *n == 0).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// On a paused clock: "an hour" of waiting for held work takes no time.
    #[tokio::test(start_paused = true)]
    async fn the_stop_waits_for_held_work_however_long_and_not_for_released_work() {
        let drain = Drain::new();
        let (first, second) = (drain.hold(), drain.hold());
        drop(first);
        assert!(!drain.is_draining());
        drain.signal();
        assert!(drain.is_draining());
        drain.signalled().await;
        let waiting = tokio::time::timeout(Duration::from_secs(3600), drain.settled()).await;
        assert!(waiting.is_err(), "one hold is still alive after an hour");
        let released = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(90)).await;
            drop(second);
        });
        let start = tokio::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(3600), drain.settled())
            .await
            .expect("settled once every hold is gone");
        assert_eq!(start.elapsed().as_secs(), 90, "settled when the last hold went, not before, not after");
        released.await.unwrap();
    }
}
