//! The whole pipeline on the local stack, in one process: moto for AWS, the vendor simulator,
//! the webhook function behind a real HTTP endpoint, and the SQS event sources emulated with
//! Lambda's semantics.
//!
//! Event sources, as Lambda runs them:
//! - each queue is polled with the batch size `template.yaml` gives its function;
//! - records the handler reports in `batchItemFailures` stay on the queue (their visibility is
//!   whatever the handler set, or the queue's timeout); the others are deleted;
//! - the redrive policy moves a message to its DLQ after `maxReceiveCount` receives (moto does
//!   this, as SQS does);
//! - reconcile runs on a fixed interval, like its schedule.
//!
//! `crash_rate` emulates a function killed after its side effects and before its acknowledgement:
//! the batch is handled, then not deleted, so every message comes back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessageAttribute};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use intake::{Intake, IntakeConfig};
use ocrbridge::aws::AwsClients;
use ocrbridge::blob::Blob;
use ocrbridge::config::StackConfig;
use ocrbridge::keyring::{Keyring, Stage};
use ocrbridge::ledger::Ledger;
use ocrbridge::metrics::Metrics;
use ocrbridge::queue::Queue;
use ocrbridge::retry::{Backoff, Budgets};
use ocrbridge::rules::RuleConfig;
use ocrbridge::time::UnixMillis;
use ocrbridge::vendor::sim::{http_client, HttpTimeouts, SimVendor};
use parse::{Parse, ParseConfig};
use rand::Rng;
use reconcile::{Reconcile, ReconcileConfig};
use submit::{Submit, SubmitConfig};
use vendor_sim::engine::EngineKind;
use vendor_sim::faults::FaultConfig;
use vendor_sim::{RunningSim, SimConfig};
use webhook::{Webhook, WebhookConfig};

use crate::provision::LocalStack;
use crate::rie::Emulated;

/// How to run the local pipeline.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    pub engine: EngineKind,
    pub faults: FaultConfig,
    /// Probability that a handled batch is not acknowledged (a crash after the side effects).
    pub crash_rate: f64,
    /// When a crashed batch comes back. Lambda leaves it invisible for the queue's visibility
    /// timeout (minutes); locally that is shortened so a run finishes, with the same semantics.
    pub crash_redelivery: Duration,
    pub reconcile_every: Duration,
    /// Concurrent invocations per function.
    pub concurrency: usize,
    /// The vendor rate limit the submit function admits work at (`VENDOR_RATE_LIMIT_RPS`).
    pub vendor_rps: f64,
    /// Run the real function binaries from this directory (e.g. `target/debug`) under the
    /// Runtime Interface Emulator instead of calling the handlers in-process.
    pub binaries: Option<std::path::PathBuf>,
    /// Seconds a Submitted job may wait for its webhook before reconcile polls.
    pub submitted_stale: Duration,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            engine: EngineKind::Tesseract,
            faults: FaultConfig::default(),
            crash_rate: 0.0,
            crash_redelivery: Duration::from_secs(2),
            reconcile_every: Duration::from_secs(5),
            concurrency: 2,
            vendor_rps: 50.0,
            submitted_stale: Duration::from_secs(10),
            binaries: None,
        }
    }
}

pub struct Pipeline {
    pub clients: AwsClients,
    pub config: StackConfig,
    pub sim: RunningSim,
    pub intake: Intake,
    pub submit: Submit<SimVendor>,
    pub webhook: Arc<Webhook>,
    pub parse: Parse<SimVendor>,
    pub reconcile: Reconcile<SimVendor>,
    batch_sizes: BTreeMap<&'static str, i32>,
    options: PipelineOptions,
    last_reconcile: std::sync::Mutex<Instant>,
    /// Batches left unacknowledged by the crash fault.
    pub crashes: std::sync::atomic::AtomicU64,
    /// The requests the emulated event sources made, as Lambda's pollers would.
    pub event_sources: EventSourceCounters,
    /// The binaries under the emulator, in binaries mode.
    pub binaries: Option<Binaries>,
}

