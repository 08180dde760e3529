//! `submit`: one vendor submission per job, under throttling, outages, lost answers and crashes,
//! whether or not the vendor deduplicates.
//!
//! Per message (`{job_id}` on the submit queue):
//! 1. load the job; acknowledge if it is past `Submitting` (or `Held`: an operator decides). A
//!    message an operator redrove from the DLQ (it still carries its reason attributes) revives
//!    a job that failed or was held for a retryable reason — except one held because its last
//!    submission may have arrived, which only `ocrbridge jobs retry --accept-duplicate-risk`
//!    resubmits;
//! 2. choose the vendor: the first of the profile's route (`VENDOR_ROUTES`, else `VENDOR`
//!    alone) whose circuit breaker ([`ocrbridge::breaker`], shared by every container) lets a
//!    call through; then take the submit lease, bounded by this invocation's deadline, recording
//!    the attempt — which names that vendor — in the same write ([`step`]);
//! 3. if the job already has a vendor job (an operator's retry of a job the vendor has), adopt
//!    it: nothing is sent;
//! 4. if an earlier holder recorded an attempt and vanished, **resolve it first**, at the vendor
//!    it went to, whichever step 2 chose ([`ocrbridge::vendors::ambiguity`]): look it up, resend
//!    the same key, wait for the completion that names the job, or — per the configured
//!    fallback — resubmit counted as a possible second charge, or hold the job for an operator;
//! 5. fail the job if its submission window (`MAX_SUBMIT_AGE_SECS` since it was queued) is over
//!    — under the lease, after step 4, so nothing that reached the vendor is forgotten;
//! 6. with every breaker in the route open, defer the message until one half-opens, nothing
//!    sent; then pay the chosen vendor's retry budget what the last failed call owes (deferrals
//!    owe nothing), and take one of its admission tokens;
//! 7. call the vendor with the deterministic key (the job id), a short-lived presigned URL, and
//!    a time limit of what is left of the lease — or, for a document the vendor reads in the
//!    call itself ([`ocrbridge::vendors::answer`]: Textract's synchronous APIs), make that call;
//! 8. on success, the owner-fenced move to `Submitted` with the vendor's job id — for a vendor
//!    that pushes nothing, followed by the first poll notice ([`ocrbridge::vendors::poll`]). A
//!    synchronous answer is archived first and recorded under an answered id, and parse is told
//!    at once. An answer that arrives after the lease was lost is recorded as an orphan, never
//!    dropped.
//!
//! Errors are classified ([`ErrorClass`]): retryable ones back off with full jitter through the
//! message's visibility and leave a retry debt on the job; an ambiguous one (sent, answer lost)
//! leaves the attempt recorded for step 4; a 401/403 refreshes the key once and then pauses
//! every submission to that vendor for `AUTH_PAUSE_SECS` and holds the job (`vendor_auth_failed`,
//! the message kept in the DLQ to redrive) — or, where the route has another vendor, retries it
//! there (the refusal opened this one's breaker); other 4xx fail the job with the vendor's
//! reason.

pub mod config;
mod step;

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use ocrbridge::batch::{self, Disposition, Source};
use ocrbridge::blob::Blob;
use ocrbridge::config::StackConfig;
use ocrbridge::cost::JobCost;
use ocrbridge::failpoints;
use ocrbridge::job::{reason, CallKind, Job, JobState, Reason};
use ocrbridge::ledger::{AttemptOutcome, Change, FenceError, Lease, Ledger, RetryDebt};
use ocrbridge::metrics::{self, Metrics};
use ocrbridge::queue::{Queue, SubmitRequest, REASON_CODE_ATTRIBUTE};
use ocrbridge::recovery;
use ocrbridge::retry::Budgets;
use ocrbridge::time::UnixMillis;
use ocrbridge::vendors::answer;
use ocrbridge::vendors::poll::POLL_STATUS;
use ocrbridge::vendors::route::{Adapter, Routes};
use ocrbridge::vendors::{Completion, Vendor};
use tracing::{error, info, info_span, warn, Instrument};

pub use config::SubmitConfig;

