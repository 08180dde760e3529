//! `ocrbridge audit`: the monthly checkpoint as one command — one line per check, and exit
//! status 4 when any fails (`--json` for the same as data).
//!
//! What it checks, each from the stack's own resources:
//! - **secrets**: no stray `AWSPENDING` (a rotation stuck half way); the webhook secret rotates,
//!   and its last rotation is within two of its rotation periods; the vendor key rotates where
//!   the vendor lets it (`vendors::KeyScheme`), else the hourly key check is what watches it;
//! - **alarms**: every alarm of the environment has its actions enabled and an SNS topic for
//!   ALARM and OK; every such topic has a confirmed subscription;
//! - **queues**: each source queue redrives to its own DLQ after `MaxReceiveCount` receives;
//! - **functions** (`audit_lambda`): each SQS-fed function's queue keeps a batch invisible for
//!   six times its timeout, and its event source mapping has a maximum concurrency within its
//!   reserved concurrency — read live from Lambda;
//! - **DLQs**: empty, or how many letters and how old the oldest;
//! - **benchmark**: a scored run within 8 days, and a pinned baseline for its pack and vendor;
//! - **the live webhook** (`--webhook-url`, the stack's `WebhookUrl` output): a test delivery
//!   signed with the current secret is accepted, and the same delivery with a forged signature
//!   is refused with 401. The test delivery reports progress (`processing`) for a job nobody
//!   has, which the webhook acknowledges after verification and acts on in no way.
//!
//! - **model versions** (`vendor.models`): each model a pinned baseline was scored on still
//!   answers as the version it was scored on (the ledger's `model-versions` record, which parse
//!   keeps); a newer one means this month's extractions run on a model nobody has measured.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use ocrbridge::time::UnixMillis;
use ocrbridge::vendors::select::VendorKind;
use ocrbridge::vendors::KeyScheme;
use serde::Serialize;
use serde_json::json;

use crate::commands::{alarms, audit_lambda};
use crate::output::{age, emit};
use crate::{CliError, Target};

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Not checked, with the reason.
    Skip,
}

/// One line of the audit.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: String,
    pub status: Status,
    /// What was found, or what is wrong and what to do.
    pub detail: String,
}

impl Check {
    fn new(check: impl Into<String>, status: Status, detail: impl Into<String>) -> Self {
        Check {
            check: check.into(),
            status,
            detail: detail.into(),
        }
    }

    fn of(check: impl Into<String>, result: Result<String, String>) -> Self {
        match result {
            Ok(detail) => Check::new(check, Status::Pass, detail),
            Err(detail) => Check::new(check, Status::Fail, detail),
        }
    }
}

/// A scored benchmark run older than this fails the audit: the benchmark runs weekly.
const BENCHMARK_MAX_AGE: Duration = Duration::from_secs(8 * 86_400);
const DAY_MS: u64 = 86_400_000;

pub async fn run(
    target: &Target,
    webhook_url: Option<&str>,
    json_mode: bool,
) -> Result<(), CliError> {
    let vendor = target.vendor().parse::<VendorKind>().ok();
    let mut checks = Vec::new();
    checks.push(webhook_live(target, vendor, webhook_url).await);
    checks.extend(secrets(target, vendor).await);
    checks.extend(alarm_routes(target).await);
    checks.extend(queues(target).await);
    checks.extend(functions(target).await);
    checks.push(benchmark(target).await);
    checks.extend(model_versions(target).await);
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    emit(
        json_mode,
        &json!({ "stack": target.name, "failed": failed, "checks": checks }),
        || {
            let width = checks.iter().map(|c| c.check.len()).max().unwrap_or(0);
            let lines: Vec<String> = checks
                .iter()
                .map(|c| {
                    let mark = match c.status {
                        Status::Pass => "ok  ",
                        Status::Fail => "FAIL",
                        Status::Skip => "skip",
                    };
                    format!("{mark} {:width$}  {}", c.check, c.detail)
                })
                .collect();
            format!(
                "stack {}: audit, {} checks, {failed} failed\n\n{}",
                target.name,
                checks.len(),
                lines.join("\n")
            )
        },
    );
    if failed > 0 {
        return Err(CliError::Refused(format!("{failed} audit checks failed")));
    }
    Ok(())
}

