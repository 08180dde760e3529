//! The steps of one submission under the lease, in the order `submit_job` runs them.

use std::time::{Duration, Instant};

use ocrbridge::batch::Disposition;
use ocrbridge::blob::gzip;
use ocrbridge::blob::ObjectRef;
use ocrbridge::breaker::{Admission, Breaker, Outcome};
use ocrbridge::cost::JobCost;
use ocrbridge::failpoints;
use ocrbridge::job::{reason, Attempt, CallKind, Job, Reason};
use ocrbridge::ledger::Change;
use ocrbridge::ledger::{AttemptOutcome, FenceError, Lease, LeaseError, RetryDebt, Take};
use ocrbridge::metrics;
use ocrbridge::time::{lease_until_from_deadline, UnixMillis, DEFAULT_LEASE_SAFETY_MARGIN};
use ocrbridge::vendors::ambiguity::Resolution;
use ocrbridge::vendors::answer::{self, Answer};
use ocrbridge::vendors::route::Adapter;
use ocrbridge::vendors::{again_after_refresh, ErrorClass, Submission, Vendor, VendorError};
use tracing::{error, info, warn};

use crate::Submit;

/// What a step decided: go on with (a newer) lease, or stop here with this disposition.
pub(crate) enum Next {
    Continue(Lease),
    Stop(Disposition),
}

/// How the submission that follows an inherited attempt is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Send {
    /// Nothing can reach the vendor twice: no earlier attempt, the vendor said it does not have
    /// it, or it deduplicates by our key.
    Safe,
    /// It may be a second charge: counted when the attempt is recorded.
    Risky,
}

/// The vendor a submission goes to, chosen from the job's route before the lease is taken (the
/// attempt recorded with the lease names it).
pub(crate) struct Choice<'a, V> {
    pub adapter: Adapter<'a, V>,
    /// The route's first vendor, when it was passed over because its breaker is open.
    pub passed_over: Option<Adapter<'a, V>>,
}

/// What a vendor call brought back: a job the vendor keeps, or the answer itself.
pub(crate) enum Reply {
    Job(String),
    Answer(Answer),
}

/// The pauses before each try to archive a synchronous answer: it exists nowhere else.
const ANSWER_ARCHIVE_RETRIES: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_millis(200),
    Duration::from_millis(800),
];

/// Below this much lease left, a vendor call is not started: it could not finish in time, and
/// an abandoned call is an ambiguous one.
const MIN_CALL_TIME: Duration = Duration::from_secs(1);

impl<V: Vendor> Submit<V> {
    /// Step 2: the lease, with the attempt recorded in the same write. Every path below that
    /// does not reach the vendor releases it as `NotReached`, which clears the attempt again.
    pub(crate) async fn take_lease(
        &self,
        job: &Job,
        choice: &Choice<'_, V>,
        receives: u32,
        deadline: UnixMillis,
    ) -> Result<Lease, Disposition> {
        let now = UnixMillis::now();
        let until = lease_until_from_deadline(deadline, DEFAULT_LEASE_SAFETY_MARGIN);
        let owner = format!("submit-{}", uuid::Uuid::new_v4().simple());
        let attempt_id = Self::new_attempt_id(choice.adapter.vendor, job);
        let acquired = failpoints::around(
            "submit.before_lease",
            "submit.after_lease",
            job.id.as_str(),
            self.ledger
                .acquire_submit_lease_on_message(job, &owner, until, &attempt_id, now),
        )
        .await;
        match acquired {
            Ok(lease) => Ok(lease),
            Err(LeaseError::AlreadyPast { current, .. }) => {
                self.metrics
                    .count(metrics::SUBMIT_SKIPPED, &[current.state.as_str()], &[]);
                Err(Disposition::Done)
            }
            // Another worker is on it: wait its lease out without spending a receive. As a
            // retry, each look spent one, and a worker stalled for a few lease lengths walked
            // its job's only message to the DLQ (`lease_held`, gave up after 5 receives), so
            // nothing was left to take the job over when the lease ran out. A lease always
            // ends, so the wait is bounded.
            Err(LeaseError::Held { until, .. }) => {
                Err(Disposition::Defer(Self::lease_wait(until, now)))
            }
            // Before `Received` there is no state: a job is created in it. Kept so that a new
            // state before it could not slip through unhandled.
            Err(LeaseError::NotYet { current, .. }) => Err(Disposition::RetryAfter {
                delay: Duration::from_secs(5),
                code: "not_queued_yet",
                reason: format!("job is still {}", current.state),
            }),
            Err(
                e @ (LeaseError::Contended { .. }
                | LeaseError::NoTimeLeft { .. }
                | LeaseError::Ledger(_)),
            ) => Err(self.retry_later(receives, "lease_unavailable", e.to_string())),
            Err(LeaseError::Missing(id)) => Err(Disposition::DeadLetter {
                code: "unknown_job",
                reason: format!("job {id} vanished"),
            }),
        }
    }

