//! The library's layers, checked from its source: a module may use only modules of a lower
//! layer. This is what keeps the ledger and the decisions free of actors, the actors free of the
//! HTTP surface, and the HTTP surface free of actors (it reads the status board and sends typed
//! commands); ARCHITECTURE.md draws the same map. A new module must be given its layer here.

use std::collections::BTreeMap;
use std::path::Path;

/// Lowest first. Within a layer, modules do not use each other.
const LAYERS: &[&[&str]] = &[
    // What a proof must commit to: bytes and rules only, below everything that reads them.
    &["commitment"],
    // Facts and rules that stand alone: the ledger, the input, the schedule, verification.
    &["schedule", "status", "telemetry", "disk", "process", "input", "verify", "store", "serve", "drain", "proof_file"],
    // One outside party or file format each.
    &["chain", "zisk", "devchain", "config"],
    &["chainspec", "notify", "ethproofs", "elf", "instance", "coordinator", "control", "sanitize"],
    // Decisions as plain functions.
    &["decide", "surface"],
    // What runs a block, and the HTTP surface's pages (which never see an actor).
    &["retention", "backend", "health", "blocks"],
    // The actors, and the operator's API.
    &["daemon", "admin", "dashboard"],
    // Start-up and the one-shot commands.
    &["startup", "doctor", "reproduce"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The top-level module a file under `src/` belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().to_string();
    first.trim_end_matches(".rs").to_string()
}

/// Every `crate::NAME` a file's code (comments left out) uses.
fn uses(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let code = code.split(" //").next().unwrap_or(code);
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
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
        let module = module_of(&src, file);
        // The binary's own modules (`main`, `cli`) sit above everything; `lib.rs` is the map.
        if matches!(module.as_str(), "main" | "cli" | "lib") {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            unplaced.push(module);
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for used in uses(&text) {
            if used == module || used.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
                continue; // itself, or an item of lib.rs (`crate::ETHREX_VERSION`)
            }
            match layer_of(&used) {
                Some(l) if l < own => {}
                _ => wrong.entry(format!("{} ({module})", file.display())).or_default().push(used),
            }
        }
    }
    unplaced.sort();
    unplaced.dedup();
    assert!(unplaced.is_empty(), "modules with no layer in tests/architecture.rs: {unplaced:?}");
    assert!(wrong.is_empty(), "modules using their own or a higher layer: {wrong:#?}");
}

#[test]
fn the_checker_sees_a_use_of_a_higher_layer() {
    assert_eq!(
        uses("use crate::daemon::Context;\n// crate::startup in a comment\nlet x = crate::store::now_ms();"),
        ["daemon", "store"]
    );
    assert!(layer_of("store") < layer_of("daemon") && layer_of("daemon") < layer_of("startup"));
    assert_eq!(layer_of("health"), layer_of("backend"), "the HTTP surface cannot use what runs a block");
}
