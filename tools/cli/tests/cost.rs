//! `ocrbridge cost` over time against the local stack: documents run through the pipeline, then
//! back-dated (their arrival and source set in the ledger, as two weeks of traffic would have
//! left them); `--since`/`--until` keep a window and `--by` picks the lines.

mod support;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use ocrbridge::job::JobState;
use ocrbridge::time::UnixMillis;
use ocrbridge_local::pipeline::{Pipeline, PipelineOptions};
use ocrbridge_tests::{job_id_for, run_until_settled, stack, text_pdf};
use serde_json::Value;
use support::{env_file, json, ocrbridge};

const DAY_MS: u64 = 86_400_000;

fn day(t: UnixMillis) -> String {
    chrono::DateTime::from_timestamp_millis(t.0 as i64)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string()
}

fn docs(lines: &Value, column: &str) -> Vec<(String, u64)> {
    lines["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l[column].as_str().unwrap().to_owned(),
                l["documents"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_is_read_by_window_and_by_day_source_or_model() {
    let s = stack().await;
    let p = Pipeline::start(s.clients.clone(), &s.stack, PipelineOptions::default())
        .await
        .unwrap();
    let shops = ["NORTH BAKERY", "SOUTH BAKERY", "EAST BAKERY"];
    let mut ids = Vec::new();
    for (i, shop) in shops.iter().enumerate() {
        let bytes = text_pdf(&[shop, "Total: 3.20"]);
        s.put(&format!("receipts/cost-{i}.pdf"), bytes.clone(), None)
            .await;
        ids.push(job_id_for(&bytes, "receipt"));
    }
    let jobs = run_until_settled(&p, &s.ledger, &ids, Duration::from_secs(90)).await;
    for job in &jobs {
        assert!(
            matches!(job.state, JobState::Completed | JobState::NeedsReview),
            "{job:?}"
        );
    }
    // Three days, two sources: 3 days ago by email, yesterday by scanner, today by email.
    let now = UnixMillis::now();
    let arrivals = [
        (UnixMillis(now.0 - 3 * DAY_MS), "email"),
        (UnixMillis(now.0 - DAY_MS), "scanner"),
        (now, "email"),
    ];
    for (id, (at, source)) in ids.iter().zip(arrivals) {
        s.clients
            .dynamodb
            .update_item()
            .table_name(&s.config.jobs_table)
            .key("job_id", AttributeValue::S(id.to_string()))
            .update_expression("SET created_at = :at, channel = :source")
            .expression_attribute_values(":at", AttributeValue::N(at.0.to_string()))
            .expression_attribute_values(":source", AttributeValue::S(source.into()))
            .send()
            .await
            .unwrap();
    }
    let env = env_file(&s);

    let by_day = json(&ocrbridge(&env, &["cost", "--by", "day", "--json"]).await);
    let expected: Vec<(String, u64)> = arrivals.iter().map(|(at, _)| (day(*at), 1)).collect();
    assert_eq!(docs(&by_day, "day"), expected, "{by_day}");
    let per_doc: Vec<&Value> = by_day["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["per_document_usd"])
        .collect();
    assert!(per_doc.iter().all(|v| v.is_string()), "priced: {by_day}");

    // The last two days, by source: the email of three days ago is outside.
    let recent =
        json(&ocrbridge(&env, &["cost", "--since", "2d", "--by", "source", "--json"]).await);
    assert_eq!(
        docs(&recent, "source"),
        vec![("email".into(), 1), ("scanner".into(), 1)],
        "{recent}"
    );
    // Before yesterday's midnight: only the first.
    let until = day(UnixMillis(now.0 - DAY_MS));
    let older = json(
        &ocrbridge(
            &env,
            &["cost", "--until", &until, "--by", "model", "--json"],
        )
        .await,
    );
    let lines = older["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{older}");
    assert_eq!(lines[0]["vendor"], "sim");
    assert_eq!(lines[0]["documents"], 1);

    // The table names its window and its key.
    let table = ocrbridge(&env, &["cost", "--since", "2d", "--by", "day"]).await;
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success(), "{text}");
    assert!(text.contains("documents that arrived from"), "{text}");
    assert!(
        text.contains(&day(now)) && !text.contains(&day(arrivals[0].0)),
        "{text}"
    );

    let wrong = ocrbridge(&env, &["cost", "--by", "week"]).await;
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("--by takes"));
}
