//! What a vendor's word about a job means for the ledger, decided in one place for parse (on a
//! notice) and reconcile (on a poll): a success moves the job to `ResultReady`, a failure to
//! `Failed` with the vendor's reason, anything still running changes nothing, and a status the
//! adapter does not know is drift — never a success.

use crate::job::{reason, Job, JobState, Reason};
use crate::ledger::{Change, Ledger, TransitionError};
use crate::metrics::{self, Metrics};
use crate::time::UnixMillis;
use crate::vendors::VendorStatus;

/// Where a `Submitted` job stands after the vendor's status was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// The vendor finished: the job is `ResultReady`, ready to parse.
    Ready(Job),
    /// The vendor failed the document: the job is `Failed` with the vendor's reason.
    Failed,
    /// The vendor is still working; a later completion or poll will tell.
    Working,
    /// A status this adapter does not know.
    Unknown(String),
    /// Someone else moved the job meanwhile (or holds it); here it is as it is now.
    Moved(Job),
}

/// Applies `status` to a `Submitted` job. `stage` names the caller for metrics.
pub async fn apply_status(
    ledger: &Ledger,
    metrics: &Metrics,
    vendor: &str,
    stage: &str,
    job: &Job,
    status: &VendorStatus,
    now: UnixMillis,
) -> Result<Settled, TransitionError> {
    let moved = |e: TransitionError| match e {
        TransitionError::Stale { current, .. } | TransitionError::Leased { current } => {
            Ok(Settled::Moved(*current))
        }
        other => Err(other),
    };
    match status {
        VendorStatus::Succeeded => {
            match ledger
                .transition(job, JobState::ResultReady, Change::none(), now)
                .await
            {
                Ok(ready) => Ok(Settled::Ready(ready)),
                Err(e) => moved(e),
            }
        }
        VendorStatus::Failed { code, message } => {
            metrics.count(
                metrics::JOBS_FAILED,
                &[stage, reason::VENDOR_FAILED],
                &[("job_id", job.id.as_str())],
            );
            tracing::warn!(job_id = %job.id, %code, %message, "the vendor failed the job; not parsing it");
            let reason = Reason::new(reason::VENDOR_FAILED, format!("{code}: {message}"));
            match ledger
                .transition(
                    job,
                    JobState::Failed,
                    Change::none().with_reason(reason),
                    now,
                )
                .await
            {
                Ok(_) => Ok(Settled::Failed),
                Err(e) => moved(e),
            }
        }
        VendorStatus::Partial { message } => {
            metrics.count(
                metrics::JOBS_FAILED,
                &[stage, reason::VENDOR_PARTIAL_RESULT],
                &[("job_id", job.id.as_str())],
            );
            let reason = Reason::new(
                reason::VENDOR_PARTIAL_RESULT,
                format!("the vendor finished only part of the document: {message}"),
            );
            match ledger
                .transition(
                    job,
                    JobState::Failed,
                    Change::none().with_reason(reason),
                    now,
                )
                .await
            {
                Ok(_) => Ok(Settled::Failed),
                Err(e) => moved(e),
            }
        }
        VendorStatus::Queued | VendorStatus::Processing => Ok(Settled::Working),
        VendorStatus::Unknown(value) => {
            metrics.count(
                metrics::SCHEMA_DRIFT,
                &[vendor, "status", "new_enum_value"],
                &[("value", value)],
            );
            Ok(Settled::Unknown(value.clone()))
        }
    }
}
