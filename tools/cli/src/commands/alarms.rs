//! `ocrbridge alarms test [NAME]`: the daily "confirm alerts reach the right channel".
//!
//! An alarm reaches a person only if all of it works: the alarm's actions are enabled and name
//! a topic, CloudWatch may publish to the topic (and use its KMS key), and someone is
//! subscribed. Reading the configuration proves the first part; only a delivery proves the
//! rest. So for each alarm tested the command:
//! 1. subscribes a temporary SQS queue to every topic among the alarm's actions;
//! 2. sets the alarm to ALARM (`SetAlarmState`, with a reason that says it is a drill) and waits
//!    for CloudWatch's notification of exactly that alarm and state on the queue;
//! 3. puts the alarm back in the state it was in and waits for that notification too (the OK
//!    route is tested as well);
//! 4. removes the subscription and the queue, whatever happened.
//!
//! Without NAME it checks every alarm of the stack's environment statically, and fires one per
//! distinct route, so the on-call person gets one drill, not thirty.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::types::{MetricAlarm, StateValue};
use serde_json::{json, Value};

use crate::{CliError, Target};

/// One alarm's check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Checked {
    pub alarm: String,
    pub ok: bool,
    /// What was found or proven, or what is wrong and what to do.
    pub detail: String,
}

fn aws(e: impl std::fmt::Display) -> CliError {
    CliError::aws(e)
}

/// Every alarm of the target's environment (`ocrbridge-<env>-`).
pub(crate) async fn alarms_of(target: &Target) -> Result<Vec<MetricAlarm>, CliError> {
    let env = target
        .env
        .get("OCRBRIDGE_ENV")
        .cloned()
        .unwrap_or_else(|| "dev".into());
    let prefix = format!("ocrbridge-{env}-");
    let pages: Vec<_> = cloudwatch(target)
        .describe_alarms()
        .alarm_name_prefix(&prefix)
        .into_paginator()
        .send()
        .collect()
        .await;
    let mut out = Vec::new();
    for page in pages {
        out.extend(page.map_err(aws)?.metric_alarms.unwrap_or_default());
    }
    Ok(out)
}

fn cloudwatch(target: &Target) -> aws_sdk_cloudwatch::Client {
    aws_sdk_cloudwatch::Client::new(&target.clients.sdk_config)
}

pub(crate) fn sns(target: &Target) -> aws_sdk_sns::Client {
    aws_sdk_sns::Client::new(&target.clients.sdk_config)
}

/// The SNS topics an alarm's ALARM and OK actions name.
pub(crate) fn topics(alarm: &MetricAlarm) -> BTreeSet<String> {
    alarm
        .alarm_actions()
        .iter()
        .chain(alarm.ok_actions())
        .filter(|a| a.starts_with("arn:aws:sns:"))
        .cloned()
        .collect()
}

/// What is wrong with an alarm's routing on paper, if anything.
pub(crate) fn static_fault(alarm: &MetricAlarm) -> Option<String> {
    if alarm.actions_enabled() == Some(false) {
        return Some(
            "its actions are disabled: `aws cloudwatch enable-alarm-actions` (or redeploy)".into(),
        );
    }
    let to_sns = |actions: &[String]| actions.iter().any(|a| a.starts_with("arn:aws:sns:"));
    if !to_sns(alarm.alarm_actions()) {
        return Some("it has no SNS topic among its AlarmActions: nobody hears it fire".into());
    }
    if !to_sns(alarm.ok_actions()) {
        return Some("it has no SNS topic among its OKActions: nobody hears it clear".into());
    }
    None
}

/// A temporary queue subscribed to `topics`; [`Listener::remove`] takes both away.
struct Listener {
    queue_url: String,
    subscriptions: Vec<String>,
}

impl Listener {
    async fn create(target: &Target, topics: &BTreeSet<String>) -> Result<Self, CliError> {
        let sqs = &target.clients.sqs;
        let name = format!(
            "ocrbridge-alarms-test-{}-{}",
            std::process::id(),
            ocrbridge::time::UnixMillis::now().0
        );
        let queue_url = sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .map_err(aws)?
            .queue_url
            .unwrap_or_default();
        let mut listener = Listener {
            queue_url,
            subscriptions: Vec::new(),
        };
        if let Err(e) = listener.subscribe(target, topics).await {
            listener.remove(target).await;
            return Err(e);
        }
        Ok(listener)
    }

