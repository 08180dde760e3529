//! Fault injection: what can go wrong, how often, and a seeded dice so runs repeat.
//!
//! Two kinds of decision, both from the seed:
//! - **per document** (accept-then-drop, a failed job, drift, every webhook fault, a slow
//!   submission…): keyed by the job's subject — the reference it was submitted with (our job
//!   id), or for Azure, which keeps none, the document's SHA-256 — and by how many times that
//!   fault was rolled for it. The same seed strikes the same documents whatever order requests
//!   arrive in, so a concurrent run repeats;
//! - **per request** (random throttling and 5xx at the door, before the request is read): one
//!   seeded stream, so the same seed and the same request order give the same faults.
//!
//! `force` makes a fault strike where a test needs it to, whatever its rate: the first time it
//! is rolled for a subject, or on the n-th request served. Rates are probabilities in
//! `0.0..=1.0`. Faults are set at start-up (`--faults throttle=0.1,drop=0.02 --seed 7`) or at run
//! time (`PUT /admin/faults`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Every fault the simulator can inject. The serialized names are used in `--faults`, in
/// `PUT /admin/faults` and in `GET /admin/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// `429 Too Many Requests` with `Retry-After`, at random (on top of the rate limit).
    Throttle,
    /// `429` from the token-bucket rate limit (not a rate: set `rate_limit_rps`).
    RateLimited,
    /// `500`, `502` or `503`.
    ServerError,
    /// The response comes after `slow_delay`, longer than a client's timeout. The request is
    /// handled only after the delay, so a client that gave up created nothing.
    Slow,
    /// Accept-then-drop: the job is created and processed, the connection closes with no response.
    Drop,
    /// Accept-then-cut: the job is created and processed, the `202` and its headers arrive, and
    /// the connection closes halfway through the body. A client must not take an unreadable
    /// success for a failure.
    TruncatedResponse,
    /// A webhook is delivered twice, with the same `webhook-id`.
    DuplicateWebhook,
    /// A `processing` webhook is held back and delivered after the job's final status.
    OutOfOrder,
    /// A webhook is delivered `webhook_delay` late.
    DelayedWebhook,
    /// A webhook is never delivered.
    LostWebhook,
    /// A forged delivery with a wrong signature precedes the genuine one (same `webhook-id`).
    BadSignature,
    /// A copy of a webhook signed as of `replay_age` ago: a captured old delivery, replayed.
    Replay,
    /// The result's shape drifts: a renamed field, a missing field, or a new enum value.
    Drift,
    /// The job fails (`status: failed` with an error) instead of succeeding.
    FailedJob,
    /// Accept-then-5xx: the job is created, billed and processed, and the gateway in front of
    /// the vendor answers `502` or `504` — an error the client may take for "not accepted".
    #[serde(rename = "accept_then_5xx")]
    AcceptThen5xx,
    /// Accept-then-hang: the job is created, billed and processed, and the answer is held for
    /// `slow_delay_ms`, past the client's timeout.
    AcceptThenHang,
    /// The submission is refused as unauthenticated (`401`, Textract's `AccessDeniedException`)
    /// before anything is created: a revoked or rotated key.
    AuthRefused,
    /// The finished job's result is gone when it is asked for: each vendor's "not found"
    /// (`404`; Textract's `InvalidJobIdException`), as after its results expire.
    ResultExpired,
    /// The result is padded to `oversized_result_bytes`: more than a reader may take in one
    /// piece (and, for Mindee, a webhook body that large).
    OversizedResult,
    /// The submission is refused as a bad document (each vendor's `400`/`422`; Textract's
    /// `BadDocumentException`): a permanent rejection, nothing created.
    DocumentRejected,
    /// The job is accepted and never finishes: it stays `processing` for ever.
    NeverFinishes,
}