/// What the audit expects of a secret, by vendor (the template's `RotatesApiKey` and
/// `RotatesWebhookSecret` conditions say the same).
enum Expect {
    /// Rotated by the template's schedule.
    Rotates,
    /// Kept by hand (the vendor's console): its age is shown, and stray stages still fail.
    ByHand,
    /// Not used with this vendor.
    Unused(&'static str),
}

async fn webhook_live(target: &Target, vendor: Option<VendorKind>, url: Option<&str>) -> Check {
    const NAME: &str = "webhook.live";
    if matches!(vendor, Some(VendorKind::Textract | VendorKind::Azure)) {
        return Check::new(NAME, Status::Skip, "this vendor sends no webhooks");
    }
    let Some(url) = url else {
        return Check::new(
            NAME,
            Status::Skip,
            "give --webhook-url (the stack's WebhookUrl output) to send a signed and a forged delivery",
        );
    };
    Check::of(NAME, probe_webhook(target, vendor, url).await)
}

/// Sends the signed test delivery and its forgery; `Ok` says what the webhook answered.
async fn probe_webhook(
    target: &Target,
    vendor: Option<VendorKind>,
    url: &str,
) -> Result<String, String> {
    use ocrbridge::keyring::Secret;
    use ocrbridge::signature::{sign_hex_body, sign_standard};
    let current = target
        .clients
        .secrets()
        .get_secret_value()
        .secret_id(&target.config.webhook_secret)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .map_err(|e| {
            format!(
                "reading the webhook secret: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            )
        })?
        .secret_string()
        .map(|s| Secret::new(s.to_owned()))
        .ok_or("the webhook secret has no value")?;
    // A key nobody has, in the same form: what a forger can do at best.
    let forged = Secret::new(format!(
        "whsec_{}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            uuid::Uuid::new_v4().as_bytes().repeat(2)
        )
    ));
    let probe = format!("audit-probe-{}", uuid::Uuid::new_v4().simple());
    let now = (UnixMillis::now().0 / 1000) as i64;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let send = |secret: Secret, event: &str| {
        let (body, headers): (String, Vec<(&str, String)>) = match vendor {
            Some(VendorKind::Mindee) => {
                let body =
                    serde_json::json!({"job": {"id": probe, "status": "Processing"}}).to_string();
                let signature = sign_hex_body(&secret, body.as_bytes()).unwrap_or_default();
                (body, vec![("x-signature", signature)])
            }
            _ => {
                let body = serde_json::json!({
                    "type": "document.status_changed",
                    "data": {"id": probe, "status": "processing"},
                })
                .to_string();
                let id = format!("msg_{probe}_{event}");
                let signature =
                    sign_standard(&secret, &id, now, body.as_bytes()).unwrap_or_default();
                (
                    body,
                    vec![
                        ("webhook-id", id),
                        ("webhook-timestamp", now.to_string()),
                        ("webhook-signature", signature),
                    ],
                )
            }
        };
        let mut request = client
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move {
            request
                .send()
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| format!("POST {url}: {e}"))
        }
    };
    let signed = send(current, "signed").await?;
    if !(200..300).contains(&signed) {
        return Err(format!(
            "a delivery signed with the current secret was answered {signed}: deliveries are being lost (RUNBOOK.md#webhook-signature-failures)"
        ));
    }
    let refused = send(forged, "forged").await?;
    if refused != 401 {
        return Err(format!(
            "a forged delivery was answered {refused}, not 401: the webhook does not verify signatures (RUNBOOK.md#webhook-signature-failures)"
        ));
    }
    Ok(format!(
        "a signed delivery answered {signed}, a forged one 401"
    ))
}

async fn secrets(target: &Target, vendor: Option<VendorKind>) -> Vec<Check> {
    let api_key = match vendor.map(VendorKind::key_scheme) {
        Some(KeyScheme::Role) => Expect::Unused("Textract authenticates with the functions' role"),
        Some(KeyScheme::Registered | KeyScheme::TwoKeys) => Expect::Rotates,
        Some(KeyScheme::Console) | None => Expect::ByHand,
    };
    let webhook = match vendor {
        Some(VendorKind::Sim) => Expect::Rotates,
        Some(VendorKind::Textract) => Expect::Unused("Textract's completions come through SNS"),
        Some(VendorKind::Azure) => Expect::Unused("Azure sends no webhooks"),
        Some(VendorKind::Mindee) | None => Expect::ByHand,
    };
    let mut out = Vec::new();
    for (name, id, expect) in [
        (
            "secret.vendor_api_key",
            &target.config.vendor_api_key_secret,
            api_key,
        ),
        (
            "secret.webhook_secret",
            &target.config.webhook_secret,
            webhook,
        ),
    ] {
        out.push(match expect {
            Expect::Unused(why) => Check::new(name, Status::Skip, why),
            Expect::Rotates => Check::of(name, secret(target, id, true).await),
            Expect::ByHand => Check::of(name, secret(target, id, false).await),
        });
    }
    out
}

