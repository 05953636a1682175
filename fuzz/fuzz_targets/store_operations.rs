//! libFuzzer entry point for `kv_fuzz::store_operations`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kv_fuzz::store_operations(data));
