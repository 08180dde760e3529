//! Input validation: what an uploaded object really is, and whether the vendor can take it.
//!
//! Everything here works on bounded reads. The type comes from magic bytes in the object's head
//! (never from the extension or Content-Type, which are only compared); image dimensions come
//! from headers without decoding pixels; PDFs are scanned as a stream ([`pdf::PdfScanner`]), so
//! memory stays flat whatever the object's size.

pub mod image;
pub mod pdf;

use std::fmt;

use serde::{Deserialize, Serialize};

/// A file type ocrbridge recognizes by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    Pdf,
    Png,
    Jpeg,
    Tiff,
    Webp,
    Gif,
    Bmp,
    Heic,
}

impl FileType {
    pub const ALL: [FileType; 8] = [
        FileType::Pdf,
        FileType::Png,
        FileType::Jpeg,
        FileType::Tiff,
        FileType::Webp,
        FileType::Gif,
        FileType::Bmp,
        FileType::Heic,
    ];

    pub fn mime(self) -> &'static str {
        match self {
            FileType::Pdf => "application/pdf",
            FileType::Png => "image/png",
            FileType::Jpeg => "image/jpeg",
            FileType::Tiff => "image/tiff",
            FileType::Webp => "image/webp",
            FileType::Gif => "image/gif",
            FileType::Bmp => "image/bmp",
            FileType::Heic => "image/heic",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FileType::Pdf => "pdf",
            FileType::Png => "png",
            FileType::Jpeg => "jpeg",
            FileType::Tiff => "tiff",
            FileType::Webp => "webp",
            FileType::Gif => "gif",
            FileType::Bmp => "bmp",
            FileType::Heic => "heic",
        }
    }

    pub fn parse(name: &str) -> Option<FileType> {
        FileType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// File name extensions that declare this type.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            FileType::Pdf => &["pdf"],
            FileType::Png => &["png"],
            FileType::Jpeg => &["jpg", "jpeg", "jpe", "jfif"],
            FileType::Tiff => &["tif", "tiff"],
            FileType::Webp => &["webp"],
            FileType::Gif => &["gif"],
            FileType::Bmp => &["bmp", "dib"],
            FileType::Heic => &["heic", "heif"],
        }
    }

    pub fn is_image(self) -> bool {
        self != FileType::Pdf
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How many bytes of the head [`detect`] wants.
pub const HEAD_BYTES: usize = 64 * 1024;

/// Below this declared resolution an image is flagged `low_resolution`: small print blurs into
/// its neighbours, and the vendors ask for 150 dpi at least (Textract's guidance; 300 is better).
pub const LOW_DPI: u32 = 150;

/// A text leaning this far or more is `skewed` (vendors read 1–2° as it is; past 3° accuracy
/// falls, and phone photos lean 3–15°).
pub const SKEWED_DEGREES: f64 = 3.0;
/// Text lines shorter than this, in pixels, are `small_text`: Tesseract's guidance puts the best
/// accuracy at an x-height of 20–30 px and a sharp fall below 10, and a line's height is about
/// twice its x-height.
pub const SMALL_TEXT_PX: u32 = 12;

/// What intake notices about a document's quality. Each is counted as
/// `InputQuality[Issue, Source, MimeType]`, the job keeps what it was measured from, and
/// `INPUT_QUALITY_POLICY` says per profile what is done about it ([`QualityPolicy`]).
///
/// Two are measured from the file as it is validated, before the document is accepted, so a
/// profile may refuse them: `low_resolution` and `blank_document`. Three are measured from the
/// pixels or the pages, which intake reads only when it prepares a copy (`preprocess`), after
/// the document is accepted: `skewed`, `small_text` and `blank_pages`. A profile flags those, or
/// has the step that remedies them applied (`preprocess`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InputIssue {
    /// An image declaring less than [`LOW_DPI`], or a scanned PDF measuring less.
    LowResolution,
    /// A PDF with neither a font nor an image: nothing on any page is text or a picture of
    /// text. (Text drawn as vector outlines has neither too: OCR reads it from the rendered
    /// page, so this is flagged by default, not refused.)
    BlankDocument,
    /// An image whose text lines lean [`SKEWED_DEGREES`] or more (`preprocess::deskew`).
    Skewed,
    /// An image whose text lines are shorter than [`SMALL_TEXT_PX`] (`preprocess::deskew::
    /// text_line_height`).
    SmallText,
    /// A PDF with blank pages among written ones (`preprocess::blank_pages`).
    BlankPages,
}

