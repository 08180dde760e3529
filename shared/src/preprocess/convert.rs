//! Conversion to a format every vendor reads ([`super::Action::Convert`]):
//! - **HEIC/HEIF to JPEG.** Textract reads PNG, JPEG, PDF and TIFF only; an iPhone's photo of a
//!   receipt is HEIC. Decoded by `heic-decoder` (pure Rust, no `unsafe`, MIT/Apache-2.0),
//!   orientation applied, encoded at quality 92.
//! - **TIFF to PNG, or to a PDF when it has several pages.** Textract's synchronous calls and
//!   `AnalyzeID` read one-page PNG or JPEG, and the image steps (deskew, crop…) read PNG and
//!   JPEG. A fax or scanner TIFF (CCITT G3/G4, LZW, Deflate, JPEG; bilevel, grey or RGB) is
//!   decoded by the `tiff` crate (pure Rust); each page becomes an image of its own, losslessly
//!   (Flate) in a PDF at the TIFF's resolution.
//!
//! Deterministic, like every prepared copy: no clock, no randomness. Memory is bounded by
//! [`Limits::max_pixels`] a page, checked before the page is decoded; a TIFF's pages are
//! decoded one at a time.

use std::io::{Cursor, Write};

use image::{DynamicImage, GrayImage, RgbImage};

use super::{encode, Limits, PrepareError};
use crate::inspect::FileType;
use crate::pdf_write::{images_pdf, PageImage};

/// The resolution a TIFF's pages are laid out at when it does not say its own.
pub const DEFAULT_TIFF_DPI: u32 = 200;

/// A converted document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    pub bytes: Vec<u8>,
    pub file_type: FileType,
    pub pages: u32,
    /// What the job records: `heic to jpeg (3024x4032)`, `tiff of 3 pages to pdf`.
    pub detail: String,
}

/// Whether [`convert`] changes documents of `file_type`.
pub fn converts(file_type: FileType) -> bool {
    matches!(file_type, FileType::Heic | FileType::Tiff)
}

/// `bytes` in a format every vendor reads, or `None` when it is in one already.
pub fn convert(
    bytes: &[u8],
    file_type: FileType,
    limits: &Limits,
) -> Result<Option<Converted>, PrepareError> {
    match file_type {
        FileType::Heic => heic(bytes, limits).map(Some),
        FileType::Tiff => tiff(bytes, limits).map(Some),
        _ => Ok(None),
    }
}

fn heic(bytes: &[u8], limits: &Limits) -> Result<Converted, PrepareError> {
    let info = heic_decoder::probe(bytes).map_err(|e| PrepareError::Decode(e.to_string()))?;
    let pixels = (info.width as u64).saturating_mul(info.height as u64);
    if pixels > limits.max_pixels {
        return Err(PrepareError::TooLarge {
            pixels,
            limit: limits.max_pixels,
        });
    }
    let decoded = heic_decoder::decode(bytes).map_err(|e| PrepareError::Decode(e.to_string()))?;
    let rgb = decoded
        .to_rgb8()
        .map_err(|e| PrepareError::Decode(e.to_string()))?;
    let (width, height) = (dimension(rgb.width)?, dimension(rgb.height)?);
    let image = RgbImage::from_raw(width, height, rgb.data)
        .ok_or_else(|| PrepareError::Decode("the decoded picture is short of samples".into()))?;
    Ok(Converted {
        bytes: encode(&DynamicImage::ImageRgb8(image), FileType::Jpeg)?,
        file_type: FileType::Jpeg,
        pages: 1,
        detail: format!("heic to jpeg ({width}x{height})"),
    })
}

fn dimension(n: usize) -> Result<u32, PrepareError> {
    u32::try_from(n).map_err(|_| PrepareError::Decode(format!("a side of {n} pixels")))
}

