//! The SQS event source mappings, as Lambda runs them:
//! - each queue is polled with the batch size `template.yaml` gives its function;
//! - an invocation gets a deadline (`invocation_timeout`) and is stopped there, its future
//!   dropped, as Lambda stops a function at its timeout; a failed or stopped invocation leaves
//!   its whole batch on the queue;
//! - records the handler reports in `batchItemFailures` stay on the queue (their visibility is
//!   whatever the handler set, or the queue's timeout); the others are deleted, in one
//!   `DeleteMessageBatch`;
//! - the redrive policy moves a message to its DLQ after `maxReceiveCount` receives (moto does
//!   this, as SQS does);
//! - **concurrency** as the template sets it: a function runs at most its
//!   `ReservedConcurrentExecutions` at once, and an event source with
//!   `ScalingConfig.MaximumConcurrency` never invokes more than that. A mapping without it
//!   invokes for every batch it receives, and Lambda throttles what the function has no slot
//!   for: the batch goes back to the queue, its receive count raised although no handler ran —
//!   which a burst turns into messages that look like a crash loop.
//!
//! The chaos faults of [`super::chaos`] act here: crashed, killed and frozen invocations.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessageAttribute};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use ocrbridge::time::UnixMillis;
use tokio::sync::Semaphore;

use super::chaos::{subject_of, ChaosCounters, ChaosFault, Invocation, INVOCATION};
use super::Pipeline;

/// The SQS event source mappings of the template: which queue feeds which function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSource {
    Intake,
    Submit,
    /// The results queue, feeding parse.
    Results,
    /// Textract's completions (SNS → SQS), also feeding parse; only with `VENDOR=textract`.
    TextractCompletions,
}

impl EventSource {
    pub const ALL: [EventSource; 4] = [
        EventSource::Intake,
        EventSource::Submit,
        EventSource::Results,
        EventSource::TextractCompletions,
    ];
}

/// Lambda's concurrency for the event sources, from the template: each function's reserved
/// slots, and each mapping's own maximum.
#[derive(Debug, Default)]
pub(crate) struct Concurrency {
    /// By function logical id: the invocations it may run at once.
    functions: BTreeMap<&'static str, Arc<Semaphore>>,
    /// By event source: the invocations its pollers may have in flight.
    sources: BTreeMap<&'static str, Arc<Semaphore>>,
    /// By event source (in [`EventSource::ALL`]'s order): one `ReceiveMessage` at a time.
    /// moto's receive takes no lock: two at once can both take the same visible message, and
    /// both raise its receive count before either reads it, so each invocation sees a message
    /// received twice that no function ever failed, and the crash-loop guard parks it (at
    /// `MaxReceiveCount=3`, on the first delivery). SQS hands a message to one receiver per
    /// visibility window; its rare duplicates are the chaos run's to inject, not the emulator's.
    receiving: [tokio::sync::Mutex<()>; EventSource::ALL.len()],
}

impl EventSource {
    fn function(self) -> &'static str {
        match self {
            EventSource::Intake => "IntakeFunction",
            EventSource::Submit => "SubmitFunction",
            EventSource::Results | EventSource::TextractCompletions => "ParseFunction",
        }
    }

    /// Where its `ScalingConfig` is: the function's SQS event, or the mapping resource.
    fn mapping(self) -> &'static str {
        match self {
            EventSource::TextractCompletions => "TextractCompletionsSource",
            other => other.function(),
        }
    }
}

impl Concurrency {
    pub(crate) fn of(stack: &crate::provision::LocalStack) -> Self {
        let permits = |n: u64| Arc::new(Semaphore::new(usize::try_from(n).unwrap_or(usize::MAX)));
        let mut out = Concurrency::default();
        for source in EventSource::ALL {
            if let Some(n) = stack.reserved_concurrency(source.function()) {
                out.functions
                    .entry(source.function())
                    .or_insert_with(|| permits(n));
            }
            if let Some(n) = stack.event_max_concurrency(source.mapping()) {
                out.sources.insert(source.mapping(), permits(n));
            }
        }
        out
    }
}

