//! SQS: the messages between stages, and dead-lettering with a reason.

use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};
use serde::{Deserialize, Serialize};

use crate::job::JobId;

/// On the submit queue: submit this job to the vendor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitRequest {
    pub job_id: JobId,
}

/// On the results queue: the vendor reported a status change for a job. Produced by the
/// webhook function and by reconcile; consumed by parse, which checks the vendor's status itself
/// and never trusts the order of these messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultNotice {
    pub job_id: JobId,
    /// The vendor's job id, as the vendor reported it (the job may not have recorded it yet).
    pub vendor_job_id: String,
    /// The status the vendor reported (`processing`, `succeeded`, `failed`, or a new one).
    pub status: String,
    /// When the vendor says the event happened (unix seconds).
    pub vendor_timestamp: Option<i64>,
    /// The delivery id, when the notice came from a webhook.
    pub event_id: Option<String>,
    /// The vendor a completion came from (a webhook's, Textract's SNS), which with routes need
    /// not be the job's: a completion from a vendor the job moved away from is that vendor's
    /// second charge, never a vendor job to ask the job's vendor about. `None`: the job's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
}

/// Message attributes a poison message carries into its DLQ.
pub const REASON_CODE_ATTRIBUTE: &str = "ocrbridge-reason-code";
pub const REASON_ATTRIBUTE: &str = "ocrbridge-reason";
pub const SOURCE_MESSAGE_ATTRIBUTE: &str = "ocrbridge-source-message-id";

/// A dead-lettered message as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub body: String,
    /// `ocrbridge-reason-code` and `ocrbridge-reason`, when a handler dead-lettered it (SQS's own
    /// redrive policy moves messages without them).
    pub reason_code: Option<String>,
    pub reason: Option<String>,
    /// When SQS first received it (`SentTimestamp`): how long it has waited.
    pub sent_at: Option<crate::time::UnixMillis>,
}

impl DeadLetter {
    pub fn of(message: &aws_sdk_sqs::types::Message) -> Self {
        let attribute = |name: &str| {
            message
                .message_attributes()
                .and_then(|a| a.get(name))
                .and_then(|v| v.string_value())
                .map(str::to_owned)
        };
        DeadLetter {
            body: message.body().unwrap_or_default().to_owned(),
            reason_code: attribute(REASON_CODE_ATTRIBUTE),
            reason: attribute(REASON_ATTRIBUTE),
            sent_at: message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                .and_then(|t| t.parse().ok())
                .map(crate::time::UnixMillis),
        }
    }
}

/// `request` carrying `header` as the message's `AWSTraceHeader` (the X-Ray trace it belongs
/// to), when there is one.
pub(crate) fn with_trace(
    request: aws_sdk_sqs::operation::send_message::builders::SendMessageFluentBuilder,
    header: Option<String>,
) -> Result<
    aws_sdk_sqs::operation::send_message::builders::SendMessageFluentBuilder,
    aws_sdk_sqs::error::BuildError,
> {
    let Some(header) = header else {
        return Ok(request);
    };
    let value = aws_sdk_sqs::types::MessageSystemAttributeValue::builder()
        .data_type("String")
        .string_value(header)
        .build()?;
    Ok(request.message_system_attributes(
        aws_sdk_sqs::types::MessageSystemAttributeNameForSends::AwsTraceHeader,
        value,
    ))
}

#[derive(Debug, thiserror::Error)]
#[error("SQS {operation} to {queue_url} failed: {detail}")]
pub struct QueueError {
    pub operation: &'static str,
    pub queue_url: String,
    pub detail: String,
}

