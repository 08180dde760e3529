//! The weekly checkpoint (`ocrbridge report --week`): this week against the one before, from the
//! ledger and from CloudWatch.
//!
//! What each figure is read from:
//! - **the ledger** (every job, by arrival): documents and pages by outcome, cost per document and
//!   per page (`ocrbridge::cost`, the same lines as `ocrbridge cost`), risky resubmits and
//!   duplicate vendor jobs with their cost, failure reasons by document type and source, and
//!   latency (arrival to the first settled state) by profile and page bucket;
//! - **CloudWatch** (`GetMetricData`, [`cloudwatch`]): what only the functions count as it
//!   happens — submit retries by cause, re-uploads deduplicated at intake, webhook replays
//!   refused, lost answers adopted;
//! - **the benchmark runs table**: the week's last scored run against its pinned baseline.
//!
//! This module only computes and renders; `commands::report` fetches.

pub mod cloudwatch;
pub mod html;
pub mod markdown;

use std::collections::BTreeMap;

use ocrbridge::cost::{self, CostBy, Spend, Window};
use ocrbridge::job::{Job, JobState};
use ocrbridge::quality::score::percentile;
use ocrbridge::quality::store::RunRow;
use ocrbridge::segments;
use ocrbridge::time::UnixMillis;
use serde::Serialize;

pub const WEEK_MS: u64 = 7 * 86_400_000;

/// Failure lines shown, most frequent first.
pub const TOP_FAILURES: usize = 10;

/// Seven days, `[since, until)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Week {
    #[serde(serialize_with = "rfc3339")]
    pub since: UnixMillis,
    #[serde(serialize_with = "rfc3339")]
    pub until: UnixMillis,
}

/// An instant in JSON: RFC 3339, UTC.
fn rfc3339<S: serde::Serializer>(t: &UnixMillis, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339().unwrap_or_default())
}

impl Week {
    /// The week ending at `until`, and the one before it.
    pub fn ending(until: UnixMillis) -> (Week, Week) {
        let this = Week {
            since: UnixMillis(until.0.saturating_sub(WEEK_MS)),
            until,
        };
        let last = Week {
            since: UnixMillis(this.since.0.saturating_sub(WEEK_MS)),
            until: this.since,
        };
        (this, last)
    }

    pub fn window(self) -> Window {
        Window {
            since: Some(self.since),
            until: Some(self.until),
        }
    }

    pub fn contains(self, at: UnixMillis) -> bool {
        self.since <= at && at < self.until
    }
}

/// Counters only CloudWatch has, summed over one week (see [`cloudwatch::Sums`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counted {
    /// `SubmitRetries` by `Cause`.
    pub retries_by_cause: BTreeMap<String, f64>,
    /// `DuplicatesSuppressed`: the same content uploaded again, one job kept.
    pub reuploads_deduplicated: f64,
    /// `WebhookDuplicates`: a delivery already taken, refused.
    pub webhook_replays_refused: f64,
    /// `Reconciles` with an `adopted…` outcome: an answer lost in transit, found and adopted.
    pub lost_answers_adopted: f64,
}

/// Documents and pages by how they ended (or where they are), for jobs that arrived in a week.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Volume {
    pub arrived: u64,
    /// Reached the vendor (the job was `Submitted` at least once).
    pub submitted: u64,
    pub completed: u64,
    pub needs_review: u64,
    pub failed: u64,
    pub rejected: u64,
    /// Still on their way, or held for an operator.
    pub open: u64,
    pub pages_arrived: u64,
    pub pages_submitted: u64,
    pub pages_completed: u64,
    pub pages_failed: u64,
}

/// One cost line (a vendor, model and profile; or a source) for a week.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CostRow {
    pub key: Vec<String>,
    pub documents: u64,
    pub pages: u64,
    pub total: String,
    pub per_document: Option<String>,
    pub per_page: Option<String>,
}

/// Duplicate suppression, and what got through.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Duplicates {
    pub reuploads_deduplicated: f64,
    pub webhook_replays_refused: f64,
    pub lost_answers_adopted: f64,
    /// Submissions made while an earlier one may have arrived (the jobs' `risky_resubmits`).
    pub risky_resubmits: u64,
    /// Vendor jobs paid for beyond one per document, and what they cost.
    pub duplicate_jobs: u64,
    pub duplicate_cost: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureRow {
    pub reason: String,
    /// `segments::kind`: pdf_text, pdf_scanned, image, other.
    pub document_type: String,
    pub source: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LatencyRow {
    pub profile: String,
    pub pages: String,
    pub documents: u64,
    pub p50_ms: u64,
    pub p95_ms: u64,
    pub p99_ms: u64,
}

/// Documents settled in a week by the language and handwriting parse recorded on them
/// (`language::TextSegments::dimensions`: the bounded values the metrics use): how many, and
/// how many of those a rule sent to review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentRow {
    pub language: String,
    pub handwriting: String,
    pub settled: u64,
    pub needs_review: u64,
}

