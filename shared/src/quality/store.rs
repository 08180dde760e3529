//! Where benchmark runs are kept: the full record and its report in the results bucket
//! (`benchmarks/<run>/run.json`, `benchmarks/<run>/report.html`), and a row per run in the
//! benchmark table — `running` with the documents it is waiting for, then `scored` with its
//! summary — plus one row per pack and vendor naming the pinned baseline.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};

use super::score::RunRecord;

/// The S3 prefix runs are stored under, in the results bucket.
pub const RUNS_PREFIX: &str = "benchmarks";

/// The largest run record read back (a pack of thousands of documents stays far below).
const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("S3 {op} s3://{bucket}/{key} failed: {message}; check the results bucket and the function's role")]
    S3 {
        op: &'static str,
        bucket: String,
        key: String,
        message: String,
    },
    #[error("DynamoDB {op} on {table} failed: {message}; check BENCHMARK_RUNS_TABLE and the function's role")]
    Dynamo {
        op: &'static str,
        table: String,
        message: String,
    },
    #[error("the stored record at {0} is not a benchmark run: {1}")]
    Malformed(String, String),
    #[error("no benchmark run {0} is stored")]
    NoSuchRun(String),
}

/// A run that was started and is waiting for its documents to settle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Started {
    pub run_id: String,
    pub pack: String,
    /// Where the pack is, in the results bucket (the truth is read from there when scoring).
    pub pack_prefix: String,
    pub vendor: String,
    pub started_at_ms: u64,
    /// Pack key → the job id its upload becomes.
    pub documents: BTreeMap<String, String>,
}

/// A run's row in the benchmark table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    pub run_id: String,
    /// `running`, `scored`, or `baseline` (the pin row of a pack and vendor).
    pub state: String,
    pub pack: Option<String>,
    pub vendor: Option<String>,
    pub documents: Option<u64>,
    pub scored_at_ms: Option<u64>,
    /// `profile.field` of every regression, comma-separated.
    pub regressions: Option<String>,
    pub baseline_run: Option<String>,
    pub report: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RunStore {
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub results_bucket: String,
    pub table: String,
}

type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// The row that pins the baseline of a pack and vendor.
pub fn baseline_key(pack: &str, vendor: &str) -> String {
    format!("baseline#{pack}#{vendor}")
}

pub fn record_key(run_id: &str) -> String {
    format!("{RUNS_PREFIX}/{run_id}/run.json")
}

pub fn report_key(run_id: &str) -> String {
    format!("{RUNS_PREFIX}/{run_id}/report.html")
}

