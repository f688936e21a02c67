//! Fuzz target: mxguard-filter's config entry point (see `mxguard_filter::fuzzing::config`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mxguard_filter::fuzzing::config(data);
});
