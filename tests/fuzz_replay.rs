//! Every committed fuzz input, through the same check its cargo-fuzz target runs, once.
//!
//! The inputs of a target: its seeds (`fuzz/corpus/<target>`), every crash a fuzzer ever found
//! (`fuzz/regressions/<target>`), and the real vendor payloads and awkward inputs in the shared
//! fixtures. Deterministic: the same commit gives the same answer. Random exploration is
//! `make fuzz` (`scripts/fuzz.sh explore`), never part of the gate. The checks are the very files
//! the fuzz targets include, so a find replays here without a libFuzzer build.

use std::panic::catch_unwind;
use std::path::{Path, PathBuf};

#[path = "../fuzz/checks/function_url_event.rs"]
mod function_url_event;
#[path = "../fuzz/checks/image_headers.rs"]
mod image_headers;
#[path = "../fuzz/checks/normalizers.rs"]
mod normalizers;
#[path = "../fuzz/checks/pdf_scan.rs"]
mod pdf_scan;
#[path = "../fuzz/checks/s3_event.rs"]
mod s3_event;
#[path = "../fuzz/checks/webhook_verify.rs"]
mod webhook_verify;

/// How much of an image libFuzzer is given (`scripts/fuzz.sh` seeds the same head).
const IMAGE_HEAD: usize = 65_536;

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.is_file());
    files.sort();
    files
}

fn with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    files_in(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect()
}

/// The committed inputs of `target`, by name: its seeds and regressions, then `extra`.
fn inputs(target: &str, extra: Vec<PathBuf>) -> Vec<(String, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut paths = files_in(&fuzz.join("corpus").join(target));
    paths.extend(files_in(&fuzz.join("regressions").join(target)));
    paths.extend(extra);
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.display().to_string(), bytes)
        })
        .collect()
}

/// Runs `check` on every input and fails naming each one that panicked.
fn replay(target: &str, inputs: Vec<(String, Vec<u8>)>, check: fn(&[u8])) {
    assert!(!inputs.is_empty(), "{target}: no committed inputs");
    let failed: Vec<String> = inputs
        .iter()
        .filter(|(_, bytes)| catch_unwind(|| check(bytes)).is_err())
        .map(|(name, _)| name.clone())
        .collect();
    eprintln!(
        "fuzz replay {target}: {} inputs, {} failed",
        inputs.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "{target} fails on {failed:?}");
}

fn shared_fixtures() -> PathBuf {
    ocrbridge_tests::shared_dir().join("fixtures")
}

#[test]
fn webhook_verify_replays_clean() {
    replay(
        "webhook_verify",
        inputs("webhook_verify", vec![]),
        webhook_verify::check,
    );
}

#[test]
fn function_url_event_replays_clean() {
    replay(
        "function_url_event",
        inputs("function_url_event", vec![]),
        function_url_event::check,
    );
}

#[test]
fn s3_event_replays_clean() {
    replay("s3_event", inputs("s3_event", vec![]), s3_event::check);
}

#[test]
fn pdf_scan_replays_clean() {
    let pdfs = with_extension(&shared_fixtures().join("inputs"), "pdf");
    replay("pdf_scan", inputs("pdf_scan", pdfs), pdf_scan::check);
}

#[test]
fn image_headers_replays_clean() {
    let mut all = inputs("image_headers", vec![]);
    for image in files_in(&shared_fixtures().join("inputs")) {
        let is_receipt = image
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("receipt."));
        if is_receipt {
            let mut head = std::fs::read(&image).unwrap();
            head.truncate(IMAGE_HEAD);
            all.push((format!("{} (head)", image.display()), head));
        }
    }
    replay("image_headers", all, image_headers::check);
}

#[test]
fn normalizers_replay_clean() {
    let fixtures = shared_fixtures();
    let mut payloads = with_extension(&fixtures.join("textract"), "json");
    payloads.extend(
        files_in(&fixtures.join("azure-di"))
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(".result.json")),
    );
    // Mindee's payloads lie at the top and one folder down.
    let mindee = fixtures.join("mindee-v2");
    payloads.extend(with_extension(&mindee, "json"));
    let folders = std::fs::read_dir(&mindee).into_iter().flatten().flatten();
    for folder in folders.map(|e| e.path()).filter(|p| p.is_dir()) {
        payloads.extend(with_extension(&folder, "json"));
    }
    replay(
        "normalizers",
        inputs("normalizers", payloads),
        normalizers::check,
    );
}
