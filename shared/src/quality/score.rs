//! One run's scores: per document, then per profile and field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::normalize;
use super::pack::PackDocument;
use crate::document::Document;
use crate::job::{Job, JobState};

/// Confidence at or above which a wrong value is "high-confidence wrong": the misplaced decimal
/// nobody reviews because the vendor was sure.
pub const HIGH_CONFIDENCE: f64 = 0.9;

/// The calibration buckets' lower bounds (the last runs to 1.0 inclusive).
pub const CONFIDENCE_BUCKETS: [f64; 5] = [0.0, 0.5, 0.7, 0.8, 0.9];

/// One field of one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldScore {
    pub expected: String,
    /// The extracted value as stored in the result, `None` when the field is null.
    pub extracted: Option<String>,
    pub confidence: Option<f64>,
    pub correct: bool,
}

/// One document of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentScore {
    /// The key within the pack (`receipts/000.jpg`): the same document in every run.
    pub key: String,
    pub profile: String,
    pub job_id: Option<String>,
    /// The job's state when scored (`Completed`, `NeedsReview`, `Failed`…, or `missing`).
    pub state: String,
    pub fields: BTreeMap<String, FieldScore>,
    pub cer: Option<f64>,
    pub wer: Option<f64>,
    /// Review rules that fired (`NeedsReview`).
    pub rules: Vec<String>,
    pub latency_ms: Option<u64>,
    /// What the vendor billed for it, in the price table's currency.
    pub cost: Option<String>,
    /// Where its raw vendor payloads are archived (`s3://…/raw/<job>/`).
    pub raw: Option<String>,
    /// Its line items against the truth's, where the truth has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<super::items::ItemCounts>,
    /// The language the truth says it is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The language the pipeline recorded on its job (`language::TextSegments`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_language: Option<String>,
}

/// Accuracy of a field in one confidence bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub from: f64,
    pub values: u64,
    pub correct: u64,
}

/// One profile and field over a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldStats {
    /// Documents whose truth has the field.
    pub documents: u64,
    pub correct: u64,
    /// Documents where the field came back null.
    pub null: u64,
    /// Wrong values with confidence ≥ [`HIGH_CONFIDENCE`].
    pub high_confidence_wrong: u64,
    pub calibration: Vec<Bucket>,
}

impl FieldStats {
    pub fn accuracy(&self) -> f64 {
        ratio(self.correct, self.documents)
    }

    pub fn null_rate(&self) -> f64 {
        ratio(self.null, self.documents)
    }
}

/// One profile over a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileStats {
    pub documents: u64,
    /// Documents that did not settle with a result (failed, rejected, still running).
    pub without_result: u64,
    pub fields: BTreeMap<String, FieldStats>,
    pub mean_cer: Option<f64>,
    pub mean_wer: Option<f64>,
    pub rules: BTreeMap<String, u64>,
    pub latency_p50_ms: Option<u64>,
    pub latency_p95_ms: Option<u64>,
    /// Mean billed cost per document that has one.
    pub cost_per_document: Option<f64>,
    /// Line items over the documents whose truth has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<super::items::ItemCounts>,
}

/// Per profile, over a run.
pub type Scores = BTreeMap<String, ProfileStats>;

/// A stored run: what was run, each document's score, and the aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub pack: String,
    pub vendor: String,
    /// Models the results named, by profile.
    pub models: BTreeMap<String, String>,
    pub started_at_ms: u64,
    pub scored_at_ms: u64,
    pub documents: Vec<DocumentScore>,
    pub scores: Scores,
    /// The comparison with the baseline, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<super::Comparison>,
    /// The same scores per language of the pack's documents (the truth's `language`; `unknown`
    /// where it gives none), so a model that reads English well and German badly shows it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_language: BTreeMap<String, Scores>,
}

impl RunRecord {
    /// `profile.field` of every field that regressed against the baseline.
    pub fn regressions(&self) -> Vec<String> {
        self.comparison
            .iter()
            .flat_map(|c| c.regressions())
            .map(|r| format!("{}.{}", r.profile, r.field))
            .collect()
    }
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

/// The profile a pack key's documents get: its first segment, singular (`receipts/` → receipt).
pub fn profile_of_key(key: &str) -> String {
    let segment = key.split('/').next().unwrap_or_default();
    segment.strip_suffix('s').unwrap_or(segment).to_owned()
}

/// A result's typed fields as `name → (value, confidence)`, values as the result stores them.
pub fn extracted_fields(document: &Document) -> BTreeMap<String, (String, Option<f64>)> {
    let value = serde_json::to_value(&document.fields).unwrap_or_default();
    let mut out = BTreeMap::new();
    if let Some(object) = value.as_object() {
        for (name, field) in object {
            let text = match field.get("value") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => continue,
            };
            out.insert(
                name.clone(),
                (text, field.get("confidence").and_then(Value::as_f64)),
            );
        }
    }
    out
}

