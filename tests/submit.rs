//! Submit on the local stack with the vendor simulator: exactly one billed submission per
//! document, under throttling, outages, lost responses, crashes and concurrent deliveries.

use std::time::{Duration, Instant};

use futures::future::join_all;
use ocrbridge::blob::Blob;
use ocrbridge::job::{
    ContentHash, DocumentKey, Job, JobId, JobState, NewJob, Profile, SourceObject,
};
use ocrbridge::ledger::{Change, LeaseStep};
use ocrbridge::metrics::Metrics;
use ocrbridge::queue::{Queue, SubmitRequest, REASON_CODE_ATTRIBUTE};
use ocrbridge::retry::{Backoff, Budgets};
use ocrbridge::time::UnixMillis;
use ocrbridge::vendor::sim::{HttpTimeouts, SimVendor};
use ocrbridge::vendor::{Submission, Vendor};
use ocrbridge_tests::{set_faults, sim_stats, sqs_event, stack, unique_name, TestStack};
use serde_json::json;
use submit::{Submit, SubmitConfig};
use vendor_sim::engine::EngineKind;
use vendor_sim::{RunningSim, SimConfig};

struct World {
    s: TestStack,
    sim: RunningSim,
    submit: Submit<SimVendor>,
}

async fn world() -> World {
    let s = stack().await;
    let sim = s
        .start_sim(SimConfig {
            engine: EngineKind::Fast,
            ..SimConfig::default()
        })
        .await;
    let submit = Submit {
        vendor: s.sim_vendor(
            &sim,
            HttpTimeouts {
                connect: Duration::from_secs(1),
                request: Duration::from_secs(2),
            },
        ),
        ledger: s.ledger.clone(),
        blob: Blob::new(s.clients.s3.clone()),
        queue: Queue::new(s.clients.sqs.clone()),
        metrics: Metrics::memory("submit"),
        stack: s.config.clone(),
        config: SubmitConfig {
            vendor_base_url: sim.base_url(),
            vendor_timeout: Duration::from_secs(2),
            max_age: Duration::from_secs(3600),
            presign_expiry: Duration::from_secs(300),
            price_per_page: 0.01,
            backoff: Backoff {
                base: Duration::from_millis(200),
                cap: Duration::from_secs(1),
            },
            max_admission_wait: Duration::from_secs(2),
        },
        budgets: Budgets::for_vendor("sim", |_| Some("1000".into())),
    };
    World { s, sim, submit }
}

/// Uploads a document and creates its job in `Queued`, as intake would; returns the job.
async fn queued_job(w: &World, profile: &str) -> Job {
    let bytes = format!("document {}", unique_name("d")).into_bytes();
    let key = format!("receipts/{}.png", unique_name("k"));
    w.s.put(&key, bytes.clone(), None).await;
    let profile = Profile::new(profile).unwrap();
    let content = ContentHash::of(&bytes);
    let new = NewJob {
        key: DocumentKey::new(&content, &profile),
        profile,
        content,
        source: SourceObject {
            bucket: w.s.config.documents_bucket.clone(),
            key,
            version_id: None,
        },
        inspection: ocrbridge::job::Inspection {
            pages: Some(2),
            ..Default::default()
        },
    };
    let job =
        w.s.ledger
            .create_job(&new, UnixMillis::now())
            .await
            .unwrap()
            .job()
            .clone();
    w.s.ledger
        .transition(&job, JobState::Queued, Change::none(), UnixMillis::now())
        .await
        .unwrap()
}

async fn enqueue(w: &World, id: &JobId) {
    w.submit
        .queue
        .send_json(
            &w.s.config.submit_queue_url,
            &SubmitRequest { job_id: id.clone() },
        )
        .await
        .unwrap();
}

