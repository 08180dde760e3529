//! Parse and reconcile on the local stack, with the vendor simulator running real OCR.

use std::time::Duration;

use ocrbridge::blob::Blob;
use ocrbridge::cost::Decimal;
use ocrbridge::job::{
    ContentHash, DocumentKey, Job, JobId, JobState, NewJob, Profile, SourceObject,
};
use ocrbridge::ledger::Change;
use ocrbridge::metrics::Metrics;
use ocrbridge::queue::{Queue, ResultNotice, SubmitRequest};
use ocrbridge::retry::{Backoff, Budgets};
use ocrbridge::rules::RuleConfig;
use ocrbridge::time::UnixMillis;
use ocrbridge::vendors::sim::{HttpTimeouts, SimVendor};
use ocrbridge_tests::{
    set_faults, shared_dir, sim_stats, sqs_event, stack, text_pdf, text_pdf_pages, unique_name,
    TestStack,
};
use parse::{Parse, ParseConfig};
use reconcile::{Reconcile, ReconcileConfig};
use serde_json::{json, Value};
use submit::{Submit, SubmitConfig};
use vendor_sim::engine::EngineKind;
use vendor_sim::{Idempotency, RunningSim, SimConfig};

struct World {
    s: TestStack,
    sim: RunningSim,
    submit: Submit<SimVendor>,
    parse: Parse<SimVendor>,
    reconcile: Reconcile<SimVendor>,
}

async fn world() -> World {
    world_with(Idempotency::Native, EngineKind::Tesseract).await
}

/// A simulator treating repeated keys as `idempotency` says (and adapters told so).
async fn world_with(idempotency: Idempotency, engine: EngineKind) -> World {
    let s = stack().await;
    // No webhook URL: every result must be found by reconcile's polling (the lost-webhook case).
    let sim = s
        .start_sim(SimConfig {
            engine,
            idempotency,
            ..SimConfig::default()
        })
        .await;
    let adapter = match idempotency {
        Idempotency::None => ocrbridge::vendors::Idempotency::None,
        _ => ocrbridge::vendors::Idempotency::Native {
            remembers_for: None,
        },
    };
    let vendor = || {
        s.sim_vendor(&sim, HttpTimeouts::default())
            .with_idempotency(adapter)
    };
    let backoff = Backoff {
        base: Duration::from_millis(200),
        cap: Duration::from_secs(1),
    };
    World {
        submit: Submit {
            routes: ocrbridge::vendors::route::Routes::none(),
            vendor: vendor(),
            ledger: s.ledger.clone(),
            blob: Blob::new(s.clients.s3.clone()),
            queue: Queue::new(s.clients.sqs.clone()),
            metrics: Metrics::memory("submit"),
            stack: s.config.clone(),
            config: SubmitConfig {
                max_age: Duration::from_secs(3600),
                presign_expiry: Duration::from_secs(300),
                prices: Default::default(),
                backoff,
                max_admission_wait: Duration::from_secs(2),
                ambiguity: Default::default(),
                auth_pause: Duration::from_secs(5),
                poll: Default::default(),
                breaker: None,
                message_concurrency: ocrbridge::batch::DEFAULT_CONCURRENCY,
            },
            budgets: Budgets::for_vendor("sim", |_| Some("1000".into())).unwrap(),
        },
        parse: Parse {
            routes: ocrbridge::vendors::route::Routes::none(),
            vendor: vendor(),
            budgets: Budgets::for_vendor("sim", |_| Some("1000".into())).unwrap(),
            ledger: s.ledger.clone(),
            blob: Blob::new(s.clients.s3.clone()),
            queue: Queue::new(s.clients.sqs.clone()),
            metrics: Metrics::memory("parse"),
            stack: s.config.clone(),
            config: ParseConfig {
                rules: RuleConfig::default(),
                backoff,
                poll: Default::default(),
                prices: Default::default(),
                max_archive_bytes: parse::DEFAULT_MAX_ARCHIVE_BYTES,
                date_orders: Default::default(),
                second_opinion: Default::default(),
                message_concurrency: ocrbridge::batch::DEFAULT_CONCURRENCY,
            },
        },
        reconcile: Reconcile {
            routes: ocrbridge::vendors::route::Routes::none(),
            vendor: vendor(),
            ledger: s.ledger.clone(),
            queue: Queue::new(s.clients.sqs.clone()),
            metrics: Metrics::memory("reconcile"),
            stack: s.config.clone(),
            // Everything counts as stuck at once in tests.
            config: ReconcileConfig {
                stuck: Duration::ZERO,
                submitted_stale: Duration::ZERO,
                max_age: Duration::from_secs(3600),
                batch: 100,
            },
        },
        s,
        sim,
    }
}

/// Uploads `bytes`, creates a Queued job and runs submit on it, as intake and submit would.
async fn submitted(w: &World, bytes: Vec<u8>, profile: &str, key: &str) -> Job {
    w.s.put(key, bytes.clone(), None).await;
    let profile = Profile::new(profile).unwrap();
    let content = ContentHash::of(&bytes);
    let new = NewJob {
        channel: None,
        prepared: None,
        prep_compute: None,
        benchmark_run: None,
        key: DocumentKey::new(&content, &profile),
        profile,
        content,
        source: SourceObject {
            bucket: w.s.config.documents_bucket.clone(),
            key: key.into(),
            version_id: None,
        },
        inspection: Default::default(),
    };
    let job =
        w.s.ledger
            .create_job(&new, UnixMillis::now())
            .await
            .unwrap()
            .job()
            .clone();
    let job =
        w.s.ledger
            .transition(&job, JobState::Queued, Change::none(), UnixMillis::now())
            .await
            .unwrap();
    w.submit
        .queue
        .send_json(
            &w.s.config.submit_queue_url,
            &SubmitRequest {
                job_id: job.id.clone(),
            },
        )
        .await
        .unwrap();
    let messages = w.s.drain(&w.s.config.submit_queue_url).await;
    let response = w
        .submit
        .handle_sqs(
            sqs_event(&messages, "arn:submit"),
            UnixMillis::now().plus(Duration::from_secs(30)),
        )
        .await;
    assert!(response.batch_item_failures.is_empty());
    let job = w.s.ledger.get_job(&job.id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Submitted);
    job
}

