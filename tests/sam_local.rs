//! Every function through `sam local invoke` (SAM's own command, in Docker), against the local
//! stack: moto for AWS, the vendor simulator for the vendor. One document goes the whole way —
//! intake, submit, the simulator's own signed webhook, parse — and each step's effect is checked
//! on the stack, not only the exit code; then reconcile, rotate and the quality benchmark do
//! their step.
//!
//! Needs Docker. Without a registry (CI) the invoke image is the local stand-in that
//! `scripts/lambda-image.sh` builds; with one, SAM's own image. The container reaches moto and
//! the simulator through Docker's bridge gateway (`scripts/docker-bridge.py`). Without Docker
//! this test fails and says so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use base64::Engine;
use ocrbridge::job::JobState;
use ocrbridge_local::sam_lambda;
use ocrbridge_tests::{all_jobs, sample_event, shared_dir, sim_stats, sqs_event, stack, TestStack};
use serde_json::{json, Value};
use vendor_sim::engine::EngineKind;
use vendor_sim::SimConfig;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What a script printed, or the test's failure (the script's own message is on stderr).
fn script(name: &str) -> String {
    sam_lambda::script(&root(), name).unwrap_or_else(|e| panic!("{e}"))
}

struct Sam {
    image_args: Vec<String>,
    env_vars: PathBuf,
    timings: Mutex<Vec<(String, Duration)>>,
}

impl Sam {
    /// `sam local invoke FUNCTION -e EVENT` with the stack's environment; the function's answer.
    fn invoke(&self, function: &str, event: &Value) -> Value {
        let file = std::env::temp_dir().join(format!(
            "ocrbridge-sam-event-{}-{function}.json",
            std::process::id()
        ));
        std::fs::write(&file, event.to_string()).unwrap();
        let started = Instant::now();
        let out = Command::new(root().join(".venv-sam/bin/sam"))
            .current_dir(root())
            .args(["local", "invoke", function, "-e"])
            .arg(&file)
            .arg("--env-vars")
            .arg(&self.env_vars)
            .args(["--parameter-overrides", "Architecture=x86_64"])
            .args(&self.image_args)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("SAM_CLI_TELEMETRY", "0")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("sam local invoke {function}: cannot start sam: {e}"));
        let took = started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "sam local invoke {function} failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
        assert!(
            stderr.contains("REPORT RequestId:"),
            "sam local invoke {function}: the function did not run:\n{stderr}"
        );
        self.timings
            .lock()
            .unwrap()
            .push((function.to_owned(), took));
        // SAM prints the function's answer as the last line of stdout.
        let answer = stdout.lines().rev().find(|l| !l.trim().is_empty());
        serde_json::from_str(answer.unwrap_or("null"))
            .unwrap_or_else(|e| panic!("{function} answered {stdout:?}: {e}\n{stderr}"))
    }
}

/// A Function URL event carrying a delivery exactly as the simulator sent it.
fn function_url_event(s: &TestStack, headers: &HeaderMap, body: &[u8]) -> Value {
    let mut event = sample_event("function-url-webhook.json", s);
    let mut h = serde_json::Map::new();
    for (name, value) in headers {
        h.insert(
            name.as_str().to_owned(),
            Value::String(value.to_str().unwrap_or_default().to_owned()),
        );
    }
    event["headers"] = Value::Object(h);
    event["body"] = Value::String(base64::engine::general_purpose::STANDARD.encode(body));
    event["isBase64Encoded"] = Value::Bool(true);
    event
}

