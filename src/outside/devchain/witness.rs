//! A block's served witness, cut down to what its execution touches: each state node and code is
//! taken out in turn and kept out if ethrex's stateless validation still passes without it, so
//! every witness the dev chain serves is complete and minimal, like a node's.

use ethrex_common::types::block_execution_witness::RpcExecutionWitness;
use ethrex_common::types::{Block, BlockHeader};
use ethrex_crypto::NativeCrypto;

use super::{DevChain, DevChainError, err};

impl DevChain {
    /// Whether `block` validates statelessly (as the guest would) from this witness.
    fn validates(&self, witness: &RpcExecutionWitness, block: &Block, parent: &BlockHeader) -> bool {
        let crypto = NativeCrypto;
        let Ok(execution_witness) = witness.clone().into_execution_witness(
            self.config,
            block.header.number,
            std::slice::from_ref(parent),
            &crypto,
        ) else {
            return false;
        };
        let input = crate::block::input::ProgramInput { blocks: vec![block.clone()], execution_witness };
        crate::block::input::program::serialize(&input)
            .is_ok_and(|bytes| crate::block::input::validate::validate(&bytes).is_ok())
    }

    /// Drops every state node and code the block's execution does not touch (see the module doc).
    pub(super) fn touched_only(
        &self,
        mut witness: RpcExecutionWitness,
        block: &Block,
        parent: &BlockHeader,
    ) -> Result<RpcExecutionWitness, DevChainError> {
        if !self.validates(&witness, block, parent) {
            return Err(err(format!("block {} does not validate from its full witness", block.header.number)));
        }
        for codes in [false, true] {
            let mut i = 0;
            loop {
                let list = if codes { &mut witness.codes } else { &mut witness.state };
                if i >= list.len() {
                    break;
                }
                let removed = list.remove(i);
                if self.validates(&witness, block, parent) {
                    continue;
                }
                let list = if codes { &mut witness.codes } else { &mut witness.state };
                list.insert(i, removed);
                i += 1;
            }
        }
        Ok(witness)
    }
}