/// What the emulated event source mappings asked of SQS. Lambda's pollers make the same calls and
/// they are billed to the queue's owner; the ones that return messages scale with the documents,
/// the empty ones are a fixed cost of polling.
#[derive(Debug, Default)]
pub struct EventSourceCounters {
    pub receives_with_messages: AtomicU64,
    pub empty_receives: AtomicU64,
    pub delete_batches: AtomicU64,
    /// Batches received and not invoked: the function had no slot left (see [`Concurrency`]).
    pub throttled_batches: AtomicU64,
}

impl EventSourceCounters {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// How one invocation ended.
enum Invoked {
    /// The handler returned these failed message ids.
    Returned(Vec<String>),
    /// The invocation was stopped (killed, timed out): the whole batch stays on the queue.
    Lost,
    /// The invocation was given up for lost while it ran on (frozen), and its batch already put
    /// back; its receipt handles are stale now.
    GivenUp,
}

impl Pipeline {
    async fn receive(
        &self,
        source: EventSource,
        queue_url: &str,
        max: i32,
        wait_seconds: i32,
    ) -> Vec<Message> {
        let _one_at_a_time = self.concurrency.receiving[source as usize].lock().await;
        let messages = self
            .clients
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .ok()
            .and_then(|o| o.messages)
            .unwrap_or_default();
        ChaosCounters::add(if messages.is_empty() {
            &self.event_sources.empty_receives
        } else {
            &self.event_sources.receives_with_messages
        });
        messages
    }

    /// The SQS event Lambda builds from `messages`, each naming its queue by ARN (from the queue
    /// URL: `…/<account>/<name>`), as a function reading two queues needs.
    fn event(messages: &[Message], queue_url: &str) -> SqsEvent {
        let mut parts = queue_url.trim_end_matches('/').rsplit('/');
        let name = parts.next().unwrap_or_default();
        let account = parts.next().unwrap_or_default();
        let arn = format!("arn:aws:sqs:us-east-1:{account}:{name}");
        let mut event = SqsEvent::default();
        for m in messages {
            let mut record = aws_lambda_events::event::sqs::SqsMessage::default();
            record.message_id = m.message_id().map(str::to_owned);
            record.receipt_handle = m.receipt_handle().map(str::to_owned);
            record.body = m.body().map(str::to_owned);
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(arn.clone());
            for (k, v) in m.attributes().into_iter().flatten() {
                record.attributes.insert(k.as_str().to_owned(), v.clone());
            }
            for (k, v) in m.message_attributes().into_iter().flatten() {
                let mut a = SqsMessageAttribute::default();
                a.string_value = v.string_value().map(str::to_owned);
                a.data_type = Some(v.data_type().to_owned());
                record.message_attributes.insert(k.clone(), a);
            }
            event.records.push(record);
        }
        event
    }

    /// The failed message ids of a binary's answer; a failed invocation fails the whole batch,
    /// as Lambda treats it.
    fn failures(response: Result<serde_json::Value, String>) -> Invoked {
        match response {
            Ok(value) => match value.get("batchItemFailures").and_then(|f| f.as_array()) {
                Some(items) => Invoked::Returned(
                    items
                        .iter()
                        .filter_map(|i| i["itemIdentifier"].as_str().map(str::to_owned))
                        .collect(),
                ),
                None => Invoked::Lost,
            },
            Err(_) => Invoked::Lost,
        }
    }

    /// Puts a lost invocation's batch back: visible again after the redelivery delay, as after
    /// a function error (Lambda waits out the visibility timeout; locally that is shortened so
    /// a run finishes, with the same semantics).
    async fn give_back(&self, queue_url: &str, messages: &[Message]) {
        for m in messages {
            if let Some(handle) = m.receipt_handle() {
                let _ = self
                    .clients
                    .sqs
                    .change_message_visibility()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .visibility_timeout(self.options.crash_redelivery.as_secs() as i32)
                    .send()
                    .await;
            }
        }
    }

