//! libFuzzer entry point for `kv_fuzz::parse_manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kv_fuzz::parse_manifest(data));
