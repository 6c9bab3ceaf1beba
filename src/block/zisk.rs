//! Everything that depends on the `cargo-zisk` version: which flags to pass, which framing the
//! input needs, and how to read the prover's figures and proof back.
//!
//! The table this encodes (from `../shared/reference/zisk-cli.md`):
//!
//! | line      | prove output             | figures from                                   | framing |
//! |-----------|--------------------------|------------------------------------------------|---------|
//! | 0.14/0.15 | `-o DIR -a -u`           | `DIR/result.json` `{cycles, id, time}`         | raw     |
//! | 0.16      | `-o DIR -a`              | stdout `Proof Time: <s> seconds`, `steps: <n>` | framed  |
//! | 0.17/0.18 | `-o FILE`                | stdout `Proof Time: <s> seconds`, `steps: <n>` | framed  |
//! | 1.x       | `-o FILE`                | stdout `Proof generated in <s>s, steps: <n>`   | framed  |
//!
//! `-a` means aggregation up to 0.16, `--no-aggregation` in 0.17/0.18 and `--asm` in 1.x, so it is
//! passed only where it means aggregation. Architecture invariant: no other module knows a flag.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::block::input::Framing;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZiskVersion {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl std::fmt::Display for ZiskVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ZiskError {
    #[error("cannot read a version from `cargo-zisk --version` output {0:?}")]
    UnreadableVersion(String),
    #[error("cargo-zisk {0} is not supported (supported: 0.14, 0.15, 0.16, 0.17, 0.18, 1.x)")]
    Unsupported(ZiskVersion),
    #[error("the prover exited successfully but wrote no proof: {0}")]
    MissingProof(String),
    #[error("the prover wrote an unreadable result file {path}: {reason}")]
    BadResult { path: String, reason: String },
    #[error("`{program} --version` did not answer in 30 s")]
    VersionTimeout { program: String },
    #[error(
        "cannot run `{program} --version` ({reason}); set CARGO_ZISK to the cargo-zisk binary (ZISK_ACTION=native or PROVER_BACKEND=coordinator need none)"
    )]
    NotRunnable { program: String, reason: String },
}

/// Asks `program --version` which cargo-zisk it is: the one place that does.
pub async fn detect(program: &Path) -> Result<ZiskVersion, ZiskError> {
    let run = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::process::Command::new(program).arg("--version").kill_on_drop(true).output(),
    )
    .await;
    let output = match run {
        Err(_) => return Err(ZiskError::VersionTimeout { program: program.display().to_string() }),
        Ok(Err(e)) => {
            return Err(ZiskError::NotRunnable { program: program.display().to_string(), reason: e.to_string() });
        }
        Ok(Ok(o)) => o,
    };
    let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    ZiskVersion::parse(&text)
}

/// The CLI dialects that differ in flags or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    V014,
    V016,
    V017,
    V1,
}

impl ZiskVersion {
    /// Parses `cargo-zisk 0.14.0 (3f2a9c1 2025-11-20T10:12:31Z)`; only the semver matters.
    pub fn parse(output: &str) -> Result<ZiskVersion, ZiskError> {
        let bad = || ZiskError::UnreadableVersion(output.trim().chars().take(120).collect());
        let token = output
            .split_whitespace()
            .find(|t| t.chars().next().is_some_and(|c| c.is_ascii_digit()) && t.contains('.'))
            .ok_or_else(bad)?;
        let core = token.split(['-', '+']).next().ok_or_else(bad)?;
        let mut parts = core.split('.').map(|p| p.parse::<u64>());
        match (parts.next(), parts.next(), parts.next()) {
            (Some(Ok(major)), Some(Ok(minor)), patch) => {
                Ok(ZiskVersion { major, minor, patch: patch.and_then(|p| p.ok()).unwrap_or(0) })
            }
            _ => Err(bad()),
        }
    }

