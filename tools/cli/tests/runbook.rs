//! RUNBOOK.md's actions, run as an operator runs them — the `ocrbridge` binary against the local
//! stack — with the pipeline working in the background, and their effects checked: a vendor key
//! outage parks jobs (Held, dead-lettered), the key is fixed, `jobs retry` and `dlq redrive`
//! bring them to a final state without a second charge; `review approve|correct` completes jobs
//! in review; what must be refused is refused, with its exit code.

mod support;

use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ocrbridge::job::{Job, JobId, JobState};
use ocrbridge::queue::Queue;
use ocrbridge_local::pipeline::{Pipeline, PipelineOptions};
use ocrbridge_tests::{job_id_for, sim_stats, stack, text_pdf, TestStack};
use serde_json::Value;
use support::{env_file, json, ocrbridge};
use vendor_sim::engine::EngineKind;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn receipt(shop: &str, total: &str) -> Vec<u8> {
    text_pdf(&[
        shop,
        "Date: 14/11/2026",
        "Subtotal: 15.60",
        "Tax: 0.94",
        &format!("Total: {total}"),
    ])
}

/// Waits until `done` holds for the job, while the pipeline runs.
async fn until(s: &TestStack, id: &JobId, what: &str, done: impl Fn(&Job) -> bool) -> Job {
    let started = Instant::now();
    loop {
        if let Some(job) = s.ledger.get_job(id).await.unwrap() {
            if done(&job) {
                return job;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{id} never became {what}: {job:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn admin(p: &Pipeline, method: reqwest::Method, path: &str, body: Option<Value>) {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", p.sim.base_url()));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_runbook_action_does_what_it_says() {
    let s = stack().await;
    let p = Pipeline::start(
        s.clients.clone(),
        &s.stack,
        PipelineOptions {
            engine: EngineKind::Tesseract,
            ..PipelineOptions::default()
        },
    )
    .await
    .unwrap();
    let env = env_file(&s);
    let stop = AtomicBool::new(false);
    let script = async {
        // --- Vendor auth failures: the vendor stops accepting our key.
        let key = s
            .secret(&s.config.vendor_api_key_secret, "AWSCURRENT")
            .await;
        admin(
            &p,
            reqwest::Method::POST,
            "/admin/api-keys/revoke",
            Some(serde_json::json!({ "key": key })),
        )
        .await;
        let first = receipt("FIRST SHOP", "16.54");
        let second = receipt("SECOND SHOP", "16.54");
        s.put("receipts/first.pdf", first.clone(), None).await;
        let first_id = job_id_for(&first, "receipt");
        let held = |j: &Job| j.state == JobState::Held;
        until(&s, &first_id, "Held", held).await;
        s.put("receipts/second.pdf", second.clone(), None).await;
        let second_id = job_id_for(&second, "receipt");
        // The second waits out the pause, fails the same way, and is parked too.
        until(&s, &second_id, "Held", held).await;

        // Triage: the status screen and the DLQ say what happened.
        let status = json(&ocrbridge(&env, &["status", "--json"]).await);
        let held_count = status["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["state"] == "Held")
            .unwrap()["count"]
            .clone();
        assert_eq!(held_count, 2, "{status}");
        let dlq = json(&ocrbridge(&env, &["dlq", "list", "submit", "--json"]).await);
        assert_eq!(
            dlq["by_reason"][0]["reason_code"], "vendor_auth_failed",
            "{dlq}"
        );
        assert_eq!(dlq["by_reason"][0]["count"], 2);
        assert_eq!(dlq["by_reason"][0]["redrivable"], true);

        // The fix: the vendor knows our key again.
        admin(
            &p,
            reqwest::Method::POST,
            "/admin/api-keys",
            Some(serde_json::json!({ "key": key })),
        )
        .await;
        let dry = ocrbridge(&env, &["jobs", "retry", second_id.as_str()]).await;
        assert!(dry.status.success());
        assert!(
            stdout(&dry).contains("would go back to Queued"),
            "{}",
            stdout(&dry)
        );
        assert_eq!(
            s.ledger.get_job(&second_id).await.unwrap().unwrap().state,
            JobState::Held,
            "a dry run moves nothing"
        );
        // `jobs retry` brings the second to a final state…
        let retried = ocrbridge(&env, &["jobs", "retry", second_id.as_str(), "--apply"]).await;
        assert!(
            retried.status.success(),
            "{}",
            String::from_utf8_lossy(&retried.stderr)
        );
        let settled = |j: &Job| matches!(j.state, JobState::Completed | JobState::NeedsReview);
        until(&s, &second_id, "settled", settled).await;
        // …and redriving the DLQ the first (the second's message finds it settled: acknowledged).
        let redrive = ocrbridge(&env, &["dlq", "redrive", "submit", "--apply", "--json"]).await;
        assert!(
            redrive.status.success(),
            "{}",
            String::from_utf8_lossy(&redrive.stderr)
        );
        assert_eq!(json(&redrive)["moved"], 2);
        until(&s, &first_id, "settled", settled).await;
        assert_eq!(
            sim_stats(&p.sim).await["billed_documents"],
            2,
            "one charge per document"
        );

        // --- A message that would fail the same way stays where it is.
        Queue::new(s.clients.sqs.clone())
            .dead_letter(
                &s.config.submit_dlq_url,
                "not json",
                "malformed_message",
                "expected {\"job_id\": …}",
                "m-1",
            )
            .await
            .unwrap();
        let redrive =
            json(&ocrbridge(&env, &["dlq", "redrive", "submit", "--apply", "--json"]).await);
        assert_eq!(
            (redrive["moved"].clone(), redrive["staying"].clone()),
            (0.into(), 1.into())
        );

        // --- Review: a receipt whose total does not add up waits for a person.
        let wrong = receipt("THIRD SHOP", "19.90");
        s.put("receipts/wrong.pdf", wrong.clone(), None).await;
        let wrong_id = job_id_for(&wrong, "receipt");
        until(&s, &wrong_id, "NeedsReview", |j| {
            j.state == JobState::NeedsReview
        })
        .await;
        let listed = json(&ocrbridge(&env, &["review", "list", "--json"]).await);
        assert!(listed
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["job_id"] == wrong_id.as_str()));
        let corrected = ocrbridge(
            &env,
            &[
                "review",
                "correct",
                wrong_id.as_str(),
                "--set",
                "total=16.54",
                "--by",
                "ana",
            ],
        )
        .await;
        assert!(
            corrected.status.success(),
            "{}",
            String::from_utf8_lossy(&corrected.stderr)
        );
        let job = s.ledger.get_job(&wrong_id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Completed);
        let review: Value = serde_json::from_str(job.review.as_deref().unwrap()).unwrap();
        assert_eq!(
            review["corrections"]["total"]["vendor"], "19.90",
            "the vendor's value kept"
        );
        assert_eq!(review["corrections"]["total"]["corrected"], "16.54");
        assert_eq!(review["by"], "ana");

        // --- Refusals, with their exit codes.
        let unknown = ocrbridge(&env, &["jobs", "show", &format!("doc-{}", "0".repeat(40))]).await;
        assert_eq!(unknown.status.code(), Some(3));
        let again = ocrbridge(&env, &["review", "approve", wrong_id.as_str()]).await;
        assert_eq!(
            again.status.code(),
            Some(4),
            "a completed job is not in review"
        );
        let final_reason = ocrbridge(&env, &["jobs", "retry", wrong_id.as_str(), "--apply"]).await;
        assert_eq!(
            final_reason.status.code(),
            Some(4),
            "only retryable reasons move"
        );
        let bad_queue = ocrbridge(&env, &["dlq", "list", "parse"]).await;
        assert_eq!(bad_queue.status.code(), Some(2));

        // --- The story of a job, and the daily spot check.
        let shown = json(&ocrbridge(&env, &["jobs", "show", first_id.as_str(), "--json"]).await);
        let states: Vec<&str> = shown["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["state"].as_str().unwrap())
            .collect();
        assert!(
            states.windows(2).any(|w| w == ["Held", "Queued"]),
            "held, then sent back: {states:?}"
        );
        assert_eq!(
            shown["job"]["source"],
            format!("s3://{}/receipts/first.pdf", s.config.documents_bucket)
        );
        let spot = json(&ocrbridge(&env, &["spot-check", "--per-profile", "2", "--json"]).await);
        assert_eq!(spot["receipt"].as_array().unwrap().len(), 2, "{spot}");
        stop.store(true, Ordering::Relaxed);
    };
    tokio::join!(p.run_until(&stop), script);
}

/// RUNBOOK.md#rotation-failures: a new key the vendor refuses goes back to the previous one —
/// a dry run first, then `--apply`; the values are never printed; a second rollback undoes the
/// first; a secret with nothing to go back to is refused (exit 4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_new_key_is_rolled_back_to_the_previous_one() {
    let s = stack().await;
    let env = env_file(&s);
    let secret = s.config.vendor_api_key_secret.clone();
    let good = s.secret(&secret, "AWSCURRENT").await;
    let wrong = "sk_pasted_the_wrong_key_000000";
    s.put_secret(&secret, wrong).await;
    assert_eq!(s.secret(&secret, "AWSCURRENT").await, wrong);

    let dry = ocrbridge(&env, &["secrets", "rollback", "vendor-api-key"]).await;
    let said = stdout(&dry);
    assert!(dry.status.success(), "{said}");
    assert!(said.contains("--apply to do it"), "{said}");
    assert_eq!(
        s.secret(&secret, "AWSCURRENT").await,
        wrong,
        "a dry run changes nothing"
    );

    let applied = ocrbridge(&env, &["secrets", "rollback", "vendor-api-key", "--apply"]).await;
    let said = stdout(&applied);
    assert!(applied.status.success(), "{said}");
    assert_eq!(s.secret(&secret, "AWSCURRENT").await, good);
    assert_eq!(s.secret(&secret, "AWSPREVIOUS").await, wrong);
    let printed = format!("{said}{}", String::from_utf8_lossy(&applied.stderr));
    assert!(
        !printed.contains(&good) && !printed.contains(wrong),
        "{printed}"
    );

    // Undo: the refused key is current again.
    let undo = ocrbridge(
        &env,
        &["--json", "secrets", "rollback", "vendor-api-key", "--apply"],
    )
    .await;
    assert_eq!(json(&undo)["applied"], true);
    assert_eq!(s.secret(&secret, "AWSCURRENT").await, wrong);

    // The webhook secret was never rotated: nothing to go back to.
    let refused = ocrbridge(&env, &["secrets", "rollback", "webhook-secret", "--apply"]).await;
    assert_eq!(refused.status.code(), Some(4), "{}", stdout(&refused));
}
