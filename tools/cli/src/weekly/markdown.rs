//! The weekly report as Markdown, for the terminal or a ticket.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::{CostRow, LatencyRow, Report, Volume};
use ocrbridge::time::UnixMillis;

pub(crate) fn day(t: UnixMillis) -> String {
    chrono::DateTime::from_timestamp_millis(i64::try_from(t.0).unwrap_or(i64::MAX))
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// A counter as a number: `3`, `0.5`; never `-0` (an empty `f64` sum is negative zero).
pub(crate) fn number(v: f64) -> String {
    format!("{}", v + 0.0)
}

/// `+3 (+60%)`, `-1 (-20%)`, `0`, or `new` when last week had none.
pub(crate) fn change(last: f64, this: f64) -> String {
    let delta = this - last;
    if delta == 0.0 {
        "0".into()
    } else if last == 0.0 {
        "new".into()
    } else {
        format!("{delta:+} ({:+.0}%)", 100.0 * delta / last)
    }
}

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(
        out,
        "|{}|",
        header
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { "---" } else { "---:" })
            .collect::<Vec<_>>()
            .join("|")
    );
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    if rows.is_empty() {
        let _ = writeln!(out, "| (none) |{}", " |".repeat(header.len() - 1));
    }
    out.push('\n');
}

/// Reads one figure of a week's volume.
pub(crate) type VolumeFigure = fn(&Volume) -> u64;

/// The volume lines: a label and the figure of a week.
pub(crate) const VOLUME: [(&str, VolumeFigure); 11] = [
    ("documents arrived", |v| v.arrived),
    ("documents submitted", |v| v.submitted),
    ("documents completed", |v| v.completed),
    ("documents in review", |v| v.needs_review),
    ("documents failed", |v| v.failed),
    ("documents rejected at intake", |v| v.rejected),
    ("documents open or held", |v| v.open),
    ("pages arrived", |v| v.pages_arrived),
    ("pages submitted", |v| v.pages_submitted),
    ("pages completed", |v| v.pages_completed),
    ("pages failed", |v| v.pages_failed),
];

fn cost_table(out: &mut String, what: &str, last: &[CostRow], this: &[CostRow]) {
    let dash = |v: Option<&String>| v.cloned().unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = super::paired(last, this, |r| r.key.clone())
        .into_iter()
        .map(|(key, l, t)| {
            let pair = |f: fn(&CostRow) -> Option<&String>| {
                format!("{} → {}", dash(l.and_then(f)), dash(t.and_then(f)))
            };
            vec![
                key.join(" · "),
                format!(
                    "{} → {}",
                    l.map_or(0, |r| r.documents),
                    t.map_or(0, |r| r.documents)
                ),
                pair(|r| r.per_document.as_ref()),
                pair(|r| r.per_page.as_ref()),
                pair(|r| Some(&r.total)),
            ]
        })
        .collect();
    table(
        out,
        &[what, "documents", "per document", "per page", "total (USD)"],
        &rows,
    );
}

