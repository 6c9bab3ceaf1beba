//! A fake Slack incoming webhook: records every message's text.

use std::sync::{Arc, Mutex};

use super::http::{self, Response};

pub struct FakeSlack {
    pub url: String,
    texts: Arc<Mutex<Vec<String>>>,
}

impl FakeSlack {
    pub fn start() -> FakeSlack {
        let texts: Arc<Mutex<Vec<String>>> = Arc::default();
        let t = texts.clone();
        let base = http::serve(move |req| {
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            // Real webhooks reject a message without blocks or text.
            if body["blocks"].as_array().is_none_or(|b| b.is_empty()) || body["text"].as_str().is_none() {
                return Response::json(400, "invalid_payload");
            }
            let mut text = body["text"].as_str().unwrap_or("").to_string();
            for block in body["blocks"].as_array().unwrap() {
                text.push('\n');
                text.push_str(block["text"]["text"].as_str().unwrap_or(""));
            }
            t.lock().unwrap().push(text);
            Response::json(200, "ok")
        });
        FakeSlack { url: format!("{base}/services/T000/B000/SLACKSECRET"), texts }
    }

    pub fn messages(&self) -> Vec<String> {
        self.texts.lock().unwrap().clone()
    }

    pub fn count(&self, needle: &str) -> usize {
        self.messages().iter().filter(|m| m.contains(needle)).count()
    }
}
