//! Preprocessing: a prepared copy of an image, made before it is submitted, the original kept.
//!
//! Each [`Action`] is applied only where it changes something (a straight page is not turned, a
//! scan that fills its frame is not cropped), each one applied is recorded ([`Applied`]) on the
//! job and counted (`PreprocessingActions[Action,Profile]`), and the result is deterministic:
//! the same upload gives the same bytes, so a redelivered intake writes the same copy again.
//!
//! Which actions run is a stack setting per profile ([`Settings`], `PREPROCESS`), because whether
//! an action helps depends on the documents and the vendor: `make bench-quality PREPROCESS=…`
//! measures it on the pack, and `ocrbridge quality compare` pairs the runs field by field.
//!
//! Pure Rust (the `image` crate's PNG and JPEG codecs): it runs in the Lambda runtime as it is.
//! Memory is bounded by [`Limits::max_pixels`]: a larger image is passed on as it is.

pub mod blank_pages;
pub mod convert;
pub mod crop;
pub mod degrade;
pub mod deskew;
pub mod raster;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Cursor;

use image::{DynamicImage, GrayImage, ImageDecoder, ImageFormat, ImageReader, Luma, Rgb, RgbImage};

use crate::inspect::FileType;
use crate::job::Profile;

/// One preprocessing step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Turn the pixels as the EXIF orientation says (a phone's sideways photo). Also applied,
    /// whatever the settings, to any copy made for another action: re-encoding drops the tag.
    Orient,
    /// Shrink an image past the vendor's largest side (`PREPROCESS_MAX_SIDE`).
    Downscale,
    /// Cut a photo's surroundings (table, hand) down to the page.
    Crop,
    /// Turn the page back by the lean of its text lines (3° to 15° is common in phone photos).
    Deskew,
    /// Stretch a faded or grey page's levels to the full range.
    Contrast,
    /// Leave a PDF's blank pages out of the copy (`blank_pages`): the vendor bills per page.
    /// The result's pages keep the upload's numbers (`job::PageMap`).
    BlankPages,
    /// Turn a HEIC photo into a JPEG, a TIFF into a PNG, or a PDF when it has several pages
    /// (`convert`): formats every vendor, and the image steps, read.
    Convert,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::Orient,
        Action::Downscale,
        Action::Crop,
        Action::Deskew,
        Action::Contrast,
        Action::BlankPages,
        Action::Convert,
    ];

    /// What `on` means. The A/B audit on the benchmark pack's degraded variants (README
    /// *Preprocessing*, `make bench-preprocess-ab`) found `deskew` to help (turned receipts'
    /// fields 9% → 38% right, turned IDs' 19% → 94%, nothing worse elsewhere), `crop` to change
    /// nothing the vendor reads (3 flips each way), and `contrast` to lean harmful (receipt
    /// totals 8 right → wrong against 4 back; clean receipts 40% → 38%): those two stay off
    /// unless named. `orient` and `downscale` act only on a sideways photo or one past the
    /// vendor's limit, which a vendor reads wrong or refuses as it is. `blank_pages` changed no
    /// field on the pack's 48 scans with a blank back and cut their cost by half (117
    /// documents: $0.2475 → $0.1755). `convert` is not measured (the pack holds no HEIC or
    /// TIFF) and re-encodes what a vendor may read as it is: it runs where named, e.g. for
    /// Textract, which reads no HEIC.
    pub const DEFAULT_ON: [Action; 4] = [
        Action::Orient,
        Action::Downscale,
        Action::Deskew,
        Action::BlankPages,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::Orient => "orient",
            Action::Downscale => "downscale",
            Action::Crop => "crop",
            Action::Deskew => "deskew",
            Action::Contrast => "contrast",
            Action::BlankPages => "blank_pages",
            Action::Convert => "convert",
        }
    }

    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An action applied to a document, and what it did ("turned back 7.2°").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub action: Action,
    pub detail: String,
}

