//! The Mindee v2 adapter against the simulator's Mindee twin, through the whole pipeline with
//! `VENDOR=mindee`: signed webhooks (hex HMAC, no timestamp) verified, forged ones refused and
//! replayed ones deduplicated by inference id; polling when no webhook is configured; a lost
//! enqueue answer adopted from the webhook that names our alias instead of being paid twice.

use std::time::Duration;

use ocrbridge::job::{reason, JobState};
use ocrbridge::queue::REASON_CODE_ATTRIBUTE;
use ocrbridge::vendors::select::VendorKind;
use ocrbridge_local::pipeline::{Pipeline, PipelineOptions};
use ocrbridge_tests::{
    job_id_for, key_paths, results_object, run_until_settled, set_faults, sim_stats, stack_with,
    text_pdf, TestStack,
};
use serde_json::{json, Value};
use vendor_sim::engine::EngineKind;
use vendor_sim::TwinSettings;

async fn mindee_stack() -> TestStack {
    stack_with(&[("VendorName", "mindee")]).await
}

fn options(webhooks: bool) -> PipelineOptions {
    PipelineOptions {
        vendor: VendorKind::Mindee,
        // Text PDFs: poppler reads their text layer, no OCR.
        engine: EngineKind::Tesseract,
        mindee_webhooks: webhooks,
        reconcile_every: Duration::from_secs(3),
        submitted_stale: Duration::from_secs(60),
        ..PipelineOptions::default()
    }
}

fn receipt_pdf(shop: &str) -> Vec<u8> {
    text_pdf(&[
        shop,
        "Date: 14/11/2026",
        "Subtotal: 15.60",
        "Tax: 0.94",
        "Total: 16.54",
    ])
}

fn invoice_pdf(number: &str) -> Vec<u8> {
    text_pdf(&[
        "ACME Supplies Ltd",
        &format!("Invoice No: {number}"),
        "Invoice Date: 12/03/2026",
        "Paper A4 2 x 50.00 100.00",
        "Subtotal: 100.00",
        "Tax: 8.00",
        "Total: 108.00",
    ])
}

fn count(metrics: &std::collections::BTreeMap<String, f64>, name: &str) -> f64 {
    metrics.get(name).copied().unwrap_or(0.0)
}

/// Each profile is enqueued with its model, our job id as the alias and the webhook id; the
/// signed webhook brings the result, which is fetched by following the job's redirect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_profile_completes_through_a_signed_webhook() {
    let s = mindee_stack().await;
    let p = Pipeline::start(s.clients.clone(), &s.stack, options(true))
        .await
        .unwrap();
    let uploads = [
        ("receipts/r.pdf", receipt_pdf("ACME GROCERY"), "receipt"),
        ("invoices/i.pdf", invoice_pdf("INV-1"), "invoice"),
        (
            "other/g.pdf",
            text_pdf(&["Plain text", "Total: 3.00"]),
            "generic",
        ),
    ];
    let mut ids = Vec::new();
    for (key, bytes, profile) in &uploads {
        s.put(key, bytes.clone(), None).await;
        ids.push(job_id_for(bytes, profile));
    }
    let jobs = run_until_settled(&p, &s.ledger, &ids, Duration::from_secs(60)).await;
    for (job, (key, _, profile)) in jobs.iter().zip(&uploads) {
        assert!(
            matches!(job.state, JobState::Completed | JobState::NeedsReview),
            "{key}: {job:?}"
        );
        let result: Value =
            serde_json::from_slice(&results_object(&s, job.result_key.as_ref().unwrap()).await)
                .unwrap();
        assert_eq!(result["vendor"]["name"], "mindee");
        assert_eq!(result["fields"]["profile"], *profile);
    }
    let receipt: Value =
        serde_json::from_slice(&results_object(&s, jobs[0].result_key.as_ref().unwrap()).await)
            .unwrap();
    assert_eq!(receipt["fields"]["total"]["value"], "16.54", "{receipt}");
    let stats = sim_stats(&p.sim).await;
    assert_eq!(stats["billed_documents"], 3);
    assert_eq!(stats["webhooks_sent"]["genuine"], 3, "{stats}");
    let webhook = p.webhook.metrics.recorded();
    assert_eq!(
        count(&webhook, "WebhooksVerified[succeeded]"),
        3.0,
        "{webhook:?}"
    );
}

