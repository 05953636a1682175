//! The background thread: sweeps expired keys, ages LFU counters, publishes metrics.

use std::sync::{Arc, Weak};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, RecvTimeoutError, Sender};

use crate::store::Inner;

/// How often LFU counters are halved.
const DECAY_EVERY: Duration = Duration::from_secs(60);

/// The running thread; dropping this stops it.
#[derive(Debug)]
pub(crate) struct Maintenance {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Maintenance {
    /// Starts the thread if there is anything for it to do every `interval`. It holds the
    /// store weakly, so it never keeps a dropped store alive.
    pub(crate) fn start(store: &Arc<Inner>, interval: Duration) -> Option<Self> {
        if interval.is_zero() {
            return None;
        }
        let (stop, stopped) = bounded::<()>(0);
        let store: Weak<Inner> = Arc::downgrade(store);
        let thread = thread::Builder::new()
            .name("kv-maintenance".into())
            .spawn(move || {
                let mut decayed = Instant::now();
                loop {
                    match stopped.recv_timeout(interval) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    let Some(store) = store.upgrade() else { return };
                    store.sweep();
                    store.compact_if_due();
                    if decayed.elapsed() >= DECAY_EVERY {
                        store.admission.decay();
                        decayed = Instant::now();
                    }
                    #[cfg(feature = "metrics")]
                    store.stats().publish();
                }
            })
            .ok()?;
        Some(Maintenance {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    fn thread_id(&self) -> Option<ThreadId> {
        self.thread.as_ref().map(|t| t.thread().id())
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        drop(self.stop.take());
        // The thread may be the one dropping the store (its upgrade was the last handle):
        // it is on its way out and cannot join itself.
        if self.thread_id() != Some(thread::current().id()) {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}
