//! Field-level rules: what makes a result trustworthy enough to complete without a human.
//!
//! A failed rule or a field below the confidence threshold sends the job to `NeedsReview` with
//! every reason. High confidence never overrides a failed rule: a vendor can be sure and wrong.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

use crate::document::{Field, Fields, IdFields};
use crate::mrz;
use crate::vendors::normalize::{AmbiguousDate, MultipleDocuments};

#[derive(Debug, Clone, PartialEq)]
pub struct RuleConfig {
    /// `MIN_FIELD_CONFIDENCE` (default 0.6): fields below it need review.
    pub min_confidence: f64,
    /// `TOTAL_TOLERANCE` (default 0.02): allowed difference between a total and its parts.
    pub tolerance: Decimal,
    /// `MAX_FUTURE_DAYS` (default 1): how far past today a document date may be (time zones).
    pub max_future_days: i64,
    /// `MIN_YEAR` (default 2000): older dates are implausible for documents in flight.
    pub min_year: i32,
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig {
            min_confidence: 0.6,
            tolerance: Decimal::new(2, 2),
            max_future_days: 1,
            min_year: 2000,
        }
    }
}

impl RuleConfig {
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, crate::config::SettingError> {
        use crate::config::setting;
        let d = RuleConfig::default();
        Ok(RuleConfig {
            min_confidence: setting(
                &lookup,
                "MIN_FIELD_CONFIDENCE",
                d.min_confidence,
                "a number from 0 to 1",
                |c| (0.0..=1.0).contains(c),
            )?,
            tolerance: setting(
                &lookup,
                "TOTAL_TOLERANCE",
                d.tolerance,
                "a non-negative amount",
                |t| !t.is_sign_negative(),
            )?,
            max_future_days: setting(
                &lookup,
                "MAX_FUTURE_DAYS",
                d.max_future_days,
                "a whole number of days",
                |_| true,
            )?,
            min_year: setting(&lookup, "MIN_YEAR", d.min_year, "a year", |y| {
                (1900..=2100).contains(y)
            })?,
        })
    }
}

/// Every rule a [`ReviewReason`] can name: the names `SECOND_OPINION` may use.
pub const RULES: [&str; 15] = [
    "ambiguous_date",
    "date_implausible",
    "date_in_future",
    "document_expired",
    "due_before_issue",
    "line_items_mismatch",
    "low_confidence",
    "misplaced_decimal",
    "mrz_check_digit",
    "mrz_mismatch",
    "mrz_unreadable",
    "multiple_documents",
    "required_field",
    "total_mismatch",
    "unknown_currency",
];

/// One reason a result needs a human.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewReason {
    /// Stable rule name: a metric dimension.
    pub rule: &'static str,
    pub field: &'static str,
    pub detail: String,
}

impl ReviewReason {
    fn new(rule: &'static str, field: &'static str, detail: impl Into<String>) -> Self {
        // Every rule is listed, or `SECOND_OPINION` would refuse a name the rules use (the
        // rules' tests reach every one).
        debug_assert!(RULES.contains(&rule), "rule {rule} is not in RULES");
        ReviewReason {
            rule,
            field,
            detail: detail.into(),
        }
    }
}

/// A review reason for each date the document could not settle (`ambiguous_date`): the
/// vendor's text and both readings, so the reviewer picks one instead of trusting a guess.
pub fn ambiguous_dates(dates: &[AmbiguousDate]) -> Vec<ReviewReason> {
    dates
        .iter()
        .map(|d| {
            ReviewReason::new(
                "ambiguous_date",
                d.field,
                format!(
                    "{} {:?} reads {} day-first or {} month-first, and nothing in the document (country, currency) says which; the day-first reading is kept",
                    d.field, d.raw, d.day_first, d.month_first
                ),
            )
        })
        .collect()
}

