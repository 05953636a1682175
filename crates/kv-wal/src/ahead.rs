//! Work done ahead of the writer, on a background thread of the log's own, so that the
//! writer does not do it inside its appends:
//!
//! - **Warming**: the active segment's next pages are read into the page cache before the
//!   appends reach them, for a log that appends through write windows.
//! - **Syncing ahead**: under [`FsyncPolicy::Os`](crate::FsyncPolicy::Os), the active
//!   segment is synced each time another eighth of a segment (of 8 MiB or more) was
//!   appended to it unsynced, so that the sync its rotation must make (under the log's
//!   lock, with every writer waiting) finds little left to write.
//!
//! Why warm: the first touch of a page of a preallocated segment costs the page's allocation and
//! zeroing (its blocks hold no data yet, so the kernel fills it with zeros instead of
//! reading it), and in a virtual machine the first touch of memory the host has not backed
//! yet costs far more: about 2 ms a MiB here. Paid by the writer, inside its appends, that
//! was a tenth of a buffered writer's time (`__pi_memset` under a page fault, 10.6% of
//! W2's profile). Paid by this thread, which reads the pages ([`WalFile::warm`]), it runs
//! on another core while the writer goes on; the writer then finds each page in the cache
//! and only maps it.
//!
//! The pages it brings in are clean zeros, the log's free space: a sync writes none of
//! them, and a crash loses nothing of them. Warming is only ever a speed-up: a request that
//! fails, comes late or is dropped for a newer one changes no byte and no result.
//!
//! Why sync ahead: a buffered log can hold a whole segment that is not on disk yet (128 MiB
//! by default), and its rotation syncs it before the next segment exists. Measured here
//! after a million buffered puts, that stopped every writer for 72-81 ms. Syncing ahead
//! is a sync like any other of the log ([`Syncer`]): serialised with the others, and a
//! failure stops the log, which says why on its next append. It makes nothing durable
//! that the policy promised to leave to the operating system, only earlier.

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::fs::WalFile;
use crate::syncer::Syncer;

/// What the writer asked for and the thread has not taken yet.
#[derive(Debug, Default)]
struct State {
    /// The file and the range `[from, to)` of it to bring in.
    warm: Option<(Arc<dyn WalFile>, u64, u64)>,
    /// A segment to sync.
    sync: Option<Syncer>,
    stop: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// The handle the log keeps: it stops and joins the thread when dropped (after the sync it
/// may be making).
#[derive(Debug)]
pub(crate) struct Ahead {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Ahead {
    /// Starts the thread.
    pub(crate) fn start() -> io::Result<Ahead> {
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("kv-wal-ahead".into())
                .spawn(move || run(&shared))?
        };
        Ok(Ahead {
            shared,
            thread: Some(thread),
        })
    }

    /// Asks for `[from, to)` of `file` to be brought in. A request the thread has not
    /// taken yet is replaced: the writer has moved past it.
    pub(crate) fn warm(&self, file: &Arc<dyn WalFile>, from: u64, to: u64) {
        if to <= from {
            return;
        }
        self.shared.state.lock().warm = Some((Arc::clone(file), from, to));
        self.shared.wake.notify_one();
    }

    /// Asks for the segment `syncer` syncs to be synced.
    pub(crate) fn sync(&self, syncer: Syncer) {
        self.shared.state.lock().sync = Some(syncer);
        self.shared.wake.notify_one();
    }
}

/// One thing to do.
enum Work {
    Warm(Arc<dyn WalFile>, u64, u64),
    Sync(Syncer),
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.shared.state.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            // A panic in the thread cost only speed: nothing to report.
            let _ = thread.join();
        }
    }
}

fn run(shared: &Shared) {
    let mut warmed_last = false;
    loop {
        let work = {
            let mut state = shared.state.lock();
            loop {
                if state.stop {
                    return;
                }
                // Warming first, as the writer is about to need it, but a sync waits for
                // one warming at most: a writer that keeps a warming always asked for
                // would never see its segment synced ahead.
                if warmed_last {
                    if let Some(syncer) = state.sync.take() {
                        break Work::Sync(syncer);
                    }
                }
                if let Some((file, from, to)) = state.warm.take() {
                    break Work::Warm(file, from, to);
                }
                if let Some(syncer) = state.sync.take() {
                    break Work::Sync(syncer);
                }
                shared.wake.wait(&mut state);
            }
        };
        warmed_last = matches!(work, Work::Warm(..));
        match work {
            // Best effort by design (see the module docs).
            Work::Warm(file, from, to) => {
                let _ = file.warm(from, to - from);
            }
            // A failure stops the log (`Syncer::sync`): the writer reports it.
            Work::Sync(syncer) => {
                let _ = syncer.sync_in_background();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flusher::SyncShared;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    /// A file that only counts the bytes it was asked to warm, taking `warm_ms` for each.
    #[derive(Debug, Default)]
    struct Counting {
        warmed: AtomicU64,
        warm_ms: u64,
    }

    impl WalFile for Counting {
        fn read_at(&self, _: &mut [u8], _: u64) -> io::Result<usize> {
            Ok(0)
        }
        fn write_all_at(&self, _: &[u8], _: u64) -> io::Result<()> {
            Ok(())
        }
        fn sync_data(&self) -> io::Result<()> {
            Ok(())
        }
        fn set_len(&self, _: u64) -> io::Result<()> {
            Ok(())
        }
        fn size(&self) -> io::Result<u64> {
            Ok(0)
        }
        fn allocate(&self, _: u64) -> io::Result<()> {
            Ok(())
        }
        fn warm(&self, _: u64, len: u64) -> io::Result<()> {
            std::thread::sleep(Duration::from_millis(self.warm_ms));
            self.warmed.fetch_add(len, Ordering::SeqCst);
            Ok(())
        }
    }

    #[test]
    fn a_request_is_carried_out_and_the_thread_stops_when_dropped() {
        let counting = Arc::new(Counting::default());
        let file: Arc<dyn WalFile> = Arc::clone(&counting) as _;
        let ahead = Ahead::start().unwrap();
        ahead.warm(&file, 4096, 4096 + 65536);
        ahead.warm(&file, 10, 10); // empty: ignored
        let started = Instant::now();
        while counting.warmed.load(Ordering::SeqCst) < 65536 {
            assert!(started.elapsed() < Duration::from_secs(10), "never warmed");
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(ahead);
        // Dropping it joined the thread, which held the last other reference to the file.
        assert_eq!(Arc::strong_count(&file), 2);
        assert_eq!(counting.warmed.load(Ordering::SeqCst), 65536);
    }

    #[test]
    fn a_sync_is_not_starved_by_warmings_always_asked_for() {
        let counting = Arc::new(Counting {
            warm_ms: 20,
            ..Counting::default()
        });
        let file: Arc<dyn WalFile> = Arc::clone(&counting) as _;
        let shared = SyncShared::new(Arc::clone(&file));
        let ahead = Ahead::start().unwrap();
        ahead.warm(&file, 0, 4096);
        std::thread::sleep(Duration::from_millis(1));
        ahead.sync(Syncer::new(
            Arc::clone(&shared),
            Arc::clone(&file),
            "segment".into(),
        ));
        // A writer faster than the warmings: one is always waiting.
        let started = Instant::now();
        while shared.background_syncs() == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the sync never ran"
            );
            ahead.warm(&file, 0, 4096);
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