impl Fault {
    pub const RATED: [Fault; 20] = [
        Fault::Throttle,
        Fault::ServerError,
        Fault::Slow,
        Fault::Drop,
        Fault::TruncatedResponse,
        Fault::DuplicateWebhook,
        Fault::OutOfOrder,
        Fault::DelayedWebhook,
        Fault::LostWebhook,
        Fault::BadSignature,
        Fault::Replay,
        Fault::Drift,
        Fault::FailedJob,
        Fault::AcceptThen5xx,
        Fault::AcceptThenHang,
        Fault::AuthRefused,
        Fault::ResultExpired,
        Fault::OversizedResult,
        Fault::DocumentRejected,
        Fault::NeverFinishes,
    ];

    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// The fault configuration. Durations are in milliseconds on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    pub seed: u64,
    /// Probability per request or per event, by fault.
    pub rates: BTreeMap<Fault, f64>,
    /// Token bucket over all `/v1` requests: refill rate in requests per second, `None` = no limit.
    pub rate_limit_rps: Option<f64>,
    /// Bucket capacity (burst); defaults to one second's worth.
    pub rate_limit_burst: Option<f64>,
    /// `Retry-After` seconds sent with random throttling.
    pub retry_after_secs: u64,
    pub slow_delay_ms: u64,
    pub webhook_delay_ms: u64,
    pub replay_age_ms: u64,
    /// The size a result is padded to by `oversized_result`.
    pub oversized_result_bytes: usize,
    /// A silent model update on a share of documents (not a rate: every affected document, every
    /// time).
    pub model_update: Option<crate::model_update::ModelUpdate>,
    /// The model version results report (`sim-1`): set another to announce a model change,
    /// as Textract's `*ModelVersion` or Azure's `apiVersion` would change.
    pub model_version: String,
    /// Where faults strike whatever their rates (see the module docs).
    pub force: BTreeMap<Fault, BTreeSet<Forced>>,
}

/// Where a forced fault strikes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Forced {
    /// The first roll of the fault for this subject (a job's reference, or `sha256:<hex>`);
    /// for `auth_refused`, the first two (the submission and its retry after a key refresh).
    Subject(String),
    /// The n-th `/v1`-style request the simulator serves (1-based), for the request faults.
    Request(u64),
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            seed: 0,
            rates: BTreeMap::new(),
            rate_limit_rps: None,
            rate_limit_burst: None,
            retry_after_secs: 1,
            slow_delay_ms: 15_000,
            webhook_delay_ms: 3_000,
            // Twice the Standard Webhooks tolerance of 5 minutes.
            replay_age_ms: 10 * 60 * 1_000,
            oversized_result_bytes: 2 * 1024 * 1024,
            model_update: None,
            model_version: "sim-1".into(),
            force: BTreeMap::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FaultSpecError {
    #[error("fault spec {0:?} is not NAME=RATE")]
    Shape(String),
    #[error("unknown fault {0:?}; known: throttle, server_error, slow, drop, truncated_response, duplicate_webhook, out_of_order, delayed_webhook, lost_webhook, bad_signature, replay, drift, failed_job, accept_then_5xx, accept_then_hang, auth_refused, result_expired, oversized_result, document_rejected, never_finishes")]
    Unknown(String),
    #[error("rate {0:?} is not a probability between 0 and 1")]
    Rate(String),
}

impl FaultConfig {
    /// Parses `throttle=0.1,drop=0.02` (the `--faults` flag) into `rates`.
    pub fn parse_rates(spec: &str) -> Result<BTreeMap<Fault, f64>, FaultSpecError> {
        let mut rates = BTreeMap::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, rate) = part
                .split_once('=')
                .ok_or_else(|| FaultSpecError::Shape(part.to_owned()))?;
            let fault: Fault =
                serde_json::from_value(serde_json::Value::String(name.trim().into()))
                    .map_err(|_| FaultSpecError::Unknown(name.to_owned()))?;
            let rate: f64 = rate
                .trim()
                .parse()
                .ok()
                .filter(|r: &f64| (0.0..=1.0).contains(r))
                .ok_or_else(|| FaultSpecError::Rate(rate.to_owned()))?;
            rates.insert(fault, rate);
        }
        Ok(rates)
    }
}

