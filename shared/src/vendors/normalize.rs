//! Normalizing a vendor payload into `Document v1`, and noticing when the payload's shape drifts.

use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::document::{
    BBox, Block, Document, Field, Fields, IdFields, InvoiceFields, Line, LineItem, Page,
    PageSource, ReceiptFields, VendorInfo, Word, SCHEMA_VERSION,
};
use crate::job::Profile;
use crate::vendors::identity;

/// How a payload differs from what the adapter expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DriftKind {
    UnknownField,
    MissingField,
    NewEnumValue,
}

impl DriftKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::UnknownField => "unknown_field",
            DriftKind::MissingField => "missing_field",
            DriftKind::NewEnumValue => "new_enum_value",
        }
    }
}

/// One drift observation: a field path (`pages[].lines[].score`) and its kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Drift {
    pub field: String,
    pub kind: DriftKind,
}

/// A normalized document and the drift seen on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    pub document: Document,
    pub drift: Vec<Drift>,
    /// Dates nothing in the document could settle (`03/04/2021`: March or April?): each one is
    /// a reason for review (`ambiguous_date`), never a silent guess.
    pub ambiguous_dates: Vec<AmbiguousDate>,
    /// The result holds more than one document (several receipts on one scan, invoices in one
    /// PDF): the fields are the first one's alone, never paired across documents, and the job
    /// goes to review (`multiple_documents`) so that none is dropped without a word.
    pub multiple_documents: Option<MultipleDocuments>,
}

/// What the vendor found beside the document whose fields were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipleDocuments {
    /// How many documents the vendor's result holds.
    pub found: usize,
    /// What shows they are distinct, in the vendor's terms (for the reviewer).
    pub evidence: String,
}

/// A date read two ways, with nothing in the document to choose between them.
#[derive(Debug, Clone, PartialEq)]
pub struct AmbiguousDate {
    /// The typed field (`date`, `issue_date`, `due_date`).
    pub field: &'static str,
    /// What the vendor read, as it wrote it.
    pub raw: String,
    /// The day-first reading (the field's value, at a lowered confidence) and the month-first.
    pub day_first: NaiveDate,
    pub month_first: NaiveDate,
    /// The vendor's confidence before it was lowered for the ambiguity: what the field gets
    /// back if a source's configured order settles it (`DATE_ORDER_BY_SOURCE`).
    pub vendor_confidence: Option<f64>,
}

/// Which comes first in a numeric date, `dd/mm` or `mm/dd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateOrder {
    DayFirst,
    MonthFirst,
}

/// Countries that write the month first (CLDR's short date patterns: the United States and
/// its territories, and the states in free association with it, the Philippines).
const MONTH_FIRST_COUNTRIES: &[&str] = &[
    "US",
    "USA",
    "UNITED STATES",
    "PR",
    "GU",
    "VI",
    "AS",
    "MP",
    "UM",
    "FM",
    "MH",
    "PW",
    "PH",
];

/// The order the document's own evidence gives: its country, else its currency (USD is the
/// United States' unless a country says otherwise; the currencies of countries that write the
/// day first, day first). `None`: no evidence (CAD, no currency…).
pub fn date_order_from(country: Option<&str>, currency: Option<&str>) -> Option<DateOrder> {
    if let Some(country) = country.map(|c| c.trim().to_ascii_uppercase()) {
        if !country.is_empty() {
            return Some(if MONTH_FIRST_COUNTRIES.contains(&country.as_str()) {
                DateOrder::MonthFirst
            } else {
                DateOrder::DayFirst
            });
        }
    }
    match currency.map(|c| c.trim().to_ascii_uppercase()).as_deref() {
        Some("USD") => Some(DateOrder::MonthFirst),
        // Currencies whose countries all write the day first.
        Some(
            "EUR" | "GBP" | "INR" | "AUD" | "NZD" | "MYR" | "SGD" | "BRL" | "MXN" | "ZAR" | "IDR"
            | "VND" | "THB" | "RUB" | "TRY" | "PLN" | "CZK" | "CHF" | "SEK" | "NOK" | "DKK" | "ARS"
            | "CLP" | "COP" | "PEN" | "EGP" | "NGN" | "KES" | "PKR" | "BDT",
        ) => Some(DateOrder::DayFirst),
        _ => None,
    }
}

