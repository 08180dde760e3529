//! Token buckets shared by every concurrent invocation, stored as items in the dedupe table
//! (`dedupe_key = bucket#<name>`).
//!
//! Used for the vendor's rate limit (admission control) and the retry budget. A take refills the
//! bucket for the time elapsed and writes it back conditioned on the `updated_at` and
//! `paused_until` it started from (optimistic concurrency), so two invocations never spend the
//! same token and a take never erases a pause.
//!
//! It starts from the state this container last wrote or saw, not from a fresh read: a warm
//! container that took the last token pays one write per take. When another container wrote in
//! between, the condition fails and returns the current item (`ALL_OLD`), which is the read —
//! so a take costs one request when uncontended and two when not, never a read plus a write
//! every time. A stale cached state can only overstate the tokens (others spend, nobody adds
//! but time) and understate a pause (pauses only lengthen), so a denial computed from it is
//! never wrong.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use tracing::instrument;

use super::item::{n, s};
use super::{Ledger, LedgerError};
use crate::time::UnixMillis;

/// A bucket's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketSpec {
    /// `bucket#<name>` in the table; one bucket per vendor and purpose.
    pub name: String,
    /// Tokens a full bucket holds (the burst).
    pub capacity: f64,
    /// Tokens added per second.
    pub refill_per_sec: f64,
}

/// The answer of [`Ledger::take_tokens`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Take {
    Granted,
    /// Not enough tokens (or the bucket is paused): try again after `wait`.
    Denied {
        wait: Duration,
    },
}

const KEY: &str = "dedupe_key";
const TOKENS: &str = "tokens";
const UPDATED_AT: &str = "updated_at";
const PAUSED_UNTIL: &str = "paused_until";
/// Optimistic-write attempts before answering "denied, try shortly".
const TRIES: usize = 5;

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<f64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// A bucket item as last written or read; `None` inside means the item does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct State {
    tokens: Option<f64>,
    updated_at: Option<u64>,
    paused_until: Option<u64>,
}

impl State {
    fn from_item(item: Option<&HashMap<String, AttributeValue>>) -> Self {
        State {
            tokens: item.and_then(|i| number(i, TOKENS)),
            updated_at: item.and_then(|i| number(i, UPDATED_AT)).map(|v| v as u64),
            paused_until: item.and_then(|i| number(i, PAUSED_UNTIL)).map(|v| v as u64),
        }
    }
}

/// A take decided from the bucket as last seen, at `now`: the state to write, or how long to
/// wait. Pure, so its arithmetic is tested on its own (tests/bucket_properties below).
pub(super) fn decide(
    seen: State,
    spec: &BucketSpec,
    cost: f64,
    now: UnixMillis,
) -> Result<State, Duration> {
    let tokens = seen.tokens.unwrap_or(spec.capacity);
    let paused_until = seen.paused_until.unwrap_or(0);
    if paused_until > now.0 {
        return Err(Duration::from_millis(paused_until - now.0));
    }
    let elapsed = seen
        .updated_at
        .map_or(0.0, |at| now.0.saturating_sub(at) as f64 / 1000.0);
    let available = (tokens + elapsed * spec.refill_per_sec).min(spec.capacity);
    if available < cost {
        let wait = (cost - available) / spec.refill_per_sec.max(f64::MIN_POSITIVE);
        // Never a zero wait: the caller sleeps and asks again.
        return Err(Duration::from_secs_f64(wait.clamp(0.001, 3600.0)));
    }
    Ok(State {
        // Rounded down to what DynamoDB stores (4 decimals): never a sliver more than earned.
        tokens: Some(((available - cost) * 1e4).floor() / 1e4),
        updated_at: Some(now.0.max(seen.updated_at.unwrap_or(0))),
        paused_until: seen.paused_until,
    })
}

/// Per-container memory of bucket states, shared by the ledger's clones: one slot per bucket,
/// behind an async lock that a take holds from its decision to its write. A container's takers
/// (a batch's messages handled at once) so queue for the bucket in turn, and each decides from
/// the state the one before it wrote: they never race each other for the same token, which
/// would cost a failed conditional write for every loser, and the ones denied sleep until their
/// own turn instead of all waking for the same token.
pub(super) type Seen = Arc<Mutex<HashMap<String, Slot>>>;
pub(super) type Slot = Arc<tokio::sync::Mutex<Option<State>>>;

