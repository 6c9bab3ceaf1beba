//! The EthProofs API v0: the three status calls and what each answer means for the caller.
//!
//! Architecture invariant: only this module knows the API's JSON and status semantics; the
//! Reporter sees [`Call`]s go in and [`Outcome`]s come out. The API key goes in one header and
//! nowhere else.

use std::time::Duration;

use base64::Engine;
use serde_json::json;

use crate::config::EthProofsConfig;

/// The server's body limit is ~6 MB; stay under it with room for the JSON around the proof.
pub const MAX_BODY_BYTES: usize = 5_900_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Queued,
    Proving,
    Proved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Proving => "proving",
            Status::Proved => "proved",
        }
    }
}

/// One report about one block.
#[derive(Clone)]
pub struct Call {
    pub block: u64,
    pub status: Status,
    /// For `proved` only.
    pub proved: Option<Proved>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never dump a multi-megabyte proof into a log line.
        f.debug_struct("Call").field("block", &self.block).field("status", &self.status).finish()
    }
}

#[derive(Clone)]
pub struct Proved {
    pub proving_time_ms: u64,
    pub cycles: Option<u64>,
    pub proof: Vec<u8>,
}

/// What the caller must do after an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Recorded (200), or `proved` answered 409: a retry after a lost 200 lands there.
    Done,
    /// 409 on `queued`/`proving`: the block is already proved; send no more status for it.
    AlreadyProved,
    /// 400, 401, 404, an oversized body: retrying cannot help. `http` is the status, if any.
    Permanent { http: Option<u16>, reason: String },
    /// 429: wait this long, then send the same call again.
    RetryAfter(Duration),
    /// 5xx, timeouts, network errors: retry with backoff. `http` is the status, if any.
    Transient { http: Option<u16>, reason: String },
}

/// Classifies an answer by the server's real behaviour (see `ethproofs-api.md`).
pub fn classify(status: Status, http: u16, retry_after: Option<&str>, body: &str) -> Outcome {
    let excerpt: String = body.chars().take(200).collect::<String>().replace('\n', " ");
    match http {
        // A proxy's error page with status 200 is not the API's answer: only its JSON counts.
        200..=299 if !is_api_answer(body) => Outcome::Transient {
            http: Some(http),
            reason: format!("HTTP {http} without the API's JSON answer: {excerpt}"),
        },
        200..=299 => Outcome::Done,
        409 if status == Status::Proved => Outcome::Done,
        409 => Outcome::AlreadyProved,
        429 => {
            // Seconds only; an absurd or unreadable value is bounded by the outbox policy.
            let secs = retry_after.and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(60);
            Outcome::RetryAfter(Duration::from_secs(secs.max(1)))
        }
        // Timeouts and "too early" are the server's way of saying "again, later".
        408 | 425 => Outcome::Transient { http: Some(http), reason: format!("HTTP {http}: {excerpt}") },
        400..=499 => Outcome::Permanent { http: Some(http), reason: format!("HTTP {http}: {excerpt}") },
        _ => Outcome::Transient { http: Some(http), reason: format!("HTTP {http}: {excerpt}") },
    }
}

/// The API answers success with `{"proof_id": <int>}`.
fn is_api_answer(body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body).is_ok_and(|v| v.get("proof_id").is_some_and(|id| id.is_u64()))
}

/// What `GET /clusters` said about the configured key and cluster.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClusterCheck {
    #[error("the API key was refused ({0})")]
    BadKey(String),
    #[error("cluster id {cluster} is not one of this key's clusters (it has: {known})")]
    UnknownCluster { cluster: u64, known: String },
    #[error("unexpected answer from GET /clusters: {0}")]
    Unexpected(String),
    #[error("EthProofs unreachable: {0}")]
    Unreachable(String),
}

