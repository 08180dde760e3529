//! `intake`: S3 upload → validated, deduplicated job → submit queue.
//!
//! Per object:
//! 1. skip what is not ours (test events, reserved output prefixes, objects deleted since);
//! 2. validate in bounded memory ([`validate`]) and hash the content;
//! 3. create the job with a conditional write keyed by the document key — the same content in
//!    the same profile lands on the existing job and is counted as a suppressed duplicate;
//! 4. for a new (or still `Received`) job: reject it with its reason, or send `{job_id}` to the
//!    submit queue and *then* move it to `Queued`;
//!    A PDF past the vendor's page limit (`PDF_PART_PAGES`) is cut into parts first, each
//!    written beside the results before the job is created; settling it creates and queues
//!    each part as a job of its own, then moves it to `InParts` ([`ocrbridge::parts`]);
//! 5. tag the S3 object with the job id, status and reason (unless `TAG_SOURCE_OBJECTS=off`).
//!
//! The same document uploaded again **after** its job stopped for a retryable reason (`Failed`
//! after an outage, `Held` for a bad API key…) is a request to try again: the job goes back to
//! `Queued` ([`ocrbridge::recovery`]). An upload older than the stop (a late or repeated
//! notification) changes nothing, and neither does one of a job held because its last
//! submission may have reached the vendor: resubmitting it may be a second charge, which only
//! an operator approves (`ocrbridge jobs retry --accept-duplicate-risk`).
//!
//! Every step is idempotent, so a crash between any two of them is repaired by the redelivery:
//! the job exists but is still `Received` (step 4 runs again; a second submit message is
//! harmless, submit acknowledges jobs past `Queued`), or the job moved on (nothing to do but
//! the tags).

pub mod config;
pub mod event;
pub mod validate;

use std::time::Instant;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use ocrbridge::batch::{self, Failure, Source};
use ocrbridge::blob::{Blob, BlobError, ObjectHead, ObjectRef, BENCHMARK_RUN_METADATA};
use ocrbridge::config::StackConfig;
use ocrbridge::cost::Compute;
use ocrbridge::failpoints;
use ocrbridge::inspect::{self, Declared, QualityAction, RejectCode, Rejection};
use ocrbridge::job::{
    BenchmarkRun, DocumentKey, Job, JobId, JobState, NewJob, Parts, PreparedCopy, Profile, Reason,
    SourceObject,
};
use ocrbridge::ledger::{Change, Created, Ledger, LedgerError, TransitionError};
use ocrbridge::metrics::{self, Metrics};
use ocrbridge::parts::{self, Plan};
use ocrbridge::preprocess;
use ocrbridge::queue::{Queue, QueueError, SubmitRequest};
use ocrbridge::recovery;
use ocrbridge::time::UnixMillis;
use serde_json::{json, Value};
use tracing::{field, info, info_span, warn, Instrument};

pub use config::IntakeConfig;
use event::{Notification, ObjectCreated};

/// The prepared copy's file name: the upload's, its extension changed when the copy is of
/// another type (`photo.heic` → `photo.jpg`).
fn copy_name(key: &str, from: inspect::FileType, to: inspect::FileType) -> String {
    let name = key.rsplit('/').next().unwrap_or("document");
    if from == to {
        return name.to_owned();
    }
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    format!("{stem}.{}", to.extensions()[0])
}

/// S3's rate for one stream (the template's sizing note: about 90 MB/s), taken low.
const S3_BYTES_PER_SECOND: f64 = 80e6;

/// What a notification needs of intake's invocation to be started: the batch's floor, and two
/// reads of its uploads at S3's stream rate (validation, then a split or a prepared copy). A
/// 500 MB PDF needs about 15 s; a batch of them in intake's 60 s is handed back three at a time
/// instead of cut off at the fourth and sent back whole.
pub fn time_needed(message: &aws_lambda_events::event::sqs::SqsMessage) -> std::time::Duration {
    let bytes: u64 = message
        .body
        .as_deref()
        .and_then(|b| serde_json::from_str::<Value>(b).ok())
        .and_then(|body| event::parse(&body).ok())
        .map_or(0, |n| match n {
            Notification::Records(records) => records.iter().filter_map(|r| r.size).sum(),
            Notification::Test => 0,
        });
    batch::MIN_TIME_PER_MESSAGE
        + std::time::Duration::from_secs_f64(2.0 * bytes as f64 / S3_BYTES_PER_SECOND)
}