impl InputIssue {
    pub const ALL: [InputIssue; 5] = [
        InputIssue::LowResolution,
        InputIssue::BlankDocument,
        InputIssue::Skewed,
        InputIssue::SmallText,
        InputIssue::BlankPages,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InputIssue::LowResolution => "low_resolution",
            InputIssue::BlankDocument => "blank_document",
            InputIssue::Skewed => "skewed",
            InputIssue::SmallText => "small_text",
            InputIssue::BlankPages => "blank_pages",
        }
    }

    /// The rejection's code when the policy refuses a document for it; `None` for an issue
    /// measured after the document is accepted, which no policy can refuse.
    pub fn reject_code(self) -> Option<RejectCode> {
        match self {
            InputIssue::LowResolution => Some(RejectCode::LowResolution),
            InputIssue::BlankDocument => Some(RejectCode::BlankDocument),
            InputIssue::Skewed | InputIssue::SmallText | InputIssue::BlankPages => None,
        }
    }

    /// The preprocessing step that remedies it, which `preprocess` in the policy applies.
    pub fn remedy(self) -> Option<crate::preprocess::Action> {
        match self {
            InputIssue::Skewed => Some(crate::preprocess::Action::Deskew),
            InputIssue::BlankPages => Some(crate::preprocess::Action::BlankPages),
            InputIssue::LowResolution | InputIssue::BlankDocument | InputIssue::SmallText => None,
        }
    }

    /// What was measured, for a reader of the flag or the rejection (which adds the policy).
    pub fn explain(self, inspection: &crate::job::Inspection) -> String {
        match self {
            InputIssue::LowResolution => format!(
                "the document's resolution is {} dpi, below {LOW_DPI}; rescan it at 300 dpi",
                inspection.dpi.unwrap_or_default()
            ),
            InputIssue::BlankDocument => format!(
                "the PDF ({} pages) holds no text and no image: every page is blank, or drawn as vector paths only",
                inspection.pages.unwrap_or_default()
            ),
            InputIssue::Skewed => format!(
                "the text leans {:.1}°",
                f64::from(inspection.skew_tenths.unwrap_or_default()) / 10.0
            ),
            InputIssue::SmallText => format!(
                "the text lines are {} px tall, below {SMALL_TEXT_PX}; photograph or scan it closer",
                inspection.text_height_px.unwrap_or_default()
            ),
            InputIssue::BlankPages => format!(
                "{} of its {} pages are blank",
                inspection.blank_pages.unwrap_or_default(),
                inspection.pages.unwrap_or_default()
            ),
        }
    }
}

/// The quality issues of a document, as measured at intake.
pub fn input_issues(inspection: &crate::job::Inspection) -> Vec<InputIssue> {
    let mut issues = Vec::new();
    if inspection.dpi.is_some_and(|dpi| dpi < LOW_DPI) {
        issues.push(InputIssue::LowResolution);
    }
    if inspection.text_layer == Some(false) && inspection.images == Some(false) {
        issues.push(InputIssue::BlankDocument);
    }
    if inspection
        .skew_tenths
        .is_some_and(|t| f64::from(t.unsigned_abs()) >= SKEWED_DEGREES * 10.0)
    {
        issues.push(InputIssue::Skewed);
    }
    if inspection.text_height_px.is_some_and(|h| h < SMALL_TEXT_PX) {
        issues.push(InputIssue::SmallText);
    }
    if inspection.blank_pages.is_some_and(|n| n > 0) {
        issues.push(InputIssue::BlankPages);
    }
    issues
}

/// What a profile does about an input issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QualityAction {
    /// Accept the document and count the issue (the default for every issue).
    Flag,
    /// Refuse it with the issue as its reason (issues measured before acceptance only).
    Reject,
    /// Apply the step that remedies it ([`InputIssue::remedy`]) whatever `PREPROCESS` says,
    /// and count it.
    Preprocess,
}