/// The key [`paired`] matches segment rows by.
pub fn segment_key(r: &SegmentRow) -> (String, String) {
    (r.language.clone(), r.handwriting.clone())
}

/// The week's last scored benchmark run and what it said against its baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quality {
    pub run: String,
    pub pack: String,
    pub vendor: String,
    #[serde(serialize_with = "rfc3339")]
    pub scored_at: UnixMillis,
    pub baseline: Option<String>,
    /// `profile.field` of each regression against the baseline.
    pub regressions: Vec<String>,
}

/// Everything the report says about one week.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeekFigures {
    pub week: Week,
    pub volume: Volume,
    pub cost_by_line: Vec<CostRow>,
    pub cost_by_source: Vec<CostRow>,
    pub retries_by_cause: BTreeMap<String, f64>,
    pub duplicates: Duplicates,
    pub failures: Vec<FailureRow>,
    pub latency: Vec<LatencyRow>,
    /// By language and handwriting (jobs parsed before those were recorded are left out).
    pub segments: Vec<SegmentRow>,
    pub quality: Option<Quality>,
    /// The reviewers' time on the week's documents, priced at `ReviewerHourlyRate`.
    pub review: crate::commands::cost::ReviewSpend,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub stack: String,
    pub list_prices_as_of: &'static str,
    pub this_week: WeekFigures,
    pub last_week: WeekFigures,
}

/// Last week's and this week's rows side by side, by `key`, in key order; a row one week
/// lacks is `None`.
pub fn paired<'a, R, K: Ord + Clone>(
    last: &'a [R],
    this: &'a [R],
    key: impl Fn(&R) -> K,
) -> Vec<(K, Option<&'a R>, Option<&'a R>)> {
    let keys: std::collections::BTreeSet<K> = last.iter().chain(this).map(&key).collect();
    let find = |rows: &'a [R], k: &K| rows.iter().find(|r| &key(r) == k);
    keys.into_iter()
        .map(|k| {
            let (l, t) = (find(last, &k), find(this, &k));
            (k, l, t)
        })
        .collect()
}

/// A latency row's key: profile and page bucket.
pub fn latency_key(r: &LatencyRow) -> (String, String) {
    (r.profile.clone(), r.pages.clone())
}

fn pages(job: &Job) -> u64 {
    u64::from(job.inspection.pages.unwrap_or(1))
}

/// Where the job first settled (a result: `Completed` or `NeedsReview`); a reviewer's later
/// decision does not move it.
fn first_settled(job: &Job) -> Option<&ocrbridge::job::StateChange> {
    job.history
        .iter()
        .find(|c| matches!(c.state, JobState::Completed | JobState::NeedsReview))
}

fn entered(job: &Job, state: JobState) -> Option<UnixMillis> {
    job.history.iter().find(|c| c.state == state).map(|c| c.at)
}

fn money(d: cost::Decimal) -> String {
    format!("{:.4}", d.round_dp(4))
}

fn volume(jobs: &[&Job]) -> Volume {
    let mut v = Volume::default();
    for job in jobs {
        let p = pages(job);
        v.arrived += 1;
        v.pages_arrived += p;
        if entered(job, JobState::Submitted).is_some() {
            v.submitted += 1;
            v.pages_submitted += p;
        }
        match job.state {
            JobState::Completed => {
                v.completed += 1;
                v.pages_completed += p;
            }
            JobState::NeedsReview => v.needs_review += 1,
            JobState::Failed => {
                v.failed += 1;
                v.pages_failed += p;
            }
            JobState::Rejected => v.rejected += 1,
            _ => v.open += 1,
        }
    }
    v
}

fn cost_rows(lines: BTreeMap<Vec<String>, cost::CostLine>) -> Vec<CostRow> {
    lines
        .into_iter()
        .map(|(key, line)| CostRow {
            key,
            documents: line.documents,
            pages: line.pages,
            total: money(line.total()),
            per_document: line.per_document().map(money),
            per_page: line.per_page().map(money),
        })
        .collect()
}

/// `lines`: the week's cost by line, where the duplicate vendor jobs and their cost are.
fn duplicates(
    jobs: &[&Job],
    lines: &BTreeMap<Vec<String>, cost::CostLine>,
    counted: &Counted,
) -> Duplicates {
    let duplicate_cost = lines
        .values()
        .filter_map(|l| l.spend.get(Spend::Duplicate.as_str()))
        .copied()
        .sum();
    Duplicates {
        reuploads_deduplicated: counted.reuploads_deduplicated,
        webhook_replays_refused: counted.webhook_replays_refused,
        lost_answers_adopted: counted.lost_answers_adopted,
        risky_resubmits: jobs.iter().map(|j| u64::from(j.risky_resubmits)).sum(),
        duplicate_jobs: lines.values().map(|l| l.duplicate_jobs).sum(),
        duplicate_cost: money(duplicate_cost),
    }
}

