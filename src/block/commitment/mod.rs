//! What a proof of one block must commit to, and whether it does.
//!
//! `zisk-verifier` says a proof is a valid STARK of some program; it never says which block the
//! guest ran. The ethrex guest commits its `ProgramOutput`: for one block, the parent's state
//! root, the block's state root, the block's hash, the chain id and the number of transactions
//! (`encode()`: 5 × 32 bytes, the two numbers as big-endian U256). The daemon knows all five
//! when it builds the input, records them in the ledger ([`BlockOutputs::to_hex`]), and compares
//! them with what a proof (or `ziskemu`, or a coordinator's execute job) committed, field by
//! field, before anything is reported ([`compare`]).
//!
//! How the guest places them among ZisK's 64 u32 public outputs depends on its generation
//! ([`OutputLayout`]): the encoding itself, the encoding behind a length, or its SHA-256.
//!
//! Architecture invariant: plain functions over bytes, no I/O, so every rule here is unit-tested
//! over the real fixtures.

use sha2::Digest;

/// The encoding's length: five 32-byte fields.
pub const ENCODED_BYTES: usize = 160;

/// ZisK's public outputs: 64 u32 words.
pub const OUTPUT_WORDS: usize = 64;

/// The five values the ethrex guest commits for a one-block input, each as its 32 bytes in the
/// encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockOutputs {
    /// The state root the block executes from: its parent's.
    pub parent_state_root: [u8; 32],
    /// The state root after the block: the header's `stateRoot`.
    pub state_root: [u8; 32],
    /// keccak(rlp(header)).
    pub block_hash: [u8; 32],
    /// The chain id, big-endian U256.
    pub chain_id: [u8; 32],
    /// The number of transactions, big-endian U256.
    pub tx_count: [u8; 32],
}

/// A value as U256 big-endian bytes.
fn u256(n: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[24..].copy_from_slice(&n.to_be_bytes());
    out
}

/// A field read for a person: a number when it is one that fits, hex otherwise.
fn number(bytes: &[u8; 32]) -> String {
    if bytes[..24].iter().all(|b| *b == 0) {
        let mut low = [0u8; 8];
        low.copy_from_slice(&bytes[24..]);
        u64::from_be_bytes(low).to_string()
    } else {
        format!("0x{}", hex::encode(bytes))
    }
}

fn hash(bytes: &[u8; 32]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// A field: its name, where it is, and how a person reads it.
type Field = (&'static str, fn(&BlockOutputs) -> &[u8; 32], fn(&[u8; 32]) -> String);

/// The fields in the order a mismatch is said: the block's identity first.
const FIELDS: [Field; 5] = [
    ("block hash", |o| &o.block_hash, hash),
    ("chain id", |o| &o.chain_id, number),
    ("parent state root", |o| &o.parent_state_root, hash),
    ("state root", |o| &o.state_root, hash),
    ("transaction count", |o| &o.tx_count, number),
];

impl BlockOutputs {
    pub fn new(
        parent_state_root: [u8; 32],
        state_root: [u8; 32],
        block_hash: [u8; 32],
        chain_id: u64,
        tx_count: u64,
    ) -> BlockOutputs {
        BlockOutputs { parent_state_root, state_root, block_hash, chain_id: u256(chain_id), tx_count: u256(tx_count) }
    }

    /// ethrex's `ProgramOutput::encode()`.
    pub fn encode(&self) -> [u8; ENCODED_BYTES] {
        let mut out = [0u8; ENCODED_BYTES];
        for (slot, field) in out.chunks_exact_mut(32).zip([
            &self.parent_state_root,
            &self.state_root,
            &self.block_hash,
            &self.chain_id,
            &self.tx_count,
        ]) {
            slot.copy_from_slice(field);
        }
        out
    }

    /// The inverse of [`BlockOutputs::encode`].
    pub fn decode(bytes: &[u8; ENCODED_BYTES]) -> BlockOutputs {
        let field = |i: usize| {
            let mut f = [0u8; 32];
            f.copy_from_slice(&bytes[i * 32..i * 32 + 32]);
            f
        };
        BlockOutputs {
            parent_state_root: field(0),
            state_root: field(1),
            block_hash: field(2),
            chain_id: field(3),
            tx_count: field(4),
        }
    }

    /// The ledger's text: the encoding in hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.encode())
    }

    /// Reads the ledger's text back; `None` for anything that is not 160 bytes of hex.
    pub fn from_hex(text: &str) -> Option<BlockOutputs> {
        let bytes = hex::decode(text.trim()).ok()?;
        let bytes: [u8; ENCODED_BYTES] = bytes.try_into().ok()?;
        Some(BlockOutputs::decode(&bytes))
    }

    /// SHA-256 of the encoding: what a guest of the [`OutputLayout::Sha256`] generation commits.
    pub fn digest(&self) -> [u8; 32] {
        sha2::Sha256::digest(self.encode()).into()
    }

    /// One line for logs and reasons.
    pub fn describe(&self) -> String {
        FIELDS.iter().map(|(name, get, show)| format!("{name} {}", show(get(self)))).collect::<Vec<_>>().join(", ")
    }
}

/// How a guest generation places its `ProgramOutput` among the 64 public output words. All
/// pack bytes as little-endian u32 words from output 0, the last word zero-padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputLayout {
    /// The 160 encoded bytes themselves (`ziskos::io::commit_slice`, ziskos 1.x): words 0–39.
    Encoded,
    /// The encoding as ziskos 0.16's `io::commit` writes it (bincode 1): a u64 little-endian
    /// length (160), then the 160 bytes: words 0–41.
    Prefixed,
    /// SHA-256 of the encoding (`ziskos::set_output`, ziskos 0.15 and older): words 0–7.
    Sha256,
}

