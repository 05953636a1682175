//! The background thread that makes `FsyncPolicy::Batch` a real upper bound.
//!
//! The writer marks the log dirty on its first unsynced append; the flusher wakes when the
//! window since that append has passed and syncs, whether or not more appends came. A failed
//! sync poisons the log: the writer refuses every later append, because a retried fsync can
//! succeed without the lost pages ever reaching the disk.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::fs::WalFile;

#[derive(Debug)]
struct State {
    /// The segment appends go to.
    file: Arc<dyn WalFile>,
    /// When the oldest unsynced append happened.
    dirty_since: Option<Instant>,
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
}

impl SyncShared {
    pub(crate) fn new(file: Arc<dyn WalFile>) -> Arc<Self> {
        Arc::new(SyncShared {
            state: Mutex::new(State {
                file,
                dirty_since: None,
                stop: false,
                poison: None,
            }),
            wake: Condvar::new(),
            syncing: Mutex::new(()),
            poisoned: AtomicBool::new(false),
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

    /// Records an append that is not yet synced.
    pub(crate) fn mark_dirty(&self) {
        let mut state = self.state.lock();
        if state.dirty_since.is_none() {
            state.dirty_since = Some(Instant::now());
            self.wake.notify_one();
        }
    }

    /// Records that everything appended so far is synced.
    pub(crate) fn mark_clean(&self) {
        self.state.lock().dirty_since = None;
    }

    /// Points the flusher at a new segment (after a rotation that synced the old one).
    pub(crate) fn set_file(&self, file: Arc<dyn WalFile>) {
        self.state.lock().file = file;
    }

    /// Starts the flusher thread for a window.
    pub(crate) fn spawn(self: &Arc<Self>, window: Duration) -> std::io::Result<JoinHandle<()>> {
        let shared = Arc::clone(self);
        std::thread::Builder::new()
            .name("kv-wal-flusher".into())
            .spawn(move || shared.run(window))
    }

    /// Asks the flusher to stop.
    pub(crate) fn stop(&self) {
        self.state.lock().stop = true;
        self.wake.notify_all();
    }

    fn run(&self, window: Duration) {
        let mut state = self.state.lock();
        while !state.stop {
            let Some(since) = state.dirty_since else {
                self.wake.wait(&mut state);
                continue;
            };
            // The window is validated to at most an hour, so this cannot overflow.
            let due = since + window;
            if Instant::now() < due {
                self.wake.wait_until(&mut state, due);
                continue;
            }
            state.dirty_since = None;
            if state.poison.is_some() {
                continue;
            }
            let file = Arc::clone(&state.file);
            drop(state);
            // A failure stops the log; the writer sees it on its next append.
            let _ = self.sync(&*file, || "a background fdatasync failed".to_string());
            state = self.state.lock();
        }
    }
}
