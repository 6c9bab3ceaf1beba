//! ZisK's distributed prover, as the daemon drives it: a gRPC client of the coordinator's 1.x
//! API (`proto/zisk_coordinator_api.proto`, the contract in
//! `../shared/reference/zisk-coordinator.md`).
//!
//! [`Coordinator`] is the connection and one method per RPC, each with its own deadline and
//! every answer checked; [`follow`] follows one job to its end (a `WatchJob` stream, long polls
//! with `WaitJobResult` when the stream breaks). Errors are [`CoordError`]s that say whether
//! they are the cluster's passing trouble (retried, never a block's failure) or a refusal.
//!
//! Architecture invariant: the generated types ([`wire`]) stay inside this module; the rest of
//! the daemon sees [`JobEnd`], [`Phase`] and [`CoordError`].

mod follow;
pub(crate) mod wire;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use prost::Message;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

pub use follow::{Followed, follow};
use wire::v1 as pb;
use wire::v1::zisk_coordinator_api_client::ZiskCoordinatorApiClient;

/// The largest answer accepted from the coordinator (a proof rides in one message).
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;
/// The API's own limit for input sent inline with the job; the rest goes by `PushJobInput`.
pub const DEFAULT_INLINE_LIMIT: usize = 127 << 20;
/// The size of each further input chunk.
const PUSH_CHUNK: usize = 4 << 20;
/// Ids and names the coordinator hands back are short; anything longer is not its answer.
const MAX_ID_LEN: usize = 128;

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

    fn from_wire(v: i32) -> Phase {
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

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CoordError {
    #[error("the coordinator at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the coordinator did not answer {rpc} within {secs}s")]
    Deadline { rpc: &'static str, secs: u64 },
    #[error("the cluster has no free capacity: {0}")]
    NoCapacity(String),
    #[error("the coordinator does not know the guest program (restarted without it?): {0}")]
    ProgramUnknown(String),
    #[error("the coordinator does not know job {0}")]
    JobUnknown(String),
    #[error("the coordinator refused the request ({code}): {message}")]
    Refused { code: String, message: String },
    #[error("the coordinator failed ({code}): {message}")]
    Failing { code: String, message: String },
    #[error("the coordinator's answer to {rpc} is malformed: {what}")]
    Malformed { rpc: &'static str, what: String },
    #[error("ZISK_COORDINATOR_URL {0:?} is not a usable URL")]
    BadUrl(String),
}

impl CoordError {
    /// The cluster's passing trouble: retried with backoff, never a block's failure by itself.
    pub fn transient(&self) -> bool {
        matches!(
            self,
            CoordError::Unreachable { .. }
                | CoordError::Deadline { .. }
                | CoordError::NoCapacity(_)
                | CoordError::Failing { .. }
                | CoordError::ProgramUnknown(_)
        )
    }

    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            CoordError::Unreachable { .. } => "unreachable",
            CoordError::Deadline { .. } => "deadline",
            CoordError::NoCapacity(_) => "no_capacity",
            CoordError::ProgramUnknown(_) => "program_unknown",
            CoordError::JobUnknown(_) => "job_unknown",
            CoordError::Refused { .. } => "refused",
            CoordError::Failing { .. } => "failing",
            CoordError::Malformed { .. } => "malformed",
            CoordError::BadUrl(_) => "bad_url",
        }
    }
}

/// The `ApiError` a coordinator may carry in an error's details, when it does.
fn api_error_name(details: &[u8]) -> Option<String> {
    if details.is_empty() {
        return None;
    }
    pb::ApiError::decode(details).ok().map(|e| e.name).filter(|n| !n.is_empty() && n.len() <= MAX_ID_LEN)
}

/// What a gRPC error from the coordinator means for the daemon: a plain function of the status
/// code, the `ApiError` name when one is carried, and the message.
pub fn classify(url: &str, code: tonic::Code, api_name: Option<&str>, message: &str, job: Option<&str>) -> CoordError {
    use tonic::Code;
    let message: String = crate::chain::scrub_urls(message).chars().take(300).collect();
    let lower = message.to_ascii_lowercase();
    let about_program = matches!(api_name, Some("PROGRAM_NOT_FOUND" | "PROGRAM_NOT_SETUP"))
        || lower.contains("program not found")
        || lower.contains("setup is not complete");
    let about_job = matches!(api_name, Some("JOB_NOT_FOUND")) || lower.contains("job not found");
    match code {
        Code::NotFound if about_program => CoordError::ProgramUnknown(message),
        Code::NotFound if about_job || job.is_some() => {
            CoordError::JobUnknown(job.map(str::to_string).unwrap_or(message))
        }
        Code::Unavailable
            if matches!(api_name, Some("CLUSTER_UNAVAILABLE")) || lower.contains("cluster unavailable") =>
        {
            CoordError::NoCapacity(message)
        }
        Code::Unavailable | Code::Unknown | Code::Cancelled => {
            CoordError::Unreachable { url: url.to_string(), reason: message }
        }
        Code::DeadlineExceeded => CoordError::Deadline { rpc: "call", secs: 0 },
        Code::ResourceExhausted | Code::Aborted => CoordError::NoCapacity(message),
        Code::Internal | Code::DataLoss => CoordError::Failing { code: format!("{code:?}"), message },
        _ => CoordError::Refused { code: format!("{code:?}"), message },
    }
}

/// One coordinator, one lazily (re)connected HTTP/2 channel.
#[derive(Clone)]
pub struct Coordinator {
    /// For messages: the URL without credentials.
    url: String,
    client: ZiskCoordinatorApiClient<Channel>,
    health: wire::health::health_client::HealthClient<Channel>,
    /// Input past this many bytes goes by `PushJobInput` (a proxy in front of the coordinator
    /// may allow less than the API's 127 MiB).
    inline_limit: usize,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator").field("url", &self.url).finish()
    }
}

