//! What the chaos run does to the functions, beyond the vendor simulator's own faults:
//!
//! - **crash** (`crash_rate`): a batch is handled, then not acknowledged — killed after its side
//!   effects; every message of it comes back;
//! - **kill** (`kill_rate`): an invocation is stopped at a random instant, as Lambda stops one at
//!   its timeout or a host dies: the handler's future is dropped wherever it is — before, during
//!   or after the vendor call — and its batch comes back after the redelivery delay;
//!   `kill_in_call_rate` aims the same kill at a vendor submission in flight (within 200 ms of
//!   its start, or as its answer arrives if it is quicker: the request sent and its answer
//!   never recorded);
//! - **freeze** (`freeze_rate`): a submit worker's write of the vendor's answer (the move to
//!   `Submitted`) hangs in the network for longer than its lease — a stalled connection, a
//!   paused process. The event source gives the invocation up for lost (its batch comes back),
//!   another worker takes the expired lease over, and then the stalled write arrives. It must
//!   be fenced out, and the vendor job it carried must not be forgotten. The stall is injected
//!   at the SDK's HTTP layer of submit's DynamoDB client ([`StallingHttpClient`]), so nothing in
//!   the function knows.
//!
//! A stronger adversary than Lambda on one point: a stalled worker goes on even after its
//! invocation's deadline, where Lambda would have killed it. The fence does not rely on that.
//!
//! Every decision is keyed, not drawn from a stream ([`ChaosDice`]): by the seed, the fault, what
//! it is about (the job a message or a write is for, or an upload's key) and how many times that
//! was rolled before. The same seed strikes the same documents however the workers interleave,
//! and `force` makes a fault strike a given subject the first time, so a run that must see a
//! fault sees it.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use ocrbridge::vendors::{normalize, Capabilities, Submission, Vendor, VendorError, VendorJob};
use sha2::{Digest, Sha256};

/// The faults the chaos run injects into the functions (the simulator has its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChaosFault {
    /// A handled batch is not acknowledged.
    Crash,
    /// An invocation is stopped at a random instant.
    Kill,
    /// An invocation is stopped while its vendor submission is in flight.
    KillInCall,
    /// A write of the vendor's answer stalls past the writer's lease.
    Freeze,
    /// A message is lost: deleted unhandled, as an operator's purge or a bug would (only where
    /// forced; SQS itself does not lose messages).
    Lose,
}

impl ChaosFault {
    fn name(self) -> &'static str {
        match self {
            ChaosFault::Crash => "crash",
            ChaosFault::Kill => "kill",
            ChaosFault::KillInCall => "kill_in_call",
            ChaosFault::Freeze => "freeze",
            ChaosFault::Lose => "lose",
        }
    }
}

/// Rates and durations; all off by default.
#[derive(Debug, Clone, Default)]
pub struct ChaosOptions {
    /// What every decision is keyed from (see the module docs).
    pub seed: u64,
    /// Faults that strike these subjects the first time they are rolled there, whatever the
    /// rates: a job id (`doc-…`) for submit, parse and the writes, or an upload's key for intake.
    pub force: BTreeSet<(ChaosFault, String)>,
    /// Probability, per message, that a handled batch holding it is not acknowledged.
    pub crash_rate: f64,
    /// Probability, per message, that an invocation holding it is killed at an instant within
    /// `kill_within`.
    pub kill_rate: f64,
    pub kill_within: Duration,
    /// Probability that a vendor submission's invocation is killed while it is in flight.
    pub kill_in_call_rate: f64,
    /// Probability that a submit worker's write of the vendor's answer stalls for `freeze`.
    pub freeze_rate: f64,
    pub freeze: Duration,
}

