//! Mindee v2's inferences as `Document v1` — financial documents, invoices, and the catalog's
//! Passport and International ID models for the `id` profile: typed fields (`{value,
//! confidence, locations}`, with polygons as fractions of 0-based pages), line items, the
//! locale's currency. A `null` value is a missing field, never a crash — a Mindee user's whole
//! receipt pipeline once went down on new nulls (mindee/mindee-api-python#312) — and a field
//! name this normalizer does not know is drift, reported and skipped. Tested on Mindee's own
//! payloads in `../shared/fixtures/mindee-v2/` (tests/fixtures_normalize.rs).

use std::collections::BTreeSet;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::document::{
    BBox, Block, Document, Field, Fields, IdFields, InvoiceFields, Line, LineItem, Page,
    PageSource, ReceiptFields, VendorInfo, Word, SCHEMA_VERSION,
};
use crate::job::Profile;
use crate::vendors::identity;
use crate::vendors::normalize::{
    canonical_money, parse_date, Drift, DriftKind, NormalizeError, Normalized,
};

/// The standard fields of the models ocrbridge reads; any other field is drift. Kept from the
/// vendor's published schemas, one list per model, so normal traffic never raises the alarm:
/// - financial document: the fields of Mindee's own v2 sample payloads
///   (`tests/fixtures/vendors/mindee-v2/`, from mindee-api-python's test data);
/// - invoice: Mindee's Invoice schema, <https://docs.mindee.com/use-cases/extraction-models/invoice>
///   and the SDKs' `InvoiceV4Document` (<https://mindee.github.io/mindee-api-dotnet/Product/Invoice/InvoiceV4Document>),
///   whose fields the v2 Invoice model keeps; v2 names a registration in the singular too.
const KNOWN_FIELDS: &[&str] = &[
    // financial document (and the fields the others share)
    "date",
    "time",
    "taxes",
    "locale",
    "due_date",
    "total_net",
    "total_tax",
    "line_items",
    "total_amount",
    "customer_name",
    "document_type",
    "document_number",
    "supplier_name",
    "tips_gratuity",
    "invoice_number",
    "receipt_number",
    "customer_address",
    "supplier_address",
    "purchase_category",
    "purchase_subcategory",
    "supplier_phone_number",
    "supplier_company_registration",
    "customer_company_registrations",
    "supplier_email",
    "supplier_website",
    "purchase_order_number",
    "billing_address",
    "shipping_address",
    "reference_numbers",
    "supplier_payment_details",
    // invoice
    "customer_id",
    "payment_date",
    "po_number",
    "customer_company_registration",
    "supplier_company_registrations",
    // passport and international ID (the catalog models' data schemas:
    // https://docs.mindee.com/use-cases/extraction-models/passport, …/international-id)
    "given_names",
    "surnames",
    "date_of_birth",
    "place_of_birth",
    "passport_number",
    "issuing_country",
    "nationality",
    "date_of_issue",
    "date_of_expiry",
    "sex",
    "mrz_line_1",
    "mrz_line_2",
    "mrz",
    "authority",
    "address",
];

/// Mindee's confidence grades as numbers (the midpoints of what each grade means).
pub fn confidence(v: &Value) -> Option<f64> {
    match v.as_str() {
        Some("Certain") => Some(1.0),
        Some("High") => Some(0.9),
        Some("Medium") => Some(0.6),
        Some("Low") => Some(0.3),
        _ => None,
    }
}

/// A field's first location: its page (1-based) and the box around its polygon.
fn location(field: &Value) -> (Option<u32>, Option<BBox>) {
    let Some(first) = field["locations"].as_array().and_then(|l| l.first()) else {
        return (None, None);
    };
    let page = first["page"].as_u64().map(|p| p as u32 + 1);
    let points: Vec<(f64, f64)> = first["polygon"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?)))
        .collect();
    if points.is_empty() {
        return (page, None);
    }
    let fold = |f: fn(&(f64, f64)) -> f64| {
        points
            .iter()
            .map(f)
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)))
    };
    let (l, r) = fold(|p| p.0);
    let (t, b) = fold(|p| p.1);
    let (l, t) = (l.clamp(0.0, 1.0), t.clamp(0.0, 1.0));
    let bbox = BBox {
        left: l,
        top: t,
        width: (r.clamp(0.0, 1.0) - l).max(0.0),
        height: (b.clamp(0.0, 1.0) - t).max(0.0),
    };
    (page, Some(bbox))
}

