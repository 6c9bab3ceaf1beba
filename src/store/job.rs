//! A coordinator job the ledger has recorded. Only the ledger mints one (when it records the
//! job, or reads a recorded job back), and following a job, pushing its input or re-attaching
//! to it takes one: a job cannot be followed before it is recorded, by construction.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedJob(String);

impl RecordedJob {
    /// Minted by the ledger alone, once the job id is durably recorded.
    pub(super) fn minted(id: impl Into<String>) -> RecordedJob {
        RecordedJob(id.into())
    }

    /// A job as a test's fake ledger row would hold it.
    #[cfg(test)]
    pub fn for_tests(id: &str) -> RecordedJob {
        RecordedJob(id.to_string())
    }

    pub fn id(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RecordedJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
