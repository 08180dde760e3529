//! The weekly report as one self-contained HTML page: charts drawn as inline SVG (no script, no
//! fonts or styles fetched), then the report's tables.
//!
//! The tables are the Markdown report's own, turned into HTML here, so the page and the terminal
//! never disagree on a figure.

use std::fmt::Write;

use super::markdown::{self, VOLUME};
use super::{CostRow, LatencyRow, Report, WeekFigures};

use crate::output::esc;

/// One chart row: a label, last week's value, this week's.
pub struct Row {
    pub label: String,
    pub last: f64,
    pub this: f64,
}

const LABEL_WIDTH: f64 = 280.0;
const BAR_WIDTH: f64 = 420.0;
const BAR_HEIGHT: f64 = 12.0;
const ROW_HEIGHT: f64 = 34.0;

/// A grouped horizontal bar chart: for each row, last week's bar (grey) above this week's
/// (blue), scaled to the largest value, each labelled with its value.
pub fn bars(id: &str, title: &str, unit: &str, rows: &[Row]) -> String {
    let max = rows
        .iter()
        .flat_map(|r| [r.last, r.this])
        .fold(0.0_f64, f64::max);
    let height = 30.0 + ROW_HEIGHT * rows.len().max(1) as f64;
    let width = LABEL_WIDTH + BAR_WIDTH + 110.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<figure id="{id}"><figcaption>{}</figcaption><svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}"><title>{}</title>"#,
        esc(title),
        esc(title)
    );
    if rows.is_empty() {
        let _ = write!(
            svg,
            r#"<text x="0" y="20" class="empty">nothing this week or last</text>"#
        );
    }
    for (i, row) in rows.iter().enumerate() {
        let y = 10.0 + ROW_HEIGHT * i as f64;
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end" class="label">{}</text>"#,
            LABEL_WIDTH - 8.0,
            y + BAR_HEIGHT + 3.0,
            esc(&row.label)
        );
        for (j, (class, value)) in [("last", row.last), ("this", row.this)]
            .into_iter()
            .enumerate()
        {
            let w = if max > 0.0 {
                BAR_WIDTH * value / max
            } else {
                0.0
            };
            let by = y + j as f64 * (BAR_HEIGHT + 2.0);
            let _ = write!(
                svg,
                r#"<rect class="bar {class}" data-value="{value}" x="{LABEL_WIDTH}" y="{by}" width="{w:.1}" height="{BAR_HEIGHT}"><title>{} {}: {value} {}</title></rect><text x="{:.1}" y="{:.1}" class="value">{value}</text>"#,
                esc(&row.label),
                if class == "last" {
                    "last week"
                } else {
                    "this week"
                },
                esc(unit),
                LABEL_WIDTH + w + 4.0,
                by + BAR_HEIGHT - 2.0,
            );
        }
    }
    svg.push_str("</svg></figure>");
    svg
}

fn volume_rows(last: &WeekFigures, this: &WeekFigures) -> Vec<Row> {
    VOLUME
        .iter()
        .filter(|(label, _)| label.starts_with("documents"))
        .map(|(label, f)| Row {
            label: label.trim_start_matches("documents ").to_owned(),
            last: f(&last.volume) as f64,
            this: f(&this.volume) as f64,
        })
        .collect()
}