/// Waits until the simulator has finished the job.
async fn vendor_done(w: &World, job: &Job) {
    let id = job.vendor_job_id.clone().unwrap();
    let key = w.submit.vendor.clone();
    for _ in 0..200 {
        use ocrbridge::vendors::Vendor;
        if key.status(&id).await.unwrap().status.is_final() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the simulator never finished {id}");
}

/// Delivers every message on the results queue to parse, until the queue is empty.
async fn pump_results(w: &World) {
    for _ in 0..20 {
        let messages = w.s.drain(&w.s.config.results_queue_url).await;
        if messages.is_empty() {
            return;
        }
        w.parse
            .handle_sqs(
                sqs_event(&messages, "arn:results"),
                UnixMillis::now().plus(Duration::from_secs(60)),
            )
            .await;
    }
}

async fn results_stored(w: &World, id: &JobId) -> usize {
    w.s.clients
        .s3
        .list_objects_v2()
        .bucket(&w.s.config.results_bucket)
        .prefix(format!("results/{id}"))
        .send()
        .await
        .unwrap()
        .key_count
        .unwrap_or(0) as usize
}

async fn get_json(w: &World, key: &str) -> Value {
    let out =
        w.s.clients
            .s3
            .get_object()
            .bucket(&w.s.config.results_bucket)
            .key(key)
            .send()
            .await
            .unwrap();
    serde_json::from_slice(&out.body.collect().await.unwrap().into_bytes()).unwrap()
}

async fn state(w: &World, id: &JobId) -> Job {
    w.s.ledger.get_job(id).await.unwrap().unwrap()
}

#[tokio::test]
async fn a_job_whose_webhook_is_lost_completes_through_reconcile() {
    let mut w = world().await;
    let receipt = std::fs::read(shared_dir().join("corpus/sroie-dev/000.jpg")).unwrap();
    let job = submitted(&w, receipt, "receipt", "receipts/000.jpg").await;
    vendor_done(&w, &job).await;

    let summary = w.reconcile.run(UnixMillis::now()).await;
    assert_eq!(summary.recovered, 1, "{summary:?}");
    // What it found is recorded: a second run before the notice is handled (and before the job
    // could count as stuck in `ResultReady`) sends nothing more.
    assert_eq!(state(&w, &job.id).await.state, JobState::ResultReady);
    w.reconcile.config.stuck = Duration::from_secs(600);
    let again = w.reconcile.run(UnixMillis::now()).await;
    assert_eq!(again.recovered, 0, "{again:?}");
    pump_results(&w).await;

    let done = state(&w, &job.id).await;
    assert!(
        matches!(done.state, JobState::Completed | JobState::NeedsReview),
        "{done:?}"
    );
    let key = done.result_key.clone().expect("the result is stored");
    let document = get_json(&w, &key).await;
    ocrbridge::document::validate_json(&document).unwrap();
    assert_eq!(document["fields"]["profile"], "receipt");
    let text: String = document["pages"][0]["blocks"][0]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["text"].as_str().unwrap().to_owned() + "\n")
        .collect();
    assert!(text.contains("SDN BHD"), "real OCR text: {text}");
    // The raw payload was archived (compressed) before parsing.
    let raw =
        w.s.clients
            .s3
            .list_objects_v2()
            .bucket(&w.s.config.results_bucket)
            .prefix(format!("raw/{}/", job.id))
            .send()
            .await
            .unwrap();
    assert_eq!(raw.key_count, Some(1));
    assert!(raw.contents()[0].key().unwrap().ends_with(".json.gz"));
    assert_eq!(
        w.reconcile.metrics.recorded()["RecoveredJobs[Submitted]"],
        1.0
    );
}

#[tokio::test]
async fn repeated_and_out_of_order_notices_store_one_result() {
    let w = world().await;
    let pdf = text_pdf(&[
        "ACME STORE SDN BHD",
        "Date: 20/11/2026",
        "Subtotal 10.00",
        "Tax 0.60",
        "Total 10.60",
        "Paid in MYR",
    ]);
    let job = submitted(&w, pdf, "receipt", "receipts/acme.pdf").await;
    vendor_done(&w, &job).await;
    for status in ["succeeded", "processing", "succeeded", "succeeded"] {
        w.parse
            .queue
            .send_json(&w.s.config.results_queue_url, &notice(&job, status))
            .await
            .unwrap();
    }
    pump_results(&w).await;
    // And a stale `processing` after completion.
    w.parse
        .queue
        .send_json(&w.s.config.results_queue_url, &notice(&job, "processing"))
        .await
        .unwrap();
    pump_results(&w).await;

    let done = state(&w, &job.id).await;
    assert_eq!(done.state, JobState::Completed, "{:?}", done.reason);
    assert_eq!(results_stored(&w, &job.id).await, 1);
    let raw =
        w.s.clients
            .s3
            .list_objects_v2()
            .bucket(&w.s.config.results_bucket)
            .prefix(format!("raw/{}/", job.id))
            .send()
            .await
            .unwrap();
    assert_eq!(raw.key_count, Some(1), "parsed (and archived) once");
    let summary: Value = serde_json::from_str(done.result_summary.as_deref().unwrap()).unwrap();
    assert_eq!(summary["total"]["value"], "10.60");
    assert_eq!(summary["date"]["value"], "2026-11-20");
    assert_eq!(summary["currency"]["value"], "MYR");
    assert_eq!(
        w.parse.metrics.recorded()["JobsCompleted[receipt,Completed]"],
        1.0
    );
}

/// Issue #33: a notice for a job the vendor finished is marked ready in the same write that takes
/// the parse lease — two writes to the job (lease, settle) where there were three — and the
/// history still shows every state it passed.
#[tokio::test]
async fn a_vendors_success_is_marked_ready_in_the_write_that_leases_it() {
    let w = world().await;
    let pdf = text_pdf(&["CORNER SHOP", "Date: 21/11/2026", "Total 4.20"]);
    let job = submitted(&w, pdf, "receipt", "receipts/corner.pdf").await;
    vendor_done(&w, &job).await;
    w.parse
        .queue
        .send_json(&w.s.config.results_queue_url, &notice(&job, "succeeded"))
        .await
        .unwrap();
    pump_results(&w).await;
    let done = state(&w, &job.id).await;
    assert!(
        matches!(done.state, JobState::Completed | JobState::NeedsReview),
        "{:?}",
        done.reason
    );
    assert_eq!(
        done.version - job.version,
        2,
        "parse wrote the job twice: the lease (marked ready with it) and the settle"
    );
    let since_submitted: Vec<JobState> = done
        .history
        .iter()
        .map(|c| c.state)
        .skip_while(|s| *s != JobState::Submitted)
        .collect();
    assert_eq!(
        since_submitted,
        [
            JobState::Submitted,
            JobState::ResultReady,
            JobState::Parsing,
            done.state
        ]
    );
    let at = |state| done.history.iter().find(|c| c.state == state).map(|c| c.at);
    assert_eq!(
        at(JobState::ResultReady),
        at(JobState::Parsing),
        "one write"
    );
}