/// `INPUT_QUALITY_POLICY`: `PROFILE:ISSUE=ACTION`, separated by `;` or `,`, `*` for every
/// profile (a profile's own rule wins over `*`), e.g.
/// `*:blank_document=reject; receipt:low_resolution=reject`. Actions: `flag`, `reject`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QualityPolicy {
    rules: std::collections::BTreeMap<(Option<String>, InputIssue), QualityAction>,
}

impl QualityPolicy {
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut rules = std::collections::BTreeMap::new();
        for rule in spec
            .split([';', ','])
            .map(str::trim)
            .filter(|r| !r.is_empty())
        {
            let bad = |why: &str| format!("{rule:?}: {why} (PROFILE:ISSUE=ACTION)");
            let (scope, action) = rule.split_once('=').ok_or_else(|| bad("no '='"))?;
            let (profile, issue) = scope.split_once(':').ok_or_else(|| bad("no ':'"))?;
            let issue = InputIssue::ALL
                .into_iter()
                .find(|i| i.as_str() == issue.trim())
                .ok_or_else(|| {
                    bad(&format!(
                        "the issues are {}",
                        InputIssue::ALL.map(InputIssue::as_str).join(", ")
                    ))
                })?;
            let action = match action.trim() {
                "flag" => QualityAction::Flag,
                "reject" if issue.reject_code().is_none() => {
                    return Err(bad(&format!(
                        "{} is measured while the document is prepared, after it is accepted: flag it, or preprocess it",
                        issue.as_str()
                    )))
                }
                "reject" => QualityAction::Reject,
                "preprocess" if issue.remedy().is_none() => {
                    return Err(bad(&format!(
                        "no preprocessing step remedies {}: flag it{}",
                        issue.as_str(),
                        if issue.reject_code().is_some() { ", or reject it" } else { "" }
                    )))
                }
                "preprocess" => QualityAction::Preprocess,
                _ => return Err(bad("the actions are flag, reject and preprocess")),
            };
            let profile = match profile.trim() {
                "*" => None,
                p => Some(
                    crate::job::Profile::new(p)
                        .map_err(|e| bad(&e.to_string()))?
                        .as_str()
                        .to_owned(),
                ),
            };
            rules.insert((profile, issue), action);
        }
        Ok(QualityPolicy { rules })
    }

    /// Whether `profile`'s policy names an issue only preparing measures (`skewed`,
    /// `small_text`, `blank_pages`), with any action: intake then reads the pixels or the pages
    /// of its documents to measure them, even where it prepares nothing.
    pub fn watches_prepared_issues(&self, profile: &crate::job::Profile) -> bool {
        self.rules.keys().any(|(scope, issue)| {
            issue.reject_code().is_none() && scope.as_deref().is_none_or(|p| p == profile.as_str())
        })
    }

    /// The steps `profile`'s policy has applied to remedy its issues (`…=preprocess`).
    pub fn remedies(&self, profile: &crate::job::Profile) -> Vec<crate::preprocess::Action> {
        InputIssue::ALL
            .into_iter()
            .filter(|i| self.action(profile, *i) == QualityAction::Preprocess)
            .filter_map(InputIssue::remedy)
            .collect()
    }

    /// What `profile` does about `issue`.
    pub fn action(&self, profile: &crate::job::Profile, issue: InputIssue) -> QualityAction {
        self.rules
            .get(&(Some(profile.as_str().to_owned()), issue))
            .or_else(|| self.rules.get(&(None, issue)))
            .copied()
            .unwrap_or(QualityAction::Flag)
    }
}

/// The real type of an object from the first bytes of its content.
pub fn detect(head: &[u8]) -> Option<FileType> {
    let starts = |magic: &[u8]| head.starts_with(magic);
    if starts(b"\x89PNG\r\n\x1a\n") {
        Some(FileType::Png)
    } else if starts(b"\xff\xd8\xff") {
        Some(FileType::Jpeg)
    } else if starts(b"II*\0") || starts(b"MM\0*") {
        Some(FileType::Tiff)
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Some(FileType::Webp)
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Some(FileType::Gif)
    } else if starts(b"BM") && head.len() >= 26 && is_bmp_header(head) {
        Some(FileType::Bmp)
    } else if head.len() >= 12 && &head[4..8] == b"ftyp" && is_heif_brand(&head[8..12]) {
        Some(FileType::Heic)
    } else if pdf::looks_like_pdf(head) {
        Some(FileType::Pdf)
    } else {
        None
    }
}

