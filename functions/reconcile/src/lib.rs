//! `reconcile`: no job left behind.
//!
//! On a schedule, through the `by-state-shard` index (no scans), oldest first:
//!
//! | state | stuck when | action |
//! |---|---|---|
//! | `Received`, `Submitted`, `ResultReady`, `Parsing` | older than `MAX_JOB_AGE_SECS` | `Failed` with `max_age_exceeded` (never under a live lease) |
//! | `Queued`, `Submitting` | older than `MAX_JOB_AGE_SECS` | re-send to submit, which fails it under its lease — after resolving any attempt that may have reached the vendor, so a vendor job is never forgotten |
//! | `Received` | in it longer than `STUCK_SECS` | re-send the S3 notification to intake (it re-validates and settles) |
//! | `Queued` | longer than `STUCK_SECS` | re-send `{job_id}` to the submit queue |
//! | `Submitting` | lease expired, longer than `STUCK_SECS` | re-send to submit, which reconciles by idempotency key before resubmitting |
//! | `Submitted` | no result after `SUBMITTED_STALE_SECS` | poll the vendor; a final status goes to the results queue (a success also moves the job to `ResultReady`, so it is not polled again) |
//! | `ResultReady`, `Parsing` | lease expired, longer than `STUCK_SECS` | re-send a result notice |
//!
//! A re-send happens only when the job's queue cannot be holding its message: each stuck job is
//! matched against the messages its queue holds (`GetQueueAttributes`, once per queue per run),
//! and only the jobs beyond that count are re-sent. Under a backlog, old jobs are simply waiting
//! their turn, and re-sending would multiply the backlog. The excuse lasts [`BACKLOG_PATIENCE`]
//! stuck periods: a queue that always holds someone's messages cannot hide a lost one for good.
//!
//! `Held` jobs wait for an operator and are left alone. Every action is a message to an
//! idempotent consumer or a guarded transition, so reconcile can run beside the webhook, parse,
//! submit, and another reconcile.

use std::time::Duration;

use ocrbridge::completion::{self, Settled};
use ocrbridge::config::{duration_setting, setting, SettingError, StackConfig};
use ocrbridge::failpoints;
use ocrbridge::job::{reason, Job, JobState, Reason};
use ocrbridge::ledger::{Change, Ledger, TransitionError};
use ocrbridge::metrics::{self, Metrics};
use ocrbridge::queue::{Queue, ResultNotice, SubmitRequest};
use ocrbridge::time::UnixMillis;
use ocrbridge::vendors::route::Routes;
use ocrbridge::vendors::{Vendor, VendorError};
use serde_json::json;
use tracing::{info, warn};

#[derive(Debug, Clone, PartialEq)]
pub struct ReconcileConfig {
    /// `STUCK_SECS` (default 600).
    pub stuck: Duration,
    /// `SUBMITTED_STALE_SECS` (default 900): how long a webhook may take before we poll.
    pub submitted_stale: Duration,
    /// `MAX_JOB_AGE_SECS` (default 604,800: a week), counted from when the job was last queued.
    pub max_age: Duration,
    /// `RECONCILE_BATCH` (default 100): jobs per state per run.
    pub batch: i32,
}

impl ReconcileConfig {
    /// Every setting parsed, or the first bad one named with its value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let secs = |k: &'static str, d: u64| {
            duration_setting(&lookup, k, Duration::from_secs(d), Duration::from_secs(1))
        };
        Ok(ReconcileConfig {
            stuck: secs("STUCK_SECS", 600)?,
            submitted_stale: secs("SUBMITTED_STALE_SECS", 900)?,
            max_age: secs("MAX_JOB_AGE_SECS", 604_800)?,
            batch: setting(
                &lookup,
                "RECONCILE_BATCH",
                100,
                "a page size from 1 to 1000",
                |b: &i32| (1..=1000).contains(b),
            )?,
        })
    }
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub stuck: u32,
    pub recovered: u32,
    /// Stuck by age, but waiting behind a backlog on their queue: not re-sent.
    pub queued: u32,
    pub expired: u32,
    pub errors: u32,
    /// The run stopped before its work was done, to end before its invocation's deadline; the
    /// next scheduled run goes on where it left off (oldest first).
    pub out_of_time: bool,
}

/// What is kept in hand before the invocation's deadline: enough for the slowest single action
/// (a vendor status call, bounded by `VENDOR_TIMEOUT_MS`, 10 s by default) and its writes. A
/// run is not started on a job with less left.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(15);

pub struct Reconcile<V> {
    /// The stack's `VENDOR`.
    pub vendor: V,
    /// The other vendors `VENDOR_ROUTES` names: a job is asked about at the vendor it went to.
    pub routes: Routes<V>,
    pub ledger: Ledger,
    pub queue: Queue,
    pub metrics: Metrics,
    pub stack: StackConfig,
    pub config: ReconcileConfig,
}

