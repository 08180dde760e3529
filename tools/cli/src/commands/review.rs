//! `ocrbridge review list|show|approve|correct`: working the `NeedsReview` queue. A decision
//! moves the job to `Completed` in one guarded write that also records it on the job: who, when,
//! and for a correction each field's corrected value **beside** the vendor's, which stays in the
//! result as the vendor sent it (the quality report counts corrections per field).

use ocrbridge::job::{Job, JobState};
use ocrbridge::ledger::{Change, TransitionError};
use ocrbridge::time::UnixMillis;
use serde_json::{json, Map, Value};

use crate::output::{age, emit, Table};
use crate::{CliError, Target};

/// The fields of a job's result summary as `name=value` text.
fn fields(job: &Job) -> String {
    job.result_summary
        .as_deref()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|v| v.as_object().cloned())
        .map(|o| {
            o.iter()
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

pub async fn show(target: &Target, id: &str, json_mode: bool) -> Result<(), CliError> {
    let job = super::job(target, id).await?;
    let result = match &job.result_key {
        Some(key) => {
            let out = target
                .clients
                .s3
                .get_object()
                .bucket(&target.config.results_bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| CliError::aws(aws_sdk_s3::error::DisplayErrorContext(e)))?;
            let bytes = out
                .body
                .collect()
                .await
                .map_err(|e| CliError::aws(e.to_string()))?
                .into_bytes();
            serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null)
        }
        None => Value::Null,
    };
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

/// Approves (no `corrections`) or corrects a job in review, completing it.
pub async fn decide(
    target: &Target,
    id: &str,
    reviewer: &str,
    note: Option<&str>,
    corrections: &[(String, String)],
    json_mode: bool,
) -> Result<(), CliError> {
    let job = super::job(target, id).await?;
    if job.state != JobState::NeedsReview {
        return Err(CliError::Refused(format!(
            "job {} is {}, not NeedsReview: only a job in review can be approved or corrected",
            job.id, job.state
        )));
    }
    let summary: Value = job
        .result_summary
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    let mut fixed = Map::new();
    for (field, value) in corrections {
        let vendor = summary
            .get(field)
            .map(|f| f.get("value").cloned().unwrap_or_else(|| f.clone()))
            .unwrap_or(Value::Null);
        fixed.insert(field.clone(), json!({"vendor": vendor, "corrected": value}));
    }
    let review = json!({
        "decision": if corrections.is_empty() { "approved" } else { "corrected" },
        "by": reviewer,
        "at_ms": UnixMillis::now().0,
        "note": note,
        "corrections": fixed,
    });
    let completed = target
        .ledger()
        .transition(
            &job,
            JobState::Completed,
            Change::none().with_review(review.to_string()),
            UnixMillis::now(),
        )
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
    emit(
        json_mode,
        &json!({"job_id": completed.id.as_str(), "state": completed.state.as_str(), "review": review}),
        || {
            format!(
                "job {} is Completed ({})",
                completed.id,
                review["decision"].as_str().unwrap_or("")
            )
        },
    );
    Ok(())
}
