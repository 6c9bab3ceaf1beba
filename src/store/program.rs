//! The guest program as the coordinator knows it (`meta.coordinator_program`): which ELF, the
//! coordinator's hash id for it, and whether its set-up completed — so registration and set-up
//! happen once per ELF, and again only when the coordinator has forgotten them.

use rusqlite::params;

use super::{Ledger, RecordedJob, StoreError, now_ms, sql_u64};

/// The guest program registered with the coordinator: which ELF (by SHA-256), the
/// coordinator's hash id for it, and whether its set-up completed. Set-up runs once per hash id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramRecord {
    pub elf_sha256: String,
    pub hash_id: String,
    pub set_up: bool,
    /// The program key the set-up answered (hex): what every proof of this program is checked
    /// for. A record without one (schema 7) is set up again to learn it.
    pub vk: Option<String>,
}

impl ProgramRecord {
    /// Stored as `<elf sha256> <hash id> <set-up|registered>[ <program key hex>]` in `meta`.
    fn parse(text: &str) -> Option<ProgramRecord> {
        let mut parts = text.split(' ');
        let (elf_sha256, hash_id, stage) = (parts.next()?, parts.next()?, parts.next()?);
        let vk = parts.next().filter(|v| !v.is_empty()).map(str::to_string);
        Some(ProgramRecord { elf_sha256: elf_sha256.into(), hash_id: hash_id.into(), set_up: stage == "set-up", vk })
    }

    fn text(&self) -> String {
        let stage = if self.set_up { "set-up" } else { "registered" };
        match &self.vk {
            Some(vk) => format!("{} {} {stage} {vk}", self.elf_sha256, self.hash_id),
            None => format!("{} {} {stage}", self.elf_sha256, self.hash_id),
        }
    }
}

impl Ledger {
    /// The guest program as the coordinator knows it, if it was registered.
    pub fn coordinator_program(&self) -> Result<Option<ProgramRecord>, StoreError> {
        self.conn(|conn| Ok(self.meta(conn, "coordinator_program")?.and_then(|v| ProgramRecord::parse(&v))))
    }

    /// The guest program was registered with the coordinator under `hash_id` (not yet set up
    /// unless the record already said so for the same ELF and hash id).
    pub fn program_registered(&self, elf_sha256: &str, hash_id: &str) -> Result<ProgramRecord, StoreError> {
        self.write(|tx| {
            let old = self.meta_in(tx, "coordinator_program")?.and_then(|v| ProgramRecord::parse(&v));
            let same = old.filter(|o| o.elf_sha256 == elf_sha256 && o.hash_id == hash_id && o.set_up);
            let record = ProgramRecord {
                elf_sha256: elf_sha256.into(),
                hash_id: hash_id.into(),
                set_up: same.is_some(),
                vk: same.and_then(|o| o.vk),
            };
            self.set_meta_in(tx, "coordinator_program", &record.text())?;
            Ok(record)
        })
    }

    /// The program's set-up completed on the coordinator, answering its program key (hex).
    pub fn program_set_up(&self, elf_sha256: &str, hash_id: &str, vk: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            let record = ProgramRecord {
                elf_sha256: elf_sha256.into(),
                hash_id: hash_id.into(),
                set_up: true,
                vk: Some(vk.into()),
            };
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

    /// The coordinator accepted a job that is not a block's prove job (`kind`: `input_check`,
    /// `setup`) for the program `hash_id`: recorded before its input is pushed or it is followed,
    /// so no job the daemon started is unknown to the ledger.
    pub fn coordinator_job(
        &self,
        kind: &str,
        hash_id: &str,
        block: Option<(u64, u32)>,
        job_id: &str,
    ) -> Result<RecordedJob, StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO coordinator_jobs (job_id, kind, hash_id, block, attempt, submitted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    job_id,
                    kind,
                    hash_id,
                    block.map(|(n, _)| sql_u64(n)),
                    block.map(|(_, a)| i64::from(a)),
                    now_ms()
                ],
            )
            .map(|_| RecordedJob::minted(job_id))
            .map_err(self.sql())
        })
    }

    /// The recorded input-check and set-up jobs, oldest first: `(job id, kind, block)`.
    #[cfg(test)]
    pub fn coordinator_jobs(&self) -> Result<Vec<(String, String, Option<u64>)>, StoreError> {
        self.conn(|conn| {
            let mut stmt = conn
                .prepare("SELECT job_id, kind, block FROM coordinator_jobs ORDER BY submitted_at, rowid")
                .map_err(self.sql())?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<i64>>(2)?)))
                .map_err(self.sql())?;
            rows.map(|r| r.map(|(id, kind, block)| (id, kind, block.and_then(|b| u64::try_from(b).ok()))))
                .collect::<Result<_, _>>()
                .map_err(self.sql())
        })
    }
}
