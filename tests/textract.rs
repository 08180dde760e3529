//! The Textract adapter against the simulator's Textract twin (AWS JSON 1.1, documents read
//! from moto's S3, completions published to moto's SNS and delivered to the stack's queue), and
//! the whole pipeline with `VENDOR=textract`.

use std::time::Duration;

use ocrbridge::blob::ObjectRef;
use ocrbridge::job::JobState;
use ocrbridge::vendors::select::{ModelMap, VendorKind};
use ocrbridge::vendors::textract::{Channel, TextractVendor};
use ocrbridge::vendors::{ErrorClass, Submission, Vendor, VendorError, VendorStatus};
use ocrbridge_local::pipeline::{Pipeline, PipelineOptions};
use ocrbridge_tests::{
    job_id_for, key_paths, results_object, run_until_settled, set_faults, shared_dir, sim_stats,
    stack_with, text_pdf, text_pdf_pages, TestStack,
};
use serde_json::{json, Value};
use vendor_sim::engine::EngineKind;
use vendor_sim::TwinSettings;

async fn textract_stack() -> TestStack {
    stack_with(&[("VendorName", "textract")]).await
}

fn options(engine: EngineKind) -> PipelineOptions {
    PipelineOptions {
        vendor: VendorKind::Textract,
        engine,
        reconcile_every: Duration::from_secs(3),
        submitted_stale: Duration::from_secs(4),
        ..PipelineOptions::default()
    }
}

fn receipt() -> Vec<u8> {
    std::fs::read(shared_dir().join("corpus/sroie-dev/000.jpg")).unwrap()
}

/// The keys of a job's raw archive (`raw/<job>/…`).
async fn raw_keys(s: &TestStack, job: &ocrbridge::job::JobId) -> Vec<String> {
    s.result_keys(&format!("raw/{job}/")).await
}

fn invoice_pdf() -> Vec<u8> {
    text_pdf(&[
        "ACME Supplies Ltd",
        "Invoice No: INV-2041",
        "Invoice Date: 12/03/2026",
        "Subtotal: 100.00",
        "Tax: 8.00",
        "Total: 108.00",
    ])
}

/// Each profile goes through its own Textract API, completes through SNS → SQS → parse, and is
/// archived as Textract sent it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_profile_goes_through_its_textract_api_and_completes_through_sns() {
    let s = textract_stack().await;
    let p = Pipeline::start(s.clients.clone(), &s.stack, options(EngineKind::Tesseract))
        .await
        .unwrap();
    let uploads = [
        ("receipts/r.jpg", receipt(), "receipt", "expense:"),
        ("invoices/i.pdf", invoice_pdf(), "invoice", "expense:"),
        (
            "other/g.pdf",
            text_pdf(&["Plain text", "two lines"]),
            "generic",
            "text:",
        ),
    ];
    let mut ids = Vec::new();
    for (key, bytes, profile, _) in &uploads {
        s.put(key, bytes.clone(), None).await;
        ids.push(job_id_for(bytes, profile));
    }
    let jobs = run_until_settled(&p, &s.ledger, &ids, Duration::from_secs(90)).await;
    for (job, (key, _, _, api)) in jobs.iter().zip(&uploads) {
        assert!(
            matches!(job.state, JobState::Completed | JobState::NeedsReview),
            "{key}: {job:?}"
        );
        let vendor_job = job.vendor_job_id.as_deref().unwrap();
        assert!(vendor_job.starts_with(api), "{key}: {vendor_job}");
        let result: Value =
            serde_json::from_slice(&results_object(&s, job.result_key.as_ref().unwrap()).await)
                .unwrap();
        assert_eq!(result["vendor"]["name"], "textract");
        // The raw archive is Textract's own payload.
        let key = raw_keys(&s, &job.id).await.remove(0);
        let payload: Value = serde_json::from_slice(&results_object(&s, &key).await).unwrap();
        assert_eq!(payload["JobStatus"], "SUCCEEDED");
        assert!(payload
            .get("Blocks")
            .or(payload.get("ExpenseDocuments"))
            .is_some());
    }
    // The receipt's fields came through AnalyzeExpense.
    let receipt_result: Value =
        serde_json::from_slice(&results_object(&s, jobs[0].result_key.as_ref().unwrap()).await)
            .unwrap();
    assert_eq!(receipt_result["fields"]["profile"], "receipt");
    assert!(
        !receipt_result["pages"][0]["blocks"][0]["lines"]
            .as_array()
            .unwrap()
            .is_empty(),
        "the expense document's own blocks carry the page's text"
    );
    let stats = sim_stats(&p.sim).await;
    assert_eq!(stats["billed_documents"], 3);
    assert_eq!(stats["notifications_published"], 3, "{stats}");
    assert_eq!(
        p.parse
            .metrics
            .recorded()
            .get("Reconciles[textract,adopted_by_completion]"),
        None,
        "nothing needed adopting"
    );
}

