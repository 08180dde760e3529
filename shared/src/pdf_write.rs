//! PDFs written from pages: one picture a page ([`images_pdf`], the multi-page TIFF that
//! `preprocess::convert` turns into a PDF), scanned pages ([`scanned_pdf`]) and lines of text
//! ([`text_pdf`]) for tests and the local tools (the parts test's 400-page invoice, the A/B
//! pack's `blank_page` variant).
//!
//! Deterministic, like every copy intake writes: no date, no id, objects in id order (lopdf).

use lopdf::{Document, Object};

/// A PDF of text pages, one line of Helvetica per entry: for tests and the local tools (the
/// 400-page document of the parts test, `parts::split`'s unit tests).
pub fn text_pdf(pages: &[Vec<String>]) -> Vec<u8> {
    use lopdf::content::{Content, Operation};
    use lopdf::dictionary;
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
    });
    // Shared through the tree, as many producers do: splitting must carry it onto each page.
    let resources = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font } });
    let mut kids = Vec::new();
    for lines in pages {
        let mut operations = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 12.into()]),
            Operation::new("TL", vec![16.into()]),
            Operation::new("Td", vec![72.into(), 740.into()]),
        ];
        for line in lines {
            operations.push(Operation::new(
                "Tj",
                vec![Object::string_literal(line.as_str())],
            ));
            operations.push(Operation::new("T*", vec![]));
        }
        operations.push(Operation::new("ET", vec![]));
        let content = Content { operations }.encode().unwrap_or_default();
        let stream = doc.add_object(lopdf::Stream::new(dictionary! {}, content));
        let page = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => stream,
        });
        kids.push(Object::Reference(page));
    }
    let count = i64::try_from(kids.len()).unwrap_or(i64::MAX);
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count,
            "Resources" => resources,
            "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    let mut bytes = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = doc.save_to(&mut bytes);
    bytes
}

/// A PDF of scanned pages, one JPEG a page drawn over the whole page at `dpi`, as scanners
/// write them: for tests and the local tools (the A/B pack's `blank_page` variant). A JPEG
/// whose header cannot be read gets an empty page.
pub fn scanned_pdf(jpegs: &[Vec<u8>], dpi: u32) -> Vec<u8> {
    let pages = jpegs.iter().map(|jpeg| {
        image::ImageReader::with_format(std::io::Cursor::new(jpeg), image::ImageFormat::Jpeg)
            .into_decoder()
            .ok()
            .map(|d| {
                use image::ImageDecoder;
                let (width, height) = d.dimensions();
                PageImage {
                    width,
                    height,
                    colour: d.color_type().has_color(),
                    filter: "DCTDecode",
                    data: jpeg.clone(),
                    dpi,
                }
            })
    });
    images_pdf(pages)
}

/// One page's picture for [`images_pdf`]: 8-bit grey or RGB samples, encoded by `filter`
/// (`DCTDecode`: a JPEG's bytes; `FlateDecode`: the samples zlib-compressed).
pub struct PageImage {
    pub width: u32,
    pub height: u32,
    pub colour: bool,
    pub filter: &'static str,
    pub data: Vec<u8>,
    /// The page is the picture's size at this resolution.
    pub dpi: u32,
}

/// A PDF of one picture a page, each drawn over its whole page; `None` gives an empty page.
/// Deterministic: no date, no id, objects in order.
pub fn images_pdf(pages: impl IntoIterator<Item = Option<PageImage>>) -> Vec<u8> {
    use lopdf::content::{Content, Operation};
    use lopdf::dictionary;
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let mut kids = Vec::new();
    for page in pages {
        let Some(page) = page else {
            let empty = doc.add_object(dictionary! { "Type" => "Page", "Parent" => pages_id });
            kids.push(Object::Reference(empty));
            continue;
        };
        let points = |pixels: u32| f64::from(pixels) * 72.0 / f64::from(page.dpi.max(1));
        let image = doc.add_object(lopdf::Stream::new(
            dictionary! {
                "Type" => "XObject",
                "Subtype" => "Image",
                "Width" => i64::from(page.width),
                "Height" => i64::from(page.height),
                "ColorSpace" => if page.colour { "DeviceRGB" } else { "DeviceGray" },
                "BitsPerComponent" => 8,
                "Filter" => page.filter,
            },
            page.data,
        ));
        let (w, h) = (points(page.width), points(page.height));
        let content = Content {
            operations: vec![
                Operation::new("q", vec![]),
                Operation::new(
                    "cm",
                    vec![w.into(), 0.into(), 0.into(), h.into(), 0.into(), 0.into()],
                ),
                Operation::new("Do", vec!["Im0".into()]),
                Operation::new("Q", vec![]),
            ],
        }
        .encode()
        .unwrap_or_default();
        let stream = doc.add_object(lopdf::Stream::new(dictionary! {}, content));
        let page = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => stream,
            "MediaBox" => vec![0.into(), 0.into(), w.into(), h.into()],
            "Resources" => dictionary! { "XObject" => dictionary! { "Im0" => image } },
        });
        kids.push(Object::Reference(page));
    }
    let count = i64::try_from(kids.len()).unwrap_or(i64::MAX);
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => count }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    let mut bytes = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = doc.save_to(&mut bytes);
    bytes
}
