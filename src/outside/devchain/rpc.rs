//! The dev chain over JSON-RPC, in the shapes a real node answers: `eth_chainId`,
//! `eth_blockNumber`, `eth_getBlockByNumber` (hydrated), `debug_executionWitness`; and the loop
//! that serves it on loopback, producing a block every `block_time`.

use std::sync::{Arc, Mutex};

use ethrex_common::types::block_execution_witness::RpcExecutionWitness;
use ethrex_common::types::{Block, Transaction, TxKind};
use ethrex_common::{Address, Bloom};
use ethrex_crypto::NativeCrypto;
use ethrex_rlp::encode::RLPEncode;
use serde_json::{Value, json};

use super::{CHAIN_ID, DevChain, hex0x, qty};

/// A block in go-ethereum's RPC shape (`eth_getBlockByNumber(n, true)`).
pub fn block_json(block: &Block, known_senders: &[Address]) -> Value {
    let crypto = NativeCrypto;
    let h = &block.header;
    let hash = h.compute_block_hash(&crypto);
    let base_fee = h.base_fee_per_gas.unwrap_or(0);
    let txs: Vec<Value> = block
        .body
        .transactions
        .iter()
        .enumerate()
        .map(|(i, tx)| {
            let from = tx.sender(&crypto).ok().or_else(|| known_senders.first().copied()).unwrap_or_default();
            let Transaction::EIP1559Transaction(t) = tx else { return Value::Null };
            let to = match t.to {
                TxKind::Call(a) => json!(format!("{a:#x}")),
                TxKind::Create => Value::Null,
            };
            json!({
                "blockHash": format!("{hash:#x}"), "blockNumber": qty(h.number), "from": format!("{from:#x}"),
                "gas": qty(t.gas_limit), "gasPrice": qty((base_fee + t.max_priority_fee_per_gas).min(t.max_fee_per_gas)),
                "maxFeePerGas": qty(t.max_fee_per_gas), "maxPriorityFeePerGas": qty(t.max_priority_fee_per_gas),
                "hash": format!("{:#x}", tx.hash(&crypto)), "input": hex0x(&t.data), "nonce": qty(t.nonce),
                "to": to, "transactionIndex": qty(i as u64), "value": qty(t.value), "type": "0x2",
                "accessList": [], "chainId": qty(t.chain_id), "v": qty(t.signature_y_parity),
                "r": qty(t.signature_r), "s": qty(t.signature_s), "yParity": qty(t.signature_y_parity),
            })
        })
        .collect();
    let withdrawals: Vec<Value> = block
        .body
        .withdrawals
        .iter()
        .flatten()
        .map(|w| {
            json!({"index": qty(w.index), "validatorIndex": qty(w.validator_index),
                   "address": format!("{:#x}", w.address), "amount": qty(w.amount)})
        })
        .collect();
    json!({
        "baseFeePerGas": qty(base_fee), "blobGasUsed": qty(h.blob_gas_used.unwrap_or(0)),
        "difficulty": qty(h.difficulty), "excessBlobGas": qty(h.excess_blob_gas.unwrap_or(0)),
        "extraData": hex0x(&h.extra_data), "gasLimit": qty(h.gas_limit), "gasUsed": qty(h.gas_used),
        "hash": format!("{hash:#x}"), "logsBloom": hex0x(Bloom::as_bytes(&h.logs_bloom)),
        "miner": format!("{:#x}", h.coinbase), "mixHash": format!("{:#x}", h.prev_randao),
        "nonce": format!("0x{:016x}", h.nonce), "number": qty(h.number),
        "parentBeaconBlockRoot": format!("{:#x}", h.parent_beacon_block_root.unwrap_or_default()),
        "parentHash": format!("{:#x}", h.parent_hash), "receiptsRoot": format!("{:#x}", h.receipts_root),
        "sha3Uncles": format!("{:#x}", h.ommers_hash), "size": qty(block.encode_to_vec().len() as u64),
        "stateRoot": format!("{:#x}", h.state_root), "timestamp": qty(h.timestamp),
        "transactions": txs, "transactionsRoot": format!("{:#x}", h.transactions_root), "uncles": [],
        "withdrawals": withdrawals, "withdrawalsRoot": format!("{:#x}", h.withdrawals_root.unwrap_or_default()),
    })
}

/// A witness in `debug_executionWitness`'s shape.
pub fn witness_json(witness: &RpcExecutionWitness) -> Value {
    json!({
        "state": witness.state.iter().map(|b| hex0x(b)).collect::<Vec<_>>(),
        "codes": witness.codes.iter().map(|b| hex0x(b)).collect::<Vec<_>>(),
        "headers": witness.headers.iter().map(|b| hex0x(b)).collect::<Vec<_>>(),
    })
}

/// The chain behind its JSON-RPC server, shared with the block producer.
pub type SharedChain = Arc<Mutex<DevChain>>;

/// Answers one JSON-RPC request the way a node would (what the daemon uses, nothing more).
pub fn handle_rpc(chain: &SharedChain, request: &Value) -> Value {
    let id = request["id"].clone();
    let method = request["method"].as_str().unwrap_or("");
    let number = |chain: &DevChain| -> Option<u64> {
        match &request["params"][0] {
            Value::String(s) if s == "latest" => Some(chain.head_number()),
            Value::String(s) => u64::from_str_radix(s.trim_start_matches("0x"), 16).ok(),
            _ => None,
        }
    };
    let c = chain.lock().unwrap_or_else(|p| p.into_inner());
    let result: Result<Value, (i64, String)> = match method {
        "eth_chainId" => Ok(json!(qty(CHAIN_ID))),
        "eth_blockNumber" => Ok(json!(qty(c.head_number()))),
        "eth_getBlockByNumber" => Ok(number(&c)
            .and_then(|n| c.served(n))
            .and_then(|b| serde_json::from_str(&b.block_json).ok())
            .unwrap_or(Value::Null)),
        "debug_executionWitness" => match number(&c).and_then(|n| c.served(n)) {
            Some(b) => serde_json::from_str(&b.witness_json).map_err(|e| (-32603, e.to_string())),
            None => Err((-32000, "block not found".into())),
        },
        other => Err((-32601, format!("the method {other} does not exist/is not available"))),
    };
    match result {
        Ok(r) => json!({"jsonrpc": "2.0", "id": id, "result": r}),
        Err((code, message)) => json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}),
    }
}

/// Serves the chain over JSON-RPC on `listener` and produces a block every `block_time`.
pub async fn serve(chain: SharedChain, listener: tokio::net::TcpListener, block_time: std::time::Duration) {
    let producer = chain.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(block_time);
        loop {
            tick.tick().await;
            let c = producer.clone();
            let produced = tokio::task::spawn_blocking(move || {
                let mut c = c.lock().unwrap_or_else(|p| p.into_inner());
                c.produce().map(|b| b.number)
            })
            .await;
            match produced {
                Ok(Ok(n)) => tracing::debug!(block = n, "dev chain block"),
                Ok(Err(e)) => tracing::error!(error = %e, "dev chain could not produce a block"),
                Err(e) => tracing::error!(error = %e, "dev chain producer panicked"),
            }
        }
    });
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |axum::Json(request): axum::Json<Value>| {
            let chain = chain.clone();
            async move { axum::Json(handle_rpc(&chain, &request)) }
        }),
    );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "dev chain JSON-RPC server stopped");
    }
}