/// Intake's memory when it works on content (the template's `IntakeWorksOnContent`), for
/// pricing its compute where the runtime does not say (`cost::Compute::here`).
const CONTENT_MEMORY_MB: u32 = 1769;

/// Tags intake sets on uploaded objects. Other tags are kept.
pub const TAG_JOB_ID: &str = "ocrbridge-job-id";
pub const TAG_STATUS: &str = "ocrbridge-status";
pub const TAG_REASON: &str = "ocrbridge-reason";

/// What became of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new job, queued for submission.
    Accepted(JobId),
    /// Refused, with a reason, on a `Rejected` job.
    Rejected(JobId, RejectCode),
    /// Same content and profile as an existing job: linked to it, nothing submitted.
    Duplicate(JobId),
    /// The same object again (a redelivered or repeated event): nothing new.
    Redelivered(JobId),
    /// Uploaded again after its job stopped for a retryable reason: the job is retried.
    Retried(JobId),
    /// Not a document for ocrbridge.
    Ignored(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("job {0} vanished while being settled")]
    Vanished(JobId),
}

impl IntakeError {
    fn failure(&self) -> Failure {
        match self {
            IntakeError::Blob(e) => Failure::retry("s3_error", e.to_string()),
            IntakeError::Ledger(LedgerError::Malformed(e)) => {
                Failure::poison("malformed_job", e.to_string())
            }
            IntakeError::Ledger(e) => Failure::retry("dynamodb_error", e.to_string()),
            IntakeError::Queue(e) => Failure::retry("sqs_error", e.to_string()),
            IntakeError::Vanished(id) => {
                Failure::retry("job_vanished", format!("job {id} vanished"))
            }
        }
    }
}

/// The profile recorded on jobs whose key matched no prefix (they are rejected).
const UNASSIGNED_PROFILE: &str = "unassigned";

pub struct Intake {
    pub blob: Blob,
    pub queue: Queue,
    pub ledger: Ledger,
    pub metrics: Metrics,
    pub stack: StackConfig,
    pub config: IntakeConfig,
}

impl Intake {
    /// The Lambda entry point: an SQS batch of S3 notifications (production), or a direct S3
    /// event (`sam local invoke`, `cargo lambda invoke` with `events/s3-put.json`).
    pub async fn handle(
        &self,
        event: Value,
        deadline: Option<UnixMillis>,
    ) -> Result<Value, lambda_runtime::Error> {
        let from_sqs = event
            .pointer("/Records/0/eventSource")
            .and_then(Value::as_str)
            == Some("aws:sqs");
        if from_sqs {
            let event: SqsEvent = serde_json::from_value(event)?;
            return Ok(serde_json::to_value(
                self.handle_sqs(event, deadline).await,
            )?);
        }
        let outcomes = self
            .handle_notification(&event)
            .await
            .map_err(|f| format!("{f:?}"))?;
        Ok(json!({ "outcomes": outcomes.iter().map(|o| format!("{o:?}")).collect::<Vec<_>>() }))
    }

    /// A batch of S3 notifications. `deadline` is the invocation's: a notification whose
    /// uploads could not be read in the time left ([`time_needed`]) is handed back untouched
    /// rather than started and cut off, which would send the whole batch back and spend a
    /// receive of every message in it.
    pub async fn handle_sqs(
        &self,
        event: SqsEvent,
        deadline: Option<UnixMillis>,
    ) -> SqsBatchResponse {
        let source = Source {
            name: "intake",
            queue_url: self.stack.intake_queue_url.clone(),
            dlq_url: self.stack.intake_dlq_url.clone(),
            max_receive_count: self.stack.max_receive_count,
            // Intake may hold a whole upload, its parsed form and a prepared copy in memory:
            // one message at a time keeps its peak to one document's.
            concurrency: 1,
            time_needed,
        };
        batch::process(
            event,
            &source,
            deadline,
            &self.queue,
            &self.metrics,
            |message, _| async move {
                let body: Value = serde_json::from_str(message.body.as_deref().unwrap_or_default())
                    .map_err(|e| {
                        Failure::poison(
                            "malformed_event",
                            format!("the message body is not JSON: {e}"),
                        )
                    })?;
                self.handle_notification(&body).await.map(|_| ())
            },
        )
        .await
    }