/// The review reason for a result that holds several documents (`multiple_documents`): the
/// fields are the first one's, and a person decides what the others are (split the file, or
/// process them apart). Nothing is dropped without a word.
pub fn multiple_documents(found: Option<&MultipleDocuments>) -> Option<ReviewReason> {
    found.map(|m| {
        ReviewReason::new(
            "multiple_documents",
            "fields",
            format!(
                "the vendor found {} documents in this file: {}",
                m.found, m.evidence
            ),
        )
    })
}

/// ISO 4217 active currency codes.
const ISO_4217: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG";

pub fn is_iso_4217(code: &str) -> bool {
    code.len() == 3 && ISO_4217.split(' ').any(|c| c == code)
}

/// The fields a profile cannot complete without.
fn required(fields: &Fields) -> Vec<(&'static str, bool)> {
    match fields {
        Fields::Receipt(r) => vec![
            ("merchant", r.merchant.is_some()),
            ("date", r.date.is_some()),
            ("total", r.total.is_some()),
        ],
        Fields::Invoice(i) => vec![
            ("invoice_number", i.invoice_number.is_some()),
            ("issue_date", i.issue_date.is_some()),
            ("total", i.total.is_some()),
            ("currency", i.currency.is_some()),
        ],
        Fields::Id(d) => vec![
            ("document_number", d.document_number.is_some()),
            ("surname", d.surname.is_some()),
            ("date_of_birth", d.date_of_birth.is_some()),
            ("expiry_date", d.expiry_date.is_some()),
        ],
        Fields::Generic => vec![],
    }
}

/// Confidence of every present field, by name.
fn confidences(fields: &Fields) -> Vec<(&'static str, Option<f64>)> {
    fn c<T>(name: &'static str, f: &Option<Field<T>>) -> Option<(&'static str, Option<f64>)> {
        f.as_ref().map(|f| (name, f.confidence))
    }
    match fields {
        Fields::Receipt(r) => [
            c("merchant", &r.merchant),
            c("date", &r.date),
            c("subtotal", &r.subtotal),
            c("tax", &r.tax),
            c("total", &r.total),
            c("currency", &r.currency),
        ]
        .into_iter()
        .flatten()
        .collect(),
        Fields::Invoice(i) => [
            c("vendor_name", &i.vendor_name),
            c("invoice_number", &i.invoice_number),
            c("issue_date", &i.issue_date),
            c("due_date", &i.due_date),
            c("subtotal", &i.subtotal),
            c("tax", &i.tax),
            c("total", &i.total),
            c("currency", &i.currency),
        ]
        .into_iter()
        .flatten()
        .collect(),
        Fields::Id(d) => [
            c("document_type", &d.document_type),
            c("document_number", &d.document_number),
            c("surname", &d.surname),
            c("given_names", &d.given_names),
            c("nationality", &d.nationality),
            c("issuing_country", &d.issuing_country),
            c("date_of_birth", &d.date_of_birth),
            c("expiry_date", &d.expiry_date),
            c("sex", &d.sex),
            c("mrz", &d.mrz),
        ]
        .into_iter()
        .flatten()
        .collect(),
        Fields::Generic => vec![],
    }
}

