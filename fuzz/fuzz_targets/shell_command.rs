//! libFuzzer entry point for `kv_fuzz::shell_command`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kv_fuzz::shell_command(data));
