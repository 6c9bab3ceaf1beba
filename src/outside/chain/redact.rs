//! Node URLs often carry a provider key in the path or query: they are shown by scheme and host
//! only, and any URL inside a message (an error text) is reduced the same way.

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

/// What an HTTP call's failure was, down to its cause: reqwest's own text ("error sending
/// request") says nothing an operator can act on, its sources do ("Connection refused",
/// "operation timed out", "dns error"). The request's URL is left out and any URL inside a
/// source reduced to scheme://host:port.
pub fn http_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let text = cause.to_string();
        // hyper and std repeat a cause in their own words; each is said once.
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    scrub_urls(&parts.join(": "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outside::chain::closed_port;

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

    #[tokio::test]
    async fn an_http_failure_names_its_cause_and_never_the_url_s_secret() {
        let http = reqwest::Client::new();
        let refused = http.get(format!("http://127.0.0.1:{}/v2/SECRET", closed_port())).send().await.unwrap_err();
        let text = http_error(refused);
        assert!(text.to_ascii_lowercase().contains("connection refused"), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
        // A server that takes the connection and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", silent.local_addr().unwrap());
        let timeout = http.get(url).timeout(std::time::Duration::from_millis(200)).send().await.unwrap_err();
        let text = http_error(timeout);
        assert!(text.contains("timed out"), "{text}");
    }

    #[test]
    fn redaction_drops_paths_and_queries() {
        assert_eq!(redact_url("https://eth-mainnet.example/v2/SECRETKEY"), "https://eth-mainnet.example/…");
        assert_eq!(redact_url("http://127.0.0.1:8545"), "http://127.0.0.1:8545");
        assert_eq!(redact_url("http://node:8545/?key=SECRET"), "http://node:8545/…");
        assert!(!redact_url("https://user:pass@host/x").contains("pass"));
    }
}
