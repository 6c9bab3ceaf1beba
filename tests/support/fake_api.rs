//! A fake EthProofs API v0 with the real server's semantics (see `ethproofs-api.md`): Bearer
//! auth, `queued`/`proving` create the row, `proved` needs the row and is 409 once proved, the
//! body limit, and scripted failures (500s, 429 with `Retry-After`, 401) for the outbox tests.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::http::{self, Response};

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub status: u16,
    pub body: serde_json::Value,
    pub at: Instant,
}

/// Status, extra headers and body of one answer.
type Answer = (u16, Vec<(String, String)>, String);

#[derive(Default)]
struct ApiState {
    key: String,
    clusters: Vec<u64>,
    rows: HashMap<u64, &'static str>,
    /// Scripted answers per endpoint (`queued`, `proving`, `proved`), used before the real semantics.
    scripted: VecDeque<(String, Answer)>,
    down: bool,
    /// Blocks whose calls are answered with this status (a server failing for one block only).
    failing: HashMap<u64, u16>,
    /// How long each answer takes after the server has acted on the call (a slow API: the
    /// window in which a client can die with its call accepted but unanswered).
    delay: std::time::Duration,
    received: Vec<Received>,
}

pub struct FakeApi {
    pub url: String,
    state: Arc<Mutex<ApiState>>,
}

impl FakeApi {
    pub fn start(key: &str) -> FakeApi {
        let state = Arc::new(Mutex::new(ApiState { key: key.to_string(), clusters: vec![7], ..Default::default() }));
        let s = state.clone();
        let url = http::serve(move |req| {
            let delay = s.lock().unwrap().delay;
            let response = {
                let mut st = s.lock().unwrap();
                let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
                let endpoint = req.path.rsplit('/').next().unwrap_or("").to_string();
                let scripted = st.scripted.iter().position(|(e, _)| *e == endpoint).and_then(|i| st.scripted.remove(i));
                let (status, headers, text) = if let Some((_, answer)) = scripted {
                    answer
                } else if st.down {
                    (503, vec![], "Service Unavailable".to_string())
                } else if let Some(status) = body["block_number"].as_u64().and_then(|b| st.failing.get(&b)) {
                    (*status, vec![], "Internal server error".to_string())
                } else {
                    answer(&mut st, &req.method, &req.path, req.header("authorization"), &body, req.body.len())
                };
                st.received.push(Received { path: req.path.clone(), status, body, at: Instant::now() });
                let mut r = Response::json(status, text);
                r.headers.extend(headers);
                r
            };
            std::thread::sleep(delay);
            response
        });
        FakeApi { url: format!("{url}/api/v0"), state }
    }

    /// The next answer to `endpoint` (`queued`, `proving`, `proved`), before the real semantics.
    pub fn script(&self, endpoint: &str, status: u16, headers: &[(&str, &str)], body: &str) {
        let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.state.lock().unwrap().scripted.push_back((endpoint.to_string(), (status, headers, body.to_string())));
    }

    pub fn clear_script(&self) {
        self.state.lock().unwrap().scripted.clear();
    }

    /// While down, every call is answered 503 (an outage).
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    /// Answers every call about `block` with `status` (`None`: the real semantics again).
    pub fn fail_block(&self, block: u64, status: Option<u16>) {
        let mut st = self.state.lock().unwrap();
        match status {
            Some(s) => st.failing.insert(block, s),
            None => st.failing.remove(&block),
        };
    }

    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    /// Every call received, `GET /clusters` excepted.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.iter().filter(|r| !r.path.ends_with("/clusters")).cloned().collect()
    }

    pub fn set_clusters(&self, ids: &[u64]) {
        self.state.lock().unwrap().clusters = ids.to_vec();
    }

    /// Marks a block proved on the server, as if another run had reported it.
    pub fn mark_proved(&self, block: u64) {
        self.state.lock().unwrap().rows.insert(block, "proved");
    }

    /// `(endpoint, block)` of every call the server accepted with 200 (or 409 on proved).
    pub fn accepted(&self) -> Vec<(String, u64)> {
        self.received()
            .into_iter()
            .filter(|r| r.status == 200 || (r.status == 409 && r.path.ends_with("/proved")))
            .map(|r| {
                (r.path.rsplit('/').next().unwrap_or("").to_string(), r.body["block_number"].as_u64().unwrap_or(0))
            })
            .collect()
    }
}

fn answer(
    st: &mut ApiState,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &serde_json::Value,
    len: usize,
) -> Answer {
    let text = |s: u16, t: &str| (s, vec![], t.to_string());
    match auth.and_then(|a| a.strip_prefix("Bearer ")) {
        None | Some("") => return text(401, "No API key provided"),
        Some(k) if k != st.key => return text(401, "Invalid API key"),
        _ => {}
    }
    if method == "GET" && path.ends_with("/clusters") {
        let list: Vec<_> = st
            .clusters
            .iter()
            .map(|id| serde_json::json!({"id": id, "name": format!("cluster {id}"), "hardware_description": "fake", "versions": [{"id": 1}]}))
            .collect();
        return (200, vec![], serde_json::Value::Array(list).to_string());
    }
    if method != "POST" {
        return text(404, "Not found");
    }
    if len > 6_000_000 {
        return text(413, "Request Entity Too Large");
    }
    let Some(block) = body["block_number"].as_u64() else { return text(400, "Invalid request: block_number") };
    if body["cluster_id"].as_u64().is_none() {
        return text(400, "Invalid request: cluster_id");
    }
    let endpoint = path.rsplit('/').next().unwrap_or("");
    if st.rows.get(&block) == Some(&"proved") {
        return text(409, "Proof already proved");
    }
    match endpoint {
        "queued" | "proving" => {
            st.rows.insert(block, if endpoint == "queued" { "queued" } else { "proving" });
            (200, vec![], r#"{"proof_id":1}"#.into())
        }
        "proved" => {
            if !st.rows.contains_key(&block) {
                return text(500, "Internal server error");
            }
            let ok = body["proving_time"].as_u64().is_some_and(|t| t > 0)
                && body["proof"].as_str().is_some_and(|p| !p.is_empty())
                && body.get("proving_cycles").is_none_or(|c| c.as_u64().is_some_and(|c| c > 0));
            if !ok {
                return text(400, "Invalid request: proving_time/proof/proving_cycles");
            }
            st.rows.insert(block, "proved");
            (200, vec![], r#"{"proof_id":2}"#.into())
        }
        _ => text(404, "Not found"),
    }
}
