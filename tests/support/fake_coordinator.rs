//! A fake ZisK coordinator: a real gRPC server of the 1.x contract
//! (`../shared/reference/zisk-coordinator.md`, generated from the project's `proto/` like the
//! daemon's client), with the real server's semantics where a block prover meets them:
//! registration is idempotent and names the program by a digest of the ELF; a prove before the
//! program's set-up is `NOT_FOUND`; set-up refuses metadata; a cluster without capacity is
//! `UNAVAILABLE` "Cluster unavailable"; a job runs through the contributions, prove and recurse
//! phases and completes with `Proof.data` and `stats.steps`; `WatchJob` streams the transitions
//! and ends after the terminal event (and replays it for a finished job); `WaitJobResult` holds
//! until a terminal state or its hold; `CancelJob` is idempotent; an unknown job is
//! `NOT_FOUND`; input past the inline part waits for `PushJobInput`.
//!
//! What a test can make it do: take a given time per job, fail jobs with each `JobFailure`
//! kind, reject a guest run, have no capacity, break its streams, ignore a job's deadline, go
//! down and come back (keeping or forgetting its jobs and programs). And lie: answer every
//! question about a job with another job's events and result, stamp proofs with another
//! program's hash id or a 1 ms proving time, hand out job ids that are not ids.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use prost::Message;
use sha2::Digest;
use tonic::{Request, Response, Status};

#[allow(clippy::all)]
pub mod pb {
    tonic::include_proto!("zisk.coordinator.v1");
}
#[allow(clippy::all)]
mod health_pb {
    tonic::include_proto!("grpc.health.v1");
}

use pb::zisk_coordinator_api_server::{ZiskCoordinatorApi, ZiskCoordinatorApiServer};

/// How a prove job ends, when a test says so.
#[derive(Debug, Clone)]
pub enum FailKind {
    Timeout,
    Input(String),
    Execution(String),
    Internal(String),
    /// Cancelled by someone other than the daemon.
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Setup,
    Prove,
    Execute,
}

#[derive(Debug, Clone)]
struct Job {
    kind: Kind,
    hash_id: String,
    block: Option<u64>,
    /// When it started running (input complete); `None` while it waits for input.
    started: Option<Instant>,
    started_wall: SystemTime,
    duration: Duration,
    input: Vec<u8>,
    expected_input: usize,
    fail: Option<FailKind>,
    cancelled: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Stage {
    Queued,
    WaitingForInput,
    Running(pb::JobPhase),
    Completed,
    Failed,
    Cancelled,
}

impl Job {
    fn stage(&self) -> Stage {
        if self.cancelled {
            return Stage::Cancelled;
        }
        let Some(started) = self.started else { return Stage::WaitingForInput };
        let e = started.elapsed();
        if e >= self.duration {
            return if self.fail.is_some() { Stage::Failed } else { Stage::Completed };
        }
        let third = self.duration / 3;
        Stage::Running(if e < third {
            pb::JobPhase::Contributions
        } else if e < third * 2 {
            pb::JobPhase::Prove
        } else {
            pb::JobPhase::Recurse
        })
    }

