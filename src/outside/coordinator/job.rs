//! A job as the rest of the daemon sees it: its phase, how it ended, why it failed, read from the
//! coordinator's messages (every field checked, texts scrubbed and capped).

use std::time::{Duration, SystemTime};

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
    /// An execute job that completed.
    Done {
        steps: Option<u64>,
        ms: Option<u64>,
        /// `ExecuteResponse.public_outputs`: what the guest committed (at most 256 bytes kept).
        outputs: Vec<u8>,
    },
    /// A set-up job that completed, with the program key it answered (`SetupResponse.vk`).
    SetUp {
        vk: Vec<u8>,
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
    /// The coordinator answered about another job, or with a proof of another program: never
    /// this job's result (what was expected and what came).
    Foreign(String),
}

/// A coordinator's proving time shorter than this is not believed: no block is proved in less.
const MIN_BELIEVED_PROVING: Duration = Duration::from_secs(1);
/// Nor one longer than the longest PROVER_TIMEOUT_SECONDS: such a job would have been cancelled.
const MAX_BELIEVED_PROVING: Duration = Duration::from_secs(30 * 86_400);

/// The job's own proving time (`completed_at - started_at`), if it can be believed; otherwise
/// why not, and the daemon reports the time it measured itself. `now` bounds a completion
/// stamped in the future.
pub fn believed_proving_ms(
    started: Option<SystemTime>,
    completed: Option<SystemTime>,
    now: SystemTime,
) -> Result<u64, &'static str> {
    let (Some(started), Some(completed)) = (started, completed) else {
        return Err("the proof carries no start or completion time");
    };
    // A little slack for clocks that differ between the cluster and this host.
    if completed > now + Duration::from_secs(60) {
        return Err("the proof's completion time is in the future");
    }
    let took = completed.duration_since(started).map_err(|_| "the proof completed before it started")?;
    if took < MIN_BELIEVED_PROVING {
        return Err("the proof's proving time is implausibly short");
    }
    if took > MAX_BELIEVED_PROVING {
        return Err("the proof's proving time is longer than any run may take");
    }
    u64::try_from(took.as_millis()).map_err(|_| "the proof's proving time does not fit")
}

fn wall(t: &Option<prost_types::Timestamp>) -> Option<SystemTime> {
    SystemTime::try_from(*t.as_ref()?).ok()
}

pub(super) fn failure(f: Option<pb::JobFailure>) -> Failure {
    use pb::job_failure::Kind;
    let text = |s: String| -> String { crate::outside::chain::scrub_urls(&s).chars().take(2000).collect() };
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

/// A completed job's result, as data; `None` if a completed job came without one. A proof of
/// another program than `hash_id` (when known) is [`Failure::Foreign`], never a proof.
pub(super) fn completed(result: Option<pb::JobKindResponse>, hash_id: Option<&str>) -> Option<JobEnd> {
    use pb::job_kind_response::Kind;
    match result?.kind? {
        Kind::Prove(p) => {
            let steps = p.stats.as_ref().map(|s| s.steps).filter(|s| *s > 0);
            let proof = p.proof.unwrap_or_default();
            if let Some(expected) = hash_id
                && proof.hash_id != expected
            {
                let got: String = proof.hash_id.chars().take(MAX_ID_LEN).collect();
                return Some(JobEnd::Failed(Failure::Foreign(format!(
                    "a proof of program {got:?}, not of the registered program {expected}"
                ))));
            }
            let proving_ms =
                match believed_proving_ms(wall(&proof.started_at), wall(&proof.completed_at), SystemTime::now()) {
                    Ok(ms) => Some(ms),
                    Err(why) => {
                        tracing::warn!(
                            why,
                            "the coordinator's proving time is not believed; the daemon's own measure is reported"
                        );
                        None
                    }
                };
            Some(JobEnd::Proved { proving_ms, data: proof.data, steps })
        }
        Kind::Execute(e) => {
            let stats = e.stats.unwrap_or_default();
            // ZisK has 64 u32 outputs: anything longer is not a guest's and is cut, never kept whole.
            let mut outputs = e.public_outputs;
            outputs.truncate(crate::block::commitment::OUTPUT_WORDS * 4 + 4);
            Some(JobEnd::Done {
                steps: Some(stats.steps).filter(|s| *s > 0),
                ms: Some(stats.duration_nanos / 1_000_000).filter(|m| *m > 0),
                outputs,
            })
        }
        Kind::Setup(s) => Some(JobEnd::SetUp { vk: s.vk.into_iter().take(64).collect() }),
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
                    hash_id: "h-1".into(),
                    data: vec![7; 10],
                    started_at: t(100),
                    completed_at: t(142),
                    ..Default::default()
                }),
                stats: Some(pb::ExecutionStats { steps: 123_456, ..Default::default() }),
            })),
        };
        assert_eq!(
            completed(Some(result.clone()), Some("h-1")),
            Some(JobEnd::Proved { data: vec![7; 10], proving_ms: Some(42_000), steps: Some(123_456) })
        );
        // A proof of another program is never this job's proof.
        assert!(matches!(completed(Some(result), Some("h-2")), Some(JobEnd::Failed(Failure::Foreign(_)))));
        assert_eq!(completed(None, Some("h-1")), None);
    }

    #[test]
    fn an_absurd_proving_time_is_not_believed() {
        let at = |ms: u64| Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms));
        let now = at(3_600_000).unwrap();
        assert_eq!(believed_proving_ms(at(0), at(42_000), now), Ok(42_000));
        assert_eq!(believed_proving_ms(at(0), at(1_000), now), Ok(1_000));
        // 1 ms, 0 ms, backwards, in the future, missing: the daemon's own measure instead.
        assert!(believed_proving_ms(at(0), at(1), now).is_err());
        assert!(believed_proving_ms(at(0), at(0), now).is_err());
        // A start stamped at the epoch (an unset clock) is not 56 years of proving.
        let epoch = Some(SystemTime::UNIX_EPOCH);
        assert!(believed_proving_ms(epoch, Some(now), now).is_err());
        assert!(believed_proving_ms(at(0), at(999), now).is_err());
        assert!(believed_proving_ms(at(2_000), at(1_000), now).is_err());
        assert!(believed_proving_ms(at(0), at(7_200_000), now).is_err());
        assert!(believed_proving_ms(None, at(5_000), now).is_err());
    }
}
