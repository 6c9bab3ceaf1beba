//! What every running part shares: the status board, metrics, the one stop signal, free disk space.

/// The span of one task a block starts (`block_span!(block, lane)`), in the daemon and in
/// `reproduce` alike. A root, never a child: in the daemon the task starts in an actor's turn,
/// and ractor runs that turn in the span of the message that woke it, often the task of the
/// block before; as its child, each block's span would hold every earlier one open (memory
/// growing with each block, lines naming them all).
macro_rules! block_span {
    ($($field:tt)*) => {
        tracing::info_span!(parent: None, "block", $($field)*)
    };
}
pub(crate) use block_span;

/// The one retry rhythm (`Backoff`: first, max, jitter).
pub(crate) mod backoff;
/// Free space of a filesystem.
pub(crate) mod disk;
/// The one stop signal every component reacts to, and the work a stop waits for.
pub(crate) mod drain;
/// The typed status the actors publish and the HTTP surface reads.
pub mod status;
/// Prometheus counters, histograms and gauges.
pub(crate) mod telemetry;
/// What the process does every few seconds whatever happens (histograms folded, free memory
/// given back).
pub(crate) mod upkeep;
