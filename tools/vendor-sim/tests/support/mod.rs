//! Test support: a simulator on a free port, a webhook receiver, and a Standard Webhooks verifier
//! written from the specification (not the simulator's signer).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::Engine;
use hmac::Mac;
use serde_json::Value;
use vendor_sim::engine::EngineKind;
use vendor_sim::faults::FaultConfig;
use vendor_sim::{start, RunningSim, SimConfig};

pub const API_KEY: &str = "sk_test_0123456789abcdef";

pub async fn sim(configure: impl FnOnce(&mut SimConfig)) -> RunningSim {
    let mut config = SimConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        api_keys: vec![API_KEY.into()],
        engine: EngineKind::Fast,
        webhook_retry_schedule: vec![Duration::from_millis(100), Duration::from_millis(200)],
        faults: FaultConfig::default(),
        ..SimConfig::default()
    };
    configure(&mut config);
    start(config).await.expect("simulator starts")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Submits bytes as a multipart upload.
pub async fn upload(
    sim: &RunningSim,
    bytes: Vec<u8>,
    profile: &str,
    idempotency_key: Option<&str>,
) -> reqwest::Response {
    upload_with(&client(), sim, bytes, profile, idempotency_key)
        .await
        .expect("request completes")
}

pub async fn upload_with(
    client: &reqwest::Client,
    sim: &RunningSim,
    bytes: Vec<u8>,
    profile: &str,
    idempotency_key: Option<&str>,
) -> reqwest::Result<reqwest::Response> {
    let form = reqwest::multipart::Form::new()
        .text("profile", profile.to_owned())
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name("doc"),
        );
    let mut request = client
        .post(format!("{}/v1/documents", sim.base_url()))
        .bearer_auth(API_KEY)
        .multipart(form);
    if let Some(key) = idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await
}

/// Submits bytes with an `external_ref` (the client's own id for the document).
pub async fn upload_as(
    sim: &RunningSim,
    bytes: Vec<u8>,
    external_ref: &str,
    idempotency_key: Option<&str>,
) -> reqwest::Response {
    let form = reqwest::multipart::Form::new()
        .text("profile", "receipt")
        .text("external_ref", external_ref.to_owned())
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name("doc"),
        );
    let mut request = client()
        .post(format!("{}/v1/documents", sim.base_url()))
        .bearer_auth(API_KEY)
        .multipart(form);
    if let Some(key) = idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.expect("request completes")
}

pub async fn get_json(sim: &RunningSim, path: &str) -> (StatusCode, Value) {
    let response = client()
        .get(format!("{}{path}", sim.base_url()))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub async fn stats(sim: &RunningSim) -> Value {
    get_json(sim, "/admin/stats").await.1
}

pub async fn put_faults(sim: &RunningSim, faults: Value) {
    let response = client()
        .put(format!("{}/admin/faults", sim.base_url()))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{:?}",
        response.text().await
    );
}