    async fn subscribe(
        &mut self,
        target: &Target,
        topics: &BTreeSet<String>,
    ) -> Result<(), CliError> {
        let sqs = &target.clients.sqs;
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(aws)?
            .attributes
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
            .unwrap_or_default();
        // Only these topics may send to the queue.
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": { "Service": "sns.amazonaws.com" },
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": { "ArnEquals": { "aws:SourceArn": topics.iter().collect::<Vec<_>>() } },
            }],
        });
        sqs.set_queue_attributes()
            .queue_url(&self.queue_url)
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::Policy,
                policy.to_string(),
            )
            .send()
            .await
            .map_err(aws)?;
        for topic in topics {
            let out = sns(target)
                .subscribe()
                .topic_arn(topic)
                .protocol("sqs")
                .endpoint(&arn)
                .return_subscription_arn(true)
                .send()
                .await
                .map_err(|e| {
                    CliError::Aws(format!(
                        "cannot subscribe a test queue to {topic}: {}",
                        aws_sdk_sns::error::DisplayErrorContext(e)
                    ))
                })?;
            self.subscriptions.extend(out.subscription_arn);
        }
        Ok(())
    }

    /// Waits for CloudWatch's notification that `alarm` entered `state`, on every topic.
    async fn wait_for(
        &self,
        target: &Target,
        alarm: &str,
        state: &str,
        topics: usize,
        timeout: Duration,
    ) -> Result<Duration, String> {
        let started = Instant::now();
        let mut seen = 0;
        while started.elapsed() < timeout {
            let out = target
                .clients
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .map_err(|e| aws(e).to_string())?;
            for m in out.messages.unwrap_or_default() {
                let envelope: Value =
                    serde_json::from_str(m.body().unwrap_or_default()).unwrap_or(Value::Null);
                let inner: Value = envelope["Message"]
                    .as_str()
                    .and_then(|t| serde_json::from_str(t).ok())
                    .unwrap_or(Value::Null);
                if inner["AlarmName"] == alarm && inner["NewStateValue"] == state {
                    seen += 1;
                }
                if let Some(receipt) = m.receipt_handle() {
                    let _ = target
                        .clients
                        .sqs
                        .delete_message()
                        .queue_url(&self.queue_url)
                        .receipt_handle(receipt)
                        .send()
                        .await;
                }
            }
            if seen >= topics {
                return Ok(started.elapsed());
            }
        }
        Err(format!(
            "no {state} notification of {alarm} reached its topic within {}s: check that the topic's policy lets cloudwatch.amazonaws.com publish, that its KMS key lets CloudWatch use it (not aws/sns), and that the alarm's actions are enabled",
            timeout.as_secs()
        ))
    }

    async fn remove(self, target: &Target) {
        for s in &self.subscriptions {
            let _ = sns(target).unsubscribe().subscription_arn(s).send().await;
        }
        let _ = target
            .clients
            .sqs
            .delete_queue()
            .queue_url(&self.queue_url)
            .send()
            .await;
    }
}

/// People (or their pager) subscribed to `topic`, besides test queues.
async fn subscribers(target: &Target, topic: &str) -> Result<Vec<String>, CliError> {
    let out = sns(target)
        .list_subscriptions_by_topic()
        .topic_arn(topic)
        .send()
        .await
        .map_err(aws)?;
    Ok(out
        .subscriptions
        .unwrap_or_default()
        .into_iter()
        .filter(|s| {
            !s.endpoint()
                .unwrap_or_default()
                .contains("ocrbridge-alarms-test-")
        })
        .filter(|s| s.subscription_arn() != Some("PendingConfirmation"))
        .map(|s| {
            format!(
                "{} {}",
                s.protocol().unwrap_or("?"),
                s.endpoint().unwrap_or("?")
            )
        })
        .collect())
}

