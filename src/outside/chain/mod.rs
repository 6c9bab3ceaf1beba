//! The Ethereum node, over JSON-RPC: the chain id, a block with its transactions, its witness.
//!
//! Responses for blocks and witnesses are returned as the raw response body so `input` can parse
//! them once, straight into its own types; this module only knows how to ask.
//!
//! Architecture invariant: the node URL often carries a provider API key, so it never appears in
//! an error, a log line or Debug output; [`redact_url`] keeps only scheme, host and port.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;

mod heads;
mod redact;

pub use heads::{HeadPoller, follow_new_heads};
pub use redact::{http_error, redact_url, scrub_urls};

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("invalid node URL: {0}")]
    InvalidUrl(String),
    #[error("{method} to {endpoint} failed: {message}")]
    Transport { method: &'static str, endpoint: String, message: String },
    #[error("{method} to {endpoint}: HTTP {status}: {body}")]
    Status { method: &'static str, endpoint: String, status: u16, body: String },
    #[error("{method}: the node returned JSON-RPC error {code}: {message}")]
    Rpc { method: &'static str, code: i64, message: String },
    #[error("{method}: unexpected response: {message}")]
    Decode { method: &'static str, message: String },
    #[error("the node answered {method} with a null result: it may not have that block yet")]
    NotYet { method: &'static str },
    #[error("{method}: the answer is larger than {cap} ({limit_mb} MB); not read further")]
    TooLarge { method: &'static str, limit_mb: u64, cap: &'static str },
}

impl ChainError {
    /// What may be shown without the admin token: the call and the kind of failure, never the
    /// node's own words (an HTTP body, a JSON-RPC message), which go to the log and `/admin/status`.
    pub fn summary(&self) -> String {
        match self {
            ChainError::Transport { method, endpoint, .. } => format!("{method} to {endpoint} failed (network)"),
            ChainError::Status { method, status, .. } => format!("{method}: the node answered HTTP {status}"),
            ChainError::Rpc { method, code, .. } => format!("the node answered {method} with JSON-RPC error {code}"),
            ChainError::Decode { method, .. } => format!("{method}: the node's answer is not what was asked for"),
            ChainError::InvalidUrl(_) => "the node URL is invalid".into(),
            ChainError::NotYet { .. } | ChainError::TooLarge { .. } => self.to_string(),
        }
    }

    /// The metric label for this error: the HTTP status, `rpc_error` or `network`.
    pub fn label(&self) -> String {
        match self {
            ChainError::Status { status, .. } => status.to_string(),
            ChainError::Rpc { .. } | ChainError::Decode { .. } | ChainError::NotYet { .. } => "rpc_error".into(),
            ChainError::TooLarge { .. } => "too_large".into(),
            ChainError::Transport { .. } | ChainError::InvalidUrl(_) => "network".into(),
        }
    }

    /// Whether trying again later can help: the node was unreachable or overloaded, said "slow
    /// down" (HTTP 429, or a JSON-RPC error sent with HTTP 200, as many providers do), or has not
    /// caught up yet (a null result, "header not found").
    pub fn is_transient(&self) -> bool {
        match self {
            ChainError::Transport { .. } | ChainError::NotYet { .. } => true,
            ChainError::Status { status, .. } => matches!(*status, 408 | 425 | 429) || *status >= 500,
            ChainError::Rpc { code, message, .. } => rpc_says_retry(*code, message),
            _ => false,
        }
    }
}

/// JSON-RPC errors that mean "not yet" or "slow down" rather than "never".
fn rpc_says_retry(code: i64, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    // -32005: limit exceeded (EIP-1474); -32016: over rate limit (several providers).
    matches!(code, -32005 | -32016)
        || [
            "rate limit",
            "too many",
            "limit exceeded",
            "not found",
            "unknown block",
            "busy",
            "timeout",
            "try again",
            "syncing",
        ]
        .iter()
        .any(|k| m.contains(k))
}

/// The default answer size cap: well above the largest mainnet witnesses seen (tens of MB).
pub const DEFAULT_MAX_RESPONSE_MB: u64 = 1024;
/// A block with its transactions: a mainnet block's answer is a few hundred kB, and even a block
/// of nothing but calldata at today's gas limit stays under 10 MB. A larger answer is not a block
/// the guest could prove, and is never held in memory.
pub const MAX_BLOCK_ANSWER_BYTES: u64 = 64_000_000;

/// How far one kind of answer is read, and the cap's name for the error. Every cap is also
/// bounded by `MAX_RESPONSE_MB`.
#[derive(Debug, Clone, Copy)]
struct Cap {
    bytes: u64,
    name: &'static str,
}

const BLOCK_CAP: Cap = Cap { bytes: MAX_BLOCK_ANSWER_BYTES, name: "the cap for a block's answer" };
/// Quantities and headers: a few kB.
const SMALL_CAP: Cap = Cap { bytes: 1_000_000, name: "the cap for a header or a number" };
const WITNESS_CAP: Cap = Cap { bytes: u64::MAX, name: "MAX_RESPONSE_MB" };

/// A JSON-RPC client for one node.
pub struct NodeClient {
    http: reqwest::Client,
    url: reqwest::Url,
    endpoint: String,
    next_id: AtomicU64,
    /// No answer is read past this many bytes (`MAX_RESPONSE_MB`): one huge answer must not
    /// take the daemon's memory, and the proof running beside it, down.
    max_response_bytes: u64,
}

impl fmt::Debug for NodeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeClient").field("endpoint", &self.endpoint).finish()
    }
}

impl NodeClient {
    pub fn new(url: &str, timeout: Duration) -> Result<NodeClient, ChainError> {
        let parsed =
            reqwest::Url::parse(url).map_err(|e| ChainError::InvalidUrl(format!("{}: {e}", redact_url(url))))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ChainError::InvalidUrl(format!("{}: scheme must be http or https", redact_url(url))));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ChainError::InvalidUrl(e.without_url().to_string()))?;
        Ok(NodeClient {
            http,
            endpoint: redact_url(url),
            url: parsed,
            next_id: AtomicU64::new(1),
            max_response_bytes: DEFAULT_MAX_RESPONSE_MB * 1_000_000,
        })
    }

    /// Caps every answer at `mb` megabytes.
    pub fn with_max_response_mb(mut self, mb: u64) -> NodeClient {
        self.max_response_bytes = mb.saturating_mul(1_000_000);
        self
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends one call and returns the whole response body, after checking the HTTP status; the
    /// body is read no further than `cap` (and `MAX_RESPONSE_MB`).
    async fn call(&self, method: &'static str, params: serde_json::Value, cap: Cap) -> Result<Vec<u8>, ChainError> {
        let limit = cap.bytes.min(self.max_response_bytes);
        let cap = if limit == self.max_response_bytes { "MAX_RESPONSE_MB" } else { cap.name };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let transport = |e: reqwest::Error| ChainError::Transport {
            method,
            endpoint: self.endpoint.clone(),
            message: redact::http_error(e),
        };
        let mut response = self.http.post(self.url.clone()).json(&body).send().await.map_err(transport)?;
        let status = response.status();
        let too_large = || ChainError::TooLarge { method, limit_mb: limit / 1_000_000, cap };
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        // Read in chunks into one buffer, never past the limit and never twice.
        let capacity = response.content_length().unwrap_or(0).min(limit);
        let mut bytes = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if (bytes.len() as u64).saturating_add(chunk.len() as u64) > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let excerpt = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).replace('\n', " ");
            return Err(ChainError::Status {
                method,
                endpoint: self.endpoint.clone(),
                status: status.as_u16(),
                body: excerpt,
            });
        }
        Ok(bytes)
    }

    /// A raw block or witness response; a small answer is checked for a null result or a
    /// JSON-RPC error (sent with HTTP 200 by many providers) so they are named, and retried
    /// when they mean "not yet" or "slow down". Large answers go to `input` unread.
    async fn call_payload(
        &self,
        method: &'static str,
        params: serde_json::Value,
        cap: Cap,
    ) -> Result<Vec<u8>, ChainError> {
        let body = self.call(method, params, cap).await?;
        if body.len() <= 64 * 1024
            && let Ok(text) = std::str::from_utf8(&body)
        {
            match crate::block::input::envelope::payload(text, method) {
                Err(crate::block::input::InputError::NullResult { .. }) => return Err(ChainError::NotYet { method }),
                Err(crate::block::input::InputError::Rpc { code, message, .. }) => {
                    return Err(ChainError::Rpc { method, code, message });
                }
                _ => {}
            }
        }
        Ok(body)
    }

    async fn call_value(
        &self,
        method: &'static str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, ChainError> {
        let body = self.call(method, params, SMALL_CAP).await?;
        let text = std::str::from_utf8(&body)
            .map_err(|e| ChainError::Decode { method, message: format!("not UTF-8: {e}") })?;
        let result = crate::block::input::envelope::payload(text, method).map_err(|e| match e {
            crate::block::input::InputError::Rpc { code, message, .. } => ChainError::Rpc { method, code, message },
            crate::block::input::InputError::NullResult { .. } => ChainError::NotYet { method },
            other => ChainError::Decode { method, message: format!("not a JSON-RPC response: {other}") },
        })?;
        serde_json::from_str(result).map_err(|e| ChainError::Decode { method, message: e.to_string() })
    }

    async fn call_u64(&self, method: &'static str) -> Result<u64, ChainError> {
        let value = self.call_value(method, json!([])).await?;
        let s = value
            .as_str()
            .ok_or_else(|| ChainError::Decode { method, message: format!("expected a hex quantity, got {value}") })?;
        crate::block::input::parse_quantity(s).map_err(|e| ChainError::Decode { method, message: e.to_string() })
    }

    pub async fn chain_id(&self) -> Result<u64, ChainError> {
        self.call_u64("eth_chainId").await
    }

    pub async fn block_number(&self) -> Result<u64, ChainError> {
        self.call_u64("eth_blockNumber").await
    }

    /// The hash of block `number` (header only), or `None` if the node does not have it: how a
    /// ledger recognises its chain (block 0) and, later, whether a block is still canonical.
    pub async fn block_hash(&self, number: u64) -> Result<Option<String>, ChainError> {
        let method = "eth_getBlockByNumber";
        let header = match self.call_value(method, json!([format!("{number:#x}"), false])).await {
            Ok(v) => v,
            Err(ChainError::NotYet { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        // A hash is 32 bytes: anything else is not one, and is not stored.
        Ok(header
            .get("hash")
            .and_then(|h| h.as_str())
            .filter(|h| h.len() == 66 && h.starts_with("0x") && h[2..].bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_string))
    }

    /// The raw `eth_getBlockByNumber(n, true)` response, envelope included.
    pub async fn block_json(&self, number: u64) -> Result<Vec<u8>, ChainError> {
        self.call_payload("eth_getBlockByNumber", json!([format!("{number:#x}"), true]), BLOCK_CAP).await
    }

    /// The raw `debug_executionWitness(n)` response, envelope included.
    pub async fn witness_json(&self, number: u64) -> Result<Vec<u8>, ChainError> {
        self.call_payload("debug_executionWitness", json!([format!("{number:#x}")]), WITNESS_CAP).await
    }
}

/// A loopback port nothing listens on: what the clients' tests dial to meet "connection refused".
#[cfg(test)]
pub(crate) fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_url() {
        let c = NodeClient::new("https://host.example/SECRETKEY", Duration::from_secs(1)).unwrap();
        assert!(!format!("{c:?}").contains("SECRET"));
    }

    #[tokio::test]
    async fn a_node_that_cannot_be_reached_is_named_by_its_cause() {
        let port = closed_port();
        let c = NodeClient::new(&format!("http://127.0.0.1:{port}/SECRETKEY"), Duration::from_secs(1)).unwrap();
        let e = c.block_number().await.unwrap_err().to_string();
        assert!(e.to_ascii_lowercase().contains("connection refused") && !e.contains("SECRET"), "{e}");
    }
}
