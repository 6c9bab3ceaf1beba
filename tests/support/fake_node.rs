//! A fake Ethereum node: JSON-RPC over HTTP on loopback.
//!
//! It serves a head you can move, blocks and witnesses by number (real fixture bytes, unchanged),
//! answers unknown blocks as geth does (`null` for the block, an error for the witness), and lets
//! a test replace any method's answer to inject failures.
//!
//! An honest node has a block at its head: [`FakeNode::set_head`] gives the head a bare header
//! (number, hash, parent hash, no body) unless a real block was added there. A lying node's
//! `eth_blockNumber` names a height it has no block for: [`FakeNode::lie_head`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::http::{self, Response};

/// What the node answers to one method.
#[derive(Clone)]
pub enum Answer {
    /// The JSON text of `result`.
    Result(String),
    /// A JSON-RPC error object.
    Error { code: i64, message: String },
    /// An HTTP error status with a body.
    Http { status: u16, body: String },
    /// No answer for this long (a hung node), then the real one.
    Hang(std::time::Duration),
}

#[derive(Default)]
struct NodeState {
    chain_id: u64,
    head: u64,
    blocks: HashMap<u64, (String, String)>,
    /// Heights an honest head passed through: the node has a header there even without a block.
    headers: HashSet<u64>,
    overrides: HashMap<String, Answer>,
    /// Blocks whose witness takes this long to come (a node slow on one block only).
    slow_witness: HashMap<u64, std::time::Duration>,
    calls: Vec<String>,
    /// Calls that began hanging (`calls` has a call only once it is answered).
    hung: usize,
}

pub struct FakeNode {
    pub url: String,
    state: Arc<Mutex<NodeState>>,
}

/// A header with no body: enough to say the block exists, never enough to build an input from.
fn bare_header(n: u64) -> String {
    format!(r#"{{"number":"{n:#x}","hash":"0x{n:064x}","parentHash":"0x{:064x}"}}"#, n.saturating_sub(1))
}

fn quantity(v: &serde_json::Value) -> Option<u64> {
    u64::from_str_radix(v.as_str()?.trim_start_matches("0x"), 16).ok()
}

impl FakeNode {
    pub fn start() -> FakeNode {
        let state: Arc<Mutex<NodeState>> = Arc::default();
        let s = state.clone();
        let url = http::serve(move |req| {
            let request: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            let method = request["method"].as_str().unwrap_or("").to_string();
            let id = request["id"].clone();
            let number = quantity(&request["params"][0]);
            let hang = {
                let mut st = s.lock().unwrap();
                let hang = match st.overrides.get(&method) {
                    Some(Answer::Hang(d)) => Some(*d),
                    _ => None,
                };
                st.hung += usize::from(hang.is_some());
                hang
            };
            let slow = number
                .filter(|_| method == "debug_executionWitness")
                .and_then(|n| s.lock().unwrap().slow_witness.get(&n).copied());
            if let Some(d) = hang.or(slow) {
                std::thread::sleep(d);
            }
            let answer = {
                let mut st = s.lock().unwrap();
                st.calls.push(format!("{method} {}", number.map(|n| n.to_string()).unwrap_or_default()));
                if let Some(a) = st.overrides.get(&method).filter(|a| !matches!(a, Answer::Hang(_))) {
                    a.clone()
                } else {
                    match method.as_str() {
                        "eth_chainId" => Answer::Result(format!("\"{:#x}\"", st.chain_id)),
                        "eth_blockNumber" => Answer::Result(format!("\"{:#x}\"", st.head)),
                        "eth_getBlockByNumber" => match number.and_then(|n| st.blocks.get(&n)) {
                            Some((block, _)) => Answer::Result(block.clone()),
                            None => match number.filter(|n| st.headers.contains(n)) {
                                Some(n) => Answer::Result(bare_header(n)),
                                None => Answer::Result("null".into()),
                            },
                        },
                        "debug_executionWitness" => match number.and_then(|n| st.blocks.get(&n)) {
                            Some((_, witness)) => Answer::Result(witness.clone()),
                            None => Answer::Error {
                                code: -32000,
                                message: format!("block #{} not found", number.unwrap_or(0)),
                            },
                        },
                        other => Answer::Error {
                            code: -32601,
                            message: format!("the method {other} does not exist/is not available"),
                        },
                    }
                }
            };
            match answer {
                Answer::Result(result) => {
                    Response::json(200, format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#))
                }
                Answer::Error { code, message } => Response::json(
                    200,
                    serde_json::json!({"jsonrpc":"2.0","id":id,"error":{"code":code,"message":message}}).to_string(),
                ),
                Answer::Http { status, body } => Response::json(status, body),
                Answer::Hang(_) => Response::json(500, "unreachable"),
            }
        });
        FakeNode { url, state }
    }

    pub fn set_chain_id(&self, chain_id: u64) {
        self.state.lock().unwrap().chain_id = chain_id;
    }

    /// The node's head moves to `head`, and the node has a block there (a bare header if no
    /// block was added at that height).
    pub fn set_head(&self, head: u64) {
        let mut st = self.state.lock().unwrap();
        st.head = head;
        st.headers.insert(head);
    }

    /// `eth_blockNumber` answers `head`, but the node has no block there (a broken or lying node).
    pub fn lie_head(&self, head: u64) {
        self.state.lock().unwrap().head = head;
    }

    /// Serves `eth_getBlockByNumber(number)` and `debug_executionWitness(number)` from these texts.
    pub fn add_block(&self, number: u64, block: &str, witness: &str) {
        self.state.lock().unwrap().blocks.insert(number, (block.to_string(), witness.to_string()));
    }

    pub fn answer(&self, method: &str, answer: Answer) {
        self.state.lock().unwrap().overrides.insert(method.to_string(), answer);
    }

    /// Block `number`'s witness comes only after `delay` (other blocks' at once).
    pub fn slow_witness(&self, number: u64, delay: std::time::Duration) {
        self.state.lock().unwrap().slow_witness.insert(number, delay);
    }

    pub fn clear_answer(&self, method: &str) {
        self.state.lock().unwrap().overrides.remove(method);
    }

    /// Every call so far, as `method number`.
    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    /// How many calls began hanging on an `Answer::Hang`.
    pub fn hung(&self) -> usize {
        self.state.lock().unwrap().hung
    }

    /// Serves one block as the answer to every block and witness request, with the chain id.
    pub fn serve_block(&self, chain_id: u64, block: &str, witness: &str) {
        self.set_chain_id(chain_id);
        self.answer("eth_getBlockByNumber", Answer::Result(block.to_string()));
        self.answer("debug_executionWitness", Answer::Result(witness.to_string()));
    }
}
