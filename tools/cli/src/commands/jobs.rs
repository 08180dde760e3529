//! `ocrbridge jobs list|show|retry`.

use indicatif::ProgressBar;
use ocrbridge::job::{Job, JobState};
use ocrbridge::recovery::{self, RetryError};
use ocrbridge::time::UnixMillis;
use serde_json::{json, Value};

use crate::output::{age, emit, time, Table};
use crate::{CliError, Target};

/// Which jobs `list` and `retry --reason` look at.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub states: Vec<JobState>,
    pub profile: Option<String>,
    /// Entered their state within this many milliseconds.
    pub since_ms: Option<u64>,
    pub reason: Option<String>,
    pub limit: usize,
}

/// Jobs matching `filter`, newest state change first.
pub async fn find(target: &Target, filter: &Filter) -> Result<Vec<Job>, CliError> {
    let ledger = target.ledger();
    let now = UnixMillis::now();
    let states = if filter.states.is_empty() {
        JobState::ALL.to_vec()
    } else {
        filter.states.clone()
    };
    let mut found = Vec::new();
    for state in states {
        let mut start = None;
        loop {
            let (jobs, next) = ledger
                .jobs_in_state_before(state, UnixMillis(u64::MAX), 100, start)
                .await?;
            found.extend(jobs.into_iter().filter(|j| {
                filter
                    .since_ms
                    .is_none_or(|ms| now.0.saturating_sub(j.state_since.0) <= ms)
                    && filter
                        .profile
                        .as_ref()
                        .is_none_or(|p| j.profile.as_str() == p)
                    && filter
                        .reason
                        .as_ref()
                        .is_none_or(|r| j.reason.as_ref().is_some_and(|jr| &jr.code == r))
            }));
            match next {
                Some(key) => start = Some(key),
                None => break,
            }
        }
    }
    found.sort_by_key(|j| std::cmp::Reverse(j.state_since));
    found.truncate(filter.limit.max(1));
    Ok(found)
}

fn summary_json(j: &Job) -> Value {
    json!({
        "job_id": j.id.as_str(), "state": j.state.as_str(), "profile": j.profile.as_str(),
        "since_ms": j.state_since.0, "reason": j.reason.as_ref().map(|r| json!({"code": r.code, "message": r.message})),
        "vendor": j.vendor, "vendor_job_id": j.vendor_job_id,
        "source": format!("s3://{}/{}", j.source.bucket, j.source.key),
        "orphan_vendor_jobs": j.orphan_vendor_jobs, "risky_resubmits": j.risky_resubmits,
        "trace_id": j.trace_header.as_deref().and_then(ocrbridge::trace_context::root),
    })
}

pub async fn list(target: &Target, filter: &Filter, json_mode: bool) -> Result<(), CliError> {
    let jobs = find(target, filter).await?;
    let now = UnixMillis::now().0;
    emit(
        json_mode,
        &Value::Array(jobs.iter().map(summary_json).collect()),
        || {
            let mut t = Table::new(&["job", "state", "profile", "for", "reason", "upload"]);
            for j in &jobs {
                t.row(vec![
                    j.id.to_string(),
                    j.state.to_string(),
                    j.profile.to_string(),
                    age(now.saturating_sub(j.state_since.0)),
                    j.reason.as_ref().map_or(String::new(), |r| r.code.clone()),
                    format!("s3://{}/{}", j.source.bucket, j.source.key),
                ]);
            }
            if t.is_empty() {
                "no jobs match".into()
            } else {
                t.render()
            }
        },
    );
    Ok(())
}

/// Keys under `prefix` in the results bucket.
async fn keys(target: &Target, prefix: &str) -> Result<Vec<String>, CliError> {
    let out = target
        .clients
        .s3
        .list_objects_v2()
        .bucket(&target.config.results_bucket)
        .prefix(prefix)
        .send()
        .await
        .map_err(|e| CliError::aws(aws_sdk_s3::error::DisplayErrorContext(e)))?;
    Ok(out
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect())
}