/// `rotates`: whether the secret must have rotation on.
async fn secret(target: &Target, id: &str, rotates: bool) -> Result<String, String> {
    let described = target
        .clients
        .secrets()
        .describe_secret()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| {
            format!(
                "DescribeSecret failed: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            )
        })?;
    let stages = described
        .version_ids_to_stages()
        .cloned()
        .unwrap_or_default();
    if let Some((version, _)) = stages
        .iter()
        .find(|(_, s)| s.iter().any(|s| s == "AWSPENDING") && !s.iter().any(|s| s == "AWSCURRENT"))
    {
        return Err(format!(
            "AWSPENDING on version {version}: a rotation is in progress or stuck half way (RUNBOOK.md#rotation-failures)"
        ));
    }
    let now = UnixMillis::now().0;
    let ms = |t: Option<&aws_sdk_secretsmanager::primitives::DateTime>| {
        t.and_then(|t| u64::try_from(t.to_millis().ok()?).ok())
    };
    let changed = ms(described.last_rotated_date())
        .or(ms(described.created_date()))
        .unwrap_or(now);
    let since = format!(
        "last rotated or created {} ago",
        age(now.saturating_sub(changed))
    );
    match (rotates, described.rotation_enabled().unwrap_or(false)) {
        (true, false) => Err(format!(
            "rotation is off ({since}); deploy the template's rotation schedule, or `aws secretsmanager rotate-secret`"
        )),
        (_, true) => {
            let period = described
                .rotation_rules()
                .and_then(|r| r.automatically_after_days())
                .map_or(30, |d| d.max(1) as u64);
            if now.saturating_sub(changed) > 2 * period * DAY_MS {
                Err(format!(
                    "rotation is on (every {period} days) but the {since}: the rotations fail (RotationFailures metric, RUNBOOK.md#rotation-failures)"
                ))
            } else {
                Ok(format!("rotation every {period} days, {since}"))
            }
        }
        (false, false) => Ok(format!(
            "kept by hand (the vendor's console): {since}"
        )),
    }
}

async fn alarm_routes(target: &Target) -> Vec<Check> {
    let alarms = match alarms::alarms_of(target).await {
        Ok(alarms) => alarms,
        Err(e) => return vec![Check::new("alarms", Status::Fail, e.to_string())],
    };
    if alarms.is_empty() {
        return vec![Check::new(
            "alarms",
            Status::Fail,
            "no alarms for this environment: deploy the template's alarms",
        )];
    }
    let faults: Vec<String> = alarms
        .iter()
        .filter_map(|a| {
            alarms::static_fault(a).map(|f| format!("{}: {f}", a.alarm_name().unwrap_or("?")))
        })
        .collect();
    let routed = if faults.is_empty() {
        Check::new(
            "alarms",
            Status::Pass,
            format!(
                "{} alarms, each with enabled ALARM and OK actions to SNS",
                alarms.len()
            ),
        )
    } else {
        Check::new("alarms", Status::Fail, faults.join("; "))
    };
    let topics: std::collections::BTreeSet<String> =
        alarms.iter().flat_map(alarms::topics).collect();
    let sns = alarms::sns(target);
    let mut unheard = Vec::new();
    for topic in &topics {
        let subscriptions = sns
            .list_subscriptions_by_topic()
            .topic_arn(topic)
            .send()
            .await;
        let confirmed = match subscriptions {
            Ok(out) => out.subscriptions().iter().any(|s| {
                s.subscription_arn()
                    .is_some_and(|a| a.starts_with("arn:") && a != "PendingConfirmation")
            }),
            Err(e) => {
                unheard.push(format!(
                    "{topic}: {}",
                    aws_sdk_sns::error::DisplayErrorContext(e)
                ));
                continue;
            }
        };
        if !confirmed {
            unheard.push(format!("{topic} has no confirmed subscription"));
        }
    }
    let heard = if unheard.is_empty() {
        Check::new(
            "alarms.subscribed",
            Status::Pass,
            format!(
                "{} topics, each with a confirmed subscription",
                topics.len()
            ),
        )
    } else {
        Check::new(
            "alarms.subscribed",
            Status::Fail,
            format!(
                "{}: set AlarmEmail or AlarmHttpsEndpoint and confirm it; `ocrbridge alarms test` proves delivery",
                unheard.join("; ")
            ),
        )
    };
    vec![routed, heard]
}

