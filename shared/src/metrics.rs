//! Metrics as CloudWatch Embedded Metric Format (EMF) lines on stdout: no API calls, no latency,
//! and CloudWatch turns each line into metric data points.
//!
//! Every metric ocrbridge emits is declared here, once, with its unit and dimension names; the
//! template's dashboards and alarms refer to these names, and a test keeps the two in step.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

use crate::time::UnixMillis;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Bytes,
    Seconds,
    None,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Bytes => "Bytes",
            Unit::Seconds => "Seconds",
            Unit::None => "None",
        }
    }
}

/// A metric's definition: name, unit, and the dimensions it is emitted with (besides `Function`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: Unit,
    pub dimensions: &'static [&'static str],
    /// Segment dimensions emitted in a second dimension set beside `dimensions` (the metric's
    /// own set stays as it was, so the alarms and panels that name it keep their data).
    pub segments: &'static [&'static str],
}

const fn metric(name: &'static str, unit: Unit, dimensions: &'static [&'static str]) -> Metric {
    Metric {
        name,
        unit,
        dimensions,
        segments: &[],
    }
}

/// The text segments (`language::TextSegments::dimensions`), in this order.
pub const TEXT_SEGMENTS: &[&str] = &["Language", "Handwriting"];

impl Metric {
    /// The same metric, also emitted by the language and handwriting of the result's text.
    const fn by_text(self) -> Metric {
        Metric {
            segments: TEXT_SEGMENTS,
            ..self
        }
    }
}

/// Intake.
pub const DOCUMENTS_ACCEPTED: Metric =
    metric("DocumentsAccepted", Unit::Count, &["Profile", "MimeType"]);
pub const DOCUMENTS_REJECTED: Metric =
    metric("DocumentsRejected", Unit::Count, &["Reason", "MimeType"]);
pub const DUPLICATES_SUPPRESSED: Metric = metric("DuplicatesSuppressed", Unit::Count, &["Profile"]);
pub const INTAKE_REDELIVERIES: Metric = metric("IntakeRedeliveries", Unit::Count, &[]);
/// A document asked for by URL: `Outcome` is `fetched` or the refusal's code
/// (`url_fetch::Refusal::code`).
pub const URL_FETCHES: Metric = metric("UrlFetches", Unit::Count, &["Outcome", "Source"]);
/// A quality issue in an accepted document (`inspect::input_issues`): `low_resolution`,
/// `blank_document`.
pub const INPUT_QUALITY: Metric = metric(
    "InputQuality",
    Unit::Count,
    &["Issue", "Source", "MimeType"],
);
/// A preprocessing action applied to an accepted document's prepared copy (`preprocess`), or
/// `skipped_<why>` when no copy could be made and the upload went as it was.
pub const PREPROCESSING_ACTIONS: Metric =
    metric("PreprocessingActions", Unit::Count, &["Action", "Profile"]);
pub const INTAKE_IGNORED: Metric = metric("IntakeIgnored", Unit::Count, &["Why"]);
pub const DOCUMENT_BYTES: Metric = metric("DocumentBytes", Unit::Bytes, &["MimeType"]);
pub const DOCUMENT_PAGES: Metric = metric("DocumentPages", Unit::Count, &["Profile"]);
pub const PDF_BY_LAYER: Metric = metric("PdfDocuments", Unit::Count, &["Layer"]);
pub const VALIDATION_TIME: Metric = metric("ValidationTime", Unit::Milliseconds, &["MimeType"]);
pub const POISON_MESSAGES: Metric = metric("PoisonMessages", Unit::Count, &["Queue"]);
/// Messages an invocation ran out of time for and handed back without spending a receive.
pub const OUT_OF_TIME_REQUEUES: Metric = metric("OutOfTimeRequeues", Unit::Count, &["Queue"]);

/// Submit.
pub const SUBMISSIONS: Metric = metric("Submissions", Unit::Count, &["Vendor", "Profile"]);
pub const SUBMIT_RETRIES: Metric = metric("SubmitRetries", Unit::Count, &["Vendor", "Cause"]);
pub const RECONCILES: Metric = metric("Reconciles", Unit::Count, &["Vendor", "Outcome"]);
pub const BUDGET_EXHAUSTED: Metric = metric("RetryBudgetExhausted", Unit::Count, &["Vendor"]);
pub const ADMISSION_DELAYED: Metric = metric("AdmissionDelayed", Unit::Count, &["Vendor"]);
/// A submission deferred because the vendor's breaker is open (or another container holds its
/// half-open probe): nothing was sent, and no attempt or receive was spent.
pub const BREAKER_REFUSED: Metric = metric("BreakerRefused", Unit::Count, &["Vendor"]);
/// A submission sent to a vendor later in its profile's route than the first
/// (`VENDOR_ROUTES`), and why the earlier one was passed over (`breaker_open`).
pub const FALLBACK_SUBMISSIONS: Metric = metric(
    "FallbackSubmissions",
    Unit::Count,
    &["Profile", "From", "To", "Reason"],
);
/// What a fallback submission is estimated to cost at the vendor it went to (USD), and the
/// difference from what the route's first vendor would have cost (`FallbackCostDelta`,
/// negative when the fallback is cheaper).
pub const FALLBACK_COST: Metric = metric("FallbackCost", Unit::None, &["Profile", "From", "To"]);
pub const FALLBACK_COST_DELTA: Metric =
    metric("FallbackCostDelta", Unit::None, &["Profile", "From", "To"]);
/// A result that would have gone to review read again by the route's next vendor
/// (`SECOND_OPINION`), by how the two readings compared: `asked`, then `agreed` (the job
/// completed) or `disagreed` (it stays in review with both values).
pub const SECOND_OPINIONS: Metric = metric(
    "SecondOpinions",
    Unit::Count,
    &["Profile", "From", "To", "Outcome"],
);
/// What a second opinion cost at the vendor asked (USD, the `second_pass` spend).
pub const SECOND_OPINION_COST: Metric =
    metric("SecondOpinionCost", Unit::None, &["Profile", "Vendor"]);
/// The breaker moved, by the container that moved it (`open`, `closed`): one data point per
/// transition, whichever container's call tipped it.
pub const BREAKER_TRANSITIONS: Metric =
    metric("BreakerTransitions", Unit::Count, &["Vendor", "State"]);
/// A 401/403 from the vendor after one credential refresh, by where it happened: `submit`,
/// `poll` (a status check), `fetch` (the result), `reconcile` (its status check), `key_check`
/// (rotate's scheduled proof of the key).
pub const AUTH_FAILURES: Metric = metric(
    "VendorAuthFailures",
    Unit::Count,
    &["Vendor", "Stage", "Status"],
);
pub const SUBMIT_LATENCY: Metric = metric("SubmitLatency", Unit::Milliseconds, &["Vendor"]);
pub const ESTIMATED_COST: Metric = metric("EstimatedCost", Unit::None, &["Vendor", "Profile"]);
/// Money the vendor was paid (USD), by label (`cost::Spend`: billed, failed_billed,
/// duplicate): emitted by parse when it reads an answer, fails billed work, or finds a second
/// vendor job. Four vendors by five labels: the cardinality is fixed.
pub const VENDOR_COST: Metric = metric("VendorCost", Unit::None, &["Vendor", "Spend"]);
pub const SUBMIT_SKIPPED: Metric = metric("SubmitSkipped", Unit::Count, &["State"]);
/// An earlier attempt's answer was lost; how it was resolved (`look_up`, `resubmit_same_key`,
/// `await_completion`, `risky_resubmit`, `hold`).
pub const AMBIGUOUS_SUBMISSIONS: Metric = metric(
    "AmbiguousSubmissions",
    Unit::Count,
    &["Vendor", "Resolution"],
);
/// A submission made although an earlier one may have arrived: a possible second charge.
pub const DUPLICATE_SUBMISSION_RISK: Metric =
    metric("DuplicateSubmissionRisk", Unit::Count, &["Vendor"]);
/// A billed vendor job the document's job does not follow (`late_answer`: accepted after the
/// worker lost its lease; `second_completion`: a completion for another vendor job).
pub const ORPHAN_VENDOR_JOBS: Metric =
    metric("OrphanVendorJobs", Unit::Count, &["Vendor", "Cause"]);
/// A fenced write refused because the worker's lease had been taken over while it worked (it
/// was frozen, or slow past its lease): the write that would have overwritten its successor.
pub const LEASES_LOST: Metric = metric("LeasesLost", Unit::Count, &["Step"]);
/// Jobs parked for an operator, by reason.
pub const JOBS_HELD: Metric = metric("JobsHeld", Unit::Count, &["Reason"]);
/// Stopped jobs sent back to `Queued`, by reason and by what asked (`redrive`, `reupload`,
/// `operator`).
pub const JOBS_RETRIED: Metric = metric("JobsRetried", Unit::Count, &["Reason", "Trigger"]);
/// Webhook (counted apart from OCR failures: a forged delivery is not a failed document).
pub const WEBHOOKS_VERIFIED: Metric = metric("WebhooksVerified", Unit::Count, &["Status"]);
pub const WEBHOOKS_REJECTED: Metric = metric("WebhooksRejected", Unit::Count, &["Reason"]);
pub const WEBHOOK_DUPLICATES: Metric = metric("WebhookDuplicates", Unit::Count, &[]);
pub const WEBHOOK_DELIVERY_LAG: Metric = metric("WebhookDeliveryLag", Unit::Milliseconds, &[]);

/// Rotation.
pub const ROTATION_STEPS: Metric = metric("RotationSteps", Unit::Count, &["Secret", "Step"]);
pub const ROTATION_FAILURES: Metric = metric("RotationFailures", Unit::Count, &["Secret", "Step"]);

/// Parse.
pub const END_TO_END_LATENCY: Metric =
    metric("EndToEndLatency", Unit::Milliseconds, &["Profile", "Pages"]).by_text();
pub const PARSE_FAILURES: Metric = metric("ParseFailures", Unit::Count, &["Reason"]);
pub const NEEDS_REVIEW: Metric = metric("NeedsReview", Unit::Count, &["Rule"]).by_text();
pub const JOBS_COMPLETED: Metric =
    metric("JobsCompleted", Unit::Count, &["Profile", "Outcome"]).by_text();
pub const FIELD_NULL: Metric = metric("FieldNull", Unit::Count, &["Profile", "Field"]);
/// A result reported a model version never seen before for its vendor and model, beside ones
/// that were: the vendor changed the model (`ledger::model_versions`).
pub const MODEL_VERSION_CHANGED: Metric = metric(
    "VendorModelVersionChanged",
    Unit::Count,
    &["Vendor", "Model"],
);
/// Days the vendor key in use has been current (rotate's scheduled key check; not for
/// Textract, which has no key).
pub const VENDOR_KEY_AGE: Metric = metric("VendorKeyAgeDays", Unit::None, &["Vendor"]);
/// The scheduled key check's calls: `Key` is `current` or `standby`, `Outcome` is `ok`,
/// `refused` (401/403) or `unreachable`.
pub const VENDOR_KEY_CHECKS: Metric = metric(
    "VendorKeyChecks",
    Unit::Count,
    &["Vendor", "Key", "Outcome"],
);
/// A two-key vendor's rotation made the standby key current: the key it replaced is to be
/// regenerated by the secret's owner and put back as the standby (RUNBOOK.md#azure-two-keys).
pub const VENDOR_KEY_REGENERATION_NEEDED: Metric =
    metric("VendorKeyRegenerationNeeded", Unit::Count, &["Vendor"]);
pub const SCHEMA_DRIFT: Metric = metric("SchemaDrift", Unit::Count, &["Vendor", "Field", "Kind"]);

/// Segments (see `segments`: every value comes from a bounded set — sources from an allowlist
/// of at most 20, page buckets, kinds and paths fixed).
pub const DOCUMENTS_BY_SOURCE: Metric = metric(
    "DocumentsBySource",
    Unit::Count,
    &["Source", "MimeType", "Outcome"],
);
pub const DOCUMENTS_COMPLETED: Metric = metric(
    "DocumentsCompleted",
    Unit::Count,
    &["Source", "Kind", "Path"],
)
.by_text();
/// `Model` is the configured model for the profile (`VENDOR_MODELS`): a handful per vendor.
pub const COST_PER_DOCUMENT: Metric =
    metric("CostPerDocument", Unit::None, &["Vendor", "Model", "Pages"]);
pub const VENDOR_TIMEOUTS: Metric = metric("VendorTimeouts", Unit::Count, &["Vendor", "Pages"]);
/// Each typed field's confidence in each result, per vendor, profile and field: its
/// distribution (p10, p50) drifts before accuracy does.
pub const FIELD_CONFIDENCE: Metric = metric(
    "FieldConfidence",
    Unit::None,
    &["Vendor", "Model", "Profile", "Field"],
)
.by_text();

/// The quality benchmark (`quality`): per vendor, profile and field. Profiles and fields come
/// from the normalized schema, so the cardinality is bounded by it, not by the documents.
pub const FIELD_ACCURACY: Metric =
    metric("FieldAccuracy", Unit::None, &["Vendor", "Profile", "Field"]);
pub const HIGH_CONFIDENCE_WRONG: Metric = metric(
    "HighConfidenceWrong",
    Unit::Count,
    &["Vendor", "Profile", "Field"],
);
/// 1 when a field's accuracy fell against the pinned baseline (paired test), else 0.
pub const QUALITY_REGRESSION: Metric =
    metric("QualityRegression", Unit::Count, &["Profile", "Field"]);
/// Hours since the newest benchmark run was scored: `BenchmarkMissingAlarm` watches it.
pub const BENCHMARK_AGE: Metric = metric("BenchmarkAgeHours", Unit::None, &[]);

/// Reconcile.
pub const STUCK_JOBS: Metric = metric("StuckJobs", Unit::Count, &["State"]);
pub const RECOVERED_JOBS: Metric = metric("RecoveredJobs", Unit::Count, &["State"]);
pub const EXPIRED_JOBS: Metric = metric("ExpiredJobs", Unit::Count, &["State"]);

pub const JOBS_FAILED: Metric = metric("JobsFailed", Unit::Count, &["Stage", "Reason"]);

/// Review (`ocrbridge review serve`, emitted through `PutMetricData` by the operator's console,
/// not by a function). A reviewer's time on one document, under the rule that weighed most
/// among those that sent it to review — once per document, so the sum over rules is the time.
pub const REVIEW_SECONDS: Metric =
    metric("ReviewSeconds", Unit::Seconds, &["Profile", "Rule"]).by_text();
/// Each field a reviewer corrected: production's own field-accuracy signal, beside the
/// benchmark's `FieldAccuracy`.
pub const REVIEW_CORRECTIONS: Metric =
    metric("ReviewCorrections", Unit::Count, &["Profile", "Field"]).by_text();

/// Every metric, for the template consistency test.
pub const ALL: &[Metric] = &[
    INPUT_QUALITY,
    PREPROCESSING_ACTIONS,
    DOCUMENTS_ACCEPTED,
    DOCUMENTS_REJECTED,
    DUPLICATES_SUPPRESSED,
    INTAKE_REDELIVERIES,
    INTAKE_IGNORED,
    URL_FETCHES,
    DOCUMENT_BYTES,
    DOCUMENT_PAGES,
    PDF_BY_LAYER,
    VALIDATION_TIME,
    POISON_MESSAGES,
    OUT_OF_TIME_REQUEUES,
    SUBMISSIONS,
    SUBMIT_RETRIES,
    RECONCILES,
    BUDGET_EXHAUSTED,
    ADMISSION_DELAYED,
    BREAKER_REFUSED,
    FALLBACK_SUBMISSIONS,
    FALLBACK_COST,
    FALLBACK_COST_DELTA,
    SECOND_OPINIONS,
    SECOND_OPINION_COST,
    BREAKER_TRANSITIONS,
    AUTH_FAILURES,
    SUBMIT_LATENCY,
    ESTIMATED_COST,
    VENDOR_COST,
    SUBMIT_SKIPPED,
    AMBIGUOUS_SUBMISSIONS,
    DUPLICATE_SUBMISSION_RISK,
    ORPHAN_VENDOR_JOBS,
    LEASES_LOST,
    JOBS_HELD,
    JOBS_RETRIED,
    JOBS_FAILED,
    WEBHOOKS_VERIFIED,
    WEBHOOKS_REJECTED,
    WEBHOOK_DUPLICATES,
    WEBHOOK_DELIVERY_LAG,
    ROTATION_STEPS,
    ROTATION_FAILURES,
    END_TO_END_LATENCY,
    PARSE_FAILURES,
    NEEDS_REVIEW,
    JOBS_COMPLETED,
    FIELD_NULL,
    SCHEMA_DRIFT,
    MODEL_VERSION_CHANGED,
    VENDOR_KEY_AGE,
    VENDOR_KEY_CHECKS,
    VENDOR_KEY_REGENERATION_NEEDED,
    STUCK_JOBS,
    RECOVERED_JOBS,
    EXPIRED_JOBS,
    DOCUMENTS_BY_SOURCE,
    DOCUMENTS_COMPLETED,
    COST_PER_DOCUMENT,
    VENDOR_TIMEOUTS,
    FIELD_CONFIDENCE,
    FIELD_ACCURACY,
    HIGH_CONFIDENCE_WRONG,
    QUALITY_REGRESSION,
    BENCHMARK_AGE,
    REVIEW_SECONDS,
    REVIEW_CORRECTIONS,
];

/// Benchmark traffic's metrics live in this sub-namespace (see [`Metrics::for_traffic`]).
pub const BENCHMARK_NAMESPACE_SUFFIX: &str = "Benchmark";

/// Where EMF lines go: stdout in Lambda, memory in tests.
#[derive(Debug, Clone)]
enum Sink {
    Stdout,
    Memory(Arc<Mutex<Vec<Value>>>),
}

/// An EMF emitter for one function.
#[derive(Debug, Clone)]
pub struct Metrics {
    namespace: String,
    function: &'static str,
    sink: Sink,
}

impl Metrics {
    /// `METRICS_NAMESPACE` (default `ocrbridge`).
    pub fn stdout(function: &'static str) -> Self {
        Metrics {
            namespace: std::env::var("METRICS_NAMESPACE").unwrap_or_else(|_| "ocrbridge".into()),
            function,
            sink: Sink::Stdout,
        }
    }

    /// The emitter for one job's metrics: benchmark runs' go to `<namespace>/Benchmark`, so the
    /// dashboards and alarms over business traffic never count them, and the quality benchmark
    /// can still read its own latency and cost.
    pub fn for_traffic(&self, benchmark_run: Option<&crate::job::BenchmarkRun>) -> Metrics {
        match benchmark_run {
            None => self.clone(),
            Some(_) => Metrics {
                namespace: format!("{}/{BENCHMARK_NAMESPACE_SUFFIX}", self.namespace),
                ..self.clone()
            },
        }
    }

    /// An emitter that keeps its records, for tests.
    pub fn memory(function: &'static str) -> Self {
        Metrics {
            namespace: "ocrbridge".into(),
            function,
            sink: Sink::Memory(Arc::default()),
        }
    }

    /// The same emitter, writing to `namespace` (the stack's `METRICS_NAMESPACE`).
    pub fn in_namespace(self, namespace: impl Into<String>) -> Self {
        Metrics {
            namespace: namespace.into(),
            ..self
        }
    }

    /// The EMF records kept so far, removed from the emitter (an emitter that prints keeps
    /// none): the local stack hands them to CloudWatch as Lambda's log extraction would.
    pub fn take_records(&self) -> Vec<Value> {
        match &self.sink {
            Sink::Stdout => Vec::new(),
            Sink::Memory(records) => {
                std::mem::take(&mut *records.lock().unwrap_or_else(|p| p.into_inner()))
            }
        }
    }

    /// Emits one data point. `dimensions` are values for `metric.dimensions`, in order; extra
    /// `properties` (a job id) ride along for Logs Insights without becoming dimensions.
    pub fn emit(
        &self,
        metric: Metric,
        value: f64,
        dimensions: &[&str],
        properties: &[(&str, &str)],
    ) {
        self.emit_segmented(metric, value, dimensions, &[], properties);
    }

    /// Emits one data point under the metric's own dimensions and, where `segments` gives values
    /// for `metric.segments` (in order), also under those dimensions plus the segments.
    pub fn emit_segmented(
        &self,
        metric: Metric,
        value: f64,
        dimensions: &[&str],
        segments: &[&str],
        properties: &[(&str, &str)],
    ) {
        let mut record = Map::new();
        let mut names = vec!["Function"];
        record.insert("Function".into(), json!(self.function));
        for (name, value) in metric.dimensions.iter().zip(dimensions) {
            names.push(name);
            record.insert((*name).into(), json!(value));
        }
        let mut sets = vec![names.clone()];
        if !metric.segments.is_empty() && segments.len() == metric.segments.len() {
            let mut segmented = names;
            for (name, value) in metric.segments.iter().zip(segments) {
                segmented.push(name);
                record.insert((*name).into(), json!(value));
            }
            sets.push(segmented);
        }
        sets.push(vec!["Function"]);
        for (name, value) in properties {
            record.insert((*name).into(), json!(value));
        }
        record.insert(metric.name.into(), json!(value));
        record.insert(
            "_aws".into(),
            json!({
                "Timestamp": UnixMillis::now().0,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    // The full set (and, for a segmented metric, the full set with its
                    // segments), and a Function-only rollup that alarms can name exactly (an
                    // alarm cannot aggregate over a dimension like Field or Reason).
                    "Dimensions": sets,
                    "Metrics": [{ "Name": metric.name, "Unit": metric.unit.as_str() }],
                }],
            }),
        );
        let record = Value::Object(record);
        match &self.sink {
            Sink::Stdout => println!("{record}"),
            Sink::Memory(records) => records
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(record),
        }
    }

    pub fn count(&self, metric: Metric, dimensions: &[&str], properties: &[(&str, &str)]) {
        self.emit(metric, 1.0, dimensions, properties);
    }

    pub fn count_segmented(
        &self,
        metric: Metric,
        dimensions: &[&str],
        segments: &[&str],
        properties: &[(&str, &str)],
    ) {
        self.emit_segmented(metric, 1.0, dimensions, segments, properties);
    }

    /// Sum of values per metric name and the values of its segmented dimension set (its own
    /// dimensions, then the segments), for tests: only records emitted with segments.
    pub fn recorded_segmented(&self) -> BTreeMap<String, f64> {
        self.tally(|sets| sets.get(1).filter(|_| sets.len() == 3))
    }

    /// Sum of values per metric name and dimension values, for tests.
    pub fn recorded(&self) -> BTreeMap<String, f64> {
        self.tally(|sets| sets.first())
    }

    /// Sum of values per metric name and the values of the dimension set `set` picks from a
    /// record's `Dimensions` (records it picks none from are left out); benchmark traffic's
    /// keys start with `Benchmark/`.
    fn tally(&self, set: impl Fn(&[Value]) -> Option<&Value>) -> BTreeMap<String, f64> {
        let Sink::Memory(records) = &self.sink else {
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        for record in records.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let Some(def) = record["_aws"]["CloudWatchMetrics"][0].as_object() else {
                continue;
            };
            let Some(names) = def["Dimensions"].as_array().and_then(|s| set(s)) else {
                continue;
            };
            let name = def["Metrics"][0]["Name"].as_str().unwrap_or_default();
            let dims: Vec<&str> = names
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d.as_str())
                .filter(|d| *d != "Function")
                .map(|d| record[d].as_str().unwrap_or_default())
                .collect();
            let key = if dims.is_empty() {
                name.to_owned()
            } else {
                format!("{name}[{}]", dims.join(","))
            };
            let benchmark = def["Namespace"]
                .as_str()
                .is_some_and(|ns| ns.ends_with(&format!("/{BENCHMARK_NAMESPACE_SUFFIX}")));
            let key = if benchmark {
                format!("{BENCHMARK_NAMESPACE_SUFFIX}/{key}")
            } else {
                key
            };
            *out.entry(key).or_default() += record[name].as_f64().unwrap_or(0.0);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emits_emf_with_dimensions_and_properties() {
        let m = Metrics::memory("intake");
        m.count(
            DOCUMENTS_REJECTED,
            &["pdf_encrypted", "application/pdf"],
            &[("job_id", "doc-1")],
        );
        m.count(
            DOCUMENTS_REJECTED,
            &["pdf_encrypted", "application/pdf"],
            &[],
        );
        let Sink::Memory(records) = &m.sink else {
            unreachable!()
        };
        let first = records.lock().unwrap()[0].clone();
        assert_eq!(
            first["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function", "Reason", "MimeType"], ["Function"]])
        );
        assert_eq!(
            first["_aws"]["CloudWatchMetrics"][0]["Metrics"],
            json!([{"Name": "DocumentsRejected", "Unit": "Count"}])
        );
        assert_eq!(first["Reason"], "pdf_encrypted");
        assert_eq!(first["job_id"], "doc-1");
        assert_eq!(first["DocumentsRejected"], 1.0);
        assert_eq!(
            m.recorded()["DocumentsRejected[pdf_encrypted,application/pdf]"],
            2.0
        );
    }

    #[test]
    fn a_segmented_metric_keeps_its_own_dimension_set_and_adds_one() {
        let m = Metrics::memory("parse");
        m.count_segmented(
            JOBS_COMPLETED,
            &["invoice", "Completed"],
            &["de", "none"],
            &[],
        );
        m.count(JOBS_COMPLETED, &["invoice", "Completed"], &[]);
        let Sink::Memory(records) = &m.sink else {
            unreachable!()
        };
        let first = records.lock().unwrap()[0].clone();
        assert_eq!(
            first["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([
                ["Function", "Profile", "Outcome"],
                ["Function", "Profile", "Outcome", "Language", "Handwriting"],
                ["Function"]
            ])
        );
        assert_eq!(first["Language"], "de");
        assert_eq!(m.recorded()["JobsCompleted[invoice,Completed]"], 2.0);
        assert_eq!(
            m.recorded_segmented(),
            [("JobsCompleted[invoice,Completed,de,none]".to_owned(), 1.0)].into()
        );
    }

    #[test]
    fn metric_names_are_unique() {
        let mut names: Vec<&str> = ALL.iter().map(|m| m.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }
}