/// A completion never published is found by reconcile's polling of `Get*`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_notification_is_recovered_by_reconcile() {
    let s = textract_stack().await;
    let p = Pipeline::start(s.clients.clone(), &s.stack, options(EngineKind::Fast))
        .await
        .unwrap();
    set_faults(&p.sim, json!({"seed": 3, "rates": {"lost_webhook": 1.0}})).await;
    let bytes = invoice_pdf();
    s.put("invoices/lost.pdf", bytes.clone(), None).await;
    let id = job_id_for(&bytes, "invoice");
    let jobs = run_until_settled(&p, &s.ledger, &[id], Duration::from_secs(60)).await;
    assert!(
        matches!(jobs[0].state, JobState::Completed | JobState::NeedsReview),
        "{:?}",
        jobs[0]
    );
    let stats = sim_stats(&p.sim).await;
    assert_eq!(stats["notifications_published"], 0);
    assert!(stats["faults_injected"]["lost_webhook"].as_u64().unwrap() >= 1);
    assert!(p.reconcile.metrics.recorded()["RecoveredJobs[Submitted]"] >= 1.0);
}

/// Textract allows so many jobs in progress; past that, submit backs off (counted) and every
/// document gets through, each billed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrent_job_limit_is_waited_out() {
    let s = textract_stack().await;
    let p = Pipeline::start(
        s.clients.clone(),
        &s.stack,
        PipelineOptions {
            twins: TwinSettings {
                textract_max_jobs: 1,
                ..TwinSettings::default()
            },
            processing_delay: Duration::from_millis(1500),
            ..options(EngineKind::Fast)
        },
    )
    .await
    .unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        let bytes = text_pdf(&[&format!("Invoice {i}"), "Total: 10.00"]);
        s.put(&format!("invoices/{i}.pdf"), bytes.clone(), None)
            .await;
        ids.push(job_id_for(&bytes, "invoice"));
    }
    let jobs = run_until_settled(&p, &s.ledger, &ids, Duration::from_secs(120)).await;
    for job in &jobs {
        assert!(job.vendor_job_id.is_some(), "{job:?}");
    }
    assert!(
        p.submit.metrics.recorded()["SubmitRetries[textract,busy]"] >= 1.0,
        "{:?}",
        p.submit.metrics.recorded()
    );
    assert_eq!(sim_stats(&p.sim).await["billed_documents"], 3);
}

/// The answer to a Start is lost: the same token goes out again, and Textract answers with the
/// job it already has — one job, one charge, no second notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_whose_answer_was_lost_is_resolved_by_its_token() {
    let s = textract_stack().await;
    // The twin finishes the dropped job only well after the token goes out again (a retry
    // within a second or two): the resolution this test is about comes first. Were the
    // completion first, it would adopt the job instead — a legitimate path, taken by the chaos
    // run, and one that made this test fail once in a while when the twin was fast.
    let p = Pipeline::start(
        s.clients.clone(),
        &s.stack,
        PipelineOptions {
            processing_delay: Duration::from_secs(6),
            ..options(EngineKind::Fast)
        },
    )
    .await
    .unwrap();
    set_faults(&p.sim, json!({"seed": 1, "rates": {"drop": 1.0}})).await;
    let bytes = invoice_pdf();
    s.put("invoices/dropped.pdf", bytes.clone(), None).await;
    let id = job_id_for(&bytes, "invoice");
    // Let the first Start be dropped, then stop dropping.
    let mut waited = 0;
    while sim_stats(&p.sim).await["accepted_submissions"] == 0 && waited < 100 {
        p.pump_once().await;
        waited += 1;
    }
    set_faults(&p.sim, json!({})).await;
    let jobs = run_until_settled(&p, &s.ledger, &[id], Duration::from_secs(60)).await;
    assert!(jobs[0].state.is_settled(), "{:?}", jobs[0]);
    let stats = sim_stats(&p.sim).await;
    assert_eq!(stats["billed_documents"], 1, "{stats}");
    assert_eq!(stats["idempotent_replays"], 1, "the token found the job");
    assert_eq!(stats["duplicate_jobs"], 0);
    assert_eq!(
        stats["notifications_published"], 1,
        "no second notification"
    );
    assert_eq!(
        p.submit.metrics.recorded()["AmbiguousSubmissions[textract,resubmit_same_key]"],
        1.0
    );
}

