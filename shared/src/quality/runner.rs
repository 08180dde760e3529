//! A benchmark run against a stack: upload the pack as benchmark traffic, wait for the pipeline
//! to settle every document, score, compare with the pinned baseline, store, and emit the quality
//! metrics. The scheduled `benchmark` function and `make bench-quality` both run this.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;

use super::compare::{compare, RegressionPolicy};
use super::pack::{is_truth_key, parse_truth, truth_key, PackDocument};
use super::report;
use super::score::{aggregate, aggregate_by_language, profile_of_key, score_document, RunRecord};
use super::store::{RunStore, Started, StoreError};
use crate::blob::BENCHMARK_RUN_METADATA;
use crate::document::Document;
use crate::job::{BenchmarkRun, ContentHash, DocumentKey, JobId, JobState, Profile};
use crate::ledger::Ledger;
use crate::metrics::{self, Metrics};
use crate::time::UnixMillis;

/// The largest document or truth file a pack may hold.
const MAX_PACK_OBJECT_BYTES: usize = 50 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("S3 {op} s3://{bucket}/{key}: {message}")]
    S3 {
        op: &'static str,
        bucket: String,
        key: String,
        message: String,
    },
    #[error("the pack at s3://{bucket}/{prefix} has no documents with a <name>.truth.json beside them; upload one (see bench/README.md)")]
    EmptyPack { bucket: String, prefix: String },
    #[error("pack file {0}: {1}")]
    Pack(String, String),
    #[error("reading job {0}: {1}")]
    Ledger(String, String),
}

/// What a run needs of the stack.
#[derive(Debug, Clone)]
pub struct Runner {
    pub store: RunStore,
    pub ledger: Ledger,
    pub s3: aws_sdk_s3::Client,
    pub documents_bucket: String,
    pub vendor: String,
    pub metrics: Metrics,
    pub policy: RegressionPolicy,
}

/// Where a pack document is uploaded for a run: under its profile prefix, then
/// `benchmark/<run>/`, so the profile is the same and the source segment says what it is.
pub fn upload_key(pack_key: &str, run: &BenchmarkRun) -> String {
    match pack_key.split_once('/') {
        Some((prefix, rest)) => format!("{prefix}/benchmark/{run}/{rest}"),
        None => format!("benchmark/{run}/{pack_key}"),
    }
}

/// The job a pack document becomes in a run (intake derives the same id from the upload).
pub fn job_id_for(pack_key: &str, content: &[u8], run: &BenchmarkRun) -> Option<JobId> {
    let profile = Profile::new(&profile_of_key(pack_key)).ok()?;
    Some(DocumentKey::for_benchmark(&ContentHash::of(content), &profile, run).job_id())
}

