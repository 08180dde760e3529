//! The review queue's order: riskiest first. A document's risk is what sent it to review (the
//! rules that fired, weighted by what a wrong answer costs), how unsure the vendor was about the
//! fields a business acts on, and how long it has waited. Pure, so the order is unit-tested.

use ocrbridge::job::Job;
use serde_json::Value;

/// One rule that flagged one field of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub rule: String,
    pub field: String,
}

/// How much a rule weighs in a document's risk. Money that does not add up, or a field the
/// document cannot complete without, is worse than a date that reads two ways.
pub fn rule_weight(rule: &str) -> u32 {
    match rule {
        "total_mismatch" | "line_items_mismatch" | "misplaced_decimal" => 50,
        "required_field" => 40,
        "multiple_documents" => 35,
        "unknown_currency" | "due_before_issue" => 25,
        "ambiguous_date" | "date_in_future" | "date_implausible" => 20,
        "low_confidence" => 10,
        _ => 15,
    }
}

/// The fields a business acts on: money, the date, who was paid.
pub const CRITICAL_FIELDS: [&str; 7] = [
    "total",
    "subtotal",
    "tax",
    "date",
    "issue_date",
    "merchant",
    "vendor_name",
];

/// A job in review, as the queue shows it.
#[derive(Debug, Clone)]
pub struct Item {
    pub job: Job,
    pub flags: Vec<Flag>,
    /// The lowest confidence among the critical fields present (`None`: none gave one).
    pub lowest_critical_confidence: Option<f64>,
    pub waiting_ms: u64,
    pub risk: u32,
}

impl Item {
    pub fn new(job: Job, now_ms: u64) -> Self {
        let summary = crate::commands::review::summary(&job);
        let flags = flags(&job, &summary);
        let lowest_critical_confidence = CRITICAL_FIELDS
            .iter()
            .filter_map(|f| summary.get(*f)?.get("confidence")?.as_f64())
            .fold(None, |low: Option<f64>, c| {
                Some(low.map_or(c, |l| l.min(c)))
            });
        let waiting_ms = now_ms.saturating_sub(job.state_since.0);
        let risk = risk(&flags, lowest_critical_confidence, waiting_ms);
        Item {
            job,
            flags,
            lowest_critical_confidence,
            waiting_ms,
            risk,
        }
    }

    /// The rule that weighed most: the one `ReviewSeconds` is counted under.
    pub fn primary_rule(&self) -> &str {
        self.flags
            .iter()
            .max_by_key(|f| rule_weight(&f.rule))
            .map_or("none", |f| f.rule.as_str())
    }

    /// Each rule that fired, once, in the order they fired (a rule can flag several fields).
    pub fn rules(&self) -> Vec<&str> {
        let mut rules: Vec<&str> = Vec::new();
        for flag in &self.flags {
            if !rules.contains(&flag.rule.as_str()) {
                rules.push(&flag.rule);
            }
        }
        rules
    }
}

/// The rules that fired on the job and the field each flagged: the summary's `flags`, or, for a
/// job parsed before they were recorded, read back from its reason (`rule: field …; …`).
pub fn flags(job: &Job, summary: &Value) -> Vec<Flag> {
    if let Some(list) = summary.get("flags").and_then(Value::as_array) {
        return list
            .iter()
            .filter_map(|f| {
                Some(Flag {
                    rule: f.get("rule")?.as_str()?.to_owned(),
                    field: f.get("field")?.as_str()?.to_owned(),
                })
            })
            .collect();
    }
    job.reason
        .iter()
        .flat_map(|r| r.message.split("; "))
        .filter_map(|part| {
            let (rule, detail) = part.split_once(": ")?;
            let field = detail.split_whitespace().next().unwrap_or_default();
            Some(Flag {
                rule: rule.to_owned(),
                field: field.to_owned(),
            })
        })
        .collect()
}

/// Rules that fired, plus up to 30 for an unsure critical field (confidence 0 adds 30, 1 adds
/// none), plus one a hour waited up to a day: a document never outranks a worse one by age
/// alone within its first day.
pub fn risk(flags: &[Flag], lowest_critical_confidence: Option<f64>, waiting_ms: u64) -> u32 {
    let rules: u32 = flags.iter().map(|f| rule_weight(&f.rule)).sum();
    let unsure =
        lowest_critical_confidence.map_or(0, |c| ((1.0 - c.clamp(0.0, 1.0)) * 30.0).round() as u32);
    let age = u32::try_from(waiting_ms / 3_600_000)
        .unwrap_or(u32::MAX)
        .min(24);
    rules + unsure + age
}

/// What the reviewer narrowed the queue to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub profile: Option<String>,
    pub source: Option<String>,
    pub rule: Option<String>,
}

impl Filter {
    pub fn keeps(&self, item: &Item) -> bool {
        let profile = self
            .profile
            .as_deref()
            .is_none_or(|p| item.job.profile.as_str() == p);
        let source = self
            .source
            .as_deref()
            .is_none_or(|s| item.job.channel.as_deref().unwrap_or("other") == s);
        let rule = self
            .rule
            .as_deref()
            .is_none_or(|r| item.flags.iter().any(|f| f.rule == r));
        profile && source && rule
    }
}

