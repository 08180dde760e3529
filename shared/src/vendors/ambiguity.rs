//! An ambiguous submission: the request was sent and its answer lost (a timeout, a dropped
//! connection, a 2xx whose body broke off, a worker killed mid-call). The vendor may have the
//! document and be billing us for it, or it may not.
//!
//! Never a silent resubmit. What resolves the doubt depends on what the vendor can do
//! ([`Capabilities`]), in this order:
//!
//! | the vendor… | resolution |
//! |---|---|
//! | answers "did you get it?" by key, and still remembers the key (simulator; lookups are reads) | [`Resolution::LookUp`] |
//! | deduplicates by key, still remembers it, but has no lookup (Textract: the same `ClientRequestToken` returns the same job) | [`Resolution::ResubmitWithSameKey`] |
//! | names our job in its completion (Mindee's `alias`, the simulator's `external_ref`) | [`Resolution::AwaitCompletion`] for a bounded grace period: the completion adopts the job |
//! | none of these, or the grace period is over | the configured fallback: [`Resolution::RiskyResubmit`] (counted on the job and as `DuplicateSubmissionRisk`) or [`Resolution::Hold`] (`Held` with `submission_outcome_unknown`; an operator decides) |
//!
//! "Still remembers" matters: a key the vendor has forgotten (Textract keeps tokens 7 days) is a
//! lookup that finds nothing and a resubmission that bills again.

use std::time::Duration;

use super::Capabilities;
use crate::time::UnixMillis;

/// What to do once nothing can tell whether an ambiguous submission arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Submit again, accepting a possible second charge; every such submission is counted.
    Resubmit,
    /// Park the job (`Held`, `submission_outcome_unknown`) for an operator.
    Hold,
}

impl Fallback {
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "resubmit" => Some(Fallback::Resubmit),
            "hold" => Some(Fallback::Hold),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Fallback::Resubmit => "resubmit",
            Fallback::Hold => "hold",
        }
    }
}

/// The configured policy (`AMBIGUOUS_SUBMISSION`, `AMBIGUOUS_GRACE_SECS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmbiguityPolicy {
    /// How long to wait for a completion that names the job before falling back. Long enough
    /// for the vendor to finish a document and retry its webhook a few times.
    pub grace: Duration,
    pub fallback: Fallback,
}

impl Default for AmbiguityPolicy {
    /// Wait 15 minutes, then hold: a person decides before anything is paid twice.
    fn default() -> Self {
        AmbiguityPolicy {
            grace: Duration::from_secs(900),
            fallback: Fallback::Hold,
        }
    }
}

/// How an ambiguous submission is resolved; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Ask the vendor by our key; its answer is authoritative.
    LookUp,
    /// Send again with the same key: the vendor returns the job it has, or makes the first one.
    ResubmitWithSameKey,
    /// Wait until `until` for the completion that names the job; it adopts the vendor job.
    AwaitCompletion { until: UnixMillis },
    /// Submit again, counted as a possible second charge.
    RiskyResubmit,
    /// Park the job for an operator.
    Hold,
}

impl Resolution {
    /// A short name for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::LookUp => "look_up",
            Resolution::ResubmitWithSameKey => "resubmit_same_key",
            Resolution::AwaitCompletion { .. } => "await_completion",
            Resolution::RiskyResubmit => "risky_resubmit",
            Resolution::Hold => "hold",
        }
    }
}