/// Fires `alarm` through its route and puts it back.
async fn drill(target: &Target, alarm: &MetricAlarm, timeout: Duration) -> Checked {
    let name = alarm.alarm_name().unwrap_or_default().to_owned();
    let fail = |detail: String| Checked {
        alarm: name.clone(),
        ok: false,
        detail,
    };
    if let Some(fault) = static_fault(alarm) {
        return fail(fault);
    }
    let topics = topics(alarm);
    let mut people = Vec::new();
    for topic in &topics {
        match subscribers(target, topic).await {
            Ok(s) => people.extend(s),
            Err(e) => return fail(e.to_string()),
        }
    }
    if people.is_empty() {
        return fail(format!(
            "nobody is subscribed to {}: alarms stop at the topic (set AlarmEmail or AlarmHttpsEndpoint, or subscribe your pager)",
            topics.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let listener = match Listener::create(target, &topics).await {
        Ok(l) => l,
        Err(e) => return fail(e.to_string()),
    };
    // ALARM, then OK (both routes proven), then the state it was in if that was neither.
    let original = alarm
        .state_value()
        .cloned()
        .unwrap_or(StateValue::InsufficientData);
    let set = |state: StateValue, reason: &str| {
        cloudwatch(target)
            .set_alarm_state()
            .alarm_name(&name)
            .state_value(state)
            .state_reason(reason)
            .send()
    };
    let result = async {
        set(
            StateValue::Alarm,
            "ocrbridge alarms test: a drill of the alarm route, not an incident",
        )
        .await
        .map_err(|e| aws(e).to_string())?;
        let fired = listener
            .wait_for(target, &name, "ALARM", topics.len(), timeout)
            .await?;
        set(StateValue::Ok, "ocrbridge alarms test: the drill is over")
            .await
            .map_err(|e| aws(e).to_string())?;
        let cleared = listener
            .wait_for(target, &name, "OK", topics.len(), timeout)
            .await?;
        Ok::<_, String>((fired, cleared))
    }
    .await;
    listener.remove(target).await;
    // Never leave an alarm raised by a drill; one that was ALARM is re-evaluated by CloudWatch.
    let back = match original {
        StateValue::Alarm => StateValue::Ok,
        other => other,
    };
    if back != StateValue::Ok {
        let _ = set(
            back,
            "ocrbridge alarms test: back to its state before the drill",
        )
        .await;
    }
    match result {
        Ok((fired, cleared)) => Checked {
            alarm: name,
            ok: true,
            detail: format!(
                "ALARM reached {} in {:.1}s, OK in {:.1}s; subscribed: {}",
                topics.iter().cloned().collect::<Vec<_>>().join(", "),
                fired.as_secs_f64(),
                cleared.as_secs_f64(),
                people.join(", ")
            ),
        },
        Err(e) => fail(e),
    }
}

/// `ocrbridge alarms test [NAME] [--all]`.
pub async fn test(
    target: &Target,
    name: Option<&str>,
    all: bool,
    timeout: Duration,
    json_mode: bool,
) -> Result<(), CliError> {
    let alarms = alarms_of(target).await?;
    if alarms.is_empty() {
        return Err(CliError::Refused(
            "this stack's environment has no alarms (ocrbridge-<env>-…): deploy the template, or check --stack".into(),
        ));
    }
    let mut checked = Vec::new();
    if let Some(wanted) = name {
        let alarm = alarms
            .iter()
            .find(|a| {
                let n = a.alarm_name().unwrap_or_default();
                n == wanted || n.ends_with(&format!("-{wanted}"))
            })
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "no alarm {wanted:?}; this stack's: {}",
                    alarms
                        .iter()
                        .filter_map(|a| a.alarm_name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        checked.push(drill(target, alarm, timeout).await);
    } else {
        // One drill per distinct route; every other alarm is checked on paper against it.
        let mut routes: BTreeMap<BTreeSet<String>, Option<bool>> = BTreeMap::new();
        for alarm in &alarms {
            let alarm_name = alarm.alarm_name().unwrap_or_default().to_owned();
            if let Some(fault) = static_fault(alarm) {
                checked.push(Checked {
                    alarm: alarm_name,
                    ok: false,
                    detail: fault,
                });
                continue;
            }
            let route = topics(alarm);
            match routes.get(&route).copied() {
                Some(Some(ok)) if !all => checked.push(Checked {
                    alarm: alarm_name,
                    ok,
                    detail: format!(
                        "routes to the same topics as the drilled alarm ({})",
                        if ok { "delivered" } else { "not delivered" }
                    ),
                }),
                _ => {
                    let result = drill(target, alarm, timeout).await;
                    routes.insert(route, Some(result.ok));
                    checked.push(result);
                }
            }
        }
    }
    let failed = checked.iter().filter(|c| !c.ok).count();
    if json_mode {
        println!(
            "{}",
            serde_json::to_string_pretty(&checked).unwrap_or_default()
        );
    } else {
        for c in &checked {
            println!(
                "{} {}: {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.alarm,
                c.detail
            );
        }
        println!("{} alarms, {} failed", checked.len(), failed);
    }
    if failed > 0 {
        return Err(CliError::Refused(format!(
            "{failed} of {} alarms would not reach a person",
            checked.len()
        )));
    }
    Ok(())
}
