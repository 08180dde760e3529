//! A bad setting stops a function at init, naming the setting and its value — never a silent
//! default the operator did not choose. Run against the real binaries (`cargo build --bins`,
//! as `make test` does first): each is started with the stack's environment and one bad value,
//! and must exit before it ever asks the Lambda runtime for work.

use std::path::{Path, PathBuf};
use std::process::Command;

use ocrbridge_local::pipeline::binary_environment;
use ocrbridge_local::pipeline::PipelineOptions;
use ocrbridge_tests::stack;

fn binaries() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("debug")
}

#[tokio::test]
async fn every_function_refuses_a_bad_setting_at_init() {
    let s = stack().await;
    let env = binary_environment(
        &s.stack,
        &s.endpoint,
        "http://127.0.0.1:9",
        &PipelineOptions::default(),
    )
    .unwrap();
    for (function, setting, value) in [
        ("parse", "BACKOFF_BASE_MS", "two seconds"),
        ("parse", "MIN_FIELD_CONFIDENCE", "1.5"),
        ("parse", "POLL_CAP_SECS", "0"),
        ("reconcile", "RECONCILE_BATCH", "0"),
        ("reconcile", "STUCK_SECS", "-5"),
        ("webhook", "WEBHOOK_TOLERANCE_SECS", "-300"),
        ("webhook", "WEBHOOK_MAX_BODY_BYTES", "lots"),
        ("submit", "VENDOR_RATE_LIMIT_RPS", "0"),
        ("submit", "AMBIGUOUS_SUBMISSION", "sometimes"),
        ("submit", "MESSAGE_CONCURRENCY", "20"),
        ("parse", "MESSAGE_CONCURRENCY", "0"),
        ("intake", "MAX_PDF_BYTES", "big"),
        ("fetch", "FETCH_MAX_BYTES", "big"),
        ("fetch", "FETCH_ALLOWED_NETWORKS", "10.0.0.0/99"),
    ] {
        let binary = binaries().join(function);
        assert!(
            binary.exists(),
            "{} is not built: run `cargo build --workspace --bins` first (make test does)",
            binary.display()
        );
        let out = Command::new(&binary)
            .env_clear()
            .envs(&env)
            .env(setting, value)
            // No runtime API: a function that got past init would fail on this instead.
            .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{function} started with {setting}={value:?}"
        );
        assert!(
            stderr.contains(setting) && stderr.contains(value),
            "{function} with {setting}={value:?} said: {stderr}"
        );
    }
}
