//! Turning what a node returns for a block into the bytes the ethrex ZisK guest reads.
//!
//! The pipeline is five plain functions, each a phase the benchmark measures on its own:
//! [`parse`] (JSON text → RPC-shaped structs), [`RawInputs::convert`] (→ ethrex `Block` and
//! `ExecutionWitness`, with every hash the node claimed recomputed), [`program::serialize`]
//! (rkyv), [`validate::validate`] (stateless re-execution of the serialized bytes) and
//! [`write::write_atomic`] (framed, temp file + rename). [`generate`] runs them in order and
//! writes nothing unless every earlier phase succeeded.
//!
//! Architecture invariant: this module never does network I/O; `chain` fetches, `input` builds.

mod block;
pub(crate) mod envelope;
mod framing;
mod hex;
pub use hex::HexError;
pub mod program;
mod transaction;
pub mod validate;
mod write;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::{Duration, Instant};

use ethrex_common::types::ChainConfig;
use ethrex_common::types::block_execution_witness::{RpcExecutionWitness, decode_witness_headers};
use ethrex_common::types::{Block, Transaction};
use ethrex_common::{Bytes, H256, U256};
use ethrex_crypto::NativeCrypto;
use rkyv::util::AlignedVec;
use serde::Deserialize;

use crate::block::commitment::BlockOutputs;

pub use block::ParsedBlock;
pub use framing::Framing;
pub use program::ProgramInput;
pub use validate::{ValidationError, ValidationReport};
pub use write::WrittenInput;

/// Why no input could be built. Every variant names the block, field or check at fault.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{what} JSON is not valid UTF-8")]
    NotUtf8 { what: &'static str },
    #[error("malformed {what} JSON at `{path}`: {message}")]
    Malformed { what: &'static str, path: String, message: String },
    #[error("the node answered {method} with JSON-RPC error {code}: {message}")]
    Rpc { method: &'static str, code: i64, message: String },
    #[error("the node answered {method} with a null result: the block or its witness is not available")]
    NullResult { method: &'static str },
    #[error(
        "block {block}: block hash mismatch: the header fields hash to {computed:#x}, the JSON `hash` is {json:#x}"
    )]
    BlockHashMismatch { block: u64, computed: H256, json: H256 },
    #[error(
        "block {block}: transaction {index} hash mismatch: its fields hash to {computed:#x}, the JSON `hash` is {json:#x}"
    )]
    TransactionHashMismatch { block: u64, index: usize, computed: H256, json: H256 },
    #[error("block {block}: transaction {index} ({hash:#x}): {reason}")]
    TransactionSender { block: u64, index: usize, hash: H256, reason: String },
    #[error(
        "block {block}: transaction {index} is for chain id {tx_chain_id}, but the chain config is for chain id {config_chain_id} (wrong chain?)"
    )]
    WrongChain { block: u64, index: usize, tx_chain_id: u64, config_chain_id: u64 },
    #[error("block {block} cannot be proved: {reason}")]
    Unsupported { block: u64, reason: String },
    #[error("witness for block {block}: {reason}")]
    Witness { block: u64, reason: String },
    #[error("asked the node for block {asked}, it answered block {answered}")]
    WrongBlock { asked: u64, answered: u64 },
    #[error("rkyv serialization failed: {0}")]
    Serialize(String),
    #[error("native validation of block {block} failed: {source}")]
    Validation { block: u64, source: ValidationError },
    #[error("cannot write input file {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

/// The witness object of `debug_executionWitness`, decoded straight into bytes.
#[derive(Deserialize)]
struct WitnessJson {
    #[serde(with = "hex::bytes_list")]
    state: Vec<Bytes>,
    #[serde(default, with = "hex::bytes_list")]
    keys: Vec<Bytes>,
    #[serde(with = "hex::bytes_list")]
    codes: Vec<Bytes>,
    #[serde(with = "hex::bytes_list")]
    headers: Vec<Bytes>,
}

/// Phase 1 output: both responses parsed, nothing checked yet beyond their shape.
pub struct RawInputs {
    block: block::RpcBlock,
    witness: RpcExecutionWitness,
}

