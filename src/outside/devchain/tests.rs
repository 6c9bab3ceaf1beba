use super::*;
use crate::block::input::{self, Framing, GenerateOptions};

#[test]
fn run_dev_blocks_carry_the_time_they_are_made() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut live = DevChain::new().unwrap().with_wall_clock();
    let served = live.produce().unwrap().clone();
    let block: serde_json::Value = serde_json::from_str(&served.block_json).unwrap();
    let ts = u64::from_str_radix(block["timestamp"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    assert!(ts >= now && ts <= now + 5, "a dev block is from now, not 2023: {ts} vs {now}");
    let mut fixed = DevChain::new().unwrap();
    let served = fixed.produce().unwrap().clone();
    let block: serde_json::Value = serde_json::from_str(&served.block_json).unwrap();
    assert_eq!(block["timestamp"], "0x6553f10c", "fixtures stay deterministic (genesis + 12 s)");
}

#[test]
fn every_block_passes_native_validation() {
    let mut chain = DevChain::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..6 {
        let served = chain.produce().unwrap().clone();
        let out = dir.path().join(format!("{}.bin", served.number));
        let generated = input::generate(
            served.block_json.into_bytes(),
            served.witness_json.into_bytes(),
            &chain.config(),
            GenerateOptions { framing: Framing::Framed, validate: true, expect_block: None },
            &out,
        )
        .unwrap_or_else(|e| panic!("block {}: {e}", served.number));
        assert_eq!(generated.summary.tx_count, 3);
        assert_eq!(generated.validation.as_str(), "ok");
    }
    // The counter was called once per block.
    assert_eq!(chain.accounts[&chain.counter].storage.get(&H256::zero()), Some(&U256::from(6)));
}

#[test]
fn served_witnesses_hold_only_what_execution_touches() {
    let mut chain = DevChain::new().unwrap();
    for _ in 0..8 {
        chain.produce().unwrap();
    }
    let served = chain.served(8).unwrap().clone();
    let witness: serde_json::Value = serde_json::from_str(&served.witness_json).unwrap();
    let (_, all_nodes) = chain.tries().unwrap();
    let state = witness["state"].as_array().unwrap();
    assert!(state.len() < all_nodes.len(), "{} served of {} in the post-state", state.len(), all_nodes.len());
    // Every node is needed: without any one of them the block no longer validates.
    let dir = tempfile::tempdir().unwrap();
    for i in 0..state.len() {
        let mut w = witness.clone();
        w["state"].as_array_mut().unwrap().remove(i);
        let result = input::generate(
            served.block_json.clone().into_bytes(),
            w.to_string().into_bytes(),
            &chain.config(),
            GenerateOptions { framing: Framing::Raw, validate: true, expect_block: None },
            &dir.path().join("x.bin"),
        );
        assert!(result.is_err(), "state node {i} was not needed");
    }
}
