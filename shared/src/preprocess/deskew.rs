//! How far a page's text lines lean, by projection profiles.
//!
//! Ink pixels are projected onto the vertical axis of a frame turned by a candidate angle: at
//! the angle of the text lines, rows of ink and rows of paper alternate sharply, and the sum of
//! squared differences between neighbouring rows peaks. A coarse sweep, then a fine one around
//! the best. The gain over the page as it stands says whether the lean is real: a photo, a
//! table's rules or a page of noise has no clear peak, and is left alone.

use image::GrayImage;

use super::raster;

/// What the measure found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Skew {
    /// The text lines' angle, clockwise on screen, in degrees; the page is turned back by it.
    pub degrees: f64,
    /// The profile's sharpness at that angle over its sharpness as the page stands (≥ 1).
    pub gain: f64,
}

/// At most this many ink pixels are projected (an even sample of them beyond).
const MAX_POINTS: usize = 60_000;

/// The lean of the text in `gray` within ±`max_degrees`, or `None` when there is too little ink
/// to tell.
pub fn measure(gray: &GrayImage, max_degrees: f64) -> Option<Skew> {
    let (full, _) = raster::analysis_copy(gray);
    // The middle of the frame only: a photo's edges hold the table, the page's own edges and
    // the crop's margin, whose long straight lines would outvote the text's.
    let (fw, fh) = full.dimensions();
    let analysis =
        image::imageops::crop_imm(&*full, fw / 10, fh / 10, fw - fw / 5, fh - fh / 5).to_image();
    let threshold = raster::otsu(&raster::histogram(&analysis));
    let (w, h) = analysis.dimensions();
    let (cx, cy) = (f64::from(w) / 2.0, f64::from(h) / 2.0);
    let ink = analysis
        .enumerate_pixels()
        .filter(|(_, _, p)| p.0[0] <= threshold)
        .count();
    // A page with almost no ink, or one that is mostly ink, has no lines to measure.
    let pixels = (w as usize) * (h as usize);
    if ink < 200 || ink * 2 > pixels {
        return None;
    }
    let step = ink.div_ceil(MAX_POINTS);
    let points: Vec<(f64, f64)> = analysis
        .enumerate_pixels()
        .filter(|(_, _, p)| p.0[0] <= threshold)
        .step_by(step)
        .map(|(x, y, _)| (f64::from(x) - cx, f64::from(y) - cy))
        .collect();
    let diagonal = (f64::from(w).hypot(f64::from(h))).ceil() as usize + 2;
    let mut bins = vec![0u32; diagonal];
    let mut sharpness = |degrees: f64| -> f64 {
        let (sin, cos) = degrees.to_radians().sin_cos();
        bins.iter_mut().for_each(|b| *b = 0);
        let half = (diagonal / 2) as f64;
        for (x, y) in &points {
            let row = (-x * sin + y * cos + half).round();
            if row >= 0.0 && (row as usize) < bins.len() {
                bins[row as usize] += 1;
            }
        }
        bins.windows(2)
            .map(|w| (f64::from(w[1]) - f64::from(w[0])).powi(2))
            .sum()
    };
    let sweep = |from: f64, to: f64, by: f64| {
        let steps = ((to - from) / by).round() as i64;
        (0..=steps).map(move |i| from + i as f64 * by)
    };
    let mut best = (0.0, f64::MIN);
    for angle in sweep(-max_degrees, max_degrees, 0.5) {
        let s = sharpness(angle);
        if s > best.1 {
            best = (angle, s);
        }
    }
    for angle in sweep(best.0 - 0.4, best.0 + 0.4, 0.1) {
        let s = sharpness(angle);
        if s > best.1 {
            best = (angle, s);
        }
    }
    let level = sharpness(0.0).max(1.0);
    Some(Skew {
        degrees: (best.0 * 10.0).round() / 10.0,
        gain: best.1 / level,
    })
}

