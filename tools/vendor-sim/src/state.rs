//! The simulator's in-memory state: jobs, idempotency keys, API keys, webhook settings, counters.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::faults::{Fault, FaultDice};
use crate::webhooks::DeliveryKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Processing,
    Succeeded,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Processing => "processing",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobError {
    pub code: String,
    pub message: String,
}

/// Which vendor's API a job came in through: it decides how the job is rendered and how its
/// completion goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// The simulator's own API: Standard Webhooks on every status change.
    Native,
    /// Textract's asynchronous APIs: one SNS notification when the job ends.
    Textract(crate::textract::TextractJob),
    /// Azure Document Intelligence: nothing is pushed; the operation is polled.
    Azure(crate::azure::AzureJob),
    /// Mindee v2: a signed webhook to each of the job's webhook ids when it ends.
    Mindee(crate::mindee::MindeeJob),
}

#[derive(Debug, Clone)]
pub struct SimJob {
    pub id: String,
    pub status: Status,
    pub protocol: Protocol,
    /// The simulator's extraction profile (`receipt`, `invoice`, `generic`, or `financial`:
    /// both receipt and invoice fields, for vendors whose model reads either).
    pub profile: String,
    pub external_ref: Option<String>,
    pub idempotency_key: Option<String>,
    /// What makes two submissions "the same request" for the idempotency key.
    pub fingerprint: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub pages: u32,
    /// The native API's result document.
    pub result: Option<Value>,
    /// What the engine read, for the other protocols to render in their own shapes.
    pub output: Option<Output>,
    pub error: Option<JobError>,
    /// When the submission arrived, before the document was fetched.
    pub received: std::time::Instant,
    /// The vendor's own time for the job, from the submission's arrival (document fetch, queue
    /// wait, OCR) to its final status. What a pipeline-overhead figure subtracts.
    pub processing_ms: Option<u64>,
    /// The `result_expired` fault struck: the vendor has forgotten the finished job.
    pub expired: bool,
    /// The `oversized_result` fault struck: the result is padded to `oversized_result_bytes`.
    pub oversized: bool,
    /// A delivery of the job's final status (webhook) was answered 2xx by the receiver: the
    /// vendor considers the completion delivered and will not send it again.
    pub completion_acked: bool,
    /// The answer to the submission that made the job went out whole: no fault cut it
    /// ([`crate::Cut`]). The client holds the job's id, so losing it is the client's doing.
    pub answer_sent: bool,
    /// SHA-256 (hex) of the document the engine read: which bytes the client sent, e.g. an
    /// upload's prepared copy rather than the upload.
    pub document_sha256: Option<String>,
}

impl SimJob {
    /// Whether the vendor no longer has the finished job (the `result_expired` fault, or its
    /// results kept only `ttl`).
    pub fn is_gone(&self, ttl: std::time::Duration) -> bool {
        self.status.is_final() && (self.expired || self.received.elapsed() > ttl)
    }

    /// What per-document faults are keyed by (`faults`): the reference the job was submitted
    /// with, or its own id when it came without one.
    pub fn subject(&self) -> &str {
        self.external_ref.as_deref().unwrap_or(&self.id)
    }

    /// The public view of a job, as `GET /v1/documents/{id}` returns it.
    pub fn view(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "status": self.status,
            "profile": self.profile,
            "external_ref": self.external_ref,
            "idempotency_key": self.idempotency_key,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "pages": self.pages,
            "error": self.error,
            "processing_ms": self.processing_ms,
        })
    }
}

/// How the vendor treats a repeated `Idempotency-Key`. Real vendors differ, and ocrbridge's
/// exactly-once guarantee must hold for all of them (`../shared/VENDORS.md`):
/// - `native`: the same key returns the same job forever (the simulator's original behaviour);
/// - `expiring`: as `native`, but a key is forgotten `ttl_ms` after its job was created, like
///   Textract's `ClientRequestToken` (7 days) — a resubmission after that is a new, billed job;
/// - `none`: the header is ignored and there is no lookup by key, like Azure Document
///   Intelligence and Mindee: every accepted submission is a new job and a new charge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Idempotency {
    #[default]
    Native,
    Expiring {
        ttl_ms: u64,
    },
    None,
}

