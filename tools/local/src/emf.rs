//! CloudWatch's extraction of Embedded Metric Format, for the local stack.
//!
//! In AWS a function's EMF lines become metric data when CloudWatch Logs receives them: one data
//! point per dimension set of the record, in the record's namespace, at the record's timestamp.
//! moto keeps metric data (`PutMetricData`, `GetMetricData`, `ListMetrics`) but has no log
//! extraction, so the local stack does that part: it takes the records its functions kept
//! (`Metrics::take_records`) and puts them through the real API. Read back with
//! `GetMetricData`, they are what a deployed stack's dashboards and `ocrbridge report` read.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use ocrbridge::time::UnixMillis;
use serde_json::Value;

/// `PutMetricData` takes at most this many data points per request.
const PER_REQUEST: usize = 1000;

/// One data point an EMF record becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    pub namespace: String,
    pub name: String,
    pub unit: String,
    /// In the record's order for this dimension set.
    pub dimensions: Vec<(String, String)>,
    pub value: f64,
    pub at: UnixMillis,
}

/// The data points of one EMF record: one per metric and dimension set. A record that is not
/// EMF (no `_aws.CloudWatchMetrics`) gives none, as CloudWatch ignores a plain log line.
pub fn data(record: &Value) -> Vec<Datum> {
    let at = UnixMillis(record["_aws"]["Timestamp"].as_u64().unwrap_or_default());
    let mut out = Vec::new();
    for directive in record["_aws"]["CloudWatchMetrics"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let namespace = directive["Namespace"].as_str().unwrap_or_default();
        for metric in directive["Metrics"].as_array().into_iter().flatten() {
            let Some(name) = metric["Name"].as_str() else {
                continue;
            };
            let Some(value) = record[name].as_f64() else {
                continue;
            };
            for set in directive["Dimensions"].as_array().into_iter().flatten() {
                let dimensions = set
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| {
                        let d = d.as_str()?;
                        Some((d.to_owned(), record[d].as_str()?.to_owned()))
                    })
                    .collect();
                out.push(Datum {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    unit: metric["Unit"].as_str().unwrap_or("None").to_owned(),
                    dimensions,
                    value,
                    at,
                });
            }
        }
    }
    out
}

/// Puts every data point of `records` into CloudWatch, each `back` earlier than its record says
/// (a test's traffic of last week is this week's run, back-dated). Returns how many were put.
pub async fn publish(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    records: &[Value],
    back: Duration,
) -> Result<usize, String> {
    let mut by_namespace: BTreeMap<String, Vec<MetricDatum>> = BTreeMap::new();
    for datum in records.iter().flat_map(data) {
        let at = datum.at.0.saturating_sub(back.as_millis() as u64);
        let put = MetricDatum::builder()
            .metric_name(&datum.name)
            .unit(StandardUnit::from(datum.unit.as_str()))
            .value(datum.value)
            .timestamp(DateTime::from_millis(at as i64))
            .set_dimensions(Some(
                datum
                    .dimensions
                    .iter()
                    .map(|(name, value)| Dimension::builder().name(name).value(value).build())
                    .collect(),
            ))
            .build();
        by_namespace.entry(datum.namespace).or_default().push(put);
    }
    let mut put = 0;
    for (namespace, data) in by_namespace {
        for chunk in data.chunks(PER_REQUEST) {
            cloudwatch
                .put_metric_data()
                .namespace(&namespace)
                .set_metric_data(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| aws_sdk_cloudwatch::error::DisplayErrorContext(e).to_string())?;
            put += chunk.len();
        }
    }
    Ok(put)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocrbridge::metrics::{Metrics, SUBMIT_RETRIES};

    #[test]
    fn a_record_is_a_data_point_per_dimension_set() {
        let m = Metrics::memory("submit").in_namespace("ocrbridge/dev");
        m.count(
            SUBMIT_RETRIES,
            &["simulator", "throttled"],
            &[("job_id", "j1")],
        );
        let records = m.take_records();
        assert_eq!(records.len(), 1);
        assert!(m.take_records().is_empty(), "taken once");
        let data = data(&records[0]);
        let sets: Vec<Vec<(String, String)>> = data.iter().map(|d| d.dimensions.clone()).collect();
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            sets,
            [
                vec![
                    pair("Function", "submit"),
                    pair("Vendor", "simulator"),
                    pair("Cause", "throttled")
                ],
                vec![pair("Function", "submit")],
            ]
        );
        for d in &data {
            assert_eq!(
                (d.namespace.as_str(), d.name.as_str(), d.unit.as_str()),
                ("ocrbridge/dev", "SubmitRetries", "Count")
            );
            assert_eq!(d.value, 1.0);
            assert!(d.at.0 > 0);
        }
    }

    #[test]
    fn a_plain_log_line_is_no_metric() {
        assert!(data(&serde_json::json!({"message": "hello", "Total": 3})).is_empty());
    }
}
