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
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessageAttribute};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
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
    State(webhook): State<Arc<Webhook>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let now = (UnixMillis::now().0 / 1000) as i64;
    let reply = webhook.handle("POST", &headers, &body, now).await;
    StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
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
        let app = axum::Router::new()
            .route("/", axum::routing::post(receive_webhook))
            .with_state(webhook.clone());
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
            options,
        };
        Ok(pipeline)
    }

    async fn receive(&self, queue_url: &str, max: i32) -> Vec<Message> {
        self.clients
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
            .unwrap_or_default()
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
        for m in messages {
            if failed.iter().any(|f| Some(f.as_str()) == m.message_id()) {
                continue;
            }
            if let Some(handle) = m.receipt_handle() {
                let _ = self
                    .clients
                    .sqs
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await;
            }
        }
    }

    /// One round of every event source: `concurrency` invocations of each function at once, as
    /// Lambda runs them (submit's is capped by `ScalingConfig.MaximumConcurrency` in the template).
    /// Returns how many messages were handled.
    pub async fn pump_once(&self) -> usize {
        let rounds = (0..self.options.concurrency.max(1)).map(|_| self.invoke_each());
        let handled: usize = futures::future::join_all(rounds).await.into_iter().sum();
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
        if due {
            self.reconcile.run(UnixMillis::now()).await;
        }
        handled
    }

    /// One invocation of each function with a batch from its queue, concurrently.
    async fn invoke_each(&self) -> usize {
        let deadline = || UnixMillis::now().plus(Duration::from_secs(30));
        let intake = async {
            let batch = self
                .receive(&self.config.intake_queue_url, self.batch_sizes["intake"])
                .await;
            if batch.is_empty() {
                return 0;
            }
            let response = self.intake.handle_sqs(Self::event(&batch, "intake")).await;
            let failed: Vec<String> = response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect();
            self.acknowledge(&self.config.intake_queue_url, &batch, &failed)
                .await;
            batch.len()
        };
        let submit = async {
            let batch = self
                .receive(&self.config.submit_queue_url, self.batch_sizes["submit"])
                .await;
            if batch.is_empty() {
                return 0;
            }
            let response = self
                .submit
                .handle_sqs(Self::event(&batch, "submit"), deadline())
                .await;
            let failed: Vec<String> = response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect();
            self.acknowledge(&self.config.submit_queue_url, &batch, &failed)
                .await;
            batch.len()
        };
        let results = async {
            let batch = self
                .receive(&self.config.results_queue_url, self.batch_sizes["results"])
                .await;
            if batch.is_empty() {
                return 0;
            }
            let response = self
                .parse
                .handle_sqs(Self::event(&batch, "results"), deadline())
                .await;
            let failed: Vec<String> = response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect();
            self.acknowledge(&self.config.results_queue_url, &batch, &failed)
                .await;
            batch.len()
        };
        let (a, b, c) = tokio::join!(intake, submit, results);
        a + b + c
    }
}
