//! The checks `build` runs before anything starts: the node rides out a brief outage, the ELF
//! is a RISC-V guest of the ethrex this build writes inputs for, cargo-zisk's version is known,
//! verification can be honoured, and the EthProofs key sees its cluster.

use std::future::Future;
use std::time::Duration;

use super::StartupError;
use crate::block::verify::{Facts, KeySource, ProofCheck, vk_hex};
use crate::block::zisk::ZiskVersion;
use crate::config::{Config, ConfigError, ProverBackend, ZiskAction, ZiskVersionSetting};
use crate::outside::chain::ChainError;
use crate::runtime::backoff::Backoff;

/// Node calls at start-up ride out a node that is briefly unavailable.
/// Start-up's node calls: three more tries, 2 s apart (a node starting beside the daemon).
const AT_START: Backoff = Backoff::steady(Duration::from_secs(2));

pub(super) async fn retry_transient<T, F, Fut>(f: F) -> Result<T, ChainError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, ChainError>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && attempt < 3 => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "node call failed at start-up; retrying");
                tokio::time::sleep(AT_START.after(attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The guest ELF, read only once its size is known to be a guest's, and refused unless its header
/// says RV64 (`/bin/true` or a truncated download is a configuration error, exit 2).
pub(super) fn read_guest(path: &std::path::Path) -> Result<Vec<u8>, StartupError> {
    let refuse = |message: String| StartupError::from(ConfigError { variable: "ELF_PATH", message });
    let len = std::fs::metadata(path).map_err(|e| refuse(format!("cannot read {}: {e}", path.display())))?.len();
    if len > crate::block::elf::MAX_ELF_BYTES {
        return Err(refuse(format!("{}: {}", path.display(), crate::block::elf::NotAGuest::TooLarge(len))));
    }
    let bytes = std::fs::read(path).map_err(|e| refuse(format!("cannot read {}: {e}", path.display())))?;
    crate::block::elf::check_guest_header(&bytes)
        .map_err(|e| refuse(format!("{} is not a ZisK guest: {e}", path.display())))?;
    Ok(bytes)
}

/// Reads what the ELF was built from, says it, and refuses an ELF whose ethrex writes another
/// input layout (unless `ALLOW_ELF_MISMATCH`); a ziskos of another line than cargo-zisk is a warning.
pub(super) fn check_elf(
    config: &Config,
    bytes: &[u8],
    zisk_version: ZiskVersion,
) -> Result<crate::block::elf::Fingerprint, StartupError> {
    let fp = crate::block::elf::fingerprint(bytes);
    tracing::info!(
        elf = %config.elf_path.display(),
        sha256 = %fp.sha256,
        ethrex = %fp.ethrex.describe(),
        ziskos = %fp.ziskos.describe(),
        "guest ELF"
    );
    if let Err(mismatch) = crate::block::elf::check_layout(&fp, &config.elf_path.display().to_string()) {
        if !config.allow_elf_mismatch {
            return Err(ConfigError { variable: "ELF_PATH", message: mismatch.to_string() }.into());
        }
        tracing::warn!(%mismatch, "ALLOW_ELF_MISMATCH=true: starting anyway");
    }
    if config.prover_backend == ProverBackend::Cli
        && let Some(warning) = crate::block::elf::ziskos_mismatch(&fp, zisk_version)
    {
        tracing::warn!("{warning}");
    }
    Ok(fp)
}

/// Whether and how each proof is verified, said once at start-up (`verify::decide`): for which
/// program key (from `PROGRAM_VK`, cargo-zisk's set-up cache for this ELF, or the coordinator's
/// set-up) and which output layout (`GUEST_OUTPUT`, or the ELF's ziskos). With reporting on, a
/// proof that cannot be checked for this program and block refuses the start, naming the setting.
pub(super) fn verification(
    config: &Config,
    zisk_version: ZiskVersion,
    elf: Option<(&[u8], &crate::block::elf::Fingerprint)>,
) -> Result<Option<ProofCheck>, StartupError> {
    let proving = config.zisk_action == ZiskAction::Prove;
    let coordinator = config.prover_backend == ProverBackend::Coordinator;
    let layout = crate::block::elf::output_layout(config.guest_output, elf.map(|(_, fp)| fp));
    let facts = Facts::gather(config.program_vk, coordinator, elf.map(|(bytes, _)| bytes), layout);
    let check = crate::block::verify::decide(
        config.verify_proofs,
        proving,
        config.reports_to_ethproofs(),
        zisk_version.major,
        facts,
    )
    .map_err(|r| ConfigError { variable: r.variable, message: r.message })?;
    match (&check, proving) {
        (_, false) => {}
        (None, true) => tracing::warn!(
            zisk = %zisk_version,
            "proofs are not verified (VERIFY_PROOFS=off, or a ZisK 0.x prover with reporting off): a proof of another block or program would be reported"
        ),
        (Some(c), true) => tracing::info!(
            program_vk = %c.program_vk.as_ref().map(vk_hex).unwrap_or_else(|| "any program".into()),
            key_from = %c.key_source.as_ref().map(KeySource::describe).unwrap_or_else(|| "nowhere (reporting is off)".into()),
            output_layout = c.layout.map_or("not compared (reporting is off)", |l| l.as_str()),
            "every proof is verified before it is accepted"
        ),
    }
    Ok(check)
}

/// What proves, in words: `cargo-zisk 0.16.0`, `ZisK coordinator http://…`, `native re-execution`.
pub fn prover_label(config: &Config, zisk_version: ZiskVersion) -> String {
    match (config.zisk_action, config.prover_backend) {
        (ZiskAction::Native, _) => "native re-execution (no ZisK)".to_string(),
        (_, ProverBackend::Cli) => format!("cargo-zisk {zisk_version}"),
        (_, ProverBackend::Coordinator) => {
            format!("ZisK coordinator {}", crate::outside::chain::scrub_urls(&config.coordinator_url))
        }
    }
}

pub(super) async fn detect_zisk(config: &Config) -> Result<ZiskVersion, StartupError> {
    if config.prover_backend == ProverBackend::Coordinator && config.zisk_action != ZiskAction::Native {
        // The coordinator's API is 1.x: it reads inputs framed as ZisK 0.16 and later do, and
        // this machine need not have cargo-zisk at all.
        return match config.zisk_version {
            ZiskVersionSetting::Auto | ZiskVersionSetting::Fixed { major: 1, .. } => {
                Ok(ZiskVersion { major: 1, minor: 0, patch: 0 })
            }
            ZiskVersionSetting::Fixed { .. } => Err(ConfigError {
                variable: "ZISK_VERSION",
                message: "the coordinator backend speaks ZisK 1.x; set ZISK_VERSION=1 or auto".into(),
            }
            .into()),
        };
    }
    let cargo_zisk = |message: String| StartupError::from(ConfigError { variable: "CARGO_ZISK", message });
    match config.zisk_version {
        // Without ZisK the inputs are framed as the current CLI reads them.
        ZiskVersionSetting::Auto if config.zisk_action == ZiskAction::Native => {
            Ok(ZiskVersion { major: 1, minor: 0, patch: 0 })
        }
        ZiskVersionSetting::Fixed { major, minor } => {
            // A fixed version spares the `--version` call, not the binary: without it every target
            // would fail at its first run.
            if config.zisk_action != ZiskAction::Native {
                executable(&config.cargo_zisk, "CARGO_ZISK to the cargo-zisk binary")
                    .map_err(|e| cargo_zisk(e.to_string()))?;
            }
            Ok(ZiskVersion { major, minor, patch: 0 })
        }
        ZiskVersionSetting::Auto => match crate::block::zisk::detect(&config.cargo_zisk).await {
            Ok(v) => Ok(v),
            Err(e @ crate::block::zisk::ZiskError::VersionTimeout { .. }) => Err(StartupError::Zisk(e.to_string())),
            Err(e) => Err(cargo_zisk(e.to_string())),
        },
    }
}

/// A `ZISKEMU` the operator named must be there: `INPUT_CHECK=emulate` would otherwise fail every
/// target at its first check.
pub(super) fn check_emulator(config: &Config) -> Result<(), StartupError> {
    let cli = config.prover_backend == ProverBackend::Cli && config.zisk_action != ZiskAction::Native;
    match &config.ziskemu {
        Some(path) if cli && config.input_check.emulate() => executable(path, "ZISKEMU to ZisK's emulator")
            .map(|_| ())
            .map_err(|e| ConfigError { variable: "ZISKEMU", message: e.to_string() }.into()),
        _ => Ok(()),
    }
}

/// Why a program setting names nothing that runs; `set` says what to set instead.
#[derive(Debug, thiserror::Error)]
enum NotRunnable {
    #[error("{program} is not on PATH; install ZisK or set {set}")]
    NotOnPath { program: String, set: &'static str },
    #[error("{program} is not an executable file; set {set}")]
    NotAFile { program: String, set: &'static str },
}

/// `program` is an executable file: a path as given, or a bare name found on `PATH`. `set` says
/// what to set instead (`CARGO_ZISK to the cargo-zisk binary`).
fn executable(program: &std::path::Path, set: &'static str) -> Result<std::path::PathBuf, NotRunnable> {
    crate::outside::process::resolve_program(program).ok_or_else(|| {
        let shown = program.display().to_string();
        match program.components().count() {
            1 if !program.is_absolute() => NotRunnable::NotOnPath { program: shown, set },
            _ => NotRunnable::NotAFile { program: shown, set },
        }
    })
}

/// With reporting configured, the key must see the cluster. Definite answers (a refused key, a
/// cluster the team does not have) stop the daemon unless ETHPROOFS_STRICT_STARTUP=false; an
/// unreachable API does not, since the outbox rides out outages.
pub(super) async fn check_ethproofs(config: &Config, http: &reqwest::Client) -> Result<(), StartupError> {
    let Some(e) = &config.ethproofs else { return Ok(()) };
    let client = crate::outside::ethproofs::EthProofsClient::new(http.clone(), e.clone());
    match client.check_cluster().await {
        Ok(()) => {
            tracing::info!(cluster_id = e.cluster_id, "EthProofs key and cluster checked");
            Ok(())
        }
        Err(crate::outside::ethproofs::ClusterCheck::Unreachable(reason)) => {
            tracing::warn!(%reason, "cannot reach EthProofs to check the key and cluster; starting anyway");
            Ok(())
        }
        Err(problem) if config.ethproofs_strict_startup => Err(StartupError::EthProofs(problem)),
        Err(problem) => {
            tracing::warn!(problem = %problem, "EthProofs start-up check failed; starting anyway (ETHPROOFS_STRICT_STARTUP=false)");
            Ok(())
        }
    }
}
