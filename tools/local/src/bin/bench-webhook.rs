//! The public endpoint under hostile load: the webhook function gets a shuffled mix of genuine,
//! forged, replayed, stale, oversized and malformed deliveries — by default its handler called
//! in-process (the handler's own figures), with `--emulator DIR` the real `webhook` binary from
//! DIR under the Lambda Runtime Interface Emulator, each delivery a Function URL event over HTTP
//! (what Lambda runs; Secrets Manager reads counted by moto's request recorder).
//!
//! ```text
//! bench-webhook [--requests N] [--emulator target/release]
//!     (moto must be running; scripts/bench-webhook.sh starts it)
//! ```
//! Reports: forgeries accepted (must be 0), duplicate notices (must be 0), Secrets Manager reads
//! (bounded by the miss-refresh interval, not by the forged count), and p50/p95 latency per
//! class. Exits non-zero if a forgery got through or a notice was duplicated.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use ocrbridge::aws::{local_sdk_config, AwsClients};
use ocrbridge::keyring::{Keyring, Secret, Stage};
use ocrbridge::ledger::Ledger;
use ocrbridge::metrics::Metrics;
use ocrbridge::queue::{Queue, ResultNotice};
use ocrbridge::signature::sign_standard;
use ocrbridge::time::UnixMillis;
use ocrbridge_local::bench::{fresh_stack, Flags};
use ocrbridge_local::moto;
use rand::seq::SliceRandom;
use serde_json::{json, Value};
use webhook::{Webhook, WebhookConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Genuine,
    Forged,
    Replayed,
    Stale,
    Oversized,
    Malformed,
}

fn event(headers: &[(String, String)], body: &[u8]) -> LambdaFunctionUrlRequest {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    serde_json::from_value(json!({
        "version": "2.0", "rawPath": "/", "rawQueryString": "", "headers": headers,
        "requestContext": {"http": {"method": "POST", "path": "/"}, "timeEpoch": 0},
        "body": String::from_utf8_lossy(body), "isBase64Encoded": false,
    }))
    .expect("a Function URL event")
}

