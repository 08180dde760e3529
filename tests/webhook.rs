//! Webhook verification and secret rotation on the local stack, with the vendor simulator's
//! signed deliveries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use ocrbridge::job::{ContentHash, DocumentKey, Job, NewJob, Profile, SourceObject};
use ocrbridge::keyring::{Keyring, Secret, Stage};
use ocrbridge::metrics::Metrics;
use ocrbridge::queue::{Queue, ResultNotice, REASON_CODE_ATTRIBUTE};
use ocrbridge::signature::sign_standard;
use ocrbridge::time::UnixMillis;
use ocrbridge::vendors::sim::{http_client, HttpTimeouts, SimVendor};
use ocrbridge_tests::{stack, unique_name, TestStack};
use rotate::{Rotate, RotationEvent, Step};
use serde_json::{json, Value};
use vendor_sim::engine::EngineKind;
use vendor_sim::{RunningSim, SimConfig};
use webhook::{Webhook, WebhookConfig};

struct World {
    s: TestStack,
    webhook: Arc<Webhook>,
}

fn whsec() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes().repeat(2))
    )
}

async fn world() -> World {
    let s = stack().await;
    // Start from a real whsec_ secret (the template's generated placeholder is for operators
    // to replace with the vendor's).
    s.clients
        .secrets()
        .put_secret_value()
        .secret_id(&s.config.webhook_secret)
        .secret_string(whsec())
        .version_stages("AWSCURRENT")
        .send()
        .await
        .unwrap();
    let webhook = Webhook {
        keyring: Keyring::new(
            s.clients.secrets(),
            &s.config.webhook_secret,
            &[Stage::Current, Stage::Pending, Stage::Previous],
            Duration::from_secs(60),
        ),
        ledger: s.ledger.clone(),
        queue: Queue::new(s.clients.sqs.clone()),
        metrics: Metrics::memory("webhook"),
        stack: s.config.clone(),
        config: WebhookConfig::from_lookup(|_| None).unwrap(),
    };
    World {
        s,
        webhook: Arc::new(webhook),
    }
}

async fn job(w: &World) -> Job {
    let bytes = unique_name("doc").into_bytes();
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
            bucket: "b".into(),
            key: "receipts/x.png".into(),
            version_id: None,
        },
        inspection: Default::default(),
    };
    w.s.ledger
        .create_job(&new, UnixMillis::now())
        .await
        .unwrap()
        .job()
        .clone()
}

fn now() -> i64 {
    (UnixMillis::now().0 / 1000) as i64
}

fn payload(job: &Job, status: &str) -> Vec<u8> {
    json!({"type": "document.status_changed", "timestamp": "t",
           "data": {"id": "doc_v1", "status": status, "external_ref": job.id.as_str()}})
    .to_string()
    .into_bytes()
}

fn signed(secret: &str, id: &str, ts: i64, body: &[u8]) -> Vec<(String, String)> {
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts.to_string()),
        (
            "webhook-signature".into(),
            sign_standard(&Secret::new(secret), id, ts, body).unwrap(),
        ),
    ]
}

