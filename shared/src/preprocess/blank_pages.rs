//! Blank pages of a PDF, found without rendering, and a copy without them
//! ([`super::Action::BlankPages`]): the vendors bill per page, and a scanner's empty backs, a
//! separator sheet or a trailing empty page are paid for like any other.
//!
//! A page is blank when nothing on it can be text or a picture of text:
//! - its content shows no text (`Tj`, `TJ`, `'`, `"`), paints no path or shading, and draws no
//!   inline image and no form XObject;
//! - every image it draws is near-uniform: fewer than [`MAX_MARKED`] of its pixels differ from
//!   the image's median level by more than [`MARK_CONTRAST`] (a scanner's blank back is paper
//!   grain and JPEG noise, with a few specks of dust).
//!
//! Everything else is kept, whenever in doubt: an image in a filter this step does not decode
//! (CCITT fax, JBIG2, JPEG 2000), a content stream that does not parse or that inflates past
//! [`MAX_CONTENT_BYTES`], an image past the memory bound. Dropping a page that was not blank
//! loses what was on it; keeping a blank one costs one page.
//!
//! A document whose every page is blank is left whole: that is `blank_document`, which the
//! profile's input-quality policy decides (`inspect::InputIssue`).
//!
//! Deterministic: the copy is the upload's objects for the kept pages (`parts::split`'s writer),
//! so a redelivered intake writes the same bytes.

use std::io::{Cursor, Read};

use image::{GrayImage, ImageFormat, ImageReader};
use lopdf::content::Content;
use lopdf::{Dictionary, Document, Object, ObjectId, Stream};

use super::{raster, Limits, PrepareError};
use crate::job::PageMap;
use crate::parts::split::Opened;

/// A pixel further than this from the image's median level is a mark (ink, a line, a photo's
/// edge); JPEG noise and paper grain stay well inside it.
pub const MARK_CONTRAST: u8 = 64;
/// An image with fewer marked pixels than this fraction is blank: dust and a punched hole's
/// shadow stay under it, one line of 12-point text on a letter page at 150 dpi (about 0.2%)
/// does not.
pub const MAX_MARKED: f64 = 0.0005;
/// Removed pages a job's record names one by one.
pub const DETAIL_PAGES: usize = 20;
/// A page's content larger than this, inflated, is kept unread.
pub const MAX_CONTENT_BYTES: u64 = 16 * 1024 * 1024;

/// Operators that put something on the page other than an image XObject.
const MARKING: [&str; 15] = [
    "Tj", "TJ", "'", "\"", "S", "s", "f", "F", "f*", "B", "B*", "b", "b*", "sh", "BI",
];

/// The copy without its blank pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stripped {
    pub bytes: Vec<u8>,
    /// Which of the upload's pages the copy holds.
    pub map: PageMap,
}

impl Stripped {
    /// What the job records: `removed pages 2, 5 of 6`; past [`DETAIL_PAGES`] pages, their
    /// count and the first of them (the job's page map holds every kept page).
    pub fn detail(&self) -> String {
        let kept = &self.map.kept;
        let removed: Vec<String> = (1..=self.map.of)
            .filter(|p| kept.binary_search(p).is_err())
            .map(|p| p.to_string())
            .collect();
        if removed.len() <= DETAIL_PAGES {
            return format!("removed pages {} of {}", removed.join(", "), self.map.of);
        }
        format!(
            "removed {} pages of {}: {}, …",
            removed.len(),
            self.map.of,
            removed[..DETAIL_PAGES].join(", ")
        )
    }
}

/// The upload's blank pages, by number from 1.
pub fn blank_pages(pdf: &[u8], limits: &Limits) -> Result<Vec<u32>, PrepareError> {
    let opened = Opened::load(pdf).map_err(|e| PrepareError::Decode(e.to_string()))?;
    Ok(blank_in(&opened, limits))
}

/// `pdf` without its blank pages, or `None` when none is blank or every one is.
pub fn remove(pdf: &[u8], limits: &Limits) -> Result<Option<Stripped>, PrepareError> {
    remove_counted(pdf, limits).map(|(stripped, _)| stripped)
}

/// [`remove`], and how many pages were blank.
pub fn remove_counted(
    pdf: &[u8],
    limits: &Limits,
) -> Result<(Option<Stripped>, u32), PrepareError> {
    let opened = Opened::load(pdf).map_err(|e| PrepareError::Decode(e.to_string()))?;
    let blank = blank_in(&opened, limits);
    let of = u32::try_from(opened.pages.len()).unwrap_or(u32::MAX);
    let count = u32::try_from(blank.len()).unwrap_or(u32::MAX);
    if blank.is_empty() || blank.len() == opened.pages.len() {
        return Ok((None, count));
    }
    let (kept, pages): (Vec<u32>, Vec<ObjectId>) = (1..=of)
        .zip(&opened.pages)
        .filter(|(n, _)| blank.binary_search(n).is_err())
        .unzip();
    let bytes = opened
        .write_part(&pages)
        .map_err(|e| PrepareError::Encode(e.to_string()))?;
    Ok((
        Some(Stripped {
            bytes,
            map: PageMap { kept, of },
        }),
        count,
    ))
}

