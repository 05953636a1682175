//! Directories written by nori-wal 0.1 open and replay as its format says.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use common::{apply, fixture, reopen_records};
use kv_wal::{
    Compression, CorruptionKind, DamageAction, Expiry, Position, Record, RecoveryMode, Wal,
    WalConfig,
};

fn expected_map() -> BTreeMap<Bytes, Bytes> {
    let tsv = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nori-wal-0.1/expected.tsv"),
    )
    .unwrap();
    tsv.lines()
        .map(|line| {
            let (k, v) = line.split_once('\t').unwrap();
            (Bytes::from(k.to_owned()), Bytes::from(v.to_owned()))
        })
        .collect()
}

#[test]
fn clean_fixture_replays_to_the_expected_map() {
    let dir = fixture("nori-wal-0.1/clean/wal");
    let (records, info) = reopen_records(WalConfig::new(dir.path()));
    assert_eq!(records.len(), 1220);
    assert_eq!(info.records, 1220);
    assert_eq!(info.segments_scanned, 2);
    assert_eq!(info.bytes_truncated, 0);
    assert!(info.corruptions.is_empty());
    assert_eq!(info.end, Position::new(1, 13425));
    assert_eq!(apply(&records), expected_map());
    let compressions: Vec<_> = records
        .iter()
        .filter(|r| r.key.starts_with(b"lz4:") || r.key.starts_with(b"zstd:"))
        .map(|r| r.compression)
        .collect();
    assert_eq!(compressions.len(), 20);
    assert_eq!(compressions[..10], [Compression::Lz4; 10]);
    assert_eq!(compressions[10..], [Compression::Zstd; 10]);
}

#[test]
fn torn_fixture_loses_only_the_cut_record_and_reports_it() {
    let dir = fixture("nori-wal-0.1/torn/wal");
    let (records, info) = reopen_records(WalConfig::new(dir.path()));
    let mut expected = expected_map();
    expected.remove(&Bytes::from_static(b"zstd:9"));
    assert_eq!(apply(&records), expected);
    assert_eq!(info.bytes_truncated, 16);
    assert_eq!(info.corruptions.len(), 1);
    let torn = info.corruptions[0];
    assert_eq!((torn.segment, torn.offset), (1, 13393));
    assert_eq!(torn.action, DamageAction::Truncated);
    assert_eq!(
        std::fs::metadata(dir.path().join("000001.wal"))
            .unwrap()
            .len(),
        13393
    );
}

#[test]
fn torn_fixture_is_refused_in_strict_mode_and_left_alone() {
    let dir = fixture("nori-wal-0.1/torn/wal");
    let err =
        Wal::open(WalConfig::new(dir.path()).recovery_mode(RecoveryMode::Strict)).unwrap_err();
    assert!(
        matches!(
            err,
            kv_wal::Error::Corrupt {
                segment: 1,
                offset: 13393,
                kind: CorruptionKind::Truncated
            }
        ),
        "{err}"
    );
    assert_eq!(
        std::fs::metadata(dir.path().join("000001.wal"))
            .unwrap()
            .len(),
        13409
    );
}

#[test]
fn appending_to_a_nori_wal_directory_continues_its_last_segment() {
    let dir = fixture("nori-wal-0.1/clean/wal");
    let config = WalConfig::new(dir.path()).max_segment_size(16 * 1024);
    let (mut wal, _) = Wal::open(config.clone()).unwrap();
    assert_eq!(
        wal.append(&Record::put("new", "value")).unwrap(),
        Position::new(1, 13425)
    );
    wal.close().unwrap();
    let (records, _) = reopen_records(config);
    assert_eq!(apply(&records).get(&b"new"[..]).unwrap(), "value");
}