fn failures(jobs: &[&Job]) -> Vec<FailureRow> {
    let mut counts: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for job in jobs {
        if !matches!(
            job.state,
            JobState::Failed | JobState::Rejected | JobState::Held
        ) {
            continue;
        }
        let reason = job
            .reason
            .as_ref()
            .map_or_else(|| "(no reason)".to_owned(), |r| r.code.clone());
        let source = job.channel.clone().unwrap_or_else(|| "direct".into());
        *counts
            .entry((reason, segments::kind(&job.inspection).to_owned(), source))
            .or_default() += 1;
    }
    let mut rows: Vec<FailureRow> = counts
        .into_iter()
        .map(|((reason, document_type, source), count)| FailureRow {
            reason,
            document_type,
            source,
            count,
        })
        .collect();
    // Most frequent first; ties in a stable order.
    rows.sort_by_key(|r| std::cmp::Reverse(r.count));
    rows.truncate(TOP_FAILURES);
    rows
}

fn latency(jobs: &[&Job]) -> Vec<LatencyRow> {
    let mut groups: BTreeMap<(String, &'static str), Vec<u64>> = BTreeMap::new();
    for job in jobs {
        let Some(settled) = first_settled(job) else {
            continue;
        };
        groups
            .entry((
                job.profile.as_str().to_owned(),
                segments::page_bucket(job.inspection.pages),
            ))
            .or_default()
            .push(settled.at.0.saturating_sub(job.created_at.0));
    }
    groups
        .into_iter()
        .map(|((profile, pages), mut ms)| {
            ms.sort_unstable();
            let p = |q| percentile(&ms, q).unwrap_or_default();
            LatencyRow {
                profile,
                pages: pages.to_owned(),
                documents: ms.len() as u64,
                p50_ms: p(0.50),
                p95_ms: p(0.95),
                p99_ms: p(0.99),
            }
        })
        .collect()
}

fn text_segments(jobs: &[&Job]) -> Vec<SegmentRow> {
    let mut groups: BTreeMap<(&'static str, &'static str), (u64, u64)> = BTreeMap::new();
    for job in jobs {
        let Some(text) = &job.text else { continue };
        // A reviewer's later decision does not make it direct.
        let Some(settled) = first_settled(job) else {
            continue;
        };
        let [language, handwriting] = text.dimensions();
        let (n, review) = groups.entry((language, handwriting)).or_default();
        *n += 1;
        *review += u64::from(settled.state == JobState::NeedsReview);
    }
    groups
        .into_iter()
        .map(
            |((language, handwriting), (settled, needs_review))| SegmentRow {
                language: language.to_owned(),
                handwriting: handwriting.to_owned(),
                settled,
                needs_review,
            },
        )
        .collect()
}

fn quality(runs: &[RunRow], week: Week) -> Option<Quality> {
    runs.iter()
        .filter(|r| r.state != "baseline")
        .filter_map(|r| Some((UnixMillis(r.scored_at_ms?), r)))
        .filter(|(at, _)| week.contains(*at))
        .max_by_key(|(at, _)| *at)
        .map(|(at, r)| Quality {
            run: r.run_id.clone(),
            pack: r.pack.clone().unwrap_or_default(),
            vendor: r.vendor.clone().unwrap_or_default(),
            scored_at: at,
            baseline: r.baseline_run.clone(),
            regressions: r
                .regressions
                .as_deref()
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        })
}

/// One week's figures. Benchmark documents are left out: they are scored, not business traffic
/// (their cost shows in `ocrbridge cost`).
pub fn week_figures(
    jobs: &[Job],
    week: Week,
    counted: &Counted,
    runs: &[RunRow],
    reviewer_rate: Option<cost::Decimal>,
) -> WeekFigures {
    let arrived: Vec<&Job> = jobs
        .iter()
        .filter(|j| j.benchmark_run.is_none() && week.contains(j.created_at))
        .collect();
    let by = |by| cost::report_by(arrived.iter().copied(), week.window(), by);
    let lines = by(CostBy::Line);
    WeekFigures {
        week,
        volume: volume(&arrived),
        duplicates: duplicates(&arrived, &lines, counted),
        cost_by_line: cost_rows(lines),
        cost_by_source: cost_rows(by(CostBy::Source)),
        retries_by_cause: counted.retries_by_cause.clone(),
        failures: failures(&arrived),
        latency: latency(&arrived),
        segments: text_segments(&arrived),
        quality: quality(runs, week),
        review: crate::commands::cost::review_spend(
            arrived.iter().copied(),
            week.window(),
            reviewer_rate,
        ),
    }
}

#[cfg(test)]
mod tests;