/// What the chaos did, for the run's report and its assertions.
#[derive(Debug, Default)]
pub struct ChaosCounters {
    /// Batches handled and then not acknowledged.
    pub crashes: AtomicU64,
    /// Invocations killed at a random instant.
    pub kills: AtomicU64,
    /// Of those, killed while a vendor submission was in flight.
    pub kills_mid_vendor_call: AtomicU64,
    /// Invocations stopped at their deadline, as Lambda does.
    pub timeouts: AtomicU64,
    /// Writes of a vendor's answer stalled past the writer's lease.
    pub freezes: AtomicU64,
    /// Invocations given up for lost (a worker in them frozen) that a crash of another of their
    /// messages then stopped: the frozen worker went with them, as every message of a Lambda
    /// invocation goes when it crashes. Only a batch handled concurrently
    /// (`MESSAGE_CONCURRENCY` > 1) has another message running beside a frozen one.
    pub frozen_crashed: AtomicU64,
    /// Frozen workers dropped unfinished at `frozen_limit` invocation timeouts: the harness's
    /// bound on how long a late write may still land, not a crash. One that held a vendor's
    /// answer drops it as a crash would, so a count here explains such a loss too.
    pub frozen_dropped_at_limit: AtomicU64,
    /// Vendor submissions the submit function made (every call, whatever came of it).
    pub vendor_submits: AtomicU64,
    /// Submissions that started while another for the same job was still in flight: what the
    /// submit lease exists to prevent.
    pub overlapping_submits: AtomicU64,
}

impl ChaosCounters {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One invocation, as the chaos wrapper and the failpoints see it from inside the handler.
pub(crate) use ocrbridge::failpoints::{Invocation, INVOCATION};

/// The chaos run's dice: every decision keyed by what it is about (see the module docs). Shared
/// by the event sources, the vendor wrapper and the stalling connection.
#[derive(Debug, Default)]
pub struct ChaosDice {
    seed: u64,
    force: BTreeSet<(ChaosFault, String)>,
    rolled: Mutex<HashMap<(ChaosFault, String), u64>>,
}

/// A uniform draw in `0.0..1.0` that depends only on its inputs.
fn keyed_unit(seed: u64, what: &str, subject: &str, nth: u64) -> f64 {
    let digest = Sha256::new()
        .chain_update(seed.to_be_bytes())
        .chain_update(what.as_bytes())
        .chain_update([0])
        .chain_update(subject.as_bytes())
        .chain_update(nth.to_be_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

impl ChaosDice {
    pub fn new(options: &ChaosOptions) -> Self {
        ChaosDice {
            seed: options.seed,
            force: options.force.clone(),
            rolled: Mutex::default(),
        }
    }

    /// Whether `fault` at `rate` strikes `subject` now; `Some` is the draw's own fraction in
    /// `0.0..1.0` (where within a window a kill lands), `None` a miss.
    pub(crate) fn strikes(&self, fault: ChaosFault, rate: f64, subject: &str) -> Option<f64> {
        let nth = {
            let mut rolled = self.rolled.lock().unwrap_or_else(|p| p.into_inner());
            let count = rolled.entry((fault, subject.to_owned())).or_default();
            *count += 1;
            *count - 1
        };
        if nth == 0 && self.force.contains(&(fault, subject.to_owned())) {
            // Forced strikes land where they cannot miss: a kill at once (before the handler
            // can finish), a kill in a call as its answer arrives (the vendor has the request).
            return Some(if fault == ChaosFault::Kill { 0.0 } else { 1.0 });
        }
        let when = keyed_unit(self.seed, &format!("{}/when", fault.name()), subject, nth);
        (rate > 0.0 && keyed_unit(self.seed, fault.name(), subject, nth) < rate).then_some(when)
    }
}

/// What a message is about, for the dice: the job it names (`doc-` and 40 hex characters, in
/// a submit message, a result notice or a Textract completion's `JobTag`), else an S3 upload's
/// key as uploaded, else the whole body. The key is form-decoded as intake decodes it: moto
/// writes `/` as `%2F`, and a fault forced on `intake:receipts/x.jpg` never matched
/// `intake:receipts%2Fx.jpg` (the "no crashes" CI failures).
pub(crate) fn subject_of(body: &str) -> String {
    if let Some(at) = body.find("doc-") {
        let id = &body[at..];
        if id.len() >= 44 && id.as_bytes()[4..44].iter().all(u8::is_ascii_hexdigit) {
            return id[..44].to_owned();
        }
    }
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/Records/0/s3/object/key")
                .and_then(|k| k.as_str())
                .map(intake::event::decode_key)
        })
        .unwrap_or_else(|| body.to_owned())
}

/// A vendor adapter that counts submissions and marks the invocation while one is in flight
/// (so a kill can be told to have landed mid-call); everything else passes through.
pub struct Chaotic<V> {
    inner: V,
    kill_in_call_rate: f64,
    dice: Arc<ChaosDice>,
    counters: Arc<ChaosCounters>,
    /// Submissions in flight, by job.
    in_flight: Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>>,
}

/// One submission in flight; counted down when it ends, however it ends (a killed invocation
/// drops it mid-call).
struct InFlight {
    job: String,
    calls: Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = calls.get_mut(&self.job) {
            *n = n.saturating_sub(1);
        }
    }
}

