//! Every real function binary, run under the AWS Lambda Runtime Interface Emulator (the one
//! shipped in the aws-sam-cli wheel) with its sample event from `events/`: the `sam local invoke`
//! path, without Docker. The binaries are the debug builds `make test` makes first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ocrbridge_local::pipeline::{binary_environment, PipelineOptions};
use ocrbridge_local::rie::{emulator, Emulated};
use ocrbridge_tests::{sample_event as event, shared_dir, stack, TestStack};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn binaries() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"))
        .join("debug")
}

/// Starts `name` under the emulator, on loopback only, with the stack's environment.
fn start(name: &str, env: &BTreeMap<String, String>) -> Emulated {
    let rie = emulator(&root()).unwrap_or_else(|e| panic!("{e}"));
    Emulated::start(&rie, &binaries().join(name), env, &std::env::temp_dir())
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn invoke(emulated: &Emulated, event: &Value) -> Value {
    emulated.invoke(event).await.unwrap_or_else(|e| {
        panic!(
            "{e}; log: {}",
            std::fs::read_to_string(&emulated.log).unwrap_or_default()
        )
    })
}

fn environment(s: &TestStack) -> BTreeMap<String, String> {
    // No vendor runs here; the functions only need a URL that fails fast.
    binary_environment(
        &s.stack,
        &s.endpoint,
        "http://127.0.0.1:9",
        &PipelineOptions::default(),
    )
    .unwrap()
}

#[tokio::test]
async fn every_function_binary_handles_its_sample_event_under_the_emulator() {
    let s = stack().await;
    let env = environment(&s);
    s.put(
        "receipts/2026/store receipt #1.jpg",
        std::fs::read(shared_dir().join("fixtures/inputs/receipt.jpg")).unwrap(),
        Some("image/jpeg"),
    )
    .await;

    let intake = start("intake", &env);
    let out = invoke(&intake, &event("s3-put.json", &s)).await;
    assert!(
        out["outcomes"][0]
            .as_str()
            .unwrap_or_default()
            .starts_with("Accepted"),
        "{out}"
    );
    let out = invoke(&intake, &event("sqs-s3-put.json", &s)).await;
    assert_eq!(out["batchItemFailures"], serde_json::json!([]), "{out}");

    // The sample submit and result events name a job this stack does not have: poison,
    // dead-lettered with the reason, and acknowledged.
    let submit = start("submit", &env);
    let out = invoke(&submit, &event("sqs-submit.json", &s)).await;
    assert_eq!(out["batchItemFailures"], serde_json::json!([]), "{out}");
    assert_eq!(s.drain(&s.config.submit_dlq_url).await.len(), 1);
    let parse = start("parse", &env);
    let out = invoke(&parse, &event("sqs-result.json", &s)).await;
    assert_eq!(out["batchItemFailures"], serde_json::json!([]), "{out}");
    assert_eq!(s.drain(&s.config.results_dlq_url).await.len(), 1);

    // The sample webhook carries a placeholder signature: verified and refused, as HTTP.
    let webhook = start("webhook", &env);
    let out = invoke(&webhook, &event("function-url-webhook.json", &s)).await;
    assert_eq!(out["statusCode"], 401, "{out}");

    // The sample fetch asks for the instance metadata service: refused, as HTTP, and recorded.
    let fetch = start("fetch", &env);
    let out = invoke(&fetch, &event("function-url-fetch.json", &s)).await;
    assert_eq!(out["statusCode"], 422, "{out}");
    let body: Value = serde_json::from_str(out["body"].as_str().unwrap_or_default()).unwrap();
    assert_eq!(body["error"], "address_not_public", "{body}");

    let reconcile = start("reconcile", &env);
    let out = invoke(&reconcile, &event("schedule.json", &s)).await;
    assert_eq!(out["errors"], 0, "{out}");
    assert!(out["stuck"].as_u64().is_some(), "{out}");

    let rotate = start("rotate", &env);
    let out = invoke(&rotate, &event("rotation-createSecret.json", &s)).await;
    assert_eq!(out, Value::Null, "createSecret succeeded: {out}");
    let pending = s.secret(&s.config.webhook_secret, "AWSPENDING").await;
    assert!(pending.starts_with("whsec_"));

    // The emulator reports each cold start.
    for e in [
        &intake, &submit, &parse, &webhook, &fetch, &reconcile, &rotate,
    ] {
        let log = std::fs::read_to_string(&e.log).unwrap_or_default();
        assert!(log.contains("INIT REPORT(durationMs:"), "{log}");
    }
}
