//! `Document v1`: ocrbridge's own normalized result, whatever the vendor.
//!
//! The JSON form is published as `schemas/document-v1.schema.json`; every stored result is
//! validated against it ([`validate_json`]), and a payload that fails is a parse failure naming
//! the first violation — never stored. Conventions:
//! - boxes are fractions of the page (`0.0..=1.0`), origin top-left;
//! - confidences are `0.0..=1.0`, or absent when the vendor gave none;
//! - money is a decimal string (`rust_decimal`), never a float; dates are ISO 8601 (`YYYY-MM-DD`);
//! - `reading_order` lists line ids in the order a person reads them.

use std::sync::LazyLock;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const SCHEMA_VERSION: &str = "ocrbridge.document/v1";

/// The JSON Schema, compiled into the binary so the published file and the check never differ.
pub const SCHEMA_JSON: &str = include_str!("../../schemas/document-v1.schema.json");

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

impl BBox {
    /// A pixel box normalized by the page size, clamped into the page.
    pub fn from_pixels(
        left: f64,
        top: f64,
        width: f64,
        height: f64,
        page_width: f64,
        page_height: f64,
    ) -> Option<BBox> {
        if page_width <= 0.0 || page_height <= 0.0 {
            return None;
        }
        let clamp = |v: f64| v.clamp(0.0, 1.0);
        let l = clamp(left / page_width);
        let t = clamp(top / page_height);
        Some(BBox {
            left: l,
            top: t,
            width: clamp(width / page_width).min(1.0 - l),
            height: clamp(height / page_height).min(1.0 - t),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    pub text: String,
    pub bbox: BBox,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Whether the vendor read it as handwriting (Textract's `TextType`, Azure's `styles`);
    /// absent when the vendor does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handwritten: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub id: String,
    pub text: String,
    pub bbox: BBox,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    pub words: Vec<Word>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Block {
    pub id: String,
    pub bbox: BBox,
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageSource {
    /// OCR of an image or a rasterized page.
    Ocr,
    /// The PDF's own text layer.
    TextLayer,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub number: u32,
    /// Size as the vendor measured it, in `unit`s; boxes are fractions of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<f64>,
    pub unit: String,
    /// Clockwise degrees the page was rotated to read it: 0, 90, 180 or 270.
    pub rotation: u16,
    pub source: PageSource,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub row: u32,
    pub column: u32,
    pub row_span: u32,
    pub column_span: u32,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub page: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bbox: Option<BBox>,
    pub rows: u32,
    pub columns: u32,
    pub cells: Vec<Cell>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    pub page: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
}

/// A typed field with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field<T> {
    /// The canonical value: one form whatever the vendor (money in its currency's minor units,
    /// ISO dates, upper-case codes), so that two vendors' readings compare equal.
    pub value: T,
    /// The value as the vendor wrote it (`"$1,320.00"`, `"12/07/2019"`, or its typed JSON
    /// value when it printed no text, `1320.0`): what the canonical one was read from, for a
    /// reviewer and for anyone who disagrees with the reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bbox: Option<BBox>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ReceiptFields {
    pub merchant: Option<Field<String>>,
    pub date: Option<Field<NaiveDate>>,
    pub subtotal: Option<Field<Decimal>>,
    pub tax: Option<Field<Decimal>>,
    pub total: Option<Field<Decimal>>,
    pub currency: Option<Field<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineItem {
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<Decimal>,
    pub amount: Decimal,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InvoiceFields {
    pub vendor_name: Option<Field<String>>,
    pub invoice_number: Option<Field<String>>,
    pub issue_date: Option<Field<NaiveDate>>,
    pub due_date: Option<Field<NaiveDate>>,
    pub subtotal: Option<Field<Decimal>>,
    pub tax: Option<Field<Decimal>>,
    pub total: Option<Field<Decimal>>,
    pub currency: Option<Field<String>>,
    pub line_items: Vec<LineItem>,
}

/// An identity document: passport, identity card, driving licence, residence permit.
///
/// Names are as printed (the MRZ's transliteration is compared, never stored over them);
/// countries are the ISO 3166-1 alpha-3 codes the MRZ uses (`D` for Germany, as ICAO writes it)
/// where the vendor gives a code; `sex` is `M`, `F` or `X`; `mrz` is the machine-readable zone's
/// lines joined by `\n`, as read, check digits and all.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IdFields {
    /// `passport`, `id_card`, `driver_license`, `residence_permit` or `other`.
    pub document_type: Option<Field<String>>,
    pub document_number: Option<Field<String>>,
    pub surname: Option<Field<String>>,
    pub given_names: Option<Field<String>>,
    pub nationality: Option<Field<String>>,
    pub issuing_country: Option<Field<String>>,
    pub date_of_birth: Option<Field<NaiveDate>>,
    pub expiry_date: Option<Field<NaiveDate>>,
    pub sex: Option<Field<String>>,
    pub mrz: Option<Field<String>>,
}

/// Typed fields by profile.
// One per document, built once and moved a few times: boxing the invoice to even the variants
// out would buy nothing measurable and cost every match a deref.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "profile", rename_all = "snake_case")]
pub enum Fields {
    Receipt(ReceiptFields),
    Invoice(InvoiceFields),
    Id(IdFields),
    Generic,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VendorInfo {
    pub name: String,
    pub job_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The version of `model` the vendor reports (Textract's `*ModelVersion`, Azure's
    /// `apiVersion`, the simulator's `model_version`): watched for silent model changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
}

/// Where a document's language came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LanguageSource {
    /// The vendor said (Azure's `languages`).
    Vendor,
    /// Detected from the result's text (`language::detect`).
    Detected,
}

/// The language most of the document's text is in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Language {
    /// ISO 639-1 where the language has a code there (`de`), else ISO 639-3.
    pub code: String,
    /// The writing system (`Latin`, `Cyrillic`), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    pub source: LanguageSource,
}

/// One document's normalized result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub schema_version: String,
    pub job_id: String,
    pub vendor: VendorInfo,
    pub pages: Vec<Page>,
    pub reading_order: Vec<String>,
    pub tables: Vec<Table>,
    pub key_values: Vec<KeyValue>,
    pub fields: Fields,
    /// The language of its text (`language::identify`); absent when too little text says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Language>,
}

static SCHEMA: LazyLock<Result<jsonschema::Validator, String>> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(SCHEMA_JSON).map_err(|e| e.to_string())?;
    jsonschema::validator_for(&schema).map_err(|e| e.to_string())
});

/// The first schema violation, as a JSON pointer and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schema violation at {path}: {message}")]
pub struct SchemaViolation {
    pub path: String,
    pub message: String,
}

/// Validates a document's JSON against `document-v1.schema.json`.
pub fn validate_json(document: &Value) -> Result<(), SchemaViolation> {
    let validator = SCHEMA.as_ref().map_err(|e| SchemaViolation {
        path: "/".into(),
        message: format!("the schema itself does not compile: {e}"),
    })?;
    match validator.iter_errors(document).next() {
        None => Ok(()),
        Some(error) => {
            let path = error.instance_path().to_string();
            Err(SchemaViolation {
                path: if path.is_empty() { "/".into() } else { path },
                message: error.to_string(),
            })
        }
    }
}

impl Document {
    /// Serializes and validates against the published schema.
    pub fn to_validated_json(&self) -> Result<Value, SchemaViolation> {
        let value = serde_json::to_value(self).map_err(|e| SchemaViolation {
            path: "/".into(),
            message: e.to_string(),
        })?;
        validate_json(&value)?;
        Ok(value)
    }

    /// Gives every page its number in another numbering (`number(old)`), wherever a page is
    /// named: pages, tables, key-values, fields, and the line and block ids that start with
    /// their page (`p7-l3`, as the simulator's and the twins' do; a vendor's own ids, like
    /// Textract's UUIDs, are kept). Used where the vendor read pages that are not the upload's
    /// (`parts::merge`'s offsets, a prepared copy's [`crate::job::PageMap`]).
    pub fn renumber_pages(&mut self, number: impl Fn(u32) -> u32) -> Result<(), serde_json::Error> {
        let renames: Vec<(String, String)> = self
            .pages
            .iter()
            .map(|p| (format!("p{}-", p.number), format!("p{}-", number(p.number))))
            .collect();
        let rename = |id: &mut String| {
            if let Some((from, to)) = renames
                .iter()
                .find(|(from, _)| id.starts_with(from.as_str()))
            {
                *id = format!("{to}{}", &id[from.len()..]);
            }
        };
        for page in &mut self.pages {
            page.number = number(page.number);
            for block in &mut page.blocks {
                rename(&mut block.id);
                for line in &mut block.lines {
                    rename(&mut line.id);
                }
            }
        }
        self.reading_order.iter_mut().for_each(rename);
        self.tables.iter_mut().for_each(|t| t.page = number(t.page));
        self.key_values
            .iter_mut()
            .for_each(|kv| kv.page = number(kv.page));
        let mut fields = serde_json::to_value(&self.fields)?;
        if let Some(map) = fields.as_object_mut() {
            for value in map.values_mut() {
                if let Some(page) = value.get_mut("page") {
                    if let Some(n) = page.as_u64().and_then(|n| u32::try_from(n).ok()) {
                        *page = Value::from(number(n));
                    }
                }
            }
        }
        self.fields = serde_json::from_value(fields)?;
        Ok(())
    }

    pub fn lines(&self) -> impl Iterator<Item = (u32, &Line)> {
        self.pages.iter().flat_map(|p| {
            p.blocks
                .iter()
                .flat_map(move |b| b.lines.iter().map(move |l| (p.number, l)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn sample() -> Document {
        let bbox = BBox::from_pixels(10.0, 20.0, 100.0, 10.0, 200.0, 400.0).unwrap();
        Document {
            schema_version: SCHEMA_VERSION.into(),
            job_id: "doc-1".into(),
            vendor: VendorInfo {
                name: "sim".into(),
                job_id: "doc_x".into(),
                model: Some("receipt".into()),
                model_version: Some("sim-1".into()),
            },
            pages: vec![Page {
                number: 1,
                width: Some(200.0),
                height: Some(400.0),
                unit: "pixel".into(),
                rotation: 0,
                source: PageSource::Ocr,
                blocks: vec![Block {
                    id: "p1-b1".into(),
                    bbox,
                    lines: vec![Line {
                        id: "p1-l1".into(),
                        text: "Total 9.00".into(),
                        bbox,
                        confidence: Some(0.91),
                        words: vec![Word {
                            text: "Total".into(),
                            bbox,
                            confidence: Some(0.9),
                            handwritten: Some(false),
                        }],
                    }],
                }],
            }],
            reading_order: vec!["p1-l1".into()],
            tables: vec![Table {
                page: 1,
                bbox: None,
                rows: 1,
                columns: 2,
                cells: vec![Cell {
                    row: 0,
                    column: 0,
                    row_span: 1,
                    column_span: 2,
                    text: "merged".into(),
                    confidence: None,
                }],
            }],
            key_values: vec![KeyValue {
                key: "Total".into(),
                value: "9.00".into(),
                page: 1,
                confidence: Some(0.8),
            }],
            fields: Fields::Receipt(ReceiptFields {
                total: Some(Field {
                    value: Decimal::from_str("9.00").unwrap(),
                    raw: Some("9.00".into()),
                    confidence: Some(0.91),
                    page: Some(1),
                    bbox: Some(bbox),
                }),
                date: Some(Field {
                    value: NaiveDate::from_ymd_opt(2018, 12, 25).unwrap(),
                    raw: None,
                    confidence: None,
                    page: None,
                    bbox: None,
                }),
                ..Default::default()
            }),
            language: Some(Language {
                code: "en".into(),
                script: Some("Latin".into()),
                confidence: Some(1.0),
                source: LanguageSource::Detected,
            }),
        }
    }

    #[test]
    fn a_document_round_trips_and_validates() {
        let doc = sample();
        let json = doc.to_validated_json().unwrap();
        assert_eq!(json["fields"]["profile"], "receipt");
        assert_eq!(
            json["fields"]["total"]["value"], "9.00",
            "money is a decimal string"
        );
        assert_eq!(json["fields"]["date"]["value"], "2018-12-25");
        let back: Document = serde_json::from_value(json).unwrap();
        assert_eq!(back, doc);
    }

    #[test]
    fn violations_name_the_first_path() {
        let mut json = serde_json::to_value(sample()).unwrap();
        json["pages"][0]["blocks"][0]["lines"][0]["confidence"] = serde_json::json!(91.0);
        let err = validate_json(&json).unwrap_err();
        assert_eq!(err.path, "/pages/0/blocks/0/lines/0/confidence");
        let mut json = serde_json::to_value(sample()).unwrap();
        json["schema_version"] = serde_json::json!("ocrbridge.document/v2");
        assert_eq!(validate_json(&json).unwrap_err().path, "/schema_version");
        let mut json = serde_json::to_value(sample()).unwrap();
        json["fields"]["total"]["value"] = serde_json::json!(9.0);
        assert_eq!(
            validate_json(&json).unwrap_err().path,
            "/fields/total/value",
            "a float is not money"
        );
    }

    #[test]
    fn boxes_are_normalized_and_clamped() {
        let b = BBox::from_pixels(150.0, 390.0, 100.0, 50.0, 200.0, 400.0).unwrap();
        assert_eq!(b.left, 0.75);
        assert!((b.width - 0.25).abs() < 1e-9, "clamped to the page edge");
        assert!((b.top + b.height - 1.0).abs() < 1e-9);
        assert!(BBox::from_pixels(0.0, 0.0, 1.0, 1.0, 0.0, 10.0).is_none());
    }
}
