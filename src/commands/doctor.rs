//! `ethproofs-daemon doctor`: checks everything the daemon depends on, one line per check, with
//! the reason when something is wrong. It changes nothing (a Slack test message only on request).

use std::time::Duration;

use crate::block::chainspec::ChainSpec;
use crate::block::zisk::{ZiskError, ZiskVersion};
use crate::config::Config;
use crate::outside::chain::NodeClient;
use crate::outside::ethproofs::{ClusterCheck, EthProofsClient};

#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    /// `None`: not applicable (e.g. EthProofs not configured).
    pub ok: Option<bool>,
    pub detail: String,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check { name, ok: Some(true), detail: detail.into() }
    }
    fn fail(name: &'static str, detail: impl Into<String>) -> Check {
        Check { name, ok: Some(false), detail: detail.into() }
    }
    fn skip(name: &'static str, detail: impl Into<String>) -> Check {
        Check { name, ok: None, detail: detail.into() }
    }

    pub fn line(&self) -> String {
        let tag = match self.ok {
            Some(true) => "ok  ",
            Some(false) => "FAIL",
            None => "skip",
        };
        format!("{tag} {:<10} {}", self.name, self.detail)
    }
}

async fn node_checks(config: &Config, out: &mut Vec<Check>) {
    let node = match NodeClient::new(config.eth_rpc_url.expose(), Duration::from_secs(30)) {
        Ok(n) => n,
        Err(e) => return out.push(Check::fail("node", e.to_string())),
    };
    let chain_id = match node.chain_id().await {
        Ok(id) => id,
        Err(e) => return out.push(Check::fail("node", format!("unreachable: {e}"))),
    };
    let head = match node.block_number().await {
        Ok(h) => h,
        Err(e) => return out.push(Check::fail("node", format!("eth_blockNumber failed: {e}"))),
    };
    out.push(Check::pass("node", format!("{} reachable, chain id {chain_id}, head {head}", node.endpoint())));
    let spec = ChainSpec::select(config.chain_config.as_deref(), chain_id);
    match spec {
        Ok(s) => out.push(Check::pass("chain", format!("{} (chain id {})", s.name(), s.chain_id()))),
        Err(e) => out.push(Check::fail("chain", e.to_string())),
    }
    let target = crate::block::schedule::newest_target(head, config.block_interval);
    let witness = node.witness_json(target).await.map_err(|e| e.to_string()).and_then(|body| {
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
        if let Some(err) = v.get("error") {
            return Err(format!("JSON-RPC error {}", err));
        }
        match v.get("result") {
            Some(r) if r.get("state").is_some() => Ok(()),
            _ => Err("the answer has no witness (`result.state`)".into()),
        }
    });
    match witness {
        Ok(()) => out.push(Check::pass("witness", format!("debug_executionWitness answers for target {target}"))),
        Err(e) => out.push(Check::fail("witness", format!("debug_executionWitness({target}): {e}"))),
    }
}

/// What `cargo-zisk --version` said, asked once for every check that needs it.
type Detected = Result<ZiskVersion, ZiskError>;

fn zisk_check(config: &Config, detected: &Detected) -> Check {
    let program = &config.cargo_zisk;
    match detected.clone().and_then(|v| v.dialect().map(|_| v)) {
        Ok(v) => Check::pass(
            "cargo-zisk",
            format!(
                "{} is {v}: `{}` supported, inputs {}",
                program.display(),
                match config.zisk_action {
                    crate::config::ZiskAction::Prove => "prove",
                    crate::config::ZiskAction::Execute => "execute",
                    crate::config::ZiskAction::Native => "native",
                },
                v.framing()
            ),
        ),
        Err(e) => Check::fail("cargo-zisk", e.to_string()),
    }
}