pub async fn show(target: &Target, id: &str, json_mode: bool) -> Result<(), CliError> {
    let job = super::job(target, id).await?;
    let raw = keys(target, &format!("raw/{}/", job.id)).await?;
    let results = keys(target, &format!("results/{}/", job.id)).await?;
    // This job alone in the cost report: the same labels as `ocrbridge cost`.
    let spend = ocrbridge::cost::report([&job])
        .into_values()
        .next()
        .map(|line| line.spend)
        .unwrap_or_default();
    let bucket = &target.config.results_bucket;
    let json = json!({
        "job": summary_json(&job),
        "version": job.version,
        "content_sha256": job.content_sha256,
        "created_ms": job.created_at.0,
        "history": job.history.iter().map(|h| json!({"state": h.state.as_str(), "at_ms": h.at.0, "reason": h.reason})).collect::<Vec<_>>(),
        "inspection": {"pages": job.inspection.pages, "bytes": job.inspection.size_bytes,
                       "type": job.inspection.file_type.map(|t| t.name()),
                       "dpi": job.inspection.dpi,
                       "skew_degrees": job.inspection.skew_tenths.map(|t| f64::from(t) / 10.0),
                       "text_height_px": job.inspection.text_height_px,
                       "blank_pages": job.inspection.blank_pages,
                       "issues": ocrbridge::inspect::input_issues(&job.inspection).iter().map(|i| i.as_str()).collect::<Vec<_>>()},
        "attempt": job.attempt.as_ref().map(|a| json!({"id": a.attempt_id, "at_ms": a.attempted_at.0})),
        "lease": job.lease.as_ref().map(|l| json!({"owner": l.owner, "until_ms": l.until.0})),
        "vendor": target.vendor(),
        "vendor_failures": job.vendor_failures,
        "risky_resubmits": job.risky_resubmits,
        "orphan_vendor_jobs": job.orphan_vendor_jobs,
        "cost": job.cost.as_ref().map(|c| serde_json::to_value(c).unwrap_or_default()),
        "spend_usd": spend.iter().map(|(k, v)| (k.to_string(), json!(v.to_string()))).collect::<serde_json::Map<_, _>>(),
        "result": job.result_key.as_ref().map(|k| format!("s3://{bucket}/{k}")),
        "raw_archives": raw.iter().map(|k| format!("s3://{bucket}/{k}")).collect::<Vec<_>>(),
        "results_written": results.len(),
        "review": job.review.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok()),
        "summary": job.result_summary.as_deref().and_then(|s| serde_json::from_str::<Value>(s).ok()),
        "second_opinion": job.second_opinion.as_ref().map(|o| serde_json::to_value(o).unwrap_or_default()),
        "second_opinion_of": job.second_opinion_of.as_ref().map(|p| p.as_str()),
        "prepared": job.prepared.as_ref().map(|c| json!({
            "object": format!("s3://{}/{}", c.bucket, c.key),
            "actions": c.actions,
            "pages": c.pages.as_ref().map(|m| m.to_record()),
        })),
        "prep_compute": job.prep_compute.as_ref().map(|c| serde_json::to_value(c).unwrap_or_default()),
        "parts": job.parts.as_ref().map(|p| json!({
            "count": p.count,
            "pages_per_part": p.pages_per_part,
            "jobs": (0..p.count).map(|i| ocrbridge::parts::part_key(&job.id, i).job_id().to_string()).collect::<Vec<_>>(),
            "results": p.results.iter().map(|(i, k)| (i.to_string(), json!(k))).collect::<serde_json::Map<_, _>>(),
        })),
        "part_of": job.part_of.as_ref().map(|o| json!({
            "job": o.parent.as_str(), "part": o.index + 1, "of": o.count, "first_page": o.first_page,
        })),
    });
    emit(json_mode, &json, || {
        let mut out = vec![
            format!("job       {}", job.id),
            format!("state     {} since {}", job.state, time(job.state_since.0)),
            format!("profile   {}", job.profile),
            format!("upload    s3://{}/{}", job.source.bucket, job.source.key),
            format!(
                "document  {} pages, {} bytes, sha256 {}",
                job.inspection
                    .pages
                    .map_or("?".to_owned(), |p| p.to_string()),
                job.inspection.size_bytes,
                job.content_sha256
            ),
        ];
        if let Some(r) = &job.reason {
            out.push(format!("reason    {}: {}", r.code, r.message));
        }
        // What the vendor was sent instead of the upload, and why.
        if let Some(c) = &job.prepared {
            out.push(format!("prepared  s3://{}/{}", c.bucket, c.key));
            for action in &c.actions {
                out.push(format!("          {action}"));
            }
            if let Some(map) = &c.pages {
                out.push(format!(
                    "          holds the upload's pages {}",
                    map.to_record()
                ));
            }
        }
        // What intake measured that a profile may act on (`INPUT_QUALITY_POLICY`).
        for issue in ocrbridge::inspect::input_issues(&job.inspection) {
            out.push(format!(
                "quality   {}: {}",
                issue.as_str(),
                issue.explain(&job.inspection)
            ));
        }
        // A document sent in parts, and each part's job; or the document a part belongs to.
        if let Some(p) = &job.parts {
            out.push(format!(
                "parts     {} of up to {} pages, {} parsed",
                p.count,
                p.pages_per_part,
                p.results.len()
            ));
            for i in 0..p.count {
                out.push(format!(
                    "          {} {}",
                    i + 1,
                    ocrbridge::parts::part_key(&job.id, i).job_id()
                ));
            }
        }
        if let Some(o) = &job.part_of {
            out.push(format!(
                "part      {} of {} of job {}, from page {}",
                o.index + 1,
                o.count,
                o.parent,
                o.first_page
            ));
        }
        // The vendor of the job's latest attempt (with routes, not always the stack's).
        out.push(format!(
            "vendor    {} job {}",
            job.vendor.as_deref().unwrap_or(target.vendor()),
            job.vendor_job_id.as_deref().unwrap_or("-")
        ));
        if let Some(trace) = job
            .trace_header
            .as_deref()
            .and_then(ocrbridge::trace_context::root)
        {
            // The X-Ray console finds the document's whole path by this id.
            out.push(format!("trace     {trace}"));
        }
        if let Some(o) = &job.second_opinion {
            out.push(format!(
                "opinion   {} of {} (job {}){}",
                o.outcome.as_str(),
                o.vendor,
                o.job_id,
                if o.readings.is_empty() {
                    String::new()
                } else {
                    format!(
                        ": {}",
                        o.side_by_side(job.vendor.as_deref().unwrap_or(target.vendor()))
                    )
                }
            ));
        }
        if let Some(parent) = &job.second_opinion_of {
            out.push(format!(
                "opinion   a second reading of job {parent} (second_pass)"
            ));
        }
        if !job.orphan_vendor_jobs.is_empty() || job.risky_resubmits > 0 {
            out.push(format!(
                "charges   {} more vendor job(s) for this document: {:?}; {} risky resubmission(s)",
                job.orphan_vendor_jobs.len(),
                job.orphan_vendor_jobs,
                job.risky_resubmits
            ));
        }
        out.push(match &job.cost {
            None => "cost      none recorded (never submitted)".to_owned(),
            Some(c) => format!(
                "cost      {} {}: estimate ${} ({} page(s)); {}{}",
                c.vendor,
                c.model,
                c.estimate.round_dp(4),
                c.pages_estimated,
                match (c.actual, c.pages_billed) {
                    (Some(a), Some(p)) if c.billed_pages_estimated => {
                        format!("billed ${} ({p} page(s), estimated: the job failed after the vendor ran it)", a.round_dp(4))
                    }
                    (Some(a), Some(p)) => format!("billed ${} ({p} page(s))", a.round_dp(4)),
                    _ => "nothing billed yet".to_owned(),
                },
                spend
                    .iter()
                    .filter(|(k, _)| !matches!(**k, "billed" | "failed_billed" | "in_flight"))
                    .map(|(k, v)| format!("; {k} ${}", v.round_dp(4)))
                    .collect::<String>()
            ),
        });
        if let Some(a) = &job.attempt {
            let meaning = match job.state {
                JobState::Queued | JobState::Submitting | JobState::Held => {
                    "a submission not yet resolved: it may have reached the vendor"
                }
                _ => "the last leased step; the result's files are named by it",
            };
            out.push(format!(
                "attempt   {} at {} ({meaning})",
                a.attempt_id,
                time(a.attempted_at.0)
            ));
        }
        if let Some(l) = &job.lease {
            out.push(format!("lease     {} until {}", l.owner, time(l.until.0)));
        }
        if let Some(k) = &job.result_key {
            out.push(format!("result    s3://{bucket}/{k}"));
        }
        for k in &raw {
            out.push(format!("raw       s3://{bucket}/{k}"));
        }
        if let Some(r) = &job.review {
            out.push(format!("review    {r}"));
        }
        out.push(String::new());
        let mut h = Table::new(&["history", "at", "reason"]);
        for step in &job.history {
            h.row(vec![
                step.state.to_string(),
                time(step.at.0),
                step.reason.clone().unwrap_or_default(),
            ]);
        }
        out.push(h.render());
        out.join("\n")
    });
    Ok(())
}

