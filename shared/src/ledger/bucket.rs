//! Token buckets shared by every concurrent invocation, stored as items in the dedupe table
//! (`dedupe_key = bucket#<name>`).
//!
//! Used for the vendor's rate limit (admission control) and the retry budget. A take reads the
//! item, refills it for the time elapsed, and writes it back conditioned on the `updated_at` it
//! read (optimistic concurrency), so two invocations never spend the same token.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
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

impl Ledger {
    /// Takes `cost` tokens from the bucket, refilled as of `now`.
    #[instrument(skip_all, fields(bucket = %spec.name, cost))]
    pub async fn take_tokens(
        &self,
        spec: &BucketSpec,
        cost: f64,
        now: UnixMillis,
    ) -> Result<Take, LedgerError> {
        let key = format!("bucket#{}", spec.name);
        for _ in 0..TRIES {
            let current = self
                .client
                .get_item()
                .table_name(&self.tables.dedupe)
                .key(KEY, s(&key))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| LedgerError::dynamo("GetItem", &e))?
                .item;
            let (tokens, updated_at, paused_until) = match &current {
                Some(item) => (
                    number(item, TOKENS).unwrap_or(spec.capacity),
                    number(item, UPDATED_AT).map(|v| v as u64),
                    number(item, PAUSED_UNTIL).map(|v| v as u64).unwrap_or(0),
                ),
                None => (spec.capacity, None, 0),
            };
            if paused_until > now.0 {
                return Ok(Take::Denied {
                    wait: Duration::from_millis(paused_until - now.0),
                });
            }
            let elapsed = updated_at.map_or(0.0, |at| now.0.saturating_sub(at) as f64 / 1000.0);
            let available = (tokens + elapsed * spec.refill_per_sec).min(spec.capacity);
            if available < cost {
                let wait = (cost - available) / spec.refill_per_sec.max(f64::MIN_POSITIVE);
                return Ok(Take::Denied {
                    wait: Duration::from_secs_f64(wait.min(3600.0)),
                });
            }
            let mut request = self
                .client
                .put_item()
                .table_name(&self.tables.dedupe)
                .item(KEY, s(&key))
                .item(
                    TOKENS,
                    AttributeValue::N(format!("{:.4}", available - cost)),
                )
                .item(UPDATED_AT, n(now.0.max(updated_at.unwrap_or(0))))
                .item(PAUSED_UNTIL, n(paused_until))
                .expression_attribute_names("#u", UPDATED_AT);
            request = match updated_at {
                Some(at) => request
                    .condition_expression("#u = :u")
                    .expression_attribute_values(":u", n(at)),
                None => request.condition_expression("attribute_not_exists(#u)"),
            };
            match request.send().await {
                Ok(_) => return Ok(Take::Granted),
                Err(e)
                    if matches!(
                        e.as_service_error(),
                        Some(PutItemError::ConditionalCheckFailedException(_))
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(LedgerError::dynamo("PutItem", &e)),
            }
        }
        Ok(Take::Denied {
            wait: Duration::from_millis(100),
        })
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