/// A document Textract cannot process fails with Textract's reason, is never parsed, and is
/// not retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_textract_fails_is_failed_with_its_reason() {
    let s = textract_stack().await;
    let p = Pipeline::start(s.clients.clone(), &s.stack, options(EngineKind::Fast))
        .await
        .unwrap();
    set_faults(&p.sim, json!({"seed": 2, "rates": {"failed_job": 1.0}})).await;
    let bytes = invoice_pdf();
    s.put("invoices/bad.pdf", bytes.clone(), None).await;
    let id = job_id_for(&bytes, "invoice");
    let jobs = run_until_settled(&p, &s.ledger, &[id], Duration::from_secs(60)).await;
    assert_eq!(jobs[0].state, JobState::Failed, "{:?}", jobs[0]);
    let reason = jobs[0].reason.clone().unwrap();
    assert_eq!(reason.code, "vendor_failed");
    assert!(reason.message.contains("FAILED"), "{}", reason.message);
    assert!(jobs[0].result_key.is_none());
}

/// `TEXTRACT_SYNCHRONOUS=on`: one-page documents are read in the call itself — AnalyzeExpense,
/// DetectDocumentText, AnalyzeID — with no job, no notification and no `Get*`; their answers
/// are archived as Textract sent them and parsed like any result. A two-page PDF still goes
/// through `StartExpenseAnalysis` and SNS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_page_documents_are_answered_in_the_call_without_a_job_a_notification_or_a_get() {
    let s = stack_with(&[("VendorName", "textract"), ("TextractSynchronous", "on")]).await;
    let p = Pipeline::start(s.clients.clone(), &s.stack, options(EngineKind::Tesseract))
        .await
        .unwrap();
    let passport = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../bench/packs/default/ids/passport-001.png"),
    )
    .unwrap();
    let lines = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let two_pages = text_pdf_pages(&[
        lines(&["ACME Supplies Ltd", "Invoice No: INV-7", "Total: 10.00"]),
        lines(&["Terms: 30 days"]),
    ]);
    let uploads = [
        ("receipts/r.jpg", receipt(), "receipt", "ExpenseDocuments"),
        (
            "other/g.pdf",
            text_pdf(&["Plain text", "two lines"]),
            "generic",
            "Blocks",
        ),
        ("ids/p.png", passport, "id", "IdentityDocuments"),
        ("invoices/two.pdf", two_pages, "invoice", "ExpenseDocuments"),
    ];
    let mut ids = Vec::new();
    for (key, bytes, profile, _) in &uploads {
        s.put(key, bytes.clone(), None).await;
        ids.push(job_id_for(bytes, profile));
    }
    let jobs = run_until_settled(&p, &s.ledger, &ids, Duration::from_secs(120)).await;
    for (job, (key, _, _, items)) in jobs.iter().zip(&uploads) {
        assert!(
            matches!(job.state, JobState::Completed | JobState::NeedsReview),
            "{key}: {job:?}"
        );
        let vendor_job = job.vendor_job_id.as_deref().unwrap();
        let answered = *key != "invoices/two.pdf";
        assert_eq!(
            ocrbridge::vendors::answer::is_answered(vendor_job),
            answered,
            "{key}: {vendor_job}"
        );
        let keys = raw_keys(&s, &job.id).await;
        assert_eq!(keys.len(), 1, "{key}: one archived payload: {keys:?}");
        assert_eq!(
            // The answer's archive is named by its attempt: `textract/sync-<uuid>`, the
            // vendor and the kind of call, made safe for a key.
            keys[0].contains("/answered-textract_sync-"),
            answered,
            "{key}: {keys:?}"
        );
        let payload: Value = serde_json::from_slice(&results_object(&s, &keys[0]).await).unwrap();
        assert!(payload[*items].is_array(), "{key}: {payload}");
        // A synchronous answer has no job, so no JobStatus; a merged `Get*` result has one.
        assert_eq!(payload.get("JobStatus").is_none(), answered, "{key}");
        let result: Value =
            serde_json::from_slice(&results_object(&s, job.result_key.as_ref().unwrap()).await)
                .unwrap();
        assert_eq!(result["vendor"]["job_id"], vendor_job, "{key}");
    }
    // The passport went through AnalyzeID: typed fields, and its price.
    let id_result: Value =
        serde_json::from_slice(&results_object(&s, jobs[2].result_key.as_ref().unwrap()).await)
            .unwrap();
    assert_eq!(id_result["vendor"]["model"], "AnalyzeID");
    assert_eq!(id_result["fields"]["document_type"]["value"], "passport");
    assert!(
        id_result["fields"]["mrz"]["value"].is_string(),
        "{id_result}"
    );
    let id_cost = jobs[2].cost.as_ref().unwrap();
    assert_eq!(id_cost.model, "id", "{id_cost:?}");
    let stats = sim_stats(&p.sim).await;
    assert_eq!(stats["billed_documents"], 4, "{stats}");
    assert_eq!(
        stats["notifications_published"], 1,
        "only the two-page invoice was a job: {stats}"
    );
    let recorded = p.submit.metrics.recorded();
    assert_eq!(recorded.get("AmbiguousSubmissions[textract,hold]"), None);
}