fn tiff(bytes: &[u8], limits: &Limits) -> Result<Converted, PrepareError> {
    use tiff::decoder::{Decoder, Limits as TiffLimits};
    let decode = |e: tiff::TiffError| PrepareError::Decode(e.to_string());
    let mut tiff_limits = TiffLimits::default();
    tiff_limits.decoding_buffer_size =
        usize::try_from(limits.max_pixels.saturating_mul(4)).unwrap_or(usize::MAX);
    let mut decoder = Decoder::new(Cursor::new(bytes))
        .map_err(decode)?
        .with_limits(tiff_limits);
    // One page decoded at a time: each is compressed as soon as it is read, so memory holds
    // one page's pixels and the pages compressed so far, never the whole TIFF decoded.
    let mut drawn: Vec<Option<PageImage>> = Vec::new();
    loop {
        let (width, height) = decoder.dimensions().map_err(decode)?;
        let pixels = u64::from(width).saturating_mul(u64::from(height));
        if pixels > limits.max_pixels {
            return Err(PrepareError::TooLarge {
                pixels,
                limit: limits.max_pixels,
            });
        }
        let colour = decoder.colortype().map_err(decode)?;
        let dpi = tiff_dpi(&mut decoder);
        let page = page_image(width, height, colour, decoder.read_image().map_err(decode)?)?;
        let more = decoder.more_images();
        if drawn.is_empty() && !more {
            return Ok(Converted {
                bytes: encode(&page, FileType::Png)?,
                file_type: FileType::Png,
                pages: 1,
                detail: format!("tiff to png ({width}x{height})"),
            });
        }
        let colour = page.color().has_color();
        let samples = if colour {
            page.into_rgb8().into_raw()
        } else {
            page.into_luma8().into_raw()
        };
        drawn.push(Some(PageImage {
            width,
            height,
            colour,
            filter: "FlateDecode",
            data: deflate(&samples)?,
            dpi,
        }));
        if !more {
            break;
        }
        decoder.next_image().map_err(decode)?;
    }
    let count = u32::try_from(drawn.len()).unwrap_or(u32::MAX);
    Ok(Converted {
        bytes: images_pdf(drawn),
        file_type: FileType::Pdf,
        pages: count,
        detail: format!("tiff of {count} pages to pdf"),
    })
}

/// The page's resolution from its tags (`XResolution` per `ResolutionUnit`), when plausible.
fn tiff_dpi<R: std::io::Read + std::io::Seek>(decoder: &mut tiff::decoder::Decoder<R>) -> u32 {
    use tiff::decoder::ifd::Value;
    use tiff::tags::Tag;
    // A RATIONAL, as the specification has it; some writers store a float.
    let resolution = match decoder.find_tag(Tag::XResolution).ok().flatten() {
        Some(Value::Rational(n, d)) if d > 0 => Some(f64::from(n) / f64::from(d)),
        Some(Value::Double(r)) => Some(r),
        Some(Value::Float(r)) => Some(f64::from(r)),
        _ => None,
    };
    let per_cm = decoder
        .find_tag_unsigned::<u16>(Tag::ResolutionUnit)
        .ok()
        .flatten()
        == Some(3);
    resolution
        .map(|r| if per_cm { r * 2.54 } else { r })
        .filter(|dpi| (50.0..=1200.0).contains(dpi))
        .map_or(DEFAULT_TIFF_DPI, |dpi| dpi.round() as u32)
}

/// One TIFF page as an 8-bit grey or RGB picture. Bilevel pages (fax) come packed a bit a
/// pixel, each row padded to a byte, 0 black (the decoder turns `WhiteIsZero` round).
fn page_image(
    width: u32,
    height: u32,
    colour: tiff::ColorType,
    samples: tiff::decoder::DecodingResult,
) -> Result<DynamicImage, PrepareError> {
    use tiff::decoder::DecodingResult as D;
    use tiff::ColorType as C;
    let short = || PrepareError::Decode("the TIFF page is short of samples".into());
    let (w, h) = (width as usize, height as usize);
    let image = match (colour, samples) {
        (C::Gray(8), D::U8(v)) => DynamicImage::ImageLuma8(GrayImage::from_raw(width, height, v).ok_or_else(short)?),
        (C::Gray(16), D::U16(v)) => DynamicImage::ImageLuma8(
            GrayImage::from_raw(width, height, v.iter().map(|s| (s >> 8) as u8).collect())
                .ok_or_else(short)?,
        ),
        (C::Gray(1), D::U8(v)) => {
            let row = w.div_ceil(8);
            if v.len() < row * h {
                return Err(short());
            }
            DynamicImage::ImageLuma8(GrayImage::from_fn(width, height, |x, y| {
                let byte = v[y as usize * row + x as usize / 8];
                let bit = (byte >> (7 - (x % 8))) & 1;
                image::Luma([if bit == 1 { 255 } else { 0 }])
            }))
        }
        (C::RGB(8), D::U8(v)) => DynamicImage::ImageRgb8(RgbImage::from_raw(width, height, v).ok_or_else(short)?),
        (C::RGBA(8), D::U8(v)) => DynamicImage::ImageRgb8(RgbImage::from_raw(
            width,
            height,
            v.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
        )
        .ok_or_else(short)?),
        (C::GrayA(8), D::U8(v)) => DynamicImage::ImageLuma8(
            GrayImage::from_raw(width, height, v.chunks_exact(2).map(|p| p[0]).collect())
                .ok_or_else(short)?,
        ),
        (other, _) => {
            return Err(PrepareError::Decode(format!(
                "TIFF pages of {other:?} are not converted (bilevel, 8- or 16-bit grey and 8-bit RGB are)"
            )))
        }
    };
    Ok(image)
}