/// Reads the `GET /clusters` answer: the configured id must be one of the team's clusters.
pub fn check_clusters(http: u16, body: &str, cluster: u64) -> Result<(), ClusterCheck> {
    let excerpt: String = body.chars().take(200).collect();
    match http {
        200 => {
            let list: Vec<serde_json::Value> =
                serde_json::from_str(body).map_err(|e| ClusterCheck::Unexpected(format!("not a cluster list: {e}")))?;
            let ids: Vec<u64> = list.iter().filter_map(|c| c["id"].as_u64()).collect();
            if ids.contains(&cluster) {
                Ok(())
            } else {
                let known = if ids.is_empty() {
                    "none".to_string()
                } else {
                    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
                };
                Err(ClusterCheck::UnknownCluster { cluster, known })
            }
        }
        401 | 403 => Err(ClusterCheck::BadKey(format!("HTTP {http}: {excerpt}"))),
        500..=599 => Err(ClusterCheck::Unreachable(format!("HTTP {http}: {excerpt}"))),
        _ => Err(ClusterCheck::Unexpected(format!("HTTP {http}: {excerpt}"))),
    }
}

pub struct EthProofsClient {
    http: reqwest::Client,
    config: EthProofsConfig,
}

impl std::fmt::Debug for EthProofsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EthProofsClient").field("cluster_id", &self.config.cluster_id).finish()
    }
}

/// Why a call cannot be sent at all (given up, never retried).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("a proved report without a proof")]
    ProvedWithoutProof,
    #[error("the request body cannot be encoded: {0}")]
    Encode(String),
    #[error("the request body would be {0} bytes, above the API's ~6 MB limit: the proof cannot be reported")]
    TooLarge(usize),
}

