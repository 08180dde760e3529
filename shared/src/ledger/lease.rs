//! Leases on side-effecting steps, fenced by owner and version.
//!
//! A lease is how one worker, out of several that received the same message, gets to call the
//! vendor. Its life:
//!
//! 1. [`Ledger::acquire_lease`]: only when nobody holds it or the holder's `lease_until` has passed.
//!    `lease_until` comes from the invocation deadline ([`crate::time::lease_until_from_deadline`]),
//!    so a crashed or timed-out worker frees the job as soon as it can no longer be running.
//! 2. [`Ledger::record_attempt`] *before* the side effect (or both at once,
//!    [`Ledger::acquire_lease_and_record_attempt`]). If the worker dies after this write, the
//!    next owner sees [`Lease::inherited_attempt`] and must ask the vendor (by our idempotency key)
//!    whether the document arrived, instead of paying for it twice. An acquire never overwrites
//!    an attempt that is still unresolved: its time is what the resolution is measured from (how
//!    long the vendor has remembered the key, how long a completion has been awaited), and a
//!    holder that goes on to send records its own attempt just before the call.
//! 3. [`Ledger::complete_lease`] (advance the state) or [`Ledger::release_lease`] (give the job
//!    back, saying whether the attempt may have reached the vendor and what the next attempt owes
//!    the retry budget: [`RetryDebt`]).
//!
//! Steps 2 and 3 are conditional on `lease_owner` *and* `version`: after a takeover both have
//! changed, so a slow former owner gets [`FenceError::Lost`] and writes nothing.

use tracing::instrument;

use super::item::{attr, n, s};
use super::update::Expr;
use super::{
    apply_state_change, check_transition, Change, Ledger, LedgerError, TransitionError, Updated,
};
use crate::job::{Attempt, Job, JobId, JobState};
use crate::time::UnixMillis;

/// A step that needs a lease, and the states it moves through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseStep {
    /// `Queued → Submitting`, held while calling the vendor's submit.
    Submit,
    /// `ResultReady → Parsing`, held while fetching, archiving and normalizing the result.
    Parse,
}

impl LeaseStep {
    /// The state the job is in while the lease is (or was) held.
    pub fn held_in(self) -> JobState {
        match self {
            LeaseStep::Submit => JobState::Submitting,
            LeaseStep::Parse => JobState::Parsing,
        }
    }

    /// The state from which acquiring the lease enters [`Self::held_in`].
    pub fn entered_from(self) -> JobState {
        match self {
            LeaseStep::Submit => JobState::Queued,
            LeaseStep::Parse => JobState::ResultReady,
        }
    }

    /// The state before [`Self::entered_from`] that a lease may carry a job through it from, in
    /// the same write, when the caller knows the step in between was taken: a submit message
    /// exists only once intake accepted and sent it (`Received`, its mark as `Queued` not
    /// written yet), and a success notice means the result is ready (`Submitted`).
    pub fn passed_from(self) -> JobState {
        match self {
            LeaseStep::Submit => JobState::Received,
            LeaseStep::Parse => JobState::Submitted,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LeaseStep::Submit => "submit",
            LeaseStep::Parse => "parse",
        }
    }
}

/// A lease this worker holds. Every fenced write returns the next `Lease` (the version moves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job_id: JobId,
    pub step: LeaseStep,
    pub owner: String,
    pub until: UnixMillis,
    /// The job's version after our last write; the fence for the next one.
    pub version: u64,
    /// An attempt recorded by an earlier holder that never completed or released: the side effect
    /// may have happened. Reconcile with the vendor before repeating it. It stays recorded on the
    /// job (our own attempt was not written over it) until resolved.
    pub inherited_attempt: Option<Attempt>,
    /// Whether our own attempt is recorded: by the acquire when nothing was inherited, or later
    /// by [`Ledger::record_attempt`] / [`Ledger::record_risky_resubmit`].
    pub attempt_recorded: bool,
    /// The job as the acquiring write left it: what the holder decides from.
    pub job: Box<Job>,
}

/// What a released lease leaves for the next attempt to pay the retry budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDebt {
    /// Nothing was decided about retries (e.g. the budget itself said wait): leave it.
    Unchanged,
    /// The vendor call failed: the next attempt is a retry that owes `tokens`, and the failure
    /// streak (the backoff step) grows by one.
    Owe { tokens: u32 },
    /// Whatever was owed has been spent; the next attempt owes nothing.
    Settled,
}

