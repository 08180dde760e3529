//! The job ledger: DynamoDB persistence for jobs, leases and event dedupe.
//!
//! This is where exactly-once effects come from. The rules, each enforced by a condition
//! expression rather than by a read followed by a write:
//!
//! - **Create** is a conditional put on the job id, which is derived from the document key, so two
//!   intakes of the same content create one job; the loser gets the winner's row back
//!   (`ReturnValuesOnConditionCheckFailure=ALL_OLD`), with no second read.
//! - **Transition** names the version it read, is only allowed from the states the transition
//!   table lists, and never moves a job whose lease is live: an unleased writer (a sweep, a
//!   webhook's notice) must not end the work of a worker that is calling the vendor right now.
//!   A stale, leased or illegal move is a typed error, never a silent overwrite.
//! - **Retry** (`Failed`/`Held` → `Queued`) is its own write, conditioned on the reason being one
//!   an operator may retry ([`crate::job::reason::RETRYABLE`]), so no caller can revive a final
//!   failure by mistake.
//! - **Leases** guard side effects (vendor calls). Acquire needs the lease to be absent or expired;
//!   every later write by the holder (record attempt, complete, release) is fenced on owner *and*
//!   version, so a holder that lost its lease cannot overwrite its successor. This is the fix for
//!   the unfenced completion writes of Powertools' idempotency utility (ANCHORS.md §1).
//! - **Dedupe** claims are conditional puts where an entry past its expiry counts as absent, because
//!   DynamoDB TTL deletes late (up to days) and moto never deletes at all.

mod breaker;
mod bucket;
mod by_state;
mod dedupe;
pub mod item;
mod lease;
pub mod model_versions;
mod update;

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use tracing::instrument;

pub use bucket::{BucketSpec, Take};
pub use by_state::{state_shard, StateCursor, STATE_SHARDS};
pub use dedupe::{Claim, ClaimToken};
pub use lease::{AttemptOutcome, FenceError, Lease, LeaseError, LeaseStep, RetryDebt};

use crate::job::{Job, JobId, JobState, NewJob, Reason};
use crate::time::UnixMillis;
use item::{attr, job_from_item, n, s, Item, MalformedItem, BY_STATE_INDEX as STATE_INDEX};
use update::Expr;

/// The two tables the ledger writes, by physical name.
#[derive(Debug, Clone)]
pub struct LedgerTables {
    pub jobs: String,
    pub dedupe: String,
}

/// The ledger. Cheap to clone; build it once per container.
#[derive(Debug, Clone)]
pub struct Ledger {
    client: Client,
    tables: LedgerTables,
    /// The token buckets as this container last wrote or saw them (see [`bucket`]).
    buckets_seen: bucket::Seen,
    /// The breakers this container last read closed (see [`breaker`]).
    breakers_closed: breaker::ClosedSeen,
    /// The breakers' successes this container has not written yet (see [`breaker`]).
    breaker_successes: breaker::HeldSuccesses,
    /// The vendor model versions this container has recorded (see [`model_versions`]).
    model_versions_seen: model_versions::Seen,
}

/// A DynamoDB call that failed for a reason other than a condition check.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The request did not succeed: throttling, network, permissions, missing table. Retry the
    /// message later; if it persists, check the table name and the function's IAM policy.
    #[error("DynamoDB {operation} failed: {detail}")]
    Dynamo {
        operation: &'static str,
        detail: String,
    },
    /// A stored item could not be decoded. Not retryable: inspect the item.
    #[error("{0}")]
    Malformed(#[from] MalformedItem),
}

impl From<crate::failpoints::Injected> for LedgerError {
    fn from(injected: crate::failpoints::Injected) -> Self {
        LedgerError::Dynamo {
            operation: "failpoint",
            detail: injected.to_string(),
        }
    }
}

impl From<crate::failpoints::Injected> for TransitionError {
    fn from(injected: crate::failpoints::Injected) -> Self {
        TransitionError::Ledger(injected.into())
    }
}

impl LedgerError {
    fn dynamo<E, R>(operation: &'static str, err: &SdkError<E, R>) -> Self
    where
        E: std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        LedgerError::Dynamo {
            operation,
            detail: DisplayErrorContext(err).to_string(),
        }
    }
}

/// The result of [`Ledger::record_part`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartRecorded {
    /// This call recorded the part; the parent as it now stands.
    Recorded(Job),
    /// The part was recorded before, or the parent no longer waits for parts; the parent as it
    /// stands.
    NotRecorded(Job),
    /// The parent job does not exist.
    Missing,
}

/// The result of [`Ledger::create_job`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// This call created the job.
    New(Job),
    /// The document key already had a job; here it is, untouched.
    Existing(Job),
}

