//! Which guest is this? A guest ELF keeps the source paths of its dependencies (panic
//! locations) in its read-only data, and those paths say what it was built from: a crates.io
//! build shows `…/registry/src/<index>/ethrex-common-31.0.0/…`, a git build
//! `…/git/checkouts/ethrex-<hash>/<commit>/…` (mapped to a version by [`ETHREX_COMMITS`]), and
//! likewise `ziskos-<version>/` or `…/checkouts/zisk-<hash>/<commit>/ziskos/…`. A build inside
//! ethrex's own workspace shows neither: then the version is unknown, and said so — never guessed.
//!
//! [`check_layout`] compares the ELF's ethrex with the input layout this build writes: ELFs of
//! another layout group reject or misread the inputs.

use std::collections::BTreeMap;

use sha2::Digest;

use crate::block::commitment::OutputLayout;

/// ethrex release → the commit its crates were published from (each crate's
/// `.cargo_vcs_info.json`), and tag v12.0.0 (ethrex-common 11.0.0 inside).
pub const ETHREX_COMMITS: &[(&str, &str)] = &[
    ("11.0.0", "d1e0be1"),
    ("17.0.0", "3b700ee"),
    ("18.0.0", "3a7b488"),
    ("19.0.0", "68b2f4f"),
    ("20.0.0", "7d23d3b"),
    ("21.0.0", "7729de3"),
    ("22.0.0", "aa6c5f0"),
    ("23.0.0", "d906f10"),
    ("24.0.0", "2fea1b8"),
    ("25.0.0", "f3b90bc"),
    ("26.0.0", "ee98e87"),
    ("27.0.0", "136666a"),
    ("28.0.0", "3a9da46"),
    ("29.0.0", "208aba0"),
    ("29.0.1", "57101c1"),
    ("30.0.0", "80b774a"),
    ("30.0.1", "391a2cd"),
    ("31.0.0", "2f0bfb2"),
];

/// What an ELF says about one dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provenance {
    /// A crates.io build, or a git commit this build knows the version of.
    Version {
        version: String,
        commit: Option<String>,
    },
    /// A git build from a commit this build cannot map to a version.
    Commit(String),
    Unknown,
}

impl Provenance {
    pub fn version(&self) -> Option<&str> {
        match self {
            Provenance::Version { version, .. } => Some(version),
            _ => None,
        }
    }

    /// For logs, `/health` and `doctor`: `31.0.0`, `31.0.0 (git 2f0bfb2)`, `git abc1234`, `unknown`.
    pub fn describe(&self) -> String {
        match self {
            Provenance::Version { version, commit: Some(c) } => format!("{version} (git {c})"),
            Provenance::Version { version, commit: None } => version.clone(),
            Provenance::Commit(c) => format!("git {c} (version unknown)"),
            Provenance::Unknown => "unknown".to_string(),
        }
    }
}

/// The ELF's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub sha256: String,
    pub bytes: u64,
    pub ethrex: Provenance,
    pub ziskos: Provenance,
}

/// A guest ELF is at most this large; a larger file is not a guest (and is never read whole).
pub const MAX_ELF_BYTES: u64 = 256 << 20;

/// Why a file is not a ZisK guest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAGuest {
    #[error("it is {0} bytes, more than the {MAX_ELF_BYTES} a guest ELF may be")]
    TooLarge(u64),
    #[error("it is not an ELF file")]
    NotElf,
    #[error("it is not a 64-bit little-endian ELF (ZisK guests are RV64)")]
    NotElf64,
    #[error("it is an ELF for machine {0}, not RISC-V (243): not a ZisK guest")]
    NotRiscV(u16),
}

