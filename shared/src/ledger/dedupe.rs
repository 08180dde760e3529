//! Claim-once markers for event ids (webhook deliveries, and anything else delivered at least once).
//!
//! A claim is a conditional put. An entry whose `expires_at` has passed counts as absent even if it
//! is still in the table: DynamoDB's TTL sweeper deletes up to days late, and moto never deletes.
//! Callers pick a TTL longer than the window in which a replay could otherwise be accepted (for
//! webhooks: the signature timestamp tolerance), so an expired marker can only be re-claimed by an
//! event that the timestamp check already rejects.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
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
    /// This caller is the first (or the first since the previous claim expired).
    First(ClaimToken),
    /// Someone claimed this id before and the claim is still live.
    Duplicate { claimed_at: UnixMillis },
}

impl Ledger {
    /// Claims `id` within `scope` for `ttl`.
    #[instrument(skip_all, fields(scope = scope, id = id))]
    pub async fn claim_once(
        &self,
        scope: &str,
        id: &str,
        ttl: Duration,
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
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.dedupe)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#k) OR #exp <= :now")
            .expression_attribute_names("#k", attr::DEDUPE_KEY)
            .expression_attribute_names("#exp", attr::EXPIRES_AT)
            .expression_attribute_values(":now", n(now.as_unix_seconds()))
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
                    let claimed_at = existing
                        .and_then(|item| item.get(attr::CLAIMED_AT))
                        .and_then(|v| v.as_n().ok())
                        .and_then(|v| v.parse().ok())
                        .map(UnixMillis)
                        .unwrap_or(now);
                    Ok(Claim::Duplicate { claimed_at })
                }
                None => Err(LedgerError::dynamo("PutItem", &err)),
            },
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
