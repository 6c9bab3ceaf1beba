//! An offline dev chain built with the ethrex crates: a Cancun chain (id 1337) whose blocks carry
//! signed transfers and a contract call, executed with ethrex's EVM, served over JSON-RPC on
//! loopback in the shapes a real node uses. It lets a newcomer watch the daemon work with no
//! node, no network and no GPU (`run --dev`), and it writes fixtures in `../shared/fixtures`'s
//! layout for tests.
//!
//! State is kept as plain maps and the tries are rebuilt for each block (the chain is tiny). A
//! block is first executed from a witness holding every node of the pre-state; the witness it is
//! served with is then cut down to the nodes and codes the execution touches, found by taking
//! each one out and re-running ethrex's stateless validation: a node the execution reads cannot
//! be missed, one it does not read can. So every served witness is complete and minimal, like a
//! node's, and every block passes native validation (the tests check it).

use std::collections::BTreeMap;
use std::sync::Arc;

use ethrex_common::types::block_execution_witness::{GuestProgramState, RpcExecutionWitness};
use ethrex_common::types::{
    AccountState, Block, BlockBody, BlockHeader, ChainConfig, EIP1559Transaction, ELASTICITY_MULTIPLIER, Transaction,
    TxKind, Withdrawal, calculate_base_fee_per_gas, compute_receipts_root_and_logs_bloom, compute_transactions_root,
    compute_withdrawals_root,
};
use ethrex_common::{Address, Bytes, H256, U256};
use ethrex_crypto::{Crypto, NativeCrypto};
use ethrex_rlp::encode::RLPEncode;
use ethrex_vm::{Evm, GuestProgramStateWrapper};

mod rpc;
mod witness;

pub use rpc::{SharedChain, block_json, handle_rpc, serve, witness_json};

/// The dev chain's id: a chain config owns it, so a block's chain knows it is the dev chain.
pub const CHAIN_ID: u64 = crate::block::chainspec::DEV_CHAIN_ID;

/// The dev chain's config: every fork through Cancun from genesis. Prague and later would need
/// system contracts deployed in genesis (EIP-7002, EIP-7251); Cancun runs without any.
pub const CONFIG_JSON: &str = r#"{
  "chainId": 1337,
  "homesteadBlock": 0, "eip150Block": 0, "eip155Block": 0, "eip158Block": 0, "byzantiumBlock": 0,
  "constantinopleBlock": 0, "petersburgBlock": 0, "istanbulBlock": 0, "berlinBlock": 0, "londonBlock": 0,
  "mergeNetsplitBlock": 0, "terminalTotalDifficulty": "0x0", "terminalTotalDifficultyPassed": true,
  "shanghaiTime": 0, "cancunTime": 0,
  "depositContractAddress": "0x0000000000000000000000000000000000000000"
}"#;

/// A counter: `slot0 += 1` on every call.
const COUNTER_CODE: [u8; 10] = [0x60, 0x00, 0x54, 0x60, 0x01, 0x01, 0x60, 0x00, 0x55, 0x00];

#[derive(Debug, thiserror::Error)]
#[error("dev chain: {0}")]
pub struct DevChainError(String);

fn err(e: impl std::fmt::Display) -> DevChainError {
    DevChainError(e.to_string())
}

fn keccak(data: &[u8]) -> H256 {
    H256(NativeCrypto.keccak256(data))
}

#[derive(Clone, Default)]
struct Account {
    nonce: u64,
    balance: U256,
    code_hash: Option<H256>,
    storage: BTreeMap<H256, U256>,
}

/// One produced block, as the node serves it.
#[derive(Clone)]
pub struct Served {
    pub number: u64,
    pub block_json: String,
    pub witness_json: String,
}

