//! The whole pipeline on the local stack, in one process: moto for AWS, the vendor simulator,
//! the webhook function behind a real HTTP endpoint, and the SQS event sources emulated with
//! Lambda's semantics. One module per part:
//!
//! - [`event_source`]: the SQS event source mappings (polling, invocation deadlines, partial
//!   batch failures, batched deletes);
//! - [`webhook_endpoint`]: the webhook function's Function URL on loopback;
//! - [`binaries`]: the real function binaries under the Runtime Interface Emulator, and their
//!   environment;
//! - [`chaos`]: crashed, killed and frozen invocations for the chaos run.
//!
//! Reconcile runs on a fixed interval, like its schedule.

pub mod binaries;
pub mod chaos;
mod event_source;
mod webhook_endpoint;

use ocrbridge::vendors::date_order::DateOrderBySource;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use intake::{Intake, IntakeConfig};
use ocrbridge::aws::AwsClients;
use ocrbridge::blob::Blob;
use ocrbridge::breaker::BreakerPolicy;
use ocrbridge::config::StackConfig;
use ocrbridge::cost::Prices;
use ocrbridge::keyring::{Keyring, Stage};
use ocrbridge::ledger::Ledger;
use ocrbridge::metrics::Metrics;
use ocrbridge::queue::Queue;
use ocrbridge::retry::{Backoff, Budgets};
use ocrbridge::rules::RuleConfig;
use ocrbridge::second_opinion::SecondOpinionRules;
use ocrbridge::time::UnixMillis;
use ocrbridge::vendors::ambiguity::AmbiguityPolicy;
use ocrbridge::vendors::poll::PollSchedule;
use ocrbridge::vendors::route::Routes;
use ocrbridge::vendors::select::{AnyVendor, VendorKind, VendorSettings};
use parse::{Parse, ParseConfig};
use reconcile::{Reconcile, ReconcileConfig};
use submit::{Submit, SubmitConfig};
use vendor_sim::engine::EngineKind;
use vendor_sim::faults::FaultConfig;
use vendor_sim::{Idempotency, RunningSim, SimConfig, TwinSettings};
use webhook::{Webhook, WebhookConfig};

pub use binaries::{binary_environment, Binaries};
pub use chaos::{ChaosCounters, ChaosDice, ChaosFault, ChaosOptions, Chaotic, StallingHttpClient};
pub use event_source::{EventSource, EventSourceCounters};

use crate::provision::LocalStack;
use crate::rie::Emulated;
use binaries::with_app_id;
use webhook_endpoint::WebhookTarget;