/// Whether a released attempt could have reached the vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The vendor certainly did not take the request (connection refused, 429, 5xx before
    /// acceptance). The recorded attempt is cleared; the next holder submits directly.
    NotReached,
    /// The request may have been accepted (timeout after sending). The attempt stays recorded so
    /// the next holder reconciles first.
    MayHaveReached,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The job has not reached the step yet (e.g. still `Received`). Retry later.
    #[error("job {} is {}, not yet ready for the {} step", current.id, current.state, step.as_str())]
    NotYet { step: LeaseStep, current: Box<Job> },
    /// The step is done (or the job ended). Acknowledge the message and do nothing.
    #[error("job {} is already {}, past the {} step", current.id, current.state, step.as_str())]
    AlreadyPast { step: LeaseStep, current: Box<Job> },
    /// Another worker holds a live lease. Retry after `until`.
    #[error("job {} is leased by {owner} until {until:?}", current.id)]
    Held {
        owner: String,
        until: UnixMillis,
        current: Box<Job>,
    },
    /// `until` is not in the future: the invocation is already out of time.
    #[error("lease expiry {until:?} is not after now ({now:?}); the invocation has no time left")]
    NoTimeLeft { until: UnixMillis, now: UnixMillis },
    /// The job kept changing under us across several tries. Retry the message later.
    #[error("job {} kept changing while acquiring its lease", current.id)]
    Contended { current: Box<Job> },
    #[error("job {0} does not exist")]
    Missing(JobId),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// Our lease is gone: it expired and was taken over, or the job moved on. Write nothing more
    /// and drop the work; the current owner is responsible now.
    #[error("lease on job {job_id} by {owner} was lost")]
    Lost {
        job_id: JobId,
        owner: String,
        current: Option<Box<Job>>,
    },
    /// Our lease ran out locally; do not start a side effect we might not finish in time.
    #[error("lease on job {job_id} expired at {until:?}")]
    Expired { job_id: JobId, until: UnixMillis },
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<crate::failpoints::Injected> for LeaseError {
    fn from(injected: crate::failpoints::Injected) -> Self {
        LeaseError::Ledger(injected.into())
    }
}

impl From<crate::failpoints::Injected> for FenceError {
    fn from(injected: crate::failpoints::Injected) -> Self {
        FenceError::Ledger(injected.into())
    }
}

/// How often acquire re-reads (from the condition failure, not a new read) before giving up.
const ACQUIRE_TRIES: usize = 3;

impl Ledger {
    /// Takes the lease for `step` on `job`, moving it into [`LeaseStep::held_in`] if it was in
    /// [`LeaseStep::entered_from`].
    #[instrument(skip_all, fields(job_id = %job.id, step = step.as_str(), owner = owner))]
    pub async fn acquire_lease(
        &self,
        job: &Job,
        step: LeaseStep,
        owner: &str,
        until: UnixMillis,
        now: UnixMillis,
    ) -> Result<Lease, LeaseError> {
        self.acquire(job, step, owner, until, None, now, false)
            .await
    }

    /// [`Self::acquire_lease`] and [`Self::record_attempt`] in one write, for a holder that goes
    /// on to the side effect unless something stops it first (it then releases with
    /// [`AttemptOutcome::NotReached`], which clears the attempt). A crash in between leaves an
    /// attempt that never happened; the next holder asks the vendor and finds nothing — a lookup,
    /// never a second charge. [`Lease::inherited_attempt`] is the attempt recorded *before* ours.
    #[instrument(skip_all, fields(job_id = %job.id, step = step.as_str(), owner = owner, attempt_id = attempt_id))]
    pub async fn acquire_lease_and_record_attempt(
        &self,
        job: &Job,
        step: LeaseStep,
        owner: &str,
        until: UnixMillis,
        attempt_id: &str,
        now: UnixMillis,
    ) -> Result<Lease, LeaseError> {
        self.acquire(job, step, owner, until, Some(attempt_id), now, false)
            .await
    }

    /// Submit's lease for a job it has a message for: [`Self::acquire_lease_and_record_attempt`],
    /// and a job still `Received` is taken through `Queued` in the same write (its history and
    /// `queued_at` show both at `now`). Intake sends the submit message first and marks the job
    /// `Queued` after, so a quick consumer often met it `Received` and put its message back for
    /// 5 s: the happy path's slowest step (#33). The message proves the document was accepted:
    /// intake sends none for a rejected one. Intake's late mark then finds the job moved on and
    /// takes it as it is.
    #[instrument(skip_all, fields(job_id = %job.id, owner = owner, attempt_id = attempt_id))]
    pub async fn acquire_submit_lease_on_message(
        &self,
        job: &Job,
        owner: &str,
        until: UnixMillis,
        attempt_id: &str,
        now: UnixMillis,
    ) -> Result<Lease, LeaseError> {
        self.acquire(
            job,
            LeaseStep::Submit,
            owner,
            until,
            Some(attempt_id),
            now,
            true,
        )
        .await
    }