impl Created {
    pub fn job(&self) -> &Job {
        match self {
            Created::New(job) | Created::Existing(job) => job,
        }
    }
}

/// What a transition writes besides the state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub vendor_job_id: Option<String>,
    pub reason: Option<Reason>,
    /// Where the normalized result is stored (`results/<job>/<attempt>.json`).
    pub result_key: Option<String>,
    /// A short JSON summary of the key fields, for operators and the demo table.
    pub result_summary: Option<String>,
    /// The recorded attempt certainly did not reach the vendor (it refused our credentials, or
    /// rejected the request before taking it): clear it, so no one resolves it later.
    pub attempt_not_reached: bool,
    /// A reviewer's decision on a `NeedsReview` job (JSON: who, when, corrections beside the
    /// vendor's values).
    pub review: Option<String>,
    /// The job's cost at the vendor (`cost::JobCost`): the estimate when submitted, the actual
    /// when parsed.
    pub cost: Option<crate::cost::JobCost>,
    /// The result's language, script and handwriting, written with the result.
    pub text: Option<crate::language::TextSegments>,
    /// The job's second opinion: asked, or decided (`second_opinion`).
    pub second_opinion: Option<crate::second_opinion::SecondOpinion>,
}

impl Change {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn with_vendor_job_id(mut self, id: impl Into<String>) -> Self {
        self.vendor_job_id = Some(id.into());
        self
    }

    pub fn with_reason(mut self, reason: Reason) -> Self {
        self.reason = Some(reason);
        self
    }

    pub fn attempt_not_reached(mut self) -> Self {
        self.attempt_not_reached = true;
        self
    }

    pub fn with_result(mut self, key: impl Into<String>, summary: impl Into<String>) -> Self {
        self.result_key = Some(key.into());
        self.result_summary = Some(summary.into());
        self
    }

    pub fn with_review(mut self, review: impl Into<String>) -> Self {
        self.review = Some(review.into());
        self
    }

    pub fn with_cost(mut self, cost: crate::cost::JobCost) -> Self {
        self.cost = Some(cost);
        self
    }

    pub fn with_text(mut self, text: crate::language::TextSegments) -> Self {
        self.text = Some(text);
        self
    }

    pub fn with_second_opinion(mut self, opinion: crate::second_opinion::SecondOpinion) -> Self {
        self.second_opinion = Some(opinion);
        self
    }
}

/// A state change the ledger refused.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    /// The transition table does not allow it. A bug in the caller; nothing was written.
    #[error("illegal transition {from} -> {to} for job {job_id}")]
    Illegal {
        job_id: JobId,
        from: JobState,
        to: JobState,
    },
    /// `Rejected`, `Failed` and `NeedsReview` must say why.
    #[error("transition of job {job_id} to {to} needs a reason")]
    ReasonRequired { job_id: JobId, to: JobState },
    /// Someone else wrote the job since it was read. `current` is the row as it is now; decide
    /// again from it (often: the work is already done, acknowledge).
    #[error("job {} changed concurrently: wanted {from} -> {to} at version {expected_version}, found {} at version {}", current.id, current.state, current.version)]
    Stale {
        from: JobState,
        to: JobState,
        expected_version: u64,
        current: Box<Job>,
    },
    /// A worker holds a live lease on the job: it is working on it right now. Leave it; if the
    /// worker dies, its lease expires and the job can be moved then.
    #[error("job {} is leased by {} until {:?}; not moving it under a live lease", current.id, current.lease.as_ref().map_or("?", |l| l.owner.as_str()), current.lease.as_ref().map(|l| l.until))]
    Leased { current: Box<Job> },
    /// The job row does not exist.
    #[error("job {0} does not exist")]
    Missing(JobId),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// An operator's retry ([`Ledger::requeue`]) that was refused.
#[derive(Debug, thiserror::Error)]
pub enum RequeueError {
    /// Only `Failed` and `Held` jobs with a retryable reason go back; this one does not qualify.
    #[error("job {} is {}{}: only Failed or Held jobs with a retryable reason ({}) can be retried", job.id, job.state, job.reason.as_ref().map(|r| format!(" ({})", r.code)).unwrap_or_default(), crate::job::reason::RETRYABLE.join(", "))]
    NotRetryable { job: Box<Job> },
    /// The job is held because its last submission may have reached the vendor: retrying it
    /// resubmits, a possible second charge, which only an operator's explicit approval takes.
    #[error("job {} is held because its last submission may have reached the vendor: resubmitting it may be a second charge, so only `ocrbridge jobs retry --accept-duplicate-risk` retries it", job.id)]
    NeedsApproval { job: Box<Job> },
    #[error(transparent)]
    Transition(#[from] TransitionError),
}

impl Ledger {
    pub fn new(client: Client, tables: LedgerTables) -> Self {
        Ledger {
            client,
            tables,
            buckets_seen: Default::default(),
            breakers_closed: Default::default(),
            breaker_successes: Default::default(),
            model_versions_seen: Default::default(),
        }
    }

