//! Following one job to its end: the `WatchJob` stream while it lasts, then `WaitJobResult`
//! long polls (a broken stream, a proxy that cuts long streams, a coordinator restart). The
//! coordinator's passing trouble is reported to the caller and waited out with backoff; only
//! the job's own end, or the coordinator forgetting the job, ends the following. The caller
//! bounds it (its own deadline, a stop): dropping the future stops following, never the job.

use std::time::Duration;

use super::job::{completed, failure};
use super::wire::v1 as pb;
use super::{CoordError, Coordinator, Failure, JobEnd, MAX_ID_LEN, Phase};
use crate::runtime::backoff::Backoff;
use crate::store::RecordedJob;

/// How long each `WaitJobResult` may hold before answering.
const POLL_HOLD_SECS: u32 = 30;
/// A stream silent this long may be stuck (a proxy, a lost event): the job is polled instead,
/// and a poll answers at least every `POLL_HOLD_SECS`.
const STREAM_IDLE: Duration = Duration::from_secs(120);
/// Polls never come faster than this, whatever the coordinator answers.
const POLL_MIN_GAP: Duration = Duration::from_secs(1);
const TROUBLE: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));

/// What one stream event or poll answer means.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Phase(Phase),
    End(JobEnd),
    /// Completed, but the result must be asked for again.
    CompletedWithoutResult,
}

/// How following ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    End(JobEnd),
}

/// Whose answers are awaited: the job followed and, for a proof, the program registered.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub job_id: &'a str,
    /// The program hash id a completed proof must name (`None`: not known, not checked).
    pub hash_id: Option<&'a str>,
}

/// Follows `job` (recorded in the ledger: only the ledger mints a [`RecordedJob`]) until it ends. `phase` hears each phase as it is entered; `trouble` hears
/// `Some(error)` while the coordinator cannot be asked and `None` once it answers again.
///
/// An event or poll answer about another job, or a proof of another program than `hash_id`,
/// ends following at once with [`Failure::Foreign`]: a coordinator that mixes jobs up cannot be
/// trusted with this one's result, and its answer is never taken as this job's proof.
pub async fn follow(
    c: &Coordinator,
    job: &RecordedJob,
    hash_id: Option<&str>,
    mut phase: impl FnMut(Phase),
    mut trouble: impl FnMut(Option<&CoordError>),
) -> Followed {
    let job_id = job.id();
    let expected = Expected { job_id, hash_id };
    let mut failures = 0u32;
    let mut results_missing = 0u32;
    // The stream first; once it breaks, long polls to the end.
    match c.watch(job_id).await {
        Ok(mut stream) => {
            trouble(None);
            loop {
                let Ok(next) = tokio::time::timeout(STREAM_IDLE, stream.message()).await else {
                    tracing::warn!(job_id, "the job's event stream went silent; polling");
                    break;
                };
                match next {
                    Ok(Some(event)) => match event_step(event, expected) {
                        Some(Step::Phase(p)) => phase(p),
                        Some(Step::End(end)) => return Followed::End(end),
                        Some(Step::CompletedWithoutResult) => {
                            results_missing += 1;
                            break;
                        }
                        None => {}
                    },
                    Ok(None) => {
                        tracing::debug!(job_id, "the job's event stream ended before the job did; polling");
                        break;
                    }
                    Err(status) => {
                        let e = c.error(&status, Some(job_id));
                        if e == CoordError::JobUnknown(job_id.to_string()) {
                            return Followed::End(JobEnd::Unknown);
                        }
                        tracing::warn!(job_id, error = %e, "the job's event stream broke; polling");
                        break;
                    }
                }
            }
        }
        Err(CoordError::JobUnknown(_)) => return Followed::End(JobEnd::Unknown),
        Err(e) => {
            tracing::warn!(job_id, error = %e, "cannot watch the job; polling");
            if e.is_transient() {
                trouble(Some(&e));
            }
        }
    }
    loop {
        let asked = tokio::time::Instant::now();
        match c.wait(job_id, POLL_HOLD_SECS).await {
            Ok(answer) => {
                trouble(None);
                failures = 0;
                match status_step(answer, expected) {
                    Some(Step::Phase(p)) => phase(p),
                    Some(Step::End(end)) => return Followed::End(end),
                    Some(Step::CompletedWithoutResult) => {
                        results_missing += 1;
                        if results_missing >= 3 {
                            return Followed::End(JobEnd::Failed(Failure::NoResult));
                        }
                        // A finished job's stream replays its completion, with the result.
                        if let Ok(mut stream) = c.watch(job_id).await {
                            while let Ok(Ok(Some(event))) = tokio::time::timeout(STREAM_IDLE, stream.message()).await {
                                if let Some(Step::End(end)) = event_step(event, expected) {
                                    return Followed::End(end);
                                }
                            }
                        }
                    }
                    None => {}
                }
                tokio::time::sleep_until(asked + POLL_MIN_GAP).await;
            }
            Err(CoordError::JobUnknown(_)) => return Followed::End(JobEnd::Unknown),
            Err(e) => {
                trouble(Some(&e));
                failures = failures.saturating_add(1);
                tokio::time::sleep(TROUBLE.after(failures)).await;
            }
        }
    }
}