    /// The vendor said a `Submitted` job succeeded, and this worker parses it now: `Submitted →
    /// ResultReady → Parsing` in one write, which takes the parse lease and records the attempt
    /// ([`Self::acquire_lease_and_record_attempt`]), its history showing both states at `now`.
    /// One write where the mark and the lease were two (#33); nothing can happen between them
    /// that a crash after this write would not also leave (a `Parsing` job whose lease lapses,
    /// which the next notice or reconcile takes up). A job already `ResultReady` (reconcile
    /// marked it) or `Parsing` is leased as usual.
    #[instrument(skip_all, fields(job_id = %job.id, owner = owner, attempt_id = attempt_id))]
    pub async fn acquire_parse_lease_on_success(
        &self,
        job: &Job,
        owner: &str,
        until: UnixMillis,
        attempt_id: &str,
        now: UnixMillis,
    ) -> Result<Lease, LeaseError> {
        self.acquire(
            job,
            LeaseStep::Parse,
            owner,
            until,
            Some(attempt_id),
            now,
            true,
        )
        .await
    }

    /// `pass_through`: the caller knows the step before [`LeaseStep::entered_from`] was taken,
    /// so a job still in [`LeaseStep::passed_from`] may pass through it in the same write.
    #[allow(clippy::too_many_arguments)]
    async fn acquire(
        &self,
        job: &Job,
        step: LeaseStep,
        owner: &str,
        until: UnixMillis,
        attempt_id: Option<&str>,
        now: UnixMillis,
        pass_through: bool,
    ) -> Result<Lease, LeaseError> {
        if until <= now {
            return Err(LeaseError::NoTimeLeft { until, now });
        }
        let mut seen = job.clone();
        for _ in 0..ACQUIRE_TRIES {
            let passing = pass_through && seen.state == step.passed_from();
            // JobState is declared in pipeline order, so `<` means "not reached yet".
            if seen.state < step.entered_from() && !passing {
                return Err(LeaseError::NotYet {
                    step,
                    current: Box::new(seen),
                });
            }
            if seen.state != step.entered_from() && seen.state != step.held_in() && !passing {
                return Err(LeaseError::AlreadyPast {
                    step,
                    current: Box::new(seen),
                });
            }
            if let Some(lease) = seen.lease.as_ref().filter(|l| l.is_live(now)) {
                return Err(LeaseError::Held {
                    owner: lease.owner.clone(),
                    until: lease.until,
                    current: Box::new(seen.clone()),
                });
            }

            let mut expr = Expr::new();
            expr.set(attr::LEASE_OWNER, s(owner))
                .set(attr::LEASE_UNTIL, n(until.0))
                .increment(attr::VERSION, 1)
                .require_eq(attr::VERSION, n(seen.version))
                // Redundant with the version guard today, but it states the invariant where it is
                // enforced: a live lease is never taken over.
                .require_absent_or_at_most(attr::LEASE_UNTIL, n(now.0));
            if seen.state == step.entered_from() || passing {
                let passed = passing.then(|| super::history_entry(step.entered_from(), None, now));
                expr.set(attr::STATE, s(step.held_in().as_str()))
                    .set(attr::STATE_SINCE, n(now.0))
                    .set(
                        attr::STATE_SHARD,
                        s(super::state_shard(&seen.id, step.held_in())),
                    )
                    .append_all(
                        attr::HISTORY,
                        passed
                            .into_iter()
                            .chain([super::history_entry(step.held_in(), None, now)])
                            .collect(),
                    );
                if passing {
                    super::on_entering(&mut expr, step.entered_from(), now);
                }
            }
            // Never over an unresolved attempt (the version guard makes `seen` exact).
            let records_attempt = attempt_id.filter(|_| seen.attempt.is_none());
            if let Some(attempt_id) = records_attempt {
                set_attempt(&mut expr, attempt_id, now);
            }
            match self.update(&seen.id, &expr).await? {
                Updated::Ok(new) => {
                    return Ok(Lease {
                        job_id: new.id.clone(),
                        step,
                        owner: owner.to_owned(),
                        until,
                        version: new.version,
                        // The version guard makes `seen` the exact item we replaced.
                        inherited_attempt: seen.attempt.clone(),
                        attempt_recorded: records_attempt.is_some(),
                        job: Box::new(new),
                    });
                }
                Updated::ConditionFailed(Some(current)) => seen = current,
                Updated::ConditionFailed(None) => return Err(LeaseError::Missing(seen.id)),
            }
        }
        Err(LeaseError::Contended {
            current: Box::new(seen),
        })
    }

