//! Builds the in-repo mini chain: a Cancun chain (id 1337) whose blocks 10 and 11 each hold one
//! signed EIP-1559 transfer (block 10 also a withdrawal), with the witnesses a node would return.
//!
//! Only run to regenerate `tests/data/mini-chain/` (`cargo test --test input_cli -- --ignored
//! regenerate_mini_chain`); the committed files are what the tests read. Post-execution header
//! fields are filled in by executing the block with ethrex's VM, the way a block builder does.

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
use serde_json::Value;

pub const CHAIN_JSON: &str = r#"{
  "chainId": 1337,
  "homesteadBlock": 0,
  "eip150Block": 0,
  "eip155Block": 0,
  "eip158Block": 0,
  "byzantiumBlock": 0,
  "constantinopleBlock": 0,
  "petersburgBlock": 0,
  "istanbulBlock": 0,
  "berlinBlock": 0,
  "londonBlock": 0,
  "mergeNetsplitBlock": 0,
  "terminalTotalDifficulty": "0x0",
  "terminalTotalDifficultyPassed": true,
  "shanghaiTime": 0,
  "cancunTime": 0,
  "depositContractAddress": "0x0000000000000000000000000000000000000000"
}
"#;

fn keccak(data: &[u8]) -> H256 {
    H256(NativeCrypto.keccak256(data))
}

fn sign(mut tx: EIP1559Transaction, secret: &secp256k1::SecretKey) -> Transaction {
    let (payload, _) = Transaction::EIP1559Transaction(tx.clone()).signing_payload().unwrap().unwrap();
    let msg = secp256k1::Message::from_digest(keccak(&payload).0);
    let (rec_id, sig) = secp256k1::SECP256K1.sign_ecdsa_recoverable(&msg, secret).serialize_compact();
    tx.signature_r = U256::from_big_endian(&sig[..32]);
    tx.signature_s = U256::from_big_endian(&sig[32..]);
    tx.signature_y_parity = U256::from(i32::from(rec_id) as u64);
    Transaction::EIP1559Transaction(tx)
}

/// Executes a provisional block on the witness, fills in the post-execution header fields, and
/// returns the sealed block with the state after it (to draw the next block's witness from).
fn seal(
    config: ChainConfig,
    parent: &BlockHeader,
    state_nodes: Vec<Vec<u8>>,
    mut header: BlockHeader,
    body: BlockBody,
) -> (Block, RpcExecutionWitness, GuestProgramStateWrapper) {
    let crypto = NativeCrypto;
    let witness = RpcExecutionWitness {
        state: state_nodes.into_iter().map(Bytes::from).collect(),
        keys: vec![],
        codes: vec![],
        headers: vec![Bytes::from(parent.encode_to_vec())],
    };
    let execution_witness =
        witness.clone().into_execution_witness(config, header.number, std::slice::from_ref(parent), &crypto).unwrap();
    let state = GuestProgramState::from_witness(execution_witness, &crypto).unwrap();
    let crypto_arc: Arc<dyn Crypto + Send + Sync> = Arc::new(NativeCrypto);
    let mut db = GuestProgramStateWrapper::new(state, crypto_arc.clone());
    let provisional = Block::new(header.clone(), body.clone());
    let mut vm = Evm::new_for_l1(db.clone(), crypto_arc);
    let (result, _) = vm.execute_block(&provisional).unwrap();
    db.apply_account_updates(&vm.get_state_transitions().unwrap()).unwrap();
    let (receipts_root, bloom) = compute_receipts_root_and_logs_bloom(&result.receipts, &crypto);
    header.gas_used = result.block_gas_used;
    header.receipts_root = receipts_root;
    header.logs_bloom = bloom;
    header.state_root = db.state_trie_root().unwrap();
    (Block::new(header, body), witness, db)
}

