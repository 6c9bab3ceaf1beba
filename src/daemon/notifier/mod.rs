//! The Notifier actor: posts alerts to Slack one at a time, in the background, with one message
//! per kind per window (a count of the repeats) and "Resolved" only for a kind that was raised.
//! Without `SLACK_WEBHOOK` alerts are only logged (by [`super::Alerts`], where they are raised).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::daemon::{Context, InFlightTask, Mailbox, NotifierSettings};
use crate::outside::notify::{self, Alert, AlertKind, Dedup, Severity};
use crate::runtime::status::NotifierStatus;

/// A repeated alert of one kind reaches Slack at most once per this window.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(600);
/// A Slack outage must not grow memory without bound.
const MAX_QUEUE: usize = 1000;

pub enum NotifierMsg {
    Raise {
        kind: AlertKind,
        title: String,
        detail: String,
    },
    Resolve {
        kind: AlertKind,
        detail: String,
    },
    Info {
        title: String,
        detail: String,
    },
    Sent(Result<(), notify::PostError>),
    /// Heartbeat: publish status.
    Tick,
}

pub struct NotifierState {
    dedup: Dedup,
    queue: VecDeque<Alert>,
    /// The post in flight.
    sending: Option<InFlightTask>,
    sent: u64,
    failed: u64,
    last_error: Option<String>,
}

pub struct Notifier {
    pub ctx: Arc<Context>,
    pub settings: Arc<NotifierSettings>,
    pub mailbox: Mailbox<NotifierMsg>,
}

impl Actor for Notifier {
    type Msg = NotifierMsg;
    type State = NotifierState;
    type Arguments = ();

    async fn pre_start(&self, myself: ActorRef<Self::Msg>, _: ()) -> Result<Self::State, ActorProcessingErr> {
        myself.send_interval(Duration::from_secs(1), || NotifierMsg::Tick);
        let state = NotifierState {
            dedup: Dedup::new(DEDUP_WINDOW),
            queue: VecDeque::new(),
            sending: None,
            sent: 0,
            failed: 0,
            last_error: None,
        };
        self.publish(&state);
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        s: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            NotifierMsg::Raise { kind, title, detail } => match s.dedup.raise(kind, Instant::now()) {
                None => {}
                Some(0) => push(s, Alert { severity: Severity::Error, title, detail }),
                Some(n) => push(
                    s,
                    Alert {
                        severity: Severity::Error,
                        title: format!("{title} (and {n} more like it since the last message)"),
                        detail,
                    },
                ),
            },
            NotifierMsg::Resolve { kind, detail } => {
                if let Some(occurrences) = s.dedup.resolve(kind) {
                    tracing::info!(kind = kind.as_str(), %detail, "resolved");
                    let plural = if occurrences == 1 { "" } else { "s" };
                    let title = format!("Resolved: {} ({occurrences} occurrence{plural})", kind.as_str());
                    push(s, Alert { severity: Severity::Info, title, detail });
                }
            }
            NotifierMsg::Info { title, detail } => push(s, Alert { severity: Severity::Info, title, detail }),
            NotifierMsg::Sent(result) => {
                s.sending = None;
                match result {
                    Ok(()) => s.sent += 1,
                    Err(e) => {
                        tracing::warn!(error = %e, "Slack alert not delivered");
                        s.failed += 1;
                        s.last_error = Some(e.to_string());
                    }
                }
            }
            NotifierMsg::Tick => {}
        }
        self.pump(s);
        self.publish(s);
        Ok(())
    }
}

fn push(s: &mut NotifierState, alert: Alert) {
    if s.queue.len() >= MAX_QUEUE {
        s.queue.pop_front();
    }
    s.queue.push_back(alert);
}

impl Notifier {
    fn pump(&self, s: &mut NotifierState) {
        let Some(webhook) = self.settings.slack_webhook.clone() else {
            s.queue.clear();
            return;
        };
        if s.sending.is_some() {
            return;
        }
        let Some(alert) = s.queue.pop_front() else { return };
        let (http, mailbox) = (self.ctx.http.clone(), self.mailbox.clone());
        s.sending = Some(InFlightTask::spawn(async move {
            let result = notify::post(&http, &webhook, &alert).await;
            mailbox.deliver(NotifierMsg::Sent(result)).await;
        }));
    }

