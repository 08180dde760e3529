//! `ocrbridge spot-check --per-profile N`: the few most recently finished documents of each
//! workflow with their fields and confidence — the daily look at what the vendor returns.

use std::collections::BTreeMap;

use ocrbridge::job::{Job, JobState};
use serde_json::{json, Value};

use crate::output::{emit, time, Table};
use crate::{CliError, Target};

pub async fn run(target: &Target, per_profile: usize, json_mode: bool) -> Result<(), CliError> {
    let ledger = target.ledger();
    let mut recent: Vec<Job> = Vec::new();
    for state in [JobState::Completed, JobState::NeedsReview] {
        recent.extend(ledger.recent_in_state(state, 200).await?);
    }
    recent.sort_by_key(|j| std::cmp::Reverse(j.state_since));
    let mut by_profile: BTreeMap<String, Vec<&Job>> = BTreeMap::new();
    for job in &recent {
        let list = by_profile.entry(job.profile.to_string()).or_default();
        if list.len() < per_profile {
            list.push(job);
        }
    }
    let summary = |j: &Job| -> Value {
        j.result_summary
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null)
    };
    let json = json!(by_profile
        .iter()
        .map(|(p, jobs)| (p.clone(), jobs.iter().map(|j| json!({
            "job_id": j.id.as_str(), "state": j.state.as_str(), "at_ms": j.state_since.0, "fields": summary(j),
        })).collect::<Vec<_>>()))
        .collect::<BTreeMap<_, _>>());
    emit(json_mode, &json, || {
        let mut t = Table::new(&[
            "profile", "job", "state", "finished", "field", "value", "conf",
        ]);
        for (profile, jobs) in &by_profile {
            for j in jobs {
                let s = summary(j);
                let fields: Vec<(String, Value)> = s
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .filter(|(_, v)| v.get("value").is_some())
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                for (i, (name, f)) in fields.iter().enumerate() {
                    t.row(vec![
                        if i == 0 {
                            profile.clone()
                        } else {
                            String::new()
                        },
                        if i == 0 {
                            j.id.to_string()
                        } else {
                            String::new()
                        },
                        if i == 0 {
                            j.state.to_string()
                        } else {
                            String::new()
                        },
                        if i == 0 {
                            time(j.state_since.0)
                        } else {
                            String::new()
                        },
                        name.clone(),
                        f["value"]
                            .as_str()
                            .map_or(f["value"].to_string(), str::to_owned),
                        f["confidence"]
                            .as_f64()
                            .map_or("-".into(), |c| format!("{c:.2}")),
                    ]);
                }
            }
        }
        if t.is_empty() {
            "no finished documents yet".into()
        } else {
            t.render()
        }
    });
    Ok(())
}