pub fn render(report: &Report) -> String {
    let (last, this) = (&report.last_week, &report.this_week);
    let mut out = String::new();
    let _ = writeln!(out, "# ocrbridge weekly report: {}\n", report.stack);
    let _ = writeln!(
        out,
        "This week {} → {}, against {} → {} (UTC). Prices: list prices as of {}. Every figure below reads last week → this week.\n",
        day(this.week.since),
        day(this.week.until),
        day(last.week.since),
        day(last.week.until),
        report.list_prices_as_of
    );

    out.push_str("## Documents and pages\n\n");
    let rows: Vec<Vec<String>> = VOLUME
        .iter()
        .map(|(label, f)| {
            let (l, t) = (f(&last.volume), f(&this.volume));
            vec![
                (*label).to_owned(),
                l.to_string(),
                t.to_string(),
                change(l as f64, t as f64),
            ]
        })
        .collect();
    table(&mut out, &["", "last week", "this week", "change"], &rows);

    out.push_str("## Cost per document and per page\n\nDocuments with a billed answer; failed-but-billed work, duplicates and retries are in the totals, never in the averages.\n\n");
    cost_table(
        &mut out,
        "vendor · model · profile",
        &last.cost_by_line,
        &this.cost_by_line,
    );
    cost_table(
        &mut out,
        "source",
        &last.cost_by_source,
        &this.cost_by_source,
    );

    out.push_str("## Retries by cause\n\n");
    let causes: BTreeSet<&String> = last
        .retries_by_cause
        .keys()
        .chain(this.retries_by_cause.keys())
        .collect();
    let rows: Vec<Vec<String>> = causes
        .into_iter()
        .map(|cause| {
            let l = last.retries_by_cause.get(cause).copied().unwrap_or(0.0);
            let t = this.retries_by_cause.get(cause).copied().unwrap_or(0.0);
            vec![cause.clone(), number(l), number(t), change(l, t)]
        })
        .collect();
    table(
        &mut out,
        &["cause", "last week", "this week", "change"],
        &rows,
    );

    out.push_str("## Duplicate suppression\n\n");
    let (ld, td) = (&last.duplicates, &this.duplicates);
    let rows = vec![
        (
            "re-uploads deduplicated at intake",
            ld.reuploads_deduplicated,
            td.reuploads_deduplicated,
        ),
        (
            "webhook replays refused",
            ld.webhook_replays_refused,
            td.webhook_replays_refused,
        ),
        (
            "lost answers adopted",
            ld.lost_answers_adopted,
            td.lost_answers_adopted,
        ),
        (
            "risky resubmits (possible second charges)",
            ld.risky_resubmits as f64,
            td.risky_resubmits as f64,
        ),
        (
            "duplicate vendor jobs billed",
            ld.duplicate_jobs as f64,
            td.duplicate_jobs as f64,
        ),
    ]
    .into_iter()
    .map(|(label, l, t)| vec![label.to_owned(), number(l), number(t), change(l, t)])
    .chain([vec![
        "cost of duplicate vendor jobs (USD)".to_owned(),
        ld.duplicate_cost.clone(),
        td.duplicate_cost.clone(),
        String::new(),
    ]])
    .collect::<Vec<_>>();
    table(&mut out, &["", "last week", "this week", "change"], &rows);

    out.push_str("## Review\n\nDocuments a person decided, the time the review console recorded on them, and what it cost at the stack's ReviewerHourlyRate.\n\n");
    let (lr, tr) = (&last.review, &this.review);
    let usd = |r: &crate::commands::cost::ReviewSpend| {
        r.usd
            .map_or("not priced".to_owned(), |d| format!("{:.2}", d.round_dp(2)))
    };
    let rows = vec![
        vec![
            "documents decided".to_owned(),
            number(lr.decided as f64),
            number(tr.decided as f64),
            change(lr.decided as f64, tr.decided as f64),
        ],
        vec![
            "review hours (console)".to_owned(),
            format!("{:.2}", lr.seconds / 3600.0),
            format!("{:.2}", tr.seconds / 3600.0),
            change(lr.seconds, tr.seconds),
        ],
        vec!["review (USD)".to_owned(), usd(lr), usd(tr), String::new()],
    ];
    table(&mut out, &["", "last week", "this week", "change"], &rows);

    out.push_str("## Top failure reasons\n\nFailed, rejected and held documents of this week, by document type and source; last week's count of the same line beside it.\n\n");
    let rows: Vec<Vec<String>> = this
        .failures
        .iter()
        .map(|f| {
            let before = last
                .failures
                .iter()
                .find(|l| {
                    (&l.reason, &l.document_type, &l.source)
                        == (&f.reason, &f.document_type, &f.source)
                })
                .map_or(0, |l| l.count);
            vec![
                f.reason.clone(),
                f.document_type.clone(),
                f.source.clone(),
                before.to_string(),
                f.count.to_string(),
            ]
        })
        .collect();
    table(
        &mut out,
        &[
            "reason",
            "document type",
            "source",
            "last week",
            "this week",
        ],
        &rows,
    );

    out.push_str("## Latency, arrival to result (ms)\n\n");
    let rows: Vec<Vec<String>> = super::paired(&last.latency, &this.latency, super::latency_key)
        .into_iter()
        .map(|((profile, pages), l, t)| {
            let pair = |f: fn(&LatencyRow) -> u64| {
                let show = |r: Option<&LatencyRow>| r.map_or("-".to_owned(), |r| f(r).to_string());
                format!("{} → {}", show(l), show(t))
            };
            vec![
                profile,
                pages,
                pair(|r| r.documents),
                pair(|r| r.p50_ms),
                pair(|r| r.p95_ms),
                pair(|r| r.p99_ms),
            ]
        })
        .collect();
    table(
        &mut out,
        &["profile", "pages", "documents", "p50", "p95", "p99"],
        &rows,
    );

    out.push_str("## Language and handwriting\n\nDocuments that settled, by the language and handwriting parse found in them, and the share a rule sent to review (last week → this week): a language or handwriting the vendor reads badly shows here before it shows in the averages.\n\n");
    let rows: Vec<Vec<String>> = super::paired(&last.segments, &this.segments, super::segment_key)
        .into_iter()
        .map(|((language, handwriting), l, t)| {
            let settled = |r: Option<&super::SegmentRow>| r.map_or(0, |r| r.settled);
            let rate = |r: Option<&super::SegmentRow>| {
                r.filter(|r| r.settled > 0).map_or("-".to_owned(), |r| {
                    format!("{:.0}%", 100.0 * r.needs_review as f64 / r.settled as f64)
                })
            };
            vec![
                language,
                handwriting,
                format!("{} → {}", settled(l), settled(t)),
                format!("{} → {}", rate(l), rate(t)),
            ]
        })
        .collect();
    table(
        &mut out,
        &["language", "handwriting", "documents", "to review"],
        &rows,
    );

    out.push_str("## Quality against the pinned baseline\n\n");
    for (label, week) in [("last week", last), ("this week", this)] {
        let line = match &week.quality {
            None => "no scored benchmark run".to_owned(),
            Some(q) => format!(
                "{} ({}, {}) scored {} against baseline {}: {}",
                q.run,
                q.pack,
                q.vendor,
                day(q.scored_at),
                q.baseline.as_deref().unwrap_or("(none pinned)"),
                if q.regressions.is_empty() {
                    "no regressions".to_owned()
                } else {
                    format!("regressions in {}", q.regressions.join(", "))
                }
            ),
        };
        let _ = writeln!(out, "- {label}: {line}");
    }
    out
}
