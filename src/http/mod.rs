//! Every served surface. It reads the status board and the ledger and sends typed ledger
//! commands; it never sees an actor.

/// The operator's API (prove, resubmit, pause, resume, blocks) and its CLI client.
pub mod admin;
/// A page per block (`/blocks/{n}`): its timeline from the ledger and where the time went.
pub(crate) mod blocks;
/// The typed commands the HTTP surface sends (ledger events; the ledger wakes the actors).
pub(crate) mod control;
/// The live page at `/` and the JSON it polls.
pub(crate) mod dashboard;
/// The health endpoints and `/metrics`.
pub(crate) mod health;
/// The HTTP server loop (connection cap, header timeout, size limits).
pub(crate) mod serve;
/// What the HTTP surface holds (status board, control, fixed facts).
pub(crate) mod surface;