pub struct DevChain {
    config: ChainConfig,
    keys: Vec<secp256k1::SecretKey>,
    senders: Vec<Address>,
    counter: Address,
    accounts: BTreeMap<Address, Account>,
    codes: BTreeMap<H256, Vec<u8>>,
    head: BlockHeader,
    blocks: Vec<Served>,
    /// Blocks carry the time they are produced (`run --dev`), so block-to-proof latency means
    /// something; off, every block is 12 s after its parent (deterministic, for fixtures).
    wall_clock: bool,
}

fn qty(v: impl Into<U256>) -> String {
    format!("{:#x}", v.into())
}

fn hex0x(data: &[u8]) -> String {
    format!("0x{}", hex::encode(data))
}

impl DevChain {
    pub fn new() -> Result<DevChain, DevChainError> {
        let config: ChainConfig = serde_json::from_str(CONFIG_JSON).map_err(err)?;
        let keys: Vec<secp256k1::SecretKey> = (1u8..=3)
            .map(|i| secp256k1::SecretKey::from_slice(&[i * 0x11; 32]).map_err(err))
            .collect::<Result<_, _>>()?;
        let senders: Vec<Address> = keys
            .iter()
            .map(|k| {
                let public = secp256k1::PublicKey::from_secret_key_global(k).serialize_uncompressed();
                Address::from_slice(&keccak(&public[1..]).0[12..])
            })
            .collect();
        let mut accounts = BTreeMap::new();
        for s in &senders {
            accounts.insert(*s, Account { balance: U256::from(1_000u64) * U256::exp10(18), ..Account::default() });
        }
        let counter = Address::from_low_u64_be(0xc0de);
        let code_hash = keccak(&COUNTER_CODE);
        // A deployed contract has nonce 1 (EIP-161).
        accounts.insert(counter, Account { nonce: 1, code_hash: Some(code_hash), ..Account::default() });
        let codes = BTreeMap::from([(code_hash, COUNTER_CODE.to_vec())]);
        let mut chain = DevChain {
            config,
            keys,
            senders,
            counter,
            accounts,
            codes,
            head: BlockHeader::default(),
            blocks: Vec::new(),
            wall_clock: false,
        };
        let (state_root, _) = chain.tries()?;
        chain.head = BlockHeader {
            ommers_hash: H256::from_slice(
                &hex::decode("1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347").map_err(err)?,
            ),
            state_root,
            transactions_root: ethrex_trie::EMPTY_TRIE_HASH,
            receipts_root: ethrex_trie::EMPTY_TRIE_HASH,
            number: 0,
            gas_limit: 30_000_000,
            timestamp: 1_700_000_000,
            extra_data: Bytes::from_static(b"ethproofs-daemon dev chain"),
            base_fee_per_gas: Some(1_000_000_000),
            withdrawals_root: Some(ethrex_trie::EMPTY_TRIE_HASH),
            blob_gas_used: Some(0),
            excess_blob_gas: Some(0),
            parent_beacon_block_root: Some(H256::zero()),
            ..BlockHeader::default()
        };
        Ok(chain)
    }

    pub fn config(&self) -> ChainConfig {
        self.config
    }

    pub fn head_number(&self) -> u64 {
        self.head.number
    }

    pub fn served(&self, number: u64) -> Option<&Served> {
        self.blocks.iter().find(|b| b.number == number)
    }

