//! Second opinions: a result that would go to review for a named reason is read again by the
//! next vendor of its profile's route, and the two readings decide together (`SECOND_OPINION`).
//!
//! ```text
//! SECOND_OPINION=receipt:total_mismatch,low_confidence_total; invoice:low_confidence
//! ```
//!
//! A trigger is a review rule (`total_mismatch`: every field it names) or a rule on one field
//! (`low_confidence_total`). A result asks for a second opinion only when *every* reason it has
//! is a trigger of its profile: a result that needs a person for another reason goes to one
//! whatever a second vendor reads.
//!
//! The second reading is a job of its own (a *child*, [`child_key`]): parse creates it with a
//! conditional put, so a parse repeated by a redelivery asks once, and submit sends it to the
//! vendor the parent pins, exactly once, by the same lease and fence as any job. The parent
//! waits in `NeedsReview` meanwhile — the safe place if the second reading never comes — and
//! the child's parse settles it: where every compared field agrees, the parent completes with
//! the agreement recorded; where one differs, it stays in review with both values side by side.
//! What the second vendor bills is the `second_pass` cost, the child's own.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::SettingError;
use crate::document::Document;
use crate::job::{DocumentKey, JobId, Profile};
use crate::quality::normalize::same;
use crate::quality::score::extracted_fields;
use crate::rules::{ReviewReason, RULES};

const SETTING: &str = "SECOND_OPINION";

/// `SECOND_OPINION`, parsed: each profile's triggers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecondOpinionRules {
    by_profile: BTreeMap<String, BTreeSet<String>>,
}

impl SecondOpinionRules {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        Self::parse(lookup(SETTING).as_deref().unwrap_or_default())
    }

    /// `PROFILE:TRIGGER,…; …`, where a trigger is a rule of [`RULES`], or one followed by `_`
    /// and the field it is limited to.
    pub fn parse(spec: &str) -> Result<Self, SettingError> {
        let bad = |expected: String| SettingError {
            name: SETTING,
            value: spec.to_owned(),
            expected,
        };
        let mut by_profile = BTreeMap::new();
        for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (profile, triggers) = part
                .split_once(':')
                .ok_or_else(|| bad(format!("PROFILE:RULE,… (in {part:?})")))?;
            let profile = Profile::new(profile.trim()).map_err(|e| bad(e.to_string()))?;
            let mut set = BTreeSet::new();
            for trigger in triggers.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                let known = RULES
                    .iter()
                    .any(|rule| trigger == *rule || trigger.starts_with(&format!("{rule}_")));
                if !known {
                    return Err(bad(format!(
                        "review rules ({}), or RULE_FIELD; {trigger:?} is neither",
                        RULES.join(", ")
                    )));
                }
                set.insert(trigger.to_owned());
            }
            if set.is_empty() {
                return Err(bad(format!("at least one rule for {profile}")));
            }
            by_profile.insert(profile.as_str().to_owned(), set);
        }
        Ok(SecondOpinionRules { by_profile })
    }

    pub fn is_empty(&self) -> bool {
        self.by_profile.is_empty()
    }

    /// The fields to ask a second vendor about, when every one of `reasons` is a trigger of
    /// `profile`'s; `None` when the result goes to review as it is.
    pub fn asks(&self, profile: &Profile, reasons: &[ReviewReason]) -> Option<Vec<String>> {
        let triggers = self.by_profile.get(profile.as_str())?;
        if reasons.is_empty() {
            return None;
        }
        let mut fields = BTreeSet::new();
        for reason in reasons {
            let named = triggers.contains(reason.rule)
                || triggers.contains(&format!("{}_{}", reason.rule, reason.field));
            if !named {
                return None;
            }
            fields.extend(compared_fields(reason).iter().map(|f| (*f).to_owned()));
        }
        Some(fields.into_iter().collect())
    }
}

/// The fields a reason is about: a sum's every part, else the field it names.
fn compared_fields(reason: &ReviewReason) -> Vec<&'static str> {
    match reason.rule {
        "total_mismatch" => vec!["subtotal", "tax", "total"],
        "line_items_mismatch" => vec!["subtotal", "total"],
        _ => vec![reason.field],
    }
}

/// The child's document key: a function of the parent's id alone, so asking again finds the
/// child already there (the conditional put is the dedupe, as for uploads).
pub fn child_key(parent: &JobId) -> DocumentKey {
    let mut hasher = Sha256::new();
    hasher.update(b"ocrbridge/second-opinion/v1\n");
    hasher.update(parent.as_str().as_bytes());
    DocumentKey::from_digest(hasher.finalize().into())
}

/// Where a second opinion stands, recorded on the parent (`second_opinion`, JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Asked; the child has not been parsed yet.
    Pending,
    /// Every compared field reads the same at both vendors: the parent completed.
    Agreed,
    /// A compared field differs: the parent stays in review, both values beside each other.
    Disagreed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Agreed => "agreed",
            Outcome::Disagreed => "disagreed",
        }
    }
}

/// One compared field: the first vendor's reading and the second's (`None`: not read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reading {
    pub field: String,
    pub first: Option<String>,
    pub second: Option<String>,
    pub same: bool,
}

/// A parent's second opinion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondOpinion {
    /// The vendor asked.
    pub vendor: String,
    /// The child job that holds its reading.
    pub job_id: JobId,
    /// The fields the parent's review reasons are about.
    pub fields: Vec<String>,
    pub outcome: Outcome,
    /// The first vendor's reading of each field beside the second's, once the child is parsed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readings: Vec<Reading>,
}

impl SecondOpinion {
    pub fn asked(vendor: &str, job_id: JobId, fields: Vec<String>) -> Self {
        SecondOpinion {
            vendor: vendor.to_owned(),
            job_id,
            fields,
            outcome: Outcome::Pending,
            readings: vec![],
        }
    }

