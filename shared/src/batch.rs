//! SQS batch processing with partial failures and reasoned dead-lettering.
//!
//! Records are handled up to [`Source::concurrency`] at a time (memory bounded by the batch);
//! a batch holding a redelivered message one after another, first deliveries first. Each ends in
//! one of three ways:
//! - handled: acknowledged (deleted by Lambda);
//! - [`Failure::Retry`]: reported in `batchItemFailures`, so it comes back after its visibility
//!   timeout — unless this was its last allowed receive, in which case it is dead-lettered now,
//!   with the reason, instead of letting the redrive policy move it without one;
//! - [`Failure::Poison`]: it can never succeed (malformed body, unknown job), so it goes to the
//!   DLQ at once with the reason, and is acknowledged. No retries are burnt on it.
//!
//! A function that dies while handling a message (killed at its timeout, out of memory, a host
//! lost) cannot give a reason. So the queue's own redrive (`maxReceiveCount`) is set
//! [`CRASH_ALLOWANCE`] deliveries above the handler's last chance: a message delivered *beyond*
//! its last chance was last delivered to a function that never answered, and it is dead-lettered
//! first thing, with reason `crash_loop`. SQS's reasonless move only catches a function that
//! dies even before that one call, that many times in a row.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use std::future::Future;
use std::time::Duration;

use crate::failpoints;
use crate::metrics::{Metrics, OUT_OF_TIME_REQUEUES, POISON_MESSAGES};
use crate::queue::{Queue, QueueError};
use crate::time::UnixMillis;

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

/// Deliveries the queue's redrive policy allows beyond the handler's last chance, for functions
/// that died before they could dead-letter a message with its reason.
pub const CRASH_ALLOWANCE: u32 = 2;

/// The queue a batch came from.
#[derive(Debug, Clone)]
pub struct Source {
    /// A short name for metrics: `intake`, `submit`, `results`.
    pub name: &'static str,
    /// The function's queue. A message from another queue that feeds the same function (parse
    /// also reads Textract's completions) is told apart by its `eventSourceARN`
    /// ([`Self::queue_of`]).
    pub queue_url: String,
    pub dlq_url: String,
    /// The redrive policy's `maxReceiveCount`; the handler gives up [`CRASH_ALLOWANCE`]
    /// deliveries earlier.
    pub max_receive_count: u32,
    /// How many of a batch's first deliveries are handled at once (at least 1). Submit and parse
    /// spend most of a message waiting — for an admission token, the vendor, DynamoDB — so a
    /// batch handled one message at a time leaves the vendor's rate limit unused while the
    /// others wait their turn (issue #33). A batch holding a redelivered message is always
    /// handled one at a time (see [`process`]).
    pub concurrency: usize,
    /// What a message needs of the invocation to be started: [`min_time_per_message`], unless
    /// the function's work grows with the message (intake's with its upload's size).
    pub time_needed: fn(&SqsMessage) -> Duration,
}

impl Source {
    /// The URL of the queue `message` came from: the function's own queue, or — for another
    /// queue feeding the same function — that queue, found from the message's
    /// `eventSourceARN` (`arn:aws:sqs:<region>:<account>:<name>`) on the same endpoint. A
    /// visibility change or a deferral must go to the queue that holds the message.
    pub fn queue_of(&self, message: &SqsMessage) -> String {
        let from_arn = message.event_source_arn.as_deref().and_then(|arn| {
            let parts: Vec<&str> = arn.split(':').collect();
            match parts.as_slice() {
                ["arn", _, "sqs", _, account, name] if !account.is_empty() && !name.is_empty() => {
                    Some((*account, *name))
                }
                _ => None,
            }
        });
        let Some((account, name)) = from_arn else {
            return self.queue_url.clone();
        };
        if self.queue_url.ends_with(&format!("/{account}/{name}")) {
            return self.queue_url.clone();
        }
        let mut segments: Vec<&str> = self.queue_url.trim_end_matches('/').split('/').collect();
        if segments.len() < 5 {
            return self.queue_url.clone();
        }
        let len = segments.len();
        segments[len - 2] = account;
        segments[len - 1] = name;
        segments.join("/")
    }
    /// The receive on which a still-failing message is dead-lettered with its reason.
    pub fn last_chance(&self) -> u32 {
        self.max_receive_count
            .saturating_sub(CRASH_ALLOWANCE)
            .max(1)
    }
}

