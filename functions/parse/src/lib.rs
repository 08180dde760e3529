//! `parse`: one normalized, validated result per document.
//!
//! Per [`ResultNotice`] (from the webhook function or reconcile), never trusting its order:
//! 1. a job already parsed (or failed) acknowledges the notice and does nothing;
//! 2. a job the submit function has not finished yet keeps the notice on the queue (backoff);
//! 3. a `Submitted` job: **ask the vendor** for the status — a failed vendor job becomes `Failed`
//!    with the vendor's reason and is never parsed; a succeeded one moves to `ResultReady`;
//! 4. under the parse lease: fetch the raw result, **archive it first** (`raw/<job>/<attempt>.json.gz`,
//!    so a parser bug can be replayed without paying the vendor again), normalize it, report
//!    schema drift, validate against `Document v1`'s JSON Schema (a violation fails the job with
//!    its path, nothing is stored), apply the field rules, store `results/<job>.json`, and move
//!    the job to `Completed` or `NeedsReview` with every reason.

use std::io::Write;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::Utc;
use ocrbridge::batch::{self, Disposition, Source};
use ocrbridge::blob::{Blob, ObjectRef};
use ocrbridge::config::StackConfig;
use ocrbridge::document::Fields;
use ocrbridge::job::{Job, JobState, Reason};
use ocrbridge::ledger::{
    Change, FenceError, Lease, LeaseError, LeaseStep, Ledger, TransitionError,
};
use ocrbridge::metrics::{self, Metrics};
use ocrbridge::queue::ResultNotice;
use ocrbridge::retry::Backoff;
use ocrbridge::rules::{self, RuleConfig};
use ocrbridge::time::{lease_until_from_deadline, UnixMillis, DEFAULT_LEASE_SAFETY_MARGIN};
use ocrbridge::vendor::{Vendor, VendorStatus};
use serde_json::json;
use tracing::{info, info_span, warn, Instrument};

#[derive(Debug, Clone, PartialEq)]
pub struct ParseConfig {
    pub rules: RuleConfig,
    /// `BACKOFF_BASE_MS` / `BACKOFF_CAP_SECS`, as for submit.
    pub backoff: Backoff,
}

impl ParseConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let ms = |k: &str, d: u64| lookup(k).and_then(|v| v.parse().ok()).unwrap_or(d);
        ParseConfig {
            rules: RuleConfig::from_lookup(&lookup),
            backoff: Backoff {
                base: Duration::from_millis(ms("BACKOFF_BASE_MS", 2_000)),
                cap: Duration::from_secs(ms("BACKOFF_CAP_SECS", 900)),
            },
        }
    }
}

pub struct Parse<V> {
    pub vendor: V,
    pub ledger: Ledger,
    pub blob: Blob,
    pub queue: ocrbridge::queue::Queue,
    pub metrics: Metrics,
    pub stack: StackConfig,
    pub config: ParseConfig,
}

/// Page-count buckets for the latency metric.
fn page_bucket(pages: Option<u32>) -> &'static str {
    match pages.unwrap_or(1) {
        0..=1 => "1",
        2..=5 => "2-5",
        6..=20 => "6-20",
        _ => "21+",
    }
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes)?;
    encoder.finish()
}

impl<V: Vendor> Parse<V> {
    pub async fn handle_sqs(&self, event: SqsEvent, deadline: UnixMillis) -> SqsBatchResponse {
        let source = Source {
            name: "results",
            dlq_url: self.stack.results_dlq_url.clone(),
            max_receive_count: self.stack.max_receive_count,
        };
        batch::process(
            event,
            &source,
            &self.queue,
            &self.metrics,
            |message| async move {
                let disposition = self.handle_message(&message, deadline).await;
                batch::apply(
                    &self.queue,
                    &self.stack.results_queue_url,
                    &message,
                    disposition,
                )
                .await
            },
        )
        .await
    }

