//! ethproofs-daemon: proves every 100th Ethereum block with ZisK and the ethrex guest program,
//! and reports each one to EthProofs.
//!
//! Module map (see ARCHITECTURE.md for the path of one block through them):
//!
//! - [`chainspec`]: which chain a block belongs to; the embedded mainnet/Hoodi/Sepolia configs
//!   and configs loaded from a genesis file.
//! - [`chain`]: the Ethereum node over JSON-RPC (chain id, head, block, witness).
//! - [`commitment`]: what a proof of one block must commit to (the guest's outputs), and whether
//!   a proof's committed outputs are this block's.
//! - [`input`]: block + witness JSON → validated, framed ZisK guest input on disk.
//! - [`store`]: the ledger: the block state machine and the EthProofs outbox (SQLite).
//! - [`decide`]: the daemon's decisions as plain functions (judging a run, the outbox policy,
//!   retention).
//! - [`reproduce`]: `reproduce --inputs DIR`: every kept input proved or checked again, with no node.
//! - [`retention`]: deleting old block data, by `decide::retention`'s rule.
//! - [`sanitize`]: outside text made safe for the log (one event, one line) and the public documents.
//! - [`instance`]: one daemon per output directory; recognising our own prover processes.
//! - [`schedule`]: which blocks are targets, derived from ranges so none is skipped.
//! - [`zisk`]: cargo-zisk's flags, framing and outputs per version.
//! - [`coordinator`]: ZisK's distributed prover over gRPC (the coordinator's 1.x API).
//! - [`backend`]: the prover backends (cargo-zisk, the coordinator, native re-execution) behind
//!   one seam; the Prover actor does not know which one runs.
//! - [`proof_file`]: a proof file read once (no symlink followed): the bytes verified are the
//!   bytes hashed, sealed and sent.
//! - [`verify`]: every proof checked with `zisk-verifier` before it is accepted and reported.
//! - [`elf`]: which ethrex and ziskos a guest ELF was built from, and whether its input layout is ours.
//! - [`process`]: running cargo-zisk in its own process group, with timeout and tail of output.
//! - [`ethproofs`]: the EthProofs API calls and what each answer means.
//! - [`notify`]: Slack webhook messages.
//! - [`config`]: environment / flag configuration, with secrets kept out of logs.
//! - [`startup`]: config → build (everything that can fail) → spawn; shutdown as a future.
//! - [`daemon`]: the supervised actors (InputGenerator, Prover, Reporter, Notifier).
//! - [`status`]: the typed status the actors publish and the HTTP surface reads.
//! - [`control`]: the typed commands the HTTP surface sends (ledger events; the ledger wakes the actors).
//! - [`surface`]: what the HTTP surface holds (status board, control, fixed facts).
//! - [`health`]: the health endpoints and `/metrics`.
//! - [`serve`]: the HTTP server loop (connection cap, header timeout, size limits).
//! - [`disk`]: free space of a filesystem.
//! - [`drain`]: the one stop signal every component reacts to, and the work a stop waits for.
//! - [`telemetry`]: Prometheus counters, histograms and gauges.
//! - [`devchain`]: an offline chain (ethrex EVM) served over JSON-RPC, for `run --dev` and fixtures.
//! - [`blocks`]: a page per block (`/blocks/{n}`): its timeline from the ledger and where the time went.
//! - [`dashboard`]: the live page at `/` and the JSON it polls.
//! - [`doctor`]: `ethproofs-daemon doctor`, a check of everything the daemon depends on.
//! - [`admin`]: the operator's API (prove, resubmit, pause, resume, blocks) and its CLI client.

pub mod admin;
pub mod backend;
pub mod blocks;
pub mod chain;
pub mod chainspec;
pub mod commitment;
pub mod config;
pub mod control;
pub mod coordinator;
pub mod daemon;
pub mod dashboard;
pub mod decide;
pub mod devchain;
pub mod disk;
pub mod doctor;
pub mod drain;
pub mod elf;
pub mod ethproofs;
pub mod health;
pub mod input;
pub mod instance;
pub mod notify;
pub mod process;
pub mod proof_file;
pub mod reproduce;
pub mod retention;
pub mod sanitize;
pub mod schedule;
pub mod serve;
pub mod startup;
pub mod status;
pub mod store;
pub mod surface;
pub mod telemetry;
pub mod verify;
pub mod zisk;

/// The ethrex crates the guest input layout is built with; the guest ELF must match.
pub const ETHREX_VERSION: &str = "31.0.0";