/// Without a webhook id, jobs are polled: the processed job's 302 is followed to its result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_webhooks_jobs_are_polled() {
    let s = mindee_stack().await;
    let p = Pipeline::start(s.clients.clone(), &s.stack, options(false))
        .await
        .unwrap();
    let bytes = invoice_pdf("INV-POLL");
    s.put("invoices/poll.pdf", bytes.clone(), None).await;
    let id = job_id_for(&bytes, "invoice");
    let jobs = run_until_settled(&p, &s.ledger, &[id], Duration::from_secs(60)).await;
    assert!(jobs[0].result_key.is_some(), "{:?}", jobs[0]);
    let stats = sim_stats(&p.sim).await;
    assert_eq!(stats["webhooks_sent"], json!({}), "{stats}");
    assert_eq!(stats["webhooks_without_endpoint"], 0);
    assert!(stats["status_requests"].as_u64().unwrap() >= 2, "{stats}");
}

/// A 429 while polling is waited out, the poll is not lost, nothing is resubmitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_poll_is_waited_out() {
    let s = mindee_stack().await;
    let mut o = options(false);
    o.processing_delay = Duration::from_secs(2);
    let p = Pipeline::start(s.clients.clone(), &s.stack, o)
        .await
        .unwrap();
    let bytes = invoice_pdf("INV-429");
    s.put("invoices/throttled.pdf", bytes.clone(), None).await;
    let id = job_id_for(&bytes, "invoice");
    for _ in 0..100 {
        p.pump_once().await;
        if sim_stats(&p.sim).await["billed_documents"] == 1 {
            break;
        }
    }
    set_faults(
        &p.sim,
        json!({"seed": 3, "rates": {"throttle": 0.5}, "retry_after_secs": 1}),
    )
    .await;
    let jobs = run_until_settled(&p, &s.ledger, &[id], Duration::from_secs(90)).await;
    assert!(jobs[0].result_key.is_some(), "{:?}", jobs[0]);
    let stats = sim_stats(&p.sim).await;
    assert!(
        stats["faults_injected"]["throttle"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert_eq!(stats["billed_documents"], 1);
    assert!(s.drain(&s.config.results_dlq_url).await.is_empty());
}

/// A job Mindee fails ends with Mindee's reason, whether the failure comes by webhook or poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_fails_with_mindees_reason() {
    let s = mindee_stack().await;
    let p = Pipeline::start(s.clients.clone(), &s.stack, options(true))
        .await
        .unwrap();
    set_faults(&p.sim, json!({"seed": 1, "rates": {"failed_job": 1.0}})).await;
    let bytes = invoice_pdf("INV-FAIL");
    s.put("invoices/fail.pdf", bytes.clone(), None).await;
    let id = job_id_for(&bytes, "invoice");
    let jobs = run_until_settled(&p, &s.ledger, &[id], Duration::from_secs(60)).await;
    assert_eq!(jobs[0].state, JobState::Failed, "{:?}", jobs[0]);
    let why = jobs[0].reason.as_ref().unwrap();
    assert_eq!(why.code, reason::VENDOR_FAILED);
    assert!(why.message.starts_with("422-004:"), "{why:?}");
}

/// A result Mindee no longer keeps fails the job `result_unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_result_fails_the_job_result_unavailable() {
    let s = mindee_stack().await;
    let mut o = options(true);
    o.twins = TwinSettings {
        result_ttl: Duration::ZERO,
        ..TwinSettings::default()
    };
    let p = Pipeline::start(s.clients.clone(), &s.stack, o)
        .await
        .unwrap();
    let bytes = invoice_pdf("INV-GONE");
    s.put("invoices/gone.pdf", bytes.clone(), None).await;
    let id = job_id_for(&bytes, "invoice");
    let jobs = run_until_settled(&p, &s.ledger, &[id], Duration::from_secs(60)).await;
    assert_eq!(jobs[0].state, JobState::Failed, "{:?}", jobs[0]);
    assert_eq!(
        jobs[0].reason.as_ref().unwrap().code,
        reason::RESULT_UNAVAILABLE
    );
}