fn signed(secret: &str, id: &str, ts: i64, body: &[u8]) -> Vec<(String, String)> {
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts.to_string()),
        (
            "webhook-signature".into(),
            sign_standard(&Secret::new(secret), id, ts, body).unwrap_or_default(),
        ),
    ]
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    (sorted[i].as_secs_f64() * 1e6).round() / 1e3
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let flags = Flags::from_env();
    let n: usize = flags.parse("--requests", 10_000);
    let endpoint = moto::endpoint_from_env();
    let clients = AwsClients::from_sdk_config(&local_sdk_config(&endpoint));
    let stack = fresh_stack(&clients, &endpoint, "bench-webhook").await?;
    let config = stack.stack_config().map_err(|e| e.to_string())?;
    let secret = vendor_sim::webhooks::generate_secret();
    clients
        .secrets()
        .put_secret_value()
        .secret_id(&config.webhook_secret)
        .secret_string(&secret)
        .version_stages("AWSCURRENT")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let emulated = match flags.get("--emulator") {
        None => None,
        Some(dir) => {
            let root = ocrbridge_local::template_path().with_file_name("");
            let rie = ocrbridge_local::rie::emulator(&root)?;
            let options = ocrbridge_local::pipeline::PipelineOptions::default();
            let env = ocrbridge_local::pipeline::binary_environment(
                &stack,
                &endpoint,
                "http://127.0.0.1:9",
                &options,
            )?;
            let log_dir = root.join(".local");
            std::fs::create_dir_all(&log_dir).map_err(|e| e.to_string())?;
            Some(ocrbridge_local::rie::Emulated::start(
                &rie,
                &std::path::Path::new(&dir).join("webhook"),
                &env,
                &log_dir,
            )?)
        }
    };
    let webhook = Webhook {
        keyring: Keyring::new(
            clients.secrets(),
            &config.webhook_secret,
            &[Stage::Current, Stage::Pending, Stage::Previous],
            ocrbridge::keyring::DEFAULT_MAX_AGE,
        ),
        ledger: Ledger::new(clients.dynamodb.clone(), config.ledger_tables()),
        queue: Queue::new(clients.sqs.clone()),
        metrics: Metrics::memory("webhook"),
        stack: config.clone(),
        config: WebhookConfig::from_lookup(|_| None).map_err(|e| e.to_string())?,
    };
    // The mix: 40% genuine, 20% forged, 15% replayed within the window, 10% stale, 10%
    // oversized, 5% malformed — 60% hostile.
    let now = (UnixMillis::now().0 / 1000) as i64;
    let forger = vendor_sim::webhooks::generate_secret();
    let mut plan: Vec<(Class, LambdaFunctionUrlRequest)> = Vec::with_capacity(n);
    let mut genuine = Vec::new();
    for i in 0..n * 40 / 100 {
        let body = json!({"type": "document.succeeded", "data": {"id": format!("doc_{i}"), "status": "succeeded",
            "external_ref": format!("doc-{:040x}", i)}}).to_string().into_bytes();
        let h = signed(&secret, &format!("msg_g{i}"), now, &body);
        genuine.push((h.clone(), body.clone()));
        plan.push((Class::Genuine, event(&h, &body)));
    }
    for i in 0..n * 20 / 100 {
        let (_, body) = &genuine[i % genuine.len()];
        plan.push((
            Class::Forged,
            event(&signed(&forger, &format!("msg_f{i}"), now, body), body),
        ));
    }
    for i in 0..n * 15 / 100 {
        let (h, body) = &genuine[i % genuine.len()];
        plan.push((Class::Replayed, event(h, body)));
    }
    for i in 0..n * 10 / 100 {
        let (_, body) = &genuine[i % genuine.len()];
        let old = now - 3_600;
        plan.push((
            Class::Stale,
            event(&signed(&secret, &format!("msg_s{i}"), old, body), body),
        ));
    }
    let big = vec![b' '; 300 * 1024];
    for i in 0..n * 10 / 100 {
        plan.push((
            Class::Oversized,
            event(&signed(&secret, &format!("msg_o{i}"), now, &big), &big),
        ));
    }
    for i in 0..n - plan.len() {
        let body = b"{not json".to_vec();
        plan.push((
            Class::Malformed,
            event(&signed(&secret, &format!("msg_m{i}"), now, &body), &body),
        ));
    }
    plan.shuffle(&mut rand::rng());
    let mut latency: BTreeMap<Class, Vec<Duration>> = BTreeMap::new();
    let mut statuses: BTreeMap<Class, BTreeMap<i64, usize>> = BTreeMap::new();
    if let Some(emulated) = &emulated {
        // The first invocation starts the binary (its init); not a delivery's latency.
        let _ = emulated.invoke(&json!({})).await;
        moto::recorder(&endpoint, "reset-recording").await?;
        moto::recorder(&endpoint, "start-recording").await?;
    }
    let started = Instant::now();
    for (class, ev) in &plan {
        let t = Instant::now();
        let status = match &emulated {
            None => webhook.handle_event(ev).await.status_code,
            Some(binary) => {
                let event = serde_json::to_value(ev).map_err(|e| e.to_string())?;
                let answer = binary.invoke(&event).await?;
                answer["statusCode"].as_i64().unwrap_or(-1)
            }
        };
        latency.entry(*class).or_default().push(t.elapsed());
        *statuses
            .entry(*class)
            .or_default()
            .entry(status)
            .or_default() += 1;
    }
    let total = started.elapsed();
    let secret_reads = match &emulated {
        None => webhook.keyring.fetches(),
        Some(_) => {
            moto::recorder(&endpoint, "stop-recording").await?;
            let recording = moto::recorder(&endpoint, "download-recording").await?;
            recording
                .lines()
                .filter(|l| l.contains("secretsmanager.GetSecretValue"))
                .count() as u64
        }
    };
    // What reached the results queue.
    let mut notices: Vec<ResultNotice> = Vec::new();
    loop {
        let out = clients
            .sqs
            .receive_message()
            .queue_url(&config.results_queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            if let Ok(n) = serde_json::from_str::<ResultNotice>(m.body().unwrap_or_default()) {
                notices.push(n);
            }
            let _ = clients
                .sqs
                .delete_message()
                .queue_url(&config.results_queue_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await;
        }
    }
    let events: BTreeSet<String> = notices.iter().filter_map(|n| n.event_id.clone()).collect();
    let forged_accepted = events.iter().filter(|e| !e.starts_with("msg_g")).count();
    let duplicates = notices.len() - events.len();
    let report = json!({
        "requests": n,
        "hostile_share": 1.0 - genuine.len() as f64 / n as f64,
        "seconds": (total.as_secs_f64() * 10.0).round() / 10.0,
        "notices": notices.len(),
        "genuine_deliveries": genuine.len(),
        "forgeries_accepted": forged_accepted,
        "duplicate_notices": duplicates,
        "mode": if emulated.is_some() { "binary under the Lambda RIE" } else { "handler in-process" },
        "secrets_manager_reads": secret_reads,
        "status_by_class": statuses.iter().map(|(c, s)| (format!("{c:?}"), json!(s))).collect::<BTreeMap<_, _>>(),
        "latency_ms": latency.iter_mut().map(|(c, l)| {
            l.sort();
            (format!("{c:?}"), json!({"p50": percentile(l, 0.5), "p95": percentile(l, 0.95)}))
        }).collect::<BTreeMap<_, _>>(),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    if forged_accepted > 0 || duplicates > 0 || notices.len() != genuine.len() {
        return Err(format!(
            "{forged_accepted} forgeries accepted, {duplicates} duplicate notices, {} notices for {} genuine deliveries",
            notices.len(),
            genuine.len()
        ));
    }
    Ok(())
}
