//! Heuristic field extraction from OCR lines, per profile.
//!
//! This is the *vendor's* extraction, kept honest and simple: keyword lines and regular
//! expressions over the recognized text. Values are returned as the text shows them (a date stays
//! `25/12/2018`); normalizing them is ocrbridge's job, not the vendor's.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::engine::{BBox, Line, Page};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub value: String,
    /// 0–100, the confidence of the line it came from.
    pub confidence: f32,
    pub page: u32,
    pub bbox: BBox,
}

static AMOUNT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(\d{1,3}(?:,\d{3})+|\d+)[.,](\d{2})\b").expect("static regex"));
static DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(\d{4}-\d{2}-\d{2}|\d{1,2}[/\-.]\d{1,2}[/\-.]\d{2,4}|\d{1,2}[ \-](?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*[ \-,]+\d{2,4})\b",
    )
    .expect("static regex")
});
static TOTAL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)total|amount\s*due|balance\s*due").expect("static regex"));
static NOT_TOTAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)sub\s*-?\s*total|qty|quantity|item|tax|gst|vat|disc|saving|excl")
        .expect("static regex")
});
static SUBTOTAL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)sub\s*-?\s*total").expect("static regex"));
static TAX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b(tax|vat|gst)\b").expect("static regex"));
static INVOICE_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)invoice\s*(?:no\.?|number|num|#)?\s*[:#.]?\s*([A-Z0-9][A-Z0-9\-/]{2,})")
        .expect("static regex")
});
static COMPANY_HINT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(sdn|bhd|enterprise|trading|ltd|inc|llc|gmbh|company|restaurant|store|mart|s/b)\b",
    )
    .expect("static regex")
});
static ADDRESS_END: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)tel|phone|fax|gst|reg|@|www|invoice|receipt|date").expect("static regex")
});
static CURRENCY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(\$|€|£|\bRM\b|\b(?:USD|EUR|GBP|MYR|SGD|CAD|AUD|JPY|CHF|INR)\b)")
        .expect("static regex")
});

/// One row of a document's item table as the engine read it, its amounts as printed:
/// `Widget 2 x 5.00 10.00` is quantity 2, unit price 5.00 and amount 10.00; `Support plan
/// 200.00` is an amount alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemReading {
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<String>,
    pub amount: String,
    /// The whole row as printed.
    pub text: String,
    /// 0–100, the confidence of the line it came from.
    pub confidence: f32,
    pub page: u32,
    pub bbox: BBox,
}

/// A printed amount with exactly two decimals, its currency symbol allowed before it.
const PRINTED_AMOUNT: &str = r"[$€£]?\s?(?:\d{1,3}(?:,\d{3})+|\d+)\.\d{2}";

static ITEM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"^(?P<description>.*?\p{{L}}.*?)\s+(?:(?P<quantity>\d+(?:\.\d+)?)\s*[x@×]?\s+(?P<unit>{PRINTED_AMOUNT})\s+)?(?P<amount>{PRINTED_AMOUNT})$"
    ))
    .expect("static regex")
});
/// Lines that print a sum, a payment or a header, never an item, whatever amount they end in.
static NOT_ITEM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(tax|vat|gst|due|balance|paid|cash|change|tip|rounding|discount|deposit|invoice|date)\b",
    )
    .expect("static regex")
});

/// The item rows of `profile`'s documents: on each page, the rows above its first subtotal or
/// total row (the summary closes the item table) that end in an amount after some words.
/// Generic documents have none.
pub fn line_items(profile: &str, pages: &[Page]) -> Vec<ItemReading> {
    if !matches!(profile, "receipt" | "invoice" | "financial") {
        return vec![];
    }
    let mut items = Vec::new();
    for page in pages {
        for row in rows(page) {
            let text = row.text.trim();
            // `total` also matches every subtotal line.
            if TOTAL.is_match(text) {
                break;
            }
            if NOT_ITEM.is_match(text) {
                continue;
            }
            let Some(found) = ITEM.captures(text) else {
                continue;
            };
            let printed = |name: &str| {
                found
                    .name(name)
                    .map(|m| m.as_str().chars().filter(|c| !c.is_whitespace()).collect())
            };
            let Some(amount) = printed("amount") else {
                continue;
            };
            items.push(ItemReading {
                description: found["description"].trim().to_owned(),
                quantity: printed("quantity"),
                unit_price: printed("unit"),
                amount,
                text: text.to_owned(),
                confidence: row.confidence,
                page: page.number,
                bbox: row.bbox,
            });
        }
    }
    items
}