    /// Step 4: an earlier holder recorded an attempt and never finished: it may have reached the
    /// vendor. Resolve that before anything is sent (see `ocrbridge::vendors::ambiguity`).
    pub(crate) async fn resolve_inherited(
        &self,
        lease: Lease,
        attempt: &Attempt,
    ) -> Result<(Lease, Send), Disposition> {
        let now = UnixMillis::now();
        let call = attempt.call();
        // The vendor the attempt went to, whichever the route would choose now: only it can
        // have the document.
        let vendor = self.vendor_of(&lease.job).vendor;
        let lease = match call {
            // The one place a lost synchronous answer can be found: our own archive, where a
            // worker that died before recording it left it.
            CallKind::Answer => self.find_archived_answer(lease, attempt).await?,
            CallKind::Job => lease,
        };
        // What nothing of ours can answer, the ambiguity policy resolves, by what the vendor
        // can do for a call of this kind.
        let resolution = if lease.job.resubmit_approved {
            // An operator looked at the held job and chose to resubmit.
            Resolution::RiskyResubmit
        } else {
            self.config.ambiguity.resolve(
                &vendor.capabilities().for_call(call),
                attempt.attempted_at,
                now,
            )
        };
        self.metrics.count(
            metrics::AMBIGUOUS_SUBMISSIONS,
            &[vendor.name(), resolution.as_str()],
            &[("job_id", lease.job_id.as_str())],
        );
        info!(
            resolution = resolution.as_str(),
            attempt_id = %attempt.attempt_id,
            "an earlier attempt may have reached the vendor"
        );
        match resolution {
            Resolution::LookUp => self.look_up(lease).await,
            Resolution::ResubmitWithSameKey => {
                self.count_reconcile(&lease.job, "resubmitted_same_key");
                Ok((lease, Send::Safe))
            }
            Resolution::AwaitCompletion { until } => {
                // The completion names the job; parse adopts the vendor job when it arrives.
                // The inherited attempt stays as it is, so the wait is measured from it.
                self.release(&lease, AttemptOutcome::MayHaveReached, RetryDebt::Unchanged)
                    .await;
                // Waiting is not failing: a deferral spends no receive. Look again when the grace
                // period ends, or sooner (the cap), to see whether the completion came.
                let wait = until
                    .since(now)
                    .min(self.config.backoff.cap)
                    .max(Duration::from_secs(1));
                info!(?wait, "waiting for the vendor's completion to name the job");
                Err(Disposition::Defer(wait))
            }
            Resolution::RiskyResubmit => Ok((lease, Send::Risky)),
            Resolution::Hold => {
                let message = match call {
                    CallKind::Job => format!(
                        "a submission was sent at {} ms and its answer lost; {} cannot say whether it arrived, and no completion named the job within {:?}. Retry to resubmit (it may be a second charge), or fail it.",
                        attempt.attempted_at.0,
                        vendor.name(),
                        self.config.ambiguity.grace,
                    ),
                    CallKind::Answer => format!(
                        "a synchronous call to {} was made at {} ms and its answer lost (it may have been read and billed); such a call cannot be looked up, and no answer was archived. Retry to read it again (it may be a second charge), or fail it.",
                        vendor.name(),
                        attempt.attempted_at.0,
                    ),
                };
                let reason = Reason::new(reason::SUBMISSION_OUTCOME_UNKNOWN, message);
                Err(match self.hold(&lease, Change::none(), reason).await {
                    Ok(()) => Disposition::Done,
                    Err(disposition) => disposition,
                })
            }
        }
    }