fn decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => Decimal::from_str(&n.to_string()).ok().or_else(|| {
            n.as_f64()
                .and_then(|f| Decimal::from_str(&f.to_string()).ok())
        }),
        Value::String(s) => crate::vendors::normalize::parse_amount(s),
        _ => None,
    }
}

/// A value as Mindee sent it: its text, or its JSON (`1320.0`) — Mindee v2 types every value
/// and prints none, so the typed value is the vendor's own writing.
fn written(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

/// A field's value, confidence and location.
type Typed = (Value, Option<f64>, (Option<u32>, Option<BBox>));

/// `payload`: `{inference: {id, model, file, result: {fields, raw_text?}}}`.
pub fn normalize(
    raw: &[u8],
    job_id: &str,
    vendor_job_id: &str,
    profile: &Profile,
) -> Result<Normalized, NormalizeError> {
    let payload: Value =
        serde_json::from_slice(raw).map_err(|e| NormalizeError::NotJson(e.to_string()))?;
    let inference = &payload["inference"];
    let Some(fields) = inference["result"]["fields"].as_object() else {
        return Err(NormalizeError::Unusable(
            "no inference.result.fields in the Mindee payload".into(),
        ));
    };
    let mut drift = BTreeSet::new();
    for name in fields.keys() {
        if !KNOWN_FIELDS.contains(&name.as_str()) {
            drift.insert(Drift {
                field: format!("inference.result.fields.{name}"),
                kind: DriftKind::UnknownField,
            });
        }
    }
    let typed = |name: &str, read: &dyn Fn(&Value) -> Option<Value>| -> Option<Typed> {
        let f = fields.get(name)?;
        let value = read(&f["value"])?;
        Some((value, confidence(&f["confidence"]), location(f)))
    };
    let present = |v: &Value| (!v.is_null()).then(|| v.clone());
    let text = |name: &str| {
        typed(name, &present).and_then(|(v, confidence, (page, bbox))| {
            Some(Field {
                value: v.as_str().filter(|s| !s.trim().is_empty())?.to_owned(),
                raw: Some(written(&v)),
                confidence,
                page,
                bbox,
            })
        })
    };
    let money = |name: &str| {
        typed(name, &present).and_then(|(v, confidence, (page, bbox))| {
            Some(Field {
                value: decimal(&v)?,
                raw: Some(written(&v)),
                confidence,
                page,
                bbox,
            })
        })
    };
    let date = |name: &str| {
        typed(name, &present).and_then(|(v, confidence, (page, bbox))| {
            Some(Field {
                value: chrono::NaiveDate::parse_from_str(v.as_str()?, "%Y-%m-%d")
                    .ok()
                    .or_else(|| v.as_str().and_then(parse_date))?,
                raw: Some(written(&v)),
                confidence,
                page,
                bbox,
            })
        })
    };
    let currency_field = &fields
        .get("locale")
        .map_or(&Value::Null, |l| &l["fields"]["currency"]);
    let currency = currency_field["value"]
        .as_str()
        .filter(|c| c.len() == 3)
        .map(|c| Field {
            value: c.to_owned(),
            raw: Some(c.to_owned()),
            confidence: confidence(&currency_field["confidence"]),
            page: None,
            bbox: None,
        });
    let mut typed_fields = match profile.as_str() {
        "receipt" => Fields::Receipt(ReceiptFields {
            merchant: text("supplier_name"),
            date: date("date"),
            subtotal: money("total_net"),
            tax: money("total_tax"),
            total: money("total_amount"),
            currency,
        }),
        "invoice" => Fields::Invoice(InvoiceFields {
            vendor_name: text("supplier_name"),
            invoice_number: text("invoice_number"),
            issue_date: date("date"),
            due_date: date("due_date"),
            subtotal: money("total_net"),
            tax: money("total_tax"),
            total: money("total_amount"),
            currency,
            line_items: line_items(fields.get("line_items").unwrap_or(&Value::Null)),
        }),
        // Mindee's catalog Passport and International ID models: their fields by the
        // accessors their data schemas name (a model whose schema renames them reads as
        // missing fields, which review says, and drift).
        "id" => {
            let retyped = |f: Field<String>, value: Option<&str>| {
                value.map(|v| Field {
                    value: v.to_owned(),
                    ..f
                })
            };
            Fields::Id(IdFields {
                document_type: match text("document_type") {
                    Some(f) => {
                        let kind = identity::document_type(&f.value);
                        retyped(f, Some(kind))
                    }
                    // The Passport model has no type field: its number says what it is.
                    None => fields.contains_key("passport_number").then(|| Field {
                        value: "passport".to_owned(),
                        raw: None,
                        confidence: None,
                        page: None,
                        bbox: None,
                    }),
                },
                document_number: text("document_number").or_else(|| text("passport_number")),
                surname: text("surnames"),
                given_names: text("given_names"),
                nationality: text("nationality"),
                issuing_country: text("issuing_country"),
                date_of_birth: date("date_of_birth"),
                expiry_date: date("date_of_expiry"),
                sex: text("sex").and_then(|f| {
                    let sex = identity::sex(&f.value);
                    retyped(f, sex)
                }),
                mrz: mrz_field(fields),
            })
        }
        _ => Fields::Generic,
    };
    // `raw_text.pages[].content` (when the job asked for it) is the text of each page. It has
    // no geometry, so its lines span their page; and its pages count, whatever `file` says.
    let raw_pages: Vec<&str> = inference["result"]["raw_text"]["pages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["content"].as_str().unwrap_or_default())
        .collect();
    let stated = inference["file"]["page_count"].as_u64().unwrap_or(1).max(1);
    let page_count = stated.max(raw_pages.len() as u64).min(u64::from(u32::MAX)) as u32;
    let mut reading_order = Vec::new();
    let mut lines_of = |number: u32| -> Vec<Block> {
        let Some(content) = raw_pages.get(number as usize - 1) else {
            return vec![];
        };
        let lines: Vec<Line> = content
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|text| {
                let id = format!("l{}", reading_order.len() + 1);
                reading_order.push(id.clone());
                Line {
                    id,
                    text: text.to_owned(),
                    bbox: WHOLE_PAGE,
                    confidence: None,
                    words: text
                        .split_whitespace()
                        .map(|w| Word {
                            text: w.to_owned(),
                            bbox: WHOLE_PAGE,
                            confidence: None,
                            handwritten: None,
                        })
                        .collect(),
                }
            })
            .collect();
        if lines.is_empty() {
            return vec![];
        }
        vec![Block {
            id: format!("p{number}-b1"),
            bbox: WHOLE_PAGE,
            lines,
        }]
    };
    let pages: Vec<Page> = (1..=page_count)
        .map(|number| Page {
            number,
            width: None,
            height: None,
            unit: "normalized".into(),
            rotation: 0,
            source: PageSource::Unknown,
            blocks: lines_of(number),
        })
        .collect();
    canonical_money(&mut typed_fields);
    Ok(Normalized {
        document: Document {
            schema_version: SCHEMA_VERSION.into(),
            job_id: job_id.to_owned(),
            vendor: VendorInfo {
                name: "mindee".into(),
                job_id: vendor_job_id.to_owned(),
                model: inference["model"]["id"].as_str().map(str::to_owned),
                // Mindee v2 reports no model version: a retrained model keeps its id.
                model_version: None,
            },
            // Mindee returns fields, and the pages' text without a layout.
            pages,
            reading_order,
            tables: vec![],
            key_values: vec![],
            fields: typed_fields,
            language: None,
        },
        drift: drift.into_iter().collect(),
        // The vendor's dates are ISO (`valueDate`, `value`): it settled their order.
        ambiguous_dates: vec![],
        // A Mindee v2 inference is one document.
        multiple_documents: None,
    })
}

/// Where a line is when the vendor gives text without geometry: somewhere on its page.
const WHOLE_PAGE: BBox = BBox {
    left: 0.0,
    top: 0.0,
    width: 1.0,
    height: 1.0,
};

/// The MRZ as its lines joined by `\n`: the International ID model's `mrz` object
/// (`line_1`…`line_3`), or the Passport model's `mrz_line_1` and `mrz_line_2`; the lowest
/// confidence of its lines.
fn mrz_field(fields: &serde_json::Map<String, Value>) -> Option<Field<String>> {
    let object = fields.get("mrz").map(|m| &m["fields"]);
    let lines: Vec<&Value> = match object {
        Some(sub) if sub.is_object() => ["line_1", "line_2", "line_3"]
            .iter()
            .filter_map(|l| sub.get(*l))
            .collect(),
        _ => ["mrz_line_1", "mrz_line_2"]
            .iter()
            .filter_map(|l| fields.get(*l))
            .collect(),
    };
    let read: Vec<(String, Option<f64>)> = lines
        .iter()
        .filter_map(|l| {
            let text: String = l["value"]
                .as_str()?
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            (!text.is_empty()).then(|| (text, confidence(&l["confidence"])))
        })
        .collect();
    if read.len() < 2 {
        return None;
    }
    let value = read
        .iter()
        .map(|(t, _)| t.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    Some(Field {
        raw: Some(value.clone()),
        value,
        confidence: read.iter().filter_map(|(_, c)| *c).min_by(f64::total_cmp),
        page: None,
        bbox: None,
    })
}

fn line_items(list: &Value) -> Vec<LineItem> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| {
            let f = &item["fields"];
            Some(LineItem {
                description: f["description"]["value"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                quantity: decimal(&f["quantity"]["value"]),
                unit_price: decimal(&f["unit_price"]["value"]),
                amount: decimal(&f["total_price"]["value"])?,
                confidence: confidence(&item["confidence"]),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(fields: Value) -> IdFields {
        let raw = json!({ "inference": {
            "model": { "id": "m" },
            "file": { "page_count": 1 },
            "result": { "fields": fields },
        }});
        let normalized = normalize(
            raw.to_string().as_bytes(),
            "doc-1",
            "v-1",
            &Profile::new("id").unwrap(),
        )
        .unwrap();
        assert!(normalized.drift.is_empty(), "{:?}", normalized.drift);
        match normalized.document.fields {
            Fields::Id(id) => id,
            other => panic!("{other:?}"),
        }
    }

    fn v(value: &str) -> Value {
        json!({ "value": value, "confidence": "High", "locations": [] })
    }

    /// The catalog Passport model's accessors (docs.mindee.com, extraction-models/passport), on
    /// the ICAO 9303 specimen's MRZ:
    /// no type field (its number says passport), `Female` for sex, the MRZ in two fields.
    #[test]
    fn the_passport_model_reads_as_an_id() {
        let id = read(json!({
            "given_names": v("ANNA MARIA"),
            "surnames": v("ERIKSSON"),
            "passport_number": v("L898902C3"),
            "nationality": v("UTO"),
            "issuing_country": v("UTO"),
            "date_of_birth": v("1974-08-12"),
            "date_of_expiry": v("2032-04-15"),
            "sex": v("Female"),
            "place_of_birth": v("ZENITH"),
            "date_of_issue": v("2022-04-16"),
            "mrz_line_1": v("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<"),
            "mrz_line_2": v("L898902C36UTO7408122F1204159ZE184226B<<<<<10"),
        }));
        assert_eq!(id.document_type.unwrap().value, "passport");
        assert_eq!(id.document_number.unwrap().value, "L898902C3");
        assert_eq!(id.surname.unwrap().value, "ERIKSSON");
        assert_eq!(id.sex.unwrap().value, "F");
        assert_eq!(
            id.expiry_date.unwrap().value,
            chrono::NaiveDate::from_ymd_opt(2032, 4, 15).unwrap()
        );
        let mrz = id.mrz.unwrap().value;
        assert_eq!(mrz.lines().count(), 2, "{mrz}");
        let lines: Vec<&str> = mrz.lines().collect();
        assert!(crate::mrz::parse(&lines).is_ok(), "{mrz}");
    }

    /// The International ID model: its type values, `Other` as ICAO's `X`, the MRZ an object of
    /// lines, and nulls (a field the card does not print) as missing fields.
    #[test]
    fn the_international_id_model_reads_as_an_id() {
        let none = json!({ "value": null, "confidence": null, "locations": [] });
        let id = read(json!({
            "document_type": v("National ID"),
            "document_number": v("D23145890"),
            "surnames": v("ERIKSSON"),
            "given_names": none.clone(),
            "sex": v("Other"),
            "date_of_birth": v("1974-08-12"),
            "mrz": { "fields": {
                "line_1": v("I<UTOD231458907<<<<<<<<<<<<<<<"),
                "line_2": v("7408122F1204159UTO<<<<<<<<<<<6"),
                "line_3": v("ERIKSSON<<ANNA<MARIA<<<<<<<<<<"),
            }},
        }));
        assert_eq!(id.document_type.unwrap().value, "id_card");
        assert_eq!(id.sex.unwrap().value, "X");
        assert!(id.given_names.is_none());
        assert_eq!(id.mrz.unwrap().value.lines().count(), 3);
    }
}
