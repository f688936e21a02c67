//! Fuzz target: mxguard-filter's regex entry point (see `mxguard_filter::fuzzing::regex`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mxguard_filter::fuzzing::regex(data);
});
