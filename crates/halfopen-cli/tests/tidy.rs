//! Tidy checks over the whole workspace (rust-analyzer's xtask tidy): every
//! Rust module opens with a `//!` header saying what it owns, and the pure
//! crates depend only on pure crates (no I/O, no async, no clock reaches
//! the engine through its dependencies).
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if p.is_dir() {
            if name != "target" && !name.starts_with('.') && name != "snapshots" {
                rust_files(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_module_opens_with_a_header() {
    let root = workspace();
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    assert!(
        files.len() > 50,
        "found only {} files under {}",
        files.len(),
        root.display()
    );
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            !text.trim_start().starts_with("//!")
        })
        .map(|f| f.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a //! header:\n{}",
        missing.join("\n")
    );
}

/// The dependencies of `crate_dir`'s Cargo.toml `[dependencies]` table.
fn dependencies(crate_dir: &str) -> Vec<String> {
    let path = workspace().join("crates").join(crate_dir).join("Cargo.toml");
    let manifest: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    manifest
        .get("dependencies")
        .and_then(|d| d.as_table())
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn pure_crates_depend_only_on_pure_crates() {
    // humantime only formats and parses (halfopen-history takes `now` as an argument).
    let pure = ["halfopen-core", "serde", "thiserror", "rustc-hash", "humantime"];
    for krate in ["halfopen-core", "halfopen-engine", "halfopen-history"] {
        let deps = dependencies(krate);
        let impure: Vec<&String> = deps.iter().filter(|d| !pure.contains(&d.as_str())).collect();
        assert!(
            impure.is_empty(),
            "{krate} must stay pure (no I/O, async, clock): it depends on {impure:?}"
        );
    }
    assert!(dependencies("halfopen-engine").contains(&"halfopen-core".to_string()));
}