impl From<crate::failpoints::Injected> for QueueError {
    fn from(injected: crate::failpoints::Injected) -> Self {
        QueueError {
            operation: "failpoint",
            queue_url: String::new(),
            detail: injected.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Queue {
    sqs: aws_sdk_sqs::Client,
}

impl Queue {
    pub fn new(sqs: aws_sdk_sqs::Client) -> Self {
        Queue { sqs }
    }

    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.sqs
    }

    /// Sends `message` as JSON; returns the SQS message id.
    pub async fn send_json<T: Serialize>(
        &self,
        queue_url: &str,
        message: &T,
    ) -> Result<String, QueueError> {
        let body = serde_json::to_string(message).map_err(|e| QueueError {
            operation: "SendMessage",
            queue_url: queue_url.to_owned(),
            detail: e.to_string(),
        })?;
        self.send_raw(queue_url, &body, &[], Duration::ZERO).await
    }

    /// As [`Self::send_json`], delivered after `delay` (SQS's `DelaySeconds`: at most 15
    /// minutes, whole seconds).
    pub async fn send_json_after<T: Serialize>(
        &self,
        queue_url: &str,
        message: &T,
        delay: Duration,
    ) -> Result<String, QueueError> {
        let body = serde_json::to_string(message).map_err(|e| QueueError {
            operation: "SendMessage",
            queue_url: queue_url.to_owned(),
            detail: e.to_string(),
        })?;
        self.send_raw(queue_url, &body, &[], delay).await
    }

    /// How many messages the queue holds: visible, in flight and delayed (SQS's approximate
    /// counts, which lag by up to a minute).
    pub async fn depth(&self, queue_url: &str) -> Result<u64, QueueError> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let counted = [
            A::ApproximateNumberOfMessages,
            A::ApproximateNumberOfMessagesNotVisible,
            A::ApproximateNumberOfMessagesDelayed,
        ];
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .set_attribute_names(Some(counted.to_vec()))
            .send()
            .await
            .map_err(|e| QueueError {
                operation: "GetQueueAttributes",
                queue_url: queue_url.to_owned(),
                detail: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
            })?;
        Ok(counted
            .iter()
            .filter_map(|name| out.attributes()?.get(name)?.parse::<u64>().ok())
            .sum())
    }

    /// Sends a message that could not be processed to a dead-letter queue, with why. The body is
    /// kept byte for byte, so a redrive replays exactly what arrived.
    pub async fn dead_letter(
        &self,
        dlq_url: &str,
        body: &str,
        code: &str,
        reason: &str,
        source_message_id: &str,
    ) -> Result<String, QueueError> {
        self.send_raw(
            dlq_url,
            body,
            &[
                (REASON_CODE_ATTRIBUTE, code),
                (REASON_ATTRIBUTE, reason),
                (SOURCE_MESSAGE_ATTRIBUTE, source_message_id),
            ],
            Duration::ZERO,
        )
        .await
    }

    /// Reads up to `max` messages without consuming them: each is received (hidden for a moment
    /// so the next receive returns others) and then made visible again.
    pub async fn peek(&self, queue_url: &str, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let error = |operation: &'static str, e: String| QueueError {
            operation,
            queue_url: queue_url.to_owned(),
            detail: e,
        };
        let mut seen = std::collections::HashSet::new();
        let mut letters = Vec::new();
        let mut handles = Vec::new();
        while letters.len() < max {
            let received = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                .visibility_timeout(30)
                .send()
                .await
                .map_err(|e| error("ReceiveMessage", DisplayErrorContext(e).to_string()))?;
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for message in messages {
                if let Some(handle) = message.receipt_handle() {
                    handles.push(handle.to_owned());
                }
                if seen.insert(message.message_id().unwrap_or_default().to_owned()) {
                    letters.push(DeadLetter::of(&message));
                }
            }
        }
        for handle in handles {
            self.sqs
                .change_message_visibility()
                .queue_url(queue_url)
                .receipt_handle(handle)
                .visibility_timeout(0)
                .send()
                .await
                .map_err(|e| {
                    error(
                        "ChangeMessageVisibility",
                        DisplayErrorContext(e).to_string(),
                    )
                })?;
        }
        Ok(letters)
    }

    /// Moves messages from a dead-letter queue back to `source_url`, as SQS's
    /// `StartMessageMoveTask` does (which moto does not implement): body and attributes as they
    /// are — the reason attributes included, which is how a consumer knows an operator redrove
    /// it — then deleted from the DLQ. `keep` decides per message (by its reason attributes);
    /// what it refuses stays in the DLQ. Returns how many moved.
    pub async fn redrive(
        &self,
        dlq_url: &str,
        source_url: &str,
        keep: impl Fn(&DeadLetter) -> bool,
    ) -> Result<usize, QueueError> {
        let error = |operation: &'static str, queue_url: &str, e: String| QueueError {
            operation,
            queue_url: queue_url.to_owned(),
            detail: e,
        };
        let mut moved = 0;
        let mut refused = std::collections::HashSet::new();
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(dlq_url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                // Refused messages come back after this; the loop ends before that.
                .visibility_timeout(30)
                .send()
                .await
                .map_err(|e| {
                    error(
                        "ReceiveMessage",
                        dlq_url,
                        DisplayErrorContext(e).to_string(),
                    )
                })?;
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return Ok(moved);
            }
            for message in messages {
                let letter = DeadLetter::of(&message);
                let id = message.message_id().unwrap_or_default().to_owned();
                if !keep(&letter) {
                    refused.insert(id);
                    continue;
                }
                self.sqs
                    .send_message()
                    .queue_url(source_url)
                    .message_body(message.body().unwrap_or_default())
                    .set_message_attributes(message.message_attributes().cloned())
                    .send()
                    .await
                    .map_err(|e| {
                        error(
                            "SendMessage",
                            source_url,
                            DisplayErrorContext(e).to_string(),
                        )
                    })?;
                self.sqs
                    .delete_message()
                    .queue_url(dlq_url)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .map_err(|e| {
                        error("DeleteMessage", dlq_url, DisplayErrorContext(e).to_string())
                    })?;
                moved += 1;
            }
        }
    }

    async fn send_raw(
        &self,
        queue_url: &str,
        body: &str,
        attributes: &[(&str, &str)],
        delay: Duration,
    ) -> Result<String, QueueError> {
        let mut request = self
            .sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(body);
        if !delay.is_zero() {
            request = request.delay_seconds(delay.as_secs().clamp(1, 900) as i32);
        }
        let unbuildable = |e: aws_sdk_sqs::error::BuildError| QueueError {
            operation: "SendMessage",
            queue_url: queue_url.to_owned(),
            detail: e.to_string(),
        };
        // The document's trace goes on with the message (crate::trace_context).
        request = with_trace(request, crate::trace_context::current()).map_err(unbuildable)?;
        for (name, value) in attributes {
            // Attribute values must be non-empty; an empty reason says nothing anyway.
            let value = if value.is_empty() { "-" } else { value };
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value.chars().take(1024).collect::<String>())
                .build()
                .map_err(unbuildable)?;
            request = request.message_attributes(*name, attribute);
        }
        let out = request.send().await.map_err(|e| QueueError {
            operation: "SendMessage",
            queue_url: queue_url.to_owned(),
            detail: DisplayErrorContext(e).to_string(),
        })?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }
}
