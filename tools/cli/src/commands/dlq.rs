//! `ocrbridge dlq list|redrive QUEUE`: dead-lettered messages grouped by the reason their
//! handler recorded, and a redrive that only moves what can succeed now.

use std::collections::BTreeMap;

use ocrbridge::queue::DeadLetter;
use serde_json::json;

use crate::output::{emit, Table};
use crate::{CliError, Target};

/// Reasons a redrive cannot fix: the message itself is wrong, or names nothing of ours.
pub const NEVER_REDRIVEN: &[&str] = &[
    "malformed_event",
    "malformed_message",
    "unknown_job",
    "foreign_notification",
];

/// Whether a redrive would move `letter` (with `reason`, only messages of that code).
pub fn redrivable(letter: &DeadLetter, reason: Option<&str>) -> bool {
    let code = letter.reason_code.as_deref().unwrap_or("redrive_policy");
    match reason {
        Some(wanted) => code == wanted,
        None => !NEVER_REDRIVEN.contains(&code),
    }
}

pub async fn list(target: &Target, queue: &str, json_mode: bool) -> Result<(), CliError> {
    let (_, dlq) = super::queue_pair(target, queue)?;
    let letters = target.queue().peek(dlq, 1000).await?;
    let mut by_reason: BTreeMap<String, Vec<&DeadLetter>> = BTreeMap::new();
    for l in &letters {
        by_reason
            .entry(
                l.reason_code
                    .clone()
                    .unwrap_or_else(|| "redrive_policy".into()),
            )
            .or_default()
            .push(l);
    }
    let json = json!({
        "queue": queue,
        "messages": letters.len(),
        "by_reason": by_reason.iter().map(|(code, ls)| json!({
            "reason_code": code, "count": ls.len(),
            "redrivable": ls.first().is_some_and(|l| redrivable(l, None)),
            "examples": ls.iter().take(3).map(|l| json!({"reason": l.reason, "body": l.body})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    emit(json_mode, &json, || {
        let mut t = Table::new(&["reason code", "messages", "redrive?", "example"]);
        for (code, ls) in &by_reason {
            let first = ls[0];
            t.row(vec![
                code.clone(),
                ls.len().to_string(),
                if redrivable(first, None) {
                    "yes".into()
                } else {
                    "no: it would fail the same way".into()
                },
                first
                    .reason
                    .clone()
                    .unwrap_or_else(|| first.body.chars().take(80).collect()),
            ]);
        }
        if t.is_empty() {
            format!("the {queue} DLQ is empty")
        } else {
            t.render()
        }
    });
    Ok(())
}

pub async fn redrive(
    target: &Target,
    queue: &str,
    reason: Option<&str>,
    apply: bool,
    json_mode: bool,
) -> Result<(), CliError> {
    let (source, dlq) = super::queue_pair(target, queue)?;
    let q = target.queue();
    let (moved, staying) = if apply {
        let spinner = indicatif::ProgressBar::new_spinner();
        if json_mode {
            spinner.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        spinner.set_message(format!("redriving the {queue} DLQ"));
        let moved = q.redrive(dlq, source, |l| redrivable(l, reason)).await?;
        spinner.finish_and_clear();
        (moved, q.depth(dlq).await?)
    } else {
        let letters = q.peek(dlq, 1000).await?;
        let would = letters.iter().filter(|l| redrivable(l, reason)).count();
        (would, (letters.len() - would) as u64)
    };
    emit(
        json_mode,
        &json!({"queue": queue, "applied": apply, "moved": moved, "staying": staying}),
        || {
            if apply {
                format!(
                    "moved {moved} message(s) back to the {queue} queue; {staying} stay in its DLQ"
                )
            } else {
                format!("dry run: {moved} message(s) would go back to the {queue} queue, {staying} would stay; add --apply")
            }
        },
    );
    Ok(())
}
