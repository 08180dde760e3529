//! One module per command group.

pub mod alarms;
pub mod audit;
pub mod audit_lambda;
pub mod cost;
pub mod dlq;
pub mod jobs;
pub mod quality;
pub mod report;
pub mod review;
pub mod secrets;
pub mod spot_check;
pub mod status;
pub mod vendors;

use ocrbridge::job::{Job, JobId};

use crate::{CliError, Target};

/// The job `id` names, or [`CliError::UnknownJob`].
pub async fn job(target: &Target, id: &str) -> Result<Job, CliError> {
    let id = JobId::parse(id).map_err(|_| CliError::UnknownJob(id.to_owned()))?;
    target
        .ledger()
        .get_job(&id)
        .await?
        .ok_or_else(|| CliError::UnknownJob(id.to_string()))
}

/// Metrics the CLI's actions count (`JobsRetried[…, operator]`): kept in memory, as EMF only
/// reaches CloudWatch from a function's log.
pub fn metrics() -> ocrbridge::metrics::Metrics {
    ocrbridge::metrics::Metrics::memory("cli")
}

/// The queue a name means: `intake`, `submit` or `results` (source, DLQ).
pub fn queue_pair<'a>(target: &'a Target, name: &str) -> Result<(&'a str, &'a str), CliError> {
    let c = &target.config;
    match name {
        "intake" => Ok((&c.intake_queue_url, &c.intake_dlq_url)),
        "submit" => Ok((&c.submit_queue_url, &c.submit_dlq_url)),
        "results" => Ok((&c.results_queue_url, &c.results_dlq_url)),
        other => Err(CliError::Usage(format!(
            "no queue {other:?}: use intake, submit or results"
        ))),
    }
}
