//! The runs in flight, kept outside any one incarnation of the Prover.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::InFlight;
use super::proof_run::RunReport;

/// The runs in flight, one per lane, held outside the Prover: a run's task is not the actor's
/// (a Prover that panics does not take hours of GPU work down with it), and the next
/// incarnation adopts them from here. Each run leaves its report here too, so its end is never
/// lost with a message; the mailbox only says to look. The supervisor makes one for all the
/// Prover's incarnations.
#[derive(Clone, Default)]
pub struct RunSlots(Arc<std::sync::Mutex<Slots>>);

#[derive(Default)]
struct Slots {
    /// By lane.
    runs: BTreeMap<usize, InFlight>,
    /// Ended runs' reports by lane, until the Prover takes them.
    reports: BTreeMap<usize, RunReport>,
}

impl RunSlots {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The runs in flight (and ended but not yet taken), by lane.
    pub(super) fn all(&self) -> BTreeMap<usize, InFlight> {
        self.lock().runs.clone()
    }

    pub(super) fn set(&self, run: InFlight) {
        self.lock().runs.insert(run.lane, run);
    }

    /// The run in `lane` ended with `report` (called by the run's task, before it tells the actor).
    pub(super) fn finish(&self, lane: usize, report: RunReport) {
        self.lock().reports.insert(lane, report);
    }

    /// The ended runs' reports and what each run was, once: their lanes are free after.
    pub(super) fn take_finished(&self) -> Vec<(RunReport, Option<InFlight>)> {
        let mut slots = self.lock();
        let reports = std::mem::take(&mut slots.reports);
        reports.into_iter().map(|(lane, report)| (report, slots.runs.remove(&lane))).collect()
    }
}