/// How to run the local pipeline.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Which vendor the functions talk to, through the simulator's twin of it. The stack must be
    /// provisioned with the same `VendorName` (its Textract resources depend on it).
    pub vendor: VendorKind,
    pub engine: EngineKind,
    pub faults: FaultConfig,
    /// How the simulator treats a repeated idempotency key; the adapter is told the same.
    pub idempotency: Idempotency,
    /// The Textract, Azure and Mindee twins' settings (job limits, Retry-After, rate limits…).
    pub twins: TwinSettings,
    /// How long a job waits at the vendor before it is processed.
    pub processing_delay: Duration,
    /// What submit does about a submission whose answer was lost.
    pub ambiguity: AmbiguityPolicy,
    /// Crashes, kills and freezes (in process only).
    pub chaos: ChaosOptions,
    /// When a lost invocation's batch comes back. Lambda leaves it invisible for the queue's
    /// visibility timeout (minutes); locally that is shortened so a run finishes, with the same
    /// semantics.
    pub crash_redelivery: Duration,
    /// Each in-process invocation's deadline, as the function's `Timeout`; the submit and parse
    /// leases end `DEFAULT_LEASE_SAFETY_MARGIN` before it.
    pub invocation_timeout: Duration,
    /// How many invocation timeouts a frozen worker may run on after its batch was given up
    /// (then its future is dropped, as a worker that never lands its write). The crash-point
    /// gate raises it: its longest frozen path — stalled until released (up to 20 s), then for
    /// a lease (5 s) — needs more than four of its 6-s timeouts when the machine is busy. The
    /// chaos runs keep four: a longer bound holds their pollers longer (a run with six did not
    /// settle within its budget).
    pub frozen_limit: u32,
    pub reconcile_every: Duration,
    /// Concurrent invocations per function.
    pub concurrency: usize,
    /// The vendor rate limit the submit function admits work at (`VENDOR_RATE_LIMIT_RPS`).
    pub vendor_rps: f64,
    /// The continuous event sources ([`Pipeline::run_until`]) receive as Lambda's do: a long
    /// poll of a second, answered the moment a message arrives (moto wakes its waiters), so a
    /// message waits for no poller's sleep. Off (the default for tests): an idle poller asks
    /// again after a sleep that doubles up to 400 ms, and holds no moto thread while it waits.
    pub long_poll: bool,
    /// The admission bucket's burst (`VENDOR_RATE_BURST`); `None`: the function's default.
    pub vendor_burst: Option<f64>,
    /// Submit's and parse's `MESSAGE_CONCURRENCY` in process; `None`: the stack's setting, else
    /// each function's default.
    pub submit_concurrency: Option<usize>,
    pub parse_concurrency: Option<usize>,
    /// Run the real function binaries from this directory (e.g. `target/debug`) under the
    /// Runtime Interface Emulator instead of calling the handlers in-process.
    pub binaries: Option<std::path::PathBuf>,
    /// With `binaries`: run them through `sam local start-lambda` (Docker) instead of one bare
    /// emulator each; the event sources invoke SAM's Lambda endpoint.
    pub sam_lambda: bool,
    /// Seconds a Submitted job may wait for its webhook before reconcile polls.
    pub submitted_stale: Duration,
    /// `VENDOR=mindee`: jobs report to a webhook endpoint registered with the twin (else they
    /// are polled).
    pub mindee_webhooks: bool,
    /// Reconcile's `STUCK_SECS`: how long a job may sit in a state before it is nudged.
    pub stuck: Duration,
    /// `MAX_SUBMIT_AGE_SECS` and `MAX_JOB_AGE_SECS`: how long a job may take before it fails.
    pub max_age: Duration,
    /// Settings over the template's, for the functions and the adapters (e.g.
    /// `VENDOR_MAX_RESULT_BYTES`).
    pub environment: Vec<(String, String)>,
    /// Submit's vendor breaker (`BREAKER`, on in a deployed stack). On by default here too,
    /// with a cool-down of 5 s for the minute a stack waits (as `auth_pause` is shortened).
    pub breaker: Option<BreakerPolicy>,
    /// A second vendor and the routes that use it (`VENDOR_ROUTES`).
    pub fallback: Option<FallbackVendor>,
}

/// A second vendor for `VENDOR_ROUTES`, served by a simulator of its own, so that faults put on
/// the first one's (an outage) leave it alone. It takes the stack's API key.
#[derive(Debug, Clone)]
pub struct FallbackVendor {
    pub vendor: VendorKind,
    /// `VENDOR_ROUTES`, e.g. `receipt=sim,azure`.
    pub routes: String,
}

/// The breaker the local pipeline runs with: the deployed defaults, its waits shortened.
pub fn local_breaker() -> BreakerPolicy {
    BreakerPolicy {
        cool_down: Duration::from_secs(5),
        probe_lease: Duration::from_secs(5),
        ..BreakerPolicy::default()
    }
}

/// The Mindee webhook endpoint id the local stack registers with the twin.
pub const LOCAL_MINDEE_WEBHOOK_ID: &str = "ocrbridge-local";
/// The Mindee model id the local stack sends for every profile (the twin takes any).
pub const LOCAL_MINDEE_MODEL: &str = "00000000-0000-4000-8000-00000000f1a0";

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            vendor: VendorKind::Sim,
            engine: EngineKind::Tesseract,
            faults: FaultConfig::default(),
            idempotency: Idempotency::Native,
            twins: TwinSettings::default(),
            processing_delay: Duration::ZERO,
            ambiguity: AmbiguityPolicy::default(),
            chaos: ChaosOptions::default(),
            crash_redelivery: Duration::from_secs(2),
            invocation_timeout: Duration::from_secs(30),
            frozen_limit: 4,
            breaker: Some(local_breaker()),
            reconcile_every: Duration::from_secs(5),
            concurrency: 2,
            vendor_rps: 50.0,
            vendor_burst: None,
            long_poll: false,
            submit_concurrency: None,
            parse_concurrency: None,
            mindee_webhooks: true,
            submitted_stale: Duration::from_secs(10),
            binaries: None,
            sam_lambda: false,
            stuck: Duration::from_secs(20),
            max_age: Duration::from_secs(3600),
            environment: Vec::new(),
            fallback: None,
        }
    }
}

