use super::*;

fn outputs(tag: u8) -> BlockOutputs {
    BlockOutputs::new([tag; 32], [tag.wrapping_add(1); 32], [tag.wrapping_add(2); 32], 1337, 3)
}

/// A proof in the saved layout whose every field is well formed (a compressed Poseidon2 leaf of
/// program `vk` committing `words`) but whose STARK is made up.
pub(crate) fn forged(vk: &ProgramVk, words: &[u32; 64]) -> Vec<u8> {
    let hash = "Poseidon2";
    let stark_bytes = zisk_verifier::proof_size(hash, true).unwrap().max_bytes();
    let mut out: Vec<u64> = vec![1, 68];
    out.extend(vk);
    out.extend(words.iter().map(|w| u64::from(*w)));
    out.extend((0..stark_bytes / 8).map(|i| (i as u64).wrapping_mul(0x9E37_79B9) % 0xFFFF_FFFF_0000_0001));
    out.extend(zisk_verifier::vadcop_vk(hash, true).unwrap());
    out.push(zisk_verifier::hash_tag(hash).unwrap());
    out.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn check(vk: Option<ProgramVk>) -> ProofCheck {
    ProofCheck { program_vk: vk, key_source: vk.map(|_| KeySource::Setting), layout: Some(OutputLayout::Encoded) }
}

#[test]
fn garbage_truncated_and_forged_proofs_are_rejected() {
    let any = ProofCheck { program_vk: None, key_source: None, layout: None };
    assert!(matches!(any.check_bytes(b"not a proof at all", None, None), Err(Rejected::Invalid(_))));
    assert!(matches!(any.check_bytes(&[0u8; 4096], None, None), Err(Rejected::Invalid(_))));
    let vk = [1, 2, 3, 4];
    let proof = forged(&vk, &commitment::words_for(OutputLayout::Encoded, &outputs(1)));
    assert!(matches!(any.check_bytes(&proof[..proof.len() / 2], None, None), Err(Rejected::Invalid(_))), "truncated");
    let forged_stark = check(Some(vk)).check_bytes(&proof, Some(&outputs(1)), Some(&vk)).unwrap_err();
    assert!(forged_stark.to_string().contains("STARK verification failed"), "right block and program: {forged_stark}");
    let other_program =
        check(Some([9; 4])).check_bytes(&proof, Some(&outputs(1)), Some(&[9; 4])).unwrap_err().to_string();
    assert!(other_program.contains(&vk_hex(&vk)) && other_program.contains("PROGRAM_VK"), "{other_program}");
}

#[test]
fn a_proof_committing_to_another_block_is_refused_naming_the_field_before_the_stark_runs() {
    let vk = [1, 2, 3, 4];
    let proof_of_block_1 = forged(&vk, &commitment::words_for(OutputLayout::Encoded, &outputs(1)));
    let said = check(Some(vk)).check_bytes(&proof_of_block_1, Some(&outputs(5)), Some(&vk)).unwrap_err();
    let text = said.to_string();
    assert!(matches!(said, Rejected::Outputs(Mismatch::Fields(_))), "{text}");
    assert!(
        text.contains(&format!("block hash 0x{}, the block's is 0x{}", "03".repeat(32), "07".repeat(32))),
        "names the field and both values: {text}"
    );
    // A proof with outputs but no record of what this block's must be is not trusted either.
    let none = check(Some(vk)).check_bytes(&proof_of_block_1, None, Some(&vk)).unwrap_err();
    assert!(matches!(none, Rejected::NoExpectedOutputs), "{none}");
    // The coordinator's key not known yet: refused, never checked for any program.
    let pending = ProofCheck { program_vk: None, key_source: Some(KeySource::Coordinator), layout: None };
    assert!(matches!(pending.check_bytes(&proof_of_block_1, None, None), Err(Rejected::NoProgramKey(_))));
}

#[test]
fn a_proof_larger_than_any_proof_is_refused_unchecked() {
    let big = vec![0u8; usize::try_from(max_proof_bytes()).unwrap() + 8];
    let refused = check(None).check_bytes(&big, Some(&outputs(1)), None).unwrap_err();
    assert!(matches!(refused, Rejected::TooLarge { .. }), "{refused}");
    assert!(max_proof_bytes() > 1024 && max_proof_bytes() < 64 << 20, "{}", max_proof_bytes());
}

fn facts(setting: Option<ProgramVk>, layout: Result<OutputLayout, LayoutUnknown>) -> Facts {
    Facts { setting, setup_cache: None, coordinator: false, layout }
}

#[test]
fn reporting_needs_a_program_key_and_a_layout_unless_verification_is_explicitly_off() {
    let vk = [1, 2, 3, 4];
    let known = || facts(Some(vk), Ok(OutputLayout::Encoded));
    let on = decide(None, true, true, 1, known()).unwrap().unwrap();
    assert_eq!(
        (on.program_vk, on.key_source, on.layout),
        (Some(vk), Some(KeySource::Setting), Some(OutputLayout::Encoded))
    );
    assert!(
        decide(Some(false), true, true, 1, facts(None, Err(LayoutUnknown::NoElf))).unwrap().is_none(),
        "the operator's off"
    );
    assert!(decide(None, false, true, 1, known()).unwrap().is_none(), "execute/native make no proof");

    let no_key = decide(None, true, true, 1, facts(None, Ok(OutputLayout::Encoded))).unwrap_err();
    assert_eq!(no_key.variable, "PROGRAM_VK");
    assert!(no_key.message.contains("cargo-zisk setup") && no_key.message.contains("VERIFY_PROOFS=off"), "{no_key:?}");
    let not_reporting = decide(None, true, false, 1, facts(None, Err(LayoutUnknown::NoElf))).unwrap().unwrap();
    assert_eq!((not_reporting.key_source, not_reporting.layout), (None, None), "reporting off: any program, logged");

    let no_layout =
        decide(None, true, true, 1, facts(Some(vk), Err(LayoutUnknown::UnknownZiskos("0.18.0".into())))).unwrap_err();
    assert_eq!(no_layout.variable, "GUEST_OUTPUT");
    assert!(no_layout.message.contains("ziskos 0.18") && no_layout.message.contains("encoded|prefixed|sha256"));

    let cache = Facts { setup_cache: Some(("/c/k.verkey.bin".into(), vk)), ..facts(None, Ok(OutputLayout::Encoded)) };
    let cached = decide(None, true, true, 1, cache).unwrap().unwrap();
    assert_eq!(cached.key_source, Some(KeySource::SetupCache("/c/k.verkey.bin".into())));
    let coordinator = Facts { coordinator: true, ..facts(None, Ok(OutputLayout::Encoded)) };
    let remote = decide(None, true, true, 1, coordinator).unwrap().unwrap();
    assert_eq!((remote.program_vk, remote.key_source), (None, Some(KeySource::Coordinator)));

    let zero = decide(None, true, true, 0, known()).unwrap_err();
    assert!(zero.variable == "VERIFY_PROOFS" && zero.message.contains("ZisK 0.x"), "{zero:?}");
    assert!(decide(None, true, false, 0, known()).unwrap().is_none(), "0.x without reporting: nothing to check with");
}

#[test]
fn the_set_up_cache_key_is_found_by_the_elf_s_blake3() {
    let dir = tempfile::tempdir().unwrap();
    let elf = b"an elf";
    let vk = [5u64, 6, 7, 8];
    assert_eq!(setup_cache_key(dir.path(), elf), None);
    let name = format!("{}_program.verkey.bin", blake3::hash(elf).to_hex());
    let bytes: Vec<u8> = vk.iter().flat_map(|w| w.to_le_bytes()).collect();
    std::fs::write(dir.path().join(&name), &bytes).unwrap();
    std::fs::write(dir.path().join(format!("{}_x.verkey.bin", blake3::hash(b"another").to_hex())), &bytes).unwrap();
    assert_eq!(setup_cache_key(dir.path(), elf), Some((dir.path().join(&name), vk)));
    std::fs::write(dir.path().join(&name), [0u8; 31]).unwrap();
    assert_eq!(setup_cache_key(dir.path(), elf), None, "a key file of the wrong size is no key");
}

#[test]
fn a_program_key_is_64_hex_characters_or_a_32_byte_file() {
    let vk = [0x0102_0304_0506_0708, 2, 3, u64::MAX];
    let hex = vk_hex(&vk);
    assert!(hex.starts_with("0807060504030201"), "file order: little-endian words");
    assert_eq!(parse_program_vk(&hex).unwrap(), vk);
    assert_eq!(parse_program_vk(&format!("0x{hex}")).unwrap(), vk);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("program.verkey.bin");
    std::fs::write(&file, vk.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    assert_eq!(parse_program_vk(file.to_str().unwrap()).unwrap(), vk);
    std::fs::write(&file, [0u8; 31]).unwrap();
    assert!(parse_program_vk(file.to_str().unwrap()).unwrap_err().to_string().contains("31 bytes"));
    assert!(parse_program_vk("abc").is_err());
}
