//! Following the chain's head: `eth_blockNumber` through alloy's provider (retried inside the
//! call), and `newHeads` over WebSocket when configured, reconnecting with backoff.

use std::fmt;
use std::time::Duration;

use super::{ChainError, redact_url, scrub_urls};
use crate::runtime::backoff::Backoff;

/// A WebSocket that failed or ended is dialled again after 10 s, every time (polling goes on
/// meanwhile).
const RECONNECT: Backoff = Backoff::steady(Duration::from_secs(10));

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

/// Follows `newHeads` over WebSocket and hands each block number to `on_head` (awaited before the
/// next header is read), reconnecting after errors. Runs until the task is aborted; polling
/// remains the safety net meanwhile.
pub async fn follow_new_heads<F>(url: String, on_head: impl Fn(u64) -> F + Send + 'static)
where
    F: std::future::Future<Output = ()> + Send,
{
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
                tokio::time::sleep(RECONNECT.after(1)).await;
                continue;
            }
        };
        match connected {
            Ok((_provider, sub)) => {
                tracing::info!(%endpoint, "following newHeads");
                let mut stream = sub.into_stream();
                while let Some(header) = stream.next().await {
                    // Awaited before the next header is read: heads are handed over in order.
                    on_head(header.number).await;
                }
                tracing::warn!(%endpoint, "newHeads subscription ended; reconnecting");
            }
            Err(e) => {
                tracing::warn!(%endpoint, error = %scrub_urls(&e.to_string()), "WebSocket connection or subscription failed")
            }
        }
        tokio::time::sleep(RECONNECT.after(1)).await;
    }
}