    pub fn tables(&self) -> &LedgerTables {
        &self.tables
    }

    /// Creates the job for a document, or returns the job that already holds its key.
    #[instrument(skip_all, fields(job_id = %new.key.job_id()))]
    pub async fn create_job(&self, new: &NewJob, now: UnixMillis) -> Result<Created, LedgerError> {
        self.put_new_job(new_job_item(new, now)).await
    }

    /// Creates the job of a document split into parts (`parts`): a new job that also records the
    /// plan, and an empty map for its parts' results. Returns the job already there otherwise.
    #[instrument(skip_all, fields(job_id = %new.key.job_id(), parts = plan.count()))]
    pub async fn create_split_job(
        &self,
        new: &NewJob,
        plan: &crate::parts::Plan,
        now: UnixMillis,
    ) -> Result<Created, LedgerError> {
        let mut item = new_job_item(new, now);
        item.insert(attr::PART_COUNT.to_owned(), n(u64::from(plan.count())));
        item.insert(attr::PART_PAGES.to_owned(), n(u64::from(plan.per_part)));
        item.insert(
            attr::PART_RESULTS.to_owned(),
            AttributeValue::M(HashMap::new()),
        );
        self.put_new_job(item).await
    }

    /// Creates part `index` of `parent` (`parts`): the same profile, its own pages, the part's
    /// copy as what the vendor reads. Its id is a function of the parent's and the index, so
    /// creating it again returns the one already there.
    #[instrument(skip_all, fields(job_id = %parent.id, part = index))]
    pub async fn create_part(
        &self,
        parent: &Job,
        plan: &crate::parts::Plan,
        index: u32,
        copy: crate::job::PreparedCopy,
        prep_compute: Option<crate::cost::Compute>,
        now: UnixMillis,
    ) -> Result<Created, LedgerError> {
        let (first_page, pages) = plan.part(index);
        let new = NewJob {
            prep_compute,
            ..derived_job(
                parent,
                crate::parts::part_key(&parent.id, index),
                crate::job::Inspection {
                    pages: Some(pages),
                    ..parent.inspection.clone()
                },
                Some(copy),
            )?
        };
        let mut item = new_job_item(&new, now);
        item.insert(attr::PART_OF.to_owned(), s(parent.id.as_str()));
        item.insert(attr::PART_INDEX.to_owned(), n(u64::from(index)));
        item.insert(attr::PART_COUNT.to_owned(), n(u64::from(plan.count())));
        item.insert(attr::PART_FIRST_PAGE.to_owned(), n(u64::from(first_page)));
        self.put_new_job(item).await
    }

    /// Records part `index`'s parsed result on `parent`, while the parent is `Received` (its
    /// intake queued the parts and has not recorded that yet: a part may be parsed first) or
    /// waits in `InParts`, and only if no result is recorded for that part yet: the first parse
    /// of a part to get here names the result the merge reads, and a repeated one changes
    /// nothing.
    #[instrument(skip_all, fields(job_id = %parent, part = index))]
    pub async fn record_part(
        &self,
        parent: &JobId,
        index: u32,
        result_key: &str,
    ) -> Result<PartRecorded, LedgerError> {
        let entry = index.to_string();
        let mut expr = Expr::new();
        expr.set_entry(attr::PART_RESULTS, &entry, s(result_key))
            .increment(attr::VERSION, 1)
            .require_in(
                attr::STATE,
                vec![
                    s(JobState::Received.as_str()),
                    s(JobState::InParts.as_str()),
                ],
            )
            .require_no_entry(attr::PART_RESULTS, &entry);
        Ok(match self.update(parent, &expr).await? {
            Updated::Ok(parent) => PartRecorded::Recorded(parent),
            Updated::ConditionFailed(Some(parent)) => PartRecorded::NotRecorded(parent),
            Updated::ConditionFailed(None) => PartRecorded::Missing,
        })
    }

