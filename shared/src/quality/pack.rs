//! Benchmark packs: documents under their profile prefix, each with its truth beside it.
//!
//! ```text
//! receipts/000.jpg
//! receipts/000.truth.json   {"fields": {"merchant": "…", "date": "25/12/2018", "total": "9.00"},
//!                            "lines": ["TAN WOON YANN", …]}
//! invoices/inv-001.pdf
//! invoices/inv-001.truth.json
//! ```
//!
//! Field names are the normalized schema's (`merchant`, `date`, `total`… for receipts;
//! `vendor_name`, `invoice_number`, `issue_date`… for invoices); a field the truth leaves out is
//! not scored for that document ("where known").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a document should read as.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Truth {
    /// Business-critical fields, as text (money as `9.00`, dates as printed or ISO).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// The document's text lines in reading order, where known (for CER and WER).
    #[serde(default)]
    pub lines: Vec<String>,
    /// Its line items, where known (`items`: matched by optimal assignment, then per column).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub line_items: Vec<TruthItem>,
    /// The language the document is written in (ISO 639-1), where known: quality is read per
    /// language, and the language the pipeline detected is checked against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// One expected line item: numbers as printed or plain (`1,000.00`, `1000`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TruthItem {
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<String>,
    pub amount: String,
}

/// One document of a pack: its key relative to the pack (`receipts/000.jpg`) and its truth.
#[derive(Debug, Clone, PartialEq)]
pub struct PackDocument {
    pub key: String,
    pub truth: Truth,
}

/// A pack, read from a folder.
#[derive(Debug, Clone)]
pub struct Pack {
    pub name: String,
    pub documents: Vec<(PackDocument, PathBuf)>,
}

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("cannot read the pack at {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a truth file ({{\"fields\": {{…}}, \"lines\": […]}}): {message}")]
    Truth { path: String, message: String },
    #[error("{0} has no documents with a truth file beside them (<name>.truth.json)")]
    Empty(String),
}

/// The truth file's key for a document's key: `receipts/000.jpg` → `receipts/000.truth.json`.
pub fn truth_key(document_key: &str) -> String {
    let stem = match document_key.rsplit_once('.') {
        Some((stem, _)) if !stem.ends_with('/') => stem,
        _ => document_key,
    };
    format!("{stem}.truth.json")
}

/// Whether a key in a pack is a truth file (not a document).
pub fn is_truth_key(key: &str) -> bool {
    key.ends_with(".truth.json")
}

pub fn parse_truth(path: &str, bytes: &[u8]) -> Result<Truth, PackError> {
    serde_json::from_slice(bytes).map_err(|e| PackError::Truth {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

impl Pack {
    /// Reads every document with a truth file under `dir`; documents without one are skipped
    /// (a pack may carry licences and notes).
    pub fn load(dir: &Path) -> Result<Pack, PackError> {
        let io = |path: &Path, source| PackError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).map_err(|e| io(&d, e))? {
                let path = entry.map_err(|e| io(&d, e))?.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(dir) {
                    files.push((rel.to_string_lossy().replace('\\', "/"), path));
                }
            }
        }
        files.sort();
        let mut documents = Vec::new();
        for (key, path) in &files {
            if is_truth_key(key) || !key.contains('/') {
                continue;
            }
            let truth_path = dir.join(truth_key(key));
            let Ok(bytes) = std::fs::read(&truth_path) else {
                continue;
            };
            let truth = parse_truth(&truth_path.display().to_string(), &bytes)?;
            documents.push((
                PackDocument {
                    key: key.clone(),
                    truth,
                },
                path.clone(),
            ));
        }
        if documents.is_empty() {
            return Err(PackError::Empty(dir.display().to_string()));
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pack".into());
        Ok(Pack { name, documents })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truth_sits_beside_its_document() {
        assert_eq!(truth_key("receipts/000.jpg"), "receipts/000.truth.json");
        assert_eq!(truth_key("invoices/a.b.pdf"), "invoices/a.b.truth.json");
        assert!(is_truth_key("receipts/000.truth.json"));
        assert!(!is_truth_key("receipts/000.jpg"));
    }

    #[test]
    fn loads_documents_with_truth_and_skips_the_rest() {
        let dir = std::env::temp_dir().join(format!("pack-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("receipts")).unwrap();
        std::fs::write(dir.join("LICENSE"), "MIT").unwrap();
        std::fs::write(dir.join("receipts/a.jpg"), b"jpg").unwrap();
        std::fs::write(
            dir.join("receipts/a.truth.json"),
            r#"{"fields": {"total": "9.00"}, "lines": ["TOTAL 9.00"]}"#,
        )
        .unwrap();
        std::fs::write(dir.join("receipts/b.jpg"), b"no truth").unwrap();
        let pack = Pack::load(&dir).unwrap();
        assert_eq!(pack.documents.len(), 1);
        assert_eq!(pack.documents[0].0.key, "receipts/a.jpg");
        assert_eq!(pack.documents[0].0.truth.fields["total"], "9.00");
        std::fs::write(dir.join("receipts/a.truth.json"), r#"{"total": "9.00"}"#).unwrap();
        assert!(matches!(Pack::load(&dir), Err(PackError::Truth { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
