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

mod error;
mod follow;
mod job;
pub(crate) mod wire;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

pub use error::{CoordError, classify};
pub use follow::{Followed, follow};
pub use job::{Failure, JobEnd, Phase};
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
/// An odd job id up to this long is still sent back in a `CancelJob`; a longer one is no id.
const MAX_ODD_ID_LEN: usize = 4096;

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
        let shown = crate::outside::chain::scrub_urls(url);
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
        let name = error::api_error_name(status.details());
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
        if checked_id("JobRequest", "job_id", r.job_id.clone()).is_ok() {
            return Ok(r.job_id);
        }
        // A job was accepted under an id this daemon cannot record or follow: it is cancelled
        // (best effort) rather than left running on the cluster unknown to the ledger.
        let shown: String = r.job_id.chars().take(40).collect::<String>().escape_debug().to_string();
        if !r.job_id.is_empty() && r.job_id.len() <= MAX_ODD_ID_LEN {
            match self.cancel(&r.job_id).await {
                Ok(_) => {
                    tracing::warn!(job_id = %shown, "the coordinator accepted a job under an odd id; it was cancelled")
                }
                Err(e) => {
                    tracing::warn!(job_id = %shown, error = %e, "the coordinator accepted a job under an odd id; it could not be cancelled")
                }
            }
        }
        Err(CoordError::OddJobId(shown))
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
        self.call(
            "PushJobInput",
            Duration::from_secs(secs),
            Some(job_id),
            c.push_job_input(futures_util::stream::iter(chunks)),
        )
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

/// An id from the coordinator: non-empty, short, printable.
fn checked_id(rpc: &'static str, field: &str, id: String) -> Result<String, CoordError> {
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.chars().all(|c| c.is_ascii_graphic()) {
        let shown: String = id.chars().take(40).collect();
        return Err(CoordError::Malformed { rpc, what: format!("{field} {shown:?}") });
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_the_coordinator_are_checked() {
        assert!(checked_id("JobRequest", "job_id", "6f1c2a5e-0000-4000-8000-000000000001".into()).is_ok());
        for bad in ["", "has space", &"x".repeat(500), "new\nline"] {
            assert!(checked_id("JobRequest", "job_id", bad.into()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls_are_checked_and_credentials_never_shown() {
        assert!(matches!(Coordinator::new("ftp://c:7000", 10), Err(CoordError::BadUrl(_))));
        assert!(matches!(Coordinator::new("not a url", 10), Err(CoordError::BadUrl(_))));
    }
}
