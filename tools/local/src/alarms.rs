//! CloudWatch alarms on the local stack: created from the template, and their actions delivered.
//!
//! moto keeps alarms (`PutMetricAlarm`, `SetAlarmState`, `DescribeAlarms`) but never performs
//! an alarm's actions: a state change publishes nothing (moto 5.2.5,
//! `cloudwatch/models.py::set_alarm_state` only records the state). CloudWatch itself
//! publishes to every SNS topic in the new state's actions. [`deliver_actions`] does that part
//! for the local stack, the way the event-source runner stands in for Lambda's SQS poller: it
//! watches the alarms through the real API and publishes CloudWatch's notification (the JSON
//! CloudWatch sends: `AlarmName`, `NewStateValue`, `NewStateReason`, `OldStateValue`,
//! `StateChangeTime`…) with the real SNS API. Everything downstream — the topic, its
//! subscriptions, `ocrbridge alarms test` — is then exercised as it is in AWS.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, Metric, MetricDataQuery, MetricStat, StateValue, Statistic,
};
use ocrbridge::aws::AwsClients;
use serde_json::json;
use serde_yaml::{Mapping, Value};

use crate::template::scalar_to_string;

fn text(props: &Mapping, key: &str) -> Option<String> {
    props.get(key).and_then(scalar_to_string)
}

fn number(props: &Mapping, key: &str) -> Result<Option<f64>, String> {
    text(props, key)
        .map(|t| {
            t.parse()
                .map_err(|_| format!("{key}={t:?} is not a number"))
        })
        .transpose()
}

fn whole(props: &Mapping, key: &str) -> Result<Option<i32>, String> {
    text(props, key)
        .map(|t| {
            t.parse()
                .map_err(|_| format!("{key}={t:?} is not a whole number"))
        })
        .transpose()
}

fn strings(props: &Mapping, key: &str) -> Vec<String> {
    props
        .get(key)
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(scalar_to_string)
        .collect()
}

fn dimensions(props: &Mapping) -> Vec<Dimension> {
    props
        .get("Dimensions")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|d| {
            Some(
                Dimension::builder()
                    .name(scalar_to_string(d.get("Name")?)?)
                    .value(scalar_to_string(d.get("Value")?)?)
                    .build(),
            )
        })
        .collect()
}

fn query(m: &Value) -> Result<MetricDataQuery, String> {
    let m = m.as_mapping().ok_or("a Metrics entry is not a mapping")?;
    let mut q = MetricDataQuery::builder()
        .id(text(m, "Id").ok_or("a Metrics entry has no Id")?)
        .set_expression(text(m, "Expression"))
        .set_label(text(m, "Label"))
        .set_return_data(text(m, "ReturnData").map(|r| r == "true"));
    if let Some(stat) = m.get("MetricStat").and_then(Value::as_mapping) {
        let metric = stat
            .get("Metric")
            .and_then(Value::as_mapping)
            .ok_or("a MetricStat has no Metric")?;
        q = q.metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .set_namespace(text(metric, "Namespace"))
                        .set_metric_name(text(metric, "MetricName"))
                        .set_dimensions(Some(dimensions(metric)))
                        .build(),
                )
                .set_period(whole(stat, "Period")?)
                .set_stat(text(stat, "Stat"))
                .build(),
        );
    }
    Ok(q.build())
}

/// Creates (or replaces) the alarm an `AWS::CloudWatch::Alarm`'s resolved properties describe.
/// Returns its name.
pub async fn put_alarm(clients: &AwsClients, props: &Mapping) -> Result<String, String> {
    let name = text(props, "AlarmName").ok_or(
        "AlarmName is required locally (names must come from the template, with the environment)",
    )?;
    let metrics = props
        .get("Metrics")
        .and_then(Value::as_sequence)
        .map(|ms| ms.iter().map(query).collect::<Result<Vec<_>, _>>())
        .transpose()?;
    aws_sdk_cloudwatch::Client::new(&clients.sdk_config)
        .put_metric_alarm()
        .alarm_name(&name)
        .set_alarm_description(text(props, "AlarmDescription"))
        .set_namespace(text(props, "Namespace"))
        .set_metric_name(text(props, "MetricName"))
        .set_dimensions(props.contains_key("Dimensions").then(|| dimensions(props)))
        .set_statistic(text(props, "Statistic").map(|s| Statistic::from(s.as_str())))
        .set_extended_statistic(text(props, "ExtendedStatistic"))
        .set_period(whole(props, "Period")?)
        .set_threshold(number(props, "Threshold")?)
        .set_threshold_metric_id(text(props, "ThresholdMetricId"))
        .set_comparison_operator(
            text(props, "ComparisonOperator").map(|c| ComparisonOperator::from(c.as_str())),
        )
        .set_evaluation_periods(whole(props, "EvaluationPeriods")?)
        .set_datapoints_to_alarm(whole(props, "DatapointsToAlarm")?)
        .set_treat_missing_data(text(props, "TreatMissingData"))
        .set_actions_enabled(text(props, "ActionsEnabled").map(|a| a != "false"))
        .set_alarm_actions(Some(strings(props, "AlarmActions")))
        .set_ok_actions(Some(strings(props, "OKActions")))
        .set_insufficient_data_actions(Some(strings(props, "InsufficientDataActions")))
        .set_metrics(metrics)
        .send()
        .await
        .map_err(|e| aws_sdk_cloudwatch::error::DisplayErrorContext(e).to_string())?;
    Ok(name)
}