/// Pages of `batch` jobs read per state per run, at most.
const MAX_PAGES: usize = 10;

/// How many stuck periods a job may wait behind a backlog on its queue before it is re-sent
/// anyway.
pub const BACKLOG_PATIENCE: u32 = 3;

const LIVE: [JobState; 7] = [
    JobState::Received,
    JobState::InParts,
    JobState::Queued,
    JobState::Submitting,
    JobState::Submitted,
    JobState::ResultReady,
    JobState::Parsing,
];

impl<V: Vendor> Reconcile<V> {
    /// One sweep with no deadline (a test, a local run).
    pub async fn run(&self, now: UnixMillis) -> Summary {
        self.run_before(now, None).await
    }

    /// One sweep that ends by `deadline` (the invocation's, less [`DEADLINE_MARGIN`]): a
    /// function killed at its timeout mid-sweep leaves work half done for no reason, and its
    /// sweep would look like a failure.
    pub async fn run_before(&self, now: UnixMillis, deadline: Option<UnixMillis>) -> Summary {
        let mut summary = Summary::default();
        let out_of_time = || deadline.is_some_and(|d| UnixMillis::now().plus(DEADLINE_MARGIN) >= d);
        let mut backlog = Backlog::default();
        for state in LIVE {
            let threshold = if state == JobState::Submitted {
                self.config.submitted_stale
            } else {
                self.config.stuck
            };
            // Page through, oldest first, until `batch` jobs were acted on: jobs someone holds
            // (or that wait on the vendor) do not use up the run, so a run of them at the head
            // of the index cannot starve the stuck jobs behind it. At most MAX_PAGES pages per
            // state per run, so a run stays bounded.
            let mut start = None;
            let mut acted = 0;
            for _ in 0..MAX_PAGES {
                let (jobs, next) = match self
                    .ledger
                    .jobs_in_state_before(state, now.minus(threshold), self.config.batch, start)
                    .await
                {
                    Ok(page) => page,
                    Err(e) => {
                        warn!(state = %state, error = %e, "cannot list stuck jobs");
                        summary.errors += 1;
                        break;
                    }
                };
                for job in jobs {
                    if acted >= self.config.batch {
                        break;
                    }
                    if out_of_time() {
                        summary.out_of_time = true;
                        break;
                    }
                    if job.lease.as_ref().is_some_and(|l| l.is_live(now)) {
                        continue; // someone is working on it right now
                    }
                    summary.stuck += 1;
                    self.metrics.count(
                        metrics::STUCK_JOBS,
                        &[state.as_str()],
                        &[("job_id", job.id.as_str())],
                    );
                    // What reconcile sends about a job joins the job's trace.
                    let acted_on = ocrbridge::trace_context::within(
                        job.trace_header.clone(),
                        self.act(&job, now, &mut backlog),
                    )
                    .await;
                    match acted_on {
                        Ok(Action::Recovered) => {
                            acted += 1;
                            summary.recovered += 1;
                            self.metrics.count(
                                metrics::RECOVERED_JOBS,
                                &[state.as_str()],
                                &[("job_id", job.id.as_str())],
                            );
                        }
                        Ok(Action::Expired) => {
                            acted += 1;
                            summary.expired += 1;
                            self.metrics.count(
                                metrics::EXPIRED_JOBS,
                                &[state.as_str()],
                                &[("job_id", job.id.as_str())],
                            );
                        }
                        Ok(Action::Waiting) => {}
                        Ok(Action::Queued) => summary.queued += 1,
                        Err(e) => {
                            acted += 1;
                            warn!(job_id = %job.id, error = %e, "reconcile action failed");
                            summary.errors += 1;
                        }
                    }
                }
                match next {
                    Some(key) if acted < self.config.batch && !summary.out_of_time => {
                        start = Some(key)
                    }
                    _ => break,
                }
            }
            if summary.out_of_time {
                warn!("the sweep stopped to end before the invocation's deadline; the next run goes on");
                break;
            }
        }
        info!(?summary, "reconcile run");
        summary
    }

    /// Whether `queue_url` still holds a message that may be this stuck job's: each stuck job
    /// is matched against one of the messages the queue holds (visible, in flight or delayed);
    /// only jobs beyond that count can have lost theirs. A backlog is not a loss: re-sending
    /// into it would only multiply it.
    async fn has_waiting_message(&self, queue_url: &str, backlog: &mut Backlog) -> bool {
        if !backlog.depth.contains_key(queue_url) {
            let depth = self
                .queue
                .depth(queue_url)
                .await
                .map_err(|e| warn!(error = %e, "cannot read the queue's depth; re-sending"))
                .ok();
            backlog.depth.insert(queue_url.to_owned(), depth);
        }
        match backlog.depth.get_mut(queue_url) {
            Some(Some(remaining)) if *remaining > 0 => {
                *remaining -= 1;
                true
            }
            // Empty, or unknown (the attributes could not be read): re-send.
            _ => false,
        }
    }

