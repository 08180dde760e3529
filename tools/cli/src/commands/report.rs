//! `ocrbridge report --week`: the weekly checkpoint (see [`crate::weekly`]), as Markdown on the
//! terminal, JSON with `--json`, and with `--html FILE` one self-contained page with charts.

use std::path::Path;

use ocrbridge::cost::LIST_PRICES_AS_OF;
use ocrbridge::time::UnixMillis;

use crate::weekly::{self, cloudwatch, Report, Week};
use crate::{CliError, Target};

/// `--ending`: the week's last day (a date; the week ends at the next UTC midnight) or an RFC
/// 3339 time; without it, the week ends now.
pub fn parse_ending(text: &str) -> Result<UnixMillis, String> {
    let text = text.trim();
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let next = date
            .succ_opt()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .ok_or("no day after it")?;
        return u64::try_from(next.and_utc().timestamp_millis())
            .map(UnixMillis)
            .map_err(|_| format!("{text}: before 1970"));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
        .map(UnixMillis)
        .ok_or_else(|| format!("{text:?} is not a date (2026-11-29) or an RFC 3339 time"))
}

/// The stack's metric namespace: the functions' `METRICS_NAMESPACE`.
fn namespace(target: &Target) -> Result<String, CliError> {
    target.env.get("METRICS_NAMESPACE").cloned().ok_or_else(|| {
        CliError::Usage(format!(
            "stack {} names no METRICS_NAMESPACE: write its environment again with `ocrbridge local provision --env-out`",
            target.name
        ))
    })
}

pub async fn week(
    target: &Target,
    ending: Option<UnixMillis>,
    html: Option<&Path>,
    json_mode: bool,
) -> Result<(), CliError> {
    let rate = crate::commands::cost::hourly_rate(target, None);
    let (this, last) = Week::ending(ending.unwrap_or_else(UnixMillis::now));
    let jobs = crate::commands::cost::every_job(target).await?;
    let cw = aws_sdk_cloudwatch::Client::new(&target.clients.sdk_config);
    let ns = namespace(target)?;
    // The benchmark is optional: a stack without its table has no quality line.
    let runs = match crate::commands::quality::store(target) {
        Ok(store) => store.rows().await.map_err(CliError::aws)?,
        Err(_) => Vec::new(),
    };
    let figures = |week: Week, counted| weekly::week_figures(&jobs, week, &counted, &runs, rate);
    let report = Report {
        stack: target.name.clone(),
        list_prices_as_of: LIST_PRICES_AS_OF,
        this_week: figures(this, cloudwatch::counted(&cw, &ns, this).await?),
        last_week: figures(last, cloudwatch::counted(&cw, &ns, last).await?),
    };
    if let Some(path) = html {
        std::fs::write(path, weekly::html::render(&report))
            .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))?;
        eprintln!("wrote {}", path.display());
    }
    if json_mode {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", weekly::markdown::render(&report));
    }
    Ok(())
}
