//! Sending a stopped job back: the one retry operation behind every way an operator (or a user)
//! asks for one — a message redriven from the DLQ, the same document uploaded again after the
//! job stopped, or `ocrbridge jobs retry`.
//!
//! Only `Failed` and `Held` jobs whose reason is retryable ([`crate::job::reason`]) move, and
//! the ledger's condition enforces it; what the job keeps (its vendor job, its recorded attempt)
//! is what makes a retry safe: see [`Ledger::requeue`].

use crate::job::{Job, JobState};
use crate::ledger::{Ledger, LedgerError, RequeueError, TransitionError};
use crate::metrics::{self, Metrics};
use crate::queue::{Queue, QueueError, SubmitRequest};
use crate::time::UnixMillis;

/// What asks for a retry: the same operation behind each, but only an operator can approve a
/// possible second charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The same document uploaded again after its job stopped.
    Reupload,
    /// A message an operator redrove from the DLQ (in bulk, without looking at each job).
    Redrive,
    /// `ocrbridge jobs retry`; `accept_duplicate_risk` is its `--accept-duplicate-risk`.
    Operator { accept_duplicate_risk: bool },
}

impl Trigger {
    /// For the `JobsRetried` metric and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Reupload => "reupload",
            Trigger::Redrive => "redrive",
            Trigger::Operator { .. } => "operator",
        }
    }

    fn accepts_duplicate_risk(self) -> bool {
        matches!(
            self,
            Trigger::Operator {
                accept_duplicate_risk: true
            }
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// The job is not `Failed`/`Held`, or its reason is final. Nothing was written.
    #[error("job {} is {}{}: only Failed or Held jobs with a retryable reason ({}) can be retried", .0.id, .0.state, .0.reason.as_ref().map(|r| format!(" ({})", r.code)).unwrap_or_default(), crate::job::reason::RETRYABLE.join(", "))]
    NotRetryable(Box<Job>),
    /// Held because its last submission may have reached the vendor: only an operator who
    /// accepts the duplicate risk retries it. Nothing was written.
    #[error("job {} may already be at the vendor (submission_outcome_unknown): only `ocrbridge jobs retry --accept-duplicate-risk` resubmits it", .0.id)]
    NeedsApproval(Box<Job>),
    /// Someone else moved the job since it was read (perhaps the same retry, twice): decide
    /// again from `current`.
    #[error("job {} moved to {} meanwhile", current.id, current.state)]
    Moved { current: Box<Job> },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The job is `Queued` but its submit message could not be sent; reconcile sends it.
    #[error("job {job} is queued but its submit message was not sent ({source}); reconcile will send it")]
    NotSent {
        job: crate::job::JobId,
        source: QueueError,
    },
}

impl From<crate::failpoints::Injected> for RetryError {
    fn from(injected: crate::failpoints::Injected) -> Self {
        RetryError::Ledger(injected.into())
    }
}

/// `Failed`/`Held` → `Queued` for a retryable reason, counted by what asked for it (`redrive`,
/// `reupload`, `operator`). The caller makes sure a submit message follows.
pub async fn requeue(
    ledger: &Ledger,
    metrics: &Metrics,
    job: &Job,
    trigger: Trigger,
) -> Result<Job, RetryError> {
    let code = job
        .reason
        .as_ref()
        .map(|r| r.code.clone())
        .unwrap_or_default();
    match ledger
        .requeue(job, trigger.accepts_duplicate_risk(), UnixMillis::now())
        .await
    {
        Ok(requeued) => {
            metrics.count(
                metrics::JOBS_RETRIED,
                &[&code, trigger.as_str()],
                &[("job_id", job.id.as_str())],
            );
            tracing::info!(job_id = %job.id, reason = %code, trigger = trigger.as_str(), "job sent back to Queued");
            Ok(requeued)
        }
        Err(RequeueError::NotRetryable { job }) => Err(RetryError::NotRetryable(job)),
        Err(RequeueError::NeedsApproval { job }) => {
            tracing::info!(job_id = %job.id, trigger = trigger.as_str(), "held for an operator's decision: a resubmission may be a second charge");
            Err(RetryError::NeedsApproval(job))
        }
        Err(RequeueError::Transition(
            TransitionError::Stale { current, .. } | TransitionError::Leased { current },
        )) => Err(RetryError::Moved { current }),
        Err(RequeueError::Transition(TransitionError::Ledger(e))) => Err(RetryError::Ledger(e)),
        Err(RequeueError::Transition(e)) => Err(RetryError::Ledger(LedgerError::Dynamo {
            operation: "UpdateItem",
            detail: e.to_string(),
        })),
    }
}

/// [`requeue`] and the submit message that makes it happen.
pub async fn retry(
    ledger: &Ledger,
    queue: &Queue,
    metrics: &Metrics,
    submit_queue_url: &str,
    job: &Job,
    trigger: Trigger,
) -> Result<Job, RetryError> {
    let requeued = requeue(ledger, metrics, job, trigger).await?;
    debug_assert_eq!(requeued.state, JobState::Queued);
    queue
        .send_json(
            submit_queue_url,
            &SubmitRequest {
                job_id: requeued.id.clone(),
            },
        )
        .await
        .map_err(|source| RetryError::NotSent {
            job: requeued.id.clone(),
            source,
        })?;
    Ok(requeued)
}