/// A synchronous call whose answer is lost — the connection dropped, or a gateway's 502 after
/// Textract read the document: it cannot be looked up and nothing will complete it, so under
/// `hold` the job is held at once for a person, with a reason that says so, and nothing is
/// sent twice. (At Textract's asynchronous API the same 502 is retried: its token makes that
/// safe.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_synchronous_answer_is_held_not_sent_again() {
    let s = stack_with(&[("VendorName", "textract"), ("TextractSynchronous", "on")]).await;
    let p = Pipeline::start(s.clients.clone(), &s.stack, options(EngineKind::Fast))
        .await
        .unwrap();
    for (i, fault) in ["drop", "accept_then_5xx"].into_iter().enumerate() {
        set_faults(&p.sim, json!({"seed": 5, "rates": {fault: 1.0}})).await;
        let mut bytes = receipt();
        bytes.extend_from_slice(fault.as_bytes());
        s.put(&format!("receipts/lost-{i}.jpg"), bytes.clone(), None)
            .await;
        let id = job_id_for(&bytes, "receipt");
        let jobs = run_until_settled(&p, &s.ledger, &[id], Duration::from_secs(60)).await;
        let job = &jobs[0];
        assert_eq!(job.state, JobState::Held, "{fault}: {job:?}");
        let reason = job.reason.clone().unwrap();
        assert_eq!(reason.code, "submission_outcome_unknown");
        assert!(reason.message.contains("synchronous"), "{}", reason.message);
        let subject = format!(
            "sha256:{}",
            ocrbridge::job::ContentHash::of(&bytes).to_hex()
        );
        assert_eq!(
            p.sim.sim.books(&subject).len(),
            1,
            "{fault}: read once, never again"
        );
        assert_eq!(job.risky_resubmits, 0);
        assert_eq!(
            p.submit.metrics.recorded()["AmbiguousSubmissions[textract,hold]"],
            (i + 1) as f64
        );
    }
}

/// A worker dies after archiving its synchronous answer and before recording it: the worker
/// that inherits the attempt finds the answer in the archive and adopts it — the document is
/// read once, parsed, and never held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_archived_by_a_worker_that_died_is_adopted_by_its_successor() {
    let s = stack_with(&[("VendorName", "textract"), ("TextractSynchronous", "on")]).await;
    let p = Pipeline::start(
        s.clients.clone(),
        &s.stack,
        PipelineOptions {
            crash_redelivery: Duration::from_millis(500),
            // The dead worker's lease (the invocation less its 2 s margin) is waited out.
            invocation_timeout: Duration::from_secs(6),
            ..options(EngineKind::Fast)
        },
    )
    .await
    .unwrap();
    let bytes = receipt();
    let id = job_id_for(&bytes, "receipt");
    ocrbridge::failpoints::arm_more(
        "submit.after_archive_answer",
        &[(ocrbridge::failpoints::Action::Crash, id.to_string())],
    )
    .unwrap();
    s.put("receipts/crashed.jpg", bytes.clone(), None).await;
    let jobs = run_until_settled(&p, &s.ledger, &[id], Duration::from_secs(60)).await;
    let job = &jobs[0];
    assert!(
        matches!(job.state, JobState::Completed | JobState::NeedsReview),
        "{job:?}"
    );
    assert!(
        !job.history.iter().any(|h| h.state == JobState::Held),
        "{job:?}"
    );
    let subject = format!(
        "sha256:{}",
        ocrbridge::job::ContentHash::of(&bytes).to_hex()
    );
    let books = p.sim.sim.books(&subject);
    assert_eq!(books.len(), 1, "read once");
    // Named for the dead worker's attempt and the twin's request (its job).
    let followed = job.vendor_job_id.as_deref().unwrap();
    assert!(
        followed.ends_with(&format!(":{}", books[0].id)),
        "{followed}"
    );
    assert_eq!(
        p.submit.metrics.recorded()["Reconciles[textract,adopted_archived_answer]"],
        1.0
    );
}