/// Encodes one record from the spec's table, independently of the crate's encoder.
fn spec_record(out: &mut Vec<u8>, key: &[u8], stored: &[u8], flags: u8, ttl: Option<u64>) {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let start = out.len();
    varint(key.len() as u64, out);
    varint(stored.len() as u64, out);
    out.push(flags);
    if let Some(ttl) = ttl {
        varint(ttl, out);
    }
    out.extend_from_slice(key);
    out.extend_from_slice(stored);
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

#[test]
fn hand_built_nori_wal_directory_replays_as_the_spec_says() {
    let dir = tempfile::tempdir().unwrap();
    let long = vec![b'q'; 3000];

    // Segment 0: plain puts, a delete, a relative TTL, and an LZ4 value.
    let mut seg0 = Vec::new();
    spec_record(&mut seg0, b"a", b"1", 0, None);
    spec_record(&mut seg0, b"b", b"2", 0, None);
    spec_record(&mut seg0, b"a", b"", 0b01, None);
    spec_record(&mut seg0, b"ttl", b"soon", 0b10, Some(60_000));
    let mut lz4 = Vec::new();
    lz4.extend_from_slice(&[0xb8, 0x17]); // varint(3000)
    lz4.extend_from_slice(&lz4_flex::block::compress(&long));
    spec_record(&mut seg0, b"lz4", &lz4, 1 << 2, None);

    // Segment 1: a Zstd value, with 1 MiB of preallocated zeros after it.
    let mut seg1 = Vec::new();
    let zstd = zstd::bulk::compress(&long, 3).unwrap();
    spec_record(&mut seg1, b"zstd", &zstd, 2 << 2, None);
    seg1.resize(seg1.len() + (1 << 20), 0);

    // Segment 2: one whole record, then one cut short by a crash.
    let mut seg2 = Vec::new();
    spec_record(&mut seg2, b"c", b"3", 0, None);
    let whole_len = seg2.len();
    spec_record(&mut seg2, b"d", b"never acknowledged", 0, None);
    seg2.truncate(whole_len + 7);

    std::fs::write(dir.path().join("000000.wal"), &seg0).unwrap();
    std::fs::write(dir.path().join("000001.wal"), &seg1).unwrap();
    std::fs::write(dir.path().join("000002.wal"), &seg2).unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"not a segment").unwrap();

    let (records, info) = reopen_records(WalConfig::new(dir.path()));
    let keys: Vec<&[u8]> = records.iter().map(|r| &r.key[..]).collect();
    assert_eq!(keys, [&b"a"[..], b"b", b"a", b"ttl", b"lz4", b"zstd", b"c"]);
    assert_eq!(records[3].expiry, Expiry::AfterMillis(60_000));
    assert_eq!(records[4].value, long);
    assert_eq!(records[5].value, long);
    assert_eq!(info.segments_scanned, 3);
    assert_eq!(info.bytes_truncated, 7);
    assert_eq!(info.end, Position::new(2, whole_len as u64));
    assert_eq!(info.corruptions.len(), 1, "the zero tail is not damage");
    let map = apply(&records);
    assert_eq!(
        map.keys().collect::<Vec<_>>(),
        ["b", "c", "lz4", "ttl", "zstd"]
    );
}

#[test]
fn what_kv_wal_writes_without_extensions_is_byte_identical_to_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig::new(dir.path()).preallocate(false);
    let (mut wal, _) = Wal::open(config).unwrap();
    wal.append(&Record::put("a", "1")).unwrap();
    wal.append(&Record::delete("a")).unwrap();
    wal.append(&Record::put("z", vec![b'z'; 2000]).with_compression(Compression::Zstd))
        .unwrap();
    wal.close().unwrap();

    let mut expected = Vec::new();
    spec_record(&mut expected, b"a", b"1", 0, None);
    spec_record(&mut expected, b"a", b"", 1, None);
    let zstd = zstd::bulk::compress(&[b'z'; 2000], 3).unwrap();
    spec_record(&mut expected, b"z", &zstd, 2 << 2, None);
    assert_eq!(
        std::fs::read(dir.path().join("000000.wal")).unwrap(),
        expected
    );
}