    /// A synchronous attempt's answer, if its worker archived it before dying: adopted (parse
    /// reads it), nothing sent. `Ok` with the lease when there is none.
    async fn find_archived_answer(
        &self,
        lease: Lease,
        attempt: &Attempt,
    ) -> Result<Lease, Disposition> {
        let archive = answer::archive_for_attempt(
            &self.stack.results_bucket,
            &lease.job_id,
            &attempt.attempt_id,
        );
        let found = failpoints::around(
            "submit.before_find_answer",
            "submit.after_find_answer",
            lease.job_id.as_str(),
            self.blob.open(&archive),
        )
        .await;
        match found {
            Ok(Some(archived)) => {
                self.count_reconcile(&lease.job, "adopted_archived_answer");
                info!(archive = %archive.key, "the lost synchronous answer was archived; adopting it");
                let vendor_job_id = answer::vendor_job_id(
                    &attempt.attempt_id,
                    archived.head.vendor_request_id.as_deref(),
                );
                Err(self.complete(&lease, vendor_job_id, false).await)
            }
            Ok(None) => Ok(lease),
            Err(e) => {
                self.release(&lease, AttemptOutcome::MayHaveReached, RetryDebt::Unchanged)
                    .await;
                Err(self.retry_later(1, "archive_unreadable", e.to_string()))
            }
        }
    }

    /// "Did you get my submission?" — adopt the vendor's job if it did.
    async fn look_up(&self, lease: Lease) -> Result<(Lease, Send), Disposition> {
        let key = lease.job_id.as_str();
        let vendor = self.vendor_of(&lease.job).vendor;
        let look = || {
            failpoints::around(
                "submit.before_lookup",
                "submit.after_lookup",
                key,
                vendor.find_by_idempotency_key(key),
            )
        };
        let mut answer = look().await;
        if matches!(answer, Err(VendorError::Auth { .. })) {
            // As for a submission: rotation may just have replaced the key.
            vendor.refresh_credentials().await;
            answer = look().await;
        }
        match answer {
            Ok(Some(vendor_job)) => {
                self.count_reconcile(&lease.job, "adopted");
                info!(vendor_job_id = %vendor_job.id, "adopted the vendor's existing job");
                Err(self.complete(&lease, vendor_job.id, false).await)
            }
            Ok(None) => {
                self.count_reconcile(&lease.job, "resubmitted");
                Ok((lease, Send::Safe))
            }
            Err(e) => {
                let failures = lease.job.vendor_failures + 1;
                self.release(&lease, AttemptOutcome::MayHaveReached, RetryDebt::Unchanged)
                    .await;
                Err(self.retry_later(failures, "lookup_failed", e.to_string()))
            }
        }
    }

    /// Step 7a: our own attempt, recorded (fenced) just before the call when the acquire did not
    /// record it because an earlier one was unresolved. A risky submission is counted in the
    /// same write, before the risk is taken.
    pub(crate) async fn record_own_attempt(
        &self,
        lease: Lease,
        send: Send,
        to: Adapter<'_, V>,
    ) -> Result<Lease, Disposition> {
        if lease.attempt_recorded {
            return Ok(lease);
        }
        let attempt_id = Self::new_attempt_id(to.vendor, &lease.job);
        let now = UnixMillis::now();
        let recorded = failpoints::around(
            "submit.before_record_attempt",
            "submit.after_record_attempt",
            lease.job_id.as_str(),
            async {
                match send {
                    Send::Safe => self.ledger.record_attempt(&lease, &attempt_id, now).await,
                    Send::Risky => {
                        self.ledger
                            .record_risky_resubmit(&lease, &attempt_id, now)
                            .await
                    }
                }
            },
        )
        .await;
        match recorded {
            Ok(lease) => {
                if send == Send::Risky {
                    self.metrics.count(
                        metrics::DUPLICATE_SUBMISSION_RISK,
                        &[to.name()],
                        &[("job_id", lease.job_id.as_str())],
                    );
                    warn!("resubmitting although the last submission may have arrived");
                }
                Ok(lease)
            }
            // Taken over: the new holder resolves the attempt.
            Err(FenceError::Lost { .. }) => Err(Disposition::Done),
            Err(e) => {
                self.release(&lease, AttemptOutcome::MayHaveReached, RetryDebt::Unchanged)
                    .await;
                Err(self.retry_later(1, "lease_unavailable", e.to_string()))
            }
        }
    }