async fn notices(w: &World) -> Vec<ResultNotice> {
    w.s.drain(&w.s.config.results_queue_url)
        .await
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn every_rejection_reason_and_the_accepted_paths() {
    let w = world().await;
    let secret = w.s.secret(&w.s.config.webhook_secret, "AWSCURRENT").await;
    let job = job(&w).await;
    let body = payload(&job, "succeeded");
    let t = now();
    let h = |id: &str, ts: i64| signed(&secret, id, ts, &body);
    let handle = |headers: Vec<(String, String)>, body: Vec<u8>, method: &'static str| {
        let wh = w.webhook.clone();
        async move {
            wh.handle(method, headers.as_slice(), &body, now())
                .await
                .status
        }
    };

    assert_eq!(handle(h("msg_1", t), body.clone(), "POST").await, 200);
    assert_eq!(
        handle(h("msg_1", t), body.clone(), "POST").await,
        200,
        "a replayed event id is a no-op"
    );
    assert_eq!(
        handle(h("msg_2", t - 400), body.clone(), "POST").await,
        401,
        "stale"
    );
    assert_eq!(
        handle(h("msg_3", t + 400), body.clone(), "POST").await,
        401,
        "future"
    );
    let mut forged = h("msg_4", t);
    forged[2].1 = sign_standard(&Secret::new(whsec()), "msg_4", t, &body).unwrap();
    assert_eq!(handle(forged, body.clone(), "POST").await, 401, "signature");
    assert_eq!(
        handle(h("msg_5", t)[1..].to_vec(), body.clone(), "POST").await,
        400,
        "missing header"
    );
    let mut garbled = h("msg_6", t);
    garbled[2].1 = "v1,!!!notbase64".into();
    assert_eq!(
        handle(garbled, body.clone(), "POST").await,
        400,
        "malformed header"
    );
    assert_eq!(handle(h("msg_7", t), body.clone(), "GET").await, 405);
    assert_eq!(
        handle(h("msg_8", t), vec![b' '; 300 * 1024], "POST").await,
        413
    );
    // A multi-signature header where only the last entry is ours.
    let mut multi = h("msg_9", t);
    multi[2].1 = format!(
        "v1,AAAA {} {}",
        sign_standard(&Secret::new(whsec()), "msg_9", t, &body).unwrap(),
        multi[2].1
    );
    assert_eq!(handle(multi, body.clone(), "POST").await, 200);
    // A binary body verifies as bytes; it then fails as a payload, not as a signature.
    let binary = vec![0xff, 0xfe, 0x00, 0x80];
    assert_eq!(
        handle(signed(&secret, "msg_10", t, &binary), binary, "POST").await,
        400
    );
    // Verified but naming no job of ours: acknowledged, counted, kept in the DLQ.
    let stranger =
        json!({"data": {"id": "doc_x", "status": "succeeded", "external_ref": "someone-else"}})
            .to_string()
            .into_bytes();
    assert_eq!(
        handle(signed(&secret, "msg_11", t, &stranger), stranger, "POST").await,
        200
    );

    let recorded = w.webhook.metrics.recorded();
    for reason in [
        "stale",
        "future",
        "signature",
        "missing",
        "malformed",
        "method",
        "too_large",
        "malformed_payload",
        "unknown_job",
    ] {
        assert_eq!(
            recorded.get(&format!("WebhooksRejected[{reason}]")),
            Some(&1.0),
            "{reason}: {recorded:?}"
        );
    }
    assert_eq!(recorded["WebhookDuplicates"], 1.0);
    assert_eq!(recorded["WebhooksVerified[succeeded]"], 2.0);
    let queued = notices(&w).await;
    assert_eq!(queued.len(), 2, "msg_1 once and msg_9");
    assert!(queued
        .iter()
        .all(|n| n.job_id == job.id && n.status == "succeeded"));
    let parked = w.s.drain(&w.s.config.results_dlq_url).await;
    assert_eq!(parked.len(), 1);
    assert_eq!(
        parked[0].message_attributes().unwrap()[REASON_CODE_ATTRIBUTE].string_value(),
        Some("unknown_job")
    );
}

#[tokio::test]
async fn a_webhook_before_the_vendor_job_id_is_recorded_is_not_lost() {
    let w = world().await;
    let secret = w.s.secret(&w.s.config.webhook_secret, "AWSCURRENT").await;
    // The job is still Received (the submit function has not recorded anything yet).
    let job = job(&w).await;
    assert_eq!(job.vendor_job_id, None);
    let body = payload(&job, "succeeded");
    let reply = w
        .webhook
        .handle(
            "POST",
            signed(&secret, "msg_race", now(), &body).as_slice(),
            &body,
            now(),
        )
        .await;
    assert_eq!(reply.status, 200);
    let queued = notices(&w).await;
    assert_eq!(
        queued.len(),
        1,
        "parked on the results queue, keyed by our job id"
    );
    assert_eq!(queued[0].vendor_job_id, "doc_v1");
}