impl Applied {
    /// `action: detail`, as the job stores it.
    pub fn to_record(&self) -> String {
        format!("{}: {}", self.action, self.detail)
    }

    pub fn from_record(record: &str) -> Option<Applied> {
        let (name, detail) = split_record(record);
        Some(Applied {
            action: Action::parse(name)?,
            detail: detail.to_owned(),
        })
    }
}

/// A stored record's action name and detail (`deskew: turned back 7.2°` → `deskew`, `turned back
/// 7.2°`); a record without a detail is all name.
pub fn split_record(record: &str) -> (&str, &str) {
    record.split_once(": ").unwrap_or((record, ""))
}

/// The prepared copy of a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub bytes: Vec<u8>,
    pub file_type: FileType,
    pub applied: Vec<Applied>,
    pub width: u32,
    pub height: u32,
}

/// Why no copy could be made. The original is submitted as it is; the reason is logged and
/// counted (`PreprocessingActions[skipped_<code>,Profile]`).
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("{0} images are submitted as they are (preprocessing reads PNG and JPEG)")]
    Unsupported(&'static str),
    #[error(
        "the image is {pixels} pixels, over PREPROCESS_MAX_PIXELS ({limit}); submitted as it is"
    )]
    TooLarge { pixels: u64, limit: u64 },
    #[error("the image could not be decoded: {0}")]
    Decode(String),
    #[error("the prepared copy could not be encoded: {0}")]
    Encode(String),
}

impl PrepareError {
    pub fn code(&self) -> &'static str {
        match self {
            PrepareError::Unsupported(_) => "unsupported",
            PrepareError::TooLarge { .. } => "too_large",
            PrepareError::Decode(_) => "undecodable",
            PrepareError::Encode(_) => "unencodable",
        }
    }
}

/// Bounds of the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `PREPROCESS_MAX_SIDE`: the vendor's largest side in pixels (Textract and Azure DI take
    /// 10,000); a larger image is downscaled to it.
    pub max_side: u32,
    /// `PREPROCESS_MAX_PIXELS`: the largest image decoded (3 bytes a pixel while it is worked
    /// on): the step's memory bound.
    pub max_pixels: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_side: 10_000,
            max_pixels: 40_000_000,
        }
    }
}

/// Turns smaller than this are left alone: vendors read a page leaning by less as it is, and a
/// turn costs a resampling (and, for a JPEG, a re-encoding).
pub const MIN_SKEW_DEGREES: f64 = 1.0;
/// The largest lean looked for; past it, a page is more likely sideways than leaning.
pub const MAX_SKEW_DEGREES: f64 = 15.0;
/// A lean is acted on only when its profile is this much sharper than the page's as it stands.
pub const MIN_SKEW_GAIN: f64 = 1.1;
/// A page whose ink and paper are closer than this (the mean levels of Otsu's two classes) is
/// stretched from the one to the other.
pub const LOW_CONTRAST_SPAN: u8 = 100;

/// Which actions each profile gets (`PREPROCESS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    by_profile: BTreeMap<String, Vec<Action>>,
    default: Vec<Action>,
    pub limits: Limits,
}

