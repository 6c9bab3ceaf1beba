//! What a coordinator's gRPC error means for the daemon: passing trouble (retried, never a
//! block's failure) or a refusal, decided from the status code and the `ApiError` name a
//! coordinator may carry in the details.

use prost::Message;

use super::MAX_ID_LEN;
use super::wire::v1 as pb;

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
    #[error(
        "the coordinator accepted a job under an odd id {0} (empty, too long or not printable); it is cancelled, not followed"
    )]
    OddJobId(String),
    #[error("ZISK_COORDINATOR_URL {0:?} is not a usable URL")]
    BadUrl(String),
}

impl CoordError {
    /// The cluster's passing trouble: retried with backoff, never a block's failure by itself.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CoordError::Unreachable { .. }
                | CoordError::Deadline { .. }
                | CoordError::NoCapacity(_)
                | CoordError::Failing { .. }
                | CoordError::ProgramUnknown(_)
        )
    }

    /// Whether a `JobRequest` that ended in this error may still have been accepted: its
    /// answer was lost (no answer in time, the connection cut mid-call), as opposed to an error
    /// the coordinator answered or a connection that was never made. The 1.x API cannot list
    /// jobs, so such a job cannot be found again; the caller waits out its deadline instead of
    /// running the block twice.
    pub fn maybe_accepted(&self) -> bool {
        match self {
            CoordError::Deadline { .. } => true,
            CoordError::Unreachable { reason, .. } => {
                let lower = reason.to_ascii_lowercase();
                !["tcp connect error", "error trying to connect", "connection refused", "dns error"]
                    .iter()
                    .any(|never_sent| lower.contains(never_sent))
            }
            _ => false,
        }
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
            CoordError::OddJobId(_) => "odd_job_id",
            CoordError::BadUrl(_) => "bad_url",
        }
    }
}

/// The `ApiError` a coordinator may carry in an error's details, when it does.
pub(super) fn api_error_name(details: &[u8]) -> Option<String> {
    if details.is_empty() {
        return None;
    }
    pb::ApiError::decode(details).ok().map(|e| e.name).filter(|n| !n.is_empty() && n.len() <= MAX_ID_LEN)
}

/// What a gRPC error from the coordinator means for the daemon: a plain function of the status
/// code, the `ApiError` name when one is carried, and the message.
pub fn classify(url: &str, code: tonic::Code, api_name: Option<&str>, message: &str, job: Option<&str>) -> CoordError {
    use tonic::Code;
    let message: String = crate::outside::chain::scrub_urls(message).chars().take(300).collect();
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

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn errors_say_whether_they_pass() {
        let url = "http://c:7000";
        let e = classify(url, Code::Unavailable, Some("CLUSTER_UNAVAILABLE"), "Cluster unavailable: no workers", None);
        assert!(matches!(e, CoordError::NoCapacity(_)) && e.is_transient(), "{e:?}");
        let e = classify(url, Code::Unavailable, None, "tcp connect error", None);
        assert!(matches!(e, CoordError::Unreachable { .. }) && e.is_transient(), "{e:?}");
        let e = classify(url, Code::NotFound, None, "Program not found: abc", None);
        assert!(matches!(e, CoordError::ProgramUnknown(_)) && e.is_transient(), "{e:?}");
        let e = classify(url, Code::NotFound, Some("JOB_NOT_FOUND"), "Job not found: 1-2", Some("1-2"));
        assert_eq!(e, CoordError::JobUnknown("1-2".into()));
        assert!(!e.is_transient());
        let e = classify(url, Code::InvalidArgument, Some("JOB_METADATA_NOT_ALLOWED"), "metadata not allowed", None);
        assert!(matches!(e, CoordError::Refused { .. }) && !e.is_transient(), "{e:?}");
        let e = classify(url, Code::Internal, None, "An internal error occurred", None);
        assert!(matches!(e, CoordError::Failing { .. }) && e.is_transient(), "{e:?}");
        let e = classify(url, Code::Unimplemented, None, "no such method", None);
        assert!(matches!(e, CoordError::Refused { .. }), "{e:?}");
    }

    #[test]
    fn only_a_lost_answer_leaves_a_submission_in_doubt() {
        let url = "http://c:7000";
        let lost = [
            CoordError::Deadline { rpc: "JobRequest", secs: 60 },
            classify(url, Code::Unknown, None, "h2 protocol error: error reading a body from connection", None),
            classify(url, Code::Unavailable, None, "connection closed before message completed", None),
        ];
        for e in lost {
            assert!(e.maybe_accepted(), "{e:?}");
        }
        let answered_or_never_sent = [
            classify(url, Code::Unavailable, None, "tcp connect error: Connection refused (os error 111)", None),
            classify(url, Code::Unavailable, None, "error trying to connect: dns error", None),
            classify(url, Code::Unavailable, Some("CLUSTER_UNAVAILABLE"), "Cluster unavailable", None),
            classify(url, Code::Internal, None, "An internal error occurred", None),
            classify(url, Code::InvalidArgument, None, "bad request", None),
        ];
        for e in answered_or_never_sent {
            assert!(!e.maybe_accepted(), "{e:?}");
        }
    }

    #[test]
    fn api_errors_in_details_are_read_and_garbage_is_not() {
        let bytes =
            pb::ApiError { code: 2001, name: "CLUSTER_UNAVAILABLE".into(), message: "x".into() }.encode_to_vec();
        assert_eq!(api_error_name(&bytes).as_deref(), Some("CLUSTER_UNAVAILABLE"));
        assert_eq!(api_error_name(&[0xff, 0xff, 0xff]), None);
        assert_eq!(api_error_name(&[]), None);
    }
}
