//! One transaction of an `eth_getBlockByNumber(N, true)` answer, in any of its types (legacy,
//! 2930, 1559, 4844, 7702), parsed and turned into ethrex's `Transaction`; a field a type needs
//! and the node left out is an error naming it.

use ethrex_common::types::{
    AuthorizationTuple, EIP1559Transaction, EIP2930Transaction, EIP4844Transaction, EIP7702Transaction,
    LegacyTransaction, Transaction, TxKind,
};
use ethrex_common::{Address, Bytes, H256, U256};
use serde::Deserialize;

use super::hex;

/// `eth_getBlockByNumber(N, false)` returns hashes; we need `true` and say so.
///
/// Not `#[serde(untagged)]`: that buffers each transaction and replaces the error naming the bad
/// field with "did not match any variant".
pub(super) enum RpcTransactionOrHash {
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
pub(super) struct RpcTransaction {
    #[serde(rename = "type", default, with = "hex::u64_quantity::option")]
    tx_type: Option<u64>,
    #[serde(with = "hex::h256")]
    pub(super) hash: H256,
    #[serde(default, with = "hex::address::option")]
    pub(super) from: Option<Address>,
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

/// The EIP-1559 fee caps (types 2, 3, 4): both required, and each must fit the guest's u64.
fn fee_caps(tx: &RpcTransaction, tx_type: u64) -> Result<(u64, u64), FieldError> {
    let priority = required(tx.max_priority_fee_per_gas, "maxPriorityFeePerGas", tx_type)?;
    let max = required(tx.max_fee_per_gas, "maxFeePerGas", tx_type)?;
    Ok((fits_u64(priority, "maxPriorityFeePerGas")?, fits_u64(max, "maxFeePerGas")?))
}

/// For typed transactions geth sends both `v` and `yParity` (equal); others may send only one.
fn y_parity(tx: &RpcTransaction, tx_type: u64) -> Result<U256, FieldError> {
    match (tx.y_parity, tx.v) {
        (Some(y), Some(v)) if y != v => Err(("yParity", format!("yParity {y:#x} disagrees with v {v:#x}"))),
        (Some(y), _) | (None, Some(y)) => Ok(y),
        (None, None) => required::<U256>(None, "yParity", tx_type),
    }
}

pub(super) fn convert_transaction(tx: RpcTransaction) -> Result<Transaction, FieldError> {
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
        0x2 => {
            let (priority_fee, max_fee) = fee_caps(&tx, tx_type)?;
            Transaction::EIP1559Transaction(EIP1559Transaction {
                signature_y_parity: y_parity(&tx, tx_type)?,
                chain_id: required(tx.chain_id, "chainId", tx_type)?,
                nonce: tx.nonce,
                max_priority_fee_per_gas: priority_fee,
                max_fee_per_gas: max_fee,
                gas_limit: tx.gas,
                to: to_kind(tx.to),
                value: tx.value,
                data: tx.input,
                access_list: access_list(tx.access_list, tx_type)?,
                signature_r: tx.r,
                signature_s: tx.s,
                ..Default::default()
            })
        }
        0x3 => {
            let (priority_fee, max_fee) = fee_caps(&tx, tx_type)?;
            Transaction::EIP4844Transaction(EIP4844Transaction {
                signature_y_parity: y_parity(&tx, tx_type)?,
                chain_id: required(tx.chain_id, "chainId", tx_type)?,
                nonce: tx.nonce,
                max_priority_fee_per_gas: priority_fee,
                max_fee_per_gas: max_fee,
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
            })
        }
        0x4 => {
            let (priority_fee, max_fee) = fee_caps(&tx, tx_type)?;
            Transaction::EIP7702Transaction(EIP7702Transaction {
                signature_y_parity: y_parity(&tx, tx_type)?,
                chain_id: required(tx.chain_id, "chainId", tx_type)?,
                nonce: tx.nonce,
                max_priority_fee_per_gas: priority_fee,
                max_fee_per_gas: max_fee,
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
            })
        }
        other => return Err(("type", format!("transaction type {other:#x} is not supported on L1"))),
    })
}