    /// Processes every record of one S3 notification.
    pub async fn handle_notification(&self, body: &Value) -> Result<Vec<Outcome>, Failure> {
        let records = match event::parse(body) {
            Ok(Notification::Test) => {
                info!("skipping s3:TestEvent");
                return Ok(vec![Outcome::Ignored("test_event")]);
            }
            Ok(Notification::Records(records)) => records,
            Err(e) => return Err(Failure::poison("malformed_event", e.to_string())),
        };
        let mut outcomes = Vec::new();
        for record in &records {
            let span = info_span!("object", bucket = %record.bucket, key = %record.key, job_id = field::Empty);
            // A document's trace starts here: S3's notification carries none, so the record's
            // own (a redelivery's) or the invocation's, else a new one (trace_context).
            let trace = ocrbridge::trace_context::current()
                .unwrap_or_else(ocrbridge::trace_context::invocation_or_new);
            let outcome = ocrbridge::trace_context::within(
                Some(trace),
                self.process_object(record).instrument(span),
            )
            .await
            .map_err(|e| e.failure())?;
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    pub async fn process_object(&self, record: &ObjectCreated) -> Result<Outcome, IntakeError> {
        if self.config.is_reserved(&record.key) {
            self.metrics
                .count(metrics::INTAKE_IGNORED, &["reserved_prefix"], &[]);
            return Ok(Outcome::Ignored("reserved_prefix"));
        }
        let mut object = ObjectRef {
            bucket: record.bucket.clone(),
            key: record.key.clone(),
            version_id: record.version_id.clone(),
        };
        // One GetObject answers what a HEAD would and is the read validation needs.
        let Some(opened) = self.blob.open(&object).await? else {
            warn!("the object no longer exists; nothing to do");
            self.metrics
                .count(metrics::INTAKE_IGNORED, &["object_gone"], &[]);
            return Ok(Outcome::Ignored("object_gone"));
        };
        let head = opened.head.clone();
        object.version_id = object.version_id.or(head.version_id.clone());

        let started = Instant::now();
        let declared = Declared::from_key(&object.key, head.content_type.as_deref());
        let profile = self.config.profile_for(&object.key);
        let limits = self.config.limits_for(profile.as_ref());
        let mut validated =
            validate::validate(&self.blob, &object, opened, &declared, &limits).await?;
        let profile = match profile {
            Some(p) => p,
            None => {
                validated.verdict = validated.verdict.and(Err(Rejection::new(
                    RejectCode::NoProfile,
                    "the key is under no configured prefix (PROFILE_PREFIXES) and DEFAULT_PROFILE is empty",
                )));
                Profile::new(UNASSIGNED_PROFILE).expect("static profile name")
            }
        };
        let benchmark_run = match head.benchmark_run.as_deref().map(BenchmarkRun::parse) {
            None => None,
            Some(Ok(run)) => Some(run),
            Some(Err(e)) => {
                validated.verdict = validated.verdict.and(Err(Rejection::new(
                    RejectCode::InvalidBenchmarkRun,
                    format!("{e} (x-amz-meta-{BENCHMARK_RUN_METADATA}); upload without it, or with the run's id"),
                )));
                None
            }
        };
        // Input quality: what the profile's policy refuses stops the document here, with the
        // issue as its reason; the rest is counted once the document is accepted.
        if validated.verdict.is_ok() {
            if let Some((issue, code)) = inspect::input_issues(&validated.inspection)
                .into_iter()
                .filter(|i| self.config.quality.action(&profile, *i) == QualityAction::Reject)
                .find_map(|i| Some((i, i.reject_code()?)))
            {
                validated.verdict = Err(Rejection::new(
                    code,
                    format!(
                        "{} (INPUT_QUALITY_POLICY refuses {} for this profile)",
                        issue.explain(&validated.inspection),
                        issue.as_str()
                    ),
                ));
            }
        }
        let metrics = self.metrics.for_traffic(benchmark_run.as_ref());
        let mime = validated
            .inspection
            .file_type
            .map_or("unknown", |t| t.mime());
        metrics.emit(
            metrics::VALIDATION_TIME,
            started.elapsed().as_secs_f64() * 1e3,
            &[mime],
            &[],
        );

        let key = match &benchmark_run {
            Some(run) => DocumentKey::for_benchmark(&validated.content, &profile, run),
            None => DocumentKey::new(&validated.content, &profile),
        };
        let plan = match (&validated.verdict, validated.inspection.file_type) {
            (Ok(()), Some(inspect::FileType::Pdf)) => validated
                .inspection
                .pages
                .and_then(|pages| Plan::for_document(pages, self.config.part_pages)),
            _ => None,
        };
        let mut prep_compute = None;
        if let Some(plan) = &plan {
            match self.split(&object, plan, &key.job_id()).await? {
                Ok(compute) => prep_compute = Some(compute),
                Err(rejection) => validated.verdict = Err(rejection),
            }
        }
        let plan = plan.filter(|_| validated.verdict.is_ok());
        let prepared = match &validated.verdict {
            Ok(()) if plan.is_none() => {
                let (prepared, measured, compute) = self
                    .prepare(&object, &validated.inspection, &profile, &key.job_id())
                    .await?;
                prep_compute = compute;
                // What only the pixels or the pages show: kept on the job with the rest of
                // its inspection, and counted as input quality once it is accepted.
                validated.inspection.skew_tenths = measured.skew_tenths;
                validated.inspection.text_height_px = measured.text_height_px;
                validated.inspection.blank_pages = measured.blank_pages;
                prepared
            }
            _ => None,
        };
        let new = NewJob {
            key,
            prepared,
            prep_compute,
            channel: Some(self.config.sources.source_of(
                &object.key,
                head.source.as_deref(),
                benchmark_run.is_some(),
            )),
            benchmark_run,
            profile,
            content: validated.content,
            source: SourceObject {
                bucket: object.bucket.clone(),
                key: object.key.clone(),
                version_id: object.version_id.clone(),
            },
            inspection: validated.inspection.clone(),
        };
        let job_id = new.key.job_id();
        tracing::Span::current().record("job_id", field::display(&job_id));
        if let Some(mismatch) = &validated.inspection.type_mismatch {
            info!(mismatch = %mismatch, "declared type differs from the content");
        }

        let created = failpoints::around(
            "intake.before_create_job",
            "intake.after_create_job",
            job_id.as_str(),
            async {
                match &plan {
                    Some(plan) => {
                        self.ledger
                            .create_split_job(&new, plan, UnixMillis::now())
                            .await
                    }
                    None => self.ledger.create_job(&new, UnixMillis::now()).await,
                }
            },
        )
        .await?;
        let (outcome, job) = match created {
            Created::New(job) => self.settle(job, &validated.verdict).await?,
            Created::Existing(job) if job.state == JobState::Received => {
                // An earlier delivery stopped between creating and settling, or another upload
                // of the same content is settling it now; settling twice is harmless.
                self.settle(job, &validated.verdict).await?
            }
            Created::Existing(job) if uploaded_after_it_stopped(&job, &head) => {
                let retried = failpoints::around(
                    "intake.before_retry",
                    "intake.after_retry",
                    job.id.as_str(),
                    recovery::retry(
                        &self.ledger,
                        &self.queue,
                        &self.metrics,
                        &self.stack.submit_queue_url,
                        &job,
                        recovery::Trigger::Reupload,
                    ),
                )
                .await;
                match retried {
                    Ok(requeued) => (Outcome::Retried(job.id.clone()), requeued),
                    Err(recovery::RetryError::Moved { current }) => {
                        (Outcome::Redelivered(job.id.clone()), *current)
                    }
                    // Final, or waiting for an operator's decision about a possible second
                    // charge, which an upload does not make: the same bytes again, nothing more.
                    Err(
                        recovery::RetryError::NotRetryable(job)
                        | recovery::RetryError::NeedsApproval(job),
                    ) => (Outcome::Duplicate(job.id.clone()), *job),
                    Err(recovery::RetryError::Ledger(e)) => return Err(e.into()),
                    Err(recovery::RetryError::NotSent { source, .. }) => return Err(source.into()),
                }
            }
            Created::Existing(job) if same_object(&job.source, &object) => {
                self.metrics.count(
                    metrics::INTAKE_REDELIVERIES,
                    &[],
                    &[("job_id", job.id.as_str())],
                );
                (Outcome::Redelivered(job.id.clone()), job)
            }
            Created::Existing(job) => {
                failpoints::around(
                    "intake.before_link_source",
                    "intake.after_link_source",
                    job.id.as_str(),
                    self.ledger
                        .link_source(&job.id, &object.bucket, &object.key),
                )
                .await?;
                self.metrics.count(
                    metrics::DUPLICATES_SUPPRESSED,
                    &[job.profile.as_str()],
                    &[("job_id", job.id.as_str())],
                );
                info!(existing_state = %job.state, "duplicate content; linked to the existing job");
                (Outcome::Duplicate(job.id.clone()), job)
            }
        };
        debug_assert_eq!(job.id, job_id);
        if self.config.tag_objects {
            self.tag(&object, &head, &job).await?;
        }
        Ok(outcome)
    }

    /// The copy of an accepted document the vendor is sent (`ocrbridge::preprocess`): an image
    /// cleaned up, or a PDF without its blank pages. It is written to `prepared/<job>/<name>`
    /// in the results bucket before the job that names it is created. The bytes are a function
    /// of the upload's, so a redelivery writes the same copy again. A document that cannot be
    /// prepared goes as it is, the reason logged and counted. Returns the copy, if one was
    /// made, and the compute spent looking, whether or not it was.
    async fn prepare(
        &self,
        object: &ObjectRef,
        inspection: &ocrbridge::job::Inspection,
        profile: &Profile,
        job_id: &JobId,
    ) -> Result<(Option<PreparedCopy>, preprocess::Measured, Option<Compute>), IntakeError> {
        let none = Ok((None, preprocess::Measured::default(), None));
        // The profile's steps, and those its input-quality policy applies to remedy an issue
        // (`skewed=preprocess` is `deskew`).
        let mut actions = self.config.preprocess.actions_for(profile).to_vec();
        actions.extend(self.config.quality.remedies(profile));
        actions.sort();
        actions.dedup();
        let Some(file_type) = inspection.file_type else {
            return none;
        };
        let applies = preprocess::applies(&actions, file_type);
        // A policy that flags `skewed`, `small_text` or `blank_pages` needs them measured, even
        // where the profile prepares nothing.
        let measure = self.config.quality.watches_prepared_issues(profile)
            && matches!(
                file_type,
                inspect::FileType::Png | inspect::FileType::Jpeg | inspect::FileType::Pdf
            );
        if !applies && !measure {
            return none;
        }
        let Some(bytes) = self.blob.get(object).await? else {
            return none;
        };
        let limits = self.config.preprocess.limits;
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            preprocess::prepare_document_measured(&bytes, file_type, &actions, &limits, measure)
        })
        .await
        .unwrap_or_else(|e| {
            Err(preprocess::PrepareError::Decode(format!(
                "the step panicked: {e}"
            )))
        });
        let compute = Some(Compute::here(
            started.elapsed().as_millis() as u64,
            CONTENT_MEMORY_MB,
        ));
        let (prepared, measured) = match result {
            Ok((Some(prepared), measured)) => (prepared, measured),
            Ok((None, measured)) => return Ok((None, measured, compute)),
            Err(e) => {
                warn!(code = e.code(), reason = %e, "not preprocessed; the upload goes as it is");
                self.metrics.count(
                    metrics::PREPROCESSING_ACTIONS,
                    &[&format!("skipped_{}", e.code()), profile.as_str()],
                    &[("job_id", job_id.as_str())],
                );
                return Ok((None, preprocess::Measured::default(), compute));
            }
        };
        let copy = ObjectRef {
            bucket: self.stack.results_bucket.clone(),
            key: format!(
                "prepared/{job_id}/{}",
                copy_name(&object.key, file_type, prepared.file_type)
            ),
            version_id: None,
        };
        failpoints::around(
            "intake.before_put_prepared",
            "intake.after_put_prepared",
            job_id.as_str(),
            self.blob
                .put(&copy, prepared.bytes, prepared.file_type.mime(), None),
        )
        .await?;
        let actions: Vec<String> = prepared.applied.iter().map(|a| a.to_record()).collect();
        info!(prepared = %copy.key, actions = ?actions, ms = started.elapsed().as_millis() as u64, "prepared a copy for the vendor");
        Ok((
            Some(PreparedCopy {
                bucket: copy.bucket,
                key: copy.key,
                actions,
                pages: prepared.pages,
            }),
            measured,
            compute,
        ))
    }

