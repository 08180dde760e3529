//! Wall-clock time as the ledger stores it, and lease deadlines derived from the Lambda context.
//!
//! Times cross process boundaries (DynamoDB conditions compare them), so they are plain unix
//! milliseconds, not `Instant`s. Every ledger call takes `now` explicitly: the handler reads the
//! clock once per step, and tests can put a lease or a dedupe entry past its expiry without sleeping.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    pub fn now() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        UnixMillis(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn plus(self, d: Duration) -> Self {
        UnixMillis(
            self.0
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }

    pub fn minus(self, d: Duration) -> Self {
        UnixMillis(
            self.0
                .saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }

    /// Whole seconds, rounded down: the unit DynamoDB's TTL attribute requires.
    pub fn as_unix_seconds(self) -> u64 {
        self.0 / 1_000
    }

    /// RFC 3339 in UTC, as reports and JSON show an instant; `None` past chrono's range.
    pub fn to_rfc3339(self) -> Option<String> {
        chrono::DateTime::from_timestamp_millis(i64::try_from(self.0).ok()?).map(|t| t.to_rfc3339())
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: UnixMillis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

/// How long before the invocation deadline a lease ends. The margin covers the final ledger write
/// and clock skew between Lambda hosts; it must be shorter than the function timeout.
pub const DEFAULT_LEASE_SAFETY_MARGIN: Duration = Duration::from_secs(2);

/// The end of a lease held by this invocation: the Lambda deadline minus a safety margin, so the
/// lease has expired before the runtime can kill us, and a takeover never overlaps a live owner.
pub fn lease_until_from_deadline(deadline: UnixMillis, margin: Duration) -> UnixMillis {
    deadline.minus(margin)
}

/// The deadline of an invocation, from its Lambda context.
pub fn deadline_of(context: &lambda_runtime::Context) -> UnixMillis {
    UnixMillis(context.deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(UnixMillis(5).minus(Duration::from_secs(1)), UnixMillis(0));
        assert_eq!(
            UnixMillis(u64::MAX).plus(Duration::from_secs(1)),
            UnixMillis(u64::MAX)
        );
        assert_eq!(UnixMillis(2_500).as_unix_seconds(), 2);
        assert_eq!(
            UnixMillis(3_000).since(UnixMillis(1_000)),
            Duration::from_secs(2)
        );
        assert_eq!(UnixMillis(1_000).since(UnixMillis(3_000)), Duration::ZERO);
    }

    #[test]
    fn lease_ends_before_the_deadline() {
        let deadline = UnixMillis(100_000);
        assert_eq!(
            lease_until_from_deadline(deadline, DEFAULT_LEASE_SAFETY_MARGIN),
            UnixMillis(98_000)
        );
        let mut ctx = lambda_runtime::Context::default();
        ctx.deadline = 42_000;
        assert_eq!(deadline_of(&ctx), UnixMillis(42_000));
    }
}
