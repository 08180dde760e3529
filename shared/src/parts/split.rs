//! Cutting a PDF into parts of consecutive pages (pure Rust, `lopdf`).
//!
//! Each part is a document of the objects reachable from the catalog, one flat page-tree node
//! holding the part's pages, and those pages: copied out of the parsed whole one part at a
//! time, never a copy of the whole. Attributes a page inherits from
//! its tree (`Resources`, `MediaBox`, `CropBox`, `Rotate`) are copied onto the page first, so
//! flattening the tree changes nothing a reader draws. Catalog entries that point at pages of
//! the whole document (outlines, named destinations, page labels, the structure tree, the
//! open action, the form) are removed from the parts: they would keep every page alive, and an
//! OCR vendor reads none of them.
//!
//! Deterministic: the bytes of a part are a function of the upload's bytes and the plan alone
//! (no clock, no randomness; lopdf writes objects in id order), so an intake that dies after
//! writing some parts writes the same bytes to the same keys on redelivery. Memory: the upload's
//! bytes, the parsed document and one part at a time, bounded by `MAX_PDF_BYTES`; not streamed
//! (`make bench-split`).

use std::collections::BTreeMap;

use lopdf::{Dictionary, Document, Object, ObjectId};

use super::Plan;

/// Why a PDF could not be split. The document is then refused by intake with the reason: the
/// vendor would refuse it whole.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error("the PDF could not be opened to split it: {0}")]
    Unreadable(String),
    #[error("the PDF is encrypted; save an unencrypted copy")]
    Encrypted,
    #[error("the PDF has {found} pages in its page tree, but {expected} were counted at intake")]
    PageCount { found: u32, expected: u32 },
    #[error("the PDF's page tree is malformed: {0}")]
    Malformed(String),
    #[error("a part could not be written: {0}")]
    Write(String),
}

const INHERITED: [&[u8]; 4] = [b"Resources", b"MediaBox", b"CropBox", b"Rotate"];
const DROPPED_FROM_CATALOG: [&[u8]; 8] = [
    b"Outlines",
    b"Dests",
    b"Names",
    b"PageLabels",
    b"StructTreeRoot",
    b"OpenAction",
    b"AcroForm",
    b"Threads",
];

/// The parts of `pdf` by `plan`, in order.
pub fn split(pdf: &[u8], plan: &Plan) -> Result<Vec<Vec<u8>>, SplitError> {
    let mut parts = Vec::with_capacity(plan.count() as usize);
    split_each(pdf, plan, |part| {
        parts.push(part);
        true
    })?;
    Ok(parts)
}

/// Hands each part of `pdf` by `plan` to `each` as soon as it is written, in order, so that a
/// caller who stores it at once holds one part at a time; `each` returns `false` to stop.
pub fn split_each(
    pdf: &[u8],
    plan: &Plan,
    mut each: impl FnMut(Vec<u8>) -> bool,
) -> Result<(), SplitError> {
    let opened = Opened::load(pdf)?;
    let found = u32::try_from(opened.pages.len()).unwrap_or(u32::MAX);
    if found != plan.pages {
        return Err(SplitError::PageCount {
            found,
            expected: plan.pages,
        });
    }
    for index in 0..plan.count() {
        let (first, count) = plan.part(index);
        let start = (first - 1) as usize;
        let chosen = &opened.pages[start..start + count as usize];
        if !each(opened.write_part(chosen)?) {
            break;
        }
    }
    Ok(())
}

/// A PDF opened to be cut: every page carries what it inherits, and the catalog no longer
/// points at pages (outlines, destinations, …), so any subset of pages can be written alone.
pub(crate) struct Opened {
    pub doc: Document,
    /// The page objects, in page order.
    pub pages: Vec<ObjectId>,
    /// The page tree's root.
    root: ObjectId,
}

