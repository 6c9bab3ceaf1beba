//! The `eth_getBlockByNumber(N, true)` object, parsed into ethrex's `Block`.
//!
//! Only the fields that go into the header and body are read; everything a node computes
//! (`hash`, tx `hash`, `from`) is checked against our own computation instead of trusted, so a
//! block that was parsed wrongly, or tampered with, can never become a guest input.

use ethrex_common::types::{Block, BlockBody, BlockHeader, Withdrawal};
use ethrex_common::{Address, Bloom, Bytes, H256, U256};
use ethrex_crypto::Crypto;
use serde::Deserialize;

use super::InputError;
use super::hex;
use super::transaction::{RpcTransactionOrHash, convert_transaction};

/// The block object as a node sends it; [`convert_block`] turns it into ethrex's `Block`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RpcBlock {
    #[serde(with = "hex::h256")]
    hash: H256,
    #[serde(with = "hex::h256")]
    parent_hash: H256,
    #[serde(with = "hex::h256")]
    sha3_uncles: H256,
    #[serde(with = "hex::address")]
    miner: Address,
    #[serde(with = "hex::h256")]
    state_root: H256,
    #[serde(with = "hex::h256")]
    transactions_root: H256,
    #[serde(with = "hex::h256")]
    receipts_root: H256,
    #[serde(with = "hex::bloom")]
    logs_bloom: Bloom,
    #[serde(with = "hex::u256_quantity")]
    difficulty: U256,
    #[serde(with = "hex::u64_quantity")]
    number: u64,
    #[serde(with = "hex::u64_quantity")]
    gas_limit: u64,
    #[serde(with = "hex::u64_quantity")]
    gas_used: u64,
    #[serde(with = "hex::u64_quantity")]
    timestamp: u64,
    #[serde(with = "hex::bytes")]
    extra_data: Bytes,
    #[serde(with = "hex::h256")]
    mix_hash: H256,
    #[serde(with = "hex::nonce64")]
    nonce: u64,
    #[serde(default, with = "hex::u64_quantity::option")]
    base_fee_per_gas: Option<u64>,
    #[serde(default, with = "hex::h256::option")]
    withdrawals_root: Option<H256>,
    #[serde(default, with = "hex::u64_quantity::option")]
    blob_gas_used: Option<u64>,
    #[serde(default, with = "hex::u64_quantity::option")]
    excess_blob_gas: Option<u64>,
    #[serde(default, with = "hex::h256::option")]
    parent_beacon_block_root: Option<H256>,
    #[serde(default, with = "hex::h256::option")]
    requests_hash: Option<H256>,
    #[serde(default, with = "hex::h256::option")]
    block_access_list_hash: Option<H256>,
    #[serde(default, with = "hex::u64_quantity::option")]
    slot_number: Option<u64>,
    #[serde(default, with = "hex::u64_quantity::option")]
    burned_fees: Option<u64>,
    transactions: Vec<RpcTransactionOrHash>,
    #[serde(default)]
    uncles: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    withdrawals: Option<Vec<RpcWithdrawal>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcWithdrawal {
    #[serde(with = "hex::u64_quantity")]
    index: u64,
    #[serde(with = "hex::u64_quantity")]
    validator_index: u64,
    #[serde(with = "hex::address")]
    address: Address,
    #[serde(with = "hex::u64_quantity")]
    amount: u64,
}

/// A block parsed from JSON and checked against the hashes the node claimed for it.
pub struct ParsedBlock {
    pub block: Block,
    pub hash: H256,
}

impl RpcBlock {
    pub fn number(&self) -> u64 {
        self.number
    }
}

