//! What a proof of each real block must commit to, computed the way the daemon computes it when
//! it builds the input, and compared with what a proof of another block, another chain, swapped
//! roots or another transaction count would commit.

use std::path::{Path, PathBuf};

use ethrex_common::types::ChainConfig;

use crate::block::commitment::{BlockOutputs, Mismatch, OutputLayout, compare, words_for};

/// The real fixtures (`../shared/fixtures`) and the repo's own mini chain.
fn fixture_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("../shared/fixtures"))
        .map(|entries| {
            entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("expected.json").is_file()).collect()
        })
        .unwrap_or_default();
    dirs.sort();
    assert!(std::env::var("CI").is_err() || dirs.len() >= 4, "../shared/fixtures is missing under CI");
    dirs.push(root.join("tests/data/mini-chain"));
    dirs
}

/// The block's outputs, from the same parse and conversion that builds its input.
fn outputs_of(dir: &Path) -> (BlockOutputs, serde_json::Value, u64) {
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let chain: ChainConfig = serde_json::from_slice(&read("chain.json")).unwrap();
    let raw = super::parse(&read("eth_getBlockByNumber.json"), &read("debug_executionWitness.json")).unwrap();
    let (_, summary) = raw.convert(&chain).unwrap();
    let expected: serde_json::Value = serde_json::from_slice(&read("expected.json")).unwrap();
    (summary.outputs(chain.chain_id), expected, chain.chain_id)
}

#[test]
fn each_real_block_s_outputs_are_its_own_and_pass() {
    for dir in fixture_dirs() {
        let (outputs, expected, _) = outputs_of(&dir);
        if let Some(hash) = expected["block_hash"].as_str() {
            assert_eq!(format!("0x{}", hex::encode(outputs.block_hash)), hash, "{}", dir.display());
            let root = expected["state_root_after"].as_str().unwrap();
            assert_eq!(format!("0x{}", hex::encode(outputs.state_root)), root, "{}", dir.display());
            assert_eq!(outputs.tx_count[31] as u64, expected["tx_count"].as_u64().unwrap());
        }
        assert_ne!(
            outputs.parent_state_root,
            outputs.state_root,
            "{}: the parent's root is not the block's",
            dir.display()
        );
        for layout in [OutputLayout::Encoded, OutputLayout::Sha256] {
            assert_eq!(compare(layout, &outputs, &words_for(layout, &outputs)), Ok(()), "{}", dir.display());
        }
    }
}

#[test]
fn another_block_another_chain_swapped_roots_or_another_count_each_fail() {
    let dirs = fixture_dirs();
    let all: Vec<(BlockOutputs, u64)> = dirs.iter().map(|d| outputs_of(d)).map(|(o, _, id)| (o, id)).collect();
    let committed = |o: &BlockOutputs| words_for(OutputLayout::Encoded, o);
    for (i, (block, chain_id)) in all.iter().enumerate() {
        let other = &all[(i + 1) % all.len()].0;
        if other != block {
            let said = compare(OutputLayout::Encoded, block, &committed(other)).unwrap_err().to_string();
            let hashes = (hex::encode(other.block_hash), hex::encode(block.block_hash));
            assert!(said.contains(&format!("block hash 0x{}, the block's is 0x{}", hashes.0, hashes.1)), "{said}");
            assert!(compare(OutputLayout::Sha256, block, &words_for(OutputLayout::Sha256, other)).is_err());
        }

        let mut chain = *block;
        chain.chain_id = BlockOutputs::new([0; 32], [0; 32], [0; 32], chain_id + 1, 0).chain_id;
        let said = compare(OutputLayout::Encoded, block, &committed(&chain)).unwrap_err().to_string();
        assert_eq!(said, format!("the proof commits to chain id {}, the block's is {chain_id}", chain_id + 1));

        let mut swapped = *block;
        (swapped.parent_state_root, swapped.state_root) = (block.state_root, block.parent_state_root);
        let Err(Mismatch::Fields(diffs)) = compare(OutputLayout::Encoded, block, &committed(&swapped)) else {
            panic!("swapped roots passed")
        };
        assert_eq!(diffs.iter().map(|d| d.field).collect::<Vec<_>>(), ["parent state root", "state root"]);

        let mut count = *block;
        count.tx_count[31] ^= 1;
        let said = compare(OutputLayout::Encoded, block, &committed(&count)).unwrap_err().to_string();
        assert!(said.starts_with("the proof commits to transaction count"), "{said}");
        assert!(compare(OutputLayout::Sha256, block, &words_for(OutputLayout::Sha256, &count)).is_err());
    }
}
