//! One result from the parts' results: pages in order with their numbers in the whole
//! document, and each field from the first part that read it.
//!
//! - **Pages, tables, key-values:** concatenated in part order; every page number gets the
//!   part's offset (`first_page - 1`). Line and block ids that name their page (`p7-l3`, as the
//!   simulator's and the twins' do) are renamed with it, so ids stay unique; a vendor's own ids
//!   (Textract's UUIDs) are unique already and kept.
//! - **Fields:** the first part, in page order, that has a value for a field gives it, with its
//!   page moved by the offset (an invoice's number is on its first page, its total on its last:
//!   each is found where it is). Line items are concatenated.
//! - **Language:** the first part's that has one; when none has, parse identifies it from the
//!   merged text (`language::identify` keeps a language already set).

use serde_json::{Map, Value};

use crate::document::{Document, Fields, VendorInfo};

/// The merged document of `parent` from its parts' documents, each with its first page (from 1),
/// in part order.
pub fn merge(parent: &str, parts: Vec<(u32, Document)>) -> Result<Document, serde_json::Error> {
    let mut pages = Vec::new();
    let mut reading_order = Vec::new();
    let mut tables = Vec::new();
    let mut key_values = Vec::new();
    let mut fields: Vec<Value> = Vec::new();
    let mut vendor: Option<VendorInfo> = None;
    let mut language = None;
    let mut vendor_jobs = Vec::new();
    for (first_page, mut part) in parts {
        let offset = first_page.saturating_sub(1);
        part.renumber_pages(|n| n + offset)?;
        pages.extend(part.pages);
        reading_order.extend(part.reading_order);
        tables.extend(part.tables);
        key_values.extend(part.key_values);
        fields.push(serde_json::to_value(&part.fields)?);
        vendor_jobs.push(part.vendor.job_id.clone());
        vendor.get_or_insert(part.vendor);
        if language.is_none() {
            language = part.language;
        }
    }
    let mut vendor = vendor.unwrap_or(VendorInfo {
        name: String::new(),
        job_id: String::new(),
        model: None,
        model_version: None,
    });
    // Each part was a vendor job of its own; the merged result names them all.
    vendor.job_id = vendor_jobs.join(",");
    Ok(Document {
        schema_version: crate::document::SCHEMA_VERSION.to_owned(),
        job_id: parent.to_owned(),
        vendor,
        pages,
        reading_order,
        tables,
        key_values,
        fields: serde_json::from_value(merge_fields(fields))?,
        language,
    })
}

/// The first non-null value of each field in part order; line items concatenated.
fn merge_fields(parts: Vec<Value>) -> Value {
    let mut merged = Map::new();
    for part in parts {
        let Value::Object(map) = part else { continue };
        for (name, value) in map {
            match (merged.get_mut(&name), value) {
                (Some(Value::Array(items)), Value::Array(more)) => items.extend(more),
                (Some(existing), value) if existing.is_null() => *existing = value,
                (Some(_), _) => {}
                (None, value) => {
                    merged.insert(name, value);
                }
            }
        }
    }
    if merged.is_empty() {
        return serde_json::to_value(Fields::Generic).unwrap_or(Value::Null);
    }
    Value::Object(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{BBox, Block, Field, InvoiceFields, Line, Page, PageSource};

    fn part(first_number: u32, pages: u32, fields: InvoiceFields) -> Document {
        let bbox = BBox {
            left: 0.1,
            top: 0.1,
            width: 0.5,
            height: 0.1,
        };
        Document {
            schema_version: crate::document::SCHEMA_VERSION.to_owned(),
            job_id: "part".into(),
            vendor: VendorInfo {
                name: "sim".into(),
                job_id: format!("job-{first_number}"),
                model: None,
                model_version: None,
            },
            pages: (1..=pages)
                .map(|n| Page {
                    number: n,
                    width: None,
                    height: None,
                    unit: "pixel".into(),
                    rotation: 0,
                    source: PageSource::TextLayer,
                    blocks: vec![Block {
                        id: format!("p{n}-b1"),
                        bbox,
                        lines: vec![Line {
                            id: format!("p{n}-l1"),
                            text: format!("Page {}", n + first_number - 1),
                            bbox,
                            confidence: None,
                            words: vec![],
                        }],
                    }],
                })
                .collect(),
            reading_order: (1..=pages).map(|n| format!("p{n}-l1")).collect(),
            tables: vec![],
            key_values: vec![],
            fields: Fields::Invoice(fields),
            language: None,
        }
    }

    fn field<T>(value: T, page: u32) -> Option<Field<T>> {
        Some(Field {
            value,
            raw: None,
            confidence: None,
            page: Some(page),
            bbox: None,
        })
    }

    #[test]
    fn pages_ids_and_fields_take_their_parts_offsets() {
        let first = part(
            1,
            2,
            InvoiceFields {
                invoice_number: field("INV-1".to_owned(), 1),
                ..InvoiceFields::default()
            },
        );
        let last = part(
            3,
            2,
            InvoiceFields {
                invoice_number: field("INV-9".to_owned(), 1),
                total: field(rust_decimal::Decimal::new(12345, 2), 2),
                ..InvoiceFields::default()
            },
        );
        let merged = merge("doc-x", vec![(1, first), (3, last)]).unwrap();
        let numbers: Vec<u32> = merged.pages.iter().map(|p| p.number).collect();
        assert_eq!(numbers, [1, 2, 3, 4]);
        for page in &merged.pages {
            assert_eq!(
                page.blocks[0].lines[0].text,
                format!("Page {}", page.number)
            );
            assert_eq!(page.blocks[0].lines[0].id, format!("p{}-l1", page.number));
        }
        assert_eq!(merged.reading_order, ["p1-l1", "p2-l1", "p3-l1", "p4-l1"]);
        let Fields::Invoice(f) = &merged.fields else {
            panic!("{:?}", merged.fields)
        };
        // The first part's number, the last part's total on the document's last page.
        assert_eq!(f.invoice_number.as_ref().unwrap().value, "INV-1");
        assert_eq!(f.invoice_number.as_ref().unwrap().page, Some(1));
        assert_eq!(f.total.as_ref().unwrap().page, Some(4));
        assert_eq!(merged.vendor.job_id, "job-1,job-3");
        assert_eq!(merged.job_id, "doc-x");
        merged
            .to_validated_json()
            .expect("the merged document is a valid Document v1");
    }
}
