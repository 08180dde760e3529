//! Documents past the vendor's page limit, sent in parts (`PDF_PART_PAGES`).
//!
//! A PDF with more pages than the limit is split at intake into parts of at most that many pages
//! ([`split`]), each written to `prepared/<job>/part-NNN-of-MMM.pdf` in the results bucket
//! before any job names it. The upload's job records the plan ([`crate::job::Parts`]) and waits
//! in `InParts`; each part is a job of its own ([`part_key`]: a function of the upload's job and
//! the part's index, so a redelivered intake finds the parts it created), sent by submit exactly
//! once under the same lease and fence as any job, and billed for its own pages. Parse records
//! each parsed part's result on the upload's job (a conditional write: the first recorded wins),
//! and whichever part completes the set merges the results ([`merge`]), with every page number
//! moved by its part's offset, and settles the upload's job with the merged result.
//!
//! ```text
//! PDF_PART_PAGES=100   # 0 (the default): never split; a PDF over the vendor's limit is refused by it
//! ```

pub mod merge;
pub mod split;

use sha2::{Digest, Sha256};

use crate::config::SettingError;
use crate::job::{DocumentKey, JobId};

pub use merge::merge;
pub use split::{split, split_each, SplitError};

const SETTING: &str = "PDF_PART_PAGES";

/// `PDF_PART_PAGES`: the most pages one vendor request may carry; `None` never splits.
pub fn part_pages_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<u32>, SettingError> {
    let Some(raw) = lookup(SETTING).filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    match raw.trim().parse::<u32>() {
        Ok(0) => Ok(None),
        Ok(pages) => Ok(Some(pages)),
        Err(_) => Err(SettingError {
            name: SETTING,
            value: raw,
            expected: "a whole number of pages (0 never splits)".into(),
        }),
    }
}

/// How a document of `pages` pages is cut into parts of at most `per_part`; `None` when it fits
/// in one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub pages: u32,
    pub per_part: u32,
}

impl Plan {
    pub fn for_document(pages: u32, per_part: Option<u32>) -> Option<Plan> {
        let per_part = per_part.filter(|p| *p > 0)?;
        (pages > per_part).then_some(Plan { pages, per_part })
    }

    pub fn count(&self) -> u32 {
        self.pages.div_ceil(self.per_part)
    }

    /// Part `index`'s first page (from 1) and its number of pages.
    pub fn part(&self, index: u32) -> (u32, u32) {
        let first = index * self.per_part + 1;
        (first, self.per_part.min(self.pages + 1 - first))
    }
}

/// Part `index`'s job key: a function of the upload's job and the index alone, so creating the
/// part's job again finds the one already there (the conditional put is the dedupe).
pub fn part_key(parent: &JobId, index: u32) -> DocumentKey {
    let mut hasher = Sha256::new();
    hasher.update(b"ocrbridge/part/v1\n");
    hasher.update(parent.as_str().as_bytes());
    hasher.update(b"\n");
    hasher.update(index.to_be_bytes());
    DocumentKey::from_digest(hasher.finalize().into())
}

/// Where part `index` of `count` of `parent` is written, in the results bucket.
pub fn object_key(parent: &JobId, index: u32, count: u32) -> String {
    format!("prepared/{parent}/part-{:03}-of-{count:03}.pdf", index + 1)
}

/// Where the merged result of `parent` is stored: one key, so a merge repeated after a crash
/// writes the same bytes to the same place.
pub fn merged_result_key(parent: &JobId) -> String {
    format!("results/{parent}/merged.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_covers_every_page_once() {
        assert_eq!(Plan::for_document(100, Some(100)), None);
        assert_eq!(Plan::for_document(400, None), None);
        let plan = Plan::for_document(401, Some(100)).unwrap();
        assert_eq!(plan.count(), 5);
        let parts: Vec<_> = (0..plan.count()).map(|i| plan.part(i)).collect();
        assert_eq!(
            parts,
            [(1, 100), (101, 100), (201, 100), (301, 100), (401, 1)]
        );
    }

    #[test]
    fn part_keys_differ_by_index_and_parent_and_repeat() {
        let a = JobId::parse(&format!("doc-{}", "a".repeat(40))).unwrap();
        let b = JobId::parse(&format!("doc-{}", "b".repeat(40))).unwrap();
        assert_eq!(part_key(&a, 0), part_key(&a, 0));
        assert_ne!(part_key(&a, 0), part_key(&a, 1));
        assert_ne!(part_key(&a, 0), part_key(&b, 0));
    }

    #[test]
    fn the_setting_reads_zero_as_never() {
        let read = |v: &str| {
            let v = v.to_owned();
            part_pages_from_lookup(move |_| Some(v.clone()))
        };
        assert_eq!(read("0").unwrap(), None);
        assert_eq!(read("100").unwrap(), Some(100));
        assert!(read("ten").is_err());
        assert_eq!(part_pages_from_lookup(|_| None).unwrap(), None);
    }
}