/// A date read from a vendor's text, and whether it was read by a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateReading {
    pub date: NaiveDate,
    /// Both orders give a date, they differ, and there was no evidence: `date` is day-first.
    pub ambiguous: Option<NaiveDate>,
}

/// Reads `text` as a date. A numeric date is read both ways: a reading that is impossible
/// (month 13) settles it, then `order` (the document's evidence); with neither, the
/// day-first reading is returned and marked ambiguous with the other beside it.
pub fn read_date(text: &str, order: Option<DateOrder>) -> Option<DateReading> {
    let text = without_weekday(text.trim());
    const UNAMBIGUOUS: &[&str] = &[
        "%Y-%m-%d",
        "%Y/%m/%d",
        "%d %b %Y",
        "%d-%b-%Y",
        "%d %B %Y",
        "%d %b, %Y",
        "%B %d, %Y",
        "%b %d, %Y",
        "%B %d %Y",
        "%b %d %Y",
    ];
    if let Some(date) = UNAMBIGUOUS
        .iter()
        .filter_map(|f| NaiveDate::parse_from_str(text, f).ok())
        .find(|d| d.year() >= 1000)
    {
        return Some(DateReading {
            date,
            ambiguous: None,
        });
    }
    // `%Y` also reads "19" as the year 19; such a match is left for the `%y` formats.
    let read = |formats: &[&str]| {
        formats
            .iter()
            .filter_map(|f| NaiveDate::parse_from_str(text, f).ok())
            .find(|d| d.year() >= 1000)
    };
    let day_first = read(&[
        "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%d/%m/%y", "%d-%m-%y", "%d.%m.%y",
    ]);
    let month_first = read(&[
        "%m/%d/%Y", "%m-%d-%Y", "%m.%d.%Y", "%m/%d/%y", "%m-%d-%y", "%m.%d.%y",
    ]);
    let date = |date| DateReading {
        date,
        ambiguous: None,
    };
    match (day_first, month_first) {
        (Some(d), Some(m)) if d == m => Some(date(d)),
        (Some(d), Some(m)) => match order {
            Some(DateOrder::DayFirst) => Some(date(d)),
            Some(DateOrder::MonthFirst) => Some(date(m)),
            None => Some(DateReading {
                date: d,
                ambiguous: Some(m),
            }),
        },
        (Some(only), None) | (None, Some(only)) => Some(date(only)),
        (None, None) => None,
    }
}

/// A typed date field from a vendor's text, read with the document's evidence; an ambiguous
/// one is noted in `ambiguous` and its confidence lowered to [`AMBIGUOUS_DATE_CONFIDENCE`].
pub fn date_field(
    name: &'static str,
    text: &str,
    order: Option<DateOrder>,
    confidence: Option<f64>,
    page: Option<u32>,
    bbox: Option<BBox>,
    ambiguous: &mut Vec<AmbiguousDate>,
) -> Option<Field<NaiveDate>> {
    let reading = read_date(text, order)?;
    let confidence = match reading.ambiguous {
        Some(month_first) => {
            ambiguous.push(AmbiguousDate {
                field: name,
                raw: text.trim().to_owned(),
                day_first: reading.date,
                month_first,
                vendor_confidence: confidence,
            });
            Some(confidence.map_or(AMBIGUOUS_DATE_CONFIDENCE, |c| {
                c.min(AMBIGUOUS_DATE_CONFIDENCE)
            }))
        }
        None => confidence,
    };
    Some(Field {
        value: reading.date,
        raw: Some(text.trim().to_owned()),
        confidence,
        page,
        bbox,
    })
}

/// The confidence an ambiguous date keeps at most: below the default review threshold.
pub const AMBIGUOUS_DATE_CONFIDENCE: f64 = 0.5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("the payload is not JSON: {0}")]
    NotJson(String),
    /// Drift that makes the payload unusable (a box cannot be normalized without a page size).
    #[error("the payload cannot be normalized: {0}")]
    Unusable(String),
}