impl EthProofsClient {
    pub fn new(http: reqwest::Client, config: EthProofsConfig) -> EthProofsClient {
        EthProofsClient { http, config }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.config.base_url.expose().trim_end_matches('/'))
    }

    /// The JSON body of a call, or why it cannot be sent at all.
    pub fn body(&self, call: &Call) -> Result<Vec<u8>, BodyError> {
        let cluster_id = self.config.cluster_id;
        let value = match (&call.status, &call.proved) {
            (Status::Proved, Some(p)) => {
                let mut v = json!({
                    "block_number": call.block,
                    "cluster_id": cluster_id,
                    "proving_time": p.proving_time_ms.max(1),
                    "proof": base64::engine::general_purpose::STANDARD.encode(&p.proof),
                });
                if let Some(c) = p.cycles.filter(|&c| c > 0) {
                    v["proving_cycles"] = json!(c);
                }
                v
            }
            (Status::Proved, None) => return Err(BodyError::ProvedWithoutProof),
            _ => json!({"block_number": call.block, "cluster_id": cluster_id}),
        };
        let body = serde_json::to_vec(&value).map_err(|e| BodyError::Encode(e.to_string()))?;
        if body.len() > MAX_BODY_BYTES {
            return Err(BodyError::TooLarge(body.len()));
        }
        Ok(body)
    }

    /// Asks `GET /clusters` whether the key sees the configured cluster.
    pub async fn check_cluster(&self) -> Result<(), ClusterCheck> {
        let response = self
            .http
            .get(self.url("clusters"))
            .header("Authorization", format!("Bearer {}", self.config.api_key.expose()))
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .map_err(|e| ClusterCheck::Unreachable(crate::outside::chain::http_error(e)))?;
        let http = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        check_clusters(http, &body, self.config.cluster_id)
    }

    /// Sends one call and classifies the answer. Never retries by itself.
    pub async fn send(&self, call: &Call) -> Outcome {
        let body = match self.body(call) {
            Ok(b) => b,
            Err(e) => return Outcome::Permanent { http: None, reason: e.to_string() },
        };
        let response = self
            .http
            .post(self.url(&format!("proofs/{}", call.status.as_str())))
            .header("Authorization", format!("Bearer {}", self.config.api_key.expose()))
            .header("Content-Type", "application/json")
            .timeout(Duration::from_secs(60))
            .body(body)
            .send()
            .await;
        match response {
            Err(e) => Outcome::Transient { http: None, reason: crate::outside::chain::http_error(e) },
            Ok(r) => {
                let http = r.status().as_u16();
                let retry_after = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
                let text = r.text().await.unwrap_or_default();
                classify(call.status, http, retry_after.as_deref(), &text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn answers_map_to_what_the_server_means() {
        assert_eq!(classify(Status::Queued, 200, None, r#"{"proof_id":1}"#), Outcome::Done);
        assert_eq!(classify(Status::Proved, 409, None, "Proof already proved"), Outcome::Done);
        assert_eq!(classify(Status::Proving, 409, None, "Proof already proved"), Outcome::AlreadyProved);
        assert_eq!(classify(Status::Proved, 429, Some("2"), "{}"), Outcome::RetryAfter(Duration::from_secs(2)));
        assert!(
            matches!(classify(Status::Proved, 401, None, "Invalid API key"), Outcome::Permanent { reason, .. } if reason.contains("401"))
        );
        assert!(matches!(classify(Status::Queued, 400, None, "Invalid request"), Outcome::Permanent { .. }));
        assert!(matches!(classify(Status::Queued, 404, None, "Cluster not found"), Outcome::Permanent { .. }));
        assert!(matches!(classify(Status::Queued, 500, None, "Internal server error"), Outcome::Transient { .. }));
        let html = "<html><body>502 Bad Gateway</body></html>";
        assert!(
            matches!(classify(Status::Proved, 200, None, html), Outcome::Transient { .. }),
            "a proxy page is no answer"
        );
        assert!(matches!(classify(Status::Queued, 408, None, "timeout"), Outcome::Transient { .. }));
        assert!(matches!(classify(Status::Queued, 425, None, "too early"), Outcome::Transient { .. }));
    }

    #[test]
    fn cluster_check_says_which_is_wrong() {
        let list = r#"[{"id":1,"name":"a","versions":[{"id":3}]},{"id":2,"name":"b"}]"#;
        assert_eq!(check_clusters(200, list, 2), Ok(()));
        assert_eq!(
            check_clusters(200, list, 7),
            Err(ClusterCheck::UnknownCluster { cluster: 7, known: "1, 2".into() })
        );
        assert!(
            matches!(check_clusters(401, "Invalid API key", 1), Err(ClusterCheck::BadKey(m)) if m.contains("Invalid API key"))
        );
        assert!(matches!(check_clusters(503, "down", 1), Err(ClusterCheck::Unreachable(_))));
    }

    fn client() -> EthProofsClient {
        EthProofsClient::new(
            reqwest::Client::new(),
            EthProofsConfig { base_url: Secret::new("http://x/api/v0"), api_key: Secret::new("k"), cluster_id: 3 },
        )
    }

    #[tokio::test]
    async fn an_api_that_cannot_be_reached_is_named_by_its_cause() {
        let port = crate::outside::chain::closed_port();
        let client = EthProofsClient::new(
            reqwest::Client::new(),
            EthProofsConfig {
                base_url: Secret::new(format!("http://127.0.0.1:{port}/api/v0")),
                api_key: Secret::new("k"),
                cluster_id: 3,
            },
        );
        let outcome = client.send(&Call { block: 1, status: Status::Queued, proved: None }).await;
        let Outcome::Transient { reason, .. } = outcome else { panic!("{outcome:?}") };
        assert!(reason.to_ascii_lowercase().contains("connection refused"), "{reason}");
        let Err(ClusterCheck::Unreachable(why)) = client.check_cluster().await else { panic!("reachable?") };
        assert!(why.to_ascii_lowercase().contains("connection refused"), "{why}");
    }

    #[test]
    fn proved_body_omits_unknown_cycles_and_never_sends_zero() {
        let call = Call {
            block: 100,
            status: Status::Proved,
            proved: Some(Proved { proving_time_ms: 0, cycles: None, proof: vec![1, 2, 3] }),
        };
        let body: serde_json::Value = serde_json::from_slice(&client().body(&call).unwrap()).unwrap();
        assert_eq!(body, json!({"block_number": 100, "cluster_id": 3, "proving_time": 1, "proof": "AQID"}));
    }

    #[test]
    fn oversized_proof_is_refused_before_sending() {
        let call = Call {
            block: 100,
            status: Status::Proved,
            proved: Some(Proved { proving_time_ms: 5, cycles: Some(9), proof: vec![0; 5_000_000] }),
        };
        let refused = client().body(&call).unwrap_err();
        assert!(matches!(refused, BodyError::TooLarge(n) if n > MAX_BODY_BYTES), "{refused}");
        assert!(refused.to_string().contains("6 MB"), "{refused}");
    }
}