/// A printed row: the lines that share a baseline, left to right.
struct Row {
    text: String,
    bbox: BBox,
    confidence: f32,
    /// The left edge of each part, to keep them in order.
    parts: Vec<(u32, String)>,
}

/// The page's lines as printed rows, top to bottom. A text layer (and an OCR engine) gives a
/// description and its amount far to its right as two lines, often in two column flows; a
/// reader sees one row. Lines whose vertical middles lie within half the shorter one's height
/// are one row.
fn rows(page: &Page) -> Vec<Row> {
    let middle = |b: &BBox| b.top * 2 + b.height;
    let mut rows: Vec<Row> = Vec::new();
    for line in &page.lines {
        let same = rows.iter_mut().find(|r| {
            middle(&r.bbox).abs_diff(middle(&line.bbox)) < r.bbox.height.min(line.bbox.height)
        });
        match same {
            Some(row) => {
                row.parts.push((line.bbox.left, line.text.clone()));
                row.parts.sort_by_key(|(left, _)| *left);
                row.text = row
                    .parts
                    .iter()
                    .map(|(_, t)| t.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                let (a, b) = (row.bbox, line.bbox);
                let left = a.left.min(b.left);
                let top = a.top.min(b.top);
                row.bbox = BBox {
                    left,
                    top,
                    width: (a.left + a.width).max(b.left + b.width) - left,
                    height: (a.top + a.height).max(b.top + b.height) - top,
                };
                row.confidence = row.confidence.min(line.confidence);
            }
            None => rows.push(Row {
                text: line.text.clone(),
                bbox: line.bbox,
                confidence: line.confidence,
                parts: vec![(line.bbox.left, line.text.clone())],
            }),
        }
    }
    rows.sort_by_key(|r| r.bbox.top);
    rows
}

/// A printed amount as a number (`$1,000.00` is 1000.0), as vendors that type amounts give it.
pub fn plain_amount(text: &str) -> Option<f64> {
    text.chars()
        .filter(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
        .collect::<String>()
        .parse()
        .ok()
}

/// Extracts the fields for `profile`. Unknown profiles get no fields.
///
/// `financial` is both: the receipt and the invoice fields, for models that read either
/// (Textract's AnalyzeExpense, Mindee's financial document).
pub fn extract(profile: &str, pages: &[Page]) -> BTreeMap<String, Field> {
    if profile == "financial" {
        let mut fields = extract("receipt", pages);
        for (name, field) in extract("invoice", pages) {
            fields.entry(name).or_insert(field);
        }
        return fields;
    }
    let lines: Vec<(u32, &Line)> = pages
        .iter()
        .flat_map(|p| p.lines.iter().map(move |l| (p.number, l)))
        .collect();
    let mut fields = BTreeMap::new();
    let mut put = |name: &str, field: Option<Field>| {
        if let Some(f) = field {
            fields.insert(name.to_owned(), f);
        }
    };
    match profile {
        "receipt" => {
            put("total", total(&lines));
            put("subtotal", amount_on(&lines, |t| SUBTOTAL.is_match(t)));
            put(
                "tax",
                amount_on(&lines, |t| TAX.is_match(t) && !TOTAL.is_match(t)),
            );
            put("currency", currency(&lines));
            put("date", first_match(&lines, &DATE, |_| true));
            let company = company(&lines);
            put(
                "address",
                company.as_ref().and_then(|(i, _)| address(&lines, *i)),
            );
            put("company", company.map(|(_, f)| f));
        }
        "invoice" => {
            put("vendor_name", company(&lines).map(|(_, f)| f));
            put("invoice_id", invoice_id(&lines));
            put(
                "invoice_date",
                first_match(&lines, &DATE, |text| !text.to_lowercase().contains("due")),
            );
            put(
                "due_date",
                first_match(&lines, &DATE, |text| text.to_lowercase().contains("due")),
            );
            put("subtotal", amount_on(&lines, |t| SUBTOTAL.is_match(t)));
            put(
                "tax",
                amount_on(&lines, |t| TAX.is_match(t) && !TOTAL.is_match(t)),
            );
            put("total", total(&lines));
            put("currency", currency(&lines));
        }
        "id" => {
            for (name, field) in identity(&lines) {
                fields.insert(name.to_owned(), field);
            }
        }
        _ => {}
    }
    fields
}

/// An identity page's printed fields, by their labels (`Surname: …`, `Date of birth: …`), and
/// its machine-readable zone: two lines of 44 (or 36) or three of 30 of `A-Z 0-9 <`, as read
/// (spaces the OCR put inside them dropped), joined by a newline. Values stay as printed.
fn identity(lines: &[(u32, &Line)]) -> Vec<(&'static str, Field)> {
    static LABELS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
        [
            (
                "document_type",
                r"(?i)\b(passport|identity\s+card|residence\s+permit|driving\s+licen[cs]e)\b",
            ),
            (
                "document_number",
                r"(?i)(?:document|passport|card)\s*(?:no\.?|number)\s*:?\s*([A-Z0-9]{5,})",
            ),
            ("surname", r"(?i)\bsurname\s*:?\s*(.+?)\s*$"),
            ("given_names", r"(?i)\bgiven\s+names?\s*:?\s*(.+?)\s*$"),
            ("nationality", r"(?i)\bnationality\s*:?\s*([A-Z]{3})\b"),
            (
                "issuing_country",
                r"(?i)\bissuing\s+(?:state|country)\s*:?\s*([A-Z]{3})\b",
            ),
            ("date_of_birth", r"(?i)\bdate\s+of\s+birth\s*:?\s*(.+?)\s*$"),
            ("expiry_date", r"(?i)\bdate\s+of\s+expiry\s*:?\s*(.+?)\s*$"),
            ("sex", r"(?i)\bsex\s*:?\s*([MFX])\b"),
        ]
        .into_iter()
        .map(|(name, re)| (name, Regex::new(re).expect("static regex")))
        .collect()
    });
    let mut out = Vec::new();
    for (name, re) in LABELS.iter() {
        if let Some(f) = lines.iter().find_map(|(page, line)| {
            re.captures(&line.text)
                .map(|c| field(*page, line, c[1].to_owned()))
        }) {
            out.push((*name, f));
        }
    }
    let compact = |t: &str| -> String { t.chars().filter(|c| !c.is_whitespace()).collect() };
    let candidates: Vec<(u32, &Line, String)> = lines
        .iter()
        .map(|(page, line)| (*page, *line, compact(&line.text)))
        .filter(|(_, _, t)| t.len() >= 28 && t.contains('<'))
        .collect();
    if let Some((page, first, _)) = candidates.first() {
        let text: Vec<&str> = candidates.iter().map(|(_, _, t)| t.as_str()).collect();
        out.push((
            "mrz",
            Field {
                value: text.join("\n"),
                confidence: candidates
                    .iter()
                    .map(|(_, l, _)| l.confidence)
                    .fold(f32::MAX, f32::min),
                page: *page,
                bbox: first.bbox,
            },
        ));
    }
    out
}

