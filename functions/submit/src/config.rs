//! Submit's configuration, read once from the environment.

use std::time::Duration;

use ocrbridge::breaker::BreakerPolicy;
use ocrbridge::config::{switch_setting, SettingError};
use ocrbridge::cost::Prices;
use ocrbridge::retry::Backoff;
use ocrbridge::vendors::ambiguity::{AmbiguityPolicy, Fallback};
use ocrbridge::vendors::poll::PollSchedule;

#[derive(Debug, Clone, PartialEq)]
pub struct SubmitConfig {
    /// `MAX_SUBMIT_AGE_SECS` (default 86,400): a job not submitted within this time of entering
    /// `Queued` fails with `max_age_exceeded` (retryable: an operator's retry starts a new window).
    pub max_age: Duration,
    /// `PRESIGN_EXPIRY_SECS` (default 900): how long the vendor may fetch the document.
    pub presign_expiry: Duration,
    /// `VENDOR_PRICES` over the vendors' list prices: the cost estimate stored on each job
    /// and the `EstimatedCost` metric.
    pub prices: Prices,
    /// `BACKOFF_BASE_MS` (default 2,000) and `BACKOFF_CAP_SECS` (default 900).
    pub backoff: Backoff,
    /// `MAX_ADMISSION_WAIT_MS` (default 2,000): wait in-process for an admission token up to
    /// this long; longer waits defer the message instead of holding the invocation.
    pub max_admission_wait: Duration,
    /// `AMBIGUOUS_SUBMISSION` (`hold` or `resubmit`, default `hold`) and `AMBIGUOUS_GRACE_SECS`
    /// (default 900): what to do about a submission whose answer was lost when the vendor cannot
    /// say whether it arrived (see `ocrbridge::vendors::ambiguity`).
    pub ambiguity: AmbiguityPolicy,
    /// `AUTH_PAUSE_SECS` (default 60): after the vendor refuses our credentials twice, every
    /// submission waits this long, so documents in flight wait for the fix instead of failing.
    pub auth_pause: Duration,
    /// `POLL_FIRST_SECS`, `POLL_CAP_SECS`: when to first ask a vendor that pushes nothing.
    pub poll: PollSchedule,
    /// The vendor's circuit breaker (`BREAKER`: `on`, the default, or `off`; its thresholds
    /// from `BREAKER_*`, see [`BreakerPolicy`]). While it is open, submissions wait (deferred,
    /// spending nothing) instead of each failing against a vendor that is down.
    pub breaker: Option<BreakerPolicy>,
    /// `MESSAGE_CONCURRENCY` (default 1, see `ocrbridge::batch::DEFAULT_CONCURRENCY`): a batch's
    /// messages handled at once, so that one waiting for its admission token or the vendor does
    /// not hold the others back.
    pub message_concurrency: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid {0}: {1}")]
pub struct ConfigError(pub &'static str, pub String);

fn setting_error(e: SettingError) -> ConfigError {
    ConfigError(e.name, format!("{:?} is not {}", e.value, e.expected))
}

impl SubmitConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let number = |name: &'static str, default: f64| -> Result<f64, ConfigError> {
            match lookup(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && *n >= 0.0)
                    .ok_or_else(|| {
                        ConfigError(name, format!("{v:?} is not a non-negative number"))
                    }),
            }
        };
        Ok(SubmitConfig {
            max_age: Duration::from_secs(number("MAX_SUBMIT_AGE_SECS", 86_400.0)? as u64),
            presign_expiry: Duration::from_secs(number("PRESIGN_EXPIRY_SECS", 900.0)? as u64),
            prices: Prices::from_lookup(&lookup).map_err(setting_error)?,
            backoff: Backoff {
                base: Duration::from_millis(number("BACKOFF_BASE_MS", 2_000.0)? as u64),
                cap: Duration::from_secs(number("BACKOFF_CAP_SECS", 900.0)? as u64),
            },
            max_admission_wait: Duration::from_millis(
                number("MAX_ADMISSION_WAIT_MS", 2_000.0)? as u64
            ),
            ambiguity: AmbiguityPolicy {
                grace: Duration::from_secs(number("AMBIGUOUS_GRACE_SECS", 900.0)? as u64),
                fallback: match lookup("AMBIGUOUS_SUBMISSION") {
                    None => Fallback::Hold,
                    Some(v) => Fallback::parse(&v).ok_or_else(|| {
                        ConfigError(
                            "AMBIGUOUS_SUBMISSION",
                            format!("{v:?} is not one of: hold, resubmit"),
                        )
                    })?,
                },
            },
            auth_pause: Duration::from_secs(number("AUTH_PAUSE_SECS", 60.0)? as u64),
            poll: PollSchedule::from_lookup(&lookup).map_err(setting_error)?,
            breaker: if switch_setting(&lookup, "BREAKER", true).map_err(setting_error)? {
                Some(BreakerPolicy::from_lookup(&lookup).map_err(setting_error)?)
            } else {
                None
            },
            message_concurrency: ocrbridge::batch::concurrency_setting(&lookup)
                .map_err(setting_error)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_and_errors() {
        let env = HashMap::from([
            ("VENDOR_BASE_URL", "http://v".to_owned()),
            ("VENDOR_PRICES", "sim:*=0.01/page".to_owned()),
        ]);
        let c = SubmitConfig::from_lookup(|k| env.get(k).cloned()).unwrap();
        assert_eq!(
            c.prices.price("sim", "receipt").unwrap().of(1),
            ocrbridge::cost::Decimal::new(1, 2)
        );
        assert_eq!(c.max_age, Duration::from_secs(86_400));
        assert_eq!(c.ambiguity, AmbiguityPolicy::default());
        assert_eq!(
            c.breaker,
            Some(BreakerPolicy::default()),
            "on unless turned off"
        );
        let off = HashMap::from([("BREAKER", "off".to_owned())]);
        assert_eq!(
            SubmitConfig::from_lookup(|k| off.get(k).cloned())
                .unwrap()
                .breaker,
            None
        );
        let neither = HashMap::from([("BREAKER", "maybe".to_owned())]);
        assert_eq!(
            SubmitConfig::from_lookup(|k| neither.get(k).cloned())
                .unwrap_err()
                .0,
            "BREAKER"
        );
        let resubmit = HashMap::from([
            ("VENDOR_BASE_URL", "http://v".to_owned()),
            ("AMBIGUOUS_SUBMISSION", "resubmit".to_owned()),
            ("AMBIGUOUS_GRACE_SECS", "30".to_owned()),
        ]);
        let c = SubmitConfig::from_lookup(|k| resubmit.get(k).cloned()).unwrap();
        assert_eq!(c.ambiguity.fallback, Fallback::Resubmit);
        assert_eq!(c.ambiguity.grace, Duration::from_secs(30));
        let unknown = HashMap::from([
            ("VENDOR_BASE_URL", "http://v".to_owned()),
            ("AMBIGUOUS_SUBMISSION", "sometimes".to_owned()),
        ]);
        let err = SubmitConfig::from_lookup(|k| unknown.get(k).cloned()).unwrap_err();
        assert_eq!(err.0, "AMBIGUOUS_SUBMISSION");
        assert!(err.1.contains("hold, resubmit"), "{err}");
        assert_eq!(
            SubmitConfig::from_lookup(|_| None).unwrap(),
            SubmitConfig::from_lookup(|k| (k == "UNRELATED").then(String::new)).unwrap(),
            "everything has a default"
        );
        let bad = HashMap::from([
            ("VENDOR_BASE_URL", "http://v".to_owned()),
            ("BACKOFF_BASE_MS", "-1".to_owned()),
        ]);
        assert_eq!(
            SubmitConfig::from_lookup(|k| bad.get(k).cloned())
                .unwrap_err()
                .0,
            "BACKOFF_BASE_MS"
        );
    }
}