impl Idempotency {
    /// Parses the `--idempotency` flag: `native`, `none` or `expiring:SECONDS`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        match spec.trim() {
            "native" => Ok(Idempotency::Native),
            "none" => Ok(Idempotency::None),
            other => other
                .strip_prefix("expiring:")
                .and_then(|secs| secs.parse::<f64>().ok())
                .filter(|secs| secs.is_finite() && *secs > 0.0)
                .map(|secs| Idempotency::Expiring {
                    ttl_ms: (secs * 1000.0) as u64,
                })
                .ok_or_else(|| {
                    format!("idempotency {other:?}: use native, none or expiring:SECONDS")
                }),
        }
    }

    /// Whether a key remembered since `since` still counts now.
    pub fn remembers(self, since: std::time::Instant) -> bool {
        match self {
            Idempotency::Native => true,
            Idempotency::Expiring { ttl_ms } => since.elapsed() < Duration::from_millis(ttl_ms),
            Idempotency::None => false,
        }
    }
}

/// The engine's reading of a document: its pages, and the fields the simulator extracted.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub pages: Vec<crate::engine::Page>,
    /// Fields of the whole document.
    pub fields: BTreeMap<String, crate::fields::Field>,
    /// Fields page by page (Textract's expense documents are per page here).
    pub page_fields: Vec<BTreeMap<String, crate::fields::Field>>,
    /// The item rows, each with its page.
    pub line_items: Vec<crate::fields::ItemReading>,
    /// A drift fault struck this job: each protocol changes its shape its own way.
    pub drifted: bool,
}

/// Where webhooks go and what signs them.
#[derive(Debug, Clone, Default)]
pub struct WebhookSettings {
    pub url: Option<String>,
    /// Decoded keys of the active `whsec_` secrets; every delivery is signed with each.
    pub keys: Vec<Vec<u8>>,
    pub retry_schedule: Vec<Duration>,
}

/// Ground truth for tests and chaos runs: `GET /admin/stats`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub requests: u64,
    pub unauthorized: u64,
    pub forbidden: u64,
    /// Every `POST /v1/documents` that passed authentication and the request faults.
    pub submit_requests: u64,
    /// Accepted submissions that made a new job (each one billed).
    pub accepted_submissions: u64,
    /// New jobs whose `external_ref` already had a job: a second charge for a document the
    /// client had already sent. The client cannot see this number; it is the ground truth its
    /// exactly-once guarantee is checked against.
    pub duplicate_jobs: u64,
    /// Submissions answered with an existing job because of their `Idempotency-Key`.
    pub idempotent_replays: u64,
    /// Same key, different parameters: `409`.
    pub idempotency_conflicts: u64,
    /// Status and result reads, every protocol (Azure counts them against its TPS).
    pub status_requests: u64,
    /// Textract completion messages published to SNS.
    pub notifications_published: u64,
    /// Billed once per accepted submission (new job); never for a replay.
    pub billed_documents: u64,
    /// Pages of jobs that were processed (succeeded), billed once per job.
    pub billed_pages: u64,
    /// Submissions refused for more pages than `TwinSettings::max_pages` (never billed).
    pub too_many_pages: u64,
    pub jobs_by_status: BTreeMap<Status, u64>,
    /// Deliveries by why they were sent (first attempt only).
    pub webhooks_sent: BTreeMap<DeliveryKind, u64>,
    /// Attempts the receiver answered with 2xx.
    pub webhook_deliveries_ok: u64,
    /// Attempts that failed (non-2xx or network) and were retried or given up.
    pub webhook_attempts_failed: u64,
    /// Deliveries that ran out of retries.
    pub webhooks_exhausted: u64,
    /// Events not sent because no webhook URL is configured.
    pub webhooks_without_endpoint: u64,
    pub faults_injected: BTreeMap<Fault, u64>,
    /// Drift faults by the kind of change made to the result.
    pub drift_by_kind: BTreeMap<String, u64>,
    /// Pages by how their text was obtained.
    pub pages_by_path: BTreeMap<String, u64>,
    /// Results the model-update fault changed (silently: each was still a success).
    pub model_updated: u64,
}