impl Opened {
    pub fn load(pdf: &[u8]) -> Result<Opened, SplitError> {
        let mut doc = Document::load_mem(pdf).map_err(|e| SplitError::Unreadable(e.to_string()))?;
        if doc.is_encrypted() {
            return Err(SplitError::Encrypted);
        }
        let pages: Vec<ObjectId> = doc.get_pages().into_values().collect();
        for page in &pages {
            inherit(&mut doc, *page)?;
        }
        let root = doc
            .catalog()
            .and_then(|c| c.get(b"Pages"))
            .and_then(Object::as_reference)
            .map_err(|e| SplitError::Malformed(format!("no /Pages in the catalog: {e}")))?;
        if let Ok(catalog) = doc.catalog_mut() {
            for key in DROPPED_FROM_CATALOG {
                catalog.remove(key);
            }
        }
        Ok(Opened { doc, pages, root })
    }

    /// A document of `chosen` pages alone, in the order given.
    pub fn write_part(&self, chosen: &[ObjectId]) -> Result<Vec<u8>, SplitError> {
        write_part(&self.doc, self.root, chosen)
    }
}

/// One part: a document of the objects reachable from its catalog, its page tree's root (now
/// holding `chosen` alone) and its pages, copied out of `doc`. Only the part's own objects are
/// copied, so splitting holds the document and one part at a time, never a copy of the whole.
fn write_part(doc: &Document, root: ObjectId, chosen: &[ObjectId]) -> Result<Vec<u8>, SplitError> {
    let mut objects: BTreeMap<ObjectId, Object> = BTreeMap::new();
    let mut node = doc
        .get_dictionary(root)
        .map_err(|e| SplitError::Malformed(format!("the page tree's root: {e}")))?
        .clone();
    node.set(
        "Kids",
        chosen
            .iter()
            .map(|p| Object::Reference(*p))
            .collect::<Vec<_>>(),
    );
    node.set("Count", i64::try_from(chosen.len()).unwrap_or(i64::MAX));
    node.remove(b"Parent");
    objects.insert(root, Object::Dictionary(node));
    for page in chosen {
        let mut dict = doc
            .get_dictionary(*page)
            .map_err(|e| SplitError::Malformed(format!("page {page:?}: {e}")))?
            .clone();
        dict.set("Parent", Object::Reference(root));
        objects.insert(*page, Object::Dictionary(dict));
    }
    // Everything else the part reaches, from the trailer and the objects above.
    let mut pending: Vec<ObjectId> = Vec::new();
    for (_, value) in doc.trailer.iter() {
        references(value, &mut pending);
    }
    for object in objects.values() {
        references(object, &mut pending);
    }
    while let Some(id) = pending.pop() {
        if objects.contains_key(&id) {
            continue;
        }
        let Ok(object) = doc.get_object(id) else {
            continue; // a dangling reference: readers take it for null, and so does the part
        };
        references(object, &mut pending);
        objects.insert(id, object.clone());
    }
    let mut part = Document::with_version(doc.version.clone());
    part.trailer = doc.trailer.clone();
    // Where the whole file kept its earlier cross-reference sections; the part has one.
    part.trailer.remove(b"Prev");
    part.trailer.remove(b"XRefStm");
    part.reference_table.cross_reference_type = doc.reference_table.cross_reference_type;
    part.max_id = doc.max_id;
    part.objects = objects;
    let mut bytes = Vec::new();
    part.save_to(&mut bytes)
        .map_err(|e| SplitError::Write(e.to_string()))?;
    Ok(bytes)
}

/// The objects `object` refers to.
fn references(object: &Object, out: &mut Vec<ObjectId>) {
    match object {
        Object::Reference(id) => out.push(*id),
        Object::Array(items) => items.iter().for_each(|o| references(o, out)),
        Object::Dictionary(dict) => dict.iter().for_each(|(_, o)| references(o, out)),
        Object::Stream(stream) => stream.dict.iter().for_each(|(_, o)| references(o, out)),
        _ => {}
    }
}

