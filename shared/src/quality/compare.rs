//! A run against its baseline, document by document.
//!
//! Two averages can hide a regression (five documents got worse, five unrelated ones got better)
//! and invent one (a run with different documents). So the comparison is paired: for each
//! profile and field, only documents scored in both runs count, and the evidence is the
//! documents that *flipped* — right in the baseline and wrong now (`b`), or the reverse (`c`).
//! A regression is a net drop of more than `min_drop` of the documents **and** a one-sided exact
//! sign test on the flips (McNemar's exact test) below `alpha`: under "nothing changed", a flip
//! is as likely either way, so `P(X ≥ b | X ~ Bin(b + c, ½))` says how surprising `b` is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::score::DocumentScore;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegressionPolicy {
    /// Net share of documents that must have flipped to wrong (`(b - c) / n`).
    pub min_drop: f64,
    /// Significance of the sign test.
    pub alpha: f64,
}

impl Default for RegressionPolicy {
    fn default() -> Self {
        RegressionPolicy {
            min_drop: 0.05,
            alpha: 0.05,
        }
    }
}

/// A document whose field changed between the runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flip {
    pub key: String,
    pub expected: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub confidence: Option<f64>,
    /// The raw payloads of the run that read it wrong (or right, for an improvement).
    pub raw: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldComparison {
    pub profile: String,
    pub field: String,
    /// Documents scored on this field in both runs.
    pub paired: u64,
    pub baseline_accuracy: f64,
    pub accuracy: f64,
    pub right_to_wrong: Vec<Flip>,
    pub wrong_to_right: Vec<Flip>,
    pub p_value: f64,
    pub regressed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub baseline_run: String,
    pub policy: RegressionPolicy,
    pub fields: Vec<FieldComparison>,
}

impl Comparison {
    pub fn regressions(&self) -> impl Iterator<Item = &FieldComparison> {
        self.fields.iter().filter(|f| f.regressed)
    }
}

/// `P(X ≥ k)` for `X ~ Bin(n, ½)`: the one-sided exact sign test.
pub fn sign_test(k: u64, n: u64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    // Σ_{i=k..n} C(n, i) / 2^n, in logs so large packs do not overflow.
    let ln_choose =
        |n: u64, i: u64| -> f64 { (1..=i).map(|j| ((n - i + j) as f64 / j as f64).ln()).sum() };
    (k..=n)
        .map(|i| (ln_choose(n, i) - n as f64 * std::f64::consts::LN_2).exp())
        .sum::<f64>()
        .min(1.0)
}

/// Compares `current` with `baseline` per profile and field.
pub fn compare(
    baseline_run: &str,
    baseline: &[DocumentScore],
    current: &[DocumentScore],
    policy: RegressionPolicy,
) -> Comparison {
    let before: BTreeMap<&str, &DocumentScore> =
        baseline.iter().map(|d| (d.key.as_str(), d)).collect();
    let mut by_field: BTreeMap<(String, String), FieldComparison> = BTreeMap::new();
    for now in current {
        let Some(then) = before.get(now.key.as_str()) else {
            continue;
        };
        for (name, after) in &now.fields {
            let Some(previous) = then.fields.get(name) else {
                continue;
            };
            let entry = by_field
                .entry((now.profile.clone(), name.clone()))
                .or_insert_with(|| FieldComparison {
                    profile: now.profile.clone(),
                    field: name.clone(),
                    paired: 0,
                    baseline_accuracy: 0.0,
                    accuracy: 0.0,
                    right_to_wrong: Vec::new(),
                    wrong_to_right: Vec::new(),
                    p_value: 1.0,
                    regressed: false,
                });
            entry.paired += 1;
            entry.baseline_accuracy += f64::from(u8::from(previous.correct));
            entry.accuracy += f64::from(u8::from(after.correct));
            let flip = |raw: &Option<String>| Flip {
                key: now.key.clone(),
                expected: after.expected.clone(),
                before: previous.extracted.clone(),
                after: after.extracted.clone(),
                confidence: after.confidence,
                raw: raw.clone(),
            };
            match (previous.correct, after.correct) {
                (true, false) => entry.right_to_wrong.push(flip(&now.raw)),
                (false, true) => entry.wrong_to_right.push(flip(&now.raw)),
                _ => {}
            }
        }
    }
    let fields = by_field
        .into_values()
        .map(|mut f| {
            let n = f.paired.max(1) as f64;
            f.baseline_accuracy /= n;
            f.accuracy /= n;
            let b = f.right_to_wrong.len() as u64;
            let c = f.wrong_to_right.len() as u64;
            f.p_value = sign_test(b, b + c);
            let drop = (b as f64 - c as f64) / n;
            f.regressed = drop > policy.min_drop && f.p_value < policy.alpha;
            f
        })
        .collect();
    Comparison {
        baseline_run: baseline_run.to_owned(),
        policy,
        fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::score::FieldScore;

    fn run(correct: &[bool]) -> Vec<DocumentScore> {
        correct
            .iter()
            .enumerate()
            .map(|(i, ok)| DocumentScore {
                key: format!("receipts/{i}.jpg"),
                profile: "receipt".into(),
                job_id: None,
                state: "Completed".into(),
                fields: BTreeMap::from([(
                    "total".to_owned(),
                    FieldScore {
                        expected: "9.00".into(),
                        extracted: Some(if *ok { "9.00" } else { "90.0" }.into()),
                        confidence: Some(0.95),
                        correct: *ok,
                    },
                )]),
                cer: None,
                wer: None,
                rules: vec![],
                latency_ms: None,
                cost: None,
                raw: None,
                language: None,
                detected_language: None,
                items: None,
            })
            .collect()
    }

    #[test]
    fn the_sign_test_matches_the_binomial() {
        assert_eq!(sign_test(0, 5), 1.0);
        assert!((sign_test(5, 5) - 1.0 / 32.0).abs() < 1e-12);
        assert!((sign_test(4, 5) - 6.0 / 32.0).abs() < 1e-12);
        assert!(sign_test(300, 400) < 1e-20);
    }

    #[test]
    fn flips_one_way_are_a_regression_and_noise_is_not() {
        let baseline = run(&[true; 20]);
        let mut broken = [true; 20];
        for i in [1, 4, 9, 12, 17] {
            broken[i] = false;
        }
        let c = compare(
            "base",
            &baseline,
            &run(&broken),
            RegressionPolicy::default(),
        );
        let total = &c.fields[0];
        assert!(total.regressed, "{total:?}");
        assert_eq!(total.right_to_wrong.len(), 5);
        assert_eq!(total.right_to_wrong[0].key, "receipts/1.jpg");
        assert_eq!(total.right_to_wrong[0].after.as_deref(), Some("90.0"));
        assert_eq!((total.baseline_accuracy, total.accuracy), (1.0, 0.75));

        // The same averages, but documents swapped places: three flips each way is no evidence.
        let mut a = [true; 20];
        let mut b = [true; 20];
        for i in [0, 1, 2] {
            a[i] = false;
        }
        for i in [3, 4, 5] {
            b[i] = false;
        }
        let c = compare("base", &run(&a), &run(&b), RegressionPolicy::default());
        assert!(!c.fields[0].regressed);
        // Two flips in twenty are not significant.
        let mut two = [true; 20];
        two[0] = false;
        two[1] = false;
        assert!(
            !compare("base", &baseline, &run(&two), RegressionPolicy::default()).fields[0]
                .regressed
        );
        // Unchanged: nothing.
        assert_eq!(
            compare("base", &baseline, &baseline, RegressionPolicy::default())
                .regressions()
                .count(),
            0
        );
    }
}
