//! The commands that talk to a running daemon's admin API (`status`, `prove`, `resubmit`,
//! `cancel`, `pause`, `resume`): one call each, a refusal said in words an operator can act on,
//! and `status` as a few lines a person reads.

use anyhow::bail;
use clap::Args;

#[derive(Args)]
pub(crate) struct ClientArgs {
    /// The daemon's address. Default: `status` without a token reads the public `/health` on
    /// 127.0.0.1:HEALTH_PORT; the admin commands (and `status` with a token) use 127.0.0.1:ADMIN_PORT.
    #[arg(long, env = "ETHPROOFS_DAEMON_URL")]
    pub(crate) url: Option<String>,
    /// The daemon's admin token (the daemon's own ADMIN_TOKEN).
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<ethproofs_daemon::config::Secret>,
    /// The daemon's HEALTH_PORT, for the default address.
    #[arg(long, env = "HEALTH_PORT", default_value = "4000")]
    pub(crate) health_port: u16,
    /// The daemon's ADMIN_PORT, for the default address.
    #[arg(long, env = "ADMIN_PORT", default_value = "4001")]
    pub(crate) admin_port: u16,
}

#[derive(Args)]
pub(crate) struct StatusArgs {
    /// The whole /health document (with ADMIN_TOKEN: /admin/status), as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

#[derive(Args)]
pub(crate) struct ProveArgs {
    /// The block to prove.
    #[arg(conflicts_with_all = ["start", "count", "latest"], required_unless_present_any = ["start", "latest"])]
    pub(crate) block: Option<u64>,
    /// The N newest targets (multiples of the daemon's BLOCK_INTERVAL at or below its head).
    #[arg(long, conflicts_with_all = ["start", "count"])]
    pub(crate) latest: Option<u64>,
    /// First block of a range.
    #[arg(long, requires = "count")]
    pub(crate) start: Option<u64>,
    /// How many blocks from --start.
    #[arg(long, requires = "start")]
    pub(crate) count: Option<u64>,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// One block of a running daemon (`resubmit`, `cancel`).
#[derive(Args)]
pub(crate) struct ResubmitArgs {
    pub(crate) block: u64,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// `prove`: one block, a range, or the newest targets.
pub(crate) fn prove(p: ProveArgs) -> anyhow::Result<()> {
    match (p.block, p.start, p.count) {
        _ if p.latest.is_some() => client(p.client, "POST", format!("/admin/prove?latest={}", p.latest.unwrap_or(1))),
        (Some(n), _, _) => client(p.client, "POST", format!("/admin/prove/{n}")),
        (None, Some(start), Some(count)) => {
            client(p.client, "POST", format!("/admin/prove?start={start}&count={count}"))
        }
        _ => Err(anyhow::anyhow!("give a block number, or --start and --count")),
    }
}

/// One call to a running daemon; prints its JSON answer, fails on a non-2xx status
/// (`status` prints the document even when the daemon answers 503: that is its content).
pub(crate) fn client(args: ClientArgs, method: &str, path: String) -> anyhow::Result<()> {
    let (status, body) = call(&args, method, &path)?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    if (200..300).contains(&status) { Ok(()) } else { bail!("{}", refusal(&args, &path, status, &body)) }
}

/// What to set so that an admin command works, said whenever one cannot.
const ADMIN_HINT: &str = "set ADMIN_TOKEN (or --token) here to the daemon's ADMIN_TOKEN; a daemon started without one has no admin API (start it with one, e.g. `ADMIN_TOKEN=$(openssl rand -hex 16) cargo run --release -- run --dev`, and use the same value here)";

/// Where the command goes: `--url` as given, else the admin port for `/admin/*`, else the public
/// port (`status` without a token reads the same `/health` the dashboard does).
fn base_url(args: &ClientArgs, path: &str) -> String {
    match &args.url {
        Some(url) => url.clone(),
        None if path.starts_with("/admin/") => format!("http://127.0.0.1:{}", args.admin_port),
        None => format!("http://127.0.0.1:{}", args.health_port),
    }
}

fn call(args: &ClientArgs, method: &str, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    if path.starts_with("/admin/") && args.token.is_none() {
        bail!("this command needs the daemon's admin API: {ADMIN_HINT}");
    }
    let base = base_url(args, path);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(ethproofs_daemon::http::admin::call(&base, args.token.as_ref(), method, path)).map_err(|e| {
        let hint = match (&args.url, path.starts_with("/admin/")) {
            (Some(_), _) => "is the daemon running, and is that its address?".to_string(),
            (None, true) => format!(
                "is the daemon running with ADMIN_TOKEN set? Its admin API listens on ADMIN_HOST:ADMIN_PORT (here port {}); set ADMIN_PORT or --url to its address",
                args.admin_port
            ),
            (None, false) => format!(
                "is the daemon running? `status` reads /health on 127.0.0.1:HEALTH_PORT (here {}); set HEALTH_PORT, or --url (ETHPROOFS_DAEMON_URL) to the daemon's address",
                args.health_port
            ),
        };
        anyhow::anyhow!("{e}; {hint}")
    })
}

/// Why the daemon said no, in words an operator can act on.
fn refusal(args: &ClientArgs, path: &str, status: u16, body: &serde_json::Value) -> String {
    let said = body.get("error").and_then(|e| e.as_str()).map(str::to_string).unwrap_or_else(|| body.to_string());
    match status {
        404 if !path.starts_with("/admin/") => format!(
            "{} serves no {path}: is it the daemon's HEALTH_PORT? (--url or ETHPROOFS_DAEMON_URL to point elsewhere)",
            ethproofs_daemon::outside::chain::redact_url(&base_url(args, path))
        ),
        404 => format!(
            "{} has no admin API: {ADMIN_HINT} (it listens on ADMIN_HOST:ADMIN_PORT, 127.0.0.1:4001 by default)",
            ethproofs_daemon::outside::chain::redact_url(&base_url(args, "/admin/"))
        ),
        401 => "the daemon refused the admin token (ADMIN_TOKEN differs from the daemon's)".to_string(),
        409 => format!("nothing done: {said}"),
        _ => format!("the daemon answered HTTP {status}: {said}"),
    }
}

/// `status`: a few lines a person reads; `--json` prints the whole document.
pub(crate) fn status(args: ClientArgs, json: bool) -> anyhow::Result<()> {
    let path = if args.token.is_some() { "/admin/status" } else { "/health" };
    let (code, doc) = call(&args, "GET", path)?;
    if !(200..300).contains(&code) && code != 503 {
        bail!("{}", refusal(&args, path, code, &doc));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    for line in status_lines(&doc) {
        println!("{line}");
    }
    Ok(())
}

/// Missed targets: how many, and the latest with its stage and reason.
fn missed_line(input: &serde_json::Value) -> String {
    let count = input["missed_count"].as_u64().unwrap_or(0);
    // Oldest first, as every recent list in the document.
    match input["missed_blocks"].as_array().and_then(|m| m.last()) {
        Some(last) if count > 0 => format!(
            "missed targets: {count} · latest block {} at {}: {}",
            last["block"],
            last["stage"].as_str().unwrap_or("?"),
            last["reason"].as_str().unwrap_or("?")
        ),
        _ => format!("missed targets: {count}"),
    }
}

/// A `/health` value as a status line says it: `–` for nothing, a string without its quotes.
fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "–".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The `/health` document in a few lines.
pub(crate) fn status_lines(doc: &serde_json::Value) -> Vec<String> {
    let c = &doc["components"];
    let (input, prover, reporter) = (&c["input_generator"], &c["prover"], &c["reporter"]);
    let mut lines = vec![format!(
        "{} · v{} · {} · up {} s{}",
        text(&doc["status"]),
        text(&doc["version"]),
        text(&doc["chain"]["name"]),
        text(&doc["uptime_seconds"]),
        if doc["paused"] == true { format!(" · PAUSED by {}", text(&doc["pause"]["by"])) } else { String::new() }
    )];
    // Why, on its own line: who paused it and what lets work start again.
    if let Some(reason) = doc["pause"]["reason"].as_str() {
        lines.push(reason.to_string());
    }
    lines.push(format!(
        "head {} · next target {} · inputs queued {}",
        text(&input["head"]),
        text(&input["next_target"]),
        text(&input["queue_length"])
    ));
    let mut p = format!(
        "prover: {} ({}, {}) · blocks proved {} · executed {} · failed {} · queued {} · runs since start {}",
        text(&prover["state"]),
        text(&prover["backend"]),
        text(&prover["action"]),
        text(&prover["proved_count"]),
        text(&prover["executed_count"]),
        text(&prover["failed_count"]),
        text(&prover["queue_length"]),
        ["proved", "executed", "failed"].iter().map(|k| prover["runs"][k].as_u64().unwrap_or(0)).sum::<u64>()
    );
    let runs = prover["in_flight"].as_array().map_or(&[][..], Vec::as_slice);
    if runs.len() > 1 {
        // Several runs at once: every block, its GPU and its time.
        let each: Vec<String> = runs
            .iter()
            .map(|r| {
                let gpu = r["gpu"].as_str().map_or(String::new(), |g| format!(" on GPU {g}"));
                format!("block {}{gpu} for {} s", text(&r["block"]), text(&r["seconds"]))
            })
            .collect();
        p += &format!(" · {} of {} runs: {}", runs.len(), text(&prover["lanes"]), each.join(", "));
    } else if !prover["proving_block"].is_null() {
        p +=
            &format!(" · block {} for {} s", text(&prover["proving_block"]), text(&prover["proving_duration_seconds"]));
    }
    if !prover["phase"].is_null() {
        p += &format!(" · phase {} {} s", text(&prover["phase"]), text(&prover["phase_seconds"]));
    }
    lines.push(p);
    lines.push(if reporter["enabled"] == true {
        format!(
            "EthProofs: {} · delivered {} · pending {}{}",
            text(&reporter["state"]),
            text(&reporter["delivered_count"]),
            text(&reporter["queue_length"]),
            reporter["last_error"].as_str().map_or(String::new(), |e| format!(" · last error: {e}"))
        )
    } else {
        "EthProofs: reporting off".to_string()
    });
    if let Some(line) = cohort_line(&doc["cohort"]) {
        lines.push(line);
    }
    lines.push(missed_line(input));
    lines.push(format!(
        "ELF sha256 {} · ethrex {} · ziskos {}",
        text(&doc["elf"]["sha256"]),
        text(&doc["elf"]["ethrex"]),
        text(&doc["elf"]["ziskos"])
    ));
    if let Some(failed) = prover["recent_failed"].as_array().and_then(|f| f.last()) {
        lines.push(format!(
            "last failure: block {} at {}: {}",
            text(&failed["block"]),
            text(&failed["stage"]),
            text(&failed["reason"])
        ));
    }
    lines
}

/// The cohort scoreboard in one line: the last hour's and day's shares against the bars.
fn cohort_line(c: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    let pct = |v: &Value| v.as_f64().map_or("–".to_string(), |v| format!("{:.1} %", v * 100.0));
    let window = |f: &Value| {
        let cost = f["avg_cost_per_proof"].as_f64().map_or(String::new(), |c| format!(" · {c:.3} per proof"));
        format!(
            "{} in time · {} proved · {} paralyzed{cost} ({} blocks)",
            pct(&f["share_in_time"]),
            pct(&f["share_proved"]),
            text(&f["paralyzed"]),
            text(&f["counted"])
        )
    };
    let bars = match c["proved_bar"].is_null() {
        true => format!("{} in time", pct(&c["in_time_bar"])),
        false => format!("{} in time, {} proved", pct(&c["in_time_bar"]), pct(&c["proved_bar"])),
    };
    Some(format!(
        "cohort {} (under {} s; bars {bars}): last hour {} · last day {}",
        c["cohort"].as_str()?,
        c["deadline_seconds"].as_f64()?,
        window(&c["last_hour"]),
        window(&c["last_day"])
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn status_says_the_cohort_s_figures_against_its_bars() {
        let doc = serde_json::json!({
            "status": "healthy",
            "cohort": {
                "cohort": "real-time", "deadline_seconds": 10.0, "in_time_bar": 0.7, "proved_bar": 0.95,
                "last_hour": {"counted": 300, "share_in_time": 0.9, "share_proved": 0.99, "paralyzed": 0, "avg_cost_per_proof": 0.0876},
                "last_day": {"counted": 7000, "share_in_time": 0.655, "share_proved": 0.97, "paralyzed": 4, "avg_cost_per_proof": null},
            }
        });
        let lines = super::status_lines(&doc);
        let line = lines.iter().find(|l| l.starts_with("cohort ")).expect("a cohort line");
        assert_eq!(
            line,
            "cohort real-time (under 10 s; bars 70.0 % in time, 95.0 % proved): last hour 90.0 % in time · 99.0 % proved · \
             0 paralyzed · 0.088 per proof (300 blocks) · last day 65.5 % in time · 97.0 % proved · 4 paralyzed (7000 blocks)"
        );
        let none = super::status_lines(&serde_json::json!({"status": "healthy", "cohort": null}));
        assert!(!none.iter().any(|l| l.starts_with("cohort")), "no cohort, no line");
    }
}
