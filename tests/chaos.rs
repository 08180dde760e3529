//! The chaos run: many documents through the whole local pipeline with every simulator fault
//! switched on and functions "killed" after their side effects, then the invariants.
//!
//! `CHAOS_DOCS` sets the document count (default 200, the CI size); `make chaos` runs 1,000.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ocrbridge::job::{JobId, JobState};
use ocrbridge::queue::REASON_CODE_ATTRIBUTE;
use ocrbridge_local::pipeline::{Pipeline, PipelineOptions};
use ocrbridge_tests::{stack, unique_name};
use serde_json::Value;
use vendor_sim::engine::EngineKind;
use vendor_sim::faults::{Fault, FaultConfig};

/// A small valid PNG header with unique trailing bytes: intake accepts it (dimensions from the
/// header), and the simulator's fast engine does not decode it.
fn png(i: usize, salt: &str) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    b.extend_from_slice(&(800u32 + (i % 7) as u32).to_be_bytes());
    b.extend_from_slice(&1000u32.to_be_bytes());
    b.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(format!("{salt}-{i}").as_bytes());
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_run_keeps_every_invariant() {
    let docs: usize = std::env::var("CHAOS_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let s = stack().await;
    let rates = BTreeMap::from([
        (Fault::Throttle, 0.08),
        (Fault::ServerError, 0.08),
        (Fault::Slow, 0.02),
        (Fault::Drop, 0.05),
        (Fault::DuplicateWebhook, 0.2),
        (Fault::OutOfOrder, 0.2),
        (Fault::DelayedWebhook, 0.1),
        (Fault::LostWebhook, 0.1),
        (Fault::BadSignature, 0.1),
        (Fault::Replay, 0.1),
        (Fault::Drift, 0.05),
        (Fault::FailedJob, 0.05),
    ]);
    let options = PipelineOptions {
        engine: EngineKind::Fast,
        faults: FaultConfig {
            seed: 20261126,
            rates,
            rate_limit_rps: Some(100.0),
            slow_delay_ms: 6_000,
            webhook_delay_ms: 1_500,
            ..FaultConfig::default()
        },
        crash_rate: 0.05,
        crash_redelivery: Duration::from_secs(2),
        // Reconcile polls Submitted jobs whose webhook is late or lost; in production every
        // 5 minutes after 15, here every 10 seconds after 30.
        reconcile_every: Duration::from_secs(10),
        concurrency: 3,
        vendor_rps: 50.0,
        binaries: None,
        submitted_stale: Duration::from_secs(30),
    };
    let p = Pipeline::start(s.clients.clone(), &s.stack, options)
        .await
        .unwrap();

    // Uploads: unique documents, some duplicates of them, and some junk intake must reject.
    let salt = unique_name("chaos");
    let mut unique_accepted: BTreeSet<Vec<u8>> = BTreeSet::new();
    for i in 0..docs {
        let key = format!("receipts/chaos/{i:04}.png");
        let bytes = if i % 25 == 7 {
            b"not a document at all".to_vec()
        } else if i % 20 == 3 {
            png(i - 1, &salt) // the same content as another upload: a duplicate (or its first copy)
        } else {
            png(i, &salt)
        };
        if bytes.starts_with(b"\x89PNG") {
            unique_accepted.insert(bytes.clone());
        }
        s.put(&key, bytes, Some("image/png")).await;
    }

    let started = Instant::now();
    let budget = Duration::from_secs(60 + docs as u64 * 3 / 2);
    let mut jobs: BTreeMap<JobId, JobState>;
    let mut last_check = Instant::now();
    // Checking lists every state through the index, which moto answers by scanning the table:
    // look less often as the run grows, so the check does not become the load.
    let check_every = Duration::from_secs((docs as u64 / 100).max(3));
    loop {
        if p.pump_once().await > 0 && last_check.elapsed() < check_every {
            continue;
        }
        if last_check.elapsed() < check_every {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        last_check = Instant::now();
        // Settled when every job the ledger holds is terminal (or NeedsReview), the queues are
        // drained, and every upload has a job (its notification was handled).
        let mut all = BTreeMap::new();
        for state in JobState::ALL {
            let (page, _) = p
                .intake
                .ledger
                .jobs_in_state_before(state, ocrbridge::time::UnixMillis(u64::MAX), 1000, None)
                .await
                .unwrap();
            for job in page {
                all.insert(job.id.clone(), job.state);
            }
        }
        jobs = all;
        let settled = jobs
            .values()
            .all(|s| s.is_terminal() || *s == JobState::NeedsReview);
        let expected_jobs = unique_accepted.len() + 1; // all junk has the same content: one rejected job
        if settled && jobs.len() >= expected_jobs {
            break;
        }
        if started.elapsed() > budget {
            let stats: Value = reqwest::get(format!("{}/admin/stats", p.sim.base_url()))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            panic!(
                "not settled after {budget:?}: {:?}\nsubmit: {:?}\nintake: {:?}\nsubmit DLQ: {}\nsimulator: {stats}",
                count(&jobs),
                p.submit.metrics.recorded(),
                p.intake.metrics.recorded(),
                s.drain(&s.config.submit_dlq_url).await.len(),
            );
        }
    }
    // Late deliveries (delayed, reordered, retried webhooks) still arrive: let them, then check
    // nothing moved backwards.
    for _ in 0..10 {
        p.pump_once().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let stats: Value = reqwest::get(format!("{}/admin/stats", p.sim.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    eprintln!(
        "chaos: {docs} uploads, {} jobs {:?} in {:.1}s, {} crashes",
        jobs.len(),
        count(&jobs),
        started.elapsed().as_secs_f64(),
        p.crashes.load(std::sync::atomic::Ordering::Relaxed)
    );
    eprintln!("simulator: {stats}");

    // 1. Every document ends in a terminal state (NeedsReview waits for a human).
    assert!(
        jobs.values()
            .all(|s| s.is_terminal() || *s == JobState::NeedsReview),
        "{:?}",
        count(&jobs)
    );
    // 2. Billing: one vendor job per submitted document, never more.
    let mut vendor_jobs = BTreeSet::new();
    let mut submitted_jobs = 0;
    for id in jobs.keys() {
        let job = p.intake.ledger.get_job(id).await.unwrap().unwrap();
        if let Some(v) = &job.vendor_job_id {
            submitted_jobs += 1;
            assert!(
                vendor_jobs.insert(v.clone()),
                "two jobs share vendor job {v}"
            );
        }
        // 4. Every rejected or failed job says why.
        if matches!(
            job.state,
            JobState::Rejected | JobState::Failed | JobState::NeedsReview
        ) {
            let reason = job
                .reason
                .as_ref()
                .unwrap_or_else(|| panic!("{id} is {} without a reason", job.state));
            assert!(!reason.code.is_empty() && !reason.message.is_empty());
        }
    }
    assert_eq!(
        stats["billed_documents"].as_u64().unwrap() as usize,
        submitted_jobs,
        "zero duplicate charges: {stats}"
    );
    assert_eq!(stats["accepted_submissions"], stats["billed_documents"]);
    assert_eq!(
        submitted_jobs,
        unique_accepted.len(),
        "each unique document was submitted once"
    );
    // 3. Exactly one stored result per parsed job.
    let parsed: BTreeSet<String> = {
        let mut keys = BTreeSet::new();
        let mut token = None;
        loop {
            let out = s
                .clients
                .s3
                .list_objects_v2()
                .bucket(&s.config.results_bucket)
                .prefix("results/")
                .set_continuation_token(token.clone())
                .send()
                .await
                .unwrap();
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            token = out.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        keys
    };
    let completed: BTreeSet<String> = jobs
        .iter()
        .filter(|(_, s)| matches!(s, JobState::Completed | JobState::NeedsReview))
        .map(|(id, _)| format!("results/{id}.json"))
        .collect();
    assert_eq!(
        parsed, completed,
        "one stored result per completed job, and none for the others"
    );
    // 5. Every forged or replayed webhook was rejected.
    let webhook = p.webhook.metrics.recorded();
    let sent = &stats["webhooks_sent"];
    let forged = sent["forged"].as_u64().unwrap_or(0) as f64;
    let replayed = sent["replay"].as_u64().unwrap_or(0) as f64;
    assert!(forged > 0.0 && replayed > 0.0, "the faults fired: {sent}");
    assert_eq!(
        webhook
            .get("WebhooksRejected[signature]")
            .copied()
            .unwrap_or(0.0),
        forged,
        "{webhook:?}"
    );
    assert_eq!(
        webhook
            .get("WebhooksRejected[stale]")
            .copied()
            .unwrap_or(0.0),
        replayed,
        "{webhook:?}"
    );
    // 6. Every DLQ message carries its reason.
    for dlq in [
        &s.config.intake_dlq_url,
        &s.config.submit_dlq_url,
        &s.config.results_dlq_url,
    ] {
        for m in s.drain(dlq).await {
            let attrs = m.message_attributes().cloned().unwrap_or_default();
            assert!(
                attrs.contains_key(REASON_CODE_ATTRIBUTE),
                "a DLQ message without a reason: {:?}",
                m.body()
            );
        }
    }
    // The faults really happened.
    for fault in [
        "server_error",
        "duplicate_webhook",
        "lost_webhook",
        "bad_signature",
        "replay",
    ] {
        assert!(
            stats["faults_injected"][fault].as_u64().unwrap_or(0) > 0,
            "{fault} never fired: {stats}"
        );
    }
    assert!(
        p.crashes.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "crashes were injected"
    );
}

fn count(jobs: &BTreeMap<JobId, JobState>) -> BTreeMap<&'static str, usize> {
    let mut out = BTreeMap::new();
    for s in jobs.values() {
        *out.entry(s.as_str()).or_default() += 1;
    }
    out
}
