//! libFuzzer entry point for `kv_fuzz::damaged_store`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kv_fuzz::damaged_store(data));
