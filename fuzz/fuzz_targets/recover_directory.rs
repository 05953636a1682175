//! libFuzzer entry point for `kv_fuzz::recover_directory`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kv_fuzz::recover_directory(data));
