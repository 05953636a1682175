//! What a store reports about itself: [`Stats`], each of its figures under one name.
//!
//! A figure's name is the same everywhere: the field of [`Stats`], the key in `kv stats`
//! (text and `--json`) and in the shell's `STATS` line, and, after `kv_`, the metric's name
//! (feature `metrics`). The unit is in the name: `_bytes`, `_micros`, `_ratio`, `_total`
//! for counters (which only grow while the store is open); a bare plural (`keys`,
//! `log_segments`) counts things. The table of the crate's documentation lists them all.

use kv_compact::{CompactionReport, CompactionStats};
use kv_durable::{CommitStats, OpenReport};

/// Whether a figure only grows while the store is open, or goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FigureKind {
    /// Only grows (a Prometheus counter); its name ends in `_total`.
    Counter,
    /// Goes up and down, or is set once (a Prometheus gauge).
    Gauge,
}

/// What a figure counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FigureUnit {
    /// Things (keys, records, segments, fsyncs).
    Count,
    /// Bytes.
    Bytes,
    /// Microseconds.
    Micros,
    /// A ratio of two figures.
    Ratio,
    /// 0 or 1 (false or true).
    Flag,
}

impl std::fmt::Display for Stats {
    /// One `name: value` line a figure, in the order of [`Stats::figures`] (as `kv stats`
    /// prints them), then `failure: ...` if the store stopped accepting writes.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = kv_store::KvStore::open(dir.path())?;
    /// store.put("k", "v")?;
    /// assert!(store.stats().to_string().starts_with("keys: 1\n"));
    /// # Ok(())
    /// # }
    /// ```
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for figure in self.figures() {
            writeln!(f, "{}: {}", figure.name, figure.value)?;
        }
        if let Some(reason) = &self.failure {
            writeln!(f, "failure: {reason}")?;
        }
        Ok(())
    }
}

/// A figure's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FigureValue {
    /// A whole number.
    Count(u64),
    /// A ratio.
    Ratio(f64),
    /// A yes or no.
    Flag(bool),
}

impl FigureValue {
    /// The value as a metric sample: a flag is 0 or 1.
    pub fn as_f64(self) -> f64 {
        match self {
            FigureValue::Count(n) => n as f64,
            FigureValue::Ratio(r) => r,
            FigureValue::Flag(b) => u8::from(b).into(),
        }
    }
}

impl std::fmt::Display for FigureValue {
    /// Counts as integers, ratios with three decimals, flags as `true`/`false`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FigureValue::Count(n) => write!(f, "{n}"),
            FigureValue::Ratio(r) => write!(f, "{r:.3}"),
            FigureValue::Flag(b) => write!(f, "{b}"),
        }
    }
}

impl From<u64> for FigureValue {
    fn from(n: u64) -> Self {
        FigureValue::Count(n)
    }
}

impl From<usize> for FigureValue {
    fn from(n: usize) -> Self {
        FigureValue::Count(n as u64)
    }
}

impl From<f64> for FigureValue {
    fn from(r: f64) -> Self {
        FigureValue::Ratio(r)
    }
}

impl From<bool> for FigureValue {
    fn from(b: bool) -> Self {
        FigureValue::Flag(b)
    }
}

/// One figure of [`Stats`], as [`Stats::figures`] lists them.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Figure {
    /// Its name: the field of [`Stats`], the key `kv stats` prints, the metric's name after
    /// `kv_`.
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: FigureKind,
    /// What it counts.
    pub unit: FigureUnit,
    /// One sentence saying what it is (the field's documentation).
    pub help: &'static str,
    /// Its value now.
    pub value: FigureValue,
}