/// Scores one document: its truth against the job and the normalized result it produced.
pub fn score_document(
    pack_document: &PackDocument,
    job: Option<&Job>,
    result: Option<&Document>,
    results_bucket: &str,
) -> DocumentScore {
    let extracted = result.map(extracted_fields).unwrap_or_default();
    let fields = pack_document
        .truth
        .fields
        .iter()
        .map(|(name, expected)| {
            let got = extracted.get(name);
            let correct = got.is_some_and(|(v, _)| normalize::same(name, expected, v));
            (
                name.clone(),
                FieldScore {
                    expected: expected.clone(),
                    extracted: got.map(|(v, _)| v.clone()),
                    confidence: got.and_then(|(_, c)| *c),
                    correct,
                },
            )
        })
        .collect();
    // A vendor that returns fields without text (Mindee's models, by default) has no error
    // rate to measure, rather than a 100% one.
    let has_text = result.is_some_and(|doc| doc.lines().next().is_some());
    let (cer, wer) = match (result, pack_document.truth.lines.is_empty()) {
        (Some(doc), false) if has_text => {
            let reference = normalize::text(&pack_document.truth.lines);
            let by_id: BTreeMap<&str, &str> = doc
                .lines()
                .map(|(_, l)| (l.id.as_str(), l.text.as_str()))
                .collect();
            let hypothesis = normalize::text(
                doc.reading_order
                    .iter()
                    .filter_map(|id| by_id.get(id.as_str()).copied()),
            );
            (
                normalize::cer(&reference, &hypothesis),
                normalize::wer(&reference, &hypothesis),
            )
        }
        _ => (None, None),
    };
    let settled = job.is_some_and(|j| j.state.is_terminal() || j.state == JobState::NeedsReview);
    DocumentScore {
        key: pack_document.key.clone(),
        profile: job.map_or_else(
            || profile_of_key(&pack_document.key),
            |j| j.profile.as_str().to_owned(),
        ),
        job_id: job.map(|j| j.id.to_string()),
        state: job.map_or_else(|| "missing".to_owned(), |j| j.state.to_string()),
        fields,
        cer,
        wer,
        rules: job
            .and_then(|j| j.result_summary.as_deref())
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .and_then(|v| {
                v["review"].as_array().map(|rules| {
                    rules
                        .iter()
                        .filter_map(|r| r.as_str().map(str::to_owned))
                        .collect()
                })
            })
            .unwrap_or_default(),
        latency_ms: job
            .filter(|_| settled)
            .map(|j| j.state_since.since(j.created_at).as_millis() as u64),
        cost: job
            .and_then(|j| j.cost.as_ref())
            .and_then(|c| c.actual)
            .map(|d| d.to_string()),
        raw: job.map(|j| format!("s3://{results_bucket}/raw/{}/", j.id)),
        items: (!pack_document.truth.line_items.is_empty()).then(|| {
            let extracted = match result.map(|d| &d.fields) {
                Some(crate::document::Fields::Invoice(i)) => i.line_items.as_slice(),
                _ => &[],
            };
            super::items::score(&pack_document.truth.line_items, extracted)
        }),
        language: pack_document.truth.language.clone(),
        detected_language: job
            .and_then(|j| j.text.as_ref())
            .and_then(|t| t.language.clone()),
    }
}

/// The nearest-rank `p` percentile (0 < p ≤ 1) of ascending values; `None` when there are none.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0u64), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// [`aggregate`] per language of the documents (as the truth gives it; `unknown` without).
pub fn aggregate_by_language(documents: &[DocumentScore]) -> BTreeMap<String, Scores> {
    let mut by_language: BTreeMap<String, Vec<DocumentScore>> = BTreeMap::new();
    for d in documents {
        let language = d.language.clone().unwrap_or_else(|| "unknown".into());
        by_language.entry(language).or_default().push(d.clone());
    }
    by_language
        .into_iter()
        .map(|(language, docs)| (language, aggregate(&docs)))
        .collect()
}

