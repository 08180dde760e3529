//! The Azure Document Intelligence adapter against the simulator's Azure twin, through the whole
//! pipeline with `VENDOR=azure`: completion by polling the operation (Retry-After honoured, 429s
//! waited out), failed analyses, statuses Azure may add, results Azure no longer keeps, and the
//! key that must never leave the endpoint's origin.

use std::time::Duration;

use ocrbridge::job::{reason, JobState};
use ocrbridge::vendors::select::VendorKind;
use ocrbridge::vendors::{Vendor, VendorError};
use ocrbridge_local::pipeline::{Pipeline, PipelineOptions};
use ocrbridge_tests::{
    job_id_for, key_paths, results_object, run_until_settled, set_faults, sim_stats, stack_with,
    text_pdf, TestStack,
};
use serde_json::{json, Value};
use vendor_sim::engine::EngineKind;
use vendor_sim::TwinSettings;

async fn azure_stack() -> TestStack {
    stack_with(&[("VendorName", "azure")]).await
}

fn options(twins: TwinSettings, processing_delay: Duration) -> PipelineOptions {
    PipelineOptions {
        vendor: VendorKind::Azure,
        // Text PDFs: poppler reads their text layer, no OCR.
        engine: EngineKind::Tesseract,
        twins,
        processing_delay,
        reconcile_every: Duration::from_secs(3),
        submitted_stale: Duration::from_secs(60),
        ..PipelineOptions::default()
    }
}

fn receipt_pdf(shop: &str) -> Vec<u8> {
    text_pdf(&[
        shop,
        "Date: 14/11/2026",
        "Coffee 2 x 4.00 8.00",
        "Cake 7.60",
        "Subtotal: 15.60",
        "Tax: 0.94",
        "Total: 16.54",
    ])
}

fn invoice_pdf() -> Vec<u8> {
    text_pdf(&[
        "ACME Supplies Ltd",
        "Invoice No: INV-2041",
        "Invoice Date: 12/03/2026",
        "Paper A4 2 x 50.00 100.00",
        "Subtotal: 100.00",
        "Tax: 8.00",
        "Total: 108.00",
    ])
}

/// Each profile goes to its prebuilt model; the job follows its Operation-Location, is polled to
/// completion (no webhook exists), and its archive is Azure's operation as Azure sent it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_profile_uses_its_prebuilt_model_and_completes_by_polling() {
    let s = azure_stack().await;
    let p = Pipeline::start(
        s.clients.clone(),
        &s.stack,
        options(TwinSettings::default(), Duration::ZERO),
    )
    .await
    .unwrap();
    let uploads = [
        (
            "receipts/r.pdf",
            receipt_pdf("ACME GROCERY"),
            "receipt",
            "prebuilt-receipt",
        ),
        (
            "invoices/i.pdf",
            invoice_pdf(),
            "invoice",
            "prebuilt-invoice",
        ),
        (
            "other/g.pdf",
            text_pdf(&["Plain text", "two lines"]),
            "generic",
            "prebuilt-read",
        ),
    ];
    let mut ids = Vec::new();
    for (key, bytes, profile, _) in &uploads {
        s.put(key, bytes.clone(), None).await;
        ids.push(job_id_for(bytes, profile));
    }
    let jobs = run_until_settled(&p, &s.ledger, &ids, Duration::from_secs(60)).await;
    for (job, (key, _, _, model)) in jobs.iter().zip(&uploads) {
        assert!(
            matches!(job.state, JobState::Completed | JobState::NeedsReview),
            "{key}: {job:?}"
        );
        let operation = job.vendor_job_id.as_deref().unwrap();
        assert!(
            operation.starts_with(&p.sim.base_url())
                && operation.contains(&format!("/documentModels/{model}/analyzeResults/")),
            "{key}: the Operation-Location is the vendor job: {operation}"
        );
        let result: Value =
            serde_json::from_slice(&results_object(&s, job.result_key.as_ref().unwrap()).await)
                .unwrap();
        assert_eq!(result["vendor"]["name"], "azure");
        assert_eq!(result["vendor"]["model"], *model);
    }
    let Some(receipt) = serde_json::from_slice::<Value>(
        &results_object(&s, jobs[0].result_key.as_ref().unwrap()).await,
    )
    .ok() else {
        panic!("a receipt result")
    };
    assert_eq!(receipt["fields"]["total"]["value"], "16.54", "{receipt}");
    let stats = sim_stats(&p.sim).await;
    assert_eq!(stats["billed_documents"], 3);
    assert!(stats["status_requests"].as_u64().unwrap() >= 3, "{stats}");
    assert_eq!(stats["webhooks_sent"], json!({}), "Azure pushes nothing");
}

