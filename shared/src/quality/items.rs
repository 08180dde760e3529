//! Line items scored: which extracted item is which expected one, then how many were found and
//! how many of their columns are right.
//!
//! Items have no key to join on, and a vendor may split, merge, drop or reorder them. Each
//! expected item is paired with at most one extracted item by an **optimal assignment** (the
//! Hungarian method) that maximizes the summed similarity of the pairs; a pair below
//! [`MATCH_AT`] is no match. Then, per document: recall (expected items matched), precision
//! (extracted items matched) and, over the matched pairs, per-column accuracy with the same
//! normalization as the summary fields (money as a number, text as its letters and digits).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::normalize::{self, edit_distance, Kind};
use super::pack::TruthItem;
use crate::document::LineItem;

/// The least similarity at which an assigned pair counts as the same item.
pub const MATCH_AT: f64 = 0.5;

/// The columns scored, where the truth has them.
pub const COLUMNS: [&str; 4] = ["description", "quantity", "unit_price", "amount"];

/// Matched and compared counts for one document's items (summed over a run the same way).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemCounts {
    pub expected: u64,
    pub extracted: u64,
    pub matched: u64,
    /// Column → (pairs compared, pairs right).
    pub columns: BTreeMap<String, (u64, u64)>,
}

impl ItemCounts {
    pub fn recall(&self) -> Option<f64> {
        (self.expected > 0).then(|| self.matched as f64 / self.expected as f64)
    }

    pub fn precision(&self) -> Option<f64> {
        (self.extracted > 0).then(|| self.matched as f64 / self.extracted as f64)
    }

    pub fn column_accuracy(&self, column: &str) -> Option<f64> {
        self.columns
            .get(column)
            .filter(|(compared, _)| *compared > 0)
            .map(|(compared, right)| *right as f64 / *compared as f64)
    }

    pub fn add(&mut self, other: &ItemCounts) {
        self.expected += other.expected;
        self.extracted += other.extracted;
        self.matched += other.matched;
        for (column, (compared, right)) in &other.columns {
            let entry = self.columns.entry(column.clone()).or_default();
            entry.0 += compared;
            entry.1 += right;
        }
    }
}

/// 1 for the same text after normalization, down to 0 by edit distance over the longer one.
fn text_similarity(a: &str, b: &str) -> f64 {
    let (a, b) = (
        normalize::normalize(Kind::Text, a).unwrap_or_default(),
        normalize::normalize(Kind::Text, b).unwrap_or_default(),
    );
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let longest = a.len().max(b.len());
    if longest == 0 {
        return 0.0;
    }
    1.0 - edit_distance(&a, &b) as f64 / longest as f64
}

fn same_number(expected: &str, extracted: &rust_decimal::Decimal) -> bool {
    normalize::same("amount", expected, &extracted.to_string())
}

/// How alike an expected item and an extracted one are: the description counts 0.6, the
/// amount 0.4 (a right amount with a garbled description is still the same item).
pub fn similarity(expected: &TruthItem, extracted: &LineItem) -> f64 {
    0.6 * text_similarity(&expected.description, &extracted.description)
        + if same_number(&expected.amount, &extracted.amount) {
            0.4
        } else {
            0.0
        }
}

