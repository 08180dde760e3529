//! Retry policy: backoff across invocations, and the shared budgets that keep an outage or a
//! rate limit from turning the queue into a flood.
//!
//! - **Backoff** is full jitter (`random(0, min(cap, base · 2^attempt))`), floored by the
//!   vendor's `Retry-After`, applied with `ChangeMessageVisibility` so the retry happens in a
//!   later invocation instead of a sleeping one.
//! - **Retry budget** (per vendor, shared through DynamoDB): retries spend tokens — 1 for a
//!   throttle or a 5xx, 2 for a timeout ([`crate::vendors::VendorError::retry_cost`]), as the AWS
//!   SDK's standard mode weighs them — and the bucket refills slowly. Only a retry after a
//!   failed vendor call spends: the failure is recorded on the job as a debt
//!   ([`crate::ledger::RetryDebt`]) that the next attempt pays, so being held back by our own
//!   admission control (a deferral) never drains the budget meant for outages. During an outage it empties within a few retries; later retries are
//!   *delayed* (re-enqueued with a delay, so their receive count is not spent) instead of
//!   hitting the vendor. When the outage ends, refills let retries through again.
//! - **Admission** (per vendor, shared): every submission takes a token from a bucket refilled
//!   at the vendor's documented rate, so the fleet stays just under the limit instead of
//!   discovering it through 429s. A `Retry-After` pauses the bucket for everyone.

use std::time::Duration;

use rand::Rng;

use crate::ledger::BucketSpec;

/// Full-jitter exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    /// 2 s doubling to 15 minutes.
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(900),
        }
    }
}

impl Backoff {
    /// The ceiling for `attempt` (1 = the first retry).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A random delay in `0..=ceiling(attempt)`, never shorter than `retry_after`.
    pub fn delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Duration {
        let ceiling = self.ceiling(attempt).as_millis() as u64;
        let jitter = Duration::from_millis(rng.random_range(0..=ceiling));
        jitter.max(retry_after.unwrap_or_default())
    }
}

/// SQS's visibility-timeout ceiling (12 hours), and what `ChangeMessageVisibility` takes.
pub fn visibility_seconds(delay: Duration) -> i32 {
    delay.as_secs().min(43_200) as i32
}

/// SQS's longest `DelaySeconds` (15 minutes).
pub fn delay_seconds(delay: Duration) -> i32 {
    delay.as_secs().clamp(1, 900) as i32
}

/// The per-vendor shared budgets and their parameters (environment variables in brackets).
#[derive(Debug, Clone, PartialEq)]
pub struct Budgets {
    /// [`RETRY_BUDGET_CAPACITY`] (default 20) and [`RETRY_BUDGET_REFILL_PER_SEC`] (default 0.2):
    /// at most 20 retries at once, then one every 5 s across the whole fleet.
    pub retry: BucketSpec,
    /// [`VENDOR_RATE_LIMIT_RPS`] (default 5): the vendor's documented request rate, and
    /// [`VENDOR_RATE_BURST`] (default 1): how many requests may go at once. Evenly paced by
    /// default: the vendor's own bucket is in series with ours, a moment later, and a burst that
    /// ours allows finds theirs empty whenever requests reach it unevenly — measured with the
    /// Azure twin at R = 10/s, a burst of R cost 6–12% of requests in 429s, a burst of 1 none,
    /// at 95% of R (`scripts/bench-poll.sh`).
    pub admission: BucketSpec,
}

impl Budgets {
    pub fn for_vendor(
        vendor: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, crate::config::SettingError> {
        let positive = |name: &'static str, default: f64| {
            crate::config::setting(&lookup, name, default, "a positive number", |v: &f64| {
                v.is_finite() && *v > 0.0
            })
        };
        let rps = positive("VENDOR_RATE_LIMIT_RPS", 5.0)?;
        Ok(Budgets {
            retry: BucketSpec {
                name: format!("{vendor}#retry"),
                capacity: positive("RETRY_BUDGET_CAPACITY", 20.0)?,
                refill_per_sec: positive("RETRY_BUDGET_REFILL_PER_SEC", 0.2)?,
            },
            admission: BucketSpec {
                name: format!("{vendor}#admission"),
                capacity: positive("VENDOR_RATE_BURST", 1.0)?,
                refill_per_sec: rps,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn full_jitter_stays_under_the_ceiling_and_over_retry_after() {
        let backoff = Backoff::default();
        assert_eq!(backoff.ceiling(1), Duration::from_secs(2));
        assert_eq!(backoff.ceiling(4), Duration::from_secs(16));
        assert_eq!(backoff.ceiling(30), Duration::from_secs(900));
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let delays: Vec<Duration> = (0..200).map(|_| backoff.delay(3, None, &mut rng)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(8)));
        assert!(
            delays.iter().any(|d| *d < Duration::from_secs(2)),
            "jitter reaches low values"
        );
        assert!(
            delays.iter().any(|d| *d > Duration::from_secs(6)),
            "and high ones"
        );
        let floored = backoff.delay(1, Some(Duration::from_secs(30)), &mut rng);
        assert!(floored >= Duration::from_secs(30));
    }

    #[test]
    fn budgets_read_their_parameters() {
        let b = Budgets::for_vendor("sim", |k| {
            (k == "VENDOR_RATE_LIMIT_RPS").then(|| "2".to_owned())
        })
        .unwrap();
        let bad = Budgets::for_vendor("sim", |k| {
            (k == "VENDOR_RATE_LIMIT_RPS").then(|| "fast".to_owned())
        });
        assert_eq!(bad.unwrap_err().name, "VENDOR_RATE_LIMIT_RPS");
        assert_eq!(b.admission.refill_per_sec, 2.0);
        assert_eq!(b.admission.capacity, 1.0, "evenly paced unless told");
        assert_eq!(b.retry.capacity, 20.0);
        assert_eq!(b.retry.name, "sim#retry");
        assert_eq!(visibility_seconds(Duration::from_secs(100_000)), 43_200);
        assert_eq!(delay_seconds(Duration::ZERO), 1);
    }

    proptest::proptest! {
        /// Full jitter stays within its ceiling, honours Retry-After, and the ceiling grows and
        /// stops at the cap, for any base, cap and attempt.
        #[test]
        fn backoff_bounds(base_ms in 1u64..10_000, cap_s in 1u64..3_600, attempt in 0u32..200,
                          retry_after_s in proptest::option::of(0u64..1_000), seed in 0u64..1_000) {
            let backoff = Backoff { base: Duration::from_millis(base_ms), cap: Duration::from_secs(cap_s) };
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let retry_after = retry_after_s.map(Duration::from_secs);
            let d = backoff.delay(attempt, retry_after, &mut rng);
            proptest::prop_assert!(d <= backoff.ceiling(attempt).max(retry_after.unwrap_or_default()));
            proptest::prop_assert!(d >= retry_after.unwrap_or_default());
            proptest::prop_assert!(backoff.ceiling(attempt) <= backoff.cap);
            proptest::prop_assert!(backoff.ceiling(attempt) <= backoff.ceiling(attempt + 1));
        }
    }
}