/// What CloudWatch publishes to an action topic when an alarm changes state.
pub fn notification(
    alarm: &aws_sdk_cloudwatch::types::MetricAlarm,
    old: &str,
    region: &str,
    account: &str,
) -> serde_json::Value {
    json!({
        "AlarmName": alarm.alarm_name(),
        "AlarmDescription": alarm.alarm_description(),
        "AWSAccountId": account,
        "NewStateValue": alarm.state_value().map(|s| s.as_str()),
        "NewStateReason": alarm.state_reason(),
        "StateChangeTime": alarm.state_updated_timestamp().map(|t| t.to_string()),
        "Region": region,
        "AlarmArn": alarm.alarm_arn(),
        "OldStateValue": old,
    })
}

/// Delivers alarm actions on the local stack until `stop` is set (see the module docs): every
/// `poll`, each alarm whose state changed since it was last seen has its notification
/// published to the SNS topics among that state's actions, if its actions are enabled.
pub async fn deliver_actions(clients: AwsClients, poll: Duration, stop: Arc<AtomicBool>) {
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&clients.sdk_config);
    let sns = aws_sdk_sns::Client::new(&clients.sdk_config);
    // Alarm name → (state, when it was entered) as last seen.
    let mut seen: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut first = true;
    while !stop.load(Ordering::Relaxed) {
        let pages: Vec<_> = cloudwatch
            .describe_alarms()
            .into_paginator()
            .send()
            .collect()
            .await;
        let alarms: Vec<_> = pages
            .into_iter()
            .filter_map(Result::ok)
            .flat_map(|p| p.metric_alarms.unwrap_or_default())
            .collect();
        for alarm in &alarms {
            let name = alarm.alarm_name().unwrap_or_default().to_owned();
            let state = alarm
                .state_value()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default();
            let since = alarm
                .state_updated_timestamp()
                .map(|t| t.to_string())
                .unwrap_or_default();
            let previous = seen.insert(name.clone(), (state.clone(), since.clone()));
            // Alarms present at start are taken as they are; a new alarm starts from
            // INSUFFICIENT_DATA, as in CloudWatch, so its first state is a change too.
            let old = match previous {
                Some((old, old_since))
                    if (old.as_str(), old_since.as_str()) != (state.as_str(), since.as_str()) =>
                {
                    old
                }
                None if !first && state != "INSUFFICIENT_DATA" => "INSUFFICIENT_DATA".to_owned(),
                _ => continue,
            };
            if alarm.actions_enabled() == Some(false) {
                continue;
            }
            let actions = match alarm.state_value() {
                Some(StateValue::Alarm) => alarm.alarm_actions(),
                Some(StateValue::Ok) => alarm.ok_actions(),
                _ => alarm.insufficient_data_actions(),
            };
            let message = notification(
                alarm,
                &old,
                ocrbridge::aws::LOCAL_REGION,
                crate::provision::LOCAL_ACCOUNT_ID,
            );
            for topic in actions.iter().filter(|a| a.starts_with("arn:aws:sns:")) {
                let subject = format!("{}: \"{name}\" in {}", state, ocrbridge::aws::LOCAL_REGION);
                if let Err(e) = sns
                    .publish()
                    .topic_arn(topic)
                    .subject(subject.chars().take(100).collect::<String>())
                    .message(message.to_string())
                    .send()
                    .await
                {
                    tracing::warn!(%topic, alarm = %name, error = %aws_sdk_sns::error::DisplayErrorContext(e), "alarm action not delivered");
                }
            }
        }
        first = false;
        tokio::time::sleep(poll).await;
    }
}