    pub async fn handle_message(&self, message: &SqsMessage, deadline: UnixMillis) -> Disposition {
        let notice: ResultNotice =
            match serde_json::from_str(message.body.as_deref().unwrap_or_default()) {
                Ok(n) => n,
                Err(e) => {
                    return Disposition::DeadLetter {
                        code: "malformed_message",
                        reason: format!("not a result notice: {e}"),
                    }
                }
            };
        let attempt = batch::receive_count(message);
        let span = info_span!("parse", job_id = %notice.job_id, status = %notice.status);
        self.handle_notice(&notice, attempt, deadline)
            .instrument(span)
            .await
    }

    fn later(&self, attempt: u32, code: &'static str, reason: impl Into<String>) -> Disposition {
        Disposition::RetryAfter {
            delay: self.config.backoff.delay(attempt, None, &mut rand::rng()),
            code,
            reason: reason.into(),
        }
    }

    pub async fn handle_notice(
        &self,
        notice: &ResultNotice,
        attempt: u32,
        deadline: UnixMillis,
    ) -> Disposition {
        let mut job = match self.ledger.get_job(&notice.job_id).await {
            Ok(Some(job)) => job,
            Ok(None) => {
                return Disposition::DeadLetter {
                    code: "unknown_job",
                    reason: format!("no job {}", notice.job_id),
                }
            }
            Err(e) => return self.later(attempt, "dynamodb_error", e.to_string()),
        };
        if job.state == JobState::Submitted {
            match self.check_vendor(&job, attempt).await {
                Ok(ready) => job = ready,
                Err(disposition) => return disposition,
            }
        }
        match job.state {
            JobState::Completed | JobState::NeedsReview | JobState::Failed | JobState::Rejected => {
                info!(state = %job.state, "already settled; acknowledging");
                Disposition::Done
            }
            JobState::Received | JobState::Queued | JobState::Submitting => {
                // The webhook beat the submit function's write: keep the notice; reconcile also
                // polls Submitted jobs, so nothing depends on this one message.
                self.later(
                    attempt.max(3),
                    "not_submitted_yet",
                    format!("job is {}", job.state),
                )
            }
            JobState::Submitted => Disposition::Done,
            JobState::ResultReady | JobState::Parsing => self.parse(job, attempt, deadline).await,
        }
    }

    /// Asks the vendor where a submitted job stands; `Ok` is the job, moved to `ResultReady`.
    async fn check_vendor(&self, job: &Job, attempt: u32) -> Result<Job, Disposition> {
        let Some(vendor_job_id) = job.vendor_job_id.clone() else {
            return Err(Disposition::DeadLetter {
                code: "no_vendor_job",
                reason: "a Submitted job has no vendor job id".into(),
            });
        };
        let status = match self.vendor.status(&vendor_job_id).await {
            Ok(v) => v.status,
            Err(e) => return Err(self.later(attempt, "vendor_status_failed", e.to_string())),
        };
        let now = UnixMillis::now();
        match status {
            VendorStatus::Succeeded => match self
                .ledger
                .transition(job, JobState::ResultReady, Change::none(), now)
                .await
            {
                Ok(job) => Ok(job),
                Err(TransitionError::Stale { current, .. }) => Ok(*current),
                Err(e) => Err(self.later(attempt, "dynamodb_error", e.to_string())),
            },
            VendorStatus::Failed { code, message } => {
                let reason = Reason::new("vendor_failed", format!("{code}: {message}"));
                self.metrics.count(
                    metrics::JOBS_FAILED,
                    &["parse", "vendor_failed"],
                    &[("job_id", job.id.as_str())],
                );
                warn!(%code, %message, "the vendor failed the job; not parsing it");
                match self
                    .ledger
                    .transition(
                        job,
                        JobState::Failed,
                        Change::none().with_reason(reason),
                        now,
                    )
                    .await
                {
                    Ok(_) | Err(TransitionError::Stale { .. }) => Err(Disposition::Done),
                    Err(e) => Err(self.later(attempt, "dynamodb_error", e.to_string())),
                }
            }
            VendorStatus::Queued | VendorStatus::Processing => {
                info!("the vendor is still working; a later notice or reconcile will bring the result");
                Err(Disposition::Done)
            }
            VendorStatus::Unknown(value) => {
                self.metrics.count(
                    metrics::SCHEMA_DRIFT,
                    &[self.vendor.name(), "status", "new_enum_value"],
                    &[("value", &value)],
                );
                Err(self.later(
                    attempt,
                    "unknown_vendor_status",
                    format!("the vendor reports status {value:?}"),
                ))
            }
        }
    }