#[tokio::test]
async fn base64_encoded_function_url_events_are_decoded_before_verifying() {
    let w = world().await;
    let secret = w.s.secret(&w.s.config.webhook_secret, "AWSCURRENT").await;
    let job = job(&w).await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events/function-url-webhook.json");
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(event["isBase64Encoded"], true);
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = String::from_utf8(b64.decode(event["body"].as_str().unwrap()).unwrap())
        .unwrap()
        .replace(
            "doc-e828332251972e362827a60e023bb454548c2004",
            job.id.as_str(),
        )
        .into_bytes();
    let ts = now();
    let id = event["headers"]["webhook-id"].as_str().unwrap().to_owned();
    event["body"] = Value::String(b64.encode(&body));
    event["headers"]["webhook-timestamp"] = Value::String(ts.to_string());
    event["headers"]["webhook-signature"] =
        Value::String(sign_standard(&Secret::new(secret.as_str()), &id, ts, &body).unwrap());

    let response = w
        .webhook
        .handle_event(&serde_json::from_value(event.clone()).unwrap())
        .await;
    assert_eq!(response.status_code, 200);
    assert_eq!(notices(&w).await.len(), 1);

    // The same event with its base64 text verified as if it were the body fails: decoding matters.
    let sig_over_b64 = sign_standard(
        &Secret::new(secret.as_str()),
        "msg_other",
        ts,
        event["body"].as_str().unwrap().as_bytes(),
    )
    .unwrap();
    event["headers"]["webhook-id"] = Value::String("msg_other".into());
    event["headers"]["webhook-signature"] = Value::String(sig_over_b64);
    let response = w
        .webhook
        .handle_event(&serde_json::from_value(event.clone()).unwrap())
        .await;
    assert_eq!(response.status_code, 401);

    // A body that claims to be base64 and is not: a 400, never a panic (lambda_http's own
    // conversion panicked on it; fuzzing found it).
    event["body"] = Value::String("{not base64!".into());
    let response = w
        .webhook
        .handle_event(&serde_json::from_value(event).unwrap())
        .await;
    assert_eq!(response.status_code, 400);
    assert_eq!(
        w.webhook.metrics.recorded()["WebhooksRejected[malformed_body]"],
        1.0
    );
}

