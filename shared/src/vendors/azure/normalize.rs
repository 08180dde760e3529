//! Azure Document Intelligence's `analyzeResult` as `Document v1`: pages with their words and
//! lines (polygons in the page's own unit, pixels or inches, normalized by its size), tables with
//! their spans, key-value pairs, and `documents[0].fields` typed by the prebuilt receipt and
//! invoice models (`valueCurrency`, `valueNumber`, `valueDate`, `valueString`, `Items` as a
//! `valueArray` of `valueObject`s). Tested on Microsoft's recorded exchanges in
//! `../shared/fixtures/azure-di/` (tests/fixtures_normalize.rs).

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::document::{
    BBox, Block, Cell, Document, Field, Fields, IdFields, InvoiceFields, KeyValue, Language,
    LanguageSource, Line, LineItem, Page, PageSource, ReceiptFields, Table, VendorInfo, Word,
    SCHEMA_VERSION,
};
use crate::job::Profile;
use crate::vendors::identity;
use crate::vendors::normalize::{
    canonical_money, enclosing, parse_amount, parse_date, Drift, DriftKind, MultipleDocuments,
    NormalizeError, Normalized,
};

/// Field types this normalizer reads or knowingly skips; anything else is drift.
const KNOWN_TYPES: &[&str] = &[
    "string",
    "date",
    "time",
    "phoneNumber",
    "number",
    "integer",
    "currency",
    "address",
    "array",
    "object",
    "selectionMark",
    "countryRegion",
    "signature",
    "boolean",
    "selectionGroup",
];

/// A page's size, for normalizing its polygons.
#[derive(Clone, Copy)]
struct Size {
    width: f64,
    height: f64,
}

/// The box around an Azure polygon (`[x1, y1, x2, y2, …]`, in the page's unit).
fn polygon_box(polygon: &Value, size: Size) -> Option<BBox> {
    let points: Vec<f64> = polygon
        .as_array()?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    if points.len() < 4 {
        return None;
    }
    let xs = points.iter().step_by(2);
    let ys = points.iter().skip(1).step_by(2);
    let (l, r) = xs.fold((f64::MAX, f64::MIN), |(l, r), x| (l.min(*x), r.max(*x)));
    let (t, b) = ys.fold((f64::MAX, f64::MIN), |(t, b), y| (t.min(*y), b.max(*y)));
    BBox::from_pixels(l, t, r - l, b - t, size.width, size.height)
}

/// `[start, end)` offsets of the content Azure read as handwriting (`styles[].isHandwritten`).
/// `None` when the payload has no `styles` at all (a model or API version that does not report
/// them): then no word is marked either way. Present and empty: every word is print.
fn handwritten_spans(result: &Value) -> Option<Vec<(usize, usize)>> {
    let styles = result.get("styles")?.as_array()?;
    Some(
        styles
            .iter()
            .filter(|style| style["isHandwritten"] == true)
            .flat_map(|style| style["spans"].as_array().into_iter().flatten())
            .filter_map(|span| {
                let offset = span["offset"].as_u64()? as usize;
                Some((offset, offset + span["length"].as_u64()? as usize))
            })
            .collect(),
    )
}