/// Each RPC's own deadline: a coordinator that hangs is a transient error, never a hung daemon.
const REGISTER_DEADLINE: Duration = Duration::from_secs(300);
const SUBMIT_DEADLINE: Duration = Duration::from_secs(60);
const CANCEL_DEADLINE: Duration = Duration::from_secs(60);
const HEALTH_DEADLINE: Duration = Duration::from_secs(10);

impl Coordinator {
    /// A client of the coordinator at `url`; nothing is dialled until the first call, so a
    /// coordinator that is down at start-up delays proofs, not the daemon.
    pub fn new(url: &str, inline_limit: usize) -> Result<Coordinator, CoordError> {
        let shown = crate::chain::scrub_urls(url);
        let bad = || CoordError::BadUrl(shown.clone());
        let mut endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|_| bad())?
            .connect_timeout(Duration::from_secs(10))
            // A coordinator that vanished mid-stream is noticed in under a minute.
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(20))
            .keep_alive_while_idle(true)
            .tcp_keepalive(Some(Duration::from_secs(30)));
        match url.split("://").next() {
            Some("https") => {
                endpoint = endpoint.tls_config(ClientTlsConfig::new().with_webpki_roots()).map_err(|_| bad())?;
            }
            Some("http") => {}
            _ => return Err(bad()),
        }
        let channel = endpoint.connect_lazy();
        let client = ZiskCoordinatorApiClient::new(channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let health = wire::health::health_client::HealthClient::new(channel).max_decoding_message_size(1 << 16);
        Ok(Coordinator { url: shown, client, health, inline_limit: inline_limit.clamp(1, DEFAULT_INLINE_LIMIT) })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn error(&self, status: &tonic::Status, job: Option<&str>) -> CoordError {
        let name = api_error_name(status.details());
        classify(&self.url, status.code(), name.as_deref(), status.message(), job)
    }

    async fn call<T>(
        &self,
        rpc: &'static str,
        deadline: Duration,
        job: Option<&str>,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, CoordError> {
        match tokio::time::timeout(deadline, fut).await {
            Err(_) => Err(CoordError::Deadline { rpc, secs: deadline.as_secs() }),
            Ok(Err(status)) => Err(self.error(&status, job)),
            Ok(Ok(r)) => Ok(r.into_inner()),
        }
    }

    /// `RegisterGuestProgram`: idempotent; the program's hash id.
    pub async fn register(&self, elf: Vec<u8>) -> Result<String, CoordError> {
        let mut c = self.client.clone();
        let req = pb::RegisterGuestProgramRequest { zisk_elf: elf };
        let r = self.call("RegisterGuestProgram", REGISTER_DEADLINE, None, c.register_guest_program(req)).await?;
        checked_id("RegisterGuestProgram", "hash_id", r.hash_id)
    }

    async fn submit(&self, kind: pb::job_kind::Kind, metadata: HashMap<String, String>) -> Result<String, CoordError> {
        let mut c = self.client.clone();
        let req = pb::JobRequestMessage { job_kind: Some(pb::JobKind { kind: Some(kind) }), metadata };
        let r = self.call("JobRequest", SUBMIT_DEADLINE, None, c.job_request(req)).await?;
        checked_id("JobRequest", "job_id", r.job_id)
    }

    /// Submits the program's (idempotent) set-up; the job id.
    pub async fn setup(&self, hash_id: &str) -> Result<String, CoordError> {
        let kind = pb::job_kind::Kind::Setup(pb::SetupRequest {
            hash_id: hash_id.to_string(),
            with_hints: false,
            program_name: "ethrex".into(),
            emulator_only: false,
        });
        // Set-up refuses metadata.
        self.submit(kind, HashMap::new()).await
    }

    /// Submits `work` on `input` (the framed input file's bytes), to be done by `deadline`; input
    /// past the inline limit is left for [`Coordinator::push_rest`], so the job id can be
    /// recorded before anything else happens to the job.
    pub async fn submit_work(
        &self,
        work: Work,
        hash_id: &str,
        input: &[u8],
        deadline: SystemTime,
        metadata: HashMap<String, String>,
    ) -> Result<Submitted, CoordError> {
        let (first, rest) = input.split_at(input.len().min(self.inline_limit));
        let (hash_id, input, deadline) =
            (hash_id.to_string(), Some(inline(first)), Some(prost_types::Timestamp::from(deadline)));
        let kind = match work {
            Work::Prove => pb::job_kind::Kind::Prove(pb::ProveRequest {
                hash_id,
                input,
                proof_timeout: deadline,
                proof_dest: pb::ProofKind::Unspecified as i32,
                hints: None,
                random_seed: None,
                snark_protocol: None,
            }),
            // The guest runs without proving: does it accept the input?
            Work::Execute => pb::job_kind::Kind::Execute(pb::ExecuteRequest {
                hash_id,
                input,
                execute_timeout: deadline,
                hints: None,
                random_seed: None,
            }),
        };
        let job_id = self.submit(kind, metadata).await?;
        Ok(Submitted { job_id, pending_input: rest.len() })
    }

    /// `PushJobInput`: the input past the inline part, in chunks; closing the stream ends it.
    pub async fn push_rest(&self, job_id: &str, input: &[u8]) -> Result<(), CoordError> {
        let rest = &input[input.len().min(self.inline_limit)..];
        if rest.is_empty() {
            return Ok(());
        }
        let chunks: Vec<pb::PushJobInputRequest> = rest
            .chunks(PUSH_CHUNK)
            .map(|c| pb::PushJobInputRequest {
                job_id: job_id.to_string(),
                chunk: Some(pb::InputChunk { data: c.to_vec() }),
            })
            .collect();
        let mut c = self.client.clone();
        let secs = 60 + (rest.len() / (1 << 20)) as u64;
        self.call("PushJobInput", Duration::from_secs(secs), Some(job_id), c.push_job_input(tokio_stream_iter(chunks)))
            .await
            .map(|_| ())
    }

    /// `CancelJob`: true if this call cancelled it, false if it had already ended.
    pub async fn cancel(&self, job_id: &str) -> Result<bool, CoordError> {
        let mut c = self.client.clone();
        let req = pb::CancelJobRequest { job_id: job_id.to_string() };
        let r = self.call("CancelJob", CANCEL_DEADLINE, Some(job_id), c.cancel_job(req)).await?;
        Ok(r.cancelled)
    }

    /// The standard gRPC health check: is the coordinator serving?
    pub async fn serving(&self) -> Result<bool, CoordError> {
        let mut h = self.health.clone();
        let req = wire::health::HealthCheckRequest { service: String::new() };
        let r = self.call("Health/Check", HEALTH_DEADLINE, None, h.check(req)).await?;
        Ok(r.status == wire::health::health_check_response::ServingStatus::Serving as i32)
    }
}

/// What a job does with a block's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    Prove,
    Execute,
}

