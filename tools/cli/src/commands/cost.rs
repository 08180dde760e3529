//! `ocrbridge cost`: what the vendor was paid, by vendor, model and profile — per document and
//! per page for documents that went well, and failed-but-billed work, duplicates, retries and
//! work still in flight on their own lines, never folded into the average.
//!
//! Sums the `cost` every job carries (`ocrbridge::cost::JobCost`: the estimate at submission,
//! the actual at parse), over every job by state (the `by-state-shard` index, page by page);
//! `--since`/`--until` keep the documents that arrived in a window, and `--by` picks the lines
//! (`--by day`: cost per document by day).

use ocrbridge::cost::{self, CostBy, Spend, Window, LIST_PRICES_AS_OF};
use ocrbridge::job::{Job, JobState};
use ocrbridge::time::UnixMillis;
use serde_json::json;

use crate::output::{emit, Table};
use crate::{CliError, Target};

/// Jobs read per page of the index.
const PAGE: i32 = 200;

/// `--since`/`--until`: a date (UTC midnight), an RFC 3339 time, or a duration back from now.
pub fn parse_instant(text: &str) -> Result<UnixMillis, String> {
    let text = text.trim();
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let midnight = date.and_hms_opt(0, 0, 0).ok_or("not a day")?.and_utc();
        return u64::try_from(midnight.timestamp_millis())
            .map(UnixMillis)
            .map_err(|_| format!("{text}: before 1970"));
    }
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return u64::try_from(time.timestamp_millis())
            .map(UnixMillis)
            .map_err(|_| format!("{text}: before 1970"));
    }
    let back = crate::output::parse_duration(text).map_err(|_| {
        format!("{text:?} is not a date (2026-11-23), an RFC 3339 time or a duration (7d)")
    })?;
    Ok(UnixMillis(UnixMillis::now().0.saturating_sub(back)))
}

pub fn parse_by(text: &str) -> Result<CostBy, String> {
    CostBy::parse(text)
        .ok_or_else(|| format!("{text:?}: --by takes line, source, profile, model or day"))
}

/// Every job of the stack, in every state (the `by-state-shard` index, page by page).
pub(crate) async fn every_job(target: &Target) -> Result<Vec<Job>, CliError> {
    let ledger = target.ledger();
    let mut jobs = Vec::new();
    for state in JobState::ALL {
        let mut start = None;
        loop {
            let (page, next) = ledger
                .jobs_in_state_before(state, UnixMillis(u64::MAX), PAGE, start)
                .await?;
            jobs.extend(page);
            match next {
                Some(key) => start = Some(key),
                None => break,
            }
        }
    }
    Ok(jobs)
}

/// What review cost: the reviewers' time the console recorded on the decisions of the jobs that
/// arrived in the window, priced at the reviewer's hourly rate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReviewSpend {
    /// Jobs a person decided.
    pub decided: u64,
    /// Of those, the ones with a recorded time (decided in the console, not the terminal).
    pub timed: u64,
    pub seconds: f64,
    /// `None` without a rate.
    pub usd: Option<cost::Decimal>,
}

pub fn review_spend<'a>(
    jobs: impl IntoIterator<Item = &'a Job>,
    window: Window,
    hourly_rate: Option<cost::Decimal>,
) -> ReviewSpend {
    let mut spend = ReviewSpend {
        decided: 0,
        timed: 0,
        seconds: 0.0,
        usd: None,
    };
    for job in jobs.into_iter().filter(|j| window.contains(j)) {
        let Some(review) = job
            .review
            .as_deref()
            .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
        else {
            continue;
        };
        spend.decided += 1;
        if let Some(seconds) = review.get("seconds").and_then(serde_json::Value::as_f64) {
            spend.timed += 1;
            spend.seconds += seconds;
        }
    }
    spend.usd = hourly_rate.map(|rate| {
        let hours = cost::Decimal::try_from(spend.seconds / 3600.0).unwrap_or_default();
        (rate * hours).round_dp(4)
    });
    spend
}

/// The reviewer's hourly rate: `--reviewer-hourly-rate`, else the stack's `ReviewerHourlyRate`
/// (0 there means not set).
pub fn parse_rate(text: &str) -> Result<cost::Decimal, String> {
    text.trim()
        .parse::<cost::Decimal>()
        .ok()
        .filter(|d| !d.is_sign_negative())
        .ok_or_else(|| format!("{text:?} is not an hourly rate in USD (30, 42.50)"))
}

pub fn hourly_rate(target: &Target, given: Option<cost::Decimal>) -> Option<cost::Decimal> {
    given.or_else(|| {
        target
            .env
            .get("REVIEWER_HOURLY_RATE")
            .and_then(|r| parse_rate(r).ok())
            .filter(|r| !r.is_zero())
    })
}

