//! Where the page is in a photo of it: the bright paper against a darker table or hand.
//!
//! The paper's brightness is read from the middle of the frame (a photo is taken of the page,
//! so the page is in the middle); a row or column belongs to the page when enough of its pixels
//! are that bright. The page's box is the first to the last such row and column, with a small
//! margin. A scan, whose paper reaches the edges, gives the whole frame and nothing is cut.

use image::GrayImage;

use super::raster;

/// A box in an image's pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// A row or column is paper when at least this share of it is as bright as paper.
const PAPER_SHARE: f64 = 0.15;
/// A cut must remove at least this share of the frame to be worth a new copy.
const MIN_CUT: f64 = 0.03;
/// The page must keep at least this share of each side: less is more likely a misreading.
const MIN_SIDE: f64 = 0.25;

/// The page's box in `gray`'s pixels, or `None` when the page fills the frame (or cannot be
/// told from its surroundings).
pub fn page_bounds(gray: &GrayImage) -> Option<Bounds> {
    let (analysis, scale) = raster::analysis_copy(gray);
    let (w, h) = analysis.dimensions();
    if w < 16 || h < 16 {
        return None;
    }
    let middle = image::imageops::crop_imm(&*analysis, w / 4, h / 4, w / 2, h / 2).to_image();
    let paper = raster::percentile(&raster::histogram(&middle), 0.75);
    // Dark paper cannot be told from a dark table.
    if paper < 96 {
        return None;
    }
    let bright = (f64::from(paper) * 0.75) as u8;
    let mut rows = vec![0u32; h as usize];
    let mut columns = vec![0u32; w as usize];
    for (x, y, p) in analysis.enumerate_pixels() {
        if p.0[0] >= bright {
            rows[y as usize] += 1;
            columns[x as usize] += 1;
        }
    }
    let span = |counts: &[u32], length: u32| -> Option<(u32, u32)> {
        let enough = (f64::from(length) * PAPER_SHARE).ceil() as u32;
        let first = counts.iter().position(|c| *c >= enough)?;
        let last = counts.iter().rposition(|c| *c >= enough)?;
        Some((first as u32, last as u32))
    };
    let (top, bottom) = span(&rows, w)?;
    let (left, right) = span(&columns, h)?;
    // A margin of 1% of each side, so that nothing at the paper's edge is lost.
    let (mx, my) = ((w / 100).max(1), (h / 100).max(1));
    let (left, top) = (left.saturating_sub(mx), top.saturating_sub(my));
    let (right, bottom) = ((right + mx).min(w - 1), (bottom + my).min(h - 1));
    let (bw, bh) = (right - left + 1, bottom - top + 1);
    let kept = (f64::from(bw) * f64::from(bh)) / (f64::from(w) * f64::from(h));
    if 1.0 - kept < MIN_CUT
        || f64::from(bw) < f64::from(w) * MIN_SIDE
        || f64::from(bh) < f64::from(h) * MIN_SIDE
    {
        return None;
    }
    // Back to the original's pixels.
    let (full_w, full_h) = gray.dimensions();
    let to_full = |v: u32| (f64::from(v) * scale).round() as u32;
    let (x, y) = (to_full(left).min(full_w - 1), to_full(top).min(full_h - 1));
    Some(Bounds {
        x,
        y,
        width: to_full(bw).clamp(1, full_w - x),
        height: to_full(bh).clamp(1, full_h - y),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    fn photo(frame: (u32, u32), page: Bounds) -> GrayImage {
        let mut img = GrayImage::from_fn(frame.0, frame.1, |x, y| {
            Luma([40 + ((x * 7 + y * 13) % 30) as u8])
        });
        for y in page.y..page.y + page.height {
            for x in page.x..page.x + page.width {
                // Paper with some text on it.
                let ink = y % 30 < 8 && x % 9 < 6;
                img.put_pixel(x, y, Luma([if ink { 30 } else { 235 }]));
            }
        }
        img
    }

    #[test]
    fn the_page_is_found_in_a_photo() {
        let page = Bounds {
            x: 150,
            y: 90,
            width: 500,
            height: 900,
        };
        let found = page_bounds(&photo((900, 1100), page)).expect("a page");
        for (got, want, side) in [
            (found.x, page.x, 900),
            (found.y, page.y, 1100),
            (found.x + found.width, page.x + page.width, 900),
            (found.y + found.height, page.y + page.height, 1100),
        ] {
            assert!(
                got.abs_diff(want) <= side / 50,
                "{found:?} against {page:?}"
            );
        }
        // The margin keeps the whole page.
        assert!(found.x <= page.x && found.y <= page.y);
        assert!(found.x + found.width >= page.x + page.width);
    }

    #[test]
    fn a_scan_whose_paper_fills_the_frame_is_left_whole() {
        let page = Bounds {
            x: 0,
            y: 0,
            width: 600,
            height: 800,
        };
        assert_eq!(page_bounds(&photo((600, 800), page)), None);
    }

    #[test]
    fn a_dark_image_is_left_alone() {
        assert_eq!(
            page_bounds(&GrayImage::from_pixel(400, 400, Luma([50]))),
            None
        );
    }
}
