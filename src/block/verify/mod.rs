//! Checking a proof before it is accepted and reported: the published `zisk-verifier` crate
//! (pinned to ZisK 1.4.0-alpha, stable Rust, no GPU) run over the exact file the prover wrote
//! (`cargo-zisk prove -o FILE`, or the coordinator's `Proof.data`, which is the same
//! `Proof::to_bytes` layout and is written to the same file).
//!
//! The STARK is checked under the vadcop_final key compiled into the crate (never under the key
//! the proof carries), for the program key from `PROGRAM_VK`, cargo-zisk's set-up cache or the
//! coordinator's set-up ([`KeySource`]); and the outputs the guest committed are compared with
//! the block's ([`crate::block::commitment`]): a valid proof of another block, chain or program is
//! refused. With reporting off and no key, any program's proof verifies and its key is logged.
//!
//! ZisK 0.x proofs have another layout and another setup: this crate cannot check them.

use std::path::{Path, PathBuf};

use crate::block::commitment::{self, BlockOutputs, LayoutUnknown, Mismatch, OutputLayout};

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
pub fn parse_program_vk(text: &str) -> Result<ProgramVk, VkError> {
    let hex_text = text.trim().trim_start_matches("0x");
    let bytes = if hex_text.len() == 64 && hex_text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(hex_text).map_err(|e| VkError::Undecodable(e.to_string()))?
    } else {
        let path = Path::new(text.trim());
        let len = std::fs::metadata(path).map_err(VkError::NeitherHexNorFile)?.len();
        if len != 32 {
            return Err(VkError::WrongSize { path: path.display().to_string(), len });
        }
        std::fs::read(path).map_err(|error| VkError::Unreadable { path: path.display().to_string(), error })?
    };
    zisk_verifier::decode_vk(&bytes).map_err(|e| VkError::Undecodable(e.to_string()))
}

/// Why a `PROGRAM_VK` (or a key the coordinator gave) is not a program key.
#[derive(Debug, thiserror::Error)]
pub enum VkError {
    #[error("is neither 64 hex characters nor a readable key file ({0})")]
    NeitherHexNorFile(std::io::Error),
    #[error("the key file {path} has {len} bytes; a program key has 32")]
    WrongSize { path: String, len: u64 },
    #[error("cannot read {path}: {error}")]
    Unreadable { path: String, error: std::io::Error },
    #[error("{0}")]
    Undecodable(String),
}

/// Whether this crate can check the proofs of this ZisK line.
pub fn supported(major: u64) -> bool {
    major == 1
}

/// Whether `proof` is a whole saved proof (every part of the layout there, its STARK of a length
/// the stage's proofs have), without checking the STARK: how a proof found after a crash is told
/// from a file the prover was still writing when verification is off.
pub fn is_whole(proof: &[u8]) -> bool {
    let Ok(Ok(saved)) = std::panic::catch_unwind(|| zisk_verifier::decode_saved(proof)) else { return false };
    let p = &saved.proof;
    zisk_verifier::proof_size(&p.hash, p.compressed).is_some_and(|size| size.admits(p.proof.len() * 8))
}

/// What start-up knows of the program key and the guest's output layout.
#[derive(Debug, Clone)]
pub struct Facts {
    /// `PROGRAM_VK`, decoded.
    pub setting: Option<ProgramVk>,
    /// The key in cargo-zisk's set-up cache for this ELF, and the file it came from.
    pub setup_cache: Option<(PathBuf, ProgramVk)>,
    /// The coordinator proves: its set-up job says the key.
    pub coordinator: bool,
    /// How the guest commits its outputs (`GUEST_OUTPUT`, or what the ELF's ziskos says), and
    /// why it is not known when it is not.
    pub layout: Result<OutputLayout, LayoutUnknown>,
}

impl Facts {
    /// What is known before anything runs: `PROGRAM_VK`, else the key cargo-zisk's set-up
    /// cached under `$HOME/.zisk/cache` for this ELF (not looked for when the coordinator gives
    /// the key), and the output layout as `layout` says. Shared by start-up and `doctor`, so both
    /// judge the same way.
    pub fn gather(
        setting: Option<ProgramVk>,
        coordinator: bool,
        elf: Option<&[u8]>,
        layout: Result<OutputLayout, LayoutUnknown>,
    ) -> Facts {
        let setup_cache = match (setting, elf, coordinator) {
            (None, Some(bytes), false) => {
                std::env::var_os("HOME").and_then(|home| setup_cache_key(&Path::new(&home).join(".zisk/cache"), bytes))
            }
            _ => None,
        };
        Facts { setting, setup_cache, coordinator, layout }
    }
}