fn blank_in(opened: &Opened, limits: &Limits) -> Vec<u32> {
    (1..)
        .zip(&opened.pages)
        .filter(|(_, page)| page_is_blank(&opened.doc, **page, limits))
        .map(|(n, _)| n)
        .collect()
}

fn page_is_blank(doc: &Document, page: ObjectId, limits: &Limits) -> bool {
    let Some(content) = page_content(doc, page) else {
        return false;
    };
    let Ok(content) = Content::decode(&content) else {
        return false;
    };
    let Ok(dict) = doc.get_dictionary(page) else {
        return false;
    };
    content
        .operations
        .iter()
        .all(|op| match op.operator.as_str() {
            marking if MARKING.contains(&marking) => false,
            "Do" => op
                .operands
                .first()
                .and_then(|o| o.as_name().ok())
                .and_then(|name| xobject(doc, dict, name))
                .is_some_and(|image| image_is_blank(image, limits)),
            _ => true,
        })
}

/// A page's content streams, inflated within [`MAX_CONTENT_BYTES`] in all.
fn page_content(doc: &Document, page: ObjectId) -> Option<Vec<u8>> {
    let mut content = Vec::new();
    for id in doc.get_page_contents(page) {
        let stream = doc.get_object(id).and_then(Object::as_stream).ok()?;
        let room = MAX_CONTENT_BYTES.saturating_sub(content.len() as u64);
        content.extend(inflate(stream, room)?);
        content.push(b'\n');
    }
    Some(content)
}

/// A stream's data, unfiltered, if it is unfiltered or Flate without a predictor and inflates
/// to at most `limit` bytes.
fn inflate(stream: &Stream, limit: u64) -> Option<Vec<u8>> {
    let filters = stream.filters().unwrap_or_default();
    match filters.as_slice() {
        [] => (stream.content.len() as u64 <= limit).then(|| stream.content.clone()),
        [b"FlateDecode"] if !stream.dict.has(b"DecodeParms") => {
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(stream.content.as_slice())
                .take(limit + 1)
                .read_to_end(&mut out)
                .ok()?;
            (out.len() as u64 <= limit).then_some(out)
        }
        _ => None,
    }
}

/// The image XObject `name` of the page's resources; `None` for anything else (a form).
fn xobject<'a>(doc: &'a Document, page: &'a Dictionary, name: &[u8]) -> Option<&'a Stream> {
    let deref = |o: &'a Object| doc.dereference(o).ok().map(|(_, o)| o);
    let resources = deref(page.get(b"Resources").ok()?)?.as_dict().ok()?;
    let xobjects = deref(resources.get(b"XObject").ok()?)?.as_dict().ok()?;
    let stream = deref(xobjects.get(name).ok()?)?.as_stream().ok()?;
    let subtype = stream.dict.get(b"Subtype").and_then(Object::as_name).ok()?;
    (subtype == b"Image").then_some(stream)
}

fn image_is_blank(image: &Stream, limits: &Limits) -> bool {
    grey_levels(image, limits).is_some_and(|gray| near_uniform(&gray))
}

/// The image's grey levels, for the two encodings scanners write: JPEG (`DCTDecode`) and 8-bit
/// grey or RGB samples, raw or Flate.
fn grey_levels(image: &Stream, limits: &Limits) -> Option<GrayImage> {
    let number = |key: &[u8]| image.dict.get(key).and_then(Object::as_i64).ok();
    let (width, height) = (
        u32::try_from(number(b"Width")?).ok()?,
        u32::try_from(number(b"Height")?).ok()?,
    );
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return None;
    }
    if image.filters().unwrap_or_default().as_slice() == [b"DCTDecode"] {
        let mut reader = ImageReader::with_format(Cursor::new(&image.content), ImageFormat::Jpeg);
        let mut bounds = image::Limits::default();
        bounds.max_alloc = Some(limits.max_pixels.saturating_mul(4));
        reader.limits(bounds);
        return reader.decode().ok().map(|i| i.into_luma8());
    }
    if number(b"BitsPerComponent")? != 8 {
        return None;
    }
    let channels: u32 = match image.dict.get(b"ColorSpace").and_then(Object::as_name) {
        Ok(b"DeviceGray") => 1,
        Ok(b"DeviceRGB") => 3,
        _ => return None,
    };
    let expected = u64::from(width) * u64::from(height) * u64::from(channels);
    let samples = inflate(image, expected)?;
    if samples.len() as u64 != expected {
        return None;
    }
    let levels = match channels {
        1 => samples,
        _ => samples
            .chunks_exact(3)
            .map(|p| {
                ((u16::from(p[0]) * 77 + u16::from(p[1]) * 150 + u16::from(p[2]) * 29) >> 8) as u8
            })
            .collect(),
    };
    GrayImage::from_raw(width, height, levels)
}

