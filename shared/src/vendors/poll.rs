//! Polling a vendor that pushes nothing (Azure; Mindee without webhooks).
//!
//! After a job reaches `Submitted`, submit puts a **poll notice** on the results queue, delayed
//! by [`PollSchedule::first`]. Parse reads it like any notice: it asks the vendor, and a final
//! status takes the same path a webhook's would (parse does not know the difference). While the
//! vendor is still working, parse re-sends the notice (a deferral: no receive is spent) after
//! the vendor's `Retry-After`, or else after the next step of a doubling schedule capped at
//! [`PollSchedule::cap`] (at most SQS's 15-minute delay). For a vendor whose reads count against
//! its rate limit, every poll takes an admission token from the same bucket as submissions.
//! Reconcile stays the safety net for a poll notice that was lost.

use std::time::Duration;

/// The status a poll notice carries.
pub const POLL_STATUS: &str = "poll";

/// SQS's longest message delay.
const SQS_MAX_DELAY: Duration = Duration::from_secs(900);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSchedule {
    /// `POLL_FIRST_SECS` (default 2): the first poll after submission.
    pub first: Duration,
    /// `POLL_CAP_SECS` (default 300, at most 900): the longest wait between polls.
    pub cap: Duration,
}

impl Default for PollSchedule {
    fn default() -> Self {
        PollSchedule {
            first: Duration::from_secs(2),
            cap: Duration::from_secs(300),
        }
    }
}

impl PollSchedule {
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, crate::config::SettingError> {
        let secs = |name: &'static str, default: Duration| {
            crate::config::setting(
                &lookup,
                name,
                default.as_secs(),
                "a whole number of seconds, 1 or more",
                |s| *s > 0,
            )
            .map(|s| Duration::from_secs(s).min(SQS_MAX_DELAY))
        };
        let defaults = PollSchedule::default();
        Ok(PollSchedule {
            first: secs("POLL_FIRST_SECS", defaults.first)?,
            cap: secs("POLL_CAP_SECS", defaults.cap)?,
        })
    }

    /// The wait before the next poll, after `polls` polls found the job still running: the
    /// vendor's `Retry-After` when it gave one, else `first` doubled per poll; never more than
    /// `cap`, and never less than a second.
    pub fn next(&self, polls: u32, retry_after: Option<Duration>) -> Duration {
        let schedule = self.first.saturating_mul(1u32 << polls.min(16));
        retry_after
            .unwrap_or(schedule)
            .clamp(Duration::from_secs(1), self.cap.max(Duration::from_secs(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendors_word_then_a_capped_doubling() {
        let s = PollSchedule::default();
        assert_eq!(s.next(0, None), Duration::from_secs(2));
        assert_eq!(s.next(3, None), Duration::from_secs(16));
        assert_eq!(s.next(30, None), Duration::from_secs(300), "capped");
        assert_eq!(
            s.next(5, Some(Duration::from_secs(3))),
            Duration::from_secs(3),
            "Retry-After wins"
        );
        assert_eq!(s.next(0, Some(Duration::ZERO)), Duration::from_secs(1));
        let long =
            PollSchedule::from_lookup(|k| (k == "POLL_CAP_SECS").then(|| "5000".into())).unwrap();
        assert!(
            PollSchedule::from_lookup(|k| (k == "POLL_FIRST_SECS").then(|| "0".into())).is_err()
        );
        assert_eq!(
            long.cap,
            Duration::from_secs(900),
            "SQS delays stop at 15 minutes"
        );
    }
}
