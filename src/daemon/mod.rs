//! The long-running daemon: a root supervisor and its four actors.
//!
//! ```text
//! Supervisor ─┬─ Notifier         alerts → Slack
//!             ├─ Reporter         the ledger's outbox → EthProofs, per-block order, paced
//!             ├─ Prover           the ledger's queued blocks → one prover run at a time
//!             └─ InputGenerator   head → targets (ledger) → fetch → input.bin
//! ```
//!
//! The ledger is the truth and the queue: each actor rebuilds its work from it when it starts
//! (start-up and restart alike), and hands work on by recording a ledger event: the ledger
//! announces every commit and the supervisor wakes the actors on it. In memory an actor holds
//! only in-flight handles (the running prover, the request being sent, the input being built)
//! and status for `/health`. Long work runs in tasks that
//! record their own outcome in the ledger the moment it is known, then tell the actor through
//! its [`Mailbox`], which always points at the live incarnation.

mod canonical;
mod input_generator;
mod notifier;
mod prover;
mod reporter;
mod settings;
pub(crate) mod supervisor;
#[cfg(test)]
mod test_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::runtime::status::rfc3339;

use ractor::{ActorRef, Message};

use crate::block::chainspec::ChainSpec;
use crate::block::zisk::{Dialect, ZiskVersion};
use crate::outside::chain::NodeClient;
use crate::runtime::status::Board;
use crate::store::StoreError;

pub use notifier::Alerts;
pub use prover::retention::sweep_leftovers;
pub use settings::{InputSettings, Links, NotifierSettings, ProverSettings, ReporterSettings, Settings};
pub use supervisor::{Supervisor, SupervisorArgs};

/// A turn that met a ledger write failing for now (the lock held elsewhere, a full disk) is not
/// the actor's failure: the ledger backs off and `/health` says why the daemon is not ready, and
/// the next tick tries again. Restarting the actor would only spend the supervisor's budget and
/// take the daemon (and a running proof) down. Any other error goes to the supervisor.
fn survive(result: Result<(), StoreError>) -> Result<(), ractor::ActorProcessingErr> {
    match result {
        Err(e) if e.is_transient() => {
            tracing::debug!(error = %e, "ledger not written this turn; the next tick tries again");
            Ok(())
        }
        other => other.map_err(Into::into),
    }
}

/// Repeats a ledger write that failed for a reason that may pass, until it goes through, fails
/// for another reason, or `stopping` says the daemon is going down (`Ledger::until_written`).
async fn until_recorded<T>(
    ledger: &crate::store::Ledger,
    stopping: impl Fn() -> bool,
    write: impl FnMut() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    ledger.until_written(stopping, StoreError::is_transient, write).await
}

/// What every actor shares, fixed at start-up: the ledger, the node, the backend and the
/// facts of this run. No configuration: each component gets its own settings ([`Settings`]).
pub struct Context {
    pub ledger: Arc<crate::store::Ledger>,
    pub chain: ChainSpec,
    pub node: Arc<NodeClient>,
    pub http: reqwest::Client,
    pub zisk_version: ZiskVersion,
    pub dialect: Dialect,
    /// What proves (or executes) each block: cargo-zisk, the coordinator, or native re-execution.
    pub backend: Box<dyn crate::backend::Backend>,
    /// How each proof is checked before it is accepted (`None`: VERIFY_PROOFS off or nothing
    /// to verify).
    pub verify: Option<crate::block::verify::ProofCheck>,
    pub started_at: SystemTime,
    pub elf_sha256: String,
    /// What the ELF was built from (`None` without an ELF: native mode).
    pub elf: Option<crate::block::elf::Fingerprint>,
    /// Set while OUTPUT_DIR has less than MIN_FREE_DISK_MB free: no new work starts. Not in the
    /// ledger: it is measured afresh after a restart.
    pub disk_low: Arc<AtomicBool>,
    /// Where actors publish their status for the HTTP surface.
    pub board: Arc<Board>,
    /// The daemon's one stop signal: what is draining starts nothing new, and a prover run or
    /// an EthProofs call holds it open until its end is recorded.
    pub drain: crate::runtime::drain::Drain,
    /// How alerts link to a block's pages.
    pub links: Links,
}

impl Context {
    /// The program key proofs are checked for: the one fixed at start-up, or the one the
    /// coordinator's set-up gave (kept by the ledger with the program).
    pub(crate) fn program_key(&self) -> Option<crate::block::verify::ProgramVk> {
        let check = self.verify.as_ref()?;
        check.program_vk.or_else(|| match check.key_source {
            // Only the set-up of this ELF: after an ELF change the old program's key proves nothing.
            Some(crate::block::verify::KeySource::Coordinator) => self
                .ledger
                .coordinator_program()
                .ok()
                .flatten()
                .filter(|p| p.elf_sha256 == self.elf_sha256)
                .and_then(|p| p.vk)
                .and_then(|vk| crate::block::verify::parse_program_vk(&vk).ok()),
            _ => None,
        })
    }

