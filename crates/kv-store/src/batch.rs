//! Atomic write batches.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kv_core::{Expiry, Op};

use crate::into_bytes::IntoBytes;

/// Writes applied all together or not at all, even across a crash in the middle of writing
/// them. Build one, then hand it to [`KvStore::write`](crate::KvStore::write):
///
/// ```
/// # fn main() -> Result<(), kv_store::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = kv_store::KvStore::open(dir.path())?;
/// let mut batch = kv_store::WriteBatch::new();
/// batch.put("account:a", "90").put("account:b", "110").delete("pending:7");
/// store.write(batch)?;
/// assert_eq!(store.get("account:b").unwrap(), "110");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    pub(crate) ops: Vec<Op>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        WriteBatch::default()
    }

    /// An empty batch with room for `ops` operations before it reallocates.
    pub fn with_capacity(ops: usize) -> Self {
        WriteBatch {
            ops: Vec::with_capacity(ops),
        }
    }

    /// Adds: set `key` to `value`.
    pub fn put(&mut self, key: impl IntoBytes, value: impl IntoBytes) -> &mut Self {
        self.ops.push(Op::put(key.into_bytes(), value.into_bytes()));
        self
    }

    /// Adds: set `key` to `value` until `ttl` after the batch is written.
    pub fn put_with_ttl(
        &mut self,
        key: impl IntoBytes,
        value: impl IntoBytes,
        ttl: Duration,
    ) -> &mut Self {
        self.ops.push(Op::Put {
            key: key.into_bytes(),
            value: value.into_bytes(),
            expiry: Expiry::AfterMillis(millis(ttl)),
        });
        self
    }

    /// Adds: set `key` to `value` until the absolute `deadline`, kept to the millisecond
    /// exactly as given (what an import of exported entries needs: a deadline computed back
    /// from a time to live would move by the time it took to write). A deadline already past
    /// writes an entry that is expired at once; one before 1970 counts as 1970.
    pub fn put_with_deadline(
        &mut self,
        key: impl IntoBytes,
        value: impl IntoBytes,
        deadline: SystemTime,
    ) -> &mut Self {
        let at = unix_millis(deadline);
        self.ops.push(Op::Put {
            key: key.into_bytes(),
            value: value.into_bytes(),
            expiry: Expiry::AtUnixMillis(at),
        });
        self
    }

    /// Adds: remove `key`.
    pub fn delete(&mut self, key: impl IntoBytes) -> &mut Self {
        self.ops.push(Op::delete(key.into_bytes()));
        self
    }

    /// Operations in the batch.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// A deadline in unix milliseconds (as entries hold it) as a time.
pub(crate) fn time_of(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// A time in unix milliseconds, saturating (0 before the epoch).
pub(crate) fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, millis)
}

/// Fixes relative deadlines to absolute ones at `now`: the log holds absolute deadlines, so
/// replaying it later does not extend them.
pub(crate) fn fix_deadlines(ops: &mut [Op], now: u64) {
    for op in ops {
        if let Op::Put { expiry, .. } = op {
            if let Expiry::AfterMillis(ms) = *expiry {
                *expiry = Expiry::AtUnixMillis(now.saturating_add(ms));
            }
        }
    }
}
