//! The streaming PDF scanner on any bytes, fed in chunks of any size: nothing panics, and the
//! answer does not depend on how the bytes were chunked.
//!
//! One check, run by the cargo-fuzz target of the same name (`make fuzz`) and by
//! `tests/fuzz_replay.rs` on every committed input (`make test`).

pub fn check(data: &[u8]) {
    let Some((&chunk, bytes)) = data.split_first() else {
        return;
    };
    let chunked = ocrbridge::inspect::pdf::scan(bytes, usize::from(chunk).max(1));
    let whole = ocrbridge::inspect::pdf::scan(bytes, bytes.len().max(1));
    assert_eq!(chunked, whole, "chunk size {chunk} changed the answer");
}