async fn queues(target: &Target) -> Vec<Check> {
    let max_receives = target
        .env
        .get("MAX_RECEIVE_COUNT")
        .and_then(|n| n.parse::<u64>().ok());
    let mut redrives = Vec::new();
    let mut letters = Vec::new();
    for name in ["intake", "submit", "results"] {
        let Ok((queue, dlq)) = crate::commands::queue_pair(target, name) else {
            continue;
        };
        redrives.push(Check::of(
            format!("queue.{name}.redrive"),
            redrive(target, queue, dlq, max_receives).await,
        ));
        letters.push(Check::of(
            format!("dlq.{name}"),
            dead_letters(target, name, dlq).await,
        ));
    }
    redrives.extend(letters);
    redrives
}

/// The Lambda side of each SQS-fed function (`audit_lambda`).
async fn functions(target: &Target) -> Vec<Check> {
    let lambda = aws_sdk_lambda::Client::new(&target.clients.sdk_config);
    let mut checks = Vec::new();
    for (name, function, queue) in audit_lambda::FED_BY_QUEUES {
        let check = format!("function.{name}");
        checks.push(match (target.env.get(function), target.env.get(queue)) {
            (Some(function), Some(queue)) => Check::of(
                check,
                audit_lambda::read(target, &lambda, function, queue)
                    .await
                    .and_then(|side| audit_lambda::judge(&side)),
            ),
            _ => Check::new(
                check,
                Status::Skip,
                format!("the stack's environment names no {function}: write it again with `ocrbridge local provision --env-out`"),
            ),
        });
    }
    checks
}

