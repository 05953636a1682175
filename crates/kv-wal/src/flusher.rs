//! The background thread that makes `FsyncPolicy::Batch` (and a per-write window asked for
//! with `Wal::sync_within`) a real upper bound.
//!
//! The writer sets a deadline on its first unsynced append (the window from then), or brings
//! it forward for an append that asks for a shorter window; the flusher wakes at the deadline
//! and syncs, whether or not more appends came. A failed sync poisons the log: the writer
//! refuses every later append, because a retried fsync can succeed without the lost pages
//! ever reaching the disk.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::fs::WalFile;

#[derive(Debug)]
struct State {
    /// The segment appends go to.
    file: Arc<dyn WalFile>,
    /// When the unsynced appends must be synced by: the earliest deadline any of them asked
    /// for. `None` when everything appended is synced.
    due: Option<Instant>,
    stop: bool,
    /// Why the log stopped accepting writes.
    poison: Option<Arc<str>>,
}

/// What the writer and the flusher share.
#[derive(Debug)]
pub(crate) struct SyncShared {
    state: Mutex<State>,
    /// Held by whoever syncs, from the fdatasync until its failure (if any) is recorded.
    /// Linux reports a failed writeback to one fdatasync of an open file only: without it, a
    /// writer's fdatasync running beside a failing background one could return success for
    /// pages that never reached the disk, and the writer would acknowledge them.
    syncing: Mutex<()>,
    wake: Condvar,
    poisoned: AtomicBool,
    /// fdatasyncs made in the background (by the flusher, or ahead of a rotation) that
    /// succeeded.
    background_syncs: AtomicU64,
}

impl SyncShared {
    pub(crate) fn new(file: Arc<dyn WalFile>) -> Arc<Self> {
        Arc::new(SyncShared {
            state: Mutex::new(State {
                file,
                due: None,
                stop: false,
                poison: None,
            }),
            wake: Condvar::new(),
            syncing: Mutex::new(()),
            poisoned: AtomicBool::new(false),
            background_syncs: AtomicU64::new(0),
        })
    }

    /// Why the log refuses writes, if it does.
    pub(crate) fn poison(&self) -> Option<Arc<str>> {
        if !self.poisoned.load(Ordering::Acquire) {
            return None;
        }
        self.state.lock().poison.clone()
    }

    /// Stops the log from accepting writes. The first cause is the one kept.
    pub(crate) fn set_poison(&self, cause: String) -> Arc<str> {
        let mut state = self.state.lock();
        let cause = state.poison.get_or_insert_with(|| cause.into()).clone();
        self.poisoned.store(true, Ordering::Release);
        cause
    }

    /// Syncs `file` unless the log is stopped, with no other sync of the log in between: a
    /// failure is recorded (the log stops) before any other sync can start, so a sync that
    /// follows a failed one sees the log stopped instead of a success that proves nothing.
    pub(crate) fn sync(
        &self,
        file: &dyn WalFile,
        what: impl FnOnce() -> String,
    ) -> Result<(), Arc<str>> {
        let _syncing = self.syncing.lock();
        if let Some(cause) = self.poison() {
            return Err(cause);
        }
        file.sync_data()
            .map_err(|e| self.set_poison(format!("{}: {e}", what())))
    }

    /// Counts a successful fdatasync made in the background, by the flusher or ahead of a
    /// rotation.
    pub(crate) fn count_background_sync(&self) {
        self.background_syncs.fetch_add(1, Ordering::Relaxed);
    }

    /// How many fdatasyncs were made in the background (successful ones).
    pub(crate) fn background_syncs(&self) -> u64 {
        self.background_syncs.load(Ordering::Relaxed)
    }

    /// Records an append that is not yet synced, to be synced within `window` of the first
    /// such append (the store-wide window: later appends keep the first one's deadline, so
    /// only the first one reads the clock).
    pub(crate) fn mark_dirty(&self, window: Duration) {
        let mut state = self.state.lock();
        if state.due.is_none() {
            // The window is validated to at most an hour, so this cannot overflow.
            state.due = Some(Instant::now() + window);
            self.wake.notify_one();
        }
    }

    /// Records that everything appended so far must be synced within `window` from now,
    /// bringing the flusher's deadline forward if it was later.
    pub(crate) fn due_within(&self, window: Duration) {
        // A window past what an `Instant` can hold (centuries) is no deadline at all.
        let Some(due) = Instant::now().checked_add(window) else {
            return;
        };
        let mut state = self.state.lock();
        if state.due.is_none_or(|d| due < d) {
            state.due = Some(due);
            self.wake.notify_one();
        }
    }

    /// Records that everything appended so far is synced.
    pub(crate) fn mark_clean(&self) {
        self.state.lock().due = None;
    }

    /// Points the flusher at a new segment (after a rotation that synced the old one).
    pub(crate) fn set_file(&self, file: Arc<dyn WalFile>) {
        self.state.lock().file = file;
    }

    /// Starts the flusher thread.
    pub(crate) fn spawn(self: &Arc<Self>) -> std::io::Result<JoinHandle<()>> {
        let shared = Arc::clone(self);
        std::thread::Builder::new()
            .name("kv-wal-flusher".into())
            .spawn(move || shared.run())
    }

    /// Asks the flusher to stop.
    pub(crate) fn stop(&self) {
        self.state.lock().stop = true;
        self.wake.notify_all();
    }

    fn run(&self) {
        let mut state = self.state.lock();
        while !state.stop {
            let Some(due) = state.due else {
                self.wake.wait(&mut state);
                continue;
            };
            if Instant::now() < due {
                self.wake.wait_until(&mut state, due);
                continue;
            }
            state.due = None;
            if state.poison.is_some() {
                continue;
            }
            let file = Arc::clone(&state.file);
            drop(state);
            // A failure stops the log; the writer sees it on its next append.
            if self
                .sync(&*file, || "a background fdatasync failed".to_string())
                .is_ok()
            {
                self.count_background_sync();
            }
            state = self.state.lock();
        }
    }
}