/// Aggregates documents per profile and field.
pub fn aggregate(documents: &[DocumentScore]) -> Scores {
    let mut scores = Scores::new();
    let mut by_profile: BTreeMap<&str, Vec<&DocumentScore>> = BTreeMap::new();
    for d in documents {
        by_profile.entry(&d.profile).or_default().push(d);
    }
    for (profile, docs) in by_profile {
        let mut stats = ProfileStats {
            documents: docs.len() as u64,
            without_result: docs
                .iter()
                .filter(|d| d.state != "Completed" && d.state != "NeedsReview")
                .count() as u64,
            mean_cer: mean(docs.iter().filter_map(|d| d.cer)),
            mean_wer: mean(docs.iter().filter_map(|d| d.wer)),
            cost_per_document: mean(
                docs.iter()
                    .filter_map(|d| d.cost.as_deref().and_then(|c| c.parse::<f64>().ok())),
            ),
            ..ProfileStats::default()
        };
        let mut latencies: Vec<u64> = docs.iter().filter_map(|d| d.latency_ms).collect();
        latencies.sort_unstable();
        stats.latency_p50_ms = percentile(&latencies, 0.5);
        stats.latency_p95_ms = percentile(&latencies, 0.95);
        for d in &docs {
            if let Some(items) = &d.items {
                stats.items.get_or_insert_with(Default::default).add(items);
            }
            for rule in &d.rules {
                *stats.rules.entry(rule.clone()).or_default() += 1;
            }
            for (name, f) in &d.fields {
                let field = stats
                    .fields
                    .entry(name.clone())
                    .or_insert_with(|| FieldStats {
                        calibration: CONFIDENCE_BUCKETS
                            .iter()
                            .map(|from| Bucket {
                                from: *from,
                                ..Bucket::default()
                            })
                            .collect(),
                        ..FieldStats::default()
                    });
                field.documents += 1;
                field.correct += u64::from(f.correct);
                field.null += u64::from(f.extracted.is_none());
                if let Some(c) = f.confidence {
                    if !f.correct && c >= HIGH_CONFIDENCE {
                        field.high_confidence_wrong += 1;
                    }
                    if let Some(bucket) = field.calibration.iter_mut().rev().find(|b| c >= b.from) {
                        bucket.values += 1;
                        bucket.correct += u64::from(f.correct);
                    }
                }
            }
        }
        scores.insert(profile.to_owned(), stats);
    }
    scores
}

#[cfg(test)]
mod tests {
    use super::*;

    /// name, expected, extracted, confidence, correct
    type Row<'a> = (&'a str, &'a str, Option<&'a str>, Option<f64>, bool);

    fn doc(key: &str, fields: &[Row]) -> DocumentScore {
        DocumentScore {
            key: key.into(),
            profile: "receipt".into(),
            job_id: None,
            state: "Completed".into(),
            fields: fields
                .iter()
                .map(|(n, e, x, c, ok)| {
                    (
                        (*n).to_owned(),
                        FieldScore {
                            expected: (*e).into(),
                            extracted: x.map(str::to_owned),
                            confidence: *c,
                            correct: *ok,
                        },
                    )
                })
                .collect(),
            cer: Some(0.1),
            wer: Some(0.2),
            rules: vec!["total_mismatch".into()],
            latency_ms: Some(100),
            cost: Some("0.01".into()),
            raw: None,
            items: None,
            language: None,
            detected_language: None,
        }
    }

    #[test]
    fn aggregates_accuracy_nulls_calibration_and_confident_mistakes() {
        let docs = [
            doc(
                "receipts/a.jpg",
                &[("total", "9.00", Some("9.00"), Some(0.95), true)],
            ),
            doc(
                "receipts/b.jpg",
                &[("total", "9.00", Some("90.0"), Some(0.95), false)],
            ),
            doc("receipts/c.jpg", &[("total", "9.00", None, None, false)]),
            doc(
                "receipts/d.jpg",
                &[("total", "1.00", Some("7.00"), Some(0.55), false)],
            ),
        ];
        let scores = aggregate(&docs);
        let total = &scores["receipt"].fields["total"];
        assert_eq!((total.documents, total.correct, total.null), (4, 1, 1));
        assert_eq!(total.high_confidence_wrong, 1);
        assert_eq!(total.accuracy(), 0.25);
        let top = total.calibration.last().unwrap();
        assert_eq!((top.from, top.values, top.correct), (0.9, 2, 1));
        let mid = &total.calibration[1];
        assert_eq!((mid.from, mid.values, mid.correct), (0.5, 1, 0));
        assert_eq!(scores["receipt"].rules["total_mismatch"], 4);
        assert_eq!(scores["receipt"].latency_p95_ms, Some(100));
    }

    #[test]
    fn scores_are_read_per_language() {
        let mut de = doc(
            "invoices/de.pdf",
            &[("total", "119.00", Some("119.00"), Some(0.9), true)],
        );
        de.language = Some("de".into());
        let mut fr = doc(
            "invoices/fr.pdf",
            &[("total", "119.00", Some("19.00"), Some(0.9), false)],
        );
        fr.language = Some("fr".into());
        let plain = doc(
            "receipts/a.jpg",
            &[("total", "9.00", Some("9.00"), None, true)],
        );
        let by = aggregate_by_language(&[de, fr, plain]);
        assert_eq!(
            by.keys().collect::<Vec<_>>(),
            ["de", "fr", "unknown"],
            "one group per language, and one for documents without"
        );
        assert_eq!(by["de"]["receipt"].fields["total"].accuracy(), 1.0);
        assert_eq!(by["fr"]["receipt"].fields["total"].accuracy(), 0.0);
        assert_eq!(by["unknown"]["receipt"].documents, 1);
    }

    #[test]
    fn profiles_come_from_the_pack_prefix() {
        assert_eq!(profile_of_key("receipts/000.jpg"), "receipt");
        assert_eq!(profile_of_key("invoices/x.pdf"), "invoice");
    }
}
