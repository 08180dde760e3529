//! Sums of the functions' counters over a week, from CloudWatch.
//!
//! Every EMF record is stored twice: with the metric's full dimension set, and as a
//! `Function`-only rollup for alarms (`ocrbridge::metrics::Metrics::emit`). A sum reads the full
//! set alone, or it would count each event twice. `ListMetrics` finds the dimension values seen,
//! `GetMetricStatistics` sums each series over the week (one period of seven days), and the
//! series are added up by the dimension asked for.

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use ocrbridge::metrics::{self, Metric};

use super::{Counted, Week, WEEK_MS};
use crate::CliError;

fn aws(e: impl std::error::Error + 'static) -> CliError {
    CliError::aws(aws_sdk_cloudwatch::error::DisplayErrorContext(e))
}

/// A metric's series with its full dimension set (`Function` and the metric's own).
async fn series(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    metric: Metric,
) -> Result<Vec<Vec<Dimension>>, CliError> {
    let mut wanted: Vec<&str> = metric.dimensions.to_vec();
    wanted.push("Function");
    wanted.sort_unstable();
    let mut out = Vec::new();
    let mut pages = cloudwatch
        .list_metrics()
        .namespace(namespace)
        .metric_name(metric.name)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for m in page.map_err(aws)?.metrics() {
            let mut names: Vec<&str> = m.dimensions().iter().filter_map(|d| d.name()).collect();
            names.sort_unstable();
            if names == wanted {
                out.push(m.dimensions().to_vec());
            }
        }
    }
    Ok(out)
}

/// `metric` summed over `week`, by the value of its dimension `by` (`""` for all of it).
///
/// One `GetMetricStatistics` per series. (`GetMetricData` would take 500 series a call, but
/// moto 5.2.5's ignores the namespace once a query names dimensions — `cloudwatch/models.py`,
/// `get_metric_data` — so two stacks on one local moto would read each other's counts;
/// `GetMetricStatistics` filters by namespace first there, as AWS does for both.)
pub async fn sums(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    metric: Metric,
    by: Option<&str>,
    week: Week,
) -> Result<BTreeMap<String, f64>, CliError> {
    let mut out = BTreeMap::new();
    for dimensions in series(cloudwatch, namespace, metric).await? {
        let answer = cloudwatch
            .get_metric_statistics()
            .namespace(namespace)
            .metric_name(metric.name)
            .set_dimensions(Some(dimensions.clone()))
            .start_time(DateTime::from_millis(week.since.0 as i64))
            .end_time(DateTime::from_millis(week.until.0 as i64))
            .period((WEEK_MS / 1000) as i32)
            .statistics(Statistic::Sum)
            .send()
            .await
            .map_err(aws)?;
        let sum: f64 = answer.datapoints().iter().filter_map(|d| d.sum()).sum();
        // A series seen in the last two weeks but not in this one: no line for it.
        if sum == 0.0 {
            continue;
        }
        let key = by
            .and_then(|by| dimensions.iter().find(|d| d.name() == Some(by))?.value())
            .unwrap_or_default()
            .to_owned();
        *out.entry(key).or_default() += sum;
    }
    Ok(out)
}

/// The week's counters the report needs from CloudWatch.
pub async fn counted(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    week: Week,
) -> Result<Counted, CliError> {
    // `+ 0.0`: an empty sum of `f64` is negative zero.
    let total = |m: BTreeMap<String, f64>| m.values().sum::<f64>() + 0.0;
    let reconciles = sums(
        cloudwatch,
        namespace,
        metrics::RECONCILES,
        Some("Outcome"),
        week,
    )
    .await?;
    Ok(Counted {
        retries_by_cause: sums(
            cloudwatch,
            namespace,
            metrics::SUBMIT_RETRIES,
            Some("Cause"),
            week,
        )
        .await?,
        reuploads_deduplicated: total(
            sums(
                cloudwatch,
                namespace,
                metrics::DUPLICATES_SUPPRESSED,
                None,
                week,
            )
            .await?,
        ),
        webhook_replays_refused: total(
            sums(
                cloudwatch,
                namespace,
                metrics::WEBHOOK_DUPLICATES,
                None,
                week,
            )
            .await?,
        ),
        lost_answers_adopted: reconciles
            .iter()
            .filter(|(outcome, _)| outcome.starts_with("adopted"))
            .map(|(_, n)| n)
            .sum::<f64>()
            + 0.0,
    })
}
