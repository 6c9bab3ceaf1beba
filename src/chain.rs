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

/// Keeps scheme, host and port: paths and query strings of hosted nodes hold API keys.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("?");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = if u.path().len() > 1 || u.query().is_some() { "/…" } else { "" };
            format!("{}://{host}{port}{rest}", u.scheme())
        }
        Err(_) => "<invalid url>".to_string(),
    }
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
            message: e.without_url().to_string(),
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
            match crate::input::envelope::payload(text, method) {
                Err(crate::input::InputError::NullResult { .. }) => return Err(ChainError::NotYet { method }),
                Err(crate::input::InputError::Rpc { code, message, .. }) => {
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
        let result = crate::input::envelope::payload(text, method).map_err(|e| match e {
            crate::input::InputError::Rpc { code, message, .. } => ChainError::Rpc { method, code, message },
            crate::input::InputError::NullResult { .. } => ChainError::NotYet { method },
            other => ChainError::Decode { method, message: format!("not a JSON-RPC response: {other}") },
        })?;
        serde_json::from_str(result).map_err(|e| ChainError::Decode { method, message: e.to_string() })
    }

    async fn call_u64(&self, method: &'static str) -> Result<u64, ChainError> {
        let value = self.call_value(method, json!([])).await?;
        let s = value
            .as_str()
            .ok_or_else(|| ChainError::Decode { method, message: format!("expected a hex quantity, got {value}") })?;
        crate::input::parse_quantity(s).map_err(|message| ChainError::Decode { method, message })
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

/// The chain head, polled with alloy's provider behind a retry layer (rate limits and
/// transient transport errors are retried inside the call).
pub struct HeadPoller {
    provider: alloy_provider::RootProvider,
    endpoint: String,
}

impl fmt::Debug for HeadPoller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeadPoller").field("endpoint", &self.endpoint).finish()
    }
}

/// Reduces every URL in `text` to scheme://host:port, by structure: whatever spelling the
/// operator used (upper-case host, an explicit default port), and whatever form a dependency
/// quotes it in, no path or query (where providers put keys) survives.
pub fn scrub_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = ["http://", "https://", "ws://", "wss://"]
        .iter()
        .filter_map(|scheme| rest.to_ascii_lowercase().find(scheme))
        .min()
    {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end =
            tail.find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | '>' | ',')).unwrap_or(tail.len());
        out.push_str(&redact_url(&tail[..end]));
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

impl HeadPoller {
    pub fn new(url: &str) -> Result<HeadPoller, ChainError> {
        let parsed =
            reqwest::Url::parse(url).map_err(|e| ChainError::InvalidUrl(format!("{}: {e}", redact_url(url))))?;
        let client = alloy_rpc_client::ClientBuilder::default()
            .layer(alloy_transport::layers::RetryBackoffLayer::new(3, 500, u64::MAX))
            .http(parsed);
        Ok(HeadPoller { provider: alloy_provider::RootProvider::new(client), endpoint: redact_url(url) })
    }

    /// Scheme, host and port only: safe to log.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub async fn head(&self) -> Result<u64, ChainError> {
        use alloy_provider::Provider;
        self.provider.get_block_number().await.map_err(|e| ChainError::Transport {
            method: "eth_blockNumber",
            endpoint: self.endpoint.clone(),
            message: scrub_urls(&e.to_string()),
        })
    }
}

/// Follows `newHeads` over WebSocket and calls `on_head` with each block number, reconnecting
/// after errors. Runs until the task is aborted; polling remains the safety net meanwhile.
pub async fn follow_new_heads(url: String, on_head: impl Fn(u64) + Send + 'static) {
    use alloy_provider::Provider;
    use futures_util::StreamExt;
    let endpoint = redact_url(&url);
    loop {
        // Connecting and subscribing are bounded: a node that never answers must not park the
        // subscription for good (polling goes on regardless).
        let connect = tokio::time::timeout(Duration::from_secs(30), async {
            let provider =
                alloy_provider::ProviderBuilder::new().connect_ws(alloy_provider::WsConnect::new(url.clone())).await?;
            let sub = provider.subscribe_blocks().await?;
            Ok::<_, alloy_transport::TransportError>((provider, sub))
        })
        .await;
        let connected = match connect {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(%endpoint, "WebSocket connection did not complete in 30 s");
                tokio::time::sleep(Duration::from_secs(10)).await;
                continue;
            }
        };
        match connected {
            Ok((_provider, sub)) => {
                tracing::info!(%endpoint, "following newHeads");
                let mut stream = sub.into_stream();
                while let Some(header) = stream.next().await {
                    on_head(header.number);
                }
                tracing::warn!(%endpoint, "newHeads subscription ended; reconnecting");
            }
            Err(e) => {
                tracing::warn!(%endpoint, error = %scrub_urls(&e.to_string()), "WebSocket connection or subscription failed")
            }
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_any_spelling_are_reduced_by_structure() {
        let text = "error sending request for url (HTTPS://Eth.Example.COM:443/v2/KEY123): timed out; see https://x.io/a?k=SECRET2, 'wss://ws.node/KEY3'";
        let scrubbed = scrub_urls(text);
        for secret in ["KEY123", "SECRET2", "KEY3", "/v2/"] {
            assert!(!scrubbed.contains(secret), "{scrubbed}");
        }
        assert!(scrubbed.contains("https://eth.example.com/…") && scrubbed.contains("timed out"), "{scrubbed}");
        assert_eq!(scrub_urls("no url here"), "no url here");
    }

    #[test]
    fn redaction_drops_paths_and_queries() {
        assert_eq!(redact_url("https://eth-mainnet.example/v2/SECRETKEY"), "https://eth-mainnet.example/…");
        assert_eq!(redact_url("http://127.0.0.1:8545"), "http://127.0.0.1:8545");
        assert_eq!(redact_url("http://node:8545/?key=SECRET"), "http://node:8545/…");
        assert!(!redact_url("https://user:pass@host/x").contains("pass"));
    }

    #[test]
    fn debug_never_shows_the_url() {
        let c = NodeClient::new("https://host.example/SECRETKEY", Duration::from_secs(1)).unwrap();
        assert!(!format!("{c:?}").contains("SECRET"));
    }
}