impl<V> Chaotic<V> {
    pub fn new(
        inner: V,
        options: &ChaosOptions,
        dice: Arc<ChaosDice>,
        counters: Arc<ChaosCounters>,
    ) -> Self {
        Chaotic {
            inner,
            kill_in_call_rate: options.kill_in_call_rate,
            dice,
            counters,
            in_flight: Default::default(),
        }
    }

    pub fn inner(&self) -> &V {
        &self.inner
    }

    /// One call that may bill the document (a submission or a synchronous call) for `job`,
    /// counted, checked for overlap, and killed mid-way at `kill_in_call_rate`.
    async fn call<T, F>(&self, job: &str, call: impl Fn() -> F) -> Result<T, VendorError>
    where
        F: std::future::Future<Output = Result<T, VendorError>>,
    {
        let invocation = INVOCATION.try_with(Arc::clone).ok();
        ChaosCounters::add(&self.counters.vendor_submits);
        let _in_flight = {
            let mut calls = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            let n = calls.entry(job.to_owned()).or_default();
            if *n > 0 {
                ChaosCounters::add(&self.counters.overlapping_submits);
            }
            *n += 1;
            InFlight {
                job: job.to_owned(),
                calls: Arc::clone(&self.in_flight),
            }
        };
        if let Some(i) = &invocation {
            i.in_vendor_call.store(true, Ordering::SeqCst);
            if let Some(when) =
                self.dice
                    .strikes(ChaosFault::KillInCall, self.kill_in_call_rate, job)
            {
                // Killed at an instant of the call, or as its answer arrives if the call is
                // quicker than that: either way the vendor may hold a job (or have billed an
                // answer) the worker never recorded. The invocation never returns from here.
                let cut = Duration::from_millis((when * 200.0) as u64);
                tokio::select! {
                    _ = call() => {}
                    _ = tokio::time::sleep(cut) => {}
                }
                i.kill.notify_one();
                return std::future::pending().await;
            }
        }
        let result = call().await;
        if let Some(i) = &invocation {
            i.in_vendor_call.store(false, Ordering::SeqCst);
        }
        result
    }
}

impl<V: Vendor> Vendor for Chaotic<V> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn model(&self, profile: &ocrbridge::job::Profile) -> String {
        self.inner.model(profile)
    }

    fn model_of(&self, job: &ocrbridge::job::Job) -> String {
        self.inner.model_of(job)
    }

    async fn submit(&self, submission: &Submission<'_>) -> Result<String, VendorError> {
        self.call(submission.external_ref, || self.inner.submit(submission))
            .await
    }

    fn answers_now(&self, job: &ocrbridge::job::Job) -> bool {
        self.inner.answers_now(job)
    }

    async fn answer(
        &self,
        submission: &Submission<'_>,
    ) -> Result<ocrbridge::vendors::answer::Answer, VendorError> {
        self.call(submission.external_ref, || self.inner.answer(submission))
            .await
    }

    async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<VendorJob>, VendorError> {
        self.inner.find_by_idempotency_key(key).await
    }

    async fn status(&self, vendor_job_id: &str) -> Result<VendorJob, VendorError> {
        self.inner.status(vendor_job_id).await
    }

    async fn fetch_result(&self, vendor_job_id: &str) -> Result<Vec<u8>, VendorError> {
        self.inner.fetch_result(vendor_job_id).await
    }

    async fn refresh_credentials(&self) {
        self.inner.refresh_credentials().await
    }

    fn normalize(
        &self,
        raw: &[u8],
        job_id: &str,
        vendor_job_id: &str,
        profile: &ocrbridge::job::Profile,
    ) -> Result<normalize::Normalized, normalize::NormalizeError> {
        self.inner.normalize(raw, job_id, vendor_job_id, profile)
    }
}

