//! Parse's half of a document split into parts ([`ocrbridge::parts`]): each part's result is
//! recorded on the document's job, and the part that completes the set merges them into the
//! document's one result.
//!
//! Crash points, in order, and what a redelivery does:
//! - recording: a conditional write on the document's job, only while it is `Received` or
//!   waits in `InParts`, and only if the part has no result recorded yet. A part parsed again after a crash (its
//!   lease expired, a new attempt, a new result key) finds its result recorded and changes
//!   nothing: the merge reads the first recorded, and the vendor is never asked again;
//! - merging: whoever reads the set complete (the write that completed it, or a redelivery
//!   that finds it so) merges the recorded results, stores the merged result under one key
//!   (`results/<job>/merged.json`, the same bytes each time), and settles the document's job
//!   with a version-guarded transition out of `InParts`. Two parts merging at once write the
//!   same bytes, and one transition wins. A set completed while the document was still
//!   `Received` (its intake died after queueing the parts and came back after they were
//!   parsed) is merged when reconcile finds the document `InParts` with every result recorded
//!   and sends parse a notice for it ([`Parse::merge_recorded`]);
//! - completing: the part's own job completes last, with its result and its cost (each part
//!   is billed for its own pages, once). A part that dies before that is redelivered, finds the
//!   document settled, and completes.

use chrono::Utc;
use ocrbridge::blob::ObjectRef;
use ocrbridge::cost::Spend;
use ocrbridge::document::Document;
use ocrbridge::failpoints;
use ocrbridge::job::{Job, JobState, PartOf, Reason};
use ocrbridge::language::{self, TextSegments};
use ocrbridge::ledger::{Change, Lease, PartRecorded, TransitionError};
use ocrbridge::parts::{self, Plan};
use ocrbridge::rules;
use ocrbridge::time::UnixMillis;
use ocrbridge::vendors::Vendor;
use tracing::{info, warn};

use crate::second_opinion::Reading;
use crate::Parse;
use ocrbridge::batch::Disposition;

/// How many times settling re-reads a document's job that changed under it.
const SETTLE_TRIES: u32 = 3;

impl<V: Vendor> Parse<V> {
    /// A part's result: recorded on the document's job, merged if it completes the set, then
    /// the part completes with its own reading and cost.
    pub(crate) async fn finish_part(
        &self,
        lease: &Lease,
        part: &Job,
        of: &PartOf,
        reading: Reading,
        attempt: u32,
    ) -> Disposition {
        let recorded = failpoints::around(
            "parse.before_record_part",
            "parse.after_record_part",
            part.id.as_str(),
            self.ledger
                .record_part(&of.parent, of.index, &reading.result_key),
        )
        .await;
        let document = match recorded {
            Ok(PartRecorded::Recorded(document)) => Some(document),
            Ok(PartRecorded::NotRecorded(document)) => {
                info!(parent = %of.parent, state = %document.state, "this part's result was recorded before");
                Some(document)
            }
            Ok(PartRecorded::Missing) => {
                warn!(parent = %of.parent, "the document this part belongs to does not exist");
                None
            }
            Err(e) => {
                return self
                    .give_back(lease, attempt, "part_unrecorded", e.to_string())
                    .await
            }
        };
        if let Some(document) = document.filter(|d| d.state == JobState::InParts) {
            let complete = document
                .parts
                .as_ref()
                .is_some_and(|p| p.results.len() as u32 >= p.count);
            if complete {
                if let Err(e) = self.settle_parts(document).await {
                    return self.give_back(lease, attempt, "parts_unmerged", e).await;
                }
            }
        }
        self.complete_reading(lease, part, reading, attempt, |done| {
            if let Some(actual) = done.cost.as_ref().and_then(|c| c.actual) {
                self.spent(part, Spend::Billed, actual);
            }
            info!(parent = %of.parent, part = of.index + 1, of = of.count, "part parsed");
        })
        .await
    }