/// Why how a guest commits its outputs cannot be told (from its ELF, with no `GUEST_OUTPUT`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutUnknown {
    #[error("no guest ELF was read")]
    NoElf,
    #[error("the ELF does not say which ethrex guest it is (ethrex {0})")]
    NotEthrex(String),
    #[error("the ELF's ziskos is {0}")]
    ZiskosUnknown(String),
    #[error("the ELF's ziskos version {0} is not a release number")]
    NotARelease(String),
    #[error("no ethrex guest built against ziskos {0} was read, so how it commits is unknown")]
    UnknownZiskos(String),
}

/// A `GUEST_OUTPUT` that names no layout this build knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not one of {names}", names = OutputLayout::NAMES.join(", "))]
pub struct UnknownLayout(pub String);

impl OutputLayout {
    /// `GUEST_OUTPUT`'s words.
    pub const NAMES: [&'static str; 3] = ["encoded", "prefixed", "sha256"];

    pub fn parse(text: &str) -> Option<OutputLayout> {
        match text.trim().to_ascii_lowercase().as_str() {
            "encoded" => Some(OutputLayout::Encoded),
            "prefixed" => Some(OutputLayout::Prefixed),
            "sha256" => Some(OutputLayout::Sha256),
            _ => None,
        }
    }

    /// `GUEST_OUTPUT`'s text, or why it is none of the layouts.
    pub fn from_setting(text: &str) -> Result<OutputLayout, UnknownLayout> {
        OutputLayout::parse(text).ok_or_else(|| UnknownLayout(text.to_string()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OutputLayout::Encoded => "encoded",
            OutputLayout::Prefixed => "prefixed",
            OutputLayout::Sha256 => "sha256",
        }
    }

    /// The bytes a guest of this layout commits, from output 0.
    fn committed_bytes(self, expected: &BlockOutputs) -> Vec<u8> {
        match self {
            OutputLayout::Encoded => expected.encode().to_vec(),
            OutputLayout::Prefixed => {
                let mut bytes = (ENCODED_BYTES as u64).to_le_bytes().to_vec();
                bytes.extend_from_slice(&expected.encode());
                bytes
            }
            OutputLayout::Sha256 => expected.digest().to_vec(),
        }
    }

    /// Where the encoding starts among the committed bytes (`None`: only its digest is there).
    fn encoding_at(self) -> Option<usize> {
        match self {
            OutputLayout::Encoded => Some(0),
            OutputLayout::Prefixed => Some(8),
            OutputLayout::Sha256 => None,
        }
    }
}

/// The layout of an ethrex ZisK guest (one that reads the rkyv `ProgramInput` this daemon
/// writes) built against this ziskos release line. The guest commits with the output call its
/// ziskos offers: `set_output` (public up to 0.15) for the digest, `io::commit` (0.16, bincode 1)
/// for the prefixed encoding, `io::commit_slice` (1.x) for the encoding. 0.17 and 0.18 offered
/// more than one and no ethrex guest built on them was read: unknown, never guessed.
pub fn layout_of_ziskos(major: u64, minor: u64) -> Option<OutputLayout> {
    match (major, minor) {
        (0, ..=15) => Some(OutputLayout::Sha256),
        (0, 16) => Some(OutputLayout::Prefixed),
        (1, _) => Some(OutputLayout::Encoded),
        _ => None,
    }
}

/// Why a proof's committed outputs are not this block's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// One or more fields differ (the encoded layout): each named with both values.
    #[error("{}", .0.iter().map(|d| format!("the proof commits to {} {}, the block's is {}", d.field, d.committed, d.expected)).collect::<Vec<_>>().join("; "))]
    Fields(Vec<FieldDiff>),
    /// The committed digest is not the digest of this block's outputs (the SHA-256 layout).
    #[error(
        "the proof commits to outputs digest 0x{committed}, and this block's outputs ({described}) digest to 0x{expected}"
    )]
    Digest { committed: String, expected: String, described: String },
    /// Words past the layout's end are not zero: another program, or another layout.
    #[error(
        "the proof commits {count} output word(s) past the {layout} layout's end (first at word {first}): not this guest's outputs"
    )]
    Trailing { layout: &'static str, first: usize, count: usize },
    /// Fewer output words than the layout commits.
    #[error("only {words} output word(s), and the {layout} layout commits {needed}")]
    Short { layout: &'static str, words: usize, needed: usize },
    /// An aggregate proof's outputs are its recurser's, not one block's.
    #[error("the proof is an aggregate, whose outputs are not one block's")]
    Aggregate,
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDiff {
    pub field: &'static str,
    pub committed: String,
    pub expected: String,
}

/// Compares the 64 committed output words with what the block's proof must commit to.
pub fn compare(layout: OutputLayout, expected: &BlockOutputs, committed: &[u32]) -> Result<(), Mismatch> {
    let want = layout.committed_bytes(expected);
    let words = want.len().div_ceil(4);
    let mut got: Vec<u8> = committed.iter().take(words).flat_map(|w| w.to_le_bytes()).collect();
    if got.len() < want.len() {
        return Err(Mismatch::Short { layout: layout.as_str(), words: committed.len(), needed: words });
    }
    let padding_ok = got[want.len()..].iter().all(|b| *b == 0);
    got.truncate(want.len());
    match layout.encoding_at() {
        Some(at) => {
            let mut diffs = Vec::new();
            if got[..at] != want[..at] {
                diffs.push(FieldDiff {
                    field: "length prefix",
                    committed: format!("0x{}", hex::encode(&got[..at])),
                    expected: format!("0x{}", hex::encode(&want[..at])),
                });
            }
            let mut bytes = [0u8; ENCODED_BYTES];
            bytes.copy_from_slice(&got[at..]);
            let proof = BlockOutputs::decode(&bytes);
            diffs.extend(FIELDS.iter().filter(|(_, get, _)| get(&proof) != get(expected)).map(|(field, get, show)| {
                FieldDiff { field, committed: show(get(&proof)), expected: show(get(expected)) }
            }));
            if !diffs.is_empty() {
                return Err(Mismatch::Fields(diffs));
            }
        }
        None if got != want => {
            return Err(Mismatch::Digest {
                committed: hex::encode(&got),
                expected: hex::encode(&want),
                described: expected.describe(),
            });
        }
        None => {}
    }
    let trailing: Vec<usize> =
        committed.iter().enumerate().skip(words).filter(|(_, w)| **w != 0).map(|(i, _)| i).collect();
    match trailing.first() {
        Some(first) => Err(Mismatch::Trailing { layout: layout.as_str(), first: *first, count: trailing.len() }),
        None if !padding_ok => Err(Mismatch::Trailing { layout: layout.as_str(), first: words - 1, count: 1 }),
        None => Ok(()),
    }
}

/// The 64 output words a guest of `layout` commits for `outputs`: what a fake prover writes,
/// and what the comparison reads back.
pub fn words_for(layout: OutputLayout, outputs: &BlockOutputs) -> [u32; OUTPUT_WORDS] {
    let mut words = [0u32; OUTPUT_WORDS];
    for (w, chunk) in words.iter_mut().zip(layout.committed_bytes(outputs).chunks(4)) {
        let mut le = [0u8; 4];
        le[..chunk.len()].copy_from_slice(chunk);
        *w = u32::from_le_bytes(le);
    }
    words
}

#[cfg(test)]
mod tests;