/// The SQS event source mappings of the template: which queue feeds which function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventSource {
    Intake,
    Submit,
    /// The results queue, feeding parse.
    Results,
}

/// How long an idle poller waits before asking again (Lambda long-polls; this is close enough
/// without holding a moto thread per poller).
const IDLE_POLL: Duration = Duration::from_millis(50);

/// What the emulated event source mappings asked of SQS. Lambda's pollers make the same calls and
/// they are billed to the queue's owner; the ones that return messages scale with the documents,
/// the empty ones are a fixed cost of polling.
#[derive(Debug, Default)]
pub struct EventSourceCounters {
    pub receives_with_messages: std::sync::atomic::AtomicU64,
    pub empty_receives: std::sync::atomic::AtomicU64,
    pub delete_batches: std::sync::atomic::AtomicU64,
}

impl EventSourceCounters {
    fn add(counter: &std::sync::atomic::AtomicU64) {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn get(counter: &std::sync::atomic::AtomicU64) -> u64 {
        counter.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The function binaries, each under its own emulator.
pub struct Binaries {
    pub intake: Emulated,
    pub submit: Emulated,
    pub parse: Emulated,
    pub reconcile: Emulated,
    pub webhook: Arc<Emulated>,
}

impl Binaries {
    pub fn all(&self) -> [&Emulated; 5] {
        [
            &self.intake,
            &self.submit,
            &self.parse,
            &self.reconcile,
            &self.webhook,
        ]
    }
}

fn ids(response: aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect()
}

/// Where the webhook endpoint sends a delivery.
#[derive(Clone)]
enum WebhookTarget {
    InProcess(Arc<Webhook>),
    /// The webhook binary, sent the Function URL event Lambda would build from the request.
    Binary(Arc<Emulated>),
}

async fn secret(clients: &AwsClients, id: &str) -> Result<String, String> {
    clients
        .secrets
        .get_secret_value()
        .secret_id(id)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .map_err(|e| aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string())?
        .secret_string()
        .map(str::to_owned)
        .ok_or_else(|| "the secret has no value".to_owned())
}

async fn receive_webhook(
    State(target): State<WebhookTarget>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    match target {
        WebhookTarget::InProcess(webhook) => {
            let now = (UnixMillis::now().0 / 1000) as i64;
            let reply = webhook.handle("POST", &headers, &body, now).await;
            StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        }
        WebhookTarget::Binary(function) => {
            let event = function_url_event(&headers, &body);
            match function.invoke(&event).await {
                Ok(response) => response["statusCode"]
                    .as_u64()
                    .and_then(|s| StatusCode::from_u16(s as u16).ok())
                    .unwrap_or(StatusCode::BAD_GATEWAY),
                Err(_) => StatusCode::BAD_GATEWAY,
            }
        }
    }
}

/// The Lambda Function URL event for an HTTP request: headers lowercased, body base64-encoded.
fn function_url_event(headers: &HeaderMap, body: &[u8]) -> serde_json::Value {
    use base64::Engine;
    let headers: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_ascii_lowercase(),
                serde_json::Value::String(v.to_str().ok()?.to_owned()),
            ))
        })
        .collect();
    serde_json::json!({
        "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous", "apiId": "local", "domainName": "localhost", "domainPrefix": "local",
            "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "vendor-sim"},
            "requestId": uuid::Uuid::new_v4().to_string(), "routeKey": "$default", "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": UnixMillis::now().0
        },
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "isBase64Encoded": true
    })
}

