//! Claim-once markers for event ids (webhook deliveries, and anything else delivered at least once).
//!
//! A claim is a conditional put, and it has two phases, as Powertools' idempotency record does
//! (ANCHORS.md §1) — with the expiry that record's users found missing:
//! - **in progress** while the holder does the work the claim guards (the webhook: putting the
//!   notice on the queue), until `in_progress_until` — the holder's own deadline. A holder that
//!   dies before finishing leaves a claim anyone may take over once that time has passed; until
//!   then a second delivery is told to come back later ([`Claim::InProgress`]), never that the
//!   event was handled. (Without this phase a crash between the claim and the enqueue made the
//!   vendor's retry a "duplicate", and the completion was lost.)
//! - **done** once the holder finished ([`Ledger::complete_claim`], fenced by its token): a
//!   duplicate until `expires_at`.
//!
//! An entry whose `expires_at` has passed counts as absent even if it is still in the table:
//! DynamoDB's TTL sweeper deletes up to days late, and moto never deletes. Callers pick a TTL
//! longer than the window in which a replay could otherwise be accepted (for webhooks: the
//! signature timestamp tolerance), so an expired marker can only be re-claimed by an event that
//! the timestamp check already rejects. An entry without a `status` (written before the two
//! phases existed) is done.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use tracing::instrument;

use super::item::{attr, n, s};
use super::{conflicting_item, Ledger, LedgerError};
use crate::time::UnixMillis;

/// Proof of a claim, needed to release it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToken(String);

impl ClaimToken {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This caller is the first (or the first since the previous claim expired, or since its
    /// holder's time ran out unfinished). Finish with [`Ledger::complete_claim`], or give it
    /// back with [`Ledger::release_claim`].
    First(ClaimToken),
    /// Another holder claimed this id and may still be doing the work, until `until`: neither
    /// done nor abandoned yet. Ask the sender to come back later.
    InProgress { until: UnixMillis },
    /// The event was handled; the claim is live until it expires.
    Duplicate { claimed_at: UnixMillis },
}

const IN_PROGRESS: &str = "in_progress";
const DONE: &str = "done";

impl Ledger {
    /// Claims `id` within `scope` for `ttl`, in progress for at most `in_progress` (the time
    /// the holder has left to finish: its invocation's).
    #[instrument(skip_all, fields(scope = scope, id = id))]
    pub async fn claim_once(
        &self,
        scope: &str,
        id: &str,
        ttl: Duration,
        in_progress: Duration,
        now: UnixMillis,
    ) -> Result<Claim, LedgerError> {
        let token = ClaimToken(uuid::Uuid::new_v4().to_string());
        let expires_at = now
            .plus(ttl)
            .as_unix_seconds()
            .max(now.as_unix_seconds() + 1);
        let item = HashMap::from([
            (attr::DEDUPE_KEY.to_owned(), s(dedupe_key(scope, id))),
            (attr::EXPIRES_AT.to_owned(), n(expires_at)),
            (attr::CLAIMED_AT.to_owned(), n(now.0)),
            (attr::TOKEN.to_owned(), s(token.as_str())),
            (attr::CLAIM_STATUS.to_owned(), s(IN_PROGRESS)),
            (
                attr::IN_PROGRESS_UNTIL.to_owned(),
                n(now.plus(in_progress).0),
            ),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.dedupe)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(#k) OR #exp <= :now OR (#st = :ip AND #ipu <= :now_ms)",
            )
            .expression_attribute_names("#k", attr::DEDUPE_KEY)
            .expression_attribute_names("#exp", attr::EXPIRES_AT)
            .expression_attribute_names("#st", attr::CLAIM_STATUS)
            .expression_attribute_names("#ipu", attr::IN_PROGRESS_UNTIL)
            .expression_attribute_values(":now", n(now.as_unix_seconds()))
            .expression_attribute_values(":now_ms", n(now.0))
            .expression_attribute_values(":ip", s(IN_PROGRESS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::First(token)),
            Err(err) => match conflicting_item(&err, |e| match e {
                PutItemError::ConditionalCheckFailedException(c) => Some(c.item()),
                _ => None,
            }) {
                Some(existing) => {
                    let number = |name: &str| {
                        existing
                            .and_then(|item| item.get(name))
                            .and_then(|v| v.as_n().ok())
                            .and_then(|v| v.parse().ok())
                            .map(UnixMillis)
                    };
                    let in_progress = existing
                        .and_then(|item| item.get(attr::CLAIM_STATUS))
                        .and_then(|v| v.as_s().ok())
                        .is_some_and(|status| status == IN_PROGRESS);
                    Ok(match number(attr::IN_PROGRESS_UNTIL) {
                        Some(until) if in_progress => Claim::InProgress { until },
                        _ => Claim::Duplicate {
                            claimed_at: number(attr::CLAIMED_AT).unwrap_or(now),
                        },
                    })
                }
                None => Err(LedgerError::dynamo("PutItem", &err)),
            },
        }
    }

    /// Marks a claim done: its work took effect, so the id is a duplicate until it expires.
    /// Fenced by the claim's token; `false` if the claim is no longer ours (it was taken over
    /// after our time ran out, and the new holder does the work again).
    #[instrument(skip_all, fields(scope = scope, id = id))]
    pub async fn complete_claim(
        &self,
        scope: &str,
        id: &str,
        token: &ClaimToken,
    ) -> Result<bool, LedgerError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.dedupe)
            .key(attr::DEDUPE_KEY, s(dedupe_key(scope, id)))
            .update_expression("SET #st = :done REMOVE #ipu")
            .condition_expression("#t = :t")
            .expression_attribute_names("#st", attr::CLAIM_STATUS)
            .expression_attribute_names("#ipu", attr::IN_PROGRESS_UNTIL)
            .expression_attribute_names("#t", attr::TOKEN)
            .expression_attribute_values(":done", s(DONE))
            .expression_attribute_values(":t", s(token.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(false)
            }
            Err(err) => Err(LedgerError::dynamo("UpdateItem", &err)),
        }
    }

    /// Gives a claim back, e.g. when the work it guarded failed before taking effect and the
    /// sender's retry must not be treated as a duplicate. Only the holder of `token` can release;
    /// returns `false` if the claim was already released, expired and re-claimed, or never existed.
    #[instrument(skip_all, fields(scope = scope, id = id))]
    pub async fn release_claim(
        &self,
        scope: &str,
        id: &str,
        token: &ClaimToken,
    ) -> Result<bool, LedgerError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.tables.dedupe)
            .key(attr::DEDUPE_KEY, s(dedupe_key(scope, id)))
            .condition_expression("#t = :t")
            .expression_attribute_names("#t", attr::TOKEN)
            .expression_attribute_values(":t", s(token.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(DeleteItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(false)
            }
            Err(err) => Err(LedgerError::dynamo("DeleteItem", &err)),
        }
    }
}

fn dedupe_key(scope: &str, id: &str) -> String {
    format!("{scope}#{id}")
}
