use super::*;

fn outputs() -> BlockOutputs {
    BlockOutputs::new([1; 32], [2; 32], [3; 32], 560_048, 11)
}

#[test]
fn the_encoding_is_ethrex_s_five_fields_and_reads_back() {
    let o = outputs();
    let bytes = o.encode();
    assert_eq!(&bytes[..32], &[1; 32], "the parent's state root first");
    assert_eq!(&bytes[64..96], &[3; 32], "the block hash third");
    assert_eq!(&bytes[96..128][29..], &560_048u32.to_be_bytes()[1..], "the chain id, big-endian U256");
    assert_eq!(bytes[159], 11, "the transaction count last");
    assert_eq!(BlockOutputs::decode(&bytes), o);
    assert_eq!(BlockOutputs::from_hex(&o.to_hex()), Some(o));
    assert_eq!(BlockOutputs::from_hex("abcd"), None);
    assert!(o.describe().contains("chain id 560048") && o.describe().contains("transaction count 11"));
}

#[test]
fn the_committed_words_of_either_layout_match_their_block() {
    for layout in [OutputLayout::Encoded, OutputLayout::Prefixed, OutputLayout::Sha256] {
        assert_eq!(compare(layout, &outputs(), &words_for(layout, &outputs())), Ok(()), "{layout:?}");
    }
    assert_eq!(
        words_for(OutputLayout::Prefixed, &outputs())[..3],
        [160, 0, 0x0101_0101],
        "bincode 1's u64 length first"
    );
    // Little-endian words: the first word holds the parent state root's first four bytes.
    assert_eq!(words_for(OutputLayout::Encoded, &outputs())[0], 0x0101_0101);
    assert_eq!(words_for(OutputLayout::Encoded, &outputs())[40..], [0; 24]);
    assert_eq!(words_for(OutputLayout::Sha256, &outputs())[8..], [0; 56]);
}

#[test]
fn a_mismatch_names_each_field_and_both_values() {
    let mut other = outputs();
    other.block_hash = [9; 32];
    other.tx_count = BlockOutputs::new([0; 32], [0; 32], [0; 32], 0, 12).tx_count;
    let said = compare(OutputLayout::Encoded, &outputs(), &words_for(OutputLayout::Encoded, &other)).unwrap_err();
    let text = said.to_string();
    assert!(
        text.starts_with(&format!(
            "the proof commits to block hash 0x{}, the block's is 0x{}",
            "09".repeat(32),
            "03".repeat(32)
        )),
        "{text}"
    );
    assert!(text.contains("transaction count 12, the block's is 11"), "{text}");
    assert!(!text.contains("state root"), "only the fields that differ: {text}");
}

#[test]
fn the_digest_layout_refuses_another_block_and_trailing_words_are_refused() {
    let mut other = outputs();
    other.state_root = [7; 32];
    let said = compare(OutputLayout::Sha256, &outputs(), &words_for(OutputLayout::Sha256, &other)).unwrap_err();
    assert!(matches!(said, Mismatch::Digest { .. }), "{said}");
    assert!(said.to_string().contains(&hex::encode(outputs().digest())), "{said}");
    let mut words = words_for(OutputLayout::Encoded, &outputs());
    words[63] = 1;
    let said = compare(OutputLayout::Encoded, &outputs(), &words).unwrap_err();
    assert_eq!(said, Mismatch::Trailing { layout: "encoded", first: 63, count: 1 });
    // A guest of the other generation: its digest is not the encoding, and its encoding runs past a digest.
    assert!(compare(OutputLayout::Encoded, &outputs(), &words_for(OutputLayout::Sha256, &outputs())).is_err());
    assert!(compare(OutputLayout::Sha256, &outputs(), &words_for(OutputLayout::Encoded, &outputs())).is_err());
    assert!(compare(OutputLayout::Sha256, &outputs(), &[]).is_err(), "no outputs at all");
}

#[test]
fn a_ziskos_line_names_its_generation_or_none() {
    assert_eq!(layout_of_ziskos(1, 4), Some(OutputLayout::Encoded));
    assert_eq!(layout_of_ziskos(0, 16), Some(OutputLayout::Prefixed));
    assert_eq!(layout_of_ziskos(0, 14), Some(OutputLayout::Sha256));
    assert_eq!(layout_of_ziskos(0, 18), None, "never guessed");
    assert_eq!(layout_of_ziskos(2, 0), None, "a newer line is never guessed");
    assert_eq!(OutputLayout::parse(" SHA256 "), Some(OutputLayout::Sha256));
    assert_eq!(OutputLayout::parse("raw"), None);
    let prefixed = words_for(OutputLayout::Prefixed, &outputs());
    let said = compare(OutputLayout::Prefixed, &outputs(), &words_for(OutputLayout::Encoded, &outputs())).unwrap_err();
    assert!(said.to_string().contains("length prefix"), "{said}");
    assert_eq!(compare(OutputLayout::Prefixed, &outputs(), &prefixed), Ok(()));
}