    fn terminal(&self) -> bool {
        matches!(self.stage(), Stage::Completed | Stage::Failed | Stage::Cancelled)
    }
}

/// One prove job as the test sees it.
#[derive(Debug, Clone)]
pub struct SubmittedJob {
    pub id: String,
    pub block: Option<u64>,
    pub input_bytes: usize,
    /// The job's deadline, as sent.
    pub deadline: Option<SystemTime>,
    pub metadata: HashMap<String, String>,
    /// When the coordinator accepted it.
    pub at: SystemTime,
}

#[derive(Default)]
struct State {
    /// hash id → set up.
    programs: HashMap<String, bool>,
    jobs: HashMap<String, Job>,
    next_id: u64,
    // What tests read.
    registers: u32,
    setups: u32,
    prove_jobs: Vec<SubmittedJob>,
    execute_jobs: Vec<SubmittedJob>,
    cancels: Vec<String>,
    pushes: usize,
    // What tests set.
    prove_time: Duration,
    /// Proofs take from `prove_time` up to this, spread evenly over the jobs (a fixed sequence,
    /// so a run is repeatable).
    prove_time_max: Option<Duration>,
    steps: u64,
    fail_next: VecDeque<FailKind>,
    reject_execute: HashMap<u64, String>,
    /// What an execute job of a block answers as the guest's `public_outputs` (none by default).
    execute_outputs: HashMap<u64, Vec<u8>>,
    no_capacity: bool,
    /// Workers for this many prove jobs at once: one more is refused as the real cluster refuses
    /// a job it has no free workers for (`None`: as many as come).
    capacity: Option<usize>,
    /// The most prove jobs that ran at once.
    most_at_once: usize,
    /// `WatchJob` streams end after this many events, without the terminal one.
    break_streams_after: Option<usize>,
    /// A job past its deadline fails with a timeout (the real coordinator's behaviour).
    honour_deadlines: bool,
    deadlines: HashMap<String, SystemTime>,
    refuse_metadata: bool,
    /// The next prove job is accepted (it runs) but its `JobRequest` never answers: with the
    /// server then cut (`down`), the answer is lost on the way, as a dropped connection loses it.
    lose_next_prove_answer: bool,
    /// `PushJobInput` hangs before reading anything (a client that dies mid-push leaves the job waiting).
    stall_pushes: bool,
    /// Every `WatchJob`/`WaitJobResult` about a prove job answers with this job's events and result.
    answer_with: Option<String>,
    /// Proofs name another program than the one proved.
    foreign_hash_id: bool,
    /// Proofs say they took 1 ms.
    one_ms_proofs: bool,
    /// `JobRequest` answers with an id that is not printable (the job is kept under it).
    odd_job_ids: bool,
}

type Shared = Arc<Mutex<State>>;

pub struct FakeCoordinator {
    pub addr: SocketAddr,
    pub url: String,
    state: Shared,
    server: Option<Server>,
}

/// One incarnation of the server: its own thread and runtime, dropped whole to "crash" it.
struct Server {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(addr: SocketAddr, state: Shared) -> Server {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = loop {
                match tokio::net::TcpListener::bind(addr).await {
                    Ok(l) => break l,
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            };
            let _ = ready_tx.send(listener.local_addr().unwrap());
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let api = ZiskCoordinatorApiServer::new(Fake { state })
                .max_decoding_message_size(256 << 20)
                .max_encoding_message_size(256 << 20);
            let server = tonic::transport::Server::builder()
                .add_service(api)
                .add_service(health_pb::health_server::HealthServer::new(Health))
                .serve_with_incoming(incoming);
            tokio::select! {
                _ = server => {}
                _ = stopped => {}
            }
        });
        // Dropping the runtime aborts every stream mid-way, as a crashed coordinator would.
        rt.shutdown_background();
    });
    let _ = ready_rx.recv_timeout(Duration::from_secs(10));
    Server { stop: Some(stop), thread: Some(thread) }
}

impl FakeCoordinator {
    pub fn start() -> FakeCoordinator {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let state: Shared = Arc::new(Mutex::new(State {
            prove_time: Duration::from_millis(600),
            steps: 123_456_789,
            ..State::default()
        }));
        let server = Some(serve(addr, state.clone()));
        FakeCoordinator { addr, url: format!("http://{addr}"), state, server }
    }

