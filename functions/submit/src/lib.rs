//! `submit`: one vendor submission per job, under throttling, outages and lost responses.
//!
//! Per message (`{job_id}` on the submit queue):
//! 1. load the job; acknowledge if it is already past `Submitting`;
//! 2. fail it (with the reason, and the message to the DLQ) if it is older than the maximum age;
//! 3. take the submit lease, bounded by this invocation's deadline, recording the attempt in the
//!    same write;
//! 4. if an earlier holder recorded an attempt and vanished, **reconcile first**: ask the vendor
//!    by our idempotency key and adopt its job if it has one;
//! 5. spend a retry-budget token if this is a retry, and an admission token always;
//! 6. call the vendor with the deterministic key (the job id) and a
//!    short-lived presigned URL;
//! 7. on success, the owner-fenced move to `Submitted` with the vendor's job id.
//!
//! Errors are classified ([`ocrbridge::vendor::ErrorClass`]): retryable ones back off with full
//! jitter through the message's visibility; an answer lost after sending is looked up at once;
//! a 401/403 refreshes the key once and then fails the job clearly; other 4xx fail the job
//! with the vendor's reason and acknowledge the message (nothing to retry; the job says why).

pub mod config;

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use ocrbridge::batch::{
    self, attribute, Disposition, Source, DEFERRALS_ATTRIBUTE, FIRST_SENT_ATTRIBUTE,
};
use ocrbridge::blob::{Blob, ObjectRef};
use ocrbridge::config::StackConfig;
use ocrbridge::job::{Job, JobState, Reason};
use ocrbridge::ledger::{
    AttemptOutcome, Change, FenceError, Lease, LeaseError, LeaseStep, Ledger, Take,
};
use ocrbridge::metrics::{self, Metrics};
use ocrbridge::queue::{Queue, SubmitRequest};
use ocrbridge::retry::Budgets;
use ocrbridge::time::{lease_until_from_deadline, UnixMillis, DEFAULT_LEASE_SAFETY_MARGIN};
use ocrbridge::vendor::{ErrorClass, Submission, Vendor, VendorError};
use tracing::{info, info_span, warn, Instrument};

pub use config::SubmitConfig;

pub struct Submit<V> {
    pub vendor: V,
    pub ledger: Ledger,
    pub blob: Blob,
    pub queue: Queue,
    pub metrics: Metrics,
    pub stack: StackConfig,
    pub config: SubmitConfig,
    pub budgets: Budgets,
}

