//! The OCR engine: real Tesseract on images and rasterized PDF pages, a PDF's own text layer where
//! it has one, and a fast synthetic engine for large chaos runs.
//!
//! Tesseract runs as a subprocess with `OMP_THREAD_LIMIT=1` (its OpenMP threads thrash small
//! machines) and TSV output. PDF pages come from poppler: `pdftotext -bbox-layout` for the text
//! layer, `pdftoppm` to rasterize pages that have none. Every page records which path it took.

use std::path::Path;
use std::process::Stdio;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::process::Command;

/// Resolution PDF pages are rasterized at, and text-layer coordinates are scaled to.
pub const PDF_DPI: u32 = 150;
/// Pages beyond this are not processed (and not billed), unless the simulator is given a page
/// limit of its own (`TwinSettings::max_pages`): it then reads up to that limit.
pub const MAX_PAGES: u32 = 50;
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    /// Real OCR with Tesseract.
    Tesseract,
    /// No OCR: one synthetic line per document, instantly. For chaos runs with many documents.
    Fast,
}

/// How a page's text was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PagePath {
    /// An image document, OCRed directly.
    Image,
    /// A PDF page rasterized with pdftoppm, then OCRed.
    PdfRaster,
    /// A PDF page's embedded text layer, no OCR.
    PdfTextLayer,
    /// The fast engine.
    Synthetic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BBox {
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
}

impl BBox {
    /// As fractions of the page: (left, top, width, height), each in `0.0..=1.0`.
    pub fn normalized(&self, page_width: u32, page_height: u32) -> (f64, f64, f64, f64) {
        let (w, h) = (f64::from(page_width.max(1)), f64::from(page_height.max(1)));
        let left = (f64::from(self.left) / w).clamp(0.0, 1.0);
        let top = (f64::from(self.top) / h).clamp(0.0, 1.0);
        (
            left,
            top,
            (f64::from(self.width) / w).clamp(0.0, 1.0 - left),
            (f64::from(self.height) / h).clamp(0.0, 1.0 - top),
        )
    }

    /// The four corners, clockwise from the top left, in pixels: `[x1, y1, …, x4, y4]`.
    pub fn polygon(&self) -> [f64; 8] {
        let (l, t) = (f64::from(self.left), f64::from(self.top));
        let (r, b) = (l + f64::from(self.width), t + f64::from(self.height));
        [l, t, r, t, r, b, l, b]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    pub text: String,
    pub bbox: BBox,
    /// 0–100.
    pub confidence: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub text: String,
    pub bbox: BBox,
    pub confidence: f32,
    pub words: Vec<Word>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub number: u32,
    pub width: u32,
    pub height: u32,
    pub path: PagePath,
    pub lines: Vec<Line>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{tool} is not installed; run scripts/setup.sh as root, or apt-get install {package}")]
    Missing {
        tool: &'static str,
        package: &'static str,
    },
    #[error("{tool} failed: {detail}")]
    Failed { tool: &'static str, detail: String },
    #[error("the document is not a readable image or PDF: {0}")]
    Unreadable(String),
    #[error("temporary files: {0}")]
    Io(#[from] std::io::Error),
}

/// The pages of a PDF, as poppler's `pdfinfo` counts them; `None` for anything else or a PDF
/// it cannot open (the engine then says why, when it reads it).
pub async fn pdf_pages(document: &[u8]) -> Result<Option<u32>, EngineError> {
    if !looks_like_pdf(document) {
        return Ok(None);
    }
    let dir = tempfile::tempdir()?;
    let pdf = dir.path().join("document.pdf");
    tokio::fs::write(&pdf, document).await?;
    let mut command = Command::new("pdfinfo");
    command.arg(&pdf);
    let Ok(info) = run(command, "pdfinfo", "poppler-utils").await else {
        return Ok(None);
    };
    Ok(String::from_utf8_lossy(&info)
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok()))
}

/// OCRs `document`. Returns the pages in order.
pub async fn recognize(
    kind: EngineKind,
    document: &[u8],
    page_cap: u32,
) -> Result<Vec<Page>, EngineError> {
    if kind == EngineKind::Fast {
        return Ok(vec![synthetic_page(document)]);
    }
    let dir = tempfile::tempdir()?;
    if looks_like_pdf(document) {
        let pdf = dir.path().join("document.pdf");
        tokio::fs::write(&pdf, document).await?;
        recognize_pdf(&pdf, dir.path(), page_cap).await
    } else {
        let image = dir.path().join("document");
        tokio::fs::write(&image, document).await?;
        let (width, height, lines) = tesseract(&image).await?;
        Ok(vec![Page {
            number: 1,
            width,
            height,
            path: PagePath::Image,
            lines,
        }])
    }
}

/// Poppler, like other readers, accepts a `%PDF` header anywhere in the first kilobyte, and even
/// a file with no header whose body is PDF objects (`valid_exported.pdf` in the fixtures).
pub fn looks_like_pdf(document: &[u8]) -> bool {
    let head = &document[..document.len().min(1024)];
    head.windows(4).any(|w| w == b"%PDF") || (head.starts_with(b"%") && PDF_OBJECT.is_match(head))
}

fn synthetic_page(document: &[u8]) -> Page {
    let digest = hex::encode(Sha256::digest(document));
    let text = format!("SYNTHETIC {}", &digest[..12]);
    let bbox = BBox {
        left: 100,
        top: 100,
        width: 600,
        height: 40,
    };
    Page {
        number: 1,
        width: 1000,
        height: 1400,
        path: PagePath::Synthetic,
        lines: vec![Line {
            text: text.clone(),
            bbox,
            confidence: 99.0,
            words: text
                .split(' ')
                .map(|w| Word {
                    text: w.to_owned(),
                    bbox,
                    confidence: 99.0,
                })
                .collect(),
        }],
    }
}

async fn run(
    mut command: Command,
    tool: &'static str,
    package: &'static str,
) -> Result<Vec<u8>, EngineError> {
    command
        .env("OMP_THREAD_LIMIT", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => EngineError::Missing { tool, package },
        _ => EngineError::Failed {
            tool,
            detail: e.to_string(),
        },
    })?;
    let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| EngineError::Failed {
            tool,
            detail: format!("no result within {COMMAND_TIMEOUT:?}"),
        })??;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(EngineError::Failed {
            tool,
            detail: stderr.lines().last().unwrap_or("no message").to_owned(),
        })
    }
}

