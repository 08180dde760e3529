//! `ocrbridge review list|show|approve|correct`: working the `NeedsReview` queue. A decision
//! moves the job to `Completed` in one guarded write that also records it on the job: who, when,
//! and for a correction each field's corrected value **beside** the vendor's, which stays in the
//! result as the vendor sent it (the quality report counts corrections per field).

use ocrbridge::blob::ObjectRef;
use ocrbridge::job::{Job, JobState, Reason};
use ocrbridge::ledger::{Change, TransitionError};
use ocrbridge::time::UnixMillis;
use serde_json::{json, Map, Value};

use crate::output::{age, emit, Table};
use crate::{CliError, Target};

/// The job's result summary: the parse step's short JSON of its key fields, with the review
/// rules that fired (`review`) and the field each flagged (`flags`); `null` before parse.
pub fn summary(job: &Job) -> Value {
    job.result_summary
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null)
}

/// The fields of a job's result summary as `name=value` text.
fn fields(job: &Job) -> String {
    summary(job)
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "review" | "flags"))
                .filter_map(|(k, v)| {
                    let value = v.get("value").unwrap_or(v);
                    (!value.is_null()).then(|| {
                        format!(
                            "{k}={}",
                            value.as_str().map_or(value.to_string(), str::to_owned)
                        )
                    })
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

pub async fn list(target: &Target, limit: usize, json_mode: bool) -> Result<(), CliError> {
    let jobs = target
        .ledger()
        .recent_in_state(JobState::NeedsReview, limit as i32)
        .await?;
    let now = UnixMillis::now().0;
    let json = Value::Array(
        jobs.iter()
            .map(|j| {
                json!({"job_id": j.id.as_str(), "profile": j.profile.as_str(),
                       "why": j.reason.as_ref().map(|r| &r.message), "fields": fields(j)})
            })
            .collect(),
    );
    emit(json_mode, &json, || {
        let mut t = Table::new(&["job", "profile", "waiting", "why", "fields"]);
        for j in &jobs {
            t.row(vec![
                j.id.to_string(),
                j.profile.to_string(),
                age(now.saturating_sub(j.state_since.0)),
                j.reason
                    .as_ref()
                    .map_or(String::new(), |r| r.message.clone()),
                fields(j),
            ]);
        }
        if t.is_empty() {
            "nothing to review".into()
        } else {
            t.render()
        }
    });
    Ok(())
}

/// An object's bytes: a stored result, or the upload a job was made from (its own version,
/// not whatever was written over the key since).
pub async fn object_bytes(target: &Target, object: &ObjectRef) -> Result<Vec<u8>, CliError> {
    let out = target
        .clients
        .s3
        .get_object()
        .bucket(&object.bucket)
        .key(&object.key)
        .set_version_id(object.version_id.clone())
        .send()
        .await
        .map_err(|e| CliError::aws(aws_sdk_s3::error::DisplayErrorContext(e)))?;
    Ok(out
        .body
        .collect()
        .await
        .map_err(|e| CliError::aws(e.to_string()))?
        .into_bytes()
        .to_vec())
}

/// The job's stored normalized result, or `null` before it has one.
pub async fn result_json(target: &Target, job: &Job) -> Result<Value, CliError> {
    match &job.result_key {
        Some(key) => {
            let result = ObjectRef {
                bucket: target.config.results_bucket.clone(),
                key: key.clone(),
                version_id: None,
            };
            let bytes = object_bytes(target, &result).await?;
            Ok(serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
        }
        None => Ok(Value::Null),
    }
}

pub async fn show(target: &Target, id: &str, json_mode: bool) -> Result<(), CliError> {
    let job = super::job(target, id).await?;
    let result = result_json(target, &job).await?;
    let json = json!({"job_id": job.id.as_str(), "state": job.state.as_str(),
        "why": job.reason.as_ref().map(|r| &r.message), "fields": result["fields"], "review": job.review});
    emit(json_mode, &json, || {
        let mut t = Table::new(&["field", "value", "confidence", "page"]);
        if let Some(map) = result["fields"].as_object() {
            for (name, f) in map.iter().filter(|(k, _)| *k != "profile") {
                t.row(vec![
                    name.clone(),
                    f["value"]
                        .as_str()
                        .map_or(f["value"].to_string(), str::to_owned),
                    f["confidence"]
                        .as_f64()
                        .map_or("-".into(), |c| format!("{c:.2}")),
                    f["page"].as_u64().map_or("-".into(), |p| p.to_string()),
                ]);
            }
        }
        format!(
            "job {} ({}): {}\n\n{}",
            job.id,
            job.state,
            job.reason.as_ref().map_or("", |r| r.message.as_str()),
            t.render()
        )
    });
    Ok(())
}

/// What a reviewer decided about a job in review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The vendor's fields are right: the job completes as it is.
    Approve,
    /// Some fields were wrong: `(field, corrected value)`; the job completes with them.
    Correct(Vec<(String, String)>),
    /// The document cannot be used (not a receipt, unreadable, a duplicate the hash missed): the
    /// job fails with the reviewer's reason, `rejected_in_review`.
    Reject { reason: String },
}

impl Decision {
    /// `Correct` with no field changed is an approval.
    pub fn from_corrections(corrections: Vec<(String, String)>) -> Self {
        if corrections.is_empty() {
            Decision::Approve
        } else {
            Decision::Correct(corrections)
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Decision::Approve => "approved",
            Decision::Correct(_) => "corrected",
            Decision::Reject { .. } => "rejected",
        }
    }
}

/// Who decided and how long it took: recorded on the job with the decision.
#[derive(Debug, Clone)]
pub struct Reviewer<'a> {
    pub name: &'a str,
    pub note: Option<&'a str>,
    /// Time spent on the document (the console measures it; the terminal cannot).
    pub seconds: Option<f64>,
}

/// Records `decision` on `job` (which must be in review) in one guarded write: `Completed` for
/// an approval or a correction, `Failed` (`rejected_in_review`) for a rejection. Corrected values
/// sit beside the vendor's, which stay in the result as the vendor sent them. Returns the job
/// as written and the review record.
pub async fn record(
    target: &Target,
    job: &Job,
    decision: &Decision,
    reviewer: &Reviewer<'_>,
) -> Result<(Job, Value), CliError> {
    if job.state != JobState::NeedsReview {
        return Err(CliError::Refused(format!(
            "job {} is {}, not NeedsReview: only a job in review can be approved, corrected or rejected",
            job.id, job.state
        )));
    }
    let summary = summary(job);
    let mut fixed = Map::new();
    if let Decision::Correct(corrections) = decision {
        for (field, value) in corrections {
            let vendor = summary
                .get(field)
                .map(|f| f.get("value").cloned().unwrap_or_else(|| f.clone()))
                .unwrap_or(Value::Null);
            fixed.insert(field.clone(), json!({"vendor": vendor, "corrected": value}));
        }
    }
    let mut review = json!({
        "decision": decision.name(),
        "by": reviewer.name,
        "at_ms": UnixMillis::now().0,
        "note": reviewer.note,
        "corrections": fixed,
    });
    if let Some(seconds) = reviewer.seconds {
        review["seconds"] = json!((seconds * 10.0).round() / 10.0);
    }
    let (to, mut change) = match decision {
        Decision::Reject { reason } => {
            if reason.trim().is_empty() {
                return Err(CliError::Usage(
                    "a rejection needs a reason: say why the document cannot be used".into(),
                ));
            }
            review["reason"] = json!(reason);
            (
                JobState::Failed,
                Change::none().with_reason(Reason::new(
                    "rejected_in_review",
                    format!("rejected by {}: {reason}", reviewer.name),
                )),
            )
        }
        _ => (JobState::Completed, Change::none()),
    };
    change = change.with_review(review.to_string());
    let written = target
        .ledger()
        .transition(job, to, change, UnixMillis::now())
        .await
        .map_err(|e| match e {
            TransitionError::Stale { current, .. } | TransitionError::Leased { current } => {
                CliError::Refused(format!(
                    "job {} moved to {} meanwhile; look again",
                    current.id, current.state
                ))
            }
            other => CliError::aws(other),
        })?;
    Ok((written, review))
}

/// `review approve|correct|reject`: records the decision on a job in review.
pub async fn decide(
    target: &Target,
    id: &str,
    decision: Decision,
    reviewer: &str,
    note: Option<&str>,
    json_mode: bool,
) -> Result<(), CliError> {
    let job = super::job(target, id).await?;
    let who = Reviewer {
        name: reviewer,
        note,
        seconds: None,
    };
    let (completed, review) = record(target, &job, &decision, &who).await?;
    let item = crate::console::queue::Item::new(job, UnixMillis::now().0);
    if let Err(e) = crate::console::publish(target, &item, &review).await {
        eprintln!(
            "the decision on {} was recorded, but its review metrics were not: {e}",
            completed.id
        );
    }
    emit(
        json_mode,
        &json!({"job_id": completed.id.as_str(), "state": completed.state.as_str(), "review": review}),
        || {
            format!(
                "job {} is {} ({})",
                completed.id,
                completed.state,
                review["decision"].as_str().unwrap_or("")
            )
        },
    );
    Ok(())
}