impl AmbiguityPolicy {
    /// The resolution for an attempt made at `attempted_at` whose outcome is unknown at `now`.
    pub fn resolve(
        &self,
        capabilities: &Capabilities,
        attempted_at: UnixMillis,
        now: UnixMillis,
    ) -> Resolution {
        if capabilities.remembers_key(attempted_at, now) {
            return if capabilities.lookup_by_key {
                Resolution::LookUp
            } else {
                Resolution::ResubmitWithSameKey
            };
        }
        let until = attempted_at.plus(self.grace);
        if capabilities.completion_carries_reference && now < until {
            return Resolution::AwaitCompletion { until };
        }
        match self.fallback {
            Fallback::Resubmit => Resolution::RiskyResubmit,
            Fallback::Hold => Resolution::Hold,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vendors::{Completion, Idempotency, WebhookScheme};

    const DAY: Duration = Duration::from_secs(86_400);

    fn caps(idempotency: Idempotency, lookup: bool, reference: bool) -> Capabilities {
        Capabilities {
            idempotency,
            lookup_by_key: lookup,
            completion: Completion::Webhook(WebhookScheme::StandardWebhooks),
            completion_carries_reference: reference,
            reads_spend_rate_limit: false,
        }
    }

    fn policy(fallback: Fallback) -> AmbiguityPolicy {
        AmbiguityPolicy {
            grace: Duration::from_secs(600),
            fallback,
        }
    }

    #[test]
    fn each_kind_of_vendor_gets_its_resolution() {
        let t0 = UnixMillis(1_000_000_000);
        let soon = t0.plus(Duration::from_secs(10));
        let hold = policy(Fallback::Hold);
        let native_lookup = caps(
            Idempotency::Native {
                remembers_for: None,
            },
            true,
            true,
        );
        assert_eq!(
            hold.resolve(&native_lookup, t0, t0.plus(DAY * 365)),
            Resolution::LookUp
        );
        // Textract: tokens for 7 days, no lookup; the same token is the lookup.
        let textract = caps(
            Idempotency::Native {
                remembers_for: Some(DAY * 7),
            },
            false,
            true,
        );
        assert_eq!(
            hold.resolve(&textract, t0, soon),
            Resolution::ResubmitWithSameKey
        );
        // Past its memory (less the margin), the token protects nothing.
        assert_eq!(
            hold.resolve(&textract, t0, t0.plus(DAY * 7 - Duration::from_secs(1800))),
            Resolution::Hold
        );
        // Mindee: no idempotency; its webhook carries our alias.
        let mindee = caps(Idempotency::None, false, true);
        assert_eq!(
            hold.resolve(&mindee, t0, soon),
            Resolution::AwaitCompletion {
                until: t0.plus(Duration::from_secs(600))
            }
        );
        assert_eq!(
            hold.resolve(&mindee, t0, t0.plus(Duration::from_secs(600))),
            Resolution::Hold
        );
        assert_eq!(
            policy(Fallback::Resubmit).resolve(&mindee, t0, t0.plus(Duration::from_secs(601))),
            Resolution::RiskyResubmit
        );
        // Azure: nothing at all; straight to the fallback.
        let azure = caps(Idempotency::None, false, false);
        assert_eq!(hold.resolve(&azure, t0, soon), Resolution::Hold);
        assert_eq!(
            policy(Fallback::Resubmit).resolve(&azure, t0, soon),
            Resolution::RiskyResubmit
        );
    }

    #[test]
    fn an_expiring_lookup_is_trusted_only_while_the_key_is_remembered() {
        let t0 = UnixMillis(5_000);
        let expiring = caps(
            Idempotency::Native {
                remembers_for: Some(Duration::from_secs(10)),
            },
            true,
            false,
        );
        let hold = policy(Fallback::Hold);
        assert_eq!(
            hold.resolve(&expiring, t0, t0.plus(Duration::from_secs(8))),
            Resolution::LookUp
        );
        // 9 s of a 10 s memory is within the 1 s margin: a lookup could miss a forgotten key.
        assert_eq!(
            hold.resolve(&expiring, t0, t0.plus(Duration::from_secs(9))),
            Resolution::Hold
        );
    }

    #[test]
    fn fallbacks_parse_from_configuration() {
        assert_eq!(Fallback::parse("hold"), Some(Fallback::Hold));
        assert_eq!(Fallback::parse(" resubmit "), Some(Fallback::Resubmit));
        assert_eq!(Fallback::parse("maybe"), None);
    }
}
