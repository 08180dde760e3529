//! The happy path through the real function binaries (each under the Runtime Interface
//! Emulator, or in Docker behind `sam local start-lambda`), driven by the local event sources,
//! on real SROIE receipts OCRed by Tesseract.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ocrbridge::job::{JobId, JobState};
use ocrbridge_local::demo::job_id_of;
use ocrbridge_local::pipeline::{Pipeline, PipelineOptions};
use ocrbridge_tests::{shared_dir, stack};
use vendor_sim::engine::EngineKind;

#[tokio::test]
async fn receipts_go_through_the_real_binaries() {
    receipts_through(false).await;
}

/// The same, with the binaries in Docker behind `sam local start-lambda` (SAM's Lambda
/// endpoint): the local runner's `--sam` option. Needs Docker; fails and says so without it.
#[tokio::test]
async fn receipts_go_through_sam_local_start_lambda() {
    receipts_through(true).await;
}

/// Identity documents through the real binaries: nothing a passport says about its holder (names,
/// document number, the MRZ) appears in any function's log — tracing lines and EMF metric
/// records alike — whether the document completed or went to review.
#[tokio::test]
async fn identity_documents_leave_no_personal_data_in_the_functions_logs() {
    let s = stack().await;
    let p = Pipeline::start_at(s.clients.clone(), &s.stack, binaries(false), &s.endpoint)
        .await
        .unwrap();
    let pack = root().join("bench/packs/default/ids");
    // One that completes, one with a broken check digit, one expired (review reasons logged).
    let names = ["passport-001", "passport-003", "idcard-004"];
    let mut personal: Vec<String> = Vec::new();
    for name in names {
        let truth: serde_json::Value = serde_json::from_slice(
            &std::fs::read(pack.join(format!("{name}.truth.json"))).unwrap(),
        )
        .unwrap();
        for field in ["surname", "given_names", "document_number"] {
            personal.push(truth["fields"][field].as_str().unwrap().to_owned());
        }
        personal.extend(
            truth["fields"]["mrz"]
                .as_str()
                .unwrap()
                .lines()
                .map(|l| l.trim_end_matches('<').to_owned()),
        );
        s.put(
            &format!("ids/{name}.png"),
            std::fs::read(pack.join(format!("{name}.png"))).unwrap(),
            Some("image/png"),
        )
        .await;
    }
    let keys: Vec<String> = names.iter().map(|n| format!("ids/{n}.png")).collect();
    let settled: Vec<(String, JobState)> = until_settled(&s, &p, &keys)
        .await
        .into_iter()
        .map(|(key, job)| (key, job.state))
        .collect();
    assert_eq!(
        settled.len(),
        names.len(),
        "not settled in time: {settled:?}"
    );
    assert!(
        settled.contains(&("ids/passport-003.png".to_owned(), JobState::NeedsReview)),
        "{settled:?}"
    );
    let binaries = p.binaries.as_ref().unwrap();
    let mut lines = 0;
    for function in binaries.all() {
        let log = std::fs::read_to_string(&function.log).unwrap();
        lines += log.lines().count();
        for value in &personal {
            for word in value.split_whitespace().filter(|w| w.len() >= 4) {
                assert!(
                    !log.contains(word),
                    "{} logged {word:?} (of {value:?}): {}",
                    function.name,
                    function.log.display()
                );
            }
        }
    }
    assert!(lines > 20, "the functions logged: {lines} lines");
}

async fn receipts_through(sam_lambda: bool) {
    let s = stack().await;
    let p = Pipeline::start_at(
        s.clients.clone(),
        &s.stack,
        binaries(sam_lambda),
        &s.endpoint,
    )
    .await
    .unwrap();
    let names = ["000", "004", "030"];
    for name in names {
        let bytes =
            std::fs::read(shared_dir().join(format!("corpus/sroie-dev/{name}.jpg"))).unwrap();
        s.put(
            &format!("receipts/sroie/{name}.jpg"),
            bytes,
            Some("image/jpeg"),
        )
        .await;
    }
    let keys: Vec<String> = names
        .iter()
        .map(|n| format!("receipts/sroie/{n}.jpg"))
        .collect();
    let done: Vec<(String, JobId)> = until_settled(&s, &p, &keys)
        .await
        .into_iter()
        .map(|(key, job)| (key, job.id))
        .collect();
    assert_eq!(done.len(), names.len(), "not settled in time: {done:?}");
    let mut totals = 0;
    for (key, id) in &done {
        let job = s.ledger.get_job(id).await.unwrap().unwrap();
        let result_key = job
            .result_key
            .clone()
            .unwrap_or_else(|| panic!("{key}: no stored result"));
        let body = s
            .clients
            .s3
            .get_object()
            .bucket(&s.config.results_bucket)
            .key(&result_key)
            .send()
            .await
            .unwrap();
        let document: serde_json::Value =
            serde_json::from_slice(&body.body.collect().await.unwrap().into_bytes()).unwrap();
        ocrbridge::document::validate_json(&document).unwrap();
        assert!(
            document["pages"][0]["blocks"][0]["lines"]
                .as_array()
                .is_some_and(|l| l.len() > 5),
            "{key}: OCR text"
        );
        if document["fields"]["total"]["value"].is_string() {
            totals += 1;
        }
    }
    assert!(
        totals >= 2,
        "fields present: {totals} totals of {}",
        done.len()
    );
    let binaries = p.binaries.as_ref().unwrap();
    // The documents can settle through webhooks before the schedule comes round: sweep once, as
    // the schedule would, so every binary has run.
    let sweep = binaries
        .reconcile
        .invoke(&serde_json::json!({"source": "aws.scheduler", "detail-type": "Scheduled Event"}))
        .await
        .unwrap();
    assert_eq!(sweep["errors"], 0, "{sweep}");
    for function in binaries.all() {
        eprintln!("{}: init {:?} ms", function.name, function.init_durations());
        assert!(
            function.was_invoked(),
            "{} was not invoked (log {})",
            function.name,
            function.log.display()
        );
    }
}