/// The locale that covers most of the content (`languages[]`, returned with the `languages`
/// add-on feature), with its span-weighted confidence.
fn language(result: &Value) -> Option<Language> {
    let mut by_locale: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for entry in result["languages"].as_array().into_iter().flatten() {
        let Some(code) = entry["locale"]
            .as_str()
            .and_then(crate::language::from_locale)
        else {
            continue;
        };
        let length: u64 = entry["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["length"].as_u64())
            .sum();
        let confidence = entry["confidence"].as_f64().unwrap_or(0.0).clamp(0.0, 1.0);
        let (total, weighted) = by_locale.entry(code).or_default();
        *total += length;
        *weighted += confidence * length as f64;
    }
    let (code, (length, weighted)) = by_locale
        .into_iter()
        .filter(|(_, (length, _))| *length > 0)
        .max_by_key(|(_, (length, _))| *length)?;
    Some(Language {
        code,
        script: None,
        confidence: Some(weighted / length as f64),
        source: LanguageSource::Vendor,
    })
}

/// `payload`: the operation (`{status, analyzeResult}`) or the bare `analyzeResult`.
pub fn normalize(
    raw: &[u8],
    job_id: &str,
    vendor_job_id: &str,
    profile: &Profile,
) -> Result<Normalized, NormalizeError> {
    let payload: Value =
        serde_json::from_slice(raw).map_err(|e| NormalizeError::NotJson(e.to_string()))?;
    let result = payload.get("analyzeResult").unwrap_or(&payload);
    let Some(azure_pages) = result["pages"].as_array() else {
        return Err(NormalizeError::Unusable(
            "no analyzeResult.pages in the Azure payload".into(),
        ));
    };
    let handwriting = handwritten_spans(result);
    let mut drift = BTreeSet::new();
    let mut sizes: Vec<Size> = Vec::new();
    let mut pages = Vec::new();
    let mut reading_order = Vec::new();
    for p in azure_pages {
        let number = p["pageNumber"].as_u64().unwrap_or(pages.len() as u64 + 1) as u32;
        let (Some(width), Some(height)) = (p["width"].as_f64(), p["height"].as_f64()) else {
            return Err(NormalizeError::Unusable(format!(
                "page {number} has no width or height: its polygons cannot be normalized"
            )));
        };
        let size = Size { width, height };
        sizes.push(size);
        let unit = p["unit"].as_str().unwrap_or("missing");
        if !matches!(unit, "pixel" | "inch") {
            drift.insert(Drift {
                field: format!("pages[].unit={unit}"),
                kind: DriftKind::NewEnumValue,
            });
        }
        // Words belong to the line whose spans hold their offset.
        let words: Vec<(usize, Word)> = p["words"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| {
                let offset = w["span"]["offset"].as_u64()? as usize;
                Some((
                    offset,
                    Word {
                        text: w["content"].as_str().unwrap_or_default().to_owned(),
                        bbox: polygon_box(&w["polygon"], size)?,
                        confidence: w["confidence"].as_f64().map(|c| c.clamp(0.0, 1.0)),
                        handwritten: handwriting
                            .as_ref()
                            .map(|spans| spans.iter().any(|(a, b)| offset >= *a && offset < *b)),
                    },
                ))
            })
            .collect();
        let mut lines = Vec::new();
        for line in p["lines"].as_array().into_iter().flatten() {
            let Some(bbox) = polygon_box(&line["polygon"], size) else {
                continue;
            };
            let spans: Vec<(usize, usize)> = line["spans"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| {
                    let offset = s["offset"].as_u64()? as usize;
                    Some((offset, offset + s["length"].as_u64()? as usize))
                })
                .collect();
            let line_words: Vec<Word> = words
                .iter()
                .filter(|(offset, _)| spans.iter().any(|(a, b)| offset >= a && offset < b))
                .map(|(_, w)| w.clone())
                .collect();
            let confidence = (!line_words.is_empty()).then(|| {
                line_words.iter().filter_map(|w| w.confidence).sum::<f64>()
                    / line_words.len() as f64
            });
            let id = format!("l{}", reading_order.len() + 1);
            reading_order.push(id.clone());
            lines.push(Line {
                id,
                text: line["content"].as_str().unwrap_or_default().to_owned(),
                bbox,
                confidence,
                words: line_words,
            });
        }
        let blocks = if lines.is_empty() {
            vec![]
        } else {
            vec![Block {
                id: format!("p{number}-b1"),
                bbox: enclosing(lines.iter().map(|l| l.bbox)),
                lines,
            }]
        };
        pages.push(Page {
            number,
            width: Some(width),
            height: Some(height),
            unit: unit.to_owned(),
            rotation: rotation(p["angle"].as_f64().unwrap_or(0.0)),
            source: PageSource::Ocr,
            blocks,
        });
    }
    let size_of = |page: u32| sizes.get(page.saturating_sub(1) as usize).copied();
    let region = |v: &Value| -> (Option<u32>, Option<BBox>) {
        let first = &v["boundingRegions"][0];
        let page = first["pageNumber"].as_u64().map(|p| p as u32);
        let bbox = page
            .and_then(size_of)
            .and_then(|size| polygon_box(&first["polygon"], size));
        (page, bbox)
    };
    let tables = result["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let (page, bbox) = region(t);
            Table {
                page: page.unwrap_or(1),
                bbox,
                rows: t["rowCount"].as_u64().unwrap_or(0) as u32,
                columns: t["columnCount"].as_u64().unwrap_or(0) as u32,
                cells: t["cells"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| Cell {
                        row: c["rowIndex"].as_u64().unwrap_or(0) as u32,
                        column: c["columnIndex"].as_u64().unwrap_or(0) as u32,
                        row_span: c["rowSpan"].as_u64().unwrap_or(1).max(1) as u32,
                        column_span: c["columnSpan"].as_u64().unwrap_or(1).max(1) as u32,
                        text: c["content"].as_str().unwrap_or_default().to_owned(),
                        confidence: None,
                    })
                    .collect(),
            }
        })
        .collect();
    let key_values = result["keyValuePairs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|kv| KeyValue {
            key: kv["key"]["content"].as_str().unwrap_or_default().to_owned(),
            value: kv["value"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            page: region(&kv["key"]).0.unwrap_or(1),
            confidence: kv["confidence"].as_f64(),
        })
        .collect();
    // Azure finds each receipt or invoice in the file as a document of its own (with its own
    // bounding regions): the fields are the first's, and the others are a reason for review.
    let documents = result["documents"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let multiple_documents = (documents.len() > 1).then(|| MultipleDocuments {
        found: documents.len(),
        evidence: format!(
            "documents[] holds {} ({}); the fields are documents[0]'s",
            documents.len(),
            documents
                .iter()
                .map(|d| d["docType"].as_str().unwrap_or("?"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    });
    let document_fields = &result["documents"][0]["fields"];
    if let Some(fields) = document_fields.as_object() {
        for (name, field) in fields {
            let kind = field["type"].as_str().unwrap_or("missing");
            if !KNOWN_TYPES.contains(&kind) {
                drift.insert(Drift {
                    field: format!("documents[].fields.{name}.type={kind}"),
                    kind: DriftKind::NewEnumValue,
                });
            }
        }
    }
    let typed = Typed {
        fields: document_fields,
        region: &region,
    };
    let doc_type = result["documents"][0]["docType"]
        .as_str()
        .unwrap_or_default();
    let fields = match profile.as_str() {
        // prebuilt-idDocument (`idDocument.passport`, `.driverLicense`, …), whatever the profile
        // was called.
        _ if doc_type.starts_with("idDocument") => Fields::Id(identity_fields(
            &typed,
            doc_type,
            result["documents"][0]["confidence"].as_f64(),
        )),
        "receipt" => Fields::Receipt(ReceiptFields {
            merchant: typed.text("MerchantName"),
            date: typed.date("TransactionDate"),
            subtotal: typed.money("Subtotal"),
            tax: typed.money("TotalTax").or_else(|| typed.money("Tax")),
            total: typed.money("Total"),
            currency: typed.currency(&["Total", "Subtotal"]),
        }),
        "invoice" => Fields::Invoice(InvoiceFields {
            vendor_name: typed.text("VendorName"),
            invoice_number: typed.text("InvoiceId"),
            issue_date: typed.date("InvoiceDate"),
            due_date: typed.date("DueDate"),
            subtotal: typed.money("SubTotal"),
            tax: typed.money("TotalTax"),
            total: typed
                .money("InvoiceTotal")
                .or_else(|| typed.money("AmountDue")),
            currency: typed.currency(&["InvoiceTotal", "AmountDue", "SubTotal"]),
            line_items: line_items(document_fields),
        }),
        _ => Fields::Generic,
    };
    let mut fields = fields;
    canonical_money(&mut fields);
    let mut document = Document {
        schema_version: SCHEMA_VERSION.into(),
        job_id: job_id.to_owned(),
        vendor: VendorInfo {
            name: "azure".into(),
            job_id: vendor_job_id.to_owned(),
            model: result["modelId"].as_str().map(str::to_owned),
            // A prebuilt model is versioned by the API version that served it.
            model_version: result["apiVersion"].as_str().map(str::to_owned),
        },
        pages,
        reading_order,
        tables,
        key_values,
        fields,
        language: language(result),
    };
    let mrz_on_page = identity::mrz_from_lines(&document);
    if let Fields::Id(id) = &mut document.fields {
        id.mrz = id.mrz.take().or(mrz_on_page);
    }
    Ok(Normalized {
        document,
        drift: drift.into_iter().collect(),
        // The vendor's dates are ISO (`valueDate`, `value`): it settled their order.
        ambiguous_dates: vec![],
        multiple_documents,
    })
}

/// Azure's `angle` (the text's rotation, -180..180) as the nearest quarter turn.
fn rotation(angle: f64) -> u16 {
    let quarter = ((angle.rem_euclid(360.0) / 90.0).round() as u16) % 4;
    quarter * 90
}

/// An amount from a typed field: `valueCurrency.amount`, `valueNumber`, or its text.
fn amount(field: &Value) -> Option<Decimal> {
    field["valueCurrency"]["amount"]
        .as_f64()
        .or_else(|| field["valueNumber"].as_f64())
        .and_then(|n| Decimal::from_str(&n.to_string()).ok())
        .or_else(|| field["content"].as_str().and_then(parse_amount))
}

/// A field as the document printed it (`content`); a field without content (Azure omits it
/// for some inferred values) keeps its typed value's JSON.
fn written(field: &Value) -> Option<String> {
    if let Some(content) = field["content"].as_str() {
        return Some(content.to_owned());
    }
    ["valueString", "valueDate", "valueNumber", "valueCurrency"]
        .iter()
        .find_map(|k| field.get(*k).filter(|v| !v.is_null()))
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
}

/// The typed fields of `documents[0]`, read into ours with where each came from.
/// prebuilt-idDocument's fields (`FirstName`, `LastName`, `DocumentNumber`, `DateOfBirth`,
/// `DateOfExpiration`, `Sex`, `Nationality`, `CountryRegion`, `MachineReadableZone`). The MRZ is
/// a string field in v4 and an object of its parsed fields in 2022-08-31; only its text is kept
/// (the object's `content`), and the MRZ among the page's lines is the fallback, in the caller.
fn identity_fields<R: Fn(&Value) -> (Option<u32>, Option<BBox>)>(
    typed: &Typed<'_, R>,
    doc_type: &str,
    // How sure Azure is of the document's type (`documents[].confidence`).
    type_confidence: Option<f64>,
) -> IdFields {
    let country = |name: &str| {
        typed.field(name, |f| {
            f["valueCountryRegion"]
                .as_str()
                .or(f["valueString"].as_str())
                .filter(|c| !c.trim().is_empty())
                .map(|c| c.trim().to_ascii_uppercase())
        })
    };
    IdFields {
        document_type: Some(Field {
            value: identity::document_type(doc_type).to_owned(),
            raw: Some(doc_type.to_owned()),
            confidence: type_confidence.map(|c| c.clamp(0.0, 1.0)),
            page: None,
            bbox: None,
        }),
        document_number: typed.text("DocumentNumber"),
        surname: typed.text("LastName"),
        given_names: typed.text("FirstName"),
        nationality: country("Nationality"),
        issuing_country: country("CountryRegion"),
        date_of_birth: typed.date("DateOfBirth"),
        expiry_date: typed.date("DateOfExpiration"),
        sex: typed.field("Sex", |f| {
            f["valueString"]
                .as_str()
                .or(f["content"].as_str())
                .and_then(identity::sex)
                .map(str::to_owned)
        }),
        mrz: typed.field("MachineReadableZone", |f| {
            f["valueString"]
                .as_str()
                .or(f["content"].as_str())
                .map(|t| t.split_whitespace().collect::<Vec<_>>().join("\n"))
                .filter(|t| t.contains('<'))
        }),
    }
}

struct Typed<'a, R: Fn(&Value) -> (Option<u32>, Option<BBox>)> {
    fields: &'a Value,
    region: &'a R,
}

impl<R: Fn(&Value) -> (Option<u32>, Option<BBox>)> Typed<'_, R> {
    fn field<T>(&self, name: &str, value: impl Fn(&Value) -> Option<T>) -> Option<Field<T>> {
        let f = self.fields.get(name)?;
        let value = value(f)?;
        let (page, bbox) = (self.region)(f);
        Some(Field {
            value,
            raw: written(f),
            confidence: f["confidence"].as_f64().map(|c| c.clamp(0.0, 1.0)),
            page,
            bbox,
        })
    }

    fn text(&self, name: &str) -> Option<Field<String>> {
        self.field(name, |f| {
            f["valueString"]
                .as_str()
                .or(f["content"].as_str())
                .filter(|s| !s.trim().is_empty())
                .map(str::to_owned)
        })
    }

    fn date(&self, name: &str) -> Option<Field<chrono::NaiveDate>> {
        self.field(name, |f| {
            f["valueDate"]
                .as_str()
                .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .or_else(|| f["content"].as_str().and_then(parse_date))
        })
    }

    fn money(&self, name: &str) -> Option<Field<Decimal>> {
        self.field(name, amount)
    }

    /// The currency code of the first of `names` that has one.
    fn currency(&self, names: &[&str]) -> Option<Field<String>> {
        names.iter().find_map(|name| {
            self.field(name, |f| {
                f["valueCurrency"]["currencyCode"]
                    .as_str()
                    .filter(|c| c.len() == 3)
                    .map(str::to_owned)
            })
            // The code is Azure's inference, not a printed value: nothing to point at.
            .map(|f| Field {
                raw: Some(f.value.clone()),
                bbox: None,
                ..f
            })
        })
    }
}

fn line_items(fields: &Value) -> Vec<LineItem> {
    fields["Items"]["valueArray"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| {
            let f = &item["valueObject"];
            Some(LineItem {
                description: f["Description"]["valueString"]
                    .as_str()
                    .or(f["Description"]["content"].as_str())
                    .unwrap_or_default()
                    .to_owned(),
                quantity: f.get("Quantity").and_then(amount),
                unit_price: f.get("UnitPrice").or(f.get("Price")).and_then(amount),
                amount: f.get("Amount").or(f.get("TotalPrice")).and_then(amount)?,
                confidence: item["confidence"].as_f64(),
            })
        })
        .collect()
}
