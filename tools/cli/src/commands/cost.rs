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

pub async fn run(
    target: &Target,
    window: Window,
    by: CostBy,
    json_mode: bool,
) -> Result<(), CliError> {
    let jobs = every_job(target).await?;
    let lines = cost::report_by(&jobs, window, by);
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
            });
            for (column, value) in columns.iter().zip(key) {
                line[*column] = json!(value);
            }
            line
        }).collect::<Vec<_>>(),
    });
    emit(json_mode, &json, || {
        let mut header = columns.to_vec();
        header.extend(["docs", "pages", "$/doc", "$/page"]);
        header.extend(Spend::ALL.iter().map(|s| s.as_str()));
        header.push("total $");
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
            row.push(money(Some(l.total())));
            table.row(row);
        }
        let unpriced: u64 = lines.values().map(|l| l.unpriced).sum();
        format!(
            "stack {}: vendor cost (USD; list prices as of {LIST_PRICES_AS_OF} unless VENDOR_PRICES says otherwise){}\n\n{}{}",
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
            if unpriced > 0 {
                format!("\n\n{unpriced} jobs have no price for their vendor and model: set VENDOR_PRICES")
            } else {
                String::new()
            }
        )
    });
    Ok(())
}
