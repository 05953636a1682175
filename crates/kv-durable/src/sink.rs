//! Where committed operations go: the state, behind whatever locking its owner chose.

use kv_core::{Change, Op, OpRef, State};
use parking_lot::RwLock;

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
