//! SQS batch processing with partial failures and reasoned dead-lettering.
//!
//! Records are processed one after another (order kept, memory bounded). Each ends in one of
//! three ways:
//! - handled: acknowledged (deleted by Lambda);
//! - [`Failure::Retry`]: reported in `batchItemFailures`, so it comes back after its visibility
//!   timeout — unless this was its last allowed receive, in which case it is dead-lettered now,
//!   with the reason, instead of letting the redrive policy move it without one;
//! - [`Failure::Poison`]: it can never succeed (malformed body, unknown job), so it goes to the
//!   DLQ at once with the reason, and is acknowledged. No retries are burnt on it.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use std::future::Future;

use crate::metrics::{Metrics, POISON_MESSAGES};
use crate::queue::Queue;

/// Why a record was not handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Transient: try again later.
    Retry { code: String, reason: String },
    /// Permanent: dead-letter now.
    Poison { code: String, reason: String },
}

impl Failure {
    pub fn retry(code: impl Into<String>, reason: impl Into<String>) -> Self {
        Failure::Retry {
            code: code.into(),
            reason: reason.into(),
        }
    }

    pub fn poison(code: impl Into<String>, reason: impl Into<String>) -> Self {
        Failure::Poison {
            code: code.into(),
            reason: reason.into(),
        }
    }
}

/// The queue a batch came from.
#[derive(Debug, Clone)]
pub struct Source {
    /// A short name for metrics: `intake`, `submit`, `results`.
    pub name: &'static str,
    pub dlq_url: String,
    /// The redrive policy's `maxReceiveCount`.
    pub max_receive_count: u32,
}

pub fn receive_count(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// A retry after `delay`: sets the message's visibility (the backoff, in a later invocation)
/// and returns the failure to report in `batchItemFailures`. If the visibility cannot be set,
/// the queue's default visibility timeout applies instead; it is still a retry.
pub async fn retry_after(
    queue: &Queue,
    queue_url: &str,
    message: &SqsMessage,
    delay: std::time::Duration,
    code: &str,
    reason: String,
) -> Failure {
    if let Some(handle) = &message.receipt_handle {
        let result = queue
            .client()
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(handle)
            .visibility_timeout(crate::retry::visibility_seconds(delay))
            .send()
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "could not set the backoff");
        }
    }
    Failure::retry(code, reason)
}

/// Runs `handle` on every record and builds the partial batch response.
pub async fn process<F, Fut>(
    event: SqsEvent,
    source: &Source,
    queue: &Queue,
    metrics: &Metrics,
    mut handle: F,
) -> SqsBatchResponse
where
    F: FnMut(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let mut failures = Vec::new();
    for message in event.records {
        let id = message.message_id.clone().unwrap_or_default();
        let body = message.body.clone().unwrap_or_default();
        let last_chance = receive_count(&message) >= source.max_receive_count;
        let dead = match handle(message).await {
            Ok(()) => None,
            Err(Failure::Poison { code, reason }) => Some((code, reason)),
            Err(Failure::Retry { code, reason }) if last_chance => Some((
                code,
                format!(
                    "gave up after {} receives: {reason}",
                    source.max_receive_count
                ),
            )),
            Err(Failure::Retry { code, reason }) => {
                tracing::warn!(message_id = %id, code, reason, "will retry");
                failures.push(id.clone());
                None
            }
        };
        if let Some((code, reason)) = dead {
            tracing::error!(message_id = %id, code, reason, "dead-lettering");
            metrics.count(POISON_MESSAGES, &[source.name], &[("reason_code", &code)]);
            if let Err(e) = queue
                .dead_letter(&source.dlq_url, &body, &code, &reason, &id)
                .await
            {
                // Could not park it: let SQS redeliver it rather than lose it.
                tracing::error!(message_id = %id, error = %e, "dead-lettering failed; the message will be retried");
                failures.push(id);
            }
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|item_identifier| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = item_identifier;
            failure
        })
        .collect();
    response
}