/// An answer about another job than the one followed ends following with a named failure.
fn foreign(expected: Expected<'_>, about: &str) -> Option<Step> {
    if about == expected.job_id {
        return None;
    }
    let about: String = about.chars().take(MAX_ID_LEN).collect();
    tracing::warn!(job_id = expected.job_id, about = %about.escape_debug(), "the coordinator answered about another job");
    Some(Step::End(JobEnd::Failed(Failure::Foreign(format!(
        "an answer about job {about:?} while following job {}",
        expected.job_id
    )))))
}

fn event_step(event: pb::JobEvent, expected: Expected<'_>) -> Option<Step> {
    use pb::job_event::Event;
    let event = event.event?;
    let about = match &event {
        Event::Queued(p) | Event::Started(p) | Event::WaitingForInput(p) | Event::Cancelled(p) => &p.job_id,
        Event::Progress(p) => &p.job_id,
        Event::Completed(c) => &c.job_id,
        Event::Failed(f) => &f.job_id,
    };
    if let Some(step) = foreign(expected, about) {
        return Some(step);
    }
    Some(match event {
        Event::Queued(_) => Step::Phase(Phase::Queued),
        Event::Started(_) => Step::Phase(Phase::Started),
        Event::Progress(p) => Step::Phase(Phase::from_wire(p.phase)),
        Event::WaitingForInput(_) => Step::Phase(Phase::WaitingForInput),
        Event::Completed(c) => match completed(c.result, expected.hash_id) {
            Some(end) => Step::End(end),
            None => Step::CompletedWithoutResult,
        },
        Event::Cancelled(_) => Step::End(JobEnd::Cancelled),
        Event::Failed(f) => Step::End(JobEnd::Failed(failure(f.failure))),
    })
}

fn status_step(answer: pb::WaitJobResultResponse, expected: Expected<'_>) -> Option<Step> {
    use pb::job_status::Status;
    if let Some(step) = foreign(expected, &answer.job_id) {
        return Some(step);
    }
    Some(match answer.job_status?.status? {
        Status::Queued(_) => Step::Phase(Phase::Queued),
        Status::Running(r) => Step::Phase(r.phase.map_or(Phase::Started, Phase::from_wire)),
        Status::WaitingForInput(_) => Step::Phase(Phase::WaitingForInput),
        Status::Completed(_) => match completed(answer.result, expected.hash_id) {
            Some(end) => Step::End(end),
            None => Step::CompletedWithoutResult,
        },
        Status::Failed(f) => Step::End(JobEnd::Failed(failure(f.failure))),
        Status::Cancelled(_) => Step::End(JobEnd::Cancelled),
    })
}

impl Coordinator {
    /// Opens `WatchJob`; the stream's messages are capped like every answer.
    async fn watch(&self, job_id: &str) -> Result<tonic::Streaming<pb::JobEvent>, CoordError> {
        let mut c = self.client.clone();
        let req = pb::WatchJobRequest { job_id: job_id.to_string() };
        self.call("WatchJob", Duration::from_secs(30), Some(job_id), c.watch_job(req)).await
    }

