//! The run in flight, kept outside any one incarnation of the Prover.

use std::sync::Arc;

use super::InFlight;
use crate::daemon::proof_run::RunReport;

/// The run in flight, held outside the Prover: its task is not the actor's (a Prover that
/// panics does not take hours of GPU work down with it), and the next incarnation adopts it
/// from here. The run leaves its report here too, so its end is never lost with a message; the
/// mailbox only says to look. The supervisor makes one for all the Prover's incarnations.
#[derive(Clone, Default)]
pub struct RunSlot(Arc<std::sync::Mutex<Slot>>);

#[derive(Default)]
struct Slot {
    run: Option<InFlight>,
    report: Option<RunReport>,
}

impl RunSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn get(&self) -> Option<InFlight> {
        self.lock().run.clone()
    }

    pub(super) fn set(&self, run: Option<InFlight>) {
        self.lock().run = run;
    }

    /// The run ended with `report` (called by the run's task, before it tells the actor).
    pub(super) fn finish(&self, report: RunReport) {
        self.lock().report = Some(report);
    }

    /// The ended run's report and what it was, once: the slot is empty after.
    pub(super) fn take_finished(&self) -> Option<(RunReport, Option<InFlight>)> {
        let mut slot = self.lock();
        let report = slot.report.take()?;
        Some((report, slot.run.take()))
    }
}
