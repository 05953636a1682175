//! Every open that cuts or skips part of the log says so: which segment, which offset, how
//! many bytes.

use kv_store::{CorruptionKind, DamageAction, Durability, KvStore, Options};
use kv_wal::Record;

#[test]
fn a_flipped_byte_in_the_last_record_is_cut_and_reported_with_its_place_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default().durability(Durability::Sync);
    let store = KvStore::open_with(dir.path(), options.clone()).unwrap();
    for i in 0..10 {
        store.put(format!("key-{i}"), format!("value-{i}")).unwrap();
    }
    assert!(store.open_report().recovery.corruptions.is_empty());
    store.close().unwrap();

    let segment = dir.path().join("wal").join(kv_wal::segment::file_name(0));
    let mut bytes = std::fs::read(&segment).unwrap();
    let last_len = Record::put("key-9", "value-9").encoded_len();
    let last_at = (bytes.len() - last_len) as u64;
    let flipped = bytes.len() - 6;
    bytes[flipped] ^= 0x20;
    std::fs::write(&segment, &bytes).unwrap();

    let store = KvStore::open_with(dir.path(), options).unwrap();
    assert!(store.get("key-9").is_none());
    assert_eq!(store.get("key-8").unwrap(), "value-8");
    let cuts = &store.open_report().recovery.corruptions;
    assert_eq!(cuts.len(), 1, "{cuts:?}");
    let cut = cuts[0];
    assert_eq!((cut.segment, cut.offset), (0, last_at));
    assert_eq!(cut.bytes, last_len as u64);
    assert_eq!(cut.action, DamageAction::Truncated);
    assert_eq!(cut.kind, CorruptionKind::Checksum);
    assert_eq!(
        cut.to_string(),
        format!("segment 0, offset {last_at}: checksum mismatch; {last_len} bytes cut")
    );
    store.close().unwrap();
}