    /// Not started: the address is reserved for a later [`FakeCoordinator::up`].
    pub fn start_down() -> FakeCoordinator {
        let mut c = FakeCoordinator::start();
        c.down();
        c
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// Answers every question about any other prove job with job `id`'s events and result.
    pub fn answer_with(&self, id: Option<String>) {
        self.with(|s| s.answer_with = id);
    }
    pub fn foreign_hash_ids(&self, on: bool) {
        self.with(|s| s.foreign_hash_id = on);
    }
    pub fn one_ms_proofs(&self, on: bool) {
        self.with(|s| s.one_ms_proofs = on);
    }
    pub fn odd_job_ids(&self, on: bool) {
        self.with(|s| s.odd_job_ids = on);
    }
    /// Job ids as handed out, by whatever kind of job (set-up, prove, execute).
    pub fn job_ids(&self) -> Vec<String> {
        self.with(|s| s.jobs.keys().cloned().collect())
    }

    pub fn set_prove_time(&self, d: Duration) {
        self.with(|s| s.prove_time = d);
    }
    /// Proofs take between `min` and `max`, a different time each.
    pub fn set_prove_times(&self, min: Duration, max: Duration) {
        self.with(|s| {
            s.prove_time = min;
            s.prove_time_max = Some(max);
        });
    }
    pub fn fail_next(&self, kind: FailKind) {
        self.with(|s| s.fail_next.push_back(kind));
    }
    pub fn reject_execute(&self, block: u64, reason: &str) {
        self.with(|s| s.reject_execute.insert(block, reason.to_string()));
    }
    /// An execute job of `block` answers these bytes as the guest's public outputs.
    pub fn execute_outputs(&self, block: u64, outputs: Vec<u8>) {
        self.with(|s| s.execute_outputs.insert(block, outputs));
    }
    /// The program key every set-up answers (`SetupResponse.vk`: the ROM root, 32 bytes).
    pub const PROGRAM_VK: [u8; 32] = [0x5a; 32];
    pub fn set_capacity(&self, jobs: Option<usize>) {
        self.with(|s| s.capacity = jobs);
    }
    /// The most prove jobs that ran at once.
    pub fn most_at_once(&self) -> usize {
        self.with(|s| s.most_at_once)
    }
    pub fn set_no_capacity(&self, on: bool) {
        self.with(|s| s.no_capacity = on);
    }
    pub fn break_streams_after(&self, events: Option<usize>) {
        self.with(|s| s.break_streams_after = events);
    }
    pub fn honour_deadlines(&self, on: bool) {
        self.with(|s| s.honour_deadlines = on);
    }
    pub fn stall_pushes(&self, on: bool) {
        self.with(|s| s.stall_pushes = on);
    }
    pub fn refuse_metadata(&self, on: bool) {
        self.with(|s| s.refuse_metadata = on);
    }
    pub fn lose_next_prove_answer(&self) {
        self.with(|s| s.lose_next_prove_answer = true);
    }

    pub fn registers(&self) -> u32 {
        self.with(|s| s.registers)
    }
    pub fn setups(&self) -> u32 {
        self.with(|s| s.setups)
    }
    pub fn prove_jobs(&self) -> Vec<SubmittedJob> {
        self.with(|s| s.prove_jobs.clone())
    }
    pub fn prove_jobs_for(&self, block: u64) -> usize {
        self.with(|s| s.prove_jobs.iter().filter(|j| j.block == Some(block)).count())
    }
    pub fn execute_jobs(&self) -> Vec<SubmittedJob> {
        self.with(|s| s.execute_jobs.clone())
    }
    pub fn cancels(&self) -> Vec<String> {
        self.with(|s| s.cancels.clone())
    }
    pub fn pushes(&self) -> usize {
        self.with(|s| s.pushes)
    }
    /// Whether `block`'s latest prove job is running (not waiting, not ended).
    pub fn running(&self, block: u64) -> bool {
        self.with(|s| {
            s.prove_jobs
                .iter()
                .rev()
                .find(|j| j.block == Some(block))
                .and_then(|j| s.jobs.get(&j.id))
                .is_some_and(|j| matches!(j.stage(), Stage::Running(_)))
        })
    }

    /// When job `id` completed (or will), if it runs.
    pub fn completes_at(&self, id: &str) -> Option<Instant> {
        self.with(|s| s.jobs.get(id).and_then(|j| j.started.map(|t| t + j.duration)))
    }

    /// The same, as wall-clock time (to compare with the ledger's times).
    pub fn completes_at_wall(&self, id: &str) -> Option<SystemTime> {
        self.with(|s| s.jobs.get(id).and_then(|j| j.started.map(|_| j.started_wall + j.duration)))
    }

    /// The proof a job of `block` completes with (what must reach EthProofs).
    pub fn proof_of(block: u64) -> Vec<u8> {
        format!("fake-zisk-1.x-proof of block {block}").into_bytes()
    }

    /// The server stops (connections cut mid-stream); jobs keep their clock.
    pub fn down(&mut self) {
        self.server = None;
    }

    pub fn up(&mut self) {
        if self.server.is_none() {
            self.server = Some(serve(self.addr, self.state.clone()));
        }
    }

    /// A coordinator restart: down and up; `forget` loses its jobs and programs (no persistence).
    pub fn restart(&mut self, forget: bool) {
        self.down();
        if forget {
            self.with(|s| {
                s.jobs.clear();
                s.programs.clear();
            });
        }
        self.up();
    }
}

struct Health;

#[tonic::async_trait]
impl health_pb::health_server::Health for Health {
    async fn check(
        &self,
        _: Request<health_pb::HealthCheckRequest>,
    ) -> Result<Response<health_pb::HealthCheckResponse>, Status> {
        Ok(Response::new(health_pb::HealthCheckResponse {
            status: health_pb::health_check_response::ServingStatus::Serving as i32,
        }))
    }
}

struct Fake {
    state: Shared,
}

fn api_error(code: tonic::Code, api_code: u32, name: &str, message: String) -> Status {
    let details = pb::ApiError { code: api_code, name: name.into(), message: message.clone() }.encode_to_vec();
    Status::with_details(code, message, details.into())
}

fn not_found_job(id: &str) -> Status {
    api_error(tonic::Code::NotFound, 1001, "JOB_NOT_FOUND", format!("Job not found: {id}"))
}

fn ts(t: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(t)
}

fn failure(kind: &FailKind) -> pb::JobFailure {
    use pb::job_failure::{Cancelled, Execution, Input, Internal, Kind, Timeout};
    let kind = match kind {
        FailKind::Timeout => Kind::Timeout(Timeout {
            phase: Some(pb::JobPhase::Recurse as i32),
            limit: Some(prost_types::Duration { seconds: 600, nanos: 0 }),
        }),
        FailKind::Input(r) => Kind::Input(Input { reason: r.clone() }),
        FailKind::Execution(r) => Kind::Execution(Execution { reason: r.clone() }),
        FailKind::Internal(t) => Kind::Internal(Internal { trace_id: t.clone() }),
        FailKind::Cancelled => Kind::Cancelled(Cancelled {}),
    };
    pb::JobFailure { kind: Some(kind) }
}

fn result(job: &Job, s: &State) -> Option<pb::JobKindResponse> {
    let steps = s.steps;
    use pb::job_kind_response::Kind as R;
    let kind = match job.kind {
        Kind::Setup => {
            R::Setup(pb::SetupResponse { vk: FakeCoordinator::PROGRAM_VK.to_vec(), hash_mode: "poseidon".into() })
        }
        Kind::Prove => R::Prove(pb::ProveResponse {
            proof: Some(pb::Proof {
                proof_id: "00000000-0000-4000-8000-00000000beef".into(),
                hash_id: if s.foreign_hash_id { "0badc0de".repeat(4) } else { job.hash_id.clone() },
                data: FakeCoordinator::proof_of(job.block.unwrap_or(0)),
                started_at: Some(ts(job.started_wall)),
                completed_at: Some(ts(
                    job.started_wall + if s.one_ms_proofs { Duration::from_millis(1) } else { job.duration }
                )),
                ..Default::default()
            }),
            stats: Some(pb::ExecutionStats { steps, duration_nanos: 5_000_000, ..Default::default() }),
        }),
        Kind::Execute => R::Execute(pb::ExecuteResponse {
            stats: Some(pb::ExecutionStats { steps, duration_nanos: 7_000_000, ..Default::default() }),
            public_outputs: job.block.and_then(|b| s.execute_outputs.get(&b).cloned()).unwrap_or_default(),
            random_seed: None,
        }),
    };
    Some(pb::JobKindResponse { kind: Some(kind) })
}

fn status_of(job: &Job) -> pb::JobStatus {
    use pb::job_status::{Cancelled, Completed, Failed, Queued, Running, Status as S, WaitingForInput};
    let status = match job.stage() {
        Stage::Queued => S::Queued(Queued {}),
        Stage::WaitingForInput => S::WaitingForInput(WaitingForInput {}),
        Stage::Running(p) => S::Running(Running { phase: Some(p as i32) }),
        Stage::Completed => S::Completed(Completed {}),
        Stage::Failed => S::Failed(Failed { failure: job.fail.as_ref().map(failure) }),
        Stage::Cancelled => S::Cancelled(Cancelled {}),
    };
    pb::JobStatus { status: Some(status) }
}

fn event_of(id: &str, job: &Job, s: &State) -> pb::JobEvent {
    use pb::job_event::{Completed, Event, Failed, Plain, Progress};
    let now = Some(ts(SystemTime::now()));
    let plain = || Plain { job_id: id.to_string(), timestamp: now };
    let event = match job.stage() {
        Stage::Queued => Event::Queued(plain()),
        Stage::WaitingForInput => Event::WaitingForInput(plain()),
        Stage::Running(p) => Event::Progress(Progress { job_id: id.to_string(), phase: p as i32, timestamp: now }),
        Stage::Completed => {
            Event::Completed(Completed { job_id: id.to_string(), result: result(job, s), timestamp: now })
        }
        Stage::Failed => {
            Event::Failed(Failed { job_id: id.to_string(), failure: job.fail.as_ref().map(failure), timestamp: now })
        }
        Stage::Cancelled => Event::Cancelled(plain()),
    };
    pb::JobEvent { event: Some(event) }
}

/// Whose job an answer about `id` is: another prove job's, when the test says so.
fn answered_for(s: &State, id: &str, asked: &Job) -> String {
    match &s.answer_with {
        Some(other) if asked.kind == Kind::Prove && other != id && s.jobs.contains_key(other) => other.clone(),
        _ => id.to_string(),
    }
}

/// The input's framed length (`u64 LE` payload length, payload, padding to 8), or what was sent.
fn expected_len(first: &[u8]) -> usize {
    match first.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
        Some(len) => {
            let payload = u64::from_le_bytes(len) as usize;
            8 + payload.div_ceil(8) * 8
        }
        None => first.len(),
    }
}

