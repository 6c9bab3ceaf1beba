//! The library's layers, checked from its source: each folder of `src/` is a layer, and a module
//! may use only modules of a lower layer, folders and the modules inside them alike. This is what
//! keeps the ledger and the decisions free of actors, the actors free of the HTTP surface, and
//! the HTTP surface free of actors (it reads the status board and sends typed commands).
//! ARCHITECTURE.md draws the same map, and every path it names must exist.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The folders of `src/`, lowest first. Folders of one layer do not use each other.
const FOLDERS: &[&[&str]] = &[
    &["runtime"],
    &["block", "store"],
    &["config"],
    &["outside"],
    &["decide"],
    &["backend"],
    &["daemon", "http"],
    &["startup"],
    &["commands"],
];

/// Inside a folder of several modules, their order, lowest first: a module uses only modules of
/// a lower row (of its folder, or of a lower folder).
const INSIDE: &[(&str, &[&[&str]])] = &[
    ("block", &[&["commitment"], &["schedule", "verify", "proof_file", "chainspec", "input"], &["zisk"], &["elf"]]),
    ("runtime", &[&["status", "telemetry", "drain", "disk", "backoff"], &["upkeep"]]),
    ("outside", &[&["chain", "process", "devchain"], &["ethproofs", "notify", "coordinator", "instance", "sanitize"]]),
    ("http", &[&["serve", "control"], &["surface"], &["health", "blocks"], &["dashboard"], &["admin"]]),
    ("commands", &[&["doctor", "reproduce"]]),
];

fn folder_layer(folder: &str) -> Option<usize> {
    FOLDERS.iter().position(|layer| layer.contains(&folder))
}

/// A module's place: its folder's layer, then its row inside the folder (0 for a folder whose
/// modules are not listed: it is one module).
fn place(folder: &str, module: Option<&str>) -> Option<(usize, usize)> {
    let layer = folder_layer(folder)?;
    match INSIDE.iter().find(|(f, _)| *f == folder) {
        Some((_, rows)) => {
            let module = module?;
            Some((layer, rows.iter().position(|row| row.contains(&module))?))
        }
        None => Some((layer, 0)),
    }
}

/// The folder and module a file under `src/` belongs to (`src/block/input/hex.rs` → block, input).
fn unit_of(src: &Path, file: &Path) -> (String, Option<String>) {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy().trim_end_matches(".rs").to_string());
    let folder = parts.next().unwrap();
    let module = parts.next().filter(|m| m != "mod");
    (folder, module)
}

/// Every `crate::FOLDER[::MODULE]` a file's code (comments left out) uses, groups included
/// (`use crate::{block::input, store}`, `use crate::outside::{chain, notify::Alert}`).
fn uses(text: &str) -> Vec<(String, Option<String>)> {
    let code: String = text
        .lines()
        .map(|l| l.trim_start())
        .filter(|l| !l.starts_with("//"))
        .map(|l| l.split(" //").next().unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        if code[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue; // `ethproofs_daemon::crate::`-like text is not a path of this crate
        }
        for path in paths(&code[i + 7..]) {
            let mut parts = path.split("::").filter(|p| !p.is_empty());
            if let Some(folder) = parts.next() {
                found.push((folder.to_string(), parts.next().map(str::to_string)));
            }
        }
    }
    found
}

