//! Image dimensions from headers, without decoding a pixel.
//!
//! Most formats keep their size in the first bytes. JPEG keeps it in a SOF segment that can sit
//! behind large EXIF/ICC segments, and TIFF in an IFD anywhere in the file; for those the reader
//! follows the structure with small ranged reads instead of downloading the object.

use std::future::Future;

use super::FileType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dimensions {
    pub width: u32,
    pub height: u32,
}

impl Dimensions {
    pub fn pixels(self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// Random access to an object's bytes (S3 ranged GETs, or memory in tests).
pub trait ByteSource {
    type Error;
    /// Up to `len` bytes at `offset`; fewer at the end of the object.
    fn read_at(
        &self,
        offset: u64,
        len: usize,
    ) -> impl Future<Output = Result<Vec<u8>, Self::Error>> + Send;
}

impl ByteSource for [u8] {
    type Error = std::convert::Infallible;
    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, Self::Error> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let end = start.saturating_add(len).min(self.len());
        Ok(self[start..end].to_vec())
    }
}

/// Reads from `head` when it covers the range, else from `source`.
async fn bytes_at<S: ByteSource + ?Sized>(
    head: &[u8],
    source: &S,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>, S::Error> {
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    match start.checked_add(len) {
        Some(end) if end <= head.len() => Ok(head[start..end].to_vec()),
        _ => source.read_at(offset, len).await,
    }
}

fn be16(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?])))
}
fn le16(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from(u16::from_le_bytes([*b.get(i)?, *b.get(i + 1)?])))
}
fn be32(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?))
}
fn le32(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
}
fn le24(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *b.get(i)?,
        *b.get(i + 1)?,
        *b.get(i + 2)?,
        0,
    ]))
}

/// The image's dimensions, or `None` when the header is missing or truncated.
pub async fn dimensions<S: ByteSource + ?Sized>(
    file_type: FileType,
    head: &[u8],
    source: &S,
) -> Result<Option<Dimensions>, S::Error> {
    let dims = |w: Option<u32>, h: Option<u32>| match (w, h) {
        (Some(width), Some(height)) if width > 0 && height > 0 => {
            Some(Dimensions { width, height })
        }
        _ => None,
    };
    Ok(match file_type {
        FileType::Png if head.get(12..16) == Some(b"IHDR") => dims(be32(head, 16), be32(head, 20)),
        FileType::Png => None,
        FileType::Gif => dims(le16(head, 6), le16(head, 8)),
        FileType::Bmp => match le32(head, 14) {
            Some(12) => dims(le16(head, 18), le16(head, 20)),
            Some(_) => dims(
                le32(head, 18).map(|w| (w as i32).unsigned_abs()),
                le32(head, 22).map(|h| (h as i32).unsigned_abs()),
            ),
            None => None,
        },
        FileType::Webp => match head.get(12..16) {
            Some(b"VP8 ") => dims(
                le16(head, 26).map(|w| w & 0x3fff),
                le16(head, 28).map(|h| h & 0x3fff),
            ),
            Some(b"VP8L") => le32(head, 21).and_then(|bits| {
                dims(Some((bits & 0x3fff) + 1), Some(((bits >> 14) & 0x3fff) + 1))
            }),
            Some(b"VP8X") => dims(le24(head, 24).map(|w| w + 1), le24(head, 27).map(|h| h + 1)),
            _ => None,
        },
        FileType::Heic => head
            .windows(4)
            .position(|w| w == b"ispe")
            .and_then(|i| dims(be32(head, i + 8), be32(head, i + 12))),
        FileType::Jpeg => jpeg(head, source).await?,
        FileType::Tiff => tiff(head, source).await?,
        FileType::Pdf => None,
    })
}

/// Walks JPEG segments to the first SOF marker.
async fn jpeg<S: ByteSource + ?Sized>(
    head: &[u8],
    source: &S,
) -> Result<Option<Dimensions>, S::Error> {
    let mut offset: u64 = 2;
    // A real JPEG reaches SOF within a few dozen segments; this bounds a malicious one.
    for _ in 0..512 {
        let marker = bytes_at(head, source, offset, 4).await?;
        if marker.len() < 4 || marker[0] != 0xFF {
            return Ok(None);
        }
        let kind = marker[1];
        if kind == 0xFF {
            offset += 1; // fill byte
            continue;
        }
        let length = u64::from(u16::from_be_bytes([marker[2], marker[3]]));
        if matches!(kind, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF) {
            let sof = bytes_at(head, source, offset + 4, 5).await?;
            return Ok(match (be16(&sof, 1), be16(&sof, 3)) {
                (Some(height), Some(width)) if width > 0 && height > 0 => {
                    Some(Dimensions { width, height })
                }
                _ => None,
            });
        }
        if kind == 0xD9 || kind == 0xDA || length < 2 {
            return Ok(None); // end of image or scan data before any SOF
        }
        offset += 2 + length;
    }
    Ok(None)
}

