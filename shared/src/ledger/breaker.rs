//! Where the vendor breakers (`crate::breaker`) keep their numbers: items in the dedupe table.
//!
//! - `breaker#<vendor>`: the state (`closed`, `open` until a time, `half_open` with the probe's
//!   lease) and a `version` every transition names in its condition, so a transition computed
//!   from a stale read is refused and exactly one of the containers racing for it wins.
//! - `breaker#<vendor>#<minute>`: that minute's calls and failures, grown with atomic `ADD`s
//!   (no read), kept a little past the window (`expires_at`).
//!
//! A container remembers a closed state it read for [`BreakerPolicy::closed_reuse`], so a
//! submission to a healthy vendor does not pay a read for it (issue #33). Every fresh read
//! refreshes the memory, and a fresh read comes with every failure counted, so a container that
//! calls a vendor another container found down learns it on its first failure there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};

use super::item::{attr, n, s};
use super::{Ledger, LedgerError};
use crate::breaker::{BreakerPolicy, BreakerState, Outcome, Window};
use crate::time::UnixMillis;

const MINUTE_MS: u64 = 60_000;

fn state_key(vendor: &str) -> String {
    format!("breaker#{vendor}")
}

fn minute_key(vendor: &str, minute: u64) -> String {
    format!("breaker#{vendor}#{minute}")
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn decode(item: &HashMap<String, AttributeValue>) -> BreakerState {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    match text("state").as_deref() {
        Some("open") => BreakerState::Open {
            until: UnixMillis(number(item, "open_until").unwrap_or(0)),
            reason: text("reason").unwrap_or_default(),
        },
        Some("half_open") => BreakerState::HalfOpen {
            probe_until: number(item, "probe_until").map(UnixMillis),
        },
        _ => BreakerState::Closed,
    }
}

/// Per vendor, the version of the closed state this container last read, and when it read it.
pub(super) type ClosedSeen = Arc<Mutex<HashMap<String, (u64, Instant)>>>;

impl Ledger {
    /// [`Self::breaker_state`], or the closed state this container read within `reuse`.
    pub async fn breaker_state_recent(
        &self,
        vendor: &str,
        reuse: Duration,
    ) -> Result<(BreakerState, u64), LedgerError> {
        let remembered = self
            .breakers_closed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(vendor)
            .filter(|(_, at)| at.elapsed() < reuse)
            .map(|(version, _)| *version);
        match remembered {
            Some(version) => Ok((BreakerState::Closed, version)),
            None => self.breaker_state(vendor).await,
        }
    }

    /// The vendor's breaker and the version to name in a transition (0: never written, closed).
    pub async fn breaker_state(&self, vendor: &str) -> Result<(BreakerState, u64), LedgerError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.tables.dedupe)
            .key(attr::DEDUPE_KEY, s(state_key(vendor)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| LedgerError::dynamo("GetItem", &e))?
            .item;
        let (state, version) = match item {
            Some(item) => (decode(&item), number(&item, "version").unwrap_or(0)),
            None => (BreakerState::Closed, 0),
        };
        let mut closed = self
            .breakers_closed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if state == BreakerState::Closed {
            closed.insert(vendor.to_owned(), (version, Instant::now()));
        } else {
            closed.remove(vendor);
        }
        Ok((state, version))
    }

    /// Writes `to` if the breaker is still at `version`; `false` when another writer moved it
    /// first (the caller's view was stale, and the other's transition stands).
    pub async fn breaker_transition(
        &self,
        vendor: &str,
        version: u64,
        to: &BreakerState,
        now: UnixMillis,
    ) -> Result<bool, LedgerError> {
        let mut item = HashMap::from([
            (attr::DEDUPE_KEY.to_owned(), s(state_key(vendor))),
            ("state".to_owned(), s(to.name())),
            ("version".to_owned(), n(version + 1)),
            ("changed_at".to_owned(), n(now.0)),
        ]);
        match to {
            BreakerState::Open { until, reason } => {
                item.insert("open_until".into(), n(until.0));
                item.insert("reason".into(), s(reason.as_str()));
            }
            BreakerState::HalfOpen {
                probe_until: Some(lease),
            } => {
                item.insert("probe_until".into(), n(lease.0));
            }
            BreakerState::HalfOpen { probe_until: None } | BreakerState::Closed => {}
        }
        // Whatever it moves to, this container reads it afresh next time.
        self.breakers_closed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(vendor);
        let request = self
            .client
            .put_item()
            .table_name(&self.tables.dedupe)
            .set_item(Some(item));
        let request = if version == 0 {
            request.condition_expression("attribute_not_exists(version)")
        } else {
            request
                .condition_expression("version = :v")
                .expression_attribute_values(":v", n(version))
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(LedgerError::dynamo("PutItem", &e)),
            },
        }
    }

    /// Counts one call's outcome in this minute's bucket. A failure returns the window it fell
    /// in (the policy's last minutes, read after the count); a success returns `None`, as it
    /// can open nothing.
    pub async fn breaker_count(
        &self,
        vendor: &str,
        outcome: Outcome,
        policy: &BreakerPolicy,
        now: UnixMillis,
    ) -> Result<Option<Window>, LedgerError> {
        let minute = now.0 / MINUTE_MS;
        let keep_until = (minute + policy.window_minutes + 1) * MINUTE_MS / 1000;
        self.client
            .update_item()
            .table_name(&self.tables.dedupe)
            .key(attr::DEDUPE_KEY, s(minute_key(vendor, minute)))
            .update_expression("ADD calls :one, failures :failed SET #exp = :exp")
            .expression_attribute_names("#exp", attr::EXPIRES_AT)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":failed", n(u64::from(outcome.is_failure())))
            .expression_attribute_values(":exp", n(keep_until))
            .send()
            .await
            .map_err(|e| LedgerError::dynamo("UpdateItem", &e))?;
        if !outcome.is_failure() {
            return Ok(None);
        }
        self.breaker_window(vendor, policy, now).await.map(Some)
    }

    /// Calls and failures over the policy's window: this minute and the ones before it.
    pub async fn breaker_window(
        &self,
        vendor: &str,
        policy: &BreakerPolicy,
        now: UnixMillis,
    ) -> Result<Window, LedgerError> {
        let minute = now.0 / MINUTE_MS;
        let keys: Vec<HashMap<String, AttributeValue>> = (0..policy.window_minutes)
            .filter_map(|back| minute.checked_sub(back))
            .map(|m| HashMap::from([(attr::DEDUPE_KEY.to_owned(), s(minute_key(vendor, m)))]))
            .collect();
        let wanted = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(|e| LedgerError::Dynamo {
                operation: "BatchGetItem",
                detail: e.to_string(),
            })?;
        let mut window = Window::default();
        let mut request = HashMap::from([(self.tables.dedupe.clone(), wanted)]);
        // A batch may come back in parts (`UnprocessedKeys`): ask again for the rest.
        while !request.is_empty() {
            let out = self
                .client
                .batch_get_item()
                .set_request_items(Some(request))
                .send()
                .await
                .map_err(|e| LedgerError::dynamo("BatchGetItem", &e))?;
            for item in out
                .responses()
                .and_then(|r| r.get(&self.tables.dedupe))
                .into_iter()
                .flatten()
            {
                window.calls += number(item, "calls").unwrap_or(0);
                window.failures += number(item, "failures").unwrap_or(0);
            }
            request = out.unprocessed_keys.unwrap_or_default();
        }
        Ok(window)
    }
}
