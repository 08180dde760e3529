//! The cargo-fuzz target for `fuzz/checks/normalizers.rs`: see that file for what it checks.
#![no_main]

#[path = "../checks/normalizers.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
