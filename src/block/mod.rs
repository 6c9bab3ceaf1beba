//! What a block, its input and its proof are: bytes and rules, no network.

/// Which chain a block belongs to; the embedded mainnet/Hoodi/Sepolia configs and configs loaded
/// From a genesis file.
pub mod chainspec;
/// What a proof of one block must commit to (the guest's outputs), and whether a proof's committed
/// Outputs are this block's.
pub mod commitment;
/// Which ethrex and ziskos a guest ELF was built from, and whether its input layout is ours.
pub(crate) mod elf;
/// Block + witness JSON → validated, framed ZisK guest input on disk.
pub mod input;
/// A proof file read once (no symlink followed): the bytes verified are the bytes hashed, sealed
/// And sent.
pub(crate) mod proof_file;
/// Which blocks are targets, derived from ranges so none is skipped.
pub(crate) mod schedule;
/// Every proof checked with `zisk-verifier` before it is accepted and reported.
pub(crate) mod verify;
/// Cargo-zisk's flags, framing and outputs per version.
pub(crate) mod zisk;
