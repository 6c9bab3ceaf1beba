//! Native validation: the guest's stateless execution, rebuilt from ethrex's public APIs and run
//! on the very bytes that will be handed to the prover.
//!
//! The sequence mirrors ethrex's guest program (`execute_blocks`): rebuild the state from the
//! witness, check the witness headers chain and the initial state root, then per block check the
//! body, the header against its parent, execute, apply the state transitions and check gas used,
//! receipts root and logs bloom, requests hash; finally check the post-state root. If this passes,
//! the guest will accept the input; if it fails, the failing check is reported with both values.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ethrex_common::types::block_execution_witness::GuestProgramState;
use ethrex_common::types::{
    ELASTICITY_MULTIPLIER, compute_receipts_root_and_logs_bloom, compute_transactions_root, compute_withdrawals_root,
    validate_block_body,
};
use ethrex_common::{
    H256, InvalidBlockError, validate_block_access_list_hash, validate_block_pre_execution, validate_requests_hash,
};
use ethrex_crypto::{Crypto, NativeCrypto};
use ethrex_vm::{Evm, GuestProgramStateWrapper, VmDatabase};

use super::program;

#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    #[error("the serialized input does not read back as a ProgramInput (the guest would reject it): {0}")]
    Archive(String),
    #[error("the input holds no block")]
    EmptyBatch,
    #[error("cannot rebuild the state from the witness: {0}")]
    WitnessState(String),
    #[error("witness header of block {0} does not hash to its child's parentHash")]
    WitnessHeaderChain(u64),
    #[error(
        "initial state root mismatch: witness state hashes to {computed:#x}, parent header stateRoot is {header:#x}"
    )]
    InitialStateRoot { computed: H256, header: H256 },
    #[error("transactions root mismatch: computed {computed:#x}, header says {header:#x}")]
    TransactionsRoot { computed: H256, header: H256 },
    #[error("withdrawals root mismatch: computed {computed:#x}, header says {header:#x}")]
    WithdrawalsRoot { computed: H256, header: H256 },
    #[error("block body check failed: {0}")]
    Body(String),
    #[error("pre-execution header check failed: {0}")]
    PreExecution(String),
    #[error("execution failed: {0}")]
    Execution(String),
    #[error("gas used mismatch: execution used {computed}, header says {header}")]
    GasUsed { computed: u64, header: u64 },
    #[error("receipts root mismatch: computed {computed:#x}, header says {header:#x}")]
    ReceiptsRoot { computed: H256, header: H256 },
    #[error("logs bloom mismatch: computed bloom differs from the header's")]
    LogsBloom,
    #[error("requests hash check failed: {0}")]
    RequestsHash(String),
    #[error("block access list check failed: {0}")]
    BlockAccessList(String),
    #[error("final state root mismatch: computed {computed:#x}, header stateRoot is {header:#x}")]
    FinalStateRoot { computed: H256, header: H256 },
}

/// What a successful validation established.
#[derive(Debug, Clone)]
pub struct ValidationReport {
    pub state_root_after: H256,
    pub gas_used: u64,
    pub elapsed: Duration,
}

