//! ethproofs-daemon: proves Ethereum blocks with ZisK and the ethrex guest program, and reports
//! each one to EthProofs.
//!
//! Module map, by layer, lowest first: a module uses only modules of a lower layer
//! (`tests/architecture.rs` checks it; ARCHITECTURE.md follows one block through them).
//!
//! 1. [`runtime`]: what every running part shares: the status board, metrics, the one stop
//!    signal, free disk space, the one retry rhythm.
//! 2. What stands alone: bytes, rules and the ledger.
//!    - [`block`]: what a block, its input and its proof are — the commitment a proof must make,
//!      chain configs, the guest input (build, validate, frame, write), the schedule of targets,
//!      cargo-zisk's dialects, guest ELFs, reading and verifying a proof.
//!    - [`store`]: the ledger (SQLite): the block state machine and the EthProofs outbox.
//! 3. [`config`]: the settings, from the environment and flags, secrets kept out of logs.
//! 4. [`outside`]: every party outside the process, one client each — the node, EthProofs,
//!    Slack, ZisK's coordinator, child processes, other daemons (the instance lock), our own dev
//!    chain — and outside text made safe.
//! 5. [`decide`]: the daemon's decisions as plain functions (judging a run, the outbox policy,
//!    recovery, retention, the head rule, the cohort score, latency).
//! 6. [`backend`]: what proves a block — cargo-zisk, the coordinator, native re-execution —
//!    behind one seam.
//! 7. [`daemon`]: the supervised actors, each folder holding its own tasks; [`http`]: every
//!    served surface (health, metrics, the dashboard, the block pages, the admin API). Neither
//!    uses the other: actors publish status and the surface sends ledger commands.
//! 8. [`startup`]: settings → build (everything that can fail) → spawn; shutdown as a future.
//! 9. [`commands`]: what the one-shot commands need of the library's insides (doctor's checks,
//!    reproduce's replay). The binary (`main.rs`, `cli/`, one file per command) sits above all.

pub(crate) mod backend;
pub mod block;
pub mod commands;
pub mod config;
pub(crate) mod daemon;
pub(crate) mod decide;
pub mod http;
pub mod outside;
pub mod runtime;
pub mod startup;
pub mod store;

/// The ethrex crates the guest input layout is built with; the guest ELF must match.
pub const ETHREX_VERSION: &str = "31.0.0";