/// Every forged delivery (a wrong signature) is refused; every replay (the same body and valid
/// signature again, later: Mindee signs no timestamp) is caught by the inference-id claim, and
/// the document is parsed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_webhooks_are_refused_and_replays_deduplicated() {
    let s = mindee_stack().await;
    let mut o = options(true);
    o.faults = vendor_sim::faults::FaultConfig {
        seed: 5,
        rates: [
            (vendor_sim::faults::Fault::BadSignature, 1.0),
            (vendor_sim::faults::Fault::Replay, 1.0),
        ]
        .into(),
        webhook_delay_ms: 500,
        ..Default::default()
    };
    let p = Pipeline::start(s.clients.clone(), &s.stack, o)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        let bytes = invoice_pdf(&format!("INV-R{i}"));
        s.put(&format!("invoices/r{i}.pdf"), bytes.clone(), None)
            .await;
        ids.push(job_id_for(&bytes, "invoice"));
    }
    let jobs = run_until_settled(&p, &s.ledger, &ids, Duration::from_secs(60)).await;
    // The replays come a second after the genuine deliveries.
    for _ in 0..40 {
        if sim_stats(&p.sim).await["webhooks_sent"]["replay"] == 3 {
            break;
        }
        p.pump_once().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    p.pump_once().await;
    let stats = sim_stats(&p.sim).await;
    assert_eq!(stats["webhooks_sent"]["forged"], 3, "{stats}");
    assert_eq!(stats["webhooks_sent"]["replay"], 3, "{stats}");
    let webhook = p.webhook.metrics.recorded();
    assert_eq!(
        count(&webhook, "WebhooksRejected[signature]"),
        3.0,
        "{webhook:?}"
    );
    assert_eq!(
        count(&webhook, "WebhooksVerified[succeeded]"),
        3.0,
        "{webhook:?}"
    );
    assert_eq!(count(&webhook, "WebhookDuplicates"), 3.0, "{webhook:?}");
    for job in &jobs {
        assert!(job.result_key.is_some(), "{job:?}");
        let written = s
            .clients
            .s3
            .list_objects_v2()
            .bucket(&s.config.results_bucket)
            .prefix(format!("results/{}/", job.id))
            .send()
            .await
            .unwrap();
        assert_eq!(written.contents().len(), 1, "parsed once: {}", job.id);
    }
}

/// A verified webhook whose alias is not one of our job ids is acknowledged (so Mindee stops)
/// and kept in the results DLQ; one whose alias looks like a job id we never made is
/// dead-lettered by parse. Neither creates or changes a job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_for_an_alias_we_never_submitted_is_kept_not_acted_on() {
    let s = mindee_stack().await;
    let p = Pipeline::start(s.clients.clone(), &s.stack, options(true))
        .await
        .unwrap();
    let secret = s.secret(&s.config.webhook_secret, "AWSCURRENT").await;
    let deliver = |alias: &str, inference: &str| {
        let body = json!({"inference": {"id": inference, "job": {"id": format!("job-{inference}")},
            "model": {"id": "m"}, "file": {"name": "x.pdf", "alias": alias, "page_count": 1},
            "result": {"fields": {}}}})
        .to_string();
        let signature = vendor_sim::mindee::signature(&secret, body.as_bytes());
        (body, signature)
    };
    let now = (ocrbridge::time::UnixMillis::now().0 / 1000) as i64;
    let (body, signature) = deliver("dummy-alias.jpg", "inf-1");
    let headers = vec![("x-signature".to_owned(), signature)];
    let reply = p
        .webhook
        .handle("POST", headers.as_slice(), body.as_bytes(), now)
        .await;
    assert_eq!(reply.status, 200);
    let never = format!("doc-{}", "0".repeat(40));
    let (body, signature) = deliver(&never, "inf-2");
    let headers = vec![("x-signature".to_owned(), signature)];
    let reply = p
        .webhook
        .handle("POST", headers.as_slice(), body.as_bytes(), now)
        .await;
    assert_eq!(reply.status, 200);
    let mut codes = Vec::new();
    for _ in 0..20 {
        p.pump_once().await;
        for m in s.drain(&s.config.results_dlq_url).await {
            codes.push(
                m.message_attributes()
                    .and_then(|a| a.get(REASON_CODE_ATTRIBUTE))
                    .and_then(|a| a.string_value())
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        if codes.len() == 2 {
            break;
        }
    }
    assert_eq!(codes, ["unknown_job", "unknown_job"]);
    assert_eq!(
        count(
            &p.webhook.metrics.recorded(),
            "WebhooksRejected[unknown_job]"
        ),
        1.0
    );
    assert!(ocrbridge_tests::all_jobs(&s.ledger, 100).await.is_empty());
}

/// The enqueue reached Mindee but its answer was lost: Mindee has no idempotency and no search,
/// so submit waits for the completion that names the job (the alias), and the webhook's vendor
/// job is adopted. One charge, no resubmission.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_enqueue_answer_is_adopted_from_the_webhook() {
    let s = mindee_stack().await;
    let mut o = options(true);
    o.processing_delay = Duration::from_secs(1);
    let p = Pipeline::start(s.clients.clone(), &s.stack, o)
        .await
        .unwrap();
    set_faults(&p.sim, json!({"seed": 1, "rates": {"drop": 1.0}})).await;
    let bytes = invoice_pdf("INV-LOST");
    s.put("invoices/lost.pdf", bytes.clone(), None).await;
    let id = job_id_for(&bytes, "invoice");
    for _ in 0..100 {
        p.pump_once().await;
        if sim_stats(&p.sim).await["accepted_submissions"] == 1 {
            break;
        }
    }
    set_faults(&p.sim, json!({})).await;
    let jobs = run_until_settled(&p, &s.ledger, &[id], Duration::from_secs(60)).await;
    assert!(jobs[0].result_key.is_some(), "{:?}", jobs[0]);
    let stats = sim_stats(&p.sim).await;
    assert_eq!(stats["billed_documents"], 1, "{stats}");
    assert_eq!(stats["duplicate_jobs"], 0);
    assert_eq!(
        count(
            &p.parse.metrics.recorded(),
            "Reconciles[mindee,adopted_by_completion]"
        ),
        1.0
    );
}