    /// Creates `parent`'s second opinion's child (`second_opinion`): the same document and
    /// profile, pinned to `vendor`, or returns the child already asked for. Its id is a
    /// function of the parent's, so a repeated ask finds it.
    #[instrument(skip_all, fields(job_id = %parent.id, vendor))]
    pub async fn create_second_opinion(
        &self,
        parent: &Job,
        vendor: &str,
        now: UnixMillis,
    ) -> Result<Created, LedgerError> {
        let mut item = new_job_item(
            &derived_job(
                parent,
                crate::second_opinion::child_key(&parent.id),
                parent.inspection.clone(),
                // The second vendor reads what the first read.
                parent.prepared.clone(),
            )?,
            now,
        );
        item.insert(attr::VENDOR.to_owned(), s(vendor));
        item.insert(attr::SECOND_OPINION_OF.to_owned(), s(parent.id.as_str()));
        self.put_new_job(item).await
    }

    /// Records a parent's decided second opinion (`second_opinion`): agreed, it completes;
    /// disagreed, it stays in review, the reason replaced by both readings. Guarded by the
    /// version read, like a transition, and only from `NeedsReview`.
    #[instrument(skip_all, fields(job_id = %parent.id, outcome = opinion.outcome.as_str()))]
    pub async fn settle_second_opinion(
        &self,
        parent: &Job,
        opinion: crate::second_opinion::SecondOpinion,
        reason: Reason,
        now: UnixMillis,
    ) -> Result<Job, TransitionError> {
        use crate::second_opinion::Outcome;
        if opinion.outcome == Outcome::Agreed {
            return self
                .transition(
                    parent,
                    JobState::Completed,
                    Change::none()
                        .with_second_opinion(opinion)
                        .with_reason(reason),
                    now,
                )
                .await;
        }
        let mut expr = Expr::new();
        expr.set(attr::SECOND_OPINION, s(opinion.to_json()))
            .set(attr::REASON_CODE, s(&reason.code))
            .set(attr::REASON_MESSAGE, s(&reason.message))
            .increment(attr::VERSION, 1)
            .require_eq(attr::VERSION, n(parent.version))
            .require_eq(attr::STATE, s(JobState::NeedsReview.as_str()));
        self.unleased_update(parent, JobState::NeedsReview, &expr, now)
            .await
    }