/// The queue: the jobs the filter keeps, riskiest first, the longest waiting first among equals.
pub fn order(jobs: Vec<Job>, filter: &Filter, now_ms: u64) -> Vec<Item> {
    let mut items: Vec<Item> = jobs
        .into_iter()
        .map(|j| Item::new(j, now_ms))
        .filter(|i| filter.keeps(i))
        .collect();
    items.sort_by(|a, b| {
        b.risk
            .cmp(&a.risk)
            .then(b.waiting_ms.cmp(&a.waiting_ms))
            .then(a.job.id.as_str().cmp(b.job.id.as_str()))
    });
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(n: u32, profile: &str, summary: Option<Value>) -> Job {
        let mut job = crate::testing::job(n);
        job.profile = ocrbridge::job::Profile::new(profile).unwrap();
        job.result_summary = summary.map(|s| s.to_string());
        job
    }

    #[test]
    fn the_queue_puts_the_riskiest_first_and_filters_by_rule_and_profile() {
        let s = |rule: &str, field: &str, confidence: f64| {
            serde_json::json!({
                "total": {"value": "1.00", "confidence": confidence},
                "flags": [{"rule": rule, "field": field}],
            })
        };
        let jobs = vec![
            job(1, "receipt", Some(s("low_confidence", "merchant", 0.9))),
            job(2, "receipt", Some(s("total_mismatch", "total", 0.9))),
            job(3, "invoice", Some(s("low_confidence", "total", 0.3))),
        ];
        let ids = |items: &[Item]| -> Vec<String> {
            items
                .iter()
                .map(|i| i.job.id.as_str()[40..].to_owned())
                .collect()
        };
        let all = order(jobs.clone(), &Filter::default(), 1_000);
        assert_eq!(ids(&all), ["0002", "0003", "0001"]);
        assert_eq!(all[0].primary_rule(), "total_mismatch");
        // A rule that flagged two fields, apart, is listed once.
        let twice = serde_json::json!({"flags": [
            {"rule": "low_confidence", "field": "merchant"},
            {"rule": "total_mismatch", "field": "total"},
            {"rule": "low_confidence", "field": "date"},
        ]});
        let item = Item::new(job(4, "receipt", Some(twice)), 1_000);
        assert_eq!(item.rules(), ["low_confidence", "total_mismatch"]);
        let only = Filter {
            rule: Some("low_confidence".into()),
            ..Filter::default()
        };
        assert_eq!(ids(&order(jobs.clone(), &only, 1_000)), ["0003", "0001"]);
        let invoices = Filter {
            profile: Some("invoice".into()),
            ..Filter::default()
        };
        assert_eq!(ids(&order(jobs, &invoices, 1_000)), ["0003"]);
    }

    fn flag(rule: &str, field: &str) -> Flag {
        Flag {
            rule: rule.into(),
            field: field.into(),
        }
    }

    #[test]
    fn money_that_does_not_add_up_outranks_an_unsure_field_and_age() {
        let mismatch = risk(&[flag("total_mismatch", "total")], Some(0.95), 0);
        let unsure = risk(&[flag("low_confidence", "merchant")], Some(0.40), 0);
        let old_unsure = risk(
            &[flag("low_confidence", "merchant")],
            Some(0.90),
            23 * 3_600_000,
        );
        assert!(mismatch > unsure, "{mismatch} vs {unsure}");
        assert!(mismatch > old_unsure, "{mismatch} vs {old_unsure}");
    }

    #[test]
    fn a_lower_confidence_on_a_critical_field_and_waiting_longer_raise_the_risk() {
        let flags = [flag("low_confidence", "total")];
        assert!(risk(&flags, Some(0.2), 0) > risk(&flags, Some(0.8), 0));
        assert!(risk(&flags, Some(0.8), 5 * 3_600_000) > risk(&flags, Some(0.8), 0));
        // Age stops counting after a day.
        assert_eq!(
            risk(&flags, Some(0.8), 24 * 3_600_000),
            risk(&flags, Some(0.8), 240 * 3_600_000)
        );
    }

    #[test]
    fn flags_are_read_back_from_the_reason_of_a_job_parsed_before_they_were_recorded() {
        let mut job = job(1, "receipt", None);
        job.reason = Some(ocrbridge::job::Reason::new(
            "needs_review",
            "total_mismatch: total is 19.90 but its parts add up to 16.54; low_confidence: merchant confidence 0.41 is below 0.60",
        ));
        assert_eq!(
            flags(&job, &Value::Null),
            vec![
                flag("total_mismatch", "total"),
                flag("low_confidence", "merchant")
            ]
        );
        let summary = serde_json::json!({"flags": [{"rule": "required_field", "field": "date"}]});
        assert_eq!(flags(&job, &summary), vec![flag("required_field", "date")]);
    }
}
