//! The cargo-fuzz target for `fuzz/checks/image_headers.rs`: see that file for what it checks.
#![no_main]

#[path = "../checks/image_headers.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