/// An identity document's own checks: expired (`document_expired`), a birth date after today
/// (`date_in_future`), and its MRZ — unreadable (`mrz_unreadable`), a check digit that does not
/// hold (`mrz_check_digit`, ICAO 9303), or a field the MRZ writes otherwise than the printed page
/// (`mrz_mismatch`; names compared after the MRZ's transliteration, so `Müller` and `MUELLER`
/// agree). The MRZ is read after [`mrz::repair`]. A birth date before `MIN_YEAR` is no reason
/// here: people are older than documents.
fn identity(id: &IdFields, today: NaiveDate) -> Vec<ReviewReason> {
    let mut reasons = Vec::new();
    if let Some(expiry) = id.expiry_date.as_ref().map(|f| f.value) {
        if expiry < today {
            reasons.push(ReviewReason::new(
                "document_expired",
                "expiry_date",
                format!("the document's expiry date is before today ({today})"),
            ));
        }
    }
    if let Some(birth) = id.date_of_birth.as_ref().map(|f| f.value) {
        if birth > today {
            reasons.push(ReviewReason::new(
                "date_in_future",
                "date_of_birth",
                format!("date_of_birth {birth} is after today ({today})"),
            ));
        }
    }
    let Some(text) = id.mrz.as_ref().map(|f| f.value.as_str()) else {
        return reasons;
    };
    let lines: Vec<&str> = text.lines().collect();
    // OCR's confusions the layout rules out (`UT0` for `UTO`) are corrected first; a wrong
    // correction of a number still fails its check digit.
    let (lines, _repairs) = mrz::repair(&lines);
    let mrz = match mrz::parse(&lines) {
        Ok(mrz) => mrz,
        Err(e) => {
            reasons.push(ReviewReason::new("mrz_unreadable", "mrz", e.to_string()));
            return reasons;
        }
    };
    for failure in &mrz.check_failures {
        reasons.push(ReviewReason::new(
            "mrz_check_digit",
            "mrz",
            format!(
                "the MRZ's {} check digit is {:?}; its data gives {:?}",
                failure.field, failure.found, failure.expected
            ),
        ));
    }
    // Personal data stays out of the reason (it is logged and shown in lists): the reviewer
    // sees both values on the document itself.
    let mut mismatch = |field: &'static str| {
        reasons.push(ReviewReason::new(
            "mrz_mismatch",
            field,
            format!("{field}: the printed value and the MRZ's differ"),
        ));
    };
    let code = |s: &str| -> String {
        s.chars()
            .filter(char::is_ascii_alphanumeric)
            .flat_map(|c| c.to_uppercase())
            .collect()
    };
    if let Some(number) = &id.document_number {
        if code(&number.value) != code(&mrz.document_number) {
            mismatch("document_number");
        }
    }
    if let Some(surname) = &id.surname {
        if !mrz::names_agree(&surname.value, &mrz::transliterate(&mrz.surname)) {
            mismatch("surname");
        }
    }
    if let Some(given) = &id.given_names {
        if !mrz::names_agree(&given.value, &mrz.given_names) {
            mismatch("given_names");
        }
    }
    for (field, printed, in_mrz) in [
        (
            "date_of_birth",
            &id.date_of_birth,
            mrz.birth_date.as_birth_date(today),
        ),
        (
            "expiry_date",
            &id.expiry_date,
            mrz.expiry_date.as_expiry_date(today),
        ),
    ] {
        if let (Some(printed), Some(in_mrz)) = (printed, in_mrz) {
            if printed.value != in_mrz {
                mismatch(field);
            }
        }
    }
    if let Some(nationality) = &id.nationality {
        // A vendor that gives a country name rather than its code is not compared.
        if nationality.value.len() <= 3 && code(&nationality.value) != code(&mrz.nationality) {
            mismatch("nationality");
        }
    }
    reasons
}

/// `expected` vs `actual` off by a factor of 100 (a lost or extra decimal point: 12345 for 123.45).
fn misplaced(expected: Decimal, actual: Decimal, tolerance: Decimal) -> bool {
    let hundred = Decimal::from(100);
    (expected * hundred - actual).abs() <= tolerance * hundred
        || (expected - actual * hundred).abs() <= tolerance * hundred
}

fn sum_check(
    reasons: &mut Vec<ReviewReason>,
    field: &'static str,
    rule: &'static str,
    parts_sum: Decimal,
    total: Decimal,
    tolerance: Decimal,
) {
    if (parts_sum - total).abs() > tolerance {
        if misplaced(parts_sum, total, tolerance) {
            reasons.push(ReviewReason::new(
                "misplaced_decimal",
                field,
                format!("{field} is {total} but its parts add up to {parts_sum}: a decimal point looks misplaced"),
            ));
        } else {
            reasons.push(ReviewReason::new(
                rule,
                field,
                format!("{field} is {total} but its parts add up to {parts_sum}"),
            ));
        }
    }
}

