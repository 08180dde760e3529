//! Making an expected value and an extracted one comparable: money as a number, dates as a date,
//! names as their letters and digits. "Exact match after normalization" means these, and nothing
//! looser: `9.00` and `9` are the same total, `90.0` is not.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use std::str::FromStr;

/// How a field's values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Money,
    Date,
    /// Currency codes and the like: uppercase, trimmed.
    Code,
    /// Names and identifiers: uppercase letters and digits only.
    Text,
}

/// The kind of a normalized-schema field.
pub fn kind_of(field: &str) -> Kind {
    match field {
        "total" | "subtotal" | "tax" | "amount" | "unit_price" | "quantity" => Kind::Money,
        "date" | "issue_date" | "due_date" | "date_of_birth" | "expiry_date" => Kind::Date,
        "currency" | "sex" | "nationality" | "issuing_country" => Kind::Code,
        _ => Kind::Text,
    }
}

/// A value in its comparable form, or `None` when it does not read as its kind.
pub fn normalize(kind: Kind, value: &str) -> Option<String> {
    match kind {
        Kind::Money => money(value).map(|d| d.normalize().to_string()),
        Kind::Date => date(value).map(|d| d.format("%Y-%m-%d").to_string()),
        Kind::Code => {
            let code = value.trim().to_uppercase();
            (!code.is_empty()).then_some(code)
        }
        Kind::Text => {
            let text: String = value
                .chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_uppercase)
                .collect();
            (!text.is_empty()).then_some(text)
        }
    }
}

/// Whether two values are the same after normalization (unreadable values match nothing).
pub fn same(field: &str, expected: &str, extracted: &str) -> bool {
    let kind = kind_of(field);
    match (normalize(kind, expected), normalize(kind, extracted)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn money(value: &str) -> Option<Decimal> {
    let cleaned: String = value
        .chars()
        .filter(|c| c.is_ascii_digit() || matches!(c, '.' | '-'))
        .collect();
    Decimal::from_str(&cleaned).ok()
}

/// ISO first, then day-first forms (the pack's receipts are Malaysian: `25/12/2018`).
fn date(value: &str) -> Option<NaiveDate> {
    let value = value.trim();
    const FORMATS: [&str; 10] = [
        "%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%d/%m/%y", "%d-%m-%y", "%d.%m.%y",
        "%d %b %Y", "%d-%b-%Y", "%d %B %Y",
    ];
    FORMATS
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(value, f).ok())
}

/// Text for CER and WER: uppercase, whitespace collapsed.
pub fn text(lines: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    lines
        .into_iter()
        .flat_map(|l| {
            l.as_ref()
                .split_whitespace()
                .map(str::to_uppercase)
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Levenshtein distance between two sequences.
pub fn edit_distance<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(x != y);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// Character error rate of `hypothesis` against `reference` (edits per reference character).
pub fn cer(reference: &str, hypothesis: &str) -> Option<f64> {
    let r: Vec<char> = reference.chars().collect();
    let h: Vec<char> = hypothesis.chars().collect();
    (!r.is_empty()).then(|| edit_distance(&r, &h) as f64 / r.len() as f64)
}

/// Word error rate (edits per reference word).
pub fn wer(reference: &str, hypothesis: &str) -> Option<f64> {
    let r: Vec<&str> = reference.split_whitespace().collect();
    let h: Vec<&str> = hypothesis.split_whitespace().collect();
    (!r.is_empty()).then(|| edit_distance(&r, &h) as f64 / r.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_dates_and_names_compare_by_meaning() {
        assert!(same("total", "9.00", "9"));
        assert!(same("total", "RM 1,320.00", "1320.00"));
        assert!(!same("total", "9.00", "90.0"));
        assert!(same("date", "25/12/2018", "2018-12-25"));
        assert!(!same("date", "25/12/2018", "2018-12-26"));
        assert!(same(
            "merchant",
            "BOOK TA .K (TAMAN DAYA) SDN BHD",
            "book ta.k(taman daya) sdn bhd"
        ));
        assert!(!same("merchant", "SDN BHD", "SDN BND"));
        assert!(!same("total", "", ""));
        assert!(same("currency", "myr", " MYR"));
    }

    #[test]
    fn error_rates_count_edits_per_reference_unit() {
        assert_eq!(edit_distance(&['a', 'b', 'c'], &['a', 'x', 'c', 'd']), 2);
        assert_eq!(cer("ABCD", "ABCD"), Some(0.0));
        assert_eq!(cer("ABCD", "ABXD"), Some(0.25));
        assert_eq!(wer("TOTAL 9.00 RM", "TOTAL 9.00"), Some(1.0 / 3.0));
        assert_eq!(cer("", "x"), None);
        assert_eq!(text(["  Total  9.00", "rm"]), "TOTAL 9.00 RM");
    }
}