/// Collects drift while walking the payload.
#[derive(Default)]
struct Shape {
    drift: BTreeSet<Drift>,
}

impl Shape {
    fn object<'a>(
        &mut self,
        value: &'a Value,
        path: &str,
        expected: &[&str],
        required: &[&str],
    ) -> Option<&'a Map<String, Value>> {
        let object = value.as_object()?;
        for key in object.keys() {
            if !expected.contains(&key.as_str()) {
                self.drift.insert(Drift {
                    field: format!("{path}{key}"),
                    kind: DriftKind::UnknownField,
                });
            }
        }
        for key in required {
            if !object.contains_key(*key) {
                self.drift.insert(Drift {
                    field: format!("{path}{key}"),
                    kind: DriftKind::MissingField,
                });
            }
        }
        Some(object)
    }

    fn new_enum(&mut self, field: &str) {
        self.drift.insert(Drift {
            field: field.to_owned(),
            kind: DriftKind::NewEnumValue,
        });
    }
}

/// Dates as receipts print them, with no evidence about their order: an unambiguous reading,
/// else the day-first one (see [`read_date`], which says when that was a guess).
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    read_date(text, None).map(|r| r.date)
}

/// `Thursday, 26 March 2020` → `26 March 2020`: a weekday in front says nothing the date does
/// not, and the formats below do not expect it.
fn without_weekday(text: &str) -> &str {
    const DAYS: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let lower = text.to_ascii_lowercase();
    for day in DAYS {
        for name in [day, &day[..3]] {
            if let Some(rest) = lower.strip_prefix(name) {
                if rest.starts_with([',', ' ', '.']) {
                    let skipped = text.len() - rest.len();
                    return text[skipped..].trim_start_matches([',', ' ', '.']);
                }
            }
        }
    }
    text
}

/// ISO 4217's minor units of a currency: how many decimals its amounts are written with (JPY
/// 0, KWD 3, most 2). An unknown or absent currency gets 2, the common case.
pub fn minor_units(currency: Option<&str>) -> u32 {
    match currency.map(str::trim) {
        Some(
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
            | "VND" | "VUV" | "XAF" | "XOF" | "XPF",
        ) => 0,
        Some("BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND") => 3,
        _ => 2,
    }
}

/// An amount in its currency's canonical form: exactly its minor units of decimals (`1320`,
/// `1320.0` and `1320.00` are all `1320.00` in USD), so the same invoice through any vendor
/// stores the same string. Digits past the minor units that are not zero are kept: a value is
/// never rounded away.
pub fn canonical_amount(value: Decimal, currency: Option<&str>) -> Decimal {
    let units = minor_units(currency);
    let mut out = value.normalize();
    if out.scale() < units {
        out.rescale(units);
    }
    out
}

/// Every amount of `fields` in its currency's canonical form (see [`canonical_amount`]); each
/// normalizer ends with it, whatever the vendor wrote.
pub fn canonical_money(fields: &mut Fields) {
    let (currency, amounts, items): (Option<String>, Vec<&mut Option<Field<Decimal>>>, _) =
        match fields {
            Fields::Receipt(r) => (
                r.currency.as_ref().map(|c| c.value.clone()),
                vec![&mut r.subtotal, &mut r.tax, &mut r.total],
                None,
            ),
            Fields::Invoice(i) => (
                i.currency.as_ref().map(|c| c.value.clone()),
                vec![&mut i.subtotal, &mut i.tax, &mut i.total],
                Some(&mut i.line_items),
            ),
            Fields::Id(_) | Fields::Generic => return,
        };
    let currency = currency.as_deref();
    for amount in amounts.into_iter().flatten() {
        amount.value = canonical_amount(amount.value, currency);
    }
    for item in items.into_iter().flatten() {
        item.amount = canonical_amount(item.amount, currency);
        item.unit_price = item.unit_price.map(|p| canonical_amount(p, currency));
        // A count has one form too: `2`, whether the vendor typed 2, 2.0 or "2".
        item.quantity = item.quantity.map(|q| q.normalize());
    }
}