    /// Step 6a: a retry after a failed vendor call pays the retry budget first. An empty budget
    /// defers the work (no receive spent) and keeps the debt for the next attempt.
    pub(crate) async fn pay_retry_debt(&self, lease: Lease, to: Adapter<'_, V>) -> Next {
        let owed = lease.job.retry_owed;
        if owed == 0 {
            return Next::Continue(lease);
        }
        let taken = failpoints::around(
            "submit.before_pay_retry",
            "submit.after_pay_retry",
            lease.job_id.as_str(),
            self.ledger
                .take_tokens(&to.budgets.retry, f64::from(owed), UnixMillis::now()),
        )
        .await;
        match taken {
            Ok(Take::Granted) => Next::Continue(lease),
            Ok(Take::Denied { wait }) => {
                self.metrics.count(
                    metrics::BUDGET_EXHAUSTED,
                    &[to.name()],
                    &[("job_id", lease.job_id.as_str())],
                );
                info!(?wait, "retry budget exhausted; deferring");
                // Look again after a jittered backoff (not the bucket's full refill time), so the
                // work resumes soon after the budget does.
                let delay = wait.min(self.config.backoff.delay(
                    lease.job.vendor_failures.max(1),
                    None,
                    &mut rand::rng(),
                ));
                self.release(&lease, Self::unsent(&lease), RetryDebt::Unchanged)
                    .await;
                Next::Stop(Disposition::Defer(delay))
            }
            Err(e) => {
                self.release(&lease, Self::unsent(&lease), RetryDebt::Unchanged)
                    .await;
                Next::Stop(self.retry_later(1, "dynamodb_error", e.to_string()))
            }
        }
    }

    /// How to release a lease that sent nothing: an inherited attempt that was not settled by
    /// a recorded one of ours stays, for the next holder to resolve.
    fn unsent(lease: &Lease) -> AttemptOutcome {
        if lease.inherited_attempt.is_some() && !lease.attempt_recorded {
            AttemptOutcome::MayHaveReached
        } else {
            AttemptOutcome::NotReached
        }
    }