/// The ELF header's promise that this is a ZisK guest: 64-bit, little-endian, RISC-V.
pub fn check_guest_header(bytes: &[u8]) -> Result<(), NotAGuest> {
    const EM_RISCV: u16 = 243;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_ELF_BYTES {
        return Err(NotAGuest::TooLarge(u64::try_from(bytes.len()).unwrap_or(u64::MAX)));
    }
    if !bytes.starts_with(b"\x7fELF") {
        return Err(NotAGuest::NotElf);
    }
    if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return Err(NotAGuest::NotElf64);
    }
    let machine = bytes.get(18..20).map(|m| u16::from_le_bytes([m[0], m[1]])).ok_or(NotAGuest::NotElf64)?;
    if machine != EM_RISCV {
        return Err(NotAGuest::NotRiscV(machine));
    }
    Ok(())
}

/// Reads what `elf` was built from. Bytes that are not an ELF give a fingerprint with both
/// origins unknown (the caller decides whether that is an error).
pub fn fingerprint(elf: &[u8]) -> Fingerprint {
    let sha256 = hex::encode(sha2::Sha256::digest(elf));
    let ethrex = origin(crate_versions(elf, b"ethrex-"), checkout_commits(elf, b"/checkouts/ethrex-", b""), true);
    let ziskos =
        origin(crate_versions(elf, b"ziskos-"), checkout_commits(elf, b"/checkouts/zisk-", b"/ziskos/"), false);
    Fingerprint { sha256, bytes: elf.len() as u64, ethrex, ziskos }
}

/// The most frequent of the versions and commits found; a crates.io version wins over a commit.
fn origin(versions: BTreeMap<String, usize>, commits: BTreeMap<String, usize>, ethrex: bool) -> Provenance {
    let most = |m: &BTreeMap<String, usize>| m.iter().max_by_key(|(_, n)| **n).map(|(k, _)| k.clone());
    if let Some(version) = most(&versions) {
        return Provenance::Version { version, commit: None };
    }
    match most(&commits) {
        Some(commit) if ethrex => match version_of_commit(&commit) {
            Some(version) => Provenance::Version { version: version.to_string(), commit: Some(commit) },
            None => Provenance::Commit(commit),
        },
        Some(commit) => Provenance::Commit(commit),
        None => Provenance::Unknown,
    }
}

/// The ethrex version a (possibly abbreviated) commit was published from.
pub fn version_of_commit(commit: &str) -> Option<&'static str> {
    if commit.len() < 7 {
        return None;
    }
    ETHREX_COMMITS.iter().find(|(_, c)| c.starts_with(commit) || commit.starts_with(c)).map(|(v, _)| *v)
}

/// Every offset at which `needle` occurs.
fn occurrences<'a>(hay: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    let first = needle[0];
    (0..hay.len().saturating_sub(needle.len() - 1)).filter(move |&i| hay[i] == first && hay[i..].starts_with(needle))
}

/// Path characters: a path ends at the first byte that cannot be in one.
fn path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+')
}

/// `<prefix><name>-<semver>/` directory names after a `/` (crates.io source paths): the semvers.
fn crate_versions(elf: &[u8], prefix: &[u8]) -> BTreeMap<String, usize> {
    let mut found = BTreeMap::new();
    for at in occurrences(elf, prefix) {
        if at == 0 || elf[at - 1] != b'/' {
            continue;
        }
        let len = elf[at..].iter().take(200).take_while(|b| path_byte(**b)).count();
        let Some(&b'/') = elf.get(at + len) else { continue };
        let Ok(dir) = std::str::from_utf8(&elf[at..at + len]) else { continue };
        if let Some(version) = semver_suffix(dir) {
            *found.entry(version.to_string()).or_insert(0) += 1;
        }
    }
    found
}