impl RunStore {
    fn dynamo_error(&self, op: &'static str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Dynamo {
            op,
            table: self.table.clone(),
            message: e.to_string(),
        }
    }

    async fn put_object(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.s3
            .put_object()
            .bucket(&self.results_bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| StoreError::S3 {
                op: "PutObject",
                bucket: self.results_bucket.clone(),
                key: key.to_owned(),
                message: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
            })?;
        Ok(())
    }

    /// Records a started run (conditional: a run id is started once).
    pub async fn put_started(&self, started: &Started) -> Result<(), StoreError> {
        let json = serde_json::to_string(started).map_err(|e| self.dynamo_error("PutItem", e))?;
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .item("run_id", s(&started.run_id))
            .item("state", s("running"))
            .item("pack", s(&started.pack))
            .item("vendor", s(&started.vendor))
            .item("started", s(json))
            .condition_expression("attribute_not_exists(run_id)")
            .send()
            .await
            .map_err(|e| {
                self.dynamo_error("PutItem", aws_sdk_dynamodb::error::DisplayErrorContext(e))
            })?;
        Ok(())
    }

    /// Every row of the table (runs and baseline pins), newest run first.
    pub async fn rows(&self) -> Result<Vec<RunRow>, StoreError> {
        let text = |item: &Item, name: &str| match item.get(name) {
            Some(AttributeValue::S(v)) if !v.is_empty() => Some(v.clone()),
            _ => None,
        };
        let number = |item: &Item, name: &str| match item.get(name) {
            Some(AttributeValue::N(v)) => v.parse().ok(),
            _ => None,
        };
        let mut rows: Vec<RunRow> = self
            .scan(None)
            .await?
            .iter()
            .map(|item| RunRow {
                run_id: text(item, "run_id").unwrap_or_default(),
                state: text(item, "state").unwrap_or_default(),
                pack: text(item, "pack"),
                vendor: text(item, "vendor"),
                documents: number(item, "documents"),
                scored_at_ms: number(item, "scored_at_ms"),
                regressions: text(item, "regressions"),
                baseline_run: text(item, "baseline_run"),
                report: text(item, "report"),
            })
            .collect();
        rows.sort_by(|a, b| b.run_id.cmp(&a.run_id));
        Ok(rows)
    }

    /// Runs still waiting to be scored.
    pub async fn running(&self) -> Result<Vec<Started>, StoreError> {
        let mut out = Vec::new();
        for item in self.scan(Some("running")).await? {
            if let Some(AttributeValue::S(json)) = item.get("started") {
                let started: Started = serde_json::from_str(json)
                    .map_err(|e| StoreError::Malformed(self.table.clone(), e.to_string()))?;
                out.push(started);
            }
        }
        Ok(out)
    }

    /// Every item of the table, page by page; only those in `state` when one is given.
    async fn scan(&self, state: Option<&str>) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut request = self
                .dynamodb
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start.take());
            if let Some(state) = state {
                request = request
                    .filter_expression("#s = :state")
                    .expression_attribute_names("#s", "state")
                    .expression_attribute_values(":state", s(state));
            }
            let page = request.send().await.map_err(|e| {
                self.dynamo_error("Scan", aws_sdk_dynamodb::error::DisplayErrorContext(e))
            })?;
            items.extend(page.items().iter().cloned());
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(items)
    }

    /// Stores a scored run: its record and report in S3, its summary row in the table.
    /// Returns the report's key.
    pub async fn put_scored(
        &self,
        run: &RunRecord,
        report_html: String,
    ) -> Result<String, StoreError> {
        let record = serde_json::to_vec_pretty(run)
            .map_err(|e| StoreError::Malformed(run.run_id.clone(), e.to_string()))?;
        self.put_object(&record_key(&run.run_id), record, "application/json")
            .await?;
        let report = report_key(&run.run_id);
        self.put_object(
            &report,
            report_html.into_bytes(),
            "text/html; charset=utf-8",
        )
        .await?;
        let accuracy: BTreeMap<String, f64> = run
            .scores
            .iter()
            .flat_map(|(p, stats)| {
                stats
                    .fields
                    .iter()
                    .map(move |(f, x)| (format!("{p}.{f}"), x.accuracy()))
            })
            .collect();
        let regressions = run.regressions();
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .item("run_id", s(&run.run_id))
            .item("state", s("scored"))
            .item("pack", s(&run.pack))
            .item("vendor", s(&run.vendor))
            .item(
                "documents",
                AttributeValue::N(run.documents.len().to_string()),
            )
            .item(
                "scored_at_ms",
                AttributeValue::N(run.scored_at_ms.to_string()),
            )
            .item(
                "accuracy",
                s(serde_json::to_string(&accuracy).unwrap_or_default()),
            )
            .item("regressions", s(regressions.join(",")))
            .item(
                "baseline_run",
                s(run
                    .comparison
                    .as_ref()
                    .map_or("", |c| c.baseline_run.as_str())),
            )
            .item(
                "report",
                s(format!("s3://{}/{report}", self.results_bucket)),
            )
            .send()
            .await
            .map_err(|e| {
                self.dynamo_error("PutItem", aws_sdk_dynamodb::error::DisplayErrorContext(e))
            })?;
        Ok(report)
    }

    /// A stored run's full record.
    pub async fn get_run(&self, run_id: &str) -> Result<RunRecord, StoreError> {
        let key = record_key(run_id);
        let s3_error = |message: String| StoreError::S3 {
            op: "GetObject",
            bucket: self.results_bucket.clone(),
            key: key.clone(),
            message,
        };
        let out = match self
            .s3
            .get_object()
            .bucket(&self.results_bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Err(StoreError::NoSuchRun(run_id.to_owned()))
            }
            Err(e) => {
                return Err(s3_error(
                    aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
                ))
            }
        };
        if out.content_length().unwrap_or(0) as usize > MAX_RECORD_BYTES {
            return Err(StoreError::Malformed(key, "larger than 64 MiB".into()));
        }
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| s3_error(e.to_string()))?
            .into_bytes();
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Malformed(key, e.to_string()))
    }

    /// Pins `run_id` as the baseline of its pack and vendor. The run must be stored.
    pub async fn pin_baseline(&self, run_id: &str) -> Result<RunRecord, StoreError> {
        let run = self.get_run(run_id).await?;
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .item("run_id", s(baseline_key(&run.pack, &run.vendor)))
            .item("state", s("baseline"))
            .item("baseline_run", s(run_id))
            .send()
            .await
            .map_err(|e| {
                self.dynamo_error("PutItem", aws_sdk_dynamodb::error::DisplayErrorContext(e))
            })?;
        Ok(run)
    }

    /// The pinned baseline's record for a pack and vendor, if one is pinned.
    pub async fn baseline(
        &self,
        pack: &str,
        vendor: &str,
    ) -> Result<Option<RunRecord>, StoreError> {
        let out = self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key("run_id", s(baseline_key(pack, vendor)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                self.dynamo_error("GetItem", aws_sdk_dynamodb::error::DisplayErrorContext(e))
            })?;
        match out.item().and_then(|i| i.get("baseline_run")) {
            Some(AttributeValue::S(run_id)) => Ok(Some(self.get_run(run_id).await?)),
            _ => Ok(None),
        }
    }

    /// Stores a run record made elsewhere (a local run's baseline brought to a new stack).
    pub async fn import(&self, run: &RunRecord) -> Result<(), StoreError> {
        let record = serde_json::to_vec_pretty(run)
            .map_err(|e| StoreError::Malformed(run.run_id.clone(), e.to_string()))?;
        self.put_object(&record_key(&run.run_id), record, "application/json")
            .await
    }
}
