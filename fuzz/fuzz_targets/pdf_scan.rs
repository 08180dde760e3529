//! The cargo-fuzz target for `fuzz/checks/pdf_scan.rs`: see that file for what it checks.
#![no_main]

#[path = "../checks/pdf_scan.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
