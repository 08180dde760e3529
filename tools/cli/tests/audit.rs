//! `ocrbridge audit` against the local stack: every check passes on a stack set up as it should
//! be, and each one, broken once on purpose, fails alone with its reason, and the command exits 4.

mod support;

use std::collections::BTreeMap;

use aws_sdk_sqs::types::QueueAttributeName;
use ocrbridge::quality::score::RunRecord;
use ocrbridge::quality::store::RunStore;
use ocrbridge::time::UnixMillis;
use ocrbridge_local::pipeline::{Pipeline, PipelineOptions};
use ocrbridge_tests::{stack_with_alarms, TestStack};
use serde_json::Value;
use support::{env_file, json, ocrbridge};

/// The audit's checks by name: (status, detail); and its exit code.
async fn audit(
    env: &std::path::PathBuf,
    webhook_url: &str,
) -> (BTreeMap<String, (String, String)>, Option<i32>) {
    let out = ocrbridge(env, &["audit", "--json", "--webhook-url", webhook_url]).await;
    let json: Value = json(&out);
    let checks = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_owned(),
                (
                    c["status"].as_str().unwrap().to_owned(),
                    c["detail"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    (checks, out.status.code())
}

/// The checks that did not pass.
fn failing(checks: &BTreeMap<String, (String, String)>) -> Vec<&str> {
    checks
        .iter()
        .filter(|(_, (status, _))| status == "fail")
        .map(|(name, _)| name.as_str())
        .collect()
}

/// The stack's alarms, by their environment's prefix.
async fn alarms(s: &TestStack, environment: &str) -> Vec<aws_sdk_cloudwatch::types::MetricAlarm> {
    let cw = aws_sdk_cloudwatch::Client::new(&s.clients.sdk_config);
    cw.describe_alarms()
        .alarm_name_prefix(format!("ocrbridge-{environment}-"))
        .send()
        .await
        .unwrap()
        .metric_alarms()
        .to_vec()
}

async fn queue_arn(s: &TestStack, url: &str) -> String {
    s.clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone()
}

/// Turns rotation on as the template's schedule does. moto tries to invoke the rotation
/// function, which the local stack does not deploy, and leaves its AWSPENDING behind: taken off.
async fn rotation_on(s: &TestStack, secret: &str) {
    let sm = s.clients.secrets();
    let _ = sm
        .rotate_secret()
        .secret_id(secret)
        .rotation_lambda_arn("arn:aws:lambda:us-east-1:123456789012:function:rotate")
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .rotate_immediately(false)
        .send()
        .await;
    clear_pending(s, secret).await;
}

async fn clear_pending(s: &TestStack, secret: &str) {
    let sm = s.clients.secrets();
    let described = sm.describe_secret().secret_id(secret).send().await.unwrap();
    for (version, stages) in described
        .version_ids_to_stages()
        .cloned()
        .unwrap_or_default()
    {
        if stages.iter().any(|s| s == "AWSPENDING") {
            sm.update_secret_version_stage()
                .secret_id(secret)
                .version_stage("AWSPENDING")
                .remove_from_version_id(version)
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_audit_check_passes_when_kept_and_fails_alone_when_broken() {
    // An environment of its own: alarms are named for it, and other tests' stacks share moto.
    let environment = format!("audit{}", std::process::id() % 100_000);
    let s = stack_with_alarms(&[("EnvironmentName", environment.as_str())]).await;
    let env = env_file(&s);
    // The webhook function answering HTTP, as a deployed stack's WebhookUrl does.
    let p = Pipeline::start(s.clients.clone(), &s.stack, PipelineOptions::default())
        .await
        .unwrap();

    // As a deployed stack should be: keys rotating, the alarm topic subscribed, a benchmark
    // run scored against a pinned baseline.
    for secret in [&s.config.vendor_api_key_secret, &s.config.webhook_secret] {
        rotation_on(&s, secret).await;
    }
    let topic = alarms(&s, &environment).await[0].alarm_actions()[0].clone();
    let inbox = s
        .clients
        .sqs
        .create_queue()
        .queue_name(format!("{}-alarm-inbox", s.stack.stack_name()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let inbox_arn = queue_arn(&s, &inbox).await;
    let sns = aws_sdk_sns::Client::new(&s.clients.sdk_config);
    let subscription = sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(inbox_arn)
        .send()
        .await
        .unwrap()
        .subscription_arn
        .unwrap();
    let store = RunStore {
        s3: s.clients.s3.clone(),
        dynamodb: s.clients.dynamodb.clone(),
        results_bucket: s.config.results_bucket.clone(),
        table: s
            .stack
            .physical("BenchmarkRunsTable")
            .unwrap()
            .ref_value
            .clone(),
    };
    let now = UnixMillis::now().0;
    let run = RunRecord {
        run_id: "bq-audit-1".into(),
        pack: "default".into(),
        vendor: "sim".into(),
        models: BTreeMap::from([("receipt".to_owned(), "sim-receipt sim-1".to_owned())]),
        started_at_ms: now - 600_000,
        scored_at_ms: now,
        documents: Vec::new(),
        scores: BTreeMap::new(),
        by_language: BTreeMap::new(),
        comparison: None,
    };
    store
        .put_scored(&run, "<html></html>".into())
        .await
        .unwrap();
    store.pin_baseline("bq-audit-1").await.unwrap();

    // The vendor answers as the version the baseline was scored on.
    s.ledger
        .record_model_version("sim", "sim-receipt", "sim-1", UnixMillis::now())
        .await
        .unwrap();

    let (checks, code) = audit(&env, &p.webhook_url).await;
    assert_eq!(failing(&checks), Vec::<&str>::new(), "{checks:#?}");
    assert_eq!(code, Some(0));
    for name in [
        "webhook.live",
        "secret.vendor_api_key",
        "secret.webhook_secret",
        "alarms",
        "alarms.subscribed",
        "queue.intake.redrive",
        "queue.submit.redrive",
        "queue.results.redrive",
        "dlq.intake",
        "dlq.submit",
        "dlq.results",
        "function.intake",
        "function.submit",
        "function.parse",
        "benchmark",
        "vendor.models",
    ] {
        assert_eq!(checks[name].0, "pass", "{name}: {checks:#?}");
    }

    // Each broken once: it fails alone, with what to do; then it is put back.

    // A webhook that takes anything: a forged delivery is accepted.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gullible = format!("http://{}/", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(|| async { "ok" });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (checks, code) = audit(&env, &gullible).await;
    assert_eq!(failing(&checks), vec!["webhook.live"], "{checks:#?}");
    assert!(checks["webhook.live"]
        .1
        .contains("a forged delivery was answered 200"));
    assert_eq!(code, Some(4));
    let broken = |name: &'static str| name;
    let expect_alone = |checks: &BTreeMap<String, (String, String)>, name: &str, says: &str| {
        assert_eq!(failing(checks), vec![name], "{checks:#?}");
        assert!(checks[name].1.contains(says), "{name}: {}", checks[name].1);
    };

    // A rotation stuck half way.
    let sm = s.clients.secrets();
    sm.put_secret_value()
        .secret_id(&s.config.webhook_secret)
        .secret_string("whsec_pending")
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    let (checks, code) = audit(&env, &p.webhook_url).await;
    expect_alone(&checks, broken("secret.webhook_secret"), "AWSPENDING");
    assert_eq!(code, Some(4));
    clear_pending(&s, &s.config.webhook_secret).await;

    // Rotation turned off.
    sm.cancel_rotate_secret()
        .secret_id(&s.config.vendor_api_key_secret)
        .send()
        .await
        .unwrap();
    let (checks, _) = audit(&env, &p.webhook_url).await;
    expect_alone(&checks, "secret.vendor_api_key", "rotation is off");
    rotation_on(&s, &s.config.vendor_api_key_secret).await;

    // An alarm that cannot notify anyone.
    let cw = aws_sdk_cloudwatch::Client::new(&s.clients.sdk_config);
    let alarm = alarms(&s, &environment).await[0]
        .alarm_name()
        .unwrap()
        .to_owned();
    cw.disable_alarm_actions()
        .alarm_names(&alarm)
        .send()
        .await
        .unwrap();
    let (checks, _) = audit(&env, &p.webhook_url).await;
    expect_alone(&checks, "alarms", "disabled");
    cw.enable_alarm_actions()
        .alarm_names(&alarm)
        .send()
        .await
        .unwrap();

    // Nobody subscribed.
    sns.unsubscribe()
        .subscription_arn(&subscription)
        .send()
        .await
        .unwrap();
    let (checks, _) = audit(&env, &p.webhook_url).await;
    expect_alone(&checks, "alarms.subscribed", "no confirmed subscription");

    // A queue redriving after the wrong number of receives.
    let submit_dlq_arn = queue_arn(&s, &s.config.submit_dlq_url).await;
    let policy =
        |n: u32| format!(r#"{{"deadLetterTargetArn":"{submit_dlq_arn}","maxReceiveCount":"{n}"}}"#);
    let set_policy = |p: String| {
        s.clients
            .sqs
            .set_queue_attributes()
            .queue_url(&s.config.submit_queue_url)
            .attributes(QueueAttributeName::RedrivePolicy, p)
            .send()
    };
    let kept = s
        .clients
        .sqs
        .get_queue_attributes()
        .queue_url(&s.config.submit_queue_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::RedrivePolicy]
        .clone();
    set_policy(policy(50)).await.unwrap();
    // The subscription is still gone: two failures now, this one among them.
    let (checks, _) = audit(&env, &p.webhook_url).await;
    assert_eq!(
        failing(&checks),
        vec!["alarms.subscribed", "queue.submit.redrive"],
        "{checks:#?}"
    );
    assert!(checks["queue.submit.redrive"]
        .1
        .contains("after 50 receives"));
    set_policy(kept).await.unwrap();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(queue_arn(&s, &inbox).await)
        .send()
        .await
        .unwrap();

    // The Lambda side, edited after the deploy: a queue that hands a batch out again while the
    // function may still run; a mapping's cap above the function's reserved concurrency, and
    // the reserved concurrency lowered under the cap.
    let lambda = aws_sdk_lambda::Client::new(&s.clients.sdk_config);
    let intake_visibility = |seconds: &'static str| {
        s.clients
            .sqs
            .set_queue_attributes()
            .queue_url(&s.config.intake_queue_url)
            .attributes(QueueAttributeName::VisibilityTimeout, seconds)
            .send()
    };
    intake_visibility("90").await.unwrap();
    let (checks, _) = audit(&env, &p.webhook_url).await;
    expect_alone(
        &checks,
        "function.intake",
        "under 6 × the function's 60 s timeout",
    );
    intake_visibility("360").await.unwrap();
    let submit = &s.stack.physical("SubmitFunction").unwrap().ref_value;
    let mapping = lambda
        .list_event_source_mappings()
        .function_name(submit)
        .send()
        .await
        .unwrap()
        .event_source_mappings()[0]
        .uuid()
        .unwrap()
        .to_owned();
    let cap = |max: i32| {
        lambda
            .update_event_source_mapping()
            .uuid(&mapping)
            .scaling_config(
                aws_sdk_lambda::types::ScalingConfig::builder()
                    .maximum_concurrency(max)
                    .build(),
            )
            .send()
    };
    cap(50).await.unwrap();
    let (checks, _) = audit(&env, &p.webhook_url).await;
    expect_alone(
        &checks,
        "function.submit",
        "maximum concurrency 50 is above the function's reserved concurrency 5",
    );
    cap(2).await.unwrap();
    let parse = &s.stack.physical("ParseFunction").unwrap().ref_value;
    lambda
        .delete_function_concurrency()
        .function_name(parse)
        .send()
        .await
        .unwrap();
    lambda
        .put_function_concurrency()
        .function_name(parse)
        .reserved_concurrent_executions(4)
        .send()
        .await
        .unwrap();
    let (checks, _) = audit(&env, &p.webhook_url).await;
    expect_alone(
        &checks,
        "function.parse",
        "above the function's reserved concurrency 4",
    );
    lambda
        .put_function_concurrency()
        .function_name(parse)
        .reserved_concurrent_executions(10)
        .send()
        .await
        .unwrap();

    // The vendor updated its model: the baseline no longer measures what runs.
    let ledger =
        || ocrbridge::ledger::Ledger::new(s.clients.dynamodb.clone(), s.config.ledger_tables());
    ledger()
        .record_model_version("sim", "sim-receipt", "sim-2", UnixMillis::now())
        .await
        .unwrap();
    let (checks, _) = audit(&env, &p.webhook_url).await;
    expect_alone(
        &checks,
        "vendor.models",
        "sim sim-receipt answers as sim-2; baseline bq-audit-1 (default) was scored on sim-1",
    );
    ledger()
        .record_model_version("sim", "sim-receipt", "sim-1", UnixMillis::now())
        .await
        .unwrap();

    // A letter in a DLQ.
    s.clients
        .sqs
        .send_message()
        .queue_url(&s.config.results_dlq_url)
        .message_body("{}")
        .send()
        .await
        .unwrap();
    let (checks, _) = audit(&env, &p.webhook_url).await;
    expect_alone(&checks, "dlq.results", "1 letters, the oldest");
    s.drain(&s.config.results_dlq_url).await;

    // No baseline pinned for the last run's pack and vendor.
    s.clients
        .dynamodb
        .delete_item()
        .table_name(&store.table)
        .key(
            "run_id",
            aws_sdk_dynamodb::types::AttributeValue::S(ocrbridge::quality::store::baseline_key(
                "default", "sim",
            )),
        )
        .send()
        .await
        .unwrap();
    let (checks, _) = audit(&env, &p.webhook_url).await;
    expect_alone(&checks, "benchmark", "no baseline pinned");
    store.pin_baseline("bq-audit-1").await.unwrap();

    // The vendor answers as the version the baseline was scored on.
    s.ledger
        .record_model_version("sim", "sim-receipt", "sim-1", UnixMillis::now())
        .await
        .unwrap();

    let (checks, code) = audit(&env, &p.webhook_url).await;
    assert_eq!(failing(&checks), Vec::<&str>::new(), "{checks:#?}");
    assert_eq!(code, Some(0));
}

/// Mindee signs the body alone (hex HMAC, no timestamp): the live check signs as Mindee does,
/// and the Mindee-configured webhook accepts the signed delivery and refuses the forged one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_webhook_check_signs_as_mindee_does() {
    use ocrbridge::vendors::select::VendorKind;
    let s = ocrbridge_tests::stack_with(&[("VendorName", "mindee")]).await;
    let env = env_file(&s);
    let p = Pipeline::start(
        s.clients.clone(),
        &s.stack,
        PipelineOptions {
            vendor: VendorKind::Mindee,
            ..PipelineOptions::default()
        },
    )
    .await
    .unwrap();
    let (checks, _) = audit(&env, &p.webhook_url).await;
    assert_eq!(checks["webhook.live"].0, "pass", "{checks:#?}");
    assert!(checks["webhook.live"].1.contains("forged one 401"));
    // Mindee's signing secret comes from its console: kept by hand, not failed for rotation.
    assert_eq!(
        checks["secret.webhook_secret"].0, "pass",
        "kept by hand: {checks:#?}"
    );
}