/// A verification setting start-up cannot honour: the variable to name, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub variable: &'static str,
    pub message: String,
}

/// The verification to run, from `VERIFY_PROOFS` (`None` when not given), whether the daemon
/// proves at all, whether it reports to EthProofs, the prover's ZisK major version and what is
/// known of the program key and the output layout. With reporting on, a proof is checked for
/// this program and this block, or the start is refused naming the setting that would make it
/// so; only an explicit `VERIFY_PROOFS=off` reports proofs unchecked.
pub fn decide(
    setting: Option<bool>,
    proving: bool,
    reporting: bool,
    zisk_major: u64,
    facts: Facts,
) -> Result<Option<ProofCheck>, Refusal> {
    let refuse = |variable, message: String| Err(Refusal { variable, message });
    match setting {
        Some(false) => return Ok(None),
        // Execute and native runs make no proof: nothing to verify.
        _ if !proving => return Ok(None),
        _ if !supported(zisk_major) && (setting == Some(true) || reporting) => {
            return refuse(
                "VERIFY_PROOFS",
                format!(
                    "zisk-verifier {VERIFIER_VERSION} reads ZisK 1.x proofs, and this prover is ZisK {zisk_major}.x: its proofs cannot be checked before they are reported; set VERIFY_PROOFS=off to report them unchecked"
                ),
            );
        }
        None if !supported(zisk_major) => return Ok(None),
        _ => {}
    }
    let (program_vk, key_source) = match (facts.setting, facts.setup_cache, facts.coordinator) {
        (Some(vk), _, _) => (Some(vk), Some(KeySource::Setting)),
        (None, Some((path, vk)), _) => (Some(vk), Some(KeySource::SetupCache(path))),
        (None, None, true) => (None, Some(KeySource::Coordinator)),
        (None, None, false) if reporting => {
            return refuse(
                "PROGRAM_VK",
                "no program key for the guest: set PROGRAM_VK (64 hex characters, or the key file), or run `cargo-zisk setup` for this ELF so that its set-up cache holds it; VERIFY_PROOFS=off reports proofs unchecked".into(),
            );
        }
        (None, None, false) => (None, None),
    };
    let layout = match facts.layout {
        Ok(layout) => Some(layout),
        Err(why) if reporting => {
            return refuse(
                "GUEST_OUTPUT",
                format!(
                    "{why}: a proof cannot be bound to its block; name how the guest commits its outputs with GUEST_OUTPUT={}",
                    OutputLayout::NAMES.join("|")
                ),
            );
        }
        Err(_) => None,
    };
    Ok(Some(ProofCheck { program_vk, key_source, layout }))
}

/// The key cargo-zisk's set-up cached for this ELF: `<cache>/<blake3(elf)>_…verkey.bin`, 32
/// bytes. `None` when there is none (or more than one candidate: never a guess).
pub fn setup_cache_key(cache: &Path, elf: &[u8]) -> Option<(PathBuf, ProgramVk)> {
    let prefix = format!("{}_", blake3::hash(elf).to_hex());
    let mut found = std::fs::read_dir(cache).ok()?.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| {
        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix) && n.ends_with("verkey.bin"))
    });
    let path = found.next()?;
    if found.next().is_some() {
        tracing::warn!(cache = %cache.display(), "more than one set-up key for this ELF in the cache: none is used");
        return None;
    }
    let bytes = std::fs::read(&path).ok().filter(|b| b.len() == 32)?;
    zisk_verifier::decode_vk(&bytes).ok().map(|vk| (path, vk))
}

/// The zisk-verifier release compiled in (Cargo.toml pins it with `=`).
pub const VERIFIER_VERSION: &str = "1.4.0-alpha";

/// Why a proof was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    #[error("the proof is {bytes} bytes, more than any ZisK proof ({cap})")]
    TooLarge { bytes: u64, cap: u64 },
    #[error("the proof does not verify: {0}")]
    Invalid(String),
    #[error("the verifier failed on this proof (it panicked); the proof is not trusted")]
    Panicked,
    #[error("the proof is not this block's: {0}")]
    Outputs(#[from] Mismatch),
    #[error("no outputs were recorded for this block when its input was built, so the proof cannot be bound to it")]
    NoExpectedOutputs,
    #[error("no program key is known yet (it comes from {0}); the proof is not trusted")]
    NoProgramKey(String),
}

/// What a verified proof proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The program key the proof commits to (hex).
    pub program_vk: String,
    /// Whether it is a compressed (`--minimal`) proof.
    pub compressed: bool,
}