    /// Puts a new job's item unless its id exists; returns the job either way.
    async fn put_new_job(&self, item: Item) -> Result<Created, LedgerError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.jobs)
            .set_item(Some(item.clone()))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", attr::JOB_ID)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Created::New(job_from_item(&item)?)),
            Err(err) => match conflicting_item(&err, |e| match e {
                aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => Some(c.item()),
                _ => None,
            }) {
                Some(Some(existing)) => Ok(Created::Existing(job_from_item(existing)?)),
                Some(None) => Err(LedgerError::Dynamo {
                    operation: "PutItem",
                    detail: "condition failed but no item was returned; the endpoint ignores ReturnValuesOnConditionCheckFailure".into(),
                }),
                None => Err(LedgerError::dynamo("PutItem", &err)),
            },
        }
    }
    /// Reads a job with a strongly consistent read.
    #[instrument(skip_all, fields(job_id = %id))]
    pub async fn get_job(&self, id: &JobId) -> Result<Option<Job>, LedgerError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.jobs)
            .key(attr::JOB_ID, s(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| LedgerError::dynamo("GetItem", &e))?;
        Ok(out.item().map(job_from_item).transpose()?)
    }

    /// Moves `job` (as read) to `to`, guarded by the version read and the allowed source states.
    /// Any lease on the job ends with the state it guarded.
    #[instrument(skip_all, fields(job_id = %job.id, from = %job.state, to = %to))]
    pub async fn transition(
        &self,
        job: &Job,
        to: JobState,
        change: Change,
        now: UnixMillis,
    ) -> Result<Job, TransitionError> {
        check_transition(&job.id, job.state, to, &change)?;
        if job.state.is_retry(to) {
            // Retries carry conditions of their own: `requeue`.
            return Err(TransitionError::Illegal {
                job_id: job.id.clone(),
                from: job.state,
                to,
            });
        }
        let mut expr = Expr::new();
        apply_state_change(&mut expr, &job.id, to, &change, now);
        expr.require_eq(attr::VERSION, n(job.version))
            .require_in(
                attr::STATE,
                JobState::sources_of(to)
                    .into_iter()
                    .map(|state| s(state.as_str()))
                    .collect(),
            )
            .require_absent_or_at_most(attr::LEASE_UNTIL, n(now.0));
        if job.state.is_adoption(to) {
            // An adoption never replaces the vendor job a job has.
            expr.require_absent(attr::VENDOR_JOB_ID);
        }
        self.unleased_update(job, to, &expr, now).await
    }

    /// Runs an unleased, version-guarded write and names why it failed.
    async fn unleased_update(
        &self,
        job: &Job,
        to: JobState,
        expr: &Expr,
        now: UnixMillis,
    ) -> Result<Job, TransitionError> {
        match self.update(&job.id, expr).await? {
            Updated::Ok(new) => Ok(new),
            Updated::ConditionFailed(Some(current))
                if current.version == job.version
                    && current.lease.as_ref().is_some_and(|l| l.is_live(now)) =>
            {
                Err(TransitionError::Leased {
                    current: Box::new(current),
                })
            }
            Updated::ConditionFailed(Some(current)) => Err(TransitionError::Stale {
                from: job.state,
                to,
                expected_version: job.version,
                current: Box::new(current),
            }),
            Updated::ConditionFailed(None) => Err(TransitionError::Missing(job.id.clone())),
        }
    }

    /// An operator's retry: a `Failed` or `Held` job with a retryable reason goes back to
    /// `Queued`, with a fresh submission window. It keeps its vendor job (submit adopts it
    /// instead of submitting again) and its recorded attempt (submit resolves it before sending
    /// anything), so a retry never pays twice unawares. A job held because its submission's
    /// outcome is unknown is retried only with `accept_duplicate_risk` — an operator's
    /// explicit approval of the resubmission that may be a second charge; a re-upload or a
    /// redrive never approves it, and the condition holds them to that. Retrying a result the
    /// vendor no longer has drops the vendor job (kept as an orphan: it was billed) so that
    /// submit buys the document again.
    ///
    /// The caller then sends the submit message; if that send is lost, reconcile finds the
    /// `Queued` job and sends it.
    #[instrument(skip_all, fields(job_id = %job.id, from = %job.state))]
    pub async fn requeue(
        &self,
        job: &Job,
        accept_duplicate_risk: bool,
        now: UnixMillis,
    ) -> Result<Job, RequeueError> {
        let Some(reason) = job.retryable_reason() else {
            return Err(RequeueError::NotRetryable {
                job: Box::new(job.clone()),
            });
        };
        let needs_approval = crate::job::reason::needs_approval(&reason.code);
        if needs_approval && !accept_duplicate_risk {
            return Err(RequeueError::NeedsApproval {
                job: Box::new(job.clone()),
            });
        }
        let mut expr = Expr::new();
        apply_state_change(&mut expr, &job.id, JobState::Queued, &Change::none(), now);
        expr.remove(attr::REASON_CODE)
            .remove(attr::REASON_MESSAGE)
            .remove(attr::VENDOR_FAILURES)
            .remove(attr::RETRY_OWED);
        if needs_approval {
            expr.set(attr::RESUBMIT_APPROVED, AttributeValue::Bool(true));
        }
        if reason.code == crate::job::reason::RESULT_UNAVAILABLE {
            expr.remove(attr::VENDOR_JOB_ID)
                .remove(attr::ATTEMPT_ID)
                .remove(attr::ATTEMPTED_AT);
            if let Some(lost) = &job.vendor_job_id {
                expr.add_to_set(attr::ORPHAN_VENDOR_JOBS, lost);
            }
        }
        expr.require_eq(attr::VERSION, n(job.version))
            .require_in(
                attr::STATE,
                vec![s(JobState::Failed.as_str()), s(JobState::Held.as_str())],
            )
            .require_in(
                attr::REASON_CODE,
                crate::job::reason::RETRYABLE
                    .iter()
                    // Unapproved, a reason that needs approval does not qualify, whatever was
                    // read: the write itself refuses it.
                    .filter(|c| accept_duplicate_risk || !crate::job::reason::needs_approval(c))
                    .map(|c| s(*c))
                    .collect(),
            )
            .require_absent_or_at_most(attr::LEASE_UNTIL, n(now.0));
        Ok(self
            .unleased_update(job, JobState::Queued, &expr, now)
            .await?)
    }

    /// Records a vendor job for this document that is not the one the job follows: an answer
    /// that came back after another worker took over, or the completion of a second submission.
    /// A set add, so it needs no guard and may be repeated.
    #[instrument(skip_all, fields(job_id = %id, vendor_job_id))]
    pub async fn record_orphan(&self, id: &JobId, vendor_job_id: &str) -> Result<(), LedgerError> {
        self.client
            .update_item()
            .table_name(&self.tables.jobs)
            .key(attr::JOB_ID, s(id.as_str()))
            .update_expression("ADD #o :v")
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#o", attr::ORPHAN_VENDOR_JOBS)
            .expression_attribute_names("#id", attr::JOB_ID)
            .expression_attribute_values(":v", AttributeValue::Ss(vec![vendor_job_id.to_owned()]))
            .send()
            .await
            .map_err(|e| LedgerError::dynamo("UpdateItem", &e))?;
        Ok(())
    }

    /// Jobs in `state` that entered it before `before`, oldest first, through the
    /// `by-state-shard` index (never a scan; every shard merged). Returns a page and the
    /// cursor to continue from.
    #[instrument(skip_all, fields(state = %state))]
    pub async fn jobs_in_state_before(
        &self,
        state: JobState,
        before: UnixMillis,
        limit: i32,
        start: Option<StateCursor>,
    ) -> Result<(Vec<Job>, Option<StateCursor>), LedgerError> {
        let (items, next) = self
            .walk_state(state, Some(before.0), limit, start, false)
            .await?;
        let jobs = items
            .iter()
            .map(job_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((jobs, next))
    }

    /// How many jobs are in `state` (every shard of the index, counted page by page).
    #[instrument(skip_all, fields(state = %state))]
    pub async fn count_in_state(&self, state: JobState) -> Result<u64, LedgerError> {
        let mut total = 0u64;
        for shard in 0..STATE_SHARDS {
            let mut start = None;
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(&self.tables.jobs)
                    .index_name(STATE_INDEX)
                    .key_condition_expression("#s = :s")
                    .expression_attribute_names("#s", attr::STATE_SHARD)
                    .expression_attribute_values(":s", s(by_state::shard_key(state, shard)))
                    .select(aws_sdk_dynamodb::types::Select::Count)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| LedgerError::dynamo("Query", &e))?;
                total += out.count().max(0) as u64;
                match out.last_evaluated_key() {
                    Some(key) => start = Some(key.clone()),
                    None => break,
                }
            }
        }
        Ok(total)
    }

    /// The jobs that entered `state` most recently, newest first, up to `limit`.
    #[instrument(skip_all, fields(state = %state))]
    pub async fn recent_in_state(
        &self,
        state: JobState,
        limit: i32,
    ) -> Result<Vec<Job>, LedgerError> {
        let (items, _) = self.walk_state(state, None, limit, None, true).await?;
        items.iter().map(|i| Ok(job_from_item(i)?)).collect()
    }

    /// The job an upload became: the one whose source it is, or that it was linked to as a
    /// duplicate ([`Self::link_source`]). A scan of the whole table, page by page: for the local
    /// stack's demo and an operator's one-off question about one object, never a hot path.
    /// (Intake can also tag the upload with its job id, `TAG_SOURCE_OBJECTS`; that costs an S3
    /// request per document, so it is off by default and this lookup does not rely on it.)
    #[instrument(skip_all, fields(bucket = bucket, key = key))]
    pub async fn job_for_upload(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<JobId>, LedgerError> {
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.tables.jobs)
                .filter_expression("(#b = :b AND #k = :k) OR contains(#also, :src)")
                .expression_attribute_names("#b", attr::SRC_BUCKET)
                .expression_attribute_names("#k", attr::SRC_KEY)
                .expression_attribute_names("#also", attr::ALSO_UPLOADED_AS)
                .expression_attribute_values(":b", s(bucket))
                .expression_attribute_values(":k", s(key))
                .expression_attribute_values(":src", s(upload_uri(bucket, key)))
                .projection_expression("#id")
                .expression_attribute_names("#id", attr::JOB_ID)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| LedgerError::dynamo("Scan", &e))?;
            if let Some(id) = out
                .items()
                .iter()
                .find_map(|item| item.get(attr::JOB_ID)?.as_s().ok())
            {
                return JobId::parse(id)
                    .map(Some)
                    .map_err(|e| MalformedItem(e.to_string()).into());
            }
            match out.last_evaluated_key() {
                Some(key) => start = Some(key.clone()),
                None => return Ok(None),
            }
        }
    }

    /// Records another S3 object with this job's content (a suppressed duplicate). A set add:
    /// idempotent and commutative, so it needs no guard and does not bump the version.
    #[instrument(skip_all, fields(job_id = %id))]
    pub async fn link_source(
        &self,
        id: &JobId,
        bucket: &str,
        key: &str,
    ) -> Result<(), LedgerError> {
        self.client
            .update_item()
            .table_name(&self.tables.jobs)
            .key(attr::JOB_ID, s(id.as_str()))
            .update_expression("ADD #also :src")
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#also", attr::ALSO_UPLOADED_AS)
            .expression_attribute_names("#id", attr::JOB_ID)
            .expression_attribute_values(":src", AttributeValue::Ss(vec![upload_uri(bucket, key)]))
            .send()
            .await
            .map_err(|e| LedgerError::dynamo("UpdateItem", &e))?;
        Ok(())
    }

    /// One guarded `UpdateItem` on a job; returns the new row, or the current row on a failed
    /// condition (`None` if the job does not exist).
    async fn update(&self, id: &JobId, expr: &Expr) -> Result<Updated, LedgerError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.jobs)
            .key(attr::JOB_ID, s(id.as_str()))
            .set_update_expression(expr.update_expression())
            // A missing row must fail the condition rather than be created by the update.
            .condition_expression(match expr.condition_expression() {
                Some(cond) => format!("attribute_exists(#job_id) AND {cond}"),
                None => "attribute_exists(#job_id)".to_owned(),
            })
            .set_expression_attribute_names(Some({
                let mut names = expr.names().unwrap_or_default();
                names.insert("#job_id".into(), attr::JOB_ID.into());
                names
            }))
            .set_expression_attribute_values(expr.values())
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => match out.attributes() {
                Some(attributes) => Ok(Updated::Ok(job_from_item(attributes)?)),
                None => Err(LedgerError::Dynamo {
                    operation: "UpdateItem",
                    detail: "no attributes returned despite ReturnValues=ALL_NEW".into(),
                }),
            },
            Err(err) => match conflicting_item(&err, |e| {
                match e {
                aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => Some(c.item()),
                _ => None,
            }
            }) {
                Some(Some(current)) => Ok(Updated::ConditionFailed(Some(job_from_item(current)?))),
                Some(None) => Ok(Updated::ConditionFailed(None)),
                None => Err(LedgerError::dynamo("UpdateItem", &err)),
            },
        }
    }
}

