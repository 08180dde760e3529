//! The run's report: a self-contained HTML page (inline SVG plots, no script, no network) and a
//! short table for the terminal.

use std::fmt::Write as _;

use super::score::{RunRecord, CONFIDENCE_BUCKETS};

/// The section ids the page always has (a test opens the page in a browser and looks for them).
pub const SECTIONS: [&str; 5] = ["summary", "accuracy", "calibration", "cer", "flipped"];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// The terminal's table: one line per profile and field.
pub fn table(run: &RunRecord) -> String {
    let mut out = format!(
        "{:<9} {:<15} {:>5} {:>8} {:>8} {:>6} {:>9} {:>9}  {}\n",
        "profile",
        "field",
        "docs",
        "accuracy",
        "baseline",
        "null",
        "hi-conf✗",
        "flipped",
        "verdict"
    );
    for (profile, stats) in &run.scores {
        for (field, f) in &stats.fields {
            let compared = run.comparison.as_ref().and_then(|c| {
                c.fields
                    .iter()
                    .find(|x| &x.profile == profile && &x.field == field)
            });
            let _ = writeln!(
                out,
                "{:<9} {:<15} {:>5} {:>8} {:>8} {:>6} {:>9} {:>9}  {}",
                profile,
                field,
                f.documents,
                pct(f.accuracy()),
                compared.map_or("-".into(), |c| pct(c.baseline_accuracy)),
                pct(f.null_rate()),
                f.high_confidence_wrong,
                compared.map_or("-".into(), |c| format!(
                    "-{}/+{}",
                    c.right_to_wrong.len(),
                    c.wrong_to_right.len()
                )),
                match compared {
                    Some(c) if c.regressed => format!("REGRESSION (p={:.3})", c.p_value),
                    Some(c) if !c.right_to_wrong.is_empty() => format!(
                        "worse, not significant (p={:.3}; a larger pack can tell)",
                        c.p_value
                    ),
                    Some(_) => "ok".into(),
                    None => "no baseline".into(),
                }
            );
        }
        let _ = writeln!(
            out,
            "{:<9} {:<15} {:>5} CER {} · WER {} · p50 {} · p95 {} · cost/doc {}",
            profile,
            "(text)",
            stats.documents,
            stats.mean_cer.map_or("-".into(), pct),
            stats.mean_wer.map_or("-".into(), pct),
            stats
                .latency_p50_ms
                .map_or("-".into(), |ms| format!("{ms} ms")),
            stats
                .latency_p95_ms
                .map_or("-".into(), |ms| format!("{ms} ms")),
            stats
                .cost_per_document
                .map_or("-".into(), |c| format!("{c:.4}")),
        );
        if let Some(items) = &stats.items {
            let _ = writeln!(
                out,
                "{:<9} {:<15} {:>5} {}",
                profile,
                "(line items)",
                "",
                items_line(items)
            );
        }
    }
    out.push_str(&languages(run));
    out
}

/// Per language of the pack's documents (more than one): each profile's field accuracy, and how
/// often the language the pipeline detected was the truth's.
pub fn languages(run: &RunRecord) -> String {
    if run.by_language.len() < 2 {
        return String::new();
    }
    let mut out =
        String::from("\nper language (the truth's; detected: the job's reading agreed)\n");
    for (language, scores) in &run.by_language {
        for (profile, stats) in scores {
            let fields: Vec<String> = stats
                .fields
                .iter()
                .map(|(field, f)| format!("{field} {}", pct(f.accuracy())))
                .collect();
            let of_language: Vec<_> = run
                .documents
                .iter()
                .filter(|d| {
                    &d.profile == profile && d.language.as_deref().unwrap_or("unknown") == language
                })
                .collect();
            let detected = of_language
                .iter()
                .filter(|d| d.detected_language.is_some() && d.detected_language == d.language)
                .count();
            let _ = writeln!(
                out,
                "{:<9} {:<9} {:>5} detected {}/{} · {}",
                language,
                profile,
                stats.documents,
                detected,
                of_language.len(),
                fields.join(" · ")
            );
        }
    }
    out
}

/// Line items over a run: recall, precision and each column's accuracy over the matched pairs.
pub fn items_line(items: &super::items::ItemCounts) -> String {
    let columns: Vec<String> = super::items::COLUMNS
        .iter()
        .filter_map(|c| items.column_accuracy(c).map(|a| format!("{c} {}", pct(a))))
        .collect();
    format!(
        "recall {} ({}/{}) · precision {} ({}/{}) · {}",
        items.recall().map_or("-".into(), pct),
        items.matched,
        items.expected,
        items.precision().map_or("-".into(), pct),
        items.matched,
        items.extracted,
        if columns.is_empty() {
            "no pair matched".to_owned()
        } else {
            columns.join(" · ")
        }
    )
}