fn cost_rows(last: &WeekFigures, this: &WeekFigures) -> Vec<Row> {
    let per_document = |r: Option<&CostRow>| {
        r.and_then(|r| r.per_document.as_deref()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    super::paired(&last.cost_by_line, &this.cost_by_line, |r| r.key.clone())
        .into_iter()
        .map(|(key, l, t)| Row {
            label: key.join(" · "),
            last: per_document(l),
            this: per_document(t),
        })
        .collect()
}

fn latency_rows(last: &WeekFigures, this: &WeekFigures) -> Vec<Row> {
    let mut rows = Vec::new();
    for ((profile, pages), l, t) in super::paired(&last.latency, &this.latency, super::latency_key)
    {
        for (name, f) in [
            ("p50", (|r| r.p50_ms) as fn(&LatencyRow) -> u64),
            ("p95", |r| r.p95_ms),
            ("p99", |r| r.p99_ms),
        ] {
            rows.push(Row {
                label: format!("{profile}, {pages} page(s), {name}"),
                last: l.map_or(0.0, |r| f(r) as f64),
                this: t.map_or(0.0, |r| f(r) as f64),
            });
        }
    }
    rows
}

fn failure_rows(last: &WeekFigures, this: &WeekFigures) -> Vec<Row> {
    let count = |w: &WeekFigures, reason: &str| {
        w.failures
            .iter()
            .filter(|f| f.reason == reason)
            .map(|f| f.count)
            .sum::<u64>() as f64
    };
    let reasons: std::collections::BTreeSet<&String> = last
        .failures
        .iter()
        .chain(&this.failures)
        .map(|f| &f.reason)
        .collect();
    reasons
        .into_iter()
        .map(|reason| Row {
            label: reason.clone(),
            last: count(last, reason),
            this: count(this, reason),
        })
        .collect()
}

/// Our own Markdown (headings, pipe tables, lists, paragraphs) as HTML.
fn markdown_to_html(text: &str) -> String {
    let mut out = String::new();
    let mut table_open = false;
    let mut list_open = false;
    for line in text.lines() {
        let is_row = line.starts_with('|');
        if !is_row && table_open {
            out.push_str("</tbody></table>\n");
            table_open = false;
        }
        if !line.starts_with("- ") && list_open {
            out.push_str("</ul>\n");
            list_open = false;
        }
        if let Some(h) = line.strip_prefix("## ") {
            let _ = writeln!(out, "<h2>{}</h2>", esc(h));
        } else if let Some(h) = line.strip_prefix("# ") {
            let _ = writeln!(out, "<h1>{}</h1>", esc(h));
        } else if is_row {
            let cells: Vec<&str> = line
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            if cells
                .iter()
                .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
            {
                continue;
            }
            if !table_open {
                out.push_str("<table><thead><tr>");
                for c in &cells {
                    let _ = write!(out, "<th>{}</th>", esc(c));
                }
                out.push_str("</tr></thead><tbody>\n");
                table_open = true;
            } else {
                out.push_str("<tr>");
                for c in &cells {
                    let _ = write!(out, "<td>{}</td>", esc(c));
                }
                out.push_str("</tr>\n");
            }
        } else if let Some(item) = line.strip_prefix("- ") {
            if !list_open {
                out.push_str("<ul>\n");
                list_open = true;
            }
            let _ = writeln!(out, "<li>{}</li>", esc(item));
        } else if !line.trim().is_empty() {
            let _ = writeln!(out, "<p>{}</p>", esc(line));
        }
    }
    if table_open {
        out.push_str("</tbody></table>\n");
    }
    if list_open {
        out.push_str("</ul>\n");
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#1f2933;max-width:1100px}\
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #d9e2ec}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #d9e2ec;padding:.25em .6em;text-align:right}\
td:first-child,th:first-child{text-align:left}figure{margin:1em 0}figcaption{font-weight:600;margin-bottom:.3em}\
.bar.last{fill:#9aa5b1}.bar.this{fill:#2563eb}.label,.value,.empty{font-size:12px;fill:#1f2933}\
.legend span{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 1em;vertical-align:middle}\
.charts{display:flex;flex-wrap:wrap;gap:1em}";

/// The page.
pub fn render(report: &Report) -> String {
    let (last, this) = (&report.last_week, &report.this_week);
    let mut page = String::new();
    let _ = write!(
        page,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ocrbridge weekly report: {}</title><style>{STYLE}</style></head><body>"#,
        esc(&report.stack)
    );
    let mut charts = String::from(
        r#"<p class="legend"><span style="background:#9aa5b1"></span>last week<span style="background:#2563eb"></span>this week</p><div class="charts">"#,
    );
    charts.push_str(&bars(
        "chart-documents",
        "Documents: last week against this week",
        "documents",
        &volume_rows(last, this),
    ));
    charts.push_str(&bars(
        "chart-cost",
        "Cost per document (USD), by vendor, model and profile",
        "USD",
        &cost_rows(last, this),
    ));
    charts.push_str(&bars(
        "chart-latency",
        "Latency percentiles, arrival to result (ms)",
        "ms",
        &latency_rows(last, this),
    ));
    charts.push_str(&bars(
        "chart-failures",
        "Failure reasons",
        "documents",
        &failure_rows(last, this),
    ));
    charts.push_str("</div>");
    // The title and the weeks first, then the charts, then the tables.
    let body = markdown_to_html(&markdown::render(report));
    let split = body.find("</p>\n").map_or(0, |i| i + "</p>\n".len());
    page.push_str(&body[..split]);
    page.push_str(&charts);
    page.push_str(&body[split..]);
    page.push_str("</body></html>\n");
    page
}
