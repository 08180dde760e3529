//! A circuit breaker per vendor, shared by every Lambda container (issue #29's foundation).
//!
//! Each container counts its vendor calls' outcomes into per-minute buckets in DynamoDB
//! (`ledger::breaker`), so all of them judge the vendor's health on the same numbers; the
//! breaker's state is one item every transition writes conditioned on the version it read, so
//! of many containers that see the same failure exactly one opens it, and after the cool-down
//! exactly one gets the probe.
//!
//! - **Closed**: calls go through. A failure re-reads the window; the breaker opens when the
//!   failures are more than [`BreakerPolicy::error_rate`] of at least
//!   [`BreakerPolicy::min_calls`] calls, or at once on an auth failure (a revoked key fails every
//!   call after it).
//! - **Open** until the cool-down ends: calls are refused (the caller takes the next vendor in
//!   its route, or waits).
//! - **Half-open**: one caller claims the probe (a lease, so a probe whose caller died is
//!   claimed again after [`BreakerPolicy::probe_lease`]); its success closes the breaker, its
//!   failure opens it for another cool-down.
//!
//! What stays out of the count: a 429 inside the rate budget (our pacing, not the vendor's
//! health) and 4xx answers about one document.

#[cfg(test)]
mod tests;

use std::time::Duration;

use crate::config::{duration_setting, setting, SettingError};
use crate::ledger::{Ledger, LedgerError};
use crate::time::UnixMillis;

/// How a vendor call ended, as the breaker counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// A 5xx.
    ServerError,
    /// A 429 past the rate budget: the vendor is shedding load.
    Throttled,
    /// No answer within the call's timeout.
    Timeout,
    /// A 401/403 after a credential refresh.
    AuthFailure,
}

impl Outcome {
    pub fn is_failure(self) -> bool {
        self != Outcome::Success
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::ServerError => "server_error",
            Outcome::Throttled => "throttled",
            Outcome::Timeout => "timeout",
            Outcome::AuthFailure => "auth_failure",
        }
    }
}

/// When the breaker opens and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerPolicy {
    /// Failures over calls above which it opens (`BREAKER_ERROR_RATE`, 0 < r < 1).
    pub error_rate: f64,
    /// Calls in the window before the rate means anything (`BREAKER_MIN_CALLS`).
    pub min_calls: u64,
    /// Whole minutes of buckets the rate is read over, this one included
    /// (`BREAKER_WINDOW_MINUTES`).
    pub window_minutes: u64,
    /// How long it stays open before a probe (`BREAKER_COOL_DOWN_SECONDS`).
    pub cool_down: Duration,
    /// How long a claimed probe holds the half-open breaker before another caller may probe
    /// (`BREAKER_PROBE_LEASE_SECONDS`).
    pub probe_lease: Duration,
    /// How long a container acts on a closed state it read before reading it again
    /// (`BREAKER_CLOSED_REUSE_MS`, default 5,000; 0 reads it for every call). An operator's
    /// `breaker open` reaches every container within this time; a vendor's failures reach the
    /// container that meets them at once (each failure reads the state afresh).
    pub closed_reuse: Duration,
    /// How long a container may hold the successes it counted before it writes them, all in one
    /// `ADD` (`BREAKER_SUCCESS_FLUSH_MS`, default 5,000; 0 writes each at once). A success can
    /// open nothing, so its count only has to be there when a failure reads the window: the
    /// container that meets a failure writes its own held successes with it, and a minute's
    /// successes are written once the minute is over. What other containers still hold is
    /// missing from that window, at most this long of their successes, and a container that
    /// Lambda retires takes its held successes with it: both only make the rate read higher,
    /// so the breaker may open a little early, never late. The saving: one write per call to a
    /// healthy vendor becomes about one per this interval per container (issue #33).
    pub success_flush: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            error_rate: 0.5,
            min_calls: 10,
            window_minutes: 2,
            cool_down: Duration::from_secs(60),
            probe_lease: Duration::from_secs(30),
            closed_reuse: Duration::from_secs(5),
            success_flush: Duration::from_secs(5),
        }
    }
}

impl BreakerPolicy {
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let d = BreakerPolicy::default();
        Ok(BreakerPolicy {
            error_rate: setting(
                lookup,
                "BREAKER_ERROR_RATE",
                d.error_rate,
                "a fraction between 0 and 1",
                |r: &f64| *r > 0.0 && *r < 1.0,
            )?,
            min_calls: setting(
                lookup,
                "BREAKER_MIN_CALLS",
                d.min_calls,
                "a whole number of calls, at least 1",
                |n: &u64| *n >= 1,
            )?,
            window_minutes: setting(
                lookup,
                "BREAKER_WINDOW_MINUTES",
                d.window_minutes,
                "1 to 60 minutes",
                |n: &u64| (1..=60).contains(n),
            )?,
            cool_down: duration_setting(
                lookup,
                "BREAKER_COOL_DOWN_SECONDS",
                d.cool_down,
                Duration::from_secs(1),
            )?,
            probe_lease: duration_setting(
                lookup,
                "BREAKER_PROBE_LEASE_SECONDS",
                d.probe_lease,
                Duration::from_secs(1),
            )?,
            closed_reuse: duration_setting(
                lookup,
                "BREAKER_CLOSED_REUSE_MS",
                d.closed_reuse,
                Duration::from_millis(1),
            )?,
            success_flush: duration_setting(
                lookup,
                "BREAKER_SUCCESS_FLUSH_MS",
                d.success_flush,
                Duration::from_millis(1),
            )?,
        })
    }

    /// Why the breaker should open on `outcome`, given the window it fell in.
    pub fn should_open(&self, window: Window, outcome: Outcome) -> Option<String> {
        if outcome == Outcome::AuthFailure {
            return Some("auth_failure".into());
        }
        if !outcome.is_failure() || window.calls < self.min_calls {
            return None;
        }
        let rate = window.failures as f64 / window.calls as f64;
        (rate > self.error_rate).then(|| {
            format!(
                "error rate {:.0}% over {} calls in {} min",
                100.0 * rate,
                window.calls,
                self.window_minutes
            )
        })
    }
}