type Deliveries = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// Where the simulator sends its webhooks: they are kept, to be handed to the function.
async fn capture_deliveries() -> (String, Deliveries) {
    let kept: Deliveries = Arc::default();
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::post(
                |State(kept): State<Deliveries>, headers: HeaderMap, body: Bytes| async move {
                    kept.lock().unwrap().push((headers, body));
                    "ok"
                },
            ),
        )
        .with_state(kept.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, kept)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_under_sam_local_invoke_does_its_step_on_the_local_stack() {
    let image_args = script("lambda-image.sh");
    let gateway = script("docker-gateway.sh");
    let binaries = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"))
        .join("debug");
    sam_lambda::lay_out(&root(), &binaries).unwrap_or_else(|e| panic!("{e}"));

    let s = stack().await;
    let webhook_secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes().repeat(2))
    );
    s.clients
        .secrets()
        .put_secret_value()
        .secret_id(&s.config.webhook_secret)
        .secret_string(&webhook_secret)
        .version_stages("AWSCURRENT")
        .send()
        .await
        .unwrap();
    let (webhook_url, deliveries) = capture_deliveries().await;
    let sim = s
        .start_sim(SimConfig {
            engine: EngineKind::Tesseract,
            webhook_url: Some(webhook_url),
            webhook_secrets: vec![webhook_secret.clone()],
            aws_endpoint: Some(s.endpoint.clone()),
            ..SimConfig::default()
        })
        .await;

    // The container sees the host through the gateway: moto and the simulator are forwarded.
    let mut environment: BTreeMap<String, String> = s.stack.function_environment().unwrap();
    environment.insert("AWS_ENDPOINT_URL".into(), s.endpoint.clone());
    environment.insert("VENDOR_BASE_URL".into(), sim.base_url());
    let benchmark_table = s
        .stack
        .physical("BenchmarkRunsTable")
        .unwrap()
        .ref_value
        .clone();
    environment.insert("BENCHMARK_RUNS_TABLE".into(), benchmark_table.clone());
    let (env_vars_json, ports) = sam_lambda::container_env_vars(&environment, &gateway);
    let bridge = sam_lambda::DockerBridge::start(&root(), &gateway, &ports)
        .unwrap_or_else(|e| panic!("{e}"));
    let env_vars =
        std::env::temp_dir().join(format!("ocrbridge-sam-env-{}.json", std::process::id()));
    std::fs::write(&env_vars, env_vars_json.to_string()).unwrap();
    let sam = Sam {
        image_args: image_args.split_whitespace().map(str::to_owned).collect(),
        env_vars,
        timings: Mutex::default(),
    };

    // intake: the uploaded receipt becomes a job and a submit message.
    s.put(
        "receipts/2026/store receipt #1.jpg",
        std::fs::read(shared_dir().join("fixtures/inputs/receipt.jpg")).unwrap(),
        Some("image/jpeg"),
    )
    .await;
    let out = sam.invoke("IntakeFunction", &sample_event("sqs-s3-put.json", &s));
    assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    let jobs = all_jobs(&s.ledger, 50).await;
    assert_eq!(jobs.len(), 1, "one job: {jobs:?}");
    let job_id = jobs[0].id.clone();
    let submits = s.drain(&s.config.submit_queue_url).await;
    assert_eq!(submits.len(), 1, "one submit message");

    // submit: the simulator receives the document once; the job waits for it.
    let out = sam.invoke(
        "SubmitFunction",
        &serde_json::to_value(sqs_event(
            &submits,
            &ocrbridge_tests::queue_arn(&s.config.submit_queue_url),
        ))
        .unwrap(),
    );
    assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    assert_eq!(sim_stats(&sim).await["submit_requests"], 1);
    let job = s.ledger.get_job(&job_id).await.unwrap().expect("the job");
    assert!(job.vendor_job_id.is_some(), "submitted: {job:?}");

    // webhook: the simulator's own signed delivery is accepted (a result notice); the same
    // delivery with a forged signature is refused.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (headers, body) = loop {
        // The simulator also reports progress; the delivery that matters says it is done.
        let done = deliveries
            .lock()
            .unwrap()
            .iter()
            .find(|(_, body)| {
                serde_json::from_slice::<Value>(body)
                    .is_ok_and(|b| b["data"]["status"] == "succeeded")
            })
            .cloned();
        if let Some(d) = done {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "the simulator never sent its webhook"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut forged = headers.clone();
    forged.insert(
        "webhook-signature",
        "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="
            .parse()
            .unwrap(),
    );
    let out = sam.invoke("WebhookFunction", &function_url_event(&s, &forged, &body));
    assert_eq!(out["statusCode"], 401, "a forged delivery: {out}");
    assert!(s.drain(&s.config.results_queue_url).await.is_empty());
    let out = sam.invoke("WebhookFunction", &function_url_event(&s, &headers, &body));
    assert_eq!(out["statusCode"], 200, "the simulator's delivery: {out}");
    let notices = s.drain(&s.config.results_queue_url).await;
    assert!(!notices.is_empty(), "a result notice");

    // parse: the result is fetched, normalized and stored; the job settles.
    let out = sam.invoke(
        "ParseFunction",
        &serde_json::to_value(sqs_event(
            &notices[..1],
            &ocrbridge_tests::queue_arn(&s.config.results_queue_url),
        ))
        .unwrap(),
    );
    assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    let job = s.ledger.get_job(&job_id).await.unwrap().expect("the job");
    assert!(
        matches!(job.state, JobState::Completed | JobState::NeedsReview),
        "parsed: {job:?}"
    );
    let stored = s
        .clients
        .s3
        .list_objects_v2()
        .bucket(&s.config.results_bucket)
        .send()
        .await
        .unwrap();
    assert!(stored.key_count().unwrap_or(0) > 0, "a stored result");

    // fetch: a URL to the instance metadata service is refused with its reason, and recorded
    // where the template lets it write (results/refused/url/).
    let out = sam.invoke(
        "FetchFunction",
        &sample_event("function-url-fetch.json", &s),
    );
    assert_eq!(out["statusCode"], 422, "{out}");
    assert!(
        out["body"]
            .as_str()
            .unwrap_or_default()
            .contains("address_not_public"),
        "{out}"
    );
    let recorded = s
        .clients
        .s3
        .list_objects_v2()
        .bucket(&s.config.results_bucket)
        .prefix(fetch::REFUSALS_PREFIX)
        .send()
        .await
        .unwrap();
    assert_eq!(recorded.key_count(), Some(1), "the refusal's record");

    // reconcile: a sweep over the stack, no errors.
    let out = sam.invoke("ReconcileFunction", &sample_event("schedule.json", &s));
    assert_eq!(out["errors"], 0, "{out}");
    assert!(out["stuck"].as_u64().is_some(), "{out}");

    // rotate: createSecret stages a new webhook secret.
    let out = sam.invoke(
        "RotateFunction",
        &sample_event("rotation-createSecret.json", &s),
    );
    assert_eq!(out, Value::Null, "createSecret succeeded: {out}");
    let pending = s.secret(&s.config.webhook_secret, "AWSPENDING").await;
    assert!(pending.starts_with("whsec_") && pending != webhook_secret);

    // rotate: the hourly key check proves the vendor key with one authenticated call.
    let out = sam.invoke("RotateFunction", &sample_event("rotate-key-check.json", &s));
    assert_eq!(out, Value::Null, "the key check passed: {out}");

    // benchmark: the scheduled start uploads the pack as benchmark traffic and records the run;
    // the scoring schedule finds it still waiting (nothing consumes intake here).
    let pack = root().join("bench/packs/default/invoices");
    for name in ["inv-001.pdf", "inv-001.truth.json"] {
        s.clients
            .s3
            .put_object()
            .bucket(&s.config.results_bucket)
            .key(format!("benchmark-packs/default/invoices/{name}"))
            .body(std::fs::read(pack.join(name)).unwrap().into())
            .send()
            .await
            .unwrap();
    }
    let out = sam.invoke(
        "BenchmarkFunction",
        &sample_event("benchmark-start.json", &s),
    );
    assert_eq!(out["documents"], 1, "{out}");
    let run = out["started"].as_str().unwrap().to_owned();
    let uploaded = s
        .clients
        .s3
        .head_object()
        .bucket(&s.config.documents_bucket)
        .key(format!("invoices/benchmark/{run}/inv-001.pdf"))
        .send()
        .await
        .expect("the pack's document, uploaded as benchmark traffic");
    assert_eq!(
        uploaded.metadata().unwrap().get("ocrbridge-benchmark-run"),
        Some(&run)
    );
    let out = sam.invoke(
        "BenchmarkFunction",
        &sample_event("benchmark-score.json", &s),
    );
    assert_eq!(out["waiting"], json!([run]), "{out}");

    for (function, took) in sam.timings.lock().unwrap().iter() {
        println!("sam local invoke {function}: {:.1} s", took.as_secs_f64());
    }
    drop(bridge);
}
