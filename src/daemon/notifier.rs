//! The Notifier actor: takes alerts from the other actors and posts them to Slack, one at a
//! time, in the background. Without `SLACK_WEBHOOK` alerts are only logged.

use std::collections::VecDeque;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;

use super::{Context, NOTIFIER, Shared, deliver, send};
use crate::notify::{self, Alert, AlertKind, Dedup, Severity};

/// A repeated alert of one kind reaches Slack at most once per this window.
pub const DEDUP_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);

pub struct NotifierState {
    dedup: Dedup,
    queue: VecDeque<Alert>,
    sending: bool,
    sent: u64,
    failed: u64,
    last_error: Option<String>,
}

impl Default for NotifierState {
    fn default() -> Self {
        NotifierState {
            dedup: Dedup::new(DEDUP_WINDOW),
            queue: VecDeque::new(),
            sending: false,
            sent: 0,
            failed: 0,
            last_error: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NotifierStatus {
    pub enabled: bool,
    pub state: &'static str,
    pub queue_length: usize,
    pub sent: u64,
    pub failed: u64,
    pub last_error: Option<String>,
    pub active_alerts: Vec<AlertKind>,
}

pub enum NotifierMsg {
    Wake,
    Sent(Result<(), String>),
    Status(RpcReplyPort<NotifierStatus>),
}

/// How other actors raise an alert: logged at once, queued for Slack.
#[derive(Clone)]
pub struct NotifierHandle {
    pub(crate) state: Shared<NotifierState>,
}

impl NotifierHandle {
    pub fn new(state: Shared<NotifierState>) -> NotifierHandle {
        NotifierHandle { state }
    }

    /// Trouble of some kind: logged at once, posted unless a repeat within the window.
    pub fn alert(&self, kind: AlertKind, title: impl Into<String>, detail: impl Into<String>) {
        let (title, detail) = (title.into(), detail.into());
        tracing::error!(kind = kind.as_str(), %title, %detail, "alert");
        let mut s = self.state.lock();
        match s.dedup.raise(kind, std::time::Instant::now()) {
            None => return,
            Some(0) => Self::push(&mut s, Alert { severity: Severity::Error, title, detail }),
            Some(n) => Self::push(
                &mut s,
                Alert {
                    severity: Severity::Error,
                    title: format!("{title} (and {n} more like it since the last message)"),
                    detail,
                },
            ),
        }
        drop(s);
        let _ = send(NOTIFIER, NotifierMsg::Wake);
    }

    /// The trouble of `kind` is over: posts "Resolved" if an alert of that kind was raised.
    pub fn resolve(&self, kind: AlertKind, detail: impl Into<String>) {
        let mut s = self.state.lock();
        let Some(occurrences) = s.dedup.resolve(kind) else { return };
        let detail = detail.into();
        tracing::info!(kind = kind.as_str(), %detail, "resolved");
        let title = format!(
            "Resolved: {} ({occurrences} occurrence{})",
            kind.as_str(),
            if occurrences == 1 { "" } else { "s" }
        );
        Self::push(&mut s, Alert { severity: Severity::Info, title, detail });
        drop(s);
        let _ = send(NOTIFIER, NotifierMsg::Wake);
    }

    /// News rather than trouble (start-up, a proved block): always posted, never de-duplicated.
    pub fn info(&self, title: impl Into<String>, detail: impl Into<String>) {
        let alert = Alert { severity: Severity::Info, title: title.into(), detail: detail.into() };
        tracing::info!(title = %alert.title, "notice");
        Self::push(&mut self.state.lock(), alert);
        let _ = send(NOTIFIER, NotifierMsg::Wake);
    }

    fn push(s: &mut NotifierState, alert: Alert) {
        // A Slack outage must not grow memory without bound.
        if s.queue.len() >= 1000 {
            s.queue.pop_front();
        }
        s.queue.push_back(alert);
    }
}

pub struct Notifier {
    pub ctx: Arc<Context>,
}

impl Actor for Notifier {
    type Msg = NotifierMsg;
    type State = Shared<NotifierState>;
    type Arguments = Shared<NotifierState>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        // A send that was in flight when the previous incarnation died reports back by name.
        let _ = myself.cast(NotifierMsg::Wake);
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            NotifierMsg::Status(reply) => {
                let s = state.lock();
                let _ = reply.send(NotifierStatus {
                    enabled: self.ctx.config.slack_webhook.is_some(),
                    state: if s.sending { "sending" } else { "idle" },
                    queue_length: s.queue.len(),
                    sent: s.sent,
                    failed: s.failed,
                    last_error: s.last_error.clone(),
                    active_alerts: s.dedup.active(),
                });
            }
            NotifierMsg::Sent(result) => {
                {
                    let mut s = state.lock();
                    s.sending = false;
                    match result {
                        Ok(()) => s.sent += 1,
                        Err(e) => {
                            tracing::warn!(error = %e, "Slack alert not delivered");
                            s.failed += 1;
                            s.last_error = Some(e);
                        }
                    }
                }
                self.pump(state);
            }
            NotifierMsg::Wake => self.pump(state),
        }
        Ok(())
    }
}

impl Notifier {
    fn pump(&self, state: &Shared<NotifierState>) {
        let mut s = state.lock();
        let Some(webhook) = self.ctx.config.slack_webhook.clone() else {
            s.queue.clear();
            return;
        };
        if s.sending {
            return;
        }
        let Some(alert) = s.queue.pop_front() else { return };
        s.sending = true;
        let http = self.ctx.http.clone();
        tokio::spawn(async move {
            let result = notify::post(&http, &webhook, &alert).await;
            deliver(super::NOTIFIER, NotifierMsg::Sent(result)).await;
        });
    }
}