/// Declares [`Stats`] and [`Stats::figures`] from one list, so that the field, the figure
/// and the metric cannot have different names.
macro_rules! stats {
    ($( $(#[doc = $doc:literal])+ $name:ident: $ty:ty => $kind:ident, $unit:ident; )+) => {
        /// A store's figures at one moment, from [`KvStore::stats`](crate::KvStore::stats).
        /// The crate's documentation has them all in one table, with their metrics.
        #[derive(Debug, Clone, PartialEq, Default)]
        #[non_exhaustive]
        pub struct Stats {
            $( $(#[doc = $doc])+ pub $name: $ty, )+
            /// Why the store stopped accepting writes, if it did (`failed`).
            pub failure: Option<String>,
            /// The last compaction since the store was opened, if one ran.
            pub last_compaction: Option<CompactionReport>,
        }

        impl Stats {
            /// Every figure, in the order `kv stats` prints them.
            pub fn figures(&self) -> Vec<Figure> {
                vec![$(
                    Figure {
                        name: stringify!($name),
                        kind: FigureKind::$kind,
                        unit: FigureUnit::$unit,
                        help: concat!($($doc),+).trim_ascii(),
                        value: FigureValue::from(self.$name),
                    },
                )+]
            }
        }
    };
}

stats! {
    /// Live keys.
    keys: usize => Gauge, Count;
    /// Memory held by keys, values, deadlines and the index, as the limits count it.
    memory_used_bytes: usize => Gauge, Bytes;
    /// Bytes of the live entries themselves (keys, values, deadlines).
    live_bytes: u64 => Gauge, Bytes;
    /// Segment files the log spans.
    log_segments: u64 => Gauge, Count;
    /// Bytes of records in the log (not its segments' preallocated space).
    log_bytes: u64 => Gauge, Bytes;
    /// Bytes of the current snapshot (0 before the first compaction).
    snapshot_bytes: u64 => Gauge, Bytes;
    /// Live bytes over log and snapshot bytes: how much of what is stored is live data.
    /// Compaction raises it back towards 1.
    live_data_ratio: f64 => Gauge, Ratio;
    /// Groups the group commit wrote (one append each).
    commit_groups_total: u64 => Counter, Count;
    /// Records written to the log.
    commit_records_total: u64 => Counter, Count;
    /// Bytes written to the log.
    commit_bytes_total: u64 => Counter, Bytes;
    /// fdatasyncs made for writes that asked for one, and for `sync` calls.
    fsyncs_total: u64 => Counter, Count;
    /// Records made durable by those fdatasyncs.
    fsynced_records_total: u64 => Counter, Count;
    /// fdatasyncs made in the background within `Batch` windows.
    background_fsyncs_total: u64 => Counter, Count;
    /// Records per fdatasync asked for: how much the group commit saves.
    records_per_fsync_ratio: f64 => Gauge, Ratio;
    /// Commit latency, from a write's submission to its answer: median.
    commit_latency_p50_micros: u64 => Gauge, Micros;
    /// Commit latency: 99th percentile.
    commit_latency_p99_micros: u64 => Gauge, Micros;
    /// Commit latency: maximum.
    commit_latency_max_micros: u64 => Gauge, Micros;
    /// Writes that failed (limits, full disk, log failure, closed store).
    errors_total: u64 => Counter, Count;
    /// Whether the store stopped accepting writes (`failure` says why).
    failed: bool => Gauge, Flag;
    /// Compactions that completed.
    compactions_total: u64 => Counter, Count;
    /// Compactions that failed.
    compaction_failures_total: u64 => Counter, Count;
    /// Keys evicted to stay within the limits.
    evictions_total: u64 => Counter, Count;
    /// Expired keys removed from memory by the sweep.
    expirations_total: u64 => Counter, Count;
    /// Records the log's recovery scan found at open.
    open_log_records: u64 => Gauge, Count;
    /// Records applied to the state at open, from the snapshot and the log.
    open_replayed_records: u64 => Gauge, Count;
    /// Puts dropped at open because their deadline had passed.
    open_expired_records: u64 => Gauge, Count;
    /// Bytes of a torn tail (or skipped damage) cut at open.
    open_truncated_bytes: u64 => Gauge, Bytes;
    /// Pieces of the log cut or skipped at open (`KvStore::open_report` lists them).
    open_corruptions: u64 => Gauge, Count;
    /// How long opening took, recovery and replay included.
    open_duration_micros: u64 => Gauge, Micros;
}

/// A duration in whole microseconds.
fn micros(d: std::time::Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

/// What [`Stats`] is made of, from the layers below and the store's own counters.
pub(crate) struct Parts {
    pub(crate) keys: usize,
    pub(crate) memory_used_bytes: usize,
    pub(crate) live_bytes: u64,
    pub(crate) log_segments: u64,
    pub(crate) log_bytes: u64,
    pub(crate) snapshot_bytes: u64,
    pub(crate) open: OpenReport,
    pub(crate) commit: CommitStats,
    pub(crate) compaction: CompactionStats,
    pub(crate) evictions: u64,
    pub(crate) expirations: u64,
    pub(crate) errors: u64,
}

impl From<Parts> for Stats {
    fn from(p: Parts) -> Self {
        let stored = p.log_bytes + p.snapshot_bytes;
        let commit = &p.commit;
        let recovery = &p.open.recovery;
        Stats {
            keys: p.keys,
            memory_used_bytes: p.memory_used_bytes,
            live_bytes: p.live_bytes,
            log_segments: p.log_segments,
            log_bytes: p.log_bytes,
            snapshot_bytes: p.snapshot_bytes,
            live_data_ratio: if stored == 0 {
                1.0
            } else {
                p.live_bytes as f64 / stored as f64
            },
            commit_groups_total: commit.groups,
            commit_records_total: commit.records,
            commit_bytes_total: commit.bytes_written,
            fsyncs_total: commit.fsyncs,
            fsynced_records_total: commit.records_synced,
            background_fsyncs_total: commit.background_fsyncs,
            records_per_fsync_ratio: commit.records_per_fsync(),
            commit_latency_p50_micros: micros(commit.latency_p50),
            commit_latency_p99_micros: micros(commit.latency_p99),
            commit_latency_max_micros: micros(commit.latency_max),
            errors_total: p.errors,
            failed: commit.failed.is_some(),
            compactions_total: p.compaction.compactions,
            compaction_failures_total: p.compaction.failures,
            evictions_total: p.evictions,
            expirations_total: p.expirations,
            open_log_records: recovery.records,
            open_replayed_records: p.open.replayed,
            open_expired_records: p.open.expired_dropped,
            open_truncated_bytes: recovery.bytes_truncated,
            open_corruptions: recovery.corruptions.len() as u64,
            open_duration_micros: micros(p.open.duration),
            failure: p.commit.failed,
            last_compaction: p.compaction.last,
        }
    }
}

#[cfg(feature = "metrics")]
impl Stats {
    /// Publishes every figure through the `metrics` crate as `kv_<name>`, labelled
    /// `store=<store>`, with its description and unit.
    pub(crate) fn publish(&self, store: &str) {
        use metrics::Unit;
        for figure in self.figures() {
            let name = format!("kv_{}", figure.name);
            let unit = match figure.unit {
                FigureUnit::Count => Some(Unit::Count),
                FigureUnit::Bytes => Some(Unit::Bytes),
                FigureUnit::Micros => Some(Unit::Microseconds),
                FigureUnit::Ratio | FigureUnit::Flag => None,
            };
            // Described at every publication: a recorder installed after the store opened
            // still gets the descriptions, and describing again only replaces them.
            match (figure.kind, unit) {
                (FigureKind::Counter, Some(unit)) => {
                    metrics::describe_counter!(name.clone(), unit, figure.help)
                }
                (FigureKind::Counter, None) => {
                    metrics::describe_counter!(name.clone(), figure.help)
                }
                (FigureKind::Gauge, Some(unit)) => {
                    metrics::describe_gauge!(name.clone(), unit, figure.help)
                }
                (FigureKind::Gauge, None) => metrics::describe_gauge!(name.clone(), figure.help),
            }
            let store = store.to_string();
            match (figure.kind, figure.value) {
                (FigureKind::Counter, FigureValue::Count(n)) => {
                    metrics::counter!(name, "store" => store).absolute(n)
                }
                (_, value) => metrics::gauge!(name, "store" => store).set(value.as_f64()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_figure_is_named_with_its_unit_and_kind() {
        for figure in Stats::default().figures() {
            let name = figure.name;
            match figure.kind {
                FigureKind::Counter => assert!(name.ends_with("_total"), "{name}"),
                FigureKind::Gauge => assert!(!name.ends_with("_total"), "{name}"),
            }
            let suffix = match figure.unit {
                FigureUnit::Bytes => Some("_bytes"),
                FigureUnit::Micros => Some("_micros"),
                FigureUnit::Ratio => Some("_ratio"),
                FigureUnit::Count | FigureUnit::Flag => None,
            };
            let bare = name.trim_end_matches("_total");
            match suffix {
                Some(suffix) => assert!(bare.ends_with(suffix), "{name} ends in {suffix}"),
                None => {
                    for unit in ["_bytes", "_micros", "_ratio", "_seconds", "_ms", "_us"] {
                        assert!(!bare.ends_with(unit), "{name} counts things, not {unit}");
                    }
                }
            }
            assert!(
                figure.help.ends_with('.') && !figure.help.is_empty(),
                "{name}"
            );
        }
    }

    /// The crate's documentation lists every figure once, as its metric, kind and unit.
    #[test]
    fn the_crate_documentation_lists_every_figure() {
        let docs = include_str!("lib.rs");
        let rows: Vec<&str> = docs
            .lines()
            .filter_map(|line| line.strip_prefix("//! | `kv_"))
            .collect();
        let figures = Stats::default().figures();
        assert_eq!(rows.len(), figures.len(), "one row per figure");
        for (row, figure) in rows.iter().zip(&figures) {
            let kind = match figure.kind {
                FigureKind::Counter => "counter",
                FigureKind::Gauge => "gauge",
            };
            let unit = match figure.unit {
                FigureUnit::Count => "count",
                FigureUnit::Bytes => "bytes",
                FigureUnit::Micros => "microseconds",
                FigureUnit::Ratio => "ratio",
                FigureUnit::Flag => "0 or 1",
            };
            let expected = format!("{}` | {kind} | {unit} | ", figure.name);
            assert!(
                row.starts_with(&expected),
                "the row `{row}` should start with `{expected}`"
            );
        }
    }
}