/// The fuzzer's find (`fuzz/regressions/function_url_event/empty-method.json`): an event with an
/// empty method. No method, or one that is not an HTTP token, is a malformed request (400); a
/// real method other than POST is refused with 405 and `Allow: POST`. None reaches the signature
/// check or the queue.
#[tokio::test]
async fn an_event_without_a_method_is_malformed_and_other_methods_are_refused() {
    let w = world().await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let found: Value = serde_json::from_str(
        &std::fs::read_to_string(
            root.join("fuzz/regressions/function_url_event/empty-method.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(found["requestContext"]["http"]["method"], "");
    let with_method = |method: Option<&str>| {
        let mut event = found.clone();
        match method {
            Some(m) => event["requestContext"]["http"]["method"] = Value::String(m.into()),
            None => {
                event["requestContext"]["http"]
                    .as_object_mut()
                    .unwrap()
                    .remove("method");
            }
        }
        serde_json::from_value(event).unwrap()
    };
    let answer = |event| {
        let wh = w.webhook.clone();
        async move {
            let response = wh.handle_event(&event).await;
            let allow = response
                .headers
                .get("allow")
                .map(|v| v.to_str().unwrap().to_owned());
            (response.status_code, allow)
        }
    };
    assert_eq!(
        answer(serde_json::from_value(found.clone()).unwrap()).await,
        (400, None)
    );
    assert_eq!(answer(with_method(None)).await, (400, None), "missing");
    assert_eq!(answer(with_method(Some("PO ST"))).await, (400, None));
    assert_eq!(
        answer(with_method(Some("GET"))).await,
        (405, Some("POST".into()))
    );
    assert_eq!(
        answer(with_method(Some("PROPFIND"))).await,
        (405, Some("POST".into()))
    );
    let recorded = w.webhook.metrics.recorded();
    assert_eq!(
        recorded["WebhooksRejected[malformed_method]"], 3.0,
        "{recorded:?}"
    );
    assert_eq!(recorded["WebhooksRejected[method]"], 2.0, "{recorded:?}");
    assert!(
        !recorded
            .keys()
            .any(|k| k.starts_with("WebhooksRejected[signature")),
        "nothing was verified: {recorded:?}"
    );
    assert!(notices(&w).await.is_empty());
}

/// The completion that was claimed and never queued: an invocation that died between its
/// dedupe claim and its enqueue (here: the claim's answer lost, the same point). The vendor's
/// retry must not be taken for a duplicate — for Mindee that notice is the only evidence that
/// adopts a lost submit answer. While the claim may still be its holder's, a retry is asked to
/// come back (503); once the holder's time is up, the next delivery takes the claim over and the
/// notice is queued. (Before the claim had an in-progress phase, the retry was answered 200
/// "duplicate" and nothing was ever queued.)
#[tokio::test]
async fn a_completion_whose_invocation_died_after_its_claim_is_not_lost() {
    let mut w = world().await;
    Arc::get_mut(&mut w.webhook).unwrap().config.claim_lease = Duration::from_secs(2);
    let secret = w.s.secret(&w.s.config.webhook_secret, "AWSCURRENT").await;
    let job = job(&w).await;
    let body = payload(&job, "succeeded");
    let delivery = || {
        let wh = w.webhook.clone();
        let headers = signed(&secret, "msg_died", now(), &body);
        let body = body.clone();
        async move {
            wh.handle("POST", headers.as_slice(), &body, now())
                .await
                .status
        }
    };
    ocrbridge::failpoints::arm(
        "webhook.after_claim_before_enqueue",
        &[(ocrbridge::failpoints::Action::Error, job.id.to_string())],
    )
    .unwrap();
    assert_eq!(
        delivery().await,
        503,
        "the claim was written, nothing queued"
    );
    assert_eq!(
        delivery().await,
        503,
        "the vendor's retry while the claim may still be its holder's: come back, not 'duplicate'"
    );
    assert!(notices(&w).await.is_empty());
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(
        delivery().await,
        200,
        "taken over once the holder's time is up"
    );
    let queued = notices(&w).await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].job_id, job.id);
    assert_eq!(delivery().await, 200, "and now a duplicate");
    assert!(notices(&w).await.is_empty(), "queued once");
}

/// Secrets Manager down: the signing secrets last read still verify deliveries for a bounded
/// while (`keyring::STALE_GRACE` past their age), so a short outage does not turn every genuine
/// webhook into a 503; forgeries still fail. (Before, the first delivery after the cache aged
/// was a 503.)
#[tokio::test]
async fn the_last_known_secrets_verify_while_secrets_manager_is_down() {
    let mut w = world().await;
    Arc::get_mut(&mut w.webhook).unwrap().keyring = Keyring::new(
        w.s.clients.secrets(),
        &w.s.config.webhook_secret,
        &[Stage::Current, Stage::Pending, Stage::Previous],
        Duration::from_millis(1),
    );
    let secret = w.s.secret(&w.s.config.webhook_secret, "AWSCURRENT").await;
    let job = job(&w).await;
    let body = payload(&job, "succeeded");
    let deliver = |id: &'static str, key: String| {
        let wh = w.webhook.clone();
        let body = body.clone();
        async move {
            wh.handle(
                "POST",
                signed(&key, id, now(), &body).as_slice(),
                &body,
                now(),
            )
            .await
            .status
        }
    };
    assert_eq!(deliver("msg_up", secret.clone()).await, 200);
    // Secrets Manager can no longer give the secret.
    w.s.clients
        .secrets()
        .delete_secret()
        .secret_id(&w.s.config.webhook_secret)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        deliver("msg_down", secret).await,
        200,
        "the cached secret verifies"
    );
    assert_eq!(
        deliver("msg_forged", whsec()).await,
        401,
        "a forgery still fails"
    );
    assert_eq!(notices(&w).await.len(), 2);
}

