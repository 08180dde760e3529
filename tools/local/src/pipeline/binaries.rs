//! The real function binaries, each under its own Runtime Interface Emulator, and the
//! environment they run with locally.

use std::collections::BTreeMap;
use std::sync::Arc;

use ocrbridge::vendors::select::VendorKind;

use super::PipelineOptions;
use crate::provision::LocalStack;
use crate::rie::Emulated;

/// The function binaries, each under its own emulator.
pub struct Binaries {
    pub intake: Emulated,
    pub submit: Emulated,
    pub parse: Emulated,
    pub reconcile: Emulated,
    pub webhook: Arc<Emulated>,
}

impl Binaries {
    pub fn all(&self) -> [&Emulated; 5] {
        [
            &self.intake,
            &self.submit,
            &self.parse,
            &self.reconcile,
            &self.webhook,
        ]
    }
}

/// The environment a function binary runs with locally: the template's, resolved against the
/// local stack, plus what AWS would provide and the local tuning.
/// The models the local stack asks the Mindee twin for: any id reads as a financial document,
/// and its catalog International ID model reads the `id` profile.
pub fn local_mindee_models() -> String {
    ["receipt", "invoice", "generic"]
        .map(|p| format!("{p}={}", super::LOCAL_MINDEE_MODEL))
        .into_iter()
        .chain([format!("id={}", vendor_sim::mindee::CATALOG_ID_MODEL)])
        .collect::<Vec<_>>()
        .join(",")
}

pub fn binary_environment(
    stack: &LocalStack,
    endpoint: &str,
    vendor_url: &str,
    options: &PipelineOptions,
) -> Result<BTreeMap<String, String>, String> {
    let mut env = stack.function_environment().map_err(|e| e.to_string())?;
    for (k, v) in [
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("VENDOR_BASE_URL", vendor_url.to_owned()),
        // Textract is reached through the SDK: only its endpoint goes to the simulator.
        ("AWS_ENDPOINT_URL_TEXTRACT", vendor_url.to_owned()),
        ("VENDOR_TIMEOUT_MS", "5000".into()),
        ("VENDOR_RATE_LIMIT_RPS", options.vendor_rps.to_string()),
        ("VENDOR_SIM_IDEMPOTENCY", options.idempotency_spec()),
        (
            "AMBIGUOUS_SUBMISSION",
            options.ambiguity.fallback.as_str().into(),
        ),
        (
            "AMBIGUOUS_GRACE_SECS",
            options.ambiguity.grace.as_secs().to_string(),
        ),
        ("RETRY_BUDGET_CAPACITY", "50".into()),
        ("RETRY_BUDGET_REFILL_PER_SEC", "5".into()),
        ("BACKOFF_BASE_MS", "500".into()),
        ("BACKOFF_CAP_SECS", "5".into()),
        ("STUCK_SECS", options.stuck.as_secs().to_string()),
        ("MAX_SUBMIT_AGE_SECS", options.max_age.as_secs().to_string()),
        ("MAX_JOB_AGE_SECS", options.max_age.as_secs().to_string()),
        (
            "SUBMITTED_STALE_SECS",
            options.submitted_stale.as_secs().to_string(),
        ),
        ("REQUIRE_ROTATION_ENABLED", "false".into()),
        ("RUST_LOG", "info".into()),
    ] {
        env.insert(k.to_owned(), v);
    }
    // The breaker the in-process pipeline runs with, for the binaries too.
    match &options.breaker {
        None => {
            env.insert("BREAKER".into(), "off".into());
        }
        Some(policy) => {
            for (k, v) in [
                ("BREAKER", "on".to_owned()),
                ("BREAKER_ERROR_RATE", policy.error_rate.to_string()),
                ("BREAKER_MIN_CALLS", policy.min_calls.to_string()),
                ("BREAKER_WINDOW_MINUTES", policy.window_minutes.to_string()),
                (
                    "BREAKER_COOL_DOWN_SECONDS",
                    policy.cool_down.as_secs().to_string(),
                ),
                (
                    "BREAKER_PROBE_LEASE_SECONDS",
                    policy.probe_lease.as_secs().to_string(),
                ),
                (
                    "BREAKER_CLOSED_REUSE_MS",
                    policy.closed_reuse.as_millis().to_string(),
                ),
                (
                    "BREAKER_SUCCESS_FLUSH_MS",
                    policy.success_flush.as_millis().to_string(),
                ),
            ] {
                env.insert(k.to_owned(), v);
            }
        }
    }
    for (k, v) in &options.environment {
        env.insert(k.clone(), v.clone());
    }
    if let Some(burst) = options.vendor_burst {
        env.insert("VENDOR_RATE_BURST".into(), burst.to_string());
    }
    if options.vendor == VendorKind::Mindee {
        // Mindee's model ids are the account's; the twin takes any as a financial-document
        // model, and its catalog International ID model for the `id` profile.
        if env.get("VENDOR_MODELS").is_none_or(|m| m.is_empty()) {
            env.insert("VENDOR_MODELS".into(), local_mindee_models());
        }
        let ids = if options.mindee_webhooks {
            super::LOCAL_MINDEE_WEBHOOK_ID
        } else {
            ""
        };
        env.insert("MINDEE_WEBHOOK_IDS".into(), ids.into());
    }
    Ok(env)
}

/// Tags a function's AWS requests with its name (`app/<name>` in the User-Agent, through the
/// SDK's `AWS_SDK_UA_APP_ID`), so a moto recording says which function made each request.
pub(crate) fn with_app_id(
    mut env: BTreeMap<String, String>,
    function: &str,
) -> BTreeMap<String, String> {
    env.insert("AWS_SDK_UA_APP_ID".into(), function.to_owned());
    env
}