/// The median height, in `gray`'s pixels, of its text lines once turned back by `degrees`: the
/// runs of rows holding ink in the frame's middle. `None` when fewer than three lines are seen.
/// Lines set close enough to touch read as one taller line, so small text is under-reported,
/// never invented.
pub fn text_line_height(gray: &GrayImage, degrees: f64) -> Option<u32> {
    let (analysis, scale) = raster::analysis_copy(gray);
    let analysis = if degrees.abs() >= 0.5 {
        let paper = raster::percentile(&raster::histogram(&analysis), 0.9);
        std::borrow::Cow::Owned(raster::rotate(&analysis, -degrees, image::Luma([paper])))
    } else {
        analysis
    };
    let (fw, fh) = analysis.dimensions();
    let middle = image::imageops::crop_imm(&*analysis, fw / 10, fh / 10, fw - fw / 5, fh - fh / 5)
        .to_image();
    let threshold = raster::otsu(&raster::histogram(&middle));
    let (w, _) = middle.dimensions();
    let enough = (w / 100).max(2);
    let inked: Vec<bool> = middle
        .rows()
        .map(|row| row.filter(|p| p.0[0] <= threshold).count() as u32 >= enough)
        .collect();
    let mut runs: Vec<u32> = Vec::new();
    let mut current = 0u32;
    for ink in inked.iter().chain([&false]) {
        if *ink {
            current += 1;
        } else {
            if current >= 2 {
                runs.push(current);
            }
            current = 0;
        }
    }
    if runs.len() < 3 {
        return None;
    }
    runs.sort_unstable();
    let median = f64::from(runs[runs.len() / 2]);
    Some((median * scale).round() as u32)
}

#[cfg(test)]
pub(crate) mod tests_support {
    use image::{GrayImage, Luma};

    /// A page of dark "text lines" (bars with gaps, like words) on white.
    pub(crate) fn lined_page(w: u32, h: u32) -> GrayImage {
        let mut page = GrayImage::from_pixel(w, h, Luma([250]));
        for line in 0..(h / 40) {
            let top = 20 + line * 40;
            for y in top..(top + 12).min(h) {
                for x in (w / 10)..(w * 9 / 10) {
                    // Words: 50 px of ink, 15 px of space.
                    if (x / 5) % 13 < 10 {
                        page.put_pixel(x, y, Luma([20]));
                    }
                }
            }
        }
        page
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::lined_page;
    use super::*;
    use image::Luma;

    #[test]
    fn a_pages_text_lines_are_measured_straight_or_leaning() {
        // Lines of 12 px every 40 px.
        let page = lined_page(600, 800);
        assert_eq!(text_line_height(&page, 0.0), Some(12));
        let leaning = raster::rotate(&page, 6.0, Luma([250]));
        let skew = measure(&leaning, 15.0).expect("lines");
        let height = text_line_height(&leaning, skew.degrees).expect("lines");
        assert!((11..=14).contains(&height), "{height}");
        // The same page at a third of the size: 4 px lines.
        let small = image::imageops::resize(&page, 200, 267, image::imageops::FilterType::Triangle);
        let height = text_line_height(&small, 0.0).expect("lines");
        assert!((3..=6).contains(&height), "{height}");
        assert_eq!(
            text_line_height(&GrayImage::from_pixel(300, 300, Luma([250])), 0.0),
            None
        );
    }

    #[test]
    fn a_straight_page_measures_straight() {
        let skew = measure(&lined_page(800, 1000), 15.0).expect("lines");
        assert!(skew.degrees.abs() <= 0.2, "{skew:?}");
    }

    #[test]
    fn the_lean_of_a_turned_page_is_measured_with_its_sign() {
        for turn in [-12.0, -4.0, 3.0, 7.5, 14.0] {
            let turned = raster::rotate(&lined_page(800, 1000), turn, Luma([250]));
            let skew = measure(&turned, 15.0).expect("lines");
            assert!(
                (skew.degrees - turn).abs() <= 0.3,
                "turned {turn}°, measured {skew:?}"
            );
            assert!(skew.gain > 1.5, "turned {turn}°: {skew:?}");
            // Turned back by what was measured, the page is straight again.
            let back = raster::rotate(&turned, -skew.degrees, Luma([250]));
            let again = measure(&back, 15.0).expect("lines");
            assert!(again.degrees.abs() <= 0.3, "turned {turn}°, then {again:?}");
        }
    }

    #[test]
    fn a_blank_page_has_no_lean() {
        assert_eq!(
            measure(&GrayImage::from_pixel(300, 300, Luma([255])), 15.0),
            None
        );
    }
}