/// Amounts as printed: `1,234.50`, `$8.20`, `RM 30.90`.
pub fn parse_amount(text: &str) -> Option<Decimal> {
    let cleaned: String = text
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
        .collect();
    Decimal::from_str(&cleaned).ok()
}

fn as_number(value: &Value) -> Option<f64> {
    value.as_f64()
}

/// The simulator's item rows (`line_items[]`: amounts as printed); a row without a readable
/// amount is not an item.
fn sim_line_items(list: Option<&Value>) -> Vec<LineItem> {
    let printed =
        |row: &Value, key: &str| row.get(key).and_then(Value::as_str).and_then(parse_amount);
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|row| {
            Some(LineItem {
                description: row
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
                quantity: printed(row, "quantity"),
                unit_price: printed(row, "unit_price"),
                amount: printed(row, "amount")?,
                confidence: row
                    .get("confidence")
                    .and_then(Value::as_f64)
                    .map(|c| (c / 100.0).clamp(0.0, 1.0)),
            })
        })
        .collect()
}

/// Normalizes a `tools/vendor-sim` result (its README documents the shape).
pub fn normalize_sim(
    raw: &[u8],
    job_id: &str,
    vendor_job_id: &str,
    profile: &Profile,
) -> Result<Normalized, NormalizeError> {
    let payload: Value =
        serde_json::from_slice(raw).map_err(|e| NormalizeError::NotJson(e.to_string()))?;
    let mut shape = Shape::default();
    let top = shape
        .object(
            &payload,
            "",
            &[
                "id",
                "status",
                "profile",
                "engine",
                "model_version",
                "pages",
                "fields",
                "line_items",
                "billing",
                "completed_at",
            ],
            &["id", "status", "pages", "fields"],
        )
        .ok_or_else(|| NormalizeError::Unusable("the payload is not an object".into()))?;
    if top.get("status").and_then(Value::as_str) != Some("succeeded") {
        return Err(NormalizeError::Unusable(format!(
            "status is {:?}, not succeeded",
            top.get("status")
        )));
    }

    let mut pages = Vec::new();
    let mut reading_order = Vec::new();
    for (pi, page_value) in top
        .get("pages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let page = shape
            .object(
                page_value,
                "pages[].",
                &["number", "width", "height", "path", "lines"],
                &["number", "width", "height", "path", "lines"],
            )
            .ok_or_else(|| NormalizeError::Unusable("a page is not an object".into()))?;
        let number = page
            .get("number")
            .and_then(Value::as_u64)
            .unwrap_or(pi as u64 + 1) as u32;
        let source = match page.get("path").and_then(Value::as_str) {
            Some("image" | "pdf_raster" | "synthetic") => PageSource::Ocr,
            Some("pdf_text_layer") => PageSource::TextLayer,
            _ => {
                shape.new_enum("pages[].path");
                PageSource::Unknown
            }
        };
        let (Some(width), Some(height)) = (
            page.get("width").and_then(as_number),
            page.get("height").and_then(as_number),
        ) else {
            return Err(NormalizeError::Unusable(format!(
                "page {number} has no size, so its boxes cannot be normalized"
            )));
        };
        let to_box = |b: &Value| {
            BBox::from_pixels(
                b["left"].as_f64().unwrap_or(0.0),
                b["top"].as_f64().unwrap_or(0.0),
                b["width"].as_f64().unwrap_or(0.0),
                b["height"].as_f64().unwrap_or(0.0),
                width,
                height,
            )
        };
        let mut lines = Vec::new();
        for (li, line_value) in page
            .get("lines")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let Some(line) = shape.object(
                line_value,
                "pages[].lines[].",
                &["text", "bbox", "confidence", "words"],
                &["text", "bbox", "confidence", "words"],
            ) else {
                continue;
            };
            let mut words = Vec::new();
            for word_value in line
                .get("words")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(word) = shape.object(
                    word_value,
                    "pages[].lines[].words[].",
                    &["text", "bbox", "confidence"],
                    &["text", "bbox", "confidence"],
                ) else {
                    continue;
                };
                if let Some(bbox) = word.get("bbox").and_then(to_box) {
                    words.push(Word {
                        text: word
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        bbox,
                        confidence: word
                            .get("confidence")
                            .and_then(as_number)
                            .map(|c| (c / 100.0).clamp(0.0, 1.0)),
                        // The simulator's Tesseract does not tell print from handwriting.
                        handwritten: None,
                    });
                }
            }
            let Some(bbox) = line.get("bbox").and_then(to_box) else {
                continue;
            };
            let id = format!("p{number}-l{}", li + 1);
            reading_order.push(id.clone());
            lines.push(Line {
                id,
                text: line
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                bbox,
                confidence: line
                    .get("confidence")
                    .and_then(as_number)
                    .map(|c| (c / 100.0).clamp(0.0, 1.0)),
                words,
            });
        }
        let block_box = enclosing(lines.iter().map(|l| l.bbox));
        pages.push(Page {
            number,
            width: Some(width),
            height: Some(height),
            unit: "pixel".into(),
            rotation: 0,
            source,
            blocks: if lines.is_empty() {
                vec![]
            } else {
                vec![Block {
                    id: format!("p{number}-b1"),
                    bbox: block_box,
                    lines,
                }]
            },
        });
    }

    let fields_value = top.get("fields").cloned().unwrap_or(Value::Null);
    let page_sizes: Vec<(u32, f64, f64)> = pages
        .iter()
        .filter_map(|p| Some((p.number, p.width?, p.height?)))
        .collect();
    let field = |name: &str| -> Option<RawField> {
        let f = fields_value.get(name)?;
        let page = f.get("page").and_then(Value::as_u64).map(|p| p as u32);
        let bbox = page
            .and_then(|p| page_sizes.iter().find(|(n, _, _)| *n == p))
            .and_then(|(_, w, h)| {
                let b = f.get("bbox")?;
                BBox::from_pixels(
                    b["left"].as_f64()?,
                    b["top"].as_f64()?,
                    b["width"].as_f64()?,
                    b["height"].as_f64()?,
                    *w,
                    *h,
                )
            });
        Some(RawField {
            text: f.get("value")?.as_str()?.to_owned(),
            confidence: f
                .get("confidence")
                .and_then(Value::as_f64)
                .map(|c| (c / 100.0).clamp(0.0, 1.0)),
            page,
            bbox,
        })
    };
    fn typed<T>(raw: Option<RawField>, parse: impl Fn(&str) -> Option<T>) -> Option<Field<T>> {
        let raw = raw?;
        Some(Field {
            value: parse(&raw.text)?,
            raw: Some(raw.text.trim().to_owned()),
            confidence: raw.confidence,
            page: raw.page,
            bbox: raw.bbox,
        })
    }
    let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let currency = |s: &str| {
        Some(s.trim().to_ascii_uppercase())
            .filter(|s| s.len() == 3 && s.chars().all(|c| c.is_ascii_uppercase()))
    };
    // The document's own evidence of its date order: its currency (the simulator reads no
    // country).
    let order = date_order_from(None, field("currency").as_ref().map(|f| f.text.as_str()));
    let mut ambiguous_dates = Vec::new();
    let mut date = |name: &'static str, key: &str| {
        let raw = field(key)?;
        date_field(
            name,
            &raw.text,
            order,
            raw.confidence,
            raw.page,
            raw.bbox,
            &mut ambiguous_dates,
        )
    };
    let fields = match profile.as_str() {
        "receipt" => Fields::Receipt(ReceiptFields {
            merchant: typed(field("company"), text),
            date: date("date", "date"),
            subtotal: typed(field("subtotal"), parse_amount),
            tax: typed(field("tax"), parse_amount),
            total: typed(field("total"), parse_amount),
            currency: typed(field("currency"), currency),
        }),
        "invoice" => Fields::Invoice(InvoiceFields {
            vendor_name: typed(field("vendor_name"), text),
            invoice_number: typed(field("invoice_id"), text),
            issue_date: date("issue_date", "invoice_date"),
            due_date: date("due_date", "due_date"),
            subtotal: typed(field("subtotal"), parse_amount),
            tax: typed(field("tax"), parse_amount),
            total: typed(field("total"), parse_amount),
            currency: typed(field("currency"), currency),
            line_items: sim_line_items(top.get("line_items")),
        }),
        "id" => {
            let code = |s: &str| {
                Some(s.trim().to_ascii_uppercase())
                    .filter(|s| s.len() == 3 && s.chars().all(|c| c.is_ascii_uppercase()))
            };
            Fields::Id(IdFields {
                document_type: typed(field("document_type"), |t| {
                    Some(identity::document_type(t).to_owned())
                }),
                document_number: typed(field("document_number"), text),
                surname: typed(field("surname"), text),
                given_names: typed(field("given_names"), text),
                nationality: typed(field("nationality"), code),
                issuing_country: typed(field("issuing_country"), code),
                date_of_birth: date("date_of_birth", "date_of_birth"),
                expiry_date: date("expiry_date", "expiry_date"),
                sex: typed(field("sex"), |s| identity::sex(s).map(str::to_owned)),
                mrz: typed(field("mrz"), text),
            })
        }
        _ => Fields::Generic,
    };
    let mut fields = fields;
    canonical_money(&mut fields);
    Ok(Normalized {
        document: Document {
            schema_version: SCHEMA_VERSION.into(),
            job_id: job_id.to_owned(),
            vendor: VendorInfo {
                name: "sim".into(),
                job_id: vendor_job_id.to_owned(),
                // The simulator has a model per profile, as Azure has prebuilt ones.
                model: Some(profile.as_str().to_owned()),
                model_version: top
                    .get("model_version")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            },
            pages,
            reading_order,
            tables: vec![],
            key_values: vec![],
            fields,
            language: None,
        },
        drift: shape.drift.into_iter().collect(),
        ambiguous_dates,
        // The simulator reads one document per submission.
        multiple_documents: None,
    })
}