/// "BM" alone is too weak (plain text starts with it); the DIB header size must be a known one.
fn is_bmp_header(head: &[u8]) -> bool {
    let dib = u32::from_le_bytes([head[14], head[15], head[16], head[17]]);
    matches!(dib, 12 | 40 | 52 | 56 | 64 | 108 | 124)
}

fn is_heif_brand(brand: &[u8]) -> bool {
    matches!(
        brand,
        b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1"
    )
}

/// What the uploader said the file is, from the key's extension and the Content-Type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declared {
    pub extension: Option<String>,
    pub content_type: Option<String>,
}

impl Declared {
    pub fn from_key(key: &str, content_type: Option<&str>) -> Self {
        let file = key.rsplit('/').next().unwrap_or(key);
        let extension = file
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .filter(|ext| !ext.is_empty());
        Declared {
            extension,
            content_type: content_type
                .map(|c| c.split(';').next().unwrap_or(c).trim().to_ascii_lowercase())
                // S3's default for unknown uploads says nothing about the file.
                .filter(|c| {
                    !c.is_empty() && c != "binary/octet-stream" && c != "application/octet-stream"
                }),
        }
    }

    /// A description of how the declaration disagrees with `detected`, if it does.
    pub fn mismatch(&self, detected: FileType) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(ext) = &self.extension {
            if !detected.extensions().contains(&ext.as_str()) {
                parts.push(format!("extension .{ext}"));
            }
        }
        if let Some(ct) = &self.content_type {
            let same = ct == detected.mime()
                || (detected == FileType::Jpeg && ct == "image/jpg")
                || (detected == FileType::Heic && ct == "image/heif");
            if !same {
                parts.push(format!("Content-Type {ct}"));
            }
        }
        (!parts.is_empty()).then(|| {
            format!(
                "{} but the content is {}",
                parts.join(" and "),
                detected.mime()
            )
        })
    }
}

/// Why a document is refused. The codes are stable: they appear in metrics, on the job and in
/// the S3 object's tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    EmptyFile,
    UnsupportedType,
    TooLarge,
    ImageUnreadable,
    ImageTooManyPixels,
    ImageTooSmall,
    PdfUnreadable,
    PdfEncrypted,
    PdfXfaForm,
    PdfTooManyPages,
    /// The PDF is past the vendor's page limit (`PDF_PART_PAGES`) and could not be cut into
    /// parts (`parts::SplitError` says why); sent whole, the vendor would refuse it.
    PdfUnsplittable,
    /// The key is under no configured prefix and there is no default profile.
    NoProfile,
    /// The upload claims to be benchmark traffic with a run id that is not one.
    InvalidBenchmarkRun,
    /// `INPUT_QUALITY_POLICY` refuses this profile's images below 150 dpi.
    LowResolution,
    /// `INPUT_QUALITY_POLICY` refuses this profile's PDFs with no text and no image.
    BlankDocument,
}

impl RejectCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::EmptyFile => "empty_file",
            RejectCode::UnsupportedType => "unsupported_type",
            RejectCode::TooLarge => "too_large",
            RejectCode::ImageUnreadable => "image_unreadable",
            RejectCode::ImageTooManyPixels => "image_too_many_pixels",
            RejectCode::ImageTooSmall => "image_too_small",
            RejectCode::PdfUnreadable => "pdf_unreadable",
            RejectCode::PdfEncrypted => "pdf_encrypted",
            RejectCode::PdfXfaForm => "pdf_xfa_form",
            RejectCode::PdfTooManyPages => "pdf_too_many_pages",
            RejectCode::PdfUnsplittable => "pdf_unsplittable",
            RejectCode::NoProfile => "no_profile",
            RejectCode::InvalidBenchmarkRun => "invalid_benchmark_run",
            RejectCode::LowResolution => "low_resolution",
            RejectCode::BlankDocument => "blank_document",
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: a stable code and a message that says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: RejectCode,
    pub message: String,
}

impl Rejection {
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
        }
    }
}

