//! `ocrbridge cost`: what the vendor was paid, by vendor, model and profile — per document and
//! per page for documents that went well, and failed-but-billed work, duplicates, retries and
//! work still in flight on their own lines, never folded into the average.
//!
//! Sums the `cost` every job carries (`ocrbridge::cost::JobCost`: the estimate at submission,
//! the actual at parse), over every job by state (the `by-state-shard` index, page by page).

use ocrbridge::cost::{self, Spend, LIST_PRICES_AS_OF};
use ocrbridge::job::JobState;
use ocrbridge::time::UnixMillis;
use serde_json::json;

use crate::output::{emit, Table};
use crate::{CliError, Target};

/// Jobs read per page of the index.
const PAGE: i32 = 200;

pub async fn run(target: &Target, json_mode: bool) -> Result<(), CliError> {
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
    let lines = cost::report(&jobs);
    let money =
        |d: Option<cost::Decimal>| d.map_or("-".to_owned(), |d| format!("{:.4}", d.round_dp(4)));
    let json = json!({
        "stack": target.name,
        "list_prices_as_of": LIST_PRICES_AS_OF,
        "lines": lines.iter().map(|((vendor, model, profile), l)| json!({
            "vendor": vendor, "model": model, "profile": profile,
            "documents": l.documents, "pages": l.pages,
            "per_document_usd": l.per_document().map(|d| d.to_string()),
            "per_page_usd": l.per_page().map(|d| d.to_string()),
            "spend_usd": l.spend.iter().map(|(k, v)| (k.to_string(), json!(v.to_string()))).collect::<serde_json::Map<_, _>>(),
            "total_usd": l.total().to_string(),
            "duplicate_jobs": l.duplicate_jobs,
            "unpriced_jobs": l.unpriced,
        })).collect::<Vec<_>>(),
    });
    emit(json_mode, &json, || {
        let mut header = vec![
            "vendor", "model", "profile", "docs", "pages", "$/doc", "$/page",
        ];
        header.extend(Spend::ALL.iter().map(|s| s.as_str()));
        header.push("total $");
        let mut table = Table::new(&header);
        for ((vendor, model, profile), l) in &lines {
            let mut row = vec![
                vendor.clone(),
                model.clone(),
                profile.clone(),
                l.documents.to_string(),
                l.pages.to_string(),
                money(l.per_document()),
                money(l.per_page()),
            ];
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
            "stack {}: vendor cost (USD; list prices as of {LIST_PRICES_AS_OF} unless VENDOR_PRICES says otherwise)\n\n{}{}",
            target.name,
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
