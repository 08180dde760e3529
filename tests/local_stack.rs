//! The local stack is provisioned from template.yaml and behaves like the deployed resources.

use aws_sdk_dynamodb::types::{KeyType, TimeToLiveStatus};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::QueueAttributeName;
use ocrbridge::config::StackConfig;
use ocrbridge_local::template::Template;
use ocrbridge_local::template_path;
use ocrbridge_tests::stack;
use serde_json::Value;

#[test]
fn the_template_sets_every_variable_the_functions_read() {
    let template = Template::load(&template_path()).unwrap();
    let env = template.global_function_environment();
    for variable in StackConfig::VARIABLES {
        assert!(
            env.contains_key(variable),
            "template.yaml Globals.Function.Environment lacks {variable}, which StackConfig reads"
        );
    }
}

async fn receive_one(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Option<aws_sdk_sqs::types::Message> {
    for _ in 0..10 {
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(1)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if let Some(message) = out.messages.and_then(|m| m.into_iter().next()) {
            return Some(message);
        }
    }
    None
}

#[tokio::test]
async fn an_upload_notifies_the_intake_queue() {
    let s = stack().await;
    s.clients
        .s3
        .put_object()
        .bucket(&s.config.documents_bucket)
        .key("receipts/2024/first receipt.jpg")
        .body(ByteStream::from_static(
            b"\xff\xd8\xff\xe0 not really a jpeg",
        ))
        .send()
        .await
        .unwrap();

    // Like S3, moto first sends an s3:TestEvent when the notification is configured; intake skips it.
    let mut test_events = 0;
    let body = loop {
        let message = receive_one(&s.clients.sqs, &s.config.intake_queue_url)
            .await
            .expect("S3 sends an ObjectCreated notification to the intake queue");
        let body: Value = serde_json::from_str(message.body().unwrap()).unwrap();
        if body["Event"] == "s3:TestEvent" {
            test_events += 1;
            continue;
        }
        break body;
    };
    assert!(test_events <= 1);
    let record = &body["Records"][0];
    assert!(record["eventName"]
        .as_str()
        .unwrap()
        .starts_with("ObjectCreated:"));
    assert_eq!(
        record["s3"]["bucket"]["name"],
        s.config.documents_bucket.as_str()
    );
    // Keys arrive URL-encoded (moto encodes '/' as %2F and ' ' as '+' or %20); intake decodes them.
    let key = record["s3"]["object"]["key"].as_str().unwrap();
    assert!(key.contains("first"), "{key}");
    assert_eq!(record["s3"]["object"]["size"], 22);
}

#[tokio::test]
async fn queues_redrive_to_their_dead_letter_queues() {
    let s = stack().await;
    let template = Template::load(&template_path()).unwrap();
    let max_receive: u32 = template.parameter_defaults()["MaxReceiveCount"]
        .parse()
        .unwrap();

    for (queue, dlq) in [
        ("IntakeQueue", "IntakeDLQ"),
        ("SubmitQueue", "SubmitDLQ"),
        ("ResultsQueue", "ResultsDLQ"),
    ] {
        let url = &s.stack.physical(queue).unwrap().ref_value;
        let attributes = s
            .clients
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        let redrive: Value =
            serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy]).unwrap();
        assert_eq!(
            redrive["deadLetterTargetArn"],
            s.stack.physical(dlq).unwrap().attributes["Arn"].as_str(),
            "{queue}"
        );
        assert_eq!(redrive["maxReceiveCount"], max_receive, "{queue}");
    }

    // A message that is never deleted ends in the DLQ after maxReceiveCount receives.
    let submit = &s.config.submit_queue_url;
    s.clients
        .sqs
        .send_message()
        .queue_url(submit)
        .message_body(r#"{"job_id":"poison"}"#)
        .send()
        .await
        .unwrap();
    let mut receives = 0;
    for _ in 0..(max_receive * 3) {
        let out = s
            .clients
            .sqs
            .receive_message()
            .queue_url(submit)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
        receives += out.messages.unwrap_or_default().len() as u32;
    }
    assert_eq!(receives, max_receive);
    let dlq_url = &s.stack.physical("SubmitDLQ").unwrap().ref_value;
    let dead = receive_one(&s.clients.sqs, dlq_url)
        .await
        .expect("the message moved to the DLQ");
    assert_eq!(dead.body(), Some(r#"{"job_id":"poison"}"#));
}

#[tokio::test]
async fn tables_have_their_keys_index_and_ttl() {
    let s = stack().await;
    let jobs = s
        .clients
        .dynamodb
        .describe_table()
        .table_name(&s.config.jobs_table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    assert_eq!(jobs.key_schema()[0].attribute_name(), "job_id");
    let index = jobs
        .global_secondary_indexes()
        .iter()
        .find(|i| i.index_name() == Some(ocrbridge::ledger::item::BY_STATE_INDEX))
        .expect("the by-state-shard index exists");
    let keys: Vec<(&str, &KeyType)> = index
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type()))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("state_shard", &KeyType::Hash),
            ("state_since", &KeyType::Range)
        ]
    );

    let ttl = s
        .clients
        .dynamodb
        .describe_time_to_live()
        .table_name(&s.config.dedupe_table)
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .unwrap();
    assert_eq!(ttl.attribute_name(), Some("expires_at"));
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
}