pub fn receive_count(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// What a handler decided for one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    /// Acknowledge.
    Done,
    /// Leave it on the queue, visible again after the delay (a receive is spent).
    RetryAfter {
        delay: Duration,
        code: &'static str,
        reason: String,
    },
    /// Acknowledge it and send a copy with this delay (no receive is spent): for when our own
    /// budgets hold the work back, not the vendor. The copy carries when the work was first
    /// queued and how often it was deferred ([`FIRST_SENT_ATTRIBUTE`], [`DEFERRALS_ATTRIBUTE`]).
    Defer(Duration),
    /// As [`Disposition::Defer`], with something the next delivery must know that could not be
    /// written where it belongs: the vendor's job id for a submission the ledger failed to
    /// record ([`VENDOR_JOB_ATTRIBUTE`]). SQS carries it while DynamoDB is unavailable.
    DeferWith {
        delay: Duration,
        vendor_job_id: String,
    },
    /// Dead-letter with the reason.
    DeadLetter { code: &'static str, reason: String },
}

/// Attributes a deferred message carries into its re-enqueued copy.
pub const FIRST_SENT_ATTRIBUTE: &str = "ocrbridge-first-sent";
pub const DEFERRALS_ATTRIBUTE: &str = "ocrbridge-deferrals";
/// A vendor job id the vendor answered and the ledger could not record (see
/// [`Disposition::DeferWith`]).
pub const VENDOR_JOB_ATTRIBUTE: &str = "ocrbridge-vendor-job-id";

/// When the work in `message` was first queued: what an earlier copy carried, else when this
/// message was sent.
fn first_sent(message: &SqsMessage) -> Option<String> {
    attribute(message, FIRST_SENT_ATTRIBUTE)
        .or_else(|| message.attributes.get("SentTimestamp").cloned())
}

/// A message attribute's string value.
pub fn attribute(message: &SqsMessage, name: &str) -> Option<String> {
    message
        .message_attributes
        .get(name)
        .and_then(|a| a.string_value.clone())
}

/// Carries out `disposition` for `message` from the queue at `queue_url`; the `Err` is what
/// [`process`] reports.
pub async fn apply(
    queue: &Queue,
    queue_url: &str,
    message: &SqsMessage,
    disposition: Disposition,
) -> Result<(), Failure> {
    match disposition {
        Disposition::Done => Ok(()),
        Disposition::DeadLetter { code, reason } => Err(Failure::poison(code, reason)),
        Disposition::RetryAfter {
            delay,
            code,
            reason,
        } => Err(retry_after(queue, queue_url, message, delay, code, reason).await),
        Disposition::Defer(delay) => {
            let deferred = defer(queue, queue_url, message, delay, None).await;
            or_retry_after(queue, queue_url, message, delay, deferred).await
        }
        Disposition::DeferWith {
            delay,
            vendor_job_id,
        } => {
            let deferred = defer(queue, queue_url, message, delay, Some(&vendor_job_id)).await;
            or_retry_after(queue, queue_url, message, delay, deferred).await
        }
    }
}

/// A copy that could not be sent leaves the original to come back: after the delay the copy
/// would have had, not after the queue's whole visibility timeout (3 to 6 minutes), which would
/// hold a completion notice, the only evidence of a vendor job, that long.
async fn or_retry_after(
    queue: &Queue,
    queue_url: &str,
    message: &SqsMessage,
    delay: Duration,
    deferred: Result<(), Failure>,
) -> Result<(), Failure> {
    match deferred {
        Err(Failure::Retry { reason, .. }) => {
            Err(retry_after(queue, queue_url, message, delay, "defer_failed", reason).await)
        }
        other => other,
    }
}

/// A retry after `delay`: sets the message's visibility (the backoff, in a later invocation)
/// and returns the failure to report in `batchItemFailures`. If the visibility cannot be set,
/// the queue's default visibility timeout applies instead; it is still a retry.
async fn retry_after(
    queue: &Queue,
    queue_url: &str,
    message: &SqsMessage,
    delay: Duration,
    code: &str,
    reason: String,
) -> Failure {
    if let Some(handle) = &message.receipt_handle {
        let subject = subject_of(message);
        let result = failpoints::around(
            "batch.before_backoff",
            "batch.after_backoff",
            &subject,
            async {
                queue
                    .client()
                    .change_message_visibility()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .visibility_timeout(crate::retry::visibility_seconds(delay))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| QueueError {
                        operation: "ChangeMessageVisibility",
                        queue_url: queue_url.to_owned(),
                        detail: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
                    })
            },
        )
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not set the backoff");
        }
    }
    Failure::retry(code, reason)
}