enum Updated {
    Ok(Job),
    ConditionFailed(Option<Job>),
}

/// For a conditional-check failure, the item DynamoDB returned with it (`Some(None)` when the item
/// does not exist); `None` for any other error.
fn conflicting_item<'a, E, R>(
    err: &'a SdkError<E, R>,
    pick: impl Fn(&'a E) -> Option<Option<&'a Item>>,
) -> Option<Option<&'a Item>> {
    err.as_service_error().and_then(pick)
}

fn check_transition(
    job_id: &JobId,
    from: JobState,
    to: JobState,
    change: &Change,
) -> Result<(), TransitionError> {
    if !from.can_transition_to(to) {
        return Err(TransitionError::Illegal {
            job_id: job_id.clone(),
            from,
            to,
        });
    }
    let needs_reason = matches!(
        to,
        JobState::Rejected | JobState::Failed | JobState::NeedsReview | JobState::Held
    );
    if needs_reason && change.reason.is_none() {
        return Err(TransitionError::ReasonRequired {
            job_id: job_id.clone(),
            to,
        });
    }
    Ok(())
}

/// The writes common to every state change: the state, its start time, the version bump, the
/// change's fields, and the end of any lease. Entering `Queued` starts the submission window;
/// entering `Submitted` ends the submission's bookkeeping (failures, owed retries, approval).
/// The history entry for entering `to` at `now`.
pub(crate) fn history_entry(
    to: JobState,
    reason: Option<&Reason>,
    now: UnixMillis,
) -> AttributeValue {
    s(crate::job::StateChange {
        state: to,
        at: now,
        reason: reason.map(|r| r.code.clone()),
    }
    .encode())
}