    async fn act(
        &self,
        job: &Job,
        now: UnixMillis,
        backlog: &mut Backlog,
    ) -> Result<Action, String> {
        // From when the job last entered the pipeline: an operator's retry starts a new window.
        let expired = now.since(job.queued_at.unwrap_or(job.created_at)) > self.config.max_age;
        if expired && !matches!(job.state, JobState::Queued | JobState::Submitting) {
            let reason = Reason::new(
                reason::MAX_AGE_EXCEEDED,
                format!("still {} after {:?}", job.state, self.config.max_age),
            );
            return self
                .fail(
                    job,
                    reason,
                    ("reconcile.before_expire", "reconcile.after_expire"),
                    now,
                )
                .await;
        }
        if job.state == JobState::InParts {
            return self.check_parts(job, now).await;
        }
        if job.state == JobState::Received && job.part_of.is_some() {
            // A part the document's intake created and did not live to queue: the document
            // is `Received` too, and settling it again (below, for its own row) queues it.
            return Ok(Action::Waiting);
        }
        if job.state == JobState::Received && job.second_opinion_of.is_some() {
            // A second opinion's child its parent's parse created and did not live to queue:
            // no upload to settle again; the parent's parse, redelivered or reconciled, asks
            // again and queues it.
            return Ok(Action::Waiting);
        }
        let send_err = |e: ocrbridge::queue::QueueError| e.to_string();
        let resend_to = match job.state {
            JobState::Received => Some(&self.stack.intake_queue_url),
            JobState::Queued | JobState::Submitting => Some(&self.stack.submit_queue_url),
            JobState::ResultReady | JobState::Parsing => Some(&self.stack.results_queue_url),
            _ => None,
        };
        // A backlog excuses a stuck job for BACKLOG_PATIENCE stuck periods, no longer: a queue
        // that always holds someone's messages (deferred ones, a busy pipeline) must not hide
        // a lost one for good. A second message to an idempotent consumer costs one receive.
        let patient = now.since(job.state_since) <= self.config.stuck * BACKLOG_PATIENCE;
        if let Some(url) = resend_to.filter(|_| patient) {
            if self.has_waiting_message(url, backlog).await {
                return Ok(Action::Queued);
            }
        }
        match job.state {
            JobState::Received => {
                // Intake stopped between creating and settling: let it settle again.
                let event = json!({"Records": [{
                    "eventSource": "aws:s3", "eventName": "ObjectCreated:Reconcile",
                    "s3": {"bucket": {"name": job.source.bucket},
                           "object": {"key": job.source.key, "versionId": job.source.version_id}}
                }]});
                failpoints::around(
                    "reconcile.before_resend",
                    "reconcile.after_resend",
                    job.id.as_str(),
                    self.queue.send_json(&self.stack.intake_queue_url, &event),
                )
                .await
                .map_err(send_err)?;
                Ok(Action::Recovered)
            }
            JobState::Queued | JobState::Submitting => {
                failpoints::around(
                    "reconcile.before_resend",
                    "reconcile.after_resend",
                    job.id.as_str(),
                    self.queue.send_json(
                        &self.stack.submit_queue_url,
                        &SubmitRequest {
                            job_id: job.id.clone(),
                        },
                    ),
                )
                .await
                .map_err(send_err)?;
                Ok(Action::Recovered)
            }
            JobState::Submitted => {
                let Some(vendor_job_id) = &job.vendor_job_id else {
                    return Err("a Submitted job has no vendor job id".into());
                };
                let vendor = self
                    .routes
                    .vendor_of(&self.vendor, job)
                    .map_err(|unrouted| unrouted.to_string())?;
                let status = match failpoints::around(
                    "reconcile.before_status",
                    "reconcile.after_status",
                    job.id.as_str(),
                    ocrbridge::vendors::answer::status(vendor, vendor_job_id),
                )
                .await
                {
                    Ok(v) => v.status,
                    Err(e) => {
                        if let VendorError::Auth { status } = &e {
                            // Named as submit names it; the next run reads the key afresh, in
                            // case a rotation replaced it.
                            self.metrics.count(
                                metrics::AUTH_FAILURES,
                                &[vendor.name(), "reconcile", &status.to_string()],
                                &[("job_id", job.id.as_str())],
                            );
                            vendor.refresh_credentials().await;
                        }
                        return Err(e.to_string());
                    }
                };
                // Record what we found: a success leaves the stale-Submitted query, so the next
                // run does not poll and notify again while this notice is on its way; if it is
                // lost, the job is a stuck `ResultReady` after `STUCK_SECS`.
                let applied = failpoints::around(
                    "reconcile.before_mark_ready",
                    "reconcile.after_mark_ready",
                    job.id.as_str(),
                    completion::apply_status(
                        &self.ledger,
                        &self.metrics,
                        vendor.name(),
                        "reconcile",
                        job,
                        &status,
                        now,
                    ),
                )
                .await
                .map_err(|e| e.to_string())?;
                match applied {
                    Settled::Ready(_) => {
                        self.notice(job, vendor_job_id, "succeeded").await?;
                        Ok(Action::Recovered)
                    }
                    Settled::Failed => Ok(Action::Recovered),
                    Settled::Working | Settled::Unknown(_) | Settled::Moved(_) => {
                        Ok(Action::Waiting)
                    }
                }
            }
            JobState::ResultReady | JobState::Parsing => {
                let vendor_job_id = job.vendor_job_id.clone().unwrap_or_default();
                self.notice(job, &vendor_job_id, "succeeded").await?;
                Ok(Action::Recovered)
            }
            _ => Ok(Action::Waiting),
        }
    }

