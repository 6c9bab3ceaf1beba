//! A fake Ethereum node: JSON-RPC over HTTP on loopback, answering from canned responses.
//!
//! Deliberately small (std only, one thread, `Connection: close`): it speaks just enough
//! HTTP/1.1 for reqwest, and each method's answer is a raw JSON-RPC `result` or `error`, so
//! tests can serve real fixture bytes unchanged or inject failures.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// What the node answers to one method.
#[derive(Clone)]
pub enum Answer {
    /// The JSON text of `result`.
    Result(String),
    /// A JSON-RPC error object.
    Error { code: i64, message: String },
    /// An HTTP error status with a body.
    Http { status: u16, body: String },
}

pub struct FakeNode {
    pub url: String,
    answers: Arc<Mutex<HashMap<String, Answer>>>,
    pub calls: Arc<Mutex<Vec<String>>>,
}

impl FakeNode {
    pub fn start() -> FakeNode {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let answers: Arc<Mutex<HashMap<String, Answer>>> = Arc::default();
        let calls: Arc<Mutex<Vec<String>>> = Arc::default();
        let (a, c) = (answers.clone(), calls.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut content_length = 0;
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let l = line.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = l.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        content_length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; content_length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let method = request["method"].as_str().unwrap_or("").to_string();
                let id = request["id"].clone();
                c.lock().unwrap().push(method.clone());
                let answer = a.lock().unwrap().get(&method).cloned().unwrap_or(Answer::Error {
                    code: -32601,
                    message: format!("the method {method} does not exist/is not available"),
                });
                let (status, text) = match answer {
                    Answer::Result(result) => (200, format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#)),
                    Answer::Error { code, message } => (
                        200,
                        serde_json::json!({"jsonrpc":"2.0","id":id,"error":{"code":code,"message":message}})
                            .to_string(),
                    ),
                    Answer::Http { status, body } => (status, body),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            }
        });
        FakeNode { url, answers, calls }
    }

    pub fn answer(&self, method: &str, answer: Answer) {
        self.answers.lock().unwrap().insert(method.to_string(), answer);
    }

    /// Serves a block, its witness and the chain id, from the JSON texts of their results.
    pub fn serve_block(&self, chain_id: u64, block: &str, witness: &str) {
        self.answer("eth_chainId", Answer::Result(format!("\"{chain_id:#x}\"")));
        self.answer("eth_getBlockByNumber", Answer::Result(block.to_string()));
        self.answer("debug_executionWitness", Answer::Result(witness.to_string()));
    }
}