/// The dice and the bucket, behind the simulator's state lock.
#[derive(Debug)]
pub struct FaultDice {
    pub config: FaultConfig,
    rng: StdRng,
    bucket: Option<TokenBucket>,
    /// Requests served so far (for [`Forced::Request`]).
    requests: u64,
    /// How many times each fault was rolled for each subject.
    rolled: HashMap<(Fault, String), u64>,
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
    // 53 bits: every value exactly representable, so the draw is uniform.
    (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

impl FaultDice {
    pub fn new(config: FaultConfig) -> Self {
        let bucket = config
            .rate_limit_rps
            .map(|rps| TokenBucket::new(rps, config.rate_limit_burst.unwrap_or(rps.max(1.0))));
        FaultDice {
            rng: StdRng::seed_from_u64(config.seed),
            bucket,
            config,
            requests: 0,
            rolled: HashMap::new(),
        }
    }

    fn rate(&self, fault: Fault) -> f64 {
        self.config.rates.get(&fault).copied().unwrap_or(0.0)
    }

    /// Whether `fault` is forced at `at`. A forced subject also covers the events of that
    /// subject (`<subject>:<status>`, `<subject>:<endpoint>`: a job's webhooks).
    fn forced(&self, fault: Fault, at: &Forced) -> bool {
        let Some(forced) = self.config.force.get(&fault) else {
            return false;
        };
        match at {
            Forced::Request(_) => forced.contains(at),
            Forced::Subject(subject) => forced.iter().any(|f| match f {
                Forced::Subject(s) => {
                    subject == s
                        || subject
                            .strip_prefix(s.as_str())
                            .is_some_and(|rest| rest.starts_with(':'))
                }
                Forced::Request(_) => false,
            }),
        }
    }

    /// Counts a request served; its number is what [`Forced::Request`] names.
    pub fn next_request(&mut self) -> u64 {
        self.requests += 1;
        self.requests
    }

    /// Whether a request fault strikes request number `request`: forced there, or drawn from
    /// the seeded stream.
    pub fn roll(&mut self, fault: Fault, request: u64) -> bool {
        let rate = self.rate(fault);
        let drawn = rate > 0.0 && self.rng.random::<f64>() < rate;
        drawn || self.forced(fault, &Forced::Request(request))
    }

    /// Whether `fault` is forced on `subject` and not rolled there yet: for a fault that must
    /// strike a given document where it otherwise rolls per request (a throttle on one
    /// document's submission). Marks it rolled.
    pub fn forced_for(&mut self, fault: Fault, subject: &str) -> bool {
        let count = self.rolled.entry((fault, subject.to_owned())).or_default();
        let first = *count == 0;
        *count += 1;
        first && self.forced(fault, &Forced::Subject(subject.to_owned()))
    }

    /// Whether `fault` strikes `subject` now: its first roll there if forced, else a draw keyed
    /// by the seed, the fault, the subject and how many times it was rolled for it.
    pub fn roll_for(&mut self, fault: Fault, subject: &str) -> bool {
        let count = self.rolled.entry((fault, subject.to_owned())).or_default();
        let nth = *count;
        *count += 1;
        // A refused key stays refused when the client reads it again: its one refresh and
        // retry is refused too.
        let forced_rolls = if fault == Fault::AuthRefused { 2 } else { 1 };
        if nth < forced_rolls && self.forced(fault, &Forced::Subject(subject.to_owned())) {
            return true;
        }
        if self.kept_for_another(fault, subject) {
            return false;
        }
        let rate = self.rate(fault);
        rate > 0.0 && keyed_unit(self.config.seed, &fault.name(), subject, nth) < rate
    }

    /// Whether `subject` is forced for a fault other than `fault`: it is kept for that one, and
    /// no random draw of another may strike it first. A random drop of its submission answer,
    /// under `hold`, parked a document before its forced `truncated_response` had its turn, and
    /// the chaos run's coverage check failed for a fault that never got its chance.
    fn kept_for_another(&self, fault: Fault, subject: &str) -> bool {
        let at = Forced::Subject(subject.to_owned());
        self.config
            .force
            .keys()
            .any(|&other| other != fault && self.forced(other, &at))
    }

    /// One of `items`, from the seeded stream.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.random_range(0..items.len())]
    }

    /// One of `items` for `subject`, the same every run with the same seed.
    pub fn pick_for<'a, T>(&self, items: &'a [T], what: &str, subject: &str) -> &'a T {
        let unit = keyed_unit(self.config.seed, what, subject, 0);
        &items[((unit * items.len() as f64) as usize).min(items.len() - 1)]
    }

    /// Takes a token; on refusal, the seconds until one is available (for `Retry-After`).
    pub fn take_token(&mut self, now: Instant) -> Result<(), u64> {
        match &mut self.bucket {
            None => Ok(()),
            Some(bucket) => bucket.take(now),
        }
    }
}