/// Reads ImageWidth (256) and ImageLength (257) from the first IFD.
async fn tiff<S: ByteSource + ?Sized>(
    head: &[u8],
    source: &S,
) -> Result<Option<Dimensions>, S::Error> {
    let little = head.starts_with(b"II");
    let u16_at = |b: &[u8], i: usize| if little { le16(b, i) } else { be16(b, i) };
    let u32_at = |b: &[u8], i: usize| if little { le32(b, i) } else { be32(b, i) };
    let Some(ifd) = u32_at(head, 4) else {
        return Ok(None);
    };
    let count_bytes = bytes_at(head, source, u64::from(ifd), 2).await?;
    let Some(count) = u16_at(&count_bytes, 0) else {
        return Ok(None);
    };
    let count = count.min(4096) as usize;
    let entries = bytes_at(head, source, u64::from(ifd) + 2, count * 12).await?;
    let (mut width, mut height) = (None, None);
    for e in entries.chunks_exact(12) {
        let value = match u16_at(e, 2) {
            Some(3) => u16_at(e, 8),
            Some(4) => u32_at(e, 8),
            _ => None,
        };
        match u16_at(e, 0) {
            Some(256) => width = value,
            Some(257) => height = value,
            _ => {}
        }
    }
    Ok(match (width, height) {
        (Some(width), Some(height)) if width > 0 && height > 0 => {
            Some(Dimensions { width, height })
        }
        _ => None,
    })
}

