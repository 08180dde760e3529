//! vendor-sim: a local asynchronous OCR vendor that performs real OCR.
//!
//! It speaks a typical async document API (submit → webhook/poll → fetch result), signs its
//! webhooks per Standard Webhooks, bills per document and page, and injects faults on demand so
//! teams can rehearse throttling, outages, lost responses and webhook abuse before launch.
//! See `tools/vendor-sim/README.md` for the API.

mod api;
pub mod azure;
pub mod engine;
pub mod faults;
pub mod fields;
pub mod mindee;
pub mod model_update;
mod server;
pub mod state;
pub mod textract;
pub mod webhooks;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Semaphore};

use engine::EngineKind;
use faults::{Fault, FaultConfig, FaultDice};
pub use state::{Idempotency, Protocol};
use state::{Inner, JobError, Output, SimJob, Stats, Status, WebhookSettings};
use webhooks::{DeliveryKind, Outgoing};

/// How the simulator is started.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to listen on; port 0 picks a free one. Keep it on loopback.
    pub listen: SocketAddr,
    /// Bearer tokens accepted by `/v1`. More can be added and revoked through `/admin/api-keys`.
    pub api_keys: Vec<String>,
    pub webhook_url: Option<String>,
    /// `whsec_…` secrets; every delivery is signed with each of them.
    pub webhook_secrets: Vec<String>,
    pub webhook_retry_schedule: Vec<Duration>,
    pub faults: FaultConfig,
    pub engine: EngineKind,
    /// Time a job waits in `queued` before processing starts.
    pub processing_delay: Duration,
    pub max_document_bytes: usize,
    /// Documents OCRed at once.
    pub ocr_concurrency: usize,
    /// How a repeated `Idempotency-Key` is treated.
    pub idempotency: Idempotency,
    /// moto's URL, for the Textract twin: it reads documents from S3 and publishes its
    /// completions to SNS there, as Textract does in AWS.
    pub aws_endpoint: Option<String>,
    /// The twins' own settings (Textract's job limit, Azure's Retry-After, Mindee's webhooks…).
    pub twins: TwinSettings,
}

/// Settings of the Textract, Azure and Mindee twins.
#[derive(Debug, Clone)]
pub struct TwinSettings {
    /// Textract: jobs in progress at once before `LimitExceededException` (AWS's default is a
    /// few hundred per account; small values test the limit).
    pub textract_max_jobs: usize,
    /// Textract: how long a `ClientRequestToken` is remembered (7 days in AWS).
    pub textract_token_ttl: Duration,
    /// Azure: the `Retry-After` (seconds) sent with the 202 and with running operations.
    pub azure_retry_after_secs: u64,
    /// Azure and Mindee: how long a finished result can be fetched (Azure keeps ~24 h).
    pub result_ttl: Duration,
    /// Mindee: requests per minute, `POST`s and `GET`s (200 and 1,200 per organization).
    pub mindee_posts_per_minute: f64,
    pub mindee_gets_per_minute: f64,
    /// The simulator's own API: the most pages a PDF may have (`None`: any). A longer one is
    /// refused at submission with `400 too_many_pages`, as vendors refuse past their limits
    /// (Textract's 3,000, Azure's 2,000, or 2 on its free tier).
    pub max_pages: Option<u32>,
}