/// Validation limits. Every field has an environment variable and a default; the defaults follow
/// the strictest common vendor limits (Textract: images ≤ 10 MB, PDFs ≤ 500 MB and 3,000 pages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `MAX_IMAGE_BYTES`, default 10 MiB.
    pub max_image_bytes: u64,
    /// `MAX_PDF_BYTES`, default 500 MiB.
    pub max_pdf_bytes: u64,
    /// `MAX_PDF_PAGES`, default 3,000.
    pub max_pdf_pages: u32,
    /// `MAX_IMAGE_PIXELS`, default 100 megapixels: the decompression-bomb guard. A 10 MB PNG
    /// can declare billions of pixels; the vendor would try to allocate them.
    pub max_image_pixels: u64,
    /// `MIN_IMAGE_SIDE`, default 50 px: below this nothing legible fits.
    pub min_image_side: u32,
    /// `ACCEPTED_TYPES`, default every detected type but HEIC, which most OCR vendors refuse.
    pub accepted_types: Vec<FileType>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_image_bytes: 10 * 1024 * 1024,
            max_pdf_bytes: 500 * 1024 * 1024,
            max_pdf_pages: 3_000,
            max_image_pixels: 100_000_000,
            min_image_side: 50,
            accepted_types: FileType::ALL
                .into_iter()
                .filter(|t| *t != FileType::Heic)
                .collect(),
        }
    }
}

impl Limits {
    pub fn max_bytes(&self, file_type: FileType) -> u64 {
        if file_type == FileType::Pdf {
            self.max_pdf_bytes
        } else {
            self.max_image_bytes
        }
    }

    /// The checks that need only the type and the size.
    pub fn check_type_and_size(
        &self,
        file_type: Option<FileType>,
        size: u64,
    ) -> Result<FileType, Rejection> {
        if size == 0 {
            return Err(Rejection::new(
                RejectCode::EmptyFile,
                "the object is empty (0 bytes)",
            ));
        }
        let Some(file_type) = file_type else {
            return Err(Rejection::new(
                RejectCode::UnsupportedType,
                "the content is not a PDF or a supported image (PNG, JPEG, TIFF, WebP, GIF, BMP)",
            ));
        };
        if !self.accepted_types.contains(&file_type) {
            return Err(Rejection::new(
                RejectCode::UnsupportedType,
                format!("{} files are not accepted by the configured vendor; convert to JPEG, PNG or PDF", file_type.name().to_uppercase()),
            ));
        }
        let max = self.max_bytes(file_type);
        if size > max {
            return Err(Rejection::new(
                RejectCode::TooLarge,
                format!(
                    "{} is {size} bytes; the limit for {} is {max} bytes",
                    file_type.name().to_uppercase(),
                    file_type
                ),
            ));
        }
        Ok(file_type)
    }

    pub fn check_image(
        &self,
        dimensions: Option<image::Dimensions>,
    ) -> Result<image::Dimensions, Rejection> {
        let Some(d) = dimensions else {
            return Err(Rejection::new(
                RejectCode::ImageUnreadable,
                "the image header is missing or truncated; re-export the image",
            ));
        };
        if d.pixels() > self.max_image_pixels {
            return Err(Rejection::new(
                RejectCode::ImageTooManyPixels,
                format!(
                    "the image declares {}x{} = {} pixels; the limit is {}",
                    d.width,
                    d.height,
                    d.pixels(),
                    self.max_image_pixels
                ),
            ));
        }
        if d.width.min(d.height) < self.min_image_side {
            return Err(Rejection::new(
                RejectCode::ImageTooSmall,
                format!(
                    "the image is {}x{} pixels; both sides must be at least {}",
                    d.width, d.height, self.min_image_side
                ),
            ));
        }
        Ok(d)
    }

