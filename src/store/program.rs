//! The guest program as the coordinator knows it (`meta.coordinator_program`): which ELF, the
//! coordinator's hash id for it, and whether its set-up completed — so registration and set-up
//! happen once per ELF, and again only when the coordinator has forgotten them.

use super::{Ledger, StoreError};

/// The guest program registered with the coordinator: which ELF (by SHA-256), the
/// coordinator's hash id for it, and whether its set-up completed. Set-up runs once per hash id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramRecord {
    pub elf_sha256: String,
    pub hash_id: String,
    pub set_up: bool,
}

impl ProgramRecord {
    /// Stored as `<elf sha256> <hash id> <set-up|registered>` in `meta`.
    fn parse(text: &str) -> Option<ProgramRecord> {
        let mut parts = text.split(' ');
        let (elf_sha256, hash_id, stage) = (parts.next()?, parts.next()?, parts.next()?);
        Some(ProgramRecord { elf_sha256: elf_sha256.into(), hash_id: hash_id.into(), set_up: stage == "set-up" })
    }

    fn text(&self) -> String {
        format!("{} {} {}", self.elf_sha256, self.hash_id, if self.set_up { "set-up" } else { "registered" })
    }
}

impl Ledger {
    /// The guest program as the coordinator knows it, if it was registered.
    pub fn coordinator_program(&self) -> Result<Option<ProgramRecord>, StoreError> {
        let conn = self.lock();
        Ok(self.meta(&conn, "coordinator_program")?.and_then(|v| ProgramRecord::parse(&v)))
    }

    /// The guest program was registered with the coordinator under `hash_id` (not yet set up
    /// unless the record already said so for the same ELF and hash id).
    pub fn program_registered(&self, elf_sha256: &str, hash_id: &str) -> Result<ProgramRecord, StoreError> {
        self.write(|tx| {
            let old = self.meta_in(tx, "coordinator_program")?.and_then(|v| ProgramRecord::parse(&v));
            let set_up = old.is_some_and(|o| o.elf_sha256 == elf_sha256 && o.hash_id == hash_id && o.set_up);
            let record = ProgramRecord { elf_sha256: elf_sha256.into(), hash_id: hash_id.into(), set_up };
            self.set_meta_in(tx, "coordinator_program", &record.text())?;
            Ok(record)
        })
    }

    /// The program's set-up completed on the coordinator.
    pub fn program_set_up(&self, elf_sha256: &str, hash_id: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            let record = ProgramRecord { elf_sha256: elf_sha256.into(), hash_id: hash_id.into(), set_up: true };
            self.set_meta_in(tx, "coordinator_program", &record.text())
        })
    }

    /// The coordinator no longer knows the program (it restarted without it): registered and
    /// set up again before the next job.
    pub fn program_forgotten(&self) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute("DELETE FROM meta WHERE key = 'coordinator_program'", []).map(|_| ()).map_err(self.sql())
        })
    }
}
