//! `ocrbridge report --week` against the local stack: two weeks of traffic run through the real
//! pipeline, the first back-dated by seven days (its jobs in the ledger, and its metrics as
//! CloudWatch receives them from the functions' EMF), then read back through the ledger and
//! `GetMetricData` — and the HTML page opened in headless Chromium.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use ocrbridge::job::{JobId, JobState, StateChange};
use ocrbridge::queue::Queue;
use ocrbridge_local::pipeline::{Pipeline, PipelineOptions};
use ocrbridge_local::template::Template;
use ocrbridge_tests::{job_id_for, run_until_settled, set_faults, stack_from, text_pdf, TestStack};
use serde_json::{json, Value};
use support::{env_file, json, ocrbridge};

const WEEK: Duration = Duration::from_secs(7 * 86_400);

/// A PNG header of `width` × `height`: too small for intake (`image_too_small`).
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend_from_slice(&width.to_be_bytes());
    png.extend_from_slice(&height.to_be_bytes());
    png.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    png
}

/// Moves a job `back` in time, as if it had arrived and moved through its states then.
async fn back_date(s: &TestStack, id: &JobId, back: Duration) {
    let ms = back.as_millis() as u64;
    let item = s
        .clients
        .dynamodb
        .get_item()
        .table_name(&s.config.jobs_table)
        .key("job_id", AttributeValue::S(id.to_string()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let earlier = |name: &str| -> Option<AttributeValue> {
        let n: u64 = item.get(name)?.as_n().ok()?.parse().ok()?;
        Some(AttributeValue::N((n - ms).to_string()))
    };
    let history: Vec<AttributeValue> = item["history"]
        .as_l()
        .unwrap()
        .iter()
        .map(|entry| {
            let mut change = StateChange::parse(entry.as_s().unwrap()).unwrap();
            change.at.0 -= ms;
            AttributeValue::S(change.encode())
        })
        .collect();
    let mut values = HashMap::from([(":history".to_owned(), AttributeValue::L(history))]);
    let mut sets = vec!["history = :history".to_owned()];
    for name in ["created_at", "state_since", "queued_at"] {
        if let Some(v) = earlier(name) {
            values.insert(format!(":{name}"), v);
            sets.push(format!("{name} = :{name}"));
        }
    }
    s.clients
        .dynamodb
        .update_item()
        .table_name(&s.config.jobs_table)
        .key("job_id", AttributeValue::S(id.to_string()))
        .update_expression(format!("SET {}", sets.join(", ")))
        .set_expression_attribute_values(Some(values))
        .send()
        .await
        .unwrap();
}

/// Runs the pipeline until `ids` settle and intake has taken every upload.
async fn settle(s: &TestStack, p: &Pipeline, ids: &[JobId]) {
    let jobs = run_until_settled(p, &s.ledger, ids, Duration::from_secs(120)).await;
    assert!(
        jobs.len() == ids.len() && jobs.iter().all(|j| j.state.is_settled()),
        "{jobs:#?}"
    );
    let queue = Queue::new(s.clients.sqs.clone());
    for _ in 0..100 {
        if queue.depth(&s.config.intake_queue_url).await.unwrap() == 0 {
            return;
        }
        p.pump_once().await;
    }
    panic!("intake never emptied its queue");
}

fn row<'a>(rows: &'a Value, key: &[&str]) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == json!(key))
        .unwrap_or_else(|| panic!("no line {key:?} in {rows}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_weekly_report_compares_two_weeks_from_the_ledger_and_cloudwatch() {
    // An environment of its own: the metric namespace is the environment's, and other tests'
    // stacks share moto.
    let environment = format!("week{}", std::process::id() % 100_000);
    let template = std::fs::read_to_string(ocrbridge_local::template_path()).unwrap();
    let s = stack_from(
        Template::parse(&template).unwrap(),
        &[("EnvironmentName", environment.as_str())],
    )
    .await;
    let p = Pipeline::start(s.clients.clone(), &s.stack, PipelineOptions::default())
        .await
        .unwrap();

    // Last week: two receipts, and an image intake rejects.
    let last: Vec<Vec<u8>> = ["OLD BAKERY", "OLD DINER"]
        .iter()
        .map(|shop| text_pdf(&[shop, "Total: 4.50"]))
        .collect();
    let tiny = png(10, 10);
    let mut last_ids = vec![job_id_for(&tiny, "receipt")];
    s.put("receipts/last-tiny.png", tiny, Some("image/png"))
        .await;
    for (i, bytes) in last.iter().enumerate() {
        s.put(&format!("receipts/last-{i}.pdf"), bytes.clone(), None)
            .await;
        last_ids.push(job_id_for(bytes, "receipt"));
    }
    settle(&s, &p, &last_ids).await;
    for id in &last_ids {
        back_date(&s, id, WEEK).await;
    }
    let put = p.publish_metrics(WEEK).await.unwrap();
    assert!(put > 0, "last week's metrics reach CloudWatch");

    // This week: three receipts, one uploaded twice; the vendor throttles one submission,
    // fails one job and delivers one webhook twice.
    let this: Vec<Vec<u8>> = ["NEW BAKERY", "NEW DINER", "NEW CAFE"]
        .iter()
        .map(|shop| text_pdf(&[shop, "Total: 9.00"]))
        .collect();
    let this_ids: Vec<JobId> = this.iter().map(|b| job_id_for(b, "receipt")).collect();
    set_faults(
        &p.sim,
        json!({"seed": 3, "retry_after_secs": 1, "force": {
            "throttle": [{"subject": this_ids[1].as_str()}],
            "failed_job": [{"subject": this_ids[2].as_str()}],
            "duplicate_webhook": [{"subject": this_ids[0].as_str()}],
        }}),
    )
    .await;
    for (i, bytes) in this.iter().enumerate() {
        s.put(&format!("receipts/this-{i}.pdf"), bytes.clone(), None)
            .await;
    }
    s.put("receipts/this-0-again.pdf", this[0].clone(), None)
        .await;
    settle(&s, &p, &this_ids).await;
    // The second delivery of a webhook lands after the first settled the job.
    for _ in 0..100 {
        if p.webhook
            .metrics
            .recorded()
            .contains_key("WebhookDuplicates")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    p.publish_metrics(Duration::ZERO).await.unwrap();

    let env = env_file(&s);
    let html = std::env::temp_dir().join(format!("{}-week.html", s.stack.stack_name()));
    let out = ocrbridge(
        &env,
        &[
            "--json",
            "report",
            "--week",
            "--html",
            html.to_str().unwrap(),
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let report = json(&out);
    let (t, l) = (&report["this_week"], &report["last_week"]);

    // Volume, from the ledger.
    assert_eq!(l["volume"]["arrived"], 3);
    assert_eq!(
        l["volume"]["completed"].as_u64().unwrap() + l["volume"]["needs_review"].as_u64().unwrap(),
        2
    );
    assert_eq!(l["volume"]["rejected"], 1);
    assert_eq!(
        t["volume"]["arrived"], 3,
        "the re-upload is no new document"
    );
    assert_eq!(t["volume"]["submitted"], 3);
    assert_eq!(t["volume"]["failed"], 1);
    // Cost per line: the two weeks' own documents.
    let line = ["sim", "receipt", "receipt"];
    assert_eq!(row(&l["cost_by_line"], &line)["documents"], 2);
    assert_eq!(row(&t["cost_by_line"], &line)["documents"], 2);
    // Failure reasons, each in its week, with document type and source.
    let reasons = |w: &Value| -> Vec<(String, String)> {
        w["failures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["reason"].as_str().unwrap().to_owned(),
                    f["document_type"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        reasons(l),
        [("image_too_small".to_owned(), "image".to_owned())]
    );
    let failed = s.ledger.get_job(&this_ids[2]).await.unwrap().unwrap();
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(
        reasons(t),
        [(failed.reason.unwrap().code, "pdf_text".to_owned())]
    );
    // Latency: arrival to result, per week.
    for w in [l, t] {
        let one_page = &w["latency"].as_array().unwrap()[0];
        assert_eq!(one_page["pages"], "1");
        assert_eq!(one_page["documents"], 2);
        assert!(one_page["p50_ms"].as_u64().unwrap() > 0);
        assert!(one_page["p50_ms"].as_u64() <= one_page["p99_ms"].as_u64());
    }
    // From CloudWatch: this week's throttle, re-upload and webhook replay; none last week.
    let retries: f64 = t["retries_by_cause"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!(retries >= 1.0, "{t}");
    assert_eq!(l["retries_by_cause"], json!({}));
    assert_eq!(t["duplicates"]["reuploads_deduplicated"], 1.0);
    assert_eq!(l["duplicates"]["reuploads_deduplicated"], 0.0);
    assert!(t["duplicates"]["webhook_replays_refused"].as_f64().unwrap() >= 1.0);
    assert_eq!(l["duplicates"]["webhook_replays_refused"], 0.0);

    // The Markdown says the same.
    let out = ocrbridge(&env, &["report", "--week"]).await;
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("| documents arrived | 3 | 3 | 0 |"), "{text}");
    assert!(
        text.contains("| re-uploads deduplicated at intake | 0 | 1 | new |"),
        "{text}"
    );

    // The page, in a real browser: it renders its charts and tables.
    let dom = chromium(&html, "--dump-dom");
    assert!(dom.contains("ocrbridge weekly report"), "{dom}");
    for chart in [
        "chart-documents",
        "chart-cost",
        "chart-latency",
        "chart-failures",
    ] {
        assert!(dom.contains(&format!("id=\"{chart}\"")), "{chart}");
    }
    assert_eq!(
        dom.matches("class=\"bar ").count(),
        // 7 document lines, 1 cost line, 3 latency percentiles, 2 failure reasons: two bars each.
        2 * (7 + 1 + 3 + 2),
        "{dom}"
    );
    let shot = html.with_extension("png");
    chromium(&html, &format!("--screenshot={}", shot.to_str().unwrap()));
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a screenshot with something on it"
    );
    eprintln!("screenshot: {}", shot.display());
}

/// Runs headless Chromium on `page` with `flag` (`--dump-dom`, `--screenshot=…`); its stdout.
fn chromium(page: &Path, flag: &str) -> String {
    let binary = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("Chromium is installed (scripts/setup.sh installs Debian's chromium)");
    let out = std::process::Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1280,2400",
            flag,
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