impl Fake {
    /// Takes a job request: the job id, and whether its answer is to be lost.
    fn accept_job(&self, msg: pb::JobRequestMessage) -> Result<(String, bool), Status> {
        let mut s = self.state.lock().unwrap();
        if s.no_capacity {
            return Err(api_error(
                tonic::Code::Unavailable,
                2001,
                "CLUSTER_UNAVAILABLE",
                "Cluster unavailable: no workers connected".into(),
            ));
        }
        let Some(kind) = msg.job_kind.and_then(|k| k.kind) else {
            return Err(Status::invalid_argument("no job kind"));
        };
        s.next_id += 1;
        let mut id = format!("6f1c2a5e-0000-4000-8000-{:012}", s.next_id);
        if s.odd_job_ids {
            id.push_str("\nforged log line");
        }
        let block = msg.metadata.get("block").and_then(|b| b.parse().ok());
        let program_ready = |s: &State, hash: &str| -> Result<(), Status> {
            match s.programs.get(hash) {
                None => Err(api_error(
                    tonic::Code::NotFound,
                    1002,
                    "PROGRAM_NOT_FOUND",
                    format!("Program not found: {hash}"),
                )),
                Some(false) => Err(api_error(
                    tonic::Code::NotFound,
                    1003,
                    "PROGRAM_NOT_SETUP",
                    format!("Program exists but setup is not complete: {hash}"),
                )),
                Some(true) => Ok(()),
            }
        };
        if s.refuse_metadata && !msg.metadata.is_empty() {
            return Err(api_error(
                tonic::Code::InvalidArgument,
                1006,
                "JOB_METADATA_NOT_ALLOWED",
                "job metadata is not allowed by this coordinator".into(),
            ));
        }
        let (job, deadline, input) = match kind {
            pb::job_kind::Kind::Setup(setup) => {
                if !msg.metadata.is_empty() {
                    return Err(Status::invalid_argument("setup jobs take no metadata"));
                }
                if !s.programs.contains_key(&setup.hash_id) {
                    return Err(api_error(
                        tonic::Code::NotFound,
                        1002,
                        "PROGRAM_NOT_FOUND",
                        format!("Program not found: {}", setup.hash_id),
                    ));
                }
                s.setups += 1;
                // Set up once it completes (the fake marks it at once; the job takes a moment).
                s.programs.insert(setup.hash_id.clone(), true);
                let job = Job {
                    kind: Kind::Setup,
                    hash_id: setup.hash_id,
                    block: None,
                    started: Some(Instant::now()),
                    started_wall: SystemTime::now(),
                    duration: Duration::from_millis(200),
                    input: vec![],
                    expected_input: 0,
                    fail: None,
                    cancelled: false,
                };
                (job, None, None)
            }
            pb::job_kind::Kind::Prove(p) => {
                program_ready(&s, &p.hash_id)?;
                if s.capacity.is_some_and(|c| Self::prove_jobs_running(&s) >= c) {
                    return Err(api_error(
                        tonic::Code::Unavailable,
                        2001,
                        "CLUSTER_UNAVAILABLE",
                        "Cluster unavailable: no compute capacity available".into(),
                    ));
                }
                let Some(pb::input_kind::Kind::Inline(chunk)) = p.input.and_then(|i| i.kind) else {
                    return Err(Status::invalid_argument("this fake takes inline input only"));
                };
                let deadline = p.proof_timeout.and_then(|t| SystemTime::try_from(t).ok());
                let expected = expected_len(&chunk.data);
                let complete = chunk.data.len() >= expected;
                let fail = s.fail_next.pop_front();
                let job = Job {
                    kind: Kind::Prove,
                    hash_id: p.hash_id,
                    block,
                    started: complete.then(Instant::now),
                    started_wall: SystemTime::now(),
                    duration: if fail.is_some() { s.prove_time / 3 } else { Self::prove_time(&s) },
                    input: chunk.data,
                    expected_input: expected,
                    fail,
                    cancelled: false,
                };
                (job, deadline, Some(Kind::Prove))
            }
            pb::job_kind::Kind::Execute(e) => {
                program_ready(&s, &e.hash_id)?;
                let Some(pb::input_kind::Kind::Inline(chunk)) = e.input.and_then(|i| i.kind) else {
                    return Err(Status::invalid_argument("this fake takes inline input only"));
                };
                let expected = expected_len(&chunk.data);
                let fail = block.and_then(|b| s.reject_execute.get(&b).cloned()).map(FailKind::Execution);
                let job = Job {
                    kind: Kind::Execute,
                    hash_id: e.hash_id,
                    block,
                    started: (chunk.data.len() >= expected).then(Instant::now),
                    started_wall: SystemTime::now(),
                    duration: Duration::from_millis(150),
                    input: chunk.data,
                    expected_input: expected,
                    fail,
                    cancelled: false,
                };
                (job, None, Some(Kind::Execute))
            }
        };
        let record = SubmittedJob {
            id: id.clone(),
            block,
            input_bytes: job.input.len(),
            deadline,
            metadata: msg.metadata.clone(),
            at: SystemTime::now(),
        };
        match input {
            Some(Kind::Prove) => s.prove_jobs.push(record),
            Some(Kind::Execute) => s.execute_jobs.push(record),
            _ => {}
        }
        if let Some(d) = deadline {
            s.deadlines.insert(id.clone(), d);
        }
        s.jobs.insert(id.clone(), job);
        s.most_at_once = s.most_at_once.max(Self::prove_jobs_running(&s));
        let lose = input == Some(Kind::Prove) && std::mem::take(&mut s.lose_next_prove_answer);
        Ok((id, lose))
    }

