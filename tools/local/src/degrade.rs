//! The benchmark pack's degraded variants (`ocrbridge-local degrade-pack`), for the A/B audit
//! of preprocessing, and one file through preprocessing (`ocrbridge-local preprocess`).
//!
//! A variant keeps its document's truth: `receipts/000.jpg` gives `receipts/000-rotated.jpg`
//! with `receipts/000-rotated.truth.json`, the same fields. The originals are copied beside
//! their variants, so a run on the degraded pack also shows what preprocessing does to clean
//! documents. PDFs (the invoices) are copied as they are: the variants are made of pixels.
//! `blank_page` is a PDF: the image as a scanned page followed by its blank back
//! (`receipts/000-blank_page.pdf`), for blank-page removal's audit.

use std::path::{Path, PathBuf};

use ocrbridge::inspect::{self, FileType};
use ocrbridge::preprocess::degrade::{Degraded, Variant};
use ocrbridge::preprocess::{self, Action, Limits};
use ocrbridge::quality::pack::{truth_key, Pack};

/// A PNG or JPEG, told from its content as intake tells it (`inspect::detect`).
fn image_type(bytes: &[u8]) -> Option<FileType> {
    inspect::detect(bytes).filter(|t| matches!(t, FileType::Png | FileType::Jpeg))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes the degraded pack; returns how many documents it holds.
pub fn degrade_pack(pack_dir: &Path, out: &Path, variants: &[Variant]) -> Result<usize, String> {
    let pack = Pack::load(pack_dir).map_err(|e| e.to_string())?;
    let mut written = 0;
    for (index, (document, _)) in pack.documents.iter().enumerate() {
        let key = &document.key;
        let read = |key: &str| std::fs::read(pack_dir.join(key)).map_err(|e| format!("{key}: {e}"));
        let (bytes, truth) = (read(key)?, read(&truth_key(key))?);
        write_file(&out.join(key), &bytes)?;
        write_file(&out.join(truth_key(key)), &truth)?;
        written += 1;
        let Some(file_type) = image_type(&bytes) else {
            continue;
        };
        let image = image::load_from_memory(&bytes).map_err(|e| format!("{key}: {e}"))?;
        let (stem, ext) = key.rsplit_once('.').unwrap_or((key, "png"));
        for variant in variants {
            let degraded = variant
                .apply(&image, index as u64)
                .map_err(|e| format!("{key}: {e}"))?;
            let (variant_key, encoded) = match degraded {
                Degraded::Image(image) => (
                    format!("{stem}-{}.{ext}", variant.name()),
                    preprocess::encode(&image, file_type).map_err(|e| format!("{key}: {e}"))?,
                ),
                Degraded::Pdf(pdf) => (format!("{stem}-{}.pdf", variant.name()), pdf),
            };
            write_file(&out.join(&variant_key), &encoded)?;
            write_file(&out.join(truth_key(&variant_key)), &truth)?;
            written += 1;
        }
    }
    Ok(written)
}

/// Prepares one file as intake would with `actions` (an image, a PDF, a HEIC or a TIFF);
/// prints what was done, the step's time per MB of input and the process's peak RSS.
pub fn preprocess_file(input: &Path, output: &Path, actions: &[Action]) -> Result<(), String> {
    let key = input.display().to_string();
    let bytes = std::fs::read(input).map_err(|e| format!("{key}: {e}"))?;
    let file_type =
        inspect::detect(&bytes).ok_or_else(|| format!("{key}: not a document intake reads"))?;
    let started = std::time::Instant::now();
    let prepared = preprocess::prepare_document(&bytes, file_type, actions, &Limits::default())
        .map_err(|e| format!("{key}: {e}"))?;
    // The step alone: not the file's read, nor the write or a PNG for looking at below.
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let input_mb = bytes.len() as f64 / 1e6;
    match prepared {
        None => println!("{key}: nothing to do ({ms:.0} ms)"),
        Some(prepared) => {
            // A `.png` output of an image is a PNG whatever came in, to look at.
            let written = if output.extension().is_some_and(|e| e == "png")
                && prepared.file_type.is_image()
            {
                let image = image::load_from_memory(&prepared.bytes).map_err(|e| e.to_string())?;
                preprocess::encode(&image, FileType::Png).map_err(|e| e.to_string())?
            } else {
                prepared.bytes
            };
            std::fs::write(output, &written).map_err(|e| format!("{}: {e}", output.display()))?;
            println!(
                "{key} ({file_type}, {input_mb:.1} MB) → {} ({}, {ms:.0} ms, {:.0} ms per MB of input, peak RSS {})",
                output.display(),
                prepared.file_type,
                ms / input_mb.max(1e-9),
                peak_rss().map_or("unknown".into(), |kb| format!(
                    "{:.1} MB",
                    kb as f64 / 1024.0
                )),
            );
            for applied in &prepared.applied {
                println!("  {}", applied.to_record());
            }
        }
    }
    Ok(())
}

/// The process's peak resident set (VmHWM), in KiB, where /proc tells it.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A phone photo of `megapixels` for the preprocessing benchmark: the pack's first receipt
/// scaled up, turned 7° and laid on a table, as a JPEG.
pub fn bench_input(pack_dir: &Path, megapixels: f64, out: &Path) -> Result<(), String> {
    let path = pack_dir.join("receipts").join("000.jpg");
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let receipt = image::load_from_memory(&bytes).map_err(|e| e.to_string())?;
    let photo_of = |page: &image::DynamicImage| {
        preprocess::degrade::border(&preprocess::degrade::rotated(page, 7.0))
    };
    // The turn and the table add pixels: the page gets what is left of the photo's.
    let growth = {
        let photo = photo_of(&receipt);
        f64::from(photo.width()) * f64::from(photo.height())
            / (f64::from(receipt.width()) * f64::from(receipt.height()))
    };
    let page_pixels = megapixels * 1e6 / growth;
    let aspect = f64::from(receipt.width()) / f64::from(receipt.height());
    let height = (page_pixels / aspect).sqrt().round() as u32;
    let width = (f64::from(height) * aspect).round() as u32;
    let page = receipt.resize_exact(width, height, image::imageops::FilterType::Triangle);
    let photo = photo_of(&page);
    let encoded = preprocess::encode(&photo, FileType::Jpeg).map_err(|e| e.to_string())?;
    std::fs::write(out, encoded).map_err(|e| format!("{}: {e}", out.display()))
}

/// A duplex scan of `pages` pages for the blank-page and conversion benchmark: the pack's first
/// receipt on a letter page at 200 dpi (1700 x 2200, grey), then a scanner's blank back, in
/// turn. A `.tif` output is a TIFF of grey pages (uncompressed, as many scanners write them);
/// anything else a PDF of JPEG pages.
pub fn bench_scan(pack_dir: &Path, pages: u32, out: &Path) -> Result<(), String> {
    let path = pack_dir.join("receipts").join("000.jpg");
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let receipt = image::load_from_memory(&bytes)
        .map_err(|e| e.to_string())?
        .into_luma8();
    let (w, h) = (1700, 2200);
    let mut page = image::GrayImage::from_pixel(w, h, image::Luma([242]));
    let fitted = image::imageops::resize(
        &receipt,
        (w * 2 / 3).min(receipt.width() * 2),
        ((w * 2 / 3) * receipt.height() / receipt.width().max(1)).min(h - 200),
        image::imageops::FilterType::Triangle,
    );
    image::imageops::overlay(&mut page, &fitted, i64::from((w - fitted.width()) / 2), 100);
    let back = preprocess::degrade::blank_back(w, h, 7);
    let sheets: Vec<&image::GrayImage> = (0..pages)
        .map(|n| if n % 2 == 0 { &page } else { &back })
        .collect();
    let written = if out.extension().is_some_and(|e| e == "tif" || e == "tiff") {
        use tiff::encoder::{colortype::Gray8, Rational, TiffEncoder};
        use tiff::tags::ResolutionUnit;
        let mut buffer = std::io::Cursor::new(Vec::new());
        let mut encoder = TiffEncoder::new(&mut buffer).map_err(|e| e.to_string())?;
        for sheet in &sheets {
            let mut image = encoder
                .new_image::<Gray8>(w, h)
                .map_err(|e| e.to_string())?;
            image.resolution(ResolutionUnit::Inch, Rational { n: 200, d: 1 });
            image
                .write_data(sheet.as_raw())
                .map_err(|e| e.to_string())?;
        }
        buffer.into_inner()
    } else {
        let jpeg = |i: &image::GrayImage| {
            preprocess::encode(&image::DynamicImage::ImageLuma8(i.clone()), FileType::Jpeg)
                .map_err(|e| e.to_string())
        };
        let (page, back) = (jpeg(&page)?, jpeg(&back)?);
        let jpegs: Vec<Vec<u8>> = (0..pages)
            .map(|n| {
                if n % 2 == 0 {
                    page.clone()
                } else {
                    back.clone()
                }
            })
            .collect();
        ocrbridge::pdf_write::scanned_pdf(&jpegs, 200)
    };
    std::fs::write(out, written).map_err(|e| format!("{}: {e}", out.display()))
}

/// `rotated,border` → variants.
pub fn parse_variants(spec: &str) -> Result<Vec<Variant>, String> {
    spec.split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            Variant::parse(v).ok_or_else(|| {
                format!(
                    "unknown variant {v:?} (known: {})",
                    Variant::ALL.map(Variant::name).join(", ")
                )
            })
        })
        .collect()
}

/// The default place of the degraded pack.
pub fn default_out() -> PathBuf {
    crate::template_path()
        .with_file_name(".local")
        .join("packs")
        .join("degraded")
}
