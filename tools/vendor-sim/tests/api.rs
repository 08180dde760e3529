//! The vendor API as a client sees it: auth, idempotency, lookup, webhooks, rotation, billing.

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{json, Value};
use support::*;
use vendor_sim::webhooks::generate_secret;
use vendor_sim::Idempotency;

#[tokio::test]
async fn bearer_auth_is_required_and_keys_can_be_rotated() {
    let sim = sim(|_| {}).await;
    let url = format!("{}/v1/documents/doc_x", sim.base_url());
    let no_auth = client().get(&url).send().await.unwrap();
    assert_eq!(no_auth.status(), 401);
    let wrong = client()
        .get(&url)
        .bearer_auth("sk_wrong_key_000000")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);

    // Add a key through the admin API, use it, revoke it.
    let created: Value = client()
        .post(format!("{}/admin/api-keys", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let with_new = client().get(&url).bearer_auth(&key).send().await.unwrap();
    assert_eq!(
        with_new.status(),
        404,
        "authenticated; the document just does not exist"
    );
    let revoked = client()
        .post(format!("{}/admin/api-keys/revoke", sim.base_url()))
        .json(&serde_json::json!({ "key": key }))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    assert_eq!(
        client()
            .get(&url)
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );

    let s = stats(&sim).await;
    assert_eq!(s["unauthorized"], 1);
    assert_eq!(s["forbidden"], 2);
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_job_and_bills_once() {
    let sim = sim(|_| {}).await;
    let first = upload(&sim, b"document one".to_vec(), "receipt", Some("key-1")).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["status"], "queued");

    let again = upload(&sim, b"document one".to_vec(), "receipt", Some("key-1")).await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);

    let conflict = upload(&sim, b"document one".to_vec(), "invoice", Some("key-1")).await;
    assert_eq!(conflict.status(), 409);

    // "Did you get my submission?"
    let (status, found) = get_json(&sim, "/v1/documents?idempotency_key=key-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["data"].as_array().unwrap().len(), 1);
    assert_eq!(found["data"][0]["id"], first["id"]);
    let (_, none) = get_json(&sim, "/v1/documents?idempotency_key=never-sent").await;
    assert_eq!(none["data"], json!([]));

    let done = wait_final(&sim, first["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded");
    let s = stats(&sim).await;
    assert_eq!(s["accepted_submissions"], 1);
    assert_eq!(s["idempotent_replays"], 1);
    assert_eq!(s["idempotency_conflicts"], 1);
    assert_eq!(s["billed_documents"], 1);
    assert_eq!(s["billed_pages"], 1);
}

#[tokio::test]
async fn without_idempotency_a_repeat_is_a_second_billed_job_and_is_counted_as_a_duplicate() {
    let sim = sim(|c| c.idempotency = Idempotency::None).await;
    let first = upload_as(&sim, b"doc".to_vec(), "job-a", Some("key-a")).await;
    let again = upload_as(&sim, b"doc".to_vec(), "job-a", Some("key-a")).await;
    let other = upload_as(&sim, b"doc".to_vec(), "job-b", Some("key-b")).await;
    for r in [&first, &again, &other] {
        assert_eq!(r.status(), 202);
        assert!(r.headers().get("idempotent-replayed").is_none());
    }
    let first: Value = first.json().await.unwrap();
    let again: Value = again.json().await.unwrap();
    assert_ne!(first["id"], again["id"], "the key is ignored");
    let s = stats(&sim).await;
    assert_eq!(s["submit_requests"], 3);
    assert_eq!(s["accepted_submissions"], 3);
    assert_eq!(s["billed_documents"], 3);
    assert_eq!(s["duplicate_jobs"], 1, "job-a was charged twice: {s}");
    // No way to ask "did you get my submission?", like Azure and Mindee.
    let (status, body) = get_json(&sim, "/v1/documents?idempotency_key=key-a").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "unsupported");
    // The ground truth the client cannot read.
    let (_, refs) = get_json(&sim, "/admin/external-refs").await;
    assert_eq!(refs["job-a"], json!([first["id"], again["id"]]));
    assert_eq!(refs["job-b"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_expiring_key_is_forgotten_after_its_ttl() {
    let sim = sim(|c| c.idempotency = Idempotency::Expiring { ttl_ms: 300 }).await;
    let first: Value = upload_as(&sim, b"doc".to_vec(), "job-a", Some("key-a"))
        .await
        .json()
        .await
        .unwrap();
    let replay = upload_as(&sim, b"doc".to_vec(), "job-a", Some("key-a")).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let (_, found) = get_json(&sim, "/v1/documents?idempotency_key=key-a").await;
    assert_eq!(found["data"][0]["id"], first["id"]);

    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, forgotten) = get_json(&sim, "/v1/documents?idempotency_key=key-a").await;
    assert_eq!(forgotten["data"], json!([]), "the lookup forgets too");
    let later: Value = upload_as(&sim, b"doc".to_vec(), "job-a", Some("key-a"))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(later["id"], first["id"]);
    let s = stats(&sim).await;
    assert_eq!(s["billed_documents"], 2);
    assert_eq!(s["duplicate_jobs"], 1);
    assert_eq!(s["idempotent_replays"], 1);
}

#[tokio::test]
async fn the_idempotency_mode_can_be_switched_at_run_time() {
    let sim = sim(|_| {}).await;
    let response = client()
        .put(format!("{}/admin/idempotency", sim.base_url()))
        .json(&json!({"mode": "none"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, mode) = get_json(&sim, "/admin/idempotency").await;
    assert_eq!(mode, json!({"mode": "none"}));
    upload_as(&sim, b"doc".to_vec(), "job-a", Some("key-a")).await;
    upload_as(&sim, b"doc".to_vec(), "job-a", Some("key-a")).await;
    assert_eq!(stats(&sim).await["duplicate_jobs"], 1);
    let bad = client()
        .put(format!("{}/admin/idempotency", sim.base_url()))
        .json(&json!({"mode": "sometimes"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn concurrent_submissions_with_one_key_create_one_job() {
    let sim = sim(|_| {}).await;
    let responses = futures::future::join_all(
        (0..8).map(|_| upload(&sim, b"same".to_vec(), "receipt", Some("race-key"))),
    )
    .await;
    let mut ids = Vec::new();
    for r in responses {
        assert_eq!(r.status(), 202);
        ids.push(r.json::<Value>().await.unwrap()["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1);
    assert_eq!(stats(&sim).await["billed_documents"], 1);
}

#[tokio::test]
async fn documents_can_be_submitted_by_presigned_url() {
    // A stand-in for S3: serves the document whatever the query string (the presigned signature).
    let app = axum::Router::new().route(
        "/bucket/receipts/r.jpg",
        axum::routing::get(|| async { b"image bytes".to_vec() }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let sim = sim(|_| {}).await;
    let submit = |query: &'static str| {
        let body = json!({
            "url": format!("{origin}/bucket/receipts/r.jpg?X-Amz-Signature={query}"),
            "profile": "receipt",
            "external_ref": "job-42",
        });
        let url = format!("{}/v1/documents", sim.base_url());
        async move {
            client()
                .post(url)
                .bearer_auth(API_KEY)
                .header("Idempotency-Key", "job-42")
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let first = submit("aaa").await;
    assert_eq!(first.status(), 202);
    // A retry re-signs the URL: still the same request.
    let retry = submit("bbb").await;
    assert_eq!(retry.status(), 202);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let (_, by_ref) = get_json(&sim, "/v1/documents?external_ref=job-42").await;
    assert_eq!(by_ref["data"].as_array().unwrap().len(), 1);

    let missing = client()
        .post(format!("{}/v1/documents", sim.base_url()))
        .bearer_auth(API_KEY)
        .json(&json!({ "url": format!("{origin}/nope"), "profile": "receipt" }))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 422);
    assert_eq!(stats(&sim).await["billed_documents"], 1);
}

#[tokio::test]
async fn bad_requests_are_refused_with_reasons() {
    let sim = sim(|c| c.max_document_bytes = 16).await;
    let unknown = upload(&sim, b"x".to_vec(), "passport", None).await;
    assert_eq!(unknown.status(), 422);
    assert_eq!(
        unknown.json::<Value>().await.unwrap()["error"]["code"],
        "unknown_profile"
    );
    let big = upload(&sim, vec![7; 17], "receipt", None).await;
    assert_eq!(big.status(), 413);
    let empty = upload(&sim, vec![], "receipt", None).await;
    assert_eq!(empty.status(), 422);
    assert_eq!(stats(&sim).await["billed_documents"], 0);
}

#[tokio::test]
async fn webhooks_are_signed_per_standard_webhooks_for_each_status() {
    let (receiver, url) = receiver().await;
    let secret = generate_secret();
    let sim = sim(|c| {
        c.webhook_url = Some(url);
        c.webhook_secrets = vec![secret.clone()];
    })
    .await;
    let id = upload(&sim, b"doc".to_vec(), "receipt", None)
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let all = receiver
        .wait_for(Duration::from_secs(10), |d| d.len() >= 2)
        .await;
    let statuses: Vec<String> = all.iter().map(|d| d.status()).collect();
    assert_eq!(statuses, ["processing", "succeeded"]);
    for d in &all {
        verify(&secret, d, now_unix(), 300).expect("independent verifier accepts");
        assert_eq!(d.json()["type"], "document.status_changed");
        assert_eq!(d.json()["data"]["id"], id.as_str());
        assert!(d.id.starts_with("msg_"));
    }
    assert_ne!(all[0].id, all[1].id, "each event has its own id");
    // A different secret does not verify: the check above is not vacuous.
    assert!(verify(&generate_secret(), &all[0], now_unix(), 300).is_err());
    assert_eq!(stats(&sim).await["webhooks_sent"]["genuine"], 2);
}

#[tokio::test]
async fn during_rotation_every_delivery_is_signed_with_both_secrets() {
    let (receiver, url) = receiver().await;
    let old = generate_secret();
    let new = generate_secret();
    let sim = sim(|c| {
        c.webhook_url = Some(url);
        c.webhook_secrets = vec![old.clone()];
    })
    .await;
    let response = client()
        .put(format!("{}/admin/webhook", sim.base_url()))
        .json(&json!({ "secrets": [old, new] }))
        .send()
        .await
        .unwrap();
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["signing_secrets"], 2);
    assert!(
        !view.to_string().contains("whsec_"),
        "secrets are never echoed"
    );

    upload(&sim, b"doc".to_vec(), "receipt", None).await;
    let all = receiver
        .wait_for(Duration::from_secs(10), |d| d.len() >= 2)
        .await;
    for d in &all {
        assert_eq!(d.signature.split(' ').count(), 2);
        verify(&old, d, now_unix(), 300).unwrap();
        verify(&new, d, now_unix(), 300).unwrap();
    }
    let bad = client()
        .put(format!("{}/admin/webhook", sim.base_url()))
        .json(&json!({ "secrets": ["not-a-whsec"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_the_same_id() {
    let (receiver, url) = receiver().await;
    *receiver.fail_first.lock().unwrap() = 2;
    let secret = generate_secret();
    let sim = sim(|c| {
        c.webhook_url = Some(url);
        c.webhook_secrets = vec![secret.clone()];
        c.webhook_retry_schedule = vec![Duration::from_millis(50); 4];
    })
    .await;
    upload(&sim, b"doc".to_vec(), "receipt", None).await;
    // Two events, the first two attempts refused: four attempts in all.
    let all = receiver
        .wait_for(Duration::from_secs(10), |d| d.len() >= 4)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all_now = receiver.all();
    assert_eq!(all_now.len(), 4, "no attempt after a success: {all_now:#?}");
    for status in ["processing", "succeeded"] {
        let attempts: Vec<_> = all.iter().filter(|d| d.status() == status).collect();
        assert!(!attempts.is_empty(), "{status} was delivered");
        assert!(
            attempts.iter().all(|d| d.id == attempts[0].id),
            "{status} kept its id"
        );
    }
    for d in &all {
        verify(&secret, d, now_unix(), 300).unwrap();
    }
    let s = stats(&sim).await;
    assert_eq!(s["webhook_attempts_failed"], 2);
    assert_eq!(
        s["webhooks_sent"]["genuine"], 2,
        "retries are not new deliveries"
    );
}