    /// Cuts a PDF past the vendor's page limit into `plan`'s parts and writes each to
    /// `prepared/<job>/part-NNN-of-MMM.pdf` in the results bucket, before the job that names
    /// them is created. The bytes are a function of the upload's, so a redelivery writes the
    /// same parts again. `Ok(Err(_))`: the PDF cannot be cut, and is refused with the reason
    /// (sent whole, the vendor would refuse it).
    async fn split(
        &self,
        object: &ObjectRef,
        plan: &Plan,
        job_id: &JobId,
    ) -> Result<Result<Compute, Rejection>, IntakeError> {
        let Some(bytes) = self.blob.get(object).await? else {
            return Ok(Err(Rejection::new(
                RejectCode::PdfUnsplittable,
                "the upload was deleted before it could be split",
            )));
        };
        let started = Instant::now();
        let (owned, count) = (*plan, plan.count());
        // Each part is stored as soon as it is cut (a channel of one), so intake holds the
        // upload, its parsed form and a part or two, never every part at once.
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
        let cutting = tokio::task::spawn_blocking(move || {
            parts::split_each(&bytes, &owned, |piece| sender.blocking_send(piece).is_ok())
        });
        let mut stored = Ok(());
        let mut index = 0;
        while let Some(piece) = receiver.recv().await {
            let part = ObjectRef {
                bucket: self.stack.results_bucket.clone(),
                key: parts::object_key(job_id, index, count),
                version_id: None,
            };
            stored = failpoints::around(
                "intake.before_put_part",
                "intake.after_put_part",
                job_id.as_str(),
                self.blob.put(&part, piece, "application/pdf", None),
            )
            .await;
            if stored.is_err() {
                break;
            }
            index += 1;
        }
        // A failed write closes the channel, which stops the cutting.
        drop(receiver);
        let cut = cutting.await.unwrap_or_else(|e| {
            Err(parts::SplitError::Unreadable(format!(
                "the step panicked: {e}"
            )))
        });
        // The cutting and the writes overlap: the step's time is the function's time.
        let compute = Compute::here(started.elapsed().as_millis() as u64, CONTENT_MEMORY_MB);
        stored?;
        if let Err(e) = cut {
            warn!(reason = %e, "a PDF past the page limit could not be split");
            return Ok(Err(Rejection::new(
                RejectCode::PdfUnsplittable,
                format!(
                    "the PDF has {} pages, more than the {} a vendor request may carry (PDF_PART_PAGES), and {e}",
                    plan.pages, plan.per_part
                ),
            )));
        }
        info!(
            pages = plan.pages,
            parts = count,
            ms = started.elapsed().as_millis() as u64,
            "split into parts past the page limit"
        );
        Ok(Ok(compute))
    }

