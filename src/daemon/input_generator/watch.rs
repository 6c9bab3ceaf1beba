//! The InputGenerator's two watches: whether the node answers the head poll (alerting after a
//! minute down, resolving when it is back), and whether OUTPUT_DIR has room for new work.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::daemon::{Alerts, Context, InputSettings};
use crate::outside::chain::ChainError;
use crate::outside::notify::AlertKind;

/// The node failing this long raises an alert.
const RPC_DOWN_ALERT_AFTER: Duration = Duration::from_secs(60);

/// The node as the head poll sees it.
#[derive(Default)]
pub struct NodeWatch {
    down_since: Option<Instant>,
    alerted: bool,
    /// The last failure: in our words, and whole.
    last_error: Option<(String, String)>,
}

impl NodeWatch {
    pub fn ok(&mut self, ctx: &Context, alerts: &Alerts) {
        if let Some(since) = self.down_since.take()
            && std::mem::take(&mut self.alerted)
        {
            alerts.resolve(
                AlertKind::RpcDown,
                format!("{} reachable again after {}s down", ctx.node.endpoint(), since.elapsed().as_secs()),
            );
        }
        self.last_error = None;
    }

    pub fn failed(&mut self, alerts: &Alerts, error: &ChainError) {
        let reason = error.to_string();
        tracing::warn!(%reason, "polling the head failed");
        crate::runtime::telemetry::rpc_error("head", error.label());
        let since = *self.down_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= RPC_DOWN_ALERT_AFTER && !self.alerted {
            self.alerted = true;
            alerts.alert(AlertKind::RpcDown, "Ethereum node unreachable for 60 s", reason.clone());
        }
        self.last_error = Some((error.summary(), reason));
    }

    /// How long the head poll has been failing, if it is.
    pub fn failing_for(&self) -> Option<Duration> {
        self.down_since.map(|since| since.elapsed())
    }

    /// The last failure in our words (public), and whole (for `/admin/status`).
    pub fn last_error(&self) -> (Option<String>, Option<String>) {
        match &self.last_error {
            Some((summary, whole)) => (Some(summary.clone()), Some(whole.clone())),
            None => (None, None),
        }
    }
}

/// Pauses new work while OUTPUT_DIR is short of space, and resumes it when space returns.
pub fn check_disk(ctx: &Context, settings: &InputSettings, alerts: &Alerts) {
    let min = settings.min_free_disk_mb;
    let Some(free) = crate::runtime::disk::free_mb(&settings.output_dir) else { return };
    let low = free < min;
    let was_low = ctx.disk_low.swap(low, Ordering::SeqCst);
    if low && !was_low {
        alerts.alert(
            AlertKind::DiskLow,
            "Disk low: new work paused",
            format!("{} has {free} MB free, below MIN_FREE_DISK_MB = {min}", settings.output_dir.display()),
        );
    } else if was_low && !low {
        alerts.resolve(AlertKind::DiskLow, format!("{free} MB free again; work resumes"));
    }
}