    /// A document waiting for its parts (`ocrbridge::parts`): with every part's result
    /// recorded and nobody merging them (the set completed before its intake recorded
    /// `InParts`), parse is sent a notice for it and merges them; when one part failed for
    /// good, the document cannot be merged whole and fails with the part's reason. Parts still
    /// on their way are left to their own sweeps.
    async fn check_parts(&self, job: &Job, now: UnixMillis) -> Result<Action, String> {
        let Some(parts) = &job.parts else {
            return Err(format!("job {} is InParts but records no parts", job.id));
        };
        if parts.results.len() as u32 >= parts.count {
            self.notice(job, "", "succeeded").await?;
            return Ok(Action::Recovered);
        }
        for index in 0..parts.count {
            let id = ocrbridge::parts::part_key(&job.id, index).job_id();
            let Some(part) = self.ledger.get_job(&id).await.map_err(|e| e.to_string())? else {
                return Err(format!(
                    "part {} of job {} ({id}) does not exist",
                    index + 1,
                    job.id
                ));
            };
            if !matches!(part.state, JobState::Failed | JobState::Rejected) {
                continue;
            }
            let why = part.reason.as_ref().map_or_else(
                || part.state.to_string(),
                |r| format!("{}: {}", r.code, r.message),
            );
            let pages = part.part_of.as_ref().map_or_else(String::new, |of| {
                let last = of.first_page + part.inspection.pages.unwrap_or(1) - 1;
                format!(" (pages {}-{last})", of.first_page)
            });
            let reason = Reason::new(
                reason::PART_FAILED,
                format!(
                    "part {} of {}{pages}, job {id}, failed: {why}",
                    index + 1,
                    parts.count
                ),
            );
            return self
                .fail(
                    job,
                    reason,
                    ("reconcile.before_fail_parts", "reconcile.after_fail_parts"),
                    now,
                )
                .await;
        }
        Ok(Action::Waiting)
    }

    /// Fails `job` for `reason` (counted by its code), unless it moved meanwhile or a worker
    /// holds it: then it is not stuck.
    async fn fail(
        &self,
        job: &Job,
        reason: Reason,
        (before, after): (&'static str, &'static str),
        now: UnixMillis,
    ) -> Result<Action, String> {
        self.metrics.count(
            metrics::JOBS_FAILED,
            &["reconcile", &reason.code],
            &[("job_id", job.id.as_str())],
        );
        let failed = failpoints::around(
            before,
            after,
            job.id.as_str(),
            self.ledger.transition(
                job,
                JobState::Failed,
                Change::none().with_reason(reason),
                now,
            ),
        )
        .await;
        match failed {
            Ok(_) => Ok(Action::Expired),
            Err(TransitionError::Stale { .. } | TransitionError::Leased { .. }) => {
                Ok(Action::Waiting)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    async fn notice(&self, job: &Job, vendor_job_id: &str, status: &str) -> Result<(), String> {
        let notice = ResultNotice {
            vendor: None,
            job_id: job.id.clone(),
            vendor_job_id: vendor_job_id.to_owned(),
            status: status.to_owned(),
            vendor_timestamp: None,
            event_id: None,
        };
        failpoints::around(
            "reconcile.before_notice",
            "reconcile.after_notice",
            job.id.as_str(),
            self.queue.send_json(&self.stack.results_queue_url, &notice),
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
    }
}

enum Action {
    Recovered,
    Expired,
    Waiting,
    /// Old, but its queue holds enough messages to include this job's: a backlog.
    Queued,
}

/// Per run: how many messages each queue holds that stuck jobs have not been matched to yet
/// (`None`: unknown).
#[derive(Debug, Default)]
struct Backlog {
    depth: std::collections::HashMap<String, Option<u64>>,
}
