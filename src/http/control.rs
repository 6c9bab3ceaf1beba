//! What the operator's surface (`/admin/*`, the dashboard) may do to a running daemon: typed
//! commands that are ledger events. The ledger announces each commit, so the actor concerned
//! looks at it at once; the surface never touches an actor.

use std::sync::Arc;

use crate::store::{CancelRequest, Ledger, OperatorProve, StoreError};

#[derive(Clone)]
pub struct Control {
    /// The actors' ledger: the operator's commands are written through it.
    ledger: Arc<Ledger>,
    /// A read-only connection of the surface's own (WAL lets it read while the actors write):
    /// a page never waits for the actors' connection.
    reader: Arc<Ledger>,
    reporting: bool,
}

impl Control {
    pub fn new(ledger: Arc<Ledger>, reader: Arc<Ledger>, reporting: bool) -> Control {
        Control { ledger, reader, reporting }
    }

    /// Whether the actors' writes are backing off, and why.
    pub fn write_trouble(&self) -> Option<crate::store::WriteTrouble> {
        self.ledger.write_trouble()
    }

    /// Prove these blocks (any numbers); in-flight and proved blocks are left alone.
    pub fn prove(&self, blocks: &[u64]) -> Result<OperatorProve, StoreError> {
        let outcome = self.ledger.operator_prove(blocks)?;
        // Every operator action leaves a line, what it changed or why it changed nothing.
        tracing::info!(
            added = ?outcome.added,
            in_progress = ?outcome.in_progress,
            already_proved = ?outcome.already_proved,
            "operator: prove"
        );
        Ok(outcome)
    }

    /// Send a proved block's `proved` call again. `Ok(false)`: not proved, or still pending.
    pub fn resubmit(&self, block: u64) -> Result<Resubmit, StoreError> {
        let outcome = match self.reporting {
            false => Resubmit::ReportingOff,
            true => match self.ledger.operator_resubmit(block)? {
                Some(()) => Resubmit::Queued,
                None => Resubmit::NotProvedOrPending,
            },
        };
        crate::runtime::block_span!(block).in_scope(|| tracing::info!(?outcome, "operator: resubmit"));
        Ok(outcome)
    }

    /// Cancel the block's running attempt; the Prover ends it (its process or coordinator job).
    pub fn cancel(&self, block: u64) -> Result<CancelRequest, StoreError> {
        let outcome = self.ledger.operator_cancel(block)?;
        let _in = crate::runtime::block_span!(block).entered();
        match &outcome {
            CancelRequest::Requested => tracing::warn!("operator: cancel the block's running attempt"),
            CancelRequest::NotProving(state) => {
                tracing::info!(
                    state = state.as_deref().unwrap_or("not in the ledger"),
                    "operator: cancel refused, not being proved"
                )
            }
        }
        Ok(outcome)
    }

    /// Pause or resume starting new inputs and proofs; remembered across restarts.
    pub fn set_paused(&self, paused: bool) -> Result<(), StoreError> {
        self.ledger.set_paused(paused)?;
        if paused {
            tracing::warn!("operator: pause; no new inputs or proofs start");
        } else {
            tracing::info!("operator: resume");
        }
        Ok(())
    }

    /// The ledger, for the surface's read-only queries (its own connection).
    pub fn reads(&self) -> &Ledger {
        &self.reader
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resubmit {
    Queued,
    NotProvedOrPending,
    ReportingOff,
}