/// `ethrex-common-31.0.0` → `31.0.0`; `ethrex-l2` → none.
fn semver_suffix(dir: &str) -> Option<&str> {
    dir.char_indices().filter(|(_, c)| *c == '-').map(|(i, _)| &dir[i + 1..]).find(|v| {
        let core = v.split(['-', '+']).next().unwrap_or("");
        let parts: Vec<&str> = core.split('.').collect();
        parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// `<prefix><hash>/<commit>/<then>…` (cargo git checkouts): the commits.
fn checkout_commits(elf: &[u8], prefix: &[u8], then: &[u8]) -> BTreeMap<String, usize> {
    let mut found = BTreeMap::new();
    for at in occurrences(elf, prefix) {
        let rest = &elf[at + prefix.len()..];
        let Some(slash) = rest.iter().take(64).position(|b| *b == b'/') else { continue };
        let rest = &rest[slash + 1..];
        let len = rest.iter().take(41).take_while(|b| b.is_ascii_hexdigit()).count();
        if !(7..=40).contains(&len) || rest.get(len) != Some(&b'/') || !rest[len..].starts_with(then) {
            continue;
        }
        if let Ok(commit) = std::str::from_utf8(&rest[..len]) {
            *found.entry(commit.to_ascii_lowercase()).or_insert(0) += 1;
        }
    }
    found
}

/// Releases whose guest inputs are the same rkyv bytes.
pub fn layout_group(version: &str) -> Option<&'static str> {
    let mut parts = version.split('.').map(|p| p.split(['-', '+']).next().unwrap_or("").parse::<u64>());
    let (major, minor, patch) = match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b)), Some(Ok(c))) => (a, b, c),
        _ => return None,
    };
    Some(match (major, minor, patch) {
        (..=20, _, _) => "ethrex ≤ 20",
        (21..=23, _, _) => "ethrex 21–23",
        (24, _, _) => "ethrex 24",
        (25..=29, _, _) | (30, 0, 0 | 1) => "ethrex 25–30.0.1",
        (31, _, _) => "ethrex 31",
        _ => return None,
    })
}

/// The ELF reads another input layout than this build writes.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error(
    "the ELF {path} was built from ethrex {elf} ({elf_group} input layout), but this daemon writes the inputs of ethrex {ours} ({our_group}): the guest would reject or misread every input. Use an ELF built from ethrex {ours} (see guest-elf/README.md), or set ALLOW_ELF_MISMATCH=true if you know better"
)]
pub struct LayoutMismatch {
    pub path: String,
    pub elf: String,
    pub elf_group: &'static str,
    pub ours: &'static str,
    pub our_group: &'static str,
}

/// `Err` only when the ELF's ethrex version is known and its layout group is not ours; an
/// unknown version (or one newer than any group here) passes: it cannot be judged.
pub fn check_layout(fp: &Fingerprint, path: &str) -> Result<(), LayoutMismatch> {
    let ours = crate::ETHREX_VERSION;
    let (Some(version), Some(our_group)) = (fp.ethrex.version(), layout_group(ours)) else { return Ok(()) };
    match layout_group(version) {
        Some(group) if group != our_group => {
            Err(LayoutMismatch { path: path.to_string(), elf: version.to_string(), elf_group: group, ours, our_group })
        }
        _ => Ok(()),
    }
}

/// How the guest commits its outputs: `GUEST_OUTPUT` when the operator names it, else what the
/// ELF says — an ethrex guest (its version known) built against a ziskos line whose output call
/// is known ([`crate::block::commitment::layout_of_ziskos`]). `Err` says why it is not known; it is
/// never guessed.
pub fn output_layout(
    setting: Option<OutputLayout>,
    fp: Option<&Fingerprint>,
) -> Result<OutputLayout, crate::block::commitment::LayoutUnknown> {
    if let Some(layout) = setting {
        return Ok(layout);
    }
    use crate::block::commitment::LayoutUnknown;
    let fp = fp.ok_or(LayoutUnknown::NoElf)?;
    if fp.ethrex.version().is_none() {
        return Err(LayoutUnknown::NotEthrex(fp.ethrex.describe()));
    }
    let version = fp.ziskos.version().ok_or_else(|| LayoutUnknown::ZiskosUnknown(fp.ziskos.describe()))?;
    let mut parts = version.split('.').map(|p| p.split(['-', '+']).next().unwrap_or("").parse::<u64>().ok());
    let (Some(Some(major)), Some(Some(minor))) = (parts.next(), parts.next()) else {
        return Err(LayoutUnknown::NotARelease(version.to_string()));
    };
    crate::block::commitment::layout_of_ziskos(major, minor)
        .ok_or_else(|| LayoutUnknown::UnknownZiskos(version.to_string()))
}

