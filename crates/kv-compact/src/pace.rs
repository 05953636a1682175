//! Pacing a snapshot's writes, so that the store's durable writers keep their latency while
//! a compaction runs.
//!
//! A compaction writes the whole live state at once; unpaced, it reaches the disk at several
//! hundred MB/s, and every small `fdatasync` of a writer then waits behind it. Measured on
//! the 2-core VM of the README (W7: 2 durable writers, a 123 MB snapshot), the writers' p99
//! during a compaction was 12-32× its value before with no pace (0.37-0.55 s), 1.3-11× at
//! 128-200 MiB/s, and 0.55-1.87× in 14 runs at 64 MiB/s in 256 KiB slices (2.0 s). Slices
//! matter as much as the rate: a shard's megabytes written in one call reached the disk as
//! one request of 3.3 MB, and a writer's sync queued behind each for 2-4 ms.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The most written in one call between two looks at the clock. The kernel writes the
/// slices back as it sees fit; measured, they no longer reached the disk as one request per
/// shard (`docs/performance.md`, W7).
const SLICE: usize = 256 << 10;
/// The longest one sleep lasts, so that a compaction stopped by `close` ends soon.
const NAP: Duration = Duration::from_millis(20);
/// The most time a writer that fell behind (encoding, a slow disk) makes up at full speed:
/// beyond it, the time lost is forgotten rather than caught up in one burst.
const MAX_LAG: Duration = Duration::from_millis(100);

/// How fast a snapshot is written: at most `rate` bytes a second, on average since the
/// first byte, or as fast as the disk takes them.
#[derive(Debug)]
pub(crate) struct Pace {
    rate: Option<u64>,
    started: Option<Instant>,
    written: u64,
    /// Set when the store is closing: a sleeping writer gives up.
    stop: Arc<AtomicBool>,
}

impl Pace {
    /// Paces at `rate` bytes a second (`None`: not at all), until `stop` is set.
    pub(crate) fn new(rate: Option<u64>, stop: Arc<AtomicBool>) -> Self {
        Pace {
            rate: rate.filter(|&r| r > 0),
            started: None,
            written: 0,
            stop,
        }
    }

    /// How much to write before the next [`wrote`](Self::wrote).
    pub(crate) fn slice(&self) -> usize {
        if self.rate.is_some() {
            SLICE
        } else {
            usize::MAX
        }
    }

    /// Counts `bytes` written, then sleeps until the rate allows the next ones.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when the store began closing.
    pub(crate) fn wrote(&mut self, bytes: usize) -> Result<()> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        let now = Instant::now();
        let mut started = *self.started.get_or_insert(now);
        self.written += bytes as u64;
        let due = Duration::from_secs_f64(self.written as f64 / rate as f64);
        if now.duration_since(started) > due + MAX_LAG {
            started = now - due - MAX_LAG;
            self.started = Some(started);
        }
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Err(Error::Closed);
            }
            let Some(early) = due.checked_sub(started.elapsed()) else {
                return Ok(());
            };
            std::thread::sleep(early.min(NAP));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pace at `rate` that nothing stops.
    fn unstopped(rate: Option<u64>) -> Pace {
        Pace::new(rate, Arc::new(AtomicBool::new(false)))
    }

    #[test]
    fn writes_take_at_least_their_bytes_over_the_rate() {
        let mut pace = unstopped(Some(4 << 20));
        assert_eq!(pace.slice(), SLICE);
        let began = Instant::now();
        for _ in 0..4 {
            pace.wrote(SLICE).unwrap();
        }
        // 1 MiB at 4 MiB/s: a quarter of a second at least.
        assert!(
            began.elapsed() >= Duration::from_millis(240),
            "{:?}",
            began.elapsed()
        );
    }

    #[test]
    fn a_writer_that_fell_behind_catches_up_only_a_little_at_full_speed() {
        let mut pace = unstopped(Some(4 << 20));
        pace.wrote(SLICE).unwrap();
        // Held up for a second (encoding, say): 4 MiB of the rate unused.
        std::thread::sleep(Duration::from_secs(1));
        let began = Instant::now();
        for _ in 0..8 {
            pace.wrote(SLICE).unwrap();
        }
        // 2 MiB at 4 MiB/s is half a second, less the 100 ms (MAX_LAG) that may be made
        // up at once, less the first slice: 337 ms. Without the cap, no time at all.
        assert!(
            began.elapsed() >= Duration::from_millis(300),
            "{:?}: the lost second was caught up at full speed",
            began.elapsed()
        );
    }

    #[test]
    fn no_rate_never_sleeps_and_writes_in_one_piece() {
        let mut pace = unstopped(None);
        assert_eq!(pace.slice(), usize::MAX);
        let began = Instant::now();
        for _ in 0..1000 {
            pace.wrote(1 << 30).unwrap();
        }
        assert!(began.elapsed() < Duration::from_secs(1));
        assert_eq!(
            unstopped(Some(0)).slice(),
            usize::MAX,
            "a rate of 0 is no rate"
        );
    }

    #[test]
    fn a_paced_writer_stops_when_the_store_closes() {
        let stop = Arc::new(AtomicBool::new(false));
        let mut pace = Pace::new(Some(1 << 10), Arc::clone(&stop));
        let closer = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                stop.store(true, Ordering::Relaxed);
            })
        };
        // 1 MiB at 1 KiB/s would take 17 minutes.
        assert!(matches!(pace.wrote(1 << 20), Err(Error::Closed)));
        closer.join().unwrap();
    }
}
