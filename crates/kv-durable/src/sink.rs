//! Where committed operations go: the state, behind whatever locking its owner chose.

use kv_core::{Change, OpRef, State};
use parking_lot::RwLock;

/// The state the committer applies operations to, in log order. Implemented by a single
/// locked [`State`] here and by the sharded state of `kv-concurrent`.
pub trait Sink: Send + Sync {
    /// Applies one operation at time `now` (unix ms).
    fn apply(&self, op: OpRef<'_>, now: u64) -> Change;
}

impl Sink for RwLock<State> {
    fn apply(&self, op: OpRef<'_>, now: u64) -> Change {
        self.write().apply(op, now)
    }
}