    /// The state trie (and its storage tries) rebuilt from the maps: the root, and every node.
    fn tries(&self) -> Result<(H256, Vec<Vec<u8>>), DevChainError> {
        let crypto = NativeCrypto;
        let mut nodes: Vec<Vec<u8>> = Vec::new();
        let push_all = |list: Vec<Vec<u8>>, nodes: &mut Vec<Vec<u8>>| {
            for n in list {
                if !nodes.contains(&n) {
                    nodes.push(n);
                }
            }
        };
        let mut state = ethrex_trie::Trie::new_temp();
        let mut paths = Vec::new();
        for (address, account) in &self.accounts {
            let mut storage_root = ethrex_trie::EMPTY_TRIE_HASH;
            if !account.storage.is_empty() {
                let mut trie = ethrex_trie::Trie::new_temp();
                let keys: Vec<Vec<u8>> = account.storage.keys().map(|k| keccak(k.as_bytes()).0.to_vec()).collect();
                for (k, v) in keys.iter().zip(account.storage.values()) {
                    trie.insert(k.clone(), v.encode_to_vec()).map_err(err)?;
                }
                storage_root = trie.hash_no_commit(&crypto);
                for k in &keys {
                    push_all(trie.get_proof(k).map_err(err)?, &mut nodes);
                }
            }
            let state_account = AccountState {
                nonce: account.nonce,
                balance: account.balance,
                storage_root,
                code_hash: account.code_hash.unwrap_or(*ethrex_common::constants::EMPTY_KECCAK_HASH),
            };
            let path = keccak(address.as_bytes()).0.to_vec();
            state.insert(path.clone(), state_account.encode_to_vec()).map_err(err)?;
            paths.push(path);
        }
        let root = state.hash_no_commit(&crypto);
        for p in &paths {
            push_all(state.get_proof(p).map_err(err)?, &mut nodes);
        }
        Ok((root, nodes))
    }

    fn sign(
        &self,
        sender: usize,
        nonce: u64,
        to: Address,
        value: U256,
        gas: u64,
    ) -> Result<Transaction, DevChainError> {
        let mut tx = EIP1559Transaction {
            chain_id: CHAIN_ID,
            nonce,
            max_priority_fee_per_gas: 1_000_000_000,
            max_fee_per_gas: 50_000_000_000,
            gas_limit: gas,
            to: TxKind::Call(to),
            value,
            data: Bytes::new(),
            ..Default::default()
        };
        let (payload, _) = Transaction::EIP1559Transaction(tx.clone())
            .signing_payload()
            .map_err(err)?
            .ok_or_else(|| err("unsigned"))?;
        let msg = secp256k1::Message::from_digest(keccak(&payload).0);
        let (rec_id, sig) = secp256k1::SECP256K1.sign_ecdsa_recoverable(&msg, &self.keys[sender]).serialize_compact();
        tx.signature_r = U256::from_big_endian(&sig[..32]);
        tx.signature_s = U256::from_big_endian(&sig[32..]);
        tx.signature_y_parity = U256::from(i32::from(rec_id) as u64);
        Ok(Transaction::EIP1559Transaction(tx))
    }

    /// Produces the next block: three transfers (one to a fresh account, the first 64 blocks) and a counter call,
    /// plus a withdrawal every fourth block.
    /// New blocks carry the time they are produced (never before their parent's).
    pub fn with_wall_clock(mut self) -> DevChain {
        self.wall_clock = true;
        self
    }