impl<V: Vendor> Submit<V> {
    pub async fn handle_sqs(&self, event: SqsEvent, deadline: UnixMillis) -> SqsBatchResponse {
        let source = Source {
            name: "submit",
            dlq_url: self.stack.submit_dlq_url.clone(),
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
                    &self.stack.submit_queue_url,
                    &message,
                    disposition,
                )
                .await
            },
        )
        .await
    }

    /// Decides what to do with one message; every path that touched the vendor ends with a
    /// fenced ledger write.
    pub async fn handle_message(&self, message: &SqsMessage, deadline: UnixMillis) -> Disposition {
        let body = message.body.as_deref().unwrap_or_default();
        let request: SubmitRequest = match serde_json::from_str(body) {
            Ok(r) => r,
            Err(e) => {
                return Disposition::DeadLetter {
                    code: "malformed_message",
                    reason: format!("expected {{\"job_id\": \"doc-…\"}}: {e}"),
                }
            }
        };
        let span = info_span!("submit", job_id = %request.job_id);
        async {
            let job = match self.ledger.get_job(&request.job_id).await {
                Ok(Some(job)) => job,
                Ok(None) => {
                    return Disposition::DeadLetter {
                        code: "unknown_job",
                        reason: format!("no job {} in the ledger", request.job_id),
                    }
                }
                Err(e) => return self.retry_later(1, "dynamodb_error", e.to_string()),
            };
            let attempt = batch::receive_count(message)
                + attribute(message, DEFERRALS_ATTRIBUTE)
                    .and_then(|d| d.parse::<u32>().ok())
                    .unwrap_or(0);
            self.submit_job(job, message, attempt, deadline).await
        }
        .instrument(span)
        .await
    }

    fn retry_later(&self, attempt: u32, code: &'static str, reason: String) -> Disposition {
        Disposition::RetryAfter {
            delay: self.config.backoff.delay(attempt, None, &mut rand::rng()),
            code,
            reason,
        }
    }

    async fn submit_job(
        &self,
        job: Job,
        message: &SqsMessage,
        attempt: u32,
        deadline: UnixMillis,
    ) -> Disposition {
        let now = UnixMillis::now();
        if job.state > JobState::Submitting || job.state.is_terminal() {
            self.metrics.count(
                metrics::SUBMIT_SKIPPED,
                &[job.state.as_str()],
                &[("job_id", job.id.as_str())],
            );
            info!(state = %job.state, "already past submission; acknowledging");
            return Disposition::Done;
        }
        let first_sent = attribute(message, FIRST_SENT_ATTRIBUTE)
            .or_else(|| message.attributes.get("SentTimestamp").cloned())
            .and_then(|t| t.parse::<u64>().ok())
            .map(UnixMillis)
            .unwrap_or(job.created_at);
        if now.since(first_sent) > self.config.max_age {
            let reason = Reason::new(
                "max_age_exceeded",
                format!(
                    "not submitted within {:?} of being queued",
                    self.config.max_age
                ),
            );
            return self.fail_unleased(&job, reason).await;
        }

        let until = lease_until_from_deadline(deadline, DEFAULT_LEASE_SAFETY_MARGIN);
        let owner = format!("submit-{}", uuid::Uuid::new_v4().simple());
        // The attempt is recorded with the lease, in one write: every path below that does not
        // reach the vendor releases the lease as `NotReached`, which clears it again.
        let attempt_id = uuid::Uuid::new_v4().to_string();
        let lease = match self
            .ledger
            .acquire_lease_and_record_attempt(
                &job,
                LeaseStep::Submit,
                &owner,
                until,
                &attempt_id,
                now,
            )
            .await
        {
            Ok(lease) => lease,
            Err(LeaseError::AlreadyPast { current, .. }) => {
                self.metrics
                    .count(metrics::SUBMIT_SKIPPED, &[current.state.as_str()], &[]);
                return Disposition::Done;
            }
            Err(LeaseError::Held { until, .. }) => {
                return Disposition::RetryAfter {
                    delay: until.since(now) + Duration::from_secs(1),
                    code: "lease_held",
                    reason: "another worker holds the submit lease".into(),
                }
            }
            Err(LeaseError::NotYet { current, .. }) => {
                return Disposition::RetryAfter {
                    delay: Duration::from_secs(5),
                    code: "not_queued_yet",
                    reason: format!("job is still {}", current.state),
                }
            }
            Err(
                e @ (LeaseError::Contended { .. }
                | LeaseError::NoTimeLeft { .. }
                | LeaseError::Ledger(_)),
            ) => return self.retry_later(attempt, "lease_unavailable", e.to_string()),
            Err(LeaseError::Missing(id)) => {
                return Disposition::DeadLetter {
                    code: "unknown_job",
                    reason: format!("job {id} vanished"),
                }
            }
        };

        // An earlier holder may have reached the vendor: never pay twice.
        if lease.inherited_attempt.is_some() {
            match self.vendor.find_by_idempotency_key(job.id.as_str()).await {
                Ok(Some(vendor_job)) => {
                    self.metrics.count(
                        metrics::RECONCILES,
                        &[self.vendor.name(), "adopted"],
                        &[("job_id", job.id.as_str())],
                    );
                    info!(vendor_job_id = %vendor_job.id, "adopted the vendor's existing job");
                    return self.complete(&lease, &job, vendor_job.id).await;
                }
                Ok(None) => {
                    self.metrics.count(
                        metrics::RECONCILES,
                        &[self.vendor.name(), "resubmitted"],
                        &[("job_id", job.id.as_str())],
                    );
                }
                Err(e) => {
                    return self
                        .give_back(&lease, AttemptOutcome::MayHaveReached, attempt, &e)
                        .await;
                }
            }
        }

        if attempt > 1 {
            match self
                .ledger
                .take_tokens(&self.budgets.retry, 1.0, UnixMillis::now())
                .await
            {
                Ok(Take::Granted) => {}
                Ok(Take::Denied { wait }) => {
                    self.metrics.count(
                        metrics::BUDGET_EXHAUSTED,
                        &[self.vendor.name()],
                        &[("job_id", job.id.as_str())],
                    );
                    info!(?wait, "retry budget exhausted; deferring");
                    // Look again after a jittered backoff (not the bucket's full refill time),
                    // so the work resumes soon after the budget does.
                    let delay =
                        wait.min(self.config.backoff.delay(attempt, None, &mut rand::rng()));
                    return self.defer(&lease, delay).await;
                }
                Err(e) => {
                    return self
                        .release_and_retry(&lease, attempt, "dynamodb_error", e.to_string())
                        .await
                }
            }
        }
        if let Err(disposition) = self.admit(&lease).await {
            return disposition;
        }

        let object = ObjectRef {
            bucket: job.source.bucket.clone(),
            key: job.source.key.clone(),
            version_id: job.source.version_id.clone(),
        };
        let url = match self
            .blob
            .presign_get(&object, self.config.presign_expiry)
            .await
        {
            Ok(url) => url,
            Err(e) => {
                return self
                    .release_and_retry(&lease, attempt, "presign_failed", e.to_string())
                    .await
            }
        };
        if UnixMillis::now() >= lease.until {
            // Admission or the budget took the time this invocation had: do not start a call
            // that another worker may be allowed to repeat.
            warn!("the lease ran out before the vendor call");
            return self.retry_later(
                attempt,
                "lease_lost",
                "lease expired before the call".into(),
            );
        }
        let submission = Submission {
            idempotency_key: job.id.as_str(),
            document_url: &url,
            profile: &job.profile,
            external_ref: job.id.as_str(),
        };
        let started = Instant::now();
        let mut result = self.vendor.submit(&submission).await;
        if let Err(VendorError::Auth { status }) = &result {
            // Rotation may just have replaced the key: one refresh, one more try.
            warn!(
                status,
                "vendor refused the credentials; refreshing the API key once"
            );
            self.vendor.refresh_credentials().await;
            result = self.vendor.submit(&submission).await;
        }
        self.metrics.emit(
            metrics::SUBMIT_LATENCY,
            started.elapsed().as_secs_f64() * 1e3,
            &[self.vendor.name()],
            &[("job_id", job.id.as_str())],
        );
        match result {
            Ok(vendor_job_id) => self.complete(&lease, &job, vendor_job_id).await,
            Err(e) => self.on_error(&lease, &job, attempt, e).await,
        }
    }

    /// Waits for an admission token if it comes soon; otherwise defers the message.
    async fn admit(&self, lease: &Lease) -> Result<(), Disposition> {
        loop {
            match self
                .ledger
                .take_tokens(&self.budgets.admission, 1.0, UnixMillis::now())
                .await
            {
                Ok(Take::Granted) => return Ok(()),
                Ok(Take::Denied { wait }) => {
                    let time_left = lease.until.since(UnixMillis::now());
                    if wait <= self.config.max_admission_wait
                        && wait + Duration::from_secs(3) < time_left
                    {
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    self.metrics
                        .count(metrics::ADMISSION_DELAYED, &[self.vendor.name()], &[]);
                    return Err(self.defer(lease, wait).await);
                }
                Err(e) => {
                    return Err(self
                        .release_and_retry(lease, 1, "dynamodb_error", e.to_string())
                        .await)
                }
            }
        }
    }

    async fn on_error(
        &self,
        lease: &Lease,
        job: &Job,
        attempt: u32,
        error: VendorError,
    ) -> Disposition {
        let vendor = self.vendor.name();
        match error.class() {
            ErrorClass::Retryable => {
                self.metrics.count(
                    metrics::SUBMIT_RETRIES,
                    &[vendor, error.cause()],
                    &[("job_id", job.id.as_str())],
                );
                if let Some(wait) = error.retry_after() {
                    // The vendor's Retry-After holds back every worker, not only this one.
                    let _ = self
                        .ledger
                        .pause_bucket(&self.budgets.admission, UnixMillis::now().plus(wait))
                        .await;
                }
                self.give_back(lease, AttemptOutcome::NotReached, attempt, &error)
                    .await
            }
            ErrorClass::Ambiguous => {
                self.metrics.count(
                    metrics::SUBMIT_RETRIES,
                    &[vendor, error.cause()],
                    &[("job_id", job.id.as_str())],
                );
                // The vendor may have it: ask now rather than on the next delivery.
                if let Ok(Some(vendor_job)) =
                    self.vendor.find_by_idempotency_key(job.id.as_str()).await
                {
                    self.metrics.count(
                        metrics::RECONCILES,
                        &[vendor, "adopted"],
                        &[("job_id", job.id.as_str())],
                    );
                    return self.complete(lease, job, vendor_job.id).await;
                }
                self.give_back(lease, AttemptOutcome::MayHaveReached, attempt, &error)
                    .await
            }
            ErrorClass::Permanent => {
                let (code, dead_letter) = match &error {
                    VendorError::Auth { status } => {
                        self.metrics.count(
                            metrics::AUTH_FAILURES,
                            &[vendor, &status.to_string()],
                            &[("job_id", job.id.as_str())],
                        );
                        ("vendor_auth_failed", true)
                    }
                    _ => ("vendor_rejected", false),
                };
                let reason = Reason::new(code, error.to_string());
                warn!(code, error = %error, "permanent vendor error; failing the job");
                self.metrics.count(
                    metrics::JOBS_FAILED,
                    &["submit", code],
                    &[("job_id", job.id.as_str())],
                );
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
                    Ok(_) | Err(FenceError::Lost { .. }) => {}
                    Err(e) => return self.retry_later(attempt, "dynamodb_error", e.to_string()),
                }
                if dead_letter {
                    // A credential problem is the operator's to fix; keep the message to redrive.
                    Disposition::DeadLetter {
                        code,
                        reason: error.to_string(),
                    }
                } else {
                    Disposition::Done
                }
            }
        }
    }

    async fn complete(&self, lease: &Lease, job: &Job, vendor_job_id: String) -> Disposition {
        match self
            .ledger
            .complete_lease(
                lease,
                JobState::Submitted,
                Change::none().with_vendor_job_id(&vendor_job_id),
                UnixMillis::now(),
            )
            .await
        {
            Ok(_) => {
                let vendor = self.vendor.name();
                let profile = job.profile.as_str();
                self.metrics.count(
                    metrics::SUBMISSIONS,
                    &[vendor, profile],
                    &[("job_id", job.id.as_str())],
                );
                let pages = f64::from(job.inspection.pages.unwrap_or(1));
                self.metrics.emit(
                    metrics::ESTIMATED_COST,
                    pages * self.config.price_per_page,
                    &[vendor, profile],
                    &[("job_id", job.id.as_str())],
                );
                info!(vendor_job_id = %vendor_job_id, "submitted");
                Disposition::Done
            }
            // Someone else finished it (or took over and will): nothing left for us.
            Err(FenceError::Lost { .. }) => Disposition::Done,
            Err(e) => self.retry_later(1, "dynamodb_error", e.to_string()),
        }
    }

    /// Releases the lease after a failed attempt and schedules the retry.
    async fn give_back(
        &self,
        lease: &Lease,
        outcome: AttemptOutcome,
        attempt: u32,
        error: &VendorError,
    ) -> Disposition {
        if let Err(e) = self.ledger.release_lease(lease, outcome).await {
            warn!(error = %e, "could not release the lease; it will expire");
        }
        Disposition::RetryAfter {
            delay: self
                .config
                .backoff
                .delay(attempt, error.retry_after(), &mut rand::rng()),
            code: match error.cause() {
                "429" => "vendor_throttled",
                "5xx" => "vendor_unavailable",
                "network" => "vendor_unreachable",
                _ => "vendor_no_answer",
            },
            reason: error.to_string(),
        }
    }

    async fn release_and_retry(
        &self,
        lease: &Lease,
        attempt: u32,
        code: &'static str,
        reason: String,
    ) -> Disposition {
        if let Err(e) = self
            .ledger
            .release_lease(lease, AttemptOutcome::NotReached)
            .await
        {
            warn!(error = %e, "could not release the lease; it will expire");
        }
        self.retry_later(attempt, code, reason)
    }

    async fn defer(&self, lease: &Lease, delay: Duration) -> Disposition {
        // Nothing reached the vendor in this invocation; an inherited attempt was reconciled.
        if let Err(e) = self
            .ledger
            .release_lease(lease, AttemptOutcome::NotReached)
            .await
        {
            warn!(error = %e, "could not release the lease; it will expire");
        }
        Disposition::Defer(delay)
    }

    /// Fails a job that is not leased (too old to submit).
    async fn fail_unleased(&self, job: &Job, reason: Reason) -> Disposition {
        let code = "max_age_exceeded";
        self.metrics.count(
            metrics::JOBS_FAILED,
            &["submit", code],
            &[("job_id", job.id.as_str())],
        );
        let message = reason.message.clone();
        match self
            .ledger
            .transition(
                job,
                JobState::Failed,
                Change::none().with_reason(reason),
                UnixMillis::now(),
            )
            .await
        {
            Ok(_) => Disposition::DeadLetter {
                code,
                reason: message,
            },
            Err(e) => self.retry_later(1, "dynamodb_error", e.to_string()),
        }
    }
}
