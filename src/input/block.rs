//! The `eth_getBlockByNumber(N, true)` object, parsed into ethrex's `Block`.
//!
//! Only the fields that go into the header and body are read; everything a node computes
//! (`hash`, tx `hash`, `from`) is checked against our own computation instead of trusted, so a
//! block that was parsed wrongly, or tampered with, can never become a guest input.

use ethrex_common::types::{
    AuthorizationTuple, Block, BlockBody, BlockHeader, EIP1559Transaction, EIP2930Transaction, EIP4844Transaction,
    EIP7702Transaction, LegacyTransaction, Transaction, TxKind, Withdrawal,
};
use ethrex_common::{Address, Bloom, Bytes, H256, U256};
use ethrex_crypto::Crypto;
use serde::Deserialize;

use super::InputError;
use super::hex;

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

/// `eth_getBlockByNumber(N, false)` returns hashes; we need `true` and say so.
///
/// Not `#[serde(untagged)]`: that buffers each transaction and replaces the error naming the bad
/// field with "did not match any variant".
enum RpcTransactionOrHash {
    Full(Box<RpcTransaction>),
    Hash,
}

impl<'de> Deserialize<'de> for RpcTransactionOrHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RpcTransactionOrHash;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a transaction object")
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(RpcTransactionOrHash::Hash)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RpcTransaction::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|tx| RpcTransactionOrHash::Full(Box::new(tx)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Every field any supported transaction type can carry; which are required depends on `type`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcTransaction {
    #[serde(rename = "type", default, with = "hex::u64_quantity::option")]
    tx_type: Option<u64>,
    #[serde(with = "hex::h256")]
    hash: H256,
    #[serde(default, with = "hex::address::option")]
    from: Option<Address>,
    #[serde(with = "hex::u64_quantity")]
    nonce: u64,
    #[serde(with = "hex::u64_quantity")]
    gas: u64,
    #[serde(default, with = "hex::u256_quantity::option")]
    gas_price: Option<U256>,
    #[serde(default, with = "hex::u256_quantity::option")]
    max_fee_per_gas: Option<U256>,
    #[serde(default, with = "hex::u256_quantity::option")]
    max_priority_fee_per_gas: Option<U256>,
    #[serde(default, with = "hex::u256_quantity::option")]
    max_fee_per_blob_gas: Option<U256>,
    #[serde(default, with = "hex::address::option")]
    to: Option<Address>,
    #[serde(with = "hex::u256_quantity")]
    value: U256,
    #[serde(with = "hex::bytes")]
    input: Bytes,
    #[serde(default, with = "hex::u64_quantity::option")]
    chain_id: Option<u64>,
    #[serde(default)]
    access_list: Option<Vec<RpcAccessListItem>>,
    #[serde(default)]
    blob_versioned_hashes: Option<Vec<HashEntry>>,
    #[serde(default)]
    authorization_list: Option<Vec<RpcAuthorization>>,
    #[serde(default, with = "hex::u256_quantity::option")]
    v: Option<U256>,
    #[serde(default, with = "hex::u256_quantity::option")]
    y_parity: Option<U256>,
    #[serde(with = "hex::u256_quantity")]
    r: U256,
    #[serde(with = "hex::u256_quantity")]
    s: U256,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcAccessListItem {
    #[serde(with = "hex::address")]
    address: Address,
    #[serde(with = "hex::h256_list")]
    storage_keys: Vec<H256>,
}

#[derive(Deserialize)]
struct HashEntry(#[serde(with = "hex::h256")] H256);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcAuthorization {
    #[serde(with = "hex::u256_quantity")]
    chain_id: U256,
    #[serde(with = "hex::address")]
    address: Address,
    #[serde(with = "hex::u64_quantity")]
    nonce: u64,
    #[serde(with = "hex::u256_quantity")]
    y_parity: U256,
    #[serde(with = "hex::u256_quantity")]
    r: U256,
    #[serde(with = "hex::u256_quantity")]
    s: U256,
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

type FieldError = (&'static str, String);

fn required<T>(value: Option<T>, field: &'static str, tx_type: u64) -> Result<T, FieldError> {
    value.ok_or_else(|| (field, format!("missing field `{field}` (required for a type {tx_type:#x} transaction)")))
}

fn fits_u64(value: U256, field: &'static str) -> Result<u64, FieldError> {
    if value > U256::from(u64::MAX) {
        return Err((field, format!("{value:#x} does not fit in 64 bits")));
    }
    Ok(value.as_u64())
}

fn to_kind(to: Option<Address>) -> TxKind {
    to.map_or(TxKind::Create, TxKind::Call)
}

fn access_list(items: Option<Vec<RpcAccessListItem>>, tx_type: u64) -> Result<Vec<(Address, Vec<H256>)>, FieldError> {
    Ok(required(items, "accessList", tx_type)?.into_iter().map(|item| (item.address, item.storage_keys)).collect())
}

/// For typed transactions geth sends both `v` and `yParity` (equal); others may send only one.
fn y_parity(tx: &RpcTransaction, tx_type: u64) -> Result<U256, FieldError> {
    match (tx.y_parity, tx.v) {
        (Some(y), Some(v)) if y != v => Err(("yParity", format!("yParity {y:#x} disagrees with v {v:#x}"))),
        (Some(y), _) | (None, Some(y)) => Ok(y),
        (None, None) => Err(required::<U256>(None, "yParity", tx_type).unwrap_err()),
    }
}

fn convert_transaction(tx: RpcTransaction) -> Result<Transaction, FieldError> {
    let tx_type = tx.tx_type.unwrap_or(0);
    Ok(match tx_type {
        0x0 => Transaction::LegacyTransaction(LegacyTransaction {
            nonce: tx.nonce,
            gas_price: required(tx.gas_price, "gasPrice", tx_type)?,
            gas: tx.gas,
            to: to_kind(tx.to),
            value: tx.value,
            data: tx.input,
            v: required(tx.v, "v", tx_type)?,
            r: tx.r,
            s: tx.s,
            ..Default::default()
        }),
        0x1 => Transaction::EIP2930Transaction(EIP2930Transaction {
            signature_y_parity: y_parity(&tx, tx_type)?,
            chain_id: required(tx.chain_id, "chainId", tx_type)?,
            nonce: tx.nonce,
            gas_price: required(tx.gas_price, "gasPrice", tx_type)?,
            gas_limit: tx.gas,
            to: to_kind(tx.to),
            value: tx.value,
            data: tx.input,
            access_list: access_list(tx.access_list, tx_type)?,
            signature_r: tx.r,
            signature_s: tx.s,
            ..Default::default()
        }),
        0x2 => Transaction::EIP1559Transaction(EIP1559Transaction {
            signature_y_parity: y_parity(&tx, tx_type)?,
            chain_id: required(tx.chain_id, "chainId", tx_type)?,
            nonce: tx.nonce,
            max_priority_fee_per_gas: fits_u64(
                required(tx.max_priority_fee_per_gas, "maxPriorityFeePerGas", tx_type)?,
                "maxPriorityFeePerGas",
            )?,
            max_fee_per_gas: fits_u64(required(tx.max_fee_per_gas, "maxFeePerGas", tx_type)?, "maxFeePerGas")?,
            gas_limit: tx.gas,
            to: to_kind(tx.to),
            value: tx.value,
            data: tx.input,
            access_list: access_list(tx.access_list, tx_type)?,
            signature_r: tx.r,
            signature_s: tx.s,
            ..Default::default()
        }),
        0x3 => Transaction::EIP4844Transaction(EIP4844Transaction {
            signature_y_parity: y_parity(&tx, tx_type)?,
            chain_id: required(tx.chain_id, "chainId", tx_type)?,
            nonce: tx.nonce,
            max_priority_fee_per_gas: fits_u64(
                required(tx.max_priority_fee_per_gas, "maxPriorityFeePerGas", tx_type)?,
                "maxPriorityFeePerGas",
            )?,
            max_fee_per_gas: fits_u64(required(tx.max_fee_per_gas, "maxFeePerGas", tx_type)?, "maxFeePerGas")?,
            gas: tx.gas,
            to: required(tx.to, "to", tx_type)?,
            value: tx.value,
            data: tx.input,
            access_list: access_list(tx.access_list, tx_type)?,
            max_fee_per_blob_gas: required(tx.max_fee_per_blob_gas, "maxFeePerBlobGas", tx_type)?,
            blob_versioned_hashes: required(tx.blob_versioned_hashes, "blobVersionedHashes", tx_type)?
                .into_iter()
                .map(|h| h.0)
                .collect(),
            signature_r: tx.r,
            signature_s: tx.s,
            ..Default::default()
        }),
        0x4 => Transaction::EIP7702Transaction(EIP7702Transaction {
            signature_y_parity: y_parity(&tx, tx_type)?,
            chain_id: required(tx.chain_id, "chainId", tx_type)?,
            nonce: tx.nonce,
            max_priority_fee_per_gas: fits_u64(
                required(tx.max_priority_fee_per_gas, "maxPriorityFeePerGas", tx_type)?,
                "maxPriorityFeePerGas",
            )?,
            max_fee_per_gas: fits_u64(required(tx.max_fee_per_gas, "maxFeePerGas", tx_type)?, "maxFeePerGas")?,
            gas_limit: tx.gas,
            to: required(tx.to, "to", tx_type)?,
            value: tx.value,
            data: tx.input,
            access_list: access_list(tx.access_list, tx_type)?,
            authorization_list: required(tx.authorization_list, "authorizationList", tx_type)?
                .into_iter()
                .map(|a| AuthorizationTuple {
                    chain_id: a.chain_id,
                    address: a.address,
                    nonce: a.nonce,
                    y_parity: a.y_parity,
                    r_signature: a.r,
                    s_signature: a.s,
                })
                .collect(),
            signature_r: tx.r,
            signature_s: tx.s,
            ..Default::default()
        }),
        other => return Err(("type", format!("transaction type {other:#x} is not supported on L1"))),
    })
}