/// A warning when the ELF's ziskos and the cargo-zisk that runs it are of different release
/// lines (a guest built for another ziskos fails in ways that look like GPU faults).
pub fn ziskos_mismatch(fp: &Fingerprint, cargo_zisk: crate::block::zisk::ZiskVersion) -> Option<String> {
    let version = fp.ziskos.version()?;
    let mut parts = version.split('.').map(|p| p.parse::<u64>().ok());
    let (major, minor) = (parts.next().flatten()?, parts.next().flatten()?);
    let same =
        if major == 0 { (major, minor) == (cargo_zisk.major, cargo_zisk.minor) } else { major == cargo_zisk.major };
    (!same).then(|| {
        format!(
            "the ELF was built against ziskos {version}, but cargo-zisk is {cargo_zisk}: build the guest with the installed ZisK, or install the ZisK it was built with"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shared with the integration tests.
    include!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/synthetic_elf.rs"));

    const REGISTRY: &str = "/home/ci/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f";

    #[test]
    fn a_crates_io_build_says_its_version() {
        let elf = synthetic_elf(&[
            &format!("{REGISTRY}/ethrex-common-31.0.0/src/types/block.rs"),
            &format!("{REGISTRY}/ethrex-vm-31.0.0/src/backends/levm/mod.rs"),
            &format!("{REGISTRY}/ziskos-0.15.0/src/lib.rs"),
        ]);
        let fp = fingerprint(&elf);
        assert_eq!(fp.ethrex, Provenance::Version { version: "31.0.0".into(), commit: None });
        assert_eq!(fp.ziskos.version(), Some("0.15.0"));
        assert_eq!(check_layout(&fp, "g.elf"), Ok(()));
        assert_eq!(fp.sha256.len(), 64);
    }

    #[test]
    fn a_git_build_is_mapped_to_its_version_and_an_unknown_commit_is_said_so() {
        let elf = synthetic_elf(&[
            "/root/.cargo/git/checkouts/ethrex-b17359103979e28f/d1e0be1/crates/common/types/block.rs",
            "/root/.cargo/git/checkouts/zisk-627550f4f7ac9ffb/790f9e2/ziskos/entrypoint/src/lib.rs",
        ]);
        let fp = fingerprint(&elf);
        assert_eq!(fp.ethrex, Provenance::Version { version: "11.0.0".into(), commit: Some("d1e0be1".into()) });
        assert_eq!(fp.ziskos, Provenance::Commit("790f9e2".into()));
        let e = check_layout(&fp, "g.elf").unwrap_err();
        assert!(e.to_string().contains("ethrex 11.0.0") && e.to_string().contains("ethrex 31.0.0"), "{e}");
        let other = synthetic_elf(&["/root/.cargo/git/checkouts/ethrex-b17359103979e28f/0123abc/crates/x.rs"]);
        assert_eq!(fingerprint(&other).ethrex, Provenance::Commit("0123abc".into()));
        assert_eq!(check_layout(&fingerprint(&other), "g.elf"), Ok(()), "an unknown version is not judged");
    }

    #[test]
    fn a_workspace_build_is_unknown_never_guessed() {
        let elf = synthetic_elf(&["crates/common/types/block.rs", "/build/ethrex/crates/vm/lib.rs"]);
        let fp = fingerprint(&elf);
        assert_eq!((fp.ethrex.clone(), fp.ziskos.clone()), (Provenance::Unknown, Provenance::Unknown));
        assert_eq!(fp.ethrex.describe(), "unknown");
    }

    #[test]
    fn layout_groups_follow_the_reference() {
        assert_eq!(layout_group("20.0.0"), Some("ethrex ≤ 20"));
        assert_eq!(layout_group("23.0.0"), layout_group("21.0.0"));
        assert_ne!(layout_group("24.0.0"), layout_group("25.0.0"));
        assert_eq!(layout_group("30.0.1"), layout_group("25.0.0"));
        assert_ne!(layout_group("30.0.1"), layout_group("31.0.0"));
        assert_eq!(layout_group("32.0.0"), None, "a newer release is not judged");
        let elf = synthetic_elf(&[&format!("{REGISTRY}/ethrex-common-30.0.1/src/lib.rs")]);
        assert!(check_layout(&fingerprint(&elf), "g.elf").is_err());
    }

    #[test]
    fn ziskos_against_cargo_zisk() {
        let v = |major, minor| crate::block::zisk::ZiskVersion { major, minor, patch: 0 };
        let elf = synthetic_elf(&[&format!("{REGISTRY}/ziskos-0.15.0/src/lib.rs")]);
        let fp = fingerprint(&elf);
        assert_eq!(ziskos_mismatch(&fp, v(0, 15)), None);
        assert!(ziskos_mismatch(&fp, v(0, 16)).is_some_and(|m| m.contains("0.15.0") && m.contains("0.16.0")));
        let one = fingerprint(&synthetic_elf(&[&format!("{REGISTRY}/ziskos-1.2.0/src/lib.rs")]));
        assert_eq!(ziskos_mismatch(&one, v(1, 4)), None, "1.x is one line");
    }

    #[test]
    fn the_output_layout_is_named_or_read_from_the_elf_never_guessed() {
        let elf = |paths: &[&str]| fingerprint(&synthetic_elf(paths));
        let ethrex = format!("{REGISTRY}/ethrex-common-31.0.0/src/lib.rs");
        let one = elf(&[&ethrex, &format!("{REGISTRY}/ziskos-1.4.0/src/lib.rs")]);
        assert_eq!(output_layout(None, Some(&one)), Ok(OutputLayout::Encoded));
        let sixteen = elf(&[&ethrex, &format!("{REGISTRY}/ziskos-0.16.1/src/lib.rs")]);
        assert_eq!(output_layout(None, Some(&sixteen)), Ok(OutputLayout::Prefixed));
        let eighteen = elf(&[&ethrex, &format!("{REGISTRY}/ziskos-0.18.0/src/lib.rs")]);
        assert!(output_layout(None, Some(&eighteen)).unwrap_err().to_string().contains("0.18.0"));
        let no_ziskos = elf(&[&ethrex]);
        assert!(output_layout(None, Some(&no_ziskos)).unwrap_err().to_string().contains("ziskos is unknown"));
        let workspace = elf(&["crates/common/types/block.rs", &format!("{REGISTRY}/ziskos-1.4.0/src/lib.rs")]);
        assert!(output_layout(None, Some(&workspace)).unwrap_err().to_string().contains("which ethrex guest"));
        assert_eq!(
            output_layout(Some(OutputLayout::Sha256), Some(&workspace)),
            Ok(OutputLayout::Sha256),
            "the operator's word"
        );
    }

    #[test]
    fn only_a_riscv64_elf_is_a_guest() {
        assert_eq!(check_guest_header(&synthetic_elf(&[])), Ok(()));
        assert_eq!(check_guest_header(&riscv_elf(b"body")), Ok(()));
        let mut x86 = synthetic_elf(&[]);
        x86[18] = 62;
        assert_eq!(check_guest_header(&x86), Err(NotAGuest::NotRiscV(62)));
        let mut elf32 = synthetic_elf(&[]);
        elf32[4] = 1;
        assert_eq!(check_guest_header(&elf32), Err(NotAGuest::NotElf64));
        assert_eq!(check_guest_header(b"#!/bin/sh\necho hi"), Err(NotAGuest::NotElf));
        assert_eq!(check_guest_header(b"\x7fELF\x02\x01"), Err(NotAGuest::NotElf64));
        if let Ok(host) = std::fs::read("/bin/true") {
            assert!(check_guest_header(&host).is_err(), "the host's /bin/true is no guest");
        }
    }
}