    /// Creates and queues each part of a split document as a job of its own (intake's order:
    /// the message, then `Queued`), then moves the document's job to `InParts`. A crash anywhere
    /// in between leaves it `Received`, and the redelivery settles it again: each part's job is
    /// found where it was created, and one already queued is not sent again.
    async fn queue_parts(&self, job: &Job, parts: &Parts) -> Result<Job, IntakeError> {
        let plan = Plan {
            pages: job.inspection.pages.unwrap_or_default(),
            per_part: parts.pages_per_part,
        };
        for index in 0..parts.count {
            let (first, pages) = plan.part(index);
            let copy = PreparedCopy {
                bucket: self.stack.results_bucket.clone(),
                key: parts::object_key(&job.id, index, parts.count),
                actions: vec![format!(
                    "split: pages {first}-{} of {}",
                    first + pages - 1,
                    plan.pages
                )],
                pages: None,
            };
            // The split's compute is billed through the parts (the document has no vendor
            // cost of its own, and a cost report sums jobs with one): each carries its share.
            let share = job.prep_compute.as_ref().map(|c| c.share(parts.count));
            let created = failpoints::around(
                "intake.before_create_part",
                "intake.after_create_part",
                job.id.as_str(),
                self.ledger
                    .create_part(job, &plan, index, copy, share, UnixMillis::now()),
            )
            .await?;
            let part = created.job();
            if part.state != JobState::Received {
                continue;
            }
            self.queue
                .send_json(
                    &self.stack.submit_queue_url,
                    &SubmitRequest {
                        job_id: part.id.clone(),
                    },
                )
                .await?;
            match self
                .ledger
                .transition(part, JobState::Queued, Change::none(), UnixMillis::now())
                .await
            {
                Ok(_) | Err(TransitionError::Stale { .. }) => {}
                Err(e) => return Err(transition_error(e, part)),
            }
        }
        let waiting = failpoints::around(
            "intake.before_mark_in_parts",
            "intake.after_mark_in_parts",
            job.id.as_str(),
            self.ledger
                .transition(job, JobState::InParts, Change::none(), UnixMillis::now()),
        )
        .await;
        match waiting {
            Ok(waiting) => Ok(waiting),
            Err(TransitionError::Stale { current, .. }) => Ok(*current),
            Err(e) => Err(transition_error(e, job)),
        }
    }