/// Polls the status until it is final.
pub async fn wait_final(sim: &RunningSim, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = get_json(sim, &format!("/v1/documents/{id}")).await;
        if status == StatusCode::OK
            && matches!(body["status"].as_str(), Some("succeeded" | "failed"))
        {
            return body;
        }
        assert!(Instant::now() < deadline, "job {id} never finished: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One webhook delivery as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: Bytes,
    pub at: Instant,
}

impl Delivery {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn status(&self) -> String {
        self.json()["data"]["status"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

#[derive(Clone, Default)]
pub struct Receiver {
    pub deliveries: Arc<Mutex<Vec<Delivery>>>,
    /// Answer 500 to this many requests first.
    pub fail_first: Arc<Mutex<u32>>,
}

impl Receiver {
    pub fn all(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the deliveries so far, or panics after `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&[Delivery]) -> bool,
    ) -> Vec<Delivery> {
        let deadline = Instant::now() + timeout;
        loop {
            let all = self.all();
            if pred(&all) {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "condition not met; deliveries: {all:#?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    receiver.deliveries.lock().unwrap().push(Delivery {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body,
        at: Instant::now(),
    });
    let mut fail = receiver.fail_first.lock().unwrap();
    if *fail > 0 {
        *fail -= 1;
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

/// A webhook receiver on a free loopback port; returns its URL.
pub async fn receiver() -> (Receiver, String) {
    let receiver = Receiver::default();
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (receiver, url)
}

/// Standard Webhooks verification, from the specification:
/// - the secret is `whsec_` + base64 of the key;
/// - the signed content is `{webhook-id}.{webhook-timestamp}.{body}`;
/// - `webhook-signature` is a space-delimited list of `v1,<base64(HMAC-SHA256)>`, any may match;
/// - the timestamp must be within `tolerance` of now, in both directions.
pub fn verify(
    secret: &str,
    delivery: &Delivery,
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), &'static str> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(secret.trim_start_matches("whsec_"))
        .map_err(|_| "bad secret")?;
    let ts: i64 = delivery.timestamp.parse().map_err(|_| "bad timestamp")?;
    if (now_unix - ts).abs() > tolerance_secs {
        return Err("timestamp outside tolerance");
    }
    let mut signed = Vec::new();
    signed.extend_from_slice(delivery.id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(delivery.timestamp.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(&delivery.body);
    for entry in delivery.signature.split(' ') {
        let Some(sig) = entry.strip_prefix("v1,") else {
            continue;
        };
        let Ok(sig) = b64.decode(sig) else { continue };
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(&signed);
        if mac.verify_slice(&sig).is_ok() {
            return Ok(());
        }
    }
    Err("no signature matches")
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `../shared` beside the repository (or `OCRBRIDGE_SHARED_DIR`), where the corpus lives.
pub fn shared_dir() -> PathBuf {
    let dir = std::env::var("OCRBRIDGE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    assert!(
        dir.join("corpus").is_dir(),
        "the shared corpus is not at {} (set OCRBRIDGE_SHARED_DIR)",
        dir.display()
    );
    dir
}

/// Wraps a JPEG in a one-page PDF with no text layer, the way a scanner would (the image is
/// embedded as-is with DCTDecode, at 150 dpi).
pub fn jpeg_pdf(jpeg: &[u8]) -> Vec<u8> {
    let (width, height, components) =
        jpeg_dimensions(jpeg).expect("a baseline or progressive JPEG");
    let colorspace = if components == 1 {
        "/DeviceGray"
    } else {
        "/DeviceRGB"
    };
    let (pw, ph) = (width as f64 * 72.0 / 150.0, height as f64 * 72.0 / 150.0);
    let content = format!("q {pw:.2} 0 0 {ph:.2} 0 0 cm /Im0 Do Q\n");
    let mut pdf: Vec<u8> = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    let mut object = |pdf: &mut Vec<u8>, body: Vec<u8>| {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n", offsets.len()).as_bytes());
        pdf.extend_from_slice(&body);
        pdf.extend_from_slice(b"\nendobj\n");
    };
    object(&mut pdf, b"<< /Type /Catalog /Pages 2 0 R >>".to_vec());
    object(
        &mut pdf,
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
    );
    object(
        &mut pdf,
        format!("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {pw:.2} {ph:.2}] /Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>").into_bytes(),
    );
    let mut image = format!(
        "<< /Type /XObject /Subtype /Image /Width {width} /Height {height} /ColorSpace {colorspace} /BitsPerComponent 8 /Filter /DCTDecode /Length {} >>\nstream\n",
        jpeg.len()
    )
    .into_bytes();
    image.extend_from_slice(jpeg);
    image.extend_from_slice(b"\nendstream");
    object(&mut pdf, image);
    object(
        &mut pdf,
        format!(
            "<< /Length {} >>\nstream\n{content}endstream",
            content.len()
        )
        .into_bytes(),
    );
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", offsets.len() + 1).as_bytes(),
    );
    for offset in &offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            offsets.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

/// Width, height and component count from a JPEG's SOF marker.
fn jpeg_dimensions(jpeg: &[u8]) -> Option<(u32, u32, u8)> {
    let mut i = 2;
    while i + 9 < jpeg.len() {
        if jpeg[i] != 0xFF {
            return None;
        }
        let marker = jpeg[i + 1];
        let length = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
        if matches!(marker, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF) {
            let height = u16::from_be_bytes([jpeg[i + 5], jpeg[i + 6]]) as u32;
            let width = u16::from_be_bytes([jpeg[i + 7], jpeg[i + 8]]) as u32;
            return Some((width, height, jpeg[i + 9]));
        }
        i += 2 + length;
    }
    None
}
