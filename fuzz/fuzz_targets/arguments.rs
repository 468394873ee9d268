//! libFuzzer wrapper of `targets::arguments` (fuzz/targets.rs says what it covers).
#![no_main]

#[allow(dead_code)] // one of its functions is this target
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::arguments(data));