/// Whether proofs will be verified before they are reported: for which program (and where its
/// key comes from) and with which output layout. `detected` is `None` where cargo-zisk is not
/// used (the coordinator, native).
fn verify_check(config: &Config, detected: Option<&Detected>) -> Check {
    use crate::block::verify::KeySource;
    let proving = config.zisk_action == crate::config::ZiskAction::Prove;
    let major = match detected {
        None => 1,
        Some(_) if !proving => 1,
        Some(Ok(v)) => v.major,
        Some(Err(_)) => return Check::skip("verify", "cargo-zisk's version is unknown (see above)"),
    };
    let elf = std::fs::read(&config.elf_path).ok();
    let fp = elf.as_deref().map(crate::block::elf::fingerprint);
    let coordinator = config.prover_backend == crate::config::ProverBackend::Coordinator;
    let layout = crate::block::elf::output_layout(config.guest_output, fp.as_ref());
    let facts = crate::block::verify::Facts::gather(config.program_vk, coordinator, elf.as_deref(), layout);
    let what = format!("zisk-verifier {}", crate::block::verify::VERIFIER_VERSION);
    match crate::block::verify::decide(config.verify_proofs, proving, config.reports_to_ethproofs(), major, facts) {
        Err(r) => Check::fail("verify", format!("{}: {}", r.variable, r.message)),
        Ok(None) if !proving => Check::skip("verify", "no proofs are made in this ZISK_ACTION"),
        Ok(None) => {
            Check::skip("verify", "off: proofs are reported without being verified (VERIFY_PROOFS=off, or ZisK 0.x)")
        }
        Ok(Some(check)) => {
            let program = match (&check.program_vk, &check.key_source) {
                (Some(vk), Some(source)) => {
                    format!("program {} (from {})", crate::block::verify::vk_hex(vk), source.describe())
                }
                (None, Some(KeySource::Coordinator)) => "the program key the coordinator's set-up answers".into(),
                _ => "any program (reporting is off; set PROGRAM_VK to pin the guest)".into(),
            };
            let outputs = match check.layout {
                Some(layout) => format!("outputs compared with each block ({} layout)", layout.as_str()),
                None => "outputs not compared (the layout is unknown and reporting is off)".into(),
            };
            Check::pass("verify", format!("{what} checks every proof: {program}; {outputs}"))
        }
    }
}

/// The coordinator: reachable, serving (gRPC health), and the ELF registered (registration is
/// idempotent: it returns the program's hash id) and set up (as the daemon's ledger recorded it).
async fn coordinator_checks(config: &Config, out: &mut Vec<Check>) {
    let client =
        match crate::outside::coordinator::Coordinator::new(&config.coordinator_url, config.coordinator_inline_limit) {
            Ok(c) => c,
            Err(e) => return out.push(Check::fail("coordinator", e.to_string())),
        };
    match client.serving().await {
        Ok(true) => out.push(Check::pass("coordinator", format!("{} reachable, gRPC health SERVING", client.url()))),
        Ok(false) => out.push(Check::fail("coordinator", format!("{} answers but is not SERVING", client.url()))),
        Err(e) => return out.push(Check::fail("coordinator", e.to_string())),
    }
    let elf = match std::fs::read(&config.elf_path) {
        Ok(elf) => elf,
        Err(e) => return out.push(Check::fail("program", format!("cannot read {}: {e}", config.elf_path.display()))),
    };
    let elf_sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&elf))
    };
    let hash_id = match client.register(elf).await {
        Ok(h) => h,
        Err(e) => return out.push(Check::fail("program", format!("cannot register the ELF: {e}"))),
    };
    let recorded = config
        .db_path
        .is_file()
        .then(|| crate::store::Ledger::open_read_only(&config.db_path).ok())
        .flatten()
        .and_then(|l| l.coordinator_program().ok().flatten())
        .filter(|p| p.elf_sha256 == elf_sha256 && p.hash_id == hash_id);
    match recorded {
        Some(p) if p.set_up => out.push(Check::pass("program", format!("ELF registered as {hash_id}, set up"))),
        _ => out.push(Check::pass(
            "program",
            format!(
                "ELF registered as {hash_id}; not yet set up by this daemon (it sets it up before its first proof)"
            ),
        )),
    }
}

/// The ELF: readable, an ELF, what it was built from, and whether its input layout is this
/// build's and its ziskos the installed cargo-zisk's line.
fn elf_checks(config: &Config, detected: Option<&Detected>, out: &mut Vec<Check>) {
    let path = config.elf_path.display().to_string();
    let bytes = match std::fs::read(&config.elf_path) {
        Ok(bytes) => match crate::block::elf::check_guest_header(&bytes) {
            Ok(()) => bytes,
            Err(e) => return out.push(Check::fail("elf", format!("{path} is not a ZisK guest: {e}"))),
        },
        Err(e) => return out.push(Check::fail("elf", format!("cannot read {path}: {e}"))),
    };
    let fp = crate::block::elf::fingerprint(&bytes);
    out.push(Check::pass(
        "elf",
        format!(
            "{path} ({} bytes) sha256 {}, built from ethrex {}, ziskos {}",
            fp.bytes,
            fp.sha256,
            fp.ethrex.describe(),
            fp.ziskos.describe()
        ),
    ));
    match crate::block::elf::check_layout(&fp, &path) {
        Ok(()) if fp.ethrex.version().is_none() => out.push(Check::skip(
            "layout",
            format!(
                "the ELF does not say which ethrex it was built from; this daemon writes ethrex {}'s inputs",
                crate::ETHREX_VERSION
            ),
        )),
        Ok(()) => out.push(Check::pass(
            "layout",
            format!("the ELF reads the inputs of ethrex {} as written here", crate::ETHREX_VERSION),
        )),
        Err(e) if config.allow_elf_mismatch => {
            out.push(Check::fail("layout", format!("{e} (ALLOW_ELF_MISMATCH=true lets the daemon start)")))
        }
        Err(e) => out.push(Check::fail("layout", e.to_string())),
    }
    if let Some(&Ok(v)) = detected {
        match crate::block::elf::ziskos_mismatch(&fp, v) {
            Some(warning) => out.push(Check::fail("ziskos", warning)),
            None if fp.ziskos.version().is_some() => {
                out.push(Check::pass("ziskos", format!("ziskos {} matches cargo-zisk {v}", fp.ziskos.describe())))
            }
            None => out.push(Check::skip(
                "ziskos",
                format!("ziskos {}: cannot compare with cargo-zisk {v}", fp.ziskos.describe()),
            )),
        }
    }
}