#[derive(Debug)]
pub struct Inner {
    pub jobs: HashMap<String, SimJob>,
    /// Key → the job it made, when, and how long the key is remembered.
    pub by_idempotency_key: HashMap<String, (String, std::time::Instant, Idempotency)>,
    pub idempotency: Idempotency,
    /// `external_ref` → every job made for it, oldest first.
    pub by_external_ref: HashMap<String, Vec<String>>,
    pub api_keys: BTreeSet<String>,
    pub webhook: WebhookSettings,
    pub dice: FaultDice,
    pub stats: Stats,
    /// Mindee's per-minute request counts.
    pub mindee_minute: crate::mindee::MinuteWindow,
    /// Mindee's webhook endpoints, by webhook id.
    pub mindee_webhooks: BTreeMap<String, crate::mindee::Endpoint>,
    /// Job id → the `X-Amzn-Trace-Id` its submission carried (`/admin/traces`): what a vendor
    /// that traces would join.
    pub traces: BTreeMap<String, String>,
}

impl Inner {
    /// The job a still-remembered idempotency key made.
    pub fn job_for_key(&self, key: &str) -> Option<&SimJob> {
        let (id, since, memory) = self.by_idempotency_key.get(key)?;
        if !memory.remembers(*since) {
            return None;
        }
        self.jobs.get(id)
    }

    /// Stores a new, billed job, and counts it as a duplicate if its reference already had one.
    /// Its key is remembered as `memory` says.
    pub fn insert_new_job(&mut self, job: SimJob, memory: Option<Idempotency>) {
        if let (Some(key), Some(memory)) = (&job.idempotency_key, memory) {
            if memory != Idempotency::None {
                self.by_idempotency_key.insert(
                    key.clone(),
                    (job.id.clone(), std::time::Instant::now(), memory),
                );
            }
        }
        if let Some(reference) = &job.external_ref {
            let jobs = self.by_external_ref.entry(reference.clone()).or_default();
            if !jobs.is_empty() {
                self.stats.duplicate_jobs += 1;
            }
            jobs.push(job.id.clone());
        }
        *self.stats.jobs_by_status.entry(job.status).or_default() += 1;
        self.stats.accepted_submissions += 1;
        self.stats.billed_documents += 1;
        self.jobs.insert(job.id.clone(), job);
    }

    /// Rolls a request fault for request number `request` and counts it if it strikes.
    pub fn strikes(&mut self, fault: Fault, request: u64) -> bool {
        let hit = self.dice.roll(fault, request);
        if hit {
            self.count_fault(fault);
        }
        hit
    }

    /// Whether `fault` is forced on `subject` (see `FaultDice::forced_for`); counted if so.
    pub fn forced_for(&mut self, fault: Fault, subject: &str) -> bool {
        let hit = self.dice.forced_for(fault, subject);
        if hit {
            self.count_fault(fault);
        }
        hit
    }

    /// Rolls a per-document fault for `subject` (see `faults`) and counts it if it strikes.
    pub fn strikes_for(&mut self, fault: Fault, subject: &str) -> bool {
        let hit = self.dice.roll_for(fault, subject);
        if hit {
            self.count_fault(fault);
        }
        hit
    }

    pub fn count_fault(&mut self, fault: Fault) {
        *self.stats.faults_injected.entry(fault).or_default() += 1;
    }

    pub fn set_status(&mut self, id: &str, status: Status, now: i64) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        let previous = job.status;
        job.status = status;
        job.updated_at = now;
        let counts = &mut self.stats.jobs_by_status;
        if let Some(n) = counts.get_mut(&previous) {
            *n = n.saturating_sub(1);
        }
        *counts.entry(status).or_default() += 1;
    }
}