/// Runs Tesseract on one image; returns the image size and its lines.
async fn tesseract(image: &Path) -> Result<(u32, u32, Vec<Line>), EngineError> {
    let mut command = Command::new("tesseract");
    command.arg(image).arg("stdout").args(["-l", "eng", "tsv"]);
    let tsv = run(command, "tesseract", "tesseract-ocr tesseract-ocr-eng")
        .await
        .map_err(|e| match e {
            EngineError::Failed { detail, .. } => EngineError::Unreadable(detail),
            other => other,
        })?;
    parse_tsv(&String::from_utf8_lossy(&tsv))
}

/// Parses Tesseract's TSV: `level page_num block_num par_num line_num word_num left top width
/// height conf text`, where level 1 is the page, 4 a line and 5 a word (conf is -1 elsewhere).
pub fn parse_tsv(tsv: &str) -> Result<(u32, u32, Vec<Line>), EngineError> {
    let mut size = None;
    let mut lines: Vec<(String, Line)> = Vec::new();
    for row in tsv.lines().skip(1) {
        let cols: Vec<&str> = row.splitn(12, '\t').collect();
        if cols.len() < 11 {
            continue;
        }
        let num = |i: usize| cols[i].trim().parse::<i64>().unwrap_or(0).max(0) as u32;
        let bbox = BBox {
            left: num(6),
            top: num(7),
            width: num(8),
            height: num(9),
        };
        let line_key = format!("{}/{}/{}/{}", cols[1], cols[2], cols[3], cols[4]);
        match cols[0] {
            "1" => size = Some((bbox.width, bbox.height)),
            "4" => lines.push((
                line_key,
                Line {
                    text: String::new(),
                    bbox,
                    confidence: 0.0,
                    words: Vec::new(),
                },
            )),
            "5" => {
                let text = cols.get(11).map(|t| t.trim()).unwrap_or_default();
                let confidence: f32 = cols[10].trim().parse().unwrap_or(-1.0);
                if text.is_empty() || confidence < 0.0 {
                    continue;
                }
                if let Some((_, line)) = lines.iter_mut().rev().find(|(k, _)| *k == line_key) {
                    line.words.push(Word {
                        text: text.to_owned(),
                        bbox,
                        confidence,
                    });
                }
            }
            _ => {}
        }
    }
    let (width, height) =
        size.ok_or_else(|| EngineError::Unreadable("tesseract reported no page".into()))?;
    let lines = lines
        .into_iter()
        .map(|(_, line)| finish_line(line))
        .filter(|line| !line.words.is_empty())
        .collect();
    Ok((width, height, lines))
}