/// Facts about the block that the CLI, the ledger and the reports need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSummary {
    pub number: u64,
    pub hash: H256,
    pub parent_hash: H256,
    pub timestamp: u64,
    pub tx_count: usize,
    pub gas_used: u64,
    /// The state root the block executes from: its parent header's (from the witness).
    pub parent_state_root: H256,
    /// The header's `stateRoot`.
    pub state_root: H256,
}

impl BlockSummary {
    fn of(block: &Block, hash: H256, parent_state_root: H256) -> BlockSummary {
        BlockSummary {
            number: block.header.number,
            hash,
            parent_hash: block.header.parent_hash,
            timestamp: block.header.timestamp,
            tx_count: block.body.transactions.len(),
            gas_used: block.header.gas_used,
            parent_state_root,
            state_root: block.header.state_root,
        }
    }

    /// What a proof of this block must commit to, on the chain `chain_id`.
    pub fn outputs(&self, chain_id: u64) -> BlockOutputs {
        BlockOutputs::new(
            self.parent_state_root.0,
            self.state_root.0,
            self.hash.0,
            chain_id,
            u64::try_from(self.tx_count).unwrap_or(u64::MAX),
        )
    }
}

fn utf8<'a>(bytes: &'a [u8], what: &'static str) -> Result<&'a str, InputError> {
    std::str::from_utf8(bytes).map_err(|_| InputError::NotUtf8 { what })
}

/// Phase 1: parses the two responses, each either bare or inside its JSON-RPC envelope.
pub fn parse(block_json: &[u8], witness_json: &[u8]) -> Result<RawInputs, InputError> {
    const BLOCK: &str = "eth_getBlockByNumber";
    const WITNESS: &str = "debug_executionWitness";
    let block_text = envelope::payload(utf8(block_json, BLOCK)?, BLOCK)?;
    let block = block::parse_rpc_block(block_text)?;
    let witness_text = envelope::payload(utf8(witness_json, WITNESS)?, WITNESS)?;
    let mut de = serde_json::Deserializer::from_str(witness_text);
    let w: WitnessJson = serde_path_to_error::deserialize(&mut de).map_err(|e| InputError::Malformed {
        what: WITNESS,
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })?;
    let witness = RpcExecutionWitness { state: w.state, keys: w.keys, codes: w.codes, headers: w.headers };
    Ok(RawInputs { block, witness })
}

impl RawInputs {
    pub fn block_number(&self) -> u64 {
        self.block.number()
    }

    /// Phase 2: builds ethrex's types, checking the block and transaction hashes, the chain id of
    /// every transaction, and that the witness holds the block's parent header.
    pub fn convert(self, chain: &ChainConfig) -> Result<(ProgramInput, BlockSummary), InputError> {
        let crypto = NativeCrypto;
        let ParsedBlock { block, hash } = block::convert_block(self.block, &crypto)?;
        let number = block.header.number;
        check_chain_ids(&block, chain.chain_id)?;

        let witness_error = |reason: String| InputError::Witness { block: number, reason };
        let headers = decode_witness_headers(&self.witness.headers)
            .map_err(|e| witness_error(format!("a header does not RLP-decode: {e}")))?;
        let parent_number = number.checked_sub(1).ok_or_else(|| InputError::Unsupported {
            block: 0,
            reason: "the genesis block has no parent to execute from".into(),
        })?;
        let parent = headers.iter().find(|h| h.number == parent_number).ok_or_else(|| {
            witness_error(format!("no header for the parent block {parent_number} among its {} headers", headers.len()))
        })?;
        let parent_hash = parent.compute_block_hash(&crypto);
        if parent_hash != block.header.parent_hash {
            return Err(witness_error(format!(
                "the parent header {parent_number} hashes to {parent_hash:#x}, but the block's parentHash is {:#x}",
                block.header.parent_hash
            )));
        }
        let execution_witness =
            self.witness.into_execution_witness(*chain, number, &headers, &crypto).map_err(|e| {
                witness_error(format!(
                    "cannot rebuild the state trie from the parent state root {:#x}: {e}",
                    parent.state_root
                ))
            })?;
        let summary = BlockSummary::of(&block, hash, parent.state_root);
        Ok((ProgramInput { blocks: vec![block], execution_witness }, summary))
    }
}

