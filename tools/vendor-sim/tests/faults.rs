//! Every fault, observed from the client side (or by the webhook receiver).

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;
use vendor_sim::webhooks::generate_secret;

fn always(fault: &str) -> Value {
    json!({ "seed": 1, "rates": { fault: 1.0 } })
}

async fn submitted_id(sim: &vendor_sim::RunningSim, key: Option<&str>) -> String {
    let response = upload(sim, b"some document".to_vec(), "receipt", key).await;
    assert_eq!(response.status(), 202);
    response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_truncated_response_is_a_2xx_whose_body_never_arrives_but_the_job_exists() {
    let sim = sim(|_| {}).await;
    put_faults(&sim, always("truncated_response")).await;
    let response = upload_as(&sim, b"doc".to_vec(), "job-t", None).await;
    assert_eq!(response.status(), 202, "the status line and headers arrive");
    let body = response.bytes().await;
    assert!(body.is_err(), "the body breaks off: {body:?}");
    let s = stats(&sim).await;
    assert_eq!(s["faults_injected"]["truncated_response"], 1);
    assert_eq!(s["billed_documents"], 1, "accepted and billed: {s}");
    let (_, refs) = get_json(&sim, "/admin/external-refs").await;
    assert_eq!(refs["job-t"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn throttle_answers_429_with_retry_after() {
    let sim = sim(|_| {}).await;
    put_faults(
        &sim,
        json!({ "seed": 1, "rates": { "throttle": 1.0 }, "retry_after_secs": 7 }),
    )
    .await;
    let response = upload(&sim, b"x".to_vec(), "receipt", None).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let s = stats(&sim).await;
    assert_eq!(s["faults_injected"]["throttle"], 1);
    assert_eq!(s["billed_documents"], 0);
}

#[tokio::test]
async fn the_token_bucket_limits_requests_per_second() {
    let sim = sim(|_| {}).await;
    put_faults(
        &sim,
        json!({ "rate_limit_rps": 2.0, "rate_limit_burst": 2.0 }),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = client()
            .get(format!("{}/v1/documents/doc_none", sim.base_url()))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            let retry_after: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry_after >= 1);
        }
        statuses.push(r.status().as_u16());
    }
    assert_eq!(&statuses[..2], &[404, 404], "the burst passes");
    assert!(statuses[2..].contains(&429), "{statuses:?}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let later = client()
        .get(format!("{}/v1/documents/doc_none", sim.base_url()))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(later.status(), 404, "the bucket refills");
    assert!(
        stats(&sim).await["faults_injected"]["rate_limited"]
            .as_u64()
            .unwrap()
            >= 1
    );
}

#[tokio::test]
async fn server_errors_are_500_502_or_503() {
    let sim = sim(|_| {}).await;
    put_faults(&sim, always("server_error")).await;
    for _ in 0..6 {
        let status = upload(&sim, b"x".to_vec(), "receipt", None)
            .await
            .status()
            .as_u16();
        assert!([500, 502, 503].contains(&status), "{status}");
    }
    assert_eq!(stats(&sim).await["billed_documents"], 0);
}

#[tokio::test]
async fn slow_responses_outlast_the_client_timeout() {
    let sim = sim(|_| {}).await;
    put_faults(
        &sim,
        json!({ "seed": 1, "rates": { "slow": 1.0 }, "slow_delay_ms": 1500 }),
    )
    .await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = upload_with(&impatient, &sim, b"x".to_vec(), "receipt", Some("slow-1"))
        .await
        .expect_err("the client times out");
    assert!(err.is_timeout(), "{err:?}");
    // The request is only handled after the delay; the client that gave up created nothing.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    put_faults(&sim, json!({})).await;
    let (_, found) = get_json(&sim, "/v1/documents?idempotency_key=slow-1").await;
    assert_eq!(found["data"], json!([]));
    let s = stats(&sim).await;
    assert_eq!(s["faults_injected"]["slow"], 1);
    assert_eq!(s["billed_documents"], 0);
}

#[tokio::test]
async fn accept_then_drop_creates_the_job_but_sends_no_response() {
    let sim = sim(|_| {}).await;
    put_faults(&sim, always("drop")).await;
    let err = upload_with(&client(), &sim, b"x".to_vec(), "receipt", Some("drop-1"))
        .await
        .expect_err("the connection closes without a response");
    assert!(
        !err.is_timeout(),
        "a dropped connection, not a timeout: {err:?}"
    );
    put_faults(&sim, json!({})).await;
    // The vendor has it: a client that asks by its idempotency key finds the job.
    let (_, found) = get_json(&sim, "/v1/documents?idempotency_key=drop-1").await;
    let jobs = found["data"].as_array().unwrap();
    assert_eq!(jobs.len(), 1);
    wait_final(&sim, jobs[0]["id"].as_str().unwrap()).await;
    let s = stats(&sim).await;
    assert_eq!(s["billed_documents"], 1);
    assert_eq!(s["faults_injected"]["drop"], 1);
}

async fn with_webhooks(faults: Value) -> (vendor_sim::RunningSim, Receiver, String) {
    let (receiver, url) = receiver().await;
    let secret = generate_secret();
    let sim = sim(|c| {
        c.webhook_url = Some(url);
        c.webhook_secrets = vec![secret.clone()];
    })
    .await;
    put_faults(&sim, faults).await;
    (sim, receiver, secret)
}

#[tokio::test]
async fn duplicate_webhooks_repeat_the_same_id() {
    let (sim, receiver, secret) = with_webhooks(always("duplicate_webhook")).await;
    submitted_id(&sim, None).await;
    let all = receiver
        .wait_for(Duration::from_secs(10), |d| d.len() >= 4)
        .await;
    for status in ["processing", "succeeded"] {
        let copies: Vec<_> = all.iter().filter(|d| d.status() == status).collect();
        assert_eq!(copies.len(), 2, "{status}");
        assert_eq!(copies[0].id, copies[1].id);
        assert_eq!(copies[0].body, copies[1].body);
    }
    for d in &all {
        verify(&secret, d, now_unix(), 300).unwrap();
    }
    assert_eq!(stats(&sim).await["webhooks_sent"]["duplicate"], 2);
}

#[tokio::test]
async fn out_of_order_delivers_processing_after_succeeded() {
    let (sim, receiver, _) = with_webhooks(always("out_of_order")).await;
    submitted_id(&sim, None).await;
    let all = receiver
        .wait_for(Duration::from_secs(10), |d| d.len() >= 2)
        .await;
    let statuses: Vec<String> = all.iter().map(|d| d.status()).collect();
    assert_eq!(statuses, ["succeeded", "processing"]);
    assert_eq!(stats(&sim).await["webhooks_sent"]["out_of_order"], 1);
}

#[tokio::test]
async fn delayed_webhooks_arrive_late() {
    let (sim, receiver, _) = with_webhooks(json!({
        "seed": 1, "rates": { "delayed_webhook": 1.0 }, "webhook_delay_ms": 1200
    }))
    .await;
    let sent = Instant::now();
    let id = submitted_id(&sim, None).await;
    wait_final(&sim, &id).await;
    assert!(receiver.all().is_empty(), "nothing before the delay");
    let all = receiver
        .wait_for(Duration::from_secs(10), |d| d.len() >= 2)
        .await;
    assert!(all
        .iter()
        .all(|d| d.at.duration_since(sent) >= Duration::from_millis(1200)));
}

#[tokio::test]
async fn lost_webhooks_never_arrive_but_polling_sees_the_job() {
    let (sim, receiver, _) = with_webhooks(always("lost_webhook")).await;
    let id = submitted_id(&sim, None).await;
    assert_eq!(wait_final(&sim, &id).await["status"], "succeeded");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.all().is_empty());
    assert_eq!(stats(&sim).await["faults_injected"]["lost_webhook"], 2);
}

#[tokio::test]
async fn forged_signatures_precede_the_genuine_delivery_under_its_id() {
    let (sim, receiver, secret) = with_webhooks(always("bad_signature")).await;
    submitted_id(&sim, None).await;
    let all = receiver
        .wait_for(Duration::from_secs(10), |d| d.len() >= 4)
        .await;
    for status in ["processing", "succeeded"] {
        let copies: Vec<_> = all.iter().filter(|d| d.status() == status).collect();
        assert_eq!(copies.len(), 2);
        assert_eq!(copies[0].id, copies[1].id);
        assert_eq!(
            verify(&secret, copies[0], now_unix(), 300),
            Err("no signature matches"),
            "the forgery comes first"
        );
        verify(&secret, copies[1], now_unix(), 300).unwrap();
    }
    assert_eq!(stats(&sim).await["webhooks_sent"]["forged"], 2);
}

#[tokio::test]
async fn replays_carry_a_valid_but_stale_signature() {
    let (sim, receiver, secret) = with_webhooks(json!({
        "seed": 1, "rates": { "replay": 1.0 }, "replay_age_ms": 600000
    }))
    .await;
    submitted_id(&sim, None).await;
    let all = receiver
        .wait_for(Duration::from_secs(10), |d| d.len() >= 4)
        .await;
    let now = now_unix();
    let (stale, fresh): (Vec<_>, Vec<_>) = all
        .iter()
        .partition(|d| now - d.timestamp.parse::<i64>().unwrap() > 300);
    assert_eq!(stale.len(), 2);
    assert_eq!(fresh.len(), 2);
    for d in stale {
        assert_eq!(
            verify(&secret, d, now, 300),
            Err("timestamp outside tolerance")
        );
        verify(&secret, d, now, 100_000).expect("validly signed, just old");
        assert!(fresh.iter().any(|f| f.id == d.id && f.body == d.body));
    }
}

#[tokio::test]
async fn drift_changes_the_result_shape() {
    let sim = sim(|_| {}).await;
    put_faults(&sim, always("drift")).await;
    let mut kinds = std::collections::BTreeSet::new();
    // The kind is drawn per job (its id is random): upload until all three were seen, or 40
    // documents — 12 missed one kind about 2% of the time (3 x (2/3)^12); 40 miss one with a
    // chance of 3 x (2/3)^40, about 3e-7.
    let mut uploaded = 0;
    for i in 0..40 {
        if kinds.len() == 3 {
            break;
        }
        uploaded += 1;
        let response = upload(&sim, format!("doc {i}").into_bytes(), "receipt", None).await;
        let id = response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        wait_final(&sim, &id).await;
        let (_, result) = get_json(&sim, &format!("/v1/documents/{id}/result")).await;
        let page = &result["pages"][0];
        let line = &page["lines"][0];
        if line.get("score").is_some() && line.get("confidence").is_none() {
            kinds.insert("renamed_field");
        } else if page.get("width").is_none() {
            kinds.insert("missing_field");
        } else if page["path"] == "neural_v2" {
            kinds.insert("new_enum_value");
        } else {
            panic!("no drift in {result}");
        }
    }
    assert_eq!(kinds.len(), 3, "every drift kind shows up: {kinds:?}");
    assert_eq!(stats(&sim).await["faults_injected"]["drift"], uploaded);
}

#[tokio::test]
async fn failed_jobs_report_an_error_and_bill_no_pages() {
    let sim = sim(|_| {}).await;
    put_faults(&sim, always("failed_job")).await;
    let id = submitted_id(&sim, None).await;
    let done = wait_final(&sim, &id).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"]["code"], "processing_failed");
    let (status, result) = get_json(&sim, &format!("/v1/documents/{id}/result")).await;
    assert_eq!(status, 200);
    assert_eq!(result["status"], "failed");
    let s = stats(&sim).await;
    assert_eq!(s["billed_documents"], 1);
    assert_eq!(s["billed_pages"], 0);
}

#[tokio::test]
async fn results_are_not_ready_until_the_job_succeeds() {
    let sim = sim(|c| c.processing_delay = Duration::from_millis(800)).await;
    let id = submitted_id(&sim, None).await;
    let (status, body) = get_json(&sim, &format!("/v1/documents/{id}/result")).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "not_ready");
    wait_final(&sim, &id).await;
    let (status, _) = get_json(&sim, &format!("/v1/documents/{id}/result")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_same_seed_injects_the_same_faults() {
    let run = || async {
        let sim = sim(|_| {}).await;
        put_faults(&sim, json!({ "seed": 99, "rates": { "throttle": 0.5 } })).await;
        let mut statuses = Vec::new();
        for i in 0..16 {
            statuses.push(
                upload(&sim, format!("d{i}").into_bytes(), "receipt", None)
                    .await
                    .status()
                    .as_u16(),
            );
        }
        statuses
    };
    let a = run().await;
    assert_eq!(a, run().await);
    assert!(a.contains(&429) && a.contains(&202), "{a:?}");
}

/// Accept-then-5xx: the gateway's 502/504 (its own page, not the vendor's error shape) comes
/// after the job was made and billed — an error a client must not take for "not accepted".
#[tokio::test]
async fn accept_then_5xx_makes_the_job_and_answers_a_gateway_error() {
    let sim = sim(|_| {}).await;
    put_faults(&sim, always("accept_then_5xx")).await;
    let response = upload_as(&sim, b"doc".to_vec(), "job-g", None).await;
    assert!(
        [502, 504].contains(&response.status().as_u16()),
        "{}",
        response.status()
    );
    assert_eq!(response.headers()["content-type"], "text/html");
    let s = stats(&sim).await;
    assert_eq!(s["faults_injected"]["accept_then_5xx"], 1);
    assert_eq!(s["billed_documents"], 1, "made and billed: {s}");
    let (_, refs) = get_json(&sim, "/admin/external-refs").await;
    assert_eq!(refs["job-g"].as_array().unwrap().len(), 1);
}

/// Accept-then-hang: the job is made, and the answer comes only after the client gave up.
#[tokio::test]
async fn accept_then_hang_makes_the_job_and_answers_after_the_client_gave_up() {
    let sim = sim(|_| {}).await;
    put_faults(
        &sim,
        json!({ "seed": 1, "rates": { "accept_then_hang": 1.0 }, "slow_delay_ms": 1500 }),
    )
    .await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = upload_with(&impatient, &sim, b"x".to_vec(), "receipt", Some("hang-1"))
        .await
        .expect_err("the client times out");
    assert!(err.is_timeout(), "{err:?}");
    let (_, found) = get_json(&sim, "/v1/documents?idempotency_key=hang-1").await;
    assert_eq!(found["data"].as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(stats(&sim).await["billed_documents"], 1);
}

/// A refused key creates nothing and bills nothing.
#[tokio::test]
async fn auth_refused_answers_401_and_creates_nothing() {
    let sim = sim(|_| {}).await;
    put_faults(&sim, always("auth_refused")).await;
    let response = upload_as(&sim, b"doc".to_vec(), "job-a", None).await;
    assert_eq!(response.status(), 401);
    let s = stats(&sim).await;
    assert_eq!(s["faults_injected"]["auth_refused"], 1);
    assert_eq!(s["billed_documents"], 0);
}

/// A result the vendor no longer keeps: the job's status and result are "not found", though the
/// job finished (and was billed).
#[tokio::test]
async fn result_expired_forgets_the_finished_job() {
    let sim = sim(|_| {}).await;
    put_faults(&sim, always("result_expired")).await;
    let id = submitted_id(&sim, None).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = get_json(&sim, &format!("/v1/documents/{id}")).await;
        if status == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "never forgotten");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = get_json(&sim, &format!("/v1/documents/{id}/result")).await;
    assert_eq!(status, 404);
    assert_eq!(stats(&sim).await["faults_injected"]["result_expired"], 1);
}

/// An oversized result is padded to the configured size, whatever it holds.
#[tokio::test]
async fn oversized_results_are_padded_to_their_size() {
    let sim = sim(|_| {}).await;
    put_faults(
        &sim,
        json!({ "seed": 1, "rates": { "oversized_result": 1.0 }, "oversized_result_bytes": 300000 }),
    )
    .await;
    let id = submitted_id(&sim, None).await;
    wait_final(&sim, &id).await;
    let response = client()
        .get(format!("{}/v1/documents/{id}/result", sim.base_url()))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    let body = response.bytes().await.unwrap();
    assert!(body.len() > 300_000, "{}", body.len());
}

/// Forced faults strike their subject the first time (a refused key, twice), whatever the rates.
#[tokio::test]
async fn forced_faults_strike_their_subject() {
    let sim = sim(|_| {}).await;
    put_faults(
        &sim,
        json!({ "seed": 1, "force": { "auth_refused": [{ "subject": "job-f" }] } }),
    )
    .await;
    assert_eq!(
        upload_as(&sim, b"a".to_vec(), "job-other", None)
            .await
            .status(),
        202
    );
    // A refused key is refused again after the client's one refresh; then it is let in.
    for _ in 0..2 {
        assert_eq!(
            upload_as(&sim, b"b".to_vec(), "job-f", None).await.status(),
            401
        );
    }
    assert_eq!(
        upload_as(&sim, b"b".to_vec(), "job-f", None).await.status(),
        202,
        "the forced refusals are spent"
    );
}