/// The environment a function binary runs with locally: the template's, resolved against the
/// local stack, plus what AWS would provide and the local tuning.
pub fn binary_environment(
    stack: &LocalStack,
    endpoint: &str,
    vendor_url: &str,
    options: &PipelineOptions,
) -> Result<BTreeMap<String, String>, String> {
    let mut env = stack.function_environment().map_err(|e| e.to_string())?;
    for (k, v) in [
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("VENDOR_BASE_URL", vendor_url.to_owned()),
        ("VENDOR_TIMEOUT_MS", "5000".into()),
        ("VENDOR_RATE_LIMIT_RPS", options.vendor_rps.to_string()),
        ("RETRY_BUDGET_CAPACITY", "50".into()),
        ("RETRY_BUDGET_REFILL_PER_SEC", "5".into()),
        ("BACKOFF_BASE_MS", "500".into()),
        ("BACKOFF_CAP_SECS", "5".into()),
        ("STUCK_SECS", "20".into()),
        (
            "SUBMITTED_STALE_SECS",
            options.submitted_stale.as_secs().to_string(),
        ),
        ("REQUIRE_ROTATION_ENABLED", "false".into()),
        ("RUST_LOG", "info".into()),
    ] {
        env.insert(k.to_owned(), v);
    }
    Ok(env)
}

/// Tags a function's AWS requests with its name (`app/<name>` in the User-Agent, through the
/// SDK's `AWS_SDK_UA_APP_ID`), so a moto recording says which function made each request.
fn with_app_id(mut env: BTreeMap<String, String>, function: &str) -> BTreeMap<String, String> {
    env.insert("AWS_SDK_UA_APP_ID".into(), function.to_owned());
    env
}

fn batch_size(stack: &LocalStack, function: &str, default: i32) -> i32 {
    stack
        .event_batch_size(function)
        .and_then(|n| i32::try_from(n).ok())
        .unwrap_or(default)
        .clamp(1, 10)
}

impl Pipeline {
    /// Starts the simulator and the webhook endpoint and wires every function to `stack`.
    pub async fn start(
        clients: AwsClients,
        stack: &LocalStack,
        options: PipelineOptions,
    ) -> Result<Self, String> {
        Self::start_at(clients, stack, options, "").await
    }

