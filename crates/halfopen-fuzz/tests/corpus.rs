//! Replays every file of `fuzz/corpus/<target>/` through its target, so
//! inputs the fuzzer found (and crashes once fixed, kept there as
//! regressions) run in every `cargo test`. Fails when the list of targets,
//! the corpora and the AFL binaries drift apart: a target without a
//! non-empty corpus or without `fuzz/afl/src/bin/<target>.rs`, a corpus
//! or binary without a target.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use halfopen_fuzz::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn names_in(dir: &Path, strip: &str) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with('.'))
        .map(|n| n.strip_suffix(strip).unwrap_or(&n).to_string())
        .collect()
}

fn targets() -> BTreeSet<String> {
    TARGETS.iter().map(|(n, _)| n.to_string()).collect()
}

#[test]
fn every_target_has_a_corpus_and_every_corpus_a_target() {
    assert_eq!(names_in(&fuzz_dir().join("corpus"), ""), targets());
}

#[test]
fn every_target_has_an_afl_binary_and_every_binary_a_target() {
    let bins = fuzz_dir().join("afl/src/bin");
    assert_eq!(names_in(&bins, ".rs"), targets());
    for (name, _) in TARGETS {
        let src = std::fs::read_to_string(bins.join(format!("{name}.rs"))).unwrap();
        assert!(
            src.contains(&format!("halfopen_fuzz::{name}(")),
            "fuzz/afl/src/bin/{name}.rs does not call halfopen_fuzz::{name}"
        );
    }
}

#[test]
fn every_corpus_file_runs_through_its_target() {
    let mut total = 0;
    for (name, target) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("fuzz/corpus/{name}: {e}"))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "fuzz/corpus/{name} is empty");
        for f in &files {
            let data = std::fs::read(f).unwrap();
            // A panic names the file, to reproduce with
            // `cargo afl run` or this test.
            let r = std::panic::catch_unwind(|| target(&data));
            assert!(r.is_ok(), "{name} panicked on {}", f.display());
        }
        total += files.len();
    }
    println!("{total} corpus files replayed");
}
