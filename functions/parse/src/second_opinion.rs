//! Parse's half of a second opinion ([`ocrbridge::second_opinion`]): a result that would go to
//! review asks the route's next vendor (a child job, created once, sent through submit like any
//! job), and the child's result settles the parent.
//!
//! Crash points, in order, and what a redelivery does:
//! - asking: the child is created by a conditional put on an id derived from the parent's,
//!   its submit message sent, then marked `Queued` (intake's order: a crash leaves a `Received`
//!   child that the next ask sends again), and only then does the parent enter `NeedsReview`
//!   with the opinion pending. A parse that dies before that write is redelivered and asks
//!   again, finding the same child;
//! - settling: the parent is settled first (a version-guarded write, only while the opinion it
//!   holds is this child's and pending), then the child completes. A child parse that dies
//!   between the two is redelivered, finds the parent settled, and completes the child.

use ocrbridge::cost::{JobCost, Spend};
use ocrbridge::document::Document;
use ocrbridge::failpoints;
use ocrbridge::job::{Job, JobId, JobState, Reason};
use ocrbridge::language::TextSegments;
use ocrbridge::ledger::{Change, Created, FenceError, Lease, TransitionError};
use ocrbridge::metrics;
use ocrbridge::queue::SubmitRequest;
use ocrbridge::rules::ReviewReason;
use ocrbridge::second_opinion::{Outcome, SecondOpinion};
use ocrbridge::time::UnixMillis;
use ocrbridge::vendors::Vendor;
use tracing::{info, warn};

use crate::Parse;
use ocrbridge::batch::Disposition;

/// The reason code of a parent two vendors read alike: it completed on their agreement.
pub const AGREED: &str = "second_opinion_agreed";

/// How many times settling re-reads a parent that changed under it before trying later.
const SETTLE_TRIES: u32 = 3;

/// A child's parsed reading, and what completing it records.
pub(crate) struct Reading {
    pub document: Document,
    pub result_key: String,
    pub summary: String,
    pub cost: JobCost,
    pub text: TextSegments,
}