    /// As [`Self::start`]; `endpoint` is moto's URL, which binaries mode passes to the binaries.
    pub async fn start_at(
        clients: AwsClients,
        stack: &LocalStack,
        options: PipelineOptions,
        endpoint: &str,
    ) -> Result<Self, String> {
        let config = stack.stack_config().map_err(|e| e.to_string())?;
        // The webhook signing secret must be a whsec_ one; the template generates a placeholder
        // for operators to replace, and so do we.
        let whsec = vendor_sim::webhooks::generate_secret();
        clients
            .secrets
            .put_secret_value()
            .secret_id(&config.webhook_secret)
            .secret_string(&whsec)
            .version_stages("AWSCURRENT")
            .send()
            .await
            .map_err(|e| aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string())?;
        let api_key = secret(&clients, &config.vendor_api_key_secret).await?;
        let ledger = Ledger::new(clients.dynamodb.clone(), config.ledger_tables());
        let keyring = |id: &str, stages: &[Stage]| {
            Keyring::new(clients.secrets.clone(), id, stages, Duration::from_secs(60))
        };
        let webhook = Arc::new(Webhook {
            keyring: keyring(
                &config.webhook_secret,
                &[Stage::Current, Stage::Pending, Stage::Previous],
            ),
            ledger: ledger.clone(),
            queue: Queue::new(clients.sqs.clone()),
            metrics: Metrics::memory("webhook"),
            stack: config.clone(),
            config: WebhookConfig::from_lookup(|_| None),
        });
        let root = crate::template_path().with_file_name("");
        let log_dir = root.join(".local");
        std::fs::create_dir_all(&log_dir).map_err(|e| e.to_string())?;
        let emulator = match &options.binaries {
            Some(_) => Some(crate::rie::emulator(&root)?),
            None => None,
        };
        let webhook_binary = match (&options.binaries, &emulator) {
            (Some(dir), Some(rie)) => Some(Arc::new(Emulated::start(
                rie,
                &dir.join("webhook"),
                &with_app_id(
                    binary_environment(stack, endpoint, "http://127.0.0.1:9", &options)?,
                    "webhook",
                ),
                &log_dir,
            )?)),
            _ => None,
        };
        let target = match &webhook_binary {
            Some(binary) => WebhookTarget::Binary(binary.clone()),
            None => WebhookTarget::InProcess(webhook.clone()),
        };
        let app = axum::Router::new()
            .route("/", axum::routing::post(receive_webhook))
            .with_state(target);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let webhook_url = format!(
            "http://{}/",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        tokio::spawn(async move { axum::serve(listener, app).await });

        let sim = vendor_sim::start(SimConfig {
            listen: "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
            api_keys: vec![api_key],
            webhook_url: Some(webhook_url),
            webhook_secrets: vec![whsec],
            webhook_retry_schedule: vec![
                Duration::from_millis(500),
                Duration::from_secs(2),
                Duration::from_secs(5),
            ],
            faults: options.faults.clone(),
            engine: options.engine,
            ocr_concurrency: 2,
            ..SimConfig::default()
        })
        .await
        .map_err(|e| e.to_string())?;
        let vendor = || {
            Ok::<_, String>(SimVendor::new(
                http_client(HttpTimeouts {
                    connect: Duration::from_secs(1),
                    request: Duration::from_secs(5),
                })
                .map_err(|e| e.to_string())?,
                sim.base_url(),
                keyring(&config.vendor_api_key_secret, &[Stage::Current]),
            ))
        };
        let binaries = match (&options.binaries, &emulator, webhook_binary) {
            (Some(dir), Some(rie), Some(webhook)) => {
                let env = binary_environment(stack, endpoint, &sim.base_url(), &options)?;
                let start = |name: &str| {
                    Emulated::start(
                        rie,
                        &dir.join(name),
                        &with_app_id(env.clone(), name),
                        &log_dir,
                    )
                };
                Some(Binaries {
                    intake: start("intake")?,
                    submit: start("submit")?,
                    parse: start("parse")?,
                    reconcile: start("reconcile")?,
                    webhook,
                })
            }
            _ => None,
        };
        let backoff = Backoff {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(5),
        };
        let pipeline = Pipeline {
            intake: Intake {
                blob: Blob::new(clients.s3.clone()),
                queue: Queue::new(clients.sqs.clone()),
                ledger: ledger.clone(),
                metrics: Metrics::memory("intake"),
                stack: config.clone(),
                config: IntakeConfig::default(),
            },
            submit: Submit {
                vendor: vendor()?,
                ledger: ledger.clone(),
                blob: Blob::new(clients.s3.clone()),
                queue: Queue::new(clients.sqs.clone()),
                metrics: Metrics::memory("submit"),
                stack: config.clone(),
                config: SubmitConfig {
                    vendor_base_url: sim.base_url(),
                    vendor_timeout: Duration::from_secs(5),
                    max_age: Duration::from_secs(3600),
                    presign_expiry: Duration::from_secs(900),
                    price_per_page: 0.0015,
                    backoff,
                    max_admission_wait: Duration::from_secs(2),
                },
                budgets: Budgets::for_vendor("sim", |k| match k {
                    "VENDOR_RATE_LIMIT_RPS" => Some(options.vendor_rps.to_string()),
                    "RETRY_BUDGET_CAPACITY" => Some("50".into()),
                    "RETRY_BUDGET_REFILL_PER_SEC" => Some("5".into()),
                    _ => None,
                }),
            },
            parse: Parse {
                vendor: vendor()?,
                ledger: ledger.clone(),
                blob: Blob::new(clients.s3.clone()),
                queue: Queue::new(clients.sqs.clone()),
                metrics: Metrics::memory("parse"),
                stack: config.clone(),
                config: ParseConfig {
                    rules: RuleConfig::default(),
                    backoff,
                },
            },
            reconcile: Reconcile {
                vendor: vendor()?,
                ledger,
                queue: Queue::new(clients.sqs.clone()),
                metrics: Metrics::memory("reconcile"),
                stack: config.clone(),
                config: ReconcileConfig {
                    stuck: Duration::from_secs(20),
                    submitted_stale: options.submitted_stale,
                    max_age: Duration::from_secs(3600),
                    batch: 100,
                },
            },
            batch_sizes: BTreeMap::from([
                ("intake", batch_size(stack, "IntakeFunction", 10)),
                ("submit", batch_size(stack, "SubmitFunction", 5)),
                ("results", batch_size(stack, "ParseFunction", 5)),
            ]),
            webhook,
            sim,
            config,
            clients,
            last_reconcile: std::sync::Mutex::new(Instant::now()),
            crashes: Default::default(),
            event_sources: Default::default(),
            binaries,
            options,
        };
        Ok(pipeline)
    }

    async fn receive(&self, queue_url: &str, max: i32) -> Vec<Message> {
        let messages = self
            .clients
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(max)
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .ok()
            .and_then(|o| o.messages)
            .unwrap_or_default();
        EventSourceCounters::add(if messages.is_empty() {
            &self.event_sources.empty_receives
        } else {
            &self.event_sources.receives_with_messages
        });
        messages
    }

    fn event(messages: &[Message], source: &str) -> SqsEvent {
        let mut event = SqsEvent::default();
        for m in messages {
            let mut record = aws_lambda_events::event::sqs::SqsMessage::default();
            record.message_id = m.message_id().map(str::to_owned);
            record.receipt_handle = m.receipt_handle().map(str::to_owned);
            record.body = m.body().map(str::to_owned);
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(source.into());
            for (k, v) in m.attributes().into_iter().flatten() {
                record.attributes.insert(k.as_str().to_owned(), v.clone());
            }
            for (k, v) in m.message_attributes().into_iter().flatten() {
                let mut a = SqsMessageAttribute::default();
                a.string_value = v.string_value().map(str::to_owned);
                a.data_type = Some(v.data_type().to_owned());
                record.message_attributes.insert(k.clone(), a);
            }
            event.records.push(record);
        }
        event
    }

    /// The failed message ids of a binary's answer; a failed invocation fails the whole batch,
    /// as Lambda treats it.
    fn failures(response: Result<serde_json::Value, String>, batch: &[Message]) -> Vec<String> {
        let all = || {
            batch
                .iter()
                .filter_map(|m| m.message_id().map(str::to_owned))
                .collect()
        };
        match response {
            Ok(value) => match value.get("batchItemFailures").and_then(|f| f.as_array()) {
                Some(items) => items
                    .iter()
                    .filter_map(|i| i["itemIdentifier"].as_str().map(str::to_owned))
                    .collect(),
                None => all(),
            },
            Err(_) => all(),
        }
    }

    async fn acknowledge(&self, queue_url: &str, messages: &[Message], failed: &[String]) {
        if self.options.crash_rate > 0.0 && rand::rng().random::<f64>() < self.options.crash_rate {
            // Killed after the side effects, before the acknowledgement: nothing is deleted, and
            // every message of the batch comes back.
            self.crashes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            for m in messages {
                if let Some(handle) = m.receipt_handle() {
                    let _ = self
                        .clients
                        .sqs
                        .change_message_visibility()
                        .queue_url(queue_url)
                        .receipt_handle(handle)
                        .visibility_timeout(self.options.crash_redelivery.as_secs() as i32)
                        .send()
                        .await;
                }
            }
            return;
        }
        // The successful records, deleted in one DeleteMessageBatch as Lambda's poller does.
        let entries: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| !failed.iter().any(|f| Some(f.as_str()) == m.message_id()))
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle()?)
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            return;
        }
        EventSourceCounters::add(&self.event_sources.delete_batches);
        let _ = self
            .clients
            .sqs
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
    }

    /// One round of every event source: `concurrency` invocations of each function at once, as
    /// Lambda runs them (submit's is capped by `ScalingConfig.MaximumConcurrency` in the template).
    /// Returns how many messages were handled. For step-by-step tests; [`Self::run_until`] is the
    /// continuous form.
    pub async fn pump_once(&self) -> usize {
        let rounds = (0..self.options.concurrency.max(1)).map(|_| async {
            let (a, b, c) = tokio::join!(
                self.poll(EventSource::Intake),
                self.poll(EventSource::Submit),
                self.poll(EventSource::Results),
            );
            a + b + c
        });
        let handled: usize = futures::future::join_all(rounds).await.into_iter().sum();
        self.reconcile_if_due().await;
        handled
    }

    /// Runs every event source the way Lambda does until `stop` is set: each queue has its own
    /// `concurrency` pollers, each receiving, invoking and acknowledging on its own, so a slow
    /// batch on one queue holds up nothing else; the schedule fires reconcile on time.
    pub async fn run_until(&self, stop: &AtomicBool) {
        let poller = |source: EventSource| async move {
            while !stop.load(Ordering::Relaxed) {
                if self.poll(source).await == 0 {
                    tokio::time::sleep(IDLE_POLL).await;
                }
            }
        };
        let pollers = [
            EventSource::Intake,
            EventSource::Submit,
            EventSource::Results,
        ]
        .into_iter()
        .flat_map(|source| (0..self.options.concurrency.max(1)).map(move |_| source))
        .map(poller);
        let schedule = async {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(IDLE_POLL).await;
                self.reconcile_if_due().await;
            }
        };
        tokio::join!(futures::future::join_all(pollers), schedule);
    }

    /// Fires the reconcile schedule if `reconcile_every` has passed since it last did.
    async fn reconcile_if_due(&self) {
        let due = {
            let mut last = self
                .last_reconcile
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.elapsed() >= self.options.reconcile_every {
                *last = Instant::now();
                true
            } else {
                false
            }
        };
        if !due {
            return;
        }
        match &self.binaries {
            Some(b) => {
                let _ = b
                    .reconcile
                    .invoke(&serde_json::json!({"source": "aws.scheduler", "detail-type": "Scheduled Event"}))
                    .await;
            }
            None => {
                self.reconcile.run(UnixMillis::now()).await;
            }
        }
    }

    /// One poll of one event source: receive a batch, invoke the function with it, delete what
    /// succeeded. Returns how many messages it handled.
    async fn poll(&self, source: EventSource) -> usize {
        let deadline = || UnixMillis::now().plus(Duration::from_secs(30));
        let (queue_url, name) = match source {
            EventSource::Intake => (&self.config.intake_queue_url, "intake"),
            EventSource::Submit => (&self.config.submit_queue_url, "submit"),
            EventSource::Results => (&self.config.results_queue_url, "results"),
        };
        let batch = self.receive(queue_url, self.batch_sizes[name]).await;
        if batch.is_empty() {
            return 0;
        }
        let event = Self::event(&batch, name);
        let failed = match (&self.binaries, source) {
            (Some(b), _) => {
                let function = match source {
                    EventSource::Intake => &b.intake,
                    EventSource::Submit => &b.submit,
                    EventSource::Results => &b.parse,
                };
                Self::failures(
                    function
                        .invoke(&serde_json::to_value(&event).unwrap_or_default())
                        .await,
                    &batch,
                )
            }
            (None, EventSource::Intake) => ids(self.intake.handle_sqs(event).await),
            (None, EventSource::Submit) => ids(self.submit.handle_sqs(event, deadline()).await),
            (None, EventSource::Results) => ids(self.parse.handle_sqs(event, deadline()).await),
        };
        self.acknowledge(queue_url, &batch, &failed).await;
        batch.len()
    }
}