/// What to retry: the named jobs, or every job a filter finds.
pub enum Selection {
    Ids(Vec<String>),
    Filter(Filter),
}

/// Sends retryable `Failed`/`Held` jobs back to `Queued` with their submit message. A dry run
/// (without `apply`) shows what would move. A job held because its last submission may have
/// reached the vendor moves only with `accept_duplicate_risk` (its resubmission may be a second
/// charge); without it, it is refused and says so. Jobs that cannot be retried make the command
/// fail (exit 4) after the others are done.
pub async fn retry(
    target: &Target,
    selection: Selection,
    apply: bool,
    accept_duplicate_risk: bool,
    json_mode: bool,
) -> Result<(), CliError> {
    let jobs = match selection {
        Selection::Ids(ids) => {
            let mut jobs = Vec::new();
            for id in ids {
                jobs.push(super::job(target, &id).await?);
            }
            jobs
        }
        Selection::Filter(mut filter) => {
            filter.states = vec![JobState::Failed, JobState::Held];
            find(target, &filter).await?
        }
    };
    let needs_approval = |j: &Job| {
        j.retryable_reason()
            .is_some_and(|r| ocrbridge::job::reason::needs_approval(&r.code))
    };
    let (retryable, refused): (Vec<&Job>, Vec<&Job>) = jobs.iter().partition(|j| {
        j.retryable_reason().is_some() && (accept_duplicate_risk || !needs_approval(j))
    });
    let mut moved = Vec::new();
    let mut errors = Vec::new();
    if apply {
        let ledger = target.ledger();
        let queue = target.queue();
        let metrics = super::metrics();
        let bar = ProgressBar::new(retryable.len() as u64);
        if json_mode {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        for job in &retryable {
            match recovery::retry(
                &ledger,
                &queue,
                &metrics,
                &target.config.submit_queue_url,
                job,
                recovery::Trigger::Operator {
                    accept_duplicate_risk,
                },
            )
            .await
            {
                Ok(j) => moved.push(j.id.to_string()),
                Err(
                    e @ (RetryError::Moved { .. }
                    | RetryError::NotRetryable(_)
                    | RetryError::NeedsApproval(_)),
                ) => errors.push(e.to_string()),
                Err(e) => return Err(CliError::aws(e)),
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
    }
    let json = json!({
        "applied": apply,
        "retryable": retryable.iter().map(|j| summary_json(j)).collect::<Vec<_>>(),
        "moved": moved,
        "refused": refused.iter().map(|j| summary_json(j)).collect::<Vec<_>>(),
        "errors": errors,
    });
    emit(json_mode, &json, || {
        let mut t = Table::new(&["job", "state", "reason", "action"]);
        for j in &retryable {
            let action = match (apply, needs_approval(j)) {
                (false, true) => {
                    "would be resubmitted: it may already be at the vendor (a second charge)"
                }
                (false, false) => "would go back to Queued",
                (true, _) if moved.contains(&j.id.to_string()) => "back to Queued",
                (true, _) => "moved meanwhile: not retried",
            };
            t.row(vec![
                j.id.to_string(),
                j.state.to_string(),
                j.reason.as_ref().map_or(String::new(), |r| r.code.clone()),
                action.into(),
            ]);
        }
        for j in &refused {
            t.row(vec![
                j.id.to_string(),
                j.state.to_string(),
                j.reason.as_ref().map_or(String::new(), |r| r.code.clone()),
                if needs_approval(j) {
                    "refused: it may already be at the vendor; add --accept-duplicate-risk to resubmit it (a possible second charge)".into()
                } else {
                    "refused: not a retryable reason".into()
                },
            ]);
        }
        let mut text = if t.is_empty() {
            "no Failed or Held jobs match".to_owned()
        } else {
            t.render()
        };
        if !apply && !retryable.is_empty() {
            text.push_str("\n\ndry run: add --apply to retry them");
        }
        text
    });
    if !refused.is_empty() {
        let unapproved = refused.iter().filter(|j| needs_approval(j)).count();
        return Err(CliError::Refused(format!(
            "{} job(s) cannot be retried: {}their reason is final or they are not Failed/Held (retryable reasons: {})",
            refused.len(),
            if unapproved > 0 {
                format!("{unapproved} may already be at the vendor and need --accept-duplicate-risk; the others: ")
            } else {
                String::new()
            },
            ocrbridge::job::reason::RETRYABLE.join(", ")
        )));
    }
    Ok(())
}
