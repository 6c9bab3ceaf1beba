//! ethproofs-daemon: proves every 100th Ethereum block with ZisK and the ethrex guest program,
//! and reports each one to EthProofs.
//!
//! Module map (see ARCHITECTURE.md for the path of one block through them):
//!
//! - [`chainspec`]: which chain a block belongs to; the embedded mainnet/Hoodi/Sepolia configs
//!   and configs loaded from a genesis file.
//! - [`chain`]: the Ethereum node over JSON-RPC (chain id, head, block, witness).
//! - [`input`]: block + witness JSON → validated, framed ZisK guest input on disk.

pub mod chain;
pub mod chainspec;
pub mod input;

/// The ethrex crates the guest input layout is built with; the guest ELF must match.
pub const ETHREX_VERSION: &str = "31.0.0";
