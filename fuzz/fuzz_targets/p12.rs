//! `cargo +nightly fuzz run p12`: see fuzz/README.md.
#![no_main]

#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_support::p12(data));
