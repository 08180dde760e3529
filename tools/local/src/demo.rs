//! The demo: upload a folder of documents into the local bucket, as a user would, run the
//! pipeline until every document settles, print a summary table, and write the results.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use ocrbridge::job::{JobId, JobState};
use ocrbridge::ledger::Ledger;
use serde_json::{json, Value};

use crate::pipeline::Pipeline;

/// Every file under `dir`, with its key: the path relative to `dir`, so `receipts/x.jpg` lands
/// under the `receipts/` prefix (profile `receipt`).
pub fn documents(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(dir) {
                let key = rel.to_string_lossy().replace('\\', "/");
                if !key.starts_with('.') && !key.ends_with(".py") {
                    out.push((key, path));
                }
            }
        }
    }
    out.sort();
    out
}

fn content_type(key: &str) -> &'static str {
    match key
        .rsplit('.')
        .next()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("pdf") => "application/pdf",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("tif" | "tiff") => "image/tiff",
        Some("webp") => "image/webp",
        Some("txt") => "text/plain",
        _ => "application/octet-stream",
    }
}

/// One row of the summary.
#[derive(Debug, Clone)]
pub struct Row {
    pub key: String,
    pub job_id: Option<JobId>,
    pub state: String,
    pub reason: String,
    pub pages: String,
    /// Which vendor (and model) produced the result, from the normalized document.
    pub vendor: String,
    pub vendor_job: String,
    pub fields: String,
    pub confidence: String,
    pub latency: String,
}

/// The job intake made of an uploaded object, once it has: from the ledger, so it works with
/// the stack's default `TAG_SOURCE_OBJECTS=off`.
pub async fn job_id_of(ledger: &Ledger, bucket: &str, key: &str) -> Option<JobId> {
    ledger.job_for_upload(bucket, key).await.ok().flatten()
}

