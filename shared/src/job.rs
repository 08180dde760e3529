//! The job: one document's way through the pipeline, as an explicit state machine.
//!
//! ```text
//!                 ┌──────────── Rejected (intake validation)
//!  Received ──► Queued ──► Submitting ──► Submitted ──► ResultReady ──► Parsing ──► Completed
//!      │        ▲ ▲ │          │   │          ▲  │              │             │  └───► NeedsReview ──► Completed
//!      │        │ │ │          │   └──► Held ─┘  │              │             │
//!      │        │ └─┼──────────┼────────── Held (operator: retry)             │
//!      └────────┼───┴──────────┴──────────────────┴──────────────┴─────────────┴──────► Failed
//!               └──────────────────────────────────────────────────────── Failed (operator: retry, retryable reasons only)
//! ```
//!
//! A verified completion that names a job whose submission's answer was lost adopts its vendor
//! job from `Queued`, `Submitting` (nobody holding it), `Held` or `Failed` straight to
//! `Submitted` — a job that stopped without a vendor job, whose document the vendor did process
//! and bill after all: its result is the document's, not a loss. Adoption never replaces a
//! vendor job the job has (the ledger's condition), nor takes back one the job discarded.
//!
//! A PDF past the vendor's page limit is split at intake (`parts`): the upload's job goes
//! `Received → InParts`, each part is a job of its own that takes the path above, and the last
//! part to be parsed settles the upload's job with the merged result (`InParts → Completed |
//! NeedsReview`), or reconcile fails it when a part fails (`InParts → Failed`).
//!
//! `Held` is a job parked for an operator: the pipeline will not move it on its own, except to
//! adopt the vendor job a late completion reveals (`Held → Submitted`). A job is held when the
//! vendor refused our credentials (`vendor_auth_failed`), or when a submission's answer was lost
//! and the vendor offers no way to find out whether it arrived (`submission_outcome_unknown`).
//! `Failed` is final for what cannot be fixed (a bad document, a vendor that rejected it) and
//! retryable for what can (an outage past the maximum age, a result parsed before an adapter fix):
//! [`reason::is_retryable`] is the one list, and the ledger enforces it in the condition of the
//! retry write.
//!
//! Every edge above is listed in [`JobState::can_transition_to`]; the ledger refuses anything else
//! with a typed error before it talks to DynamoDB, and DynamoDB refuses a stale edge (someone else
//! moved the job first) through the condition expression. The serialized names of the states are
//! defined once, by serde, and used verbatim in DynamoDB and in the `by-state-shard` index.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::inspect::FileType;
use crate::time::UnixMillis;

/// Where a job stands. `Completed` and `Rejected` never change again; `NeedsReview` waits for a
/// reviewer, `Held` for an operator, and `Failed` only moves when an operator retries a
/// retryable reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum JobState {
    /// The document was seen in S3 and passed validation; the job row exists.
    Received,
    /// A submit message for the job is (or was) on the submit queue.
    Queued,
    /// A submit worker holds, or held, the submit lease. The vendor may or may not have the document.
    Submitting,
    /// The vendor accepted the document and gave us its job id.
    Submitted,
    /// The vendor reports a finished result that is waiting to be parsed.
    ResultReady,
    /// A parse worker holds the parse lease.
    Parsing,
    /// A normalized result is stored and passed every rule.
    Completed,
    /// A normalized result is stored but a rule or a confidence threshold wants a human.
    NeedsReview,
    /// Intake refused the document (type, size, encryption…). Nothing was sent to the vendor.
    Rejected,
    /// The pipeline gave up: vendor failure, permanent error or maximum age.
    Failed,
    /// Parked for an operator (see the module docs); never moved by the pipeline except to adopt
    /// the vendor job a late completion reveals.
    Held,
    /// Split into parts past the vendor's page limit (`parts`): each part is a job sent on its
    /// own, and the last part parsed settles this one with the merged result.
    InParts,
}

impl JobState {
    pub const ALL: [JobState; 12] = [
        JobState::Received,
        JobState::Queued,
        JobState::Submitting,
        JobState::Submitted,
        JobState::ResultReady,
        JobState::Parsing,
        JobState::Completed,
        JobState::NeedsReview,
        JobState::Rejected,
        JobState::Failed,
        JobState::Held,
        JobState::InParts,
    ];

