//! `ocrbridge status`: the daily check in one screen — jobs by state with the oldest live one,
//! and every queue's and DLQ's depth.

use ocrbridge::job::JobState;
use ocrbridge::time::UnixMillis;
use serde_json::json;

use crate::output::{age, emit, Table};
use crate::{CliError, Target};

pub async fn run(target: &Target, json_mode: bool) -> Result<(), CliError> {
    let ledger = target.ledger();
    let now = UnixMillis::now();
    let mut states = Vec::new();
    for state in JobState::ALL {
        let count = ledger.count_in_state(state).await?;
        let oldest = if count > 0 && !state.is_terminal() {
            ledger
                .jobs_in_state_before(state, UnixMillis(u64::MAX), 1, None)
                .await?
                .0
                .into_iter()
                .next()
        } else {
            None
        };
        states.push((state, count, oldest));
    }
    let queue = target.queue();
    let c = &target.config;
    let mut queues = Vec::new();
    for (name, url) in [
        ("intake", &c.intake_queue_url),
        ("submit", &c.submit_queue_url),
        ("results", &c.results_queue_url),
        ("intake DLQ", &c.intake_dlq_url),
        ("submit DLQ", &c.submit_dlq_url),
        ("results DLQ", &c.results_dlq_url),
    ] {
        queues.push((name, queue.depth(url).await?));
    }
    let dead: u64 = queues
        .iter()
        .filter(|(n, _)| n.ends_with("DLQ"))
        .map(|(_, d)| d)
        .sum();
    let json = json!({
        "stack": target.name,
        "vendor": target.vendor(),
        "jobs": states.iter().map(|(s, n, oldest)| json!({
            "state": s.as_str(), "count": n,
            "oldest": oldest.as_ref().map(|j| json!({"job_id": j.id.as_str(), "since_ms": j.state_since.0})),
        })).collect::<Vec<_>>(),
        "queues": queues.iter().map(|(n, d)| json!({"queue": n, "messages": d})).collect::<Vec<_>>(),
    });
    emit(json_mode, &json, || {
        let mut jobs = Table::new(&["state", "jobs", "oldest live job", "in state for"]);
        for (state, count, oldest) in &states {
            jobs.row(vec![
                state.to_string(),
                count.to_string(),
                oldest.as_ref().map_or("-".into(), |j| j.id.to_string()),
                oldest
                    .as_ref()
                    .map_or("-".into(), |j| age(now.0.saturating_sub(j.state_since.0))),
            ]);
        }
        let mut q = Table::new(&["queue", "messages"]);
        for (name, depth) in &queues {
            q.row(vec![(*name).to_owned(), depth.to_string()]);
        }
        let attention = states
            .iter()
            .filter(|(s, n, _)| matches!(s, JobState::Held | JobState::NeedsReview) && *n > 0)
            .map(|(s, n, _)| format!("{n} {s}"))
            .chain((dead > 0).then(|| format!("{dead} dead-lettered")))
            .collect::<Vec<_>>();
        format!(
            "stack {}, vendor {}\n\n{}\n\n{}\n\n{}",
            target.name,
            target.vendor(),
            jobs.render(),
            q.render(),
            if attention.is_empty() {
                "nothing waits for a person".to_owned()
            } else {
                format!(
                    "waiting for a person: {} (see RUNBOOK.md)",
                    attention.join(", ")
                )
            }
        )
    });
    Ok(())
}