/// A job the coordinator accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub job_id: String,
    /// Input bytes still to push ([`Coordinator::push_rest`]).
    pub pending_input: usize,
}

fn inline(data: &[u8]) -> pb::InputKind {
    pb::InputKind { kind: Some(pb::input_kind::Kind::Inline(pb::InputChunk { data: data.to_vec() })) }
}

fn tokio_stream_iter<T: Send + 'static>(items: Vec<T>) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::iter(items)
}

/// An id from the coordinator: non-empty, short, printable.
fn checked_id(rpc: &'static str, field: &str, id: String) -> Result<String, CoordError> {
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.chars().all(|c| c.is_ascii_graphic()) {
        let shown: String = id.chars().take(40).collect();
        return Err(CoordError::Malformed { rpc, what: format!("{field} {shown:?}") });
    }
    Ok(id)
}

fn millis_between(from: &Option<prost_types::Timestamp>, to: &Option<prost_types::Timestamp>) -> Option<u64> {
    let (from, to) = (from.as_ref()?, to.as_ref()?);
    let (from, to) = (SystemTime::try_from(*from).ok()?, SystemTime::try_from(*to).ok()?);
    let ms = u64::try_from(to.duration_since(from).ok()?.as_millis()).ok()?;
    Some(ms.max(1))
}

