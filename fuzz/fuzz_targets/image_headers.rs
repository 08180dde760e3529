//! Type detection and every image header reader on any bytes: nothing panics, and dimensions
//! that come out are never zero.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocrbridge::inspect::{detect, image, FileType};

fuzz_target!(|data: &[u8]| {
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
});