    async fn parse(&self, job: Job, attempt: u32, deadline: UnixMillis) -> Disposition {
        let now = UnixMillis::now();
        let until = lease_until_from_deadline(deadline, DEFAULT_LEASE_SAFETY_MARGIN);
        let owner = format!("parse-{}", uuid::Uuid::new_v4().simple());
        // The attempt names the raw archive; it is recorded with the lease, in one write.
        let attempt_id = uuid::Uuid::new_v4().simple().to_string();
        let lease = match self
            .ledger
            .acquire_lease_and_record_attempt(
                &job,
                LeaseStep::Parse,
                &owner,
                until,
                &attempt_id,
                now,
            )
            .await
        {
            Ok(lease) => lease,
            Err(LeaseError::AlreadyPast { .. }) => return Disposition::Done,
            Err(LeaseError::Held { until, .. }) => {
                return Disposition::RetryAfter {
                    delay: until.since(now) + Duration::from_secs(1),
                    code: "lease_held",
                    reason: "another worker is parsing".into(),
                }
            }
            Err(e) => return self.later(attempt, "lease_unavailable", e.to_string()),
        };
        let Some(vendor_job_id) = job.vendor_job_id.clone() else {
            return self
                .fail(
                    &lease,
                    &job,
                    "no_vendor_job",
                    "the job has no vendor job id".into(),
                )
                .await;
        };
        let raw = match self.vendor.fetch_result(&vendor_job_id).await {
            Ok(raw) => raw,
            Err(e) => {
                let _ = self
                    .ledger
                    .release_lease(&lease, ocrbridge::ledger::AttemptOutcome::NotReached)
                    .await;
                return self.later(attempt, "fetch_failed", e.to_string());
            }
        };
        // Archive before parsing: the raw payload is what we paid for.
        let archive = ObjectRef {
            bucket: self.stack.results_bucket.clone(),
            key: format!("raw/{}/{attempt_id}.json.gz", job.id),
            version_id: None,
        };
        let stored = match gzip(&raw) {
            Ok(compressed) => self
                .blob
                .put(&archive, compressed, "application/json", Some("gzip"))
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = stored {
            let _ = self
                .ledger
                .release_lease(&lease, ocrbridge::ledger::AttemptOutcome::NotReached)
                .await;
            return self.later(attempt, "archive_failed", e);
        }

        let normalized =
            match self
                .vendor
                .normalize(&raw, job.id.as_str(), &vendor_job_id, &job.profile)
            {
                Ok(n) => n,
                Err(e) => {
                    return self
                        .fail(&lease, &job, "unusable_payload", e.to_string())
                        .await
                }
            };
        for drift in &normalized.drift {
            self.metrics.count(
                metrics::SCHEMA_DRIFT,
                &[self.vendor.name(), &drift.field, drift.kind.as_str()],
                &[("job_id", job.id.as_str())],
            );
            warn!(field = %drift.field, kind = drift.kind.as_str(), "vendor payload drift");
        }
        let document_json = match normalized.document.to_validated_json() {
            Ok(v) => v,
            Err(violation) => {
                return self
                    .fail(&lease, &job, "schema_violation", violation.to_string())
                    .await
            }
        };
        let reasons = rules::check(
            &normalized.document.fields,
            &self.config.rules,
            Utc::now().date_naive(),
        );
        self.count_nulls(&job, &normalized.document.fields);

        let result_key = format!("results/{}.json", job.id);
        let body = match serde_json::to_vec(&document_json) {
            Ok(b) => b,
            Err(e) => {
                return self
                    .fail(&lease, &job, "serialize_failed", e.to_string())
                    .await
            }
        };
        let target = ObjectRef {
            bucket: self.stack.results_bucket.clone(),
            key: result_key.clone(),
            version_id: None,
        };
        if let Err(e) = self.blob.put(&target, body, "application/json", None).await {
            let _ = self
                .ledger
                .release_lease(&lease, ocrbridge::ledger::AttemptOutcome::NotReached)
                .await;
            return self.later(attempt, "store_failed", e.to_string());
        }
        let summary = summary(&normalized.document.fields, &reasons);
        let (to, change) = if reasons.is_empty() {
            (
                JobState::Completed,
                Change::none().with_result(&result_key, summary),
            )
        } else {
            for r in &reasons {
                self.metrics.count(
                    metrics::NEEDS_REVIEW,
                    &[r.rule],
                    &[("job_id", job.id.as_str()), ("field", r.field)],
                );
            }
            let message = reasons
                .iter()
                .map(|r| format!("{}: {}", r.rule, r.detail))
                .collect::<Vec<_>>()
                .join("; ");
            (
                JobState::NeedsReview,
                Change::none()
                    .with_result(&result_key, summary)
                    .with_reason(Reason::new("needs_review", message)),
            )
        };
        match self
            .ledger
            .complete_lease(&lease, to, change, UnixMillis::now())
            .await
        {
            Ok(done) => {
                let profile = job.profile.as_str();
                self.metrics.emit(
                    metrics::END_TO_END_LATENCY,
                    done.state_since.since(job.created_at).as_secs_f64() * 1e3,
                    &[profile, page_bucket(job.inspection.pages)],
                    &[("job_id", job.id.as_str())],
                );
                self.metrics.count(
                    metrics::JOBS_COMPLETED,
                    &[profile, done.state.as_str()],
                    &[("job_id", job.id.as_str())],
                );
                info!(state = %done.state, result = %result_key, "parsed");
                Disposition::Done
            }
            Err(FenceError::Lost { .. }) => Disposition::Done,
            Err(e) => self.later(attempt, "dynamodb_error", e.to_string()),
        }
    }

    async fn fail(
        &self,
        lease: &Lease,
        job: &Job,
        code: &'static str,
        message: String,
    ) -> Disposition {
        self.metrics.count(
            metrics::PARSE_FAILURES,
            &[code],
            &[("job_id", job.id.as_str())],
        );
        warn!(code, %message, "parse failed; the raw payload stays archived for replay");
        let reason = Reason::new(format!("parse_failed:{code}"), message);
        match self
            .ledger
            .complete_lease(
                lease,
                JobState::Failed,
                Change::none().with_reason(reason),
                UnixMillis::now(),
            )
            .await
        {
            Ok(_) | Err(FenceError::Lost { .. }) => Disposition::Done,
            Err(e) => self.later(1, "dynamodb_error", e.to_string()),
        }
    }

    fn count_nulls(&self, job: &Job, fields: &Fields) {
        let value = serde_json::to_value(fields).unwrap_or_default();
        let profile = job.profile.as_str();
        if let Some(object) = value.as_object() {
            for (name, v) in object {
                if name != "profile" && v.is_null() {
                    self.metrics.count(
                        metrics::FIELD_NULL,
                        &[profile, name],
                        &[("job_id", job.id.as_str())],
                    );
                }
            }
        }
    }
}

/// Key fields and review rules, as a short JSON object for the job record.
fn summary(fields: &Fields, reasons: &[rules::ReviewReason]) -> String {
    let value = serde_json::to_value(fields).unwrap_or_default();
    let mut out = serde_json::Map::new();
    if let Some(object) = value.as_object() {
        for (name, v) in object {
            if name == "line_items" {
                continue;
            }
            if let Some(inner) = v.get("value") {
                out.insert(
                    name.clone(),
                    json!({ "value": inner, "confidence": v.get("confidence") }),
                );
            }
        }
    }
    out.insert(
        "review".into(),
        json!(reasons.iter().map(|r| r.rule).collect::<Vec<_>>()),
    );
    serde_json::Value::Object(out).to_string()
}