/// Zlib at the default level: lossless and deterministic.
fn deflate(samples: &[u8]) -> Result<Vec<u8>, PrepareError> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(samples)
        .and_then(|()| encoder.finish())
        .map_err(|e| PrepareError::Encode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::{deskew, prepare_document, Action};
    use image::Luma;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// A TIFF of grey pages at `dpi`, written with the `tiff` crate's encoder.
    fn tiff_of(pages: &[GrayImage], dpi: u32) -> Vec<u8> {
        use tiff::encoder::{colortype::Gray8, Rational, TiffEncoder};
        use tiff::tags::ResolutionUnit;
        let mut out = Cursor::new(Vec::new());
        let mut encoder = TiffEncoder::new(&mut out).expect("an encoder");
        for page in pages {
            let mut image = encoder
                .new_image::<Gray8>(page.width(), page.height())
                .expect("a page");
            image.resolution(ResolutionUnit::Inch, Rational { n: dpi, d: 1 });
            image.write_data(page.as_raw()).expect("written");
        }
        out.into_inner()
    }

    fn mean_difference(a: &GrayImage, b: &GrayImage) -> f64 {
        assert_eq!(a.dimensions(), b.dimensions());
        let total: u64 = a
            .pixels()
            .zip(b.pixels())
            .map(|(x, y)| u64::from(x[0].abs_diff(y[0])))
            .sum();
        total as f64 / f64::from(a.width() * a.height())
    }

    #[test]
    fn an_iphone_heic_becomes_the_jpeg_it_was_made_from() {
        let heic = fixture("tests/fixtures/inputs/receipt-000.heic");
        let original = image::load_from_memory(&fixture("bench/packs/default/receipts/000.jpg"))
            .expect("the pack's receipt")
            .into_luma8();
        let converted = convert(&heic, FileType::Heic, &Limits::default())
            .expect("decoded")
            .expect("converted");
        assert_eq!(converted.file_type, FileType::Jpeg);
        let jpeg = image::load_from_memory(&converted.bytes)
            .expect("a JPEG")
            .into_luma8();
        // The same picture, give or take two lossy encodings.
        let difference = mean_difference(&jpeg, &original);
        assert!(difference < 6.0, "mean difference {difference:.2} levels");
        assert_eq!(
            converted.detail,
            format!("heic to jpeg ({}x{})", original.width(), original.height())
        );
        // Deterministic: a redelivered intake writes the same copy.
        let again = convert(&heic, FileType::Heic, &Limits::default())
            .expect("decoded")
            .expect("converted");
        assert_eq!(again, converted);
        let small = Limits {
            max_pixels: 1000,
            ..Limits::default()
        };
        assert_eq!(
            convert(&heic, FileType::Heic, &small)
                .expect_err("past the bound")
                .code(),
            "too_large"
        );
    }

    #[test]
    fn a_multi_page_tiff_becomes_a_pdf_of_its_pages_losslessly() {
        let first = deskew::tests_support::lined_page(300, 400);
        let second = GrayImage::from_fn(300, 400, |x, y| Luma([((x + y) % 256) as u8]));
        let tiff = tiff_of(&[first.clone(), second.clone()], 300);
        let converted = convert(&tiff, FileType::Tiff, &Limits::default())
            .expect("decoded")
            .expect("converted");
        assert_eq!((converted.file_type, converted.pages), (FileType::Pdf, 2));
        assert_eq!(converted.detail, "tiff of 2 pages to pdf");
        let pdf = lopdf::Document::load_mem(&converted.bytes).expect("a PDF");
        let pages: Vec<_> = pdf.get_pages().into_values().collect();
        assert_eq!(pages.len(), 2);
        for (page, expected) in pages.iter().zip([&first, &second]) {
            let dict = pdf.get_dictionary(*page).expect("a page");
            // 300 pixels at 300 dpi: one inch, 72 points.
            let media: Vec<f32> = dict
                .get(b"MediaBox")
                .and_then(lopdf::Object::as_array)
                .expect("a media box")
                .iter()
                .map(|o| o.as_float().expect("a number"))
                .collect();
            assert_eq!(media, [0.0, 0.0, 72.0, 96.0]);
            let resources = dict
                .get(b"Resources")
                .and_then(lopdf::Object::as_dict)
                .expect("resources");
            let image_id = resources
                .get(b"XObject")
                .and_then(lopdf::Object::as_dict)
                .and_then(|x| x.get(b"Im0"))
                .and_then(lopdf::Object::as_reference)
                .expect("an image");
            let stream = pdf
                .get_object(image_id)
                .and_then(lopdf::Object::as_stream)
                .expect("a stream");
            let samples = stream.decompressed_content().expect("inflates");
            assert_eq!(&samples, expected.as_raw(), "the page's pixels, exactly");
        }
        let one = tiff_of(std::slice::from_ref(&first), 300);
        let png = convert(&one, FileType::Tiff, &Limits::default())
            .expect("decoded")
            .expect("converted");
        assert_eq!(png.file_type, FileType::Png);
        assert_eq!(
            image::load_from_memory(&png.bytes)
                .expect("a PNG")
                .into_luma8(),
            first
        );
    }

    /// A fax: CCITT Group 4, one bit a pixel, `WhiteIsZero`. Read the wrong way round, the
    /// paper would come out black.
    #[test]
    fn a_group_4_fax_becomes_white_paper_with_black_print() {
        let fax = fixture("tests/fixtures/inputs/receipt-000-fax-g4.tif");
        let converted = convert(&fax, FileType::Tiff, &Limits::default())
            .expect("decoded")
            .expect("converted");
        assert_eq!((converted.file_type, converted.pages), (FileType::Pdf, 2));
        let pdf = lopdf::Document::load_mem(&converted.bytes).expect("a PDF");
        let first = *pdf.get_pages().values().next().expect("a page");
        let image = pdf
            .get_dictionary(first)
            .and_then(|d| d.get(b"Resources"))
            .and_then(lopdf::Object::as_dict)
            .and_then(|r| r.get(b"XObject"))
            .and_then(lopdf::Object::as_dict)
            .and_then(|x| x.get(b"Im0"))
            .and_then(lopdf::Object::as_reference)
            .and_then(|id| pdf.get_object(id))
            .and_then(lopdf::Object::as_stream)
            .expect("the page's image");
        let samples = image.decompressed_content().expect("inflates");
        assert_eq!(samples.len(), 800 * 1750);
        let white = samples.iter().filter(|s| **s == 255).count() as f64 / samples.len() as f64;
        let black = samples.iter().filter(|s| **s == 0).count() as f64 / samples.len() as f64;
        assert!(
            white > 0.8 && black > 0.01 && white + black > 0.999,
            "white {white:.3}, black {black:.3}"
        );
    }

    #[test]
    fn a_tiff_scan_with_a_blank_back_is_converted_then_stripped() {
        let page = deskew::tests_support::lined_page(300, 400);
        let back = crate::preprocess::degrade::blank_back(300, 400, 3);
        let tiff = tiff_of(&[page.clone(), back, page], 200);
        let prepared = prepare_document(
            &tiff,
            FileType::Tiff,
            &[Action::Convert, Action::BlankPages],
            &Limits::default(),
        )
        .expect("prepared")
        .expect("a copy");
        assert_eq!(prepared.file_type, FileType::Pdf);
        let names: Vec<&str> = prepared.applied.iter().map(|a| a.action.name()).collect();
        assert_eq!(names, ["convert", "blank_pages"]);
        assert_eq!(
            prepared.pages,
            Some(crate::job::PageMap {
                kept: vec![1, 3],
                of: 3
            })
        );
        // Without `convert`, a TIFF is not an image the steps read, and nothing is done.
        assert_eq!(
            prepare_document(
                &tiff,
                FileType::Tiff,
                &[Action::BlankPages],
                &Limits::default()
            )
            .expect("nothing to do"),
            None
        );
    }
}
