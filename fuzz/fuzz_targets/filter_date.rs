//! Fuzz target: mxguard-filter's date entry point (see `mxguard_filter::fuzzing::date`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mxguard_filter::fuzzing::date(data);
});