    /// A notice for a document waiting in `InParts` (reconcile's, when every part's result is
    /// recorded): merges them if they are all there; otherwise the parts are still on their way.
    pub(crate) async fn merge_recorded(&self, document: Job, attempt: u32) -> Disposition {
        let complete = document
            .parts
            .as_ref()
            .is_some_and(|p| p.results.len() as u32 >= p.count);
        if !complete {
            info!("parts are still on their way; nothing to merge yet");
            return Disposition::Done;
        }
        match self.settle_parts(document).await {
            Ok(()) => Disposition::Done,
            Err(e) => self.later(attempt, "parts_unmerged", e),
        }
    }

    /// Merges the recorded results of `document`'s parts and settles it: `Completed`, or
    /// `NeedsReview` with the rules' reasons, as any parsed document.
    async fn settle_parts(&self, mut document: Job) -> Result<(), String> {
        for _ in 0..SETTLE_TRIES {
            let Some(parts) = document.parts.clone() else {
                return Err(format!("job {} records no parts", document.id));
            };
            let plan = Plan {
                pages: document.inspection.pages.unwrap_or_default(),
                per_part: parts.pages_per_part,
            };
            let mut readings = Vec::with_capacity(parts.results.len());
            for (index, key) in &parts.results {
                let (first_page, _) = plan.part(*index);
                readings.push((first_page, self.stored_document(key).await?));
            }
            let mut merged = parts::merge(document.id.as_str(), readings)
                .map_err(|e| format!("the parts' results do not merge: {e}"))?;
            language::identify(&mut merged);
            let text = TextSegments::of(&merged);
            let json = merged
                .to_validated_json()
                .map_err(|e| format!("the merged result breaks the schema: {e}"))?;
            let reasons = rules::check(&merged.fields, &self.config.rules, Utc::now().date_naive());
            let result_key = parts::merged_result_key(&document.id);
            let body = serde_json::to_vec(&json).map_err(|e| e.to_string())?;
            let target = ObjectRef {
                bucket: self.stack.results_bucket.clone(),
                key: result_key.clone(),
                version_id: None,
            };
            failpoints::around(
                "parse.before_store_merged",
                "parse.after_store_merged",
                document.id.as_str(),
                self.blob.put(&target, body, "application/json", None),
            )
            .await
            .map_err(|e| e.to_string())?;
            let summary = crate::summary(&merged.fields, &reasons);
            let (to, change) = if reasons.is_empty() {
                (JobState::Completed, Change::none())
            } else {
                (
                    JobState::NeedsReview,
                    Change::none()
                        .with_reason(Reason::new("needs_review", crate::review_message(&reasons))),
                )
            };
            let settled = failpoints::around(
                "parse.before_settle_parts",
                "parse.after_settle_parts",
                document.id.as_str(),
                self.ledger.transition(
                    &document,
                    to,
                    change.with_result(&result_key, summary).with_text(text),
                    UnixMillis::now(),
                ),
            )
            .await;
            match settled {
                Ok(done) => {
                    let segments = TextSegments::of(&merged);
                    self.count_review(&done, &reasons, &segments.dimensions());
                    self.count_settled(&done, &segments.dimensions());
                    info!(job_id = %done.id, state = %done.state, parts = parts.count, pages = merged.pages.len(), "merged the parts' results");
                    return Ok(());
                }
                Err(TransitionError::Stale { current, .. }) if current.state.is_settled() => {
                    info!(job_id = %current.id, state = %current.state, "settled meanwhile; nothing to merge");
                    return Ok(());
                }
                Err(TransitionError::Stale { current, .. }) => document = *current,
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(format!(
            "job {} kept changing while its parts were merged",
            document.id
        ))
    }

    /// A stored result, as a document.
    pub(crate) async fn stored_document(&self, key: &str) -> Result<Document, String> {
        let object = ObjectRef {
            bucket: self.stack.results_bucket.clone(),
            key: key.to_owned(),
            version_id: None,
        };
        let bytes = self
            .blob
            .get(&object)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("the result {key} is missing"))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("the result {key} does not read as a document: {e}"))
    }
}