/// Parses the `result` object of `eth_getBlockByNumber(N, true)`.
pub fn parse_rpc_block(json: &str) -> Result<RpcBlock, InputError> {
    let mut de = serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(&mut de).map_err(|e| InputError::Malformed {
        what: "eth_getBlockByNumber",
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

/// Builds ethrex's `Block`, recomputing every transaction hash (and sender, when the node gave
/// `from`) and the block hash, and refusing the block if any differs from what the node claimed.
pub fn convert_block(rpc: RpcBlock, crypto: &dyn Crypto) -> Result<ParsedBlock, InputError> {
    let number = rpc.number;
    if !rpc.uncles.is_empty() {
        return Err(InputError::Unsupported {
            block: number,
            reason: format!(
                "the block has {} uncle(s); only post-merge blocks, which have none, can be proved",
                rpc.uncles.len()
            ),
        });
    }

    let mut transactions = Vec::with_capacity(rpc.transactions.len());
    for (index, tx) in rpc.transactions.into_iter().enumerate() {
        let tx = match tx {
            RpcTransactionOrHash::Full(tx) => *tx,
            RpcTransactionOrHash::Hash => {
                return Err(InputError::Malformed {
                    what: "eth_getBlockByNumber",
                    path: format!("transactions[{index}]"),
                    message: "transaction is a bare hash; the block must be fetched with full transactions (eth_getBlockByNumber(N, true))".into(),
                });
            }
        };
        let json_hash = tx.hash;
        let json_from = tx.from;
        let tx = convert_transaction(tx).map_err(|(field, message)| InputError::Malformed {
            what: "eth_getBlockByNumber",
            path: format!("transactions[{index}].{field}"),
            message,
        })?;
        let computed = tx.hash(crypto);
        if computed != json_hash {
            return Err(InputError::TransactionHashMismatch { block: number, index, computed, json: json_hash });
        }
        if let Some(from) = json_from {
            let recovered = tx.sender(crypto).map_err(|e| InputError::TransactionSender {
                block: number,
                index,
                hash: json_hash,
                reason: e.to_string(),
            })?;
            if recovered != from {
                return Err(InputError::TransactionSender {
                    block: number,
                    index,
                    hash: json_hash,
                    reason: format!("`from` is {from:#x} but the signature recovers {recovered:#x}"),
                });
            }
        }
        transactions.push(tx);
    }

    let withdrawals = rpc.withdrawals.map(|ws| {
        ws.into_iter()
            .map(|w| Withdrawal {
                index: w.index,
                validator_index: w.validator_index,
                address: w.address,
                amount: w.amount,
            })
            .collect()
    });

    let header = BlockHeader {
        hash: Default::default(),
        parent_hash: rpc.parent_hash,
        ommers_hash: rpc.sha3_uncles,
        coinbase: rpc.miner,
        state_root: rpc.state_root,
        transactions_root: rpc.transactions_root,
        receipts_root: rpc.receipts_root,
        logs_bloom: rpc.logs_bloom,
        difficulty: rpc.difficulty,
        number,
        gas_limit: rpc.gas_limit,
        gas_used: rpc.gas_used,
        timestamp: rpc.timestamp,
        extra_data: rpc.extra_data,
        prev_randao: rpc.mix_hash,
        nonce: rpc.nonce,
        base_fee_per_gas: rpc.base_fee_per_gas,
        withdrawals_root: rpc.withdrawals_root,
        blob_gas_used: rpc.blob_gas_used,
        excess_blob_gas: rpc.excess_blob_gas,
        parent_beacon_block_root: rpc.parent_beacon_block_root,
        requests_hash: rpc.requests_hash,
        block_access_list_hash: rpc.block_access_list_hash,
        slot_number: rpc.slot_number,
        burned_fees: rpc.burned_fees,
    };
    let computed = header.compute_block_hash(crypto);
    if computed != rpc.hash {
        return Err(InputError::BlockHashMismatch { block: number, computed, json: rpc.hash });
    }
    let block = Block::new(header, BlockBody { transactions, ommers: Vec::new(), withdrawals });
    Ok(ParsedBlock { block, hash: computed })
}