/// A running operation is asked again after Azure's Retry-After — here 1 s, sooner than the
/// doubling schedule would (1, 2, 4 s…) — and not in a loop: an 8-second analysis takes about
/// eight polls, each one admitted, where ignoring Retry-After would take four.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_follow_retry_after() {
    let s = azure_stack().await;
    let p = Pipeline::start(
        s.clients.clone(),
        &s.stack,
        options(
            TwinSettings {
                azure_retry_after_secs: 1,
                ..TwinSettings::default()
            },
            Duration::from_secs(8),
        ),
    )
    .await
    .unwrap();
    let bytes = invoice_pdf();
    s.put("invoices/slow.pdf", bytes.clone(), None).await;
    let id = job_id_for(&bytes, "invoice");
    let jobs = run_until_settled(&p, &s.ledger, &[id], Duration::from_secs(60)).await;
    assert!(
        jobs[0].state.is_settled() && jobs[0].result_key.is_some(),
        "{:?}",
        jobs[0]
    );
    let stats = sim_stats(&p.sim).await;
    // The polls, then the fetch of the finished operation.
    let requests = stats["status_requests"].as_u64().unwrap();
    assert!(
        (7..=11).contains(&requests),
        "{requests} status requests for one 8-second analysis: {stats}"
    );
}

/// 429s while polling (Azure counts polls against the rate limit) are waited out for as long as
/// Azure says; the poll is not lost and nothing is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_polls_are_waited_out() {
    let s = azure_stack().await;
    let p = Pipeline::start(
        s.clients.clone(),
        &s.stack,
        options(TwinSettings::default(), Duration::from_secs(2)),
    )
    .await
    .unwrap();
    let bytes = invoice_pdf();
    s.put("invoices/throttled.pdf", bytes.clone(), None).await;
    let id = job_id_for(&bytes, "invoice");
    // Submitted first, then every other request is throttled.
    for _ in 0..100 {
        p.pump_once().await;
        if sim_stats(&p.sim).await["billed_documents"] == 1 {
            break;
        }
    }
    set_faults(
        &p.sim,
        json!({"seed": 7, "rates": {"throttle": 0.5}, "retry_after_secs": 1}),
    )
    .await;
    let jobs = run_until_settled(&p, &s.ledger, &[id], Duration::from_secs(90)).await;
    assert!(
        matches!(jobs[0].state, JobState::Completed | JobState::NeedsReview),
        "{:?}",
        jobs[0]
    );
    let stats = sim_stats(&p.sim).await;
    assert!(
        stats["faults_injected"]["throttle"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert_eq!(stats["billed_documents"], 1, "throttling never resubmits");
    assert!(s.drain(&s.config.results_dlq_url).await.is_empty());
}

/// An analysis Azure fails ends the job with Azure's reason, never parsed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_analysis_fails_the_job_with_azures_reason() {
    let s = azure_stack().await;
    let p = Pipeline::start(
        s.clients.clone(),
        &s.stack,
        options(TwinSettings::default(), Duration::ZERO),
    )
    .await
    .unwrap();
    set_faults(&p.sim, json!({"seed": 1, "rates": {"failed_job": 1.0}})).await;
    let bytes = invoice_pdf();
    s.put("invoices/bad.pdf", bytes.clone(), None).await;
    let id = job_id_for(&bytes, "invoice");
    let jobs = run_until_settled(&p, &s.ledger, &[id], Duration::from_secs(60)).await;
    let job = &jobs[0];
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    let why = job.reason.as_ref().unwrap();
    assert_eq!(why.code, reason::VENDOR_FAILED);
    assert!(why.message.starts_with("InvalidContent:"), "{why:?}");
    assert!(job.result_key.is_none());
}

