//! libFuzzer entry point for `kv_fuzz::server_requests`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kv_fuzz::server_requests(data));
