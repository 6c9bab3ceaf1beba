//! The guest program on the coordinator: registered and set up once per ELF (remembered in the
//! ledger), only the ELF checked at start-up, and a set-up the coordinator refuses is a refusal.

use sha2::Digest;

use super::{Remote, local};
use crate::backend::{Recorder, StopSignal};
use crate::outside::coordinator::{CoordError, Failure, JobEnd, MAX_MESSAGE_BYTES};

impl Remote {
    /// The program's hash id once it is registered and set up (once per ELF; remembered).
    pub(super) async fn ready_program(&self, rec: &dyn Recorder) -> Result<String, CoordError> {
        // A set-up recorded without its program key (an older ledger) runs again to learn it.
        if let Some(p) = self.program().filter(|p| p.set_up && p.vk.is_some()) {
            return Ok(p.hash_id);
        }
        // Runs side by side (MAX_JOBS_IN_FLIGHT) set the program up once: the first does it,
        // the others wait for it and find it done.
        let _one_at_a_time = self.setting_up.lock().await;
        if let Some(p) = self.program().filter(|p| p.set_up && p.vk.is_some()) {
            return Ok(p.hash_id);
        }
        let elf = std::fs::read(&self.settings.elf).map_err(|e| CoordError::Refused {
            code: "local".into(),
            message: format!("cannot read the ELF {}: {e}", self.settings.elf.display()),
        })?;
        if elf.len() > MAX_MESSAGE_BYTES {
            return Err(CoordError::Refused { code: "local".into(), message: "the ELF is larger than 256 MiB".into() });
        }
        // The ELF checked at start-up is the one registered: a file replaced since would be
        // proved under the old one's identity (and past its layout check).
        if hex::encode(sha2::Sha256::digest(&elf)) != self.elf_sha256 {
            return Err(CoordError::Refused {
                code: "local".into(),
                message: format!(
                    "the ELF {} changed on disk since start-up; restart the daemon to use it",
                    self.settings.elf.display()
                ),
            });
        }
        let hash_id = self.client.register(elf).await?;
        let record = self.ledger.program_registered(&self.elf_sha256, &hash_id).map_err(local)?;
        tracing::info!(hash_id, "guest program registered with the coordinator");
        if record.set_up && record.vk.is_some() {
            return Ok(hash_id);
        }
        tracing::info!(hash_id, "setting the guest program up on the coordinator (once per ELF)");
        let job_id = self.client.setup(&hash_id).await?;
        // Recorded before it is followed, like every job this daemon starts.
        let job = match self.ledger.coordinator_job("setup", &hash_id, None, &job_id) {
            Ok(job) => job,
            Err(e) => {
                let _ = self.client.cancel(&job_id).await;
                return Err(local(e));
            }
        };
        let (end, _) = match self.await_end(&job, self.settings.timeout, false, false, &StopSignal::never(), rec).await
        {
            Ok(end) => end,
            Err(_) => return Err(CoordError::Failing { code: "setup".into(), message: "set-up stopped".into() }),
        };
        match end {
            JobEnd::SetUp { vk } => {
                let vk = zisk_verifier::decode_vk(&vk).map_err(|e| CoordError::Refused {
                    code: "setup".into(),
                    message: format!("the set-up answered a program key that is not one ({} bytes: {e})", vk.len()),
                })?;
                let vk = crate::block::verify::vk_hex(&vk);
                self.ledger.program_set_up(&self.elf_sha256, &hash_id, &vk).map_err(local)?;
                tracing::info!(hash_id, program_vk = %vk, "guest program set up");
                Ok(hash_id)
            }
            // The guest itself is refused (a bad ELF): every block would fail the same way.
            JobEnd::Failed(Failure::Input(reason) | Failure::Execution(reason)) => Err(CoordError::Refused {
                code: "setup".into(),
                message: format!("the coordinator could not set the guest program up: {reason}"),
            }),
            other => {
                Err(CoordError::Failing { code: "setup".into(), message: format!("the set-up job ended {other:?}") })
            }
        }
    }
}
