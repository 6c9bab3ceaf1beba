//! The guest's input type and its rkyv encoding.

use ethrex_common::types::Block;
use ethrex_common::types::block_execution_witness::ExecutionWitness;
use rkyv::util::AlignedVec;

use super::InputError;

/// What the ethrex L1 guest program (v9 and later) reads with `rkyv::from_bytes`.
///
/// Defined here rather than imported because `ethrex-guest-program` is not published; rkyv
/// archives a struct by field order and field types only, so this is byte-identical to the
/// guest's own definition as long as both keep `blocks` then `execution_witness`.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct ProgramInput {
    pub blocks: Vec<Block>,
    pub execution_witness: ExecutionWitness,
}

/// Serializes the input exactly as the guest expects it (rkyv 0.8, `unaligned`).
pub fn serialize(input: &ProgramInput) -> Result<AlignedVec, InputError> {
    rkyv::to_bytes::<rkyv::rancor::Error>(input).map_err(|e| InputError::Serialize(e.to_string()))
}

/// Reads the bytes back the way the guest does, bytecheck included.
pub fn deserialize(bytes: &[u8]) -> Result<ProgramInput, rkyv::rancor::Error> {
    rkyv::from_bytes::<ProgramInput, rkyv::rancor::Error>(bytes)
}
