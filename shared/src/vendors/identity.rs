//! What every vendor's identity-document reading has in common: one set of document types, one
//! form for sex, and the MRZ found in the page's own text where the vendor gives no MRZ field
//! (Textract's early `AnalyzeID`, Azure's driving licences, the simulator).

use crate::document::{Document, Field};
use crate::mrz;

/// A vendor's document type (`PASSPORT`, `DRIVER LICENSE FRONT`, `idDocument.passport`,
/// `idDocument.nationalIdentityCard`) as one of `passport`, `id_card`, `driver_license`,
/// `residence_permit`, `other`.
pub fn document_type(vendor: &str) -> &'static str {
    let t: String = vendor
        .to_ascii_lowercase()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    if t.contains("passport") {
        "passport"
    } else if t.contains("driver") {
        "driver_license"
    } else if t.contains("residence") {
        "residence_permit"
    } else if t.contains("identitycard") || t.contains("idcard") || t.contains("nationalid") {
        "id_card"
    } else {
        "other"
    }
}

/// `M`, `F` or `X` (ICAO's unspecified), from a vendor's `M`, `Male`, `F`, `FEMALE`, `X`, `<`,
/// `Other` (Mindee's catalog models).
pub fn sex(vendor: &str) -> Option<&'static str> {
    match vendor.trim().to_ascii_uppercase().as_str() {
        "M" | "MALE" => Some("M"),
        "F" | "FEMALE" => Some("F"),
        "X" | "<" | "UNSPECIFIED" | "OTHER" => Some("X"),
        _ => None,
    }
}

/// The MRZ among the document's lines, as its lines joined by `\n` (spaces OCR put inside a
/// line dropped), with the lowest confidence of the lines it came from. `None` when no 2×44,
/// 2×36 or 3×30 block of `<`-filled lines is on the page.
pub fn mrz_from_lines(document: &Document) -> Option<Field<String>> {
    let lines: Vec<(u32, &crate::document::Line)> = document.lines().collect();
    let compact = |text: &str| -> String { text.chars().filter(|c| !c.is_whitespace()).collect() };
    let text = lines
        .iter()
        .map(|(_, l)| compact(&l.text))
        .collect::<Vec<_>>()
        .join("\n");
    // Kept as read, readable or not (a character out of the alphabet, a bad date): the rules
    // parse it and say why, and the reviewer sees it.
    let mrz_lines = mrz::locate(&text)?;
    let from: Vec<&&crate::document::Line> = lines
        .iter()
        .filter(|(_, l)| mrz_lines.contains(&compact(&l.text)))
        .map(|(_, l)| l)
        .collect();
    Some(Field {
        value: mrz_lines.join("\n"),
        raw: None,
        confidence: from
            .iter()
            .filter_map(|l| l.confidence)
            .min_by(f64::total_cmp),
        page: lines
            .iter()
            .find(|(_, l)| mrz_lines.first() == Some(&compact(&l.text)))
            .map(|(page, _)| *page),
        bbox: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_document_types_and_sexes_map_onto_ours() {
        for (vendor, ours) in [
            ("PASSPORT", "passport"),
            ("DRIVER LICENSE FRONT", "driver_license"),
            ("idDocument.driverLicense", "driver_license"),
            ("idDocument.nationalIdentityCard", "id_card"),
            ("idDocument.residencePermit", "residence_permit"),
            ("idDocument.usSocialSecurityCard", "other"),
        ] {
            assert_eq!(document_type(vendor), ours, "{vendor}");
        }
        assert_eq!(sex("Female"), Some("F"));
        assert_eq!(sex("<"), Some("X"));
        assert_eq!(sex("?"), None);
    }

    /// The MRZ among a page's lines (OCR put a space inside one): its two lines, the lowest of
    /// their confidences, its page; kept as read (`UT0` stays: the rules repair it, the stored
    /// field does not).
    #[test]
    fn the_mrz_is_found_among_the_pages_lines_and_kept_as_read() {
        use crate::document::{BBox, Block, Fields, Line, Page, PageSource, VendorInfo};
        let bbox = BBox {
            left: 0.0,
            top: 0.0,
            width: 1.0,
            height: 0.1,
        };
        let line = |n: usize, text: &str, confidence: f64| Line {
            id: format!("l{n}"),
            text: text.into(),
            bbox,
            confidence: Some(confidence),
            words: vec![],
        };
        let document = Document {
            schema_version: crate::document::SCHEMA_VERSION.into(),
            job_id: "doc-1".into(),
            vendor: VendorInfo {
                name: "textract".into(),
                job_id: "text:1".into(),
                model: None,
                model_version: None,
            },
            pages: vec![Page {
                number: 2,
                width: None,
                height: None,
                unit: "pixel".into(),
                rotation: 0,
                source: PageSource::Ocr,
                blocks: vec![Block {
                    id: "b1".into(),
                    bbox,
                    lines: vec![
                        line(1, "PASSPORT", 0.99),
                        line(2, "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", 0.91),
                        line(3, "L898902C36UT07408122F1204159 ZE184226B<<<<<10", 0.87),
                    ],
                }],
            }],
            reading_order: vec![],
            tables: vec![],
            key_values: vec![],
            fields: Fields::Generic,
            language: None,
        };
        let mrz = mrz_from_lines(&document).expect("an MRZ on the page");
        assert_eq!(
            mrz.value,
            "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UT07408122F1204159ZE184226B<<<<<10"
        );
        assert_eq!((mrz.confidence, mrz.page), (Some(0.87), Some(2)));
    }
}