/// Emulates the SQS event source: receive, invoke, delete what succeeded; until every job in
/// `ids` is past `Submitting` or `timeout` passes. Returns the number of invocations.
async fn pump(w: &World, ids: &[JobId], timeout: Duration) -> usize {
    let started = Instant::now();
    let mut invocations = 0;
    let sqs = &w.s.clients.sqs;
    loop {
        let mut done = 0;
        for id in ids {
            let job = w.s.ledger.get_job(id).await.unwrap().unwrap();
            if job.state > JobState::Submitting {
                done += 1;
            }
        }
        if done == ids.len() || started.elapsed() > timeout {
            return invocations;
        }
        let messages = sqs
            .receive_message()
            .queue_url(&w.s.config.submit_queue_url)
            .max_number_of_messages(5)
            .wait_time_seconds(1)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            continue;
        }
        invocations += 1;
        let mut event = sqs_event(&messages, "arn:aws:sqs:us-east-1:123456789012:submit");
        // Carry message attributes (deferral bookkeeping) like the event source mapping does.
        for (record, message) in event.records.iter_mut().zip(&messages) {
            for (name, value) in message.message_attributes().cloned().unwrap_or_default() {
                let mut attribute = aws_lambda_events::event::sqs::SqsMessageAttribute::default();
                attribute.string_value = value.string_value().map(str::to_owned);
                attribute.data_type = Some(value.data_type().to_owned());
                record.message_attributes.insert(name, attribute);
            }
        }
        let response = w
            .submit
            .handle_sqs(event, UnixMillis::now().plus(Duration::from_secs(30)))
            .await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        for m in &messages {
            if !failed.contains(&m.message_id().unwrap_or_default()) {
                sqs.delete_message()
                    .queue_url(&w.s.config.submit_queue_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

async fn state(w: &World, id: &JobId) -> Job {
    w.s.ledger.get_job(id).await.unwrap().unwrap()
}

#[tokio::test]
async fn queued_jobs_are_submitted_once_each() {
    let w = world().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let job = queued_job(&w, "receipt").await;
        enqueue(&w, &job.id).await;
        ids.push(job.id);
    }
    pump(&w, &ids, Duration::from_secs(30)).await;
    for id in &ids {
        let job = state(&w, id).await;
        assert_eq!(job.state, JobState::Submitted);
        assert!(job.vendor_job_id.as_deref().unwrap().starts_with("doc_"));
        assert_eq!(job.lease, None);
    }
    let stats = sim_stats(&w.sim).await;
    assert_eq!(stats["billed_documents"], 3);
    // The simulator fetched each document through its presigned URL and processed it.
    let recorded = w.submit.metrics.recorded();
    assert_eq!(recorded["Submissions[sim,receipt]"], 3.0);
    assert!(
        (recorded["EstimatedCost[sim,receipt]"] - 0.06).abs() < 1e-9,
        "2 pages x 0.01 x 3"
    );

    // A redelivered submit message for a submitted job is acknowledged and does nothing.
    enqueue(&w, &ids[0]).await;
    pump(&w, &ids, Duration::from_secs(3)).await;
    let leftover = w.s.drain(&w.s.config.submit_queue_url).await;
    assert!(leftover.is_empty() || leftover.len() == 1);
    assert_eq!(sim_stats(&w.sim).await["billed_documents"], 3);
}

#[tokio::test]
async fn under_throttling_and_server_errors_every_job_is_billed_exactly_once() {
    let w = world().await;
    set_faults(&w.sim, json!({"seed": 11, "rates": {"throttle": 0.35, "server_error": 0.35}, "retry_after_secs": 1})).await;
    let mut ids = Vec::new();
    for _ in 0..8 {
        let job = queued_job(&w, "receipt").await;
        enqueue(&w, &job.id).await;
        ids.push(job.id);
    }
    pump(&w, &ids, Duration::from_secs(90)).await;
    for id in &ids {
        assert_eq!(state(&w, id).await.state, JobState::Submitted, "{id}");
    }
    let stats = sim_stats(&w.sim).await;
    assert_eq!(stats["billed_documents"], 8, "{stats}");
    assert_eq!(stats["accepted_submissions"], 8);
    let injected = stats["faults_injected"]["throttle"].as_u64().unwrap_or(0)
        + stats["faults_injected"]["server_error"]
            .as_u64()
            .unwrap_or(0);
    assert!(injected > 0, "faults were injected: {stats}");
    let retries: f64 = w
        .submit
        .metrics
        .recorded()
        .iter()
        .filter(|(k, _)| k.starts_with("SubmitRetries["))
        .map(|(_, v)| v)
        .sum();
    assert!(retries > 0.0);
    assert!(
        w.s.drain(&w.s.config.submit_dlq_url).await.is_empty(),
        "nothing dead-lettered"
    );
}

#[tokio::test]
async fn a_lost_response_is_adopted_through_the_idempotency_key() {
    let w = world().await;
    set_faults(&w.sim, json!({"seed": 1, "rates": {"drop": 1.0}})).await;
    let job = queued_job(&w, "invoice").await;
    enqueue(&w, &job.id).await;
    pump(&w, std::slice::from_ref(&job.id), Duration::from_secs(30)).await;
    let done = state(&w, &job.id).await;
    assert_eq!(done.state, JobState::Submitted);
    let stats = sim_stats(&w.sim).await;
    assert_eq!(stats["billed_documents"], 1);
    assert!(stats["faults_injected"]["drop"].as_u64().unwrap() >= 1);
    assert_eq!(w.submit.metrics.recorded()["Reconciles[sim,adopted]"], 1.0);
}

/// A worker recorded its attempt, reached the vendor, and died before recording the result.
#[tokio::test]
async fn a_crash_after_reaching_the_vendor_is_reconciled_not_resubmitted() {
    let w = world().await;
    let job = queued_job(&w, "receipt").await;
    let now = UnixMillis::now();
    let lease =
        w.s.ledger
            .acquire_lease(
                &job,
                LeaseStep::Submit,
                "crashed-worker",
                now.plus(Duration::from_millis(300)),
                now,
            )
            .await
            .unwrap();
    w.s.ledger
        .record_attempt(&lease, "attempt-1", UnixMillis::now())
        .await
        .unwrap();
    let url = w
        .submit
        .blob
        .presign_get(
            &ocrbridge::blob::ObjectRef {
                bucket: job.source.bucket.clone(),
                key: job.source.key.clone(),
                version_id: None,
            },
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let vendor_job = w
        .submit
        .vendor
        .submit(&Submission {
            idempotency_key: job.id.as_str(),
            document_url: &url,
            profile: &job.profile,
            external_ref: job.id.as_str(),
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await; // the crashed worker's lease expires

    enqueue(&w, &job.id).await;
    pump(&w, std::slice::from_ref(&job.id), Duration::from_secs(30)).await;
    let done = state(&w, &job.id).await;
    assert_eq!(done.state, JobState::Submitted);
    assert_eq!(done.vendor_job_id.as_deref(), Some(vendor_job.as_str()));
    assert_eq!(sim_stats(&w.sim).await["billed_documents"], 1);
    assert_eq!(w.submit.metrics.recorded()["Reconciles[sim,adopted]"], 1.0);
}

/// A worker recorded its attempt and died before the vendor call left.
#[tokio::test]
async fn a_crash_before_reaching_the_vendor_is_resubmitted_once() {
    let w = world().await;
    let job = queued_job(&w, "receipt").await;
    let now = UnixMillis::now();
    let lease =
        w.s.ledger
            .acquire_lease(
                &job,
                LeaseStep::Submit,
                "crashed-worker",
                now.plus(Duration::from_millis(200)),
                now,
            )
            .await
            .unwrap();
    w.s.ledger
        .record_attempt(&lease, "attempt-1", UnixMillis::now())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    enqueue(&w, &job.id).await;
    pump(&w, std::slice::from_ref(&job.id), Duration::from_secs(30)).await;
    assert_eq!(state(&w, &job.id).await.state, JobState::Submitted);
    assert_eq!(sim_stats(&w.sim).await["billed_documents"], 1);
    assert_eq!(
        w.submit.metrics.recorded()["Reconciles[sim,resubmitted]"],
        1.0
    );
}

#[tokio::test]
async fn concurrent_deliveries_of_one_message_make_one_submission() {
    let w = world().await;
    let job = queued_job(&w, "receipt").await;
    for _ in 0..4 {
        enqueue(&w, &job.id).await;
    }
    let messages = w.s.drain(&w.s.config.submit_queue_url).await;
    assert_eq!(messages.len(), 4);
    let event = sqs_event(&messages, "arn:aws:sqs:us-east-1:123456789012:submit");
    let deadline = UnixMillis::now().plus(Duration::from_secs(30));
    let results = join_all(
        event
            .records
            .iter()
            .map(|m| w.submit.handle_message(m, deadline)),
    )
    .await;
    assert_eq!(
        state(&w, &job.id).await.state,
        JobState::Submitted,
        "{results:?}"
    );
    let stats = sim_stats(&w.sim).await;
    assert_eq!(stats["accepted_submissions"], 1, "{results:?}");
    assert_eq!(stats["billed_documents"], 1);
}

#[tokio::test]
async fn a_permanent_error_fails_the_job_without_retries() {
    let w = world().await;
    // The simulator knows receipt, invoice and generic; "passport" is a 422.
    let job = queued_job(&w, "passport").await;
    enqueue(&w, &job.id).await;
    let invocations = pump(&w, std::slice::from_ref(&job.id), Duration::from_secs(20)).await;
    assert_eq!(invocations, 1, "no retry was spent");
    let failed = state(&w, &job.id).await;
    assert_eq!(failed.state, JobState::Failed);
    let reason = failed.reason.unwrap();
    assert_eq!(reason.code, "vendor_rejected");
    assert!(
        reason.message.contains("422") && reason.message.contains("unknown_profile"),
        "{}",
        reason.message
    );
    // Documented: acknowledged, not dead-lettered; the job carries the reason.
    assert!(w.s.drain(&w.s.config.submit_queue_url).await.is_empty());
    assert!(w.s.drain(&w.s.config.submit_dlq_url).await.is_empty());
    assert_eq!(sim_stats(&w.sim).await["billed_documents"], 0);
}

async fn put_api_key(w: &World, value: &str) {
    w.s.clients
        .secrets
        .put_secret_value()
        .secret_id(&w.s.config.vendor_api_key_secret)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_bad_credential_fails_clearly_after_one_refresh() {
    let w = world().await;
    put_api_key(&w, "sk_revoked_0000000000000000").await;
    let job = queued_job(&w, "receipt").await;
    enqueue(&w, &job.id).await;
    let invocations = pump(&w, std::slice::from_ref(&job.id), Duration::from_secs(20)).await;
    assert_eq!(invocations, 1, "auth failures burn no retries");
    let failed = state(&w, &job.id).await;
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.reason.as_ref().unwrap().code, "vendor_auth_failed");
    assert!(
        !failed.reason.unwrap().message.contains("sk_revoked"),
        "the key never appears in reasons"
    );
    let dead = w.s.drain(&w.s.config.submit_dlq_url).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].message_attributes().unwrap()[REASON_CODE_ATTRIBUTE].string_value(),
        Some("vendor_auth_failed")
    );
    assert_eq!(
        w.submit.metrics.recorded()["VendorAuthFailures[sim,403]"],
        1.0
    );
    assert_eq!(
        sim_stats(&w.sim).await["forbidden"],
        2,
        "one call, one call after the refresh"
    );
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_by_the_forced_refresh() {
    let w = world().await;
    let good =
        w.s.secret(&w.s.config.vendor_api_key_secret, "AWSCURRENT")
            .await;
    // The keyring caches the old key, then rotation replaces it (the vendor already has it).
    put_api_key(&w, "sk_old_key_00000000000000000").await;
    w.submit.vendor.refresh_credentials().await;
    put_api_key(&w, &good).await;
    let job = queued_job(&w, "receipt").await;
    enqueue(&w, &job.id).await;
    pump(&w, std::slice::from_ref(&job.id), Duration::from_secs(20)).await;
    assert_eq!(state(&w, &job.id).await.state, JobState::Submitted);
    assert_eq!(sim_stats(&w.sim).await["billed_documents"], 1);
}

#[tokio::test]
async fn during_an_outage_the_retry_budget_stops_attempts_and_they_resume_after() {
    let mut w = world().await;
    w.submit.budgets.retry.capacity = 3.0;
    w.submit.budgets.retry.refill_per_sec = 0.001;
    set_faults(&w.sim, json!({"seed": 5, "rates": {"server_error": 1.0}})).await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        let job = queued_job(&w, "receipt").await;
        enqueue(&w, &job.id).await;
        ids.push(job.id);
    }
    pump(&w, &ids, Duration::from_secs(12)).await;
    let during = sim_stats(&w.sim).await["requests"].as_u64().unwrap();
    // 6 first attempts + at most 3 budgeted retries reached the vendor; the rest were held back.
    assert!(
        during <= 9,
        "the budget bit: {during} requests during the outage"
    );
    assert!(w.submit.metrics.recorded()["RetryBudgetExhausted[sim]"] >= 1.0);
    for id in &ids {
        assert!(state(&w, id).await.state <= JobState::Submitting);
    }

    // The outage ends and the budget refills: everything goes through, nothing was spent.
    set_faults(&w.sim, json!({})).await;
    w.submit.budgets.retry.refill_per_sec = 100.0;
    pump(&w, &ids, Duration::from_secs(60)).await;
    for id in &ids {
        assert_eq!(state(&w, id).await.state, JobState::Submitted, "{id}");
    }
    assert_eq!(sim_stats(&w.sim).await["billed_documents"], 6);
    assert!(
        w.s.drain(&w.s.config.submit_dlq_url).await.is_empty(),
        "deferred, not dead-lettered"
    );
}

#[tokio::test]
async fn a_job_past_its_maximum_age_fails_with_the_reason() {
    let mut w = world().await;
    w.submit.config.max_age = Duration::ZERO;
    let job = queued_job(&w, "receipt").await;
    enqueue(&w, &job.id).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    pump(&w, std::slice::from_ref(&job.id), Duration::from_secs(10)).await;
    let failed = state(&w, &job.id).await;
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.reason.unwrap().code, "max_age_exceeded");
    let dead = w.s.drain(&w.s.config.submit_dlq_url).await;
    assert_eq!(
        dead[0].message_attributes().unwrap()[REASON_CODE_ATTRIBUTE].string_value(),
        Some("max_age_exceeded")
    );
    assert_eq!(sim_stats(&w.sim).await["billed_documents"], 0);
}