/// A queue's attributes, or what went wrong reading them (the queue checks and `audit_lambda`).
pub(crate) async fn attributes(
    target: &Target,
    url: &str,
    names: &[QueueAttributeName],
) -> Result<std::collections::HashMap<QueueAttributeName, String>, String> {
    target
        .clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .set_attribute_names(Some(names.to_vec()))
        .send()
        .await
        .map(|o| o.attributes.unwrap_or_default())
        .map_err(|e| {
            format!(
                "GetQueueAttributes on {url}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            )
        })
}

async fn redrive(
    target: &Target,
    queue: &str,
    dlq: &str,
    max_receives: Option<u64>,
) -> Result<String, String> {
    let dlq_arn = attributes(target, dlq, &[QueueAttributeName::QueueArn])
        .await?
        .remove(&QueueAttributeName::QueueArn)
        .unwrap_or_default();
    let policy = attributes(target, queue, &[QueueAttributeName::RedrivePolicy])
        .await?
        .remove(&QueueAttributeName::RedrivePolicy)
        .ok_or("no redrive policy: a poison message would be retried for ever")?;
    let policy: serde_json::Value =
        serde_json::from_str(&policy).map_err(|e| format!("redrive policy unreadable: {e}"))?;
    let target_arn = policy["deadLetterTargetArn"].as_str().unwrap_or_default();
    if target_arn != dlq_arn {
        return Err(format!(
            "redrives to {target_arn}, not to its DLQ {dlq_arn}"
        ));
    }
    let receives = policy["maxReceiveCount"]
        .as_u64()
        .or_else(|| policy["maxReceiveCount"].as_str()?.parse().ok())
        .ok_or("the redrive policy has no maxReceiveCount")?;
    match max_receives {
        Some(want) if want != receives => Err(format!(
            "redrives after {receives} receives, MaxReceiveCount is {want}: the batch handler's crash-loop guard counts on it"
        )),
        _ => Ok(format!("to its DLQ after {receives} receives")),
    }
}

async fn dead_letters(target: &Target, name: &str, dlq: &str) -> Result<String, String> {
    let queue = target.queue();
    let n = queue.depth(dlq).await.map_err(|e| e.to_string())?;
    if n == 0 {
        return Ok("empty".into());
    }
    // The oldest of the letters a look finds (it leaves them where they are).
    let oldest = queue
        .peek(dlq, 10)
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .filter_map(|l| l.sent_at)
        .min();
    let oldest = oldest.map_or(String::new(), |t| {
        format!(
            ", the oldest {} old",
            age(UnixMillis::now().0.saturating_sub(t.0))
        )
    });
    Err(format!(
        "{n} letters{oldest}: `ocrbridge dlq list {name}`, then redrive what can succeed now"
    ))
}

async fn benchmark(target: &Target) -> Check {
    let Ok(store) = crate::commands::quality::store(target) else {
        return Check::new(
            "benchmark",
            Status::Skip,
            "the stack names no benchmark runs table",
        );
    };
    let rows = match store.rows().await {
        Ok(rows) => rows,
        Err(e) => return Check::new("benchmark", Status::Fail, e.to_string()),
    };
    let now = UnixMillis::now().0;
    let latest = rows
        .iter()
        .filter(|r| r.state != "baseline")
        .filter_map(|r| Some((r.scored_at_ms?, r)))
        .max_by_key(|(at, _)| *at);
    let Some((at, run)) = latest else {
        return Check::new(
            "benchmark",
            Status::Fail,
            "no scored benchmark run: `make bench-quality`, or wait for the scheduled one",
        );
    };
    let ago = now.saturating_sub(at);
    if ago > BENCHMARK_MAX_AGE.as_millis() as u64 {
        return Check::new(
            "benchmark",
            Status::Fail,
            format!(
                "the last scored run ({}) is {} old: is the schedule (QualityBenchmarkSchedule) running?",
                run.run_id,
                age(ago)
            ),
        );
    }
    let (pack, vendor) = (
        run.pack.clone().unwrap_or_default(),
        run.vendor.clone().unwrap_or_default(),
    );
    match store.baseline(&pack, &vendor).await {
        Ok(Some(baseline)) => Check::new(
            "benchmark",
            Status::Pass,
            format!(
                "{} scored {} ago against baseline {} ({pack}, {vendor})",
                run.run_id,
                age(ago),
                baseline.run_id
            ),
        ),
        Ok(None) => Check::new(
            "benchmark",
            Status::Fail,
            format!(
                "no baseline pinned for pack {pack} and vendor {vendor}: `ocrbridge quality pin {} --apply`",
                run.run_id
            ),
        ),
        Err(e) => Check::new("benchmark", Status::Fail, e.to_string()),
    }
}

/// Each pinned baseline's models, by the version they were scored on, against the version the
/// vendor answers as now (`Ledger::model_versions`).
async fn model_versions(target: &Target) -> Vec<Check> {
    let Ok(store) = crate::commands::quality::store(target) else {
        return Vec::new();
    };
    let rows = match store.rows().await {
        Ok(rows) => rows,
        Err(e) => return vec![Check::new("vendor.models", Status::Fail, e.to_string())],
    };
    // Every pack and vendor a run was scored for; each may have a baseline pinned.
    let pins: std::collections::BTreeSet<(String, String)> = rows
        .iter()
        .filter_map(|r| Some((r.pack.clone()?, r.vendor.clone()?)))
        .collect();
    let ledger = target.ledger();
    let mut found = Vec::new();
    let mut faults = Vec::new();
    for (pack, vendor) in pins {
        let baseline = match store.baseline(&pack, &vendor).await {
            Ok(Some(baseline)) => baseline,
            Ok(None) => continue,
            Err(e) => return vec![Check::new("vendor.models", Status::Fail, e.to_string())],
        };
        for named in baseline.models.values() {
            // `model version`, as the benchmark names them; a model with no version has
            // nothing to compare.
            let Some((model, pinned)) = named.rsplit_once(' ') else {
                continue;
            };
            match ledger.model_versions(&vendor, model).await {
                Ok(Some(seen)) => match seen.latest.as_deref() {
                    Some(latest) if latest != pinned => faults.push(format!(
                        "{vendor} {model} answers as {latest}; baseline {} ({pack}) was scored on {pinned}: run the benchmark on it and pin the run (`ocrbridge quality pin RUN --apply`)",
                        baseline.run_id
                    )),
                    _ => found.push(format!("{vendor} {model} {pinned}")),
                },
                Ok(None) => found.push(format!("{vendor} {model} {pinned} (no traffic yet)")),
                Err(e) => faults.push(e.to_string()),
            }
        }
    }
    let check = if !faults.is_empty() {
        Check::new("vendor.models", Status::Fail, faults.join("; "))
    } else if found.is_empty() {
        Check::new(
            "vendor.models",
            Status::Skip,
            "no pinned baseline names a model version",
        )
    } else {
        found.sort();
        found.dedup();
        Check::new(
            "vendor.models",
            Status::Pass,
            format!("as scored: {}", found.join(", ")),
        )
    };
    vec![check]
}
