//! The background thread: sweeps expired keys, compacts, ages LFU counters, and publishes
//! metrics, each on its own timer. An automatic compaction runs on this thread, so the
//! others wait for it: at the default pace (`Options::compaction_rate`) that is about 16 s
//! per GiB of live data. Reads skip expired keys meanwhile; only their memory waits.

use std::sync::{Arc, Weak};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, RecvTimeoutError, Sender};

use crate::options::Options;
use crate::store::Inner;

/// How often LFU counters are halved.
const DECAY_EVERY: Duration = Duration::from_secs(60);

/// The running thread; dropping this stops it.
#[derive(Debug)]
pub(crate) struct Maintenance {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// A task the thread runs every `every`, and when it is next due.
#[derive(Debug, Clone, Copy)]
struct Timer {
    every: Duration,
    next: Instant,
}

impl Timer {
    /// A timer first due one `every` from now; `None` for a zero interval (never).
    fn new(every: Duration, now: Instant) -> Option<Timer> {
        (!every.is_zero()).then(|| Timer {
            every,
            next: now + every,
        })
    }

    /// Whether the task is due at `now`; if it is, the timer moves on to the next time
    /// after `now` (a thread that fell behind skips the missed ones).
    fn fire(timer: &mut Option<Timer>, now: Instant) -> bool {
        let Some(timer) = timer else { return false };
        if now < timer.next {
            return false;
        }
        timer.next = now + timer.every;
        true
    }
}

impl Maintenance {
    /// Starts the thread if there is anything for it to do: the expiry sweep, automatic
    /// compaction and LFU decay every `sweep_interval`, and (feature `metrics`) publishing
    /// the figures every `metrics_interval`, each on its own timer. It holds the store
    /// weakly, so it never keeps a dropped store alive.
    pub(crate) fn start(store: &Arc<Inner>, options: &Options) -> Option<Self> {
        let now = Instant::now();
        let mut sweep = Timer::new(options.sweep_interval, now);
        #[cfg(feature = "metrics")]
        let mut publish = Timer::new(options.metrics_interval, now);
        #[cfg(not(feature = "metrics"))]
        let mut publish: Option<Timer> = None;
        if sweep.is_none() && publish.is_none() {
            return None;
        }
        let (stop, stopped) = bounded::<()>(0);
        let store: Weak<Inner> = Arc::downgrade(store);
        let thread = thread::Builder::new()
            .name("kv-maintenance".into())
            .spawn(move || {
                let mut decayed = Instant::now();
                loop {
                    let due = [sweep, publish]
                        .into_iter()
                        .flatten()
                        .map(|timer| timer.next)
                        .min()
                        .expect("at least one timer runs");
                    match stopped.recv_deadline(due) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    let Some(store) = store.upgrade() else { return };
                    let now = Instant::now();
                    if Timer::fire(&mut sweep, now) {
                        store.sweep();
                        store.compact_if_due();
                        if decayed.elapsed() >= DECAY_EVERY {
                            store.admission.decay();
                            decayed = Instant::now();
                        }
                    }
                    if Timer::fire(&mut publish, now) {
                        #[cfg(feature = "metrics")]
                        store.stats().publish(store.name());
                    }
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
