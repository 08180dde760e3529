//! `parse`: one normalized, validated result per document.
//!
//! Per [`ResultNotice`] (from the webhook function or reconcile), never trusting its order:
//! 1. a job already parsed (or failed) acknowledges the notice and does nothing; a verified
//!    completion for a *different* vendor job than the one the job follows is a second charge
//!    for the document, recorded as an orphan and counted (`OrphanVendorJobs[second_completion]`);
//! 2. a job whose submission's answer was lost (`Submitting` with nobody holding it, or `Held`
//!    with `submission_outcome_unknown`) **adopts** the vendor job a verified completion names —
//!    where the vendor's completion carries our reference — which is how an ambiguous submission
//!    to a vendor without idempotency resolves without paying twice;
//! 3. a job the submit function has not finished yet keeps the notice on the queue (backoff);
//! 4. a `Submitted` job: **ask the vendor** for the status — a failed vendor job becomes `Failed`
//!    with the vendor's reason and is never parsed; a succeeded one moves to `ResultReady`
//!    ([`ocrbridge::completion`]);
//! 5. under the parse lease: fetch the raw result (one the vendor no longer has fails the job
//!    with the retryable `result_unavailable`), **archive it first** (`raw/<job>/<attempt>.json.gz`,
//!    so a parser bug can be replayed without paying the vendor again), normalize it, report
//!    schema drift, validate against `Document v1`'s JSON Schema (a violation fails the job with
//!    its path, nothing is stored), apply the field rules, store `results/<job>/<attempt>.json` (the job records which), and move
//!    the job to `Completed` or `NeedsReview` with every reason.

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::Utc;
use ocrbridge::batch::{self, Disposition, Source};
use ocrbridge::blob::{gzip, Blob, ObjectRef};
use ocrbridge::completion::{self, Settled};
use ocrbridge::config::{duration_setting, SettingError, StackConfig};
use ocrbridge::cost::{JobCost, Prices, Spend};
use ocrbridge::document::Fields;
use ocrbridge::failpoints;
use ocrbridge::job::{reason, Job, JobState, Reason};
use ocrbridge::language::{self, TextSegments};
use ocrbridge::ledger::model_versions::VersionSighting;
use ocrbridge::ledger::Take;
use ocrbridge::ledger::{
    AttemptOutcome, Change, FenceError, Lease, LeaseError, LeaseStep, Ledger, RetryDebt,
    TransitionError,
};
use ocrbridge::metrics::{self, Metrics};
use ocrbridge::queue::ResultNotice;
use ocrbridge::retry::{Backoff, Budgets};
use ocrbridge::rules::{self, RuleConfig};
use ocrbridge::second_opinion::SecondOpinionRules;
use ocrbridge::segments;
use ocrbridge::time::{lease_until_from_deadline, UnixMillis, DEFAULT_LEASE_SAFETY_MARGIN};
use ocrbridge::vendors::answer;
use ocrbridge::vendors::date_order::DateOrderBySource;
use ocrbridge::vendors::poll::PollSchedule;
use ocrbridge::vendors::route::{Adapter, Routes};
use ocrbridge::vendors::{again_after_refresh, Completion, Vendor, VendorError};
use serde_json::json;
use tracing::{info, info_span, warn, Instrument};

mod parts;
mod second_opinion;

#[derive(Debug, Clone, PartialEq)]
pub struct ParseConfig {
    pub rules: RuleConfig,
    /// `BACKOFF_BASE_MS` / `BACKOFF_CAP_SECS`, as for submit.
    pub backoff: Backoff,
    /// `POLL_FIRST_SECS` / `POLL_CAP_SECS`: how often to ask a vendor that pushes nothing.
    pub poll: PollSchedule,
    /// `VENDOR_PRICES` over the list prices: for jobs submitted without an estimate (adopted).
    pub prices: Prices,
    /// `VENDOR_MAX_ARCHIVE_BYTES`: a result too large to parse is still streamed into the
    /// archive up to this size (one part in memory at a time), so what was paid for is kept.
    pub max_archive_bytes: u64,
    /// `DATE_ORDER_BY_SOURCE`: how a source writes its dates, for those its documents leave
    /// ambiguous; a source without one sends them to review.
    pub date_orders: DateOrderBySource,
    /// `SECOND_OPINION`: per profile, the review rules that ask the route's next vendor to
    /// read the document too ([`ocrbridge::second_opinion`]).
    pub second_opinion: SecondOpinionRules,
    /// `MESSAGE_CONCURRENCY` (default 1, see `ocrbridge::batch::DEFAULT_CONCURRENCY`): a batch's
    /// notices handled at once.
    pub message_concurrency: usize,
}

/// The default `VENDOR_MAX_ARCHIVE_BYTES`: 1 GiB streams within parse's timeout.
pub const DEFAULT_MAX_ARCHIVE_BYTES: u64 = 1024 * 1024 * 1024;

impl ParseConfig {
    /// Every setting parsed, or the first bad one named with its value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        Ok(ParseConfig {
            rules: RuleConfig::from_lookup(&lookup)?,
            backoff: Backoff {
                base: duration_setting(
                    &lookup,
                    "BACKOFF_BASE_MS",
                    Duration::from_secs(2),
                    Duration::from_millis(1),
                )?,
                cap: duration_setting(
                    &lookup,
                    "BACKOFF_CAP_SECS",
                    Duration::from_secs(900),
                    Duration::from_secs(1),
                )?,
            },
            poll: PollSchedule::from_lookup(&lookup)?,
            prices: Prices::from_lookup(&lookup)?,
            max_archive_bytes: ocrbridge::config::setting(
                &lookup,
                "VENDOR_MAX_ARCHIVE_BYTES",
                DEFAULT_MAX_ARCHIVE_BYTES,
                "a size in bytes, at least 1",
                |n| *n >= 1,
            )?,
            date_orders: DateOrderBySource::from_lookup(&lookup)?,
            second_opinion: SecondOpinionRules::from_lookup(&lookup)?,
            message_concurrency: ocrbridge::batch::concurrency_setting(&lookup)?,
        })
    }
}