impl PipelineOptions {
    /// `VENDOR_SIM_IDEMPOTENCY` for the binaries: `native`, `none` or `expiring:SECS`.
    pub fn idempotency_spec(&self) -> String {
        match self.idempotency {
            Idempotency::Native => "native".into(),
            Idempotency::None => "none".into(),
            Idempotency::Expiring { ttl_ms } => format!("expiring:{}", ttl_ms as f64 / 1000.0),
        }
    }

    /// What the adapter is told the simulator does with a repeated key.
    pub fn adapter_idempotency(&self) -> ocrbridge::vendors::Idempotency {
        use ocrbridge::vendors::Idempotency as Adapter;
        match self.idempotency {
            Idempotency::Native => Adapter::Native {
                remembers_for: None,
            },
            Idempotency::Expiring { ttl_ms } => Adapter::Native {
                remembers_for: Some(Duration::from_millis(ttl_ms)),
            },
            Idempotency::None => Adapter::None,
        }
    }
}

pub struct Pipeline {
    pub clients: AwsClients,
    pub config: StackConfig,
    pub sim: RunningSim,
    /// The second vendor's simulator, with [`PipelineOptions::fallback`].
    pub fallback_sim: Option<RunningSim>,
    pub intake: Intake,
    pub submit: Submit<Chaotic<AnyVendor>>,
    pub webhook: Arc<Webhook>,
    /// Where the webhook function answers HTTP, as the stack's `WebhookUrl` output would.
    pub webhook_url: String,
    pub parse: Parse<AnyVendor>,
    pub reconcile: Reconcile<AnyVendor>,
    /// The queue Textract's completions arrive on (`VENDOR=textract`).
    pub textract_completions_url: Option<String>,
    batch_sizes: BTreeMap<&'static str, i32>,
    options: PipelineOptions,
    last_reconcile: std::sync::Mutex<Instant>,
    /// What the chaos faults did.
    pub chaos: Arc<ChaosCounters>,
    /// Where they strike (keyed by the seed and what each decision is about).
    chaos_dice: Arc<ChaosDice>,
    /// The requests the emulated event sources made, as Lambda's pollers would.
    pub event_sources: EventSourceCounters,
    /// Lambda's concurrency, as the template sets it (see [`event_source`]).
    concurrency: event_source::Concurrency,
    /// The binaries under the emulator, in binaries mode.
    pub binaries: Option<Binaries>,
    /// `sam local start-lambda`, when the binaries run through it.
    pub sam: Option<crate::sam_lambda::SamLambda>,
}

