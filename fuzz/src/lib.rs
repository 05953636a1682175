//! Fuzz targets of the workspace, as plain functions over bytes.
//!
//! Each target must never panic, whatever the input. They are driven two ways: by libFuzzer
//! (`cargo fuzz run <target> --features libfuzzer`, on a nightly toolchain), and by the
//! `fuzz-smoke` binary, which runs on stable: every input of the checked-in corpus, then
//! random mutations of it for a few seconds (`cargo xtask fuzz`).

#![forbid(unsafe_code)]

use kv_wal::{decode, Decoded, Position, RecoveryMode, Wal, WalConfig};

/// A target: a name (its corpus folder) and the function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("decode_record", decode_record),
    ("recover_directory", recover_directory),
];

/// Decodes records back to back from arbitrary bytes, decompressing each value.
pub fn decode_record(data: &[u8]) {
    let mut rest = data;
    while let Decoded::Record(record, len) = decode(rest) {
        assert!(len > 0 && len <= rest.len());
        let _ = record.to_record(1 << 20);
        rest = &rest[len..];
    }
}

/// Writes arbitrary bytes as one to three segments (the first byte chooses how many and the
/// recovery mode), opens the log, and reads it all back. Whatever opening reports, reading
/// what it accepted must not fail in a mode that opened it.
pub fn recover_directory(data: &[u8]) {
    let Some((&control, body)) = data.split_first() else {
        return;
    };
    let segments = usize::from(control % 3) + 1;
    let mode = match (control / 3) % 3 {
        0 => RecoveryMode::TolerateTornTail,
        1 => RecoveryMode::Strict,
        _ => RecoveryMode::Salvage,
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let chunk = body.len().div_ceil(segments).max(1);
    for (id, bytes) in body.chunks(chunk).enumerate() {
        let path = dir.path().join(kv_wal::segment::file_name(id as u64));
        std::fs::write(path, bytes).expect("write a segment");
    }
    let config = WalConfig::new(dir.path())
        .recovery_mode(mode)
        .max_segment_size(1 << 16)
        .preallocate(false);
    let mut replayed = 0u64;
    let Ok((wal, info)) = Wal::open_with(config, Position::START, |_, _| replayed += 1) else {
        return;
    };
    assert_eq!(info.records, replayed);
    let mut read = 0u64;
    for item in wal.read_from(Position::START).expect("read from the start") {
        match item {
            Ok(_) => read += 1,
            // A checksummed value that does not decompress is reported, not a panic.
            Err(kv_wal::Error::Corrupt { .. }) => {}
            Err(e) => panic!("reading an opened log failed: {e}"),
        }
    }
    assert_eq!(read.max(replayed), replayed);
}