#[tokio::test]
async fn secrets_exist_and_are_read_by_stage() {
    let s = stack().await;
    for arn in [&s.config.vendor_api_key_secret, &s.config.webhook_secret] {
        let value = s
            .clients
            .secrets()
            .get_secret_value()
            .secret_id(arn)
            .version_stage("AWSCURRENT")
            .send()
            .await
            .unwrap();
        let secret = value.secret_string().unwrap();
        assert!(secret.len() >= 40, "generated per GenerateSecretString");
        assert!(secret.chars().all(|c| c.is_ascii_alphanumeric()));
        let missing = s
            .clients
            .secrets()
            .get_secret_value()
            .secret_id(arn)
            .version_stage("AWSPENDING")
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            missing.as_service_error().and_then(|e| e.code()),
            Some("ResourceNotFoundException")
        );
    }
    // Unemulated resources are reported, not silently dropped.
    assert!(s
        .stack
        .skipped
        .iter()
        .any(|(id, kind)| id == "SubmitFunction" && kind == "AWS::Serverless::Function"));
}

/// The functions' Lambda configuration (what `ocrbridge audit` reads, created by `make demo`,
/// `make dev`, the quality benchmark and the alarm drills) must not take part in the pipeline:
/// moto's SQS acts on an enabled event source mapping at every `SendMessage`, receiving a batch
/// from the queue and invoking a function that has no code. Each upload's notification then
/// received the earlier ones again, and past `maxReceiveCount` they were dead-lettered with no
/// reason: `make bench-quality` lost 9 of its 12 invoices that way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_with_its_functions_in_lambda_loses_no_upload_to_them() {
    let s = ocrbridge_tests::stack_with_alarms(&[]).await;
    let p = ocrbridge_local::pipeline::Pipeline::start(
        s.clients.clone(),
        &s.stack,
        ocrbridge_local::pipeline::PipelineOptions::default(),
    )
    .await
    .unwrap();
    let mut ids = Vec::new();
    for n in 0..12 {
        let bytes = ocrbridge_tests::text_pdf(&[&format!("DOCUMENT {n}"), "Total: 1.00"]);
        ids.push(ocrbridge_tests::job_id_for(&bytes, "receipt"));
        s.put(&format!("receipts/{n}.pdf"), bytes, None).await;
    }
    let jobs = ocrbridge_tests::run_until_settled(
        &p,
        &s.ledger,
        &ids,
        std::time::Duration::from_secs(120),
    )
    .await;
    let dead = s.drain(&s.config.intake_dlq_url).await;
    assert!(
        dead.is_empty(),
        "{} uploads dead-lettered by the event source mapping: {:?}",
        dead.len(),
        dead.iter().map(|m| m.body()).collect::<Vec<_>>()
    );
    assert_eq!(jobs.len(), 12, "every upload has its job");
}