/// Where the program key every proof must carry comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The operator's `PROGRAM_VK`.
    Setting,
    /// cargo-zisk's set-up cache for this ELF (`~/.zisk/cache/<blake3 of the ELF>_…verkey.bin`).
    SetupCache(PathBuf),
    /// The coordinator's set-up job for this ELF: known once the set-up has run (the ledger
    /// keeps it with the program).
    Coordinator,
}

impl KeySource {
    pub fn describe(&self) -> String {
        match self {
            KeySource::Setting => "PROGRAM_VK".into(),
            KeySource::SetupCache(path) => format!("cargo-zisk's set-up cache ({})", path.display()),
            KeySource::Coordinator => "the coordinator's set-up job".into(),
        }
    }
}

/// The verification the daemon runs, fixed at start-up.
#[derive(Debug, Clone)]
pub struct ProofCheck {
    /// The program every proof must be for, when known at start-up.
    pub program_vk: Option<ProgramVk>,
    /// Where the key comes from; `None`: any program's proof verifies (only with reporting off).
    pub key_source: Option<KeySource>,
    /// How the guest commits its outputs; `None`: not compared (only with reporting off).
    pub layout: Option<OutputLayout>,
}

impl ProofCheck {
    /// What a proof passing this check was checked for: the program key and the output layout.
    pub fn fingerprint(&self, program_vk: Option<&ProgramVk>) -> String {
        format!(
            "{} {}",
            program_vk.map_or_else(|| "any".to_string(), vk_hex),
            self.layout.map_or("none", |l| l.as_str())
        )
    }

    /// Checks `proof` (the bytes of one read) against the block it is offered for: its
    /// committed outputs first (a few comparisons, before the STARK's seconds), then the STARK
    /// under this release's key and, when one is given, the program key; then the outputs the
    /// verifier vouches for, once more. Blocking: run it off the async threads. A verifier that
    /// panics on hostile bytes is a rejection, never a crash.
    pub fn check_bytes(
        &self,
        proof: &[u8],
        expected: Option<&BlockOutputs>,
        program_vk: Option<&ProgramVk>,
    ) -> Result<Verified, Rejected> {
        let cap = max_proof_bytes();
        let bytes = u64::try_from(proof.len()).unwrap_or(u64::MAX);
        if bytes > cap {
            return Err(Rejected::TooLarge { bytes, cap });
        }
        if self.key_source.is_some() && program_vk.is_none() {
            return Err(Rejected::NoProgramKey(self.key_source.as_ref().map(KeySource::describe).unwrap_or_default()));
        }
        let bound = match (self.layout, expected) {
            (Some(layout), Some(expected)) => Some((layout, expected)),
            (Some(_), None) => return Err(Rejected::NoExpectedOutputs),
            (None, _) => None,
        };
        // Cheapest first: what the proof claims to commit to, read without verifying.
        if let Some((layout, expected)) = bound
            && let Ok(saved) = std::panic::catch_unwind(|| zisk_verifier::decode_saved(proof))
            && let Ok(saved) = saved
        {
            let publics = zisk_verifier::program_publics(&saved.proof.public_values);
            if publics.len() > 4 {
                let claimed: Vec<u32> = publics[4..].iter().map(|w| u32::try_from(*w).unwrap_or(u32::MAX)).collect();
                let claimed_vk: Option<ProgramVk> = publics[..4].try_into().ok();
                // A proof of another program says so before its outputs are judged.
                if program_vk.is_none_or(|vk| claimed_vk.as_ref() == Some(vk)) {
                    commitment::compare(layout, expected, &claimed)?;
                }
            }
        }
        let outcome = std::panic::catch_unwind(|| zisk_verifier::verify_saved(proof, program_vk))
            .map_err(|_| Rejected::Panicked)?;
        let verified = outcome.map_err(|e| match e {
            zisk_verifier::VerifyError::ProgramMismatch { committed } => Rejected::Invalid(format!(
                "it is a proof of program {}, not of the program key from {} ({})",
                vk_hex(&committed),
                self.key_source.as_ref().map(KeySource::describe).unwrap_or_default(),
                program_vk.map(vk_hex).unwrap_or_default()
            )),
            other => Rejected::Invalid(other.to_string()),
        })?;
        if let Some((layout, expected)) = bound {
            let outputs = verified.outputs_u32().ok_or(Rejected::Outputs(Mismatch::Aggregate))?;
            commitment::compare(layout, expected, &outputs)?;
        }
        Ok(Verified { program_vk: vk_hex(&verified.program_vk), compressed: verified.is_aggregate.is_none() })
    }
}

#[cfg(test)]
pub(crate) mod tests;