/// Fewer than [`MAX_MARKED`] of the pixels further than [`MARK_CONTRAST`] from the median, either
/// way (dark ink on paper, or light print on a dark page).
pub fn near_uniform(gray: &GrayImage) -> bool {
    let histogram = raster::histogram(gray);
    let total: u64 = histogram.iter().sum();
    if total == 0 {
        return true;
    }
    let median = raster::percentile(&histogram, 0.5);
    let marked: u64 = histogram
        .iter()
        .enumerate()
        .filter(|(level, _)| {
            (*level as i32 - i32::from(median)).unsigned_abs() > u32::from(MARK_CONTRAST)
        })
        .map(|(_, n)| n)
        .sum();
    (marked as f64) < MAX_MARKED * total as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::FileType;
    use crate::pdf_write::{scanned_pdf, text_pdf};
    use crate::preprocess::{deskew, encode};
    use image::{DynamicImage, Luma};

    fn blank_scan() -> Vec<u8> {
        encode(
            &DynamicImage::ImageLuma8(crate::preprocess::degrade::blank_back(600, 800, 7)),
            FileType::Jpeg,
        )
        .expect("jpeg")
    }

    fn text_scan() -> Vec<u8> {
        encode(
            &DynamicImage::ImageLuma8(deskew::tests_support::lined_page(600, 800)),
            FileType::Jpeg,
        )
        .expect("jpeg")
    }

    #[test]
    fn a_scans_blank_back_is_removed_and_its_text_pages_kept_in_order() {
        let pdf = scanned_pdf(&[text_scan(), blank_scan(), text_scan(), blank_scan()], 150);
        let limits = Limits::default();
        assert_eq!(blank_pages(&pdf, &limits).expect("read"), [2, 4]);
        let stripped = remove(&pdf, &limits).expect("read").expect("a copy");
        assert_eq!(
            stripped.map,
            PageMap {
                kept: vec![1, 3],
                of: 4
            }
        );
        assert_eq!(stripped.detail(), "removed pages 2, 4 of 4");
        let copy = Document::load_mem(&stripped.bytes).expect("a PDF");
        assert_eq!(copy.get_pages().len(), 2);
        assert_eq!(
            blank_pages(&stripped.bytes, &limits).expect("read"),
            Vec::<u32>::new()
        );
        // The same upload gives the same copy: a redelivery writes the same bytes.
        assert_eq!(remove(&pdf, &limits).expect("read"), Some(stripped));
    }

    #[test]
    fn a_long_record_names_the_first_pages_and_counts_the_rest() {
        let stripped = Stripped {
            bytes: Vec::new(),
            map: PageMap {
                kept: (1..=60).filter(|p| p % 2 == 1).collect(),
                of: 60,
            },
        };
        assert_eq!(
            stripped.detail(),
            "removed 30 pages of 60: 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, …"
        );
    }

    #[test]
    fn text_pages_and_empty_pages_are_told_apart() {
        let pages = |lines: &[&[&str]]| {
            lines
                .iter()
                .map(|l| l.iter().map(|s| s.to_string()).collect())
                .collect::<Vec<Vec<String>>>()
        };
        let pdf = text_pdf(&pages(&[&["Invoice 1"], &[], &["Total 9.99"], &[]]));
        assert_eq!(blank_pages(&pdf, &Limits::default()).expect("read"), [2, 4]);
        let stripped = remove(&pdf, &Limits::default())
            .expect("read")
            .expect("a copy");
        assert_eq!(stripped.map.kept, [1, 3]);
    }

    #[test]
    fn nothing_to_remove_or_everything_blank_leaves_the_document_whole() {
        let limits = Limits::default();
        let full = scanned_pdf(&[text_scan(), text_scan()], 150);
        assert_eq!(remove(&full, &limits).expect("read"), None);
        let empty = scanned_pdf(&[blank_scan(), blank_scan()], 150);
        assert_eq!(blank_pages(&empty, &limits).expect("read"), [1, 2]);
        assert_eq!(remove(&empty, &limits).expect("read"), None);
    }

    #[test]
    fn one_line_on_a_page_is_not_blank_and_specks_are() {
        let mut page = GrayImage::from_pixel(1275, 1650, Luma([235]));
        assert!(near_uniform(&page));
        // A dozen specks of dust.
        for i in 0..12 {
            page.put_pixel(100 + i * 50, 300, Luma([30]));
        }
        assert!(near_uniform(&page));
        // One line of text: 900 x 20 pixels, a fifth of them ink.
        for x in (150..1050).step_by(5) {
            for y in 600..620 {
                page.put_pixel(x, y, Luma([20]));
            }
        }
        assert!(!near_uniform(&page));
        // White print on a dark page is marked too.
        let mut dark = GrayImage::from_pixel(400, 400, Luma([20]));
        assert!(near_uniform(&dark));
        for x in 50..350 {
            dark.put_pixel(x, 200, Luma([250]));
        }
        assert!(!near_uniform(&dark));
    }
}
