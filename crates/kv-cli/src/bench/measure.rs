//! How `kv bench` times the workloads: latency histograms, threads started together.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Latencies in nanoseconds, 3 significant digits, up to a minute.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

impl Latencies {
    pub fn new() -> Self {
        Latencies(Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds"))
    }

    /// Records one operation's latency.
    pub fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.0.saturating_record(nanos.max(1));
    }

    /// Times `op` and records it.
    pub fn time<T>(&mut self, op: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = op();
        self.record(started.elapsed());
        result
    }

    /// Adds every latency of `other`.
    pub fn merge(&mut self, other: &Latencies) {
        self.0.add(&other.0).expect("histograms of the same bounds");
    }

    /// The latency at `quantile` (0..=1) in microseconds; `None` when nothing was recorded.
    pub fn micros(&self, quantile: f64) -> Option<f64> {
        (!self.0.is_empty()).then(|| self.0.value_at_quantile(quantile) as f64 / 1e3)
    }
}

/// Runs `work(thread, latencies)` on `threads` threads released together; returns the wall
/// time from their release to the last one's end, and their latencies merged. The first
/// error of any thread is the result.
pub fn parallel<F>(threads: u64, work: F) -> Result<(Duration, Latencies), kv_store::Error>
where
    F: Fn(u64, &mut Latencies) -> Result<(), kv_store::Error> + Sync,
{
    let start = Barrier::new(threads as usize + 1);
    let (elapsed, parts) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (start, work) = (&start, &work);
                s.spawn(move || {
                    let mut latencies = Latencies::new();
                    start.wait();
                    work(t, &mut latencies).map(|()| latencies)
                })
            })
            .collect();
        start.wait();
        let started = Instant::now();
        let parts: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("a workload thread panicked"))
            .collect();
        (started.elapsed(), parts)
    });
    let mut all = Latencies::new();
    for part in parts {
        all.merge(&part?);
    }
    Ok((elapsed, all))
}

/// `total` operations shared among `threads`: thread `t`'s share.
pub fn share(total: u64, threads: u64, t: u64) -> u64 {
    total / threads + u64::from(t < total % threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_total() {
        for (total, threads) in [(10, 3), (2, 8), (1_000_000, 64)] {
            let sum: u64 = (0..threads).map(|t| share(total, threads, t)).sum();
            assert_eq!(sum, total);
        }
    }

    #[test]
    fn percentiles_come_in_microseconds() {
        let mut latencies = Latencies::new();
        assert_eq!(latencies.micros(0.5), None);
        for us in 1..=100 {
            latencies.record(Duration::from_micros(us));
        }
        let p50 = latencies.micros(0.5).unwrap();
        assert!((49.0..=51.0).contains(&p50), "{p50}");
    }
}