pub async fn run(
    target: &Target,
    window: Window,
    by: CostBy,
    reviewer_rate: Option<cost::Decimal>,
    json_mode: bool,
) -> Result<(), CliError> {
    let jobs = every_job(target).await?;
    let lines = cost::report_by(&jobs, window, by);
    let rate = hourly_rate(target, reviewer_rate);
    let review = review_spend(&jobs, window, rate);
    let columns = by.columns();
    let when = |t: Option<UnixMillis>| t.and_then(UnixMillis::to_rfc3339);
    let money =
        |d: Option<cost::Decimal>| d.map_or("-".to_owned(), |d| format!("{:.4}", d.round_dp(4)));
    let json = json!({
        "stack": target.name,
        "list_prices_as_of": LIST_PRICES_AS_OF,
        "since": when(window.since),
        "until": when(window.until),
        "by": columns,
        "lines": lines.iter().map(|(key, l)| {
            let mut line = json!({
            "documents": l.documents, "pages": l.pages,
            "per_document_usd": l.per_document().map(|d| d.to_string()),
            "per_page_usd": l.per_page().map(|d| d.to_string()),
            "spend_usd": l.spend.iter().map(|(k, v)| (k.to_string(), json!(v.to_string()))).collect::<serde_json::Map<_, _>>(),
            "total_usd": l.total().to_string(),
            "duplicate_jobs": l.duplicate_jobs,
            "unpriced_jobs": l.unpriced,
            "pages_saved": l.pages_saved,
            "saved_usd": l.saved.to_string(),
            });
            for (column, value) in columns.iter().zip(key) {
                line[*column] = json!(value);
            }
            line
        }).collect::<Vec<_>>(),
        "review": {
            "decided": review.decided, "timed": review.timed,
            "hours": (review.seconds / 36.0).round() / 100.0,
            "hourly_rate_usd": rate.map(|r| r.to_string()),
            "total_usd": review.usd.map(|d| d.to_string()),
        },
    });
    emit(json_mode, &json, || {
        let mut header = columns.to_vec();
        header.extend(["docs", "pages", "$/doc", "$/page"]);
        header.extend(Spend::ALL.iter().map(|s| s.as_str()));
        header.extend(["total $", "pages saved", "saved $"]);
        let mut table = Table::new(&header);
        for (key, l) in &lines {
            let mut row = key.clone();
            row.extend([
                l.documents.to_string(),
                l.pages.to_string(),
                money(l.per_document()),
                money(l.per_page()),
            ]);
            row.extend(
                Spend::ALL
                    .iter()
                    .map(|s| money(l.spend.get(s.as_str()).copied())),
            );
            row.extend([
                money(Some(l.total())),
                l.pages_saved.to_string(),
                money(Some(l.saved)),
            ]);
            table.row(row);
        }
        let unpriced: u64 = lines.values().map(|l| l.unpriced).sum();
        let priced = match (review.usd, rate) {
            (Some(usd), Some(rate)) => format!("{} $ at {rate} $/h", money(Some(usd))),
            _ => "not priced: set ReviewerHourlyRate or --reviewer-hourly-rate".into(),
        };
        let review_line = format!(
            "\n\nreview: {} jobs decided by a person, {} timed in the console, {:.2} h, {priced}",
            review.decided,
            review.timed,
            review.seconds / 3600.0,
        );
        format!(
            "stack {}: vendor cost (USD; list prices as of {LIST_PRICES_AS_OF} unless VENDOR_PRICES says otherwise){}\n\n{}{}{}",
            target.name,
            match (when(window.since), when(window.until)) {
                (None, None) => String::new(),
                (since, until) => format!(
                    "; documents that arrived from {} to {}",
                    since.as_deref().unwrap_or("the start"),
                    until.as_deref().unwrap_or("now")
                ),
            },
            table.render(),
            review_line,
            if unpriced > 0 {
                format!("\n\n{unpriced} jobs have no price for their vendor and model: set VENDOR_PRICES")
            } else {
                String::new()
            }
        )
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    fn job(n: u32, created: u64, review: Option<&str>) -> Job {
        let mut job = crate::testing::job(n);
        job.state = JobState::Completed;
        job.created_at = UnixMillis(created);
        job.review = review.map(str::to_owned);
        job
    }

    #[test]
    fn review_time_in_the_window_is_priced_at_the_hourly_rate() {
        let jobs = [
            job(1, 100, Some(r#"{"decision":"corrected","seconds":1800}"#)),
            job(2, 100, Some(r#"{"decision":"approved","seconds":900}"#)),
            // Decided in the terminal: counted, not timed.
            job(3, 100, Some(r#"{"decision":"approved"}"#)),
            job(4, 100, None),
            // Arrived after the window.
            job(5, 900, Some(r#"{"decision":"approved","seconds":3600}"#)),
        ];
        let window = Window {
            since: None,
            until: Some(UnixMillis(500)),
        };
        let rate = parse_rate("40").unwrap();
        let spend = review_spend(&jobs, window, Some(rate));
        assert_eq!((spend.decided, spend.timed), (3, 2));
        assert_eq!(spend.seconds, 2700.0);
        assert_eq!(spend.usd.unwrap(), cost::Decimal::from(30));
        assert_eq!(review_spend(&jobs, window, None).usd, None);
        assert!(parse_rate("-3").is_err());
    }
}