/// The resolution an image declares for itself, in dots per inch (the lower of its two axes):
/// PNG's `pHYs` chunk (pixels per metre) and JPEG's JFIF header (per inch or per centimetre),
/// read from the first bytes. `None` when the file declares none, or only an aspect ratio —
/// a scan almost always declares it; a phone photo often does not.
pub fn declared_dpi(file_type: FileType, head: &[u8]) -> Option<u32> {
    let lower = |x: f64, y: f64| {
        let dpi = x.min(y).round();
        (dpi >= 1.0 && dpi < f64::from(u32::MAX)).then_some(dpi as u32)
    };
    match file_type {
        FileType::Png => {
            // Chunks after the 8-byte signature: length, type, data, CRC.
            let mut at = 8;
            while let (Some(len), Some(kind)) = (be32(head, at), head.get(at + 4..at + 8)) {
                match kind {
                    b"pHYs" => {
                        let (x, y) = (be32(head, at + 8)?, be32(head, at + 12)?);
                        // Unit 1: the metre; 0: an aspect ratio only.
                        return (*head.get(at + 16)? == 1)
                            .then(|| lower(f64::from(x) * 0.0254, f64::from(y) * 0.0254))
                            .flatten();
                    }
                    b"IDAT" | b"IEND" => return None,
                    _ => at = at.checked_add(12)?.checked_add(len as usize)?,
                }
            }
            None
        }
        FileType::Jpeg if head.get(6..11) == Some(b"JFIF\0") => {
            let (x, y) = (f64::from(be16(head, 14)?), f64::from(be16(head, 16)?));
            match head.get(13)? {
                1 => lower(x, y),
                2 => lower(x * 2.54, y * 2.54),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_with_phys(x_ppm: u32, y_ppm: u32, unit: u8) -> Vec<u8> {
        let mut b = png(1000, 1400);
        b.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]); // IHDR's rest and CRC
        b.extend_from_slice(&[0, 0, 0, 9]);
        b.extend_from_slice(b"pHYs");
        b.extend_from_slice(&x_ppm.to_be_bytes());
        b.extend_from_slice(&y_ppm.to_be_bytes());
        b.push(unit);
        b.extend_from_slice(&[0; 4]);
        b
    }

    fn jfif(units: u8, x: u16, y: u16) -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16];
        b.extend_from_slice(b"JFIF\0");
        b.extend_from_slice(&[1, 2, units]);
        b.extend_from_slice(&x.to_be_bytes());
        b.extend_from_slice(&y.to_be_bytes());
        b.extend_from_slice(&[0, 0]);
        b
    }

    #[test]
    fn a_scan_declares_its_resolution() {
        // 300 dpi is 11811 pixels per metre.
        assert_eq!(
            declared_dpi(FileType::Png, &png_with_phys(11811, 11811, 1)),
            Some(300)
        );
        assert_eq!(
            declared_dpi(FileType::Png, &png_with_phys(11811, 2835, 1)),
            Some(72),
            "the lower axis"
        );
        assert_eq!(
            declared_dpi(FileType::Png, &png_with_phys(1, 1, 0)),
            None,
            "an aspect ratio only"
        );
        assert_eq!(declared_dpi(FileType::Png, &png(100, 100)), None, "no pHYs");
        assert_eq!(declared_dpi(FileType::Jpeg, &jfif(1, 200, 200)), Some(200));
        assert_eq!(
            declared_dpi(FileType::Jpeg, &jfif(2, 118, 118)),
            Some(300),
            "per centimetre"
        );
        assert_eq!(declared_dpi(FileType::Jpeg, &jfif(0, 1, 1)), None);
        assert_eq!(
            declared_dpi(FileType::Jpeg, &jfif(1, 200, 200)[..12]),
            None,
            "truncated"
        );
    }

    fn block<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        b.extend_from_slice(&width.to_be_bytes());
        b.extend_from_slice(&height.to_be_bytes());
        b
    }

    fn dims_of(t: FileType, bytes: &[u8]) -> Option<Dimensions> {
        block(dimensions(t, bytes, bytes)).unwrap()
    }

    #[test]
    fn reads_headers() {
        assert_eq!(
            dims_of(FileType::Png, &png(640, 480)),
            Some(Dimensions {
                width: 640,
                height: 480
            })
        );
        assert_eq!(
            dims_of(FileType::Png, &png(640, 480)[..20]),
            None,
            "truncated"
        );
        assert_eq!(
            dims_of(FileType::Gif, b"GIF89a\x80\x02\xe0\x01"),
            Some(Dimensions {
                width: 640,
                height: 480
            })
        );
    }

    #[test]
    fn follows_jpeg_segments_past_the_head() {
        // SOI, a 40 KB APP1 segment, then SOF0 with 1000x800; the head holds only the first 1 KB.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE1];
        jpeg.extend_from_slice(&40_000u16.to_be_bytes());
        jpeg.resize(4 + 40_000, 0);
        jpeg.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08]);
        jpeg.extend_from_slice(&800u16.to_be_bytes());
        jpeg.extend_from_slice(&1000u16.to_be_bytes());
        let head = &jpeg[..1024];
        let got = block(dimensions(FileType::Jpeg, head, jpeg.as_slice())).unwrap();
        assert_eq!(
            got,
            Some(Dimensions {
                width: 1000,
                height: 800
            })
        );
        // Cut before the SOF: unreadable, not a guess.
        let cut = &jpeg[..30_000];
        assert_eq!(
            block(dimensions(FileType::Jpeg, &cut[..1024], cut)).unwrap(),
            None
        );
    }

    #[test]
    fn reads_tiff_ifds_in_both_byte_orders() {
        let mut tiff = b"II*\0".to_vec();
        tiff.extend_from_slice(&8u32.to_le_bytes());
        tiff.extend_from_slice(&2u16.to_le_bytes());
        for (tag, kind, value) in [(256u16, 3u16, 1200u32), (257, 4, 1600)] {
            tiff.extend_from_slice(&tag.to_le_bytes());
            tiff.extend_from_slice(&kind.to_le_bytes());
            tiff.extend_from_slice(&1u32.to_le_bytes());
            tiff.extend_from_slice(&value.to_le_bytes());
        }
        assert_eq!(
            dims_of(FileType::Tiff, &tiff),
            Some(Dimensions {
                width: 1200,
                height: 1600
            })
        );

        let mut mm = b"MM\0*".to_vec();
        mm.extend_from_slice(&8u32.to_be_bytes());
        mm.extend_from_slice(&1u16.to_be_bytes());
        mm.extend_from_slice(&256u16.to_be_bytes());
        mm.extend_from_slice(&4u16.to_be_bytes());
        mm.extend_from_slice(&1u32.to_be_bytes());
        mm.extend_from_slice(&77u32.to_be_bytes());
        assert_eq!(dims_of(FileType::Tiff, &mm), None, "no height tag");
    }
}