/// Mindee's webhook body is the whole inference: a large document's is far over the 256 KiB a
/// notice needs. With the enqueue answer lost, that webhook is the only evidence that adopts
/// the job; it must be accepted (up to Lambda's 6 MB), not refused 413 on every retry until the
/// job is held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_inference_webhook_is_accepted_and_adopts_the_job() {
    let s = mindee_stack().await;
    let p = Pipeline::start(s.clients.clone(), &s.stack, options(true))
        .await
        .unwrap();
    let bytes = invoice_pdf("INV-LARGE");
    let id = job_id_for(&bytes, "invoice");
    set_faults(
        &p.sim,
        json!({"seed": 1, "oversized_result_bytes": 1_048_576, "force": {
            "drop": [{"subject": id.as_str()}],
            "oversized_result": [{"subject": id.as_str()}],
        }}),
    )
    .await;
    s.put("invoices/large.pdf", bytes, None).await;
    let jobs = run_until_settled(&p, &s.ledger, &[id], Duration::from_secs(60)).await;
    assert!(jobs[0].result_key.is_some(), "{:?}", jobs[0]);
    let webhook = p.webhook.metrics.recorded();
    assert_eq!(
        count(&webhook, "WebhooksRejected[too_large]"),
        0.0,
        "{webhook:?}"
    );
    assert_eq!(
        count(
            &p.parse.metrics.recorded(),
            "Reconciles[mindee,adopted_by_completion]"
        ),
        1.0
    );
    assert_eq!(sim_stats(&p.sim).await["billed_documents"], 1);
}

/// The twin invents nothing: every field of its results appears in Mindee's own payloads
/// (`../shared/fixtures/mindee-v2`), at the same place — but for `raw_text.pages[].content`,
/// which those payloads do not enable and Mindee's API reference documents. And it leaves
/// nothing out: every path all those payloads carry, the twin's result carries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_twins_results_have_mindees_shape() {
    let mut real = std::collections::BTreeSet::new();
    // What every recording carries: the twin must send it too (Mindee returns each field of the
    // model's data schema, null when the document has none).
    let mut always: Option<std::collections::BTreeSet<String>> = None;
    for name in [
        "complete.json",
        "complete_with_coordinates.json",
        "default_sample.json",
        "blank.json",
    ] {
        let text = std::fs::read_to_string(
            ocrbridge_tests::vendor_recordings()
                .join("mindee-v2/financial_document")
                .join(name),
        )
        .unwrap();
        let paths = key_paths(&serde_json::from_str(&text).unwrap());
        always = ocrbridge_tests::carried_by_all(always, &paths);
        real.extend(paths);
    }
    let always = always.unwrap_or_default();
    real.insert("inference.result.raw_text.pages".into());
    real.insert("inference.result.raw_text.pages[].content".into());
    let s = mindee_stack().await;
    let p = Pipeline::start(s.clients.clone(), &s.stack, options(true))
        .await
        .unwrap();
    let bytes = invoice_pdf("INV-SHAPE");
    s.put("invoices/shape.pdf", bytes.clone(), None).await;
    let jobs = run_until_settled(
        &p,
        &s.ledger,
        &[job_id_for(&bytes, "invoice")],
        Duration::from_secs(60),
    )
    .await;
    let raw = ocrbridge::vendors::Vendor::fetch_result(
        &p.parse.vendor,
        jobs[0].vendor_job_id.as_deref().unwrap(),
    )
    .await
    .unwrap();
    let twin = key_paths(&serde_json::from_slice(&raw).unwrap());
    let invented: Vec<&String> = twin.difference(&real).collect();
    assert!(
        invented.is_empty(),
        "fields Mindee never sends: {invented:?}"
    );
    let missing: Vec<&String> = always.difference(&twin).collect();
    assert!(
        missing.is_empty(),
        "fields every Mindee result carries, missing from the twin's: {missing:?}"
    );
    for needed in [
        "inference.result.fields.total_amount.value",
        "inference.result.fields.line_items.items[].fields.unit_price.value",
        "inference.result.fields.supplier_name.locations[].polygon",
        "inference.result.fields.locale.fields.currency.value",
        "inference.file.alias",
    ] {
        assert!(twin.contains(needed), "{needed}");
    }
}

