// Small synthetic guest ELFs, shared by the crate's unit tests (`src/block/elf.rs`) and the
// integration tests: no third-party binary is needed to test what an ELF says it was built from.

/// An ELF-looking file whose strings carry `paths`, as a real guest's panic locations do
/// (what `elf::fingerprint` reads).
pub fn synthetic_elf(paths: &[&str]) -> Vec<u8> {
    let mut elf = riscv_header();
    elf.extend_from_slice(&[0x13, 0x00, 0x00, 0x00, 0xff, 0xfe].repeat(64));
    for p in paths {
        elf.extend_from_slice(p.as_bytes());
        elf.extend_from_slice(b"\0attempt to add with overflow\0");
    }
    elf
}

/// The 64-byte header of a 64-bit little-endian RISC-V executable (what a ZisK guest is).
pub fn riscv_header() -> Vec<u8> {
    let mut h = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec();
    h.extend_from_slice(&2u16.to_le_bytes()); // e_type: executable
    h.extend_from_slice(&243u16.to_le_bytes()); // e_machine: RISC-V
    h.extend_from_slice(&1u32.to_le_bytes()); // e_version
    h.resize(64, 0);
    h
}

/// A guest-shaped ELF whose body is `body`.
pub fn riscv_elf(body: &[u8]) -> Vec<u8> {
    let mut elf = riscv_header();
    elf.extend_from_slice(body);
    elf
}