/// Calls and failures counted over the policy's window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub calls: u64,
    pub failures: u64,
}

/// The breaker's state, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open {
        until: UnixMillis,
        reason: String,
    },
    /// The cool-down is over; `probe_until` is the claimed probe's lease, if one is out.
    HalfOpen {
        probe_until: Option<UnixMillis>,
    },
}

impl BreakerState {
    pub fn name(&self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen { .. } => "half_open",
        }
    }
}

/// Whether a call may go to the vendor now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Allowed as the half-open breaker's one probe: report its outcome with `probe: true`.
    Probe,
    /// Refused until about `until`: take the next vendor, or come back then.
    Refused {
        until: UnixMillis,
    },
}

/// One vendor's breaker, as a container holds it.
#[derive(Debug, Clone)]
pub struct Breaker {
    pub ledger: Ledger,
    pub vendor: String,
    pub policy: BreakerPolicy,
}

impl Breaker {
    /// Whether a call could go to the vendor at `now`, without claiming anything: `Refused`
    /// while it is open or another caller's probe is out; `Allowed` when closed, or when a probe
    /// could be claimed ([`Self::admit`] claims it, after the caller has done what must come
    /// first). A route chooses its vendor with this; a claimed probe the caller then does not
    /// use would hold every other caller off for its whole lease.
    pub async fn peek(&self, now: UnixMillis) -> Result<Admission, LedgerError> {
        let (state, _) = self
            .ledger
            .breaker_state_recent(&self.vendor, self.policy.closed_reuse)
            .await?;
        Ok(match state {
            BreakerState::Open { until, .. } if now < until => Admission::Refused { until },
            BreakerState::HalfOpen {
                probe_until: Some(lease),
            } if now < lease => Admission::Refused { until: lease },
            _ => Admission::Allowed,
        })
    }

    /// Asks to call the vendor at `now`.
    pub async fn admit(&self, now: UnixMillis) -> Result<Admission, LedgerError> {
        let (state, version) = self
            .ledger
            .breaker_state_recent(&self.vendor, self.policy.closed_reuse)
            .await?;
        let probe_claim = |version| async move {
            let lease = now.plus(self.policy.probe_lease);
            let claimed = self
                .ledger
                .breaker_transition(
                    &self.vendor,
                    version,
                    &BreakerState::HalfOpen {
                        probe_until: Some(lease),
                    },
                    now,
                )
                .await?;
            // Another container claimed it first: it is probing now.
            Ok(if claimed {
                Admission::Probe
            } else {
                Admission::Refused { until: lease }
            })
        };
        match state {
            BreakerState::Closed => Ok(Admission::Allowed),
            BreakerState::Open { until, .. } if now < until => Ok(Admission::Refused { until }),
            BreakerState::HalfOpen {
                probe_until: Some(lease),
            } if now < lease => Ok(Admission::Refused { until: lease }),
            // Cooled down, or a probe's caller never reported: claim the probe.
            BreakerState::Open { .. } | BreakerState::HalfOpen { .. } => probe_claim(version).await,
        }
    }

    /// Counts a call's `outcome` and moves the breaker if it should; returns the state it moved
    /// to, when this caller moved it. `probe`: the call was admitted as [`Admission::Probe`].
    pub async fn record(
        &self,
        outcome: Outcome,
        probe: bool,
        now: UnixMillis,
    ) -> Result<Option<BreakerState>, LedgerError> {
        if !probe && !outcome.is_failure() {
            // A success of a closed breaker moves nothing: counted, written with the next
            // failure or within `success_flush`, and nothing read.
            self.ledger
                .breaker_count_success(&self.vendor, &self.policy, now)
                .await?;
            return Ok(None);
        }
        let window = self
            .ledger
            .breaker_count(&self.vendor, outcome, &self.policy, now)
            .await?;
        let (state, version) = self.ledger.breaker_state(&self.vendor).await?;
        let to = match (&state, probe) {
            (BreakerState::HalfOpen { .. }, true) if !outcome.is_failure() => BreakerState::Closed,
            (BreakerState::HalfOpen { .. }, true) => BreakerState::Open {
                until: now.plus(self.policy.cool_down),
                reason: format!("the probe failed: {}", outcome.as_str()),
            },
            (BreakerState::Closed, _) => match self.policy.should_open(window, outcome) {
                Some(reason) => BreakerState::Open {
                    until: now.plus(self.policy.cool_down),
                    reason,
                },
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
        let moved = self
            .ledger
            .breaker_transition(&self.vendor, version, &to, now)
            .await?;
        Ok(moved.then_some(to))
    }

    /// An operator opens (for `hold`) or closes the breaker by hand, whatever its state.
    pub async fn force(
        &self,
        open: Option<Duration>,
        now: UnixMillis,
    ) -> Result<BreakerState, LedgerError> {
        let to = match open {
            Some(hold) => BreakerState::Open {
                until: now.plus(hold),
                reason: "opened by an operator".into(),
            },
            None => BreakerState::Closed,
        };
        loop {
            let (_, version) = self.ledger.breaker_state(&self.vendor).await?;
            if self
                .ledger
                .breaker_transition(&self.vendor, version, &to, now)
                .await?
            {
                return Ok(to);
            }
        }
    }
}
