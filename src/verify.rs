//! Checking a proof before it is accepted and reported: the published `zisk-verifier` crate
//! (pinned to ZisK 1.4.0-alpha, stable Rust, no GPU) run over the exact file the prover wrote
//! (`cargo-zisk prove -o FILE`, or the coordinator's `Proof.data`, which is the same
//! `Proof::to_bytes` layout and is written to the same file).
//!
//! The STARK is checked under the vadcop_final key compiled into the crate (never under the key
//! the proof carries). With a pinned program key (`PROGRAM_VK`), a proof of any other program is
//! refused before the STARK runs; without one, any program's proof verifies and the program key
//! it commits to is logged with the block.
//!
//! ZisK 0.x proofs have another layout and another setup: this crate cannot check them.

use std::io::Read;
use std::path::Path;

/// Words around the STARK in a saved proof: `[minimal][n_publics][publics ≤ 69][vk 4][tag]` and
/// a seed trailer of 5.
const FRAME_WORDS: usize = 2 + 69 + 4 + 1 + 5;

/// The largest file a saved proof of any family and stage can be: anything longer is refused
/// unread, so a prover's runaway output is never buffered.
pub fn max_proof_bytes() -> u64 {
    let stark = ["Poseidon1", "Poseidon2", "blake3"]
        .iter()
        .flat_map(|hash| [false, true].map(|minimal| zisk_verifier::proof_size(hash, minimal)))
        .flatten()
        .map(|size| size.max_bytes())
        .max()
        .unwrap_or(0);
    u64::try_from(stark.saturating_add(FRAME_WORDS * 8)).unwrap_or(u64::MAX)
}

/// A program key: the guest's ROM root, 4 little-endian u64 words (32 bytes).
pub type ProgramVk = [u64; 4];

/// The key as 64 hex characters: its 32 bytes in file order (what `PROGRAM_VK` takes).
pub fn vk_hex(vk: &ProgramVk) -> String {
    vk.iter().flat_map(|w| w.to_le_bytes()).map(|b| format!("{b:02x}")).collect()
}

/// `PROGRAM_VK`: 64 hex characters (`0x` optional), or the path of a 32-byte key file
/// (`cargo-zisk`'s program `.verkey.bin`).
pub fn parse_program_vk(text: &str) -> Result<ProgramVk, String> {
    let hex_text = text.trim().trim_start_matches("0x");
    let bytes = if hex_text.len() == 64 && hex_text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(hex_text).map_err(|e| e.to_string())?
    } else {
        let path = Path::new(text.trim());
        let len = std::fs::metadata(path)
            .map_err(|e| format!("is neither 64 hex characters nor a readable key file ({e})"))?
            .len();
        if len != 32 {
            return Err(format!("the key file {} has {len} bytes; a program key has 32", path.display()));
        }
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
    };
    zisk_verifier::decode_vk(&bytes).map_err(|e| e.to_string())
}

/// Whether this crate can check the proofs of this ZisK line.
pub fn supported(major: u64) -> bool {
    major == 1
}

/// The verification to run, from `VERIFY_PROOFS` (`None` when not given), whether the daemon
/// proves at all, the prover's ZisK major version and `PROGRAM_VK`. `Err` is the message for a
/// `VERIFY_PROOFS=on` that cannot be honoured (a start-up error naming the variable).
pub fn decide(
    setting: Option<bool>,
    proving: bool,
    zisk_major: u64,
    program_vk: Option<ProgramVk>,
) -> Result<Option<ProofCheck>, String> {
    match setting {
        Some(false) => Ok(None),
        // Execute and native runs make no proof: nothing to verify.
        _ if !proving => Ok(None),
        Some(true) if !supported(zisk_major) => Err(format!(
            "zisk-verifier {} reads ZisK 1.x proofs, and this prover is ZisK {zisk_major}.x; set VERIFY_PROOFS=off",
            VERIFIER_VERSION
        )),
        None if !supported(zisk_major) => Ok(None),
        _ => Ok(Some(ProofCheck { program_vk })),
    }
}

/// The zisk-verifier release compiled in (Cargo.toml pins it with `=`).
pub const VERIFIER_VERSION: &str = "1.4.0-alpha";

/// Why a proof was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    #[error("cannot read the proof {path}: {error}")]
    Unreadable { path: String, error: std::io::Error },
    #[error("the proof is {bytes} bytes, more than any ZisK proof ({cap})")]
    TooLarge { bytes: u64, cap: u64 },
    #[error("the proof does not verify: {0}")]
    Invalid(String),
    #[error("the verifier failed on this proof (it panicked); the proof is not trusted")]
    Panicked,
}

/// What a verified proof proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The program key the proof commits to (hex).
    pub program_vk: String,
    /// Whether it is a compressed (`--minimal`) proof.
    pub compressed: bool,
}

/// The verification the daemon runs, fixed at start-up.
#[derive(Debug, Clone)]
pub struct ProofCheck {
    /// The program every proof must be for; `None` accepts any program's proof.
    pub program_vk: Option<ProgramVk>,
}