    /// Records that a side effect is about to start, fenced on our lease. Call it *before* the
    /// vendor call; an `Err` means do not make the call.
    #[instrument(skip_all, fields(job_id = %lease.job_id, attempt_id = attempt_id))]
    pub async fn record_attempt(
        &self,
        lease: &Lease,
        attempt_id: &str,
        now: UnixMillis,
    ) -> Result<Lease, FenceError> {
        if now >= lease.until {
            return Err(FenceError::Expired {
                job_id: lease.job_id.clone(),
                until: lease.until,
            });
        }
        let mut expr = Expr::new();
        set_attempt(&mut expr, attempt_id, now);
        expr.increment(attr::VERSION, 1);
        fence(&mut expr, lease);
        let job = self.fenced_update(lease, &expr).await?;
        Ok(Lease {
            version: job.version,
            attempt_recorded: true,
            job: Box::new(job),
            ..lease.clone()
        })
    }

    /// [`Self::record_attempt`] for a submission that may be a second charge: an earlier attempt
    /// might have reached the vendor and nothing can tell. Counted on the job
    /// (`risky_resubmits`) in the same write, so that every possible duplicate is accounted for;
    /// an operator's approval is used up by it.
    #[instrument(skip_all, fields(job_id = %lease.job_id, attempt_id = attempt_id))]
    pub async fn record_risky_resubmit(
        &self,
        lease: &Lease,
        attempt_id: &str,
        now: UnixMillis,
    ) -> Result<Lease, FenceError> {
        if now >= lease.until {
            return Err(FenceError::Expired {
                job_id: lease.job_id.clone(),
                until: lease.until,
            });
        }
        let mut expr = Expr::new();
        set_attempt(&mut expr, attempt_id, now);
        expr.add_number(attr::RISKY_RESUBMITS, 1)
            .remove(attr::RESUBMIT_APPROVED)
            .increment(attr::VERSION, 1);
        fence(&mut expr, lease);
        let job = self.fenced_update(lease, &expr).await?;
        Ok(Lease {
            version: job.version,
            attempt_recorded: true,
            job: Box::new(job),
            ..lease.clone()
        })
    }

    /// Ends the lease by advancing the job to `to`. Fenced: fails with [`FenceError::Lost`] if the
    /// lease was taken over or the job moved on.
    #[instrument(skip_all, fields(job_id = %lease.job_id, to = %to))]
    pub async fn complete_lease(
        &self,
        lease: &Lease,
        to: JobState,
        change: Change,
        now: UnixMillis,
    ) -> Result<Job, FenceError> {
        check_transition(&lease.job_id, lease.step.held_in(), to, &change)?;
        let mut expr = Expr::new();
        apply_state_change(&mut expr, &lease.job_id, to, &change, now);
        fence(&mut expr, lease);
        self.fenced_update(lease, &expr).await
    }

    /// Gives the job back without advancing it, so the next delivery can take the lease at once.
    #[instrument(skip_all, fields(job_id = %lease.job_id))]
    pub async fn release_lease(
        &self,
        lease: &Lease,
        outcome: AttemptOutcome,
        debt: RetryDebt,
    ) -> Result<Job, FenceError> {
        let mut expr = Expr::new();
        expr.remove(attr::LEASE_OWNER)
            .remove(attr::LEASE_UNTIL)
            .increment(attr::VERSION, 1);
        if outcome == AttemptOutcome::NotReached {
            expr.remove(attr::ATTEMPT_ID).remove(attr::ATTEMPTED_AT);
        }
        match debt {
            RetryDebt::Unchanged => {}
            RetryDebt::Owe { tokens } => {
                expr.set(attr::RETRY_OWED, n(u64::from(tokens)))
                    .add_number(attr::VENDOR_FAILURES, 1);
            }
            RetryDebt::Settled => {
                expr.remove(attr::RETRY_OWED);
            }
        }
        fence(&mut expr, lease);
        self.fenced_update(lease, &expr).await
    }

    async fn fenced_update(&self, lease: &Lease, expr: &Expr) -> Result<Job, FenceError> {
        match self.update(&lease.job_id, expr).await? {
            Updated::Ok(job) => Ok(job),
            Updated::ConditionFailed(current) => Err(FenceError::Lost {
                job_id: lease.job_id.clone(),
                owner: lease.owner.clone(),
                current: current.map(Box::new),
            }),
        }
    }
}

/// The fence on every write by a lease holder.
fn fence(expr: &mut Expr, lease: &Lease) {
    expr.require_eq(attr::LEASE_OWNER, s(&lease.owner))
        .require_eq(attr::VERSION, n(lease.version));
}

/// Records an attempt: its id, its time, and the vendor it goes to (`Job::vendor`), which
/// outlives the attempt so that parse and reconcile ask the vendor that has the job.
fn set_attempt(expr: &mut Expr, attempt_id: &str, now: UnixMillis) {
    expr.set(attr::ATTEMPT_ID, s(attempt_id))
        .set(attr::ATTEMPTED_AT, n(now.0));
    if let Some(vendor) = Attempt::vendor_of(attempt_id) {
        expr.set(attr::VENDOR, s(vendor));
    }
}