impl Default for TwinSettings {
    fn default() -> Self {
        TwinSettings {
            textract_max_jobs: 100,
            textract_token_ttl: Duration::from_secs(7 * 86_400),
            azure_retry_after_secs: 1,
            result_ttl: Duration::from_secs(86_400),
            mindee_posts_per_minute: 200.0,
            mindee_gets_per_minute: 1_200.0,
            max_pages: None,
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            api_keys: Vec::new(),
            webhook_url: None,
            webhook_secrets: Vec::new(),
            webhook_retry_schedule: webhooks::default_retry_schedule(),
            faults: FaultConfig::default(),
            engine: EngineKind::Tesseract,
            processing_delay: Duration::ZERO,
            max_document_bytes: 50 * 1024 * 1024,
            ocr_concurrency: 1,
            idempotency: Idempotency::Native,
            aws_endpoint: None,
            twins: TwinSettings::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid webhook secret: {0}")]
    Secret(#[from] webhooks::SecretError),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// The simulator's shared core.
pub struct Sim {
    inner: Mutex<Inner>,
    engine: EngineKind,
    processing_delay: Duration,
    max_document_bytes: usize,
    ocr_slots: Semaphore,
    http: reqwest::Client,
    aws: Option<Aws>,
    pub twins: TwinSettings,
    /// Delayed webhooks a test let go early, by job subject ([`Sim::release_delayed`]).
    released: std::sync::Mutex<BTreeMap<String, Arc<tokio::sync::watch::Sender<bool>>>>,
}

/// The AWS clients the Textract twin uses (against moto).
#[derive(Debug, Clone)]
pub struct Aws {
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
}

impl Aws {
    fn local(endpoint: &str) -> Self {
        let mut config = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "vendor-sim",
            ));
        config.set_app_name(twin_app_name());
        let mut sns = aws_sdk_sns::config::Builder::new()
            .behavior_version(aws_sdk_sns::config::BehaviorVersion::latest())
            .region(aws_sdk_sns::config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_sns::config::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "vendor-sim",
            ));
        sns.set_app_name(twin_app_name());
        Aws {
            s3: aws_sdk_s3::Client::from_conf(config.build()),
            sns: aws_sdk_sns::Client::from_conf(sns.build()),
        }
    }
}

/// What the twins' own AWS requests (Textract reading a document from S3, publishing its
/// notification to SNS) say they are in their User-Agent (`app/vendor-twin`): a request
/// recording tells them from the functions'.
fn twin_app_name() -> Option<aws_sdk_s3::config::AppName> {
    aws_sdk_s3::config::AppName::new("vendor-twin").ok()
}

/// A submission any protocol makes, once it has the document's bytes.
pub struct Accept {
    pub protocol: Protocol,
    /// The extraction profile (see [`SimJob::profile`]).
    pub profile: String,
    pub external_ref: Option<String>,
    pub key: Option<KeyRule>,
    pub document: Bytes,
    /// When the request arrived (the job's own time starts here).
    pub received: std::time::Instant,
}

/// An idempotency key, what a repeat must match to reuse it, and how long it is remembered.
pub struct KeyRule {
    pub key: String,
    pub fingerprint: String,
    pub memory: Idempotency,
}

/// What [`Sim::accept`] made of a submission.
pub enum Accepted {
    /// A new, billed job; `cut` is how its answer is to be lost, if a fault says so.
    New { job: SimJob, cut: Option<Cut> },
    /// The key is remembered and the request matches: the same job, not billed.
    Replayed(SimJob),
    /// The key is remembered and the request differs.
    Conflict,
}

/// How an accepted submission's answer is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// No response at all.
    Drop,
    /// The status and headers, then half the body.
    Truncate,
    /// A gateway's `502` or `504` instead of the vendor's answer.
    GatewayError(u16),
    /// The answer, held this long (past the client's timeout).
    Hang(Duration),
}