    /// Rejects or queues a `Received` job. Returns the job as it now stands.
    async fn settle(
        &self,
        job: Job,
        verdict: &Result<(), Rejection>,
    ) -> Result<(Outcome, Job), IntakeError> {
        // Benchmark runs are measured apart: business metrics never see them.
        let metrics = self.metrics.for_traffic(job.benchmark_run.as_ref());
        let mime = job
            .inspection
            .file_type
            .map_or("unknown", |t| t.mime())
            .to_owned();
        if let (Ok(()), Some(parts)) = (verdict, job.parts.clone()) {
            let settled = self.queue_parts(&job, &parts).await?;
            metrics.count(
                metrics::PREPROCESSING_ACTIONS,
                &["split", job.profile.as_str()],
                &[("job_id", job.id.as_str())],
            );
            self.accepted(&job, &mime);
            info!(parts = parts.count, "accepted and queued in parts");
            return Ok((Outcome::Accepted(job.id), settled));
        }
        match verdict {
            Err(rejection) => {
                let reason = Reason::new(rejection.code.as_str(), &rejection.message);
                let rejected = failpoints::around(
                    "intake.before_reject",
                    "intake.after_reject",
                    job.id.as_str(),
                    self.ledger.transition(
                        &job,
                        JobState::Rejected,
                        Change::none().with_reason(reason),
                        UnixMillis::now(),
                    ),
                )
                .await;
                let settled = match rejected {
                    Ok(settled) => settled,
                    Err(TransitionError::Stale { current, .. }) => *current,
                    Err(e) => return Err(transition_error(e, &job)),
                };
                info!(code = rejection.code.as_str(), reason = %rejection.message, "rejected");
                metrics.count(
                    metrics::DOCUMENTS_BY_SOURCE,
                    &[job.channel.as_deref().unwrap_or("other"), &mime, "rejected"],
                    &[("job_id", job.id.as_str())],
                );
                metrics.count(
                    metrics::DOCUMENTS_REJECTED,
                    &[rejection.code.as_str(), &mime],
                    &[("job_id", job.id.as_str())],
                );
                Ok((Outcome::Rejected(job.id, rejection.code), settled))
            }
            Ok(()) => {
                // Send first, then record: a crash in between leaves a Received job that the
                // redelivery settles again, never a Queued job without a message.
                failpoints::around(
                    "intake.before_enqueue_submit",
                    "intake.after_enqueue_submit",
                    job.id.as_str(),
                    self.queue.send_json(
                        &self.stack.submit_queue_url,
                        &SubmitRequest {
                            job_id: job.id.clone(),
                        },
                    ),
                )
                .await?;
                let queued = failpoints::around(
                    "intake.before_mark_queued",
                    "intake.after_mark_queued",
                    job.id.as_str(),
                    self.ledger.transition(
                        &job,
                        JobState::Queued,
                        Change::none(),
                        UnixMillis::now(),
                    ),
                )
                .await;
                let settled = match queued {
                    Ok(settled) => settled,
                    Err(TransitionError::Stale { current, .. }) => *current,
                    Err(e) => return Err(transition_error(e, &job)),
                };
                self.accepted(&job, &mime);
                info!("accepted and queued for submission");
                Ok((Outcome::Accepted(job.id), settled))
            }
        }
    }