/// Returns (block JSON, witness JSON) for blocks 10 and 11 of the mini chain.
pub fn build() -> Vec<(Value, Value)> {
    let crypto = NativeCrypto;
    let config: ChainConfig = serde_json::from_str(CHAIN_JSON).unwrap();
    let secret = secp256k1::SecretKey::from_slice(&[0x11; 32]).unwrap();
    let public = secp256k1::PublicKey::from_secret_key_global(&secret).serialize_uncompressed();
    let sender = Address::from_slice(&keccak(&public[1..]).0[12..]);
    let recipient = Address::from_low_u64_be(0xbeef);
    let validator = Address::from_low_u64_be(0xcafe);
    let coinbase = Address::from_low_u64_be(0xc0ffee);
    // EIP-4788's contract is absent from this chain: reading its absence needs its trie path.
    let beacon_roots = Address::from_slice(&hex::decode("000F3df6D732807Ef1319fB7B8bB8522d0Beac02").unwrap());

    let mut trie = ethrex_trie::Trie::new_temp();
    let funded = AccountState { nonce: 0, balance: U256::from(10u64) * U256::exp10(18), ..AccountState::default() };
    trie.insert(keccak(sender.as_bytes()).0.to_vec(), funded.encode_to_vec()).unwrap();
    let pre_state_root = trie.hash_no_commit(&crypto);
    let state_nodes = trie.get_proof(keccak(sender.as_bytes()).as_bytes()).unwrap();

    let parent = BlockHeader {
        parent_hash: keccak(b"mini-chain block 8"),
        ommers_hash: H256::from_slice(
            &hex::decode("1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347").unwrap(),
        ),
        state_root: pre_state_root,
        transactions_root: ethrex_trie::EMPTY_TRIE_HASH,
        receipts_root: ethrex_trie::EMPTY_TRIE_HASH,
        number: 9,
        gas_limit: 30_000_000,
        timestamp: 1_700_000_000,
        base_fee_per_gas: Some(1_000_000_000),
        withdrawals_root: Some(ethrex_trie::EMPTY_TRIE_HASH),
        blob_gas_used: Some(0),
        excess_blob_gas: Some(0),
        parent_beacon_block_root: Some(keccak(b"beacon 9")),
        ..BlockHeader::default()
    };

    let mut out = Vec::new();
    let mut parent = parent;
    let mut state_nodes = state_nodes;
    for (number, nonce, withdrawals) in [
        (10u64, 0u64, vec![Withdrawal { index: 7, validator_index: 42, address: validator, amount: 1_000_000 }]),
        (11, 1, vec![]),
    ] {
        let base_fee = calculate_base_fee_per_gas(
            30_000_000,
            parent.gas_limit,
            parent.gas_used,
            parent.base_fee_per_gas.unwrap(),
            ELASTICITY_MULTIPLIER,
        )
        .unwrap();
        let tx = sign(
            EIP1559Transaction {
                chain_id: 1337,
                nonce,
                max_priority_fee_per_gas: 2_000_000_000,
                max_fee_per_gas: 5_000_000_000,
                gas_limit: 21_000,
                to: TxKind::Call(recipient),
                value: U256::from(123_456_789u64),
                data: Bytes::new(),
                ..Default::default()
            },
            &secret,
        );
        assert_eq!(tx.sender(&crypto).unwrap(), sender);
        let header = BlockHeader {
            parent_hash: parent.compute_block_hash(&crypto),
            ommers_hash: parent.ommers_hash,
            coinbase,
            transactions_root: compute_transactions_root(std::slice::from_ref(&tx), &crypto),
            number,
            gas_limit: 30_000_000,
            timestamp: parent.timestamp + 12,
            prev_randao: keccak(format!("randao {number}").as_bytes()),
            base_fee_per_gas: Some(base_fee),
            withdrawals_root: Some(compute_withdrawals_root(&withdrawals, &crypto)),
            blob_gas_used: Some(0),
            excess_blob_gas: Some(0),
            parent_beacon_block_root: Some(keccak(format!("beacon {number}").as_bytes())),
            extra_data: Bytes::from_static(b"ethproofs-daemon mini chain"),
            ..BlockHeader::default()
        };
        let body = BlockBody { transactions: vec![tx.clone()], ommers: vec![], withdrawals: Some(withdrawals.clone()) };
        let (block, witness, db) = seal(config, &parent, state_nodes, header, body);
        out.push((block_json(&block, sender), witness_json(&witness)));

        // The next block's witness: every node on the paths it will touch, from this block's post-state.
        let post = db.lock_mutex().unwrap();
        let mut nodes: Vec<Vec<u8>> = Vec::new();
        for account in [sender, recipient, coinbase, validator, beacon_roots] {
            for node in post.state_trie.get_proof(keccak(account.as_bytes()).as_bytes()).unwrap() {
                if !nodes.contains(&node) {
                    nodes.push(node);
                }
            }
        }
        drop(post);
        state_nodes = nodes;
        parent = block.header.clone();
    }
    out
}

fn block_json(block: &Block, sender: Address) -> Value {
    ethproofs_daemon::outside::devchain::block_json(block, &[sender])
}

fn witness_json(witness: &RpcExecutionWitness) -> Value {
    ethproofs_daemon::outside::devchain::witness_json(witness)
}
