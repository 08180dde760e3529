//! Fault injection: what can go wrong, how often, and a seeded dice so runs repeat.
//!
//! Every decision is drawn from one seeded RNG, so the same seed and the same request order give
//! the same faults. Rates are probabilities in `0.0..=1.0`. Faults are set at start-up
//! (`--faults throttle=0.1,drop=0.02 --seed 7`) or at run time (`PUT /admin/faults`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

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
}

impl Fault {
    pub const RATED: [Fault; 13] = [
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
    /// A silent model update on a share of documents (not a rate: every affected document, every
    /// time).
    pub model_update: Option<crate::model_update::ModelUpdate>,
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
            model_update: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FaultSpecError {
    #[error("fault spec {0:?} is not NAME=RATE")]
    Shape(String),
    #[error("unknown fault {0:?}; known: throttle, server_error, slow, drop, truncated_response, duplicate_webhook, out_of_order, delayed_webhook, lost_webhook, bad_signature, replay, drift, failed_job")]
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
        }
    }

    /// Whether `fault` strikes now.
    pub fn roll(&mut self, fault: Fault) -> bool {
        let rate = self.config.rates.get(&fault).copied().unwrap_or(0.0);
        rate > 0.0 && self.rng.random::<f64>() < rate
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.random_range(0..items.len())]
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
            (0..64).map(|_| dice.roll(Fault::Throttle)).collect()
        };
        let a = rolls(FaultDice::new(config.clone()));
        assert_eq!(a, rolls(FaultDice::new(config.clone())));
        assert!(a.iter().any(|x| *x) && a.iter().any(|x| !*x));
        let other = FaultConfig { seed: 43, ..config };
        assert_ne!(a, rolls(FaultDice::new(other)));
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