    /// What an accepted document counts: by profile and type, its size and pages, its input
    /// quality issues and the preprocessing actions applied to it.
    fn accepted(&self, job: &Job, mime: &str) {
        let metrics = self.metrics.for_traffic(job.benchmark_run.as_ref());
        let profile = job.profile.as_str();
        metrics.count(
            metrics::DOCUMENTS_ACCEPTED,
            &[profile, mime],
            &[("job_id", job.id.as_str())],
        );
        metrics.emit(
            metrics::DOCUMENT_BYTES,
            job.inspection.size_bytes as f64,
            &[mime],
            &[],
        );
        if let Some(pages) = job.inspection.pages {
            self.metrics
                .emit(metrics::DOCUMENT_PAGES, f64::from(pages), &[profile], &[]);
        }
        if let Some(text) = job.inspection.text_layer {
            metrics.count(
                metrics::PDF_BY_LAYER,
                &[if text { "text" } else { "image_only" }],
                &[],
            );
        }
        metrics.count(
            metrics::DOCUMENTS_BY_SOURCE,
            &[job.channel.as_deref().unwrap_or("other"), mime, "accepted"],
            &[("job_id", job.id.as_str())],
        );
        for issue in ocrbridge::inspect::input_issues(&job.inspection) {
            metrics.count(
                metrics::INPUT_QUALITY,
                &[
                    issue.as_str(),
                    job.channel.as_deref().unwrap_or("other"),
                    mime,
                ],
                &[("job_id", job.id.as_str())],
            );
            warn!(issue = issue.as_str(), detail = %issue.explain(&job.inspection), "accepted with an input quality issue");
        }
        for action in job.prepared.iter().flat_map(|p| p.action_names()) {
            metrics.count(
                metrics::PREPROCESSING_ACTIONS,
                &[action, profile],
                &[("job_id", job.id.as_str())],
            );
        }
    }