    /// This job's proving time: `prove_time`, or a step along `prove_time..=prove_time_max` (a
    /// multiplicative walk over the job ids: spread, and the same every run).
    fn prove_time(s: &State) -> Duration {
        match s.prove_time_max {
            Some(max) if max > s.prove_time => {
                let step = (s.next_id.wrapping_mul(2_654_435_761) % 1000) as u32;
                s.prove_time + (max - s.prove_time) * step / 1000
            }
            _ => s.prove_time,
        }
    }

    /// Prove jobs holding workers (accepted, not ended).
    fn prove_jobs_running(s: &State) -> usize {
        s.jobs.values().filter(|j| j.kind == Kind::Prove && !j.terminal()).count()
    }

    /// Applies the coordinator's own deadline, when it is asked to.
    fn tick(s: &mut State) {
        if !s.honour_deadlines {
            return;
        }
        let now = SystemTime::now();
        let late: Vec<String> = s
            .jobs
            .iter()
            .filter(|(id, j)| !j.terminal() && s.deadlines.get(*id).is_some_and(|d| *d < now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in late {
            if let Some(j) = s.jobs.get_mut(&id) {
                j.fail = Some(FailKind::Timeout);
                j.duration = Duration::ZERO;
            }
        }
    }
}

type EventStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::JobEvent, Status>> + Send>>;

#[tonic::async_trait]
impl ZiskCoordinatorApi for Fake {
    async fn register_guest_program(
        &self,
        request: Request<pb::RegisterGuestProgramRequest>,
    ) -> Result<Response<pb::RegisterGuestProgramResponse>, Status> {
        let elf = request.into_inner().zisk_elf;
        if elf.is_empty() {
            return Err(Status::invalid_argument("empty ELF"));
        }
        let hash_id = hex::encode(&sha2::Sha256::digest(&elf)[..16]);
        let mut s = self.state.lock().unwrap();
        s.registers += 1;
        s.programs.entry(hash_id.clone()).or_insert(false);
        Ok(Response::new(pb::RegisterGuestProgramResponse { hash_id }))
    }

    async fn job_request(&self, request: Request<pb::JobRequestMessage>) -> Result<Response<pb::JobResponse>, Status> {
        let (job_id, lose) = self.accept_job(request.into_inner())?;
        if lose {
            std::future::pending::<()>().await;
        }
        Ok(Response::new(pb::JobResponse { job_id }))
    }

    async fn wait_job_result(
        &self,
        request: Request<pb::WaitJobResultRequest>,
    ) -> Result<Response<pb::WaitJobResultResponse>, Status> {
        let req = request.into_inner();
        let hold = Duration::from_secs(u64::from(req.timeout_seconds.unwrap_or(5).max(1)));
        let until = Instant::now() + hold;
        loop {
            {
                let mut s = self.state.lock().unwrap();
                Fake::tick(&mut s);
                let asked = s.jobs.get(&req.job_id).ok_or_else(|| not_found_job(&req.job_id))?;
                let id = answered_for(&s, &req.job_id, asked);
                let job = &s.jobs[&id];
                if job.terminal() || Instant::now() >= until {
                    let completed = job.stage() == Stage::Completed;
                    return Ok(Response::new(pb::WaitJobResultResponse {
                        job_id: id.clone(),
                        job_status: Some(status_of(job)),
                        result: if completed { result(job, &s) } else { None },
                    }));
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    type WatchJobStream = EventStream;

    async fn watch_job(&self, request: Request<pb::WatchJobRequest>) -> Result<Response<EventStream>, Status> {
        let id = request.into_inner().job_id;
        let break_after = {
            let s = self.state.lock().unwrap();
            if !s.jobs.contains_key(&id) {
                return Err(not_found_job(&id));
            }
            s.break_streams_after
        };
        let state = self.state.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let mut last: Option<Stage> = None;
            let mut sent = 0usize;
            loop {
                let (event, stage) = {
                    let mut s = state.lock().unwrap();
                    Fake::tick(&mut s);
                    let Some(asked) = s.jobs.get(&id) else { return };
                    let about = answered_for(&s, &id, asked);
                    let job = &s.jobs[&about];
                    (event_of(&about, job, &s), job.stage())
                };
                if last.as_ref() != Some(&stage) {
                    if break_after.is_some_and(|n| sent >= n) {
                        return;
                    }
                    let terminal = matches!(stage, Stage::Completed | Stage::Failed | Stage::Cancelled);
                    if tx.send(Ok(event)).await.is_err() || terminal {
                        return;
                    }
                    sent += 1;
                    last = Some(stage);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn push_job_input(
        &self,
        request: Request<tonic::Streaming<pb::PushJobInputRequest>>,
    ) -> Result<Response<()>, Status> {
        let mut stream = request.into_inner();
        while self.state.lock().unwrap().stall_pushes {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The chunks count once the client ends its stream: a stream broken off (its daemon
        // killed mid-push) delivers nothing, whatever the transport had buffered.
        let mut chunks = Vec::new();
        while let Some(msg) = stream.message().await? {
            chunks.push(msg);
        }
        let mut s = self.state.lock().unwrap();
        for msg in chunks {
            s.pushes += 1;
            let job = s.jobs.get_mut(&msg.job_id).ok_or_else(|| not_found_job(&msg.job_id))?;
            if let Some(chunk) = msg.chunk {
                job.input.extend_from_slice(&chunk.data);
            }
            if job.started.is_none() && job.input.len() >= job.expected_input {
                job.started = Some(Instant::now());
                job.started_wall = SystemTime::now();
            }
        }
        Ok(Response::new(()))
    }

    async fn cancel_job(
        &self,
        request: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::CancelJobResponse>, Status> {
        let id = request.into_inner().job_id;
        let mut s = self.state.lock().unwrap();
        s.cancels.push(id.clone());
        let job = s.jobs.get_mut(&id).ok_or_else(|| not_found_job(&id))?;
        let cancelled = !job.terminal();
        if cancelled {
            job.cancelled = true;
        }
        Ok(Response::new(pb::CancelJobResponse { job_id: id, cancelled }))
    }
}