/// A vendor field before typing: the printed text and where it was.
struct RawField {
    text: String,
    confidence: Option<f64>,
    page: Option<u32>,
    bbox: Option<BBox>,
}

/// The smallest box around `boxes` (the whole page when there are none).
pub fn enclosing(boxes: impl Iterator<Item = BBox>) -> BBox {
    let mut acc: Option<(f64, f64, f64, f64)> = None;
    for b in boxes {
        let (l, t, r, bt) = (b.left, b.top, b.left + b.width, b.top + b.height);
        acc = Some(match acc {
            None => (l, t, r, bt),
            Some((al, at, ar, ab)) => (al.min(l), at.min(t), ar.max(r), ab.max(bt)),
        });
    }
    let (l, t, r, b) = acc.unwrap_or((0.0, 0.0, 1.0, 1.0));
    BBox {
        left: l,
        top: t,
        width: (r - l).min(1.0),
        height: (b - t).min(1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payload() -> Value {
        json!({
            "id": "doc_1", "status": "succeeded", "profile": "receipt", "engine": "tesseract",
            "model_version": "sim-1", "completed_at": "x", "billing": {"pages": 1},
            "pages": [{"number": 1, "width": 400, "height": 800, "path": "image", "lines": [
                {"text": "Total : 9.00", "confidence": 91.0, "bbox": {"left": 40, "top": 80, "width": 200, "height": 20},
                 "words": [{"text": "Total", "confidence": 95.0, "bbox": {"left": 40, "top": 80, "width": 60, "height": 20}}]}
            ]}],
            "fields": {
                "total": {"value": "9.00", "confidence": 91.0, "page": 1, "bbox": {"left": 40, "top": 80, "width": 200, "height": 20}},
                "date": {"value": "25/12/2018", "confidence": 88.0, "page": 1, "bbox": {"left": 0, "top": 0, "width": 10, "height": 10}},
                "company": {"value": "BOOK TA K SDN BHD", "confidence": 80.0, "page": 1, "bbox": {"left": 0, "top": 0, "width": 10, "height": 10}}
            }
        })
    }

    fn normalize(v: &Value) -> Result<Normalized, NormalizeError> {
        normalize_sim(
            v.to_string().as_bytes(),
            "doc-1",
            "doc_1",
            &Profile::new("receipt").unwrap(),
        )
    }

    #[test]
    fn normalizes_boxes_confidence_and_fields() {
        let n = normalize(&payload()).unwrap();
        assert!(n.drift.is_empty(), "{:?}", n.drift);
        let line = &n.document.pages[0].blocks[0].lines[0];
        assert_eq!(
            line.bbox,
            BBox {
                left: 0.1,
                top: 0.1,
                width: 0.5,
                height: 0.025
            }
        );
        assert_eq!(line.confidence, Some(0.91));
        assert_eq!(n.document.reading_order, ["p1-l1"]);
        let Fields::Receipt(r) = &n.document.fields else {
            panic!()
        };
        assert_eq!(
            r.total.as_ref().unwrap().value,
            Decimal::from_str("9.00").unwrap()
        );
        assert_eq!(
            r.date.as_ref().unwrap().value,
            NaiveDate::from_ymd_opt(2018, 12, 25).unwrap()
        );
        assert_eq!(r.merchant.as_ref().unwrap().value, "BOOK TA K SDN BHD");
        n.document.to_validated_json().unwrap();
    }

    #[test]
    fn renamed_fields_and_new_enum_values_are_drift_and_parsing_goes_on() {
        let mut p = payload();
        let line = p["pages"][0]["lines"][0].as_object_mut().unwrap();
        let c = line.remove("confidence").unwrap();
        line.insert("score".into(), c);
        p["pages"][0]["path"] = json!("neural_v2");
        p["layout_v2"] = json!({});
        let n = normalize(&p).unwrap();
        let kinds: Vec<(String, &str)> = n
            .drift
            .iter()
            .map(|d| (d.field.clone(), d.kind.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("layout_v2".to_owned(), "unknown_field"),
                ("pages[].lines[].confidence".to_owned(), "missing_field"),
                ("pages[].lines[].score".to_owned(), "unknown_field"),
                ("pages[].path".to_owned(), "new_enum_value"),
            ]
        );
        assert_eq!(n.document.pages[0].blocks[0].lines[0].confidence, None);
        n.document.to_validated_json().unwrap();
    }

    #[test]
    fn a_page_without_size_is_unusable() {
        let mut p = payload();
        p["pages"][0].as_object_mut().unwrap().remove("width");
        assert!(matches!(normalize(&p), Err(NormalizeError::Unusable(_))));
        let mut failed = payload();
        failed["status"] = json!("failed");
        assert!(normalize(&failed).is_err(), "never parsed as a success");
    }

    #[test]
    fn parses_printed_dates_and_amounts() {
        assert_eq!(
            parse_date("25/12/2018"),
            NaiveDate::from_ymd_opt(2018, 12, 25)
        );
        assert_eq!(
            parse_date("2024-03-01"),
            NaiveDate::from_ymd_opt(2024, 3, 1)
        );
        assert_eq!(
            parse_date("05 Jan 2017"),
            NaiveDate::from_ymd_opt(2017, 1, 5)
        );
        assert_eq!(
            parse_date("31.12.19"),
            NaiveDate::from_ymd_opt(2019, 12, 31)
        );
        assert_eq!(parse_date("yesterday"), None);
        // Weekdays in front, as invoices print them (Textract's expense fixture).
        assert_eq!(
            parse_date("Thursday, 26 March 2020"),
            NaiveDate::from_ymd_opt(2020, 3, 26)
        );
        assert_eq!(
            parse_date("Mon 05 Jan 2015"),
            NaiveDate::from_ymd_opt(2015, 1, 5)
        );
        assert_eq!(parse_date("Monday"), None);
        assert_eq!(parse_amount("$1,234.50"), Decimal::from_str("1234.50").ok());
        assert_eq!(parse_amount("RM 30.90"), Decimal::from_str("30.90").ok());
    }
}