/// A job made from another for the same document (a part, a second opinion): its profile,
/// content, source, benchmark run and channel, under its own `key`.
fn derived_job(
    parent: &Job,
    key: crate::job::DocumentKey,
    inspection: crate::job::Inspection,
    prepared: Option<crate::job::PreparedCopy>,
) -> Result<NewJob, LedgerError> {
    let content = crate::job::ContentHash::from_hex(&parent.content_sha256).ok_or_else(|| {
        LedgerError::Malformed(MalformedItem(format!(
            "job {} has no content hash",
            parent.id
        )))
    })?;
    Ok(NewJob {
        key,
        profile: parent.profile.clone(),
        content,
        source: parent.source.clone(),
        inspection,
        benchmark_run: parent.benchmark_run.clone(),
        channel: parent.channel.clone(),
        prepared,
        prep_compute: None,
    })
}

/// A new job's item, in `Received`.
fn new_job_item(new: &NewJob, now: UnixMillis) -> Item {
    let id = new.key.job_id();
    let mut item: Item = HashMap::from([
        (attr::JOB_ID.to_owned(), s(id.as_str())),
        (attr::STATE.to_owned(), s(JobState::Received.as_str())),
        (
            attr::STATE_SHARD.to_owned(),
            s(state_shard(&id, JobState::Received)),
        ),
        (attr::STATE_SINCE.to_owned(), n(now.0)),
        (attr::VERSION.to_owned(), n(1)),
        (attr::PROFILE.to_owned(), s(new.profile.as_str())),
        (attr::CONTENT_SHA256.to_owned(), s(new.content.to_hex())),
        (attr::SRC_BUCKET.to_owned(), s(&new.source.bucket)),
        (attr::SRC_KEY.to_owned(), s(&new.source.key)),
        (attr::CREATED_AT.to_owned(), n(now.0)),
        (
            attr::HISTORY.to_owned(),
            AttributeValue::L(vec![history_entry(JobState::Received, None, now)]),
        ),
    ]);
    if let Some(version) = &new.source.version_id {
        item.insert(attr::SRC_VERSION.to_owned(), s(version));
    }
    if let Some(channel) = &new.channel {
        item.insert(attr::CHANNEL.to_owned(), s(channel));
    }
    // The trace the job is created in is the document's (crate::trace_context).
    if let Some(trace) = crate::trace_context::current() {
        item.insert(attr::TRACE_HEADER.to_owned(), s(trace));
    }
    if let Some(run) = &new.benchmark_run {
        item.insert(attr::BENCHMARK_RUN.to_owned(), s(run.as_str()));
    }
    item::inspection_to_item(&new.inspection, &mut item);
    if let Some(copy) = &new.prepared {
        item.insert(attr::PREPARED_BUCKET.to_owned(), s(&copy.bucket));
        item.insert(attr::PREPARED_KEY.to_owned(), s(&copy.key));
        item.insert(
            attr::PREPARED_ACTIONS.to_owned(),
            AttributeValue::L(copy.actions.iter().map(s).collect()),
        );
        if let Some(map) = &copy.pages {
            item.insert(attr::PREPARED_PAGES.to_owned(), s(map.to_record()));
        }
    }
    if let Some(compute) = &new.prep_compute {
        item.insert(attr::PREP_COMPUTE.to_owned(), s(compute.to_json()));
    }
    item
}