    fn publish(&self, s: &NotifierState) {
        self.ctx.board.notifier.publish(NotifierStatus {
            enabled: self.settings.slack_webhook.is_some(),
            state: if s.sending.is_some() { "sending" } else { "idle" },
            queue_length: s.queue.len(),
            sent: s.sent,
            failed: s.failed,
            last_error: s.last_error.clone(),
            active_alerts: s.dedup.active().into_iter().map(AlertKind::as_str).collect(),
        });
    }
}

/// How actors raise alerts: logged at once, handed to the Notifier for Slack.
#[derive(Clone, Default)]
pub struct Alerts(pub(in crate::daemon) Mailbox<NotifierMsg>);

impl Alerts {
    /// Trouble of some kind: posted unless a repeat within the de-duplication window.
    pub fn alert(&self, kind: AlertKind, title: impl Into<String>, detail: impl Into<String>) {
        let (title, detail) = (title.into(), detail.into());
        tracing::error!(kind = kind.as_str(), %title, %detail, "alert");
        let _ = self.0.send(NotifierMsg::Raise { kind, title, detail });
    }

    /// The trouble of `kind` is over: posts "Resolved" if an alert of that kind was raised.
    pub fn resolve(&self, kind: AlertKind, detail: impl Into<String>) {
        let _ = self.0.send(NotifierMsg::Resolve { kind, detail: detail.into() });
    }

    /// News rather than trouble (start-up, a proved block): always posted.
    pub fn info(&self, title: impl Into<String>, detail: impl Into<String>) {
        let (title, detail) = (title.into(), detail.into());
        tracing::info!(%title, "notice");
        let _ = self.0.send(NotifierMsg::Info { title, detail });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::extract::State;
    use axum::routing::post;
    use ractor::Actor;

    use super::*;
    use crate::daemon::Alerts;
    use crate::daemon::test_support::{context, serve, wait};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_repeated_alert_is_posted_once_and_its_resolution_once() {
        let posts: Arc<Mutex<Vec<String>>> = Arc::default();
        async fn hook(State(posts): State<Arc<Mutex<Vec<String>>>>, body: String) -> &'static str {
            posts.lock().unwrap().push(body);
            "ok"
        }
        let url = serve(axum::Router::new().route("/", post(hook)).with_state(posts.clone())).await;
        let dir = tempfile::tempdir().unwrap();
        let (ctx, settings) = context(dir.path(), "http://127.0.0.1:9", &["--slack-webhook", &url]);
        let board = ctx.board.clone();
        let mailbox = Mailbox::default();
        let (actor, _) =
            Actor::spawn(None, Notifier { ctx, settings: settings.notifier, mailbox: mailbox.clone() }, ())
                .await
                .unwrap();
        mailbox.set(Some(actor.clone()));
        let alerts = Alerts(mailbox);
        alerts.alert(AlertKind::RpcDown, "node down", "refused");
        alerts.alert(AlertKind::RpcDown, "node down", "refused again");
        wait("the first post", || posts.lock().unwrap().len() == 1).await;
        alerts.resolve(AlertKind::RpcDown, "back");
        alerts.resolve(AlertKind::ProverStuck, "never raised: no message");
        wait("the resolution", || posts.lock().unwrap().len() == 2).await;
        // The second post's answer arrives after every alert above was heard (the Notifier's
        // mailbox is in order): idle with nothing queued then, nothing more is posted.
        let status = || board.notifier.fresh();
        let done = || status().is_some_and(|s| (s.sent, s.queue_length, s.state) == (2, 0, "idle"));
        wait("both posts answered, nothing queued", done).await;
        let posts = posts.lock().unwrap().clone();
        assert_eq!(posts.len(), 2, "{posts:?}");
        assert!(posts[0].contains("node down") && posts[1].contains("Resolved"), "{posts:?}");
        actor.stop(None);
    }
}
