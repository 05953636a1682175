//! The log against a model: a `Vec` of every acknowledged record, in order.

mod common;

use common::reopen_records;
use kv_wal::{Compression, Expiry, FsyncPolicy, Record, RecoveryInfo, Wal, WalConfig};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append(Record),
    Batch(Vec<Record>),
    Atomic(Vec<Record>),
    Rotate,
    Sync,
    Reopen,
}

fn record() -> impl Strategy<Value = Record> {
    let key = proptest::collection::vec(any::<u8>(), 0..12);
    let value = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        (1usize..3000, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
    ];
    let expiry = prop_oneof![
        4 => Just(Expiry::Never),
        1 => any::<u64>().prop_map(Expiry::AtUnixMillis),
        1 => any::<u64>().prop_map(Expiry::AfterMillis),
    ];
    let compression = prop_oneof![
        Just(Compression::None),
        Just(Compression::Lz4),
        Just(Compression::Zstd)
    ];
    (any::<bool>(), key, value, expiry, compression).prop_map(|(delete, k, v, e, c)| {
        let r = if delete {
            Record::delete(k)
        } else {
            Record::put(k, v)
        };
        r.with_expiry(e).with_compression(c)
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => record().prop_map(Op::Append),
        2 => proptest::collection::vec(record(), 0..6).prop_map(Op::Batch),
        2 => proptest::collection::vec(record(), 1..6).prop_map(Op::Atomic),
        1 => Just(Op::Rotate),
        1 => Just(Op::Sync),
        1 => Just(Op::Reopen),
    ]
}

/// A record as it reads back, less the compression: the encoder stores a value that would
/// not shrink raw, so what was asked for and what was used can differ.
fn comparable(r: &Record) -> Record {
    Record {
        compression: Compression::None,
        ..r.clone()
    }
}

fn assert_same(actual: &[Record], model: &[Record]) {
    let a: Vec<_> = actual.iter().map(comparable).collect();
    let m: Vec<_> = model.iter().map(comparable).collect();
    assert_eq!(a, m);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn replay_equals_every_acknowledged_record(
        ops in proptest::collection::vec(op(), 1..60),
        segment_size in 256u64..8192,
        preallocate: bool,
        // Off: every append is a write system call, with zeros written ahead of it.
        window: bool,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = WalConfig::new(dir.path())
            .max_segment_size(segment_size)
            .preallocate(preallocate)
            .write_window(window)
            .fsync_policy(FsyncPolicy::Os);
        let mut model: Vec<Record> = Vec::new();
        let (mut wal, _) = Wal::open(config.clone()).unwrap();
        for op in ops {
            match op {
                Op::Append(r) => {
                    wal.append(&r).unwrap();
                    model.push(r);
                }
                Op::Batch(rs) => {
                    wal.append_batch(&rs).unwrap();
                    model.extend(rs);
                }
                Op::Atomic(rs) => {
                    wal.append_atomic(&rs).unwrap();
                    model.extend(rs);
                }
                Op::Rotate => {
                    wal.rotate().unwrap();
                }
                Op::Sync => wal.sync().unwrap(),
                Op::Reopen => {
                    // A drop without close, as a crashing process would leave it.
                    drop(wal);
                    let (records, info): (Vec<Record>, RecoveryInfo) = reopen_records(config.clone());
                    assert_same(&records, &model);
                    prop_assert!(info.corruptions.is_empty());
                    wal = Wal::open(config.clone()).unwrap().0;
                }
            }
        }
        let read: Vec<Record> = common::read_all(&wal).into_iter().map(|(_, r)| r).collect();
        assert_same(&read, &model);
    }
}
