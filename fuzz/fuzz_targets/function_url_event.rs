//! The cargo-fuzz target for `fuzz/checks/function_url_event.rs`: see that file for what it checks.
#![no_main]

#[path = "../checks/function_url_event.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
