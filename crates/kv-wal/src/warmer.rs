//! The warmer: a background thread that brings the active segment's next pages into the
//! page cache before the appends reach them.
//!
//! Why: the first touch of a page of a preallocated segment costs the page's allocation and
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

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::fs::WalFile;

/// What the writer asked for and the warmer has not taken yet.
#[derive(Debug, Default)]
struct State {
    /// The file and the range `[from, to)` of it to bring in.
    wanted: Option<(Arc<dyn WalFile>, u64, u64)>,
    stop: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// The handle the log keeps: it stops and joins the thread when dropped.
#[derive(Debug)]
pub(crate) struct Warmer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Warmer {
    /// Starts the thread.
    pub(crate) fn start() -> io::Result<Warmer> {
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("kv-wal-warmer".into())
                .spawn(move || run(&shared))?
        };
        Ok(Warmer {
            shared,
            thread: Some(thread),
        })
    }

    /// Asks for `[from, to)` of `file` to be brought in. A request the thread has not
    /// taken yet is replaced: the writer has moved past it.
    pub(crate) fn ask(&self, file: &Arc<dyn WalFile>, from: u64, to: u64) {
        if to <= from {
            return;
        }
        self.shared.state.lock().wanted = Some((Arc::clone(file), from, to));
        self.shared.wake.notify_one();
    }
}

impl Drop for Warmer {
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
    loop {
        let (file, from, to) = {
            let mut state = shared.state.lock();
            loop {
                if state.stop {
                    return;
                }
                if let Some(wanted) = state.wanted.take() {
                    break wanted;
                }
                shared.wake.wait(&mut state);
            }
        };
        // Best effort by design (see the module docs).
        let _ = file.warm(from, to - from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    /// A file that only counts the bytes it was asked to warm.
    #[derive(Debug, Default)]
    struct Counting {
        warmed: AtomicU64,
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
            self.warmed.fetch_add(len, Ordering::SeqCst);
            Ok(())
        }
    }

    #[test]
    fn a_request_is_carried_out_and_the_thread_stops_when_dropped() {
        let counting = Arc::new(Counting::default());
        let file: Arc<dyn WalFile> = Arc::clone(&counting) as _;
        let warmer = Warmer::start().unwrap();
        warmer.ask(&file, 4096, 4096 + 65536);
        warmer.ask(&file, 10, 10); // empty: ignored
        let started = Instant::now();
        while counting.warmed.load(Ordering::SeqCst) < 65536 {
            assert!(started.elapsed() < Duration::from_secs(10), "never warmed");
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(warmer);
        // Dropping it joined the thread, which held the last other reference to the file.
        assert_eq!(Arc::strong_count(&file), 2);
        assert_eq!(counting.warmed.load(Ordering::SeqCst), 65536);
    }
}