impl Runner {
    fn s3_error(op: &'static str, bucket: &str, key: &str, e: impl std::fmt::Display) -> RunError {
        RunError::S3 {
            op,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            message: e.to_string(),
        }
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, RunError> {
        let out = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                Self::s3_error(
                    "GetObject",
                    bucket,
                    key,
                    aws_sdk_s3::error::DisplayErrorContext(e),
                )
            })?;
        if out.content_length().unwrap_or(0) as usize > MAX_PACK_OBJECT_BYTES {
            return Err(RunError::Pack(key.to_owned(), "larger than 50 MiB".into()));
        }
        Ok(out
            .body
            .collect()
            .await
            .map_err(|e| Self::s3_error("GetObject", bucket, key, e))?
            .into_bytes()
            .to_vec())
    }

    /// Keys under `prefix` in `bucket`, every page.
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, RunError> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    Self::s3_error(
                        "ListObjectsV2",
                        bucket,
                        prefix,
                        aws_sdk_s3::error::DisplayErrorContext(e),
                    )
                })?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            match page.next_continuation_token() {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
        }
        Ok(keys)
    }

    /// The pack's truth files under `prefix` (in the results bucket), by pack key.
    pub async fn read_truth(
        &self,
        prefix: &str,
    ) -> Result<BTreeMap<String, PackDocument>, RunError> {
        let bucket = self.store.results_bucket.clone();
        let keys = self.list(&bucket, prefix).await?;
        let mut out = BTreeMap::new();
        for key in keys.iter().filter(|k| !is_truth_key(k)) {
            let Some(pack_key) = key.strip_prefix(prefix) else {
                continue;
            };
            let truth_object = format!("{prefix}{}", truth_key(pack_key));
            if !pack_key.contains('/') || !keys.contains(&truth_object) {
                continue;
            }
            let bytes = self.get(&bucket, &truth_object).await?;
            let truth = parse_truth(&truth_object, &bytes)
                .map_err(|e| RunError::Pack(truth_object.clone(), e.to_string()))?;
            out.insert(
                pack_key.to_owned(),
                PackDocument {
                    key: pack_key.to_owned(),
                    truth,
                },
            );
        }
        if out.is_empty() {
            return Err(RunError::EmptyPack {
                bucket,
                prefix: prefix.to_owned(),
            });
        }
        Ok(out)
    }

    /// Starts a run of the pack stored under `prefix` (in the results bucket): every document is
    /// uploaded to the documents bucket as benchmark traffic, and the run is recorded as running.
    pub async fn start(
        &self,
        pack: &str,
        prefix: &str,
        run: &BenchmarkRun,
    ) -> Result<Started, RunError> {
        let truth = self.read_truth(prefix).await?;
        let mut documents = BTreeMap::new();
        for pack_key in truth.keys() {
            let source = format!("{prefix}{pack_key}");
            let bytes = self.get(&self.store.results_bucket, &source).await?;
            let Some(job_id) = job_id_for(pack_key, &bytes, run) else {
                return Err(RunError::Pack(
                    source,
                    "its prefix is not a profile name".into(),
                ));
            };
            let target = upload_key(pack_key, run);
            self.s3
                .put_object()
                .bucket(&self.documents_bucket)
                .key(&target)
                .metadata(BENCHMARK_RUN_METADATA, run.as_str())
                .body(ByteStream::from(bytes))
                .send()
                .await
                .map_err(|e| {
                    Self::s3_error(
                        "PutObject",
                        &self.documents_bucket,
                        &target,
                        aws_sdk_s3::error::DisplayErrorContext(e),
                    )
                })?;
            documents.insert(pack_key.clone(), job_id.to_string());
        }
        let started = Started {
            run_id: run.to_string(),
            pack: pack.to_owned(),
            pack_prefix: prefix.to_owned(),
            vendor: self.vendor.clone(),
            started_at_ms: UnixMillis::now().0,
            documents,
        };
        self.store.put_started(&started).await?;
        tracing::info!(run = %run, documents = started.documents.len(), "benchmark run started");
        Ok(started)
    }

    /// Reads every document's job and result; returns the run record (not yet compared) and how
    /// many documents have settled.
    pub async fn collect(&self, started: &Started) -> Result<(RunRecord, usize), RunError> {
        let truth = self.read_truth(&started.pack_prefix).await?;
        let mut documents = Vec::new();
        let mut models = BTreeMap::new();
        let mut settled = 0;
        for (pack_key, job_id) in &started.documents {
            let Some(pack_document) = truth.get(pack_key) else {
                continue;
            };
            let job = match JobId::parse(job_id) {
                Ok(id) => self
                    .ledger
                    .get_job(&id)
                    .await
                    .map_err(|e| RunError::Ledger(job_id.clone(), e.to_string()))?,
                Err(_) => None,
            };
            if job
                .as_ref()
                .is_some_and(|j| j.state.is_terminal() || j.state == JobState::NeedsReview)
            {
                settled += 1;
            }
            let result = match job.as_ref().and_then(|j| j.result_key.as_deref()) {
                Some(key) => {
                    let bytes = self.get(&self.store.results_bucket, key).await?;
                    serde_json::from_slice::<Document>(&bytes).ok()
                }
                None => None,
            };
            // Runs are read by model version: a vendor's silent update shows as a new one.
            if let Some(vendor) = result.as_ref().map(|d| &d.vendor) {
                if let Some(model) = &vendor.model {
                    let named = match &vendor.model_version {
                        Some(version) => format!("{model} {version}"),
                        None => model.clone(),
                    };
                    models.insert(profile_of_key(pack_key), named);
                }
            }
            documents.push(score_document(
                pack_document,
                job.as_ref(),
                result.as_ref(),
                &self.store.results_bucket,
            ));
        }
        let record = RunRecord {
            run_id: started.run_id.clone(),
            pack: started.pack.clone(),
            vendor: started.vendor.clone(),
            models,
            started_at_ms: started.started_at_ms,
            scored_at_ms: UnixMillis::now().0,
            scores: aggregate(&documents),
            by_language: aggregate_by_language(&documents),
            documents,
            comparison: None,
        };
        Ok((record, settled))
    }

    /// Reports how long ago the newest run was scored (`BenchmarkAgeHours`), and returns it.
    /// With no scored run at all nothing is reported: the alarm treats the missing data as
    /// breaching, so a pack never synced is as loud as a benchmark that stopped.
    pub async fn report_age(&self, now: UnixMillis) -> Result<Option<f64>, RunError> {
        let newest = self
            .store
            .rows()
            .await?
            .into_iter()
            .filter(|r| r.state == "scored")
            .filter_map(|r| r.scored_at_ms)
            .max();
        let Some(at) = newest else {
            return Ok(None);
        };
        let hours = now.0.saturating_sub(at) as f64 / 3_600_000.0;
        self.metrics.emit(metrics::BENCHMARK_AGE, hours, &[], &[]);
        Ok(Some(hours))
    }

    /// Scores a started run if every document has settled, or if `max_wait` has passed (the
    /// unsettled ones score as missing). Compares with the pinned baseline, stores the run and
    /// its report, and emits the quality metrics. `None`: still waiting.
    pub async fn score(
        &self,
        started: &Started,
        max_wait: Duration,
    ) -> Result<Option<(RunRecord, String)>, RunError> {
        let (mut record, settled) = self.collect(started).await?;
        let waited = UnixMillis::now().since(UnixMillis(started.started_at_ms));
        if settled < started.documents.len() && waited < max_wait {
            return Ok(None);
        }
        if let Some(baseline) = self.store.baseline(&record.pack, &record.vendor).await? {
            record.comparison = Some(compare(
                &baseline.run_id,
                &baseline.documents,
                &record.documents,
                self.policy,
            ));
        }
        let report_key = self
            .store
            .put_scored(&record, report::html(&record))
            .await?;
        self.emit(&record);
        Ok(Some((record, report_key)))
    }

    /// Accuracy and confident mistakes per vendor, profile and field; a `QualityRegression` data
    /// point (1 or 0) per compared field, which the template's alarm watches.
    fn emit(&self, record: &RunRecord) {
        let run = [("benchmark_run", record.run_id.as_str())];
        for (profile, stats) in &record.scores {
            for (field, f) in &stats.fields {
                let dims = [record.vendor.as_str(), profile.as_str(), field.as_str()];
                self.metrics
                    .emit(metrics::FIELD_ACCURACY, f.accuracy(), &dims, &run);
                self.metrics.emit(
                    metrics::HIGH_CONFIDENCE_WRONG,
                    f.high_confidence_wrong as f64,
                    &dims,
                    &run,
                );
            }
        }
        for c in record.comparison.iter().flat_map(|c| c.fields.iter()) {
            self.metrics.emit(
                metrics::QUALITY_REGRESSION,
                if c.regressed { 1.0 } else { 0.0 },
                &[c.profile.as_str(), c.field.as_str()],
                &run,
            );
            if c.regressed {
                tracing::warn!(
                    profile = %c.profile,
                    field = %c.field,
                    flipped = c.right_to_wrong.len(),
                    p_value = c.p_value,
                    "quality regression against the baseline"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_keep_their_profile_prefix_and_name_the_run() {
        let run = BenchmarkRun::parse("bq-1").unwrap();
        assert_eq!(
            upload_key("receipts/000.jpg", &run),
            "receipts/benchmark/bq-1/000.jpg"
        );
        let a = job_id_for("receipts/000.jpg", b"x", &run).unwrap();
        let b = job_id_for(
            "receipts/000.jpg",
            b"x",
            &BenchmarkRun::parse("bq-2").unwrap(),
        )
        .unwrap();
        assert_ne!(a, b, "every run makes its own jobs");
    }
}
