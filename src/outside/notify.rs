//! Slack incoming-webhook messages, posted with the project's one HTTP client.
//!
//! Architecture invariant: the webhook URL is a secret; it is only ever dialled, never logged.
//! A failure to post is logged and dropped: alerts never slow proving.

use serde_json::json;

use crate::config::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Error,
}

#[derive(Debug, Clone)]
pub struct Alert {
    pub severity: Severity,
    pub title: String,
    pub detail: String,
}

/// Text from outside (the node, the API, the prover) made inert for Slack: `&`, `<`, `>` as
/// Slack requires, and backticks turned into look-alikes so nothing closes the code block or
/// opens a link or mention.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('`', "\u{2018}")
}

/// The Block Kit payload for an alert.
pub fn payload(alert: &Alert) -> serde_json::Value {
    let icon = match alert.severity {
        Severity::Info => ":white_check_mark:",
        Severity::Error => ":rotating_light:",
    };
    let mut detail: String = escape(&alert.detail).chars().take(2900).collect();
    if detail.is_empty() {
        detail = "-".into();
    }
    let title = escape(&alert.title);
    json!({
        "text": format!("{icon} {title}"),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("{icon} *{title}*")}},
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("```{detail}```")}},
        ]
    })
}

/// Why a Slack post did not go through. The webhook URL is a secret: it is never in here.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PostError {
    #[error("cannot reach Slack: {0}")]
    Transport(String),
    #[error("Slack answered HTTP {0}")]
    Status(u16),
}

pub async fn post(http: &reqwest::Client, webhook: &Secret, alert: &Alert) -> Result<(), PostError> {
    let response = http
        .post(webhook.expose())
        .json(&payload(alert))
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| PostError::Transport(crate::outside::chain::http_error(e)))?;
    if !response.status().is_success() {
        return Err(PostError::Status(response.status().as_u16()));
    }
    Ok(())
}

/// What an alert is about. Repeats of a kind are de-duplicated; each kind that reports trouble
/// has a "resolved" message when the trouble ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum AlertKind {
    InputFailed,
    ProofFailed,
    ReportFailed,
    RpcDown,
    ProverStuck,
    CoordinatorDown,
    ActorDown,
    DiskLow,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::InputFailed => "input failed",
            AlertKind::ProofFailed => "proof failed",
            AlertKind::ReportFailed => "report failed",
            AlertKind::RpcDown => "node unreachable",
            AlertKind::ProverStuck => "prover stuck",
            AlertKind::CoordinatorDown => "coordinator unreachable",
            AlertKind::ActorDown => "actor down",
            AlertKind::DiskLow => "disk low",
        }
    }
}

#[derive(Debug, Default, Clone)]
struct KindState {
    last_sent: Option<std::time::Instant>,
    suppressed: u32,
    occurrences: u32,
    active: bool,
}

/// Decides which alerts reach Slack: the first of a kind at once, repeats at most once per
/// window (with how many were held back), and a "resolved" only for a kind that was raised.
#[derive(Debug)]
pub struct Dedup {
    window: std::time::Duration,
    kinds: std::collections::HashMap<AlertKind, KindState>,
}

impl Dedup {
    pub fn new(window: std::time::Duration) -> Dedup {
        Dedup { window, kinds: Default::default() }
    }

    /// `Some(n)`: send now, mentioning `n` repeats held back since the last message.
    pub fn raise(&mut self, kind: AlertKind, now: std::time::Instant) -> Option<u32> {
        let k = self.kinds.entry(kind).or_default();
        k.active = true;
        k.occurrences += 1;
        match k.last_sent {
            Some(t) if now.duration_since(t) < self.window => {
                k.suppressed += 1;
                None
            }
            _ => {
                k.last_sent = Some(now);
                Some(std::mem::take(&mut k.suppressed))
            }
        }
    }

    /// `Some(n)`: the kind was active, with `n` occurrences; say it is resolved.
    pub fn resolve(&mut self, kind: AlertKind) -> Option<u32> {
        let k = self.kinds.get_mut(&kind)?;
        if !k.active {
            return None;
        }
        let n = k.occurrences;
        *k = KindState::default();
        Some(n)
    }

    pub fn active(&self) -> Vec<AlertKind> {
        let mut v: Vec<AlertKind> = self.kinds.iter().filter(|(_, k)| k.active).map(|(kind, _)| *kind).collect();
        v.sort_by_key(|k| k.as_str());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn slack_that_cannot_be_reached_is_named_by_its_cause() {
        let port = crate::outside::chain::closed_port();
        let webhook = crate::config::Secret::new(format!("http://127.0.0.1:{port}/services/T0/B0/SECRET"));
        let alert = Alert { severity: Severity::Error, title: "t".into(), detail: "d".into() };
        let Err(PostError::Transport(why)) = post(&reqwest::Client::new(), &webhook, &alert).await else {
            panic!("posted?")
        };
        assert!(why.to_ascii_lowercase().contains("connection refused") && !why.contains("SECRET"), "{why}");
    }

    #[test]
    fn repeats_are_held_back_within_the_window_and_counted() {
        let mut d = Dedup::new(Duration::from_secs(600));
        let t0 = Instant::now();
        assert_eq!(d.raise(AlertKind::ProofFailed, t0), Some(0));
        assert_eq!(d.raise(AlertKind::ProofFailed, t0 + Duration::from_secs(10)), None);
        assert_eq!(d.raise(AlertKind::ProofFailed, t0 + Duration::from_secs(20)), None);
        assert_eq!(d.raise(AlertKind::InputFailed, t0 + Duration::from_secs(20)), Some(0), "kinds are separate");
        assert_eq!(d.raise(AlertKind::ProofFailed, t0 + Duration::from_secs(601)), Some(2));
    }

    #[test]
    fn resolved_only_after_a_raise() {
        let mut d = Dedup::new(Duration::from_secs(600));
        assert_eq!(d.resolve(AlertKind::RpcDown), None);
        d.raise(AlertKind::RpcDown, Instant::now());
        d.raise(AlertKind::RpcDown, Instant::now());
        assert_eq!(d.active(), vec![AlertKind::RpcDown]);
        assert_eq!(d.resolve(AlertKind::RpcDown), Some(2));
        assert_eq!(d.resolve(AlertKind::RpcDown), None);
        assert_eq!(d.raise(AlertKind::RpcDown, Instant::now()), Some(0), "a new episode alerts at once");
    }

    #[test]
    fn payload_is_block_kit() {
        let p = payload(&Alert { severity: Severity::Error, title: "Proof failed".into(), detail: "x".into() });
        assert_eq!(p["blocks"][0]["type"], "section");
        assert!(p["text"].as_str().unwrap().contains("Proof failed"));
    }

    #[test]
    fn outside_text_cannot_break_out_of_the_code_block() {
        let detail = "error: ```\n<!channel> <https://evil|click> & more```";
        let p = payload(&Alert { severity: Severity::Error, title: "t `x`".into(), detail: detail.into() });
        let block = p["blocks"][1]["text"]["text"].as_str().unwrap();
        assert!(block.starts_with("```") && block.ends_with("```"));
        let inner = &block[3..block.len() - 3];
        assert!(!inner.contains('`') && !inner.contains('<') && !inner.contains('>'), "{inner}");
        assert!(inner.contains("&lt;!channel&gt;") && inner.contains("&amp; more"));
        assert!(!p["text"].as_str().unwrap().contains('`'));
    }
}