fn field(page: u32, line: &Line, value: String) -> Field {
    Field {
        value,
        confidence: line.confidence,
        page,
        bbox: line.bbox,
    }
}

fn amounts(text: &str) -> Vec<(f64, String)> {
    AMOUNT
        .captures_iter(text)
        .filter_map(|c| {
            let normalized = format!("{}.{}", c[1].replace(',', ""), &c[2]);
            normalized.parse().ok().map(|v| (v, normalized))
        })
        .collect()
}

/// The largest amount on a "total" line that is not a subtotal, tax or item count: a grand or
/// rounded total is never smaller than the other totals on the page.
fn total(lines: &[(u32, &Line)]) -> Option<Field> {
    let mut best: Option<(f64, Field)> = None;
    for (i, (page, line)) in lines.iter().enumerate() {
        if !TOTAL.is_match(&line.text) || NOT_TOTAL.is_match(&line.text) {
            continue;
        }
        // The amount is on the line, or alone on the next one.
        let mut found = amounts(&line.text);
        let mut source = *line;
        if found.is_empty() {
            if let Some((_, next)) = lines.get(i + 1) {
                found = amounts(&next.text);
                source = next;
            }
        }
        if let Some((value, text)) = found.pop() {
            if best.as_ref().is_none_or(|(b, _)| value > *b) {
                best = Some((value, field(*page, source, text)));
            }
        }
    }
    best.map(|(_, f)| f)
}