#[tokio::test]
async fn a_receipt_whose_total_disagrees_with_its_lines_needs_review() {
    let w = world().await;
    let pdf = text_pdf(&[
        "ACME STORE SDN BHD",
        "Date: 20/11/2026",
        "Subtotal 10.00",
        "Tax 0.60",
        "Total 12.60",
        "Paid in MYR",
    ]);
    let job = submitted(&w, pdf, "receipt", "receipts/wrong-total.pdf").await;
    vendor_done(&w, &job).await;
    w.reconcile.run(UnixMillis::now()).await;
    pump_results(&w).await;
    let done = state(&w, &job.id).await;
    assert_eq!(done.state, JobState::NeedsReview);
    let reason = done.reason.unwrap();
    assert_eq!(reason.code, "needs_review");
    assert!(
        reason
            .message
            .starts_with("total_mismatch: total is 12.60 but its parts add up to 10.60"),
        "{}",
        reason.message
    );
    assert_eq!(
        results_stored(&w, &job.id).await,
        1,
        "the result is stored for the reviewer"
    );
    assert_eq!(
        w.parse.metrics.recorded()["NeedsReview[total_mismatch]"],
        1.0
    );
}

/// The language of a result's text is recorded on the job and in the stored result, and the
/// completion, latency and field-confidence metrics are cut by it (and by handwriting, which the
/// simulator does not report: `unknown`).
#[tokio::test]
async fn a_german_invoice_is_recorded_and_counted_as_german() {
    let w = world().await;
    let pdf = text_pdf(&[
        "Müller Beratung GmbH",
        "Rechnung Nr. RE-2026-0412",
        "Rechnungsdatum: 14.03.2026",
        "Beratung und Schulung für die Mitarbeiter im Frühjahr",
        "Zwischensumme 100,00 EUR",
        "Umsatzsteuer 19,00 EUR",
        "Gesamtbetrag 119,00 EUR",
        "Zahlbar innerhalb von vierzehn Tagen ohne Abzug",
    ]);
    let job = submitted(&w, pdf, "invoice", "invoices/rechnung.pdf").await;
    vendor_done(&w, &job).await;
    w.reconcile.run(UnixMillis::now()).await;
    pump_results(&w).await;
    let done = state(&w, &job.id).await;
    let text = done.text.clone().expect("parse records the result's text");
    assert_eq!(text.language.as_deref(), Some("de"));
    assert_eq!(text.script.as_deref(), Some("Latin"));
    assert_eq!(text.handwriting, ocrbridge::language::Handwriting::Unknown);
    let result = get_json(&w, done.result_key.as_deref().unwrap()).await;
    assert_eq!(result["language"]["code"], "de");
    assert_eq!(result["language"]["source"], "detected");
    let by_text = w.parse.metrics.recorded_segmented();
    let outcome = done.state.as_str();
    assert_eq!(
        by_text[&format!("JobsCompleted[invoice,{outcome},de,unknown]")],
        1.0,
        "{by_text:?}"
    );
    assert!(
        by_text
            .keys()
            .any(|k| k.starts_with("EndToEndLatency[invoice,1,de,unknown]")),
        "{by_text:?}"
    );
    assert!(
        by_text
            .keys()
            .any(|k| k.starts_with("FieldConfidence[sim,invoice,invoice,")
                && k.ends_with(",de,unknown]")),
        "{by_text:?}"
    );
}

#[tokio::test]
async fn a_vendor_failed_job_is_failed_not_parsed() {
    let w = world().await;
    set_faults(&w.sim, json!({"seed": 1, "rates": {"failed_job": 1.0}})).await;
    let job = submitted(
        &w,
        unique_name("doc").into_bytes(),
        "receipt",
        "receipts/f.png",
    )
    .await;
    vendor_done(&w, &job).await;
    w.parse
        .queue
        .send_json(
            &w.s.config.results_queue_url,
            // What a careless pipeline would believe: the notice says succeeded.
            &notice(&job, "succeeded"),
        )
        .await
        .unwrap();
    pump_results(&w).await;
    let failed = state(&w, &job.id).await;
    assert_eq!(failed.state, JobState::Failed);
    let reason = failed.reason.unwrap();
    assert_eq!(reason.code, "vendor_failed");
    assert!(reason.message.starts_with("processing_failed"));
    assert_eq!(results_stored(&w, &job.id).await, 0);
}

