//! Slack incoming-webhook messages, posted with the project's one HTTP client.
//!
//! Architecture invariant: the webhook URL is a secret; it is only ever dialled, never logged.
//! A failure to post is logged and dropped: alerts never slow proving.

use serde_json::json;

use crate::config::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone)]
pub struct Alert {
    pub severity: Severity,
    pub title: String,
    pub detail: String,
}

/// The Block Kit payload for an alert.
pub fn payload(alert: &Alert) -> serde_json::Value {
    let icon = match alert.severity {
        Severity::Info => ":white_check_mark:",
        Severity::Warning => ":warning:",
        Severity::Error => ":rotating_light:",
    };
    let mut detail: String = alert.detail.chars().take(2900).collect();
    if detail.is_empty() {
        detail = "-".into();
    }
    json!({
        "text": format!("{icon} {}", alert.title),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("{icon} *{}*", alert.title)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("```{detail}```")}},
        ]
    })
}

/// Posts one alert; the error says what failed without the URL.
pub async fn post(http: &reqwest::Client, webhook: &Secret, alert: &Alert) -> Result<(), String> {
    let response = http
        .post(webhook.expose())
        .json(&payload(alert))
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if !response.status().is_success() {
        return Err(format!("Slack answered HTTP {}", response.status().as_u16()));
    }
    Ok(())
}