/// The adapter on its own against the twin: a document stored in the stack's bucket.
struct Direct {
    s: TestStack,
    sim: vendor_sim::RunningSim,
    vendor: TextractVendor,
}

async fn direct(twins: TwinSettings) -> Direct {
    let s = textract_stack().await;
    let sim = s
        .start_sim(vendor_sim::SimConfig {
            // Text PDFs: poppler reads their text layer, no OCR.
            engine: EngineKind::Tesseract,
            aws_endpoint: Some(s.endpoint.clone()),
            twins,
            ..vendor_sim::SimConfig::default()
        })
        .await;
    let client = aws_sdk_textract::Client::from_conf(
        aws_sdk_textract::config::Builder::from(&s.clients.sdk_config)
            .endpoint_url(sim.base_url())
            .build(),
    );
    let env = s.stack.function_environment().unwrap();
    let vendor = TextractVendor::new(
        &client,
        ModelMap::parse(VendorKind::Textract, Some("forms=analysis")).unwrap(),
        Some(Channel {
            topic_arn: env["TEXTRACT_SNS_TOPIC_ARN"].clone(),
            role_arn: env["TEXTRACT_ROLE_ARN"].clone(),
        }),
    );
    Direct { s, sim, vendor }
}

impl Direct {
    async fn object(&self, key: &str, bytes: Vec<u8>) -> ObjectRef {
        self.s.put(key, bytes, None).await;
        ObjectRef {
            bucket: self.s.config.documents_bucket.clone(),
            key: key.to_owned(),
            version_id: None,
        }
    }

    async fn submit(
        &self,
        object: &ObjectRef,
        profile: &str,
        token: &str,
    ) -> Result<String, VendorError> {
        self.vendor
            .submit(&Submission {
                idempotency_key: token,
                object,
                document_url: "",
                profile: &ocrbridge::job::Profile::new(profile).unwrap(),
                external_ref: token,
                time_limit: Duration::from_secs(10),
            })
            .await
    }

