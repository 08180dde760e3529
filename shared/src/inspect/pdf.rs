//! A streaming PDF scanner: page count, encryption, XFA and text layer, in bounded memory.
//!
//! The object is fed in chunks as it downloads. The scanner never builds the document: it reads
//! dictionary keys between streams, skips stream data by its `/Length`, and inflates only object
//! streams (`/Type /ObjStm`, where PDF 1.5+ hides page and font dictionaries), each within a
//! fixed budget. It does not trust the cross-reference table, the way PDF readers rebuild a
//! broken one.
//!
//! Decisions, documented because they are judgement calls:
//! - **Broken but fixable files pass.** A damaged xref, a missing `%PDF-` version, or garbage
//!   before the header do not matter when the page tree can be found: poppler, pdf.js and the OCR
//!   vendors repair such files on open (`broken_fixable.pdf`, `valid_exported.pdf` in the
//!   fixtures). A file with no findable page is `pdf_unreadable`.
//! - **Truncated files fail.** Without a catalog (`/Type /Catalog` or a trailer `/Root`) no
//!   reader can open the file, even if page dictionaries survived.
//! - **Page count** is the largest `/Count` of a page-tree node (a dictionary with `/Kids`); if
//!   none is visible, the number of `/Type /Page` objects.
//! - **Text layer** means the document declares fonts: a page with text has a font resource,
//!   and a scan without OCR has only images. `image_only` is images and no fonts.
//! - **Encryption** is any `/Encrypt` entry (trailer or xref stream). Owner-password-only files
//!   are encrypted too; vendors refuse both.

use std::io::Read;
use std::sync::LazyLock;

use regex::bytes::Regex;

/// Whether `head` looks like a PDF: a `%PDF` marker in the first kilobyte (readers accept it
/// there), or no marker but a comment line followed by an object header (`3 0 obj`).
pub fn looks_like_pdf(head: &[u8]) -> bool {
    let head = &head[..head.len().min(1024)];
    head.windows(4).any(|w| w == b"%PDF") || (head.starts_with(b"%") && OBJ.is_match(head))
}

static OBJ: LazyLock<Regex> = LazyLock::new(|| re(r"\d+\s+\d+\s+obj\b"));
static PAGE: LazyLock<Regex> = LazyLock::new(|| re(r"/Type\s*/Page\b"));
static COUNT: LazyLock<Regex> = LazyLock::new(|| re(r"/Count\s+(\d+)"));
static CATALOG: LazyLock<Regex> = LazyLock::new(|| re(r"/Type\s*/Catalog\b|/Root\s+\d+\s+\d+\s+R"));
static ENCRYPT: LazyLock<Regex> = LazyLock::new(|| re(r"/Encrypt\b"));
static XFA: LazyLock<Regex> = LazyLock::new(|| re(r"/XFA\b"));
static FONT: LazyLock<Regex> = LazyLock::new(|| re(r"/Font\b"));
static IMAGE: LazyLock<Regex> = LazyLock::new(|| re(r"/Subtype\s*/Image\b"));
static LENGTH: LazyLock<Regex> = LazyLock::new(|| re(r"/Length\s+(\d+)(\s+\d+\s+R)?"));
static OBJSTM: LazyLock<Regex> = LazyLock::new(|| re(r"/Type\s*/ObjStm\b"));
static FLATE: LazyLock<Regex> = LazyLock::new(|| re(r"/FlateDecode\b"));
static WIDTH: LazyLock<Regex> = LazyLock::new(|| re(r"/Width\s+(\d+)(\s+\d+\s+R)?"));
static MEDIABOX: LazyLock<Regex> = LazyLock::new(|| {
    re(r"/MediaBox\s*\[\s*(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s*\]")
});

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static regex")
}

/// Text kept unscanned at a chunk boundary, so a keyword split across chunks is still seen.
const OVERLAP: usize = 64;
/// Text scanned at once when no stream keyword shows up.
const TEXT_WINDOW: usize = 256 * 1024;
/// How far back from `stream` the object's dictionary is looked for.
const DICT_LOOKBACK: usize = 64 * 1024;
/// Budget for one object stream, compressed and inflated.
const OBJSTM_MAX_COMPRESSED: usize = 4 * 1024 * 1024;
const OBJSTM_MAX_INFLATED: u64 = 16 * 1024 * 1024;

