//! Figures of the commit path.

use std::time::Duration;

use hdrhistogram::Histogram;

/// What the commit path has done since the store was opened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommitStats {
    /// Groups written (one append each).
    pub groups: u64,
    /// Records written.
    pub records: u64,
    /// Bytes written to the log.
    pub bytes_written: u64,
    /// fdatasyncs made for writes that asked for one and for [`Durable::sync`] (the
    /// background syncs of the batch durability are `background_fsyncs`).
    ///
    /// [`Durable::sync`]: crate::Durable::sync
    pub fsyncs: u64,
    /// fdatasyncs made in the background: the log's flusher's (`Durability::Batch` windows,
    /// the store's or a write's own), and under `Durability::None` the syncs of a segment
    /// ahead of its rotation.
    pub background_fsyncs: u64,
    /// Records made durable by those fsyncs: each counts the records written since the
    /// one before it (a background sync may have made some of them durable already).
    pub records_synced: u64,
    /// Commit latency, from a writer's submit to its answer: median.
    pub latency_p50: Duration,
    /// Commit latency: 99th percentile.
    pub latency_p99: Duration,
    /// Commit latency: maximum.
    pub latency_max: Duration,
    /// Why the store stopped accepting writes, if it did.
    pub failed: Option<String>,
}

impl CommitStats {
    /// Records per fsync: how much group commit saves over one fsync per write.
    pub fn records_per_fsync(&self) -> f64 {
        if self.fsyncs == 0 {
            0.0
        } else {
            self.records_synced as f64 / self.fsyncs as f64
        }
    }
}

/// Collects the figures; lives under the log's lock, so recording takes no lock of its own.
#[derive(Debug)]
pub(crate) struct Recorder {
    pub(crate) stats: CommitStats,
    /// Records written since the last fsync counted in `stats.fsyncs`.
    pub(crate) unsynced: u64,
    latency_us: Histogram<u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            stats: CommitStats::default(),
            unsynced: 0,
            latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 2)
                .expect("valid histogram bounds"),
        }
    }
}

impl Recorder {
    /// Counts an fsync asked for (by a write or by `sync`), which made every record written
    /// since the one before durable.
    pub(crate) fn count_sync(&mut self) {
        self.stats.fsyncs += 1;
        self.stats.records_synced += std::mem::take(&mut self.unsynced);
    }

    pub(crate) fn latency(&mut self, latency: Duration) {
        self.latency_us
            .saturating_record(latency.as_micros().clamp(1, u128::from(u64::MAX)) as u64);
    }

    pub(crate) fn snapshot(&self) -> CommitStats {
        let us = |q: f64| Duration::from_micros(self.latency_us.value_at_quantile(q));
        CommitStats {
            latency_p50: us(0.5),
            latency_p99: us(0.99),
            latency_max: Duration::from_micros(self.latency_us.max()),
            ..self.stats.clone()
        }
    }
}
