//! Between the state's operations and the log's records.

use kv_core::{Expiry, Op, OpRef};
use kv_wal::{Record, RecordKind, RecordRef};

use crate::options::CompressionPolicy;

/// The log record of an operation.
pub(crate) fn record_of(op: &Op, compression: &CompressionPolicy) -> Record {
    match op {
        Op::Put { key, value, expiry } => Record::put(key.clone(), value.clone())
            .with_expiry(match *expiry {
                Expiry::Never => kv_wal::Expiry::Never,
                Expiry::AfterMillis(ms) => kv_wal::Expiry::AfterMillis(ms),
                Expiry::AtUnixMillis(at) => kv_wal::Expiry::AtUnixMillis(at),
            })
            .with_compression(compression.for_len(value.len())),
        Op::Delete { key } => Record::delete(key.clone()),
    }
}

/// The operation of a record whose value is `value` (the stored value, decompressed).
pub(crate) fn op_of<'a>(record: &RecordRef<'a>, value: &'a [u8]) -> OpRef<'a> {
    match record.kind() {
        RecordKind::Put => OpRef::Put {
            key: record.key(),
            value,
            expiry: match record.expiry() {
                kv_wal::Expiry::Never => Expiry::Never,
                kv_wal::Expiry::AfterMillis(ms) => Expiry::AfterMillis(ms),
                kv_wal::Expiry::AtUnixMillis(at) => Expiry::AtUnixMillis(at),
            },
        },
        RecordKind::Delete => OpRef::Delete { key: record.key() },
    }
}
