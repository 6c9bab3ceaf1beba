//! How the board judges the input stage. `/health` calls the InputGenerator degraded only when
//! the head has not advanced for five minutes (readiness turns on it), so a build that never
//! ends, or a node that stopped answering a minute ago, still read "healthy" there; the board
//! shows such a stage as not healthy, in words, from the figures `/health` carries.

use serde_json::{Value, json};

/// A build running longer than this is stuck: a build is two node fetches, each retried for at
/// most `NODE_RETRY_SECONDS` (two minutes by default), and seconds of native execution.
const BUILD_STUCK_AFTER_SECONDS: u64 = 600;
/// With no believed head this long after the start, the node is not giving the daemon a chain.
const NO_HEAD_AFTER_SECONDS: u64 = 60;

/// `{health, state, why}` of the input stage, from `/health`'s `input_generator` component.
pub fn input(component: &Value, uptime_seconds: u64) -> Value {
    let state = component["state"].as_str().unwrap_or("unknown");
    let building = component["building_seconds"].as_u64().filter(|s| *s >= BUILD_STUCK_AFTER_SECONDS);
    let (health, shown, why) = if component["status"] == "unhealthy" {
        ("unhealthy", "not responding", Some("the input generator has not published its status for 10 s".to_string()))
    } else if let Some(secs) = building {
        let block = component["building_block"].as_u64().map_or("?".to_string(), |b| b.to_string());
        ("degraded", "stuck", Some(format!("building block {block} for {}", span(secs))))
    } else if let Some(error) = component["rpc_error"].as_str() {
        let failing = component["rpc_failing_seconds"].as_u64().map_or(String::new(), |s| format!(" for {}", span(s)));
        ("degraded", "node failing", Some(format!("the node's head poll fails{failing}: {error}")))
    } else if component["status"] != "healthy" {
        let age = component["head_age_seconds"].as_u64().map_or(String::new(), |s| format!(" for {}", span(s)));
        ("degraded", "head stalled", Some(format!("the chain head has not advanced{age}")))
    } else if component["head"].is_null() && uptime_seconds >= NO_HEAD_AFTER_SECONDS && state == "polling" {
        ("degraded", "no head", Some(format!("no chain head believed after {}", span(uptime_seconds))))
    } else {
        ("healthy", state, None)
    };
    json!({"health": health, "state": shown, "why": why})
}

/// The worse of two health words (`healthy` < `degraded` < `unhealthy`).
pub fn worse<'a>(a: &'a str, b: &'a str) -> &'a str {
    let rank = |s: &str| match s {
        "healthy" => 0,
        "degraded" => 1,
        _ => 2,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// A span of seconds in words ("42 s", "15 min", "1 h 5 min").
fn span(seconds: u64) -> String {
    crate::runtime::status::human_ms(seconds.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn polling() -> Value {
        json!({"status": "healthy", "state": "polling", "head": 100, "head_age_seconds": 3})
    }

    #[test]
    fn a_stage_that_polls_and_builds_in_time_is_healthy() {
        assert_eq!(input(&polling(), 5000)["health"], "healthy");
        let mut building = polling();
        building["state"] = "building".into();
        building["building_block"] = 100.into();
        building["building_seconds"] = (BUILD_STUCK_AFTER_SECONDS - 1).into();
        assert_eq!(input(&building, 5000), json!({"health": "healthy", "state": "building", "why": null}));
    }

    #[test]
    fn a_build_that_never_ends_is_stuck() {
        let mut c = polling();
        c["state"] = "building".into();
        c["building_block"] = 100.into();
        c["building_seconds"] = 900.into();
        let v = input(&c, 5000);
        assert_eq!((v["health"].as_str(), v["state"].as_str()), (Some("degraded"), Some("stuck")));
        assert_eq!(v["why"], "building block 100 for 15 min");
    }

    #[test]
    fn a_failing_node_a_stalled_head_or_no_head_is_not_healthy() {
        let mut c = polling();
        c["state"] = "rpc_error".into();
        c["rpc_error"] = "the node answered HTTP 500".into();
        c["rpc_failing_seconds"] = 42.into();
        let v = input(&c, 5000);
        assert_eq!((v["health"].as_str(), v["state"].as_str()), (Some("degraded"), Some("node failing")));
        assert_eq!(v["why"], "the node's head poll fails for 42 s: the node answered HTTP 500");

        let mut c = polling();
        c["status"] = "degraded".into();
        c["head_age_seconds"] = 400.into();
        assert_eq!(input(&c, 5000)["why"], "the chain head has not advanced for 6 min 40 s");

        let mut c = polling();
        c["head"] = Value::Null;
        assert_eq!(input(&c, NO_HEAD_AFTER_SECONDS - 1)["health"], "healthy", "just started");
        assert_eq!(input(&c, NO_HEAD_AFTER_SECONDS)["state"], "no head");

        let v = input(&json!({"status": "unhealthy", "state": "not_responding"}), 5000);
        assert_eq!((v["health"].as_str(), v["state"].as_str()), (Some("unhealthy"), Some("not responding")));
    }

    #[test]
    fn the_worse_health_wins() {
        assert_eq!(worse("healthy", "degraded"), "degraded");
        assert_eq!(worse("unhealthy", "degraded"), "unhealthy");
        assert_eq!(worse("healthy", "healthy"), "healthy");
    }
}