/// A status Azure adds (`succeededWithWarnings` here) is drift: never a success, counted, asked
/// about a few times, and then the job fails with its own retryable reason — keeping its vendor
/// job, so a retry after the adapter learns the status polls it again instead of buying it twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_status_is_never_success() {
    let s = azure_stack().await;
    let p = Pipeline::start(
        s.clients.clone(),
        &s.stack,
        options(TwinSettings::default(), Duration::ZERO),
    )
    .await
    .unwrap();
    set_faults(&p.sim, json!({"seed": 1, "rates": {"drift": 1.0}})).await;
    let bytes = invoice_pdf();
    s.put("invoices/drift.pdf", bytes.clone(), None).await;
    let id = job_id_for(&bytes, "invoice");
    let jobs = run_until_settled(&p, &s.ledger, &[id], Duration::from_secs(60)).await;
    let job = &jobs[0];
    assert_eq!(
        job.state,
        JobState::Failed,
        "never taken for a success: {job:?}"
    );
    let why = job.reason.as_ref().unwrap();
    assert_eq!(why.code, reason::VENDOR_STATUS_UNKNOWN);
    assert!(why.message.contains("succeededWithWarnings"), "{why:?}");
    assert!(job.retryable_reason().is_some());
    assert!(job.vendor_job_id.is_some(), "the vendor job is kept");
    assert!(job.result_key.is_none());
    assert!(
        p.parse.metrics.recorded()["SchemaDrift[azure,status,new_enum_value]"] >= 1.0,
        "counted as drift"
    );
    assert!(s.drain(&s.config.results_dlq_url).await.is_empty());
}

/// A result Azure no longer keeps (404 on the operation) fails the job `result_unavailable`,
/// which an operator can retry — knowingly buying the document again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_result_fails_the_job_result_unavailable() {
    let s = azure_stack().await;
    let p = Pipeline::start(
        s.clients.clone(),
        &s.stack,
        options(
            TwinSettings {
                result_ttl: Duration::ZERO,
                ..TwinSettings::default()
            },
            Duration::ZERO,
        ),
    )
    .await
    .unwrap();
    let bytes = invoice_pdf();
    s.put("invoices/expired.pdf", bytes.clone(), None).await;
    let id = job_id_for(&bytes, "invoice");
    let jobs = run_until_settled(&p, &s.ledger, &[id], Duration::from_secs(60)).await;
    assert_eq!(jobs[0].state, JobState::Failed, "{:?}", jobs[0]);
    assert_eq!(
        jobs[0].reason.as_ref().unwrap().code,
        reason::RESULT_UNAVAILABLE
    );
    assert!(
        jobs[0].retryable_reason().is_some(),
        "an operator may retry it"
    );
}

/// A result larger than parse reads (`VENDOR_MAX_RESULT_BYTES`): the operation's status is
/// still read (from its first bytes), the result is streamed whole into the archive, and the
/// job stops with `result_too_large` saying where it is. Before, the status check read the
/// whole operation under the same bound and failed with it on every poll until the maximum
/// age, and Azure, which keeps results for a day, deleted what was paid for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_result_is_archived_not_polled_until_it_expires() {
    let s = azure_stack().await;
    let p = Pipeline::start(
        s.clients.clone(),
        &s.stack,
        PipelineOptions {
            environment: vec![("VENDOR_MAX_RESULT_BYTES".into(), "200000".into())],
            ..options(TwinSettings::default(), Duration::ZERO)
        },
    )
    .await
    .unwrap();
    set_faults(
        &p.sim,
        json!({"seed": 1, "rates": {"oversized_result": 1.0}, "oversized_result_bytes": 400000}),
    )
    .await;
    let bytes = invoice_pdf();
    s.put("invoices/huge.pdf", bytes.clone(), None).await;
    let id = job_id_for(&bytes, "invoice");
    let jobs = run_until_settled(&p, &s.ledger, &[id], Duration::from_secs(60)).await;
    assert_eq!(jobs[0].state, JobState::Failed, "{:?}", jobs[0]);
    let reason = jobs[0].reason.clone().unwrap();
    assert_eq!(reason.code, reason::RESULT_TOO_LARGE);
    assert!(
        reason.message.contains("archived in full"),
        "{}",
        reason.message
    );
    let key = reason
        .message
        .split(&format!("s3://{}/", s.config.results_bucket))
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("where the archive is");
    let archived = results_object(&s, key).await;
    assert!(archived.len() > 400_000, "{}", archived.len());
    assert_eq!(sim_stats(&p.sim).await["billed_documents"], 1);
}

