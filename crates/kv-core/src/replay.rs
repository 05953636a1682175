//! Rebuilding the state from a log's operations.

use std::time::{Duration, Instant};

use crate::index::IndexKind;
use crate::op::OpRef;
use crate::state::{Change, State};

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Operations applied.
    pub records: u64,
    /// Keys in the state afterwards.
    pub keys: u64,
    /// Puts whose deadline had passed by the time of the replay, so their keys were dropped.
    pub expired_dropped: u64,
    /// How long the replay took.
    pub duration: Duration,
}

/// Applies operations in log order to a state, counting what happens.
///
/// ```
/// use kv_core::{IndexKind, OpRef, Expiry, Replay, State};
///
/// let mut state = State::new(IndexKind::Hash);
/// let mut replay = Replay::new(&mut state, 1_000);
/// replay.apply(OpRef::Put { key: b"a", value: b"1", expiry: Expiry::Never });
/// replay.apply(OpRef::Put { key: b"gone", value: b"1", expiry: Expiry::AtUnixMillis(999) });
/// let report = replay.finish();
/// assert_eq!((report.records, report.keys, report.expired_dropped), (2, 1, 1));
/// ```
#[derive(Debug)]
pub struct Replay<'s> {
    state: &'s mut State,
    now: u64,
    report: ReplayReport,
    started: Instant,
}

impl<'s> Replay<'s> {
    /// Starts a replay into `state`; relative TTLs count from `now` (unix ms).
    pub fn new(state: &'s mut State, now: u64) -> Self {
        Replay {
            state,
            now,
            report: ReplayReport::default(),
            started: Instant::now(),
        }
    }

    /// Applies the next operation of the log.
    #[inline]
    pub fn apply(&mut self, op: OpRef<'_>) {
        self.report.records += 1;
        if self.state.apply(op, self.now) == Change::Expired {
            self.report.expired_dropped += 1;
        }
    }

    /// Ends the replay.
    pub fn finish(mut self) -> ReplayReport {
        self.report.keys = self.state.len() as u64;
        self.report.duration = self.started.elapsed();
        self.report
    }
}

/// Builds a state from operations in log order.
pub fn replay<'a>(
    ops: impl IntoIterator<Item = OpRef<'a>>,
    kind: IndexKind,
    now: u64,
) -> (State, ReplayReport) {
    let mut state = State::new(kind);
    let mut replay = Replay::new(&mut state, now);
    for op in ops {
        replay.apply(op);
    }
    let report = replay.finish();
    (state, report)
}