    /// Decides the opinion from the two readings of its fields.
    pub fn decide(&self, first: &Document, second: &Document) -> SecondOpinion {
        let a = extracted_fields(first);
        let b = extracted_fields(second);
        let readings: Vec<Reading> = self
            .fields
            .iter()
            .map(|field| {
                let first = a.get(field).map(|(v, _)| v.clone());
                let second = b.get(field).map(|(v, _)| v.clone());
                let same = match (&first, &second) {
                    (Some(x), Some(y)) => same(field, x, y),
                    (None, None) => true,
                    _ => false,
                };
                Reading {
                    field: field.clone(),
                    first,
                    second,
                    same,
                }
            })
            .collect();
        SecondOpinion {
            outcome: if readings.iter().all(|r| r.same) {
                Outcome::Agreed
            } else {
                Outcome::Disagreed
            },
            readings,
            ..self.clone()
        }
    }

    /// The readings side by side, for the review reason: `total: 12.30 (sim) / 12.80 (azure)`.
    pub fn side_by_side(&self, first_vendor: &str) -> String {
        self.readings
            .iter()
            .map(|r| {
                format!(
                    "{}: {} ({first_vendor}) / {} ({}){}",
                    r.field,
                    r.first.as_deref().unwrap_or("none"),
                    r.second.as_deref().unwrap_or("none"),
                    self.vendor,
                    if r.same { "" } else { " differ" }
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(rule: &'static str, field: &'static str) -> ReviewReason {
        ReviewReason {
            rule,
            field,
            detail: String::new(),
        }
    }

    fn receipt() -> Profile {
        Profile::new("receipt").unwrap()
    }

    #[test]
    fn a_profiles_triggers_parse_and_unknown_rules_are_refused() {
        let rules = SecondOpinionRules::parse(
            "receipt:total_mismatch,low_confidence_total; invoice:low_confidence",
        )
        .unwrap();
        assert!(!rules.is_empty());
        assert!(SecondOpinionRules::parse("").unwrap().is_empty());
        let err = SecondOpinionRules::parse("receipt:total_mismatsch").unwrap_err();
        assert!(err.expected.contains("total_mismatsch"), "{err}");
        assert!(SecondOpinionRules::parse("receipt").is_err());
        assert!(SecondOpinionRules::parse("receipt:").is_err());
    }

    #[test]
    fn only_a_result_whose_every_reason_is_a_trigger_asks() {
        let rules =
            SecondOpinionRules::parse("receipt:total_mismatch,low_confidence_total").unwrap();
        assert_eq!(
            rules.asks(&receipt(), &[reason("total_mismatch", "total")]),
            Some(vec!["subtotal".into(), "tax".into(), "total".into()])
        );
        assert_eq!(
            rules.asks(&receipt(), &[reason("low_confidence", "total")]),
            Some(vec!["total".into()])
        );
        // Low confidence on another field is not a trigger; nor is a result with no reason.
        assert_eq!(
            rules.asks(&receipt(), &[reason("low_confidence", "date")]),
            None
        );
        assert_eq!(
            rules.asks(
                &receipt(),
                &[
                    reason("total_mismatch", "total"),
                    reason("required_field", "date")
                ]
            ),
            None
        );
        assert_eq!(rules.asks(&receipt(), &[]), None);
        assert_eq!(
            rules.asks(
                &Profile::new("invoice").unwrap(),
                &[reason("total_mismatch", "total")]
            ),
            None
        );
    }

    #[test]
    fn the_childs_key_is_the_parents_alone() {
        let a = JobId::parse("doc-0123456789abcdef0123456789abcdef01234567").unwrap();
        let b = JobId::parse("doc-1123456789abcdef0123456789abcdef01234567").unwrap();
        assert_eq!(child_key(&a).job_id(), child_key(&a).job_id());
        assert_ne!(child_key(&a).job_id(), child_key(&b).job_id());
        assert_ne!(child_key(&a).job_id(), a);
    }

    fn document(total: &str, subtotal: Option<&str>) -> Document {
        let mut fields = serde_json::json!({"profile": "receipt", "total": {"value": total}});
        if let Some(s) = subtotal {
            fields["subtotal"] = serde_json::json!({ "value": s });
        }
        serde_json::from_value(serde_json::json!({
            "schema_version": "1", "job_id": "j",
            "vendor": {"name": "sim", "job_id": "v"},
            "pages": [], "reading_order": [], "tables": [], "key_values": [],
            "fields": fields
        }))
        .unwrap()
    }

    #[test]
    fn readings_that_normalize_alike_agree_and_any_difference_disagrees() {
        let asked = SecondOpinion::asked(
            "azure",
            child_key(&JobId::parse("doc-0123456789abcdef0123456789abcdef01234567").unwrap())
                .job_id(),
            vec!["subtotal".into(), "total".into()],
        );
        let agreed = asked.decide(&document("12.30", None), &document("12.3", None));
        assert_eq!(agreed.outcome, Outcome::Agreed, "{:?}", agreed.readings);
        let differ = asked.decide(&document("12.30", None), &document("12.80", None));
        assert_eq!(differ.outcome, Outcome::Disagreed);
        assert!(differ
            .side_by_side("sim")
            .contains("total: 12.30 (sim) / 12.80 (azure) differ"));
        let missing = asked.decide(&document("12.30", Some("11.00")), &document("12.30", None));
        assert_eq!(missing.outcome, Outcome::Disagreed);
        let back = SecondOpinion::from_json(&differ.to_json()).unwrap();
        assert_eq!(back, differ);
    }
}
