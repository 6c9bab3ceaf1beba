//! What the operator's surface (`/admin/*`, the dashboard) may do to a running daemon: typed
//! commands that are ledger events, followed by a [`Nudge`] so the actor concerned looks at the
//! ledger now rather than at its next tick. The surface never touches an actor.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;

use crate::store::{CancelRequest, Ledger, OperatorProve, StoreError};

/// "Look at the ledger": sent to the actor whose work may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nudge {
    Inputs,
    Prover,
    Reporter,
}

#[derive(Clone)]
pub struct Control {
    ledger: Arc<Ledger>,
    nudges: UnboundedSender<Nudge>,
    reporting: bool,
}

impl Control {
    pub fn new(ledger: Arc<Ledger>, nudges: UnboundedSender<Nudge>, reporting: bool) -> Control {
        Control { ledger, nudges, reporting }
    }

    fn nudge(&self, n: Nudge) {
        // Closed only while the daemon stops; the ledger already holds the command.
        let _ = self.nudges.send(n);
    }

    /// Prove these blocks (any numbers); in-flight and proved blocks are left alone.
    pub fn prove(&self, blocks: &[u64]) -> Result<OperatorProve, StoreError> {
        let outcome = self.ledger.operator_prove(blocks)?;
        if !outcome.added.is_empty() {
            tracing::info!(blocks = ?outcome.added, "blocks added by the operator");
            self.nudge(Nudge::Inputs);
        }
        Ok(outcome)
    }

    /// Send a proved block's `proved` call again. `Ok(false)`: not proved, or still pending.
    pub fn resubmit(&self, block: u64) -> Result<Resubmit, StoreError> {
        if !self.reporting {
            return Ok(Resubmit::ReportingOff);
        }
        match self.ledger.operator_resubmit(block)? {
            Some(()) => {
                self.nudge(Nudge::Reporter);
                Ok(Resubmit::Queued)
            }
            None => Ok(Resubmit::NotProvedOrPending),
        }
    }

    /// Cancel the block's running attempt; the Prover ends it (its process or coordinator job).
    pub fn cancel(&self, block: u64) -> Result<CancelRequest, StoreError> {
        let outcome = self.ledger.operator_cancel(block)?;
        if outcome == CancelRequest::Requested {
            tracing::warn!(block, "the operator cancels the block's running attempt");
            self.nudge(Nudge::Prover);
        }
        Ok(outcome)
    }

    /// Pause or resume starting new inputs and proofs; remembered across restarts.
    pub fn set_paused(&self, paused: bool) -> Result<(), StoreError> {
        self.ledger.set_paused(paused)?;
        if paused {
            tracing::warn!("paused by the operator: no new inputs or proofs start");
        } else {
            tracing::info!("resumed by the operator");
            self.nudge(Nudge::Inputs);
            self.nudge(Nudge::Prover);
        }
        Ok(())
    }

    /// The ledger, for the surface's read-only queries.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resubmit {
    Queued,
    NotProvedOrPending,
    ReportingOff,
}