fn finish_line(mut line: Line) -> Line {
    line.text = line
        .words
        .iter()
        .map(|w| w.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    if !line.words.is_empty() {
        line.confidence =
            line.words.iter().map(|w| w.confidence).sum::<f32>() / line.words.len() as f32;
    }
    line
}

async fn recognize_pdf(pdf: &Path, dir: &Path, page_cap: u32) -> Result<Vec<Page>, EngineError> {
    let mut command = Command::new("pdftotext");
    command
        .args(["-bbox-layout", "-l"])
        .arg(page_cap.to_string())
        .arg(pdf)
        .arg("-");
    let layout = run(command, "pdftotext", "poppler-utils")
        .await
        .map_err(|e| match e {
            EngineError::Failed { detail, .. } => EngineError::Unreadable(detail),
            other => other,
        })?;
    let mut pages = parse_bbox_layout(&String::from_utf8_lossy(&layout));
    if pages.is_empty() {
        return Err(EngineError::Unreadable("the PDF has no pages".into()));
    }
    for page in pages.iter_mut().filter(|p| p.lines.is_empty()) {
        // No text layer on this page: rasterize it and OCR the image.
        let prefix = dir.join(format!("page-{}", page.number));
        let mut command = Command::new("pdftoppm");
        command
            .args(["-r", &PDF_DPI.to_string(), "-png", "-singlefile", "-f"])
            .arg(page.number.to_string())
            .arg("-l")
            .arg(page.number.to_string())
            .arg(pdf)
            .arg(&prefix);
        run(command, "pdftoppm", "poppler-utils").await?;
        let image = prefix.with_extension("png");
        let (width, height, lines) = tesseract(&image).await?;
        page.width = width;
        page.height = height;
        page.path = PagePath::PdfRaster;
        page.lines = lines;
    }
    Ok(pages)
}

/// An indirect object header, `12 0 obj`.
static PDF_OBJECT: LazyLock<regex::bytes::Regex> =
    LazyLock::new(|| regex::bytes::Regex::new(r"\d+ \d+ obj\b").expect("static regex"));
static PAGE_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?s)<page width="([\d.]+)" height="([\d.]+)">|<line ([^>]*)>|<word ([^>]*)>(.*?)</word>"#)
        .expect("static regex")
});
static ATTR_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(xMin|yMin|xMax|yMax)="([\d.]+)""#).expect("static regex"));