    /// Step 2a: the vendor for a new submission: the first in the job's route whose breaker
    /// would let a call through now, looked at without claiming anything (the half-open probe is
    /// claimed in step 6, once the job is leased and any earlier attempt resolved: a probe
    /// claimed for a job that then sends nothing would hold every caller off for its lease). A
    /// one-vendor route is not looked at here at all. A breaker that cannot be read lets the call
    /// through: it guards the vendor, never the documents. With every breaker in the route open,
    /// the route's first is chosen, and step 6 defers the message.
    pub(crate) async fn choose_vendor(&self, job: &Job) -> Choice<'_, V> {
        if job.second_opinion_of.is_some() {
            // A second opinion is asked of one vendor: the one it names, breaker or not (an
            // open breaker defers it in step 6; another vendor's reading is not its question).
            return Choice {
                adapter: self.vendor_of(job),
                passed_over: None,
            };
        }
        let route = self.routes.route(self.primary(), &job.profile);
        let first = route.first().copied().unwrap_or(self.primary());
        if route.len() > 1 {
            let now = UnixMillis::now();
            for adapter in route {
                let Some(breaker) = self.breaker(adapter.name()) else {
                    break;
                };
                match breaker.peek(now).await {
                    Ok(Admission::Refused { .. }) => continue,
                    Ok(_) => {}
                    Err(e) => {
                        warn!(vendor = adapter.name(), error = %e, "the vendor's breaker could not be read; choosing it anyway");
                    }
                }
                return Choice {
                    adapter,
                    passed_over: (adapter.name() != first.name()).then_some(first),
                };
            }
        }
        Choice {
            adapter: first,
            passed_over: None,
        }
    }

    /// Step 6: the chosen vendor's breaker, asked for admission (claiming the half-open
    /// breaker's probe when it is this call's turn). Open, or half-open with another container's
    /// probe out — every vendor of the route was, or the chosen one became so since step 2a —
    /// nothing is sent; the lease is released as unsent and the message comes back when the
    /// breaker would let a probe through (a deferral: no receive, no retry debt, no attempt).
    /// `Ok(true)`: this call is the half-open breaker's one probe. A breaker that cannot be read
    /// lets the call through.
    pub(crate) async fn pass_breaker(
        &self,
        lease: &Lease,
        choice: &Choice<'_, V>,
    ) -> Result<bool, Disposition> {
        let vendor = choice.adapter.name();
        let Some(breaker) = self.breaker(vendor) else {
            return Ok(false);
        };
        let now = UnixMillis::now();
        match breaker.admit(now).await {
            Ok(Admission::Allowed) => Ok(false),
            Ok(Admission::Probe) => {
                info!(
                    vendor,
                    "the vendor's breaker is half-open: this submission is its probe"
                );
                Ok(true)
            }
            Ok(Admission::Refused { until }) => {
                self.metrics.count(
                    metrics::BREAKER_REFUSED,
                    &[vendor],
                    &[("job_id", lease.job_id.as_str())],
                );
                let wait = until
                    .since(now)
                    .clamp(Duration::from_secs(1), self.config.backoff.cap);
                info!(?wait, vendor, "the vendor's breaker is open; deferring");
                self.release(lease, Self::unsent(lease), RetryDebt::Unchanged)
                    .await;
                Err(Disposition::Defer(wait))
            }
            Err(e) => {
                warn!(vendor, error = %e, "the vendor's breaker could not be read; calling anyway");
                Ok(false)
            }
        }
    }

    /// A submission going to a vendor other than its route's first, counted as it is sent, with
    /// what it costs there and what the first would have cost (the price table's estimates).
    pub(crate) fn count_fallback(&self, job: &Job, choice: &Choice<'_, V>) {
        let Some(first) = choice.passed_over else {
            return;
        };
        let (from, to) = (first.name(), choice.adapter.name());
        info!(
            from,
            to, "falling back: the route's first vendor's breaker is open"
        );
        let emitter = self.metrics.for_traffic(job.benchmark_run.as_ref());
        let context = [("job_id", job.id.as_str())];
        let profile = job.profile.as_str();
        emitter.count(
            metrics::FALLBACK_SUBMISSIONS,
            &[profile, from, to, "breaker_open"],
            &context,
        );
        let estimate = |vendor: &V| {
            let cost = JobCost::estimate_for(&self.config.prices, vendor, job).estimate;
            f64::try_from(cost).unwrap_or_default()
        };
        let (spent, instead) = (estimate(choice.adapter.vendor), estimate(first.vendor));
        emitter.emit(
            metrics::FALLBACK_COST,
            spent,
            &[profile, from, to],
            &context,
        );
        emitter.emit(
            metrics::FALLBACK_COST_DELTA,
            spent - instead,
            &[profile, from, to],
            &context,
        );
    }

    /// Counts a finished call into the vendor's breaker, and says so when it moved it.
    pub(crate) async fn count_for_breaker(
        &self,
        result: Result<(), &VendorError>,
        probe: bool,
        job: &Job,
    ) {
        let vendor = self.vendor_of(job).name();
        let Some(breaker) = self.breaker(vendor) else {
            return;
        };
        let Some(outcome) = breaker_outcome(result) else {
            return;
        };
        match breaker.record(outcome, probe, UnixMillis::now()).await {
            Ok(Some(moved)) => {
                warn!(
                    state = moved.name(),
                    outcome = outcome.as_str(),
                    "the vendor's breaker moved"
                );
                self.metrics.count(
                    metrics::BREAKER_TRANSITIONS,
                    &[vendor, moved.name()],
                    &[("job_id", job.id.as_str())],
                );
            }
            Ok(None) => {}
            Err(e) => warn!(error = %e, "the call's outcome could not be counted in the breaker"),
        }
    }

    fn breaker(&self, vendor: &str) -> Option<Breaker> {
        self.config.breaker.clone().map(|policy| Breaker {
            ledger: self.ledger.clone(),
            vendor: vendor.to_owned(),
            policy,
        })
    }

    /// Step 6b: waits for an admission token if it comes soon; otherwise defers the message. A
    /// deferral is our own doing, not a vendor failure: it owes the retry budget nothing (and
    /// any debt was paid in step 6a).
    pub(crate) async fn admit(&self, lease: &Lease, to: Adapter<'_, V>) -> Result<(), Disposition> {
        loop {
            let taken = failpoints::around(
                "submit.before_admit",
                "submit.after_admit",
                lease.job_id.as_str(),
                self.ledger
                    .take_tokens(&to.budgets.admission, 1.0, UnixMillis::now()),
            )
            .await;
            match taken {
                Ok(Take::Granted) => return Ok(()),
                Ok(Take::Denied { wait }) => {
                    let time_left = lease.until.since(UnixMillis::now());
                    if wait <= self.config.max_admission_wait
                        && wait + MIN_CALL_TIME + Duration::from_secs(2) < time_left
                    {
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    self.metrics
                        .count(metrics::ADMISSION_DELAYED, &[to.name()], &[]);
                    self.release(lease, Self::unsent(lease), RetryDebt::Settled)
                        .await;
                    return Err(Disposition::Defer(wait));
                }
                Err(e) => {
                    self.release(lease, Self::unsent(lease), RetryDebt::Unchanged)
                        .await;
                    return Err(self.retry_later(1, "dynamodb_error", e.to_string()));
                }
            }
        }
    }

    /// Step 7: the call itself, bounded by the lease. `probe`: the breaker admitted it as its
    /// half-open probe, whose outcome closes or reopens it.
    pub(crate) async fn call_vendor(&self, lease: &Lease, probe: bool) -> Disposition {
        let job = &lease.job;
        let object = ObjectRef::sent_for(job);
        let url = match self
            .blob
            .presign_get(&object, self.config.presign_expiry)
            .await
        {
            Ok(url) => url,
            Err(e) => {
                self.release(lease, AttemptOutcome::NotReached, RetryDebt::Unchanged)
                    .await;
                return self.retry_later(1, "presign_failed", e.to_string());
            }
        };
        // The vendor our attempt names; the call kind decided as it was recorded.
        let vendor = self.vendor_of(job).vendor;
        let call = job
            .attempt
            .as_ref()
            .map_or_else(|| Self::call_kind(vendor, job), Attempt::call);
        let started = Instant::now();
        let first = self.send(lease, job, &url, call).await;
        let result = again_after_refresh(vendor, "submit", first, || {
            self.send(lease, job, &url, call)
        })
        .await;
        self.metrics.emit(
            metrics::SUBMIT_LATENCY,
            started.elapsed().as_secs_f64() * 1e3,
            &[vendor.name()],
            &[("job_id", job.id.as_str())],
        );
        self.count_for_breaker(result.as_ref().map(|_| ()), probe, job)
            .await;
        match result {
            Ok(Reply::Job(vendor_job_id)) => self.complete(lease, vendor_job_id, false).await,
            Ok(Reply::Answer(answer)) => self.keep_answer(lease, answer).await,
            Err(e) => self.on_error(lease, e, call).await,
        }
    }

    /// A synchronous answer: archived first — it is what was paid for, and the vendor keeps no
    /// copy — then recorded like a vendor job, named for our attempt, and parse told at once.
    /// An answer that cannot be archived is lost: the attempt stays for the next holder, who
    /// resolves it by the ambiguity policy (it was billed; nothing can fetch it again).
    async fn keep_answer(&self, lease: &Lease, answer: Answer) -> Disposition {
        let job = &lease.job;
        let attempt_id = job.attempt.as_ref().map_or_else(
            || Attempt::new_id(self.vendor_of(job).name(), CallKind::Answer),
            |a| a.attempt_id.clone(),
        );
        let archive = answer::archive_for_attempt(&self.stack.results_bucket, &job.id, &attempt_id);
        let request_id = answer.request_id.as_deref().unwrap_or_default();
        // Compressed once; only the upload is tried again.
        let compressed = gzip(&answer.raw);
        let mut last_error = String::new();
        for pause in ANSWER_ARCHIVE_RETRIES {
            let compressed = match &compressed {
                Ok(bytes) => bytes.clone(),
                Err(e) => {
                    last_error = e.to_string();
                    break;
                }
            };
            tokio::time::sleep(pause).await;
            let stored = failpoints::around(
                "submit.before_archive_answer",
                "submit.after_archive_answer",
                job.id.as_str(),
                self.blob.put_with_metadata(
                    &archive,
                    compressed,
                    "application/json",
                    Some("gzip"),
                    &[(answer::REQUEST_ID_METADATA, request_id)],
                ),
            )
            .await
            .map_err(|e| e.to_string());
            match stored {
                Ok(()) => {
                    info!(%request_id, archive = %archive.key, "answered synchronously; archived");
                    let vendor_job_id =
                        answer::vendor_job_id(&attempt_id, answer.request_id.as_deref());
                    return self.complete(lease, vendor_job_id, false).await;
                }
                Err(e) => last_error = e,
            }
        }
        error!(%request_id, error = %last_error, "could not archive the vendor's synchronous answer; it is lost, and the attempt stays for the ambiguity policy");
        self.release(lease, AttemptOutcome::MayHaveReached, RetryDebt::Unchanged)
            .await;
        self.retry_later(1, "answer_not_archived", last_error)
    }

    /// One submission, abandoned when the lease ends: a call still running after that could
    /// overlap the next holder's. `Unreachable` when no time is left to start one — measured when
    /// the call starts, not before: a worker paused on its way to the call (a slow write, a
    /// stall) must not start one on a lease that ended meanwhile, while the next holder makes
    /// its own.
    async fn send(
        &self,
        lease: &Lease,
        job: &Job,
        url: &str,
        call: CallKind,
    ) -> Result<Reply, VendorError> {
        let object = ObjectRef::sent_for(job);
        let vendor = self.vendor_of(job).vendor;
        let call = async {
            let time_left = lease.until.since(UnixMillis::now());
            if time_left < MIN_CALL_TIME {
                return Err(VendorError::NotSent(format!(
                    "only {time_left:?} of the lease left; not starting a call that could outlive it"
                )));
            }
            let submission = Submission {
                idempotency_key: job.id.as_str(),
                object: &object,
                document_url: url,
                profile: &job.profile,
                external_ref: job.id.as_str(),
                time_limit: time_left,
            };
            let reply = async {
                match call {
                    CallKind::Job => vendor.submit(&submission).await.map(Reply::Job),
                    CallKind::Answer => vendor.answer(&submission).await.map(Reply::Answer),
                }
            };
            // The adapter bounds its own call; this bounds any adapter that does not.
            match tokio::time::timeout(time_left, reply).await {
                Ok(result) => result,
                Err(_) => Err(VendorError::NoAnswer(format!(
                    "no answer before the lease ended ({time_left:?})"
                ))),
            }
        };
        failpoints::around(
            "submit.before_vendor_call",
            "submit.after_vendor_call",
            job.id.as_str(),
            call,
        )
        .await
    }

    async fn on_error(&self, lease: &Lease, error: VendorError, call: CallKind) -> Disposition {
        let job = &lease.job;
        let adapter = self.vendor_of(job);
        let vendor = adapter.name();
        let failures = job.vendor_failures + 1;
        let capabilities = adapter.vendor.capabilities().for_call(call);
        match error.submission_class(capabilities.idempotency) {
            ErrorClass::Retryable => {
                self.metrics.count(
                    metrics::SUBMIT_RETRIES,
                    &[vendor, error.cause()],
                    &[("job_id", job.id.as_str())],
                );
                if let Some(wait) = error.retry_after() {
                    // The vendor's Retry-After holds back every worker, not only this one.
                    let _ = failpoints::around(
                        "submit.before_pause",
                        "submit.after_pause",
                        job.id.as_str(),
                        self.ledger
                            .pause_bucket(&adapter.budgets.admission, UnixMillis::now().plus(wait)),
                    )
                    .await;
                }
                self.release(
                    lease,
                    AttemptOutcome::NotReached,
                    RetryDebt::Owe {
                        tokens: error.retry_cost(),
                    },
                )
                .await;
                self.back_off(failures, &error)
            }
            ErrorClass::Ambiguous => {
                self.metrics.count(
                    metrics::SUBMIT_RETRIES,
                    &[vendor, error.cause()],
                    &[("job_id", job.id.as_str())],
                );
                if error.cause() == "timeout" {
                    // Timeouts by page bucket: large documents time out first.
                    self.metrics.count(
                        metrics::VENDOR_TIMEOUTS,
                        &[
                            vendor,
                            ocrbridge::segments::page_bucket(job.inspection.pages),
                        ],
                        &[("job_id", job.id.as_str())],
                    );
                }
                warn!(error = %error, "the vendor may have the document; resolving before anything else");
                // Resolve now if the vendor can answer by key; otherwise the next holder does.
                let sent_at = job
                    .attempt
                    .as_ref()
                    .map_or(UnixMillis::now(), |a| a.attempted_at);
                if capabilities.lookup_by_key
                    && capabilities.remembers_key(sent_at, UnixMillis::now())
                {
                    let found = failpoints::around(
                        "submit.before_lookup",
                        "submit.after_lookup",
                        job.id.as_str(),
                        adapter.vendor.find_by_idempotency_key(job.id.as_str()),
                    )
                    .await;
                    if let Ok(Some(vendor_job)) = found {
                        self.count_reconcile(job, "adopted");
                        return self.complete(lease, vendor_job.id, false).await;
                    }
                }
                self.release(
                    lease,
                    AttemptOutcome::MayHaveReached,
                    RetryDebt::Owe {
                        tokens: error.retry_cost(),
                    },
                )
                .await;
                self.back_off(failures, &error)
            }
            ErrorClass::Permanent => match &error {
                VendorError::Auth { status } => self.park_on_auth(lease, *status, &error).await,
                _ => {
                    let reason = Reason::new(reason::VENDOR_REJECTED, error.to_string());
                    match self
                        .fail(lease, Change::none().attempt_not_reached(), reason)
                        .await
                    {
                        // Nothing to retry; the job says why.
                        Ok(()) => Disposition::Done,
                        Err(disposition) => disposition,
                    }
                }
            },
        }
    }

    /// The vendor refused our credentials twice (before and after a refresh). The key is
    /// wrong everywhere, not just for this document: pause every submission so the documents
    /// in flight wait instead of each failing, hold this job, and keep its message to redrive
    /// once the key is fixed — unless the job's route has another vendor: the refusal opened
    /// this one's breaker, and the job is retried there.
    async fn park_on_auth(&self, lease: &Lease, status: u16, error: &VendorError) -> Disposition {
        let adapter = self.vendor_of(&lease.job);
        self.metrics.count(
            metrics::AUTH_FAILURES,
            &[adapter.name(), "submit", &status.to_string()],
            &[("job_id", lease.job_id.as_str())],
        );
        let _ = failpoints::around(
            "submit.before_pause",
            "submit.after_pause",
            lease.job_id.as_str(),
            self.ledger.pause_bucket(
                &adapter.budgets.admission,
                UnixMillis::now().plus(self.config.auth_pause),
            ),
        )
        .await;
        if self.config.breaker.is_some()
            && self.routes.route(self.primary(), &lease.job.profile).len() > 1
        {
            // The refusal opened this vendor's breaker at once, and the route has another: the
            // job goes there instead of waiting for a fixed key. Refused at the door, nothing
            // reached this vendor; nothing is owed.
            warn!(
                vendor = adapter.name(),
                "the vendor refused our credentials; the route's next vendor takes the job"
            );
            self.release(lease, AttemptOutcome::NotReached, RetryDebt::Unchanged)
                .await;
            return Disposition::RetryAfter {
                delay: Duration::from_secs(1),
                code: reason::VENDOR_AUTH_FAILED,
                reason: format!("{error}; failing over"),
            };
        }
        let reason = Reason::new(reason::VENDOR_AUTH_FAILED, error.to_string());
        // Refused at the door: nothing reached the vendor, so nothing is left to resolve.
        match self
            .hold(lease, Change::none().attempt_not_reached(), reason)
            .await
        {
            Ok(()) => Disposition::DeadLetter {
                code: reason::VENDOR_AUTH_FAILED,
                reason: error.to_string(),
            },
            Err(disposition) => disposition,
        }
    }

    fn back_off(&self, failures: u32, error: &VendorError) -> Disposition {
        Disposition::RetryAfter {
            delay: self
                .config
                .backoff
                .delay(failures, error.retry_after(), &mut rand::rng()),
            code: match error.cause() {
                "429" => "vendor_throttled",
                "busy" => "vendor_busy",
                "5xx" => "vendor_unavailable",
                "network" => "vendor_unreachable",
                "not_sent" => "vendor_call_not_made",
                "unreadable" => "vendor_answer_unreadable",
                _ => "vendor_no_answer",
            },
            reason: error.to_string(),
        }
    }
}