impl Sim {
    fn new(config: &SimConfig) -> Result<Self, StartError> {
        let keys = config
            .webhook_secrets
            .iter()
            .map(|s| webhooks::decode_secret(s))
            .collect::<Result<Vec<_>, _>>()?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| StartError::Client(e.to_string()))?;
        Ok(Sim {
            inner: Mutex::new(Inner {
                jobs: HashMap::new(),
                by_idempotency_key: HashMap::new(),
                idempotency: config.idempotency,
                by_external_ref: HashMap::new(),
                api_keys: config.api_keys.iter().cloned().collect::<BTreeSet<_>>(),
                webhook: WebhookSettings {
                    url: config.webhook_url.clone(),
                    keys,
                    retry_schedule: config.webhook_retry_schedule.clone(),
                },
                dice: FaultDice::new(config.faults.clone()),
                stats: Stats::default(),
                mindee_minute: Default::default(),
                mindee_webhooks: Default::default(),
                traces: Default::default(),
            }),
            engine: config.engine,
            processing_delay: config.processing_delay,
            max_document_bytes: config.max_document_bytes,
            ocr_slots: Semaphore::new(config.ocr_concurrency.max(1)),
            http,
            aws: config.aws_endpoint.as_deref().map(Aws::local),
            twins: config.twins.clone(),
            released: Default::default(),
        })
    }

    /// Lets the delayed webhooks of `subject` (a job's subject: its reference, or ours) go now
    /// rather than at their delay's end, and any that are delayed later: a test's way to make a
    /// late completion come after what it must come after, however slowly a loaded machine
    /// gets there, instead of racing a fixed delay.
    pub fn release_delayed(&self, subject: &str) {
        self.release_gate(subject).send_replace(true);
    }

    fn release_gate(&self, subject: &str) -> Arc<tokio::sync::watch::Sender<bool>> {
        let mut gates = self.released.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            gates
                .entry(subject.to_owned())
                .or_insert_with(|| Arc::new(tokio::sync::watch::channel(false).0)),
        )
    }

    /// Waits out a delivery's `delay`, or less if the subject's delayed webhooks are released.
    pub(crate) async fn hold_delivery(&self, subject: &str, delay: Duration) {
        if delay.is_zero() {
            return;
        }
        let mut released = self.release_gate(subject).subscribe();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = released.wait_for(|r| *r) => {}
        }
    }

    /// Accepts a submission from any protocol: a replay or a conflict for a remembered key,
    /// otherwise a new job — stored, billed, counted as a duplicate if its reference already had
    /// one, and processed in the background.
    pub fn accept(self: &Arc<Self>, accept: Accept) -> Accepted {
        let now = chrono::Utc::now().timestamp();
        let (job, cut) = {
            let mut inner = self.lock();
            if let Some(rule) = &accept.key {
                if let Some(existing) = inner.job_for_key(&rule.key).cloned() {
                    return if existing.fingerprint == rule.fingerprint {
                        inner.stats.idempotent_replays += 1;
                        Accepted::Replayed(existing)
                    } else {
                        inner.stats.idempotency_conflicts += 1;
                        Accepted::Conflict
                    };
                }
            }
            let job = SimJob {
                id: match &accept.protocol {
                    Protocol::Native => format!("doc_{}", uuid::Uuid::new_v4().simple()),
                    _ => uuid::Uuid::new_v4().to_string(),
                },
                status: Status::Queued,
                protocol: accept.protocol,
                profile: accept.profile,
                external_ref: accept.external_ref,
                idempotency_key: accept.key.as_ref().map(|k| k.key.clone()),
                fingerprint: accept
                    .key
                    .as_ref()
                    .map(|k| k.fingerprint.clone())
                    .unwrap_or_default(),
                created_at: now,
                updated_at: now,
                pages: 0,
                result: None,
                output: None,
                error: None,
                received: accept.received,
                processing_ms: None,
                expired: false,
                oversized: false,
                completion_acked: false,
                answer_sent: false,
                document_sha256: None,
            };
            let subject = job.subject().to_owned();
            let cut = if inner.strikes_for(Fault::Drop, &subject) {
                Some(Cut::Drop)
            } else if inner.strikes_for(Fault::TruncatedResponse, &subject) {
                Some(Cut::Truncate)
            } else if inner.strikes_for(Fault::AcceptThen5xx, &subject) {
                Some(Cut::GatewayError(*inner.dice.pick_for(
                    &[502, 504],
                    "gateway_status",
                    &subject,
                )))
            } else if inner.strikes_for(Fault::AcceptThenHang, &subject) {
                Some(Cut::Hang(Duration::from_millis(
                    inner.dice.config.slow_delay_ms,
                )))
            } else {
                None
            };
            let job = SimJob {
                answer_sent: cut.is_none(),
                document_sha256: None,
                ..job
            };
            inner.insert_new_job(job.clone(), accept.key.as_ref().map(|k| k.memory));
            (job, cut)
        };
        self.spawn_processing(job.id.clone(), accept.document);
        Accepted::New { job, cut }
    }

    /// What `oversized_result` pads a result to.
    pub fn oversized_result_bytes(&self) -> usize {
        self.lock().dice.config.oversized_result_bytes
    }

    /// The Textract twin's AWS clients, when `aws_endpoint` was given.
    pub fn aws(&self) -> Option<&Aws> {
        self.aws.as_ref()
    }

    /// Runs `f` on the job with `id`, under the state lock.
    pub fn with_job<T>(&self, id: &str, f: impl FnOnce(&SimJob) -> T) -> Option<T> {
        self.lock().jobs.get(id).map(f)
    }

    /// Runs `f` on the state, under the lock (twins' bookkeeping: rate limits, faults).
    pub fn with_state<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.lock())
    }

    /// The state lock. A panic while holding it is a simulator bug; keep serving regardless.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// The vendor's books for one subject (a reference, or Azure's `sha256:…`): every job it
    /// made for it, billed, in the order they were made — what a test holds the ledger to.
    pub fn books(&self, subject: &str) -> Vec<SimJob> {
        let inner = self.lock();
        inner
            .by_external_ref
            .get(subject)
            .into_iter()
            .flatten()
            .filter_map(|id| inner.jobs.get(id).cloned())
            .collect()
    }

    /// One job as the simulator holds it (for benchmarks: its `processing_ms`).
    pub fn job(&self, id: &str) -> Option<SimJob> {
        self.lock().jobs.get(id).cloned()
    }

    /// Processes a new job in the background: queued → processing → succeeded | failed, with a
    /// webhook for each status change.
    fn spawn_processing(self: &Arc<Self>, id: String, document: Bytes) {
        let sim = Arc::clone(self);
        tokio::spawn(async move { sim.process(id, document).await });
    }

    async fn process(self: Arc<Self>, id: String, document: Bytes) {
        tokio::time::sleep(self.processing_delay).await;
        let held_back = self.change_status(&id, Status::Processing, None);
        let stuck = self.with_state(|inner| {
            let subject = inner
                .jobs
                .get(&id)
                .map_or_else(|| id.clone(), |j| j.subject().to_owned());
            inner.strikes_for(Fault::NeverFinishes, &subject)
        });
        if stuck {
            return; // `processing` for ever
        }
        {
            use sha2::Digest;
            let digest = hex::encode(sha2::Sha256::digest(&document));
            if let Some(job) = self.lock().jobs.get_mut(&id) {
                job.document_sha256 = Some(digest);
            }
        }
        let outcome = {
            // The semaphore is never closed.
            let _slot = self.ocr_slots.acquire().await;
            engine::recognize(
                self.engine,
                &document,
                self.twins.max_pages.unwrap_or(engine::MAX_PAGES),
            )
            .await
        };
        let (status, result, error) = {
            let mut inner = self.lock();
            let profile = inner
                .jobs
                .get(&id)
                .map(|j| j.profile.clone())
                .unwrap_or_default();
            let subject = inner
                .jobs
                .get(&id)
                .map_or_else(|| id.clone(), |j| j.subject().to_owned());
            match outcome {
                _ if inner.strikes_for(Fault::FailedJob, &subject) => (
                    Status::Failed,
                    None,
                    Some(JobError {
                        code: "processing_failed".into(),
                        message: "the vendor could not process the document (simulated failure)"
                            .into(),
                    }),
                ),
                Err(e) => (
                    Status::Failed,
                    None,
                    Some(JobError {
                        code: match e {
                            engine::EngineError::Unreadable(_) => "unreadable_document",
                            _ => "engine_error",
                        }
                        .into(),
                        message: e.to_string(),
                    }),
                ),
                Ok(pages) => {
                    let mut fields = fields::extract(&profile, &pages);
                    let mut page_fields: Vec<_> = pages
                        .iter()
                        .map(|p| fields::extract(&profile, std::slice::from_ref(p)))
                        .collect();
                    // A silent model update: same status, same shape, one field read worse.
                    if let Some(update) = inner.dice.config.model_update.clone() {
                        if update.affects(&profile, &document, inner.dice.config.seed) {
                            let mut changed = update.apply(&mut fields);
                            for page in &mut page_fields {
                                changed |= update.apply(page);
                            }
                            if changed {
                                inner.stats.model_updated += 1;
                            }
                        }
                    }
                    let line_items = fields::line_items(&profile, &pages);
                    let drifted = inner.strikes_for(Fault::Drift, &subject);
                    let native = inner
                        .jobs
                        .get(&id)
                        .is_some_and(|j| j.protocol == Protocol::Native);
                    if let Some(job) = inner.jobs.get_mut(&id) {
                        job.output = Some(Output {
                            pages: pages.clone(),
                            fields: fields.clone(),
                            page_fields,
                            line_items: line_items.clone(),
                            drifted: drifted && !native,
                        });
                    }
                    let mut result = json!({
                        "id": id,
                        "status": Status::Succeeded,
                        "profile": profile,
                        "engine": self.engine,
                        "model_version": inner.dice.config.model_version,
                        "pages": pages,
                        "fields": fields,
                        "line_items": line_items,
                        "billing": { "pages": pages.len() },
                        "completed_at": chrono::Utc::now().to_rfc3339(),
                    });
                    for page in &pages {
                        let path = serde_json::to_value(page.path)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default();
                        *inner.stats.pages_by_path.entry(path).or_default() += 1;
                    }
                    inner.stats.billed_pages += pages.len() as u64;
                    if let Some(job) = inner.jobs.get_mut(&id) {
                        job.pages = pages.len() as u32;
                    }
                    if drifted && native {
                        let kind = *inner.dice.pick_for(&DRIFTS, "drift_kind", &subject);
                        apply_drift(&mut result, kind);
                        *inner.stats.drift_by_kind.entry(kind.into()).or_default() += 1;
                    } else if drifted {
                        *inner
                            .stats
                            .drift_by_kind
                            .entry("protocol".into())
                            .or_default() += 1;
                    }
                    (Status::Succeeded, Some(result), None)
                }
            }
        };
        {
            let mut inner = self.lock();
            let subject = inner
                .jobs
                .get(&id)
                .map_or_else(|| id.clone(), |j| j.subject().to_owned());
            let succeeded = status == Status::Succeeded;
            let expired = succeeded && inner.strikes_for(Fault::ResultExpired, &subject);
            let oversized = succeeded && inner.strikes_for(Fault::OversizedResult, &subject);
            let padding = inner.dice.config.oversized_result_bytes;
            if let Some(job) = inner.jobs.get_mut(&id) {
                job.result = result.map(|mut r| {
                    if oversized {
                        pad(&mut r, padding);
                    }
                    r
                });
                job.error = error;
                job.processing_ms = Some(job.received.elapsed().as_millis() as u64);
                job.expired = expired;
                job.oversized = oversized;
            }
        }
        self.change_status(&id, status, held_back);
    }

    /// Sets the status and emits its webhook. Returns a `processing` event held back by the
    /// out-of-order fault; pass it to the final status change, which sends it afterwards.
    fn change_status(
        self: &Arc<Self>,
        id: &str,
        status: Status,
        held_back: Option<Outgoing>,
    ) -> Option<Outgoing> {
        let now = chrono::Utc::now();
        let mut deliveries = Vec::new();
        let mut hold = None;
        {
            let mut inner = self.lock();
            inner.set_status(id, status, now.timestamp());
            let job = inner.jobs.get(id)?;
            match &job.protocol {
                Protocol::Native => {}
                // Other protocols speak only when a job ends, each in its own way.
                _ if !status.is_final() => return None,
                Protocol::Textract(_) => {
                    let job = job.clone();
                    drop(inner);
                    textract::notify(self, job);
                    return None;
                }
                Protocol::Mindee(_) => {
                    let job = job.clone();
                    drop(inner);
                    mindee::notify(self, job);
                    return None;
                }
                Protocol::Azure(_) => return None,
            }
            let body = json!({
                "type": "document.status_changed",
                "timestamp": now.to_rfc3339(),
                "data": {
                    "id": job.id,
                    "status": status,
                    "profile": job.profile,
                    "external_ref": job.external_ref,
                    "idempotency_key": job.idempotency_key,
                    "error": job.error,
                }
            });
            let genuine = Outgoing {
                subject: job.subject().to_owned(),
                msg_id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
                body: Bytes::from(body.to_string()),
                kind: DeliveryKind::Genuine,
                delay: Duration::ZERO,
                backdate_secs: 0,
                completes: status.is_final().then(|| id.to_owned()),
            };
            // Each status change of a job rolls its own webhook faults.
            let event = format!("{}:{}", job.subject(), status.as_str());
            if inner.webhook.url.is_none() {
                inner.stats.webhooks_without_endpoint += 1;
            } else if inner.strikes_for(Fault::LostWebhook, &event) {
                // Never sent: the receiver must find out by polling.
            } else if status == Status::Processing && inner.strikes_for(Fault::OutOfOrder, &event) {
                hold = Some(Outgoing {
                    kind: DeliveryKind::OutOfOrder,
                    ..genuine
                });
            } else {
                deliveries.extend(inject_webhook_faults(&mut inner, genuine, &event));
            }
        }
        if let Some(held) = held_back {
            // After the final status: a stale `processing` arrives last.
            deliveries.push(Outgoing {
                delay: deliveries.iter().map(|d| d.delay).max().unwrap_or_default()
                    + Duration::from_millis(200),
                ..held
            });
        }
        for delivery in deliveries {
            self.spawn_delivery(delivery);
        }
        hold
    }

    fn spawn_delivery(self: &Arc<Self>, delivery: Outgoing) {
        let sim = Arc::clone(self);
        tokio::spawn(async move { sim.deliver(delivery).await });
    }

    async fn deliver(self: Arc<Self>, delivery: Outgoing) {
        self.hold_delivery(&delivery.subject, delivery.delay).await;
        let schedule = self.lock().webhook.retry_schedule.clone();
        let waits = std::iter::once(Duration::ZERO).chain(schedule);
        let mut first = true;
        for wait in waits {
            tokio::time::sleep(wait).await;
            let (url, keys) = {
                let inner = self.lock();
                (inner.webhook.url.clone(), inner.webhook.keys.clone())
            };
            let Some(url) = url else { return };
            let timestamp = chrono::Utc::now().timestamp() - delivery.backdate_secs;
            let signature = if delivery.kind == DeliveryKind::Forged {
                // A signature made with a key nobody holds.
                webhooks::sign(&[0x42; 32], &delivery.msg_id, timestamp, &delivery.body)
            } else {
                webhooks::signature_header(&keys, &delivery.msg_id, timestamp, &delivery.body)
            };
            if first {
                *self
                    .lock()
                    .stats
                    .webhooks_sent
                    .entry(delivery.kind)
                    .or_default() += 1;
                first = false;
            }
            let response = self
                .http
                .post(&url)
                .header("content-type", "application/json")
                .header("webhook-id", &delivery.msg_id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .body(delivery.body.clone())
                .send()
                .await;
            let ok = matches!(&response, Ok(r) if r.status().is_success());
            let mut inner = self.lock();
            if ok {
                inner.stats.webhook_deliveries_ok += 1;
                if delivery.kind.retries() {
                    if let Some(job) = delivery
                        .completes
                        .as_ref()
                        .and_then(|id| inner.jobs.get_mut(id))
                    {
                        job.completion_acked = true;
                    }
                }
                return;
            }
            inner.stats.webhook_attempts_failed += 1;
            if !delivery.kind.retries() {
                return;
            }
        }
        self.lock().stats.webhooks_exhausted += 1;
    }
}