#[tokio::test]
async fn a_drifted_payload_raises_drift_metrics() {
    let w = world().await;
    set_faults(&w.sim, json!({"seed": 2, "rates": {"drift": 1.0}})).await;
    let mut kinds = Vec::new();
    for i in 0..6 {
        let pdf = text_pdf(&["ACME STORE SDN BHD", &format!("Receipt {i}"), "Total 10.60"]);
        let job = submitted(&w, pdf, "receipt", &format!("receipts/drift-{i}.pdf")).await;
        vendor_done(&w, &job).await;
        w.reconcile.run(UnixMillis::now()).await;
        pump_results(&w).await;
        kinds.push(state(&w, &job.id).await);
    }
    let recorded = w.parse.metrics.recorded();
    let drift: Vec<&String> = recorded
        .keys()
        .filter(|k| k.starts_with("SchemaDrift["))
        .collect();
    assert!(!drift.is_empty(), "{recorded:?}");
    // A missing page size cannot be normalized safely: that job fails with the reason, the
    // others go on despite the drift.
    for job in &kinds {
        match job.state {
            JobState::Failed => assert_eq!(
                job.reason.as_ref().unwrap().code,
                "parse_failed:unusable_payload"
            ),
            JobState::Completed | JobState::NeedsReview => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        drift
            .iter()
            .any(|k| k.contains("pages[].lines[].score,unknown_field")
                || k.contains("pages[].path,new_enum_value")
                || k.contains("pages[].width,missing_field")),
        "{drift:?}"
    );
}

#[tokio::test]
async fn reconcile_requeues_stuck_jobs_and_expires_old_ones() {
    let mut w = world().await;
    // A Queued job that never reached the submit queue.
    let bytes = unique_name("q").into_bytes();
    w.s.put("receipts/q.png", bytes.clone(), None).await;
    let profile = Profile::new("receipt").unwrap();
    let content = ContentHash::of(&bytes);
    let new = NewJob {
        channel: None,
        prepared: None,
        prep_compute: None,
        benchmark_run: None,
        key: DocumentKey::new(&content, &profile),
        profile,
        content,
        source: SourceObject {
            bucket: w.s.config.documents_bucket.clone(),
            key: "receipts/q.png".into(),
            version_id: None,
        },
        inspection: Default::default(),
    };
    let job =
        w.s.ledger
            .create_job(&new, UnixMillis::now())
            .await
            .unwrap()
            .job()
            .clone();
    let queued =
        w.s.ledger
            .transition(&job, JobState::Queued, Change::none(), UnixMillis::now())
            .await
            .unwrap();
    // Its message is still on the submit queue (a backlog): old, but not lost — nothing is
    // re-sent, so a backlog is never multiplied.
    w.submit
        .queue
        .send_json(
            &w.s.config.submit_queue_url,
            &SubmitRequest {
                job_id: queued.id.clone(),
            },
        )
        .await
        .unwrap();
    // (Stuck after 1 s here: a backlog excuses it for BACKLOG_PATIENCE of those.)
    w.reconcile.config.stuck = Duration::from_secs(1);
    let later = |secs| UnixMillis::now().plus(Duration::from_secs(secs));
    let summary = w.reconcile.run(later(2)).await;
    assert_eq!((summary.queued, summary.recovered), (1, 0), "{summary:?}");
    // A queue that keeps holding messages does not hide a lost one for good: past its patience
    // (3 stuck periods) the job is re-sent anyway (it used to wait behind any backlog forever).
    let summary = w.reconcile.run(later(5)).await;
    assert_eq!((summary.queued, summary.recovered), (0, 1), "{summary:?}");
    assert_eq!(w.s.drain(&w.s.config.submit_queue_url).await.len(), 2);
    w.reconcile.config.stuck = Duration::ZERO;
    // The queue is empty now: the message is lost as far as reconcile can tell, so it re-sends.
    let summary = w.reconcile.run(UnixMillis::now()).await;
    assert_eq!(summary.recovered, 1);
    let sent = w.s.drain(&w.s.config.submit_queue_url).await;
    assert_eq!(sent.len(), 1);
    assert!(sent[0].body().unwrap().contains(queued.id.as_str()));

    // Past the maximum age, a Queued job is handed to submit, which fails it under its lease
    // (after resolving any attempt that may have reached the vendor): Failed with the reason.
    w.reconcile.config.max_age = Duration::ZERO;
    w.submit.config.max_age = Duration::ZERO;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let summary = w.reconcile.run(UnixMillis::now()).await;
    assert_eq!((summary.recovered, summary.expired), (1, 0), "{summary:?}");
    assert_eq!(state(&w, &queued.id).await.state, JobState::Queued);
    let messages = w.s.drain(&w.s.config.submit_queue_url).await;
    w.submit
        .handle_sqs(
            sqs_event(&messages, "arn:submit"),
            UnixMillis::now().plus(Duration::from_secs(30)),
        )
        .await;
    let failed = state(&w, &queued.id).await;
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.reason.unwrap().code, "max_age_exceeded");
    assert_eq!(sim_stats_billed(&w).await, 0, "nothing was sent");
    // Running again finds nothing: terminal jobs are not in the live states' index ranges.
    assert_eq!(w.reconcile.run(UnixMillis::now()).await.stuck, 0);

    // A Submitted job past the maximum age fails in reconcile itself (nothing to resolve: the
    // vendor has it).
    w.submit.config.max_age = Duration::from_secs(3600);
    let bytes = format!("old {}", unique_name("x")).into_bytes();
    let old = submitted(&w, bytes, "receipt", "receipts/old.png").await;
    assert_eq!(old.state, JobState::Submitted);
    let summary = w.reconcile.run(UnixMillis::now()).await;
    assert_eq!(summary.expired, 1, "{summary:?}");
    assert_eq!(state(&w, &old.id).await.state, JobState::Failed);
}

/// A sweep ends in time: with less than its margin left before the invocation's deadline, it
/// starts no more work and says so; the next run takes the stuck job. (Reconcile had no time
/// budget inside its 120 s.)
#[tokio::test]
async fn a_reconcile_sweep_ends_before_its_invocations_deadline() {
    let w = world().await;
    let job = queued(&w, "receipts/late-sweep.png").await;
    let now = UnixMillis::now();
    let short = w
        .reconcile
        .run_before(now, Some(now.plus(Duration::from_secs(5))))
        .await;
    assert!(short.out_of_time, "{short:?}");
    assert_eq!(short.recovered, 0);
    assert!(w.s.drain(&w.s.config.submit_queue_url).await.is_empty());
    let now = UnixMillis::now();
    let enough = w
        .reconcile
        .run_before(now, Some(now.plus(Duration::from_secs(120))))
        .await;
    assert!(!enough.out_of_time, "{enough:?}");
    assert_eq!(enough.recovered, 1);
    let sent = w.s.drain(&w.s.config.submit_queue_url).await;
    assert!(sent[0].body().unwrap().contains(job.id.as_str()));
}