    /// The one transition table. A job only moves forward, with two exceptions that only an
    /// operator's retry takes (`Failed → Queued` for a retryable reason, `Held → Queued`), and
    /// the adoption of a vendor job a verified completion reveals ([`Self::is_adoption`]);
    /// `Failed` is reachable from every live state so that a maximum-age sweep or a permanent
    /// error can always end a job.
    pub fn can_transition_to(self, to: JobState) -> bool {
        use JobState::*;
        matches!(
            (self, to),
            (Received, Queued | Rejected | Failed | InParts)
                | (InParts, Completed | NeedsReview | Failed)
                | (Queued, Submitting | Submitted | Failed)
                | (Submitting, Submitted | Held | Failed)
                | (Submitted, ResultReady | Failed)
                | (ResultReady, Parsing | Failed)
                | (Parsing, Completed | NeedsReview | Failed)
                | (NeedsReview, Completed | Failed)
                | (Held, Queued | Submitted | Failed)
                | (Failed, Queued | Submitted)
        )
    }

    /// The edges a verified completion takes to adopt the vendor job it names (see the module
    /// docs): into `Submitted` from a state that has no vendor job yet.
    pub fn is_adoption(self, to: JobState) -> bool {
        to == JobState::Submitted
            && matches!(
                self,
                JobState::Queued | JobState::Submitting | JobState::Held | JobState::Failed
            )
    }

    /// The edges only an operator's retry takes, back to `Queued`.
    pub fn is_retry(self, to: JobState) -> bool {
        matches!(
            (self, to),
            (JobState::Failed | JobState::Held, JobState::Queued)
        )
    }

    /// Every state `to` may be entered from. Used to build the condition expression, so that the
    /// table in [`Self::can_transition_to`] is also what DynamoDB enforces.
    pub fn sources_of(to: JobState) -> Vec<JobState> {
        JobState::ALL
            .into_iter()
            .filter(|from| from.can_transition_to(to))
            .collect()
    }

    /// No automatic step will move the job again (an operator's retry may).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Rejected | JobState::Failed
        )
    }

    /// The pipeline is done with the job for now: terminal, or waiting for a person
    /// (`NeedsReview`, `Held`).
    pub fn is_settled(self) -> bool {
        self.is_terminal() || matches!(self, JobState::NeedsReview | JobState::Held)
    }

    /// The serialized name, as stored in DynamoDB.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Received => "Received",
            JobState::Queued => "Queued",
            JobState::Submitting => "Submitting",
            JobState::Submitted => "Submitted",
            JobState::ResultReady => "ResultReady",
            JobState::Parsing => "Parsing",
            JobState::Completed => "Completed",
            JobState::NeedsReview => "NeedsReview",
            JobState::Rejected => "Rejected",
            JobState::Failed => "Failed",
            JobState::Held => "Held",
            JobState::InParts => "InParts",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown job state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for JobState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// The workflow a document belongs to; it selects the vendor model and the field rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Profile(String);

