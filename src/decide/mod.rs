//! The daemon's decisions, as plain functions of plain data: the actors gather the facts, call
//! these, and record the answer in the ledger. Each is unit-tested here, without actors, files
//! or network.
//!
//! - [`judge`]: what a prover run's ending means (proved, executed, or failed with a stage).
//! - [`outbox`]: which EthProofs call goes next, and what an answer means for it.
//! - [`retention`]: which block directories may be deleted.
//! - [`recovery`]: what becomes of the runs a predecessor left behind.
//! - [`head`]: what a head answer from the node leads to (the head rule).
//! - [`cohort`]: EthProofs' cohort rules as the daemon's own scoreboard.
//! - [`latency`]: where one block's time went, from its timestamp to EthProofs accepting it.
//!
//! Scheduling (which blocks are targets, which ranges are given up) is `crate::block::schedule`.

pub mod cohort;
pub mod head;
pub mod judge;
pub mod latency;
pub mod outbox;
pub mod recovery;
pub mod retention;