/// A token bucket: `rate` tokens per second, at most `capacity` saved up.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    fn new(rate: f64, capacity: f64) -> Self {
        TokenBucket {
            rate: rate.max(0.001),
            capacity: capacity.max(1.0),
            tokens: capacity.max(1.0),
            last: None,
        }
    }

    fn take(&mut self, now: Instant) -> Result<(), u64> {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + refill).min(self.capacity);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.rate;
            Err(Duration::from_secs_f64(wait).as_secs().max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rate_specs() {
        let rates = FaultConfig::parse_rates("throttle=0.1, drop=1,failed_job=0").unwrap();
        assert_eq!(rates[&Fault::Throttle], 0.1);
        assert_eq!(rates[&Fault::Drop], 1.0);
        assert_eq!(rates[&Fault::FailedJob], 0.0);
        assert!(matches!(
            FaultConfig::parse_rates("nope=0.1"),
            Err(FaultSpecError::Unknown(_))
        ));
        assert!(matches!(
            FaultConfig::parse_rates("drop=2"),
            Err(FaultSpecError::Rate(_))
        ));
        assert!(matches!(
            FaultConfig::parse_rates("drop"),
            Err(FaultSpecError::Shape(_))
        ));
    }

    #[test]
    fn the_same_seed_rolls_the_same_faults() {
        let config = FaultConfig {
            seed: 42,
            rates: BTreeMap::from([(Fault::Throttle, 0.5)]),
            ..Default::default()
        };
        let rolls = |mut dice: FaultDice| -> Vec<bool> {
            (0..64)
                .map(|_| {
                    let n = dice.next_request();
                    dice.roll(Fault::Throttle, n)
                })
                .collect()
        };
        let a = rolls(FaultDice::new(config.clone()));
        assert_eq!(a, rolls(FaultDice::new(config.clone())));
        assert!(a.iter().any(|x| *x) && a.iter().any(|x| !*x));
        let other = FaultConfig { seed: 43, ..config };
        assert_ne!(a, rolls(FaultDice::new(other)));
    }

    #[test]
    fn keyed_rolls_depend_on_the_subject_not_the_order() {
        let config = FaultConfig {
            seed: 7,
            rates: BTreeMap::from([(Fault::Drop, 0.3)]),
            ..Default::default()
        };
        let subjects: Vec<String> = (0..200).map(|i| format!("doc-{i}")).collect();
        let mut forward = FaultDice::new(config.clone());
        let a: Vec<bool> = subjects
            .iter()
            .map(|s| forward.roll_for(Fault::Drop, s))
            .collect();
        let mut backward = FaultDice::new(config.clone());
        let mut b: Vec<bool> = subjects
            .iter()
            .rev()
            .map(|s| backward.roll_for(Fault::Drop, s))
            .collect();
        b.reverse();
        assert_eq!(a, b, "the same subjects strike in any order");
        let hits = a.iter().filter(|x| **x).count();
        assert!((35..=85).contains(&hits), "about 30% of 200: {hits}");
        // A second roll for the same subject is a new draw, not a repeat of the first.
        let mut dice = FaultDice::new(config.clone());
        let again: Vec<bool> = subjects
            .iter()
            .map(|s| {
                dice.roll_for(Fault::Drop, s);
                dice.roll_for(Fault::Drop, s)
            })
            .collect();
        assert_ne!(a, again);
    }

    #[test]
    fn forced_faults_strike_once_where_they_are_forced() {
        let config = FaultConfig {
            seed: 1,
            force: BTreeMap::from([
                (
                    Fault::Drop,
                    BTreeSet::from([Forced::Subject("doc-a".into())]),
                ),
                (Fault::ServerError, BTreeSet::from([Forced::Request(3)])),
            ]),
            ..Default::default()
        };
        let mut dice = FaultDice::new(config);
        assert!(dice.roll_for(Fault::Drop, "doc-a"));
        assert!(!dice.roll_for(Fault::Drop, "doc-a"), "the first roll only");
        assert!(!dice.roll_for(Fault::Drop, "doc-b"));
        assert!(!dice.roll_for(Fault::Drop, "doc-ab"));
        assert!(
            dice.roll_for(Fault::Drop, "doc-a:succeeded"),
            "the subject's events too"
        );
        let struck: Vec<bool> = (0..5)
            .map(|_| {
                let n = dice.next_request();
                dice.roll(Fault::ServerError, n)
            })
            .collect();
        assert_eq!(struck, [false, false, true, false, false]);
    }

    #[test]
    fn a_document_forced_for_one_fault_is_struck_by_no_random_other() {
        let config = FaultConfig {
            seed: 1,
            rates: BTreeMap::from([(Fault::Drop, 1.0), (Fault::FailedJob, 1.0)]),
            force: BTreeMap::from([(
                Fault::TruncatedResponse,
                BTreeSet::from([Forced::Subject("doc-a".into())]),
            )]),
            ..Default::default()
        };
        let mut dice = FaultDice::new(config);
        assert!(
            !dice.roll_for(Fault::Drop, "doc-a"),
            "kept for its forced fault"
        );
        assert!(!dice.roll_for(Fault::FailedJob, "doc-a:succeeded"));
        assert!(dice.roll_for(Fault::TruncatedResponse, "doc-a"));
        assert!(
            dice.roll_for(Fault::Drop, "doc-b"),
            "others are drawn as before"
        );
    }

    #[test]
    fn the_bucket_refills_at_its_rate() {
        let mut bucket = TokenBucket::new(2.0, 2.0);
        let t0 = Instant::now();
        assert!(bucket.take(t0).is_ok());
        assert!(bucket.take(t0).is_ok());
        assert_eq!(bucket.take(t0), Err(1));
        assert!(bucket.take(t0 + Duration::from_millis(500)).is_ok());
        assert!(bucket.take(t0 + Duration::from_millis(500)).is_err());
    }
}