fn failure(f: Option<pb::JobFailure>) -> Failure {
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
fn completed(result: Option<pb::JobKindResponse>) -> Option<JobEnd> {
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
    use tonic::Code;

    use super::*;

    #[test]
    fn errors_say_whether_they_pass() {
        let url = "http://c:7000";
        let e = classify(url, Code::Unavailable, Some("CLUSTER_UNAVAILABLE"), "Cluster unavailable: no workers", None);
        assert!(matches!(e, CoordError::NoCapacity(_)) && e.transient(), "{e:?}");
        let e = classify(url, Code::Unavailable, None, "tcp connect error", None);
        assert!(matches!(e, CoordError::Unreachable { .. }) && e.transient(), "{e:?}");
        let e = classify(url, Code::NotFound, None, "Program not found: abc", None);
        assert!(matches!(e, CoordError::ProgramUnknown(_)) && e.transient(), "{e:?}");
        let e = classify(url, Code::NotFound, Some("JOB_NOT_FOUND"), "Job not found: 1-2", Some("1-2"));
        assert_eq!(e, CoordError::JobUnknown("1-2".into()));
        assert!(!e.transient());
        let e = classify(url, Code::InvalidArgument, Some("JOB_METADATA_NOT_ALLOWED"), "metadata not allowed", None);
        assert!(matches!(e, CoordError::Refused { .. }) && !e.transient(), "{e:?}");
        let e = classify(url, Code::Internal, None, "An internal error occurred", None);
        assert!(matches!(e, CoordError::Failing { .. }) && e.transient(), "{e:?}");
        let e = classify(url, Code::Unimplemented, None, "no such method", None);
        assert!(matches!(e, CoordError::Refused { .. }), "{e:?}");
    }

    #[test]
    fn api_errors_in_details_are_read_and_garbage_is_not() {
        let bytes =
            pb::ApiError { code: 2001, name: "CLUSTER_UNAVAILABLE".into(), message: "x".into() }.encode_to_vec();
        assert_eq!(api_error_name(&bytes).as_deref(), Some("CLUSTER_UNAVAILABLE"));
        assert_eq!(api_error_name(&[0xff, 0xff, 0xff]), None);
        assert_eq!(api_error_name(&[]), None);
    }

    #[test]
    fn ids_from_the_coordinator_are_checked() {
        assert!(checked_id("JobRequest", "job_id", "6f1c2a5e-0000-4000-8000-000000000001".into()).is_ok());
        for bad in ["", "has space", &"x".repeat(500), "new\nline"] {
            assert!(checked_id("JobRequest", "job_id", bad.into()).is_err(), "{bad:?}");
        }
    }

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

    #[test]
    fn urls_are_checked_and_credentials_never_shown() {
        assert!(matches!(Coordinator::new("ftp://c:7000", 10), Err(CoordError::BadUrl(_))));
        assert!(matches!(Coordinator::new("not a url", 10), Err(CoordError::BadUrl(_))));
    }
}