    /// Rolls `fault` for every message of a batch (each by its own subject, so the same
    /// documents are struck however batches form); `Some` is the first strike's fraction.
    fn batch_strikes(
        &self,
        fault: ChaosFault,
        rate: f64,
        name: &str,
        messages: &[Message],
    ) -> Option<f64> {
        let strikes: Vec<Option<f64>> = messages
            .iter()
            .map(|m| {
                let subject = format!("{name}:{}", subject_of(m.body().unwrap_or_default()));
                self.chaos_dice.strikes(fault, rate, &subject)
            })
            .collect();
        strikes.into_iter().flatten().next()
    }

    async fn acknowledge(
        &self,
        queue_url: &str,
        name: &str,
        messages: &[Message],
        failed: &[String],
    ) {
        if self
            .batch_strikes(
                ChaosFault::Crash,
                self.options.chaos.crash_rate,
                name,
                messages,
            )
            .is_some()
        {
            // Killed after the side effects, before the acknowledgement: nothing is deleted, and
            // every message of the batch comes back.
            ChaosCounters::add(&self.chaos.crashes);
            self.give_back(queue_url, messages).await;
            return;
        }
        // The successful records, deleted in one DeleteMessageBatch as Lambda's poller does.
        let entries: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| !failed.iter().any(|f| Some(f.as_str()) == m.message_id()))
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle()?)
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            return;
        }
        ChaosCounters::add(&self.event_sources.delete_batches);
        let _ = self
            .clients
            .sqs
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
    }

    /// One poll of one event source: receive a batch, invoke the function with it, delete what
    /// succeeded. Returns how many messages it handled.
    pub(crate) async fn poll(&self, source: EventSource) -> usize {
        self.poll_waiting(source, 0).await
    }

    /// [`Self::poll`], its receive waiting up to `wait_seconds` for a message (SQS long
    /// polling, as Lambda's event source mappings receive).
    pub(crate) async fn poll_waiting(&self, source: EventSource, wait_seconds: i32) -> usize {
        let (queue_url, name) = match source {
            EventSource::Intake => (&self.config.intake_queue_url, "intake"),
            EventSource::Submit => (&self.config.submit_queue_url, "submit"),
            EventSource::Results => (&self.config.results_queue_url, "results"),
            EventSource::TextractCompletions => match &self.textract_completions_url {
                Some(url) => (url, "textract"),
                None => return 0,
            },
        };
        // A mapping with a maximum concurrency polls only while it has an invocation to spare.
        let in_flight = match self.concurrency.sources.get(source.mapping()) {
            Some(limit) => Arc::clone(limit).acquire_owned().await.ok(),
            None => None,
        };
        let received = self
            .receive(source, queue_url, self.batch_sizes[name], wait_seconds)
            .await;
        if received.is_empty() {
            return 0;
        }
        let count = received.len();
        let (lost, batch): (Vec<Message>, Vec<Message>) = received.into_iter().partition(|m| {
            let subject = format!("{name}:{}", subject_of(m.body().unwrap_or_default()));
            self.chaos_dice
                .strikes(ChaosFault::Lose, 0.0, &subject)
                .is_some()
        });
        for m in &lost {
            if let Some(handle) = m.receipt_handle() {
                let _ = self
                    .clients
                    .sqs
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await;
            }
        }
        if batch.is_empty() {
            return count;
        }
        let slot = match self.concurrency.functions.get(source.function()) {
            Some(slots) => match Arc::clone(slots).try_acquire_owned() {
                Ok(slot) => Some(slot),
                Err(_) => {
                    // Throttled: no handler runs, and the batch comes back after its visibility
                    // timeout with its receive count raised.
                    ChaosCounters::add(&self.event_sources.throttled_batches);
                    self.give_back(queue_url, &batch).await;
                    return batch.len();
                }
            },
            None => None,
        };
        let event = Self::event(&batch, queue_url);
        let invoked = match &self.binaries {
            Some(b) => {
                let function = match source {
                    EventSource::Intake => &b.intake,
                    EventSource::Submit => &b.submit,
                    EventSource::Results | EventSource::TextractCompletions => &b.parse,
                };
                Self::failures(
                    function
                        .invoke(&serde_json::to_value(&event).unwrap_or_default())
                        .await,
                )
            }
            None => {
                self.invoke_in_process(source, queue_url, name, &batch, event, (in_flight, slot))
                    .await
            }
        };
        match invoked {
            Invoked::Returned(failed) => self.acknowledge(queue_url, name, &batch, &failed).await,
            Invoked::Lost => self.give_back(queue_url, &batch).await,
            Invoked::GivenUp => {}
        }
        batch.len()
    }

    /// Calls the handler as Lambda would: with a deadline it is stopped at, and — in a chaos
    /// run — killed at a random instant, or given up for lost when its worker freezes (the
    /// worker goes on, and its batch is put back at once).
    async fn invoke_in_process(
        &self,
        source: EventSource,
        queue_url: &str,
        name: &str,
        batch: &[Message],
        event: SqsEvent,
        concurrency: Held,
    ) -> Invoked {
        let timeout = self.options.invocation_timeout;
        let started = tokio::time::Instant::now();
        let deadline = UnixMillis::now().plus(timeout);
        let invocation = Arc::new(Invocation::default());
        let chaos = &self.options.chaos;
        let kill_at = self
            .batch_strikes(ChaosFault::Kill, chaos.kill_rate, name, batch)
            .map(|when| chaos.kill_within.mul_f64(when));
        let handler = INVOCATION.scope(Arc::clone(&invocation), async {
            let response = match source {
                EventSource::Intake => self.intake.handle_sqs(event, Some(deadline)).await,
                EventSource::Submit => self.submit.handle_sqs(event, deadline).await,
                EventSource::Results | EventSource::TextractCompletions => {
                    self.parse.handle_sqs(event, deadline).await
                }
            };
            response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect::<Vec<_>>()
        });
        tokio::pin!(handler);
        tokio::select! {
            failed = &mut handler => Invoked::Returned(failed),
            _ = invocation.kill.notified() => {
                ChaosCounters::add(&self.chaos.kills);
                if invocation.in_vendor_call.load(std::sync::atomic::Ordering::SeqCst) {
                    ChaosCounters::add(&self.chaos.kills_mid_vendor_call);
                }
                Invoked::Lost
            }
            _ = tokio::time::sleep(kill_at.unwrap_or(timeout)) => {
                if kill_at.is_some() {
                    ChaosCounters::add(&self.chaos.kills);
                    if invocation.in_vendor_call.load(std::sync::atomic::Ordering::SeqCst) {
                        ChaosCounters::add(&self.chaos.kills_mid_vendor_call);
                    }
                } else {
                    ChaosCounters::add(&self.chaos.timeouts);
                }
                Invoked::Lost
            }
            _ = invocation.frozen.notified() => {
                // Given up for lost: the batch comes back for another worker now, while this one
                // sleeps through its lease and then tries to write.
                self.give_back(queue_url, batch).await;
                // Lambda stopped counting it at its timeout: what runs on is a write already on
                // its way, not an invocation, and it must not keep the successor it models from
                // being invoked (holding the mapping's two submit slots, it did: #25's
                // `StallAfterCall` route was never reached).
                drop(concurrency);
                // It goes on past its timeout (a write delayed in the network lands late), until
                // it finishes or is killed: a frozen worker that then crashes must not hold
                // this poller for good. `frozen_limit` timeouts bound the wait.
                tokio::select! {
                    _ = &mut handler => {}
                    _ = invocation.kill.notified() => ChaosCounters::add(&self.chaos.frozen_crashed),
                    _ = tokio::time::sleep_until(started + timeout * self.options.frozen_limit) => {
                        ChaosCounters::add(&self.chaos.frozen_dropped_at_limit)
                    }
                }
                Invoked::GivenUp
            }
        }
    }
}

/// The concurrency an invocation holds while it runs: its event source mapping's
/// (`MaximumConcurrency`) and its function's (reserved concurrency).
type Held = (
    Option<tokio::sync::OwnedSemaphorePermit>,
    Option<tokio::sync::OwnedSemaphorePermit>,
);