fn date_check(
    reasons: &mut Vec<ReviewReason>,
    field: &'static str,
    date: NaiveDate,
    today: NaiveDate,
    config: &RuleConfig,
) {
    if date > today + chrono::Duration::days(config.max_future_days) {
        reasons.push(ReviewReason::new(
            "date_in_future",
            field,
            format!("{field} {date} is after today ({today})"),
        ));
    } else if date.year() < config.min_year {
        reasons.push(ReviewReason::new(
            "date_implausible",
            field,
            format!("{field} {date} is before {}", config.min_year),
        ));
    }
}

/// Every reason `fields` needs review, as of `today`. Empty means it may complete.
pub fn check(fields: &Fields, config: &RuleConfig, today: NaiveDate) -> Vec<ReviewReason> {
    let mut reasons = Vec::new();
    for (name, present) in required(fields) {
        if !present {
            reasons.push(ReviewReason::new(
                "required_field",
                name,
                format!("{name} is required and was not found"),
            ));
        }
    }
    let value = |f: &Option<Field<Decimal>>| f.as_ref().map(|f| f.value);
    let (subtotal, tax, total, currency, dates, line_items) = match fields {
        Fields::Receipt(r) => (
            value(&r.subtotal),
            value(&r.tax),
            value(&r.total),
            r.currency.as_ref().map(|c| c.value.clone()),
            vec![("date", r.date.as_ref().map(|d| d.value))],
            None,
        ),
        Fields::Invoice(i) => (
            value(&i.subtotal),
            value(&i.tax),
            value(&i.total),
            i.currency.as_ref().map(|c| c.value.clone()),
            vec![
                ("issue_date", i.issue_date.as_ref().map(|d| d.value)),
                ("due_date", i.due_date.as_ref().map(|d| d.value)),
            ],
            Some(&i.line_items),
        ),
        Fields::Id(id) => {
            reasons.extend(identity(id, today));
            (None, None, None, None, vec![], None)
        }
        Fields::Generic => (None, None, None, None, vec![], None),
    };
    if let (Some(subtotal), Some(total)) = (subtotal, total) {
        let parts = subtotal + tax.unwrap_or_default();
        sum_check(
            &mut reasons,
            "total",
            "total_mismatch",
            parts,
            total,
            config.tolerance,
        );
    }
    if let Some(items) = line_items.filter(|items| !items.is_empty()) {
        let sum: Decimal = items.iter().map(|i| i.amount).sum();
        if let Some(target) = subtotal.or(total.filter(|_| tax.is_none())) {
            sum_check(
                &mut reasons,
                "line_items",
                "line_items_mismatch",
                sum,
                target,
                config.tolerance,
            );
        }
    }
    // A due date is normally in the future; only the document's own date must not be.
    for (name, date) in dates.iter().filter(|(name, _)| *name != "due_date") {
        if let Some(date) = date {
            date_check(&mut reasons, name, *date, today, config);
        }
    }
    if let [(_, Some(issue)), (_, Some(due))] = dates.as_slice() {
        if due < issue {
            reasons.push(ReviewReason::new(
                "due_before_issue",
                "due_date",
                format!("due {due} is before issue {issue}"),
            ));
        }
    }
    if let Some(code) = currency {
        if !is_iso_4217(&code) {
            reasons.push(ReviewReason::new(
                "unknown_currency",
                "currency",
                format!("{code:?} is not an ISO 4217 code"),
            ));
        }
    }
    for (name, confidence) in confidences(fields) {
        match confidence {
            Some(c) if c < config.min_confidence => reasons.push(ReviewReason::new(
                "low_confidence",
                name,
                format!(
                    "{name} confidence {c:.2} is below {:.2}",
                    config.min_confidence
                ),
            )),
            None => reasons.push(ReviewReason::new(
                "low_confidence",
                name,
                format!("{name} has no confidence"),
            )),
            _ => {}
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{InvoiceFields, LineItem, ReceiptFields};
    use std::str::FromStr;

    fn f<T>(value: T, confidence: f64) -> Option<Field<T>> {
        Some(Field {
            value,
            raw: None,
            confidence: Some(confidence),
            page: Some(1),
            bbox: None,
        })
    }
    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }
    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()
    }
    fn receipt(subtotal: &str, tax: &str, total: &str) -> Fields {
        Fields::Receipt(ReceiptFields {
            merchant: f("ACME".into(), 0.9),
            date: f(NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(), 0.9),
            subtotal: f(d(subtotal), 0.9),
            tax: f(d(tax), 0.9),
            total: f(d(total), 0.99),
            currency: f("MYR".into(), 0.9),
        })
    }
    fn rules(fields: &Fields) -> Vec<&'static str> {
        check(fields, &RuleConfig::default(), today())
            .iter()
            .map(|r| r.rule)
            .collect()
    }

    #[test]
    fn a_consistent_receipt_passes() {
        assert!(rules(&receipt("10.00", "0.60", "10.60")).is_empty());
        assert!(
            rules(&receipt("10.00", "0.60", "10.61")).is_empty(),
            "within tolerance"
        );
    }

    #[test]
    fn a_total_that_disagrees_needs_review_whatever_the_confidence() {
        assert_eq!(
            rules(&receipt("10.00", "0.60", "12.60")),
            ["total_mismatch"]
        );
        assert_eq!(
            rules(&receipt("10.00", "0.60", "1060")),
            ["misplaced_decimal"]
        );
    }

    #[test]
    fn line_items_must_sum_to_the_subtotal() {
        let item = |amount: &str| LineItem {
            description: "x".into(),
            quantity: None,
            unit_price: None,
            amount: d(amount),
            confidence: None,
        };
        let mut invoice = InvoiceFields {
            invoice_number: f("INV-1".into(), 0.9),
            issue_date: f(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(), 0.9),
            due_date: f(NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(), 0.9),
            subtotal: f(d("30.00"), 0.9),
            tax: f(d("3.00"), 0.9),
            total: f(d("33.00"), 0.9),
            currency: f("USD".into(), 0.9),
            line_items: vec![item("10.00"), item("20.00")],
            ..Default::default()
        };
        assert!(rules(&Fields::Invoice(invoice.clone())).is_empty());
        invoice.line_items.push(item("5.00"));
        assert_eq!(
            rules(&Fields::Invoice(invoice.clone())),
            ["line_items_mismatch"]
        );
        invoice.line_items.pop();
        invoice.due_date = f(NaiveDate::from_ymd_opt(2027, 1, 31).unwrap(), 0.9);
        assert!(
            rules(&Fields::Invoice(invoice.clone())).is_empty(),
            "a future due date is normal"
        );
        invoice.due_date = f(NaiveDate::from_ymd_opt(2025, 12, 1).unwrap(), 0.9);
        invoice.currency = f("XYZ".into(), 0.9);
        assert_eq!(
            rules(&Fields::Invoice(invoice)),
            ["due_before_issue", "unknown_currency"]
        );
    }

    #[test]
    fn dates_required_fields_and_confidence() {
        let Fields::Receipt(mut r) = receipt("1.00", "0", "1.00") else {
            unreachable!()
        };
        r.date = f(NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(), 0.9);
        r.merchant = None;
        r.total = f(d("1.00"), 0.2);
        assert_eq!(
            rules(&Fields::Receipt(r.clone())),
            ["required_field", "date_in_future", "low_confidence"]
        );
        r.date = f(NaiveDate::from_ymd_opt(1987, 1, 1).unwrap(), 0.9);
        assert!(rules(&Fields::Receipt(r)).contains(&"date_implausible"));
        assert!(is_iso_4217("EUR") && !is_iso_4217("EURO") && !is_iso_4217("RMB"));
    }

    /// The ICAO 9303-4 specimen passport (Appendix B to Part 4, TD3): ERIKSSON, ANNA MARIA,
    /// L898902C3, Utopia, born 12 August 1974, expiring 15 April 2012.
    fn specimen(surname: &str, mrz_line1: &str, mrz_line2: &str) -> Fields {
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        Fields::Id(IdFields {
            document_type: f("passport".into(), 0.99),
            document_number: f("L898902C3".into(), 0.99),
            surname: f(surname.into(), 0.99),
            given_names: f("Anna María".into(), 0.99),
            nationality: f("UTO".into(), 0.99),
            issuing_country: f("UTO".into(), 0.99),
            date_of_birth: f(date(1974, 8, 12), 0.99),
            expiry_date: f(date(2012, 4, 15), 0.99),
            sex: f("F".into(), 0.99),
            mrz: f(format!("{mrz_line1}\n{mrz_line2}"), 0.99),
        })
    }
    const LINE1: &str = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<";
    const LINE2: &str = "L898902C36UTO7408122F1204159ZE184226B<<<<<10";

    #[test]
    fn an_identity_document_is_checked_against_its_own_mrz() {
        let before_expiry = NaiveDate::from_ymd_opt(2010, 1, 1).unwrap();
        let check = |fields: &Fields, today| {
            check(fields, &RuleConfig::default(), today)
                .into_iter()
                .map(|r| (r.rule, r.field))
                .collect::<Vec<_>>()
        };
        // The specimen as printed and as encoded agree; the accent is the MRZ's transliteration.
        assert_eq!(
            check(&specimen("Eriksson", LINE1, LINE2), before_expiry),
            []
        );
        assert_eq!(
            check(&specimen("Eriksson", LINE1, LINE2), today()),
            [("document_expired", "expiry_date")]
        );
        // A surname printed otherwise, and a check digit that does not hold.
        assert_eq!(
            check(&specimen("Eriksen", LINE1, LINE2), before_expiry),
            [("mrz_mismatch", "surname")]
        );
        let broken = LINE2.replacen("C36", "C37", 1);
        assert_eq!(
            check(&specimen("Eriksson", LINE1, &broken), before_expiry),
            [("mrz_check_digit", "mrz"), ("mrz_check_digit", "mrz")],
            "the document number's digit and the composite over it"
        );
        // Müller is MUELLER in an MRZ (Doc 9303-3, 6.A).
        let line1 = "P<UTOMUELLER<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<<";
        assert_eq!(line1.len(), 44);
        assert_eq!(check(&specimen("Müller", line1, LINE2), before_expiry), []);
        // A birth month 13 is no date: the MRZ cannot be read, and the rule says why.
        let month_13 = LINE2.replacen("740812", "741312", 1);
        assert_eq!(
            check(&specimen("Eriksson", LINE1, &month_13), before_expiry),
            [("mrz_unreadable", "mrz")]
        );
        // A name line OCR read short (its fillers lost) is re-laid, not unreadable.
        assert_eq!(
            check(
                &specimen("Eriksson", "P<UTOERIKSSON<<ANNA<MARIA", LINE2),
                before_expiry
            ),
            []
        );
        // What the MRZ says never reaches the reason: no names or numbers in logs.
        let reasons = check_reasons(&specimen("Eriksen", LINE1, LINE2), before_expiry);
        assert!(reasons
            .iter()
            .all(|r| !r.detail.contains("ERIKS") && !r.detail.contains("Eriksen")));
    }

    fn check_reasons(fields: &Fields, today: NaiveDate) -> Vec<ReviewReason> {
        check(fields, &RuleConfig::default(), today)
    }
}
