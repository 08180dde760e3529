//! Pixel operations the preprocessing steps share: a small grey copy to measure on, Otsu's
//! threshold, percentiles, and rotation with bilinear sampling.
//!
//! Everything here is deterministic (no threads, no floating-point reductions whose order
//! depends on the machine), so the same upload always gives the same prepared bytes.

use std::borrow::Cow;

use image::imageops::FilterType;
use image::{GrayImage, ImageBuffer, Pixel};

/// The long side of the grey copy the steps measure on: skew and borders are as visible at this
/// size as at full resolution, and measuring costs a fraction of it.
pub const ANALYSIS_SIDE: u32 = 1200;

/// A grey image no larger than [`ANALYSIS_SIDE`] (`gray` itself when it already is), and the
/// factor from its coordinates to the original's.
pub fn analysis_copy(gray: &GrayImage) -> (Cow<'_, GrayImage>, f64) {
    let (w, h) = gray.dimensions();
    let long = w.max(h);
    if long <= ANALYSIS_SIDE {
        return (Cow::Borrowed(gray), 1.0);
    }
    let scale = f64::from(long) / f64::from(ANALYSIS_SIDE);
    let (sw, sh) = (
        ((f64::from(w) / scale).round() as u32).max(1),
        ((f64::from(h) / scale).round() as u32).max(1),
    );
    (
        Cow::Owned(image::imageops::resize(gray, sw, sh, FilterType::Triangle)),
        scale,
    )
}

/// Brightness histogram of a grey image.
pub fn histogram(gray: &GrayImage) -> [u64; 256] {
    let mut h = [0u64; 256];
    for p in gray.as_raw() {
        h[usize::from(*p)] += 1;
    }
    h
}

/// The brightness below which a share `q` (0..=1) of the pixels lie.
pub fn percentile(h: &[u64; 256], q: f64) -> u8 {
    let total: u64 = h.iter().sum();
    let target = (total as f64 * q).ceil() as u64;
    let mut seen = 0u64;
    for (level, count) in h.iter().enumerate() {
        seen += count;
        if seen >= target.max(1) {
            return level as u8;
        }
    }
    255
}

/// Otsu's threshold: the level that best separates ink from paper; ink is at or below it.
pub fn otsu(h: &[u64; 256]) -> u8 {
    let total: u64 = h.iter().sum();
    if total == 0 {
        return 128;
    }
    let sum_all: f64 = h
        .iter()
        .enumerate()
        .map(|(i, c)| i as f64 * *c as f64)
        .sum();
    let (mut weight_bg, mut sum_bg) = (0f64, 0f64);
    let (mut best, mut best_var) = (0u8, -1f64);
    for (level, count) in h.iter().enumerate() {
        weight_bg += *count as f64;
        if weight_bg == 0.0 {
            continue;
        }
        let weight_fg = total as f64 - weight_bg;
        if weight_fg == 0.0 {
            break;
        }
        sum_bg += level as f64 * *count as f64;
        let mean_bg = sum_bg / weight_bg;
        let mean_fg = (sum_all - sum_bg) / weight_fg;
        let between = weight_bg * weight_fg * (mean_bg - mean_fg).powi(2);
        if between > best_var {
            best_var = between;
            best = level as u8;
        }
    }
    best
}

/// The mean levels of the ink and of the paper (Otsu's two classes), or `None` when there is
/// too little of either (under 0.2% of the pixels) to tell.
pub fn ink_and_paper(h: &[u64; 256]) -> Option<(u8, u8)> {
    let t = usize::from(otsu(h));
    let total: u64 = h.iter().sum();
    let class = |levels: std::ops::Range<usize>| -> Option<(u64, f64)> {
        let count: u64 = h[levels.clone()].iter().sum();
        let sum: f64 = levels.map(|l| l as f64 * h[l] as f64).sum();
        (count * 500 >= total && count > 0).then(|| (count, sum / count as f64))
    };
    let (_, ink) = class(0..t + 1)?;
    let (_, paper) = class(t + 1..256)?;
    Some((ink.round() as u8, paper.round() as u8))
}

