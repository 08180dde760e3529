//! Type detection and every image header reader on any bytes: nothing panics, and dimensions
//! that come out are never zero.
//!
//! One check, run by the cargo-fuzz target of the same name (`make fuzz`) and by
//! `tests/fuzz_replay.rs` on every committed input (`make test`).

use ocrbridge::inspect::{detect, image, FileType};

pub fn check(data: &[u8]) {
    let _ = detect(data);
    for file_type in [
        FileType::Png,
        FileType::Jpeg,
        FileType::Gif,
        FileType::Bmp,
        FileType::Tiff,
        FileType::Webp,
        FileType::Heic,
    ] {
        if let Ok(Some(d)) = futures::executor::block_on(image::dimensions(file_type, data, data)) {
            assert!(d.width > 0 && d.height > 0);
        }
    }
}
