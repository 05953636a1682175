//! Where committed operations go: the state, behind whatever locking its owner chose.

use kv_core::{Change, Op, OpRef, State};
use parking_lot::RwLock;

/// Applies one operation of a replayed log.
pub type ApplyOp<'a> = dyn FnMut(OpRef<'_>) + 'a;

/// Reads the log, calling the function it is given with each operation in order.
pub type DriveReplay<'a> = dyn FnMut(&mut ApplyOp<'_>) + 'a;

/// Reads part `i` of a snapshot, calling the function it is given with each of the part's
/// operations in order. Parts may be read on several threads at once.
pub type ReadPart<'a> = dyn Fn(usize, &mut ApplyOp<'_>) + Sync + 'a;

/// The state the committer applies operations to, in log order. Implemented by a single
/// locked [`State`] here and by the sharded state of `kv-concurrent`.
pub trait Sink: Send + Sync {
    /// Applies one operation at time `now` (unix ms).
    fn apply(&self, op: OpRef<'_>, now: u64) -> Change;

    /// Applies the operations of one atomic batch so that no reader sees some of them without
    /// the others. The default applies them one by one, which suits a sink without readers
    /// (replay); a sink that serves readers overrides it.
    fn apply_batch(&self, ops: &[Op], now: u64) {
        for op in ops {
            self.apply(op.as_ref(), now);
        }
    }

    /// Replays a log into the sink at open, before any reader or writer exists: calls `drive`
    /// once with a function that applies the log's operations, in order, and returns how many
    /// puts were dropped because their deadline had passed at `now`.
    ///
    /// The default applies each operation on the calling thread. A sink may instead spread
    /// the work over threads, as long as the operations of any one key are applied in order.
    fn replay(&self, now: u64, drive: &mut DriveReplay<'_>) -> u64 {
        let mut expired = 0;
        drive(&mut |op| {
            if self.apply(op, now) == Change::Expired {
                expired += 1;
            }
        });
        expired
    }

    /// Loads the parts of a snapshot at open, before any reader or writer exists: part `i`
    /// is `part_bytes[i]` bytes long on disk, and `read(i, apply)` calls `apply` with its
    /// operations in order. Returns how many puts were dropped because their deadline had
    /// passed at `now`.
    ///
    /// The result must be that of applying part 0, then part 1, and so on. The default does
    /// exactly that on the calling thread; a sink may read parts at once on several threads
    /// (holding a bounded number of their bytes at a time), and size its tables from their
    /// counts before it inserts, as long as the result is the same.
    fn load_parts(&self, now: u64, part_bytes: &[u64], read: &ReadPart<'_>) -> u64 {
        let mut expired = 0;
        for part in 0..part_bytes.len() {
            read(part, &mut |op| {
                if self.apply(op, now) == Change::Expired {
                    expired += 1;
                }
            });
        }
        expired
    }
}

impl Sink for RwLock<State> {
    fn apply(&self, op: OpRef<'_>, now: u64) -> Change {
        self.write().apply(op, now)
    }

    fn apply_batch(&self, ops: &[Op], now: u64) {
        let mut state = self.write();
        for op in ops {
            state.apply(op.as_ref(), now);
        }
    }
}

#[cfg(test)]
mod tests {
    use kv_core::{Expiry, IndexKind};

    use super::*;

    /// The default load applies part 0, then part 1, and so on: a key put in two parts ends
    /// with the later part's value, and a put already expired is dropped and counted.
    #[test]
    fn the_default_load_applies_the_parts_in_order() {
        type Put = (&'static [u8], &'static [u8], Expiry);
        let parts: [&[Put]; 3] = [
            &[(b"a", b"0", Expiry::Never), (b"b", b"0", Expiry::Never)],
            &[(b"a", b"1", Expiry::Never)],
            &[
                (b"b", b"gone", Expiry::AtUnixMillis(5)),
                (b"c", b"2", Expiry::AtUnixMillis(50)),
            ],
        ];
        let sink = RwLock::new(State::new(IndexKind::Ordered));
        let expired = sink.load_parts(10, &[0; 3], &|i, apply| {
            for &(key, value, expiry) in parts[i] {
                apply(OpRef::Put { key, value, expiry });
            }
        });
        assert_eq!(expired, 1);
        let state = sink.read();
        let value = |key: &[u8]| state.get(key, 10).map(|e| e.value().to_vec());
        assert_eq!(value(b"a"), Some(b"1".to_vec()));
        assert_eq!(value(b"b"), None);
        assert_eq!(value(b"c"), Some(b"2".to_vec()));
    }
}
