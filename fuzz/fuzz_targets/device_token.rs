//! `cargo +nightly fuzz run device_token`: see fuzz/README.md.
#![no_main]

#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_support::device_token(data));