pub struct Parse<V> {
    /// The stack's `VENDOR`, with `budgets` its admission bucket.
    pub vendor: V,
    /// The other vendors `VENDOR_ROUTES` names: a job is read from the vendor it went to.
    pub routes: Routes<V>,
    /// The vendor's admission bucket, shared with submit: reads take from it when they count
    /// against the vendor's rate limit ([`ocrbridge::vendors::Capabilities`]).
    pub budgets: Budgets,
    pub ledger: Ledger,
    pub blob: Blob,
    pub queue: ocrbridge::queue::Queue,
    pub metrics: Metrics,
    pub stack: StackConfig,
    pub config: ParseConfig,
}

/// What the vendor's status check leaves to do.
enum Checked {
    /// The vendor finished the job: parse it, marking it ready in the lease's write.
    Succeeded,
    /// The job as it is now, moved by someone else meanwhile.
    Now(Box<Job>),
}

/// Receives of a notice whose vendor job reports a status the adapter does not know, before
/// the job fails with `vendor_status_unknown`.
const UNKNOWN_STATUS_PATIENCE: u32 = 3;

/// The longest a read waits in-process for an admission token before deferring instead.
const MAX_READ_ADMISSION_WAIT: Duration = Duration::from_secs(2);

impl<V: Vendor> Parse<V> {
    fn primary(&self) -> Adapter<'_, V> {
        Adapter {
            vendor: &self.vendor,
            budgets: &self.budgets,
        }
    }

    /// The vendor `job` went to (unrouted jobs stop at `handle_notice`).
    fn vendor_of(&self, job: &Job) -> Adapter<'_, V> {
        self.routes.of_routed(self.primary(), job)
    }

    pub async fn handle_sqs(&self, event: SqsEvent, deadline: UnixMillis) -> SqsBatchResponse {
        let source = Source {
            name: "results",
            queue_url: self.stack.results_queue_url.clone(),
            dlq_url: self.stack.results_dlq_url.clone(),
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

    pub async fn handle_message(&self, message: &SqsMessage, deadline: UnixMillis) -> Disposition {
        let body = message.body.as_deref().unwrap_or_default();
        // Our own notices, or a completion the vendor delivers through a queue (Textract's SNS).
        let notice: ResultNotice = match serde_json::from_str(body) {
            Ok(n) => n,
            Err(e) => match self
                .routes
                .adapters(&self.vendor)
                .find_map(|vendor| vendor.notice_from_queue(body))
            {
                Some(Ok(n)) => n,
                Some(Err(reason)) => {
                    return Disposition::DeadLetter {
                        code: "foreign_notification",
                        reason,
                    }
                }
                None => {
                    return Disposition::DeadLetter {
                        code: "malformed_message",
                        reason: format!("not a result notice: {e}"),
                    }
                }
            },
        };
        let attempt = batch::receive_count(message);
        // How often this notice was re-sent: for a poll notice, how many polls found the job
        // still running.
        let polls = batch::attribute(message, batch::DEFERRALS_ATTRIBUTE)
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
        let span = info_span!("parse", job_id = %notice.job_id, status = %notice.status);
        self.handle_notice(&notice, attempt, polls, deadline)
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

    /// `polls`: how many times this notice was deferred (a poll notice's count of polls).
    pub async fn handle_notice(
        &self,
        notice: &ResultNotice,
        attempt: u32,
        polls: u32,
        deadline: UnixMillis,
    ) -> Disposition {
        let job = match self.ledger.get_job(&notice.job_id).await {
            Ok(Some(job)) => job,
            Ok(None) => {
                return Disposition::DeadLetter {
                    code: "unknown_job",
                    reason: format!("no job {}", notice.job_id),
                }
            }
            Err(e) => return self.later(attempt, "dynamodb_error", e.to_string()),
        };
        if let Err(unrouted) = self.routes.of(self.primary(), &job) {
            // Asking another vendor about it would be asking the wrong one.
            return self.later(attempt.max(3), "unrouted_vendor", unrouted.to_string());
        }
        // A webhook's notice arrives outside the document's trace: the job's joins it again.
        let trace = ocrbridge::trace_context::current().or_else(|| job.trace_header.clone());
        ocrbridge::trace_context::within(
            trace,
            self.handle_notice_for(job, notice, attempt, polls, deadline),
        )
        .await
    }

    async fn handle_notice_for(
        &self,
        mut job: Job,
        notice: &ResultNotice,
        attempt: u32,
        polls: u32,
        deadline: UnixMillis,
    ) -> Disposition {
        let sender = self.sender_of(&job, notice);
        // A completion from a vendor the job moved away from (its route's next took it): that
        // vendor's job is a second charge, never the job's to follow.
        let from_elsewhere = sender.name() != self.vendor_of(&job).name();
        if !from_elsewhere
            && self.awaits_adoption(&job)
            && self.names_a_vendor_job(sender, notice)
            // One the job discarded (an operator's retry of a result the vendor had lost) is
            // not taken back: its result is gone, and the retry buys the document again.
            && !job.orphan_vendor_jobs.contains(&notice.vendor_job_id)
        {
            match self.adopt(&job, &notice.vendor_job_id).await {
                Ok(adopted) => job = adopted,
                Err(disposition) => return disposition,
            }
        }
        if self.names_a_vendor_job(sender, notice)
            && (from_elsewhere
                || job
                    .vendor_job_id
                    .as_deref()
                    .is_some_and(|v| v != notice.vendor_job_id))
        {
            if let Err(e) = self
                .second_vendor_job(&job, sender, &notice.vendor_job_id)
                .await
            {
                // The notice is the only evidence of the second charge: keep it until the
                // charge is on the job.
                return self.later(attempt, "orphan_unrecorded", e);
            }
        }
        // The vendor said it succeeded: parse it now, marked ready in the lease's own write.
        let mut succeeded = false;
        if job.state == JobState::Submitted {
            match self.check_vendor(&job, attempt, polls).await {
                Ok(Checked::Succeeded) => succeeded = true,
                Ok(Checked::Now(now)) => job = *now,
                Err(disposition) => return disposition,
            }
        }
        match job.state {
            JobState::Completed
            | JobState::NeedsReview
            | JobState::Failed
            | JobState::Rejected
            | JobState::Held => {
                info!(state = %job.state, "settled (or waiting for a person); acknowledging");
                Disposition::Done
            }
            JobState::Received | JobState::Queued | JobState::Submitting => {
                match job.lease.as_ref().filter(|l| l.is_live(UnixMillis::now())) {
                    // A submit worker is on it right now (the webhook beat its write): wait for
                    // it without spending receives — it records the job, or its lease ends and
                    // this notice adopts the vendor job.
                    Some(lease) => Disposition::Defer(
                        lease.until.since(UnixMillis::now()) + Duration::from_millis(500),
                    ),
                    // Keep the notice; reconcile also polls Submitted jobs, so nothing depends
                    // on this one message.
                    None => self.later(
                        attempt.max(3),
                        "not_submitted_yet",
                        format!("job is {}", job.state),
                    ),
                }
            }
            JobState::Submitted if succeeded => self.parse(job, attempt, deadline).await,
            JobState::Submitted => Disposition::Done,
            // Its parts are the jobs the vendor has; a notice for it is reconcile's, for a set
            // of parts recorded complete and not merged.
            JobState::InParts => self.merge_recorded(job, attempt).await,
            JobState::ResultReady | JobState::Parsing => self.parse(job, attempt, deadline).await,
        }
    }

    /// The vendor a notice is from: the one a completion names, else the job's own.
    fn sender_of(&self, job: &Job, notice: &ResultNotice) -> Adapter<'_, V> {
        notice
            .vendor
            .as_deref()
            .and_then(|name| self.routes.named(self.primary(), name))
            .unwrap_or(self.vendor_of(job))
    }

    /// A notice that came from a verified completion naming a vendor job (reconcile's notices
    /// carry the job's own vendor job id and no event id).
    fn names_a_vendor_job(&self, sender: Adapter<'_, V>, notice: &ResultNotice) -> bool {
        notice.event_id.is_some()
            && !notice.vendor_job_id.is_empty()
            && sender.vendor.capabilities().completion_carries_reference
    }

    /// A job without a vendor job, with nobody working on it: a verified completion that names
    /// it is proof the vendor has the document (a submission whose answer was lost, perhaps long
    /// ago), so its vendor job is the job's. That holds for a job that stopped without one too
    /// (held for whatever reason, or failed — its maximum age, a rejection read wrongly): the
    /// vendor processed and billed the document after all, and dropping its result would lose
    /// what was paid for.
    fn awaits_adoption(&self, job: &Job) -> bool {
        let unleased = job
            .lease
            .as_ref()
            .is_none_or(|l| !l.is_live(UnixMillis::now()));
        job.vendor_job_id.is_none()
            && match job.state {
                JobState::Queued | JobState::Submitting => unleased,
                JobState::Held | JobState::Failed => true,
                _ => false,
            }
    }

    /// Moves the job to `Submitted` with the vendor job the completion named.
    async fn adopt(&self, job: &Job, vendor_job_id: &str) -> Result<Job, Disposition> {
        let adopted = failpoints::around(
            "parse.before_adopt",
            "parse.after_adopt",
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
            Ok(adopted) => {
                self.metrics.count(
                    metrics::RECONCILES,
                    &[self.vendor_of(job).vendor.name(), "adopted_by_completion"],
                    &[("job_id", job.id.as_str())],
                );
                info!(%vendor_job_id, from = %job.state, "the vendor's completion names the job; adopted its vendor job");
                Ok(adopted)
            }
            // A worker is on it (or it moved): decide from the job as it is now.
            Err(TransitionError::Stale { current, .. } | TransitionError::Leased { current }) => {
                Ok(*current)
            }
            Err(e) => Err(self.later(1, "dynamodb_error", e.to_string())),
        }
    }

    /// A verified completion for a vendor job that is not the job's own: `sender` processed
    /// (and billed) the document a second time — the job's vendor twice, or a vendor of its route
    /// it moved away from. Recorded and counted at `sender`'s price; the job keeps following its
    /// own. `Err` (why) when it could not be recorded.
    async fn second_vendor_job(
        &self,
        job: &Job,
        sender: Adapter<'_, V>,
        vendor_job_id: &str,
    ) -> Result<(), String> {
        if job.orphan_vendor_jobs.iter().any(|o| o == vendor_job_id) {
            return Ok(()); // already known (a redelivery of the same completion)
        }
        warn!(%vendor_job_id, own = ?job.vendor_job_id, "a completion for a second vendor job of this document");
        self.metrics.count(
            metrics::ORPHAN_VENDOR_JOBS,
            &[sender.name(), "second_completion"],
            &[
                ("job_id", job.id.as_str()),
                ("vendor_job_id", vendor_job_id),
            ],
        );
        let recorded = failpoints::around(
            "parse.before_record_orphan",
            "parse.after_record_orphan",
            job.id.as_str(),
            self.ledger.record_orphan(&job.id, vendor_job_id),
        )
        .await;
        match recorded {
            Ok(()) => {
                let charge = if sender.name() == self.vendor_of(job).name() {
                    self.cost_of(job).one_more()
                } else {
                    JobCost::estimate_for(&self.config.prices, sender.vendor, job).estimate
                };
                self.spent_at(sender.name(), job, Spend::Duplicate, charge);
                Ok(())
            }
            Err(e) => {
                warn!(error = %e, "could not record the second vendor job; the notice will come back");
                Err(format!(
                    "could not record the second vendor job {vendor_job_id}: {e}"
                ))
            }
        }
    }

    /// Waits for the vendor's admission token when reads spend its rate limit; `Err` is how
    /// long to defer instead.
    async fn admit_read(&self, job: &Job) -> Result<(), Duration> {
        let answered = job
            .vendor_job_id
            .as_deref()
            .is_some_and(answer::is_answered);
        if answered
            || !self
                .vendor_of(job)
                .vendor
                .capabilities()
                .reads_spend_rate_limit
        {
            // An answer is read from our archive: the vendor is not asked.
            return Ok(());
        }
        let taken = failpoints::around(
            "parse.before_admit",
            "parse.after_admit",
            job.id.as_str(),
            self.ledger.take_within(
                &self.vendor_of(job).budgets.admission,
                MAX_READ_ADMISSION_WAIT,
            ),
        )
        .await;
        match taken {
            Ok(Take::Granted) => Ok(()),
            Ok(Take::Denied { wait }) => {
                self.metrics.count(
                    metrics::ADMISSION_DELAYED,
                    &[self.vendor_of(job).vendor.name()],
                    &[],
                );
                Err(wait)
            }
            Err(e) => {
                warn!(error = %e, "admission bucket unavailable; polling later");
                Err(Duration::from_secs(1))
            }
        }
    }

    /// Asks the vendor where a submitted job stands. A success is left for `parse` to mark, in
    /// the write that takes its lease; anything else is applied here ([`Checked::Now`]: the job
    /// as someone else moved it meanwhile). A vendor that pushes nothing is asked again later
    /// while it works (`polls` so far).
    async fn check_vendor(
        &self,
        job: &Job,
        attempt: u32,
        polls: u32,
    ) -> Result<Checked, Disposition> {
        let Some(vendor_job_id) = job.vendor_job_id.clone() else {
            return Err(Disposition::DeadLetter {
                code: "no_vendor_job",
                reason: "a Submitted job has no vendor job id".into(),
            });
        };
        if let Err(wait) = self.admit_read(job).await {
            return Err(Disposition::Defer(wait));
        }
        let status = failpoints::around(
            "parse.before_status",
            "parse.after_status",
            job.id.as_str(),
            answer::status(self.vendor_of(job).vendor, &vendor_job_id),
        )
        .await;
        let status = again_after_refresh(self.vendor_of(job).vendor, "poll", status, || {
            answer::status(self.vendor_of(job).vendor, &vendor_job_id)
        })
        .await;
        let vendor_job = match status {
            Ok(v) => v,
            Err(e @ VendorError::Auth { status }) => {
                return Err(self.refused(job, "poll", status, &e))
            }
            Err(e) if e.is_gone() => {
                // The vendor no longer has the job (its results expire): nothing to wait for;
                // a retry buys the document again, knowingly.
                return Err(self
                    .fail_submitted(
                        job,
                        reason::RESULT_UNAVAILABLE,
                        format!("{e} ({vendor_job_id})"),
                    )
                    .await);
            }
            // The vendor asks us to slow down: wait as long as it says, without spending a
            // receive (a 429 storm must not dead-letter the poll; Azure counts polls too).
            Err(e @ (VendorError::Throttled { .. } | VendorError::Busy { .. })) => {
                let wait = e
                    .retry_after()
                    .unwrap_or_else(|| self.config.poll.next(polls, None));
                warn!(error = %e, ?wait, "the vendor throttled the status check; asking again later");
                return Err(Disposition::Defer(wait));
            }
            Err(e) => return Err(self.later(attempt, "vendor_status_failed", e.to_string())),
        };
        if vendor_job.status == ocrbridge::vendors::VendorStatus::Succeeded {
            // Not marked here: the parse lease's write marks it (`parse`), one write for two.
            return Ok(Checked::Succeeded);
        }
        let applied = failpoints::around(
            "parse.before_mark_ready",
            "parse.after_mark_ready",
            job.id.as_str(),
            completion::apply_status(
                &self.ledger,
                &self.metrics,
                self.vendor_of(job).vendor.name(),
                "parse",
                job,
                &vendor_job.status,
                UnixMillis::now(),
            ),
        )
        .await;
        match applied {
            Ok(Settled::Ready(job) | Settled::Moved(job)) => Ok(Checked::Now(Box::new(job))),
            Ok(Settled::Failed) => Err(Disposition::Done),
            Ok(Settled::Working) if self.vendor_of(job).vendor.capabilities().completion == Completion::Poll => {
                let next = self.config.poll.next(polls, vendor_job.retry_after);
                info!(polls, next_in = ?next, "the vendor is still working; polling again");
                Err(Disposition::Defer(next))
            }
            Ok(Settled::Working) => {
                info!("the vendor is still working; a later notice or reconcile will bring the result");
                Err(Disposition::Done)
            }
            // Perhaps a passing state: ask again a few times, then stop and say why.
            Ok(Settled::Unknown(value)) if attempt < UNKNOWN_STATUS_PATIENCE => Err(self.later(
                attempt,
                "unknown_vendor_status",
                format!("the vendor reports status {value:?}"),
            )),
            Ok(Settled::Unknown(value)) => Err(self
                .fail_submitted(
                    job,
                    reason::VENDOR_STATUS_UNKNOWN,
                    format!(
                        "the vendor kept reporting status {value:?}, which this adapter does not know; never taken for success (retry once the adapter knows it: the vendor job is kept)"
                    ),
                )
                .await),
            Err(e) => Err(self.later(attempt, "dynamodb_error", e.to_string())),
        }
    }

    /// Fails a `Submitted` job (nobody holds it) with `code`.
    async fn fail_submitted(&self, job: &Job, code: &'static str, detail: String) -> Disposition {
        self.metrics.count(
            metrics::JOBS_FAILED,
            &["parse", code],
            &[("job_id", job.id.as_str())],
        );
        warn!(code, %detail, "failing the job");
        let failed = failpoints::around(
            "parse.before_fail_submitted",
            "parse.after_fail_submitted",
            job.id.as_str(),
            self.ledger.transition(
                job,
                JobState::Failed,
                Change::none().with_reason(Reason::new(code, detail)),
                UnixMillis::now(),
            ),
        )
        .await;
        match failed {
            Ok(_) | Err(TransitionError::Stale { .. } | TransitionError::Leased { .. }) => {
                Disposition::Done
            }
            Err(e) => self.later(1, "dynamodb_error", e.to_string()),
        }
    }

    /// Gives the parse lease back and re-sends the notice after `wait` (no receive spent).
    async fn defer_released(&self, lease: &Lease, wait: Duration) -> Disposition {
        if let Err(e) = self.release(lease).await {
            warn!(error = %e, "could not release the parse lease; it will expire");
        }
        Disposition::Defer(wait)
    }

    /// The vendor refused our credentials, even after a refresh: counted as submit counts it
    /// (`VendorAuthFailures[Vendor, Stage, Status]`) and the notice parked in the DLQ with
    /// `vendor_auth_failed`. The job stays `Submitted` — never `Held`, whose retry would submit
    /// again a document the vendor already has: once the key is fixed, a redrive (or
    /// reconcile) asks about the same vendor job, and nothing is paid twice.
    fn refused(
        &self,
        job: &Job,
        stage: &'static str,
        status: u16,
        error: &VendorError,
    ) -> Disposition {
        self.metrics.count(
            metrics::AUTH_FAILURES,
            &[
                self.vendor_of(job).vendor.name(),
                stage,
                &status.to_string(),
            ],
            &[("job_id", job.id.as_str())],
        );
        Disposition::DeadLetter {
            code: reason::VENDOR_AUTH_FAILED,
            reason: format!("{error} at {stage}; fix the vendor key, then redrive"),
        }
    }

    /// Records the model version the vendor reported; a version never seen before for its
    /// model, beside ones that were, is a model change: `VendorModelVersionChanged` and a
    /// warning. Never fails the job — the result is what was paid for.
    async fn watch_model_version(&self, job: &Job, vendor: &ocrbridge::document::VendorInfo) {
        let (Some(model), Some(version)) = (&vendor.model, &vendor.model_version) else {
            return;
        };
        match self
            .ledger
            .record_model_version(&vendor.name, model, version, UnixMillis::now())
            .await
        {
            Ok(VersionSighting::New { before }) => {
                self.metrics.count(
                    metrics::MODEL_VERSION_CHANGED,
                    &[&vendor.name, model],
                    &[("job_id", job.id.as_str()), ("version", version)],
                );
                warn!(
                    vendor = %vendor.name,
                    %model,
                    %version,
                    ?before,
                    "the vendor reports a model version not seen before: compare this week's quality run (ocrbridge quality runs)"
                );
            }
            Ok(VersionSighting::First | VersionSighting::Known) => {}
            Err(e) => warn!(error = %e, "could not record the vendor's model version"),
        }
    }

    /// Gives the parse lease back and retries the notice later.
    async fn give_back(
        &self,
        lease: &Lease,
        attempt: u32,
        code: &'static str,
        reason: String,
    ) -> Disposition {
        if let Err(e) = self.release(lease).await {
            warn!(error = %e, "could not release the parse lease; it will expire");
        }
        self.later(attempt, code, reason)
    }

    /// Gives the parse lease back: nothing was recorded, the next delivery starts again.
    async fn release(&self, lease: &Lease) -> Result<Job, FenceError> {
        failpoints::around(
            "parse.before_release",
            "parse.after_release",
            lease.job_id.as_str(),
            self.ledger
                .release_lease(lease, AttemptOutcome::NotReached, RetryDebt::Unchanged),
        )
        .await
    }

    async fn parse(&self, job: Job, attempt: u32, deadline: UnixMillis) -> Disposition {
        let now = UnixMillis::now();
        let until = lease_until_from_deadline(deadline, DEFAULT_LEASE_SAFETY_MARGIN);
        let owner = format!("parse-{}", uuid::Uuid::new_v4().simple());
        // The attempt names the raw archive; it is recorded with the lease, in one write.
        let attempt_id = uuid::Uuid::new_v4().simple().to_string();
        let acquired = if job.state == JobState::Submitted {
            // The vendor said it succeeded (`Checked::Succeeded`): marked ready in this write.
            failpoints::around(
                "parse.before_mark_ready",
                "parse.after_mark_ready",
                job.id.as_str(),
                self.ledger
                    .acquire_parse_lease_on_success(&job, &owner, until, &attempt_id, now),
            )
            .await
        } else {
            failpoints::around(
                "parse.before_lease",
                "parse.after_lease",
                job.id.as_str(),
                self.ledger.acquire_lease_and_record_attempt(
                    &job,
                    LeaseStep::Parse,
                    &owner,
                    until,
                    &attempt_id,
                    now,
                ),
            )
            .await
        };
        let lease = match acquired {
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
        if let Err(wait) = self.admit_read(&job).await {
            return self.defer_released(&lease, wait).await;
        }
        if let Some(answered) =
            answer::archive_of(&self.stack.results_bucket, &job.id, &vendor_job_id)
        {
            // Answered in submit's call and archived there: read back, never fetched.
            return match self.blob.get_gunzipped(&answered).await {
                Ok(Some(raw)) => {
                    self.parse_raw(lease, job, attempt, attempt_id, vendor_job_id, raw)
                        .await
                }
                Ok(None) => {
                    self.fail_with(
                        &lease,
                        &job,
                        reason::RESULT_UNAVAILABLE,
                        format!(
                            "the synchronous answer archived at s3://{}/{} is gone (a retry reads the document again)",
                            answered.bucket, answered.key
                        ),
                    )
                    .await
                }
                Err(e) => {
                    self.give_back(&lease, attempt, "archive_unreadable", e.to_string())
                        .await
                }
            };
        }
        // Where the raw payload is archived, whether it is parsed or too large to be.
        let archive = ObjectRef {
            bucket: self.stack.results_bucket.clone(),
            key: format!("raw/{}/{attempt_id}.json.gz", job.id),
            version_id: None,
        };
        let fetched = failpoints::around(
            "parse.before_fetch",
            "parse.after_fetch",
            job.id.as_str(),
            self.vendor_of(&job).vendor.fetch_result(&vendor_job_id),
        )
        .await;
        let fetched = again_after_refresh(self.vendor_of(&job).vendor, "fetch", fetched, || {
            self.vendor_of(&job).vendor.fetch_result(&vendor_job_id)
        })
        .await;
        let raw = match fetched {
            Ok(raw) => raw,
            Err(e @ VendorError::Auth { status }) => {
                if let Err(fence) = self.release(&lease).await {
                    warn!(error = %fence, "could not release the parse lease; it will expire");
                }
                return self.refused(&job, "fetch", status, &e);
            }
            Err(e) if e.is_gone() => {
                // The vendor said it succeeded and no longer has the result (expired or lost).
                // Retryable: a retry buys the document again, knowingly.
                return self
                    .fail_with(
                        &lease,
                        &job,
                        reason::RESULT_UNAVAILABLE,
                        format!("{e} (the result of {vendor_job_id})"),
                    )
                    .await;
            }
            Err(e @ VendorError::TooLarge { .. }) => {
                // Never read into memory: streamed into the archive (what was paid for is kept,
                // for offline processing), and the job stops with its reason (retryable once
                // the limit is raised; the vendor job is kept).
                let archived = self.archive_stream(&job, &vendor_job_id, &archive).await;
                let message = match archived {
                    Ok(bytes) => format!(
                        "{e}; archived in full ({bytes} bytes) at s3://{}/{} for offline processing",
                        archive.bucket, archive.key
                    ),
                    Err(why) => format!("{e}; not archived: {why}"),
                };
                return self
                    .fail_with(&lease, &job, reason::RESULT_TOO_LARGE, message)
                    .await;
            }
            Err(e @ (VendorError::Throttled { .. } | VendorError::Busy { .. })) => {
                let wait = e
                    .retry_after()
                    .unwrap_or_else(|| self.config.backoff.delay(attempt, None, &mut rand::rng()));
                warn!(error = %e, ?wait, "the vendor throttled the result fetch; fetching later");
                return self.defer_released(&lease, wait).await;
            }
            Err(e) => {
                return self
                    .give_back(&lease, attempt, "fetch_failed", e.to_string())
                    .await
            }
        };
        // Archive before parsing: the raw payload is what we paid for.
        let stored = match gzip(&raw) {
            Ok(compressed) => failpoints::around(
                "parse.before_archive",
                "parse.after_archive",
                job.id.as_str(),
                self.blob
                    .put(&archive, compressed, "application/json", Some("gzip")),
            )
            .await
            .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = stored {
            return self.give_back(&lease, attempt, "archive_failed", e).await;
        }
        self.parse_raw(lease, job, attempt, attempt_id, vendor_job_id, raw)
            .await
    }

    /// The archived raw payload, normalized, validated, checked and stored, and the job settled.
    async fn parse_raw(
        &self,
        lease: Lease,
        job: Job,
        attempt: u32,
        attempt_id: String,
        vendor_job_id: String,
        raw: Vec<u8>,
    ) -> Disposition {
        let mut normalized = match self.vendor_of(&job).vendor.normalize(
            &raw,
            job.id.as_str(),
            &vendor_job_id,
            &job.profile,
        ) {
            Ok(n) => n,
            Err(e) => {
                return self
                    .fail(&lease, &job, "unusable_payload", e.to_string())
                    .await
            }
        };
        // The vendor read the prepared copy; a copy without the upload's blank pages numbers
        // its pages its own way, and the result speaks of the upload's.
        if let Some(map) = job.prepared.as_ref().and_then(|p| p.pages.as_ref()) {
            if let Err(e) = normalized.document.renumber_pages(|n| map.upload_page(n)) {
                return self
                    .fail(&lease, &job, "unusable_payload", e.to_string())
                    .await;
            }
        }
        for drift in &normalized.drift {
            self.metrics.count(
                metrics::SCHEMA_DRIFT,
                &[
                    self.vendor_of(&job).vendor.name(),
                    &drift.field,
                    drift.kind.as_str(),
                ],
                &[("job_id", job.id.as_str())],
            );
            warn!(field = %drift.field, kind = drift.kind.as_str(), "vendor payload drift");
        }
        if let Some(order) = self.config.date_orders.for_source(job.channel.as_deref()) {
            for date in normalized.settle_dates(order) {
                info!(
                    field = date.field,
                    raw = %date.raw,
                    order = ?order,
                    "ambiguous date read in its source's configured order"
                );
            }
        }
        self.watch_model_version(&job, &normalized.document.vendor)
            .await;
        // Language, script and handwriting: segments every quality signal below is cut by.
        language::identify(&mut normalized.document);
        let text = TextSegments::of(&normalized.document);
        let text_segments = text.dimensions();
        let document_json = match normalized.document.to_validated_json() {
            Ok(v) => v,
            Err(violation) => {
                return self
                    .fail(&lease, &job, "schema_violation", violation.to_string())
                    .await
            }
        };
        let mut reasons = rules::check(
            &normalized.document.fields,
            &self.config.rules,
            Utc::now().date_naive(),
        );
        reasons.extend(rules::ambiguous_dates(&normalized.ambiguous_dates));
        reasons.extend(rules::multiple_documents(
            normalized.multiple_documents.as_ref(),
        ));
        self.field_signals(&job, &normalized.document.fields, &text_segments);

        // Under the attempt, like the raw archive: a worker that lost its lease while storing can
        // never overwrite the result its successor recorded; the job names the one that counts.
        let result_key = format!("results/{}/{attempt_id}.json", job.id);
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
        let stored = failpoints::around(
            "parse.before_store_result",
            "parse.after_store_result",
            job.id.as_str(),
            self.blob.put(&target, body, "application/json", None),
        )
        .await;
        if let Err(e) = stored {
            return self
                .give_back(&lease, attempt, "store_failed", e.to_string())
                .await;
        }
        // A benchmark run's metrics stay out of the business dashboards.
        let metrics = self.metrics.for_traffic(job.benchmark_run.as_ref());
        let summary = summary(&normalized.document.fields, &reasons);
        // What the vendor processed is what its answer holds; an answer that holds no page
        // (it cannot say) is billed at the estimate, marked so, never at zero.
        let billed = match u32::try_from(normalized.document.pages.len()) {
            Ok(0) => self.cost_of(&job).with_billed_estimate(),
            pages => self
                .cost_of(&job)
                .with_billed_pages(pages.unwrap_or(u32::MAX)),
        };
        // A part's fields are read for the whole document, once merged, and a second opinion
        // settles its parent: their own rules and opinions are not theirs to decide.
        let settles = match (job.part_of.clone(), job.second_opinion_of.clone()) {
            (Some(of), _) => Some(Settles::Document(of)),
            (None, Some(parent)) => Some(Settles::Parent(parent)),
            (None, None) => None,
        };
        if let Some(settles) = settles {
            let reading = second_opinion::Reading {
                document: normalized.document,
                result_key,
                summary,
                cost: billed,
                text,
            };
            return match settles {
                Settles::Document(of) => {
                    self.finish_part(&lease, &job, &of, reading, attempt).await
                }
                Settles::Parent(parent) => {
                    self.finish_second_opinion(&lease, &job, &parent, reading, attempt)
                        .await
                }
            };
        }
        let (to, change) = if reasons.is_empty() {
            (
                JobState::Completed,
                Change::none()
                    .with_result(&result_key, summary)
                    .with_cost(billed)
                    .with_text(text),
            )
        } else {
            self.count_review(&job, &reasons, &text_segments);
            let mut message = review_message(&reasons);
            let asked = match self.ask_second_opinion(&job, &reasons).await {
                Ok(asked) => asked,
                Err(e) => {
                    return self
                        .give_back(&lease, attempt, "second_opinion_unasked", e)
                        .await
                }
            };
            let mut change = Change::none();
            if let Some(asked) = asked {
                message.push_str(&format!(
                    "; a second opinion is asked of {} (job {})",
                    asked.vendor, asked.job_id
                ));
                change = change.with_second_opinion(asked);
            }
            (
                JobState::NeedsReview,
                change
                    .with_result(&result_key, summary)
                    .with_reason(Reason::new("needs_review", message))
                    .with_cost(billed)
                    .with_text(text),
            )
        };
        let completed = failpoints::around(
            "parse.before_complete",
            "parse.after_complete",
            job.id.as_str(),
            self.ledger
                .complete_lease(&lease, to, change, UnixMillis::now()),
        )
        .await;
        match completed {
            Ok(done) => {
                if let Some(actual) = done.cost.as_ref().and_then(|c| c.actual) {
                    self.spent(&job, Spend::Billed, actual);
                    metrics.emit(
                        metrics::COST_PER_DOCUMENT,
                        f64::try_from(actual).unwrap_or_default(),
                        &[
                            self.vendor_of(&job).vendor.name(),
                            &self.vendor_of(&job).vendor.model_of(&job),
                            segments::page_bucket(job.inspection.pages),
                        ],
                        &[("job_id", job.id.as_str())],
                    );
                }
                self.count_settled(&done, &text_segments);
                let [language, handwriting] = text_segments;
                info!(state = %done.state, result = %result_key, language, handwriting, "parsed");
                Disposition::Done
            }
            Err(FenceError::Lost { .. }) => {
                self.metrics.count(
                    metrics::LEASES_LOST,
                    &["parse"],
                    &[("job_id", job.id.as_str())],
                );
                warn!("the parse lease was taken over meanwhile; this result was not recorded");
                Disposition::Done
            }
            Err(e) => self.later(attempt, "dynamodb_error", e.to_string()),
        }
    }

    /// `NeedsReview[Rule]`, once for each reason a document goes to review for, whichever way
    /// it was parsed (whole, or merged from its parts).
    fn count_review(&self, job: &Job, reasons: &[rules::ReviewReason], text_segments: &[&str; 2]) {
        let metrics = self.metrics.for_traffic(job.benchmark_run.as_ref());
        for r in reasons {
            metrics.count_segmented(
                metrics::NEEDS_REVIEW,
                &[r.rule],
                text_segments,
                &[("job_id", job.id.as_str()), ("field", r.field)],
            );
        }
    }

    /// What a document's settling counts, whichever way it was parsed (whole, or merged from
    /// its parts): completions by source, kind and path, end-to-end latency, and jobs by state.
    fn count_settled(&self, done: &Job, text_segments: &[&str; 2]) {
        let metrics = self.metrics.for_traffic(done.benchmark_run.as_ref());
        let profile = done.profile.as_str();
        metrics.count_segmented(
            metrics::DOCUMENTS_COMPLETED,
            &[
                done.channel.as_deref().unwrap_or("other"),
                segments::kind(&done.inspection),
                segments::path(done, done.state),
            ],
            text_segments,
            &[("job_id", done.id.as_str())],
        );
        metrics.emit_segmented(
            metrics::END_TO_END_LATENCY,
            done.state_since.since(done.created_at).as_secs_f64() * 1e3,
            &[profile, segments::page_bucket(done.inspection.pages)],
            text_segments,
            &[("job_id", done.id.as_str())],
        );
        metrics.count_segmented(
            metrics::JOBS_COMPLETED,
            &[profile, done.state.as_str()],
            text_segments,
            &[("job_id", done.id.as_str())],
        );
    }

    /// Fails the job under the parse lease with `parse_failed:<code>`.
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
        self.fail_with(lease, job, &format!("parse_failed:{code}"), message)
            .await
    }

    /// Fails the job under the parse lease with `code`.
    async fn fail_with(
        &self,
        lease: &Lease,
        job: &Job,
        code: &str,
        message: String,
    ) -> Disposition {
        self.metrics.count(
            metrics::JOBS_FAILED,
            &["parse", code],
            &[("job_id", job.id.as_str())],
        );
        let reason = Reason::new(code, message);
        let mut change = Change::none().with_reason(reason);
        let billed = job
            .vendor_job_id
            .is_some()
            // The vendor ran it (it said so) and billed it; how many pages its answer held is
            // not known here.
            .then(|| self.cost_of(job).with_billed_estimate());
        if let Some(cost) = &billed {
            change = change.with_cost(cost.clone());
        }
        let failed = failpoints::around(
            "parse.before_fail",
            "parse.after_fail",
            job.id.as_str(),
            self.ledger
                .complete_lease(lease, JobState::Failed, change, UnixMillis::now()),
        )
        .await;
        match failed {
            Ok(_) => {
                if let Some(actual) = billed.and_then(|c| c.actual) {
                    self.spent(job, Spend::FailedBilled, actual);
                }
                Disposition::Done
            }
            Err(FenceError::Lost { .. }) => Disposition::Done,
            Err(e) => self.later(1, "dynamodb_error", e.to_string()),
        }
    }

    /// Streams a result too large to parse into `archive`, gzipped, one part in memory at a time.
    async fn archive_stream(
        &self,
        job: &Job,
        vendor_job_id: &str,
        archive: &ObjectRef,
    ) -> Result<u64, String> {
        let Some(mut response) = self
            .vendor_of(job)
            .vendor
            .result_body(vendor_job_id)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Err(format!(
                "{} results are not one body to stream",
                self.vendor_of(job).vendor.name()
            ));
        };
        if !response.status().is_success() {
            return Err(format!("the vendor answered {}", response.status()));
        }
        failpoints::around(
            "parse.before_archive_stream",
            "parse.after_archive_stream",
            archive.key.split('/').nth(1).unwrap_or_default(),
            self.blob
                .put_gzip_stream(archive, &mut response, self.config.max_archive_bytes),
        )
        .await
        .map_err(|e| e.to_string())
    }

    /// Money paid to the vendor, for the dashboard (`VendorCost`); the jobs hold the record.
    fn spent(&self, job: &Job, spend: Spend, amount: ocrbridge::cost::Decimal) {
        self.spent_at(self.vendor_of(job).name(), job, spend, amount);
    }

    /// [`Self::spent`] at `vendor`, which need not be the job's (a second charge elsewhere).
    fn spent_at(&self, vendor: &str, job: &Job, spend: Spend, amount: ocrbridge::cost::Decimal) {
        let spend = if job.benchmark_run.is_some() {
            Spend::Benchmark
        } else {
            spend
        };
        self.metrics.for_traffic(job.benchmark_run.as_ref()).emit(
            metrics::VENDOR_COST,
            f64::try_from(amount).unwrap_or_default(),
            &[vendor, spend.as_str()],
            &[("job_id", job.id.as_str())],
        );
    }

    /// The job's cost as submit estimated it, or (a vendor job adopted without one) as the
    /// price table estimates it now.
    fn cost_of(&self, job: &Job) -> JobCost {
        job.cost.clone().unwrap_or_else(|| {
            JobCost::estimate_for(&self.config.prices, self.vendor_of(job).vendor, job)
        })
    }

    /// The quality signals of one result: each null field (`FieldNull`) and each field's
    /// confidence (`FieldConfidence`), so a dashboard shows their distribution drift.
    fn field_signals(&self, job: &Job, fields: &Fields, text_segments: &[&str; 2]) {
        let value = serde_json::to_value(fields).unwrap_or_default();
        let profile = job.profile.as_str();
        let metrics = self.metrics.for_traffic(job.benchmark_run.as_ref());
        let model = self.vendor_of(job).vendor.model_of(job);
        let Some(object) = value.as_object() else {
            return;
        };
        for (name, v) in object {
            if name == "profile" || name == "line_items" {
                continue;
            }
            if v.is_null() {
                metrics.count(
                    metrics::FIELD_NULL,
                    &[profile, name],
                    &[("job_id", job.id.as_str())],
                );
            } else if let Some(confidence) = v.get("confidence").and_then(serde_json::Value::as_f64)
            {
                metrics.emit_segmented(
                    metrics::FIELD_CONFIDENCE,
                    confidence,
                    &[self.vendor_of(job).vendor.name(), &model, profile, name],
                    text_segments,
                    &[("job_id", job.id.as_str())],
                );
            }
        }
    }
}

/// Key fields and review rules, as a short JSON object for the job record.
/// A result's review reasons, as its `needs_review` reason says them.
fn review_message(reasons: &[rules::ReviewReason]) -> String {
    reasons
        .iter()
        .map(|r| format!("{}: {}", r.rule, r.detail))
        .collect::<Vec<_>>()
        .join("; ")
}

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
    // Which field each rule flagged: the review console highlights them.
    out.insert(
        "flags".into(),
        json!(reasons
            .iter()
            .map(|r| json!({"rule": r.rule, "field": r.field}))
            .collect::<Vec<_>>()),
    );
    serde_json::Value::Object(out).to_string()
}

/// What a parsed job's reading settles besides the job itself.
enum Settles {
    /// It is a part: the document it belongs to (`parts`).
    Document(ocrbridge::job::PartOf),
    /// It is a second opinion: the job it was asked for.
    Parent(ocrbridge::job::JobId),
}