/// Horizontal bars: each profile/field's accuracy, with the baseline's as a thin bar under it.
fn accuracy_plot(run: &RunRecord) -> String {
    let rows: Vec<(String, f64, Option<f64>)> = run
        .scores
        .iter()
        .flat_map(|(profile, stats)| {
            stats.fields.iter().map(move |(field, f)| {
                let baseline = run.comparison.as_ref().and_then(|c| {
                    c.fields
                        .iter()
                        .find(|x| &x.profile == profile && &x.field == field)
                        .map(|x| x.baseline_accuracy)
                });
                (format!("{profile}.{field}"), f.accuracy(), baseline)
            })
        })
        .collect();
    let (label_w, bar_w, row_h) = (170.0, 360.0, 28.0);
    let height = row_h * rows.len() as f64 + 30.0;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" role="img" aria-label="field accuracy against the baseline">"#,
        label_w + bar_w + 60.0
    );
    for (i, (label, accuracy, baseline)) in rows.iter().enumerate() {
        let y = 10.0 + row_h * i as f64;
        let _ = write!(
            svg,
            r##"<text x="0" y="{:.0}" font-size="12">{}</text><rect x="{label_w}" y="{y:.0}" width="{:.1}" height="14" fill="#3b7dd8"/><text x="{:.1}" y="{:.0}" font-size="11">{}</text>"##,
            y + 12.0,
            escape(label),
            bar_w * accuracy,
            label_w + bar_w * accuracy + 4.0,
            y + 12.0,
            pct(*accuracy)
        );
        if let Some(b) = baseline {
            let _ = write!(
                svg,
                r##"<rect x="{label_w}" y="{:.0}" width="{:.1}" height="5" fill="#999"><title>baseline {}</title></rect>"##,
                y + 16.0,
                bar_w * b,
                pct(*b)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Accuracy per confidence bucket, one polyline per profile/field; the diagonal is perfect
/// calibration.
fn calibration_plot(run: &RunRecord) -> String {
    let (w, h, pad) = (360.0, 240.0, 30.0);
    let x = |c: f64| pad + c * (w - 2.0 * pad);
    let y = |a: f64| h - pad - a * (h - 2.0 * pad);
    let colours = [
        "#3b7dd8", "#d8553b", "#3bb273", "#9b59b6", "#e1a100", "#555",
    ];
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="calibration"><line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#bbb" stroke-dasharray="4"/><text x="{}" y="{}" font-size="11">confidence →</text><text x="2" y="{}" font-size="11">accuracy</text>"##,
        x(0.0),
        y(0.0),
        x(1.0),
        y(1.0),
        w / 2.0 - 30.0,
        h - 8.0,
        pad - 10.0
    );
    let mut legend = String::new();
    let mut i = 0;
    for (profile, stats) in &run.scores {
        for (field, f) in &stats.fields {
            let points: Vec<String> = f
                .calibration
                .iter()
                .enumerate()
                .filter(|(_, b)| b.values > 0)
                .map(|(k, b)| {
                    let upper = CONFIDENCE_BUCKETS.get(k + 1).copied().unwrap_or(1.0);
                    let mid = (b.from + upper) / 2.0;
                    format!("{:.1},{:.1}", x(mid), y(b.correct as f64 / b.values as f64))
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            let colour = colours[i % colours.len()];
            let _ = write!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
                points.join(" ")
            );
            let _ = write!(
                legend,
                r#"<span style="color:{colour}">■ {}.{}</span> "#,
                escape(profile),
                escape(field)
            );
            i += 1;
        }
    }
    svg.push_str("</svg>");
    format!("{svg}<p>{legend}</p>")
}

/// Documents by character error rate, in tenths.
fn cer_plot(run: &RunRecord) -> String {
    let mut bins = [0u64; 11];
    for d in &run.documents {
        if let Some(cer) = d.cer {
            bins[((cer * 10.0).floor() as usize).min(10)] += 1;
        }
    }
    let max = bins.iter().copied().max().unwrap_or(0).max(1) as f64;
    let (w, h, bar) = (380.0, 180.0, 30.0);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="CER distribution">"#
    );
    for (i, n) in bins.iter().enumerate() {
        let bh = (h - 40.0) * *n as f64 / max;
        let x = 10.0 + i as f64 * (bar + 3.0);
        let label = if i == 10 {
            "≥1".to_owned()
        } else {
            format!(".{i}")
        };
        let _ = write!(
            svg,
            r##"<rect x="{x:.0}" y="{:.1}" width="{bar}" height="{bh:.1}" fill="#3bb273"><title>{n} documents</title></rect><text x="{:.0}" y="{:.0}" font-size="10">{label}</text><text x="{:.0}" y="{:.1}" font-size="10">{n}</text>"##,
            h - 20.0 - bh,
            x + 6.0,
            h - 6.0,
            x + 8.0,
            h - 24.0 - bh
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The whole page.
pub fn html(run: &RunRecord) -> String {
    let mut page = String::new();
    let regressions: Vec<_> = run
        .comparison
        .iter()
        .flat_map(|c| c.regressions())
        .collect();
    let _ = write!(
        page,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ocrbridge quality · {run_id}</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ddd;padding:3px 8px;text-align:left}}th{{background:#f4f4f4}}.bad{{color:#b00;font-weight:bold}}.ok{{color:#070}}section{{margin-bottom:2em}}</style></head><body>
<section id="summary"><h1>Extraction quality · run {run_id}</h1><p>pack <b>{pack}</b> · vendor <b>{vendor}</b> {models} · {docs} documents · baseline {baseline}</p><p class="{class}">{verdict}</p><pre>{table}</pre></section>"#,
        run_id = escape(&run.run_id),
        pack = escape(&run.pack),
        vendor = escape(&run.vendor),
        models = escape(
            &run.models
                .iter()
                .map(|(p, m)| format!("{p}: {m}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        docs = run.documents.len(),
        baseline = run
            .comparison
            .as_ref()
            .map_or("none (this run can be pinned as one)".to_owned(), |c| {
                escape(&c.baseline_run)
            }),
        class = if regressions.is_empty() { "ok" } else { "bad" },
        verdict = if regressions.is_empty() {
            "no regression against the baseline".to_owned()
        } else {
            format!(
                "REGRESSION: {}",
                regressions
                    .iter()
                    .map(|r| format!(
                        "{}.{} ({} documents flipped to wrong)",
                        r.profile,
                        r.field,
                        r.right_to_wrong.len()
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        table = escape(&table(run)),
    );
    let _ = write!(
        page,
        r#"<section id="accuracy"><h2>Field accuracy (blue) against the baseline (grey)</h2>{}</section>"#,
        accuracy_plot(run)
    );
    let _ = write!(
        page,
        r#"<section id="calibration"><h2>Calibration: accuracy per confidence bucket</h2>{}</section>"#,
        calibration_plot(run)
    );
    let _ = write!(
        page,
        r#"<section id="cer"><h2>Character error rate per document</h2>{}</section>"#,
        cer_plot(run)
    );
    let items: Vec<String> = run
        .scores
        .iter()
        .filter_map(|(profile, stats)| {
            let items = stats.items.as_ref()?;
            Some(format!(
                "<li>{}: {}</li>",
                escape(profile),
                escape(&items_line(items))
            ))
        })
        .collect();
    if !items.is_empty() {
        let _ = write!(
            page,
            r#"<section id="items"><h2>Line items (paired by optimal assignment)</h2><ul>{}</ul></section>"#,
            items.concat()
        );
    }
    page.push_str(r#"<section id="flipped"><h2>Flipped documents</h2>"#);
    let flips: Vec<_> = run
        .comparison
        .iter()
        .flat_map(|c| c.fields.iter())
        .flat_map(|f| {
            f.right_to_wrong
                .iter()
                .map(move |x| (f, "right → wrong", x))
                .chain(
                    f.wrong_to_right
                        .iter()
                        .map(move |x| (f, "wrong → right", x)),
                )
        })
        .collect();
    if flips.is_empty() {
        page.push_str("<p>none</p>");
    } else {
        page.push_str("<table><tr><th>field</th><th>document</th><th>flip</th><th>expected</th><th>baseline read</th><th>now reads</th><th>confidence</th><th>raw payloads</th></tr>");
        for (f, direction, x) in flips {
            let _ = write!(
                page,
                r#"<tr><td>{}.{}</td><td>{}</td><td class="{}">{direction}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                escape(&f.profile),
                escape(&f.field),
                escape(&x.key),
                if direction.ends_with("wrong") {
                    "bad"
                } else {
                    "ok"
                },
                escape(&x.expected),
                escape(x.before.as_deref().unwrap_or("(null)")),
                escape(x.after.as_deref().unwrap_or("(null)")),
                x.confidence.map_or("-".into(), |c| format!("{c:.2}")),
                x.raw.as_deref().map_or("-".into(), |r| format!(
                    r#"<a href="{0}">{0}</a>"#,
                    escape(r)
                )),
            );
        }
        page.push_str("</table>");
    }
    page.push_str("</section>");
    page.push_str(r#"<section id="documents"><h2>Documents</h2><table><tr><th>document</th><th>state</th><th>wrong or missing</th><th>CER</th><th>rules</th><th>latency</th><th>cost</th></tr>"#);
    for d in &run.documents {
        let wrong: Vec<String> = d
            .fields
            .iter()
            .filter(|(_, f)| !f.correct)
            .map(|(n, f)| {
                format!(
                    "{n}: {} ≠ {}",
                    f.extracted.as_deref().unwrap_or("(null)"),
                    f.expected
                )
            })
            .collect();
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&d.key),
            escape(&d.state),
            escape(&wrong.join("; ")),
            d.cer.map_or("-".into(), pct),
            escape(&d.rules.join(", ")),
            d.latency_ms.map_or("-".into(), |ms| format!("{ms} ms")),
            escape(d.cost.as_deref().unwrap_or("-")),
        );
    }
    page.push_str("</table></section></body></html>\n");
    page
}
