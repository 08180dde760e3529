//! Segments: the bounded values metrics are sliced by — "segment first, then interpret".
//!
//! CloudWatch bills and indexes every distinct combination of dimension values, so no value may
//! come straight from a user: each function here maps what it is given onto a small fixed set.
//! - `Pages`: four page-count buckets;
//! - `Kind`: image, PDF with a text layer, scanned PDF, other;
//! - `Path`: how a document reached its result — directly, through review, or after a retry;
//! - `Source`: the uploader's channel, from an allowlist (`METRIC_SOURCES`, at most
//!   [`MAX_SOURCES`]); anything else is `other`, no channel is `direct`, benchmark runs are
//!   `benchmark`.

use std::collections::BTreeSet;

use crate::inspect::FileType;
use crate::job::{Inspection, Job, JobState};

/// The user metadata key (`x-amz-meta-…`) an uploader may set to name its channel.
pub const SOURCE_METADATA: &str = "ocrbridge-source";

/// The most sources the allowlist may hold.
pub const MAX_SOURCES: usize = 20;

/// A page-count bucket: `1`, `2-5`, `6-20`, `21+` (images count as one page).
pub fn page_bucket(pages: Option<u32>) -> &'static str {
    match pages.unwrap_or(1) {
        0..=1 => "1",
        2..=5 => "2-5",
        6..=20 => "6-20",
        _ => "21+",
    }
}

/// What kind of document it is, as intake found it.
pub fn kind(inspection: &Inspection) -> &'static str {
    match (inspection.file_type, inspection.text_layer) {
        (Some(FileType::Pdf), Some(true)) => "pdf_text",
        (Some(FileType::Pdf), _) => "pdf_scanned",
        (Some(t), _) if t.mime().starts_with("image/") => "image",
        _ => "other",
    }
}

/// How a settled job got where it is: `review` (a rule sent it to a person), `retry` (it was
/// queued more than once: an operator's or the system's retry), else `direct`.
pub fn path(job: &Job, settled_in: JobState) -> &'static str {
    if settled_in == JobState::NeedsReview {
        "review"
    } else if job
        .history
        .iter()
        .filter(|c| c.state == JobState::Queued)
        .count()
        > 1
    {
        "retry"
    } else {
        "direct"
    }
}

/// The allowlist of source channels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    allowed: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourcesError {
    #[error("METRIC_SOURCES={0:?}: each source is 1-32 of [a-z0-9_-], comma-separated")]
    BadName(String),
    #[error("METRIC_SOURCES has {0} sources; at most {MAX_SOURCES} keep CloudWatch's dimensions bounded")]
    TooMany(usize),
}

/// Whether `name` can be a source: 1–32 of `a-z 0-9 - _`.
pub fn valid(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Sources {
    /// `METRIC_SOURCES`: `email,scanner,api` (empty or unset: every channel is `other`).
    pub fn parse(list: &str) -> Result<Self, SourcesError> {
        let allowed: BTreeSet<String> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                if valid(s) {
                    Ok(s.to_owned())
                } else {
                    Err(SourcesError::BadName(list.to_owned()))
                }
            })
            .collect::<Result<_, _>>()?;
        if allowed.len() > MAX_SOURCES {
            return Err(SourcesError::TooMany(allowed.len()));
        }
        Ok(Sources { allowed })
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SourcesError> {
        Sources::parse(&get("METRIC_SOURCES").unwrap_or_default())
    }

    /// The channel of an upload: the uploader's `x-amz-meta-ocrbridge-source`, else the key's
    /// first segment after the profile prefix (`receipts/email/x.pdf` → `email`); mapped onto the
    /// allowlist.
    pub fn source_of(&self, key: &str, declared: Option<&str>, benchmark: bool) -> String {
        if benchmark {
            return "benchmark".into();
        }
        let segment = declared.map(str::to_owned).or_else(|| {
            let mut parts = key.split('/');
            let _profile = parts.next();
            let segment = parts.next()?;
            // `receipts/x.pdf` has no channel segment: the file is the second part.
            parts.next().map(|_| segment.to_owned())
        });
        match segment {
            None => "direct".into(),
            Some(s) => {
                let s = s.trim().to_ascii_lowercase();
                if self.allowed.contains(&s) {
                    s
                } else {
                    "other".into()
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_bounded_by_the_allowlist() {
        let sources = Sources::parse("email, scanner").unwrap();
        assert_eq!(
            sources.source_of("receipts/email/a.pdf", None, false),
            "email"
        );
        assert_eq!(
            sources.source_of("receipts/Email/a.pdf", None, false),
            "email"
        );
        assert_eq!(
            sources.source_of("receipts/fax/a.pdf", None, false),
            "other"
        );
        assert_eq!(sources.source_of("receipts/a.pdf", None, false), "direct");
        assert_eq!(
            sources.source_of("receipts/fax/a.pdf", Some("scanner"), false),
            "scanner"
        );
        assert_eq!(
            sources.source_of("receipts/x/a.pdf", Some("../../etc"), false),
            "other"
        );
        assert_eq!(
            sources.source_of("receipts/benchmark/bq-1/a.jpg", None, true),
            "benchmark"
        );
        assert!(Sources::parse("Email").is_err());
        let many: Vec<String> = (0..=MAX_SOURCES).map(|i| format!("s{i}")).collect();
        assert_eq!(
            Sources::parse(&many.join(",")),
            Err(SourcesError::TooMany(MAX_SOURCES + 1))
        );
        assert_eq!(
            Sources::parse("")
                .unwrap()
                .source_of("receipts/email/a.pdf", None, false),
            "other"
        );
    }

    #[test]
    fn page_buckets_and_kinds() {
        assert_eq!(page_bucket(None), "1");
        assert_eq!(page_bucket(Some(5)), "2-5");
        assert_eq!(page_bucket(Some(21)), "21+");
        let pdf = |text| Inspection {
            file_type: Some(FileType::Pdf),
            size_bytes: 1,
            pages: Some(1),
            text_layer: text,
            ..Inspection::default()
        };
        assert_eq!(kind(&pdf(Some(true))), "pdf_text");
        assert_eq!(kind(&pdf(Some(false))), "pdf_scanned");
        let png = Inspection {
            file_type: Some(FileType::Png),
            ..pdf(None)
        };
        assert_eq!(kind(&png), "image");
    }
}