/// The deliveries for one genuine event (`event`: the job's subject and status), after the
/// webhook faults had their say.
fn inject_webhook_faults(inner: &mut Inner, genuine: Outgoing, event: &str) -> Vec<Outgoing> {
    let mut out = Vec::new();
    let config = inner.dice.config.clone();
    if inner.strikes_for(Fault::BadSignature, event) {
        // The forgery arrives first, under the genuine id: a receiver that dedupes before it
        // verifies would then drop the real delivery.
        out.push(Outgoing {
            kind: DeliveryKind::Forged,
            ..genuine.clone()
        });
    }
    let mut main = genuine.clone();
    if inner.strikes_for(Fault::DelayedWebhook, event) {
        main.kind = DeliveryKind::Delayed;
        main.delay = Duration::from_millis(config.webhook_delay_ms);
    } else if !out.is_empty() {
        main.delay = Duration::from_millis(100);
    }
    out.push(main.clone());
    if inner.strikes_for(Fault::DuplicateWebhook, event) {
        out.push(Outgoing {
            kind: DeliveryKind::Duplicate,
            delay: main.delay + Duration::from_millis(100),
            ..genuine.clone()
        });
    }
    if inner.strikes_for(Fault::Replay, event) {
        out.push(Outgoing {
            kind: DeliveryKind::Replay,
            delay: main.delay + Duration::from_millis(150),
            backdate_secs: i64::try_from(config.replay_age_ms / 1_000).unwrap_or(i64::MAX),
            ..genuine
        });
    }
    out
}