/// The adapter on its own: an operation the twin never made is a 404 (a missing result), and an
/// operation URL on another origin is refused before anything — the key included — is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_never_leaves_the_endpoints_origin() {
    let s = azure_stack().await;
    let p = Pipeline::start(
        s.clients.clone(),
        &s.stack,
        options(TwinSettings::default(), Duration::ZERO),
    )
    .await
    .unwrap();
    let vendor = &p.parse.vendor;
    let missing = format!(
        "{}/documentintelligence/documentModels/prebuilt-read/analyzeResults/nope?api-version=2024-11-30",
        p.sim.base_url()
    );
    match vendor.status(&missing).await {
        Err(VendorError::Rejected { status: 404, .. }) => {}
        other => panic!("{other:?}"),
    }
    // A listener that records whether anything arrived.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let foreign = format!(
        "http://{}/documentintelligence/documentModels/prebuilt-read/analyzeResults/x",
        listener.local_addr().unwrap()
    );
    let before = sim_stats(&p.sim).await["requests"].as_u64().unwrap();
    match vendor.status(&foreign).await {
        Err(VendorError::Protocol(message)) => assert!(message.contains("origin"), "{message}"),
        other => panic!("{other:?}"),
    }
    let accepted = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
    assert!(accepted.is_err(), "nothing connected to the foreign origin");
    assert_eq!(
        sim_stats(&p.sim).await["requests"].as_u64().unwrap(),
        before
    );
}

/// The twin invents nothing: every field of its operations appears in Microsoft's recorded
/// results (`../shared/fixtures/azure-di`), at the same place. A typed field is compared by its
/// shape (`documents[].fields.*.valueCurrency.amount`), not its name: the recordings predate
/// API 2024-11-30, where the receipt's totals became `currency` fields like the invoice's, and
/// their invoice has no `SubTotal` to record. And the other way: every path all three recordings
/// carry (the layout model's included), the twin's operations carry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_twins_operations_have_azures_shape() {
    let mut real = std::collections::BTreeSet::new();
    // What every recording carries, whatever its model: the twin must send it too.
    let mut always: Option<std::collections::BTreeSet<String>> = None;
    for name in [
        "receipt-url-2022-08-31.result.json",
        "invoice-url-2023-02-28-preview.result.json",
        "layout-url-2023-02-28-preview.result.json",
    ] {
        let text = std::fs::read_to_string(
            ocrbridge_tests::vendor_recordings()
                .join("azure-di")
                .join(name),
        )
        .unwrap();
        let paths = typed_shapes(key_paths(&serde_json::from_str(&text).unwrap()));
        always = ocrbridge_tests::carried_by_all(always, &paths);
        real.extend(paths);
    }
    let always = always.unwrap_or_default();
    let s = azure_stack().await;
    let p = Pipeline::start(
        s.clients.clone(),
        &s.stack,
        options(TwinSettings::default(), Duration::ZERO),
    )
    .await
    .unwrap();
    let uploads = [
        ("receipts/r.pdf", receipt_pdf("CORNER CAFE"), "receipt"),
        ("invoices/i.pdf", invoice_pdf(), "invoice"),
        (
            "other/g.pdf",
            text_pdf(&["Name: Ada", "Plain text"]),
            "generic",
        ),
    ];
    let mut ids = Vec::new();
    for (key, bytes, profile) in &uploads {
        s.put(key, bytes.clone(), None).await;
        ids.push(job_id_for(bytes, profile));
    }
    let jobs = run_until_settled(&p, &s.ledger, &ids, Duration::from_secs(60)).await;
    let mut twin = std::collections::BTreeSet::new();
    for job in &jobs {
        let raw = p
            .parse
            .vendor
            .fetch_result(job.vendor_job_id.as_deref().unwrap())
            .await
            .unwrap();
        twin.extend(typed_shapes(key_paths(
            &serde_json::from_slice(&raw).unwrap(),
        )));
    }
    let invented: Vec<&String> = twin.difference(&real).collect();
    assert!(
        invented.is_empty(),
        "fields Azure never sends: {invented:?}"
    );
    let missing: Vec<&String> = always.difference(&twin).collect();
    assert!(
        missing.is_empty(),
        "fields every Azure result carries, missing from the twin's: {missing:?}"
    );
    for needed in [
        "analyzeResult.pages[].words[].polygon",
        "analyzeResult.pages[].lines[].spans[].offset",
        "analyzeResult.documents[].fields.*.valueCurrency.amount",
        "analyzeResult.documents[].fields.*.valueDate",
        "analyzeResult.documents[].fields.*.valueArray[].valueObject.*.valueCurrency.amount",
        "analyzeResult.documents[].fields.*.valueArray[].valueObject.*.valueNumber",
        "analyzeResult.keyValuePairs[].key.content",
    ] {
        assert!(twin.contains(needed), "{needed}");
    }
}