fn scaled_bbox(attributes: &str, scale: f64) -> BBox {
    let mut v = [0f64; 4];
    for cap in ATTR_RE.captures_iter(attributes) {
        let i = match &cap[1] {
            "xMin" => 0,
            "yMin" => 1,
            "xMax" => 2,
            _ => 3,
        };
        v[i] = cap[2].parse().unwrap_or(0.0);
    }
    BBox {
        left: (v[0] * scale).round() as u32,
        top: (v[1] * scale).round() as u32,
        width: ((v[2] - v[0]).max(0.0) * scale).round() as u32,
        height: ((v[3] - v[1]).max(0.0) * scale).round() as u32,
    }
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Parses `pdftotext -bbox-layout` XHTML into pages of lines, in PDF points scaled to
/// [`PDF_DPI`] pixels. A page without words has no lines (and needs rasterizing).
pub fn parse_bbox_layout(xhtml: &str) -> Vec<Page> {
    let scale = f64::from(PDF_DPI) / 72.0;
    let mut pages: Vec<Page> = Vec::new();
    for cap in PAGE_RE.captures_iter(xhtml) {
        if let (Some(w), Some(h)) = (cap.get(1), cap.get(2)) {
            let px = |v: &str| (v.parse::<f64>().unwrap_or(0.0) * scale).round() as u32;
            pages.push(Page {
                number: pages.len() as u32 + 1,
                width: px(w.as_str()),
                height: px(h.as_str()),
                path: PagePath::PdfTextLayer,
                lines: Vec::new(),
            });
        } else if let Some(attrs) = cap.get(3) {
            if let Some(page) = pages.last_mut() {
                page.lines.push(Line {
                    text: String::new(),
                    bbox: scaled_bbox(attrs.as_str(), scale),
                    confidence: 100.0,
                    words: Vec::new(),
                });
            }
        } else if let (Some(attrs), Some(text)) = (cap.get(4), cap.get(5)) {
            let text = unescape(text.as_str().trim());
            if let Some(line) = pages.last_mut().and_then(|p| p.lines.last_mut()) {
                if !text.is_empty() {
                    line.words.push(Word {
                        text,
                        bbox: scaled_bbox(attrs.as_str(), scale),
                        confidence: 100.0,
                    });
                }
            }
        }
    }
    for page in &mut pages {
        page.lines = std::mem::take(&mut page.lines)
            .into_iter()
            .map(finish_line)
            .filter(|l| !l.words.is_empty())
            .collect();
    }
    pages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tesseract_tsv_into_lines() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext
1\t1\t0\t0\t0\t0\t0\t0\t463\t1013\t-1\t
2\t1\t1\t0\t0\t0\t75\t32\t244\t31\t-1\t
4\t1\t1\t1\t1\t0\t75\t32\t244\t31\t-1\t
5\t1\t1\t1\t1\t1\t75\t32\t60\t31\t96.5\tTotal
5\t1\t1\t1\t1\t2\t140\t32\t20\t31\t90\t:
5\t1\t1\t1\t1\t3\t170\t32\t40\t31\t87.5\t9.00
4\t1\t1\t1\t2\t0\t75\t70\t100\t20\t-1\t
5\t1\t1\t1\t2\t1\t75\t70\t100\t20\t95\t \n";
        let (w, h, lines) = parse_tsv(tsv).unwrap();
        assert_eq!((w, h), (463, 1013));
        assert_eq!(lines.len(), 1, "a line with only blank words is dropped");
        assert_eq!(lines[0].text, "Total : 9.00");
        assert_eq!(lines[0].words[2].bbox.left, 170);
        assert!((lines[0].confidence - 91.333).abs() < 0.01);
    }

    #[test]
    fn parses_the_pdf_text_layer_and_marks_empty_pages() {
        let xhtml = r#"<doc>
<page width="612.000000" height="792.000000">
<flow><block xMin="1" yMin="2" xMax="3" yMax="4">
<line xMin="72.000000" yMin="72.000000" xMax="144.000000" yMax="84.000000">
<word xMin="72.000000" yMin="72.000000" xMax="100.000000" yMax="84.000000">Invoice</word>
<word xMin="104.000000" yMin="72.000000" xMax="144.000000" yMax="84.000000">A&amp;B</word>
</line></block></flow>
</page>
<page width="612.000000" height="792.000000">
</page>
</doc>"#;
        let pages = parse_bbox_layout(xhtml);
        assert_eq!(pages.len(), 2);
        assert_eq!((pages[0].width, pages[0].height), (1275, 1650));
        assert_eq!(pages[0].lines[0].text, "Invoice A&B");
        assert_eq!(pages[0].lines[0].bbox.left, 150);
        assert_eq!(pages[0].lines[0].bbox.width, 150);
        assert!(pages[1].lines.is_empty());
    }

    #[test]
    fn recognizes_pdfs_with_late_or_missing_headers() {
        assert!(looks_like_pdf(b"%PDF-1.7\n"));
        assert!(looks_like_pdf(b"junk\n%PDF-1.4\n"));
        assert!(looks_like_pdf(b"%\xe2\xe3\xcf\xd3\n3 0 obj\n<<"));
        assert!(!looks_like_pdf(b"\xff\xd8\xff\xe0 JFIF"));
        assert!(!looks_like_pdf(b"% a comment, no objects"));
    }

    #[test]
    fn the_fast_engine_is_deterministic_per_document() {
        assert_eq!(synthetic_page(b"a"), synthetic_page(b"a"));
        assert_ne!(
            synthetic_page(b"a").lines[0].text,
            synthetic_page(b"b").lines[0].text
        );
    }
}
