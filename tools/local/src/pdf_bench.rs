//! Splitting's cost (`make bench-split`): a PDF of N pages, each with its text and a scanned
//! page's worth of image data, cut into parts as intake would (`ocrbridge::parts::split`),
//! timed and its peak RSS read, in a process of its own.

use std::path::Path;

use lopdf::{dictionary, Document, Object, Stream};
use ocrbridge::parts::{self, Plan};

use crate::degrade::peak_rss;

/// Writes a PDF of `pages` pages, each with a line of text and an image XObject of `image_kb`
/// KiB (incompressible bytes under `DCTDecode`: what a scanned page weighs; splitting never
/// decodes it).
pub fn write_bench_pdf(pages: u32, image_kb: usize, out: &Path) -> Result<(), String> {
    let text: Vec<Vec<String>> = (1..=pages)
        .map(|n| vec![format!("Page {n} of {pages}")])
        .collect();
    let mut doc =
        Document::load_mem(&ocrbridge::pdf_write::text_pdf(&text)).map_err(|e| e.to_string())?;
    let page_ids: Vec<_> = doc.get_pages().into_values().collect();
    // A fixed xorshift stream: the same file every run.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for page in page_ids {
        let bytes: Vec<u8> = (0..image_kb * 1024)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let image = doc.add_object(Stream::new(
            dictionary! {
                "Type" => "XObject",
                "Subtype" => "Image",
                "Width" => 1275,
                "Height" => 1650,
                "ColorSpace" => "DeviceGray",
                "BitsPerComponent" => 8,
                "Filter" => "DCTDecode",
            },
            bytes,
        ));
        let dict = doc
            .get_object_mut(page)
            .and_then(Object::as_dict_mut)
            .map_err(|e| e.to_string())?;
        dict.set(
            "Resources",
            dictionary! { "XObject" => dictionary! { "Im1" => image } },
        );
    }
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).map_err(|e| e.to_string())?;
    std::fs::write(out, bytes).map_err(|e| format!("{}: {e}", out.display()))
}

/// Splits `input` into parts of `per_part` pages as intake does; prints the time, the time per
/// MB of input and the process's peak RSS.
pub fn split_file(input: &Path, per_part: u32) -> Result<(), String> {
    let key = input.display().to_string();
    let bytes = std::fs::read(input).map_err(|e| format!("{key}: {e}"))?;
    let pages = Document::load_mem(&bytes)
        .map_err(|e| format!("{key}: {e}"))?
        .get_pages()
        .len() as u32;
    let plan = Plan::for_document(pages, Some(per_part))
        .ok_or_else(|| format!("{key}: {pages} pages fit in one part of {per_part}"))?;
    let started = std::time::Instant::now();
    // As intake does: each part is handed on (here, counted and dropped) as soon as it is cut.
    let (mut count, mut written) = (0, 0);
    parts::split_each(&bytes, &plan, |part| {
        count += 1;
        written += part.len();
        true
    })
    .map_err(|e| format!("{key}: {e}"))?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let mb = bytes.len() as f64 / 1e6;
    println!(
        "{pages} pages, {mb:.1} MB → {count} parts of ≤{per_part} ({:.1} MB in all): {ms:.0} ms, {:.0} ms per MB of input, peak RSS {}",
        written as f64 / 1e6,
        ms / mb.max(1e-9),
        peak_rss().map_or("unknown".into(), |kb| format!("{:.1} MB", kb as f64 / 1024.0))
    );
    Ok(())
}