    pub fn check_pdf(&self, info: &pdf::PdfInfo) -> Result<(), Rejection> {
        if info.encrypted {
            return Err(Rejection::new(
                RejectCode::PdfEncrypted,
                "the PDF is encrypted or password-protected; save an unencrypted copy",
            ));
        }
        if info.xfa {
            return Err(Rejection::new(
                RejectCode::PdfXfaForm,
                "the PDF is an XFA form, which has no static pages to read; flatten it or print it to PDF",
            ));
        }
        let Some(pages) = info.pages.filter(|p| *p > 0 && info.catalog) else {
            return Err(Rejection::new(
                RejectCode::PdfUnreadable,
                "no page could be found in the PDF; it is damaged beyond repair or not a PDF",
            ));
        };
        if pages > self.max_pdf_pages {
            return Err(Rejection::new(
                RejectCode::PdfTooManyPages,
                format!(
                    "the PDF has {pages} pages; the limit is {}",
                    self.max_pdf_pages
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    fn pdf(text: bool, images: bool) -> crate::job::Inspection {
        crate::job::Inspection {
            file_type: Some(FileType::Pdf),
            pages: Some(2),
            text_layer: Some(text),
            images: Some(images),
            ..crate::job::Inspection::default()
        }
    }

    /// Blank means neither text nor images: an image-only scan is not blank, nor is an image
    /// whose inspection never looked (`None`).
    #[test]
    fn a_pdf_with_neither_text_nor_images_is_blank() {
        assert_eq!(
            input_issues(&pdf(false, false)),
            [InputIssue::BlankDocument]
        );
        assert_eq!(input_issues(&pdf(false, true)), []);
        assert_eq!(input_issues(&pdf(true, false)), []);
        let image = crate::job::Inspection {
            file_type: Some(FileType::Png),
            dpi: Some(72),
            ..crate::job::Inspection::default()
        };
        assert_eq!(input_issues(&image), [InputIssue::LowResolution]);
    }

    #[test]
    fn the_quality_policy_is_per_profile_with_a_default() {
        let policy = QualityPolicy::parse(
            "*:blank_document=reject; receipt:blank_document=flag, id:low_resolution=reject",
        )
        .unwrap();
        let p = |name: &str| crate::job::Profile::new(name).unwrap();
        assert_eq!(
            policy.action(&p("invoice"), InputIssue::BlankDocument),
            QualityAction::Reject
        );
        assert_eq!(
            policy.action(&p("receipt"), InputIssue::BlankDocument),
            QualityAction::Flag
        );
        assert_eq!(
            policy.action(&p("id"), InputIssue::LowResolution),
            QualityAction::Reject
        );
        assert_eq!(
            policy.action(&p("invoice"), InputIssue::LowResolution),
            QualityAction::Flag
        );
        assert_eq!(QualityPolicy::parse("").unwrap(), QualityPolicy::default());
        for bad in [
            "*:blank=reject",
            "*:blank_document=drop",
            "blank_document=reject",
            "*:low_resolution=preprocess",
            "Bad Profile:blank_document=flag",
        ] {
            assert!(QualityPolicy::parse(bad).is_err(), "{bad}");
        }
        assert!(QualityPolicy::parse("*:low_resolution=preprocess")
            .unwrap_err()
            .contains("no preprocessing step remedies low_resolution: flag it, or reject it"));
        // Measured after acceptance: never refused; remedied by their step.
        assert!(QualityPolicy::parse("*:skewed=reject")
            .unwrap_err()
            .contains("after it is accepted"));
        assert!(QualityPolicy::parse("*:small_text=preprocess").is_err());
        let watching =
            QualityPolicy::parse("receipt:small_text=flag; *:low_resolution=reject").unwrap();
        assert!(watching.watches_prepared_issues(&p("receipt")));
        assert!(!watching.watches_prepared_issues(&p("invoice")));
        let remedied =
            QualityPolicy::parse("*:blank_pages=preprocess; receipt:skewed=preprocess").unwrap();
        assert!(remedied.watches_prepared_issues(&p("invoice")));
        assert_eq!(
            remedied.remedies(&p("receipt")),
            [
                crate::preprocess::Action::Deskew,
                crate::preprocess::Action::BlankPages
            ]
        );
        assert_eq!(
            remedied.remedies(&p("invoice")),
            [crate::preprocess::Action::BlankPages]
        );
    }

    #[test]
    fn what_preparing_measured_is_an_issue_past_its_threshold() {
        let base = crate::job::Inspection::default();
        let with = |f: &dyn Fn(&mut crate::job::Inspection)| {
            let mut i = base.clone();
            f(&mut i);
            input_issues(&i)
        };
        assert_eq!(with(&|i| i.skew_tenths = Some(-31)), [InputIssue::Skewed]);
        assert!(with(&|i| i.skew_tenths = Some(29)).is_empty());
        assert_eq!(
            with(&|i| i.text_height_px = Some(9)),
            [InputIssue::SmallText]
        );
        assert!(with(&|i| i.text_height_px = Some(12)).is_empty());
        assert_eq!(with(&|i| i.blank_pages = Some(2)), [InputIssue::BlankPages]);
        assert!(with(&|i| i.blank_pages = Some(0)).is_empty());
    }

    use super::*;

    #[test]
    fn detects_types_by_magic() {
        assert_eq!(detect(b"\x89PNG\r\n\x1a\n...."), Some(FileType::Png));
        assert_eq!(detect(b"\xff\xd8\xff\xe0\0\x10JFIF"), Some(FileType::Jpeg));
        assert_eq!(detect(b"II*\0\x08\0\0\0"), Some(FileType::Tiff));
        assert_eq!(detect(b"MM\0*\0\0\0\x08"), Some(FileType::Tiff));
        assert_eq!(detect(b"RIFF\x10\0\0\0WEBPVP8 "), Some(FileType::Webp));
        assert_eq!(detect(b"GIF89a\x10\0\x10\0"), Some(FileType::Gif));
        assert_eq!(detect(b"\0\0\0\x18ftypheic\0\0\0\0"), Some(FileType::Heic));
        assert_eq!(detect(b"%PDF-1.7\n"), Some(FileType::Pdf));
        let mut bmp = b"BM".to_vec();
        bmp.extend_from_slice(&[0; 12]);
        bmp.extend_from_slice(&40u32.to_le_bytes());
        bmp.extend_from_slice(&[0; 12]);
        assert_eq!(detect(&bmp), Some(FileType::Bmp));
        assert_eq!(detect(b"BMW dealership receipt, total 40.00"), None);
        assert_eq!(detect(b"plain text"), None);
        assert_eq!(detect(b""), None);
    }

    #[test]
    fn records_declared_type_mismatches() {
        let jpga = Declared::from_key("receipts/receipt.jpga", Some("image/jpeg"));
        assert_eq!(
            jpga.mismatch(FileType::Jpeg).as_deref(),
            Some("extension .jpga but the content is image/jpeg")
        );
        let fine = Declared::from_key("a/b.JPG", Some("image/jpeg; charset=binary"));
        assert_eq!(fine.mismatch(FileType::Jpeg), None);
        let lying = Declared::from_key("a/scan.pdf", Some("application/pdf"));
        assert_eq!(
            lying.mismatch(FileType::Png).as_deref(),
            Some("extension .pdf and Content-Type application/pdf but the content is image/png")
        );
        let silent = Declared::from_key("a/noext", Some("binary/octet-stream"));
        assert_eq!(silent.mismatch(FileType::Png), None);
    }

    #[test]
    fn limits_give_stable_codes() {
        let limits = Limits::default();
        assert_eq!(
            limits
                .check_type_and_size(Some(FileType::Png), 0)
                .unwrap_err()
                .code,
            RejectCode::EmptyFile
        );
        assert_eq!(
            limits.check_type_and_size(None, 10).unwrap_err().code,
            RejectCode::UnsupportedType
        );
        assert_eq!(
            limits
                .check_type_and_size(Some(FileType::Heic), 10)
                .unwrap_err()
                .code,
            RejectCode::UnsupportedType
        );
        assert_eq!(
            limits
                .check_type_and_size(Some(FileType::Png), 10 * 1024 * 1024 + 1)
                .unwrap_err()
                .code,
            RejectCode::TooLarge
        );
        assert!(limits
            .check_type_and_size(Some(FileType::Pdf), 10 * 1024 * 1024 + 1)
            .is_ok());
        let dims = |width, height| Some(image::Dimensions { width, height });
        assert_eq!(
            limits.check_image(dims(20_000, 20_000)).unwrap_err().code,
            RejectCode::ImageTooManyPixels
        );
        assert_eq!(
            limits.check_image(dims(49, 1000)).unwrap_err().code,
            RejectCode::ImageTooSmall
        );
        assert_eq!(
            limits.check_image(None).unwrap_err().code,
            RejectCode::ImageUnreadable
        );
        assert!(limits.check_image(dims(1000, 1400)).is_ok());
        let codes: Vec<&str> = [RejectCode::PdfXfaForm, RejectCode::PdfEncrypted]
            .iter()
            .map(|c| c.as_str())
            .collect();
        assert_eq!(codes, ["pdf_xfa_form", "pdf_encrypted"]);
        assert_eq!(
            serde_json::to_string(&RejectCode::PdfXfaForm).unwrap(),
            "\"pdf_xfa_form\""
        );
    }
}