/// Reads `payload` (unframed rkyv bytes) back as the guest would and re-executes it statelessly.
pub fn validate(payload: &[u8]) -> Result<ValidationReport, ValidationError> {
    let started = Instant::now();
    let input = program::deserialize(payload).map_err(|e| ValidationError::Archive(e.to_string()))?;
    let crypto: Arc<dyn Crypto + Send + Sync> = Arc::new(NativeCrypto);
    let blocks = input.blocks;
    let first = blocks.first().ok_or(ValidationError::EmptyBatch)?;
    let first_number = first.header.number;

    let state = GuestProgramState::from_witness(input.execution_witness, crypto.as_ref())
        .map_err(|e| ValidationError::WitnessState(e.to_string()))?;
    let mut db = GuestProgramStateWrapper::new(state, crypto.clone());
    let chain_config = db.get_chain_config().map_err(|e| ValidationError::WitnessState(e.to_string()))?;

    db.initialize_block_header_hashes(&blocks).map_err(|e| ValidationError::WitnessState(e.to_string()))?;
    match db.get_first_invalid_block_hash() {
        Ok(None) => {}
        Ok(Some(number)) => return Err(ValidationError::WitnessHeaderChain(number)),
        Err(e) => return Err(ValidationError::WitnessState(e.to_string())),
    }

    let parent = db.get_block_parent_header(first_number).map_err(|e| ValidationError::WitnessState(e.to_string()))?;
    let initial = db.state_trie_root().map_err(|e| ValidationError::WitnessState(e.to_string()))?;
    if initial != parent.state_root {
        return Err(ValidationError::InitialStateRoot { computed: initial, header: parent.state_root });
    }

    let mut parent_header = parent;
    let mut gas_used = 0;
    for block in &blocks {
        let header = &block.header;
        if let Err(e) = validate_block_body(header, &block.body, crypto.as_ref()) {
            let computed = compute_transactions_root(&block.body.transactions, crypto.as_ref());
            if computed != header.transactions_root {
                return Err(ValidationError::TransactionsRoot { computed, header: header.transactions_root });
            }
            if let (Some(root), Some(ws)) = (header.withdrawals_root, &block.body.withdrawals) {
                let computed = compute_withdrawals_root(ws, crypto.as_ref());
                if computed != root {
                    return Err(ValidationError::WithdrawalsRoot { computed, header: root });
                }
            }
            return Err(ValidationError::Body(e.to_string()));
        }
        validate_block_pre_execution(block, &parent_header, &chain_config, ELASTICITY_MULTIPLIER)
            .map_err(|e| ValidationError::PreExecution(e.to_string()))?;

        let mut vm = Evm::new_for_l1(db.clone(), crypto.clone());
        let (result, bal) = vm.execute_block(block).map_err(|e| ValidationError::Execution(e.to_string()))?;
        let updates = vm.get_state_transitions().map_err(|e| ValidationError::Execution(e.to_string()))?;
        db.apply_account_updates(&updates).map_err(|e| ValidationError::WitnessState(e.to_string()))?;

        if result.block_gas_used != header.gas_used {
            return Err(ValidationError::GasUsed { computed: result.block_gas_used, header: header.gas_used });
        }
        let (receipts_root, bloom) = compute_receipts_root_and_logs_bloom(&result.receipts, crypto.as_ref());
        if receipts_root != header.receipts_root {
            return Err(ValidationError::ReceiptsRoot { computed: receipts_root, header: header.receipts_root });
        }
        if bloom != header.logs_bloom {
            return Err(ValidationError::LogsBloom);
        }
        validate_requests_hash(header, &chain_config, &result.requests).map_err(|e| match e {
            InvalidBlockError::RequestsHashMismatch => ValidationError::RequestsHash(format!(
                "header requestsHash {:?} does not match the requests produced by execution",
                header.requests_hash
            )),
            other => ValidationError::RequestsHash(other.to_string()),
        })?;
        if let Some(bal) = &bal {
            validate_block_access_list_hash(header, &chain_config, bal, block.body.transactions.len(), crypto.as_ref())
                .map_err(|e| ValidationError::BlockAccessList(e.to_string()))?;
        }
        gas_used += result.block_gas_used;
        parent_header = header.clone();
    }

    let last = blocks.last().ok_or(ValidationError::EmptyBatch)?;
    let computed = db.state_trie_root().map_err(|e| ValidationError::WitnessState(e.to_string()))?;
    if computed != last.header.state_root {
        return Err(ValidationError::FinalStateRoot { computed, header: last.header.state_root });
    }
    Ok(ValidationReport { state_root_after: computed, gas_used, elapsed: started.elapsed() })
}