/// EIP-155 legacy transactions and all typed ones carry the chain id they were signed for.
fn check_chain_ids(block: &Block, config_chain_id: u64) -> Result<(), InputError> {
    for (index, tx) in block.body.transactions.iter().enumerate() {
        let tx_chain_id = match tx {
            Transaction::LegacyTransaction(t) if t.v >= U256::from(35) => Some((t.v - 35) / 2),
            Transaction::LegacyTransaction(_) => None,
            other => other.chain_id().map(U256::from),
        };
        if let Some(id) = tx_chain_id
            && id != U256::from(config_chain_id)
        {
            return Err(InputError::WrongChain {
                block: block.header.number,
                index,
                tx_chain_id: id.low_u64(),
                config_chain_id,
            });
        }
    }
    Ok(())
}

/// Whether native validation ran.
#[derive(Debug, Clone)]
pub enum Validation {
    Ok(ValidationReport),
    Skipped,
}

impl Validation {
    pub fn as_str(&self) -> &'static str {
        match self {
            Validation::Ok(_) => "ok",
            Validation::Skipped => "skipped",
        }
    }
}

/// Time spent in each phase of [`generate`].
#[derive(Debug, Clone, Default)]
pub struct PhaseTimings {
    pub parse: Duration,
    pub convert: Duration,
    pub serialize: Duration,
    pub validate: Duration,
    pub write: Duration,
}

/// A guest input that passed every check and is on disk.
#[derive(Debug, Clone)]
pub struct Generated {
    pub summary: BlockSummary,
    pub framing: Framing,
    pub validation: Validation,
    pub written: WrittenInput,
    pub timings: PhaseTimings,
}

/// Options for [`generate`].
#[derive(Debug, Clone, Copy)]
pub struct GenerateOptions {
    pub framing: Framing,
    pub validate: bool,
    /// The block that was asked for: a node (or proxy, or cache) answering another block is an
    /// error, never an input for the wrong block.
    pub expect_block: Option<u64>,
}

/// Builds, checks and writes the input for one block. Takes the raw responses by value so each
/// is dropped as soon as it has been parsed: peak memory holds one copy of the witness at a time.
pub fn generate(
    block_json: Vec<u8>,
    witness_json: Vec<u8>,
    chain: &ChainConfig,
    options: GenerateOptions,
    out: &Path,
) -> Result<Generated, InputError> {
    let generated = build_input(block_json, witness_json, chain, options, out);
    forget_signers();
    generated
}

/// Empties ethrex's process-wide cache of recovered transaction senders (up to 100,000
/// entries). A node keeps seeing the same transactions; the daemon sees each block once, so the
/// cache only grew with every block it built (the cohort benchmark's memory, README). A build
/// beside this one may recover a sender again: a few microseconds.
fn forget_signers() {
    ethrex_common::types::transaction::GLOBAL_SIGNER_CACHE.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

fn build_input(
    block_json: Vec<u8>,
    witness_json: Vec<u8>,
    chain: &ChainConfig,
    options: GenerateOptions,
    out: &Path,
) -> Result<Generated, InputError> {
    let mut timings = PhaseTimings::default();
    let t = Instant::now();
    let raw = parse(&block_json, &witness_json)?;
    drop((block_json, witness_json));
    timings.parse = t.elapsed();

    let t = Instant::now();
    let (input, summary) = raw.convert(chain)?;
    timings.convert = t.elapsed();
    if let Some(asked) = options.expect_block
        && summary.number != asked
    {
        return Err(InputError::WrongBlock { asked, answered: summary.number });
    }

    let t = Instant::now();
    let payload: AlignedVec = program::serialize(&input)?;
    drop(input);
    timings.serialize = t.elapsed();

    let validation = if options.validate {
        let t = Instant::now();
        let report =
            validate::validate(&payload).map_err(|source| InputError::Validation { block: summary.number, source })?;
        timings.validate = t.elapsed();
        Validation::Ok(report)
    } else {
        Validation::Skipped
    };

    let t = Instant::now();
    let written = write::write_atomic(out, options.framing, &payload)
        .map_err(|source| InputError::Write { path: out.display().to_string(), source })?;
    timings.write = t.elapsed();
    Ok(Generated { summary, framing: options.framing, validation, written, timings })
}

/// Parses a JSON-RPC quantity such as `0x1a` (shared with `chain` so both accept the same forms).
pub fn parse_quantity(s: &str) -> Result<u64, HexError> {
    hex::parse_u64(s)
}
