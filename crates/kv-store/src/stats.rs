//! What a store reports about itself.

use kv_compact::CompactionStats;
use kv_durable::{CommitStats, OpenReport};

/// A store's figures at one moment, from [`KvStore::stats`](crate::KvStore::stats).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Live keys.
    pub keys: usize,
    /// Memory held by keys, values, deadlines and the index, as the limits count it.
    pub memory_used: usize,
    /// Bytes of the live entries themselves (keys, values, deadlines).
    pub live_bytes: u64,
    /// Segment files the log spans.
    pub log_segments: u64,
    /// Bytes of records in the log: what its segments hold, not their preallocated space.
    pub log_bytes: u64,
    /// Bytes of the current snapshot (0 before the first compaction).
    pub snapshot_bytes: u64,
    /// `live_bytes / (log_bytes + snapshot_bytes)`: how much of what is stored is still live
    /// data. Compaction raises it back towards 1.
    pub live_data_ratio: f64,
    /// What opening found and replayed.
    pub recovery: OpenReport,
    /// The group commit's figures: groups, records, fsyncs, records per fsync, latency.
    pub commit: CommitStats,
    /// Compactions run and failed, and the last one's duration and bytes before and after.
    pub compaction: CompactionStats,
    /// Keys evicted to stay within the limits.
    pub evictions: u64,
    /// Expired keys removed from memory by the sweep.
    pub expirations: u64,
    /// Writes that failed (limits, full disk, log failure, closed store).
    pub errors: u64,
}

#[cfg(feature = "metrics")]
impl Stats {
    /// Publishes the figures through the `metrics` crate, under names starting with `kv_`.
    pub(crate) fn publish(&self) {
        use metrics::{counter, gauge};
        gauge!("kv_keys").set(self.keys as f64);
        gauge!("kv_memory_used_bytes").set(self.memory_used as f64);
        gauge!("kv_live_bytes").set(self.live_bytes as f64);
        gauge!("kv_log_segments").set(self.log_segments as f64);
        gauge!("kv_log_bytes").set(self.log_bytes as f64);
        gauge!("kv_live_data_ratio").set(self.live_data_ratio);
        gauge!("kv_failed").set(if self.commit.failed.is_some() {
            1.0
        } else {
            0.0
        });
        gauge!("kv_commit_latency_p50_seconds").set(self.commit.latency_p50.as_secs_f64());
        gauge!("kv_commit_latency_p99_seconds").set(self.commit.latency_p99.as_secs_f64());
        counter!("kv_commit_groups_total").absolute(self.commit.groups);
        counter!("kv_records_written_total").absolute(self.commit.records);
        counter!("kv_log_bytes_written_total").absolute(self.commit.bytes_written);
        counter!("kv_fsyncs_total").absolute(self.commit.fsyncs);
        counter!("kv_evictions_total").absolute(self.evictions);
        counter!("kv_compactions_total").absolute(self.compaction.compactions);
        counter!("kv_compaction_failures_total").absolute(self.compaction.failures);
        gauge!("kv_snapshot_bytes").set(self.snapshot_bytes as f64);
        counter!("kv_expirations_total").absolute(self.expirations);
        counter!("kv_errors_total").absolute(self.errors);
    }
}