/// Secrets Manager refuses to give the signing secret (IAM or the key's policy says no:
/// `AccessDeniedException`, which AWS's JSON protocol sends as a 400). The delivery is answered
/// 503 like any outage — the vendor retries — but it is counted with the other refused
/// credentials (`VendorAuthFailures[sim,webhook_secret,403]`): it will not pass by itself, every
/// delivery fails until the grant is fixed. An endpoint that is merely down is not counted.
#[tokio::test]
async fn a_refused_signing_secret_read_is_counted_as_an_auth_failure() {
    async fn denied() -> (StatusCode, HeaderMap, &'static str) {
        let mut headers = HeaderMap::new();
        headers.insert("x-amzn-errortype", "AccessDeniedException".parse().unwrap());
        headers.insert(
            "content-type",
            "application/x-amz-json-1.1".parse().unwrap(),
        );
        (
            StatusCode::BAD_REQUEST,
            headers,
            r#"{"__type":"AccessDeniedException","message":"User: arn:aws:sts::123456789012:assumed-role/ocrbridge-webhook is not authorized to perform: secretsmanager:GetSecretValue"}"#,
        )
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let denying = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, axum::Router::new().fallback(denied))
            .await
            .ok();
    });
    let mut w = world().await;
    let keyring_at = |endpoint: &str| {
        let client = aws_sdk_secretsmanager::Client::from_conf(
            w.s.clients
                .secrets()
                .config()
                .to_builder()
                .endpoint_url(endpoint)
                .build(),
        );
        Keyring::new(
            client,
            &w.s.config.webhook_secret,
            &[Stage::Current, Stage::Pending, Stage::Previous],
            Duration::from_secs(60),
        )
    };
    let (refusing, down) = (keyring_at(&denying), keyring_at("http://127.0.0.1:9"));
    let job = job(&w).await;
    let body = payload(&job, "succeeded");
    let secret = w.s.secret(&w.s.config.webhook_secret, "AWSCURRENT").await;
    let headers = signed(&secret, "msg_refused", now(), &body);

    Arc::get_mut(&mut w.webhook).unwrap().keyring = refusing;
    let reply = w
        .webhook
        .handle("POST", headers.as_slice(), &body, now())
        .await;
    assert_eq!(reply.status, 503, "the vendor retries");
    let refused = |w: &World| {
        w.webhook
            .metrics
            .recorded()
            .get("VendorAuthFailures[sim,webhook_secret,403]")
            .copied()
    };
    assert_eq!(refused(&w), Some(1.0));

    Arc::get_mut(&mut w.webhook).unwrap().keyring = down;
    let reply = w
        .webhook
        .handle("POST", headers.as_slice(), &body, now())
        .await;
    assert_eq!(reply.status, 503);
    assert_eq!(refused(&w), Some(1.0), "an outage is not a refusal");
    assert!(notices(&w).await.is_empty());
}