    /// Whether new inputs and proofs must wait (operator pause, which the ledger remembers, or
    /// not enough disk). A ledger that cannot be read pauses: better idle than blind.
    pub fn is_paused(&self) -> bool {
        self.disk_low.load(Ordering::SeqCst) || self.ledger.paused().unwrap_or(true)
    }

    /// Which ZisK proves, for status: the cargo-zisk version, or the backend that has none.
    pub fn zisk_label(&self) -> String {
        self.backend.describe()
    }
}

/// How long a task's result waits for its actor to come back after a crash.
pub const DELIVERY_WAIT: Duration = Duration::from_secs(60);

/// A typed address for one actor that survives its restarts: the supervisor points it at each
/// new incarnation, so a task's result reaches whichever incarnation is alive. A watch channel,
/// so a delivery waits for the next incarnation instead of polling for it.
pub struct Mailbox<M: Message>(Arc<tokio::sync::watch::Sender<Option<ActorRef<M>>>>);

impl<M: Message> Clone for Mailbox<M> {
    fn clone(&self) -> Self {
        Mailbox(self.0.clone())
    }
}

impl<M: Message> Default for Mailbox<M> {
    fn default() -> Self {
        Mailbox(Arc::new(tokio::sync::watch::Sender::new(None)))
    }
}

impl<M: Message> Mailbox<M> {
    fn set(&self, actor: Option<ActorRef<M>>) {
        self.0.send_replace(actor);
    }

    fn current(&self) -> Option<ActorRef<M>> {
        self.0.borrow().clone()
    }

    /// Sends now if the actor is alive; gives the message back if not.
    pub fn send(&self, msg: M) -> Result<(), M> {
        match self.current() {
            Some(actor) => match actor.cast(msg) {
                Ok(()) => Ok(()),
                Err(ractor::MessagingErr::SendErr(msg)) => Err(msg),
                Err(_) => Ok(()),
            },
            None => Err(msg),
        }
    }

    /// Delivers a task's result, waiting out a restart (up to [`DELIVERY_WAIT`]) for the
    /// supervisor to point the mailbox at the next incarnation. The outcome is already in the
    /// ledger; a message lost here costs only a status line.
    pub async fn deliver(&self, mut msg: M) {
        // Subscribed before trying: an incarnation set after a failed send is never missed.
        let mut incarnations = self.0.subscribe();
        let deadline = tokio::time::Instant::now() + DELIVERY_WAIT;
        loop {
            match self.send(msg) {
                Ok(()) => return,
                Err(back) => msg = back,
            }
            if !matches!(tokio::time::timeout_at(deadline, incarnations.changed()).await, Ok(Ok(()))) {
                tracing::error!("a result could not be delivered: the actor stayed down");
                return;
            }
        }
    }
}

/// A task that is aborted when its handle is dropped: an actor that dies takes its in-flight
/// work with it (and `process::run`'s guard then ends the prover's process group).
pub struct InFlightTask(Option<tokio::task::JoinHandle<()>>);

impl InFlightTask {
    pub fn spawn(f: impl std::future::Future<Output = ()> + Send + 'static) -> InFlightTask {
        InFlightTask(Some(tokio::spawn(f)))
    }
}

impl Drop for InFlightTask {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use ractor::{Actor, ActorProcessingErr, ActorRef};

    use super::*;

    /// Forwards every number it is sent.
    struct Echo(tokio::sync::mpsc::UnboundedSender<u64>);

    impl Actor for Echo {
        type Msg = u64;
        type State = ();
        type Arguments = ();

        async fn pre_start(&self, _: ActorRef<u64>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }

        async fn handle(&self, _: ActorRef<u64>, msg: u64, _: &mut ()) -> Result<(), ActorProcessingErr> {
            let _ = self.0.send(msg);
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_result_waits_for_the_next_incarnation_and_reaches_it() {
        let mailbox: Mailbox<u64> = Mailbox::default();
        let waiting = tokio::spawn({
            let mailbox = mailbox.clone();
            async move { mailbox.deliver(42).await }
        });
        tokio::task::yield_now().await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (actor, _) = Actor::spawn(None, Echo(tx), ()).await.unwrap();
        mailbox.set(Some(actor.clone()));
        waiting.await.unwrap();
        assert_eq!(rx.recv().await, Some(42), "delivered to the incarnation set after it was sent");
        actor.stop(None);
    }
}
