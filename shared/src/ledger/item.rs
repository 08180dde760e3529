//! The stored record layouts, written down in one place.
//!
//! Jobs table (`JOBS_TABLE`), one item per job:
//!
//! | attribute        | type | meaning                                                        |
//! |------------------|------|----------------------------------------------------------------|
//! | `job_id`         | S    | partition key, `doc-<40 hex>` derived from the document key     |
//! | `state`          | S    | [`JobState`] name                                               |
//! | `state_shard`    | S    | `<State>#<k>`: partition key of the `by-state-shard` index      |
//! | `state_since`    | N    | unix ms when the state was entered; sort key of that index      |
//! | `version`        | N    | +1 on every write; every guarded write names the version it read|
//! | `profile`        | S    | workflow profile                                                |
//! | `content_sha256` | S    | hex SHA-256 of the document bytes                               |
//! | `src_bucket`, `src_key`, `src_version` | S | the S3 object that created the job     |
//! | `created_at`     | N    | unix ms                                                         |
//! | `lease_owner`, `lease_until` | S, N | side-effect lease; absent when nobody holds it     |
//! | `attempt_id`, `attempted_at` | S, N | last side effect recorded *before* it was made     |
//! | `vendor`         | S    | the vendor of the latest attempt (from its id); kept after it   |
//! | `vendor_job_id`  | S    | the vendor's id once known                                      |
//! | `reason_code`, `reason_message` | S | why the job was rejected, failed or needs review  |
//! | `file_type`, `size_bytes`, `page_count`, `text_layer`, `images`, `type_mismatch`, `dpi` | S, N, N, BOOL, BOOL, S, N | intake's inspection |
//! | `also_uploaded_as` | SS  | other S3 objects with the same content (suppressed duplicates)  |
//! | `result_key`, `result_summary` | S, S | the stored normalized result and its key fields     |
//! | `language`, `script`, `handwriting` | S, S, S | the result's text (`language::TextSegments`) |
//! | `queued_at`      | N    | unix ms the job last entered `Queued` (its submission window)   |
//! | `vendor_failures`| N    | vendor calls that failed in a row; absent = 0                   |
//! | `retry_owed`     | N    | retry-budget tokens the next attempt must spend; absent = 0     |
//! | `risky_resubmits`| N    | submissions made while an earlier one may have arrived          |
//! | `resubmit_approved` | BOOL | an operator accepted the risk of a second submission         |
//! | `orphan_vendor_jobs` | SS | other vendor jobs for this document (each was billed)          |
//! | `prepared_bucket`, `prepared_key`, `prepared_actions` | S, S, L | the copy preprocessing made for the vendor, and what it did |
//! | `prepared_pages` | S    | the upload's pages the copy holds, when blank pages were removed (`1-3,5 of 6`) |
//! | `prep_compute`   | S    | intake's compute preparing the document (JSON `cost::Compute`)  |
//! | `skew_tenths`, `text_height_px`, `blank_pages` | N, N, N | measured while preparing: an image's lean, its text lines' height, a PDF's blank pages |
//! | `part_count`, `part_pages`, `part_results` | N, N, M | a document split into parts: how many, pages each, each parsed part's result key by index |
//! | `part_of`, `part_index`, `part_first_page` (and `part_count`) | S, N, N | a part's job: the document's job, its index (from 0), its first page (from 1) |
//!
//! Dedupe table (`DEDUPE_TABLE`), one item per claimed event id:
//!
//! | attribute    | type | meaning                                                              |
//! |--------------|------|----------------------------------------------------------------------|
//! | `dedupe_key` | S    | partition key, `<scope>#<id>`                                         |
//! | `expires_at` | N    | unix **seconds**; the table's TTL attribute, also checked by the code |
//! | `claimed_at` | N    | unix ms                                                              |
//! | `token`      | S    | random per claim; fences `complete_claim` and `release_claim`        |
//! | `claim_status` | S  | `in_progress` (the holder is doing the work) or `done`; absent = done |
//! | `in_progress_until` | N | unix ms: past it, an unfinished claim may be taken over          |

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::inspect::FileType;
use crate::job::{
    Attempt, BenchmarkRun, Inspection, Job, JobId, JobState, LeaseRecord, PartOf, Parts,
    PreparedCopy, Profile, Reason, SourceObject,
};
use crate::language::{Handwriting, TextSegments};
use crate::second_opinion::SecondOpinion;
use crate::time::UnixMillis;