    async fn finished(&self, vendor_job: &str) -> VendorStatus {
        for _ in 0..200 {
            let status = self.vendor.status(vendor_job).await.unwrap().status;
            if status.is_final() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{vendor_job} never finished");
    }
}

fn words_page(page: usize, lines: usize, words: usize) -> Vec<String> {
    (0..lines)
        .map(|l| {
            (0..words)
                .map(|w| format!("p{page}l{l}w{w}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// More than 1,000 blocks come back in pages of 1,000, and the merged payload has them all;
/// more than 20 expense documents come back in pages of 20.
#[tokio::test]
async fn results_are_paged_and_merged() {
    let d = direct(TwinSettings::default()).await;
    // 2 pages x 50 lines x 11 words: 2 + 100 + 1,100 blocks.
    let big = d
        .object(
            "other/big.pdf",
            text_pdf_pages(&[words_page(1, 50, 11), words_page(2, 50, 11)]),
        )
        .await;
    let job = d.submit(&big, "generic", "doc-tok-big").await.unwrap();
    assert_eq!(d.finished(&job).await, VendorStatus::Succeeded);
    let before = sim_stats(&d.sim).await["status_requests"].as_u64().unwrap();
    let raw = d.vendor.fetch_result(&job).await.unwrap();
    let merged: Value = serde_json::from_slice(&raw).unwrap();
    let blocks = merged["Blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 1_202, "every page of the result");
    assert!(merged.get("NextToken").is_none());
    assert_eq!(merged["DocumentMetadata"]["Pages"], 2);
    let pages_fetched = sim_stats(&d.sim).await["status_requests"].as_u64().unwrap() - before;
    assert_eq!(pages_fetched, 2, "1,000 blocks a page");
    let normalized = d
        .vendor
        .normalize(
            &raw,
            "doc-x",
            &job,
            &ocrbridge::job::Profile::new("generic").unwrap(),
        )
        .unwrap();
    assert_eq!(normalized.document.lines().count(), 100);
    normalized.document.to_validated_json().unwrap();

    // 25 pages, one expense document each: pages of 20.
    let pages: Vec<Vec<String>> = (0..25)
        .map(|i| vec![format!("Shop {i}"), format!("Total: {i}.50")])
        .collect();
    let receipts = d.object("receipts/many.pdf", text_pdf_pages(&pages)).await;
    let job = d
        .submit(&receipts, "receipt", "doc-tok-many")
        .await
        .unwrap();
    assert!(job.starts_with("expense:"));
    assert_eq!(d.finished(&job).await, VendorStatus::Succeeded);
    let before = sim_stats(&d.sim).await["status_requests"].as_u64().unwrap();
    let merged: Value =
        serde_json::from_slice(&d.vendor.fetch_result(&job).await.unwrap()).unwrap();
    assert_eq!(merged["ExpenseDocuments"].as_array().unwrap().len(), 25);
    assert_eq!(
        sim_stats(&d.sim).await["status_requests"].as_u64().unwrap() - before,
        2,
        "20 expense documents a page"
    );
}

/// Token rules: the same token and parameters return the same job, unbilled; the same token
/// with other parameters is a bug report (permanent), never retried; other documents and
/// formats Textract refuses fail with a reason a person reads.
#[tokio::test]
async fn tokens_bad_documents_and_forms_follow_textracts_rules() {
    let d = direct(TwinSettings::default()).await;
    let a = d.object("invoices/a.pdf", invoice_pdf()).await;
    let b = d
        .object("invoices/b.pdf", text_pdf(&["Another", "Total: 1.00"]))
        .await;
    let first = d.submit(&a, "invoice", "doc-tok-a").await.unwrap();
    let again = d.submit(&a, "invoice", "doc-tok-a").await.unwrap();
    assert_eq!(first, again);
    let stats = sim_stats(&d.sim).await;
    assert_eq!(
        (
            stats["billed_documents"].as_u64(),
            stats["idempotent_replays"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let mismatch = d.submit(&b, "invoice", "doc-tok-a").await.unwrap_err();
    assert!(
        matches!(&mismatch, VendorError::Rejected { code, .. } if code == "IdempotentParameterMismatchException"),
        "{mismatch:?}"
    );
    assert_eq!(mismatch.class(), ErrorClass::Permanent);
    // The same token on another API is another job (Textract's rule).
    let text = d.submit(&a, "generic", "doc-tok-a").await.unwrap();
    assert_ne!(text, first);

    let not_a_document = d
        .object("other/notes.png", b"plain text, not an image".to_vec())
        .await;
    let refused = d
        .submit(&not_a_document, "generic", "doc-tok-txt")
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, VendorError::Rejected { code, message, .. }
            if code == "UnsupportedDocumentException" && message.contains("PNG, JPEG, PDF and TIFF")),
        "{refused:?}"
    );
    let missing = ObjectRef {
        key: "invoices/never-uploaded.pdf".into(),
        ..a.clone()
    };
    let gone = d
        .submit(&missing, "invoice", "doc-tok-gone")
        .await
        .unwrap_err();
    assert!(
        matches!(&gone, VendorError::Rejected { code, .. } if code == "InvalidS3ObjectException"),
        "{gone:?}"
    );

    // Forms: document analysis, with key-value pairs.
    let form = d
        .object(
            "forms/f.pdf",
            text_pdf(&["Name: Ada Lovelace", "Date: 10/12/1815"]),
        )
        .await;
    let job = d.submit(&form, "forms", "doc-tok-form").await.unwrap();
    assert!(job.starts_with("analysis:"), "{job}");
    assert_eq!(d.finished(&job).await, VendorStatus::Succeeded);
    let raw = d.vendor.fetch_result(&job).await.unwrap();
    let normalized = d
        .vendor
        .normalize(
            &raw,
            "doc-f",
            &job,
            &ocrbridge::job::Profile::new("forms").unwrap(),
        )
        .unwrap();
    assert_eq!(normalized.document.key_values.len(), 2);
    // Textract keeps the colon in a key, as its own forms fixture shows ("Last Name:").
    assert_eq!(normalized.document.key_values[0].key, "Name:");
    assert_eq!(normalized.document.key_values[0].value, "Ada Lovelace");
}

/// The twin invents nothing: every field it sends appears in Textract's own responses
/// (`../shared/fixtures/textract`), at the same place.
#[tokio::test]
async fn the_twins_payloads_have_textracts_shape() {
    let mut real = std::collections::BTreeSet::new();
    // What every recording of an API carries (text and forms; expense), for the other direction.
    let mut always: [Option<std::collections::BTreeSet<String>>; 2] = [None, None];
    for (api, name) in [
        (0, "little_women_page_1.json"),
        (0, "multi-page-forms-samples-2-page.json"),
        (0, "tables_with_merged_cells_sample1.json"),
        (1, "analyzeExpenseResponse-multipage.json"),
        (1, "test_trp2_expense_sample2.json"),
    ] {
        let text = std::fs::read_to_string(
            ocrbridge_tests::vendor_recordings()
                .join("textract")
                .join(name),
        )
        .unwrap();
        let paths = key_paths(&serde_json::from_str(&text).unwrap());
        always[api] = ocrbridge_tests::carried_by_all(always[api].take(), &paths);
        real.extend(paths);
    }
    // In Textract's API model (the SDK's Get* outputs), though not in these captured responses.
    real.insert("DetectDocumentTextModelVersion".into());
    real.insert("AnalyzeDocumentModelVersion".into());
    real.insert("AnalyzeExpenseModelVersion".into());
    let d = direct(TwinSettings::default()).await;
    let mut twin = std::collections::BTreeSet::new();
    let mut twin_by_api = [
        std::collections::BTreeSet::new(),
        std::collections::BTreeSet::new(),
    ];
    for (key, profile, token) in [
        ("other/t.pdf", "generic", "doc-shape-text"),
        ("forms/t.pdf", "forms", "doc-shape-forms"),
        ("receipts/t.pdf", "receipt", "doc-shape-expense"),
    ] {
        let object = d
            .object(
                key,
                text_pdf(&[
                    "Shop: Corner Store",
                    "Date: 01/02/2026",
                    "Coffee 2 x 3.00 6.00",
                    "Cake 3.50",
                    "Total: 9.50",
                ]),
            )
            .await;
        let job = d.submit(&object, profile, token).await.unwrap();
        assert_eq!(d.finished(&job).await, VendorStatus::Succeeded);
        let merged: Value =
            serde_json::from_slice(&d.vendor.fetch_result(&job).await.unwrap()).unwrap();
        let paths = key_paths(&merged);
        twin_by_api[usize::from(profile == "receipt")].extend(paths.iter().cloned());
        twin.extend(paths);
    }
    let invented: Vec<&String> = twin.difference(&real).collect();
    assert!(
        invented.is_empty(),
        "fields Textract never sends: {invented:?}"
    );
    // The other way: what every recording of an API carries, the twin's answer of that API
    // carries, line items included. The model versions differ by API (the text recordings are
    // AnalyzeDocument's; the twin answers DetectDocumentText too).
    for (api, always) in always.into_iter().enumerate() {
        let missing: Vec<String> = always
            .unwrap_or_default()
            .into_iter()
            .filter(|p| !p.ends_with("ModelVersion"))
            .filter(|p| !twin_by_api[api].contains(p))
            .collect();
        assert!(
            missing.is_empty(),
            "fields every Textract answer of this API carries, missing from the twin's: {missing:?}"
        );
    }
    // And the essentials are there.
    for needed in [
        "Blocks[].Geometry.BoundingBox.Width",
        "Blocks[].Relationships[].Ids",
        "ExpenseDocuments[].SummaryFields[].ValueDetection.Text",
        "ExpenseDocuments[].LineItemGroups[].LineItems[].LineItemExpenseFields[].ValueDetection.Text",
        "DocumentMetadata.Pages",
    ] {
        assert!(twin.contains(needed), "{needed}");
    }
}

/// Textract's transient errors are retried, never taken for a rejected document: its own typed
/// 5xx (`InternalServerError`, `InternalFailure`, `ServiceUnavailable`) and a gateway's 502 with
/// no type at all. Before, every type the adapter did not list — and every untyped 5xx — failed
/// the document for good as `vendor_rejected`. And an expired job id, which Textract answers
/// with a 400 `InvalidJobIdException`, is a job the vendor no longer has (`Gone`), which parse
/// turns into `result_unavailable` instead of polling it until the maximum age.
#[tokio::test]
async fn textracts_transient_errors_are_retried_and_an_expired_job_is_gone() {
    let d = direct(TwinSettings::default()).await;
    let object = d.object("invoices/transient.pdf", invoice_pdf()).await;
    let mut seen = std::collections::BTreeSet::new();
    for request in 1..=12 {
        set_faults(
            &d.sim,
            json!({"seed": request, "force": {"server_error": [{"request": 1}]}}),
        )
        .await;
        let err = d
            .submit(&object, "invoice", &format!("doc-transient-{request}"))
            .await
            .expect_err("a 5xx");
        assert!(
            matches!(err, VendorError::Unavailable { status, .. } if status >= 500),
            "{err}"
        );
        assert_eq!(err.class(), ErrorClass::Retryable, "{err}");
        seen.insert(err.to_string());
    }
    assert!(
        seen.len() >= 2,
        "more than one kind of 5xx was tried: {seen:?}"
    );
    // A job Textract no longer keeps.
    set_faults(&d.sim, json!({"seed": 1, "rates": {"result_expired": 1.0}})).await;
    let job = d.submit(&object, "invoice", "doc-expiring").await.unwrap();
    let mut gone = None;
    for _ in 0..200 {
        match d.vendor.status(&job).await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => {
                gone = Some(e);
                break;
            }
        }
    }
    let gone = gone.expect("the job is forgotten once it finished");
    assert!(matches!(gone, VendorError::Gone(_)), "{gone}");
    assert!(gone.is_gone());
    assert!(matches!(
        d.vendor.fetch_result(&job).await,
        Err(VendorError::Gone(_))
    ));
}

/// A Textract completion that parse must hold back (another worker is parsing the job) is held
/// back on **its own** queue: parse reads two queues, and a visibility change goes to the one
/// the message came from. Before, parse changed the visibility on the results queue with a
/// receipt handle from the completions queue: the call failed, and the completion came back
/// only after the queue's six-minute visibility timeout instead of the backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_back_completion_is_retried_on_its_own_queue() {
    use ocrbridge::job::{ContentHash, DocumentKey, NewJob, Profile, SourceObject};
    use ocrbridge::ledger::{Change, LeaseStep};
    use ocrbridge::time::UnixMillis;
    let s = textract_stack().await;
    let p = Pipeline::start(s.clients.clone(), &s.stack, options(EngineKind::Fast))
        .await
        .unwrap();
    let completions = p.textract_completions_url.clone().unwrap();
    // A job another parse worker holds right now.
    let profile = Profile::new("invoice").unwrap();
    let content = ContentHash::of(b"held back");
    let created = s
        .ledger
        .create_job(
            &NewJob {
                channel: None,
                prepared: None,
                prep_compute: None,
                benchmark_run: None,
                key: DocumentKey::new(&content, &profile),
                profile,
                content,
                source: SourceObject {
                    bucket: s.config.documents_bucket.clone(),
                    key: "invoices/held-back.pdf".into(),
                    version_id: None,
                },
                inspection: Default::default(),
            },
            UnixMillis::now(),
        )
        .await
        .unwrap()
        .job()
        .clone();
    let now = UnixMillis::now();
    let queued = s
        .ledger
        .transition(&created, JobState::Queued, Change::none(), now)
        .await
        .unwrap();
    let lease = s
        .ledger
        .acquire_lease(
            &queued,
            LeaseStep::Submit,
            "w",
            now.plus(Duration::from_secs(30)),
            now,
        )
        .await
        .unwrap();
    let submitted = s
        .ledger
        .complete_lease(
            &lease,
            JobState::Submitted,
            Change::none().with_vendor_job_id("expense:held-back"),
            now,
        )
        .await
        .unwrap();
    let ready = s
        .ledger
        .transition(&submitted, JobState::ResultReady, Change::none(), now)
        .await
        .unwrap();
    s.ledger
        .acquire_lease(
            &ready,
            LeaseStep::Parse,
            "other",
            now.plus(Duration::from_secs(3)),
            now,
        )
        .await
        .unwrap();
    // Its completion, as SNS puts it on the completions queue.
    let topic = s.stack.function_environment().unwrap()["TEXTRACT_SNS_TOPIC_ARN"].clone();
    let message = json!({
        "JobId": "held-back", "Status": "SUCCEEDED", "API": "StartExpenseAnalysis",
        "JobTag": created.id.as_str(), "Timestamp": 1,
        "DocumentLocation": {"S3ObjectName": "invoices/held-back.pdf", "S3Bucket": s.config.documents_bucket},
    });
    let envelope = json!({"Type": "Notification", "MessageId": "m-held", "TopicArn": topic,
        "Message": message.to_string(), "Timestamp": "2026-01-01T00:00:00.000Z"});
    let sqs = &s.clients.sqs;
    sqs.send_message()
        .queue_url(&completions)
        .message_body(envelope.to_string())
        .send()
        .await
        .unwrap();
    let received = sqs
        .receive_message()
        .queue_url(&completions)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let (account, name) = {
        let mut parts = completions.rsplit('/');
        let name = parts.next().unwrap().to_owned();
        (parts.next().unwrap().to_owned(), name)
    };
    let event = ocrbridge_tests::sqs_event(
        received.messages(),
        &format!("arn:aws:sqs:us-east-1:{account}:{name}"),
    );
    let response = p
        .parse
        .handle_sqs(event, UnixMillis::now().plus(Duration::from_secs(30)))
        .await;
    assert_eq!(response.batch_item_failures.len(), 1, "held back, to retry");
    // Back on the completions queue after the backoff (the lease's remaining time), not after
    // the queue's six minutes.
    let mut back = false;
    for _ in 0..10 {
        let again = sqs
            .receive_message()
            .queue_url(&completions)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if !again.messages().is_empty() {
            back = true;
            break;
        }
    }
    assert!(back, "the completion came back on its own queue");
}