    pub fn dialect(self) -> Result<Dialect, ZiskError> {
        match (self.major, self.minor) {
            (0, 14) | (0, 15) => Ok(Dialect::V014),
            (0, 16) => Ok(Dialect::V016),
            (0, 17) | (0, 18) => Ok(Dialect::V017),
            (1, _) => Ok(Dialect::V1),
            _ => Err(ZiskError::Unsupported(self)),
        }
    }

    pub fn framing(self) -> Framing {
        Framing::for_zisk_version(self.major, self.minor)
    }
}

/// What the prover is asked to do with one input.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub args: Vec<OsString>,
    /// Where the proof will be if the run succeeds (`None` for `execute`).
    pub proof: Option<ProofLocation>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofLocation {
    /// v0.14–v0.16: a directory holding `result.json` (≤ 0.15) and `vadcop_final_proof*.bin`.
    Dir(PathBuf),
    /// v0.17 and later: the file given to `-o`.
    File(PathBuf),
}

/// `cargo-zisk prove` for one input; `block_dir` is `OUTPUT_DIR/<block>`.
pub fn prove(dialect: Dialect, elf: &Path, input: &Path, block_dir: &Path, extra: &[String]) -> Invocation {
    let mut args: Vec<OsString> = vec!["prove".into(), "-e".into(), elf.into(), "-i".into(), input.into()];
    let proof = match dialect {
        Dialect::V014 => {
            let dir = block_dir.join("proof");
            args.extend(["-o".into(), dir.clone().into(), "-a".into(), "-u".into()]);
            ProofLocation::Dir(dir)
        }
        Dialect::V016 => {
            let dir = block_dir.join("proof");
            args.extend(["-o".into(), dir.clone().into(), "-a".into()]);
            ProofLocation::Dir(dir)
        }
        Dialect::V017 | Dialect::V1 => {
            let file = block_dir.join("proof.bin");
            args.extend(["-o".into(), file.clone().into()]);
            ProofLocation::File(file)
        }
    };
    args.extend(extra.iter().map(OsString::from));
    Invocation { args, proof: Some(proof) }
}

/// `cargo-zisk execute`: emulation only, reports steps, writes no proof.
pub fn execute(elf: &Path, input: &Path, extra: &[String]) -> Invocation {
    let mut args: Vec<OsString> = vec!["execute".into(), "-e".into(), elf.into(), "-i".into(), input.into()];
    args.extend(extra.iter().map(OsString::from));
    Invocation { args, proof: None }
}

/// A finished proof as the prover described it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProveResult {
    pub proof_path: PathBuf,
    /// The prover's own figure, in milliseconds, when it printed or wrote one.
    pub proving_time_ms: Option<u64>,
    pub cycles: Option<u64>,
}

fn secs_to_ms(s: f64) -> Option<u64> {
    // EthProofs rejects 0; a real proof never takes under a millisecond, so round up.
    (s.is_finite() && s > 0.0).then(|| ((s * 1000.0).ceil() as u64).max(1))
}

/// The value after `key` in `line`, up to the next space or comma (`steps: 123,` → `123`).
fn value_after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(key)? + key.len();
    let rest = line[start..].trim_start();
    let end = rest.find(|c: char| c.is_whitespace() || c == ',').unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Steps (cycles) from any dialect's `steps: <n>` or `executed steps: <n>` line.
pub fn parse_steps(lines: &[String]) -> Option<u64> {
    lines.iter().rev().find_map(|l| value_after(l, "steps:").and_then(|v| v.parse().ok()).filter(|&n| n > 0))
}

fn parse_proof_seconds(lines: &[String]) -> Option<f64> {
    lines.iter().rev().find_map(|l| {
        if let Some(v) = value_after(l, "Proof Time:") {
            return v.parse().ok();
        }
        // 1.x: `Proof generated in 12.345s, steps: …`
        value_after(l, "Proof generated in:")
            .or_else(|| value_after(l, "Proof generated in"))
            .and_then(|v| v.trim_end_matches('s').parse().ok())
    })
}

#[derive(serde::Deserialize)]
struct ResultJson {
    cycles: Option<u64>,
    time: Option<f64>,
}