fn amount_on(lines: &[(u32, &Line)], wanted: impl Fn(&str) -> bool) -> Option<Field> {
    lines.iter().find_map(|(page, line)| {
        if !wanted(&line.text) {
            return None;
        }
        amounts(&line.text)
            .pop()
            .map(|(_, text)| field(*page, line, text))
    })
}

fn first_match(lines: &[(u32, &Line)], re: &Regex, wanted: impl Fn(&str) -> bool) -> Option<Field> {
    lines.iter().find_map(|(page, line)| {
        if !wanted(&line.text) {
            return None;
        }
        re.find(&line.text)
            .map(|m| field(*page, line, m.as_str().to_owned()))
    })
}

fn letters(text: &str) -> usize {
    text.chars().filter(|c| c.is_alphabetic()).count()
}

/// A line naming a company form (SDN BHD, LTD…) near the top, else the first wordy line.
fn company(lines: &[(u32, &Line)]) -> Option<(usize, Field)> {
    let top: Vec<(usize, &(u32, &Line))> = lines.iter().enumerate().take(8).collect();
    let pick = top
        .iter()
        .find(|(_, (_, l))| COMPANY_HINT.is_match(&l.text))
        .or_else(|| {
            top.iter().find(|(_, (_, l))| {
                letters(&l.text) >= 4 && letters(&l.text) * 10 >= l.text.len() * 6
            })
        })?;
    let (i, (page, line)) = pick;
    Some((*i, field(*page, line, line.text.clone())))
}