/// The assignment that maximizes the summed `weights` (rows × columns, any shape): for each
/// row, its column or `None`. The Hungarian method (Kuhn–Munkres with potentials), O(n³).
pub fn assign(weights: &[Vec<f64>]) -> Vec<Option<usize>> {
    let rows = weights.len();
    let columns = weights.iter().map(Vec::len).max().unwrap_or(0);
    let n = rows.max(columns);
    if n == 0 {
        return Vec::new();
    }
    // Square cost matrix (minimize): cost = max − weight; padding costs the same as a zero weight.
    let top = weights.iter().flatten().copied().fold(0.0_f64, f64::max);
    let cost = |i: usize, j: usize| -> f64 {
        top - weights
            .get(i)
            .and_then(|r| r.get(j))
            .copied()
            .unwrap_or(0.0)
    };
    // 1-based arrays as in the classic formulation; column 0 is the virtual start.
    let mut u = vec![0.0; n + 1];
    let mut v = vec![0.0; n + 1];
    let mut owner = vec![0usize; n + 1];
    let mut way = vec![0usize; n + 1];
    for i in 1..=n {
        owner[0] = i;
        let mut j0 = 0;
        let mut min = vec![f64::INFINITY; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = owner[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=n {
                if !used[j] {
                    let reduced = cost(i0 - 1, j - 1) - u[i0] - v[j];
                    if reduced < min[j] {
                        min[j] = reduced;
                        way[j] = j0;
                    }
                    if min[j] < delta {
                        delta = min[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[owner[j]] += delta;
                    v[j] -= delta;
                } else {
                    min[j] -= delta;
                }
            }
            j0 = j1;
            if owner[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            owner[j0] = owner[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut out = vec![None; rows];
    for (j, &i) in owner.iter().enumerate().skip(1) {
        // A padded row or column is no assignment; nor is a cell a short row does not have.
        if (1..=rows).contains(&i) && j <= weights[i - 1].len() {
            out[i - 1] = Some(j - 1);
        }
    }
    out
}

/// Scores one document's extracted items against its expected ones.
pub fn score(expected: &[TruthItem], extracted: &[LineItem]) -> ItemCounts {
    let weights: Vec<Vec<f64>> = expected
        .iter()
        .map(|e| extracted.iter().map(|x| similarity(e, x)).collect())
        .collect();
    let mut counts = ItemCounts {
        expected: expected.len() as u64,
        extracted: extracted.len() as u64,
        ..ItemCounts::default()
    };
    for (e, x) in assign(&weights).into_iter().enumerate() {
        let Some(x) = x.filter(|&x| weights[e][x] >= MATCH_AT) else {
            continue;
        };
        counts.matched += 1;
        let (want, got) = (&expected[e], &extracted[x]);
        let decimal = |d: &Option<rust_decimal::Decimal>| d.map(|d| d.to_string());
        let pairs = [
            (
                "description",
                Some(&want.description),
                Some(got.description.clone()),
            ),
            ("quantity", want.quantity.as_ref(), decimal(&got.quantity)),
            (
                "unit_price",
                want.unit_price.as_ref(),
                decimal(&got.unit_price),
            ),
            ("amount", Some(&want.amount), Some(got.amount.to_string())),
        ];
        for (column, want, got) in pairs {
            let Some(want) = want else { continue };
            let right = got.is_some_and(|got| {
                let field = if column == "description" {
                    "description"
                } else {
                    "amount"
                };
                normalize::same(field, want, &got)
            });
            let entry = counts.columns.entry(column.to_owned()).or_default();
            entry.0 += 1;
            entry.1 += u64::from(right);
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    fn want(description: &str, amount: &str) -> TruthItem {
        TruthItem {
            description: description.into(),
            quantity: None,
            unit_price: None,
            amount: amount.into(),
        }
    }

    fn got(description: &str, amount: &str) -> LineItem {
        LineItem {
            description: description.into(),
            quantity: None,
            unit_price: None,
            amount: Decimal::from_str(amount).unwrap(),
            confidence: None,
        }
    }

    /// Every assignment, for checking the Hungarian one against brute force.
    fn best_by_brute_force(weights: &[Vec<f64>], columns: usize) -> f64 {
        fn go(weights: &[Vec<f64>], row: usize, used: &mut Vec<bool>) -> f64 {
            if row == weights.len() {
                return 0.0;
            }
            let mut best = go(weights, row + 1, used); // this row unassigned
            for j in 0..used.len() {
                if !used[j] {
                    used[j] = true;
                    best = best.max(weights[row][j] + go(weights, row + 1, used));
                    used[j] = false;
                }
            }
            best
        }
        go(weights, 0, &mut vec![false; columns])
    }

    #[test]
    fn the_assignment_is_optimal_not_greedy() {
        // Greedy takes (0,0)=0.9 and leaves row 1 with 0.1; the optimum is 0.8 + 0.85.
        let weights = vec![vec![0.9, 0.8], vec![0.85, 0.1]];
        assert_eq!(assign(&weights), vec![Some(1), Some(0)]);
        // Rectangular both ways.
        assert_eq!(assign(&[vec![0.1, 0.7, 0.2]]), vec![Some(1)]);
        let tall = assign(&[vec![0.3], vec![0.9], vec![0.5]]);
        assert_eq!(tall, vec![None, Some(0), None]);
    }

    #[test]
    fn the_assignment_matches_brute_force_on_generated_matrices() {
        // A small deterministic generator: no flakiness, many shapes.
        let mut seed = 0x2545_f491_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 1000) as f64 / 1000.0
        };
        for rows in 1..=5 {
            for columns in 1..=5 {
                for _ in 0..20 {
                    let weights: Vec<Vec<f64>> = (0..rows)
                        .map(|_| (0..columns).map(|_| next()).collect())
                        .collect();
                    let chosen = assign(&weights);
                    let mut seen = std::collections::BTreeSet::new();
                    let total: f64 = chosen
                        .iter()
                        .enumerate()
                        .filter_map(|(i, j)| j.map(|j| (i, j)))
                        .inspect(|(_, j)| assert!(seen.insert(*j), "column used twice"))
                        .map(|(i, j)| weights[i][j])
                        .sum();
                    let best = best_by_brute_force(&weights, columns);
                    assert!(
                        (total - best).abs() < 1e-9,
                        "{weights:?}: {total} vs {best}"
                    );
                }
            }
        }
    }

    #[test]
    fn reordered_garbled_and_missing_items_are_counted_for_what_they_are() {
        let expected = [
            want("Consulting services", "1000.00"),
            want("Support plan", "200.00"),
            want("Freight", "88.40"),
        ];
        let extracted = [
            // Reordered, one description misread, one amount misread, one extra, one missing.
            got("Suport plan", "200.00"),
            got("Consulting services", "100.00"),
            got("Total Due", "1388.40"),
        ];
        let c = score(&expected, &extracted);
        assert_eq!((c.expected, c.extracted, c.matched), (3, 3, 2));
        assert_eq!(c.recall(), Some(2.0 / 3.0));
        assert_eq!(c.precision(), Some(2.0 / 3.0));
        assert_eq!(c.columns["description"], (2, 1));
        assert_eq!(c.columns["amount"], (2, 1));
        assert!(!c.columns.contains_key("quantity"), "the truth has none");
        assert_eq!(score(&expected, &[]).recall(), Some(0.0));
        assert_eq!(score(&[], &extracted).precision(), Some(0.0));
    }
}