    pub fn produce(&mut self) -> Result<&Served, DevChainError> {
        let crypto = NativeCrypto;
        let parent = self.head.clone();
        let number = parent.number + 1;
        let nonce = |c: &DevChain, i: usize| c.accounts.get(&c.senders[i]).map_or(0, |a| a.nonce);
        // A new account in each of the first 64 blocks, then the same 64 paid again: the state
        // (and so each block's cost to make and to witness) stops growing, and a long run
        // (the cohort bench's thousands of blocks) serves its last block as fast as its first.
        let fresh = Address::from_low_u64_be(0x1_0000_0000 + number % 64);
        let txs = vec![
            self.sign(0, nonce(self, 0), fresh, U256::from(1_000_000_000_000u64 * number), 21_000)?,
            self.sign(1, nonce(self, 1), self.counter, U256::zero(), 60_000)?,
            self.sign(2, nonce(self, 2), self.senders[0], U256::from(12_345u64), 21_000)?,
        ];
        let withdrawals = if number.is_multiple_of(4) {
            vec![Withdrawal { index: number, validator_index: 7, address: self.senders[2], amount: 1_000_000 }]
        } else {
            vec![]
        };
        let base_fee = calculate_base_fee_per_gas(
            parent.gas_limit,
            parent.gas_limit,
            parent.gas_used,
            parent.base_fee_per_gas.unwrap_or(1_000_000_000),
            ELASTICITY_MULTIPLIER,
        )
        .ok_or_else(|| err("base fee"))?;
        let mut header = BlockHeader {
            parent_hash: parent.compute_block_hash(&crypto),
            ommers_hash: parent.ommers_hash,
            coinbase: Address::from_low_u64_be(0xfee),
            transactions_root: compute_transactions_root(&txs, &crypto),
            number,
            gas_limit: parent.gas_limit,
            timestamp: if self.wall_clock {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                now.max(parent.timestamp + 1)
            } else {
                parent.timestamp + 12
            },
            extra_data: parent.extra_data.clone(),
            prev_randao: keccak(&number.to_be_bytes()),
            base_fee_per_gas: Some(base_fee),
            withdrawals_root: Some(compute_withdrawals_root(&withdrawals, &crypto)),
            blob_gas_used: Some(0),
            excess_blob_gas: Some(0),
            parent_beacon_block_root: Some(keccak(b"beacon")),
            ..BlockHeader::default()
        };
        let body = BlockBody { transactions: txs.clone(), ommers: vec![], withdrawals: Some(withdrawals.clone()) };

        let (pre_root, nodes) = self.tries()?;
        if pre_root != parent.state_root {
            return Err(err(format!("state drifted: maps give {pre_root:#x}, head says {:#x}", parent.state_root)));
        }
        let witness = RpcExecutionWitness {
            state: nodes.into_iter().map(Bytes::from).collect(),
            keys: vec![],
            codes: self.codes.values().map(|c| Bytes::from(c.clone())).collect(),
            headers: vec![Bytes::from(parent.encode_to_vec())],
        };
        let execution_witness = witness
            .clone()
            .into_execution_witness(self.config, number, std::slice::from_ref(&parent), &crypto)
            .map_err(err)?;
        let state = GuestProgramState::from_witness(execution_witness, &crypto).map_err(err)?;
        let arc: Arc<dyn Crypto + Send + Sync> = Arc::new(NativeCrypto);
        let mut db = GuestProgramStateWrapper::new(state, arc.clone());
        let mut vm = Evm::new_for_l1(db.clone(), arc);
        let (result, _) = vm.execute_block(&Block::new(header.clone(), body.clone())).map_err(err)?;
        let updates = vm.get_state_transitions().map_err(err)?;
        db.apply_account_updates(&updates).map_err(err)?;
        for u in &updates {
            if u.removed {
                self.accounts.remove(&u.address);
                continue;
            }
            let account = self.accounts.entry(u.address).or_default();
            if u.removed_storage {
                account.storage.clear();
            }
            if let Some(info) = &u.info {
                account.nonce = info.nonce;
                account.balance = info.balance;
                account.code_hash =
                    (info.code_hash != *ethrex_common::constants::EMPTY_KECCAK_HASH).then_some(info.code_hash);
            }
            for (k, v) in u.added_storage.iter() {
                if v.is_zero() {
                    account.storage.remove(k);
                } else {
                    account.storage.insert(*k, *v);
                }
            }
        }
        let (receipts_root, bloom) = compute_receipts_root_and_logs_bloom(&result.receipts, &crypto);
        header.gas_used = result.block_gas_used;
        header.receipts_root = receipts_root;
        header.logs_bloom = bloom;
        header.state_root = db.state_trie_root().map_err(err)?;
        let block = Block::new(header.clone(), body);
        let witness = self.touched_only(witness, &block, &parent)?;
        let served = Served {
            number,
            block_json: block_json(&block, &self.senders).to_string(),
            witness_json: witness_json(&witness).to_string(),
        };
        self.head = header;
        self.blocks.push(served);
        // Keep memory bounded on a long-running dev chain.
        if self.blocks.len() > 2000 {
            self.blocks.remove(0);
        }
        self.blocks.last().ok_or_else(|| err("no block"))
    }
}

#[cfg(test)]
mod tests;