/// Mindee's keys come from its console: ocrbridge does not rotate them, and a rotation step
/// asked of it says so. The scheduled key check proves the key with Mindee's cheapest
/// authenticated call (`GET /v2/search/models`: nothing enqueued, nothing billed) and reports
/// how long it has been current; a key Mindee refuses fails the check and is counted where the
/// "sudden 401/403" alarm looks (`VendorAuthFailures[mindee,key_check,401]`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mindee_keys_are_checked_not_rotated() {
    use ocrbridge::time::UnixMillis;
    use rotate::{RotateError, RotationEvent, Step};

    let s = mindee_stack().await;
    let p = Pipeline::start(s.clients.clone(), &s.stack, options(true))
        .await
        .unwrap();
    let rotate = s.rotate(p.parse.vendor.clone());
    let err = rotate
        .handle(&RotationEvent {
            secret_id: s.config.vendor_api_key_secret.clone(),
            token: uuid::Uuid::new_v4().to_string(),
            step: Step::Create,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RotateError::NotRotatable {
                vendor: "mindee",
                ..
            }
        ),
        "{err}"
    );

    let before = sim_stats(&p.sim).await["requests"].as_u64().unwrap();
    let check = rotate.check_key(UnixMillis::now().0).await.unwrap();
    assert!(check.age_days.is_some_and(|d| d < 0.1), "{check:?}");
    assert_eq!(check.standby, None, "one key: no standby");
    assert_eq!(
        sim_stats(&p.sim).await["requests"].as_u64().unwrap(),
        before + 1,
        "one authenticated call"
    );
    assert_eq!(sim_stats(&p.sim).await["billed_documents"], 0);
    let in_100_days = UnixMillis::now().0 + 100 * 86_400_000;
    let later = rotate.check_key(in_100_days).await.unwrap();
    assert!(
        later.age_days.is_some_and(|d| (99.9..100.1).contains(&d)),
        "{later:?}"
    );
    let recorded = rotate.metrics.recorded();
    assert_eq!(recorded["VendorKeyChecks[mindee,current,ok]"], 2.0);
    assert!(recorded["VendorKeyAgeDays[mindee]"] > 99.0, "{recorded:?}");

    // The key is revoked in Mindee's console.
    let key = s
        .secret(&s.config.vendor_api_key_secret, "AWSCURRENT")
        .await;
    let revoked = reqwest::Client::new()
        .post(format!("{}/admin/api-keys/revoke", p.sim.base_url()))
        .json(&json!({ "key": key }))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 204);
    let err = rotate.check_key(UnixMillis::now().0).await.unwrap_err();
    assert!(
        matches!(
            err,
            RotateError::KeyRefused {
                which: "current",
                status: 401
            }
        ),
        "{err}"
    );
    assert!(!err.to_string().contains(&key), "the key never in an error");
    let recorded = rotate.metrics.recorded();
    assert_eq!(recorded["VendorAuthFailures[mindee,key_check,401]"], 1.0);
    assert_eq!(recorded["VendorKeyChecks[mindee,current,refused]"], 1.0);
}