fn output_check(config: &Config) -> Check {
    let dir = &config.output_dir;
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Check::fail("output", format!("cannot create {}: {e}", dir.display()));
    }
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    if let Err(e) = std::fs::write(&probe, b"probe") {
        return Check::fail("output", format!("{} is not writable: {e}", dir.display()));
    }
    let _ = std::fs::remove_file(&probe);
    match crate::runtime::disk::free_mb(dir) {
        Some(free) if free < config.min_free_disk_mb => Check::fail(
            "output",
            format!("{} has {free} MB free, below MIN_FREE_DISK_MB = {}", dir.display(), config.min_free_disk_mb),
        ),
        Some(free) => Check::pass("output", format!("{} writable, {free} MB free", dir.display())),
        None => Check::pass("output", format!("{} writable (free space unknown)", dir.display())),
    }
}

async fn ethproofs_check(config: &Config, http: &reqwest::Client) -> Check {
    let Some(e) = &config.ethproofs else {
        return Check::skip("ethproofs", "not configured: nothing will be reported");
    };
    match EthProofsClient::new(http.clone(), e.clone()).check_cluster().await {
        Ok(()) => Check::pass("ethproofs", format!("key accepted, cluster {} exists", e.cluster_id)),
        Err(ClusterCheck::Unreachable(r)) => Check::fail("ethproofs", format!("unreachable: {r}")),
        Err(problem) => Check::fail("ethproofs", problem.to_string()),
    }
}

async fn slack_check(config: &Config, http: &reqwest::Client, notify: bool) -> Check {
    let Some(webhook) = &config.slack_webhook else { return Check::skip("slack", "not configured") };
    if !notify {
        return Check::pass("slack", "webhook URL well-formed (no message sent; --notify sends one)");
    }
    let alert = crate::outside::notify::Alert {
        severity: crate::outside::notify::Severity::Info,
        title: "ethproofs-daemon doctor: test message".into(),
        detail: "If you read this, alerts reach this channel.".into(),
    };
    match crate::outside::notify::post(http, webhook, &alert).await {
        Ok(()) => Check::pass("slack", "test message delivered"),
        Err(e) => Check::fail("slack", e.to_string()),
    }
}

/// Runs every check in order; the configuration has already been checked by parsing it.
/// The checks when the configuration itself is refused: that failure, and every other check
/// named as not run (one line per check, whatever happens).
pub fn without_config(error: &str) -> Vec<Check> {
    let mut checks = vec![Check::fail("config", error)];
    for name in ["node", "chain", "witness", "cargo-zisk", "elf", "verify", "ethproofs", "output", "slack"] {
        checks.push(Check::skip(name, "not checked: the configuration is refused (see above)"));
    }
    checks
}

pub async fn run(config: &Config, notify: bool) -> Vec<Check> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
    let mut checks = vec![Check::pass("config", "every variable is valid")];
    node_checks(config, &mut checks).await;
    let native = config.zisk_action == crate::config::ZiskAction::Native;
    let coordinator = config.prover_backend == crate::config::ProverBackend::Coordinator && !native;
    // cargo-zisk is asked once (each `--version` may take seconds), only where it is used.
    let detected =
        if native || coordinator { None } else { Some(crate::block::zisk::detect(&config.cargo_zisk).await) };
    if native {
        checks.push(Check::skip("cargo-zisk", "not used: ZISK_ACTION=native re-executes without ZisK"));
    } else if coordinator {
        checks.push(Check::skip("cargo-zisk", "not used: PROVER_BACKEND=coordinator"));
        coordinator_checks(config, &mut checks).await;
    }
    if let Some(detected) = &detected {
        checks.push(zisk_check(config, detected));
    }
    if native {
        checks.push(Check::skip("elf", "not used: ZISK_ACTION=native"));
    } else {
        elf_checks(config, detected.as_ref(), &mut checks);
    }
    checks.push(verify_check(config, detected.as_ref()));
    checks.push(ethproofs_check(config, &http).await);
    checks.push(output_check(config));
    checks.push(slack_check(config, &http, notify).await);
    checks
}