pub type Item = HashMap<String, AttributeValue>;

pub mod attr {
    pub const JOB_ID: &str = "job_id";
    pub const STATE: &str = "state";
    pub const STATE_SINCE: &str = "state_since";
    /// `<State>#<k>`: the state and the job's shard, the `by-state-shard` index's partition key.
    pub const STATE_SHARD: &str = "state_shard";
    pub const VERSION: &str = "version";
    pub const PROFILE: &str = "profile";
    pub const CONTENT_SHA256: &str = "content_sha256";
    pub const SRC_BUCKET: &str = "src_bucket";
    pub const SRC_KEY: &str = "src_key";
    pub const SRC_VERSION: &str = "src_version";
    pub const CREATED_AT: &str = "created_at";
    pub const LEASE_OWNER: &str = "lease_owner";
    pub const LEASE_UNTIL: &str = "lease_until";
    pub const ATTEMPT_ID: &str = "attempt_id";
    pub const ATTEMPTED_AT: &str = "attempted_at";
    pub const VENDOR_JOB_ID: &str = "vendor_job_id";
    /// The vendor of the latest attempt (`Job::vendor`): set with every attempt id.
    pub const VENDOR: &str = "vendor";
    pub const REASON_CODE: &str = "reason_code";
    pub const REASON_MESSAGE: &str = "reason_message";
    pub const FILE_TYPE: &str = "file_type";
    pub const SIZE_BYTES: &str = "size_bytes";
    pub const PAGE_COUNT: &str = "page_count";
    pub const TEXT_LAYER: &str = "text_layer";
    pub const IMAGES: &str = "images";
    pub const TYPE_MISMATCH: &str = "type_mismatch";
    pub const DPI: &str = "dpi";
    pub const ALSO_UPLOADED_AS: &str = "also_uploaded_as";
    pub const RESULT_KEY: &str = "result_key";
    pub const RESULT_SUMMARY: &str = "result_summary";
    pub const QUEUED_AT: &str = "queued_at";
    pub const VENDOR_FAILURES: &str = "vendor_failures";
    pub const RETRY_OWED: &str = "retry_owed";
    pub const RISKY_RESUBMITS: &str = "risky_resubmits";
    pub const RESUBMIT_APPROVED: &str = "resubmit_approved";
    pub const ORPHAN_VENDOR_JOBS: &str = "orphan_vendor_jobs";
    /// Every state the job entered, `State@unix_ms` (and `:reason_code` when it had one).
    pub const HISTORY: &str = "history";
    /// A reviewer's decision (JSON), kept beside the vendor's values.
    pub const REVIEW: &str = "review";
    /// What the job cost at the vendor (JSON `cost::JobCost`): estimate, then actual.
    pub const COST: &str = "cost";
    pub const BENCHMARK_RUN: &str = "benchmark_run";
    pub const CHANNEL: &str = "channel";
    /// The document's X-Ray trace header (`crate::trace_context`).
    pub const TRACE_HEADER: &str = "trace_header";
    /// The result's text (`language::TextSegments`): written by parse with the result.
    pub const LANGUAGE: &str = "language";
    pub const SCRIPT: &str = "script";
    pub const HANDWRITING: &str = "handwriting";
    /// A second opinion's child: the job it reads again (`second_opinion`).
    pub const SECOND_OPINION_OF: &str = "second_opinion_of";
    /// A parent's second opinion (JSON `second_opinion::SecondOpinion`).
    pub const SECOND_OPINION: &str = "second_opinion";
    pub const PREPARED_BUCKET: &str = "prepared_bucket";
    pub const PREPARED_KEY: &str = "prepared_key";
    pub const PREPARED_ACTIONS: &str = "prepared_actions";
    /// Measured while preparing (`job::Inspection`): an image's lean in tenths of a degree,
    /// its text lines' height, a PDF's blank pages.
    pub const SKEW_TENTHS: &str = "skew_tenths";
    pub const TEXT_HEIGHT_PX: &str = "text_height_px";
    pub const BLANK_PAGES: &str = "blank_pages";
    /// The upload's pages a prepared PDF holds (`job::PageMap::to_record`).
    pub const PREPARED_PAGES: &str = "prepared_pages";
    /// Intake's compute preparing the document (JSON `cost::Compute`).
    pub const PREP_COMPUTE: &str = "prep_compute";
    /// A split document's, and each of its parts' (`parts`): how many parts.
    pub const PART_COUNT: &str = "part_count";
    /// A split document: pages per part.
    pub const PART_PAGES: &str = "part_pages";
    /// A split document: each parsed part's result key, by index (a map, created empty).
    pub const PART_RESULTS: &str = "part_results";
    /// A part: the document's job, the part's index and its first page.
    pub const PART_OF: &str = "part_of";
    pub const PART_INDEX: &str = "part_index";
    pub const PART_FIRST_PAGE: &str = "part_first_page";