    /// Tags the object with its job and the job's status, keeping the uploader's other tags
    /// (read only when HEAD said there are some).
    async fn tag(
        &self,
        object: &ObjectRef,
        head: &ObjectHead,
        job: &Job,
    ) -> Result<(), IntakeError> {
        let status = match job.state {
            JobState::Rejected => "rejected",
            JobState::Received => "received",
            _ if !same_object(&job.source, object) => "duplicate",
            _ => "accepted",
        };
        let existing = if head.tag_count == 0 {
            Vec::new()
        } else {
            self.blob.tags(object).await?
        };
        let mut tags: Vec<(String, String)> = existing
            .into_iter()
            .filter(|(k, _)| !k.starts_with("ocrbridge-"))
            .collect();
        tags.push((TAG_JOB_ID.into(), job.id.to_string()));
        tags.push((TAG_STATUS.into(), status.into()));
        if let (JobState::Rejected, Some(reason)) = (job.state, &job.reason) {
            tags.push((TAG_REASON.into(), reason.code.clone()));
        }
        // S3 allows ten tags; ours go last, so drop the uploader's oldest extras, never ours.
        let excess = tags.len().saturating_sub(10);
        let tags: Vec<(&str, &str)> = tags[excess..]
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        failpoints::around(
            "intake.before_tag",
            "intake.after_tag",
            job.id.as_str(),
            self.blob.put_tags(object, &tags),
        )
        .await?;
        Ok(())
    }
}

/// A job that stopped for a retryable reason, and an upload written after it stopped.
fn uploaded_after_it_stopped(job: &Job, head: &ObjectHead) -> bool {
    job.retryable_reason().is_some()
        && head
            .last_modified
            // S3 keeps whole seconds: only an upload in a later second than the stop counts.
            .is_some_and(|written| written.0 / 1000 > job.state_since.0 / 1000)
}

fn same_object(source: &SourceObject, object: &ObjectRef) -> bool {
    source.bucket == object.bucket
        && source.key == object.key
        && (source.version_id.is_none()
            || object.version_id.is_none()
            || source.version_id == object.version_id)
}

fn transition_error(e: TransitionError, job: &Job) -> IntakeError {
    match e {
        TransitionError::Ledger(e) => IntakeError::Ledger(e),
        _ => IntakeError::Vanished(job.id.clone()),
    }
}
