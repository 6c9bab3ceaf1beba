//! A job as the rest of the daemon sees it: its phase, how it ended, why it failed, read from the
//! coordinator's messages (every field checked, texts scrubbed and capped).

use std::time::SystemTime;

use super::MAX_ID_LEN;
use super::wire::v1 as pb;

/// A proving phase, as the coordinator reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Accepted, waiting for workers.
    Queued,
    /// Started, phase not yet said.
    Started,
    /// Witness and partial contributions.
    Contributions,
    Prove,
    Recurse,
    /// The input is not complete yet.
    WaitingForInput,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Queued => "queued",
            Phase::Started => "started",
            Phase::Contributions => "contributions",
            Phase::Prove => "prove",
            Phase::Recurse => "recurse",
            Phase::WaitingForInput => "waiting_for_input",
        }
    }

    pub(super) fn from_wire(v: i32) -> Phase {
        match pb::JobPhase::try_from(v) {
            Ok(pb::JobPhase::Contributions) => Phase::Contributions,
            Ok(pb::JobPhase::Prove) => Phase::Prove,
            Ok(pb::JobPhase::Recurse) => Phase::Recurse,
            _ => Phase::Started,
        }
    }
}

/// What a job came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    /// A prove job's proof.
    Proved {
        /// `Proof.data`: the bytes kept as the block's proof file.
        data: Vec<u8>,
        /// The job's own proving time (`completed_at - started_at`), when it says.
        proving_ms: Option<u64>,
        /// `stats.steps`.
        steps: Option<u64>,
    },
    /// An execute or set-up job that completed.
    Done {
        steps: Option<u64>,
        ms: Option<u64>,
    },
    Failed(Failure),
    /// Cancelled (by us or anyone else).
    Cancelled,
    /// The coordinator does not know the job (it restarted and forgot it).
    Unknown,
}

/// A `JobFailure`, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Timeout {
        phase: Option<&'static str>,
        limit_secs: Option<u64>,
    },
    Input(String),
    Execution(String),
    Internal {
        trace_id: String,
    },
    Cancelled,
    /// A failure whose kind this build does not know.
    Unspecified,
    /// The coordinator said the job completed but sent no result.
    NoResult,
}

pub(super) fn millis_between(
    from: &Option<prost_types::Timestamp>,
    to: &Option<prost_types::Timestamp>,
) -> Option<u64> {
    let (from, to) = (from.as_ref()?, to.as_ref()?);
    let (from, to) = (SystemTime::try_from(*from).ok()?, SystemTime::try_from(*to).ok()?);
    let ms = u64::try_from(to.duration_since(from).ok()?.as_millis()).ok()?;
    Some(ms.max(1))
}

pub(super) fn failure(f: Option<pb::JobFailure>) -> Failure {
    use pb::job_failure::Kind;
    let text = |s: String| -> String { crate::chain::scrub_urls(&s).chars().take(2000).collect() };
    match f.and_then(|f| f.kind) {
        Some(Kind::Timeout(t)) => Failure::Timeout {
            phase: t.phase.map(|p| Phase::from_wire(p).as_str()),
            limit_secs: t.limit.and_then(|d| u64::try_from(d.seconds).ok()),
        },
        Some(Kind::Input(i)) => Failure::Input(text(i.reason)),
        Some(Kind::Execution(e)) => Failure::Execution(text(e.reason)),
        Some(Kind::Internal(i)) => Failure::Internal { trace_id: i.trace_id.chars().take(MAX_ID_LEN).collect() },
        Some(Kind::Cancelled(_)) => Failure::Cancelled,
        None => Failure::Unspecified,
    }
}

/// A completed job's result, as data; `None` if a completed job came without one.
pub(super) fn completed(result: Option<pb::JobKindResponse>) -> Option<JobEnd> {
    use pb::job_kind_response::Kind;
    match result?.kind? {
        Kind::Prove(p) => {
            let steps = p.stats.as_ref().map(|s| s.steps).filter(|s| *s > 0);
            let proof = p.proof.unwrap_or_default();
            Some(JobEnd::Proved {
                proving_ms: millis_between(&proof.started_at, &proof.completed_at),
                data: proof.data,
                steps,
            })
        }
        Kind::Execute(e) => {
            let stats = e.stats.unwrap_or_default();
            Some(JobEnd::Done {
                steps: Some(stats.steps).filter(|s| *s > 0),
                ms: Some(stats.duration_nanos / 1_000_000).filter(|m| *m > 0),
            })
        }
        Kind::Setup(_) => Some(JobEnd::Done { steps: None, ms: None }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_result_gives_data_steps_and_the_jobs_own_time() {
        let t = |s| Some(prost_types::Timestamp { seconds: s, nanos: 0 });
        let result = pb::JobKindResponse {
            kind: Some(pb::job_kind_response::Kind::Prove(pb::ProveResponse {
                proof: Some(pb::Proof {
                    data: vec![7; 10],
                    started_at: t(100),
                    completed_at: t(142),
                    ..Default::default()
                }),
                stats: Some(pb::ExecutionStats { steps: 123_456, ..Default::default() }),
            })),
        };
        assert_eq!(
            completed(Some(result)),
            Some(JobEnd::Proved { data: vec![7; 10], proving_ms: Some(42_000), steps: Some(123_456) })
        );
        // A clock that runs backwards gives no time rather than an absurd one.
        assert_eq!(millis_between(&t(200), &t(100)), None);
        assert_eq!(completed(None), None);
    }
}