impl Profile {
    /// A profile name is a short lowercase identifier (`receipt`, `invoice`, `generic`…), because it
    /// is part of the document key and of metric dimensions.
    pub fn new(name: &str) -> Result<Self, InvalidProfile> {
        let valid = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if valid {
            Ok(Profile(name.to_owned()))
        } else {
            Err(InvalidProfile(name.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid profile name {0:?}: use 1-32 characters of a-z, 0-9, '-' or '_'")]
pub struct InvalidProfile(pub String);

/// SHA-256 of a document's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    pub fn of(bytes: &[u8]) -> Self {
        ContentHash(Sha256::digest(bytes).into())
    }

    pub fn from_bytes(digest: [u8; 32]) -> Self {
        ContentHash(digest)
    }

    /// Parses the lowercase or uppercase hex form.
    pub fn from_hex(hex_digest: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_digest, &mut out).ok()?;
        Some(ContentHash(out))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// The idempotency key of a document: SHA-256 over the content hash and the workflow profile.
///
/// Duplicates are scoped by **content**, not by S3 object version or key. The vendor charges per
/// document it reads, and the same bytes read twice give the same answer, so a re-upload under a
/// new key, a new version of an object with identical bytes, or a copy into another folder of the
/// same profile must all land on the one existing job and cost nothing. The profile is part of the
/// key because the same scan submitted as a receipt and as an invoice is two different vendor
/// requests with two different results.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DocumentKey([u8; 32]);

impl DocumentKey {
    /// Domain-separated so a document key can never collide with a plain content hash.
    const DOMAIN: &'static [u8] = b"ocrbridge/document-key/v1\n";

    pub fn new(content: &ContentHash, profile: &Profile) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(Self::DOMAIN);
        hasher.update(profile.as_str().as_bytes());
        hasher.update(b"\n");
        hasher.update(content.0);
        DocumentKey(hasher.finalize().into())
    }

    /// A key some other identity was hashed into (a second opinion's, from its parent's id:
    /// `second_opinion::child_key`).
    pub fn from_digest(digest: [u8; 32]) -> Self {
        DocumentKey(digest)
    }

    /// A benchmark run's document is a job of its own in every run: the run is part of its key,
    /// so re-running a pack calls the vendor again instead of finding last week's job.
    pub fn for_benchmark(content: &ContentHash, profile: &Profile, run: &BenchmarkRun) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(Self::DOMAIN);
        hasher.update(profile.as_str().as_bytes());
        hasher.update(b"\n");
        hasher.update(content.0);
        hasher.update(b"\nbenchmark-run:");
        hasher.update(run.as_str().as_bytes());
        DocumentKey(hasher.finalize().into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The job id is a function of the document key, so creating the job row *is* the dedupe:
    /// a conditional put on the id either creates the job or returns the one that already exists.
    pub fn job_id(&self) -> JobId {
        // 160 bits is ample against collisions and keeps the id usable as a vendor idempotency token
        // (Textract's ClientRequestToken allows 1–64 characters of [a-zA-Z0-9-_]).
        JobId(format!("doc-{}", &self.to_hex()[..40]))
    }
}

/// A quality benchmark run's id (1–64 of `[A-Za-z0-9_-]`): its documents are benchmark traffic,
/// kept out of business metrics and costed apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BenchmarkRun(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("benchmark run id {0:?} is not 1-64 characters of letters, digits, '-' and '_'")]
pub struct InvalidBenchmarkRun(String);

impl BenchmarkRun {
    pub fn parse(text: &str) -> Result<Self, InvalidBenchmarkRun> {
        let ok = (1..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(BenchmarkRun(text.to_owned()))
        } else {
            Err(InvalidBenchmarkRun(text.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BenchmarkRun {
    type Error = InvalidBenchmarkRun;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        BenchmarkRun::parse(&text)
    }
}

impl From<BenchmarkRun> for String {
    fn from(run: BenchmarkRun) -> String {
        run.0
    }
}

impl std::fmt::Display for BenchmarkRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A job's id: `doc-` and 40 hex characters, derived from its [`DocumentKey`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    /// Accepts the canonical form only, so an id from a message or a webhook cannot smuggle in
    /// arbitrary strings.
    pub fn parse(raw: &str) -> Result<Self, InvalidJobId> {
        let valid = raw.len() == 44
            && raw.starts_with("doc-")
            && raw[4..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if valid {
            Ok(JobId(raw.to_owned()))
        } else {
            Err(InvalidJobId(raw.chars().take(64).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid job id {0:?}: expected 'doc-' followed by 40 lowercase hex characters")]
pub struct InvalidJobId(pub String);

/// Where the document came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceObject {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
}

/// A side-effecting attempt that was recorded *before* the side effect. If its lease expires, the
/// next owner knows the vendor may already have the document and must look it up first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub attempt_id: String,
    pub attempted_at: UnixMillis,
}

/// Which kind of vendor call an attempt was: it decides how a lost answer is resolved
/// ([`crate::vendors::answer`]). Carried in the attempt id itself (`sync-…`), so that every
/// write that records an attempt records it too, and rows from before it read as `Job`.
///
/// The attempt id carries the vendor it went to the same way (`azure/sync-…`, see
/// [`Attempt::new_id`]): with several vendors in a route, an unresolved attempt must be resolved
/// at the vendor that may have it, never at the one the job would go to next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// A submission that starts a vendor job (deduplicated by key where the vendor can).
    Job,
    /// A synchronous call answered in its response: no token, no job to look up.
    Answer,
}

impl CallKind {
    const ANSWER_PREFIX: &'static str = "sync-";

    fn prefix(self) -> &'static str {
        match self {
            CallKind::Job => "",
            CallKind::Answer => Self::ANSWER_PREFIX,
        }
    }
}

impl Attempt {
    /// Separates the vendor from the rest of an attempt id (vendor names have no `/`).
    const VENDOR_SEPARATOR: char = '/';

    /// A fresh attempt id for a call of `kind` to `vendor` (its name, as in `VENDOR`).
    pub fn new_id(vendor: &str, kind: CallKind) -> String {
        format!(
            "{vendor}{}{}{}",
            Self::VENDOR_SEPARATOR,
            kind.prefix(),
            uuid::Uuid::new_v4()
        )
    }

    /// The vendor an attempt id went to; `None` for ids from before routes (the stack's
    /// `VENDOR` then).
    pub fn vendor_of(attempt_id: &str) -> Option<&str> {
        attempt_id
            .split_once(Self::VENDOR_SEPARATOR)
            .map(|(vendor, _)| vendor)
            .filter(|vendor| !vendor.is_empty())
    }

    /// The vendor this attempt went to (see [`Self::vendor_of`]).
    pub fn vendor(&self) -> Option<&str> {
        Self::vendor_of(&self.attempt_id)
    }

    /// The kind of call this attempt was.
    pub fn call(&self) -> CallKind {
        let rest = self
            .attempt_id
            .split_once(Self::VENDOR_SEPARATOR)
            .map_or(self.attempt_id.as_str(), |(_, rest)| rest);
        if rest.starts_with(CallKind::ANSWER_PREFIX) {
            CallKind::Answer
        } else {
            CallKind::Job
        }
    }
}

/// The lease on a side-effecting step, as stored on the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    pub owner: String,
    pub until: UnixMillis,
}

impl LeaseRecord {
    /// A lease is live until `until`, inclusive; at or after expiry anyone may take over.
    pub fn is_live(&self, now: UnixMillis) -> bool {
        now < self.until
    }
}

/// Why a job ended in `Rejected`, `Failed` or `NeedsReview`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// Stable machine code, e.g. `pdf_encrypted`. Used in metrics and object tags.
    pub code: String,
    /// What happened, for a human.
    pub message: String,
}

impl Reason {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Reason {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// Reason codes the pipeline writes, and which of them an operator can retry.
///
/// A code is **retryable** when retrying can succeed once the cause is fixed and never pays the
/// vendor twice without saying so: the job goes back to `Queued` keeping its vendor job and its
/// recorded attempt, so submit adopts the vendor job it already has, or resolves the earlier
/// attempt before sending anything. Every other code is **final**: the same input would fail the
/// same way (a document the vendor rejected, a rejected upload).
pub mod reason {
    /// The vendor refused our credentials even after a refresh. `Held`: fix the key, then retry.
    pub const VENDOR_AUTH_FAILED: &str = "vendor_auth_failed";
    /// A submission's answer was lost and the vendor cannot say whether it arrived. `Held`: only
    /// an operator's retry with `--accept-duplicate-risk` resubmits, knowingly risking a second
    /// charge (counted); a re-upload or a redrive leaves it held.
    pub const SUBMISSION_OUTCOME_UNKNOWN: &str = "submission_outcome_unknown";
    /// Not submitted (or not finished) within the maximum age, usually through a vendor outage.
    pub const MAX_AGE_EXCEEDED: &str = "max_age_exceeded";
    /// The vendor no longer has the result (expired or lost); a retry fetches it again where it
    /// can, and a resubmission is a new purchase.
    pub const RESULT_UNAVAILABLE: &str = "result_unavailable";
    /// The vendor's result is larger than `VENDOR_MAX_RESULT_BYTES`; retryable once the limit
    /// (and the parse function's memory) is raised: the vendor job is kept, nothing is bought.
    pub const RESULT_TOO_LARGE: &str = "result_too_large";
    /// The vendor rejected the request (4xx): final.
    pub const VENDOR_REJECTED: &str = "vendor_rejected";
    /// The vendor processed the document and failed it: final.
    pub const VENDOR_FAILED: &str = "vendor_failed";
    /// The vendor kept reporting a status the adapter does not know (schema drift). Never taken
    /// for success; retryable once the adapter knows it: the job keeps its vendor job, so the
    /// retry polls it again and buys nothing.
    pub const VENDOR_STATUS_UNKNOWN: &str = "vendor_status_unknown";
    /// A part of a document sent in parts (`parts`) failed for good, so the document cannot be
    /// merged whole: final (the part's own job says why).
    pub const PART_FAILED: &str = "part_failed";
    /// The vendor finished only part of the document (Textract's `PARTIAL_SUCCESS`): final.
    pub const VENDOR_PARTIAL_RESULT: &str = "vendor_partial_result";
    /// The vendor's payload could not be turned into `Document v1`; retryable after the adapter
    /// is fixed (the raw payload is archived).
    pub const PARSE_UNUSABLE_PAYLOAD: &str = "parse_failed:unusable_payload";
    /// The normalized document broke the schema; retryable after the adapter is fixed.
    pub const PARSE_SCHEMA_VIOLATION: &str = "parse_failed:schema_violation";

    /// Every retryable code; the ledger's retry write is conditioned on this list.
    pub const RETRYABLE: &[&str] = &[
        VENDOR_AUTH_FAILED,
        SUBMISSION_OUTCOME_UNKNOWN,
        MAX_AGE_EXCEEDED,
        RESULT_UNAVAILABLE,
        VENDOR_STATUS_UNKNOWN,
        RESULT_TOO_LARGE,
        PARSE_UNUSABLE_PAYLOAD,
        PARSE_SCHEMA_VIOLATION,
    ];

    pub fn is_retryable(code: &str) -> bool {
        RETRYABLE.contains(&code)
    }

    /// Retryable only with an operator's explicit approval of a possible second charge
    /// (`ocrbridge jobs retry --accept-duplicate-risk`): never by a re-upload or a redrive.
    pub fn needs_approval(code: &str) -> bool {
        code == SUBMISSION_OUTCOME_UNKNOWN
    }
}

/// What intake learned about the document; stored on the job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inspection {
    /// The type detected from the content (not the declared one).
    pub file_type: Option<FileType>,
    pub size_bytes: u64,
    /// Pages: counted for PDFs, 1 for images.
    pub pages: Option<u32>,
    /// PDFs: whether the document carries a text layer (fonts) or is image-only.
    pub text_layer: Option<bool>,
    /// PDFs: whether the document holds an image. With no text layer either, nothing on any of
    /// its pages is text or a picture of text: a blank document (`inspect::InputIssue`).
    pub images: Option<bool>,
    /// How the extension or Content-Type disagreed with the content, if they did.
    pub type_mismatch: Option<String>,
    /// Images: the resolution the file declares (`inspect::image::declared_dpi`); image-only
    /// PDFs: their images' pixels over their pages' inches (`inspect::pdf::PdfInfo::scan_dpi`).
    pub dpi: Option<u32>,
    /// Images intake decoded to prepare a copy: how far the text lines lean, in tenths of a
    /// degree (`preprocess::deskew::measure`); `None` when not measured or no lines were found.
    pub skew_tenths: Option<i32>,
    /// Images intake decoded to prepare a copy: the text lines' median height in pixels
    /// (`preprocess::deskew::text_line_height`).
    pub text_height_px: Option<u32>,
    /// PDFs whose pages intake looked at for `blank_pages`: how many were blank.
    pub blank_pages: Option<u32>,
}

/// The copy of the document intake prepared for the vendor (`preprocess`); the upload itself is
/// kept as it came (`Job::source`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedCopy {
    pub bucket: String,
    pub key: String,
    /// What was done, oldest first, as `action: detail` (`preprocess::Applied::to_record`).
    pub actions: Vec<String>,
    /// Set when the copy holds fewer pages than the upload (blank pages removed): which of the
    /// upload's pages it holds, so that a result's pages get the upload's numbers back.
    pub pages: Option<PageMap>,
}

/// The upload's pages a prepared PDF holds, in order (`preprocess::blank_pages`): page `n` of
/// the copy is the upload's page `kept[n - 1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageMap {
    pub kept: Vec<u32>,
    /// The upload's pages.
    pub of: u32,
}

impl PageMap {
    /// The upload's number of the copy's page `n` (from 1). A page past the copy's (which a
    /// vendor should never return) keeps its number past the upload's last.
    pub fn upload_page(&self, n: u32) -> u32 {
        match n.checked_sub(1).and_then(|i| self.kept.get(i as usize)) {
            Some(page) => *page,
            None => self.of + n.saturating_sub(self.sent()),
        }
    }

    /// Pages the vendor is sent.
    pub fn sent(&self) -> u32 {
        u32::try_from(self.kept.len()).unwrap_or(u32::MAX)
    }

    /// Pages the vendor is not sent (and does not bill).
    pub fn removed(&self) -> u32 {
        self.of.saturating_sub(self.sent())
    }

    /// `1-3,5,7-9 of 10`, as the job stores it: runs, so a long document's map stays small.
    pub fn to_record(&self) -> String {
        let mut runs: Vec<String> = Vec::new();
        let mut pages = self.kept.iter().copied().peekable();
        while let Some(first) = pages.next() {
            let mut last = first;
            while pages.peek() == Some(&(last + 1)) {
                last += 1;
                pages.next();
            }
            runs.push(if first == last {
                first.to_string()
            } else {
                format!("{first}-{last}")
            });
        }
        format!("{} of {}", runs.join(","), self.of)
    }

    pub fn parse(record: &str) -> Option<PageMap> {
        let (runs, of) = record.rsplit_once(" of ")?;
        let mut kept = Vec::new();
        for run in runs.split(',').filter(|r| !r.is_empty()) {
            let (first, last) = match run.split_once('-') {
                Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                None => {
                    let page = run.parse().ok()?;
                    (page, page)
                }
            };
            if first > last || kept.last().is_some_and(|l| *l >= first) {
                return None;
            }
            kept.extend(first..=last);
        }
        Some(PageMap {
            kept,
            of: of.parse().ok()?,
        })
    }
}

impl PreparedCopy {
    /// The actions' names, in the order they were applied.
    pub fn action_names(&self) -> Vec<&str> {
        self.actions
            .iter()
            .map(|a| crate::preprocess::split_record(a).0)
            .collect()
    }
}

/// A document split into parts past the vendor's page limit (`parts`), as its own job records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    /// How many parts (each a job of its own, `parts::part_key`).
    pub count: u32,
    /// Pages per part; the last part has the rest.
    pub pages_per_part: u32,
    /// Each parsed part's stored result, by part index (from 0): the first recorded wins, and
    /// the merge reads exactly these.
    pub results: std::collections::BTreeMap<u32, String>,
}

/// Set on a part's job: which document it is a part of, and where in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartOf {
    pub parent: JobId,
    /// From 0.
    pub index: u32,
    pub count: u32,
    /// The document's page this part's first page is (from 1): the offset its pages get in the
    /// merged result.
    pub first_page: u32,
}

/// A job row as read from the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: JobId,
    pub state: JobState,
    /// Incremented by every write; every guarded write names the version it read.
    pub version: u64,
    pub profile: Profile,
    pub content_sha256: String,
    pub source: SourceObject,
    pub created_at: UnixMillis,
    /// When the job entered its current state; the sort key of the `by-state-shard` index.
    pub state_since: UnixMillis,
    pub lease: Option<LeaseRecord>,
    pub attempt: Option<Attempt>,
    /// The vendor of the job's latest attempt (written with the attempt, never cleared): the
    /// adapter every later step asks about the job. `None` on jobs from before routes, whose
    /// vendor is the stack's `VENDOR`.
    pub vendor: Option<String>,
    pub vendor_job_id: Option<String>,
    pub reason: Option<Reason>,
    pub inspection: Inspection,
    /// Where the normalized result is stored, once parsed.
    pub result_key: Option<String>,
    /// Key fields of the result, as a short JSON object.
    pub result_summary: Option<String>,
    /// When the job last entered `Queued`: the start of its submission window (maximum age).
    pub queued_at: Option<UnixMillis>,
    /// Vendor calls that failed in a row (throttled, unavailable, unanswered): the backoff step.
    pub vendor_failures: u32,
    /// Retry-budget tokens the next attempt must spend before calling the vendor: set when a
    /// call fails, settled when they are spent. Deferrals by our own admission control owe none.
    pub retry_owed: u32,
    /// Submissions made while an earlier attempt might have reached the vendor: each may be a
    /// second charge (`DuplicateSubmissionRisk`).
    pub risky_resubmits: u32,
    /// An operator retried a held job knowing its earlier submission may have arrived: the next
    /// submission goes ahead without waiting to find out.
    pub resubmit_approved: bool,
    /// Vendor jobs for this document other than `vendor_job_id`: answers that arrived after
    /// another worker took over, or completions of a second submission. Each was billed.
    pub orphan_vendor_jobs: Vec<String>,
    /// Every state the job entered, oldest first (jobs written before the history existed start
    /// where it began).
    pub history: Vec<StateChange>,
    /// A reviewer's decision on the job, as JSON (`ocrbridge review approve|correct`).
    pub review: Option<String>,
    /// What the job cost at the vendor: the estimate at submission, the actual after parse.
    pub cost: Option<crate::cost::JobCost>,
    /// Set when the document is a quality benchmark run's, not business traffic.
    pub benchmark_run: Option<BenchmarkRun>,
    /// The upload's source channel, bounded (`segments::Sources`); `None` on jobs from before.
    pub channel: Option<String>,
    /// The document's X-Ray trace (`trace_context`): every message about the job carries it.
    pub trace_header: Option<String>,
    /// The language, script and handwriting of the result's text, once parsed (`language`).
    pub text: Option<crate::language::TextSegments>,
    /// Set on a second opinion's child job: the job whose result it reads again.
    pub second_opinion_of: Option<JobId>,
    /// Set on a job whose result asked a second vendor (`second_opinion`).
    pub second_opinion: Option<crate::second_opinion::SecondOpinion>,
    /// The copy the vendor is sent instead of the upload, when preprocessing changed it.
    pub prepared: Option<PreparedCopy>,
    /// What preparing it (preprocessing, blank pages, splitting) cost in intake's compute.
    pub prep_compute: Option<crate::cost::Compute>,
    /// Set on a document split into parts (`InParts` until the last is parsed).
    pub parts: Option<Parts>,
    /// Set on a part's job.
    pub part_of: Option<PartOf>,
}

/// One entry of a job's history: the state it entered, when, and with which reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub state: JobState,
    pub at: UnixMillis,
    pub reason: Option<String>,
}

impl StateChange {
    /// `State@unix_ms` or `State@unix_ms:reason_code`, as the ledger stores it.
    pub fn encode(&self) -> String {
        match &self.reason {
            Some(code) => format!("{}@{}:{code}", self.state.as_str(), self.at.0),
            None => format!("{}@{}", self.state.as_str(), self.at.0),
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let (state, rest) = text.split_once('@')?;
        let (at, reason) = match rest.split_once(':') {
            Some((at, reason)) => (at, Some(reason.to_owned())),
            None => (rest, None),
        };
        Some(StateChange {
            state: state.parse().ok()?,
            at: UnixMillis(at.parse().ok()?),
            reason,
        })
    }
}

impl Job {
    /// The pages the vendor reads (and bills): the prepared copy's when blank pages were
    /// removed, else the upload's as intake counted them (an image, or an uninspected
    /// document, is one page).
    pub fn pages_sent(&self) -> u32 {
        match self.prepared.as_ref().and_then(|p| p.pages.as_ref()) {
            Some(map) => map.sent(),
            None => self.inspection.pages.unwrap_or(1),
        }
    }

    /// The reason, if the job is `Failed` or `Held` for one an operator can retry.
    pub fn retryable_reason(&self) -> Option<&Reason> {
        match self.state {
            JobState::Failed | JobState::Held => self
                .reason
                .as_ref()
                .filter(|r| reason::is_retryable(&r.code)),
            _ => None,
        }
    }
}

/// What a new job starts with.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub key: DocumentKey,
    pub profile: Profile,
    pub content: ContentHash,
    pub source: SourceObject,
    pub inspection: Inspection,
    /// The quality benchmark run the upload belongs to, if it does.
    pub benchmark_run: Option<BenchmarkRun>,
    /// The upload's source channel, already mapped onto the allowlist.
    pub channel: Option<String>,
    /// The copy preprocessing made for the vendor, already written, if it changed anything.
    pub prepared: Option<PreparedCopy>,
    /// What preparing it cost in intake's compute, whether or not a copy came of it.
    pub prep_compute: Option<crate::cost::Compute>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    #[test]
    fn a_page_map_round_trips_as_runs_and_maps_back() {
        let map = PageMap {
            kept: vec![1, 2, 3, 5, 7, 8, 9],
            of: 10,
        };
        assert_eq!(map.to_record(), "1-3,5,7-9 of 10");
        assert_eq!(PageMap::parse(&map.to_record()), Some(map.clone()));
        assert_eq!((map.sent(), map.removed()), (7, 3));
        assert_eq!(
            (1..=7).map(|n| map.upload_page(n)).collect::<Vec<_>>(),
            [1, 2, 3, 5, 7, 8, 9]
        );
        assert_eq!(map.upload_page(8), 11);
        for bad in ["1-3", "3-1 of 4", "2,1 of 4", "x of 4", "1 of y"] {
            assert_eq!(PageMap::parse(bad), None, "{bad}");
        }
    }

    /// The full matrix, written out independently of `can_transition_to`, so a change to the
    /// table has to be made twice on purpose.
    const LEGAL: &[(JobState, JobState)] = &[
        (Received, Queued),
        (Received, Rejected),
        (Received, Failed),
        (Queued, Submitting),
        (Queued, Submitted),
        (Queued, Failed),
        (Submitting, Submitted),
        (Submitting, Failed),
        (Submitted, ResultReady),
        (Submitted, Failed),
        (ResultReady, Parsing),
        (ResultReady, Failed),
        (Parsing, Completed),
        (Parsing, NeedsReview),
        (Parsing, Failed),
        (NeedsReview, Completed),
        (NeedsReview, Failed),
        (Submitting, Held),
        (Held, Queued),
        (Held, Submitted),
        (Held, Failed),
        (Failed, Queued),
        (Failed, Submitted),
        (Received, InParts),
        (InParts, Completed),
        (InParts, NeedsReview),
        (InParts, Failed),
    ];

    #[test]
    fn every_pair_matches_the_table() {
        let mut checked = 0;
        for from in JobState::ALL {
            for to in JobState::ALL {
                let expected = LEGAL.contains(&(from, to));
                assert_eq!(
                    from.can_transition_to(to),
                    expected,
                    "{from} -> {to} should be {}",
                    if expected { "legal" } else { "illegal" }
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 144);
    }

    #[test]
    fn terminal_states_have_no_way_out_but_an_operators_retry_or_an_adoption() {
        for from in JobState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in JobState::ALL {
                assert_eq!(
                    from.can_transition_to(to),
                    from.is_retry(to) || from.is_adoption(to),
                    "{from} -> {to}"
                );
            }
        }
        assert!(!Completed.can_transition_to(Submitted));
        assert!(!Rejected.can_transition_to(Submitted));
        assert!(Failed.is_retry(Queued) && Held.is_retry(Queued));
        assert!(!Received.is_retry(Queued));
    }

    #[test]
    fn retryable_reasons_are_a_closed_list() {
        assert!(reason::is_retryable(reason::VENDOR_AUTH_FAILED));
        assert!(reason::is_retryable(reason::MAX_AGE_EXCEEDED));
        assert!(!reason::is_retryable(reason::VENDOR_REJECTED));
        assert!(!reason::is_retryable(reason::VENDOR_FAILED));
        assert!(!reason::is_retryable("pdf_encrypted"));
    }

    #[test]
    fn no_state_transitions_to_itself() {
        for s in JobState::ALL {
            assert!(!s.can_transition_to(s), "{s} -> {s}");
        }
    }

    #[test]
    fn sources_of_inverts_the_table() {
        assert_eq!(JobState::sources_of(Received), vec![]);
        assert_eq!(
            JobState::sources_of(Completed),
            vec![Parsing, NeedsReview, InParts]
        );
        assert_eq!(
            JobState::sources_of(Failed),
            vec![
                Received,
                Queued,
                Submitting,
                Submitted,
                ResultReady,
                Parsing,
                NeedsReview,
                Held,
                InParts
            ]
        );
        assert_eq!(JobState::sources_of(Queued), vec![Received, Failed, Held]);
    }

    #[test]
    fn state_names_round_trip_through_str_and_serde() {
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>().unwrap(), s);
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!("INPROGRESS".parse::<JobState>().is_err());
    }

    #[test]
    fn document_key_depends_on_content_and_profile() {
        let receipt = Profile::new("receipt").unwrap();
        let invoice = Profile::new("invoice").unwrap();
        let a = ContentHash::of(b"same bytes");
        let b = ContentHash::of(b"other bytes");
        assert_eq!(
            DocumentKey::new(&a, &receipt),
            DocumentKey::new(&a, &receipt)
        );
        assert_ne!(
            DocumentKey::new(&a, &receipt),
            DocumentKey::new(&a, &invoice)
        );
        assert_ne!(
            DocumentKey::new(&a, &receipt),
            DocumentKey::new(&b, &receipt)
        );
        // Pinned: changing the derivation would orphan every stored job and vendor token.
        // Computed independently: sha256("ocrbridge/document-key/v1\nreceipt\n" ‖ sha256("")).
        assert_eq!(
            DocumentKey::new(&ContentHash::of(b""), &receipt)
                .job_id()
                .as_str(),
            "doc-e828332251972e362827a60e023bb454548c2004"
        );
    }

    #[test]
    fn job_ids_are_canonical() {
        let key = DocumentKey::new(&ContentHash::of(b"x"), &Profile::new("generic").unwrap());
        let id = key.job_id();
        assert_eq!(JobId::parse(id.as_str()).unwrap(), id);
        assert!(JobId::parse("doc-XYZ").is_err());
        assert!(JobId::parse(&id.as_str().to_uppercase()).is_err());
        assert!(JobId::parse(&format!("{id}0")).is_err());
    }

    #[test]
    fn content_hash_hex_round_trips() {
        let h = ContentHash::of(b"hello");
        assert_eq!(
            h.to_hex(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(ContentHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(ContentHash::from_hex("zz"), None);
    }

    #[test]
    fn profiles_are_validated() {
        assert!(Profile::new("receipt").is_ok());
        assert!(Profile::new("").is_err());
        assert!(Profile::new("Receipt").is_err());
        assert!(Profile::new("a/b").is_err());
    }

    #[test]
    fn lease_is_live_until_its_deadline() {
        let lease = LeaseRecord {
            owner: "a".into(),
            until: UnixMillis(1_000),
        };
        assert!(lease.is_live(UnixMillis(999)));
        assert!(!lease.is_live(UnixMillis(1_000)));
    }

    proptest::proptest! {
        /// Any sequence of allowed moves: a job never returns to a state it left unless an
        /// operator's retry edge was taken in between, and terminal states are left only by
        /// that retry.
        #[test]
        fn no_sequence_of_allowed_moves_goes_backwards(choices in proptest::collection::vec(0usize..64, 1..60)) {
            let mut state = JobState::Received;
            let mut left_since_retry: Vec<JobState> = Vec::new();
            for choice in choices {
                let next: Vec<JobState> = JobState::ALL
                    .into_iter()
                    .filter(|to| state.can_transition_to(*to))
                    .collect();
                let Some(&to) = next.get(choice % next.len().max(1)) else { break };
                if state.is_retry(to) || state.is_adoption(to) {
                    left_since_retry.clear();
                } else {
                    proptest::prop_assert!(!left_since_retry.contains(&to), "{state} -> {to} after leaving it: {left_since_retry:?}");
                    proptest::prop_assert!(!matches!(state, JobState::Completed | JobState::Rejected), "{state} is final");
                    left_since_retry.push(state);
                }
                state = to;
            }
        }
    }
}