/// Re-enqueues a copy of `message` after `delay`; the original is then acknowledged.
async fn defer(
    queue: &Queue,
    queue_url: &str,
    message: &SqsMessage,
    delay: Duration,
    vendor_job_id: Option<&str>,
) -> Result<(), Failure> {
    let first_sent =
        first_sent(message).unwrap_or_else(|| crate::time::UnixMillis::now().0.to_string());
    let deferrals = attribute(message, DEFERRALS_ATTRIBUTE)
        .and_then(|d| d.parse::<u32>().ok())
        .unwrap_or(0)
        + 1;
    let number = |v: String| {
        aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("Number")
            .string_value(v)
            .build()
    };
    let (Ok(first), Ok(count)) = (number(first_sent), number(deferrals.to_string())) else {
        return Err(Failure::retry(
            "defer_failed",
            "cannot build message attributes",
        ));
    };
    let mut request = queue
        .client()
        .send_message()
        .queue_url(queue_url)
        .message_body(message.body.clone().unwrap_or_default())
        .delay_seconds(crate::retry::delay_seconds(delay))
        .message_attributes(FIRST_SENT_ATTRIBUTE, first)
        .message_attributes(DEFERRALS_ATTRIBUTE, count);
    if let Some(id) = vendor_job_id.or(attribute(message, VENDOR_JOB_ATTRIBUTE).as_deref()) {
        let value = aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(id)
            .build()
            .map_err(|e| Failure::retry("defer_failed", e.to_string()))?;
        request = request.message_attributes(VENDOR_JOB_ATTRIBUTE, value);
    }
    failpoints::around(
        "batch.before_defer",
        "batch.after_defer",
        &subject_of(message),
        async {
            request.send().await.map(|_| ()).map_err(|e| QueueError {
                operation: "SendMessage",
                queue_url: queue_url.to_owned(),
                detail: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
            })
        },
    )
    .await
    .map_err(|e| Failure::retry("defer_failed", e.to_string()))
}