impl Ledger {
    /// Takes `cost` tokens from the bucket, refilled as of `now` (or, when this container's
    /// other takers hold the bucket, as of when they are done).
    #[instrument(skip_all, fields(bucket = %spec.name, cost))]
    pub async fn take_tokens(
        &self,
        spec: &BucketSpec,
        cost: f64,
        now: UnixMillis,
    ) -> Result<Take, LedgerError> {
        let key = format!("bucket#{}", spec.name);
        let slot: Slot = self
            .buckets_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let asked = std::time::Instant::now();
        let mut remembered = slot.lock().await;
        // Waiting for the slot took time: decide as of then, not as of the call.
        let now = now.plus(asked.elapsed());
        let mut seen = match *remembered {
            Some(state) => state,
            None => State::from_item(
                self.client
                    .get_item()
                    .table_name(&self.tables.dedupe)
                    .key(KEY, s(&key))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| LedgerError::dynamo("GetItem", &e))?
                    .item(),
            ),
        };
        for _ in 0..TRIES {
            let written = match decide(seen, spec, cost, now) {
                Ok(written) => written,
                Err(wait) => {
                    *remembered = Some(seen);
                    return Ok(Take::Denied { wait });
                }
            };
            let mut request = self
                .client
                .put_item()
                .table_name(&self.tables.dedupe)
                .item(KEY, s(&key))
                .item(
                    TOKENS,
                    AttributeValue::N(format!("{:.4}", written.tokens.unwrap_or(0.0))),
                )
                .item(UPDATED_AT, n(written.updated_at.unwrap_or(now.0)))
                .expression_attribute_names("#u", UPDATED_AT)
                .expression_attribute_names("#p", PAUSED_UNTIL)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            if let Some(p) = seen.paused_until {
                request = request.item(PAUSED_UNTIL, n(p));
            }
            let updated = match seen.updated_at {
                Some(at) => {
                    request = request.expression_attribute_values(":u", n(at));
                    "#u = :u"
                }
                None => "attribute_not_exists(#u)",
            };
            let paused = match seen.paused_until {
                Some(p) => {
                    request = request.expression_attribute_values(":p", n(p));
                    "#p = :p"
                }
                None => "attribute_not_exists(#p)",
            };
            match request
                .condition_expression(format!("{updated} AND {paused}"))
                .send()
                .await
            {
                Ok(_) => {
                    *remembered = Some(written);
                    return Ok(Take::Granted);
                }
                Err(e) => match e.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                        // Someone else wrote since: the failure carries the item as it is now.
                        seen = State::from_item(failed.item());
                    }
                    _ => {
                        *remembered = None;
                        return Err(LedgerError::dynamo("PutItem", &e));
                    }
                },
            }
        }
        *remembered = Some(seen);
        Ok(Take::Denied {
            wait: Duration::from_millis(100),
        })
    }

    /// Takes one token, waiting in-process for it when it comes within `max_wait`; `Denied`
    /// only for a longer wait (the caller defers its work instead of holding the invocation).
    pub async fn take_within(
        &self,
        spec: &BucketSpec,
        max_wait: Duration,
    ) -> Result<Take, LedgerError> {
        loop {
            match self.take_tokens(spec, 1.0, UnixMillis::now()).await? {
                Take::Denied { wait } if wait <= max_wait => tokio::time::sleep(wait).await,
                answer => return Ok(answer),
            }
        }
    }

    /// Stops every taker until `until` (a vendor's `Retry-After` applies to all of us).
    #[instrument(skip_all, fields(bucket = %spec.name))]
    pub async fn pause_bucket(
        &self,
        spec: &BucketSpec,
        until: UnixMillis,
    ) -> Result<(), LedgerError> {
        self.client
            .update_item()
            .table_name(&self.tables.dedupe)
            .key(KEY, s(format!("bucket#{}", spec.name)))
            .update_expression("SET #p = :p")
            .condition_expression("attribute_not_exists(#p) OR #p < :p")
            .expression_attribute_names("#p", PAUSED_UNTIL)
            .expression_attribute_values(":p", n(until.0))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| {
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception())
                {
                    Ok(()) // already paused at least as long
                } else {
                    Err(LedgerError::dynamo("UpdateItem", &e))
                }
            })
    }
}

#[cfg(test)]
mod bucket_properties {
    use super::*;
    use proptest::prelude::*;

    fn spec(capacity: f64, rate: f64) -> BucketSpec {
        BucketSpec {
            name: "p".into(),
            capacity,
            refill_per_sec: rate,
        }
    }

    proptest! {
        /// Whatever the times of the takes, a bucket never grants more than its burst plus what
        /// it earned over the time elapsed, never holds more than its capacity or less than
        /// nothing, and a denial's wait is enough: asking again after it succeeds.
        #[test]
        fn never_more_than_earned_and_a_wait_is_enough(
            capacity in 1.0f64..50.0,
            rate in 0.1f64..100.0,
            gaps in proptest::collection::vec(0u64..2_000, 1..200),
        ) {
            let spec = spec(capacity, rate);
            let mut state = State::default();
            let start = 1_000_000u64;
            let mut now = start;
            let mut granted = 0u64;
            for gap in gaps {
                now += gap;
                match decide(state, &spec, 1.0, UnixMillis(now)) {
                    Ok(next) => {
                        granted += 1;
                        let t = next.tokens.unwrap_or(0.0);
                        prop_assert!((0.0..=capacity).contains(&t), "tokens {t}");
                        state = next;
                    }
                    Err(wait) => {
                        prop_assert!(wait > Duration::ZERO);
                        let later = UnixMillis(now + wait.as_millis() as u64 + 1);
                        prop_assert!(decide(state, &spec, 1.0, later).is_ok(), "waited {wait:?} and still denied");
                    }
                }
                let earned = capacity + rate * (now - start) as f64 / 1000.0;
                prop_assert!(granted as f64 <= earned + 1e-6, "granted {granted} > earned {earned}");
            }
        }

        /// A pause is respected to the millisecond, and a clock behind the last write (another
        /// container's) earns nothing.
        #[test]
        fn pauses_hold_and_skewed_clocks_earn_nothing(
            pause in 1u64..100_000,
            behind in 1u64..100_000,
        ) {
            let spec = spec(5.0, 1.0);
            let paused = State { tokens: Some(5.0), updated_at: Some(10_000), paused_until: Some(10_000 + pause) };
            prop_assert_eq!(decide(paused, &spec, 1.0, UnixMillis(10_000)), Err(Duration::from_millis(pause)));
            prop_assert!(decide(paused, &spec, 1.0, UnixMillis(10_000 + pause)).is_ok());
            let empty = State { tokens: Some(0.0), updated_at: Some(1_000_000), paused_until: None };
            prop_assert!(decide(empty, &spec, 1.0, UnixMillis(1_000_000 - behind.min(999_999))).is_err());
        }
    }
}