/// Jobs someone holds at the head of the index do not use up a run: reconcile pages past them
/// to the stuck job behind (it used to read one page, and starve).
#[tokio::test]
async fn reconcile_pages_past_jobs_someone_holds() {
    let mut w = world().await;
    w.reconcile.config.batch = 2;
    let mut jobs = Vec::new();
    for i in 0..5 {
        let bytes = unique_name(&format!("held-{i}")).into_bytes();
        let key = format!("receipts/held-{i}.png");
        w.s.put(&key, bytes.clone(), None).await;
        let profile = Profile::new("receipt").unwrap();
        let content = ContentHash::of(&bytes);
        let new = NewJob {
            channel: None,
            prepared: None,
            prep_compute: None,
            benchmark_run: None,
            key: DocumentKey::new(&content, &profile),
            profile,
            content,
            source: SourceObject {
                bucket: w.s.config.documents_bucket.clone(),
                key,
                version_id: None,
            },
            inspection: Default::default(),
        };
        let job =
            w.s.ledger
                .create_job(&new, UnixMillis::now())
                .await
                .unwrap()
                .job()
                .clone();
        let queued =
            w.s.ledger
                .transition(&job, JobState::Queued, Change::none(), UnixMillis::now())
                .await
                .unwrap();
        jobs.push(queued);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // All five are Submitting, in order: the four oldest right now (live leases), the newest
    // left behind by a worker that died (its lease ends at once).
    for (i, job) in jobs.iter().enumerate() {
        // One clock reading for both: read twice, a loaded machine could put `now` past a
        // lease of 1 ms, which the ledger rightly refuses (this test failed so, once).
        let now = UnixMillis::now();
        let until = if i < 4 {
            now.plus(Duration::from_secs(600))
        } else {
            now.plus(Duration::from_millis(1))
        };
        w.s.ledger
            .acquire_lease(
                job,
                ocrbridge::ledger::LeaseStep::Submit,
                "worker",
                until,
                now,
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    let summary = w.reconcile.run(UnixMillis::now()).await;
    assert_eq!(summary.recovered, 1, "{summary:?}");
    let sent = w.s.drain(&w.s.config.submit_queue_url).await;
    assert_eq!(sent.len(), 1);
    assert!(sent[0].body().unwrap().contains(jobs[4].id.as_str()));
}

/// A result larger than `VENDOR_MAX_RESULT_BYTES` is never read into memory: the job fails with
/// `result_too_large` (retryable, its vendor job kept) instead of the function running out of
/// memory in a loop and dead-lettering its message without a reason.
#[tokio::test]
async fn a_result_too_large_fails_its_job_with_the_reason() {
    let mut w = world().await;
    w.parse.vendor = w.parse.vendor.clone().with_max_result_bytes(2_048);
    let receipt = std::fs::read(shared_dir().join("corpus/sroie-dev/000.jpg")).unwrap();
    let job = submitted(&w, receipt, "receipt", "receipts/big.jpg").await;
    vendor_done(&w, &job).await;
    w.reconcile.run(UnixMillis::now()).await;
    pump_results(&w).await;
    let failed = state(&w, &job.id).await;
    assert_eq!(failed.state, JobState::Failed, "{failed:?}");
    let why = failed.reason.as_ref().unwrap();
    assert_eq!(why.code, "result_too_large");
    assert!(why.message.contains("2048"), "{why:?}");
    assert!(failed.retryable_reason().is_some() && failed.vendor_job_id.is_some());
    assert!(w.s.drain(&w.s.config.results_dlq_url).await.is_empty());

    // What was paid for is kept: streamed, gzipped, into the archive the message names.
    assert!(why.message.contains("archived in full"), "{why:?}");
    let key = why
        .message
        .split(&format!("s3://{}/", w.s.config.results_bucket))
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the archive's key")
        .to_owned();
    let archived =
        w.s.clients
            .s3
            .head_object()
            .bucket(&w.s.config.results_bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
    assert_eq!(archived.content_encoding(), Some("gzip"));
    let raw = ocrbridge_tests::results_object(&w.s, &key).await;
    let whole = ocrbridge::vendors::Vendor::fetch_result(
        &w.parse.vendor.clone().with_max_result_bytes(50 << 20),
        failed.vendor_job_id.as_deref().unwrap(),
    )
    .await
    .unwrap();
    assert!(whole.len() > 2_048);
    assert_eq!(
        raw, whole,
        "the archive is the vendor's result, byte for byte"
    );

    // The vendor ran it and billed it: the cost says so, on its own line, never in the average.
    let line = cost_line(&failed);
    assert_eq!(line.documents, 0, "not a billed success: {line:?}");
    let stats = ocrbridge_tests::sim_stats(&w.sim).await;
    assert_eq!(stats["billed_documents"], 1);
    let billed_pages = stats["billed_pages"].as_u64().unwrap();
    assert_eq!(
        line.spend["failed_billed"],
        Decimal::from(billed_pages) * sim_price(),
        "{line:?}"
    );
}

/// The simulator's list price per page.
fn sim_price() -> Decimal {
    ocrbridge::cost::Prices::default()
        .price("sim", "receipt")
        .unwrap()
        .per_page
}

/// The cost report's one line for a job.
fn cost_line(job: &Job) -> ocrbridge::cost::CostLine {
    let report = ocrbridge::cost::report([job]);
    assert_eq!(report.len(), 1, "{report:?}");
    report.into_values().next().unwrap()
}

/// Documents of 1, 2 and 3 pages, each estimated at one page (no inspection here): the report
/// counts what the vendor processed, and matches its billing counters exactly.
#[tokio::test]
async fn the_cost_report_matches_the_simulators_billing() {
    let w = world().await;
    let page = |n: usize| vec![format!("ACME STORE page {n}"), "Total 10.60".to_owned()];
    let docs = [
        ("receipts/one.pdf", text_pdf(&["ACME STORE", "Total 10.60"])),
        ("receipts/two.pdf", text_pdf_pages(&[page(1), page(2)])),
        (
            "invoices/three.pdf",
            text_pdf_pages(&[page(1), page(2), page(3)]),
        ),
    ];
    let mut jobs = Vec::new();
    for (key, bytes) in docs {
        let profile = if key.starts_with("invoices/") {
            "invoice"
        } else {
            "receipt"
        };
        let job = submitted(&w, bytes, profile, key).await;
        let cost = job.cost.clone().expect("an estimate at submission");
        assert_eq!((cost.vendor.as_str(), cost.pages_estimated), ("sim", 1));
        assert_eq!(cost.actual, None);
        vendor_done(&w, &job).await;
        jobs.push(job.id);
    }
    w.reconcile.run(UnixMillis::now()).await;
    pump_results(&w).await;
    let mut settled = Vec::new();
    for id in &jobs {
        settled.push(state(&w, id).await);
    }
    let report = ocrbridge::cost::report(&settled);
    let stats = ocrbridge_tests::sim_stats(&w.sim).await;
    let documents: u64 = report.values().map(|l| l.documents).sum();
    let pages: u64 = report.values().map(|l| l.pages).sum();
    let billed: Decimal = report.values().map(|l| l.spend["billed"]).sum();
    assert_eq!(
        documents,
        stats["billed_documents"].as_u64().unwrap(),
        "{report:?}"
    );
    assert_eq!(pages, stats["billed_pages"].as_u64().unwrap(), "{report:?}");
    assert_eq!(pages, 6);
    assert_eq!(billed, Decimal::from(pages) * sim_price());
    // The dashboard's figure is the same money.
    let paid = w.parse.metrics.recorded()["VendorCost[sim,billed]"];
    assert!((paid - 6.0 * 0.0015).abs() < 1e-9, "{paid}");
    let receipts = &report[&("sim".to_owned(), "receipt".to_owned(), "receipt".to_owned())];
    assert_eq!((receipts.documents, receipts.pages), (2, 3));
    assert_eq!(receipts.per_page(), Some(sim_price()));
    assert_eq!(
        receipts.per_document(),
        Some(sim_price() * Decimal::new(15, 1))
    );
}

async fn sim_stats_billed(w: &World) -> u64 {
    sim_stats(&w.sim).await["billed_documents"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test]
async fn sample_events_are_accepted() {
    let w = world().await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    // The sample result notice names a job this stack does not have: a poison message, parked
    // with its reason, not an error.
    let event: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_str(&std::fs::read_to_string(root.join("sqs-result.json")).unwrap())
            .unwrap();
    let response = w
        .parse
        .handle_sqs(event, UnixMillis::now().plus(Duration::from_secs(30)))
        .await;
    assert!(response.batch_item_failures.is_empty());
    let dead = w.s.drain(&w.s.config.results_dlq_url).await;
    assert_eq!(dead.len(), 1);
    let schedule: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("schedule.json")).unwrap())
            .unwrap();
    assert_eq!(schedule["source"], "aws.scheduler");
    assert_eq!(w.reconcile.run(UnixMillis::now()).await.errors, 0);
}

/// A job whose submission's answer was lost, at a vendor that cannot be asked: the accepted
/// submission is created in the simulator, and the job is left `Submitting` with its attempt,
/// as a worker that lost the answer leaves it. Returns the vendor's job id.
async fn lost_answer(w: &World, job: &Job) -> String {
    set_faults(&w.sim, json!({"seed": 1, "rates": {"drop": 1.0}})).await;
    w.submit
        .queue
        .send_json(
            &w.s.config.submit_queue_url,
            &SubmitRequest {
                job_id: job.id.clone(),
            },
        )
        .await
        .unwrap();
    let messages = w.s.drain(&w.s.config.submit_queue_url).await;
    w.submit
        .handle_sqs(
            sqs_event(&messages, "arn:submit"),
            UnixMillis::now().plus(Duration::from_secs(30)),
        )
        .await;
    set_faults(&w.sim, json!({})).await;
    let waiting = state(w, &job.id).await;
    assert_eq!(waiting.state, JobState::Submitting);
    assert!(waiting.attempt.is_some() && waiting.vendor_job_id.is_none());
    let refs = ocrbridge_tests::sim_external_refs(&w.sim).await;
    refs[job.id.as_str()][0].clone()
}

/// A queued job as intake leaves it.
async fn queued(w: &World, key: &str) -> Job {
    let bytes = format!("document {}", unique_name("d")).into_bytes();
    w.s.put(key, bytes.clone(), None).await;
    let profile = Profile::new("receipt").unwrap();
    let content = ContentHash::of(&bytes);
    let new = NewJob {
        channel: None,
        prepared: None,
        prep_compute: None,
        benchmark_run: None,
        key: DocumentKey::new(&content, &profile),
        profile,
        content,
        source: SourceObject {
            bucket: w.s.config.documents_bucket.clone(),
            key: key.into(),
            version_id: None,
        },
        inspection: Default::default(),
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

/// What the webhook function enqueues for a verified completion.
async fn put_api_key(w: &World, value: &str) {
    w.s.put_secret(&w.s.config.vendor_api_key_secret, value)
        .await;
}

/// The vendor's completion of `job`, as the webhook queues it, handled by parse.
async fn deliver_completion(w: &World, job: &Job, vendor_job_id: &str) {
    w.parse
        .queue
        .send_json(
            &w.s.config.results_queue_url,
            &completion(job, vendor_job_id),
        )
        .await
        .unwrap();
    pump_results(w).await;
}

/// A notice naming the job's own vendor job with `status` and no event id, as reconcile sends it.
fn notice(job: &Job, status: &str) -> ResultNotice {
    ResultNotice {
        job_id: job.id.clone(),
        vendor_job_id: job.vendor_job_id.clone().unwrap(),
        status: status.into(),
        vendor_timestamp: None,
        event_id: None,
        vendor: None,
    }
}

fn completion(job: &Job, vendor_job_id: &str) -> ResultNotice {
    ResultNotice {
        job_id: job.id.clone(),
        vendor_job_id: vendor_job_id.to_owned(),
        status: "succeeded".into(),
        vendor_timestamp: None,
        event_id: Some(format!("msg_{}", unique_name("e"))),
        vendor: None,
    }
}

async fn vendor_finished(w: &World, vendor_job_id: &str) {
    use ocrbridge::vendors::Vendor;
    for _ in 0..200 {
        if w.parse
            .vendor
            .status(vendor_job_id)
            .await
            .unwrap()
            .status
            .is_final()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the simulator never finished {vendor_job_id}");
}

/// At a vendor without idempotency, the completion that names the job is how a lost answer is
/// resolved: parse adopts its vendor job, and the document is parsed — paid once.
#[tokio::test]
async fn a_completion_adopts_the_vendor_job_of_a_lost_answer() {
    let w = world_with(Idempotency::None, EngineKind::Fast).await;
    let job = queued(&w, "receipts/lost.png").await;
    let vendor_job = lost_answer(&w, &job).await;
    vendor_finished(&w, &vendor_job).await;
    let disposition = w
        .parse
        .handle_notice(
            &completion(&job, &vendor_job),
            1,
            0,
            UnixMillis::now().plus(Duration::from_secs(30)),
        )
        .await;
    assert_eq!(disposition, ocrbridge::batch::Disposition::Done);
    let done = state(&w, &job.id).await;
    assert!(
        matches!(done.state, JobState::Completed | JobState::NeedsReview),
        "{done:?}"
    );
    assert_eq!(done.vendor_job_id.as_deref(), Some(vendor_job.as_str()));
    assert_eq!(
        w.parse.metrics.recorded()["Reconciles[sim,adopted_by_completion]"],
        1.0
    );
    let stats = ocrbridge_tests::sim_stats(&w.sim).await;
    assert_eq!(
        (
            stats["billed_documents"].as_u64(),
            stats["duplicate_jobs"].as_u64()
        ),
        (Some(1), Some(0))
    );
}

/// A job held because its submission's outcome was unknown is resolved by the late completion,
/// with no operator and no second charge; a completion for a *second* vendor job of a document
/// is recorded as an orphan, never followed and never silent.
#[tokio::test]
async fn a_late_completion_resolves_a_held_job_and_a_second_vendor_job_is_an_orphan() {
    let w = world_with(Idempotency::None, EngineKind::Fast).await;
    let job = queued(&w, "receipts/held.png").await;
    let vendor_job = lost_answer(&w, &job).await;
    let submitting = state(&w, &job.id).await;
    let lease =
        w.s.ledger
            .acquire_lease(
                &submitting,
                ocrbridge::ledger::LeaseStep::Submit,
                "holder",
                UnixMillis::now().plus(Duration::from_secs(10)),
                UnixMillis::now(),
            )
            .await
            .unwrap();
    w.s.ledger
        .complete_lease(
            &lease,
            JobState::Held,
            Change::none().with_reason(ocrbridge::job::Reason::new(
                "submission_outcome_unknown",
                "no completion named the job in time",
            )),
            UnixMillis::now(),
        )
        .await
        .unwrap();
    vendor_finished(&w, &vendor_job).await;
    w.parse
        .handle_notice(
            &completion(&job, &vendor_job),
            1,
            0,
            UnixMillis::now().plus(Duration::from_secs(30)),
        )
        .await;
    let done = state(&w, &job.id).await;
    assert!(
        matches!(done.state, JobState::Completed | JobState::NeedsReview),
        "{done:?}"
    );
    assert_eq!(done.vendor_job_id.as_deref(), Some(vendor_job.as_str()));

    // Someone submitted the same document again (a second charge) and its completion arrives.
    let form = reqwest::multipart::Form::new()
        .text("profile", "receipt")
        .text("external_ref", job.id.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"same doc".to_vec()).file_name("doc"),
        );
    let key =
        w.s.secret(&w.s.config.vendor_api_key_secret, "AWSCURRENT")
            .await;
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/v1/documents", w.sim.base_url()))
        .bearer_auth(key)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second = answer["id"].as_str().unwrap().to_owned();
    w.parse
        .handle_notice(
            &completion(&job, &second),
            1,
            0,
            UnixMillis::now().plus(Duration::from_secs(30)),
        )
        .await;
    let after = state(&w, &job.id).await;
    assert_eq!(after.state, done.state, "nothing moved");
    // Paid twice, and the report says so: one billed document, one duplicate vendor job.
    let line = cost_line(&after);
    assert_eq!((line.documents, line.duplicate_jobs), (1, 1), "{line:?}");
    assert!(line.spend["duplicate"] > Decimal::ZERO, "{line:?}");
    assert_eq!(after.vendor_job_id, done.vendor_job_id, "still its own");
    assert_eq!(after.orphan_vendor_jobs, vec![second.clone()]);
    assert_eq!(
        w.parse.metrics.recorded()["OrphanVendorJobs[sim,second_completion]"],
        1.0
    );
    assert_eq!(
        ocrbridge_tests::sim_stats(&w.sim).await["duplicate_jobs"],
        1,
        "the simulator agrees there was one"
    );
}

/// A job that failed without a vendor job (its answer lost, then its maximum age) whose
/// document the vendor did process: the verified completion adopts the vendor job and the
/// document is parsed. Before, the completion met a `Failed` job and was dropped — neither
/// adopted nor recorded — and the result that was paid for was lost.
#[tokio::test]
async fn a_completion_for_a_job_that_failed_without_a_vendor_job_adopts_it() {
    let w = world_with(Idempotency::None, EngineKind::Fast).await;
    let job = queued(&w, "receipts/failed-late.png").await;
    let vendor_job = lost_answer(&w, &job).await;
    let submitting = state(&w, &job.id).await;
    w.s.ledger
        .transition(
            &submitting,
            JobState::Failed,
            Change::none().with_reason(ocrbridge::job::Reason::new(
                "max_age_exceeded",
                "not submitted in time",
            )),
            UnixMillis::now(),
        )
        .await
        .unwrap();
    vendor_finished(&w, &vendor_job).await;
    w.parse
        .handle_notice(
            &completion(&job, &vendor_job),
            1,
            0,
            UnixMillis::now().plus(Duration::from_secs(30)),
        )
        .await;
    let done = state(&w, &job.id).await;
    assert!(
        matches!(done.state, JobState::Completed | JobState::NeedsReview),
        "{done:?}"
    );
    assert_eq!(done.vendor_job_id.as_deref(), Some(vendor_job.as_str()));
    assert_eq!(sim_stats(&w.sim).await["billed_documents"], 1);
}

/// A vendor job an operator's retry discarded (the vendor had lost its result: the retry buys
/// the document again) is not taken back by a late completion naming it: that would follow a
/// result that no longer exists. It stays an orphan; the job waits for its new submission.
#[tokio::test]
async fn a_late_completion_does_not_take_back_a_discarded_vendor_job() {
    let w = world_with(Idempotency::None, EngineKind::Fast).await;
    let job = queued(&w, "receipts/discarded.png").await;
    let vendor_job = lost_answer(&w, &job).await;
    vendor_finished(&w, &vendor_job).await;
    let submitting = state(&w, &job.id).await;
    let adopted =
        w.s.ledger
            .transition(
                &submitting,
                JobState::Submitted,
                Change::none().with_vendor_job_id(&vendor_job),
                UnixMillis::now(),
            )
            .await
            .unwrap();
    let gone =
        w.s.ledger
            .transition(
                &adopted,
                JobState::Failed,
                Change::none().with_reason(ocrbridge::job::Reason::new(
                    "result_unavailable",
                    "the vendor answered 404",
                )),
                UnixMillis::now(),
            )
            .await
            .unwrap();
    let retried =
        w.s.ledger
            .requeue(&gone, false, UnixMillis::now())
            .await
            .unwrap();
    assert_eq!(retried.vendor_job_id, None);
    assert_eq!(retried.orphan_vendor_jobs, vec![vendor_job.clone()]);
    w.parse
        .handle_notice(
            &completion(&job, &vendor_job),
            1,
            0,
            UnixMillis::now().plus(Duration::from_secs(30)),
        )
        .await;
    let after = state(&w, &job.id).await;
    assert_eq!(after.state, JobState::Queued, "{after:?}");
    assert_eq!(after.vendor_job_id, None, "not taken back");
}

/// The streamed archive: a body larger than one part goes up in parts, comes back whole; one
/// past its limit stores nothing.
#[tokio::test]
async fn a_streamed_archive_is_the_whole_body_and_nothing_past_its_limit() {
    struct Body(Vec<bytes::Bytes>);
    impl ocrbridge::blob::Chunks for Body {
        async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, String> {
            Ok((!self.0.is_empty()).then(|| self.0.remove(0)))
        }
    }
    let w = world().await;
    // Incompressible, so the gzip is as large as the body: three parts of 8 MiB and a tail.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let content: Vec<u8> = (0..26 * 1024 * 1024)
        .map(|_| {
            // xorshift: incompressible enough, and the same every run.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let chunks = || {
        Body(
            content
                .chunks(1 << 20)
                .map(bytes::Bytes::copy_from_slice)
                .collect(),
        )
    };
    let object = |key: &str| ocrbridge::blob::ObjectRef {
        bucket: w.s.config.results_bucket.clone(),
        key: key.into(),
        version_id: None,
    };
    let stored = w
        .parse
        .blob
        .put_gzip_stream(&object("raw/big.json.gz"), &mut chunks(), 64 << 20)
        .await
        .unwrap();
    assert_eq!(stored, content.len() as u64);
    let raw = ocrbridge_tests::results_object(&w.s, "raw/big.json.gz").await;
    assert!(raw == content, "the body comes back whole");

    let refused = w
        .parse
        .blob
        .put_gzip_stream(&object("raw/too-big.json.gz"), &mut chunks(), 10 << 20)
        .await;
    assert!(refused.unwrap_err().to_string().contains("larger than"));
    let listed =
        w.s.clients
            .s3
            .list_objects_v2()
            .bucket(&w.s.config.results_bucket)
            .prefix("raw/too-big")
            .send()
            .await
            .unwrap();
    assert_eq!(listed.key_count(), Some(0), "nothing stored past the limit");
}

/// A key the vendor refuses once the job is in its hands (a rotation gone wrong): each refusal
/// is counted with where it happened, after one refresh; the notice is parked in the results
/// DLQ with `vendor_auth_failed`; the job is never `Held` and never submitted again. With the
/// key fixed, the RUNBOOK's redrive reads the same vendor job: one result, paid once.
#[tokio::test]
async fn a_refused_key_after_submission_parks_the_notice_and_a_redrive_reads_the_same_vendor_job() {
    let w = world_with(Idempotency::Native, EngineKind::Fast).await;
    let receipt = std::fs::read(shared_dir().join("corpus/sroie-dev/000.jpg")).unwrap();
    let job = submitted(&w, receipt, "receipt", "receipts/refused.jpg").await;
    let vendor_job_id = job.vendor_job_id.clone().unwrap();
    vendor_finished(&w, &vendor_job_id).await;
    let good =
        w.s.secret(&w.s.config.vendor_api_key_secret, "AWSCURRENT")
            .await;
    put_api_key(&w, "sk_revoked_0000000000000000").await;
    // Parse's container reads the secret afresh (a cold start after the bad rotation).
    {
        use ocrbridge::vendors::Vendor;
        w.parse.vendor.refresh_credentials().await;
    }
    let forbidden_before = sim_stats(&w.sim).await["forbidden"].as_u64().unwrap();

    // Reconcile's status check is refused: counted, and nothing moves.
    w.reconcile.run(UnixMillis::now()).await;
    assert_eq!(
        w.reconcile.metrics.recorded()["VendorAuthFailures[sim,reconcile,403]"],
        1.0
    );
    assert_eq!(state(&w, &job.id).await.state, JobState::Submitted);

    // The completion arrives; parse asks the vendor about the job and is refused twice (before
    // and after a refresh).
    deliver_completion(&w, &job, &vendor_job_id).await;
    assert_eq!(
        w.parse.metrics.recorded()["VendorAuthFailures[sim,poll,403]"],
        1.0
    );
    assert_eq!(
        sim_stats(&w.sim).await["forbidden"].as_u64().unwrap() - forbidden_before,
        3,
        "reconcile's call, then parse's and its retry after the refresh"
    );
    let parked = w.s.drain(&w.s.config.results_dlq_url).await;
    assert_eq!(parked.len(), 1);
    let code = parked[0]
        .message_attributes()
        .and_then(|a| a.get(ocrbridge::queue::REASON_CODE_ATTRIBUTE))
        .and_then(|v| v.string_value())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(code, "vendor_auth_failed");
    let waiting = state(&w, &job.id).await;
    assert!(
        matches!(waiting.state, JobState::Submitted | JobState::ResultReady),
        "the vendor still has it; never Held, whose retry would submit again: {waiting:?}"
    );
    assert_eq!(
        waiting.vendor_job_id.as_deref(),
        Some(vendor_job_id.as_str())
    );

    // The operator fixes the key and redrives: the same vendor job is read, once.
    put_api_key(&w, &good).await;
    for m in &parked {
        w.parse
            .queue
            .send_json(
                &w.s.config.results_queue_url,
                &serde_json::from_str::<Value>(m.body().unwrap()).unwrap(),
            )
            .await
            .unwrap();
    }
    pump_results(&w).await;
    let done = state(&w, &job.id).await;
    assert!(
        matches!(done.state, JobState::Completed | JobState::NeedsReview),
        "{done:?}"
    );
    assert_eq!(done.vendor_job_id.as_deref(), Some(vendor_job_id.as_str()));
    assert_eq!(results_stored(&w, &job.id).await, 1);
    assert_eq!(sim_stats_billed(&w).await, 1, "paid once");
}

/// The same at the result fetch: a job the vendor has finished (reconcile saw it, `ResultReady`)
/// whose result is then refused is counted at `fetch`, its notice parked, its lease given back,
/// and nothing stored or paid again.
#[tokio::test]
async fn a_refused_key_at_the_result_fetch_is_counted_there_and_parks_the_notice() {
    let w = world_with(Idempotency::Native, EngineKind::Fast).await;
    let receipt = std::fs::read(shared_dir().join("corpus/sroie-dev/000.jpg")).unwrap();
    let job = submitted(&w, receipt, "receipt", "receipts/refused-fetch.jpg").await;
    vendor_finished(&w, job.vendor_job_id.as_deref().unwrap()).await;
    let summary = w.reconcile.run(UnixMillis::now()).await;
    assert_eq!(summary.recovered, 1, "{summary:?}");
    assert_eq!(state(&w, &job.id).await.state, JobState::ResultReady);

    put_api_key(&w, "sk_revoked_0000000000000000").await;
    {
        use ocrbridge::vendors::Vendor;
        w.parse.vendor.refresh_credentials().await;
    }
    pump_results(&w).await;
    assert_eq!(
        w.parse.metrics.recorded()["VendorAuthFailures[sim,fetch,403]"],
        1.0
    );
    assert_eq!(w.s.drain(&w.s.config.results_dlq_url).await.len(), 1);
    let waiting = state(&w, &job.id).await;
    // Where a failed fetch leaves it: no result, no lease, so the redrive's parse takes it.
    assert!(
        matches!(waiting.state, JobState::ResultReady | JobState::Parsing),
        "{waiting:?}"
    );
    assert!(waiting.lease.is_none(), "the parse lease is given back");
    assert_eq!(results_stored(&w, &job.id).await, 0);
    assert_eq!(sim_stats_billed(&w).await, 1);
}

/// A vendor that changes its model under the same API is noticed: the first version recorded
/// is the baseline, a new one beside it is `VendorModelVersionChanged` once (not per document,
/// not again in another container), and each result keeps the version it was read with.
#[tokio::test]
async fn a_new_vendor_model_version_is_noticed_once() {
    let w = world_with(Idempotency::Native, EngineKind::Fast).await;
    let parse_one = |name: &'static str| {
        let w = &w;
        async move {
            let bytes = text_pdf(&["CORNER CAFE", name, "Total: 4.50"]);
            let job = submitted(w, bytes, "receipt", &format!("receipts/{name}.pdf")).await;
            let vendor_job_id = job.vendor_job_id.clone().unwrap();
            vendor_finished(w, &vendor_job_id).await;
            deliver_completion(w, &job, &vendor_job_id).await;
            let done = state(w, &job.id).await;
            let document = get_json(w, done.result_key.as_deref().expect("a result")).await;
            document["vendor"]["model_version"].clone()
        }
    };
    let changes = || {
        w.parse
            .metrics
            .recorded()
            .get("VendorModelVersionChanged[sim,receipt]")
            .copied()
    };
    assert_eq!(parse_one("one").await, "sim-1");
    assert_eq!(
        changes(),
        None,
        "the first version is the baseline, not a change"
    );

    set_faults(&w.sim, json!({"model_version": "sim-2"})).await;
    assert_eq!(parse_one("two").await, "sim-2");
    assert_eq!(changes(), Some(1.0));
    assert_eq!(parse_one("three").await, "sim-2");
    assert_eq!(changes(), Some(1.0), "once, not per document");

    // Another container (its own cache) asks the table, which knows sim-2 already.
    let other = w.s.ledger.clone();
    let fresh =
        ocrbridge::ledger::Ledger::new(w.s.clients.dynamodb.clone(), other.tables().clone());
    assert_eq!(
        fresh
            .record_model_version("sim", "receipt", "sim-2", UnixMillis::now())
            .await
            .unwrap(),
        ocrbridge::ledger::model_versions::VersionSighting::Known
    );
}