/// A webhook receiver over real HTTP that calls the handler, as the Function URL would.
async fn serve(webhook: Arc<Webhook>) -> String {
    async fn receive(
        State(wh): State<Arc<Webhook>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let reply = wh.handle("POST", &headers, &body, now()).await;
        StatusCode::from_u16(reply.status).unwrap()
    }
    let app = axum::Router::new()
        .route("/", axum::routing::post(receive))
        .with_state(webhook);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn sim(w: &World, url: String) -> RunningSim {
    let secret = w.s.secret(&w.s.config.webhook_secret, "AWSCURRENT").await;
    w.s.start_sim(SimConfig {
        webhook_url: Some(url),
        webhook_secrets: vec![secret],
        webhook_retry_schedule: vec![Duration::from_millis(200); 3],
        engine: EngineKind::Fast,
        ..SimConfig::default()
    })
    .await
}

/// Submits a document for `job` straight to the simulator (as submit would).
async fn submit_to_sim(sim: &RunningSim, api_key: &str, job: &Job) {
    let form = reqwest::multipart::Form::new()
        .text("profile", "receipt")
        .text("external_ref", job.id.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(job.id.to_string().into_bytes()).file_name("d"),
        );
    let r = reqwest::Client::new()
        .post(format!("{}/v1/documents", sim.base_url()))
        .bearer_auth(api_key)
        .header("idempotency-key", job.id.as_str())
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test]
async fn simulator_faults_reach_the_results_queue_once_per_event() {
    let w = world().await;
    let url = serve(w.webhook.clone()).await;
    let sim = sim(&w, url).await;
    let api_key =
        w.s.secret(&w.s.config.vendor_api_key_secret, "AWSCURRENT")
            .await;
    reqwest::Client::new()
        .put(format!("{}/admin/faults", sim.base_url()))
        .json(&json!({"seed": 3, "rates": {"duplicate_webhook": 1.0, "bad_signature": 1.0, "replay": 1.0, "out_of_order": 1.0}}))
        .send()
        .await
        .unwrap();
    let mut jobs = Vec::new();
    for _ in 0..3 {
        let j = job(&w).await;
        submit_to_sim(&sim, &api_key, &j).await;
        jobs.push(j);
    }
    // Every delivery lands (forged, replayed, duplicated, reordered); wait for them to settle.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats: Value = reqwest::get(format!("{}/admin/stats", sim.base_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let sent: u64 = stats["webhooks_sent"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        // Per job: the succeeded event as genuine + forged + duplicate + replay, and the
        // processing event held back and delivered after it (out of order).
        if sent >= 3 * 5 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let queued = notices(&w).await;
    // The genuine `succeeded` events become notices; the genuine `processing` ones (held back and
    // delivered last) are verified and acknowledged without one.
    assert_eq!(
        queued.len(),
        3,
        "one notice per genuine final event: {queued:#?}"
    );
    assert!(queued.iter().all(|n| n.status == "succeeded"));
    let mut ids: Vec<_> = queued.iter().filter_map(|n| n.event_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    let recorded = w.webhook.metrics.recorded();
    assert_eq!(recorded["WebhooksVerified[processing]"], 3.0);
    assert_eq!(recorded["WebhooksVerified[succeeded]"], 3.0);
    assert_eq!(
        recorded["WebhooksRejected[signature]"], 3.0,
        "every forgery rejected: {recorded:?}"
    );
    assert_eq!(
        recorded["WebhooksRejected[stale]"], 3.0,
        "every replay rejected"
    );
    assert_eq!(recorded["WebhookDuplicates"], 3.0);
    let stats: Value = reqwest::get(format!("{}/admin/stats", sim.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["webhooks_sent"]["forged"], 3);
    assert_eq!(stats["webhooks_sent"]["replay"], 3);
    assert_eq!(stats["webhooks_sent"]["out_of_order"], 3);
}

fn rotate_handler(w: &World, sim: &RunningSim) -> Rotate<SimVendor> {
    let api_key = Keyring::new(
        w.s.clients.secrets(),
        &w.s.config.vendor_api_key_secret,
        &[Stage::Current],
        Duration::from_secs(60),
    );
    w.s.rotate(SimVendor::new(
        http_client(HttpTimeouts::default(), Default::default()).unwrap(),
        sim.base_url(),
        api_key,
    ))
}

async fn rotate_all(rotate: &Rotate<SimVendor>, secret_id: &str, pause: Duration) -> String {
    let token = uuid::Uuid::new_v4().to_string();
    for step in [Step::Create, Step::Set, Step::Test, Step::Finish] {
        let event = RotationEvent {
            secret_id: secret_id.to_owned(),
            token: token.clone(),
            step,
        };
        rotate
            .handle(&event)
            .await
            .unwrap_or_else(|e| panic!("{step:?}: {e}"));
        // Each step is idempotent: the service may call it again.
        rotate
            .handle(&event)
            .await
            .unwrap_or_else(|e| panic!("{step:?} again: {e}"));
        tokio::time::sleep(pause).await;
    }
    token
}

#[tokio::test]
async fn the_webhook_secret_rotates_while_webhooks_are_in_flight_without_rejections() {
    let w = world().await;
    let url = serve(w.webhook.clone()).await;
    let sim = sim(&w, url).await;
    let api_key =
        w.s.secret(&w.s.config.vendor_api_key_secret, "AWSCURRENT")
            .await;
    let original = w.s.secret(&w.s.config.webhook_secret, "AWSCURRENT").await;
    let rotate = rotate_handler(&w, &sim);

    // Webhooks keep flowing during the rotation.
    let mut jobs = Vec::new();
    for _ in 0..4 {
        let j = job(&w).await;
        submit_to_sim(&sim, &api_key, &j).await;
        jobs.push(j);
    }
    let token = rotate_all(
        &rotate,
        &w.s.config.webhook_secret,
        Duration::from_millis(150),
    )
    .await;
    for _ in 0..4 {
        let j = job(&w).await;
        submit_to_sim(&sim, &api_key, &j).await;
        jobs.push(j);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut queued = Vec::new();
    let verified = |status: &str| {
        w.webhook
            .metrics
            .recorded()
            .get(&format!("WebhooksVerified[{status}]"))
            .copied()
            .unwrap_or(0.0)
    };
    while (queued.len() < 8 || verified("processing") < 8.0) && Instant::now() < deadline {
        queued.extend(notices(&w).await);
    }
    // Two events per job, all accepted: the final one queued, the progress one acknowledged.
    assert_eq!(queued.len(), 8, "one notice per job");
    assert_eq!(verified("succeeded"), 8.0);
    assert_eq!(verified("processing"), 8.0);
    let recorded = w.webhook.metrics.recorded();
    assert!(
        !recorded.keys().any(|k| k.starts_with("WebhooksRejected")),
        "no valid webhook rejected: {recorded:?}"
    );

    // The new secret is current; the original is previous, still accepted for late deliveries.
    let new = w.s.secret(&w.s.config.webhook_secret, "AWSCURRENT").await;
    assert_ne!(new, original);
    let versions =
        w.s.clients
            .secrets()
            .describe_secret()
            .secret_id(&w.s.config.webhook_secret)
            .send()
            .await
            .unwrap();
    assert!(versions.version_ids_to_stages().unwrap()[&token].contains(&"AWSCURRENT".to_owned()));
    let job_late = job(&w).await;
    let body = payload(&job_late, "processing");
    let late = signed(&original, "msg_late", now(), &body);
    assert_eq!(
        w.webhook
            .handle("POST", late.as_slice(), &body, now())
            .await
            .status,
        200
    );

    // A second rotation pushes the original out of the keyring: once the cached keys expire
    // (max-age; forced here), it stops working.
    rotate_all(&rotate, &w.s.config.webhook_secret, Duration::ZERO).await;
    w.webhook.keyring.values(true).await.unwrap();
    let too_late = signed(&original, "msg_too_late", now(), &body);
    assert_eq!(
        w.webhook
            .handle("POST", too_late.as_slice(), &body, now())
            .await
            .status,
        401
    );
    assert_eq!(
        rotate.metrics.recorded()["RotationSteps[webhook,finishSecret]"],
        4.0
    );
}

#[tokio::test]
async fn the_vendor_api_key_rotates_and_the_key_that_falls_out_is_revoked() {
    let w = world().await;
    let url = serve(w.webhook.clone()).await;
    let sim = sim(&w, url).await;
    let rotate = rotate_handler(&w, &sim);
    let first =
        w.s.secret(&w.s.config.vendor_api_key_secret, "AWSCURRENT")
            .await;
    let status = |key: String| {
        let url = format!("{}/v1/documents/none", sim.base_url());
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(first.clone()).await, 404, "authenticated");

    rotate_all(&rotate, &w.s.config.vendor_api_key_secret, Duration::ZERO).await;
    let second =
        w.s.secret(&w.s.config.vendor_api_key_secret, "AWSCURRENT")
            .await;
    assert_ne!(second, first);
    assert!(second.starts_with("sk_ocrb_"));
    assert_eq!(status(second.clone()).await, 404, "the new key works");
    assert_eq!(
        status(first.clone()).await,
        404,
        "the previous key still works until it falls out"
    );

    rotate_all(&rotate, &w.s.config.vendor_api_key_secret, Duration::ZERO).await;
    assert_eq!(
        status(first).await,
        403,
        "the key that fell out of AWSPREVIOUS is revoked"
    );
    assert_eq!(status(second).await, 404);
}

#[tokio::test]
async fn rotation_steps_are_guarded() {
    let w = world().await;
    let url = serve(w.webhook.clone()).await;
    let sim = sim(&w, url).await;
    let rotate = rotate_handler(&w, &sim);
    let secret_id = w.s.config.webhook_secret.clone();
    // A step other than createSecret for an unknown token is refused.
    let unknown = RotationEvent {
        secret_id: secret_id.clone(),
        token: "no-such-version".into(),
        step: Step::Set,
    };
    assert!(matches!(
        rotate.handle(&unknown).await,
        Err(rotate::RotateError::UnknownToken { .. })
    ));
    // A secret ocrbridge does not own is refused.
    let other = RotationEvent {
        secret_id: "arn:aws:secretsmanager:us-east-1:123456789012:secret:else-xyz".into(),
        token: "t".into(),
        step: Step::Create,
    };
    assert!(rotate.handle(&other).await.is_err());
    // The current version's token: every step is a no-op.
    let versions =
        w.s.clients
            .secrets()
            .describe_secret()
            .secret_id(&secret_id)
            .send()
            .await
            .unwrap();
    let current = versions
        .version_ids_to_stages()
        .unwrap()
        .iter()
        .find(|(_, s)| s.contains(&"AWSCURRENT".to_owned()))
        .map(|(v, _)| v.clone())
        .unwrap();
    for step in [Step::Create, Step::Set, Step::Test, Step::Finish] {
        rotate
            .handle(&RotationEvent {
                secret_id: secret_id.clone(),
                token: current.clone(),
                step,
            })
            .await
            .unwrap();
    }
    // With rotation required (as in AWS), moto's never-enabled rotation is refused.
    let strict = Rotate {
        require_rotation_enabled: true,
        ..rotate
    };
    let event = RotationEvent {
        secret_id,
        token: current,
        step: Step::Create,
    };
    assert!(matches!(
        strict.handle(&event).await,
        Err(rotate::RotateError::NotEnabled(_))
    ));
    assert_eq!(
        strict.metrics.recorded()["RotationFailures[webhook,createSecret]"],
        1.0
    );
}

#[test]
fn sample_rotation_events_parse() {
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../events/rotation-{step}.json"));
        let event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let parsed = RotationEvent::from_json(&event).unwrap();
        assert_eq!(parsed.step.as_str(), step);
    }
}

/// A flood of forged deliveries costs HMACs, not Secrets Manager reads: a miss refreshes the
/// secrets at most once per `MISS_REFRESH_INTERVAL`, however many misses there are.
#[tokio::test]
async fn forged_deliveries_do_not_drive_secrets_manager() {
    let w = world().await;
    let job = job(&w).await;
    let body = payload(&job, "succeeded");
    let forger = whsec();
    // The first delivery warms the cache (three stages).
    for i in 0..100 {
        let h = signed(&forger, &format!("msg_forged_{i}"), now(), &body);
        let reply = w.webhook.handle("POST", h.as_slice(), &body, now()).await;
        assert_eq!(reply.status, 401);
    }
    let reads = w.webhook.keyring.fetches();
    assert!(
        reads <= 6,
        "{reads} GetSecretValue calls for 100 forged deliveries (3 stages, at most one refresh)"
    );
    assert_eq!(
        w.webhook.metrics.recorded()["WebhooksRejected[signature]"],
        100.0
    );
}