/// Up to four lines after the company, until a phone, tax-registration or document line.
fn address(lines: &[(u32, &Line)], company: usize) -> Option<Field> {
    let parts: Vec<&(u32, &Line)> = lines
        .iter()
        .skip(company + 1)
        .take(4)
        .take_while(|(_, l)| !ADDRESS_END.is_match(&l.text))
        .filter(|(_, l)| l.text.chars().any(|c| c.is_ascii_digit()) || letters(&l.text) >= 4)
        .collect();
    let (page, first) = parts.first()?;
    let text = parts
        .iter()
        .map(|(_, l)| l.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let confidence = parts.iter().map(|(_, l)| l.confidence).sum::<f32>() / parts.len() as f32;
    Some(Field {
        value: text,
        confidence,
        page: *page,
        bbox: first.bbox,
    })
}

fn invoice_id(lines: &[(u32, &Line)]) -> Option<Field> {
    lines.iter().find_map(|(page, line)| {
        INVOICE_ID
            .captures(&line.text)
            .filter(|c| c[1].chars().any(|ch| ch.is_ascii_digit()))
            .map(|c| field(*page, line, c[1].to_owned()))
    })
}

fn currency(lines: &[(u32, &Line)]) -> Option<Field> {
    lines.iter().find_map(|(page, line)| {
        CURRENCY.find(&line.text).map(|m| {
            let code = match m.as_str() {
                "$" => "USD",
                "€" => "EUR",
                "£" => "GBP",
                "RM" => "MYR",
                other => other,
            };
            field(*page, line, code.to_owned())
        })
    })
}

/// A date as the engine read it, as a vendor that returns typed dates (Azure's `valueDate`,
/// Mindee's `value`) would type it: ISO, or numeric in the order the document's locale writes
/// — month first where its currency is the dollar (`currency`: the engine's reading of it),
/// else day first, as a vendor's model infers a locale from the page. `%Y` also matches a
/// two-digit year ("12-01-19" as the year 12), so a four-digit format must give a year of
/// four digits; "12-01-19" is 12 January 2019, never 0012-01-19.
pub fn typed_date(text: &str, currency: Option<&str>) -> Option<chrono::NaiveDate> {
    let text = text.trim();
    let day_first: &[&str] = &[
        "%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%d/%m/%y", "%d-%m-%y", "%d.%m.%y",
    ];
    let month_first: &[&str] = &[
        "%Y-%m-%d", "%m/%d/%Y", "%m-%d-%Y", "%m.%d.%Y", "%m/%d/%y", "%m-%d-%y", "%m.%d.%y",
    ];
    let read = |formats: &[&str]| {
        formats
            .iter()
            // A month written as a word (`12 AUG 1974`, identity documents) has one reading.
            .chain(&["%d %b %Y", "%d %B %Y"])
            .filter_map(|f| chrono::NaiveDate::parse_from_str(text, f).ok())
            .find(|d| chrono::Datelike::year(d) >= 1000)
    };
    // The locale's order first; the other where the locale's reading is impossible (13/01).
    let (first, then) = if currency == Some("USD") {
        (month_first, day_first)
    } else {
        (day_first, month_first)
    };
    read(first).or_else(|| read(then))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::PagePath;

    /// One line per text, each on a row of its own.
    fn page(texts: &[&str]) -> Vec<Page> {
        let placed: Vec<(&str, u32, u32)> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| (*t, 0, i as u32 * 20))
            .collect();
        page_at(&placed)
    }

    /// Lines at (left, top), each 10 high.
    fn page_at(lines: &[(&str, u32, u32)]) -> Vec<Page> {
        vec![Page {
            number: 1,
            width: 1000,
            height: 1000,
            path: PagePath::Image,
            lines: lines
                .iter()
                .map(|(t, left, top)| Line {
                    text: (*t).to_owned(),
                    bbox: BBox {
                        left: *left,
                        top: *top,
                        width: 100,
                        height: 10,
                    },
                    confidence: 80.0,
                    words: vec![],
                })
                .collect(),
        }]
    }

    #[test]
    fn identity_fields_by_their_labels_and_the_mrz() {
        let pages = page(&[
            "PASSPORT",
            "Type: P Issuing State: UTO",
            "Surname: ERIKSSON",
            "Given names: ANNA MARIA",
            "Nationality: UTO",
            "Date of birth: 12 AUG 1974",
            "Sex: F",
            "Date of expiry: 15 APR 2032",
            "Passport No: L898902C3",
            "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
            "L898902C36UTO7408122F3204159 ZE184226B<<<<<10",
        ]);
        let f = extract("id", &pages);
        let v = |k: &str| f.get(k).map(|f| f.value.as_str());
        assert_eq!(v("document_type"), Some("PASSPORT"));
        assert_eq!(v("document_number"), Some("L898902C3"));
        assert_eq!(v("surname"), Some("ERIKSSON"));
        assert_eq!(v("given_names"), Some("ANNA MARIA"));
        assert_eq!(v("issuing_country"), Some("UTO"));
        assert_eq!(v("date_of_birth"), Some("12 AUG 1974"));
        assert_eq!(v("expiry_date"), Some("15 APR 2032"));
        assert_eq!(v("sex"), Some("F"));
        assert_eq!(
            v("mrz"),
            Some("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F3204159ZE184226B<<<<<10")
        );
    }

    #[test]
    fn receipt_fields() {
        let pages = page(&[
            "tan woon yann",
            "BOOK TAK (TAMAN DAYA) SDN BHD",
            "NO.5? 55,57 & 59, JALAN SAGU 18,",
            "TAMAN DAYA",
            "Tel: 07-1234",
            "Date 25/12/2018 8:13:39 PM",
            "Sub Total 8.50",
            "Total : 9.00",
            "Rounded Total (RM):",
            "9.00",
            "Total Qty 12.00",
        ]);
        let f = extract("receipt", &pages);
        assert_eq!(f["total"].value, "9.00");
        assert_eq!(f["date"].value, "25/12/2018");
        assert_eq!(f["company"].value, "BOOK TAK (TAMAN DAYA) SDN BHD");
        assert_eq!(
            f["address"].value,
            "NO.5? 55,57 & 59, JALAN SAGU 18, TAMAN DAYA"
        );
    }

    #[test]
    fn invoice_fields() {
        let pages = page(&[
            "ACME Corp",
            "Invoice No: INV-2024-0042",
            "Invoice Date: 2024-03-01",
            "Due Date: 2024-03-31",
            "Subtotal $1,000.00",
            "Tax (10%) $100.00",
            "Total Due $1,100.00",
        ]);
        let f = extract("invoice", &pages);
        assert_eq!(f["invoice_id"].value, "INV-2024-0042");
        assert_eq!(f["invoice_date"].value, "2024-03-01");
        assert_eq!(f["due_date"].value, "2024-03-31");
        assert_eq!(f["subtotal"].value, "1000.00");
        assert_eq!(f["tax"].value, "100.00");
        assert_eq!(f["total"].value, "1100.00");
        assert_eq!(f["currency"].value, "USD");
        assert!(extract("generic", &pages).is_empty());
    }

    #[test]
    fn item_rows_above_the_summary_are_line_items() {
        let pages = page(&[
            "NORTHWIND TRADING LTD",
            "Invoice No: INV-2026-0042",
            "Invoice Date: 2026-11-02",
            "Consulting services 1,000.00",
            "Widget 2 x $5.00 $10.00",
            "Eggs x10 7.90",
            "Tel: 03-1234 5678",
            "Subtotal $1,017.90",
            "Tax (10%) $101.79",
            "Total Due $1,119.69",
            "Cash 1,200.00",
        ]);
        let items = line_items("invoice", &pages);
        let rows: Vec<_> = items
            .iter()
            .map(|i| {
                (
                    i.description.as_str(),
                    i.quantity.as_deref(),
                    i.unit_price.as_deref(),
                    i.amount.as_str(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("Consulting services", None, None, "1,000.00"),
                ("Widget", Some("2"), Some("$5.00"), "$10.00"),
                ("Eggs x10", None, None, "7.90"),
            ]
        );
        assert!(line_items("generic", &pages).is_empty());
    }

    #[test]
    fn an_amount_far_right_of_its_description_is_one_row() {
        // A text layer gives padded rows as two column flows: the descriptions, then the
        // amounts, each a line of its own at the row's height.
        let pages = page_at(&[
            ("KESTREL ENGINEERING GMBH", 0, 0),
            ("Cloud hosting", 0, 100),
            ("Training day", 0, 120),
            ("340.50", 400, 101),
            ("850.00", 400, 121),
            ("Subtotal EUR 1,190.50", 0, 140),
        ]);
        let items = line_items("invoice", &pages);
        let rows: Vec<_> = items
            .iter()
            .map(|i| (i.description.as_str(), i.amount.as_str(), i.text.as_str()))
            .collect();
        assert_eq!(
            rows,
            [
                ("Cloud hosting", "340.50", "Cloud hosting 340.50"),
                ("Training day", "850.00", "Training day 850.00"),
            ]
        );
        assert_eq!(items[0].bbox.width, 500, "the row spans both lines");
    }

    #[test]
    fn typed_dates_never_take_a_two_digit_year_for_a_four_digit_one() {
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d);
        assert_eq!(typed_date("12-01-19", None), day(2019, 1, 12));
        assert_eq!(typed_date("12/01/2019", Some("EUR")), day(2019, 1, 12));
        assert_eq!(typed_date("2019-01-12", Some("USD")), day(2019, 1, 12));
        assert_eq!(typed_date("25.12.18", None), day(2018, 12, 25));
        assert_eq!(typed_date("not a date", None), None);
        // A dollar document writes the month first, as its vendor's locale would read it;
        // a reading impossible that way is read the other.
        assert_eq!(typed_date("03/04/2026", Some("USD")), day(2026, 3, 4));
        assert_eq!(typed_date("13/04/2026", Some("USD")), day(2026, 4, 13));
        assert_eq!(typed_date("03/04/2026", Some("EUR")), day(2026, 4, 3));
    }
}