    pub const DEDUPE_KEY: &str = "dedupe_key";
    pub const EXPIRES_AT: &str = "expires_at";
    pub const CLAIMED_AT: &str = "claimed_at";
    pub const TOKEN: &str = "token";
    pub const CLAIM_STATUS: &str = "claim_status";
    pub const IN_PROGRESS_UNTIL: &str = "in_progress_until";
}

/// The global secondary index on (`state_shard`, `state_since`) that reconcile and the CLI
/// query (see `by_state`); no table scans.
pub const BY_STATE_INDEX: &str = "by-state-shard";

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A job row that cannot be decoded. This is a bug or a hand edit, never a retryable condition.
#[derive(Debug, thiserror::Error)]
#[error("job item is malformed: {0}")]
pub struct MalformedItem(pub String);

fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, MalformedItem> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        Some(_) => Err(MalformedItem(format!("attribute {name} is not a string"))),
        None => Err(MalformedItem(format!("attribute {name} is missing"))),
    }
}

fn opt_s(item: &Item, name: &str) -> Result<Option<String>, MalformedItem> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
        Some(_) => Err(MalformedItem(format!("attribute {name} is not a string"))),
    }
}

pub(super) fn get_n(item: &Item, name: &str) -> Result<u64, MalformedItem> {
    opt_n(item, name)?.ok_or_else(|| MalformedItem(format!("attribute {name} is missing")))
}

fn opt_n(item: &Item, name: &str) -> Result<Option<u64>, MalformedItem> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| MalformedItem(format!("attribute {name} is not an unsigned integer"))),
        Some(_) => Err(MalformedItem(format!("attribute {name} is not a number"))),
    }
}

fn opt_bool(item: &Item, name: &str) -> Result<Option<bool>, MalformedItem> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(MalformedItem(format!("attribute {name} is not a boolean"))),
    }
}

/// The inspection attributes of a new job.
pub fn inspection_to_item(inspection: &Inspection, item: &mut Item) {
    if let Some(t) = inspection.file_type {
        item.insert(attr::FILE_TYPE.into(), s(t.name()));
    }
    item.insert(attr::SIZE_BYTES.into(), n(inspection.size_bytes));
    if let Some(p) = inspection.pages {
        item.insert(attr::PAGE_COUNT.into(), n(u64::from(p)));
    }
    if let Some(b) = inspection.text_layer {
        item.insert(attr::TEXT_LAYER.into(), AttributeValue::Bool(b));
    }
    if let Some(b) = inspection.images {
        item.insert(attr::IMAGES.into(), AttributeValue::Bool(b));
    }
    if let Some(m) = &inspection.type_mismatch {
        item.insert(attr::TYPE_MISMATCH.into(), s(m));
    }
    if let Some(dpi) = inspection.dpi {
        item.insert(attr::DPI.into(), n(u64::from(dpi)));
    }
    if let Some(tenths) = inspection.skew_tenths {
        item.insert(
            attr::SKEW_TENTHS.into(),
            AttributeValue::N(tenths.to_string()),
        );
    }
    if let Some(px) = inspection.text_height_px {
        item.insert(attr::TEXT_HEIGHT_PX.into(), n(u64::from(px)));
    }
    if let Some(pages) = inspection.blank_pages {
        item.insert(attr::BLANK_PAGES.into(), n(u64::from(pages)));
    }
}