/// What a message is about, for a failpoint: the job it names (a submit message or a result
/// notice), else the whole body (an S3 notification names its upload).
fn subject_of(message: &SqsMessage) -> String {
    let body = message.body.as_deref().unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["job_id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.to_owned())
}

/// `MESSAGE_CONCURRENCY` (1 to 10, SQS's largest batch; [`DEFAULT_CONCURRENCY`] when unset):
/// how many of a batch's messages submit or parse handles at once ([`Source::concurrency`]).
pub fn concurrency_setting(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<usize, crate::config::SettingError> {
    crate::config::setting(
        lookup,
        "MESSAGE_CONCURRENCY",
        DEFAULT_CONCURRENCY,
        "a whole number from 1 to 10",
        |n| (1..=10).contains(n),
    )
}

/// One message at a time unless a function's `MESSAGE_CONCURRENCY` says otherwise.
/// - Submit: handling a batch at once measured no gain on the local stack (0.987 R at R = 10
///   either way, `scripts/bench-submit.sh … --submit-concurrency 1|5`), and one crash-point gate
///   run with it on found a vendor job whose answer reached a worker unrecorded (azure/resubmit,
///   under load; not reproduced in 132 runs of that stage since): off until that is understood.
///   `CRASHPOINTS=gate CRASHPOINTS_MESSAGE_CONCURRENCY=5 make crashpoints` runs the gate with it
///   on: 1 run of 6 found it again (textract(sync)/hold, a worker stalled at
///   `submit.before_archive_answer`; the 3 runs since the gate counts both ways the harness can
///   drop a frozen worker found nothing). Suspected, not shown: another message's crash in the
///   frozen worker's invocation stopped it, as a Lambda crash stops every message in flight, or
///   the worker outlived the harness's `frozen_limit`; the gate's message counts both.
/// - Parse holds a result about three times while it reads it (raw, archive, normalized), and
///   its memory is sized for one large result at a time.
pub const DEFAULT_CONCURRENCY: usize = 1;

/// A message is started only with this much of its invocation left. A handler with less could
/// not take a lease (a lease ends [`crate::time::DEFAULT_LEASE_SAFETY_MARGIN`] before the
/// deadline) and would only spend one of the message's receives on saying so.
pub const MIN_TIME_PER_MESSAGE: Duration = Duration::from_secs(3);

/// [`MIN_TIME_PER_MESSAGE`], whatever the message: [`Source::time_needed`] for functions whose
/// work on a message does not grow with it.
pub fn min_time_per_message(_: &SqsMessage) -> Duration {
    MIN_TIME_PER_MESSAGE
}

/// Runs `handle` on every record (with the URL of the queue it came from) and builds the
/// partial batch response. `deadline` is the invocation's, when the function has one.
///
/// **Crash loops are parked before anything else runs**: a message delivered beyond its last
/// chance ([`CRASH_ALLOWANCE`]) goes to the DLQ with reason `crash_loop` first thing. Were it
/// parked in its turn, a neighbour that takes the whole invocation (a slow vendor, a timeout)
/// would keep it from its turn until the queue's redrive moved it — without a reason.
///
/// **Out of time, a message is handed back untouched**: once less than the message needs
/// ([`Source::time_needed`], at least [`MIN_TIME_PER_MESSAGE`]) of the invocation is left, each
/// message not yet started is sent
/// again as it was (its attributes kept, when it was first sent recorded) and acknowledged. A
/// retry would spend a receive it never used, and a slow batch ahead of it would walk a good
/// message to its last chance.
///
/// **A batch with a redelivered message in it** is handled with care: a message delivered again
/// means an earlier invocation did not finish — perhaps because of that very message, perhaps
/// because of a neighbour (a crash or a timeout sends the whole batch back). So the first
/// deliveries go first, the redelivered ones last, and every message handled is deleted at once
/// instead of when the invocation returns: if a later message kills the invocation again, the
/// ones already done are not sent back with it, and an innocent message does not pile up
/// receives until the crash-loop guard parks it. (One `DeleteMessage` per message, only in such
/// batches.)
pub async fn process<F, Fut>(
    event: SqsEvent,
    source: &Source,
    deadline: Option<UnixMillis>,
    queue: &Queue,
    metrics: &Metrics,
    mut handle: F,
) -> SqsBatchResponse
where
    F: FnMut(SqsMessage, String) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let mut failures = Vec::new();
    let (first, again): (Vec<SqsMessage>, Vec<SqsMessage>) = event
        .records
        .into_iter()
        .partition(|m| receive_count(m) <= 1);
    let careful = !again.is_empty();
    let (looping, ordered): (Vec<SqsMessage>, Vec<SqsMessage>) = first
        .into_iter()
        .chain(again)
        .partition(|m| receive_count(m) > source.last_chance());
    for message in looping {
        let id = message.message_id.clone().unwrap_or_default();
        let receives = receive_count(&message);
        // Its last chance was delivered to a function that never answered.
        let reason = format!(
            "delivered {receives} times; the function handling it did not finish the last {}, so it was parked instead of tried again",
            receives - source.last_chance()
        );
        if !park(queue, source, metrics, &message, "crash_loop", &reason).await {
            failures.push(id);
        } else if careful {
            delete_now(queue, &source.queue_of(&message), &message).await;
        }
    }
    let records = ordered.into_iter().map(|message| {
        let queue_url = source.queue_of(&message);
        // Building the handler's future runs nothing: it starts when `record` awaits it, if
        // there is still time.
        let handled = handle(message.clone(), queue_url.clone());
        // Boxed: a handler's future is large, and this one's state would otherwise hold it.
        Box::pin(record(
            message, queue_url, handled, source, deadline, queue, metrics, careful,
        ))
    });
    // A careful batch one at a time, first deliveries first (see above): a stream of one at a
    // time runs them in order.
    let at_once = if careful {
        1
    } else {
        source.concurrency.max(1)
    };
    let mut running = futures::stream::iter(records).buffer_unordered(at_once);
    while let Some(failed) = running.next().await {
        failures.extend(failed);
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

/// One record of [`process`]: handed back untouched when the invocation is out of time, else
/// handled, and dead-lettered with its reason when it failed for good. `Some(id)`: report it in
/// `batchItemFailures`.
#[allow(clippy::too_many_arguments)]
async fn record(
    message: SqsMessage,
    queue_url: String,
    handled: impl Future<Output = Result<(), Failure>>,
    source: &Source,
    deadline: Option<UnixMillis>,
    queue: &Queue,
    metrics: &Metrics,
    careful: bool,
) -> Option<String> {
    let id = message.message_id.clone().unwrap_or_default();
    let receives = receive_count(&message);
    if deadline.is_some_and(|d| d.since(UnixMillis::now()) < (source.time_needed)(&message)) {
        return match requeue_untouched(queue, &queue_url, &message).await {
            Ok(()) => {
                tracing::warn!(message_id = %id, "out of time: handed back untouched");
                metrics.count(OUT_OF_TIME_REQUEUES, &[source.name], &[]);
                if careful {
                    delete_now(queue, &queue_url, &message).await;
                }
                None
            }
            Err(e) => {
                tracing::warn!(message_id = %id, error = %e, "out of time and could not hand it back; it will be retried");
                Some(id)
            }
        };
    }
    let last_chance = receives >= source.last_chance();
    // Everything the record's handling sends joins its trace (crate::trace_context).
    let trace = message
        .attributes
        .get(crate::trace_context::SQS_ATTRIBUTE)
        .cloned();
    let handled = crate::trace_context::within(trace.clone(), handled).await;
    let failed = match handled {
        Ok(()) => None,
        Err(Failure::Poison { code, reason }) => {
            dead_letter(trace, queue, source, metrics, &message, &code, &reason).await
        }
        Err(Failure::Retry { code, reason }) if last_chance => {
            let reason = format!("gave up after {receives} receives: {reason}");
            dead_letter(trace, queue, source, metrics, &message, &code, &reason).await
        }
        Err(Failure::Retry { code, reason }) => {
            tracing::warn!(message_id = %id, code, reason, "will retry");
            Some(id)
        }
    };
    if careful && failed.is_none() {
        // Done with it: delete it now, so a crash on a later message does not send it back.
        delete_now(queue, &queue_url, &message).await;
    }
    failed
}

/// [`park`] within the message's trace; `Some(id)` when that failed and SQS must redeliver it.
async fn dead_letter(
    trace: Option<String>,
    queue: &Queue,
    source: &Source,
    metrics: &Metrics,
    message: &SqsMessage,
    code: &str,
    reason: &str,
) -> Option<String> {
    let parked =
        crate::trace_context::within(trace, park(queue, source, metrics, message, code, reason))
            .await;
    (!parked).then(|| message.message_id.clone().unwrap_or_default())
}

/// Sends `message` to the source's DLQ with its reason, counted; `false` when that failed, and
/// the message must then be reported as failed, so that SQS redelivers it rather than lose it.
async fn park(
    queue: &Queue,
    source: &Source,
    metrics: &Metrics,
    message: &SqsMessage,
    code: &str,
    reason: &str,
) -> bool {
    let id = message.message_id.as_deref().unwrap_or_default();
    tracing::error!(message_id = %id, code, reason, "dead-lettering");
    metrics.count(POISON_MESSAGES, &[source.name], &[("reason_code", code)]);
    let parked = failpoints::around(
        "batch.before_dead_letter",
        "batch.after_dead_letter",
        &subject_of(message),
        queue.dead_letter(
            &source.dlq_url,
            message.body.as_deref().unwrap_or_default(),
            code,
            reason,
            id,
        ),
    )
    .await;
    if let Err(e) = &parked {
        tracing::error!(message_id = %id, error = %e, "dead-lettering failed; the message will be retried");
    }
    parked.is_ok()
}

/// Deletes a message this invocation is done with. If this fails, Lambda deletes it when the
/// invocation returns, as usual.
async fn delete_now(queue: &Queue, queue_url: &str, message: &SqsMessage) {
    let Some(handle) = &message.receipt_handle else {
        return;
    };
    let deleted = queue
        .client()
        .delete_message()
        .queue_url(queue_url)
        .receipt_handle(handle)
        .send()
        .await;
    if let Err(e) = deleted {
        tracing::warn!(message_id = ?message.message_id, error = %aws_sdk_sqs::error::DisplayErrorContext(e), "could not delete a handled message early");
    }
}

/// Sends `message` again as it arrived — body and message attributes — so that the copy starts
/// with no receive spent; when it was first sent is kept ([`FIRST_SENT_ATTRIBUTE`]), so an age
/// limit still counts from the original. Not a deferral: [`DEFERRALS_ATTRIBUTE`] is not raised.
async fn requeue_untouched(
    queue: &Queue,
    queue_url: &str,
    message: &SqsMessage,
) -> Result<(), QueueError> {
    let error = |detail: String| QueueError {
        operation: "SendMessage",
        queue_url: queue_url.to_owned(),
        detail,
    };
    // The copy stays in its document's trace.
    let trace = message
        .attributes
        .get(crate::trace_context::SQS_ATTRIBUTE)
        .cloned();
    let mut request = crate::queue::with_trace(
        queue
            .client()
            .send_message()
            .queue_url(queue_url)
            .message_body(message.body.clone().unwrap_or_default()),
        trace,
    )
    .map_err(|e| error(e.to_string()))?;
    let mut attributes: Vec<(String, String, String)> = message
        .message_attributes
        .iter()
        .filter(|(name, _)| name.as_str() != FIRST_SENT_ATTRIBUTE)
        .filter_map(|(name, a)| {
            Some((
                name.clone(),
                a.data_type.clone().unwrap_or_else(|| "String".into()),
                a.string_value.clone()?,
            ))
        })
        .collect();
    if let Some(sent) = first_sent(message) {
        attributes.push((FIRST_SENT_ATTRIBUTE.into(), "Number".into(), sent));
    }
    for (name, data_type, value) in attributes {
        let value = aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type(data_type)
            .string_value(value)
            .build()
            .map_err(|e| error(e.to_string()))?;
        request = request.message_attributes(name, value);
    }
    request
        .send()
        .await
        .map(|_| ())
        .map_err(|e| error(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(arn: Option<&str>) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.event_source_arn = arn.map(str::to_owned);
        m
    }

    /// Issue #33: a batch of first deliveries runs up to `concurrency` handlers at once; a batch
    /// holding a redelivered message runs them one by one (a crash on one must not take the
    /// others with it, see `process`).
    #[tokio::test]
    async fn first_deliveries_run_at_once_and_a_redelivered_batch_one_by_one() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let config = crate::aws::local_sdk_config("http://127.0.0.1:9")
            .into_builder()
            .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
            .build();
        let queue = Queue::new(aws_sdk_sqs::Client::new(&config));
        let metrics = Metrics::memory("test");
        let source = Source {
            name: "submit",
            queue_url: "http://127.0.0.1:9/123456789012/q".into(),
            dlq_url: String::new(),
            max_receive_count: 7,
            concurrency: 3,
            time_needed: min_time_per_message,
        };
        let message = |id: usize, receives: u32| {
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("m{id}"));
            m.receipt_handle = Some(format!("r{id}"));
            m.attributes
                .insert("ApproximateReceiveCount".into(), receives.to_string());
            m
        };
        let peak_of = |receives: [u32; 5]| {
            let (queue, metrics, source) = (&queue, &metrics, &source);
            async move {
                let (in_flight, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
                let mut event = SqsEvent::default();
                event.records = receives
                    .iter()
                    .enumerate()
                    .map(|(i, r)| message(i, *r))
                    .collect();
                let response = process(event, source, None, queue, metrics, |_, _| async {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                })
                .await;
                assert!(response.batch_item_failures.is_empty());
                peak.load(Ordering::SeqCst)
            }
        };
        assert_eq!(peak_of([1; 5]).await, 3);
        assert_eq!(peak_of([1, 1, 2, 1, 1]).await, 1);
    }

    /// Parse reads two queues; a backoff or a deferral of a Textract completion belongs on the
    /// completions queue, not on the results queue the function is named for.
    #[test]
    fn a_message_goes_back_to_the_queue_it_came_from() {
        let source = Source {
            name: "results",
            queue_url: "https://sqs.eu-west-1.amazonaws.com/123456789012/stack-results".into(),
            dlq_url: String::new(),
            max_receive_count: 7,
            concurrency: 1,
            time_needed: min_time_per_message,
        };
        assert_eq!(
            source.queue_of(&from(Some(
                "arn:aws:sqs:eu-west-1:123456789012:stack-textract-completions"
            ))),
            "https://sqs.eu-west-1.amazonaws.com/123456789012/stack-textract-completions"
        );
        assert_eq!(
            source.queue_of(&from(Some(
                "arn:aws:sqs:eu-west-1:123456789012:stack-results"
            ))),
            source.queue_url
        );
        // A hand-built event names no queue: the function's own.
        assert_eq!(source.queue_of(&from(None)), source.queue_url);
        assert_eq!(source.queue_of(&from(Some("arn:submit"))), source.queue_url);
        let local = Source {
            queue_url: "http://127.0.0.1:5055/123456789012/t-results".into(),
            ..source
        };
        assert_eq!(
            local.queue_of(&from(Some(
                "arn:aws:sqs:us-east-1:123456789012:t-completions"
            ))),
            "http://127.0.0.1:5055/123456789012/t-completions"
        );
    }
}