/// Uploads, runs, and reports. Returns the rows, in upload order.
pub async fn run(
    p: &Pipeline,
    docs: &[(String, PathBuf)],
    timeout: Duration,
    out: Option<&Path>,
) -> Result<Vec<Row>, String> {
    let started = Instant::now();
    for (key, path) in docs {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        p.clients
            .s3
            .put_object()
            .bucket(&p.config.documents_bucket)
            .key(key)
            .content_type(content_type(key))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| aws_sdk_s3::error::DisplayErrorContext(e).to_string())?;
        eprintln!("uploaded s3://{}/{key}", p.config.documents_bucket);
    }
    let mut ids: BTreeMap<String, JobId> = BTreeMap::new();
    let mut last_report = Instant::now();
    // The event sources run on their own, as Lambda's do; this loop only watches.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let watch = async {
        loop {
            let mut states: BTreeMap<String, usize> = BTreeMap::new();
            let mut settled = 0;
            for (key, _) in docs {
                if !ids.contains_key(key) {
                    if let Some(id) =
                        job_id_of(&p.intake.ledger, &p.config.documents_bucket, key).await
                    {
                        ids.insert(key.clone(), id);
                    }
                }
                let state = match ids.get(key) {
                    Some(id) => p
                        .intake
                        .ledger
                        .get_job(id)
                        .await
                        .ok()
                        .flatten()
                        .map(|j| j.state),
                    None => None,
                };
                let name = state.map_or("uploaded".to_owned(), |s| s.to_string());
                if state.is_some_and(|s| s.is_terminal() || s == JobState::NeedsReview) {
                    settled += 1;
                }
                *states.entry(name).or_default() += 1;
            }
            if last_report.elapsed() >= Duration::from_secs(2) || settled == docs.len() {
                last_report = Instant::now();
                let line: Vec<String> = states.iter().map(|(s, n)| format!("{s} {n}")).collect();
                eprintln!(
                    "[{:>5.1}s] {}",
                    started.elapsed().as_secs_f64(),
                    line.join(" · ")
                );
            }
            if settled == docs.len() {
                break;
            }
            if started.elapsed() > timeout {
                eprintln!("timed out after {timeout:?}; reporting what settled");
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    tokio::join!(p.run_until(&stop), watch);

    let mut rows = Vec::new();
    for (key, _) in docs {
        let job = match ids.get(key) {
            Some(id) => p.intake.ledger.get_job(id).await.ok().flatten(),
            None => None,
        };
        let Some(job) = job else {
            rows.push(Row {
                key: key.clone(),
                job_id: None,
                state: "unknown".into(),
                reason: "no job yet".into(),
                pages: "-".into(),
                vendor: "-".into(),
                vendor_job: "-".into(),
                fields: "-".into(),
                confidence: "-".into(),
                latency: "-".into(),
            });
            continue;
        };
        let summary: Value = job
            .result_summary
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null);
        let mut fields = Vec::new();
        let mut confidences = Vec::new();
        for name in [
            "merchant",
            "vendor_name",
            "invoice_number",
            "date",
            "issue_date",
            "total",
            "currency",
        ] {
            if let Some(v) = summary
                .get(name)
                .and_then(|f| f.get("value"))
                .and_then(Value::as_str)
            {
                fields.push(format!("{name}={v}"));
                if let Some(c) = summary[name]["confidence"].as_f64() {
                    confidences.push(c);
                }
            }
        }
        let latency = if job.state.is_terminal() || job.state == JobState::NeedsReview {
            format!(
                "{:.1}s",
                job.state_since.since(job.created_at).as_secs_f64()
            )
        } else {
            "-".into()
        };
        let mut vendor = "-".to_owned();
        if let Some(result_key) = &job.result_key {
            if let Ok(obj) = p
                .clients
                .s3
                .get_object()
                .bucket(&p.config.results_bucket)
                .key(result_key)
                .send()
                .await
            {
                if let Ok(bytes) = obj.body.collect().await {
                    let bytes = bytes.into_bytes();
                    if let Ok(doc) = serde_json::from_slice::<Value>(&bytes) {
                        let name = doc["vendor"]["name"].as_str().unwrap_or("?");
                        vendor = match doc["vendor"]["model"].as_str() {
                            Some(model) => format!("{name}/{model}"),
                            None => name.to_owned(),
                        };
                    }
                    if let Some(dir) = out {
                        let file = dir.join(format!("{}.json", key.replace('/', "__")));
                        let _ = std::fs::write(file, &bytes);
                    }
                }
            }
        }
        rows.push(Row {
            key: key.clone(),
            state: job.state.to_string(),
            reason: job
                .reason
                .as_ref()
                .map(|r| format!("{}: {}", r.code, r.message))
                .unwrap_or_default(),
            pages: job.inspection.pages.map_or("-".into(), |n| n.to_string()),
            vendor,
            vendor_job: job.vendor_job_id.clone().unwrap_or_else(|| "-".into()),
            fields: if fields.is_empty() {
                "-".into()
            } else {
                fields.join(" ")
            },
            confidence: if confidences.is_empty() {
                "-".into()
            } else {
                format!(
                    "{:.2}",
                    confidences.iter().sum::<f64>() / confidences.len() as f64
                )
            },
            latency,
            job_id: Some(job.id),
        });
    }
    if let Some(dir) = out {
        let summary: Vec<Value> = rows
            .iter()
            .map(|r| json!({"file": r.key, "job_id": r.job_id.as_ref().map(|j| j.to_string()), "state": r.state,
                            "reason": r.reason, "pages": r.pages, "vendor": r.vendor, "vendor_job": r.vendor_job, "fields": r.fields,
                            "confidence": r.confidence, "latency": r.latency}))
            .collect();
        std::fs::write(
            dir.join("summary.json"),
            serde_json::to_vec_pretty(&summary).unwrap_or_default(),
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(rows)
}

/// The summary table, for a terminal.
pub fn table(rows: &[Row]) -> String {
    let truncate = |s: &str, n: usize| {
        if s.chars().count() > n {
            format!("{}…", s.chars().take(n - 1).collect::<String>())
        } else {
            s.to_owned()
        }
    };
    let mut out = format!(
        "{:<34} {:<12} {:<5} {:<24} {:<14} {:<6} {:<8} {:<60} {}\n",
        "file", "state", "pages", "vendor", "vendor job", "conf", "latency", "key fields", "reason"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<34} {:<12} {:<5} {:<24} {:<14} {:<6} {:<8} {:<60} {}\n",
            truncate(&r.key, 34),
            r.state,
            r.pages,
            truncate(&r.vendor, 24),
            truncate(&r.vendor_job, 14),
            r.confidence,
            r.latency,
            truncate(&r.fields, 60),
            truncate(&r.reason, 90),
        ));
    }
    out
}
