//! What the process does every few seconds whatever else happens, so that a daemon running for
//! months holds no more memory than its work needs.

use std::time::Duration;

/// How often.
const EVERY: Duration = Duration::from_secs(5);

/// Every few seconds until `stopped` resolves: the histograms' samples folded into their buckets,
/// and memory the allocator holds free given back to the system.
pub async fn keep(stopped: impl std::future::Future<Output = ()>) {
    let upkeep = async {
        loop {
            tokio::time::sleep(EVERY).await;
            super::telemetry::fold_samples();
            // Off the async workers: it walks the allocator's free lists.
            let _ = tokio::task::spawn_blocking(give_back_free_memory).await;
        }
    };
    tokio::select! {
        _ = stopped => {}
        _ = upkeep => {}
    }
}

/// Returns the allocator's free pages to the system. glibc keeps memory a thread freed in its
/// arena for reuse, and a burst (a day of blocks read for the scoreboard, a block's witness)
/// leaves holes it never hands back: RSS crept up block after block while the live heap stayed
/// a few megabytes (the cohort benchmark, README).
fn give_back_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it takes the arenas' locks itself.
    unsafe {
        libc::malloc_trim(0);
    }
}