/// Reads the proof location and figures after a successful exit; `lines` are the run's output.
pub fn read_prove_result(
    dialect: Dialect,
    location: &ProofLocation,
    lines: &[String],
) -> Result<ProveResult, ZiskError> {
    let non_empty = |p: &Path| std::fs::metadata(p).map(|m| m.is_file() && m.len() > 0).unwrap_or(false);
    match (dialect, location) {
        (Dialect::V014, ProofLocation::Dir(dir)) => {
            let result_path = dir.join("result.json");
            let text = std::fs::read_to_string(&result_path)
                .map_err(|e| ZiskError::MissingProof(format!("{}: {e}", result_path.display())))?;
            let result: ResultJson = serde_json::from_str(&text)
                .map_err(|e| ZiskError::BadResult { path: result_path.display().to_string(), reason: e.to_string() })?;
            // v0.14 also writes a zstd-compressed copy; it is the one small enough to report.
            let proof_path = ["vadcop_final_proof.compressed.bin", "vadcop_final_proof.bin"]
                .iter()
                .map(|f| dir.join(f))
                .find(|p| non_empty(p))
                .ok_or_else(|| ZiskError::MissingProof(format!("no vadcop_final_proof*.bin in {}", dir.display())))?;
            Ok(ProveResult {
                proof_path,
                proving_time_ms: result.time.and_then(secs_to_ms),
                cycles: result.cycles.filter(|&c| c > 0).or_else(|| parse_steps(lines)),
            })
        }
        (Dialect::V016, ProofLocation::Dir(dir)) => {
            let proof_path = dir.join("vadcop_final_proof.bin");
            if !non_empty(&proof_path) {
                return Err(ZiskError::MissingProof(format!("{} is missing or empty", proof_path.display())));
            }
            Ok(ProveResult {
                proof_path,
                proving_time_ms: parse_proof_seconds(lines).and_then(secs_to_ms),
                cycles: parse_steps(lines),
            })
        }
        (_, ProofLocation::File(file)) => {
            if lines.iter().any(|l| l.contains("No final proof to write")) {
                return Err(ZiskError::MissingProof("cargo-zisk said: No final proof to write for this run".into()));
            }
            if !non_empty(file) {
                return Err(ZiskError::MissingProof(format!("{} is missing or empty", file.display())));
            }
            Ok(ProveResult {
                proof_path: file.clone(),
                proving_time_ms: parse_proof_seconds(lines).and_then(secs_to_ms),
                cycles: parse_steps(lines),
            })
        }
        (_, ProofLocation::Dir(dir)) => {
            Err(ZiskError::MissingProof(format!("unexpected proof directory {} for this version", dir.display())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_string).collect()
    }

    #[test]
    fn versions_parse_from_the_real_banner() {
        let v = ZiskVersion::parse("cargo-zisk 0.14.0 (3f2a9c1 2025-11-20T10:12:31.000000000Z)\n").unwrap();
        assert_eq!(v, ZiskVersion { major: 0, minor: 14, patch: 0 });
        assert_eq!(v.dialect(), Ok(Dialect::V014));
        assert_eq!(v.framing(), Framing::Raw);
        let v = ZiskVersion::parse("cargo-zisk 1.4.0-alpha (abc 2026)").unwrap();
        assert_eq!(v.dialect(), Ok(Dialect::V1));
        assert_eq!(v.framing(), Framing::Framed);
        assert_eq!(ZiskVersion::parse("cargo-zisk 0.18.1").unwrap().dialect(), Ok(Dialect::V017));
        assert!(matches!(ZiskVersion::parse("cargo-zisk 0.13.0").unwrap().dialect(), Err(ZiskError::Unsupported(_))));
        assert!(ZiskVersion::parse("command not found").is_err());
    }

    #[test]
    fn flags_follow_the_version_table() {
        let (elf, input, dir) = (Path::new("g.elf"), Path::new("in.bin"), Path::new("out/100"));
        let show =
            |inv: Invocation| inv.args.iter().map(|a| a.to_string_lossy().to_string()).collect::<Vec<_>>().join(" ");
        assert_eq!(show(prove(Dialect::V014, elf, input, dir, &[])), "prove -e g.elf -i in.bin -o out/100/proof -a -u");
        assert_eq!(show(prove(Dialect::V016, elf, input, dir, &[])), "prove -e g.elf -i in.bin -o out/100/proof -a");
        assert_eq!(
            show(prove(Dialect::V017, elf, input, dir, &["-g".into()])),
            "prove -e g.elf -i in.bin -o out/100/proof.bin -g"
        );
        assert_eq!(show(prove(Dialect::V1, elf, input, dir, &[])), "prove -e g.elf -i in.bin -o out/100/proof.bin");
        assert_eq!(show(execute(elf, input, &[])), "execute -e g.elf -i in.bin");
    }

    #[test]
    fn v014_figures_come_from_result_json() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("result.json"), r#"{"cycles":123456,"id":"ab","time":61.2345}"#).unwrap();
        std::fs::write(dir.path().join("vadcop_final_proof.bin"), [1u8; 16]).unwrap();
        std::fs::write(dir.path().join("vadcop_final_proof.compressed.bin"), [2u8; 8]).unwrap();
        let r = read_prove_result(Dialect::V014, &ProofLocation::Dir(dir.path().into()), &[]).unwrap();
        assert_eq!(r.proving_time_ms, Some(61235));
        assert_eq!(r.cycles, Some(123456));
        assert!(r.proof_path.ends_with("vadcop_final_proof.compressed.bin"));
    }

    #[test]
    fn v014_without_result_is_missing_proof() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_prove_result(Dialect::V014, &ProofLocation::Dir(dir.path().into()), &[]).unwrap_err();
        assert!(e.to_string().contains("result.json"), "{e}");
        std::fs::write(dir.path().join("result.json"), "garbage").unwrap();
        let e = read_prove_result(Dialect::V014, &ProofLocation::Dir(dir.path().into()), &[]).unwrap_err();
        assert!(matches!(e, ZiskError::BadResult { .. }), "{e}");
    }

    #[test]
    fn v1_figures_come_from_stdout() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("proof.bin");
        std::fs::write(&file, [3u8; 32]).unwrap();
        let out = lines(
            "2026-01-01T00:00:00Z [rank=0] INFO: --- PROVE SUMMARY\nProof generated in 12.345s, steps: 987654\nRandom seed: ff\nProof saved to proof.bin",
        );
        let r = read_prove_result(Dialect::V1, &ProofLocation::File(file.clone()), &out).unwrap();
        assert_eq!(r, ProveResult { proof_path: file.clone(), proving_time_ms: Some(12345), cycles: Some(987654) });
        let none = lines("--- PROVE SUMMARY\nNo final proof to write for this run");
        assert!(read_prove_result(Dialect::V1, &ProofLocation::File(file), &none).is_err());
    }

    #[test]
    fn v017_figures_and_empty_proof() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("proof.bin");
        let out = lines("Execution completed in 5123ms, steps: 42\nProof Time: 7.500 seconds");
        std::fs::write(&file, []).unwrap();
        assert!(read_prove_result(Dialect::V017, &ProofLocation::File(file.clone()), &out).is_err());
        std::fs::write(&file, [1]).unwrap();
        let r = read_prove_result(Dialect::V017, &ProofLocation::File(file), &out).unwrap();
        assert_eq!((r.proving_time_ms, r.cycles), (Some(7500), Some(42)));
    }

    #[test]
    fn execute_steps_in_both_dialects() {
        assert_eq!(parse_steps(&lines("Execution completed in 1.2s, executed steps: 5000")), Some(5000));
        assert_eq!(
            parse_steps(&lines("--- EXECUTE SUMMARY\nExecution completed in 12ms, steps: 77, cost: 9 cells")),
            Some(77)
        );
        assert_eq!(parse_steps(&lines("nothing here")), None);
    }
}
