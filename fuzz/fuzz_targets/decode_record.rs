//! libFuzzer entry point for `kv_fuzz::decode_record`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kv_fuzz::decode_record(data));
