//! A fake node's WebSocket endpoint: answers `eth_subscribe(["newHeads"])` and pushes the headers
//! a test hands it, as `eth_subscription` notifications.

use std::sync::mpsc;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

pub struct FakeWs {
    pub url: String,
    heads: mpsc::Sender<String>,
}

impl FakeWs {
    pub fn start() -> FakeWs {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                listener.set_nonblocking(true).unwrap();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let (stream, _) = listener.accept().await.unwrap();
                let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
                let mut subscribed = false;
                loop {
                    // Forward any queued head, then look at the socket briefly.
                    if subscribed {
                        while let Ok(header) = rx.try_recv() {
                            let note = format!(
                                r#"{{"jsonrpc":"2.0","method":"eth_subscription","params":{{"subscription":"0x1","result":{header}}}}}"#
                            );
                            if ws.send(Message::text(note)).await.is_err() {
                                return;
                            }
                        }
                    }
                    let next = tokio::time::timeout(std::time::Duration::from_millis(50), ws.next()).await;
                    let Ok(msg) = next else { continue };
                    let Some(Ok(msg)) = msg else { return };
                    let Ok(text) = msg.to_text() else { continue };
                    let Ok(req) = serde_json::from_str::<serde_json::Value>(text) else { continue };
                    let id = req["id"].clone();
                    let reply = if req["method"] == "eth_subscribe" {
                        subscribed = true;
                        serde_json::json!({"jsonrpc":"2.0","id":id,"result":"0x1"})
                    } else {
                        serde_json::json!({"jsonrpc":"2.0","id":id,"error":{"code":-32601,"message":"not supported here"}})
                    };
                    if ws.send(Message::text(reply.to_string())).await.is_err() {
                        return;
                    }
                }
            });
        });
        FakeWs { url, heads: tx }
    }

    /// Pushes a header (the JSON of a block object; extra fields are ignored by clients).
    pub fn push_head(&self, header_json: &str) {
        let _ = self.heads.send(header_json.to_string());
    }
}
