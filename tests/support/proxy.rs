//! A forwarding proxy on loopback between a browser and a daemon. It calls `before` with each
//! request's path before forwarding it, so a test can stop the daemon at the moment a page asks
//! for something. A request the daemon cannot take (it is gone) has its connection closed
//! unanswered: what a browser sees of a daemon that is down.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// Serves until the process ends; returns the proxy's port.
pub fn start(upstream: u16, before: impl Fn(&str) + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let before = Arc::new(before);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let before = before.clone();
            std::thread::spawn(move || forward(client, upstream, &*before));
        }
    });
    port
}

/// One request per connection (GETs: a head, no body): the daemon is asked to close after its
/// answer, which the proxy copies back before closing too.
fn forward(mut client: TcpStream, upstream: u16, before: &(dyn Fn(&str) + Send + Sync)) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    before(head.split_whitespace().nth(1).unwrap_or(""));
    let Ok(mut daemon) = TcpStream::connect(("127.0.0.1", upstream)) else { return };
    let mut request: String = head
        .lines()
        .filter(|l| !l.is_empty() && !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    request.push_str("Connection: close\r\n\r\n");
    if daemon.write_all(request.as_bytes()).is_ok() {
        let _ = std::io::copy(&mut daemon, &mut client);
    }
}