/// `image` rotated by `degrees` (clockwise on screen, y pointing down), on a canvas grown to hold
/// every original pixel, the new corners filled with `fill`.
pub fn rotate<P>(image: &ImageBuffer<P, Vec<u8>>, degrees: f64, fill: P) -> ImageBuffer<P, Vec<u8>>
where
    P: Pixel<Subpixel = u8>,
{
    let (w, h) = image.dimensions();
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (fw, fh) = (f64::from(w), f64::from(h));
    // Less a hair, so that a quarter turn's cos(90°) ≈ 6e-17 does not add a column.
    let out_w = (fw * cos.abs() + fh * sin.abs() - 1e-9).ceil().max(1.0) as u32;
    let out_h = (fw * sin.abs() + fh * cos.abs() - 1e-9).ceil().max(1.0) as u32;
    let (cx, cy) = (fw / 2.0, fh / 2.0);
    let (ocx, ocy) = (f64::from(out_w) / 2.0, f64::from(out_h) / 2.0);
    let channels = usize::from(P::CHANNEL_COUNT);
    let src = image.as_raw();
    let stride = w as usize * channels;
    let fill = fill.channels().to_vec();
    let mut out = vec![0u8; out_w as usize * out_h as usize * channels];
    let (max_x, max_y) = (w as usize - 1, h as usize - 1);
    for oy in 0..out_h {
        let v = f64::from(oy) + 0.5 - ocy;
        // Along a row the source moves by (cos, -sin) per pixel: start there and step.
        let u0 = 0.5 - ocx;
        let mut x = u0 * cos + v * sin + cx - 0.5;
        let mut y = -u0 * sin + v * cos + cy - 0.5;
        let row = &mut out[oy as usize * out_w as usize * channels..][..out_w as usize * channels];
        for pixel in row.chunks_exact_mut(channels) {
            if x < -0.5 || y < -0.5 || x > fw - 0.5 || y > fh - 0.5 {
                pixel.copy_from_slice(&fill);
            } else {
                let (x0, y0) = (x.floor(), y.floor());
                let (dx, dy) = (x - x0, y - y0);
                let xa = (x0.max(0.0) as usize).min(max_x);
                let xb = ((x0 + 1.0).max(0.0) as usize).min(max_x);
                let ya = (y0.max(0.0) as usize).min(max_y);
                let yb = ((y0 + 1.0).max(0.0) as usize).min(max_y);
                let (top_row, bottom_row) = (ya * stride, yb * stride);
                let (a, b) = (xa * channels, xb * channels);
                let weights = [
                    (1.0 - dx) * (1.0 - dy),
                    dx * (1.0 - dy),
                    (1.0 - dx) * dy,
                    dx * dy,
                ];
                for (c, value) in pixel.iter_mut().enumerate() {
                    let v = f64::from(src[top_row + a + c]) * weights[0]
                        + f64::from(src[top_row + b + c]) * weights[1]
                        + f64::from(src[bottom_row + a + c]) * weights[2]
                        + f64::from(src[bottom_row + b + c]) * weights[3];
                    *value = (v + 0.5) as u8;
                }
            }
            x += cos;
            y -= sin;
        }
    }
    ImageBuffer::from_raw(out_w, out_h, out).unwrap_or_else(|| ImageBuffer::new(1, 1))
}

/// Maps every channel of `image` through `table`.
pub fn map_levels<P>(image: &mut ImageBuffer<P, Vec<u8>>, table: &[u8; 256])
where
    P: Pixel<Subpixel = u8>,
{
    for v in image.iter_mut() {
        *v = table[usize::from(*v)];
    }
}

/// The table that stretches `lo..=hi` onto the full range.
pub fn stretch_table(lo: u8, hi: u8) -> [u8; 256] {
    let mut table = [0u8; 256];
    let span = f64::from(hi.saturating_sub(lo).max(1));
    for (level, out) in table.iter_mut().enumerate() {
        let v = (level as f64 - f64::from(lo)) * 255.0 / span;
        *out = v.round().clamp(0.0, 255.0) as u8;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    #[test]
    fn otsu_separates_two_levels() {
        let mut h = [0u64; 256];
        h[30] = 100;
        h[220] = 900;
        let t = otsu(&h);
        assert!((30..220).contains(&t), "{t}");
    }

    #[test]
    fn a_quarter_turn_moves_a_corner_where_it_should() {
        let mut img = GrayImage::from_pixel(4, 2, Luma([255]));
        img.put_pixel(0, 0, Luma([0]));
        let turned = rotate(&img, 90.0, Luma([255]));
        assert_eq!(turned.dimensions(), (2, 4));
        // Clockwise: the top-left corner goes to the top-right.
        assert_eq!(turned.get_pixel(1, 0).0[0], 0, "{:?}", turned.as_raw());
        assert_eq!(turned.get_pixel(0, 0).0[0], 255);
    }

    #[test]
    fn percentiles_and_stretch() {
        let mut h = [0u64; 256];
        h[100] = 50;
        h[150] = 50;
        assert_eq!(percentile(&h, 0.25), 100);
        assert_eq!(percentile(&h, 0.75), 150);
        let t = stretch_table(100, 150);
        assert_eq!(
            (t[100], t[150], t[125], t[0], t[255]),
            (0, 255, 128, 0, 255)
        );
    }
}