/// An SDK HTTP client that stalls, at `rate`, the DynamoDB write recording a vendor's answer
/// (an `UpdateItem` to `Submitted` fenced on the lease owner) for `stall`, and lets everything
/// else through at once. The invocation it happens in is told, so the event source gives it up.
#[derive(Debug, Clone)]
pub struct StallingHttpClient {
    inner: SharedHttpClient,
    rate: f64,
    stall: Duration,
    /// Fail the write outright (a broken connection) instead of delaying it.
    fail: bool,
    dice: Arc<ChaosDice>,
    counters: Arc<ChaosCounters>,
}

impl StallingHttpClient {
    /// Over a plain-HTTP client (the local stack's moto).
    pub fn new(options: &ChaosOptions, dice: Arc<ChaosDice>, counters: Arc<ChaosCounters>) -> Self {
        StallingHttpClient {
            inner: aws_smithy_http_client::Builder::new().build_http(),
            rate: options.freeze_rate,
            stall: options.freeze,
            fail: false,
            dice,
            counters,
        }
    }

    /// One that breaks the connection of every write of a vendor's answer instead: DynamoDB is
    /// unreachable exactly when the answer must be recorded.
    pub fn failing(counters: Arc<ChaosCounters>) -> Self {
        StallingHttpClient {
            inner: aws_smithy_http_client::Builder::new().build_http(),
            rate: 1.0,
            stall: Duration::ZERO,
            fail: true,
            dice: Arc::default(),
            counters,
        }
    }

    /// A DynamoDB client like `client`, whose requests go through this one. The SDK's stalled
    /// stream protection is off for it: a paused worker's own timers do not run either, and the
    /// point is the write that arrives late.
    pub fn dynamodb(self, client: &aws_sdk_dynamodb::Client) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(
            client
                .config()
                .to_builder()
                .http_client(self)
                .stalled_stream_protection(
                    aws_sdk_dynamodb::config::StalledStreamProtectionConfig::disabled(),
                )
                .build(),
        )
    }
}

impl HttpClient for StallingHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(StallingConnector {
            inner: self.inner.http_connector(settings, components),
            rate: self.rate,
            stall: self.stall,
            fail: self.fail,
            dice: Arc::clone(&self.dice),
            counters: Arc::clone(&self.counters),
        })
    }
}

#[derive(Debug)]
struct StallingConnector {
    inner: SharedHttpConnector,
    rate: f64,
    stall: Duration,
    fail: bool,
    dice: Arc<ChaosDice>,
    counters: Arc<ChaosCounters>,
}

/// `UpdateItem` moving a job to `Submitted` under a lease (the record of the vendor's answer):
/// the job it is for.
fn records_a_vendor_answer(request: &HttpRequest) -> Option<String> {
    let target = request.headers().get("x-amz-target").unwrap_or_default();
    let body = request.body().bytes().unwrap_or_default();
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    (target == "DynamoDB_20120810.UpdateItem" && has(b"\"Submitted\"") && has(b"lease_owner"))
        .then(|| subject_of(&String::from_utf8_lossy(body)))
}

impl HttpConnector for StallingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let stall = records_a_vendor_answer(&request)
            .filter(|job| {
                self.fail
                    || self
                        .dice
                        .strikes(ChaosFault::Freeze, self.rate, job)
                        .is_some()
            })
            .map(|_| self.stall);
        let invocation = INVOCATION.try_with(Arc::clone).ok();
        let inner = self.inner.clone();
        let counters = Arc::clone(&self.counters);
        let fail = self.fail;
        HttpConnectorFuture::new(async move {
            if stall.is_some() && fail {
                return Err(ConnectorError::io(
                    "connection reset by chaos: the vendor's answer was not recorded".into(),
                ));
            }
            if let Some(stall) = stall {
                ChaosCounters::add(&counters.freezes);
                if let Some(i) = invocation {
                    i.frozen.notify_one();
                }
                tokio::time::sleep(stall).await;
            }
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::subject_of;

    /// A fault forced on an upload is named by its key as uploaded; moto's notification
    /// writes `/` as `%2F`, S3's a space as `+`.
    #[test]
    fn an_uploads_key_is_read_as_intake_reads_it() {
        let body = r#"{"Records":[{"s3":{"object":{"key":"receipts%2Fchaos+7.jpg"}}}]}"#;
        assert_eq!(subject_of(body), "receipts/chaos 7.jpg");
        let submit = r#"{"job_id":"doc-0123456789abcdef0123456789abcdef01234567"}"#;
        assert_eq!(
            subject_of(submit),
            "doc-0123456789abcdef0123456789abcdef01234567"
        );
    }
}
