//! Between the state's operations and the log's records.

use kv_core::{Expiry, Op, OpRef};
use kv_wal::{Record, RecordKind, RecordRef};

use crate::options::CompressionPolicy;

/// The log record of an operation, taking the operation's key and value (which
/// [`give_back`] returns). Cloning them instead would cost an allocation each: a `Bytes` made
/// from a `Vec` allocates a shared header on its first clone.
pub(crate) fn lend(op: &mut Op, compression: &CompressionPolicy) -> Record {
    match op {
        Op::Put { key, value, expiry } => {
            let compression = compression.for_len(value.len());
            Record::put(std::mem::take(key), std::mem::take(value))
                .with_expiry(match *expiry {
                    Expiry::Never => kv_wal::Expiry::Never,
                    Expiry::AfterMillis(ms) => kv_wal::Expiry::AfterMillis(ms),
                    Expiry::AtUnixMillis(at) => kv_wal::Expiry::AtUnixMillis(at),
                })
                .with_compression(compression)
        }
        Op::Delete { key } => Record::delete(std::mem::take(key)),
    }
}

/// Puts back into `op` the key and value [`lend`] took for `record`.
pub(crate) fn give_back(op: &mut Op, record: Record) {
    match op {
        Op::Put { key, value, .. } => {
            *key = record.key;
            *value = record.value;
        }
        Op::Delete { key } => *key = record.key,
    }
}

/// The operation of a record whose value is `value` (the stored value, decompressed): what
/// replaying a log applies, and what loading a snapshot's parts does.
pub fn op_of<'a>(record: &RecordRef<'a>, value: &'a [u8]) -> OpRef<'a> {
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