/// How a submission's final result (after any credential refresh) counts for the vendor's
/// health. `None`: it says nothing about the vendor — a rejected document, its answer unread,
/// our own concurrency cap (`Busy`), a call our side never made (`NotSent`: its lease too short
/// to start it, its key unreadable) — and is not counted at all. (Counted as a timeout, calls
/// never made opened a healthy vendor's breaker 34 times in one chaos run on a slow moto, stop
/// CI at 014ab82, and every job waited out the cool-downs.)
fn breaker_outcome(result: Result<(), &VendorError>) -> Option<Outcome> {
    match result {
        Ok(_) | Err(VendorError::Unreadable { .. }) => Some(Outcome::Success),
        Err(VendorError::Unavailable { .. }) => Some(Outcome::ServerError),
        Err(VendorError::Throttled { .. }) => Some(Outcome::Throttled),
        // Refused connections and timeouts alike: the vendor did not answer.
        Err(VendorError::NoAnswer(_) | VendorError::Unreachable(_)) => Some(Outcome::Timeout),
        Err(VendorError::Auth { .. }) => Some(Outcome::AuthFailure),
        Err(
            VendorError::Busy { .. }
            | VendorError::NotSent(_)
            | VendorError::Rejected { .. }
            | VendorError::Protocol(_)
            | VendorError::TooLarge { .. }
            | VendorError::Gone(_),
        ) => None,
    }
}