/// What entering `state` writes besides the state itself: by a transition, and by a lease that
/// takes a job through `state` in its write (`lease::LeaseStep::passed_from`).
pub(super) fn on_entering(expr: &mut Expr, state: JobState, now: UnixMillis) {
    match state {
        JobState::Queued => {
            expr.set(attr::QUEUED_AT, n(now.0));
        }
        JobState::Submitted => {
            // The vendor job is known: no attempt is unresolved any more.
            expr.remove(attr::VENDOR_FAILURES)
                .remove(attr::RETRY_OWED)
                .remove(attr::RESUBMIT_APPROVED)
                .remove(attr::ATTEMPT_ID)
                .remove(attr::ATTEMPTED_AT);
        }
        _ => {}
    }
}

/// How a linked upload is named in a job's `also_uploaded_as` ([`Ledger::link_source`]), and
/// looked up by [`Ledger::job_for_upload`].
fn upload_uri(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

fn apply_state_change(expr: &mut Expr, id: &JobId, to: JobState, change: &Change, now: UnixMillis) {
    expr.set(attr::STATE, s(to.as_str()))
        .set(attr::STATE_SINCE, n(now.0))
        .set(attr::STATE_SHARD, s(state_shard(id, to)))
        .append(
            attr::HISTORY,
            history_entry(to, change.reason.as_ref(), now),
        )
        .increment(attr::VERSION, 1)
        .remove(attr::LEASE_OWNER)
        .remove(attr::LEASE_UNTIL);
    if change.attempt_not_reached && to != JobState::Submitted {
        expr.remove(attr::ATTEMPT_ID).remove(attr::ATTEMPTED_AT);
    }
    on_entering(expr, to, now);
    if let Some(id) = &change.vendor_job_id {
        expr.set(attr::VENDOR_JOB_ID, s(id));
    }
    if let Some(reason) = &change.reason {
        expr.set(attr::REASON_CODE, s(&reason.code))
            .set(attr::REASON_MESSAGE, s(&reason.message));
    }
    if let Some(key) = &change.result_key {
        expr.set(attr::RESULT_KEY, s(key));
    }
    if let Some(summary) = &change.result_summary {
        expr.set(attr::RESULT_SUMMARY, s(summary));
    }
    if let Some(review) = &change.review {
        expr.set(attr::REVIEW, s(review));
    }
    if let Some(cost) = &change.cost {
        expr.set(attr::COST, s(cost.to_json()));
    }
    if let Some(opinion) = &change.second_opinion {
        expr.set(attr::SECOND_OPINION, s(opinion.to_json()));
    }
    if let Some(text) = &change.text {
        expr.set(attr::HANDWRITING, s(text.handwriting.as_str()));
        // A result read again (a replay) replaces the first reading whole.
        match &text.language {
            Some(language) => expr.set(attr::LANGUAGE, s(language)),
            None => expr.remove(attr::LANGUAGE),
        };
        match &text.script {
            Some(script) => expr.set(attr::SCRIPT, s(script)),
            None => expr.remove(attr::SCRIPT),
        };
    }
}