    /// One `WaitJobResult` long poll.
    async fn wait(&self, job_id: &str, hold: u32) -> Result<pb::WaitJobResultResponse, CoordError> {
        let mut c = self.client.clone();
        let req = pb::WaitJobResultRequest { job_id: job_id.to_string(), timeout_seconds: Some(hold) };
        let deadline = Duration::from_secs(u64::from(hold) + 30);
        self.call("WaitJobResult", deadline, Some(job_id), c.wait_job_result(req)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(e: pb::job_event::Event) -> pb::JobEvent {
        pb::JobEvent { event: Some(e) }
    }

    const J: Expected<'static> = Expected { job_id: "j", hash_id: Some("h") };

    fn event_step(e: pb::JobEvent) -> Option<Step> {
        super::event_step(e, J)
    }

    fn status_step(a: pb::WaitJobResultResponse) -> Option<Step> {
        super::status_step(a, J)
    }

    fn is_foreign(step: Option<Step>) -> bool {
        matches!(step, Some(Step::End(JobEnd::Failed(Failure::Foreign(_)))))
    }

    #[test]
    fn answers_about_another_job_or_program_are_never_this_jobs_end() {
        use pb::job_event::{Completed, Event, Plain};
        let proof = |hash: &str| pb::JobKindResponse {
            kind: Some(pb::job_kind_response::Kind::Prove(pb::ProveResponse {
                proof: Some(pb::Proof { hash_id: hash.into(), data: vec![5; 8], ..Default::default() }),
                stats: None,
            })),
        };
        let done = |job: &str, hash: &str| {
            event(Event::Completed(Completed { job_id: job.into(), result: Some(proof(hash)), timestamp: None }))
        };
        assert!(matches!(event_step(done("j", "h")), Some(Step::End(JobEnd::Proved { .. }))));
        assert!(is_foreign(event_step(done("k", "h"))));
        assert!(is_foreign(event_step(done("j", "other"))));
        assert!(is_foreign(event_step(event(Event::Started(Plain { job_id: "k".into(), timestamp: None })))));
        let answer = |job: &str, hash: &str| pb::WaitJobResultResponse {
            job_id: job.into(),
            job_status: Some(pb::JobStatus { status: Some(pb::job_status::Status::Completed(Default::default())) }),
            result: Some(proof(hash)),
        };
        assert!(matches!(status_step(answer("j", "h")), Some(Step::End(JobEnd::Proved { .. }))));
        assert!(is_foreign(status_step(answer("k", "h"))));
        assert!(is_foreign(status_step(answer("", "h"))));
        assert!(is_foreign(status_step(answer("j", "other"))));
        // A program not known (a job re-attached without a record) is not checked.
        let unknown = Expected { job_id: "j", hash_id: None };
        assert!(matches!(super::status_step(answer("j", "x"), unknown), Some(Step::End(JobEnd::Proved { .. }))));
    }

    #[test]
    fn events_become_phases_and_ends() {
        use pb::job_event::{Event, Progress};
        let progress = |phase: pb::JobPhase| {
            event(Event::Progress(Progress { job_id: "j".into(), phase: phase as i32, timestamp: None }))
        };
        assert_eq!(event_step(progress(pb::JobPhase::Contributions)), Some(Step::Phase(Phase::Contributions)));
        assert_eq!(event_step(progress(pb::JobPhase::Recurse)), Some(Step::Phase(Phase::Recurse)));
        // A phase number from a newer coordinator is still "running", not an error.
        let mut p = Progress { job_id: "j".into(), phase: 0, timestamp: None };
        p.phase = 99;
        assert_eq!(event_step(event(Event::Progress(p))), Some(Step::Phase(Phase::Started)));
        let failed = event(Event::Failed(pb::job_event::Failed {
            job_id: "j".into(),
            failure: Some(pb::JobFailure {
                kind: Some(pb::job_failure::Kind::Internal(pb::job_failure::Internal { trace_id: "t-1".into() })),
            }),
            timestamp: None,
        }));
        assert_eq!(event_step(failed), Some(Step::End(JobEnd::Failed(Failure::Internal { trace_id: "t-1".into() }))));
        let bare =
            event(Event::Completed(pb::job_event::Completed { job_id: "j".into(), result: None, timestamp: None }));
        assert_eq!(event_step(bare), Some(Step::CompletedWithoutResult));
        assert_eq!(event_step(pb::JobEvent { event: None }), None);
    }

    #[test]
    fn poll_answers_become_phases_and_ends() {
        use pb::job_status::{Running, Status};
        let answer = |s: Status| pb::WaitJobResultResponse {
            job_id: "j".into(),
            job_status: Some(pb::JobStatus { status: Some(s) }),
            result: None,
        };
        assert_eq!(
            status_step(answer(Status::Running(Running { phase: Some(pb::JobPhase::Prove as i32) }))),
            Some(Step::Phase(Phase::Prove))
        );
        assert_eq!(status_step(answer(Status::Cancelled(Default::default()))), Some(Step::End(JobEnd::Cancelled)));
        let timeout = pb::JobFailure {
            kind: Some(pb::job_failure::Kind::Timeout(pb::job_failure::Timeout {
                phase: Some(pb::JobPhase::Recurse as i32),
                limit: Some(prost_types::Duration { seconds: 600, nanos: 0 }),
            })),
        };
        assert_eq!(
            status_step(answer(Status::Failed(pb::job_status::Failed { failure: Some(timeout) }))),
            Some(Step::End(JobEnd::Failed(Failure::Timeout { phase: Some("recurse"), limit_secs: Some(600) })))
        );
    }
}