/// Runs the pipeline (its event sources polling, as Lambda's do) until every upload at `keys`
/// has a job that settled (`Completed` or `NeedsReview`), or three minutes pass; returns those
/// that did, with their jobs.
async fn until_settled(
    s: &ocrbridge_tests::TestStack,
    p: &Pipeline,
    keys: &[String],
) -> Vec<(String, ocrbridge::job::Job)> {
    let started = Instant::now();
    let stop = AtomicBool::new(false);
    let watch = async {
        let mut settled = Vec::new();
        while settled.len() < keys.len() && started.elapsed() < Duration::from_secs(180) {
            settled.clear();
            for key in keys {
                let Some(id) = job_id_of(&s.ledger, &s.config.documents_bucket, key).await else {
                    continue;
                };
                let job = s.ledger.get_job(&id).await.unwrap().unwrap();
                if matches!(job.state, JobState::Completed | JobState::NeedsReview) {
                    settled.push((key.clone(), job));
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        stop.store(true, Ordering::Relaxed);
        settled
    };
    let ((), settled) = tokio::join!(p.run_until(&stop), watch);
    settled
}

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The pipeline on the functions' debug binaries (under the RIE, or SAM's `start-lambda`), with
/// Tesseract, one at a time, reconciling often.
fn binaries(sam_lambda: bool) -> PipelineOptions {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root().join("target"));
    PipelineOptions {
        engine: EngineKind::Tesseract,
        binaries: Some(target.join("debug")),
        sam_lambda,
        concurrency: 1,
        reconcile_every: Duration::from_secs(5),
        submitted_stale: Duration::from_secs(15),
        ..PipelineOptions::default()
    }
}

/// Issue #29 through the real binaries: `VENDOR_ROUTES` and the second vendor's settings under
/// its name reach the functions through their environment, as in a deployed stack. The first
/// vendor is down; every document is read once, by the second, and parse and reconcile ask the
/// second about its jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_fails_over_through_the_real_binaries() {
    let s = stack().await;
    let p = Pipeline::start_at(
        s.clients.clone(),
        &s.stack,
        PipelineOptions {
            fallback: Some(ocrbridge_local::pipeline::FallbackVendor {
                vendor: ocrbridge::vendors::select::VendorKind::Azure,
                routes: "receipt=sim,azure".into(),
            }),
            breaker: Some(ocrbridge::breaker::BreakerPolicy {
                min_calls: 2,
                ..ocrbridge_local::pipeline::local_breaker()
            }),
            ..binaries(false)
        },
        &s.endpoint,
    )
    .await
    .unwrap();
    ocrbridge_tests::set_faults(&p.sim, serde_json::json!({"rates": {"server_error": 1.0}})).await;
    let keys: Vec<String> = (0..3).map(|n| format!("receipts/routed-{n}.pdf")).collect();
    for (n, key) in keys.iter().enumerate() {
        let bytes = ocrbridge_tests::text_pdf(&[
            &format!("ROUTED SHOP {n}"),
            "Date: 14/11/2026",
            "Total: 8.00",
        ]);
        s.put(key, bytes, None).await;
    }
    let done = until_settled(&s, &p, &keys).await;
    assert_eq!(done.len(), keys.len(), "not settled in time: {done:?}");
    for (key, job) in &done {
        assert_eq!(job.vendor.as_deref(), Some("azure"), "{key}: {job:?}");
    }
    let billed = |stats: serde_json::Value| stats["billed_documents"].as_u64().unwrap_or(0);
    assert_eq!(billed(ocrbridge_tests::sim_stats(&p.sim).await), 0);
    let second = p.fallback_sim.as_ref().expect("a second vendor");
    assert_eq!(billed(ocrbridge_tests::sim_stats(second).await), 3);
}