/// What the scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PdfInfo {
    pub header: bool,
    pub pages: Option<u32>,
    /// A document catalog (or a trailer `/Root`) was seen. Readers repair a broken xref by
    /// rebuilding from the catalog; without one (a truncated upload) nothing can be opened.
    pub catalog: bool,
    pub encrypted: bool,
    pub xfa: bool,
    pub has_fonts: bool,
    pub has_images: bool,
    /// The widest image's `/Width`, in pixels (where given as a number).
    pub image_width_px: Option<u32>,
    /// The widest page's `/MediaBox` width, in points (1/72 inch), rounded.
    pub page_width_pt: Option<u32>,
    pub objects: u64,
    /// Object streams that were too large to inspect (their contents were not counted).
    pub skipped_object_streams: u32,
}

impl PdfInfo {
    pub fn text_layer(&self) -> bool {
        self.has_fonts
    }

    pub fn image_only(&self) -> bool {
        self.has_images && !self.has_fonts
    }

    /// A scan's resolution, estimated: for an image-only PDF, its widest image's pixels over its
    /// widest page's inches (a scanner puts one full-page image on each page). `None` for a PDF
    /// with text, or where either width is not a plain number.
    pub fn scan_dpi(&self) -> Option<u32> {
        let (pixels, points) = (self.image_width_px?, self.page_width_pt?);
        (self.image_only() && points > 0)
            .then(|| (f64::from(pixels) * 72.0 / f64::from(points)).round() as u32)
    }
}

#[derive(Debug)]
enum Mode {
    /// Dictionaries and keywords.
    Text,
    /// Stream data of known length: skipped.
    Skip(u64),
    /// Stream data of unknown length: skipped up to `endstream`.
    SeekEnd,
    /// An object stream being collected for inflation.
    Collect {
        remaining: Option<u64>,
        data: Vec<u8>,
        flate: bool,
    },
}

#[derive(Debug)]
pub struct PdfScanner {
    buf: Vec<u8>,
    mode: Mode,
    /// The first kilobyte, for the header check.
    head: Vec<u8>,
    page_objects: u32,
    tree_count: Option<u32>,
    info: PdfInfo,
}

