//! The cargo-fuzz target for `fuzz/checks/webhook_verify.rs`: see that file for what it checks.
#![no_main]

#[path = "../checks/webhook_verify.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