fn page_dict(doc: &mut Document, page: ObjectId) -> Result<&mut Dictionary, SplitError> {
    doc.get_object_mut(page)
        .and_then(Object::as_dict_mut)
        .map_err(|e| SplitError::Malformed(format!("page {page:?}: {e}")))
}

/// Copies onto `page` what it inherits from its ancestors and does not set itself.
fn inherit(doc: &mut Document, page: ObjectId) -> Result<(), SplitError> {
    let mut found: Vec<(&[u8], Object)> = Vec::new();
    {
        let dict = doc
            .get_dictionary(page)
            .map_err(|e| SplitError::Malformed(format!("page {page:?}: {e}")))?;
        let missing: Vec<&[u8]> = INHERITED.into_iter().filter(|k| !dict.has(k)).collect();
        let mut parent = dict.get(b"Parent").and_then(Object::as_reference).ok();
        let mut depth = 0;
        while let (Some(id), false) = (parent, missing.len() == found.len()) {
            depth += 1;
            if depth > 64 {
                return Err(SplitError::Malformed("the page tree loops".into()));
            }
            let Ok(node) = doc.get_dictionary(id) else {
                break;
            };
            for key in &missing {
                if found.iter().all(|(k, _)| k != key) {
                    if let Ok(value) = node.get(key) {
                        found.push((key, value.clone()));
                    }
                }
            }
            parent = node.get(b"Parent").and_then(Object::as_reference).ok();
        }
    }
    let dict = page_dict(doc, page)?;
    for (key, value) in found {
        dict.set(key.to_vec(), value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdf_write::text_pdf;

    fn numbered(pages: u32) -> Vec<u8> {
        text_pdf(
            &(1..=pages)
                .map(|n| vec![format!("Page {n} of {pages}")])
                .collect::<Vec<_>>(),
        )
    }

    fn texts(pdf: &[u8]) -> Vec<String> {
        let doc = Document::load_mem(pdf).unwrap();
        let numbers: Vec<u32> = doc.get_pages().into_keys().collect();
        numbers
            .iter()
            .map(|n| doc.extract_text(&[*n]).unwrap().trim().to_owned())
            .collect()
    }

    #[test]
    fn each_part_holds_its_pages_in_order_with_their_font() {
        let pdf = numbered(25);
        let plan = Plan {
            pages: 25,
            per_part: 10,
        };
        let parts = split(&pdf, &plan).unwrap();
        assert_eq!(parts.len(), 3);
        let mut all = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let doc = Document::load_mem(part).unwrap();
            let (_, count) = plan.part(i as u32);
            assert_eq!(doc.get_pages().len() as u32, count);
            for page in doc.get_pages().values() {
                let dict = doc.get_dictionary(*page).unwrap();
                assert!(dict.has(b"Resources") && dict.has(b"MediaBox"), "{dict:?}");
            }
            all.extend(texts(part));
        }
        let expected: Vec<String> = (1..=25).map(|n| format!("Page {n} of 25")).collect();
        assert_eq!(all, expected);
        // Unreachable pages are dropped: a part is about its share of the whole.
        assert!(
            parts[2].len() < pdf.len() / 2,
            "{} of {}",
            parts[2].len(),
            pdf.len()
        );
    }

    #[test]
    fn the_same_upload_splits_to_the_same_bytes() {
        let pdf = numbered(12);
        let plan = Plan {
            pages: 12,
            per_part: 5,
        };
        assert_eq!(split(&pdf, &plan).unwrap(), split(&pdf, &plan).unwrap());
    }

    #[test]
    fn a_page_count_that_disagrees_with_intakes_is_refused() {
        let err = split(
            &numbered(3),
            &Plan {
                pages: 4,
                per_part: 2,
            },
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                SplitError::PageCount {
                    found: 3,
                    expected: 4
                }
            ),
            "{err}"
        );
        assert!(matches!(
            split(
                b"not a pdf",
                &Plan {
                    pages: 4,
                    per_part: 2
                }
            ),
            Err(SplitError::Unreadable(_))
        ));
    }
}