pub struct Submit<V> {
    /// The stack's `VENDOR`, with `budgets` its rate budget.
    pub vendor: V,
    /// The other vendors `VENDOR_ROUTES` names, and each profile's order.
    pub routes: Routes<V>,
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
            queue_url: self.stack.submit_queue_url.clone(),
            dlq_url: self.stack.submit_dlq_url.clone(),
            max_receive_count: self.stack.max_receive_count,
            concurrency: self.config.message_concurrency,
            time_needed: batch::min_time_per_message,
        };
        batch::process(
            event,
            &source,
            Some(deadline),
            &self.queue,
            &self.metrics,
            |message, queue_url| async move {
                let disposition = self.handle_message(&message, deadline).await;
                batch::apply(&self.queue, &queue_url, &message, disposition).await
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
            let mut job = match self.ledger.get_job(&request.job_id).await {
                Ok(Some(job)) => job,
                Ok(None) => {
                    return Disposition::DeadLetter {
                        code: "unknown_job",
                        reason: format!("no job {} in the ledger", request.job_id),
                    }
                }
                Err(e) => return self.retry_later(1, "dynamodb_error", e.to_string()),
            };
            if batch::attribute(message, REASON_CODE_ATTRIBUTE).is_some() {
                // Only the DLQ gives a message these attributes, and only an operator's redrive
                // brings it back: that is a request to retry the job.
                match self.revive(&job).await {
                    Ok(Some(revived)) => job = revived,
                    Ok(None) => {}
                    Err(disposition) => return disposition,
                }
            }
            let answered = batch::attribute(message, batch::VENDOR_JOB_ATTRIBUTE);
            self.submit_job(job, batch::receive_count(message), answered, deadline)
                .await
        }
        .instrument(span)
        .await
    }

    /// A redriven message for a job that stopped for a retryable reason sends it back to
    /// `Queued` (the same retry an operator's command makes); `Ok(None)`: nothing to revive.
    async fn revive(&self, job: &Job) -> Result<Option<Job>, Disposition> {
        let Some(reason) = job.retryable_reason().cloned() else {
            return Ok(None);
        };
        let revived = failpoints::around(
            "submit.before_revive",
            "submit.after_revive",
            job.id.as_str(),
            recovery::requeue(&self.ledger, &self.metrics, job, recovery::Trigger::Redrive),
        )
        .await;
        match revived {
            Ok(revived) => {
                info!(reason = %reason.code, "redriven: retrying the job");
                Ok(Some(revived))
            }
            // Someone else moved it meanwhile; decide from the job as it is now.
            Err(recovery::RetryError::Moved { current }) => Ok(Some(*current)),
            // Held because its last submission may have arrived: a bulk redrive does not decide
            // a possible second charge; the job stays held for an operator.
            Err(recovery::RetryError::NeedsApproval(_)) => Ok(None),
            Err(e) => Err(self.retry_later(1, "dynamodb_error", e.to_string())),
        }
    }

    /// The stack's `VENDOR`.
    fn primary(&self) -> Adapter<'_, V> {
        Adapter {
            vendor: &self.vendor,
            budgets: &self.budgets,
        }
    }

    /// The vendor that has, or may have, `job` (unrouted jobs stop at `submit_job`'s top).
    fn vendor_of(&self, job: &Job) -> Adapter<'_, V> {
        self.routes.of_routed(self.primary(), job)
    }

    /// A fresh id for an attempt to send `job` to `vendor`: it names the vendor and the kind of
    /// call ([`ocrbridge::job::Attempt::new_id`]).
    fn new_attempt_id(vendor: &V, job: &Job) -> String {
        ocrbridge::job::Attempt::new_id(vendor.name(), Self::call_kind(vendor, job))
    }

    /// How `job` is sent to `vendor`: read in the call itself where the vendor can
    /// ([`ocrbridge::vendors::answer`]), else as a vendor job.
    fn call_kind(vendor: &V, job: &Job) -> CallKind {
        if vendor.answers_now(job) {
            CallKind::Answer
        } else {
            CallKind::Job
        }
    }

    fn retry_later(&self, attempt: u32, code: &'static str, reason: String) -> Disposition {
        Disposition::RetryAfter {
            delay: self.config.backoff.delay(attempt, None, &mut rand::rng()),
            code,
            reason,
        }
    }

    /// `answered`: a vendor job id an earlier delivery was given and could not record.
    async fn submit_job(
        &self,
        job: Job,
        receives: u32,
        answered: Option<String>,
        deadline: UnixMillis,
    ) -> Disposition {
        if let Err(unrouted) = self.routes.of(self.primary(), &job) {
            // Asking another vendor about it would be asking the wrong one.
            error!(error = %unrouted, "the job's vendor is not routed to");
            return Disposition::RetryAfter {
                delay: self.config.backoff.cap,
                code: "unrouted_vendor",
                reason: unrouted.to_string(),
            };
        }
        if let (Some(answer), Some(followed)) = (&answered, &job.vendor_job_id) {
            // The job found its vendor job another way meanwhile; if it is not this answer, this
            // one was billed too.
            if answer != followed && !job.orphan_vendor_jobs.contains(answer) {
                if let Err(kept) = self
                    .record_orphan(&job, answer, followed, "late_answer")
                    .await
                {
                    return kept;
                }
            }
        }
        if let Some(answer) = &answered {
            if job.state == JobState::Held
                && job.vendor_job_id.is_none()
                && job.reason.as_ref().map(|r| r.code.as_str())
                    == Some(reason::SUBMISSION_OUTCOME_UNKNOWN)
            {
                return self.adopt_for_held(&job, answer).await;
            }
        }
        if job.state > JobState::Submitting || job.state.is_terminal() {
            self.metrics.count(
                metrics::SUBMIT_SKIPPED,
                &[job.state.as_str()],
                &[("job_id", job.id.as_str())],
            );
            info!(state = %job.state, "past submission; acknowledging");
            return Disposition::Done;
        }
        let choice = self.choose_vendor(&job).await;
        let lease = match self.take_lease(&job, &choice, receives, deadline).await {
            Ok(lease) => lease,
            Err(disposition) => return disposition,
        };
        if let Some(vendor_job_id) = lease.job.vendor_job_id.clone() {
            // An operator's retry of a job the vendor already has: never send it again.
            info!(%vendor_job_id, "the job already has a vendor job; adopting it");
            self.count_reconcile(&job, "adopted_known");
            return self.complete(&lease, vendor_job_id, true).await;
        }
        if let Some(vendor_job_id) = answered {
            // The vendor answered an earlier delivery, which could not record it.
            info!(%vendor_job_id, "adopting the vendor job an earlier delivery was answered");
            self.count_reconcile(&job, "adopted_from_message");
            return self.complete(&lease, vendor_job_id, false).await;
        }
        let (lease, send) = match lease.inherited_attempt.clone() {
            Some(attempt) => match self.resolve_inherited(lease, &attempt).await {
                Ok(resolved) => resolved,
                Err(disposition) => return disposition,
            },
            None => (lease, step::Send::Safe),
        };
        if let Some(disposition) = self.past_max_age(&lease).await {
            return disposition;
        }
        let probe = match self.pass_breaker(&lease, &choice).await {
            Ok(probe) => probe,
            Err(disposition) => return disposition,
        };
        let lease = match self.pay_retry_debt(lease, choice.adapter).await {
            step::Next::Continue(lease) => lease,
            step::Next::Stop(disposition) => return disposition,
        };
        if let Err(disposition) = self.admit(&lease, choice.adapter).await {
            return disposition;
        }
        let lease = match self.record_own_attempt(lease, send, choice.adapter).await {
            Ok(lease) => lease,
            Err(disposition) => return disposition,
        };
        self.count_fallback(&lease.job, &choice);
        self.call_vendor(&lease, probe).await
    }

    /// Releases the lease (or lets it expire if that fails: the next holder then resolves the
    /// attempt, which costs a question, never a charge).
    async fn release(&self, lease: &Lease, outcome: AttemptOutcome, debt: RetryDebt) {
        let released = failpoints::around(
            "submit.before_release",
            "submit.after_release",
            lease.job_id.as_str(),
            self.ledger.release_lease(lease, outcome, debt),
        )
        .await;
        if let Err(e) = released {
            warn!(error = %e, "could not release the lease; it will expire");
        }
    }

    /// Takes `Submitted` with the vendor's job id. An answer whose lease was lost meanwhile is
    /// kept on the job as an orphan (it was billed) and logged, never dropped.
    /// What this job's submission costs by the price table: the vendor's model for its profile,
    /// the pages intake counted (an image is one page).
    fn cost_estimate(&self, job: &Job) -> JobCost {
        JobCost::estimate_for(&self.config.prices, self.vendor_of(job).vendor, job)
            .after(job.cost.as_ref())
    }

    async fn complete(&self, lease: &Lease, vendor_job_id: String, notify: bool) -> Disposition {
        let job = &lease.job;
        let recorded = failpoints::around(
            "submit.before_record_submitted",
            "submit.after_record_submitted",
            job.id.as_str(),
            self.ledger.complete_lease(
                lease,
                JobState::Submitted,
                Change::none()
                    .with_vendor_job_id(&vendor_job_id)
                    .with_cost(self.cost_estimate(job)),
                UnixMillis::now(),
            ),
        )
        .await;
        match recorded {
            Ok(_) => {
                let vendor = self.vendor_of(job).name();
                let profile = job.profile.as_str();
                let metrics = self.metrics.for_traffic(job.benchmark_run.as_ref());
                metrics.count(
                    metrics::SUBMISSIONS,
                    &[vendor, profile],
                    &[("job_id", job.id.as_str())],
                );
                let estimate = self.cost_estimate(job).estimate;
                metrics.emit(
                    metrics::ESTIMATED_COST,
                    f64::try_from(estimate).unwrap_or_default(),
                    &[vendor, profile],
                    &[("job_id", job.id.as_str())],
                );
                info!(vendor_job_id = %vendor_job_id, "submitted");
                if answer::is_answered(&vendor_job_id) {
                    // Answered in the call and archived: nothing to wait for.
                    self.notify_parse(job, &vendor_job_id, "succeeded", Duration::ZERO)
                        .await;
                } else if self.vendor_of(job).vendor.capabilities().completion == Completion::Poll {
                    // Nothing will call: the first poll, now if the vendor may have finished
                    // long ago.
                    let delay = if notify {
                        Duration::ZERO
                    } else {
                        self.config.poll.first
                    };
                    self.notify_parse(job, &vendor_job_id, POLL_STATUS, delay)
                        .await;
                } else if notify {
                    // The vendor finished long ago and will not call again: ask parse to look.
                    self.notify_parse(job, &vendor_job_id, "submitted", Duration::ZERO)
                        .await;
                }
                Disposition::Done
            }
            Err(FenceError::Lost { current, .. }) => {
                self.lease_lost(job);
                self.keep_orphan(job, &vendor_job_id, current.as_deref())
                    .await
            }
            Err(e) => {
                // The vendor has the document and the ledger would not take its id: never drop
                // it. The next delivery carries it and adopts it first — once our lease is free
                // (released now if the ledger lets us, or expired).
                error!(%vendor_job_id, error = %e, "could not record the vendor's answer; carrying it on the submit message");
                let released = failpoints::around(
                    "submit.before_release",
                    "submit.after_release",
                    job.id.as_str(),
                    self.ledger.release_lease(
                        lease,
                        AttemptOutcome::MayHaveReached,
                        RetryDebt::Unchanged,
                    ),
                )
                .await;
                let delay = match released {
                    Ok(_) => Duration::from_secs(1),
                    Err(_) => Self::lease_wait(lease.until, UnixMillis::now()),
                };
                Disposition::DeferWith {
                    delay,
                    vendor_job_id,
                }
            }
        }
    }

    /// The vendor accepted a submission, but our lease was lost before we could record it: the
    /// worker that took over follows the job now. If the job has no vendor job yet, our answer
    /// is the one it is waiting for: hand it on (the next delivery adopts it). If it follows
    /// another vendor job, ours is a second charge for the document: record it so that it is
    /// counted and can be found. Returns what to do with the message.
    async fn keep_orphan(
        &self,
        job: &Job,
        vendor_job_id: &str,
        current: Option<&Job>,
    ) -> Disposition {
        match current.and_then(|c| c.vendor_job_id.as_deref()) {
            Some(same) if same == vendor_job_id => {
                info!(%vendor_job_id, "lost the lease, but the job follows the same vendor job");
                Disposition::Done
            }
            Some(other) => {
                let other = other.to_owned();
                match self
                    .record_orphan(job, vendor_job_id, &other, "late_answer")
                    .await
                {
                    Ok(()) => Disposition::Done,
                    Err(kept) => kept,
                }
            }
            None => {
                warn!(%vendor_job_id, "lost the lease before recording the vendor's answer; handing it on");
                Disposition::DeferWith {
                    delay: Duration::from_secs(1),
                    vendor_job_id: vendor_job_id.to_owned(),
                }
            }
        }
    }

    /// A billed vendor job for this document that is not the one the job follows. `Err` is
    /// what to do with the message when it could not be recorded: keep it, carrying the vendor
    /// job, until the charge is on the job (acknowledging it would lose the charge).
    async fn record_orphan(
        &self,
        job: &Job,
        vendor_job_id: &str,
        followed: &str,
        cause: &str,
    ) -> Result<(), Disposition> {
        error!(%vendor_job_id, %followed, cause, "a second vendor job for this document; recording it as an orphan");
        self.metrics.count(
            metrics::ORPHAN_VENDOR_JOBS,
            &[self.vendor_of(job).name(), cause],
            &[
                ("job_id", job.id.as_str()),
                ("vendor_job_id", vendor_job_id),
            ],
        );
        let recorded = failpoints::around(
            "submit.before_record_orphan",
            "submit.after_record_orphan",
            job.id.as_str(),
            self.ledger.record_orphan(&job.id, vendor_job_id),
        )
        .await;
        recorded.map_err(|e| {
            error!(%vendor_job_id, error = %e, "could not record the orphan vendor job; the message keeps it");
            Disposition::DeferWith {
                delay: Duration::from_secs(1),
                vendor_job_id: vendor_job_id.to_owned(),
            }
        })
    }

    /// A held job whose submission's outcome was unknown, and the answer to it: adopt it.
    async fn adopt_for_held(&self, job: &Job, vendor_job_id: &str) -> Disposition {
        let adopted = failpoints::around(
            "submit.before_adopt_held",
            "submit.after_adopt_held",
            job.id.as_str(),
            self.ledger.transition(
                job,
                JobState::Submitted,
                Change::none().with_vendor_job_id(vendor_job_id),
                UnixMillis::now(),
            ),
        )
        .await;
        match adopted {
            Ok(_) => {
                self.count_reconcile(job, "adopted_from_message");
                info!(%vendor_job_id, "the held job's lost answer arrived; adopted it");
                let status = match self.vendor_of(job).vendor.capabilities().completion {
                    _ if answer::is_answered(vendor_job_id) => "succeeded",
                    Completion::Poll => POLL_STATUS,
                    _ => "submitted",
                };
                self.notify_parse(job, vendor_job_id, status, Duration::ZERO)
                    .await;
                Disposition::Done
            }
            // Moved meanwhile (an operator, a completion): decide again on the next delivery.
            Err(e) => self.retry_later(1, "adopt_failed", e.to_string()),
        }
    }

    /// Asks parse to look at the job after `delay`: a poll (`status` = [`POLL_STATUS`]) for a
    /// vendor that pushes nothing, or a one-off look at a job the vendor may have finished.
    async fn notify_parse(&self, job: &Job, vendor_job_id: &str, status: &str, delay: Duration) {
        let notice = ocrbridge::queue::ResultNotice {
            vendor: None,
            job_id: job.id.clone(),
            vendor_job_id: vendor_job_id.to_owned(),
            status: status.to_owned(),
            vendor_timestamp: None,
            event_id: None,
        };
        let sent = failpoints::around(
            "submit.before_notify_parse",
            "submit.after_notify_parse",
            job.id.as_str(),
            self.queue
                .send_json_after(&self.stack.results_queue_url, &notice, delay),
        )
        .await;
        if let Err(e) = sent {
            // Reconcile polls Submitted jobs that hear nothing.
            warn!(error = %e, "could not notify parse; reconcile will poll the vendor");
        }
    }

    fn lease_lost(&self, job: &Job) {
        self.metrics.count(
            metrics::LEASES_LOST,
            &["submit"],
            &[("job_id", job.id.as_str())],
        );
        warn!("the lease was taken over while this worker held it; its write was refused");
    }

    fn count_reconcile(&self, job: &Job, outcome: &str) {
        self.metrics.count(
            metrics::RECONCILES,
            &[self.vendor_of(job).name(), outcome],
            &[("job_id", job.id.as_str())],
        );
    }

    /// Holds the job for an operator, with `reason`.
    async fn hold(&self, lease: &Lease, change: Change, reason: Reason) -> Result<(), Disposition> {
        self.metrics.count(
            metrics::JOBS_HELD,
            &[&reason.code],
            &[("job_id", lease.job_id.as_str())],
        );
        warn!(code = %reason.code, reason = %reason.message, "holding the job for an operator");
        let held = failpoints::around(
            "submit.before_hold",
            "submit.after_hold",
            lease.job_id.as_str(),
            self.ledger.complete_lease(
                lease,
                JobState::Held,
                change.with_reason(reason),
                UnixMillis::now(),
            ),
        )
        .await;
        match held {
            Ok(_) | Err(FenceError::Lost { .. }) => Ok(()),
            Err(e) => Err(self.retry_later(1, "dynamodb_error", e.to_string())),
        }
    }

    /// Fails the job under the lease.
    async fn fail(&self, lease: &Lease, change: Change, reason: Reason) -> Result<(), Disposition> {
        self.metrics.count(
            metrics::JOBS_FAILED,
            &["submit", &reason.code],
            &[("job_id", lease.job_id.as_str())],
        );
        warn!(code = %reason.code, reason = %reason.message, "failing the job");
        let failed = failpoints::around(
            "submit.before_fail",
            "submit.after_fail",
            lease.job_id.as_str(),
            self.ledger.complete_lease(
                lease,
                JobState::Failed,
                change.with_reason(reason),
                UnixMillis::now(),
            ),
        )
        .await;
        match failed {
            Ok(_) | Err(FenceError::Lost { .. }) => Ok(()),
            Err(e) => Err(self.retry_later(1, "dynamodb_error", e.to_string())),
        }
    }

    async fn past_max_age(&self, lease: &Lease) -> Option<Disposition> {
        let job = &lease.job;
        let window_start = job.queued_at.unwrap_or(job.created_at);
        if UnixMillis::now().since(window_start) <= self.config.max_age {
            return None;
        }
        let reason = Reason::new(
            reason::MAX_AGE_EXCEEDED,
            format!(
                "not submitted within {:?} of being queued",
                self.config.max_age
            ),
        );
        let message = reason.message.clone();
        // The attempt the lease recorded was never sent: clear it, or an operator's retry would
        // take it for one that may have reached the vendor. One inherited from an earlier
        // holder stays: that one may have.
        let change = if lease.inherited_attempt.is_none() {
            Change::none().attempt_not_reached()
        } else {
            Change::none()
        };
        Some(match self.fail(lease, change, reason).await {
            // Kept in the DLQ: an operator's redrive retries the job.
            Ok(()) => Disposition::DeadLetter {
                code: reason::MAX_AGE_EXCEEDED,
                reason: message,
            },
            Err(disposition) => disposition,
        })
    }

    /// How long this invocation waits for a lease that another worker holds: just past its end.
    fn lease_wait(until: UnixMillis, now: UnixMillis) -> Duration {
        until.since(now) + Duration::from_millis(250)
    }
}
