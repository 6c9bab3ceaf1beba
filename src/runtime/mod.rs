//! What every running part shares: the status board, metrics, the one stop signal, free disk space.

/// The span of everything about one block (`block_span!(block, lane)`): each task a block
/// starts, in the daemon and in `reproduce` alike, and each actor turn's lines about it (an
/// actor's turn inherits no span: ractor's span propagation is off). A root, never a child: a
/// block's task often starts in a turn about another block (the Prover hears of block 10's end
/// and starts block 11); as its child, each block's span would hold every earlier one open
/// (memory growing with each block, lines naming them all).
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