impl Settings {
    /// `off` (nothing), `on` ([`Action::DEFAULT_ON`]), a list (`deskew,crop`), or per profile:
    /// `receipt=on;id=orient;invoice=off`, with an entry without a profile for the others.
    pub fn parse(spec: &str) -> Result<Settings, String> {
        let mut settings = Settings::default();
        let list = |text: &str| -> Result<Vec<Action>, String> {
            match text.trim() {
                "" | "off" => Ok(Vec::new()),
                "on" => Ok(Action::DEFAULT_ON.to_vec()),
                names => {
                    let mut actions = names
                        .split(',')
                        .map(|n| {
                            Action::parse(n.trim()).ok_or_else(|| {
                                format!(
                                    "unknown preprocessing action {:?} (known: {})",
                                    n.trim(),
                                    Action::ALL.map(Action::name).join(", ")
                                )
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    actions.sort();
                    actions.dedup();
                    Ok(actions)
                }
            }
        };
        for entry in spec.split(';').filter(|e| !e.trim().is_empty()) {
            match entry.split_once('=') {
                Some((profile, actions)) => {
                    let profile = Profile::new(profile.trim()).map_err(|e| e.to_string())?;
                    settings
                        .by_profile
                        .insert(profile.as_str().to_owned(), list(actions)?);
                }
                None => settings.default = list(entry)?,
            }
        }
        Ok(settings)
    }

    /// `PREPROCESS` (default `off`), `PREPROCESS_MAX_SIDE`, `PREPROCESS_MAX_PIXELS`.
    pub fn from_lookup(
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, crate::config::SettingError> {
        let spec = lookup("PREPROCESS").unwrap_or_default();
        let mut settings = Settings::parse(&spec).map_err(|e| crate::config::SettingError {
            name: "PREPROCESS",
            value: spec.clone(),
            expected: e,
        })?;
        let defaults = Limits::default();
        settings.limits = Limits {
            max_side: crate::config::setting(
                lookup,
                "PREPROCESS_MAX_SIDE",
                defaults.max_side,
                "a side in pixels, at least 50",
                |v| *v >= 50,
            )?,
            max_pixels: crate::config::setting(
                lookup,
                "PREPROCESS_MAX_PIXELS",
                defaults.max_pixels,
                "a number of pixels, at least 1",
                |v| *v >= 1,
            )?,
        };
        Ok(settings)
    }

    pub fn actions_for(&self, profile: &Profile) -> &[Action] {
        self.by_profile
            .get(profile.as_str())
            .unwrap_or(&self.default)
    }
}

/// The working image: grey pages stay grey (a third of the memory), colour stays colour.
enum Raster {
    Gray(GrayImage),
    Rgb(RgbImage),
}

impl Raster {
    /// The image's grey levels, to measure on: a grey page as it is, a colour one converted.
    fn gray(&self) -> Cow<'_, GrayImage> {
        match self {
            Raster::Gray(g) => Cow::Borrowed(g),
            // `into_luma8`'s colour-space-aware conversion, which `image` offers on a
            // `DynamicImage` only: the plain `ConvertBuffer` gives other levels.
            Raster::Rgb(c) => Cow::Owned(DynamicImage::ImageRgb8(c.clone()).into_luma8()),
        }
    }

    fn dimensions(&self) -> (u32, u32) {
        match self {
            Raster::Gray(g) => g.dimensions(),
            Raster::Rgb(c) => c.dimensions(),
        }
    }
}

/// What preparing measured of a document (`job::Inspection`'s fields of the same names): the
/// input-quality issues only a decoded image or a parsed PDF shows (`inspect::InputIssue`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Measured {
    pub skew_tenths: Option<i32>,
    pub text_height_px: Option<u32>,
    pub blank_pages: Option<u32>,
}

/// The prepared copy of `bytes` under `actions`, or `None` when no action changed anything (the
/// original is submitted as it is).
pub fn prepare(
    bytes: &[u8],
    file_type: FileType,
    actions: &[Action],
    limits: &Limits,
) -> Result<Option<Prepared>, PrepareError> {
    prepare_measured(bytes, file_type, actions, limits, false).map(|(prepared, _)| prepared)
}

/// [`prepare`], and what the image showed as it came (its lean, its text lines' height). With
/// `measure`, the image is decoded and measured even when no action is asked for.
pub fn prepare_measured(
    bytes: &[u8],
    file_type: FileType,
    actions: &[Action],
    limits: &Limits,
    measure: bool,
) -> Result<(Option<Prepared>, Measured), PrepareError> {
    if actions.is_empty() && !measure {
        return Ok((None, Measured::default()));
    }
    let format = match file_type {
        FileType::Png => ImageFormat::Png,
        FileType::Jpeg => ImageFormat::Jpeg,
        other => return Err(PrepareError::Unsupported(other.name())),
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut decode_limits = image::Limits::default();
    decode_limits.max_alloc = Some(limits.max_pixels.saturating_mul(4));
    reader.limits(decode_limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| PrepareError::Decode(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    let pixels = u64::from(w) * u64::from(h);
    if pixels > limits.max_pixels {
        return Err(PrepareError::TooLarge {
            pixels,
            limit: limits.max_pixels,
        });
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut decoded =
        DynamicImage::from_decoder(decoder).map_err(|e| PrepareError::Decode(e.to_string()))?;
    let mut applied = Vec::new();
    let turned = orientation != image::metadata::Orientation::NoTransforms;
    if turned {
        decoded.apply_orientation(orientation);
    }
    let mut raster = if decoded.color().has_color() {
        Raster::Rgb(decoded.into_rgb8())
    } else {
        Raster::Gray(decoded.into_luma8())
    };
    // The page's lean as it came: recorded on the job, and reused by `deskew` below unless a
    // step before it reshaped the page: the same pixels give the same measure.
    let (skew_as_it_came, measured) = {
        let gray = raster.gray();
        let skew_as_it_came = deskew::measure(&gray, MAX_SKEW_DEGREES);
        // A lean the profile cannot tell from the page as it stands is no lean.
        let lean = skew_as_it_came.map(|s| {
            if s.gain >= MIN_SKEW_GAIN {
                s.degrees
            } else {
                0.0
            }
        });
        let measured = Measured {
            skew_tenths: lean.map(|d| (d * 10.0).round() as i32),
            text_height_px: deskew::text_line_height(&gray, lean.unwrap_or(0.0)),
            blank_pages: None,
        };
        (skew_as_it_came, measured)
    };

    if actions.contains(&Action::Downscale) {
        let (w, h) = raster.dimensions();
        if w.max(h) > limits.max_side {
            let scale = f64::from(limits.max_side) / f64::from(w.max(h));
            let (nw, nh) = (
                ((f64::from(w) * scale).round() as u32).max(1),
                ((f64::from(h) * scale).round() as u32).max(1),
            );
            let filter = image::imageops::FilterType::CatmullRom;
            raster = match raster {
                Raster::Gray(g) => Raster::Gray(image::imageops::resize(&g, nw, nh, filter)),
                Raster::Rgb(c) => Raster::Rgb(image::imageops::resize(&c, nw, nh, filter)),
            };
            applied.push(Applied {
                action: Action::Downscale,
                detail: format!("{w}x{h} to {nw}x{nh}"),
            });
        }
    }
    if actions.contains(&Action::Crop) {
        if let Some(b) = crop::page_bounds(&raster.gray()) {
            let (w, h) = raster.dimensions();
            raster = match raster {
                Raster::Gray(g) => Raster::Gray(
                    image::imageops::crop_imm(&g, b.x, b.y, b.width, b.height).to_image(),
                ),
                Raster::Rgb(c) => Raster::Rgb(
                    image::imageops::crop_imm(&c, b.x, b.y, b.width, b.height).to_image(),
                ),
            };
            applied.push(Applied {
                action: Action::Crop,
                detail: format!(
                    "kept {}x{} at {},{} of {w}x{h}",
                    b.width, b.height, b.x, b.y
                ),
            });
        }
    }
    if actions.contains(&Action::Deskew) {
        let gray = raster.gray();
        let reshaped = applied
            .iter()
            .any(|a| matches!(a.action, Action::Downscale | Action::Crop));
        let skew = if reshaped {
            deskew::measure(&gray, MAX_SKEW_DEGREES)
        } else {
            skew_as_it_came
        };
        if let Some(skew) = skew {
            if skew.degrees.abs() >= MIN_SKEW_DEGREES && skew.gain >= MIN_SKEW_GAIN {
                // The corners the turn uncovers take the paper's colour, not black: a black
                // wedge is an edge a vendor may read as a character.
                let paper = raster::percentile(&raster::histogram(&gray), 0.9);
                raster = match raster {
                    Raster::Gray(g) => {
                        Raster::Gray(raster::rotate(&g, -skew.degrees, Luma([paper])))
                    }
                    Raster::Rgb(c) => {
                        Raster::Rgb(raster::rotate(&c, -skew.degrees, Rgb([paper; 3])))
                    }
                };
                applied.push(Applied {
                    action: Action::Deskew,
                    detail: format!(
                        "turned back {:.1}° (sharper by {:.2})",
                        skew.degrees, skew.gain
                    ),
                });
            }
        }
    }
    if actions.contains(&Action::Contrast) {
        if let Some((lo, hi)) = raster::ink_and_paper(&raster::histogram(&raster.gray()))
            .filter(|(ink, paper)| paper.saturating_sub(*ink) < LOW_CONTRAST_SPAN)
        {
            let table = raster::stretch_table(lo, hi);
            match &mut raster {
                Raster::Gray(g) => raster::map_levels(g, &table),
                Raster::Rgb(c) => raster::map_levels(c, &table),
            }
            applied.push(Applied {
                action: Action::Contrast,
                detail: format!("levels {lo}..{hi} stretched to 0..255"),
            });
        }
    }
    if turned && (actions.contains(&Action::Orient) || !applied.is_empty()) {
        applied.insert(
            0,
            Applied {
                action: Action::Orient,
                detail: format!("EXIF {orientation:?}"),
            },
        );
    }
    if applied.is_empty() {
        return Ok((None, measured));
    }
    let (width, height) = raster.dimensions();
    let image = match raster {
        Raster::Gray(g) => DynamicImage::ImageLuma8(g),
        Raster::Rgb(c) => DynamicImage::ImageRgb8(c),
    };
    Ok((
        Some(Prepared {
            bytes: encode(&image, file_type)?,
            file_type,
            applied,
            width,
            height,
        }),
        measured,
    ))
}

/// The copy of a document intake sends the vendor, in whatever format the steps left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedDocument {
    pub bytes: Vec<u8>,
    pub file_type: FileType,
    pub applied: Vec<Applied>,
    /// Set when pages were left out (`blank_pages`): which of the upload's the copy holds.
    pub pages: Option<crate::job::PageMap>,
}

/// Whether any of `actions` can act on a document of `file_type`: blank-page removal on a PDF,
/// conversion on a type [`convert::converts`], the other steps on an image. Intake reads the
/// upload again only when one can.
pub fn applies(actions: &[Action], file_type: FileType) -> bool {
    actions.iter().any(|action| match action {
        Action::BlankPages => file_type == FileType::Pdf,
        Action::Convert => convert::converts(file_type),
        Action::Orient | Action::Downscale | Action::Crop | Action::Deskew | Action::Contrast => {
            file_type.is_image()
        }
    })
}

/// Every step `actions` names that applies to a document of `file_type`, in order: conversion
/// (HEIC, TIFF), then the image steps on an image, or blank-page removal on a PDF (a multi-page
/// TIFF converted to one included). `None` when no step changed anything.
pub fn prepare_document(
    bytes: &[u8],
    file_type: FileType,
    actions: &[Action],
    limits: &Limits,
) -> Result<Option<PreparedDocument>, PrepareError> {
    prepare_document_measured(bytes, file_type, actions, limits, false).map(|(copy, _)| copy)
}

/// [`prepare_document`], and what the steps measured on the way ([`Measured`]). With
/// `measure`, an image is measured and a PDF's blank pages counted even where no step asks for
/// it (an input-quality policy that watches those issues).
pub fn prepare_document_measured(
    bytes: &[u8],
    file_type: FileType,
    actions: &[Action],
    limits: &Limits,
    measure: bool,
) -> Result<(Option<PreparedDocument>, Measured), PrepareError> {
    let mut measured = Measured::default();
    let mut applied = Vec::new();
    let mut converted = None;
    if actions.contains(&Action::Convert) {
        if let Some(c) = convert::convert(bytes, file_type, limits)? {
            applied.push(Applied {
                action: Action::Convert,
                detail: c.detail,
            });
            converted = Some((c.bytes, c.file_type));
        }
    }
    let (bytes, file_type) = match &converted {
        Some((bytes, file_type)) => (bytes.as_slice(), *file_type),
        None => (bytes, file_type),
    };
    let image_actions: Vec<Action> = actions
        .iter()
        .copied()
        .filter(|a| !matches!(a, Action::Convert | Action::BlankPages))
        .collect();
    let mut done = None;
    let readable = matches!(file_type, FileType::Png | FileType::Jpeg);
    if file_type.is_image()
        && (!image_actions.is_empty() || converted.is_some() || (measure && readable))
    {
        let (prepared, seen) = prepare_measured(bytes, file_type, &image_actions, limits, measure)?;
        measured = seen;
        if let Some(p) = prepared {
            applied.extend(p.applied);
            done = Some((p.bytes, p.file_type, None));
        }
    } else if file_type == FileType::Pdf && (actions.contains(&Action::BlankPages) || measure) {
        let (stripped, blank) = blank_pages::remove_counted(bytes, limits)?;
        measured.blank_pages = Some(blank);
        if let Some(s) = stripped.filter(|_| actions.contains(&Action::BlankPages)) {
            applied.push(Applied {
                action: Action::BlankPages,
                detail: s.detail(),
            });
            done = Some((s.bytes, FileType::Pdf, Some(s.map)));
        }
    }
    let (bytes, file_type, pages) = match (done, converted) {
        (Some(done), _) => done,
        (None, Some((bytes, file_type))) => (bytes, file_type, None),
        (None, None) => return Ok((None, measured)),
    };
    Ok((
        Some(PreparedDocument {
            bytes,
            file_type,
            applied,
            pages,
        }),
        measured,
    ))
}

/// The image in the format it came in: a JPEG stays a JPEG (quality 92, near the scanners'
/// own), a PNG a PNG.
pub fn encode(image: &DynamicImage, file_type: FileType) -> Result<Vec<u8>, PrepareError> {
    let mut out = Cursor::new(Vec::new());
    let result = match file_type {
        FileType::Jpeg => image.write_with_encoder(
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92),
        ),
        _ => image.write_to(&mut out, ImageFormat::Png),
    };
    result.map_err(|e| PrepareError::Encode(e.to_string()))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_png(turn: f64) -> Vec<u8> {
        let page = raster::rotate(
            &deskew::tests_support::lined_page(600, 800),
            turn,
            Luma([250]),
        );
        encode(&DynamicImage::ImageLuma8(page), FileType::Png).expect("png")
    }

    #[test]
    fn each_step_applies_to_the_documents_it_can_act_on() {
        assert!(applies(&[Action::BlankPages], FileType::Pdf));
        assert!(!applies(&[Action::BlankPages], FileType::Png));
        assert!(applies(&[Action::Convert], FileType::Heic));
        assert!(applies(&[Action::Convert], FileType::Tiff));
        assert!(!applies(&[Action::Convert], FileType::Jpeg));
        assert!(applies(&[Action::Deskew], FileType::Jpeg));
        assert!(!applies(&[Action::Deskew, Action::Crop], FileType::Pdf));
        assert!(applies(
            &[Action::Deskew, Action::BlankPages],
            FileType::Pdf
        ));
        assert!(!applies(&[], FileType::Png));
    }

    #[test]
    fn settings_by_profile_with_a_default() {
        let s = Settings::parse("receipt=deskew,crop; id=off; contrast").expect("valid");
        let p = |n: &str| Profile::new(n).expect("profile");
        assert_eq!(s.actions_for(&p("receipt")), [Action::Crop, Action::Deskew]);
        assert!(s.actions_for(&p("id")).is_empty());
        assert_eq!(s.actions_for(&p("invoice")), [Action::Contrast]);
        assert_eq!(
            Settings::parse("on").expect("valid").actions_for(&p("x")),
            Action::DEFAULT_ON
        );
        assert!(Settings::parse("")
            .expect("valid")
            .actions_for(&p("x"))
            .is_empty());
        let err = Settings::parse("receipt=deskw").expect_err("unknown");
        assert!(err.contains("deskw") && err.contains("deskew"), "{err}");
    }

    #[test]
    fn a_leaning_page_is_turned_back_and_the_turn_recorded() {
        let deskewed = || {
            prepare(
                &page_png(8.0),
                FileType::Png,
                &[Action::Deskew],
                &Limits::default(),
            )
            .expect("prepared")
            .expect("a copy")
        };
        let prepared = deskewed();
        assert_eq!(prepared.applied.len(), 1, "{:?}", prepared.applied);
        assert_eq!(prepared.applied[0].action, Action::Deskew);
        assert!(
            prepared.applied[0].detail.contains("8.0°"),
            "{:?}",
            prepared.applied
        );
        let copy = image::load_from_memory(&prepared.bytes)
            .expect("png")
            .into_luma8();
        let after = deskew::measure(&copy, 15.0).expect("lines");
        assert!(after.degrees.abs() <= 0.3, "{after:?}");
        // The same input gives the same bytes: a redelivery writes the same copy.
        let again = deskewed();
        assert_eq!(again.bytes, prepared.bytes);
    }

    #[test]
    fn a_straight_clean_page_needs_no_copy() {
        let none = prepare(
            &page_png(0.0),
            FileType::Png,
            &Action::ALL,
            &Limits::default(),
        )
        .expect("prepared");
        assert_eq!(none, None);
    }

    #[test]
    fn an_image_past_the_vendors_side_is_downscaled() {
        let limits = Limits {
            max_side: 300,
            ..Limits::default()
        };
        let prepared = prepare(&page_png(0.0), FileType::Png, &[Action::Downscale], &limits)
            .expect("prepared")
            .expect("a copy");
        assert_eq!((prepared.width, prepared.height), (225, 300));
        assert_eq!(prepared.applied[0].detail, "600x800 to 225x300");
    }

    #[test]
    fn an_image_past_the_memory_bound_is_passed_on() {
        let limits = Limits {
            max_pixels: 1000,
            ..Limits::default()
        };
        let err =
            prepare(&page_png(0.0), FileType::Png, &Action::ALL, &limits).expect_err("too large");
        assert_eq!(err.code(), "too_large");
        assert_eq!(
            prepare(b"GIF89a", FileType::Gif, &Action::ALL, &limits)
                .expect_err("gif")
                .code(),
            "unsupported"
        );
    }

    #[test]
    fn a_faded_page_is_stretched() {
        let faded = degrade::low_contrast(&DynamicImage::ImageLuma8(
            deskew::tests_support::lined_page(400, 400),
        ));
        let bytes = encode(&faded, FileType::Png).expect("png");
        let prepared = prepare(
            &bytes,
            FileType::Png,
            &[Action::Contrast],
            &Limits::default(),
        )
        .expect("prepared")
        .expect("a copy");
        assert!(
            prepared.applied[0].detail.starts_with("levels "),
            "{:?}",
            prepared.applied
        );
    }

    #[test]
    fn records_round_trip() {
        let a = Applied {
            action: Action::Crop,
            detail: "kept 10x10 at 1,1 of 20x20".into(),
        };
        assert_eq!(Applied::from_record(&a.to_record()), Some(a));
        assert_eq!(Applied::from_record("sharpen: x"), None);
    }
}
