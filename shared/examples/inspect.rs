//! `cargo run -p ocrbridge --example inspect -- FILE...`: what intake would see in local files.

fn main() {
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).unwrap();
        let t = std::time::Instant::now();
        let info = ocrbridge::inspect::pdf::scan(&bytes, 64 * 1024);
        println!(
            "{path}: {info:?} detect={:?} in {:?}",
            ocrbridge::inspect::detect(&bytes[..bytes.len().min(65536)]),
            t.elapsed()
        );
    }
}