pub fn job_from_item(item: &Item) -> Result<Job, MalformedItem> {
    let id = JobId::parse(get_s(item, attr::JOB_ID)?).map_err(|e| MalformedItem(e.to_string()))?;
    let state: JobState = get_s(item, attr::STATE)?
        .parse()
        .map_err(|e: crate::job::UnknownState| MalformedItem(e.to_string()))?;
    let profile =
        Profile::new(get_s(item, attr::PROFILE)?).map_err(|e| MalformedItem(e.to_string()))?;
    let lease = match (
        opt_s(item, attr::LEASE_OWNER)?,
        opt_n(item, attr::LEASE_UNTIL)?,
    ) {
        (Some(owner), Some(until)) => Some(LeaseRecord {
            owner,
            until: UnixMillis(until),
        }),
        (None, None) => None,
        _ => {
            return Err(MalformedItem(
                "lease_owner and lease_until must come together".into(),
            ))
        }
    };
    let attempt = match (
        opt_s(item, attr::ATTEMPT_ID)?,
        opt_n(item, attr::ATTEMPTED_AT)?,
    ) {
        (Some(attempt_id), Some(at)) => Some(Attempt {
            attempt_id,
            attempted_at: UnixMillis(at),
        }),
        (None, None) => None,
        _ => {
            return Err(MalformedItem(
                "attempt_id and attempted_at must come together".into(),
            ))
        }
    };
    let reason = match (
        opt_s(item, attr::REASON_CODE)?,
        opt_s(item, attr::REASON_MESSAGE)?,
    ) {
        (Some(code), message) => Some(Reason {
            code,
            message: message.unwrap_or_default(),
        }),
        (None, _) => None,
    };
    Ok(Job {
        id,
        state,
        version: get_n(item, attr::VERSION)?,
        profile,
        content_sha256: get_s(item, attr::CONTENT_SHA256)?.to_owned(),
        source: SourceObject {
            bucket: get_s(item, attr::SRC_BUCKET)?.to_owned(),
            key: get_s(item, attr::SRC_KEY)?.to_owned(),
            version_id: opt_s(item, attr::SRC_VERSION)?,
        },
        created_at: UnixMillis(get_n(item, attr::CREATED_AT)?),
        state_since: UnixMillis(get_n(item, attr::STATE_SINCE)?),
        lease,
        attempt,
        vendor: opt_s(item, attr::VENDOR)?,
        vendor_job_id: opt_s(item, attr::VENDOR_JOB_ID)?,
        reason,
        inspection: Inspection {
            file_type: opt_s(item, attr::FILE_TYPE)?
                .map(|t| {
                    FileType::parse(&t)
                        .ok_or_else(|| MalformedItem(format!("unknown file_type {t:?}")))
                })
                .transpose()?,
            size_bytes: opt_n(item, attr::SIZE_BYTES)?.unwrap_or(0),
            pages: opt_n(item, attr::PAGE_COUNT)?.map(|p| u32::try_from(p).unwrap_or(u32::MAX)),
            text_layer: opt_bool(item, attr::TEXT_LAYER)?,
            images: opt_bool(item, attr::IMAGES)?,
            type_mismatch: opt_s(item, attr::TYPE_MISMATCH)?,
            dpi: opt_n(item, attr::DPI)?.map(|d| u32::try_from(d).unwrap_or(u32::MAX)),
            skew_tenths: match item.get(attr::SKEW_TENTHS) {
                Some(AttributeValue::N(v)) => Some(v.parse().map_err(|_| {
                    MalformedItem(format!("attribute {} is {v:?}", attr::SKEW_TENTHS))
                })?),
                _ => None,
            },
            text_height_px: opt_n(item, attr::TEXT_HEIGHT_PX)?
                .map(|h| u32::try_from(h).unwrap_or(u32::MAX)),
            blank_pages: opt_n(item, attr::BLANK_PAGES)?
                .map(|b| u32::try_from(b).unwrap_or(u32::MAX)),
        },
        result_key: opt_s(item, attr::RESULT_KEY)?,
        result_summary: opt_s(item, attr::RESULT_SUMMARY)?,
        queued_at: opt_n(item, attr::QUEUED_AT)?.map(UnixMillis),
        vendor_failures: small(item, attr::VENDOR_FAILURES)?,
        retry_owed: small(item, attr::RETRY_OWED)?,
        risky_resubmits: small(item, attr::RISKY_RESUBMITS)?,
        resubmit_approved: opt_bool(item, attr::RESUBMIT_APPROVED)?.unwrap_or(false),
        review: opt_s(item, attr::REVIEW)?,
        channel: opt_s(item, attr::CHANNEL)?,
        trace_header: opt_s(item, attr::TRACE_HEADER)?,
        text: match opt_s(item, attr::HANDWRITING)? {
            None => None,
            Some(h) => Some(TextSegments {
                language: opt_s(item, attr::LANGUAGE)?,
                script: opt_s(item, attr::SCRIPT)?,
                handwriting: Handwriting::parse(&h).ok_or_else(|| {
                    MalformedItem(format!("attribute {} is {h:?}", attr::HANDWRITING))
                })?,
            }),
        },
        benchmark_run: opt_s(item, attr::BENCHMARK_RUN)?
            .map(|r| BenchmarkRun::parse(&r).map_err(|e| MalformedItem(e.to_string())))
            .transpose()?,
        prepared: match (
            opt_s(item, attr::PREPARED_BUCKET)?,
            opt_s(item, attr::PREPARED_KEY)?,
        ) {
            (Some(bucket), Some(key)) => Some(PreparedCopy {
                bucket,
                key,
                actions: match item.get(attr::PREPARED_ACTIONS) {
                    Some(AttributeValue::L(list)) => {
                        list.iter().filter_map(|a| a.as_s().ok().cloned()).collect()
                    }
                    _ => Vec::new(),
                },
                pages: opt_s(item, attr::PREPARED_PAGES)?
                    .map(|r| {
                        crate::job::PageMap::parse(&r).ok_or_else(|| {
                            MalformedItem(format!(
                                "attribute {} is {r:?}, not a page map",
                                attr::PREPARED_PAGES
                            ))
                        })
                    })
                    .transpose()?,
            }),
            _ => None,
        },
        prep_compute: match opt_s(item, attr::PREP_COMPUTE)? {
            None => None,
            Some(json) => Some(serde_json::from_str(&json).map_err(|e| {
                MalformedItem(format!(
                    "attribute {} is not a compute record: {e}",
                    attr::PREP_COMPUTE
                ))
            })?),
        },
        parts: parts_from_item(item)?,
        part_of: match opt_s(item, attr::PART_OF)? {
            None => None,
            Some(parent) => Some(PartOf {
                parent: JobId::parse(&parent).map_err(|e| MalformedItem(e.to_string()))?,
                index: small(item, attr::PART_INDEX)?,
                count: small(item, attr::PART_COUNT)?,
                first_page: small(item, attr::PART_FIRST_PAGE)?,
            }),
        },
        second_opinion_of: opt_s(item, attr::SECOND_OPINION_OF)?
            .map(|p| JobId::parse(&p).map_err(|e| MalformedItem(e.to_string())))
            .transpose()?,
        second_opinion: match opt_s(item, attr::SECOND_OPINION)? {
            None => None,
            Some(json) => Some(SecondOpinion::from_json(&json).map_err(|e| {
                MalformedItem(format!(
                    "attribute {} is not a second opinion: {e}",
                    attr::SECOND_OPINION
                ))
            })?),
        },
        cost: match opt_s(item, attr::COST)? {
            None => None,
            Some(json) => Some(serde_json::from_str(&json).map_err(|e| {
                MalformedItem(format!("attribute {} is not a cost: {e}", attr::COST))
            })?),
        },
        history: match item.get(attr::HISTORY) {
            None | Some(AttributeValue::Null(_)) => Vec::new(),
            Some(AttributeValue::L(entries)) => entries
                .iter()
                .filter_map(|e| e.as_s().ok())
                .filter_map(|e| crate::job::StateChange::parse(e))
                .collect(),
            Some(_) => {
                return Err(MalformedItem(format!(
                    "attribute {} is not a list",
                    attr::HISTORY
                )))
            }
        },
        orphan_vendor_jobs: match item.get(attr::ORPHAN_VENDOR_JOBS) {
            None | Some(AttributeValue::Null(_)) => Vec::new(),
            Some(AttributeValue::Ss(ids)) => ids.clone(),
            Some(_) => {
                return Err(MalformedItem(format!(
                    "attribute {} is not a string set",
                    attr::ORPHAN_VENDOR_JOBS
                )))
            }
        },
    })
}

