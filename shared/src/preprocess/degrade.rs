//! Degraded variants of a clean document, for the A/B audit of preprocessing: what a phone and a
//! hurried hand do to a page. The benchmark pack's variants keep their document's truth, so a
//! field read wrong on a variant was read wrong because of the degradation.

use image::{DynamicImage, GrayImage, Luma, Rgb, RgbImage};

use super::raster;

/// A kind of damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Turned by 3° to 15°, either way.
    Rotated,
    /// Levels squeezed into 90..170 (a faded print, a grey photo).
    LowContrast,
    /// On a dark, uneven table, a tenth of the page's size on each side (a phone photo).
    Border,
    /// Half the pixels on each side.
    Downscaled,
    /// Scanned duplex: the page, then its blank back, as a two-page PDF at [`SCAN_DPI`].
    BlankPage,
}

/// A degraded variant: pixels in the document's own format, or a PDF.
#[derive(Debug, Clone)]
pub enum Degraded {
    Image(DynamicImage),
    Pdf(Vec<u8>),
}

/// The resolution a variant PDF's pages are laid out at: the simulator rasterizes PDF pages at
/// 150 dpi too, so the vendor reads the page at its own pixels.
pub const SCAN_DPI: u32 = 150;

impl Variant {
    pub const ALL: [Variant; 5] = [
        Variant::Rotated,
        Variant::LowContrast,
        Variant::Border,
        Variant::Downscaled,
        Variant::BlankPage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Rotated => "rotated",
            Variant::LowContrast => "low_contrast",
            Variant::Border => "border",
            Variant::Downscaled => "downscaled",
            Variant::BlankPage => "blank_page",
        }
    }

    pub fn parse(name: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| v.name() == name)
    }

    /// The variant of `image`; `seed` (the document's index) picks the turn, so the pack is the
    /// same every time it is made.
    pub fn apply(self, image: &DynamicImage, seed: u64) -> Result<Degraded, super::PrepareError> {
        Ok(Degraded::Image(match self {
            Variant::Rotated => rotated(image, turn_for(seed)),
            Variant::LowContrast => low_contrast(image),
            Variant::Border => border(image),
            Variant::Downscaled => image.resize(
                (image.width() / 2).max(1),
                (image.height() / 2).max(1),
                image::imageops::FilterType::Triangle,
            ),
            Variant::BlankPage => {
                let back = blank_back(image.width(), image.height(), seed);
                let jpeg = |i: &DynamicImage| super::encode(i, crate::inspect::FileType::Jpeg);
                return Ok(Degraded::Pdf(crate::pdf_write::scanned_pdf(
                    &[jpeg(image)?, jpeg(&DynamicImage::ImageLuma8(back))?],
                    SCAN_DPI,
                )));
            }
        }))
    }
}

/// The back of a one-sided page as a scanner sees it: paper grey with grain, and a few specks
/// of dust. `seed` varies the grain.
pub fn blank_back(width: u32, height: u32, seed: u64) -> GrayImage {
    let mut state = (seed as u32) | 1;
    GrayImage::from_fn(width, height, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let speck = x % 211 == 9 && y % 263 == 17;
        Luma([if speck { 45 } else { 226 + (state % 18) as u8 }])
    })
}

/// 3°..15° in steps of 0.5°, the sign alternating with the seed.
pub fn turn_for(seed: u64) -> f64 {
    let magnitude = 3.0 + ((seed.wrapping_mul(7919) % 25) as f64) * 0.5;
    if seed % 2 == 0 {
        magnitude
    } else {
        -magnitude
    }
}

pub fn rotated(image: &DynamicImage, degrees: f64) -> DynamicImage {
    if image.color().has_color() {
        DynamicImage::ImageRgb8(raster::rotate(&image.to_rgb8(), degrees, Rgb([250; 3])))
    } else {
        DynamicImage::ImageLuma8(raster::rotate(&image.to_luma8(), degrees, Luma([250])))
    }
}

pub fn low_contrast(image: &DynamicImage) -> DynamicImage {
    let mut table = [0u8; 256];
    for (level, out) in table.iter_mut().enumerate() {
        *out = (90.0 + level as f64 * 80.0 / 255.0).round() as u8;
    }
    if image.color().has_color() {
        let mut c = image.to_rgb8();
        raster::map_levels(&mut c, &table);
        DynamicImage::ImageRgb8(c)
    } else {
        let mut g = image.to_luma8();
        raster::map_levels(&mut g, &table);
        DynamicImage::ImageLuma8(g)
    }
}

pub fn border(image: &DynamicImage) -> DynamicImage {
    let (w, h) = (image.width(), image.height());
    let (mx, my) = ((w / 10).max(8), (h / 10).max(8));
    let table = |x: u32, y: u32| 45 + ((x.wrapping_mul(7) ^ y.wrapping_mul(13)) % 25) as u8;
    if image.color().has_color() {
        let page = image.to_rgb8();
        let mut out = RgbImage::from_fn(w + 2 * mx, h + 2 * my, |x, y| {
            let v = table(x, y);
            Rgb([v, v.saturating_sub(5), v.saturating_sub(10)])
        });
        image::imageops::replace(&mut out, &page, i64::from(mx), i64::from(my));
        DynamicImage::ImageRgb8(out)
    } else {
        let page = image.to_luma8();
        let mut out = GrayImage::from_fn(w + 2 * mx, h + 2 * my, |x, y| Luma([table(x, y)]));
        image::imageops::replace(&mut out, &page, i64::from(mx), i64::from(my));
        DynamicImage::ImageLuma8(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_stay_within_the_range_and_go_both_ways() {
        let turns: Vec<f64> = (0..50).map(turn_for).collect();
        assert!(
            turns.iter().all(|t| (3.0..=15.0).contains(&t.abs())),
            "{turns:?}"
        );
        assert!(turns.iter().any(|t| *t > 0.0) && turns.iter().any(|t| *t < 0.0));
    }

    #[test]
    fn a_bordered_page_is_cropped_back_to_about_its_size() {
        let page =
            DynamicImage::ImageLuma8(super::super::deskew::tests_support::lined_page(500, 700));
        let photo = border(&page);
        let found = super::super::crop::page_bounds(&photo.to_luma8()).expect("a page");
        assert!(
            found.width.abs_diff(500) <= 20 && found.height.abs_diff(700) <= 20,
            "{found:?}"
        );
    }
}
