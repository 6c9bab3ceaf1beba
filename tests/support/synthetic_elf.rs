// Small synthetic guest ELFs, shared by the crate's unit tests (`src/elf.rs`) and the
// integration tests: no third-party binary is needed to test what an ELF says it was built from.

/// An ELF-looking file whose strings carry `paths`, as a real guest's panic locations do
/// (what `elf::fingerprint` reads).
pub fn synthetic_elf(paths: &[&str]) -> Vec<u8> {
    let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec();
    elf.extend_from_slice(&[0x13, 0x00, 0x00, 0x00, 0xff, 0xfe].repeat(64));
    for p in paths {
        elf.extend_from_slice(p.as_bytes());
        elf.extend_from_slice(b"\0attempt to add with overflow\0");
    }
    elf
}
