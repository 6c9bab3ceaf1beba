//! What the actors' unit tests share: a `Context` over a temporary directory, and local HTTP
//! servers standing in for the node, EthProofs and Slack (loopback only).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{Context, Links, Settings};
use crate::block::chainspec::{ChainSpec, Network};
use crate::block::zisk::{Dialect, ZiskVersion};
use crate::outside::chain::NodeClient;
use crate::runtime::status::Board;
use crate::store::Ledger;

/// A context whose node is `node_url` and whose outputs live in `dir`, and the components'
/// settings; `extra` are more flags.
pub fn context(dir: &Path, node_url: &str, extra: &[&str]) -> (Arc<Context>, Settings) {
    context_checking(dir, node_url, extra, None)
}

/// [`context`], with proofs checked by `verify`.
pub fn context_checking(
    dir: &Path,
    node_url: &str,
    extra: &[&str],
    verify: Option<crate::block::verify::ProofCheck>,
) -> (Arc<Context>, Settings) {
    let elf = dir.join("g.elf");
    std::fs::write(&elf, "elf").unwrap();
    let mut args = vec![
        "--eth-rpc-url",
        node_url,
        "--elf-path",
        elf.to_str().unwrap(),
        "--output-dir",
        dir.to_str().unwrap(),
        "--min-free-disk-mb",
        "0",
        "--node-retry-seconds",
        "0",
    ];
    args.extend_from_slice(extra);
    let config = crate::config::test_args(&args).unwrap().into_config().unwrap();
    let ledger = Arc::new(Ledger::open(&config.db_path).unwrap());
    let (zisk_version, dialect) = (ZiskVersion { major: 1, minor: 4, patch: 0 }, Dialect::V1);
    let backend = crate::backend::from_config(&config, &ledger, zisk_version, dialect, "test", None).unwrap();
    let settings = Settings::from_config(&config);
    let links = Links { dashboard_url: None, reports_to_ethproofs: config.reports_to_ethproofs(), dev_chain: false };
    let ctx = Arc::new(Context {
        ledger,
        backend,
        verify,
        chain: ChainSpec::embedded(Network::Mainnet),
        node: Arc::new(NodeClient::new(node_url, Duration::from_secs(5)).unwrap()),
        http: reqwest::Client::new(),
        zisk_version,
        dialect,
        started_at: std::time::SystemTime::now(),
        elf_sha256: "test".into(),
        elf: None,
        disk_low: Default::default(),
        board: Arc::new(Board::default()),
        drain: Default::default(),
        links,
    });
    (ctx, settings)
}

/// Serves `router` on a loopback port; returns `http://127.0.0.1:PORT`.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    url
}

/// What the tests' blocks' proofs must commit to (160 zero bytes, hex).
pub const OUTPUTS: &str = concat!(
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000"
);

/// An input built at `input` for a block whose hash is `hash`.
pub fn enqueued<'a>(input: &'a Path, hash: &'a str) -> crate::store::Enqueued<'a> {
    crate::store::Enqueued {
        input_path: input,
        gas_used: 1,
        tx_count: 1,
        block_hash: hash,
        input_ms: 1,
        timestamp: 1,
        expected_output: Some(OUTPUTS),
    }
}

/// What a test node answers for `eth_getBlockByNumber`: the block hash at every height, or
/// (`None`) an error, as a node that is failing does.
pub type NodeHash = Arc<std::sync::Mutex<Option<String>>>;

/// A JSON-RPC node on loopback answering `eth_getBlockByNumber` with `{hash}` from `hash` (an
/// error when it holds `None`); returns its URL.
pub async fn node(hash: NodeHash) -> String {
    use axum::extract::State;
    use axum::routing::post;
    async fn answer(State(hash): State<NodeHash>, body: String) -> String {
        let request: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let id = request["id"].clone();
        let reply = match hash.lock().unwrap().clone() {
            Some(h) => serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {"hash": h}}),
            None => serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": "syncing"}}),
        };
        reply.to_string()
    }
    serve(axum::Router::new().route("/", post(answer)).with_state(hash)).await
}

/// What an EthProofs API accepted, in order: `(status, block)`.
pub type Calls = Arc<std::sync::Mutex<Vec<(String, u64)>>>;

/// An EthProofs API on loopback that accepts every call as the contract answers one and
/// remembers the order; returns its URL.
pub async fn ethproofs(calls: Calls) -> String {
    use axum::extract::{Path, State};
    async fn accept(State(calls): State<Calls>, Path(status): Path<String>, body: String) -> &'static str {
        let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        calls.lock().unwrap().push((status, body["block_number"].as_u64().unwrap_or(0)));
        r#"{"proof_id":1}"#
    }
    serve(axum::Router::new().route("/proofs/{status}", axum::routing::post(accept)).with_state(calls)).await
}

/// Polls `f` until it holds (10 s at most).
pub async fn wait(what: &str, f: impl Fn() -> bool) {
    wait_every(what, Duration::from_millis(20), Duration::from_secs(10), f).await
}

/// Polls `f` every `step` until it holds, for `limit` at most (of tokio's clock: on a paused
/// clock, a fine step measures a wait to the millisecond and a long limit costs nothing).
pub async fn wait_every(what: &str, step: Duration, limit: Duration, f: impl Fn() -> bool) {
    let until = tokio::time::Instant::now() + limit;
    while !f() {
        assert!(tokio::time::Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(step).await;
    }
}