/// The paths a `use` tree starting at `text` names, each cut to its first two segments.
fn paths(text: &str) -> Vec<String> {
    let word = |s: &str| -> String { s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect() };
    let text = text.trim_start();
    if let Some(group) = text.strip_prefix('{') {
        // The group's items, split at its own commas.
        let (mut depth, mut start, mut items) = (0, 0, Vec::new());
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    items.push(&group[start..i]);
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&group[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        return items.into_iter().filter(|i| !i.trim().is_empty()).flat_map(paths).collect();
    }
    let first = word(text);
    if first.is_empty() || first == "self" {
        return Vec::new();
    }
    let rest = &text[first.len()..];
    match rest.strip_prefix("::") {
        Some(rest) if rest.trim_start().starts_with('{') => {
            paths(rest)
                .into_iter()
                .map(|p| format!("{first}::{p}"))
                .collect::<Vec<_>>()
                .into_iter()
                .chain(
                    // `use crate::outside::{self, chain}` names the folder itself.
                    rest.contains("self").then(|| first.clone()),
                )
                .collect()
        }
        Some(rest) => vec![format!("{first}::{}", word(rest))],
        None => vec![first],
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_uses_a_module_of_its_own_or_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut unplaced = Vec::new();
    for file in &files {
        let (folder, module) = unit_of(&src, file);
        // The binary's own modules (`main`, `cli`) sit above everything; `lib.rs` is the map.
        if matches!(folder.as_str(), "main" | "cli" | "lib") {
            continue;
        }
        if module.is_none() && INSIDE.iter().any(|(f, _)| *f == folder) {
            continue; // a folder's `mod.rs`: its map, nothing more
        }
        let Some(own) = place(&folder, module.as_deref()) else {
            unplaced.push(format!("{folder}::{}", module.unwrap_or_default()));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (used_folder, used_module) in uses(&text) {
            if used_folder.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
                continue; // an item of lib.rs (`crate::ETHREX_VERSION`)
            }
            let same_unit = used_folder == folder && (place(&folder, None).is_some() || used_module == module);
            if same_unit {
                continue; // itself (a folder that is one module uses its own parts freely)
            }
            // An item of a folder's `mod.rs` (`crate::runtime::block_span!`), not a module of it:
            // it stands with the folder's lowest row.
            let is_module = |m: &str| {
                src.join(&used_folder).join(format!("{m}.rs")).exists() || src.join(&used_folder).join(m).is_dir()
            };
            let used_module = used_module.filter(|m| place(&used_folder, None).is_some() || is_module(m));
            let used_place = match &used_module {
                None if INSIDE.iter().any(|(f, _)| *f == used_folder) => folder_layer(&used_folder).map(|l| (l, 0)),
                m => place(&used_folder, m.as_deref()),
            };
            let fine = match used_place {
                Some(used) if used_folder == folder => used.1 < own.1,
                Some(used) => used.0 < own.0,
                None => false,
            };
            if !fine {
                let name = format!("{used_folder}::{}", used_module.unwrap_or_default());
                wrong.entry(file.display().to_string()).or_default().push(name);
            }
        }
    }
    unplaced.sort();
    unplaced.dedup();
    assert!(unplaced.is_empty(), "modules with no layer in tests/architecture.rs: {unplaced:?}");
    assert!(wrong.is_empty(), "modules using their own or a higher layer: {wrong:#?}");
}

#[test]
fn every_folder_of_src_is_a_layer_and_every_layer_a_folder() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut folders: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .filter(|f| f != "cli")
        .collect();
    folders.sort();
    let mut layers: Vec<String> = FOLDERS.iter().flat_map(|l| l.iter().map(|f| f.to_string())).collect();
    layers.sort();
    assert_eq!(folders, layers, "src/'s folders against the layers");
    let loose: Vec<_> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .filter(|f| f != "lib.rs" && f != "main.rs")
        .collect();
    assert!(loose.is_empty(), "modules outside a layer's folder: {loose:?}");
}

#[test]
fn the_checker_sees_a_use_of_a_higher_layer() {
    assert_eq!(
        uses("use crate::daemon::Context;\n// crate::startup in a comment\nlet x = crate::block::input::hex(1);"),
        [("daemon".to_string(), Some("Context".to_string())), ("block".to_string(), Some("input".to_string()))]
    );
    let grouped =
        uses("use crate::{\n    block::{input, zisk::Dialect},\n    store,\n};\nuse crate::outside::{self, chain};");
    let names: Vec<String> = grouped.iter().map(|(f, m)| format!("{f}::{}", m.as_deref().unwrap_or(""))).collect();
    assert_eq!(names, ["block::input", "block::zisk", "store::", "outside::chain", "outside::"]);
    assert!(place("store", None) < place("daemon", None) && place("daemon", None) < place("startup", None));
    assert_eq!(folder_layer("http"), folder_layer("daemon"), "the HTTP surface cannot use the actors");
    assert!(place("block", Some("commitment")) < place("block", Some("input")));
}

/// Every path ARCHITECTURE.md names in backquotes (`src/…`, `tests/…`, `benches/…`, `proto/…`,
/// `config/…`) exists: a file moved or renamed must take the map with it.
#[test]
fn every_path_architecture_md_names_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let mut named = Vec::new();
    for (i, quoted) in text.split('`').enumerate() {
        let roots = ["src/", "tests/", "benches/", "proto/", "config/"];
        if i % 2 == 1 && roots.iter().any(|r| quoted.starts_with(r)) && !quoted.contains(' ') {
            named.push(quoted.to_string());
        }
    }
    assert!(named.len() > 20, "the map names the code it describes: {named:?}");
    let missing: Vec<_> = named.iter().filter(|p| !root.join(p.as_str()).exists()).collect();
    assert!(missing.is_empty(), "ARCHITECTURE.md names paths that do not exist: {missing:?}");
    let size = text.len();
    assert!(size <= 20 * 1024, "ARCHITECTURE.md is read in ten minutes: {size} bytes");
}