impl Default for PdfScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl PdfScanner {
    pub fn new() -> Self {
        PdfScanner {
            buf: Vec::new(),
            mode: Mode::Text,
            head: Vec::new(),
            page_objects: 0,
            tree_count: None,
            info: PdfInfo::default(),
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if self.head.len() < 1024 {
            let take = (1024 - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.buf.extend_from_slice(chunk);
        self.process(false);
    }

    pub fn finish(mut self) -> PdfInfo {
        self.info.header = looks_like_pdf(&self.head);
        self.process(true);
        if let Mode::Collect { data, flate, .. } = std::mem::replace(&mut self.mode, Mode::Text) {
            self.scan_object_stream(&data, flate);
        }
        let pages = self
            .tree_count
            .or((self.page_objects > 0).then_some(self.page_objects));
        PdfInfo { pages, ..self.info }
    }

    fn process(&mut self, at_end: bool) {
        loop {
            match &mut self.mode {
                Mode::Text => {
                    if let Some(at) = find_stream_keyword(&self.buf) {
                        let (end_of_eol, dict) = self.enter_stream(at);
                        self.mode = dict;
                        self.buf.drain(..end_of_eol);
                        continue;
                    }
                    let keep = if at_end {
                        0
                    } else {
                        OVERLAP.min(self.buf.len())
                    };
                    if at_end || self.buf.len() > TEXT_WINDOW {
                        let upto = self.buf.len() - keep;
                        let text: Vec<u8> = self.buf.drain(..upto).collect();
                        self.scan_text(&text);
                    }
                    return;
                }
                Mode::Skip(remaining) => {
                    let n = (*remaining).min(self.buf.len() as u64) as usize;
                    *remaining -= n as u64;
                    let done = *remaining == 0;
                    self.buf.drain(..n);
                    if done {
                        self.mode = Mode::Text;
                        continue;
                    }
                    return;
                }
                Mode::SeekEnd => {
                    if let Some(at) = find(&self.buf, b"endstream") {
                        self.buf.drain(..at);
                        self.mode = Mode::Text;
                        continue;
                    }
                    let keep = 9.min(self.buf.len());
                    let upto = self.buf.len() - keep;
                    self.buf.drain(..upto);
                    return;
                }
                Mode::Collect {
                    remaining,
                    data,
                    flate,
                } => {
                    let (take, done) = match remaining {
                        Some(r) => {
                            let n = (*r).min(self.buf.len() as u64) as usize;
                            *r -= n as u64;
                            (n, *r == 0)
                        }
                        None => match find(&self.buf, b"endstream") {
                            Some(at) => (at, true),
                            None => (self.buf.len().saturating_sub(9), false),
                        },
                    };
                    data.extend(self.buf.drain(..take));
                    if data.len() > OBJSTM_MAX_COMPRESSED {
                        self.info.skipped_object_streams += 1;
                        self.mode = match remaining {
                            Some(r) => Mode::Skip(*r),
                            None => Mode::SeekEnd,
                        };
                        continue;
                    }
                    if done {
                        let (data, flate) = (std::mem::take(data), *flate);
                        self.mode = Mode::Text;
                        self.scan_object_stream(&data, flate);
                        continue;
                    }
                    return;
                }
            }
        }
    }

    /// Handles a `stream` keyword at `at`: scans the text before it and decides how to treat the
    /// stream data. Returns where the data starts and the mode for it.
    fn enter_stream(&mut self, at: usize) -> (usize, Mode) {
        let text: Vec<u8> = self.buf[..at].to_vec();
        self.scan_text(&text);
        let dict_start = text.len().saturating_sub(DICT_LOOKBACK);
        let window = &text[dict_start..];
        // The dictionary of this stream's object: from its `N 0 obj` header on.
        let dict = OBJ
            .find_iter(window)
            .last()
            .map(|m| &window[m.start()..])
            .unwrap_or(window);
        let mut data_start = at + b"stream".len();
        if self.buf.get(data_start) == Some(&b'\r') {
            data_start += 1;
        }
        if self.buf.get(data_start) == Some(&b'\n') {
            data_start += 1;
        }
        let length = LENGTH
            .captures(dict)
            .filter(|c| c.get(2).is_none())
            .and_then(|c| std::str::from_utf8(&c[1]).ok()?.parse::<u64>().ok());
        let mode = if OBJSTM.is_match(dict) {
            Mode::Collect {
                remaining: length,
                data: Vec::new(),
                flate: FLATE.is_match(dict),
            }
        } else {
            match length {
                Some(n) => Mode::Skip(n),
                None => Mode::SeekEnd,
            }
        };
        (data_start, mode)
    }

    fn scan_object_stream(&mut self, data: &[u8], flate: bool) {
        if !flate {
            self.scan_text(data);
            return;
        }
        let mut inflated = Vec::new();
        let decoder = flate2::read::ZlibDecoder::new(data);
        match decoder.take(OBJSTM_MAX_INFLATED).read_to_end(&mut inflated) {
            Ok(_) => self.scan_text(&inflated),
            // A damaged object stream: whatever inflated before the damage still counts.
            Err(_) if !inflated.is_empty() => self.scan_text(&inflated),
            Err(_) => self.info.skipped_object_streams += 1,
        }
    }

    fn scan_text(&mut self, text: &[u8]) {
        let info = &mut self.info;
        info.objects += OBJ.find_iter(text).count() as u64;
        info.encrypted |= ENCRYPT.is_match(text);
        info.catalog |= CATALOG.is_match(text);
        info.xfa |= XFA.is_match(text);
        info.has_fonts |= FONT.is_match(text);
        info.has_images |= IMAGE.is_match(text);
        for image in IMAGE.find_iter(text) {
            // The image's own dictionary: its `/Width`, where it is a number, not a reference.
            let width = enclosing_dict(text, image.start())
                .and_then(|dict| WIDTH.captures(dict))
                .filter(|c| c.get(2).is_none())
                .and_then(|c| std::str::from_utf8(&c[1]).ok()?.parse::<u32>().ok());
            if let Some(w) = width {
                info.image_width_px = Some(info.image_width_px.map_or(w, |m| m.max(w)));
            }
        }
        for c in MEDIABOX.captures_iter(text) {
            let x = |i: usize| std::str::from_utf8(&c[i]).ok()?.parse::<f64>().ok();
            if let (Some(x0), Some(x1)) = (x(1), x(3)) {
                let width = (x1 - x0).abs().round().min(f64::from(u32::MAX)) as u32;
                info.page_width_pt = Some(info.page_width_pt.map_or(width, |m| m.max(width)));
            }
        }
        self.page_objects += PAGE.find_iter(text).count() as u32;
        for c in COUNT.captures_iter(text) {
            let Some(m) = c.get(0) else { continue };
            if enclosing_dict(text, m.start()).is_some_and(|d| find(d, b"/Kids").is_some()) {
                if let Some(n) = std::str::from_utf8(&c[1])
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
                {
                    self.tree_count = Some(self.tree_count.map_or(n, |t| t.max(n)));
                }
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A `stream` keyword that starts stream data: not the tail of `endstream`, followed by an EOL.
fn find_stream_keyword(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(rel) = find(&buf[from..], b"stream") {
        let at = from + rel;
        let after = buf.get(at + 6);
        let is_end = at >= 3 && &buf[at - 3..at] == b"end";
        if !is_end && matches!(after, Some(b'\r' | b'\n')) {
            return Some(at);
        }
        // At the very end of the buffer: the EOL may come with the next chunk.
        after?;
        from = at + 6;
    }
    None
}

/// The `<< … >>` dictionary around `pos`, if it closes within a few kilobytes.
fn enclosing_dict(text: &[u8], pos: usize) -> Option<&[u8]> {
    const REACH: usize = 4096;
    let mut depth = 0i32;
    let mut start = None;
    let mut i = pos;
    while i >= 1 && pos - i < REACH {
        if text[i - 1] == b'>' && i >= 2 && text[i - 2] == b'>' {
            depth += 1;
            i -= 2;
            continue;
        }
        if text[i - 1] == b'<' && i >= 2 && text[i - 2] == b'<' {
            if depth == 0 {
                start = Some(i - 2);
                break;
            }
            depth -= 1;
            i -= 2;
            continue;
        }
        i -= 1;
    }
    let start = start?;
    let mut depth = 0i32;
    let mut j = pos;
    while j + 1 < text.len() && j - pos < REACH {
        if &text[j..j + 2] == b"<<" {
            depth += 1;
            j += 2;
            continue;
        }
        if &text[j..j + 2] == b">>" {
            if depth == 0 {
                return Some(&text[start..j + 2]);
            }
            depth -= 1;
            j += 2;
            continue;
        }
        j += 1;
    }
    None
}

/// Scans a whole in-memory PDF (tests, small files).
pub fn scan(bytes: &[u8], chunk: usize) -> PdfInfo {
    let mut scanner = PdfScanner::new();
    for part in bytes.chunks(chunk.max(1)) {
        scanner.feed(part);
    }
    scanner.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simple_pdf(pages: u32, extra_trailer: &str) -> Vec<u8> {
        let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", 10 + i)).collect();
        let mut pdf = format!(
            "%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [{}] /Count {pages} >>\nendobj\n",
            kids.join(" ")
        );
        for i in 0..pages {
            pdf.push_str(&format!(
                "{} 0 obj\n<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 5 0 R >> >> /Contents {} 0 R >>\nendobj\n",
                10 + i,
                100 + i
            ));
            let content = "BT /F1 12 Tf (stream /Type /Page /Count 99) Tj ET";
            pdf.push_str(&format!(
                "{} 0 obj\n<< /Length {} >>\nstream\n{content}\nendstream\nendobj\n",
                100 + i,
                content.len()
            ));
        }
        pdf.push_str(&format!(
            "trailer\n<< /Root 1 0 R {extra_trailer} >>\n%%EOF\n"
        ));
        pdf.into_bytes()
    }

    #[test]
    fn counts_pages_and_sees_fonts_in_any_chunking() {
        let pdf = simple_pdf(3, "");
        for chunk in [1, 7, 64, 4096] {
            let info = scan(&pdf, chunk);
            assert_eq!(info.pages, Some(3), "chunk {chunk}");
            assert!(info.header && info.catalog && info.has_fonts && !info.encrypted && !info.xfa);
            assert!(info.text_layer());
        }
    }

    /// A scanned page: a Letter page (612 pt wide) holding one image `width` pixels wide.
    fn scanned_pdf(width: &str) -> Vec<u8> {
        let pixels = "\0".repeat(64);
        format!(
            "%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /Im0 4 0 R >> >> >>\nendobj\n4 0 obj\n<< /Type /XObject /Subtype /Image {width} /Height 1100 /BitsPerComponent 8 /ColorSpace /DeviceGray /Length {} >>\nstream\n{pixels}\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n",
            pixels.len()
        )
        .into_bytes()
    }

    /// A scan's resolution is its image's pixels over its page's inches: 850 px over 8.5 in is
    /// 100 dpi, 2550 px 300 dpi; a width given by reference is not guessed, and a PDF with text
    /// has no scan resolution.
    #[test]
    fn a_scans_resolution_is_its_images_pixels_over_its_pages_inches() {
        for chunk in [3, 64, 4096] {
            assert_eq!(
                scan(&scanned_pdf("/Width 850"), chunk).scan_dpi(),
                Some(100),
                "chunk {chunk}"
            );
            assert_eq!(
                scan(&scanned_pdf("/Width 2550"), chunk).scan_dpi(),
                Some(300)
            );
        }
        assert_eq!(scan(&scanned_pdf("/Width 9 0 R"), 64).scan_dpi(), None);
        assert_eq!(scan(&simple_pdf(2, ""), 64).scan_dpi(), None);
    }

    #[test]
    fn stream_data_is_skipped_not_scanned() {
        // The content streams above contain "/Type /Page /Count 99" as text; it must not count.
        assert_eq!(scan(&simple_pdf(1, ""), 5).pages, Some(1));
    }

    #[test]
    fn sees_encryption_and_xfa() {
        assert!(scan(&simple_pdf(1, "/Encrypt 9 0 R /ID [<a><b>]"), 16).encrypted);
        let mut xfa = simple_pdf(1, "").to_vec();
        xfa.extend_from_slice(b"20 0 obj\n<< /Fields [] /XFA 21 0 R >>\nendobj\n");
        assert!(scan(&xfa, 16).xfa);
        assert!(!scan(&simple_pdf(1, "/EncryptMetadata false"), 16).encrypted);
    }

    #[test]
    fn reads_page_trees_inside_object_streams() {
        use std::io::Write;
        let objects = b"2 0 3 60 << /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >> << /Type /Page /Resources << /XObject << /Im0 7 0 R >> >> >>";
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(objects).unwrap();
        let compressed = z.finish().unwrap();
        let mut pdf =
            b"%PDF-1.5\n5 0 obj\n<< /Type /ObjStm /N 2 /First 8 /Filter /FlateDecode /Length "
                .to_vec();
        pdf.extend_from_slice(compressed.len().to_string().as_bytes());
        pdf.extend_from_slice(b" >>\nstream\n");
        pdf.extend_from_slice(&compressed);
        pdf.extend_from_slice(b"\nendstream\nendobj\n7 0 obj\n<< /Type /XObject /Subtype /Image /Length 3 >>\nstream\nabc\nendstream\nendobj\n");
        for chunk in [3, 100, 10_000] {
            let info = scan(&pdf, chunk);
            assert_eq!(info.pages, Some(2), "chunk {chunk}");
            assert!(info.image_only());
        }
    }

    #[test]
    fn no_pages_means_unreadable() {
        let info = scan(b"%PDF-1.4\ngarbage that ends here", 8);
        assert!(info.header);
        assert_eq!(info.pages, None);
    }

    #[test]
    fn recognizes_pdfs_with_late_or_missing_headers() {
        assert!(looks_like_pdf(b"%PDF-1.7\n"));
        assert!(looks_like_pdf(b"junk\n%PDF-1.4\n"));
        assert!(looks_like_pdf(b"%\xe2\xe3\xcf\xd3\n3 0 obj\n<<"));
        assert!(!looks_like_pdf(b"\xff\xd8\xff\xe0 JFIF"));
        assert!(!looks_like_pdf(b"% a comment, no objects"));
    }
}