async fn secret(clients: &AwsClients, id: &str) -> Result<String, String> {
    clients
        .secrets()
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

async fn register_mindee_webhook(sim_url: &str, url: &str, secret: &str) -> Result<(), String> {
    let body = serde_json::json!({ LOCAL_MINDEE_WEBHOOK_ID: { "url": url, "secret": secret } });
    let response = reqwest::Client::new()
        .put(format!("{sim_url}/admin/mindee-webhooks"))
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("registering the Mindee webhook: {e}"))?;
    if !response.status().is_success() {
        return Err(format!(
            "registering the Mindee webhook: {}",
            response.status()
        ));
    }
    Ok(())
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
            .secrets()
            .put_secret_value()
            .secret_id(&config.webhook_secret)
            .secret_string(&whsec)
            .version_stages("AWSCURRENT")
            .send()
            .await
            .map_err(|e| aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string())?;
        let api_key = secret(&clients, &config.vendor_api_key_secret).await?;
        let ledger = Ledger::new(clients.dynamodb.clone(), config.ledger_tables());
        // Each function's EMF records, kept under the namespace the template gives them, for
        // [`Pipeline::publish_metrics`] to hand to CloudWatch.
        let namespace = stack
            .function_environment()
            .ok()
            .and_then(|env| env.get("METRICS_NAMESPACE").cloned())
            .unwrap_or_else(|| "ocrbridge".into());
        let emitter = |function| Metrics::memory(function).in_namespace(namespace.clone());
        let keyring = |id: &str, stages: &[Stage]| {
            Keyring::new(clients.secrets(), id, stages, Duration::from_secs(60))
        };
        let webhook = Arc::new(Webhook {
            keyring: keyring(
                &config.webhook_secret,
                &[Stage::Current, Stage::Pending, Stage::Previous],
            ),
            ledger: ledger.clone(),
            queue: Queue::new(clients.sqs.clone()),
            metrics: emitter("webhook"),
            stack: config.clone(),
            config: WebhookConfig::from_lookup(|k| {
                (k == "VENDOR").then(|| options.vendor.as_str().to_owned())
            })
            .map_err(|e| e.to_string())?,
        });
        let root = crate::template_path().with_file_name("");
        let log_dir = root.join(".local");
        std::fs::create_dir_all(&log_dir).map_err(|e| e.to_string())?;
        let emulator = match &options.binaries {
            Some(_) => Some(crate::rie::emulator(&root)?),
            None => None,
        };
        // SAM's port is chosen now: the simulator needs the webhook's URL before SAM can start
        // (SAM needs the simulator's).
        let sam_port = match (&options.binaries, options.sam_lambda) {
            (Some(_), true) => Some(crate::rie::free_port()?),
            _ => None,
        };
        let webhook_binary = match (&options.binaries, &emulator, sam_port) {
            (Some(_), _, Some(port)) => Some(Arc::new(Emulated::through_sam(
                &format!("http://127.0.0.1:{port}"),
                "WebhookFunction",
                &log_dir.join(format!("sam-start-lambda-{port}.log")),
            )?)),
            (Some(dir), Some(rie), None) => Some(Arc::new(Emulated::start(
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
        let webhook_url = webhook_endpoint::serve(match &webhook_binary {
            Some(binary) => WebhookTarget::Binary(binary.clone()),
            None => WebhookTarget::InProcess(webhook.clone()),
        })
        .await?;

        // Every simulator of the stack (the vendor's, and a routed second vendor's) takes its
        // key and signs for its webhook endpoint.
        let sim_config = SimConfig {
            listen: "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
            api_keys: vec![api_key.clone()],
            webhook_url: Some(webhook_url.clone()),
            webhook_secrets: vec![whsec.clone()],
            engine: options.engine,
            ocr_concurrency: 2,
            idempotency: options.idempotency,
            // The Textract twin reads documents from moto's S3 and publishes to its SNS.
            aws_endpoint: clients.sdk_config.endpoint_url().map(str::to_owned),
            twins: options.twins.clone(),
            processing_delay: options.processing_delay,
            ..SimConfig::default()
        };
        let sim = vendor_sim::start(SimConfig {
            webhook_retry_schedule: vec![
                Duration::from_millis(500),
                Duration::from_secs(2),
                Duration::from_secs(5),
            ],
            faults: options.faults.clone(),
            ..sim_config.clone()
        })
        .await
        .map_err(|e| e.to_string())?;
        if options.vendor == VendorKind::Mindee && options.mindee_webhooks {
            // What an operator does in Mindee's console: an endpoint at our webhook URL, signed
            // with the stack's signing secret.
            register_mindee_webhook(&sim.base_url(), &webhook_url, &whsec).await?;
        }
        let mut env = binary_environment(stack, endpoint, &sim.base_url(), &options)?;
        let fallback_sim = match &options.fallback {
            None => None,
            Some(fallback) => {
                let fallback_sim = vendor_sim::start(sim_config.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                // The routed vendor's settings under its name, as `route::routed_lookup` reads
                // them: its own simulator, the stack's key, the same budgets as the first.
                let name = fallback.vendor.as_str().to_ascii_uppercase();
                for (k, v) in [
                    ("VENDOR_ROUTES".to_owned(), fallback.routes.clone()),
                    (format!("{name}_VENDOR_BASE_URL"), fallback_sim.base_url()),
                    (
                        format!("{name}_VENDOR_API_KEY_SECRET_ARN"),
                        config.vendor_api_key_secret.clone(),
                    ),
                    (
                        format!("{name}_VENDOR_RATE_LIMIT_RPS"),
                        options.vendor_rps.to_string(),
                    ),
                    (format!("{name}_RETRY_BUDGET_CAPACITY"), "50".into()),
                    (format!("{name}_RETRY_BUDGET_REFILL_PER_SEC"), "5".into()),
                    (format!("{name}_VENDOR_TIMEOUT_MS"), "5000".into()),
                    (
                        format!("{name}_VENDOR_SIM_IDEMPOTENCY"),
                        options.idempotency_spec(),
                    ),
                ] {
                    env.insert(k, v);
                }
                if fallback.vendor == VendorKind::Mindee {
                    env.insert(
                        "MINDEE_VENDOR_MODELS".into(),
                        binaries::local_mindee_models(),
                    );
                }
                Some(fallback_sim)
            }
        };
        if env.get("VENDOR").map(String::as_str) != Some(options.vendor.as_str()) {
            return Err(format!(
                "the stack was provisioned for VENDOR={:?}, not {}: provision it with VendorName={}",
                env.get("VENDOR"),
                options.vendor,
                options.vendor
            ));
        }
        // The adapters, built as the functions build them, from the stack's environment; the
        // Textract client goes to the simulator's twin.
        let settings =
            VendorSettings::from_lookup(|k| env.get(k).cloned()).map_err(|e| e.to_string())?;
        let adapter_clients = clients.clone().with_textract_endpoint(sim.base_url());
        let vendor = || {
            AnyVendor::build(&settings, &adapter_clients, &config.vendor_api_key_secret)
                .map_err(|e| e.to_string())
        };
        let routes = || {
            let textract_at = fallback_sim
                .as_ref()
                .map_or_else(|| sim.base_url(), RunningSim::base_url);
            let clients = clients.clone().with_textract_endpoint(textract_at);
            Routes::build(settings.kind, |k| env.get(k).cloned(), &clients)
                .map_err(|e| e.to_string())
        };
        let (binaries, sam) = match (&options.binaries, &emulator, webhook_binary, sam_port) {
            (Some(dir), _, Some(webhook), Some(port)) => {
                let sam = crate::sam_lambda::SamLambda::start(&root, dir, &env, port, &log_dir)?;
                let through =
                    |logical_id: &str| Emulated::through_sam(&sam.endpoint, logical_id, &sam.log);
                let binaries = Binaries {
                    intake: through("IntakeFunction")?,
                    submit: through("SubmitFunction")?,
                    parse: through("ParseFunction")?,
                    reconcile: through("ReconcileFunction")?,
                    webhook,
                };
                (Some(binaries), Some(sam))
            }
            (Some(dir), Some(rie), Some(webhook), None) => {
                let start = |name: &str| {
                    Emulated::start(
                        rie,
                        &dir.join(name),
                        &with_app_id(env.clone(), name),
                        &log_dir,
                    )
                };
                let binaries = Binaries {
                    intake: start("intake")?,
                    submit: start("submit")?,
                    parse: start("parse")?,
                    reconcile: start("reconcile")?,
                    webhook,
                };
                (Some(binaries), None)
            }
            _ => (None, None),
        };
        let backoff = Backoff {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(5),
        };
        let chaos = Arc::new(ChaosCounters::default());
        let chaos_dice = Arc::new(ChaosDice::new(&options.chaos));
        // Submit and parse share the vendor's admission bucket, as in the deployed stack.
        let budgets = Budgets::for_vendor(options.vendor.as_str(), |k| match k {
            "VENDOR_RATE_LIMIT_RPS" => Some(options.vendor_rps.to_string()),
            "VENDOR_RATE_BURST" => options.vendor_burst.map(|b| b.to_string()),
            "RETRY_BUDGET_CAPACITY" => Some("50".into()),
            "RETRY_BUDGET_REFILL_PER_SEC" => Some("5".into()),
            _ => None,
        })
        .map_err(|e| e.to_string())?;
        let poll = PollSchedule {
            first: Duration::from_secs(1),
            cap: Duration::from_secs(5),
        };
        // List prices, or VENDOR_PRICES from the environment, as the functions would read it.
        let prices = Prices::from_lookup(&|k| std::env::var(k).ok()).map_err(|e| e.to_string())?;
        let concurrency = |chosen: Option<usize>| match chosen {
            Some(n) => Ok(n),
            None => ocrbridge::batch::concurrency_setting(&|k: &str| env.get(k).cloned())
                .map_err(|e| e.to_string()),
        };
        let pipeline = Pipeline {
            intake: Intake {
                blob: Blob::new(clients.s3.clone()),
                queue: Queue::new(clients.sqs.clone()),
                ledger: ledger.clone(),
                metrics: emitter("intake"),
                stack: config.clone(),
                config: IntakeConfig {
                    preprocess: ocrbridge::preprocess::Settings::from_lookup(&|k| {
                        env.get(k).cloned()
                    })
                    .map_err(|e| e.to_string())?,
                    part_pages: ocrbridge::parts::part_pages_from_lookup(|k| env.get(k).cloned())
                        .map_err(|e| e.to_string())?,
                    quality: match env.get("INPUT_QUALITY_POLICY") {
                        Some(spec) => ocrbridge::inspect::QualityPolicy::parse(spec)?,
                        None => Default::default(),
                    },
                    ..IntakeConfig::default()
                },
            },
            submit: Submit {
                vendor: Chaotic::new(
                    vendor()?,
                    &options.chaos,
                    Arc::clone(&chaos_dice),
                    Arc::clone(&chaos),
                ),
                routes: routes()?.map(|v| {
                    Chaotic::new(
                        v,
                        &options.chaos,
                        Arc::clone(&chaos_dice),
                        Arc::clone(&chaos),
                    )
                }),
                // Its writes go through a connection that can stall (the freeze fault).
                ledger: if options.chaos.freeze_rate > 0.0
                    || options
                        .chaos
                        .force
                        .iter()
                        .any(|(fault, _)| *fault == ChaosFault::Freeze)
                {
                    Ledger::new(
                        StallingHttpClient::new(
                            &options.chaos,
                            Arc::clone(&chaos_dice),
                            Arc::clone(&chaos),
                        )
                        .dynamodb(&clients.dynamodb),
                        config.ledger_tables(),
                    )
                } else {
                    ledger.clone()
                },
                blob: Blob::new(clients.s3.clone()),
                queue: Queue::new(clients.sqs.clone()),
                metrics: emitter("submit"),
                stack: config.clone(),
                config: SubmitConfig {
                    max_age: options.max_age,
                    presign_expiry: Duration::from_secs(900),
                    prices: prices.clone(),
                    backoff,
                    max_admission_wait: Duration::from_secs(2),
                    ambiguity: options.ambiguity,
                    auth_pause: Duration::from_secs(5),
                    poll,
                    breaker: options.breaker.clone(),
                    message_concurrency: concurrency(options.submit_concurrency)?,
                },
                budgets: budgets.clone(),
            },
            parse: Parse {
                vendor: vendor()?,
                routes: routes()?,
                budgets,
                ledger: ledger.clone(),
                blob: Blob::new(clients.s3.clone()),
                queue: Queue::new(clients.sqs.clone()),
                metrics: emitter("parse"),
                stack: config.clone(),
                config: ParseConfig {
                    rules: RuleConfig::default(),
                    backoff,
                    poll,
                    prices,
                    max_archive_bytes: parse::DEFAULT_MAX_ARCHIVE_BYTES,
                    date_orders: DateOrderBySource::from_lookup(|k| env.get(k).cloned())
                        .map_err(|e| e.to_string())?,
                    second_opinion: SecondOpinionRules::from_lookup(|k| env.get(k).cloned())
                        .map_err(|e| e.to_string())?,
                    message_concurrency: concurrency(options.parse_concurrency)?,
                },
            },
            reconcile: Reconcile {
                vendor: vendor()?,
                routes: routes()?,
                ledger,
                queue: Queue::new(clients.sqs.clone()),
                metrics: emitter("reconcile"),
                stack: config.clone(),
                config: ReconcileConfig {
                    stuck: options.stuck,
                    submitted_stale: options.submitted_stale,
                    max_age: options.max_age,
                    batch: 100,
                },
            },
            batch_sizes: BTreeMap::from([
                ("intake", batch_size(stack, "IntakeFunction", 10)),
                ("submit", batch_size(stack, "SubmitFunction", 5)),
                ("results", batch_size(stack, "ParseFunction", 5)),
                ("textract", 5),
            ]),
            textract_completions_url: stack
                .physical("TextractCompletionsQueue")
                .map(|q| q.ref_value.clone()),
            concurrency: event_source::Concurrency::of(stack),
            webhook,
            webhook_url,
            sim,
            fallback_sim,
            config,
            clients,
            last_reconcile: std::sync::Mutex::new(Instant::now()),
            chaos,
            chaos_dice,
            event_sources: Default::default(),
            binaries,
            sam,
            options,
        };
        Ok(pipeline)
    }

    /// One round of every event source: `concurrency` invocations of each function at once, as
    /// Lambda runs them (submit's is capped by `ScalingConfig.MaximumConcurrency` in the template).
    /// Returns how many messages were handled. For step-by-step tests; [`Self::run_until`] is the
    /// continuous form.
    pub async fn pump_once(&self) -> usize {
        let rounds = (0..self.options.concurrency.max(1)).map(|_| async {
            let (a, b, c, d) = tokio::join!(
                self.poll(EventSource::Intake),
                self.poll(EventSource::Submit),
                self.poll(EventSource::Results),
                self.poll(EventSource::TextractCompletions),
            );
            a + b + c + d
        });
        let handled: usize = futures::future::join_all(rounds).await.into_iter().sum();
        self.reconcile_if_due().await;
        handled
    }

    /// Runs every event source the way Lambda does until `stop` is set: each queue has its own
    /// `concurrency` pollers, each receiving, invoking and acknowledging on its own, so a slow
    /// batch on one queue holds up nothing else; the schedule fires reconcile on time.
    pub async fn run_until(&self, stop: &AtomicBool) {
        let schedule = async {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(IDLE_POLL).await;
                self.reconcile_if_due().await;
            }
        };
        tokio::join!(self.run_sources_until(&EventSource::ALL, stop), schedule);
    }

    /// Hands every metric the functions emitted since the last call to CloudWatch, as its log
    /// extraction does with a deployed function's EMF lines (see [`crate::emf`]), each `back`
    /// earlier than it happened. Returns how many data points were put.
    pub async fn publish_metrics(&self, back: Duration) -> Result<usize, String> {
        let records: Vec<serde_json::Value> = [
            &self.intake.metrics,
            &self.submit.metrics,
            &self.parse.metrics,
            &self.reconcile.metrics,
            &self.webhook.metrics,
        ]
        .into_iter()
        .flat_map(|m| m.take_records())
        .collect();
        let cloudwatch = aws_sdk_cloudwatch::Client::new(&self.clients.sdk_config);
        crate::emf::publish(&cloudwatch, &records, back).await
    }

    /// Runs only `sources`' pollers (no schedule) until `stop` is set: one stage on its own.
    pub async fn run_sources_until(&self, sources: &[EventSource], stop: &AtomicBool) {
        let long_poll = self.options.long_poll;
        let poller = |source: EventSource| async move {
            let mut idle = IDLE_POLL;
            while !stop.load(Ordering::Relaxed) {
                let wait = i32::from(long_poll);
                if self.poll_waiting(source, wait).await == 0 {
                    tokio::time::sleep(idle).await;
                    if !long_poll {
                        idle = (idle * 2).min(IDLE_POLL_MAX);
                    }
                } else {
                    idle = IDLE_POLL;
                }
            }
        };
        let pollers = sources
            .iter()
            .copied()
            .flat_map(|source| (0..self.options.concurrency.max(1)).map(move |_| source))
            .map(poller);
        futures::future::join_all(pollers).await;
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
                // A crash injected into reconcile stops this run, as Lambda would; the next
                // schedule starts afresh.
                as_invocation(
                    self.options.invocation_timeout.max(Duration::from_secs(10)),
                    self.reconcile.run(UnixMillis::now()),
                )
                .await;
            }
        }
    }
}

/// Runs `work` as one invocation outside the SQS event sources (the schedule, the Function
/// URL): inside an [`chaos::INVOCATION`] scope, stopped — `None` — when something kills it (an
/// injected crash) or at `timeout`, as Lambda stops a function. A stalled worker just resumes:
/// there is no batch to give back.
pub(crate) async fn as_invocation<T>(
    timeout: Duration,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    let invocation = Arc::new(chaos::Invocation::default());
    let work = chaos::INVOCATION.scope(Arc::clone(&invocation), work);
    tokio::select! {
        out = work => Some(out),
        _ = invocation.kill.notified() => None,
        _ = tokio::time::sleep(timeout) => None,
    }
}

/// How long an idle poller waits before asking again (Lambda long-polls; this is close enough
/// without holding a moto thread per poller).
const IDLE_POLL: Duration = Duration::from_millis(50);

/// The longest an idle poller waits: its wait doubles while its queue stays empty, so a quiet
/// pipeline does not keep moto (one Python process, shared by every test) busy answering
/// empty receives, and a message waits at most this long for a poller.
const IDLE_POLL_MAX: Duration = Duration::from_millis(400);
