//! What every running part shares: the status board, metrics, the one stop signal, free disk space.

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