impl ProofCheck {
    /// Verifies the proof file; blocking (a STARK check takes CPU time): run it off the async
    /// threads. A verifier that panics on hostile bytes is a rejection, never a crash.
    pub fn check_file(&self, path: &Path) -> Result<Verified, Rejected> {
        let unreadable = |error| Rejected::Unreadable { path: path.display().to_string(), error };
        let cap = max_proof_bytes();
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let bytes = file.metadata().map_err(unreadable)?.len();
        if bytes > cap {
            return Err(Rejected::TooLarge { bytes, cap });
        }
        let mut proof = Vec::new();
        file.take(cap.saturating_add(1)).read_to_end(&mut proof).map_err(unreadable)?;
        self.check_bytes(&proof)
    }

    pub fn check_bytes(&self, proof: &[u8]) -> Result<Verified, Rejected> {
        let expected = self.program_vk;
        let outcome = std::panic::catch_unwind(|| zisk_verifier::verify_saved(proof, expected.as_ref()))
            .map_err(|_| Rejected::Panicked)?;
        let verified = outcome.map_err(|e| match e {
            zisk_verifier::VerifyError::ProgramMismatch { committed } => Rejected::Invalid(format!(
                "it is a proof of program {}, not of PROGRAM_VK {}",
                vk_hex(&committed),
                expected.as_ref().map(vk_hex).unwrap_or_default()
            )),
            other => Rejected::Invalid(other.to_string()),
        })?;
        Ok(Verified { program_vk: vk_hex(&verified.program_vk), compressed: verified.is_aggregate.is_none() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A proof in the saved layout whose every field is well formed (a compressed Poseidon2 leaf
    /// of program `vk`, the STARK words of the right length) but whose STARK is made up.
    fn forged(vk: &ProgramVk) -> Vec<u8> {
        let hash = "Poseidon2";
        let stark_bytes = zisk_verifier::proof_size(hash, true).unwrap().max_bytes();
        let mut words: Vec<u64> = vec![1, 68];
        words.extend(vk);
        words.extend((0..64).map(|i| i as u64));
        words.extend((0..stark_bytes / 8).map(|i| (i as u64).wrapping_mul(0x9E37_79B9) % 0xFFFF_FFFF_0000_0001));
        words.extend(zisk_verifier::vadcop_vk(hash, true).unwrap());
        words.push(zisk_verifier::hash_tag(hash).unwrap());
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn garbage_truncated_and_forged_proofs_are_rejected() {
        let any = ProofCheck { program_vk: None };
        assert!(matches!(any.check_bytes(b"not a proof at all"), Err(Rejected::Invalid(_))));
        assert!(matches!(any.check_bytes(&[0u8; 4096]), Err(Rejected::Invalid(_))));
        let vk = [1, 2, 3, 4];
        let proof = forged(&vk);
        assert!(matches!(any.check_bytes(&proof[..proof.len() / 2]), Err(Rejected::Invalid(_))), "truncated");
        let forged_stark = any.check_bytes(&proof).unwrap_err();
        assert!(forged_stark.to_string().contains("STARK verification failed"), "{forged_stark}");
        let pinned = ProofCheck { program_vk: Some([9, 9, 9, 9]) };
        let other_program = pinned.check_bytes(&proof).unwrap_err().to_string();
        assert!(other_program.contains(&vk_hex(&vk)) && other_program.contains("not of PROGRAM_VK"), "{other_program}");
    }

    #[test]
    fn a_proof_file_larger_than_any_proof_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proof.bin");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(max_proof_bytes() + 1).unwrap();
        let refused = ProofCheck { program_vk: None }.check_file(&path).unwrap_err();
        assert!(matches!(refused, Rejected::TooLarge { .. }), "{refused}");
        assert!(max_proof_bytes() > 1024 && max_proof_bytes() < 64 << 20, "{}", max_proof_bytes());
    }

    #[test]
    fn proofs_are_verified_by_default_when_proving_with_zisk_1() {
        let vk = Some([1, 2, 3, 4]);
        assert_eq!(decide(None, true, 1, vk).unwrap().map(|c| c.program_vk), Some(vk), "the default when proving");
        assert!(decide(Some(false), true, 1, vk).unwrap().is_none(), "the operator's off");
        assert!(decide(None, false, 1, None).unwrap().is_none(), "execute/native make no proof");
        assert!(decide(Some(true), false, 0, None).unwrap().is_none());
        assert!(decide(None, true, 0, None).unwrap().is_none(), "0.x proofs cannot be read: off unless asked");
        let refused = decide(Some(true), true, 0, None).unwrap_err();
        assert!(refused.contains("ZisK 0.x") && refused.contains("VERIFY_PROOFS=off"), "{refused}");
    }

    #[test]
    fn a_program_key_is_64_hex_characters_or_a_32_byte_file() {
        let vk = [0x0102_0304_0506_0708, 2, 3, u64::MAX];
        let hex = vk_hex(&vk);
        assert!(hex.starts_with("0807060504030201"), "file order: little-endian words");
        assert_eq!(parse_program_vk(&hex), Ok(vk));
        assert_eq!(parse_program_vk(&format!("0x{hex}")), Ok(vk));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("program.verkey.bin");
        std::fs::write(&file, vk.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
        assert_eq!(parse_program_vk(file.to_str().unwrap()), Ok(vk));
        std::fs::write(&file, [0u8; 31]).unwrap();
        assert!(parse_program_vk(file.to_str().unwrap()).unwrap_err().contains("31 bytes"));
        assert!(parse_program_vk("abc").is_err());
    }
}
