//! Every real function binary, run under the AWS Lambda Runtime Interface Emulator (the one
//! shipped in the aws-sam-cli wheel) with its sample event from `events/`: the `sam local invoke`
//! path, without Docker. The binaries are the debug builds `make test` makes first.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ocrbridge_tests::{shared_dir, stack, TestStack};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The emulator from the aws-sam-cli wheel in `.venv`.
fn rie() -> PathBuf {
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x86_64"
    };
    let lib = root().join(".venv-sam/lib");
    std::fs::read_dir(&lib)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|python| python.path().join(format!("site-packages/samcli/local/rapid/aws-lambda-rie-{arch}")))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no aws-lambda-rie-{arch} under {}: run scripts/setup.sh (it installs aws-sam-cli into .venv-sam)", lib.display()))
}

fn binary(name: &str) -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"));
    let path = target.join("debug").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` (make test does)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Emulated {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Emulated {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `name` under the emulator, on loopback only, with the stack's environment.
fn start(name: &str, env: &BTreeMap<String, String>) -> Emulated {
    let port = free_port();
    let log = std::env::temp_dir().join(format!("rie-{name}-{port}.log"));
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new(rie())
        .arg("--runtime-interface-emulator-address")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--runtime-api-address")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg(binary(name))
        .envs(env)
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file))
        .spawn()
        .expect("the emulator starts");
    Emulated { child, port, log }
}

async fn invoke(emulated: &Emulated, event: &Value) -> Value {
    let url = format!(
        "http://127.0.0.1:{}/2015-03-31/functions/function/invocations",
        emulated.port
    );
    let started = Instant::now();
    loop {
        match reqwest::Client::new()
            .post(&url)
            .json(event)
            .timeout(Duration::from_secs(60))
            .send()
            .await
        {
            Ok(response) => return response.json().await.unwrap_or(Value::Null),
            Err(e) if started.elapsed() < Duration::from_secs(10) && e.is_connect() => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!(
                "invoking failed: {e}; log: {}",
                std::fs::read_to_string(&emulated.log).unwrap_or_default()
            ),
        }
    }
}

fn event(name: &str, s: &TestStack) -> Value {
    let text = std::fs::read_to_string(root().join("events").join(name)).unwrap();
    let text = text
        .replace("ocrbridge-documents-123456789012-us-east-1", &s.config.documents_bucket)
        .replace("096fKKXTRTtl3on89fVO.nfljtsv6qko", "")
        .replace(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:ocrbridge/webhook-signing-secret-AbCdEf",
            &s.config.webhook_secret,
        );
    serde_json::from_str(&text).unwrap()
}

fn environment(s: &TestStack) -> BTreeMap<String, String> {
    let mut env = s.stack.function_environment().unwrap();
    env.insert("AWS_ENDPOINT_URL".into(), s.endpoint.clone());
    env.insert("AWS_ACCESS_KEY_ID".into(), "testing".into());
    env.insert("AWS_SECRET_ACCESS_KEY".into(), "testing".into());
    env.insert("AWS_REGION".into(), "us-east-1".into());
    // No vendor runs here; the functions only need a URL that fails fast.
    env.insert("VENDOR_BASE_URL".into(), "http://127.0.0.1:9".into());
    env.insert("REQUIRE_ROTATION_ENABLED".into(), "false".into());
    env
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

    let reconcile = start("reconcile", &env);
    let out = invoke(&reconcile, &event("schedule.json", &s)).await;
    assert_eq!(out["errors"], 0, "{out}");
    assert!(out["stuck"].as_u64().is_some(), "{out}");

    let rotate = start("rotate", &env);
    let out = invoke(&rotate, &event("rotation-createSecret.json", &s)).await;
    assert_eq!(out, Value::Null, "createSecret succeeded: {out}");
    let pending = s
        .clients
        .secrets
        .get_secret_value()
        .secret_id(&s.config.webhook_secret)
        .version_stage("AWSPENDING")
        .send()
        .await
        .unwrap();
    assert!(pending.secret_string().unwrap().starts_with("whsec_"));

    // The emulator reports each cold start.
    for e in [&intake, &submit, &parse, &webhook, &reconcile, &rotate] {
        let log = std::fs::read_to_string(&e.log).unwrap_or_default();
        assert!(log.contains("INIT REPORT(durationMs:"), "{log}");
    }
}
