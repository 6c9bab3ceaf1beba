//! Every party outside the process, one client each, and outside text made safe.

/// The Ethereum node over JSON-RPC (chain id, head, block, witness).
pub mod chain;
/// ZisK's distributed prover over gRPC (the coordinator's 1.x API).
pub(crate) mod coordinator;
/// An offline chain (ethrex EVM) served over JSON-RPC, for `run --dev` and fixtures.
pub mod devchain;
/// The EthProofs API calls and what each answer means.
pub mod ethproofs;
/// One daemon per output directory; recognising our own prover processes.
pub mod instance;
/// Slack webhook messages.
pub(crate) mod notify;
/// Running cargo-zisk in its own process group, with timeout and tail of output.
pub mod process;
/// Outside text made safe for the log (one event, one line) and the public documents.
pub mod sanitize;
