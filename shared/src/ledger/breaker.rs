//! Where the vendor breakers (`crate::breaker`) keep their numbers: items in the dedupe table.
//!
//! - `breaker#<vendor>`: the state (`closed`, `open` until a time, `half_open` with the probe's
//!   lease) and a `version` every transition names in its condition, so a transition computed
//!   from a stale read is refused and exactly one of the containers racing for it wins.
//! - `breaker#<vendor>#<minute>`: that minute's calls and failures, grown with atomic `ADD`s
//!   (no read), kept a little past the window (`expires_at`). A container holds its successes
//!   for up to [`BreakerPolicy::success_flush`] and adds them in one `ADD`.
//!
//! A container remembers a closed state it read for [`BreakerPolicy::closed_reuse`], so a
//! submission to a healthy vendor does not pay a read for it (issue #33). Every fresh read
//! refreshes the memory, and a fresh read comes with every failure counted, so a container that
//! calls a vendor another container found down learns it on its first failure there.

use std::collections::{BTreeMap, HashMap};
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

/// Successes this container counted and has not written yet, per vendor and minute, with when
/// the first of them was counted ([`BreakerPolicy::success_flush`]).
pub(super) type HeldSuccesses = Arc<Mutex<HashMap<(String, u64), (u64, Instant)>>>;

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

    /// Counts one call's outcome in this minute's bucket, with the successes this container
    /// holds for the vendor ([`Self::breaker_count_success`]), and returns the window it fell in
    /// (the policy's last minutes, read after the count).
    pub async fn breaker_count(
        &self,
        vendor: &str,
        outcome: Outcome,
        policy: &BreakerPolicy,
        now: UnixMillis,
    ) -> Result<Window, LedgerError> {
        let minute = now.0 / MINUTE_MS;
        // Every minute's held successes go with it, so that the window this container reads
        // holds all of its own calls.
        let held = self.take_held(vendor, |_, _| true);
        let (this_minute_held, earlier): (BTreeMap<_, _>, BTreeMap<_, _>) =
            held.into_iter().partition(|((_, m), _)| *m == minute);
        let this_minute = 1 + this_minute_held.values().sum::<u64>();
        if let Err(e) = self.write_held(vendor, earlier, policy).await {
            self.hold_again(this_minute_held);
            return Err(e);
        }
        let failures = u64::from(outcome.is_failure());
        if let Err(e) = self
            .add_calls(vendor, minute, this_minute, failures, policy)
            .await
        {
            self.hold_again(this_minute_held);
            return Err(e);
        }
        self.breaker_window(vendor, policy, now).await
    }

    /// Counts a success of a closed breaker: held in this container and written, in one `ADD`
    /// per minute, once it has held one for [`BreakerPolicy::success_flush`], once its minute
    /// is over, or with the vendor's next failure ([`Self::breaker_count`]).
    pub async fn breaker_count_success(
        &self,
        vendor: &str,
        policy: &BreakerPolicy,
        now: UnixMillis,
    ) -> Result<(), LedgerError> {
        let minute = now.0 / MINUTE_MS;
        if policy.success_flush.is_zero() {
            return self.add_calls(vendor, minute, 1, 0, policy).await;
        }
        {
            let mut held = self
                .breaker_successes
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            held.entry((vendor.to_owned(), minute))
                .or_insert((0, Instant::now()))
                .0 += 1;
        }
        let due = self.take_held(vendor, |held_minute, since| {
            held_minute < minute || since.elapsed() >= policy.success_flush
        });
        self.write_held(vendor, due, policy).await
    }

    /// Writes held successes, one `ADD` per minute. On a failed write, what was not written
    /// (the failed one included) is held again, to be counted later rather than never; what
    /// was written is not, or it would be counted twice. (An `ADD` that landed but whose answer
    /// was lost is still counted twice: the rate then reads lower by those few successes, for
    /// at most the window.)
    async fn write_held(
        &self,
        vendor: &str,
        held: BTreeMap<(String, u64), u64>,
        policy: &BreakerPolicy,
    ) -> Result<(), LedgerError> {
        let mut unwritten = held;
        while let Some((key, count)) = unwritten.pop_first() {
            if let Err(e) = self.add_calls(vendor, key.1, count, 0, policy).await {
                unwritten.insert(key, count);
                self.hold_again(unwritten);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Removes and returns the successes held for `vendor` whose (minute, first held) `due`
    /// says to write.
    fn take_held(
        &self,
        vendor: &str,
        due: impl Fn(u64, Instant) -> bool,
    ) -> BTreeMap<(String, u64), u64> {
        let mut held = self
            .breaker_successes
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let keys: Vec<(String, u64)> = held
            .iter()
            .filter(|((v, minute), (_, since))| v == vendor && due(*minute, *since))
            .map(|(key, _)| key.clone())
            .collect();
        keys.into_iter()
            .filter_map(|key| held.remove(&key).map(|(count, _)| (key, count)))
            .collect()
    }

    /// Puts back successes whose write failed: they go with the next write instead.
    fn hold_again(&self, counts: BTreeMap<(String, u64), u64>) {
        let mut held = self
            .breaker_successes
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for (key, count) in counts {
            held.entry(key).or_insert((0, Instant::now())).0 += count;
        }
    }

    /// Adds `calls` calls, `failures` of them failed, to `minute`'s bucket (an atomic `ADD`,
    /// no read), kept a little past the window.
    async fn add_calls(
        &self,
        vendor: &str,
        minute: u64,
        calls: u64,
        failures: u64,
        policy: &BreakerPolicy,
    ) -> Result<(), LedgerError> {
        let keep_until = (minute + policy.window_minutes + 1) * MINUTE_MS / 1000;
        self.client
            .update_item()
            .table_name(&self.tables.dedupe)
            .key(attr::DEDUPE_KEY, s(minute_key(vendor, minute)))
            .update_expression("ADD calls :calls, failures :failed SET #exp = :exp")
            .expression_attribute_names("#exp", attr::EXPIRES_AT)
            .expression_attribute_values(":calls", n(calls))
            .expression_attribute_values(":failed", n(failures))
            .expression_attribute_values(":exp", n(keep_until))
            .send()
            .await
            .map_err(|e| LedgerError::dynamo("UpdateItem", &e))?;
        Ok(())
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
