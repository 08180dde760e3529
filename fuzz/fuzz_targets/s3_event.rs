//! The cargo-fuzz target for `fuzz/checks/s3_event.rs`: see that file for what it checks.
#![no_main]

#[path = "../checks/s3_event.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