/// A split document's plan and its parts' recorded results (`None` on any other job, a part's
/// included: a part has `part_of`, never `part_pages`).
fn parts_from_item(item: &Item) -> Result<Option<Parts>, MalformedItem> {
    let Some(pages_per_part) = opt_n(item, attr::PART_PAGES)? else {
        return Ok(None);
    };
    let mut results = std::collections::BTreeMap::new();
    match item.get(attr::PART_RESULTS) {
        None => {}
        Some(AttributeValue::M(map)) => {
            for (index, key) in map {
                let index = index.parse::<u32>().map_err(|_| {
                    MalformedItem(format!("{} has the index {index:?}", attr::PART_RESULTS))
                })?;
                let key = key.as_s().map_err(|_| {
                    MalformedItem(format!("{}.{index} is not a string", attr::PART_RESULTS))
                })?;
                results.insert(index, key.clone());
            }
        }
        Some(_) => {
            return Err(MalformedItem(format!(
                "attribute {} is not a map",
                attr::PART_RESULTS
            )))
        }
    }
    Ok(Some(Parts {
        count: small(item, attr::PART_COUNT)?,
        pages_per_part: u32::try_from(pages_per_part).unwrap_or(u32::MAX),
        results,
    }))
}

/// A counter attribute; absent is 0.
fn small(item: &Item, name: &str) -> Result<u32, MalformedItem> {
    Ok(opt_n(item, name)?.map_or(0, |v| u32::try_from(v).unwrap_or(u32::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> Item {
        HashMap::from([
            (attr::JOB_ID.into(), s(format!("doc-{}", "a".repeat(40)))),
            (attr::STATE.into(), s("Submitting")),
            (attr::VERSION.into(), n(3)),
            (attr::PROFILE.into(), s("receipt")),
            (attr::CONTENT_SHA256.into(), s("ab")),
            (attr::SRC_BUCKET.into(), s("b")),
            (attr::SRC_KEY.into(), s("receipts/x.jpg")),
            (attr::CREATED_AT.into(), n(10)),
            (attr::STATE_SINCE.into(), n(20)),
        ])
    }

    #[test]
    fn decodes_a_minimal_job() {
        let job = job_from_item(&minimal()).unwrap();
        assert_eq!(job.state, JobState::Submitting);
        assert_eq!(job.version, 3);
        assert_eq!(job.lease, None);
        assert_eq!(job.attempt, None);
        assert_eq!(job.source.version_id, None);
    }

    #[test]
    fn rejects_half_a_lease_and_unknown_states() {
        let mut item = minimal();
        item.insert(attr::LEASE_OWNER.into(), s("w1"));
        assert!(job_from_item(&item).unwrap_err().0.contains("lease_owner"));

        let mut item = minimal();
        item.insert(attr::STATE.into(), s("INPROGRESS"));
        assert!(job_from_item(&item).unwrap_err().0.contains("INPROGRESS"));

        let mut item = minimal();
        item.insert(attr::VERSION.into(), s("3"));
        assert!(job_from_item(&item).unwrap_err().0.contains("version"));
    }
}