/// Paths with each typed field's name replaced by `*`.
fn typed_shapes(paths: std::collections::BTreeSet<String>) -> std::collections::BTreeSet<String> {
    /// `…{marker}Name.rest` as `…{marker}*.rest`: a field's name is the model's, its shape
    /// the protocol's.
    fn any_name(path: &str, marker: &str) -> String {
        match path.split_once(marker) {
            Some((head, rest)) => {
                let (_, tail) = rest.split_once('.').unwrap_or((rest, ""));
                let tail = if tail.is_empty() {
                    String::new()
                } else {
                    format!(".{}", any_name(tail, marker))
                };
                format!("{head}{marker}*{tail}")
            }
            None => path.to_owned(),
        }
    }
    paths
        .into_iter()
        .map(|path| any_name(&any_name(&path, "documents[].fields."), "valueObject."))
        .collect()
}

/// Azure's two keys take turns. A rotation with no standby key cannot start and says what to
/// do; one whose standby Azure refuses stops at `testSecret` and leaves the current key alone.
/// With KEY2 put under `STANDBY` by its owner, rotation proves it with Azure's resource-info
/// call, makes it current, drops the `STANDBY` stage and asks for KEY1 to be regenerated; once
/// the owner has regenerated KEY1 (Azure refuses it), documents still complete on KEY2. The
/// scheduled key check then proves KEY2 and notices that no standby is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_azure_key_rotates_between_its_two_keys() {
    use rotate::{RotateError, RotationEvent, Step};

    let s = azure_stack().await;
    let p = Pipeline::start(
        s.clients.clone(),
        &s.stack,
        options(TwinSettings::default(), Duration::ZERO),
    )
    .await
    .unwrap();
    let rotate = s.rotate(p.parse.vendor.clone());
    let secret = s.config.vendor_api_key_secret.clone();
    let step = |token: &str, step: Step| RotationEvent {
        secret_id: secret.clone(),
        token: token.to_owned(),
        step,
    };
    let put_standby = |value: String| {
        let secrets = s.clients.secrets();
        let secret = secret.clone();
        async move {
            secrets
                .put_secret_value()
                .secret_id(secret)
                .secret_string(value)
                .version_stages("STANDBY")
                .send()
                .await
                .unwrap();
        }
    };
    let admin = |path: &str, key: &str| {
        let url = format!("{}/admin/api-keys{path}", p.sim.base_url());
        let body = json!({ "key": key });
        async move {
            reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let key1 = s.secret(&secret, "AWSCURRENT").await;
    // Secrets Manager's tokens are 32–64 characters.
    let [t_none, t_bad, t_key2, t_again] =
        std::array::from_fn::<String, 4, _>(|_| uuid::Uuid::new_v4().to_string());

    // No standby: nothing to rotate to.
    let err = rotate
        .handle(&step(&t_none, Step::Create))
        .await
        .unwrap_err();
    assert!(matches!(err, RotateError::NoStandbyKey { .. }), "{err}");
    assert!(
        err.to_string().contains("--version-stages STANDBY"),
        "{err}"
    );

    // A standby Azure refuses: testSecret fails, the current key stays.
    put_standby("azure-key-that-azure-never-issued".into()).await;
    for st in [Step::Create, Step::Set] {
        rotate.handle(&step(&t_bad, st)).await.unwrap();
    }
    let err = rotate.handle(&step(&t_bad, Step::Test)).await.unwrap_err();
    assert!(
        matches!(err, RotateError::Vendor(VendorError::Auth { status: 401 })),
        "{err}"
    );
    assert_eq!(s.secret(&secret, "AWSCURRENT").await, key1);

    // KEY2, which the owner regenerated and put as the standby.
    let key2 = "azure-key2-0123456789abcdef0123456789".to_owned();
    assert_eq!(admin("", &key2).await, 201);
    put_standby(key2.clone()).await;
    for st in [Step::Create, Step::Set, Step::Test, Step::Finish] {
        rotate
            .handle(&step(&t_key2, st))
            .await
            .unwrap_or_else(|e| panic!("{st:?}: {e}"));
        // Each step is idempotent: the service may call it again.
        rotate
            .handle(&step(&t_key2, st))
            .await
            .unwrap_or_else(|e| panic!("{st:?} again: {e}"));
    }
    assert_eq!(s.secret(&secret, "AWSCURRENT").await, key2);
    assert_eq!(s.secret(&secret, "AWSPREVIOUS").await, key1);
    let described = s
        .clients
        .secrets()
        .describe_secret()
        .secret_id(&secret)
        .send()
        .await
        .unwrap();
    let standing_by = described
        .version_ids_to_stages()
        .into_iter()
        .flatten()
        .filter(|(_, stages)| stages.iter().any(|st| st == "STANDBY"))
        .count();
    assert_eq!(
        standing_by, 0,
        "the standby is current: it stands by no more"
    );
    let recorded = rotate.metrics.recorded();
    assert_eq!(recorded["VendorKeyRegenerationNeeded[azure]"], 1.0);

    // The owner regenerates KEY1: Azure refuses it from now on, and documents complete on
    // KEY2 (the adapter's cached KEY1 is refused once, then the keyring is refreshed).
    assert_eq!(admin("/revoke", &key1).await, 204);
    let bytes = invoice_pdf();
    s.put("invoices/after-rotation.pdf", bytes.clone(), None)
        .await;
    let jobs = run_until_settled(
        &p,
        &s.ledger,
        &[job_id_for(&bytes, "invoice")],
        Duration::from_secs(60),
    )
    .await;
    assert!(
        matches!(jobs[0].state, JobState::Completed | JobState::NeedsReview)
            && jobs[0].result_key.is_some(),
        "read on KEY2: {:?}",
        jobs[0]
    );

    // The scheduled check proves KEY2 and finds no standby for the next rotation.
    let check = rotate
        .check_key(ocrbridge::time::UnixMillis::now().0)
        .await
        .unwrap();
    assert_eq!(check.standby, Some(false));
    let recorded = rotate.metrics.recorded();
    assert_eq!(recorded["VendorKeyChecks[azure,current,ok]"], 1.0);
    assert!(check.age_days.is_some_and(|d| d < 0.1), "{check:?}");
    // A rotation now cannot start: the standby stage is empty.
    let err = rotate
        .handle(&step(&t_again, Step::Create))
        .await
        .unwrap_err();
    assert!(matches!(err, RotateError::NoStandbyKey { .. }), "{err}");
}