/// Pads a result (an object) to about `bytes` with a field no reader looks at: a result too
/// large to take in one piece, whatever else it holds.
pub(crate) fn pad(result: &mut Value, bytes: usize) {
    if let Some(object) = result.as_object_mut() {
        object.insert("padding".into(), Value::String("x".repeat(bytes)));
    }
}

const DRIFTS: [&str; 3] = ["renamed_field", "missing_field", "new_enum_value"];

/// Changes the result's shape the way vendors do between API versions.
fn apply_drift(result: &mut Value, kind: &str) {
    let Some(pages) = result.get_mut("pages").and_then(Value::as_array_mut) else {
        return;
    };
    for page in pages {
        match kind {
            "renamed_field" => {
                for line in page
                    .get_mut("lines")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    if let Some(obj) = line.as_object_mut() {
                        if let Some(c) = obj.remove("confidence") {
                            obj.insert("score".into(), c);
                        }
                    }
                }
            }
            "missing_field" => {
                if let Some(obj) = page.as_object_mut() {
                    obj.remove("width");
                    obj.remove("height");
                }
            }
            _ => {
                page["path"] = Value::String("neural_v2".into());
            }
        }
    }
}

/// A running simulator.
pub struct RunningSim {
    pub addr: SocketAddr,
    pub sim: Arc<Sim>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningSim {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Binds and serves until [`RunningSim::stop`].
pub async fn start(config: SimConfig) -> Result<RunningSim, StartError> {
    let sim = Arc::new(Sim::new(&config)?);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let (tx, rx) = oneshot::channel();
    let router = api::router(Arc::clone(&sim));
    let task = tokio::spawn(server::serve(listener, router, rx));
    Ok(RunningSim {
        addr,
        sim,
        shutdown: Some(tx),
        task,
    })
}