impl<V: Vendor> Parse<V> {
    /// The vendor after `job`'s in its profile's route, when `reasons` are all triggers of the
    /// profile's (`SECOND_OPINION`) and the job has not asked before: the child asked, and
    /// the opinion to record on the job. `Ok(None)`: the job goes to review as it is.
    pub(crate) async fn ask_second_opinion(
        &self,
        job: &Job,
        reasons: &[ReviewReason],
    ) -> Result<Option<SecondOpinion>, String> {
        if job.second_opinion_of.is_some() || job.second_opinion.is_some() {
            return Ok(None);
        }
        let Some(fields) = self.config.second_opinion.asks(&job.profile, reasons) else {
            return Ok(None);
        };
        let route = self.routes.route(self.primary(), &job.profile);
        let first = self.vendor_of(job).name().to_owned();
        let Some(next) = route
            .iter()
            .skip_while(|a| a.name() != first)
            .nth(1)
            .map(|a| a.name().to_owned())
        else {
            info!(vendor = %first, "a second opinion is wanted, but the route has no vendor after this one");
            return Ok(None);
        };
        let now = UnixMillis::now();
        let created = failpoints::around(
            "parse.before_create_second_opinion",
            "parse.after_create_second_opinion",
            job.id.as_str(),
            self.ledger.create_second_opinion(job, &next, now),
        )
        .await
        .map_err(|e| e.to_string())?;
        let child = match created {
            Created::New(child) => child,
            Created::Existing(child) => child,
        };
        if child.state == JobState::Received {
            failpoints::around(
                "parse.before_enqueue_second_opinion",
                "parse.after_enqueue_second_opinion",
                job.id.as_str(),
                self.queue.send_json(
                    &self.stack.submit_queue_url,
                    &SubmitRequest {
                        job_id: child.id.clone(),
                    },
                ),
            )
            .await
            .map_err(|e| e.to_string())?;
            match self
                .ledger
                .transition(&child, JobState::Queued, Change::none(), UnixMillis::now())
                .await
            {
                Ok(_) | Err(TransitionError::Stale { .. }) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        self.metrics.for_traffic(job.benchmark_run.as_ref()).count(
            metrics::SECOND_OPINIONS,
            &[
                job.profile.as_str(),
                &first,
                &next,
                Outcome::Pending.as_str(),
            ],
            &[("job_id", job.id.as_str())],
        );
        info!(vendor = %next, child = %child.id, ?fields, "asked for a second opinion");
        Ok(Some(SecondOpinion::asked(&next, child.id, fields)))
    }

    /// A child's result: settles its parent, then completes the child with its reading (its
    /// cost the `second_pass` spend).
    pub(crate) async fn finish_second_opinion(
        &self,
        lease: &Lease,
        child: &Job,
        parent: &JobId,
        reading: Reading,
        attempt: u32,
    ) -> Disposition {
        if let Err(e) = self.settle_parent(child, parent, &reading.document).await {
            return self
                .give_back(lease, attempt, "second_opinion_unsettled", e)
                .await;
        }
        self.complete_reading(lease, child, reading, attempt, |done| {
            if let Some(actual) = done.cost.as_ref().and_then(|c| c.actual) {
                self.spent(child, Spend::SecondPass, actual);
                self.metrics.for_traffic(child.benchmark_run.as_ref()).emit(
                    metrics::SECOND_OPINION_COST,
                    f64::try_from(actual).unwrap_or_default(),
                    &[child.profile.as_str(), self.vendor_of(child).name()],
                    &[("job_id", child.id.as_str())],
                );
            }
            info!(%parent, "second opinion recorded");
        })
        .await
    }

    /// Completes `job` under its parse lease with `reading` (its result, cost and text), and
    /// then runs `on_done` with the job as recorded. A lease taken over meanwhile records
    /// nothing: its successor's reading counts.
    pub(crate) async fn complete_reading(
        &self,
        lease: &Lease,
        job: &Job,
        reading: Reading,
        attempt: u32,
        on_done: impl FnOnce(&Job),
    ) -> Disposition {
        let completed = failpoints::around(
            "parse.before_complete",
            "parse.after_complete",
            job.id.as_str(),
            self.ledger.complete_lease(
                lease,
                JobState::Completed,
                Change::none()
                    .with_result(&reading.result_key, reading.summary)
                    .with_cost(reading.cost)
                    .with_text(reading.text),
                UnixMillis::now(),
            ),
        )
        .await;
        match completed {
            Ok(done) => {
                on_done(&done);
                Disposition::Done
            }
            Err(FenceError::Lost { .. }) => {
                self.metrics.count(
                    metrics::LEASES_LOST,
                    &["parse"],
                    &[("job_id", job.id.as_str())],
                );
                warn!("the parse lease was taken over meanwhile; this reading was not recorded");
                Disposition::Done
            }
            Err(e) => self.later(attempt, "dynamodb_error", e.to_string()),
        }
    }

    /// Decides `parent`'s pending opinion from its own result and `reading`. A parent whose
    /// opinion is not this child's pending one (settled already, or a reviewer decided it) is
    /// left alone.
    async fn settle_parent(
        &self,
        child: &Job,
        parent_id: &JobId,
        reading: &Document,
    ) -> Result<(), String> {
        for _ in 0..SETTLE_TRIES {
            let Some(parent) = self
                .ledger
                .get_job(parent_id)
                .await
                .map_err(|e| e.to_string())?
            else {
                warn!(%parent_id, "the job this second opinion was asked for does not exist");
                return Ok(());
            };
            let asked = match &parent.second_opinion {
                Some(o) if o.outcome == Outcome::Pending && o.job_id == child.id => o,
                // The parent's parse created this child and has not recorded the ask yet (it
                // records it last): come back once it has.
                None if !parent.state.is_settled() => {
                    return Err(format!(
                        "job {parent_id} has not recorded its second opinion yet ({})",
                        parent.state
                    ))
                }
                _ => {
                    info!(%parent_id, state = %parent.state, "the parent is settled already; nothing to decide");
                    return Ok(());
                }
            };
            if parent.state != JobState::NeedsReview {
                info!(%parent_id, state = %parent.state, "a reviewer decided the parent meanwhile; nothing to decide");
                return Ok(());
            }
            let first = self.first_reading(&parent).await?;
            let decided = asked.decide(&first, reading);
            let first_vendor = self.vendor_of(&parent).name().to_owned();
            let sides = decided.side_by_side(&first_vendor);
            let reason = match decided.outcome {
                Outcome::Agreed => {
                    Reason::new(AGREED, format!("{} read the same: {sides}", decided.vendor))
                }
                _ => Reason::new(
                    parent
                        .reason
                        .as_ref()
                        .map_or("needs_review", |r| r.code.as_str()),
                    format!(
                        "{}; second opinion: {sides}",
                        parent.reason.as_ref().map_or("", |r| r.message.as_str())
                    ),
                ),
            };
            let outcome = decided.outcome;
            let settled = failpoints::around(
                "parse.before_settle_second_opinion",
                "parse.after_settle_second_opinion",
                parent_id.as_str(),
                self.ledger
                    .settle_second_opinion(&parent, decided, reason, UnixMillis::now()),
            )
            .await;
            match settled {
                Ok(_) => {
                    self.metrics
                        .for_traffic(parent.benchmark_run.as_ref())
                        .count(
                            metrics::SECOND_OPINIONS,
                            &[
                                parent.profile.as_str(),
                                &first_vendor,
                                self.vendor_of(child).name(),
                                outcome.as_str(),
                            ],
                            &[("job_id", parent.id.as_str())],
                        );
                    info!(%parent_id, outcome = outcome.as_str(), %sides, "second opinion decided");
                    return Ok(());
                }
                Err(TransitionError::Stale { .. }) | Err(TransitionError::Leased { .. }) => {
                    continue
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(format!(
            "job {parent_id} kept changing while its second opinion was settled"
        ))
    }

    /// The parent's own stored result.
    async fn first_reading(&self, parent: &Job) -> Result<Document, String> {
        let key = parent
            .result_key
            .clone()
            .ok_or_else(|| format!("job {} has no stored result", parent.id))?;
        self.stored_document(&key).await
    }
}
